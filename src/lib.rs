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
    /// Dimensions; -1 where unknown.
    pub shape: &'static [i64],
}

impl TensorSpec {
    /// Number of elements, if every dimension is known.
    pub fn element_count(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |acc, &d| {
            usize::try_from(d).ok().and_then(|d| acc.checked_mul(d))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_count_needs_known_dims() {
        let known = TensorSpec {
            name: "x",
            tensor: "x:0",
            dtype: DType::Float,
            shape: &[1, 32, 32, 3],
        };
        assert_eq!(known.element_count(), Some(3072));
        let unknown = TensorSpec {
            shape: &[-1, 3],
            ..known
        };
        assert_eq!(unknown.element_count(), None);
        let scalar = TensorSpec {
            shape: &[],
            ..known
        };
        assert_eq!(scalar.element_count(), Some(1));
    }
}
