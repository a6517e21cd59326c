//! TensorFlow's element types, as one table that the graphopt facade, its `include_model!`
//! macro and graphopt-core all read: numbers (`DataType` enum values), names and sizes.
#![no_std]

/// This file's text: graphopt-build hashes it into its cache key, since these names end up
/// in artifacts' manifests.
#[doc(hidden)]
pub const SOURCE: &str = include_str!("lib.rs");

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
    /// Every dtype with its TensorFlow number, its TensorFlow name and its variant's name.
    pub const ALL: [(DType, i32, &'static str, &'static str); 23] = [
        (DType::Float, 1, "float", "Float"),
        (DType::Double, 2, "double", "Double"),
        (DType::Int32, 3, "int32", "Int32"),
        (DType::UInt8, 4, "uint8", "UInt8"),
        (DType::Int16, 5, "int16", "Int16"),
        (DType::Int8, 6, "int8", "Int8"),
        (DType::String, 7, "string", "String"),
        (DType::Complex64, 8, "complex64", "Complex64"),
        (DType::Int64, 9, "int64", "Int64"),
        (DType::Bool, 10, "bool", "Bool"),
        (DType::QInt8, 11, "qint8", "QInt8"),
        (DType::QUInt8, 12, "quint8", "QUInt8"),
        (DType::QInt32, 13, "qint32", "QInt32"),
        (DType::BFloat16, 14, "bfloat16", "BFloat16"),
        (DType::QInt16, 15, "qint16", "QInt16"),
        (DType::QUInt16, 16, "quint16", "QUInt16"),
        (DType::UInt16, 17, "uint16", "UInt16"),
        (DType::Complex128, 18, "complex128", "Complex128"),
        (DType::Half, 19, "half", "Half"),
        (DType::Resource, 20, "resource", "Resource"),
        (DType::Variant, 21, "variant", "Variant"),
        (DType::UInt32, 22, "uint32", "UInt32"),
        (DType::UInt64, 23, "uint64", "UInt64"),
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
            .find(|(_, v, _, _)| *v == value)
            .map(|(d, _, _, _)| *d)
    }

    /// TensorFlow's name for the type, e.g. `float`, `int32`.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(d, _, _, _)| *d == self)
            .map_or("invalid", |(_, _, n, _)| n)
    }

    /// The dtype TensorFlow calls `name` (`float`, `int32`, ...).
    pub fn from_name(name: &str) -> Option<DType> {
        Self::ALL
            .iter()
            .find(|(_, _, n, _)| *n == name)
            .map(|(d, _, _, _)| *d)
    }

    /// The name of this enum variant (`Float`, `Int32`, ...), for generated code.
    pub fn variant_name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(d, _, _, _)| *d == self)
            .map_or("Float", |(_, _, _, v)| v)
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

#[cfg(test)]
mod tests {
    use super::DType;

    #[test]
    fn table_round_trips() {
        for (dtype, number, name, _) in DType::ALL {
            assert_eq!(dtype.tf_enum(), number);
            assert_eq!(DType::from_tf_enum(number), Some(dtype));
            assert_eq!(
                DType::from_tf_enum(number + 100),
                Some(dtype),
                "reference type"
            );
            assert_eq!(DType::from_name(name), Some(dtype));
            assert_eq!(dtype.name(), name);
        }
        assert_eq!(DType::from_tf_enum(0), None);
        assert_eq!(DType::from_tf_enum(99), None);
        assert_eq!(DType::Int32.variant_name(), "Int32");
    }
}
