//! Cast between dtypes with C++ `static_cast` semantics (float -> int truncates; Rust's `as`
//! also saturates and maps NaN to 0 where C++ leaves it undefined), and float16/bfloat16
//! widening helpers for kernels that compute in float32.

use half::{bf16, f16};
use ndarray::ArrayD;
use num_traits::AsPrimitive;

use super::{fail, KernelError};
use crate::proto::DataType;
use crate::tensor::{Data, Tensor};

fn convert<S, D>(a: &ArrayD<S>) -> ArrayD<D>
where
    S: AsPrimitive<D>,
    D: Copy + 'static,
{
    a.mapv(|v| v.as_())
}

/// Casts to `to`. Bool -> number gives 0/1; number -> bool is `!= 0`.
pub fn cast(x: &Tensor, to: DataType) -> Result<Tensor, KernelError> {
    if x.dtype() == to {
        super::broadcast::check_output(x.shape(), crate::tensor::memory_element_size(to))?;
        return Ok(x.clone());
    }
    super::broadcast::check_output(x.shape(), crate::tensor::memory_element_size(to))?;
    if matches!(x.data(), Data::F16(_) | Data::BF16(_) | Data::Bool(_)) {
        // The widened copy below.
        super::broadcast::check_output(x.shape(), 4)?;
    }
    // Sources widened to a primitive storage first.
    let widened;
    let source = match x.data() {
        Data::F16(a) => {
            widened = Data::F32(a.mapv(f16::to_f32));
            &widened
        }
        Data::BF16(a) => {
            widened = Data::F32(a.mapv(bf16::to_f32));
            &widened
        }
        Data::Bool(a) => {
            widened = Data::U8(a.mapv(u8::from));
            &widened
        }
        other => other,
    };
    macro_rules! to_prim {
        ($dst:ty) => {
            match source {
                Data::F32(a) => convert::<f32, $dst>(a),
                Data::F64(a) => convert::<f64, $dst>(a),
                Data::I8(a) => convert::<i8, $dst>(a),
                Data::I16(a) => convert::<i16, $dst>(a),
                Data::I32(a) => convert::<i32, $dst>(a),
                Data::I64(a) => convert::<i64, $dst>(a),
                Data::U8(a) => convert::<u8, $dst>(a),
                Data::U16(a) => convert::<u16, $dst>(a),
                Data::U32(a) => convert::<u32, $dst>(a),
                Data::U64(a) => convert::<u64, $dst>(a),
                _ => return fail(format!("cannot cast {:?} to {to:?}", x.dtype())),
            }
        };
    }
    use DataType as D;
    let data = match to {
        D::DtFloat => Data::F32(to_prim!(f32)),
        D::DtDouble => Data::F64(to_prim!(f64)),
        // Every source, float64 included, is rounded to float32 first, as TensorFlow's
        // (Eigen's) half and bfloat16 conversions do: float64 1 + 2^-11 + 2^-30 is 1.0 in
        // float16, not the correctly rounded 1 + 2^-10.
        D::DtHalf => Data::F16(to_prim!(f32).mapv(f16::from_f32)),
        D::DtBfloat16 => Data::BF16(to_prim!(f32).mapv(bf16::from_f32)),
        D::DtInt8 | D::DtQint8 => Data::I8(to_prim!(i8)),
        D::DtInt16 | D::DtQint16 => Data::I16(to_prim!(i16)),
        D::DtInt32 | D::DtQint32 => Data::I32(to_prim!(i32)),
        D::DtInt64 => Data::I64(to_prim!(i64)),
        D::DtUint8 | D::DtQuint8 => Data::U8(to_prim!(u8)),
        D::DtUint16 | D::DtQuint16 => Data::U16(to_prim!(u16)),
        D::DtUint32 => Data::U32(to_prim!(u32)),
        D::DtUint64 => Data::U64(to_prim!(u64)),
        D::DtBool => {
            super::broadcast::check_output(x.shape(), 8)?;
            Data::Bool(to_prim!(f64).mapv(|v| v != 0.0))
        }
        other => return fail(format!("cannot cast to {other:?}")),
    };
    Tensor::new(to, data).map_err(Into::into)
}

/// The tensor as float32 (float16/bfloat16/float64 are converted; float32 is cloned).
pub fn to_f32(x: &Tensor) -> Result<Tensor, KernelError> {
    cast(x, DataType::DtFloat)
}

/// A float32 tensor rounded to `dtype` (float16 or bfloat16).
pub fn from_f32(x: &Tensor, dtype: DataType) -> Result<Tensor, KernelError> {
    cast(x, dtype)
}

/// All elements as f64 (for shape arguments, axes, scalars).
pub fn to_f64_vec(x: &Tensor) -> Result<Vec<f64>, KernelError> {
    super::alloc::items::<f64>(x.len(), "a list of values")?;
    match cast(x, DataType::DtDouble)?.into_data() {
        Data::F64(a) => Ok(a.iter().copied().collect()),
        _ => fail("expected a numeric tensor"),
    }
}

/// All elements of an integer tensor as i64 (shapes, axes, indices).
pub fn to_i64_vec(x: &Tensor) -> Result<Vec<i64>, KernelError> {
    super::alloc::items::<i64>(x.len(), "a list of values")?;
    x.integers()
        .ok_or_else(|| KernelError(format!("expected an integer tensor, got {:?}", x.dtype())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// TensorFlow 2.21 casts float64 to float16 and bfloat16 through float32 (round to
    /// nearest even twice). The half crate's from_f64 differs by machine: float16 through
    /// float32 with F16C, correctly rounded on aarch64 with FP16, else (and bfloat16 always)
    /// with the low 32 bits of the mantissa dropped first.
    #[test]
    fn float64_to_half_types_rounds_through_float32() {
        let p = |e: i32| 2f64.powi(e);
        let x = Tensor::from_data(Data::F64(
            ndarray::arr1(&[
                1.0 + p(-11) + p(-22),
                1.0 + p(-8) + p(-22),
                1.0 + p(-11) + p(-30),
                1.0 + p(-8) + p(-30),
            ])
            .into_dyn(),
        ));
        let Data::F16(half) = cast(&x, DataType::DtHalf).expect("cast").into_data() else {
            panic!("not float16")
        };
        let half: Vec<f64> = half.iter().map(|v| v.to_f64()).collect();
        assert_eq!(half, [1.0 + p(-10), 1.0 + p(-8), 1.0, 1.0 + p(-8)]);
        let Data::BF16(b) = cast(&x, DataType::DtBfloat16).expect("cast").into_data() else {
            panic!("not bfloat16")
        };
        let b: Vec<f64> = b.iter().map(|v| v.to_f64()).collect();
        assert_eq!(b, [1.0, 1.0 + p(-7), 1.0, 1.0]);
    }
}
