//! graphopt: TensorFlow models optimized at compile time for Rust apps.
//!
//! A `build.rs` declares a model and a transform list with `graphopt-build`; graphopt
//! optimizes, hashes and caches it, and [`include_model!`] embeds the result with typed
//! constants for its inputs and outputs:
//!
//! ```ignore
//! graphopt::include_model!(digits);
//! let bytes: &[u8] = digits::GRAPH_DEF;
//! let input: graphopt::TensorSpec = digits::inputs::IMAGE;
//! ```
//!
//! This facade is what apps depend on. With default features it is `no_std` and holds only
//! [`include_model!`], [`DType`] and [`TensorSpec`]. The `eval` feature adds [`eval::Model`],
//! which runs an embedded graph with graphopt's reference evaluator.
#![cfg_attr(not(feature = "eval"), no_std)]

pub use graphopt_macros::include_model;

#[cfg(feature = "eval")]
pub mod eval;

pub use graphopt_types::DType;

/// One input or output tensor of an embedded model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
