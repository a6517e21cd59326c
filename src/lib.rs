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

/// Element type of a tensor, numbered as TensorFlow's `DataType` enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    Float,
    Double,
    Int32,
    UInt8,
    Int16,
    Int8,
    String,
    Complex64,
    Int64,
    Bool,
    QInt8,
    QUInt8,
    QInt32,
    BFloat16,
    QInt16,
    QUInt16,
    UInt16,
    Complex128,
    Half,
    Resource,
    Variant,
    UInt32,
    UInt64,
}

impl DType {
    const ALL: [(DType, i32, &'static str); 23] = [
        (DType::Float, 1, "float"),
        (DType::Double, 2, "double"),
        (DType::Int32, 3, "int32"),
        (DType::UInt8, 4, "uint8"),
        (DType::Int16, 5, "int16"),
        (DType::Int8, 6, "int8"),
        (DType::String, 7, "string"),
        (DType::Complex64, 8, "complex64"),
        (DType::Int64, 9, "int64"),
        (DType::Bool, 10, "bool"),
        (DType::QInt8, 11, "qint8"),
        (DType::QUInt8, 12, "quint8"),
        (DType::QInt32, 13, "qint32"),
        (DType::BFloat16, 14, "bfloat16"),
        (DType::QInt16, 15, "qint16"),
        (DType::QUInt16, 16, "quint16"),
        (DType::UInt16, 17, "uint16"),
        (DType::Complex128, 18, "complex128"),
        (DType::Half, 19, "half"),
        (DType::Resource, 20, "resource"),
        (DType::Variant, 21, "variant"),
        (DType::UInt32, 22, "uint32"),
        (DType::UInt64, 23, "uint64"),
    ];

    /// TensorFlow's `DataType` number (`DT_FLOAT` = 1, ...).
    pub const fn tf_enum(self) -> i32 {
        let mut i = 0;
        while i < Self::ALL.len() {
            if Self::ALL[i].0 as u8 == self as u8 {
                return Self::ALL[i].1;
            }
            i += 1;
        }
        0
    }

    /// The dtype for a TensorFlow `DataType` number; reference types (`+100`) map to their value type.
    pub fn from_tf_enum(value: i32) -> Option<DType> {
        let value = if value > 100 { value - 100 } else { value };
        Self::ALL
            .iter()
            .find(|(_, v, _)| *v == value)
            .map(|(d, _, _)| *d)
    }

    /// TensorFlow's name for the type, e.g. `float`, `int32`.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(d, _, _)| *d == self)
            .map_or("invalid", |(_, _, n)| n)
    }

    /// Bytes per element, for fixed-size types.
    pub const fn size_of(self) -> Option<usize> {
        match self {
            DType::Bool | DType::Int8 | DType::UInt8 | DType::QInt8 | DType::QUInt8 => Some(1),
            DType::Int16
            | DType::UInt16
            | DType::QInt16
            | DType::QUInt16
            | DType::Half
            | DType::BFloat16 => Some(2),
            DType::Float | DType::Int32 | DType::UInt32 | DType::QInt32 => Some(4),
            DType::Double | DType::Int64 | DType::UInt64 | DType::Complex64 => Some(8),
            DType::Complex128 => Some(16),
            DType::String | DType::Resource | DType::Variant => None,
        }
    }
}

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
    fn dtype_numbers_round_trip() {
        for (dtype, number, name) in DType::ALL {
            assert_eq!(dtype.tf_enum(), number);
            assert_eq!(DType::from_tf_enum(number), Some(dtype));
            assert_eq!(DType::from_tf_enum(number + 100), Some(dtype));
            assert_eq!(dtype.name(), name);
        }
        assert_eq!(DType::from_tf_enum(0), None);
        assert_eq!(DType::from_tf_enum(99), None);
    }

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
