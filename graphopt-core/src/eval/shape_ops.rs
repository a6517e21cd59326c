//! Shape-manipulating kernels that move elements without computing on them.
//!
//! Every output size is computed with checked arithmetic and asked for first (see
//! [`super::alloc`]); a tensor without elements may have huge dimensions, so nothing is sized
//! or looped over by a dimension alone.

use ndarray::{ArrayD, Axis, IxDyn, Slice};

use super::alloc;
use super::cast::{cast, to_i64_vec};
use super::{fail, KernelContext, KernelError, KernelResult};
use crate::analysis::geometry;
use crate::graph::attrs;
use crate::map_data;
use crate::proto::DataType;
use crate::tensor::{checked_elements, Data, Tensor};

/// `axis` counted from the end when negative, checked against `rank`.
pub fn normalize_axis(axis: i64, rank: usize) -> Result<usize, KernelError> {
    Ok(geometry::axis(axis, rank)?)
}

/// A scalar integer input (e.g. an axis).
pub fn scalar_int(t: &Tensor) -> Result<i64, KernelError> {
    match to_i64_vec(t)?.as_slice() {
        [v] => Ok(*v),
        other => fail(format!("expected a scalar, got {} values", other.len())),
    }
}

fn int_tensor(values: Vec<i64>, dims: &[usize], dtype: DataType) -> Result<Tensor, KernelError> {
    let t = Tensor::from_data(Data::I64(ArrayD::from_shape_vec(IxDyn(dims), values)?));
    cast(&t, dtype)
}

fn out_type(ctx: &KernelContext<'_>) -> DataType {
    attrs::dtype(ctx.node, "out_type").unwrap_or(DataType::DtInt32)
}

/// Dims as int64 values (Shape's output), checked.
pub fn dims_i64(dims: &[usize]) -> Result<Vec<i64>, KernelError> {
    dims.iter()
        .map(|&d| geometry::dim_i64(d).map_err(Into::into))
        .collect()
}

pub fn shape(ctx: &KernelContext<'_>, inputs: &[&Tensor]) -> KernelResult {
    inputs
        .iter()
        .map(|x| {
            let dims = dims_i64(x.shape())?;
            let n = dims.len();
            int_tensor(dims, &[n], out_type(ctx))
        })
        .collect()
}

pub fn size(ctx: &KernelContext<'_>, x: &Tensor) -> KernelResult {
    let n = geometry::dim_i64(x.len())?;
    let out = int_tensor(vec![n], &[], out_type(ctx))?;
    // Values that do not fit the output type (Size of 2^31 elements as int32) are an error,
    // not a wrap.
    if out.integers().as_deref() != Some(&[n][..]) {
        return fail(format!("{n} elements do not fit in {:?}", out.dtype()));
    }
    Ok(vec![out])
}

pub fn rank(x: &Tensor) -> KernelResult {
    let rank = geometry::dim_i64(x.shape().len())?;
    Ok(vec![int_tensor(vec![rank], &[], DataType::DtInt32)?])
}

/// `a` with new dimensions (copied into row-major order first if it is not).
pub fn reshaped<T: Clone>(a: &ArrayD<T>, dims: &[usize]) -> Result<ArrayD<T>, KernelError> {
    if alloc::count(dims)? != a.len() {
        return fail(format!(
            "cannot reshape {:?} ({} elements) to {dims:?}",
            a.shape(),
            a.len()
        ));
    }
    if !a.is_standard_layout() {
        alloc::output::<T>(a.shape())?;
    }
    Ok(a.as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(dims))?)
}

/// `x` with new dimensions.
pub fn reshape_to(x: &Tensor, dims: &[usize]) -> Result<Tensor, KernelError> {
    reshape_data(x, dims)
}

fn reshape_data(x: &Tensor, dims: &[usize]) -> Result<Tensor, KernelError> {
    let data = map_data!(x.data(), a => reshaped(a, dims)?);
    Tensor::new(x.dtype(), data).map_err(Into::into)
}

/// Reshape with at most one -1 inferred.
pub fn reshape(x: &Tensor, shape: &Tensor) -> Result<Tensor, KernelError> {
    let requested = to_i64_vec(shape)?;
    let mut dims = Vec::with_capacity(requested.len());
    let mut unknown = None;
    for (i, &d) in requested.iter().enumerate() {
        match d {
            -1 if unknown.is_none() => {
                unknown = Some(i);
                dims.push(1);
            }
            d => dims.push(geometry::dim(d, "a target dimension")?),
        }
    }
    if let Some(i) = unknown {
        let known = alloc::count(&dims)?;
        if known == 0 || x.len() % known != 0 {
            return fail(format!("cannot reshape {:?} to {requested:?}", x.shape()));
        }
        dims[i] = x.len() / known;
    }
    if alloc::count(&dims)? != x.len() {
        return fail(format!(
            "cannot reshape {:?} ({} elements) to {requested:?}",
            x.shape(),
            x.len()
        ));
    }
    reshape_data(x, &dims)
}

pub fn expand_dims(x: &Tensor, dim: &Tensor) -> Result<Tensor, KernelError> {
    let axis = normalize_axis(scalar_int(dim)?, x.shape().len() + 1)?;
    let mut dims = x.shape().to_vec();
    dims.insert(axis, 1);
    reshape_data(x, &dims)
}

pub fn squeeze(ctx: &KernelContext<'_>, x: &Tensor) -> Result<Tensor, KernelError> {
    let rank = x.shape().len();
    let axes = attrs::ints(ctx.node, "squeeze_dims")
        .or_else(|| attrs::ints(ctx.node, "axis"))
        .unwrap_or_default()
        .into_iter()
        .map(|a| normalize_axis(a, rank))
        .collect::<Result<Vec<_>, _>>()?;
    let mut dims = Vec::new();
    for (i, &d) in x.shape().iter().enumerate() {
        if axes.is_empty() && d == 1 {
            continue;
        }
        if axes.contains(&i) {
            if d != 1 {
                return fail(format!("cannot squeeze dimension {i} of size {d}"));
            }
            continue;
        }
        dims.push(d);
    }
    reshape_data(x, &dims)
}

pub fn transpose(x: &Tensor, perm: &Tensor) -> Result<Tensor, KernelError> {
    let rank = x.shape().len();
    let perm = to_i64_vec(perm)?
        .into_iter()
        .map(|p| normalize_axis(p, rank))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = vec![false; rank];
    if perm.len() != rank || perm.iter().any(|&p| std::mem::replace(&mut seen[p], true)) {
        return fail(format!(
            "{perm:?} is not a permutation of {rank} dimensions"
        ));
    }
    permute(x, &perm)
}

/// Reorders axes (contiguous copy).
pub fn permute(x: &Tensor, perm: &[usize]) -> Result<Tensor, KernelError> {
    let data = map_data!(x.data(), a => {
        let view = a.view().permuted_axes(IxDyn(perm));
        alloc::output_like(&view, view.shape())?;
        ArrayD::from_shape_vec(view.raw_dim(), view.iter().cloned().collect())?
    });
    Tensor::new(x.dtype(), data).map_err(Into::into)
}

fn dims_from(
    ctx: &KernelContext<'_>,
    t: &Tensor,
    element_size: usize,
) -> Result<Vec<usize>, KernelError> {
    let dims = to_i64_vec(t)?
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| KernelError(format!("negative dimension {d}"))))
        .collect::<Result<Vec<_>, _>>()?;
    checked_elements(&dims, element_size, ctx.limits)?;
    super::broadcast::check_output(&dims, element_size)?;
    Ok(dims)
}

pub fn fill(ctx: &KernelContext<'_>, dims: &Tensor, value: &Tensor) -> Result<Tensor, KernelError> {
    if !value.shape().is_empty() {
        return fail("the fill value must be a scalar");
    }
    let dims = dims_from(ctx, dims, crate::tensor::memory_element_size(value.dtype()))?;
    let data = map_data!(value.data(), a => ArrayD::from_elem(IxDyn(&dims), first_element(a)?));
    Tensor::new(value.dtype(), data).map_err(Into::into)
}

pub fn broadcast_to(
    ctx: &KernelContext<'_>,
    x: &Tensor,
    shape: &Tensor,
) -> Result<Tensor, KernelError> {
    let dims = dims_from(ctx, shape, crate::tensor::memory_element_size(x.dtype()))?;
    let data = map_data!(x.data(), a => a
        .broadcast(IxDyn(&dims))
        .ok_or_else(|| KernelError(format!("cannot broadcast {:?} to {dims:?}", a.shape())))?
        .to_owned());
    Tensor::new(x.dtype(), data).map_err(Into::into)
}

/// A scalar zero (empty string for strings) of `dtype`.
pub fn zero_scalar(dtype: DataType) -> Result<Tensor, KernelError> {
    if dtype == DataType::DtString {
        return Ok(Tensor::from_data(Data::Str(
            ndarray::arr0(bytes::Bytes::new()).into_dyn(),
        )));
    }
    cast(
        &Tensor::from_data(Data::F64(ndarray::arr0(0.0).into_dyn())),
        dtype,
    )
}

/// Zeros (or ones) shaped like `x`.
pub fn constant_like(x: &Tensor, one: bool) -> Result<Tensor, KernelError> {
    let value = Tensor::from_data(Data::F64(
        ndarray::arr0(if one { 1.0 } else { 0.0 }).into_dyn(),
    ));
    let value = cast(&value, x.dtype())?;
    let data = map_data!(value.data(), a => {
        alloc::output_like(a, x.shape())?;
        ArrayD::from_elem(IxDyn(x.shape()), first_element(a)?)
    });
    Tensor::new(x.dtype(), data).map_err(Into::into)
}

pub fn range(
    ctx: &KernelContext<'_>,
    start: &Tensor,
    limit: &Tensor,
    delta: &Tensor,
) -> Result<Tensor, KernelError> {
    let dtype = attrs::dtype(ctx.node, "Tidx").unwrap_or(start.dtype());
    use DataType as D;
    let integer = [
        D::DtInt8,
        D::DtInt16,
        D::DtInt32,
        D::DtInt64,
        D::DtUint8,
        D::DtUint16,
        D::DtUint32,
    ];
    if integer.contains(&start.dtype()) {
        return int_range(ctx, start, limit, delta, dtype);
    }
    let get = |t: &Tensor| -> Result<f64, KernelError> {
        match super::cast::to_f64_vec(t)?.as_slice() {
            [v] => Ok(*v),
            _ => fail("range arguments must be scalars"),
        }
    };
    let (s, l, d) = (get(start)?, get(limit)?, get(delta)?);
    if !(s.is_finite() && l.is_finite() && d.is_finite()) {
        return fail(format!("invalid range start={s} limit={l} delta={d}"));
    }
    if d == 0.0 || (d > 0.0 && s > l) || (d < 0.0 && s < l) {
        return fail(format!("invalid range start={s} limit={l} delta={d}"));
    }
    let count = ((l - s) / d).abs().ceil() as u128;
    let count = usize::try_from(count)
        .map_err(|_| KernelError(format!("a range of {count} elements is too large")))?;
    checked_elements(&[count], 8, ctx.limits)?;
    alloc::output::<f64>(&[count])?;
    let values: Vec<f64> = (0..count).map(|i| s + i as f64 * d).collect();
    let t = Tensor::from_data(Data::F64(ArrayD::from_shape_vec(IxDyn(&[count]), values)?));
    cast(&t, dtype)
}

/// An integer Range, counted and stepped in exact integers (through float64, int64 values
/// above 2^53 would round: Range(2^62, 2^62 + 5, 2) was empty).
fn int_range(
    ctx: &KernelContext<'_>,
    start: &Tensor,
    limit: &Tensor,
    delta: &Tensor,
    dtype: DataType,
) -> Result<Tensor, KernelError> {
    let get = |t: &Tensor| -> Result<i128, KernelError> {
        match to_i64_vec(t)?.as_slice() {
            [v] => Ok(i128::from(*v)),
            _ => fail("range arguments must be scalars"),
        }
    };
    let (s, l, d) = (get(start)?, get(limit)?, get(delta)?);
    if d == 0 || (d > 0 && s > l) || (d < 0 && s < l) {
        return fail(format!("invalid range start={s} limit={l} delta={d}"));
    }
    // Integer ceil division, as TensorFlow counts; i128 keeps the span of any two int64
    // values exact.
    let count = ((l - s).abs() + d.abs() - 1).unsigned_abs() / d.unsigned_abs();
    let count = usize::try_from(count)
        .map_err(|_| KernelError(format!("a range of {count} elements is too large")))?;
    checked_elements(&[count], 8, ctx.limits)?;
    alloc::output::<i64>(&[count])?;
    // Every value lies between start and limit, so it fits in int64.
    let values = (0..count)
        .map(|i| {
            i64::try_from(s + i as i128 * d)
                .map_err(|_| KernelError("a range value does not fit in int64".into()))
        })
        .collect::<Result<Vec<i64>, _>>()?;
    int_tensor(values, &[count], dtype)
}

pub fn pack(ctx: &KernelContext<'_>, inputs: &[&Tensor]) -> Result<Tensor, KernelError> {
    let first = inputs
        .first()
        .ok_or_else(|| KernelError("Pack needs inputs".into()))?;
    // The axis is checked against the first input's rank: a shorter one would be indexed
    // past its end.
    if let Some(other) = inputs.iter().find(|t| t.shape() != first.shape()) {
        return fail(format!(
            "Pack needs inputs of one shape, got {:?} and {:?}",
            first.shape(),
            other.shape()
        ));
    }
    let axis = normalize_axis(
        attrs::int(ctx.node, "axis").unwrap_or(0),
        first.shape().len() + 1,
    )?;
    let expanded = inputs
        .iter()
        .map(|t| {
            let mut dims = t.shape().to_vec();
            dims.insert(axis, 1);
            reshape_data(t, &dims)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&Tensor> = expanded.iter().collect();
    concat(&refs, axis)
}

pub fn unpack(ctx: &KernelContext<'_>, x: &Tensor) -> KernelResult {
    let rank = x.shape().len();
    let axis = normalize_axis(attrs::int(ctx.node, "axis").unwrap_or(0), rank)?;
    let count = x.shape()[axis];
    // The node's outputs are `num`: a dimension of another size is an error, as in TensorFlow
    // (the outputs would not be the ones the graph reads).
    if let Some(num) = attrs::int(ctx.node, "num") {
        if usize::try_from(num).ok() != Some(count) {
            return fail(format!(
                "input shape axis {axis} must equal num ({num}), got shape {:?}",
                x.shape()
            ));
        }
    }
    // One output per entry of a dimension that may be huge when the tensor has no elements.
    alloc::items::<Tensor>(count, "Unpack's outputs")?;
    alloc::work(crate::budget::VALUE_OVERHEAD as u128 * count as u128)?;
    (0..count)
        .map(|i| {
            let data = map_data!(x.data(), a => a.index_axis(Axis(axis), i).to_owned());
            Tensor::new(x.dtype(), data).map_err(Into::into)
        })
        .collect()
}

/// Concatenates tensors of one dtype along `axis`.
pub fn concat(inputs: &[&Tensor], axis: usize) -> Result<Tensor, KernelError> {
    let first = inputs
        .first()
        .ok_or_else(|| KernelError("nothing to concatenate".into()))?;
    let mut out_dims = first.shape().to_vec();
    let Some(along) = out_dims.get_mut(axis) else {
        return fail(format!(
            "axis {axis} is out of range for {:?}",
            first.shape()
        ));
    };
    *along = 0;
    for t in inputs {
        if t.shape().len() != first.shape().len() {
            return fail("inputs to concatenate must have the same rank");
        }
        out_dims[axis] = geometry::add(out_dims[axis], t.shape()[axis], "the concatenation")?;
    }
    super::broadcast::check_output(&out_dims, crate::tensor::memory_element_size(first.dtype()))?;
    macro_rules! join {
        ($($v:ident),*) => {
            match first.data() {
                $(Data::$v(_) => {
                    let mut parts = Vec::with_capacity(inputs.len());
                    for t in inputs {
                        match t.data() {
                            Data::$v(a) => parts.push(a),
                            _ => return fail("inputs to concatenate must share a dtype"),
                        }
                    }
                    Data::$v(join_row_major(&parts, axis, &out_dims)?)
                })*
            }
        };
    }
    let data =
        join!(F32, F64, F16, BF16, I8, I16, I32, I64, U8, U16, U32, U64, Bool, Str, C64, C128);
    Tensor::new(first.dtype(), data).map_err(Into::into)
}

/// The concatenation in row-major order. (`ndarray::concatenate` lays its result out with
/// `axis` outermost in memory, so every later reader of a channel concatenation had to copy
/// it element by element.) The parts' shapes must agree off `axis`; `out_dims` is checked.
fn join_row_major<T: Clone + 'static>(
    parts: &[&ArrayD<T>],
    axis: usize,
    out_dims: &[usize],
) -> Result<ArrayD<T>, KernelError> {
    let mut total = 0usize;
    for part in parts {
        let shape = part.shape();
        let agrees = shape.len() == out_dims.len()
            && shape
                .iter()
                .zip(out_dims)
                .enumerate()
                .all(|(d, (a, b))| d == axis || a == b);
        if !agrees {
            return fail(format!(
                "cannot concatenate {shape:?} into {out_dims:?} along axis {axis}"
            ));
        }
        total = geometry::add(total, part.len(), "the concatenation")?;
    }
    let mut out = super::recycle::take(total);
    if total == 0 {
        return Ok(ArrayD::from_shape_vec(IxDyn(out_dims), out)?);
    }
    // No dim is 0 here, so this product divides the output's element count: no overflow.
    let outer: usize = out_dims[..axis].iter().product();
    // Each part is `outer` runs of `part.len() / outer` elements, interleaved part by part.
    let rows: Vec<_> = parts.iter().map(|p| p.as_standard_layout()).collect();
    for o in 0..outer {
        for row in &rows {
            let Some(all) = row.as_slice() else {
                return fail("a concatenated part is not contiguous");
            };
            let run = all.len() / outer;
            out.extend_from_slice(&all[o * run..(o + 1) * run]);
        }
    }
    Ok(ArrayD::from_shape_vec(IxDyn(out_dims), out)?)
}

/// ConcatV2 (axis last) and Concat (axis first).
pub fn concat_op(v2: bool, inputs: &[&Tensor]) -> Result<Tensor, KernelError> {
    let (axis, values) = if v2 {
        let (axis, values) = inputs
            .split_last()
            .ok_or_else(|| KernelError("no inputs".into()))?;
        (*axis, values)
    } else {
        let (axis, values) = inputs
            .split_first()
            .ok_or_else(|| KernelError("no inputs".into()))?;
        (*axis, values)
    };
    let rank = values.first().map_or(0, |t| t.shape().len());
    let axis = normalize_axis(scalar_int(axis)?, rank)?;
    concat(values, axis)
}

fn split_sizes(x: &Tensor, axis: usize, sizes: &[usize]) -> KernelResult {
    alloc::items::<Tensor>(sizes.len(), "the split's outputs")?;
    alloc::work(crate::budget::VALUE_OVERHEAD as u128 * sizes.len() as u128)?;
    let mut start = 0usize;
    let mut outputs = Vec::with_capacity(sizes.len());
    for &size in sizes {
        let end = geometry::add(start, size, "the split")?;
        if end > x.shape()[axis] {
            return fail("split sizes exceed the dimension");
        }
        let data =
            map_data!(x.data(), a => a.slice_axis(Axis(axis), Slice::from(start..end)).to_owned());
        outputs.push(Tensor::new(x.dtype(), data)?);
        start = end;
    }
    Ok(outputs)
}

pub fn split(ctx: &KernelContext<'_>, axis: &Tensor, x: &Tensor) -> KernelResult {
    let axis = normalize_axis(scalar_int(axis)?, x.shape().len())?;
    let n = usize::try_from(attrs::int(ctx.node, "num_split").unwrap_or(1))
        .unwrap_or(1)
        .max(1);
    let dim = x.shape()[axis];
    if dim % n != 0 {
        return fail(format!(
            "dimension {dim} does not split into {n} equal parts"
        ));
    }
    // num_split sizes the output list: ask before building it.
    alloc::items::<usize>(n, "num_split")?;
    split_sizes(x, axis, &vec![dim / n; n])
}

pub fn split_v(x: &Tensor, sizes: &Tensor, axis: &Tensor) -> KernelResult {
    let axis = normalize_axis(scalar_int(axis)?, x.shape().len())?;
    let dim = x.shape()[axis];
    let sizes = to_i64_vec(sizes)?;
    let unknown: Vec<usize> = (0..sizes.len()).filter(|&i| sizes[i] < 0).collect();
    if unknown.len() > 1 || unknown.iter().any(|&i| sizes[i] != -1) {
        return fail(format!("split sizes {sizes:?}: at most one may be -1"));
    }
    let mut known = 0usize;
    let mut resolved = Vec::with_capacity(sizes.len());
    for &s in &sizes {
        let s = usize::try_from(s).unwrap_or(0);
        known = geometry::add(known, s, "the sum of the split sizes")?;
        resolved.push(s);
    }
    if let Some(&k) = unknown.first() {
        resolved[k] = dim.checked_sub(known).ok_or_else(|| {
            KernelError(format!("split sizes {sizes:?} exceed the dimension {dim}"))
        })?;
    } else if known != dim {
        return fail(format!("split sizes {sizes:?} do not add up to {dim}"));
    }
    split_sizes(x, axis, &resolved)
}

pub fn tile(
    ctx: &KernelContext<'_>,
    x: &Tensor,
    multiples: &Tensor,
) -> Result<Tensor, KernelError> {
    let multiples = to_i64_vec(multiples)?;
    if multiples.len() != x.shape().len() || multiples.iter().any(|&m| m < 0) {
        return fail(format!(
            "multiples {multiples:?} do not fit shape {:?}",
            x.shape()
        ));
    }
    let multiples: Vec<usize> = multiples
        .iter()
        .map(|&m| geometry::dim(m, "multiples"))
        .collect::<Result<_, _>>()?;
    let out_dims: Vec<usize> = x
        .shape()
        .iter()
        .zip(&multiples)
        .map(|(&d, &m)| geometry::mul(d, m, "Tile's output"))
        .collect::<Result<_, _>>()?;
    let element = crate::tensor::memory_element_size(x.dtype());
    checked_elements(&out_dims, element, ctx.limits)?;
    super::broadcast::check_output(&out_dims, element)?;
    if alloc::count(&out_dims)? == 0 {
        // Nothing to copy (and no list of copies sized by a multiple).
        let data = map_data!(x.data(), _a => ArrayD::from_shape_vec(IxDyn(&out_dims), Vec::new())?);
        return Tensor::new(x.dtype(), data).map_err(Into::into);
    }
    let mut current = x.clone();
    for (axis, &m) in multiples.iter().enumerate() {
        if m != 1 {
            let copies: Vec<&Tensor> = std::iter::repeat_n(&current, m).collect();
            current = concat(&copies, axis)?;
        }
    }
    Ok(current)
}

pub fn one_hot(
    ctx: &KernelContext<'_>,
    indices: &Tensor,
    depth: &Tensor,
    on: &Tensor,
    off: &Tensor,
) -> Result<Tensor, KernelError> {
    if on.dtype() != off.dtype() {
        return fail("on_value and off_value must share a dtype");
    }
    let depth = usize::try_from(scalar_int(depth)?)
        .map_err(|_| KernelError("depth must be non-negative".into()))?;
    let index_values = to_i64_vec(indices)?;
    let rank = indices.shape().len();
    let axis = match attrs::int(ctx.node, "axis").unwrap_or(-1) {
        -1 => rank,
        a => normalize_axis(a, rank + 1)?,
    };
    let mut dims = indices.shape().to_vec();
    dims.insert(axis, depth);
    let element = crate::tensor::memory_element_size(on.dtype());
    checked_elements(&dims, element, ctx.limits)?;
    let total = super::broadcast::check_output(&dims, element)?;
    let data = map_data!(on.data(), a => {
        let on_value = first_element(a)?;
        let off_value = same_typed_scalar(a, off)?;
        let mut out = Vec::with_capacity(total);
        if total > 0 {
            // With elements, every factor is bounded by the output's size.
            let outer = alloc::count(&indices.shape()[..axis])?;
            let inner = alloc::count(&indices.shape()[axis..])?;
            for o in 0..outer {
                for d in 0..depth {
                    for i in 0..inner {
                        let hit = index_values.get(o * inner + i) == Some(&(d as i64));
                        out.push(if hit { on_value.clone() } else { off_value.clone() });
                    }
                }
            }
        }
        ArrayD::from_shape_vec(IxDyn(&dims), out)?
    });
    Tensor::new(on.dtype(), data).map_err(Into::into)
}

/// The first element of an array, or an error for an empty one.
pub fn first_element<T: Clone>(a: &ArrayD<T>) -> Result<T, KernelError> {
    a.iter()
        .next()
        .cloned()
        .ok_or_else(|| KernelError("expected a non-empty tensor".into()))
}

/// The first element of `t`, whose storage must be `ArrayD<T>` like `_like`.
pub fn same_typed_scalar<T: Clone + 'static>(
    _like: &ArrayD<T>,
    t: &Tensor,
) -> Result<T, KernelError> {
    crate::for_each_data!(t.data(), b => {
        let any: &dyn std::any::Any = b;
        match any.downcast_ref::<ArrayD<T>>() {
            Some(a) => first_element(a),
            None => fail("operands must share a dtype"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::{Gemm, Limits};
    use crate::proto::NodeDef;

    fn int64_range(start: i64, limit: i64, delta: i64) -> Result<Tensor, KernelError> {
        let node = NodeDef {
            op: "Range".into(),
            ..Default::default()
        };
        let ctx = KernelContext {
            node: &node,
            limits: Limits::default(),
            gemm: Gemm::Portable,
        };
        let scalar = |v: i64| Tensor::from_data(Data::I64(ndarray::arr0(v).into_dyn()));
        range(&ctx, &scalar(start), &scalar(limit), &scalar(delta))
    }

    /// TensorFlow: Range(2^62, 2^62 + 5, 2) = [2^62, 2^62 + 2, 2^62 + 4] (was empty: the
    /// bounds went through float64).
    #[test]
    fn int64_ranges_beyond_2_53_are_exact() {
        let big = 1i64 << 62;
        let out = int64_range(big, big + 5, 2).expect("range");
        assert_eq!(out.integers(), Some(vec![big, big + 2, big + 4]));
        let out = int64_range(big + 3, big - 4, -3).expect("range");
        assert_eq!(out.integers(), Some(vec![big + 3, big, big - 3]));
        // start > limit with a positive delta, which float64 could not tell apart.
        assert!(int64_range(big + 1, big, 1).is_err());
        let out = int64_range(3, 18, 4).expect("range");
        assert_eq!(out.integers(), Some(vec![3, 7, 11, 15]));
    }
}
