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
    let extreme = matches!(op, "Max" | "Min");
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
        // Max and Min compare in the input's own type: through int64, uint64 values above
        // 2^63 wrap, and an empty reduction's identity (int64's extremes) would be truncated.
        (None, Data::I8(a)) if extreme => int_extreme(x, a, &axes, op, Data::I8)?,
        (None, Data::I16(a)) if extreme => int_extreme(x, a, &axes, op, Data::I16)?,
        (None, Data::I32(a)) if extreme => int_extreme(x, a, &axes, op, Data::I32)?,
        (None, Data::I64(a)) if extreme => int_extreme(x, a, &axes, op, Data::I64)?,
        (None, Data::U8(a)) if extreme => int_extreme(x, a, &axes, op, Data::U8)?,
        (None, Data::U16(a)) if extreme => int_extreme(x, a, &axes, op, Data::U16)?,
        (None, Data::U32(a)) if extreme => int_extreme(x, a, &axes, op, Data::U32)?,
        (None, Data::U64(a)) if extreme => int_extreme(x, a, &axes, op, Data::U64)?,
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

/// Max or Min of an integer array in its own type; an empty reduction gives the type's
/// lowest (Max) or highest (Min) value, as in TensorFlow.
fn int_extreme<T: Ord + Copy + num_traits::Bounded>(
    x: &Tensor,
    a: &ArrayD<T>,
    axes: &[usize],
    op: &str,
    wrap: fn(ArrayD<T>) -> Data,
) -> Result<Tensor, KernelError> {
    let out = if op == "Max" {
        reduce_array(a, axes, T::min_value(), |p, q| *p.max(q))
    } else {
        reduce_array(a, axes, T::max_value(), |p, q| *p.min(q))
    };
    Tensor::new(x.dtype(), wrap(out)).map_err(Into::into)
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
    let out = match x.data() {
        Data::F32(_) | Data::F64(_) | Data::F16(_) | Data::BF16(_) => {
            // float64 holds every value of these exactly. As TensorFlow's (Eigen's) reducer,
            // the running best starts at -inf (ArgMax) or +inf (ArgMin), so NaN is never
            // picked after index 0 and an all-NaN lane gives 0.
            let Data::F64(a) = cast(x, DataType::DtDouble)?.into_data() else {
                return fail("ArgMax/ArgMin need a numeric input");
            };
            let start = if max {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
            arg_best(&a, axis, max, Some(start))
        }
        // Integers (and bool) compared exactly, in their own type: through float64, int64
        // values above 2^53 would tie.
        Data::Bool(a) => arg_best(a, axis, max, None),
        Data::I8(a) => arg_best(a, axis, max, None),
        Data::I16(a) => arg_best(a, axis, max, None),
        Data::I32(a) => arg_best(a, axis, max, None),
        Data::I64(a) => arg_best(a, axis, max, None),
        Data::U8(a) => arg_best(a, axis, max, None),
        Data::U16(a) => arg_best(a, axis, max, None),
        Data::U32(a) => arg_best(a, axis, max, None),
        Data::U64(a) => arg_best(a, axis, max, None),
        _ => return fail("ArgMax/ArgMin need a numeric input"),
    };
    let dtype = attrs::dtype(ctx.node, "output_type").unwrap_or(DataType::DtInt64);
    cast(&Tensor::from_data(Data::I64(out)), dtype)
}

/// The index of each lane's best value along `axis`: the running best starts at index 0 with
/// the value `start` (the lane's first value if `None`) and moves only to a strictly greater
/// (`max`) or smaller value, so ties pick the first index.
fn arg_best<T: PartialOrd + Copy>(
    a: &ArrayD<T>,
    axis: usize,
    max: bool,
    start: Option<T>,
) -> ArrayD<i64> {
    a.map_axis(Axis(axis), |lane| {
        let Some(&first) = lane.first() else {
            return 0;
        };
        let (mut best, mut value) = (0usize, start.unwrap_or(first));
        for (i, &v) in lane.iter().enumerate() {
            if (max && v > value) || (!max && v < value) {
                (best, value) = (i, v);
            }
        }
        best as i64
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Gemm, Limits};
    use crate::proto::NodeDef;

    fn run(op: &str, x: Data, axis: i32) -> Tensor {
        let node = NodeDef {
            op: op.into(),
            ..Default::default()
        };
        let ctx = KernelContext {
            node: &node,
            limits: Limits::default(),
            gemm: Gemm::Portable,
        };
        let x = Tensor::from_data(x);
        let axis = Tensor::from_data(Data::I32(ndarray::arr0(axis).into_dyn()));
        let out = if op.starts_with("Arg") {
            arg_reduce(&ctx, &x, &axis)
        } else {
            reduce(&ctx, &x, &axis)
        };
        out.expect("reduction")
    }

    fn empty<T>() -> ArrayD<T> {
        ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 0]), Vec::new()).expect("shape")
    }

    /// TensorFlow 2.21: Max/Min over nothing give the type's lowest/highest value
    /// (int32 Max was 0, Min -1: int64's extremes truncated).
    #[test]
    fn empty_integer_max_and_min_are_the_types_extremes() {
        let max = run("Max", Data::I32(empty()), 1);
        assert_eq!(max.integers(), Some(vec![i64::from(i32::MIN); 2]));
        let min = run("Min", Data::I32(empty()), 1);
        assert_eq!(min.integers(), Some(vec![i64::from(i32::MAX); 2]));
        let min = run("Min", Data::I8(empty()), 1);
        assert_eq!(min.integers(), Some(vec![127; 2]));
        let Data::U64(min) = run("Min", Data::U64(empty()), 1).into_data() else {
            panic!("not uint64")
        };
        assert_eq!(min.iter().copied().collect::<Vec<_>>(), [u64::MAX; 2]);
    }

    /// uint64 values above 2^63 (Max of [2^63, 1] was 1).
    #[test]
    fn uint64_max_and_min_compare_unsigned() {
        let x = || Data::U64(ndarray::arr1(&[1u64 << 63, 1, u64::MAX - 1]).into_dyn());
        let value = |t: Tensor| match t.into_data() {
            Data::U64(a) => a.iter().copied().collect::<Vec<_>>(),
            _ => panic!("not uint64"),
        };
        assert_eq!(value(run("Max", x(), 0)), [u64::MAX - 1]);
        assert_eq!(value(run("Min", x(), 0)), [1]);
    }

    /// TensorFlow 2.21's ArgMax/ArgMin around NaN, and int64 beyond 2^53.
    #[test]
    fn arg_reductions_match_tensorflow_on_nan_and_large_integers() {
        let nan = f32::NAN;
        let inf = f32::INFINITY;
        let cases: &[(&str, &[f32], i64)] = &[
            ("ArgMax", &[nan, 1.0, 3.0], 2),
            ("ArgMin", &[nan, 1.0, 3.0], 1),
            ("ArgMax", &[nan, -inf], 0),
            ("ArgMin", &[nan, -inf], 1),
            ("ArgMax", &[nan, inf], 1),
            ("ArgMin", &[nan, inf], 0),
            ("ArgMax", &[1.0, nan, 1.0], 0),
            ("ArgMax", &[nan, nan, 1.0], 2),
            ("ArgMax", &[nan, nan], 0),
        ];
        for &(op, values, expected) in cases {
            let x = Data::F32(ndarray::arr1(values).into_dyn());
            assert_eq!(
                run(op, x, 0).integers(),
                Some(vec![expected]),
                "{op} {values:?}"
            );
        }
        let big = Data::I64(ndarray::arr1(&[1i64 << 53, (1 << 53) + 1]).into_dyn());
        assert_eq!(run("ArgMax", big, 0).integers(), Some(vec![1]));
        let big = Data::U64(ndarray::arr1(&[u64::MAX - 1, u64::MAX]).into_dyn());
        assert_eq!(run("ArgMax", big, 0).integers(), Some(vec![1]));
    }

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
