//! Static shape inference: the output shapes of a node from its inputs' shapes and whichever
//! inputs are constant. Used by `fold_constants` (Shape/Size/Rank of tensors whose shape is
//! known become constants), the fuse transforms, `add_shapes` and the build integration's
//! manifest.
//!
//! Shapes may be partly known, as in TensorFlow's own shape inference: a rank with some
//! dimensions unknown (a batch of -1). Each shape function takes partial shapes and gives
//! partial shapes ([`infer_partial`]); [`infer`] is the same rules seen through fully known
//! shapes only. Small integer tensors that describe shapes (a `Shape`, a `Pack` of sizes, a
//! `ConcatV2` of those) are followed element by element ([`PartialValue`], what TensorFlow calls
//! "tensors as shapes"), so a `Reshape` to a computed shape knows the dims the computation
//! knows. Calls of library functions are inferred through their bodies.
//!
//! One shape function per op family, in plain checked arithmetic: no kernel runs here and
//! nothing is allocated in proportion to a dimension, so a hostile graph (a placeholder of
//! shape [2^40, 0], a Tile by 2^60) gives an unknown shape or a dimension, never a fault.
//! Unknown stays unknown (`None`); nothing is guessed.

use std::collections::{HashMap, HashSet};

use super::geometry::{self, broadcast_shape, strided_slice_plan, SliceMasks, Spatial};
use crate::graph::{attrs, edit, inline, ops, InputRef};
use crate::proto::{attr_value, DataType, FunctionDef, GraphDef, NodeDef};
use crate::tensor::{dims_of, Tensor};

/// What is known about one input of a node, its shape fully known or not at all.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub shape: Option<&'a [usize]>,
    pub value: Option<&'a Tensor>,
}

/// Per output: the shape if fully known.
pub type Shapes = Vec<Option<Vec<usize>>>;

/// One dimension: its size, or `None` when unknown.
pub type Dim = Option<usize>;

/// A shape of known rank whose dimensions may be unknown.
pub type PartialShape = Vec<Dim>;

/// Per output: the shape if its rank is known.
pub type PartialShapes = Vec<Option<PartialShape>>;

/// The value of a small integer tensor as far as it is known, element by element (row-major):
/// a shape being computed, an axis, a size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartialValue {
    pub dims: Vec<usize>,
    pub elements: Vec<Option<i64>>,
}

impl PartialValue {
    /// The value of an integer tensor of at most `MAX_VALUE_ELEMENTS` elements.
    pub fn of_tensor(tensor: &Tensor) -> Option<Self> {
        let count = geometry::element_count(tensor.shape()).ok()?;
        if count > MAX_VALUE_ELEMENTS {
            return None;
        }
        Some(PartialValue {
            dims: tensor.shape().to_vec(),
            elements: tensor.integers()?.into_iter().map(Some).collect(),
        })
    }

    /// All elements, when every one is known.
    pub fn known(&self) -> Option<Vec<i64>> {
        self.elements.iter().copied().collect()
    }

    fn vector(elements: Vec<Option<i64>>) -> Option<Self> {
        (elements.len() <= MAX_DERIVED_ELEMENTS).then(|| PartialValue {
            dims: vec![elements.len()],
            elements,
        })
    }

    fn scalar(element: Option<i64>) -> Self {
        PartialValue {
            dims: Vec::new(),
            elements: vec![element],
        }
    }

    fn memory_bytes(&self) -> u64 {
        let bytes = self.dims.len() * std::mem::size_of::<usize>()
            + self.elements.len() * std::mem::size_of::<Option<i64>>();
        bytes as u64
    }
}

/// What is known about one input of a node: its shape as far as known, and its value when it
/// is a small integer tensor some of whose elements are known.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    pub shape: Option<&'a [Dim]>,
    pub value: Option<&'a PartialValue>,
}

/// TensorFlow's own limit on a tensor's rank (`TensorShape::MaxDimensions`); a shape of higher
/// rank is left unknown, so a 65536-element shape Const does not make every later node of a
/// chain store 65536 dims.
pub const MAX_RANK: usize = 254;

/// At most this many dims over all outputs of one node (an output counts as at least one): a
/// Split into 65536 parts of a rank-254 tensor is not worth 17 million dims of memory, and
/// an output count from an attribute (Split's num_split, Unpack's num) cannot size anything.
const MAX_NODE_DIMS: usize = 1 << 16;

/// Const values with more elements than this are not decoded for inference: the rules only
/// read integer shapes, axes, paddings and sizes, never weights.
const MAX_VALUE_ELEMENTS: usize = 1 << 16;

/// Values computed by the rules (a Shape, a Pack of sizes) are followed up to this many
/// elements.
const MAX_DERIVED_ELEMENTS: usize = 1 << 12;

/// Library function calls are inferred through their bodies at most this deep...
const MAX_CALL_DEPTH: usize = 16;

/// ...and over at most this many body nodes in all, so a function calling another many times
/// at every level costs a bounded amount: the calls past it stay unknown.
const MAX_CALL_NODES: usize = 1 << 16;

/// Shape-preserving ops besides the unary and identity families.
const SAME_AS_FIRST: &[&str] = &[
    "CheckNumerics",
    "Cast",
    "BiasAdd",
    "BiasAddV1",
    "Softmax",
    "LogSoftmax",
    "AddN",
    "ZerosLike",
    "OnesLike",
    "Enter",
    "Exit",
    "NextIteration",
    "ClipByValue",
    "LRN",
];

/// Ops whose output shape is the value of their first input (a shape tensor).
const SHAPE_FROM_FIRST: &[&str] = &[
    "Fill",
    "Empty",
    "RandomUniform",
    "RandomUniformInt",
    "RandomStandardNormal",
    "TruncatedNormal",
    "StatelessRandomUniform",
    "StatelessRandomNormal",
    "StatelessTruncatedNormal",
];

/// Image resizes: NHWC input, output height and width from the `size` input.
const RESIZES: &[&str] = &[
    "ResizeBilinear",
    "ResizeNearestNeighbor",
    "ResizeBicubic",
    "ResizeArea",
];

/// Output shapes of `node` from fully known input shapes, or `None` when they cannot be known
/// statically; an output whose shape is only partly known is `None` here. Shapes of rank over
/// [`MAX_RANK`] are unknown, and so are all outputs of a node whose shapes would hold more than
/// `MAX_NODE_DIMS` dims together.
pub fn infer(node: &NodeDef, inputs: &[Input<'_>]) -> Option<Shapes> {
    let shapes: Vec<Option<PartialShape>> = inputs
        .iter()
        .map(|i| i.shape.map(|s| s.iter().map(|&d| Some(d)).collect()))
        .collect();
    let values: Vec<Option<PartialValue>> = inputs
        .iter()
        .map(|i| i.value.and_then(PartialValue::of_tensor))
        .collect();
    let known: Vec<Known<'_>> = shapes
        .iter()
        .zip(&values)
        .map(|(s, v)| Known {
            shape: s.as_deref(),
            value: v.as_ref(),
        })
        .collect();
    let shapes = infer_partial(node, &known)?;
    Some(shapes.iter().map(|s| s.as_deref().and_then(full)).collect())
}

/// Output shapes of `node` as far as they can be known statically, each output's rank and
/// dims; `None` when not even the number of outputs is known. The limits of [`infer`] apply.
pub fn infer_partial(node: &NodeDef, inputs: &[Known<'_>]) -> Option<PartialShapes> {
    if inputs
        .iter()
        .any(|i| i.shape.is_some_and(|s| s.len() > MAX_RANK))
    {
        return None;
    }
    let mut shapes = infer_outputs(node, inputs)?;
    for shape in &mut shapes {
        if shape.as_ref().is_some_and(|s| s.len() > MAX_RANK) {
            *shape = None;
        }
    }
    (dims_held(&shapes) <= MAX_NODE_DIMS).then_some(shapes)
}

/// How many dims `shapes` hold, counting each output as at least one.
fn dims_held<T>(shapes: &[Option<Vec<T>>]) -> usize {
    shapes
        .iter()
        .map(|s| s.as_ref().map_or(1, |s| s.len().max(1)))
        .fold(0usize, usize::saturating_add)
}

/// `count` outputs of the shape `piece`, unless they would hold more than [`MAX_NODE_DIMS`]
/// dims together (checked before anything is allocated).
fn repeated(piece: PartialShape, count: usize) -> Option<PartialShapes> {
    let dims = count.checked_mul(piece.len().max(1))?;
    (dims <= MAX_NODE_DIMS).then(|| vec![Some(piece); count])
}

/// The dims of a partial shape when all are known.
fn full(dims: &[Dim]) -> Option<Vec<usize>> {
    dims.iter().copied().collect()
}

/// `shape` checked to have rank `rank`; an unknown rank becomes `rank` unknown dims, as
/// TensorFlow's `WithRank` does for an op that requires that rank. `None` on another rank.
fn with_rank(shape: Option<&[Dim]>, rank: usize) -> Option<PartialShape> {
    match shape {
        Some(s) => (s.len() == rank).then(|| s.to_vec()),
        None => Some(vec![None; rank]),
    }
}

/// One dimension seen twice (two inputs that must agree): the known one, `None` (the outer
/// option) when both are known and differ.
fn merge_dim(a: Dim, b: Dim) -> Option<Dim> {
    match (a, b) {
        (Some(x), Some(y)) => (x == y).then_some(Some(x)),
        (Some(x), None) | (None, Some(x)) => Some(Some(x)),
        (None, None) => Some(None),
    }
}

/// Two shapes that must be equal, merged dim by dim.
fn merge_shapes(a: &[Dim], b: &[Dim]) -> Option<PartialShape> {
    if a.len() != b.len() {
        return None;
    }
    a.iter().zip(b).map(|(&x, &y)| merge_dim(x, y)).collect()
}

/// The shape two partial shapes broadcast to (TensorFlow's rules: an unknown dim against a
/// known one above 1 is that one; against 1 or another unknown it stays unknown), `None` when
/// they cannot broadcast.
fn broadcast_dims(a: &[Dim], b: &[Dim]) -> Option<PartialShape> {
    if let (Some(x), Some(y)) = (full(a), full(b)) {
        let out = broadcast_shape(&x, &y).ok()?;
        return Some(out.into_iter().map(Some).collect());
    }
    let rank = a.len().max(b.len());
    let at = |s: &[Dim], i: usize| {
        if i + s.len() >= rank {
            s[i + s.len() - rank]
        } else {
            Some(1)
        }
    };
    (0..rank)
        .map(|i| match (at(a, i), at(b, i)) {
            (Some(x), Some(y)) if x == y => Some(Some(x)),
            (Some(1), y) | (y, Some(1)) => Some(y),
            (Some(_), Some(_)) => None,
            (Some(x), None) | (None, Some(x)) => Some((x > 1).then_some(x)),
            (None, None) => Some(None),
        })
        .collect()
}

/// The shape a shape tensor (Reshape's `shape`, Fill's `dims`) asks for, as far as it is
/// known: its known elements, unknown dims for its unknown elements and its -1s, and as many
/// unknown dims as it has elements when only its length is known. `None` when not even its
/// length is known, and for a negative size other than -1.
fn shape_from_tensor(input: Option<&Known<'_>>) -> Option<PartialShape> {
    let input = input?;
    if let Some(value) = input.value {
        if value.dims.len() != 1 || value.elements.len() > MAX_RANK {
            return None;
        }
        return value
            .elements
            .iter()
            .map(|&e| match e {
                None | Some(-1) => Some(None),
                Some(v) => geometry::dim(v, "shape").ok().map(Some),
            })
            .collect();
    }
    match input.shape? {
        [Some(n)] if *n <= MAX_RANK => Some(vec![None; *n]),
        _ => None,
    }
}

/// The output shape of a convolution or pooling with input `x` (in the node's layout), a
/// window of `kh` x `kw` and `channels` output channels (`None`: the input's).
fn spatial_output(
    spatial: &Spatial,
    x: &[Dim],
    (kh, kw): (Dim, Dim),
    channels: Option<Dim>,
) -> Option<PartialShape> {
    let [n, a, b, c] = x else { return None };
    let (h, w, in_c) = if spatial.nchw {
        (*b, *c, *a)
    } else {
        (*a, *b, *c)
    };
    let valid_params = spatial.strides.0 > 0
        && spatial.strides.1 > 0
        && spatial.dilations.0 > 0
        && spatial.dilations.1 > 0
        && matches!(spatial.padding.as_str(), "SAME" | "VALID" | "EXPLICIT");
    if !valid_params {
        return None;
    }
    let same = spatial.padding == "SAME";
    let along = |input: Dim, kernel: Dim, stride, dilation, explicit| -> Option<Dim> {
        // SAME's output size does not depend on the window.
        let kernel = kernel.or(same.then_some(1));
        match (input, kernel) {
            (Some(i), Some(k)) => Some(Some(
                geometry::window(i, k, stride, dilation, &spatial.padding, explicit)
                    .ok()?
                    .out,
            )),
            _ => Some(None),
        }
    };
    let oh = along(
        h,
        kh,
        spatial.strides.0,
        spatial.dilations.0,
        spatial.explicit[0],
    )?;
    let ow = along(
        w,
        kw,
        spatial.strides.1,
        spatial.dilations.1,
        spatial.explicit[1],
    )?;
    let out_c = channels.unwrap_or(in_c);
    Some(if spatial.nchw {
        vec![*n, out_c, oh, ow]
    } else {
        vec![*n, oh, ow, out_c]
    })
}

fn infer_outputs(node: &NodeDef, inputs: &[Known<'_>]) -> Option<PartialShapes> {
    let op = node.op.as_str();
    let shape = |i: usize| inputs.get(i).and_then(|input| input.shape);
    let value = |i: usize| inputs.get(i).and_then(|input| input.value);
    let ints = |i: usize| value(i).and_then(PartialValue::known);
    let one = |dims: PartialShape| Some(vec![Some(dims)]);
    if matches!(op, "Placeholder" | "PlaceholderWithDefault") {
        let s = attrs::shape(node, "shape")?;
        if s.unknown_rank {
            return None;
        }
        let dims = s
            .dim
            .iter()
            .map(|d| match d.size {
                -1 => Some(None),
                size => usize::try_from(size).ok().map(Some),
            })
            .collect::<Option<PartialShape>>()?;
        return one(dims);
    }
    if SAME_AS_FIRST.contains(&op) || ops::UNARY.contains(&op) || ops::IDENTITIES.contains(&op) {
        return one(shape(0)?.to_vec());
    }
    if ops::ELEMENTWISE_BINARY.contains(&op) || ops::COMPARISONS.contains(&op) || op == "SelectV2" {
        let mut out = shape(0)?.to_vec();
        for i in 1..inputs.len() {
            out = broadcast_dims(&out, shape(i)?)?;
        }
        return one(out);
    }
    if SHAPE_FROM_FIRST.contains(&op) {
        return one(shape_from_tensor(inputs.first())?);
    }
    if RESIZES.contains(&op) {
        let x = with_rank(shape(0), 4)?;
        let size = shape_from_tensor(inputs.get(1))?;
        let [h, w] = size[..] else { return None };
        return one(vec![x[0], h, w, x[3]]);
    }
    match op {
        "Select" => one(shape(1)?.to_vec()),
        // The loop condition is a scalar whatever its input says.
        "LoopCond" => one(Vec::new()),
        // Both outputs are the data input (one of them is dead at run time).
        "Switch" | "RefSwitch" => {
            let x = shape(0).map(<[Dim]>::to_vec);
            Some(vec![x.clone(), x])
        }
        // The dims all inputs agree on (an input not yet known, as a loop's back edge, makes
        // the output unknown), and the scalar index of the input taken.
        "Merge" | "RefMerge" => {
            let mut out = shape(0).map(<[Dim]>::to_vec);
            for i in 1..inputs.len() {
                out = match (out, shape(i)) {
                    (Some(a), Some(b)) if a.len() == b.len() => Some(
                        a.iter()
                            .zip(b)
                            .map(|(&x, &y)| if x == y { x } else { None })
                            .collect(),
                    ),
                    _ => None,
                };
            }
            Some(vec![out, Some(Vec::new())])
        }
        // Each output is its input (Keras' custom-gradient wrapper, inlined calls).
        "IdentityN" => {
            let dims = (0..inputs.len())
                .map(|i| shape(i).map_or(1, |s| s.len().max(1)))
                .fold(0usize, usize::saturating_add);
            (dims <= MAX_NODE_DIMS).then(|| {
                (0..inputs.len())
                    .map(|i| shape(i).map(<[Dim]>::to_vec))
                    .collect()
            })
        }
        "Shape" => one(vec![Some(shape(0)?.len())]),
        "ShapeN" => Some(
            (0..inputs.len())
                .map(|i| shape(i).map(|s| vec![Some(s.len())]))
                .collect(),
        ),
        "Size" | "Rank" => one(Vec::new()),
        "FusedBatchNorm" | "FusedBatchNormV2" | "FusedBatchNormV3" => {
            let x = shape(0)?.to_vec();
            let c = shape(1).map(<[Dim]>::to_vec);
            let mut out = vec![Some(x)];
            out.extend(std::iter::repeat_n(c, 4));
            if op == "FusedBatchNormV3" {
                // reserve_space_3: its shape is the kernel's business (TensorFlow leaves it
                // unknown too).
                out.push(None);
            }
            Some(out)
        }
        "MatMul" => {
            let (a, b) = (with_rank(shape(0), 2)?, with_rank(shape(1), 2)?);
            let m = if attrs::bool(node, "transpose_a").unwrap_or(false) {
                a[1]
            } else {
                a[0]
            };
            let n = if attrs::bool(node, "transpose_b").unwrap_or(false) {
                b[0]
            } else {
                b[1]
            };
            one(vec![m, n])
        }
        "BatchMatMul" | "BatchMatMulV2" | "BatchMatMulV3" => {
            let (a, b) = (shape(0)?, shape(1)?);
            if a.len() < 2 || b.len() < 2 {
                return None;
            }
            let mut out = broadcast_dims(&a[..a.len() - 2], &b[..b.len() - 2])?;
            let m = if attrs::bool(node, "adj_x").unwrap_or(false) {
                a[a.len() - 1]
            } else {
                a[a.len() - 2]
            };
            let n = if attrs::bool(node, "adj_y").unwrap_or(false) {
                b[b.len() - 2]
            } else {
                b[b.len() - 1]
            };
            out.extend([m, n]);
            one(out)
        }
        "Conv2D" | "DepthwiseConv2dNative" => {
            let [kh, kw, in_c, out] = shape(1)? else {
                return None;
            };
            let channels = if op == "Conv2D" {
                *out
            } else {
                match (in_c, out) {
                    (Some(c), Some(m)) => Some(geometry::mul(*c, *m, "channels").ok()?),
                    _ => None,
                }
            };
            let spatial = Spatial::from_node(node, "strides").ok()?;
            one(spatial_output(
                &spatial,
                &with_rank(shape(0), 4)?,
                (*kh, *kw),
                Some(channels),
            )?)
        }
        "MaxPool" | "AvgPool" => {
            let spatial = Spatial::from_node(node, "strides").ok()?;
            let k = attrs::ints(node, "ksize")?;
            let [_, b, c, d] = k.as_slice() else {
                return None;
            };
            let (kh, kw) = if spatial.nchw { (*c, *d) } else { (*b, *c) };
            let window = (
                Some(geometry::dim(kh, "ksize").ok()?),
                Some(geometry::dim(kw, "ksize").ok()?),
            );
            one(spatial_output(
                &spatial,
                &with_rank(shape(0), 4)?,
                window,
                None,
            )?)
        }
        "Reshape" => one(reshape(shape(0), shape_from_tensor(inputs.get(1))?)?),
        "ExpandDims" => {
            let x = shape(0)?;
            let [axis] = ints(1)?[..] else { return None };
            let at = geometry::axis(axis, x.len() + 1).ok()?;
            let mut out = x.to_vec();
            out.insert(at, Some(1));
            one(out)
        }
        "Squeeze" => {
            let x = shape(0)?;
            let axes = attrs::ints(node, "squeeze_dims")
                .or_else(|| attrs::ints(node, "axis"))
                .unwrap_or_default();
            let axes = axes
                .iter()
                .map(|&a| geometry::axis(a, x.len()).ok())
                .collect::<Option<Vec<_>>>()?;
            // Without axes, every 1 goes: an unknown dim may be one.
            if axes.is_empty() && x.contains(&None) {
                return None;
            }
            let squeezed = |i: usize| {
                if axes.is_empty() {
                    x[i] == Some(1)
                } else {
                    axes.contains(&i)
                }
            };
            if axes.iter().any(|&a| x[a].is_some_and(|d| d != 1)) {
                return None;
            }
            one((0..x.len())
                .filter(|&i| !squeezed(i))
                .map(|i| x[i])
                .collect())
        }
        "Transpose" => {
            let perm = ints(1)?;
            let x = with_rank(shape(0), perm.len())?;
            let mut seen = vec![false; x.len()];
            let mut out = Vec::with_capacity(x.len());
            for &p in &perm {
                let p = geometry::axis(p, x.len()).ok()?;
                if std::mem::replace(&mut seen[p], true) {
                    return None;
                }
                out.push(x[p]);
            }
            one(out)
        }
        "Tile" => {
            let x = shape(0)?;
            let multiples = value(1)?;
            if multiples.elements.len() != x.len() {
                return None;
            }
            let out = x
                .iter()
                .zip(&multiples.elements)
                .map(|(&d, &m)| {
                    let m = m.map(|m| geometry::dim(m, "multiples")).transpose().ok()?;
                    Some(match (d, m) {
                        (_, Some(0)) | (Some(0), _) => Some(0),
                        (Some(d), Some(m)) => Some(geometry::mul(d, m, "Tile").ok()?),
                        _ => None,
                    })
                })
                .collect::<Option<PartialShape>>()?;
            one(out)
        }
        "Pad" | "PadV2" | "MirrorPad" => {
            let p = value(1)?;
            if p.elements.len() % 2 != 0 {
                return None;
            }
            let x = with_rank(shape(0), p.elements.len() / 2)?;
            let out = x
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    let pad = |k: usize| {
                        p.elements[k]
                            .map(|v| geometry::dim(v, "paddings"))
                            .transpose()
                            .ok()
                    };
                    let (before, after) = (pad(2 * i)?, pad(2 * i + 1)?);
                    Some(match (d, before, after) {
                        (Some(d), Some(before), Some(after)) => Some(
                            geometry::add(geometry::add(d, before, "Pad").ok()?, after, "Pad")
                                .ok()?,
                        ),
                        _ => None,
                    })
                })
                .collect::<Option<PartialShape>>()?;
            one(out)
        }
        "BroadcastTo" => {
            let target = shape_from_tensor(inputs.get(1))?;
            let x = shape(0)?;
            if x.len() > target.len() {
                return None;
            }
            // Each input dim must be 1 or the target's.
            let offset = target.len() - x.len();
            let fits = x
                .iter()
                .enumerate()
                .all(|(i, &d)| match (d, target[i + offset]) {
                    (Some(d), Some(t)) => d == 1 || d == t,
                    _ => true,
                });
            fits.then(|| vec![Some(target)])
        }
        "Slice" => {
            let x = shape(0)?;
            let (begin, size) = (value(1)?, value(2)?);
            if begin.elements.len() != x.len() || size.elements.len() != x.len() {
                return None;
            }
            let out = x
                .iter()
                .zip(begin.elements.iter().zip(&size.elements))
                .map(|(&d, (&b, &s))| {
                    let b = b.map(|b| geometry::dim(b, "begin")).transpose().ok()?;
                    match s {
                        Some(-1) => Some(match (d, b) {
                            (Some(d), Some(b)) => Some(d.checked_sub(b)?),
                            _ => None,
                        }),
                        Some(s) => {
                            let s = geometry::dim(s, "size").ok()?;
                            if let (Some(d), Some(b)) = (d, b) {
                                if geometry::add(b, s, "Slice").ok()? > d {
                                    return None;
                                }
                            }
                            Some(Some(s))
                        }
                        None => Some(None),
                    }
                })
                .collect::<Option<PartialShape>>()?;
            one(out)
        }
        "StridedSlice" => {
            let x = shape(0)?;
            let plan = strided_slice_plan(
                &stand_ins(x),
                &ints(1)?,
                &ints(2)?,
                &ints(3)?,
                SliceMasks::of(node),
            )
            .ok()?;
            one(plan
                .iter()
                .filter(|a| a.kept)
                .map(|a| match a.input_axis {
                    Some(axis) => x[axis].map(|_| a.len),
                    None => Some(a.len),
                })
                .collect())
        }
        "SpaceToBatchND" | "BatchToSpaceND" => {
            let x = shape(0)?;
            let block = ints(1)?;
            let pads = ints(2)?;
            let m = block.len();
            if m == 0 || x.len() < m + 1 || pads.len() != m.checked_mul(2)? {
                return None;
            }
            let block = block
                .iter()
                .map(|&b| geometry::dim(b, "block_shape").ok().filter(|&b| b > 0))
                .collect::<Option<Vec<_>>>()?;
            let product = geometry::element_count(&block).ok()?;
            let mut out = x.to_vec();
            for (i, &b) in block.iter().enumerate() {
                let before = geometry::dim(pads[2 * i], "paddings").ok()?;
                let after = geometry::dim(pads[2 * i + 1], "paddings").ok()?;
                let Some(d) = x[i + 1] else { continue };
                out[i + 1] = Some(if op == "SpaceToBatchND" {
                    let padded =
                        geometry::add(geometry::add(d, before, "").ok()?, after, "").ok()?;
                    (padded % b == 0).then(|| padded / b)?
                } else {
                    geometry::mul(d, b, "")
                        .ok()?
                        .checked_sub(before)?
                        .checked_sub(after)?
                });
            }
            out[0] = match x[0] {
                Some(n) if op == "SpaceToBatchND" => Some(geometry::mul(n, product, "").ok()?),
                Some(n) => Some((n % product == 0).then(|| n / product)?),
                None => None,
            };
            one(out)
        }
        "GatherV2" => {
            let (params, indices) = (shape(0)?, shape(1)?);
            let [axis] = ints(2)?[..] else { return None };
            let axis = geometry::axis(axis, params.len()).ok()?;
            let batch_dims = usize::try_from(attrs::int(node, "batch_dims").unwrap_or(0)).ok()?;
            if batch_dims > axis || batch_dims > indices.len() {
                return None;
            }
            let mut out = params[..axis].to_vec();
            out.extend(&indices[batch_dims..]);
            out.extend(&params[axis + 1..]);
            one(out)
        }
        "Split" => {
            let x = shape(1)?;
            let [axis] = ints(0)?[..] else { return None };
            let axis = geometry::axis(axis, x.len()).ok()?;
            let parts = usize::try_from(attrs::int(node, "num_split")?).ok()?;
            if parts == 0 || x[axis].is_some_and(|d| d % parts != 0) {
                return None;
            }
            let mut piece = x.to_vec();
            piece[axis] = x[axis].map(|d| d / parts);
            repeated(piece, parts)
        }
        "SplitV" => {
            let x = shape(0)?;
            let sizes = ints(1)?;
            let [axis] = ints(2)?[..] else { return None };
            let axis = geometry::axis(axis, x.len()).ok()?;
            if sizes.is_empty() || sizes.len().checked_mul(x.len())? > MAX_NODE_DIMS {
                return None;
            }
            let sizes: Vec<Dim> = match x[axis] {
                Some(total) => dims_with_one_unknown(&sizes, total)?
                    .into_iter()
                    .map(Some)
                    .collect(),
                None => sizes
                    .iter()
                    .map(|&s| match s {
                        -1 => Some(None),
                        s => geometry::dim(s, "size").ok().map(Some),
                    })
                    .collect::<Option<_>>()?,
            };
            Some(
                sizes
                    .into_iter()
                    .map(|s| {
                        let mut piece = x.to_vec();
                        piece[axis] = s;
                        Some(piece)
                    })
                    .collect(),
            )
        }
        "Unpack" => {
            let x = shape(0)?;
            let axis = geometry::axis(attrs::int(node, "axis").unwrap_or(0), x.len()).ok()?;
            let mut piece = x.to_vec();
            piece.remove(axis);
            let count = match x[axis] {
                Some(d) => d,
                None => usize::try_from(attrs::int(node, "num")?).ok()?,
            };
            repeated(piece, count)
        }
        "Pack" => {
            // The inputs' shapes must agree; those of unknown rank say nothing.
            let mut first: Option<PartialShape> = None;
            for i in 0..inputs.len() {
                if let Some(s) = shape(i) {
                    first = Some(match first {
                        Some(f) => merge_shapes(&f, s)?,
                        None => s.to_vec(),
                    });
                }
            }
            let first = first?;
            let axis =
                geometry::axis(attrs::int(node, "axis").unwrap_or(0), first.len() + 1).ok()?;
            let mut out = first;
            out.insert(axis, Some(inputs.len()));
            one(out)
        }
        "ConcatV2" | "Concat" => {
            let (parts, axis_input) = if op == "ConcatV2" {
                (0..inputs.len().checked_sub(1)?, inputs.len() - 1)
            } else {
                (1..inputs.len(), 0)
            };
            let [axis] = ints(axis_input)?[..] else {
                return None;
            };
            let first = shape(parts.start)?;
            let axis = geometry::axis(axis, first.len()).ok()?;
            let mut out = first.to_vec();
            out[axis] = Some(0);
            for i in parts {
                let s = shape(i)?;
                if s.len() != first.len() {
                    return None;
                }
                for k in (0..s.len()).filter(|&k| k != axis) {
                    out[k] = merge_dim(out[k], s[k])?;
                }
                out[axis] = match (out[axis], s[axis]) {
                    (Some(a), Some(b)) => Some(geometry::add(a, b, "Concat").ok()?),
                    _ => None,
                };
            }
            one(out)
        }
        "Sum" | "Prod" | "Mean" | "Max" | "Min" | "All" | "Any" | "EuclideanNorm" => {
            let x = shape(0)?;
            let axes = ints(1)?
                .iter()
                .map(|&a| geometry::axis(a, x.len()).ok())
                .collect::<Option<Vec<_>>>()?;
            let keep = attrs::bool(node, "keep_dims").unwrap_or(false);
            one((0..x.len())
                .filter_map(|i| match (axes.contains(&i), keep) {
                    (false, _) => Some(x[i]),
                    (true, true) => Some(Some(1)),
                    (true, false) => None,
                })
                .collect())
        }
        "ArgMax" | "ArgMin" => {
            let x = shape(0)?;
            let [axis] = ints(1)?[..] else { return None };
            let axis = geometry::axis(axis, x.len()).ok()?;
            one((0..x.len()).filter(|&i| i != axis).map(|i| x[i]).collect())
        }
        "OneHot" => {
            let indices = shape(0)?;
            let [depth] = ints(1)?[..] else { return None };
            let depth = geometry::dim(depth, "depth").ok()?;
            let axis = attrs::int(node, "axis").unwrap_or(-1);
            let at = if axis == -1 {
                indices.len()
            } else {
                geometry::axis(axis, indices.len() + 1).ok()?
            };
            let mut out = indices.to_vec();
            out.insert(at, Some(depth));
            one(out)
        }
        "Einsum" => one(einsum(node, inputs)?),
        _ => None,
    }
}

/// Dims standing in for `x` where only the structure of a computation matters (which axes a
/// strided slice keeps): unknown dims become the largest addressable size, so range checks
/// pass, and what is computed from them is discarded.
fn stand_ins(x: &[Dim]) -> Vec<usize> {
    const UNKNOWN: usize = isize::MAX as usize;
    x.iter().map(|d| d.unwrap_or(UNKNOWN)).collect()
}

/// Sizes where at most one is -1, which takes what is left of `total`.
fn dims_with_one_unknown(sizes: &[i64], total: usize) -> Option<Vec<usize>> {
    let unknown: Vec<usize> = (0..sizes.len()).filter(|&i| sizes[i] == -1).collect();
    if unknown.len() > 1 {
        return None;
    }
    let mut known_sum = 0usize;
    for (i, &s) in sizes.iter().enumerate() {
        if !unknown.contains(&i) {
            known_sum = geometry::add(known_sum, geometry::dim(s, "size").ok()?, "").ok()?;
        }
    }
    let mut out: Vec<usize> = sizes
        .iter()
        .map(|&s| usize::try_from(s).unwrap_or(0))
        .collect();
    match unknown.first() {
        Some(&k) => out[k] = total.checked_sub(known_sum)?,
        None if known_sum != total => return None,
        None => {}
    }
    Some(out)
}

/// Reshape's output: the requested dims, with the one unknown (a -1, or a size the shape
/// tensor does not know) resolved when the input's element count is known.
fn reshape(input: Option<&[Dim]>, requested: PartialShape) -> Option<PartialShape> {
    let unknown: Vec<usize> = (0..requested.len())
        .filter(|&i| requested[i].is_none())
        .collect();
    let mut known_product = 1usize;
    for d in requested.iter().flatten() {
        known_product = geometry::mul(known_product, *d, "").ok()?;
    }
    let total = input
        .and_then(full)
        .map(|dims| geometry::element_count(&dims))
        .transpose()
        .ok()?;
    let mut out = requested;
    match (unknown.as_slice(), total) {
        ([k], Some(total)) => {
            if known_product == 0 || total % known_product != 0 {
                return None;
            }
            out[*k] = Some(total / known_product);
        }
        ([], Some(total)) if total != known_product => return None,
        _ => {}
    }
    Some(out)
}

/// Einsum's output shape for equations without an ellipsis.
fn einsum(node: &NodeDef, inputs: &[Known<'_>]) -> Option<PartialShape> {
    let equation = attrs::string(node, "equation")?;
    if equation.contains('.') {
        return None;
    }
    let (lhs, rhs) = equation.split_once("->")?;
    let operands: Vec<&str> = lhs.split(',').map(str::trim).collect();
    if operands.len() != inputs.len() {
        return None;
    }
    let mut sizes: HashMap<char, Dim> = HashMap::new();
    for (labels, input) in operands.iter().zip(inputs) {
        let dims = input.shape?;
        if labels.chars().count() != dims.len() {
            return None;
        }
        for (label, &d) in labels.chars().zip(dims) {
            let size = sizes.entry(label).or_insert(d);
            *size = match (*size, d) {
                (Some(a), Some(b)) if a == b => Some(a),
                // A 1 broadcasts against the other.
                (Some(1), other) | (other, Some(1)) => other,
                (Some(_), Some(_)) => return None,
                (Some(a), None) | (None, Some(a)) => Some(a),
                (None, None) => None,
            };
        }
    }
    rhs.trim().chars().map(|l| sizes.get(&l).copied()).collect()
}

/// The value of `node`'s first output as far as it follows from its inputs without running
/// anything: the shape arithmetic graphs do on small integer tensors (Shape, Size, Rank, Pack
/// of sizes, Concat, Gather, StridedSlice, Slice, Prod, Cast, Reshape and the identities).
/// `output` is the output's inferred shape; a value that disagrees with it is not kept.
pub fn infer_value(
    node: &NodeDef,
    inputs: &[Known<'_>],
    output: Option<&[Dim]>,
) -> Option<PartialValue> {
    let value = value_of(node, inputs, output)?;
    if value.elements.len() > MAX_DERIVED_ELEMENTS {
        return None;
    }
    let dims_agree = output.is_some_and(|o| {
        o.len() == value.dims.len() && o.iter().zip(&value.dims).all(|(a, &b)| *a == Some(b))
    });
    (dims_agree && geometry::element_count(&value.dims).ok()? == value.elements.len())
        .then_some(value)
}

/// The elements of a 1-D value.
fn vector_elements(value: &PartialValue) -> Option<&[Option<i64>]> {
    (value.dims.len() == 1).then_some(value.elements.as_slice())
}

fn value_of(node: &NodeDef, inputs: &[Known<'_>], output: Option<&[Dim]>) -> Option<PartialValue> {
    let op = node.op.as_str();
    let shape = |i: usize| inputs.get(i).and_then(|input| input.shape);
    let value = |i: usize| inputs.get(i).and_then(|input| input.value);
    let ints = |i: usize| value(i).and_then(PartialValue::known);
    let as_i64 = |d: Dim| d.and_then(|d| geometry::dim_i64(d).ok());
    match op {
        "Shape" => {
            let x = shape(0)?;
            let int32 = attrs::dtype(node, "out_type").is_some_and(|t| t == DataType::DtInt32);
            PartialValue::vector(
                x.iter()
                    .map(|&d| as_i64(d).filter(|&v| !int32 || i32::try_from(v).is_ok()))
                    .collect(),
            )
        }
        "Size" => {
            let x = shape(0)?;
            let count = if x.contains(&Some(0)) {
                Some(0)
            } else {
                full(x).and_then(|dims| geometry::element_count(&dims).ok())
            };
            Some(PartialValue::scalar(as_i64(Some(count?))))
        }
        "Rank" => Some(PartialValue::scalar(as_i64(Some(shape(0)?.len())))),
        "Identity" | "StopGradient" | "Snapshot" | "PreventGradient" | "EnsureShape" => {
            value(0).cloned()
        }
        "Cast" => {
            let v = value(0)?;
            let fits: fn(i64) -> bool = match attrs::dtype(node, "DstT")? {
                DataType::DtInt64 => |_| true,
                DataType::DtInt32 => |v| i32::try_from(v).is_ok(),
                _ => return None,
            };
            let integer_source = matches!(
                attrs::dtype(node, "SrcT"),
                Some(DataType::DtInt32 | DataType::DtInt64)
            );
            integer_source.then(|| PartialValue {
                dims: v.dims.clone(),
                elements: v.elements.iter().map(|e| e.filter(|&e| fits(e))).collect(),
            })
        }
        "Pack" => {
            if attrs::int(node, "axis").unwrap_or(0) != 0 || inputs.len() > MAX_DERIVED_ELEMENTS {
                return None;
            }
            let elements = inputs
                .iter()
                .map(|input| match (input.value, input.shape) {
                    (Some(v), _) if v.dims.is_empty() => Some(v.elements[0]),
                    (None, Some([])) => Some(None),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            PartialValue::vector(elements)
        }
        "ConcatV2" | "Concat" => {
            let (parts, axis_input) = if op == "ConcatV2" {
                (0..inputs.len().checked_sub(1)?, inputs.len() - 1)
            } else {
                (1..inputs.len(), 0)
            };
            if !matches!(ints(axis_input)?[..], [0] | [-1]) {
                return None;
            }
            let mut elements = Vec::new();
            for i in parts {
                match (value(i), shape(i)) {
                    (Some(v), _) => elements.extend(vector_elements(v)?),
                    (None, Some([Some(n)])) if *n <= MAX_DERIVED_ELEMENTS => {
                        elements.extend(std::iter::repeat_n(None, *n));
                    }
                    _ => return None,
                }
                if elements.len() > MAX_DERIVED_ELEMENTS {
                    return None;
                }
            }
            PartialValue::vector(elements)
        }
        "GatherV2" | "Gather" => {
            let params = vector_elements(value(0)?)?;
            if op == "GatherV2"
                && (!matches!(ints(2)?[..], [0] | [-1])
                    || attrs::int(node, "batch_dims").unwrap_or(0) != 0)
            {
                return None;
            }
            let indices = value(1)?;
            let elements = indices
                .elements
                .iter()
                .map(|&i| params.get(usize::try_from(i?).ok()?).copied())
                .collect::<Option<Vec<_>>>()?;
            Some(PartialValue {
                dims: indices.dims.clone(),
                elements,
            })
        }
        "StridedSlice" => {
            let x = vector_elements(value(0)?)?;
            let plan = strided_slice_plan(
                &[x.len()],
                &ints(1)?,
                &ints(2)?,
                &ints(3)?,
                SliceMasks::of(node),
            )
            .ok()?;
            let [axis] = plan.as_slice() else {
                return None;
            };
            // A new axis reads nothing of the input.
            axis.input_axis?;
            let element = |k: usize| -> Option<Option<i64>> {
                let offset = i64::try_from(k).ok()?.checked_mul(axis.stride)?;
                let at = i64::try_from(axis.start).ok()?.checked_add(offset)?;
                x.get(usize::try_from(at).ok()?).copied()
            };
            if !axis.kept {
                return Some(PartialValue::scalar(element(0)?));
            }
            if axis.len > MAX_DERIVED_ELEMENTS {
                return None;
            }
            PartialValue::vector((0..axis.len).map(element).collect::<Option<_>>()?)
        }
        "Slice" => {
            let x = vector_elements(value(0)?)?;
            let ([begin], [size]) = (&ints(1)?[..], &ints(2)?[..]) else {
                return None;
            };
            let begin = usize::try_from(*begin).ok()?;
            let end = match *size {
                -1 => x.len(),
                s => begin.checked_add(usize::try_from(s).ok()?)?,
            };
            PartialValue::vector(x.get(begin..end)?.to_vec())
        }
        "Prod" | "Sum" => {
            let x = value(0)?;
            let axes = ints(1)?;
            let whole = match x.dims.len() {
                0 => axes.is_empty(),
                1 => matches!(axes[..], [0] | [-1]),
                _ => false,
            };
            if !whole || attrs::bool(node, "keep_dims").unwrap_or(false) {
                return None;
            }
            let result = if op == "Prod" && x.elements.contains(&Some(0)) {
                Some(0)
            } else {
                x.elements
                    .iter()
                    .try_fold(if op == "Prod" { 1i64 } else { 0 }, |acc, &e| {
                        if op == "Prod" {
                            acc.checked_mul(e?)
                        } else {
                            acc.checked_add(e?)
                        }
                    })
            };
            // An int32 result past i32 wraps in TensorFlow: not a size to be trusted.
            let int32 = attrs::dtype(node, "T").is_some_and(|t| t == DataType::DtInt32);
            Some(PartialValue::scalar(
                result.filter(|&r| !int32 || i32::try_from(r).is_ok()),
            ))
        }
        // The same elements in the output's shape (infer_value checks the count).
        "Reshape" | "ExpandDims" | "Squeeze" => Some(PartialValue {
            dims: full(output?)?,
            elements: value(0)?.elements.clone(),
        }),
        _ => None,
    }
}

/// A Const's shape, read from its TensorProto without decoding it, and its value when it is
/// a small integer tensor (the only values the rules read).
fn const_shape_and_value(node: &NodeDef) -> Option<(Vec<usize>, Option<PartialValue>)> {
    if node.op != "Const" {
        return None;
    }
    let proto = attrs::tensor(node, "value")?;
    let dims = dims_of(proto.tensor_shape.as_ref()).ok()?;
    let integer = matches!(
        DataType::try_from(crate::tensor::base_dtype(proto.dtype)),
        Ok(DataType::DtInt32
            | DataType::DtInt64
            | DataType::DtInt16
            | DataType::DtInt8
            | DataType::DtUint8
            | DataType::DtUint16
            | DataType::DtUint32)
    );
    let small = geometry::element_count(&dims).is_ok_and(|n| n <= MAX_VALUE_ELEMENTS);
    let value = if integer && small {
        edit::const_value(node).and_then(|t| PartialValue::of_tensor(&t))
    } else {
        None
    };
    Some((dims, value))
}

/// The statically known output shapes of a graph's nodes, by node name; the memory they take
/// is held on the budget for as long as they are kept.
#[derive(Debug, Default)]
pub struct StaticShapes {
    /// Every node whose output count is known: each output's rank and dims, as far as known.
    partial: HashMap<String, PartialShapes>,
    /// The nodes with at least one fully known output shape.
    shapes: HashMap<String, Shapes>,
    _held: Vec<crate::budget::Charge>,
}

impl StaticShapes {
    /// The output shapes of node `name`, those fully known (`None` when none is).
    pub fn get(&self, name: &str) -> Option<&Shapes> {
        self.shapes.get(name)
    }

    /// The shape of `tensor` ("node" or "node:port"), if fully known.
    pub fn of(&self, tensor: &str) -> Option<&[usize]> {
        let parsed = InputRef::parse(tensor);
        self.shapes
            .get(parsed.node)?
            .get(parsed.port as usize)?
            .as_deref()
    }

    /// The output shapes of node `name`, as far as known (`None` when not even the number of
    /// outputs is).
    pub fn partial(&self, name: &str) -> Option<&PartialShapes> {
        self.partial.get(name)
    }

    /// The shape of `tensor` ("node" or "node:port"), if its rank is known.
    pub fn partial_of(&self, tensor: &str) -> Option<&[Dim]> {
        let parsed = InputRef::parse(tensor);
        self.partial
            .get(parsed.node)?
            .get(parsed.port as usize)?
            .as_deref()
    }
}

/// Memory one node's entries take: its name (twice), its shapes in both maps (a partial dim
/// is an `Option<usize>`, twice a full one) and the maps' bookkeeping.
fn entry_bytes(name: &str, shapes: &PartialShapes) -> u64 {
    const ENTRY: usize = 64;
    let vecs = shapes.len().saturating_add(1) * std::mem::size_of::<Option<Vec<usize>>>();
    let per_dim = std::mem::size_of::<Dim>() + std::mem::size_of::<usize>();
    let dims = dims_held(shapes).saturating_mul(per_dim);
    (2 * (ENTRY + name.len() + vecs)).saturating_add(dims) as u64
}

/// Output shapes of every node that can be known statically (Const values and the rules
/// above, from Placeholder shapes), by node name. Weights are never decoded: Const shapes come
/// from their protos, and only small integer values are read. A (Stateful)PartitionedCall of a
/// library function gets the shapes of its body's results, inferred from its arguments'.
///
/// What is kept is held on the current budget (a default one sized by the graph when none is
/// entered); when it has no room, the remaining nodes stay unknown and the refusal is recorded
/// on the budget, where the transform running this reports it.
pub fn infer_graph(graph: &GraphDef) -> StaticShapes {
    crate::budget::enter_or_default(
        || {
            use prost::Message as _;
            graph.encoded_len() as u64
        },
        || infer_graph_in_budget(graph),
    )
}

fn infer_graph_in_budget(graph: &GraphDef) -> StaticShapes {
    let order = inference_order(&graph.node);
    let mut inference = Inference {
        functions: graph
            .library
            .iter()
            .flat_map(|l| l.function.iter())
            .filter_map(|f| f.signature.as_ref().map(|s| (s.name.as_str(), f)))
            .collect(),
        call_nodes_left: MAX_CALL_NODES,
        calls: HashMap::new(),
        held: Vec::new(),
    };
    let mut scope = Scope::default();
    inference.run(&graph.node, &order, &mut scope, 0);
    let Scope { partial, held, .. } = scope;
    let shapes = partial
        .iter()
        .filter_map(|(name, outputs)| {
            let known: Shapes = outputs
                .iter()
                .map(|s| s.as_deref().and_then(full))
                .collect();
            known
                .iter()
                .any(Option::is_some)
                .then(|| (name.clone(), known))
        })
        .collect();
    StaticShapes {
        partial,
        shapes,
        _held: held,
    }
}

/// The order shapes are inferred in: each node after all its inputs, except that a Merge does
/// not wait for a NextIteration (a loop's back edge: unknown when the Merge is inferred, as in
/// TensorFlow's importer), while it does wait for both branches of a conditional. Inputs from
/// outside `nodes` are taken as done; nodes on other cycles come last, in file order.
fn inference_order(nodes: &[NodeDef]) -> Vec<usize> {
    let index = crate::graph::name_index(nodes);
    let mut pending = vec![0usize; nodes.len()];
    let mut readers: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        let merge = matches!(node.op.as_str(), "Merge" | "RefMerge");
        for input in &node.input {
            let Some(&producer) = index.get(InputRef::parse(input).node) else {
                continue;
            };
            let back_edge = merge
                && matches!(
                    nodes[producer].op.as_str(),
                    "NextIteration" | "RefNextIteration"
                );
            if !back_edge {
                pending[i] += 1;
                readers[producer].push(i);
            }
        }
    }
    let mut order = Vec::with_capacity(nodes.len());
    let mut ready: std::collections::VecDeque<usize> =
        (0..nodes.len()).filter(|&i| pending[i] == 0).collect();
    let mut done = vec![false; nodes.len()];
    while let Some(i) = ready.pop_front() {
        order.push(i);
        done[i] = true;
        for &r in &readers[i] {
            pending[r] -= 1;
            if pending[r] == 0 {
                ready.push_back(r);
            }
        }
    }
    order.extend((0..nodes.len()).filter(|&i| !done[i]));
    order
}

/// What is known of the nodes of one graph or function body.
#[derive(Default)]
struct Scope {
    partial: HashMap<String, PartialShapes>,
    values: HashMap<String, PartialValue>,
    held: Vec<crate::budget::Charge>,
}

/// A call as far as its body's shapes depend on it: the function, and the shape and value of
/// each argument.
type CallKey = (String, Vec<(Option<PartialShape>, Option<PartialValue>)>);

/// Inference over a graph and the function bodies its calls reach.
struct Inference<'g> {
    functions: HashMap<&'g str, &'g FunctionDef>,
    /// Body nodes that calls may still have inferred ([`MAX_CALL_NODES`]).
    call_nodes_left: usize,
    /// The calls inferred (their outputs' shapes) and those being inferred (`None`): a call
    /// like one before is not inferred again, and a function calling itself with the same
    /// arguments' shapes gets unknown shapes at once.
    calls: HashMap<CallKey, Option<PartialShapes>>,
    /// The memory `calls` takes, held on the budget.
    held: Vec<crate::budget::Charge>,
}

impl<'g> Inference<'g> {
    /// Infers `nodes` in `order` into `scope`; stops (leaving the rest unknown) when the
    /// budget has no room.
    fn run(&mut self, nodes: &[NodeDef], order: &[usize], scope: &mut Scope, depth: usize) {
        for &i in order {
            let Some(node) = nodes.get(i) else {
                continue;
            };
            let (shapes, value) = match const_shape_and_value(node) {
                Some((dims, value)) => (
                    Some(vec![Some(dims.into_iter().map(Some).collect())]),
                    value,
                ),
                None => match self.callee(node) {
                    Some(function) => (self.call(node, function, scope, depth), None),
                    None => {
                        let inputs: Vec<Known<'_>> = edit::data_inputs(node)
                            .into_iter()
                            .map(|input| {
                                let parsed = InputRef::parse(input);
                                Known {
                                    shape: scope
                                        .partial
                                        .get(parsed.node)
                                        .and_then(|s| s.get(parsed.port as usize))
                                        .and_then(Option::as_deref),
                                    value: (parsed.port == 0)
                                        .then(|| scope.values.get(parsed.node))
                                        .flatten(),
                                }
                            })
                            .collect();
                        let shapes = infer_partial(node, &inputs);
                        let output = shapes.as_ref().and_then(|s| s.first()?.as_deref());
                        let value = infer_value(node, &inputs, output);
                        (shapes, value)
                    }
                },
            };
            let Some(shapes) = shapes else {
                continue;
            };
            let value_bytes = value.as_ref().map_or(0, PartialValue::memory_bytes);
            match crate::budget::hold(entry_bytes(&node.name, &shapes).saturating_add(value_bytes))
            {
                Ok(charge) => scope.held.push(charge),
                Err(_) => break,
            }
            if let Some(value) = value {
                scope.values.insert(node.name.clone(), value);
            }
            scope.partial.insert(node.name.clone(), shapes);
        }
    }

    /// The library function `node` calls, if it is a (Stateful)PartitionedCall of one.
    fn callee(&self, node: &NodeDef) -> Option<&'g FunctionDef> {
        if !matches!(
            node.op.as_str(),
            "PartitionedCall" | "StatefulPartitionedCall"
        ) {
            return None;
        }
        match node.attr.get("f")?.value.as_ref()? {
            attr_value::Value::Func(f) => self.functions.get(f.name.as_str()).copied(),
            _ => None,
        }
    }

    /// The output shapes of `call` from its function's body, inlined (as
    /// `inline_partitionedcall` would, the call becoming an IdentityN of the results) and
    /// inferred from the shapes and values of the call's inputs.
    fn call(
        &mut self,
        call: &NodeDef,
        function: &FunctionDef,
        outer: &Scope,
        depth: usize,
    ) -> Option<PartialShapes> {
        let arguments = edit::data_inputs(call)
            .into_iter()
            .map(|input| {
                let parsed = InputRef::parse(input);
                let shapes = outer.partial.get(parsed.node);
                let shape = shapes.and_then(|s| s.get(parsed.port as usize)?.clone());
                let value = (parsed.port == 0)
                    .then(|| outer.values.get(parsed.node).cloned())
                    .flatten();
                (shape, value)
            })
            .collect();
        let name = function.signature.as_ref()?.name.clone();
        let key = (name, arguments);
        if let Some(known) = self.calls.get(&key) {
            return known.clone();
        }
        // Each call costs at least one node, so calls of empty functions are bounded too.
        let cost = function.node_def.len().saturating_add(1);
        if depth >= MAX_CALL_DEPTH || cost > self.call_nodes_left {
            return None;
        }
        self.call_nodes_left -= cost;
        // The key is kept (twice while the body is inferred): its memory is held.
        let key_bytes = key
            .1
            .iter()
            .fold(key.0.len() as u64, |sum, (shape, value)| {
                let dims = shape.as_ref().map_or(0, Vec::len) * std::mem::size_of::<Dim>();
                let value = value.as_ref().map_or(0, PartialValue::memory_bytes);
                sum.saturating_add(dims as u64).saturating_add(value)
            });
        self.held
            .push(crate::budget::hold(key_bytes.saturating_mul(2).saturating_add(64)).ok()?);
        self.calls.insert(key.clone(), None);
        let outputs = self.body_shapes(call, function, outer, depth);
        self.calls.insert(key, outputs.clone());
        outputs
    }

    /// [`Inference::call`]'s inference of the inlined body.
    fn body_shapes(
        &mut self,
        call: &NodeDef,
        function: &FunctionDef,
        outer: &Scope,
        depth: usize,
    ) -> Option<PartialShapes> {
        let body = inline::inline_call(call, function).ok()?;
        let memory: u64 = body.iter().map(crate::graph::node_memory).sum();
        let _body_charge = crate::budget::hold(memory).ok()?;
        // The body reads the outer nodes the call reads: their shapes and values come along.
        let defined: HashSet<&str> = body.iter().map(|n| n.name.as_str()).collect();
        let mut outside: Vec<String> = body
            .iter()
            .flat_map(|n| &n.input)
            .map(|i| InputRef::parse(i).node.to_string())
            .filter(|name| !defined.contains(name.as_str()))
            .collect();
        outside.sort();
        outside.dedup();
        let mut inner = Scope::default();
        for name in &outside {
            if let Some(shapes) = outer.partial.get(name) {
                inner.partial.insert(name.clone(), shapes.clone());
            }
            if let Some(value) = outer.values.get(name) {
                inner.values.insert(name.clone(), value.clone());
            }
        }
        let order = inference_order(&body);
        self.run(&body, &order, &mut inner, depth + 1);
        inner.partial.remove(&call.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{attr_value, AttrValue};

    fn node(op: &str, attrs: &[(&str, i64)]) -> NodeDef {
        NodeDef {
            name: "n".into(),
            op: op.into(),
            attr: attrs
                .iter()
                .map(|&(k, v)| {
                    let value = Some(attr_value::Value::I(v));
                    (k.to_string(), AttrValue { value })
                })
                .collect(),
            ..Default::default()
        }
    }

    fn shape(dims: &[usize]) -> Input<'_> {
        Input {
            shape: Some(dims),
            value: None,
        }
    }

    fn partial(dims: &[Dim]) -> Known<'_> {
        Known {
            shape: Some(dims),
            value: None,
        }
    }

    fn valued(value: &PartialValue) -> Known<'_> {
        Known {
            shape: None,
            value: Some(value),
        }
    }

    fn vector(elements: &[Option<i64>]) -> PartialValue {
        PartialValue::vector(elements.to_vec()).expect("small")
    }

    const U: Dim = None;

    #[test]
    fn partial_shapes_broadcast_as_tensorflow_does() {
        let add = node("AddV2", &[]);
        let out = |a: &[Dim], b: &[Dim]| infer_partial(&add, &[partial(a), partial(b)]);
        let one = |dims: &[Dim]| Some(vec![Some(dims.to_vec())]);
        assert_eq!(out(&[U, Some(3)], &[Some(3)]), one(&[U, Some(3)]));
        assert_eq!(out(&[U], &[Some(5)]), one(&[Some(5)]));
        assert_eq!(out(&[U], &[Some(1)]), one(&[U]));
        assert_eq!(out(&[U, U], &[U]), one(&[U, U]));
        assert_eq!(out(&[Some(2)], &[Some(3)]), None);
        // Fully known, the checked rule of `geometry` decides.
        assert_eq!(
            out(&[Some(2), Some(1)], &[Some(4)]),
            one(&[Some(2), Some(4)])
        );
        // An unknown rank stays unknown.
        assert_eq!(
            infer_partial(&add, &[partial(&[U]), Known::default()]),
            None
        );
    }

    #[test]
    fn a_reshape_to_a_computed_shape_knows_what_the_computation_knows() {
        // x: [?, 4, 6]; Reshape(x, Pack(StridedSlice(Shape(x), 0, 1, 1, shrink), 24)).
        let x = [U, Some(4), Some(6)];
        let shape_node = node("Shape", &[]);
        let shape_out = infer_partial(&shape_node, &[partial(&x)]).unwrap();
        assert_eq!(shape_out, vec![Some(vec![Some(3)])]);
        let shape_value = infer_value(&shape_node, &[partial(&x)], shape_out[0].as_deref());
        assert_eq!(shape_value, Some(vector(&[None, Some(4), Some(6)])));
        let shape_value = shape_value.unwrap();
        let slice = node("StridedSlice", &[("shrink_axis_mask", 1)]);
        let (b, e, st) = (vector(&[Some(0)]), vector(&[Some(1)]), vector(&[Some(1)]));
        let slice_inputs = [
            Known {
                shape: Some(&[Some(3)]),
                value: Some(&shape_value),
            },
            valued(&b),
            valued(&e),
            valued(&st),
        ];
        let batch = infer_value(&slice, &slice_inputs, Some(&[])).unwrap();
        assert_eq!(batch, PartialValue::scalar(None));
        let size = PartialValue::scalar(Some(24));
        let pack = node("Pack", &[]);
        let pack_inputs = [
            Known {
                shape: Some(&[]),
                value: Some(&batch),
            },
            Known {
                shape: Some(&[]),
                value: Some(&size),
            },
        ];
        let requested = infer_value(&pack, &pack_inputs, Some(&[Some(2)])).unwrap();
        assert_eq!(requested, vector(&[None, Some(24)]));
        let reshape = node("Reshape", &[]);
        let out = infer_partial(&reshape, &[partial(&x), valued(&requested)]);
        assert_eq!(out, Some(vec![Some(vec![U, Some(24)])]));
        // With the input fully known, the one unknown size is resolved.
        let known = [Some(2), Some(4), Some(6)];
        let out = infer_partial(&reshape, &[partial(&known), valued(&requested)]);
        assert_eq!(out, Some(vec![Some(vec![Some(2), Some(24)])]));
        // Only the shape tensor's length known: that many unknown dims.
        let length_only = Known {
            shape: Some(&[Some(2)]),
            value: None,
        };
        let out = infer_partial(&reshape, &[partial(&x), length_only]);
        assert_eq!(out, Some(vec![Some(vec![U, U])]));
        // Seen through fully known shapes, a partial output is unknown.
        let full_out = infer(
            &reshape,
            &[Input {
                shape: Some(&[2, 4, 6]),
                value: None,
            }],
        );
        assert_eq!(full_out, None);
    }

    #[test]
    fn resizes_and_pads_keep_unknown_dims_unknown() {
        let size = vector(&[Some(9), Some(10)]);
        let resize = node("ResizeBilinear", &[]);
        let out = infer_partial(
            &resize,
            &[partial(&[U, Some(5), Some(6), Some(3)]), valued(&size)],
        );
        assert_eq!(out, Some(vec![Some(vec![U, Some(9), Some(10), Some(3)])]));
        let pads = PartialValue {
            dims: vec![2, 2],
            elements: [0, 0, 1, 2].map(Some).to_vec(),
        };
        let pad = node("MirrorPad", &[]);
        let out = infer_partial(&pad, &[partial(&[U, Some(4)]), valued(&pads)]);
        assert_eq!(out, Some(vec![Some(vec![U, Some(7)])]));
        let out = infer_partial(&pad, &[Known::default(), valued(&pads)]);
        assert_eq!(
            out,
            Some(vec![Some(vec![U, U])]),
            "the paddings give the rank"
        );
    }

    #[test]
    fn hostile_sizes_on_unknown_dims_are_no_fault() {
        let tile = node("Tile", &[]);
        let huge = vector(&[Some(1 << 60), Some(1 << 60)]);
        let x = [U, Some(1 << 10)];
        let out = infer_partial(&tile, &[partial(&x), valued(&huge)]);
        assert_eq!(out, None, "2^70 overflows");
        let x = [U, Some(2)];
        let out = infer_partial(&tile, &[partial(&x), valued(&huge)]);
        assert_eq!(out, Some(vec![Some(vec![U, Some(1 << 61)])]));
        let reshape = node("Reshape", &[]);
        let requested = vector(&[Some(1 << 20), Some(1 << 20), None]);
        let out = infer_partial(&reshape, &[partial(&[U]), valued(&requested)]);
        assert_eq!(out, Some(vec![Some(vec![Some(1 << 20), Some(1 << 20), U])]));
        // Known sizes whose product overflows: no tensor has that shape.
        let requested = vector(&[Some(1 << 40), Some(1 << 40), None]);
        assert_eq!(
            infer_partial(&reshape, &[partial(&[U]), valued(&requested)]),
            None
        );
        let slice = node("StridedSlice", &[("shrink_axis_mask", 1)]);
        let (b, e, st) = (vector(&[Some(-1)]), vector(&[Some(0)]), vector(&[Some(1)]));
        let out = infer_partial(
            &slice,
            &[partial(&[U, Some(3)]), valued(&b), valued(&e), valued(&st)],
        );
        assert_eq!(out, Some(vec![Some(vec![Some(3)])]));
    }

    /// TensorFlow's int32 Prod of [65536, 65537] wraps to 65536 (a Fill of it made [65536],
    /// TF 2.21); its true product is not the value the graph computes.
    #[test]
    fn an_int32_product_past_i32_is_unknown() {
        let mut prod = node("Prod", &[]);
        prod.attr.insert(
            "T".into(),
            AttrValue {
                value: Some(attr_value::Value::Type(DataType::DtInt32 as i32)),
            },
        );
        let axes = vector(&[Some(0)]);
        let value_of = |prod: &NodeDef, elements: &[Option<i64>]| {
            let x = vector(elements);
            let inputs = [
                Known {
                    shape: Some(&[Some(2)]),
                    value: Some(&x),
                },
                valued(&axes),
            ];
            infer_value(prod, &inputs, Some(&[]))
        };
        assert_eq!(
            value_of(&prod, &[Some(65536), Some(65537)]),
            Some(PartialValue::scalar(None))
        );
        assert_eq!(
            value_of(&prod, &[Some(32768), Some(65535)]),
            Some(PartialValue::scalar(Some(32768 * 65535)))
        );
        prod.attr.remove("T");
        assert_eq!(
            value_of(&prod, &[Some(65536), Some(65537)]),
            Some(PartialValue::scalar(Some(65536 * 65537)))
        );
    }

    #[test]
    fn ranks_over_tensorflows_limit_stay_unknown() {
        let relu = node("Relu", &[]);
        let at_limit = vec![1; MAX_RANK];
        assert_eq!(
            infer(&relu, &[shape(&at_limit)]),
            Some(vec![Some(at_limit.clone())])
        );
        let over = vec![1; MAX_RANK + 1];
        assert_eq!(infer(&relu, &[shape(&over)]), None);
    }

    #[test]
    fn many_outputs_are_inferred_only_within_the_dims_limit() {
        let axis = Tensor::from_data(crate::tensor::Data::I32(ndarray::arr0(0).into_dyn()));
        let axis = Input {
            shape: Some(&[]),
            value: Some(&axis),
        };
        let x = [1 << 12, 4];
        let split = |parts: i64| infer(&node("Split", &[("num_split", parts)]), &[axis, shape(&x)]);
        let within = split(1 << 12).expect("4096 outputs of rank 2 are inferred");
        assert_eq!(within.len(), 1 << 12);
        assert_eq!(within[0], Some(vec![1, 4]));
        // 2^16 parts of rank 2 hold 2^17 dims, over the limit.
        let wide = [1 << 16, 2];
        let over = infer(
            &node("Split", &[("num_split", 1 << 16)]),
            &[axis, shape(&wide)],
        );
        assert_eq!(over, None);
        let unpack = |x: &[usize]| infer(&node("Unpack", &[("axis", 0)]), &[shape(x)]);
        assert_eq!(unpack(&[1 << 16, 1]).map(|s| s.len()), Some(1 << 16));
        assert_eq!(unpack(&[1 << 16, 2, 1]), None);
    }

    #[test]
    fn a_graph_whose_shapes_do_not_fit_the_budget_is_left_partly_unknown() {
        let mut graph = GraphDef::default();
        let mut placeholder = node("Placeholder", &[]);
        placeholder.name = "x".into();
        placeholder.attr.insert(
            "shape".into(),
            AttrValue {
                value: Some(attr_value::Value::Shape(crate::dtype::shape_from_dims(
                    &[1; 200],
                ))),
            },
        );
        graph.node.push(placeholder);
        for i in 0..2000 {
            let mut relu = node("Relu", &[]);
            relu.name = format!("r{i}");
            relu.input = vec![if i == 0 {
                "x".into()
            } else {
                format!("r{}", i - 1)
            }];
            graph.node.push(relu);
        }
        let roomy = crate::budget::Budget::new(64 << 20, u64::MAX);
        let all = roomy.enter(|| infer_graph(&graph));
        assert_eq!(all.of("r1999").map(<[usize]>::len), Some(200));
        assert!(roomy.failure().is_none());
        // Each node keeps about 1.7 KiB: 256 KiB holds about 150 of them.
        let tight = crate::budget::Budget::with_reserve(256 << 10, u64::MAX, 0);
        let some = tight.enter(|| infer_graph(&graph));
        assert!(some.of("r10").is_some());
        assert!(some.of("r1999").is_none());
        assert!(
            tight.failure().is_some(),
            "the refusal is recorded for the transform"
        );
    }
}
