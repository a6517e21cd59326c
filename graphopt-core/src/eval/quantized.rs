//! Dequantize (MIN_FIRST and MIN_COMBINED), the op `quantize_weights` leaves in a graph.

use ndarray::ArrayD;

use super::{cast::to_f64_vec, fail, KernelContext, KernelError};
use crate::graph::attrs;
use crate::proto::DataType;
use crate::tensor::{Data, Tensor};

fn scalar(t: &Tensor) -> Result<f32, KernelError> {
    match to_f64_vec(t)?.as_slice() {
        [v] => Ok(*v as f32),
        _ => fail("min_range and max_range must be scalars"),
    }
}

/// Codes as i64 with the type's lowest value and number of bits.
fn codes(t: &Tensor) -> Result<(ArrayD<i64>, i64, u32), KernelError> {
    Ok(match (t.dtype(), t.data()) {
        (DataType::DtQuint8, Data::U8(a)) => (a.mapv(i64::from), 0, 8),
        (DataType::DtQint8, Data::I8(a)) => (a.mapv(i64::from), -128, 8),
        (DataType::DtQuint16, Data::U16(a)) => (a.mapv(i64::from), 0, 16),
        (DataType::DtQint16, Data::I16(a)) => (a.mapv(i64::from), -32768, 16),
        _ => return fail(format!("Dequantize of {:?} is not supported", t.dtype())),
    })
}

pub fn dequantize(
    ctx: &KernelContext<'_>,
    input: &Tensor,
    min: &Tensor,
    max: &Tensor,
) -> Result<Tensor, KernelError> {
    super::alloc::output::<i64>(input.shape())?;
    super::alloc::output::<f32>(input.shape())?;
    let (q, lowest, bits) = codes(input)?;
    let (min, max) = (scalar(min)?, scalar(max)?);
    let mode = attrs::string(ctx.node, "mode").unwrap_or_else(|| "MIN_COMBINED".into());
    if attrs::int(ctx.node, "axis").unwrap_or(-1) != -1 {
        return fail("per-axis Dequantize is not supported by graphopt's evaluator");
    }
    let steps = (1i64 << bits) as f64;
    let out = match mode.as_str() {
        // TensorFlow's Eigen path: float arithmetic with the minimum rounded to a step.
        "MIN_FIRST" => {
            let scale = (f64::from(max - min) / (steps - 1.0)) as f32;
            let min_rounded = if max == min {
                min
            } else {
                (min / scale).round() * scale
            };
            let lowest = lowest as f32;
            q.mapv(|v| (v as f32 - lowest) * scale + min_rounded)
        }
        "MIN_COMBINED" => {
            let half = if lowest < 0 {
                (steps / 2.0) as f32
            } else {
                0.0
            };
            let span = ((steps - 1.0) as f32).max(1.0);
            q.mapv(|v| ((v as f32 + half) * (max - min)) / span + min)
        }
        other => {
            return fail(format!(
                "Dequantize mode {other} is not supported by graphopt's evaluator"
            ))
        }
    };
    let out = Tensor::from_data(Data::F32(out));
    // The output type: float (the default) or bfloat16, which TensorFlow rounds from float.
    match attrs::dtype(ctx.node, "dtype") {
        None | Some(DataType::DtFloat) => Ok(out),
        Some(DataType::DtBfloat16) => super::cast::from_f32(&out, DataType::DtBfloat16),
        Some(other) => fail(format!("Dequantize to {other:?} is not supported")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Gemm, Limits};
    use crate::proto::{attr_value, AttrValue, NodeDef};

    /// TensorFlow: Dequantize with dtype=bfloat16 gives bfloat16, its float result rounded
    /// (graphopt gave float32 whatever the attribute).
    #[test]
    fn dequantize_honours_a_bfloat16_dtype() {
        let mut node = NodeDef {
            op: "Dequantize".into(),
            ..Default::default()
        };
        node.attr.insert(
            "dtype".into(),
            AttrValue {
                value: Some(attr_value::Value::Type(DataType::DtBfloat16 as i32)),
            },
        );
        let ctx = KernelContext {
            node: &node,
            limits: Limits::default(),
            gemm: Gemm::Portable,
        };
        let codes = ndarray::arr1(&[0u8, 17, 255]).into_dyn();
        let q = Tensor::new(DataType::DtQuint8, Data::U8(codes)).expect("quint8");
        let scalar = |v: f32| Tensor::from_data(Data::F32(ndarray::arr0(v).into_dyn()));
        let out = dequantize(&ctx, &q, &scalar(-1.3), &scalar(2.7)).expect("dequantize");
        assert_eq!(out.dtype(), DataType::DtBfloat16);
        let Data::BF16(values) = out.data() else {
            panic!("not bfloat16")
        };
        // TensorFlow 2.21's values for these codes.
        let values: Vec<f32> = values.iter().map(|v| v.to_f32()).collect();
        assert_eq!(values, [-1.296875, -1.03125, 2.703125]);
    }
}
