//! Element types and shapes as TensorFlow names them, from the one dtype table that the facade
//! and the macro share (`graphopt-types`).

use crate::proto::{DataType, TensorShapeProto};

/// TensorFlow's name for a dtype: `DT_FLOAT` -> `float`, `DT_INT32_REF` -> `int32_ref`.
pub fn dtype_name(dtype: i32) -> String {
    let (base, suffix) = if dtype > 100 {
        (dtype - 100, "_ref")
    } else {
        (dtype, "")
    };
    match graphopt_types::DType::from_tf_enum(base) {
        Some(t) => format!("{}{suffix}", t.name()),
        // Types the shared table leaves out (float8 variants, int4, ...) keep TF's own name.
        None => match DataType::try_from(dtype) {
            Ok(DataType::DtInvalid) | Err(_) => format!("unknown({dtype})"),
            Ok(t) => t
                .as_str_name()
                .trim_start_matches("DT_")
                .to_ascii_lowercase(),
        },
    }
}

/// Shape dimensions, or `None` for an unknown rank.
pub fn shape_dims(shape: &TensorShapeProto) -> Option<Vec<i64>> {
    (!shape.unknown_rank).then(|| shape.dim.iter().map(|d| d.size).collect())
}

/// A shape proto of `dims` (`-1` for an unknown dimension).
pub fn shape_from_dims(dims: &[i64]) -> TensorShapeProto {
    TensorShapeProto {
        dim: dims
            .iter()
            .map(|&size| crate::proto::tensor_shape_proto::Dim {
                size,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    }
}

/// Number of elements of a fully known shape; unknown or negative dimensions count as 0 and
/// absurd products saturate instead of overflowing.
pub fn element_count(dims: &[i64]) -> u64 {
    dims.iter().fold(1u64, |acc, &d| {
        acc.saturating_mul(u64::try_from(d).unwrap_or(0))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_tensorflow() {
        assert_eq!(dtype_name(DataType::DtFloat as i32), "float");
        assert_eq!(dtype_name(DataType::DtInt32Ref as i32), "int32_ref");
        assert_eq!(dtype_name(DataType::DtBfloat16 as i32), "bfloat16");
        assert_eq!(dtype_name(DataType::DtFloat8E4m3fn as i32), "float8_e4m3fn");
        assert_eq!(dtype_name(0), "unknown(0)");
        assert_eq!(dtype_name(999), "unknown(999)");
    }

    /// The shared table (facade, macro, core) agrees with TensorFlow's `DataType` enum.
    #[test]
    fn shared_table_matches_the_schema() {
        for (_, number, name, _) in graphopt_types::DType::ALL {
            let schema = DataType::try_from(number).map(|t| t.as_str_name());
            let expected = format!("DT_{}", name.to_ascii_uppercase());
            assert_eq!(schema, Ok(expected.as_str()), "{name} = {number}");
        }
    }
}
