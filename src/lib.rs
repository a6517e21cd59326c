//! graphopt: TensorFlow models optimized at compile time for Rust apps.
//!
//! A `build.rs` declares a model and a transform list with `graphopt-build`; graphopt
//! optimizes, hashes and caches it, and [`include_model!`] embeds the result with typed
//! constants for its inputs and outputs (not compiled here: the macro needs the artifacts
//! an app's build script writes; `examples/digits` is an app that does this):
//!
//! ```ignore
//! graphopt::include_model!(digits);
//! let bytes: &[u8] = digits::GRAPH_DEF;
//! let input: graphopt::TensorSpec = digits::inputs::IMAGE;
//! ```
//!
//! This facade is what apps depend on. With default features it is `no_std` and holds only
//! [`include_model!`], [`DType`], [`TensorSpec`] and [`Shape`].
#![cfg_attr(
    feature = "eval",
    doc = "The `eval` feature adds [`eval::Model`], which runs an embedded graph with graphopt's reference evaluator."
)]
#![cfg_attr(
    not(feature = "eval"),
    doc = "The `eval` feature adds `eval::Model`, which runs an embedded graph with graphopt's reference evaluator."
)]
#![cfg_attr(not(feature = "eval"), no_std)]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Embeds a model that this package's build script built with `graphopt-build`, as a module
/// of constants.
///
/// `graphopt::include_model!(digits);` reads `$OUT_DIR/graphopt/digits.json`, which
/// `graphopt_build::Model::new("digits", ...).build()` wrote in `build.rs`, and expands to a
/// module `digits` (a sketch of its items, not compilable code):
///
/// ```ignore
/// pub mod digits {
///     //! The `digits` model ...: node and op counts, sizes, transforms, and a list of the
///     //! input and output constants with their tensors, dtypes and shapes.
///
///     /// The optimized GraphDef (binary protobuf), 16-byte aligned, via include_bytes!.
///     pub static GRAPH_DEF: &[u8];
///     /// Hex SHA-256 of GRAPH_DEF.
///     pub const SHA256: &str;
///     /// The transforms applied, in canonical transform_graph syntax.
///     pub const TRANSFORMS: &str;
///     /// Nodes of the optimized main graph, and before the transforms.
///     pub const NODE_COUNT: usize;
///     pub const SOURCE_NODE_COUNT: usize;
///     /// Size of the source model (its file, or every file of its SavedModel directory).
///     pub const SOURCE_SIZE_BYTES: u64;
///     /// Every input and every output, in declaration order.
///     pub const INPUTS: &[graphopt::TensorSpec];
///     pub const OUTPUTS: &[graphopt::TensorSpec];
///     /// One constant per input and per output.
///     pub mod inputs { pub const IMAGE: graphopt::TensorSpec; }
///     pub mod outputs { pub const PROBS: graphopt::TensorSpec; }
/// }
/// ```
///
/// The bytes come through `include_bytes!`, so rustc rebuilds the crate when the artifact
/// changes. `cargo doc` on the app shows the generated module with its constants listed.
///
/// # Constant names
///
/// Each input and output is a [`TensorSpec`] constant named after its node in UPPER_SNAKE
/// case: every character other than an ASCII letter or digit becomes `_` (runs of them one
/// `_`), a lowercase letter or digit followed by an uppercase letter gets a `_` between them,
/// and `_` at either end is dropped. `functional_1/dense_1/Softmax` becomes
/// `FUNCTIONAL_1_DENSE_1_SOFTMAX`, `inputLayer` becomes `INPUT_LAYER`, a name starting with a
/// digit gets a `T_` prefix (`0bad` becomes `T_0BAD`), and an output other than the node's
/// first appends its index (`split:1` becomes `SPLIT_1`). A mistyped constant is an ordinary
/// "cannot find value" error, with rustc's suggestion of the closest name; the module's
/// `INPUTS` and `OUTPUTS` hold them all.
///
/// # Compile errors
///
/// - A model the build script's last run did not build, including one since removed or
///   renamed in `build.rs`: `no model 'digits' was built by this package's build.rs;
///   declared models: mnist` (or `none`).
/// - Two inputs (or two outputs) whose names make the same constant, naming both:
///   `include_model!(m): outputs 'a/b:0' and 'a_b:0' both become the constant
///   m::outputs::A_B; ...`. Rename one of the nodes with the `rename_node` transform:
///   declared inputs and outputs are the source graph's names, and a renamed one follows its
///   node, so `.outputs(["a/b", "a_b"]).transforms("rename_node(old_node_name=a_b,
///   new_node_name=a_b_2)")` gives `A_B` and `A_B_2`.
///
/// The generated code names this crate by `$crate`, so it also compiles in an app that
/// renames the dependency (`go = { package = "graphopt", ... }`, then `go::include_model!`).
#[macro_export]
macro_rules! include_model {
    ($($model:tt)*) => {
        $crate::__include_model!($crate; $($model)*);
    };
}

/// The proc-macro behind [`include_model!`], which passes it the path of this crate.
#[doc(hidden)]
pub use graphopt_macros::include_model as __include_model;

#[cfg(feature = "eval")]
#[cfg_attr(docsrs, doc(cfg(feature = "eval")))]
pub mod eval;

pub use graphopt_types::DType;

/// One input or output tensor of an embedded model. Made by [`include_model!`] (or, for a
/// graph read at run time, [`TensorSpec::new`]); fields may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TensorSpec {
    /// Node name, e.g. `input`.
    pub name: &'static str,
    /// Tensor name, e.g. `input:0`.
    pub tensor: &'static str,
    pub dtype: DType,
    /// Rank and dimensions, as far as the model's signature or graphopt's shape inference
    /// knows them.
    pub shape: Shape,
}

impl TensorSpec {
    /// The spec of tensor `node:port` (or `node`, its first output) of a graph that
    /// [`include_model!`] did not embed, such as one an app reads at run time; its `name` is
    /// the part before the last `:`.
    ///
    /// ```
    /// use graphopt::{DType, Shape, TensorSpec};
    /// const IMAGE: TensorSpec = TensorSpec::new("input:0", DType::Float, Shape::Known(&[-1, 32, 32, 3]));
    /// assert_eq!((IMAGE.name, IMAGE.tensor), ("input", "input:0"));
    /// ```
    pub const fn new(tensor: &'static str, dtype: DType, shape: Shape) -> Self {
        let bytes = tensor.as_bytes();
        let mut end = bytes.len();
        let mut i = bytes.len();
        while i > 0 {
            i -= 1;
            if bytes[i] == b':' {
                end = i;
                break;
            }
        }
        // Split at an ASCII ':', so both parts are UTF-8.
        let name = match core::str::from_utf8(bytes.split_at(end).0) {
            Ok(name) => name,
            Err(_) => tensor,
        };
        TensorSpec {
            name,
            tensor,
            dtype,
            shape,
        }
    }

    /// What [`include_model!`]'s generated constants are made with (a struct literal cannot
    /// name a `#[non_exhaustive]` struct outside this crate). Not part of the API.
    #[doc(hidden)]
    pub const fn __new(
        name: &'static str,
        tensor: &'static str,
        dtype: DType,
        shape: Shape,
    ) -> Self {
        TensorSpec {
            name,
            tensor,
            dtype,
            shape,
        }
    }

    /// Number of elements, if the rank and every dimension are known.
    pub fn element_count(&self) -> Option<usize> {
        self.shape.element_count()
    }
}

/// The shape of an input or output. A scalar is `Known(&[])`; a shape whose rank is unknown
/// is `Unknown`, a different thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Shape {
    /// Not even the rank is known.
    Unknown,
    /// The rank is known; a dimension of -1 is unknown.
    Known(&'static [i64]),
}

impl Shape {
    /// The number of dimensions, if known.
    pub const fn rank(&self) -> Option<usize> {
        match self {
            Shape::Unknown => None,
            Shape::Known(dims) => Some(dims.len()),
        }
    }

    /// The dimensions (-1 where unknown), if the rank is known.
    pub const fn dims(&self) -> Option<&'static [i64]> {
        match self {
            Shape::Unknown => None,
            Shape::Known(dims) => Some(dims),
        }
    }

    /// Number of elements, if the rank and every dimension are known (1 for a scalar).
    pub fn element_count(&self) -> Option<usize> {
        self.dims()?.iter().try_fold(1usize, |acc, &d| {
            usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
        })
    }

    /// Whether a tensor of these dimensions fits: same rank, and equal where this shape
    /// knows the dimension. Anything fits an unknown shape.
    pub fn accepts(&self, dims: &[usize]) -> bool {
        match self {
            Shape::Unknown => true,
            Shape::Known(known) => {
                known.len() == dims.len()
                    && known
                        .iter()
                        .zip(dims)
                        .all(|(&k, &d)| k < 0 || usize::try_from(k).is_ok_and(|k| k == d))
            }
        }
    }
}

/// `[-1, 8, 8, 1]`, `[]` for a scalar, `unknown` when the rank is unknown.
impl core::fmt::Display for Shape {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Shape::Unknown => f.write_str("unknown"),
            Shape::Known(dims) => write!(f, "{dims:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_count_needs_a_known_rank_and_known_dims() {
        let known = TensorSpec {
            name: "x",
            tensor: "x:0",
            dtype: DType::Float,
            shape: Shape::Known(&[1, 32, 32, 3]),
        };
        assert_eq!(known.element_count(), Some(3072));
        let unknown_dim = TensorSpec {
            shape: Shape::Known(&[-1, 3]),
            ..known
        };
        assert_eq!(unknown_dim.element_count(), None);
        let scalar = TensorSpec {
            shape: Shape::Known(&[]),
            ..known
        };
        assert_eq!(scalar.element_count(), Some(1));
        assert_eq!(scalar.shape.rank(), Some(0));
        let unknown_rank = TensorSpec {
            shape: Shape::Unknown,
            ..known
        };
        assert_eq!(unknown_rank.element_count(), None);
        assert_eq!(unknown_rank.shape.rank(), None);
        assert_ne!(unknown_rank, scalar);
    }

    #[test]
    fn shapes_accept_fitting_dims_and_print_like_tensorflow() {
        let shape = Shape::Known(&[-1, 8, 8, 1]);
        assert!(shape.accepts(&[360, 8, 8, 1]));
        assert!(!shape.accepts(&[360, 8, 8]));
        assert!(!shape.accepts(&[360, 8, 8, 3]));
        assert!(Shape::Unknown.accepts(&[2, 2]));
        assert!(Shape::Known(&[]).accepts(&[]));
        extern crate std;
        use std::string::ToString;
        assert_eq!(shape.to_string(), "[-1, 8, 8, 1]");
        assert_eq!(Shape::Known(&[]).to_string(), "[]");
        assert_eq!(Shape::Unknown.to_string(), "unknown");
    }
}
