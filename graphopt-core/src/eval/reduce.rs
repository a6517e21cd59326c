//! Reductions: Sum, Prod, Mean, Max, Min, All, Any (with keep_dims) and ArgMax/ArgMin.
//! Floats accumulate in f64 and round once, so results are at least as exact as TensorFlow's.

use ndarray::{ArrayD, Axis};

use super::alloc;
use super::cast::{cast, to_i64_vec};
use super::shape_ops::{normalize_axis, scalar_int};
use super::{fail, KernelContext, KernelError};
use crate::graph::attrs;
use crate::proto::DataType;
use crate::tensor::{Data, Tensor};

fn axes(x: &Tensor, axes: &Tensor) -> Result<Vec<usize>, KernelError> {
    let rank = x.shape().len();
    let mut list = to_i64_vec(axes)?
        .into_iter()
        .map(|a| normalize_axis(a, rank))
        .collect::<Result<Vec<_>, _>>()?;
    list.sort_unstable();
    list.dedup();
    Ok(list)
}

fn reduce_array<T: Clone>(
    a: &ArrayD<T>,
    axes: &[usize],
    init: T,
    f: impl Fn(&T, &T) -> T,
) -> ArrayD<T> {
    if a.is_empty() {
        // Every output is the initial value; folding axis by axis could build intermediates
        // larger than the output (the other dimensions of an empty tensor may be huge).
        let dims: Vec<usize> = (0..a.ndim())
            .filter(|i| !axes.contains(i))
            .map(|i| a.shape()[i])
            .collect();
        return ArrayD::from_elem(ndarray::IxDyn(&dims), init);
    }
    // With elements, every intermediate is smaller than the input.
    let mut axes = axes.iter().rev();
    let Some(&first) = axes.next() else {
        return a.clone();
    };
    let mut current = a.fold_axis(Axis(first), init.clone(), |acc, v| f(acc, v));
    for &axis in axes {
        current = current.fold_axis(Axis(axis), init.clone(), |acc, v| f(acc, v));
    }
    current
}

/// The sums of a float32 tensor over one axis or two adjacent ones (a global average pool, a
/// squeeze-and-excite Mean), in float64 without a float64 copy of the input: each output
/// adds exactly what [`reduce_array`] adds, in the same order (along the last reduced axis
/// first, then those sums along the one before), so the bits are the same. `None` for other
/// axes or layouts.
fn sum_in_place(a: &ArrayD<f32>, axes: &[usize]) -> Option<ArrayD<f64>> {
    let values = a.as_slice()?;
    let (first, last) = match *axes {
        [axis] => (axis, axis),
        [p, q] if q == p + 1 => (p, q),
        _ => return None,
    };
    if a.is_empty() {
        return None;
    }
    let shape = a.shape();
    let outer: usize = shape[..first].iter().product();
    let inner: usize = shape[last + 1..].iter().product();
    let (rows, columns) = if first == last {
        (1, shape[first])
    } else {
        (shape[first], shape[last])
    };
    let mut out = Vec::with_capacity(outer * inner);
    let mut total = vec![0f64; inner];
    let mut partial = vec![0f64; inner];
    for block in values.chunks_exact(rows * columns * inner) {
        total.fill(0.0);
        for row in block.chunks_exact(columns * inner) {
            partial.fill(0.0);
            for line in row.chunks_exact(inner) {
                for (p, &v) in partial.iter_mut().zip(line) {
                    *p += f64::from(v);
                }
            }
            if rows == 1 {
                std::mem::swap(&mut total, &mut partial);
            } else {
                for (t, &p) in total.iter_mut().zip(&partial) {
                    *t += p;
                }
            }
        }
        out.extend_from_slice(&total);
    }
    let dims: Vec<usize> = (0..shape.len())
        .filter(|i| *i < first || *i > last)
        .map(|i| shape[i])
        .collect();
    ArrayD::from_shape_vec(ndarray::IxDyn(&dims), out).ok()
}

fn kept_dims(shape: &[usize], axes: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .enumerate()
        .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
        .collect()
}

/// Sum, Prod, Mean, Max, Min, All, Any.
pub fn reduce(ctx: &KernelContext<'_>, x: &Tensor, axis: &Tensor) -> Result<Tensor, KernelError> {
    let op = ctx.node.op.as_str();
    let axes = axes(x, axis)?;
    // An empty input may have huge dimensions: the reduced count and the output are checked.
    let reduced_dims: Vec<usize> = axes.iter().map(|&a| x.shape()[a]).collect();
    let count = alloc::count(&reduced_dims).unwrap_or(usize::MAX);
    let keep = attrs::bool(ctx.node, "keep_dims").unwrap_or(false);
    let out_dims: Vec<usize> = (0..x.shape().len())
        .filter(|i| !axes.contains(i))
        .map(|i| x.shape()[i])
        .collect();
    alloc::output::<f64>(&out_dims)?;
    alloc::work(x.len() as u128)?;
    let in_place = match (x.data(), op) {
        (Data::F32(a), "Sum" | "Mean") => sum_in_place(a, &axes),
        _ => None,
    };
    let reduced = match (in_place, x.data()) {
        (Some(mut sums), _) => {
            if op == "Mean" {
                sums.mapv_inplace(|v| v / count as f64);
            }
            Tensor::from_data(Data::F32(sums.mapv(|v| v as f32)))
        }
        (None, Data::Bool(a)) => {
            let out = match op {
                "All" => reduce_array(a, &axes, true, |p, q| *p && *q),
                "Any" => reduce_array(a, &axes, false, |p, q| *p || *q),
                _ => return fail(format!("{op} is not defined for bool")),
            };
            Tensor::from_data(Data::Bool(out))
        }
        (None, Data::F32(_) | Data::F64(_) | Data::F16(_) | Data::BF16(_)) => {
            let Data::F64(a) = cast(x, DataType::DtDouble)?.into_data() else {
                return fail("cast failed");
            };
            let out = match op {
                "Sum" => reduce_array(&a, &axes, 0.0, |p, q| p + q),
                "Mean" => reduce_array(&a, &axes, 0.0, |p, q| p + q).mapv(|v| v / count as f64),
                "Prod" => reduce_array(&a, &axes, 1.0, |p, q| p * q),
                "Max" => reduce_array(&a, &axes, f64::NEG_INFINITY, |p, q| {
                    if q.is_nan() || *q > *p {
                        *q
                    } else {
                        *p
                    }
                }),
                "Min" => reduce_array(&a, &axes, f64::INFINITY, |p, q| {
                    if q.is_nan() || *q < *p {
                        *q
                    } else {
                        *p
                    }
                }),
                _ => return fail(format!("{op} is not defined for floats")),
            };
            cast(&Tensor::from_data(Data::F64(out)), x.dtype())?
        }
        (None, _) => {
            let Data::I64(a) = cast(x, DataType::DtInt64)?.into_data() else {
                return fail(format!("{op} is not defined for {:?}", x.dtype()));
            };
            let out = match op {
                "Sum" => reduce_array(&a, &axes, 0, |p, q| p.wrapping_add(*q)),
                "Mean" => {
                    let n = count.max(1) as i64;
                    reduce_array(&a, &axes, 0, |p, q| p.wrapping_add(*q)).mapv(|v| v / n)
                }
                "Prod" => reduce_array(&a, &axes, 1, |p, q| p.wrapping_mul(*q)),
                "Max" => reduce_array(&a, &axes, i64::MIN, |p, q| *p.max(q)),
                "Min" => reduce_array(&a, &axes, i64::MAX, |p, q| *p.min(q)),
                _ => return fail(format!("{op} is not defined for integers")),
            };
            cast(&Tensor::from_data(Data::I64(out)), x.dtype())?
        }
    };
    if keep {
        let dims = kept_dims(x.shape(), &axes);
        let data = crate::map_data!(reduced.data(), a => super::shape_ops::reshaped(a, &dims)?);
        return Tensor::new(reduced.dtype(), data).map_err(Into::into);
    }
    Ok(reduced)
}

/// ArgMax / ArgMin along one axis; ties pick the first index.
pub fn arg_reduce(
    ctx: &KernelContext<'_>,
    x: &Tensor,
    axis: &Tensor,
) -> Result<Tensor, KernelError> {
    let max = ctx.node.op == "ArgMax";
    let axis = normalize_axis(scalar_int(axis)?, x.shape().len())?;
    if x.shape()[axis] == 0 {
        return fail("cannot take an arg-reduction over an empty dimension");
    }
    let mut out_dims = x.shape().to_vec();
    out_dims.remove(axis);
    alloc::output::<i64>(&out_dims)?;
    let Data::F64(a) = cast(x, DataType::DtDouble)?.into_data() else {
        return fail("ArgMax/ArgMin need a numeric input");
    };
    let out = a.map_axis(Axis(axis), |lane| {
        let mut best = 0usize;
        for (i, &v) in lane.iter().enumerate() {
            let current = lane[best];
            if (max && v > current) || (!max && v < current) {
                best = i;
            }
        }
        best as i64
    });
    let dtype = attrs::dtype(ctx.node, "output_type").unwrap_or(DataType::DtInt64);
    cast(&Tensor::from_data(Data::I64(out)), dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The float32 shortcut adds what the general float64 reduction adds, in its order.
    #[test]
    fn sums_in_place_have_the_general_reductions_bits() {
        let dims = [2usize, 5, 7, 3];
        let values: Vec<f32> = (0..210).map(|i| ((i as f32) * 0.731).sin() * 1e3).collect();
        let a = ArrayD::from_shape_vec(ndarray::IxDyn(&dims), values).expect("shape");
        let wide = a.mapv(f64::from);
        for axes in [&[0usize][..], &[1], &[3], &[1, 2], &[2, 3], &[0, 1]] {
            let fast = sum_in_place(&a, axes).expect("one axis or two adjacent ones");
            let general = reduce_array(&wide, axes, 0.0, |p, q| p + q);
            assert_eq!(fast.shape(), general.shape(), "axes {axes:?}");
            let same = fast
                .iter()
                .zip(&general)
                .all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "axes {axes:?}");
        }
        assert!(
            sum_in_place(&a, &[0, 2]).is_none(),
            "axes that are not adjacent"
        );
    }
}
