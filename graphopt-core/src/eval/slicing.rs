//! Kernels that pick elements by position: Slice, StridedSlice (every mask), Pad, PadV2,
//! MirrorPad, GatherV2, GatherNd, SpaceToBatchND, BatchToSpaceND, DynamicPartition,
//! DynamicStitch.
//!
//! Index lists are built only for tensors that have elements (then every dimension is bounded
//! by the tensor's size); an empty input or output short-cuts to an empty result, whatever its
//! dimensions. Index arithmetic is checked.

use ndarray::{ArrayD, IxDyn};

use super::alloc;
use super::cast::to_i64_vec;
use super::shape_ops::{normalize_axis, reshaped, same_typed_scalar, scalar_int};
use super::{fail, KernelContext, KernelError};
use crate::analysis::geometry::{self, strided_slice_plan, SliceMasks};
use crate::graph::attrs;
use crate::map_data;
use crate::tensor::{checked_elements, memory_element_size, Tensor};

/// Selects `indices[axis]` along every axis, then reshapes to `out_dims`. The caller has
/// checked that the input has elements (so the index lists are bounded).
fn gather_axes(
    x: &Tensor,
    indices: &[Vec<usize>],
    out_dims: &[usize],
) -> Result<Tensor, KernelError> {
    if x.is_empty() || alloc::count(out_dims)? == 0 {
        return empty_like(x, out_dims);
    }
    let data = map_data!(x.data(), a => {
        // Each axis that keeps less than all of itself is taken from the previous result
        // (the input at first), which is never copied as a whole.
        let mut current: Option<ArrayD<_>> = None;
        for (axis, idx) in indices.iter().enumerate() {
            let source = current.as_ref().unwrap_or(a);
            let full = idx.len() == source.shape()[axis] && idx.iter().enumerate().all(|(i, &v)| i == v);
            if !full {
                let mut dims = source.shape().to_vec();
                dims[axis] = idx.len();
                current = Some(take(source, axis..axis + 1, idx, &dims)?);
            }
        }
        match current {
            Some(taken) => taken.into_shape_with_order(IxDyn(out_dims))?,
            None => {
                alloc::output_like(a, out_dims)?;
                reshaped(a, out_dims)?
            }
        }
    });
    Tensor::new(x.dtype(), data).map_err(Into::into)
}

/// `a` with its axes `axes`, flattened into one in row-major order, replaced by the positions
/// `indices` along them, as an array of `out_dims` (which must hold as many elements): what
/// `select` gives, but each picked row (the elements after `axes`) is copied straight into one
/// output allocated once, asked of the budget first. (ndarray's `select` makes a view of the
/// whole array per index first: ~100 bytes each, for a 4-byte index.)
fn take<T: Clone + 'static>(
    a: &ArrayD<T>,
    axes: std::ops::Range<usize>,
    indices: &[usize],
    out_dims: &[usize],
) -> Result<ArrayD<T>, KernelError> {
    let dims = a.shape();
    let (Some(before), Some(taken), Some(after)) = (
        dims.get(..axes.start),
        dims.get(axes.clone()),
        dims.get(axes.end..),
    ) else {
        return fail(format!("axes {axes:?} are outside rank {}", dims.len()));
    };
    let (outer, len, inner) = (
        alloc::count(before)?,
        alloc::count(taken)?,
        alloc::count(after)?,
    );
    let total = alloc::output_like(a, out_dims)?;
    let picked = geometry::mul(outer, indices.len(), "a gather's output")?;
    if geometry::mul(picked, inner, "a gather's output")? != total {
        return fail(format!(
            "{} indices into {dims:?} along {axes:?} cannot fill {out_dims:?}",
            indices.len()
        ));
    }
    if let Some(&bad) = indices.iter().find(|&&i| i >= len) {
        return fail(format!("index {bad} is out of range [0, {len})"));
    }
    if !a.is_standard_layout() {
        alloc::output_like(a, dims)?;
    }
    let source = a.as_standard_layout();
    let elements = source
        .as_slice()
        .ok_or_else(|| KernelError("the array is not contiguous".into()))?;
    let mut out = super::recycle::take(total);
    if total > 0 {
        // total > 0: every block and row below lies inside `elements` (outer * len * inner
        // elements, indices below len).
        for block in elements.chunks_exact(len * inner).take(outer) {
            for &i in indices {
                out.extend_from_slice(&block[i * inner..(i + 1) * inner]);
            }
        }
    }
    Ok(ArrayD::from_shape_vec(IxDyn(out_dims), out)?)
}

/// `count` consecutive indices from `begin`, after asking for the list.
fn index_range(begin: usize, count: usize) -> Result<Vec<usize>, KernelError> {
    alloc::items::<usize>(count, "an index list")?;
    let end = geometry::add(begin, count, "an index")?;
    Ok((begin..end).collect())
}

pub fn slice(x: &Tensor, begin: &Tensor, size: &Tensor) -> Result<Tensor, KernelError> {
    let begin = to_i64_vec(begin)?;
    let size = to_i64_vec(size)?;
    let dims = x.shape();
    if begin.len() != dims.len() || size.len() != dims.len() {
        return fail(format!(
            "begin {begin:?} and size {size:?} must have one entry per dimension of {dims:?}"
        ));
    }
    let mut ranges = Vec::with_capacity(dims.len());
    for ((&b, &s), &d) in begin.iter().zip(&size).zip(dims) {
        let d = i64::try_from(d).map_err(|_| KernelError("dimension too large".into()))?;
        let s = if s == -1 { d.saturating_sub(b) } else { s };
        if b < 0 || s < 0 || b.checked_add(s).is_none_or(|e| e > d) {
            return fail(format!(
                "slice begin {b} size {s} is outside a dimension of {d}"
            ));
        }
        ranges.push((b as usize, s as usize));
    }
    let out: Vec<usize> = ranges.iter().map(|&(_, s)| s).collect();
    if x.is_empty() || alloc::count(&out)? == 0 {
        return empty_like(x, &out);
    }
    let indices = ranges
        .iter()
        .map(|&(b, s)| index_range(b, s))
        .collect::<Result<Vec<_>, _>>()?;
    gather_axes(x, &indices, &out)
}

pub fn strided_slice(
    ctx: &KernelContext<'_>,
    x: &Tensor,
    begin: &Tensor,
    end: &Tensor,
    strides: &Tensor,
) -> Result<Tensor, KernelError> {
    let plan = strided_slice_plan(
        x.shape(),
        &to_i64_vec(begin)?,
        &to_i64_vec(end)?,
        &to_i64_vec(strides)?,
        SliceMasks::of(ctx.node),
    )?;
    let out_dims: Vec<usize> = plan.iter().filter(|a| a.kept).map(|a| a.len).collect();
    if x.is_empty() || alloc::count(&out_dims)? == 0 {
        // Nothing to pick: no index list sized by a (possibly huge) dimension is built.
        return empty_like(x, &out_dims);
    }
    // The input has elements, so every dimension (and every index list) is bounded by its size.
    let mut indices = Vec::with_capacity(plan.len());
    for a in plan.iter().filter(|a| a.input_axis.is_some()) {
        alloc::items::<usize>(a.len, "an index list")?;
        let list = (0..a.len)
            .map(|k| {
                let index = a.start as i128 + (k as i128) * i128::from(a.stride);
                usize::try_from(index)
                    .map_err(|_| KernelError(format!("index {index} is out of range")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        indices.push(list);
    }
    gather_axes(x, &indices, &out_dims)
}

/// An empty tensor of `x`'s type with `dims` (which hold a 0).
fn empty_like(x: &Tensor, dims: &[usize]) -> Result<Tensor, KernelError> {
    if alloc::count(dims)? != 0 {
        return fail(format!(
            "cannot take elements of an empty tensor into {dims:?}"
        ));
    }
    let data = map_data!(x.data(), _a => ArrayD::from_shape_vec(IxDyn(dims), Vec::new())?);
    Tensor::new(x.dtype(), data).map_err(Into::into)
}

fn paddings(p: &Tensor, rank: usize) -> Result<Vec<(usize, usize)>, KernelError> {
    let values = to_i64_vec(p)?;
    if values.len() != rank * 2 {
        return fail(format!("paddings must be [{rank}, 2]"));
    }
    values
        .chunks_exact(2)
        .map(|c| match (usize::try_from(c[0]), usize::try_from(c[1])) {
            (Ok(a), Ok(b)) => Ok((a, b)),
            _ => fail("paddings must be non-negative"),
        })
        .collect()
}

/// Pad and PadV2: surrounds `x` with a constant (zero unless given).
pub fn pad(
    ctx: &KernelContext<'_>,
    x: &Tensor,
    p: &Tensor,
    value: Option<&Tensor>,
) -> Result<Tensor, KernelError> {
    let pads = paddings(p, x.shape().len())?;
    let out_dims: Vec<usize> = x
        .shape()
        .iter()
        .zip(&pads)
        .map(|(&d, &(a, b))| {
            geometry::add(
                geometry::add(d, a, "the padded size")?,
                b,
                "the padded size",
            )
        })
        .collect::<Result<_, _>>()?;
    let element = memory_element_size(x.dtype());
    checked_elements(&out_dims, element, ctx.limits)?;
    super::broadcast::check_output(&out_dims, element)?;
    let zero = super::shape_ops::zero_scalar(x.dtype())?;
    let fill_value = value.unwrap_or(&zero);
    let data = map_data!(x.data(), a => {
        let v = same_typed_scalar(a, fill_value)?;
        padded(a, &pads, &out_dims, v)?
    });
    Tensor::new(x.dtype(), data).map_err(Into::into)
}

/// `a` surrounded by `pads` of `value`, written once in row-major order: a row of the last
/// axis is the value, or the value around a row of `a` (no fill of the whole output first).
fn padded<T: Clone + 'static>(
    a: &ArrayD<T>,
    pads: &[(usize, usize)],
    out_dims: &[usize],
    value: T,
) -> Result<ArrayD<T>, KernelError> {
    let Some((&width, leading)) = out_dims.split_last() else {
        return Ok(a.clone());
    };
    let total = alloc::count(out_dims)?;
    let mut out = super::recycle::take(total);
    if total > 0 {
        let source = a.as_standard_layout();
        let elements = source.as_slice().unwrap_or_default();
        let (before, after) = pads[leading.len()];
        let row = a.shape()[leading.len()];
        // The output's index along the leading axes, counted up row by row.
        let mut index = vec![0usize; leading.len()];
        for _ in 0..total / width {
            // The input row at this index, if every leading index is inside the input.
            let mut inside = Some(0usize);
            for ((&i, &(pad, _)), &d) in index.iter().zip(pads).zip(a.shape()) {
                inside = inside
                    .zip(i.checked_sub(pad).filter(|&i| i < d))
                    .map(|(r, i)| r * d + i);
            }
            match inside {
                Some(r) => {
                    out.extend(std::iter::repeat_n(value.clone(), before));
                    out.extend_from_slice(&elements[r * row..(r + 1) * row]);
                    out.extend(std::iter::repeat_n(value.clone(), after));
                }
                None => out.extend(std::iter::repeat_n(value.clone(), width)),
            }
            for (i, &d) in index.iter_mut().zip(leading).rev() {
                *i += 1;
                if *i < d {
                    break;
                }
                *i = 0;
            }
        }
    }
    Ok(ArrayD::from_shape_vec(IxDyn(out_dims), out)?)
}

pub fn mirror_pad(ctx: &KernelContext<'_>, x: &Tensor, p: &Tensor) -> Result<Tensor, KernelError> {
    let pads = paddings(p, x.shape().len())?;
    let mode = attrs::string(ctx.node, "mode").unwrap_or_default();
    let offset = match mode.as_str() {
        "REFLECT" => 1,
        "SYMMETRIC" => 0,
        other => return fail(format!("unknown MirrorPad mode '{other}'")),
    };
    let mut out = Vec::with_capacity(pads.len());
    for (&d, &(before, after)) in x.shape().iter().zip(&pads) {
        if before.saturating_add(offset) > d || after.saturating_add(offset) > d {
            return fail(format!(
                "padding ({before}, {after}) is too large for a dimension of {d} in {mode} mode"
            ));
        }
        // before, after <= d, so the sum cannot wrap.
        out.push(geometry::add(d, before + after, "the padded size")?);
    }
    let element = memory_element_size(x.dtype());
    checked_elements(&out, element, ctx.limits)?;
    if x.is_empty() || alloc::count(&out)? == 0 {
        return empty_like(x, &out);
    }
    super::broadcast::check_output(&out, element)?;
    let mut indices = Vec::with_capacity(out.len());
    for ((&d, &(before, after)), &n) in x.shape().iter().zip(&pads).zip(&out) {
        alloc::items::<usize>(n, "an index list")?;
        let mut idx: Vec<usize> = (0..before).map(|i| before - 1 - i + offset).collect();
        idx.extend(0..d);
        idx.extend((0..after).map(|i| d - 1 - i - offset));
        indices.push(idx);
    }
    gather_axes(x, &indices, &out)
}

pub fn gather_v2(
    ctx: &KernelContext<'_>,
    params: &Tensor,
    indices: &Tensor,
    axis: &Tensor,
) -> Result<Tensor, KernelError> {
    let rank = params.shape().len();
    let axis = normalize_axis(scalar_int(axis)?, rank)?;
    if attrs::int(ctx.node, "batch_dims").unwrap_or(0) != 0 {
        return fail("GatherV2 with batch_dims is not supported by graphopt's evaluator");
    }
    let limit = geometry::dim_i64(params.shape()[axis])?;
    let values = to_i64_vec(indices)?;
    alloc::items::<usize>(values.len(), "GatherV2's indices")?;
    let idx = values
        .into_iter()
        .map(|i| {
            // TensorFlow's CPU kernel rejects negative indices too.
            if (0..limit).contains(&i) {
                Ok(i as usize)
            } else {
                fail(format!("index {i} is out of range [0, {limit})"))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut out_dims = params.shape()[..axis].to_vec();
    out_dims.extend_from_slice(indices.shape());
    out_dims.extend_from_slice(&params.shape()[axis + 1..]);
    if params.is_empty() || alloc::count(&out_dims)? == 0 {
        return empty_like(params, &out_dims);
    }
    let data = map_data!(params.data(), a => take(a, axis..axis + 1, &idx, &out_dims)?);
    Tensor::new(params.dtype(), data).map_err(Into::into)
}

pub fn gather_nd(params: &Tensor, indices: &Tensor) -> Result<Tensor, KernelError> {
    let index_dims = indices.shape();
    let k = *index_dims
        .last()
        .ok_or_else(|| KernelError("indices must have rank >= 1".into()))?;
    let dims = params.shape();
    if k > dims.len() {
        return fail(format!(
            "index depth {k} exceeds params rank {}",
            dims.len()
        ));
    }
    let mut out_dims = index_dims[..index_dims.len() - 1].to_vec();
    out_dims.extend_from_slice(&dims[k..]);
    if params.is_empty() || alloc::count(&out_dims)? == 0 {
        return empty_like(params, &out_dims);
    }
    // params has elements: its dims, and products of them, are bounded by its size.
    let values = to_i64_vec(indices)?;
    let tuples = alloc::count(&index_dims[..index_dims.len() - 1])?;
    alloc::items::<usize>(tuples, "GatherNd's rows")?;
    let mut flat = Vec::with_capacity(tuples);
    if k == 0 {
        flat = vec![0; tuples];
    } else {
        for tuple in values.chunks(k) {
            let mut linear = 0usize;
            for (j, &i) in tuple.iter().enumerate() {
                let d = geometry::dim_i64(dims[j])?;
                if !(0..d).contains(&i) {
                    return fail(format!("index {i} is out of range [0, {d})"));
                }
                linear = linear * dims[j] + i as usize;
            }
            flat.push(linear);
        }
    }
    let data = map_data!(params.data(), a => take(a, 0..k, &flat, &out_dims)?);
    Tensor::new(params.dtype(), data).map_err(Into::into)
}

/// Block sizes and per-dimension (before, after) amounts of SpaceToBatchND/BatchToSpaceND.
type BlockArgs = (Vec<usize>, Vec<(usize, usize)>);

fn block_args(block: &Tensor, pads: &Tensor, rank: usize) -> Result<BlockArgs, KernelError> {
    let block: Vec<usize> = to_i64_vec(block)?
        .into_iter()
        .map(|b| usize::try_from(b).ok().filter(|&b| b > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| KernelError("block_shape must be positive".into()))?;
    if block.is_empty() || block.len() + 1 > rank {
        return fail(format!(
            "block_shape of {} dimensions does not fit rank {rank}",
            block.len()
        ));
    }
    let pads = paddings(pads, block.len())?;
    Ok((block, pads))
}

/// SpaceToBatchND: zero-pads the spatial dimensions and moves blocks of them into the batch.
pub fn space_to_batch(
    ctx: &KernelContext<'_>,
    x: &Tensor,
    block: &Tensor,
    pads: &Tensor,
) -> Result<Tensor, KernelError> {
    let dims = x.shape().to_vec();
    let (block, pads) = block_args(block, pads, dims.len())?;
    let m = block.len();
    let mut full_pads = vec![(0, 0); dims.len()];
    full_pads[1..=m].copy_from_slice(&pads);
    let flat: Vec<i64> = full_pads
        .iter()
        .flat_map(|&(a, b)| [geometry::dim_i64(a), geometry::dim_i64(b)])
        .collect::<Result<_, _>>()?;
    let pad_tensor = Tensor::from_data(crate::tensor::Data::I64(ArrayD::from_shape_vec(
        IxDyn(&[dims.len(), 2]),
        flat,
    )?));
    let padded = pad(ctx, x, &pad_tensor, None)?;
    let p = padded.shape().to_vec();
    // [N, H/bh, bh, W/bw, bw, rest] -> [bh, bw, N, H/bh, W/bw, rest] -> [bh*bw*N, H/bh, W/bw, rest]
    let mut split = vec![p[0]];
    for (i, &b) in block.iter().enumerate() {
        if p[i + 1] % b != 0 {
            return fail(format!(
                "padded dimension {} is not a multiple of the block {b}",
                p[i + 1]
            ));
        }
        split.extend([p[i + 1] / b, b]);
    }
    split.extend_from_slice(&p[m + 1..]);
    let mut out = vec![geometry::mul(
        p[0],
        alloc::count(&block)?,
        "SpaceToBatchND's batch",
    )?];
    out.extend((0..m).map(|i| p[i + 1] / block[i]));
    out.extend_from_slice(&p[m + 1..]);
    if padded.is_empty() {
        return empty_like(x, &out);
    }
    let reshaped_x = super::shape_ops::reshape_to(&padded, &split)?;
    let mut perm: Vec<usize> = (0..m).map(|i| 2 + 2 * i).collect();
    perm.push(0);
    perm.extend((0..m).map(|i| 1 + 2 * i));
    perm.extend(2 * m + 1..split.len());
    let moved = super::shape_ops::permute(&reshaped_x, &perm)?;
    super::shape_ops::reshape_to(&moved, &out)
}

/// BatchToSpaceND: the inverse, moving batch blocks back into space, then cropping.
pub fn batch_to_space(x: &Tensor, block: &Tensor, crops: &Tensor) -> Result<Tensor, KernelError> {
    let dims = x.shape().to_vec();
    let (block, crops) = block_args(block, crops, dims.len())?;
    let m = block.len();
    let prod = alloc::count(&block)?;
    if prod == 0 || dims[0] % prod != 0 {
        return fail(format!(
            "batch {} is not a multiple of the block size {prod}",
            dims[0]
        ));
    }
    let n = dims[0] / prod;
    let mut full = vec![n];
    for i in 0..m {
        full.push(geometry::mul(
            dims[i + 1],
            block[i],
            "BatchToSpaceND's output",
        )?);
    }
    full.extend_from_slice(&dims[m + 1..]);
    let mut out = full.clone();
    for (i, &(a, b)) in crops.iter().enumerate() {
        let cropped = geometry::add(a, b, "the crops")?;
        out[i + 1] = full[i + 1]
            .checked_sub(cropped)
            .ok_or_else(|| KernelError("crops are larger than the output".into()))?;
    }
    if x.is_empty() {
        return empty_like(x, &out);
    }
    // [bh, bw, N, H, W, rest] -> [N, H, bh, W, bw, rest] -> [N, H*bh, W*bw, rest]
    let mut split = block.clone();
    split.push(n);
    split.extend_from_slice(&dims[1..]);
    let reshaped_x = super::shape_ops::reshape_to(x, &split)?;
    let mut perm = vec![m];
    for i in 0..m {
        perm.extend([m + 1 + i, i]);
    }
    perm.extend(2 * m + 1..split.len());
    let moved = super::shape_ops::permute(&reshaped_x, &perm)?;
    let spread = super::shape_ops::reshape_to(&moved, &full)?;
    let mut begin = vec![0i64; full.len()];
    let mut size = super::shape_ops::dims_i64(&full)?;
    for (i, &(a, _)) in crops.iter().enumerate() {
        begin[i + 1] = geometry::dim_i64(a)?;
        size[i + 1] = geometry::dim_i64(out[i + 1])?;
    }
    let vector = |v: Vec<i64>| {
        Tensor::from_data(crate::tensor::Data::I64(
            ndarray::Array1::from(v).into_dyn(),
        ))
    };
    slice(&spread, &vector(begin), &vector(size))
}

/// A tensor as rows: its first `outer_rank` dimensions flattened into one.
fn as_rows(x: &Tensor, outer_rank: usize) -> Result<Tensor, KernelError> {
    let dims = x.shape();
    let Some(inner) = dims.get(outer_rank..) else {
        return fail(format!("rank {} is below {outer_rank}", dims.len()));
    };
    let mut flat = vec![alloc::count(&dims[..outer_rank])?];
    flat.extend_from_slice(inner);
    if x.is_empty() {
        return empty_like(x, &flat);
    }
    let data = map_data!(x.data(), a => reshaped(a, &flat)?);
    Tensor::new(x.dtype(), data).map_err(Into::into)
}

/// DynamicPartition: output `p` holds the rows of `data` whose `partitions` entry is `p`, in
/// order. `partitions`' shape is a prefix of `data`'s.
pub fn dynamic_partition(
    ctx: &KernelContext<'_>,
    data: &Tensor,
    partitions: &Tensor,
) -> Result<Vec<Tensor>, KernelError> {
    let count = attrs::int(ctx.node, "num_partitions")
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| KernelError("num_partitions must be a non-negative integer".into()))?;
    let outer = partitions.shape();
    if !data.shape().starts_with(outer) {
        return fail(format!(
            "partitions of shape {outer:?} do not prefix data of shape {:?}",
            data.shape()
        ));
    }
    // num_partitions sizes the output list.
    alloc::items::<Tensor>(count, "num_partitions")?;
    alloc::work(crate::budget::VALUE_OVERHEAD as u128 * count as u128)?;
    // Rows are taken from `data` itself, its first `outer.len()` dimensions as one.
    let mut row_dims = vec![alloc::count(outer)?];
    row_dims.extend_from_slice(&data.shape()[outer.len()..]);
    let values = to_i64_vec(partitions)?;
    // A count and a row list per partition.
    alloc::items::<(usize, Vec<usize>)>(count, "num_partitions")?;
    let mut sizes = vec![0usize; count];
    for &p in &values {
        let size = usize::try_from(p)
            .ok()
            .and_then(|p| sizes.get_mut(p))
            .ok_or_else(|| KernelError(format!("partition {p} is outside [0, {count})")))?;
        *size += 1;
    }
    // One row list per partition, each of its exact size: a row index each in all.
    alloc::items::<usize>(values.len(), "DynamicPartition's rows")?;
    let mut chosen: Vec<Vec<usize>> = sizes.iter().map(|&n| Vec::with_capacity(n)).collect();
    for (row, p) in values.into_iter().enumerate() {
        // Every partition was checked above.
        if let Some(list) = usize::try_from(p).ok().and_then(|p| chosen.get_mut(p)) {
            list.push(row);
        }
    }
    chosen
        .iter()
        .map(|selected| {
            let mut dims = row_dims.clone();
            dims[0] = selected.len();
            if data.is_empty() {
                return empty_like(data, &dims);
            }
            let taken = map_data!(data.data(), a => take(a, 0..outer.len(), selected, &dims)?);
            Tensor::new(data.dtype(), taken).map_err(Into::into)
        })
        .collect()
}

/// DynamicStitch and ParallelDynamicStitch: `merged[indices[m][i]] = data[m][i]`, later
/// writes winning. Every position up to the largest index must be written.
pub fn dynamic_stitch(inputs: &[&Tensor]) -> Result<Tensor, KernelError> {
    let n = inputs.len() / 2;
    if inputs.len() != 2 * n || n == 0 {
        return fail(format!(
            "expected pairs of indices and data, got {} inputs",
            inputs.len()
        ));
    }
    let (indices, data) = inputs.split_at(n);
    let mut row_lists = Vec::with_capacity(n);
    let mut inner: Option<Vec<usize>> = None;
    for (index, value) in indices.iter().zip(data) {
        if !value.shape().starts_with(index.shape()) {
            return fail(format!(
                "data of shape {:?} does not start with its indices' shape {:?}",
                value.shape(),
                index.shape()
            ));
        }
        let rows = as_rows(value, index.shape().len())?;
        let rest = rows.shape().get(1..).unwrap_or_default().to_vec();
        if inner.get_or_insert_with(|| rest.clone()) != &rest {
            return fail("data pieces must agree on the shape after their indices");
        }
        row_lists.push(rows);
    }
    let total = row_lists.iter().try_fold(0usize, |sum, r| {
        geometry::add(sum, r.shape()[0], "DynamicStitch's rows")
    })?;
    alloc::items::<Option<usize>>(total, "DynamicStitch's rows")?;
    let mut source: Vec<Option<usize>> = Vec::new();
    let mut offset = 0usize;
    for (index, rows) in indices.iter().zip(&row_lists) {
        for (i, position) in to_i64_vec(index)?.into_iter().enumerate() {
            let position = usize::try_from(position)
                .map_err(|_| KernelError(format!("index {position} is negative")))?;
            if position >= source.len() {
                // Positions beyond the rows given are uncovered anyway; refuse before growing.
                if position >= total {
                    return fail(format!(
                        "index {position} leaves positions unwritten ({total} rows given)"
                    ));
                }
                source.resize(position + 1, None);
            }
            source[position] = Some(offset + i);
        }
        offset += rows.shape()[0];
    }
    let order = source
        .iter()
        .enumerate()
        .map(|(position, s)| {
            s.ok_or_else(|| KernelError(format!("position {position} is never written")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let pieces: Vec<&Tensor> = row_lists.iter().collect();
    let all = super::shape_ops::concat(&pieces, 0)?;
    let mut dims = all.shape().to_vec();
    dims[0] = order.len();
    if all.is_empty() {
        return empty_like(&all, &dims);
    }
    let data = map_data!(all.data(), a => take(a, 0..1, &order, &dims)?);
    Tensor::new(all.dtype(), data).map_err(Into::into)
}
