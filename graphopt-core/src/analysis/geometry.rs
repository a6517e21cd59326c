//! Shape arithmetic shared by shape inference and the kernels: broadcasting, convolution and
//! pooling windows, strided-slice plans. Everything here is checked: dimensions and attributes
//! come from model files, so a product or sum that overflows is an error, never a wrap.

use crate::graph::attrs;
use crate::proto::NodeDef;

/// Why a shape computation failed; the caller adds the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GeometryError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, GeometryError> {
    Err(GeometryError(message.into()))
}

/// `a + b`, or an error naming what overflowed.
pub fn add(a: usize, b: usize, what: &str) -> Result<usize, GeometryError> {
    a.checked_add(b)
        .ok_or_else(|| GeometryError(format!("{what} overflows ({a} + {b})")))
}

/// `a * b`, or an error naming what overflowed.
pub fn mul(a: usize, b: usize, what: &str) -> Result<usize, GeometryError> {
    a.checked_mul(b)
        .ok_or_else(|| GeometryError(format!("{what} overflows ({a} * {b})")))
}

/// `a - b`, or an error naming what went below zero.
pub fn sub(a: usize, b: usize, what: &str) -> Result<usize, GeometryError> {
    a.checked_sub(b)
        .ok_or_else(|| GeometryError(format!("{what} is negative ({a} - {b})")))
}

/// The number of elements of `dims`, checked. A shape with a 0 has none, but its other
/// dimensions must still multiply within `isize::MAX`: they size strides and index arithmetic
/// (and ndarray panics on such a shape).
pub fn element_count(dims: &[usize]) -> Result<usize, GeometryError> {
    let product = dims
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| mul(acc, d, "the element count"))?;
    if isize::try_from(product).is_err() {
        return fail(format!(
            "the shape's non-zero dimensions multiply to {product}, more than can be addressed"
        ));
    }
    Ok(if dims.contains(&0) { 0 } else { product })
}

/// A dimension from a value read in a file: non-negative and addressable.
pub fn dim(value: i64, what: &str) -> Result<usize, GeometryError> {
    usize::try_from(value)
        .map_err(|_| GeometryError(format!("{what} must be a non-negative size, not {value}")))
}

/// A dimension as TensorFlow's int64 (Shape, Size): an error past `i64::MAX`.
pub fn dim_i64(value: usize) -> Result<i64, GeometryError> {
    i64::try_from(value)
        .map_err(|_| GeometryError(format!("dimension {value} does not fit in int64")))
}

/// Row-major strides (in elements) of `dims`, checked.
pub fn strides(dims: &[usize]) -> Result<Vec<usize>, GeometryError> {
    let mut strides = vec![1usize; dims.len()];
    for d in (0..dims.len().saturating_sub(1)).rev() {
        strides[d] = mul(strides[d + 1], dims[d + 1], "a stride")?;
    }
    Ok(strides)
}

/// An axis in `-rank..rank`, made non-negative.
pub fn axis(value: i64, rank: usize) -> Result<usize, GeometryError> {
    let r = i64::try_from(rank).map_err(|_| GeometryError("rank too large".into()))?;
    let resolved = if value < 0 {
        value.checked_add(r)
    } else {
        Some(value)
    };
    match resolved {
        Some(a) if (0..r).contains(&a) => Ok(a as usize),
        _ => fail(format!("axis {value} is out of range for rank {rank}")),
    }
}

/// The shape two shapes broadcast to, or an error naming both.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Result<Vec<usize>, GeometryError> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], i: usize| {
        if i + s.len() >= rank {
            s[i + s.len() - rank]
        } else {
            1
        }
    };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => fail(format!(
                "shapes {a:?} and {b:?} are not broadcast-compatible"
            )),
        })
        .collect()
}

/// Output size and leading padding along one spatial axis.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub input: usize,
    pub stride: usize,
    pub dilation: usize,
    pub out: usize,
    pub pad_before: usize,
}

/// Geometry of one spatial axis for `padding` ("SAME", "VALID" or "EXPLICIT").
pub fn window(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    padding: &str,
    explicit: (usize, usize),
) -> Result<Window, GeometryError> {
    if stride == 0 || dilation == 0 {
        return fail("strides and dilations must be positive");
    }
    let effective = add(
        mul(kernel.max(1) - 1, dilation, "the dilated kernel size")?,
        1,
        "the dilated kernel size",
    )?;
    let after_padding = |padded: usize| {
        if padded >= effective {
            (padded - effective) / stride + 1
        } else {
            0
        }
    };
    let (out, pad_before) = match padding {
        "SAME" => {
            let out = input.div_ceil(stride);
            let span = add(
                mul(out.max(1) - 1, stride, "the padded input")?,
                effective,
                "the padded input",
            )?;
            (out, span.saturating_sub(input) / 2)
        }
        "VALID" => (after_padding(input), 0),
        "EXPLICIT" => {
            let padded = add(
                add(input, explicit.0, "the padded input")?,
                explicit.1,
                "the padded input",
            )?;
            (after_padding(padded), explicit.0)
        }
        other => return fail(format!("unknown padding '{other}'")),
    };
    Ok(Window {
        input,
        stride,
        dilation,
        out,
        pad_before,
    })
}

impl Window {
    /// Input index for output position `o` and kernel tap `k`, if inside the input.
    pub fn source(&self, o: usize, k: usize) -> Option<usize> {
        let position = o
            .checked_mul(self.stride)?
            .checked_add(k.checked_mul(self.dilation)?)?
            .checked_sub(self.pad_before)?;
        (position < self.input).then_some(position)
    }

    /// The taps `k` in `0..kernel` whose [`Window::source`] for output position `o` lies inside
    /// the input: a window far larger than the input (a hostile ksize) costs what the input
    /// holds, not what the window spans.
    pub fn taps(&self, o: usize, kernel: usize) -> std::ops::Range<usize> {
        // position(k) = o * stride + k * dilation - pad_before, wanted in 0..input.
        let start = o as u128 * self.stride as u128;
        let pad = self.pad_before as u128;
        let dilation = self.dilation.max(1) as u128;
        let first = if start >= pad {
            0
        } else {
            (pad - start).div_ceil(dilation)
        };
        // Largest k with start + k * dilation < pad + input.
        let limit = pad + self.input as u128;
        let end = if limit > start {
            (limit - start).div_ceil(dilation)
        } else {
            0
        };
        let end = end.min(kernel as u128) as usize;
        let first = first.min(end as u128) as usize;
        first..end
    }
}

/// Spatial parameters common to convolutions and pooling, in NHWC order.
#[derive(Debug, Clone)]
pub struct Spatial {
    pub nchw: bool,
    pub strides: (usize, usize),
    pub dilations: (usize, usize),
    pub padding: String,
    pub explicit: [(usize, usize); 2],
}

fn pick_hw(values: &[i64], nchw: bool, name: &str) -> Result<(usize, usize), GeometryError> {
    match values {
        [] => Ok((1, 1)),
        [a, b, c, d] => {
            let (h, w) = if nchw { (*c, *d) } else { (*b, *c) };
            let batch_channel = if nchw { (*a, *b) } else { (*a, *d) };
            if batch_channel != (1, 1) {
                return fail(format!(
                    "{name} on the batch or channel dimension is not supported"
                ));
            }
            Ok((dim(h, name)?, dim(w, name)?))
        }
        other => fail(format!("{name} must have 4 entries, got {other:?}")),
    }
}

impl Spatial {
    /// The spatial attributes of a convolution or pooling node; `strides_attr` names its
    /// strides attribute.
    pub fn from_node(node: &NodeDef, strides_attr: &str) -> Result<Self, GeometryError> {
        let nchw = attrs::string(node, "data_format").is_some_and(|f| f == "NCHW");
        let strides = pick_hw(
            &attrs::ints(node, strides_attr).unwrap_or_default(),
            nchw,
            strides_attr,
        )?;
        let dilations = pick_hw(
            &attrs::ints(node, "dilations").unwrap_or_default(),
            nchw,
            "dilations",
        )?;
        let padding = attrs::string(node, "padding").unwrap_or_else(|| "VALID".into());
        let mut explicit = [(0, 0); 2];
        if padding == "EXPLICIT" {
            let p = attrs::ints(node, "explicit_paddings").unwrap_or_default();
            if p.len() != 8 {
                return fail("explicit_paddings must have 8 entries");
            }
            let (h, w) = if nchw { (4, 6) } else { (2, 4) };
            let pad = |k: usize| dim(p[k], "explicit_paddings");
            explicit = [(pad(h)?, pad(h + 1)?), (pad(w)?, pad(w + 1)?)];
        }
        Ok(Spatial {
            nchw,
            strides,
            dilations,
            padding,
            explicit,
        })
    }

    /// The windows along height and width for a `kh` x `kw` kernel.
    pub fn windows(
        &self,
        h: usize,
        w: usize,
        kh: usize,
        kw: usize,
    ) -> Result<(Window, Window), GeometryError> {
        let along = |input, kernel, stride, dilation, explicit| {
            window(input, kernel, stride, dilation, &self.padding, explicit)
        };
        Ok((
            along(h, kh, self.strides.0, self.dilations.0, self.explicit[0])?,
            along(w, kw, self.strides.1, self.dilations.1, self.explicit[1])?,
        ))
    }

    /// The output shape for input `x` (in the node's layout), a `kh` x `kw` window and
    /// `channels` output channels (0 keeps the input's).
    pub fn output_shape(
        &self,
        x: &[usize],
        (kh, kw): (usize, usize),
        channels: usize,
    ) -> Result<Vec<usize>, GeometryError> {
        let [n, a, b, c] = x else {
            return fail(format!("expected a 4-D input, got {x:?}"));
        };
        let (h, w, in_c) = if self.nchw {
            (*b, *c, *a)
        } else {
            (*a, *b, *c)
        };
        let (wh, ww) = self.windows(h, w, kh, kw)?;
        let out_c = if channels == 0 { in_c } else { channels };
        Ok(if self.nchw {
            vec![*n, out_c, wh.out, ww.out]
        } else {
            vec![*n, wh.out, ww.out, out_c]
        })
    }
}

/// One axis of a strided slice: the input axis it reads (`None` for a new axis), where it
/// starts, its stride, how many elements it takes, and whether the axis stays in the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SliceAxis {
    pub input_axis: Option<usize>,
    pub start: usize,
    pub stride: i64,
    pub len: usize,
    pub kept: bool,
}

/// The masks of a StridedSlice node.
#[derive(Debug, Clone, Copy, Default)]
pub struct SliceMasks {
    pub begin: i64,
    pub end: i64,
    pub ellipsis: i64,
    pub new_axis: i64,
    pub shrink_axis: i64,
}

impl SliceMasks {
    pub fn of(node: &NodeDef) -> Self {
        let mask = |name: &str| attrs::int(node, name).unwrap_or(0);
        SliceMasks {
            begin: mask("begin_mask"),
            end: mask("end_mask"),
            ellipsis: mask("ellipsis_mask"),
            new_axis: mask("new_axis_mask"),
            shrink_axis: mask("shrink_axis_mask"),
        }
    }
}

fn bit(mask: i64, i: usize) -> bool {
    i < 63 && (mask >> i) & 1 == 1
}

/// What a StridedSlice of a tensor of shape `dims` reads, axis by axis (new axes included),
/// with TensorFlow's rules for negative indices, clamping, masks and ellipsis. The output shape
/// is the `len` of every kept axis.
pub fn strided_slice_plan(
    dims: &[usize],
    begin: &[i64],
    end: &[i64],
    strides: &[i64],
    masks: SliceMasks,
) -> Result<Vec<SliceAxis>, GeometryError> {
    let n = begin.len();
    if end.len() != n || strides.len() != n {
        return fail("begin, end and strides must have the same length");
    }
    let rank = dims.len();
    let ellipsis = (0..n).find(|&i| bit(masks.ellipsis, i));
    let new_axes = (0..n)
        .filter(|&i| bit(masks.new_axis, i) && Some(i) != ellipsis)
        .count();
    let real_entries = n - new_axes - usize::from(ellipsis.is_some());
    if real_entries > rank {
        return fail(format!(
            "{real_entries} slice entries for a tensor of rank {rank}"
        ));
    }
    let whole = |axis: usize| SliceAxis {
        input_axis: Some(axis),
        start: 0,
        stride: 1,
        len: dims[axis],
        kept: true,
    };
    let mut plan = Vec::with_capacity(rank + new_axes);
    let mut axis = 0;
    for i in 0..n {
        if Some(i) == ellipsis {
            for _ in 0..rank - real_entries {
                plan.push(whole(axis));
                axis += 1;
            }
            continue;
        }
        if bit(masks.new_axis, i) {
            plan.push(SliceAxis {
                input_axis: None,
                start: 0,
                stride: 1,
                len: 1,
                kept: true,
            });
            continue;
        }
        let d =
            i64::try_from(dims[axis]).map_err(|_| GeometryError("dimension too large".into()))?;
        let stride = strides[i];
        if stride == 0 {
            return fail("strides must be non-zero");
        }
        // Negative indices count from the end; i128 keeps i64::MIN and friends exact.
        let from_end = |v: i64| -> i128 {
            if v < 0 {
                i128::from(v) + i128::from(d)
            } else {
                i128::from(v)
            }
        };
        if bit(masks.shrink_axis, i) {
            let b = from_end(begin[i]);
            if !(0..i128::from(d)).contains(&b) {
                return fail(format!(
                    "index {} is out of range for a dimension of {d}",
                    begin[i]
                ));
            }
            plan.push(SliceAxis {
                input_axis: Some(axis),
                start: b as usize,
                stride: 1,
                len: 1,
                kept: false,
            });
            axis += 1;
            continue;
        }
        let (lo, hi) = if stride > 0 {
            (0, i128::from(d))
        } else {
            (-1, i128::from(d) - 1)
        };
        let resolve = |v: i64, masked: bool, default: i128| {
            if masked {
                default
            } else {
                from_end(v).clamp(lo, hi)
            }
        };
        let b = resolve(
            begin[i],
            bit(masks.begin, i),
            if stride > 0 { 0 } else { i128::from(d) - 1 },
        );
        let e = resolve(
            end[i],
            bit(masks.end, i),
            if stride > 0 { i128::from(d) } else { -1 },
        );
        let s = i128::from(stride);
        let len = if stride > 0 && e > b {
            (e - b + s - 1) / s
        } else if stride < 0 && e < b {
            (b - e + (-s) - 1) / (-s)
        } else {
            0
        };
        plan.push(SliceAxis {
            input_axis: Some(axis),
            // When nothing is taken the start is never read; keep it in range.
            start: if len == 0 { 0 } else { b as usize },
            stride,
            len: len as usize,
            kept: true,
        });
        axis += 1;
    }
    while axis < rank {
        plan.push(whole(axis));
        axis += 1;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_shapes_must_still_be_addressable() {
        assert_eq!(element_count(&[3, 0, 5]), Ok(0));
        assert_eq!(element_count(&[3, 5]), Ok(15));
        assert!(element_count(&[1 << 40, 0, 1 << 40]).is_err());
        assert!(element_count(&[usize::MAX, 0]).is_err());
        assert_eq!(element_count(&[1 << 40, 0]), Ok(0));
    }

    #[test]
    fn explicit_padding_overflow_is_an_error() {
        assert!(window(5, 3, 1, 1, "EXPLICIT", (usize::MAX, 1)).is_err());
        assert!(window(5, usize::MAX, 1, 2, "VALID", (0, 0)).is_err());
        assert_eq!(window(5, 3, 2, 1, "SAME", (0, 0)).map(|w| w.out), Ok(3));
    }

    #[test]
    fn strided_slice_with_huge_stride_takes_one_element() {
        let plan = strided_slice_plan(&[10], &[0], &[10], &[i64::MAX], SliceMasks::default());
        assert_eq!(plan.map(|p| p[0].len), Ok(1));
        let plan = strided_slice_plan(
            &[10],
            &[-1],
            &[i64::MIN],
            &[i64::MIN],
            SliceMasks::default(),
        );
        assert_eq!(plan.map(|p| p[0].len), Ok(1));
        let plan = strided_slice_plan(&[10], &[i64::MIN], &[i64::MAX], &[3], SliceMasks::default());
        assert_eq!(plan.map(|p| (p[0].start, p[0].len)), Ok((0, 4)));
    }

    #[test]
    fn taps_are_the_ones_inside_the_input() {
        for (input, kernel, stride, dilation, padding) in [
            (5, 3, 1, 1, "SAME"),
            (7, 4, 2, 2, "SAME"),
            (4, 9, 1, 1, "SAME"),
            (6, 2, 3, 1, "VALID"),
        ] {
            let w = window(input, kernel, stride, dilation, padding, (0, 0)).expect("window");
            for o in 0..w.out {
                let expected: Vec<usize> =
                    (0..kernel).filter(|&k| w.source(o, k).is_some()).collect();
                let taps: Vec<usize> = w.taps(o, kernel).collect();
                assert_eq!(
                    taps, expected,
                    "{input} {kernel} {stride} {dilation} {padding} o={o}"
                );
            }
        }
        let huge = window(3, usize::MAX / 4, 1, 1, "SAME", (0, 0)).expect("window");
        assert!(huge.taps(0, usize::MAX / 4).len() <= 3);
    }

    #[test]
    fn broadcasting() {
        assert_eq!(broadcast_shape(&[2, 1, 3], &[4, 1]), Ok(vec![2, 4, 3]));
        assert!(broadcast_shape(&[2], &[3]).is_err());
    }
}
