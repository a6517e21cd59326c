//! Static shape inference: the output shapes of a node from its inputs' shapes and whichever
//! inputs are constant. Used by `fold_constants` (Shape/Size/Rank of tensors whose shape is
//! known become constants), the fuse transforms and the build integration's manifest.
//!
//! One shape function per op family, in plain checked arithmetic: no kernel runs here and
//! nothing is allocated in proportion to a dimension, so a hostile graph (a placeholder of
//! shape [2^40, 0], a Tile by 2^60) gives an unknown shape or a dimension, never a fault.
//! Unknown stays unknown (`None`); nothing is guessed.

use std::collections::HashMap;

use super::geometry::{self, broadcast_shape, strided_slice_plan, SliceMasks, Spatial};
use crate::graph::{attrs, edit, ops, InputRef};
use crate::proto::{DataType, GraphDef, NodeDef};
use crate::tensor::{dims_of, Tensor};

/// What is known about one input of a node.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub shape: Option<&'a [usize]>,
    pub value: Option<&'a Tensor>,
}

/// Per output: the shape if fully known.
pub type Shapes = Vec<Option<Vec<usize>>>;

/// TensorFlow's own limit on a tensor's rank (`TensorShape::MaxDimensions`); a shape of higher
/// rank is left unknown, so a 65536-element shape Const does not make every later node of a
/// chain store 65536 dims.
pub const MAX_RANK: usize = 254;

/// At most this many dims over all outputs of one node (an output counts as at least one): a
/// Split into 65536 parts of a rank-254 tensor is not worth 17 million dims of memory, and
/// an output count from an attribute (Split's num_split, Unpack's num) cannot size anything.
const MAX_NODE_DIMS: usize = 1 << 16;

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
    "LoopCond",
    "Bitcast",
    "ClipByValue",
    "LRN",
];

/// Output shapes of `node`, or `None` when they cannot be known statically. Shapes of rank
/// over [`MAX_RANK`] are unknown, and so are all outputs of a node whose shapes would hold
/// more than `MAX_NODE_DIMS` dims together.
pub fn infer(node: &NodeDef, inputs: &[Input<'_>]) -> Option<Shapes> {
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
fn dims_held(shapes: &Shapes) -> usize {
    shapes
        .iter()
        .map(|s| s.as_ref().map_or(1, |s| s.len().max(1)))
        .fold(0usize, usize::saturating_add)
}

/// `count` outputs of the shape `piece`, unless they would hold more than [`MAX_NODE_DIMS`]
/// dims together (checked before anything is allocated).
fn repeated(piece: Vec<usize>, count: usize) -> Option<Shapes> {
    let dims = count.checked_mul(piece.len().max(1))?;
    (dims <= MAX_NODE_DIMS).then(|| vec![Some(piece); count])
}

fn infer_outputs(node: &NodeDef, inputs: &[Input<'_>]) -> Option<Shapes> {
    let op = node.op.as_str();
    let shape = |i: usize| inputs.get(i).and_then(|input| input.shape);
    let value = |i: usize| inputs.get(i).and_then(|input| input.value);
    let ints = |i: usize| value(i).and_then(Tensor::integers);
    let one = |dims: Vec<usize>| Some(vec![Some(dims)]);
    if matches!(op, "Placeholder" | "PlaceholderWithDefault") {
        let s = attrs::shape(node, "shape")?;
        if s.unknown_rank {
            return None;
        }
        let dims = s
            .dim
            .iter()
            .map(|d| usize::try_from(d.size).ok())
            .collect::<Option<Vec<_>>>()?;
        return one(dims);
    }
    if SAME_AS_FIRST.contains(&op) || ops::UNARY.contains(&op) || ops::IDENTITIES.contains(&op) {
        return one(shape(0)?.to_vec());
    }
    if ops::ELEMENTWISE_BINARY.contains(&op) || ops::COMPARISONS.contains(&op) || op == "SelectV2" {
        let mut out = shape(0)?.to_vec();
        for i in 1..inputs.len() {
            out = broadcast_shape(&out, shape(i)?).ok()?;
        }
        return one(out);
    }
    match op {
        "Select" => one(shape(1)?.to_vec()),
        // Each output is its input (Keras' custom-gradient wrapper, inlined calls).
        "IdentityN" => {
            let dims = (0..inputs.len())
                .map(|i| shape(i).map_or(1, |s| s.len().max(1)))
                .fold(0usize, usize::saturating_add);
            (dims <= MAX_NODE_DIMS).then(|| {
                (0..inputs.len())
                    .map(|i| shape(i).map(<[usize]>::to_vec))
                    .collect()
            })
        }
        "Shape" => one(vec![shape(0)?.len()]),
        "ShapeN" => Some(
            (0..inputs.len())
                .map(|i| shape(i).map(|s| vec![s.len()]))
                .collect(),
        ),
        "Size" | "Rank" => one(Vec::new()),
        "FusedBatchNorm" | "FusedBatchNormV2" | "FusedBatchNormV3" => {
            let x = shape(0)?.to_vec();
            let c = shape(1).map(<[usize]>::to_vec);
            let count = if op == "FusedBatchNormV3" { 6 } else { 5 };
            let mut out = vec![Some(x)];
            out.extend(std::iter::repeat_n(c, count - 1));
            Some(out)
        }
        "MatMul" => {
            let ([a0, a1], [b0, b1]) = (shape(0)?, shape(1)?) else {
                return None;
            };
            let m = if attrs::bool(node, "transpose_a").unwrap_or(false) {
                a1
            } else {
                a0
            };
            let n = if attrs::bool(node, "transpose_b").unwrap_or(false) {
                b0
            } else {
                b1
            };
            one(vec![*m, *n])
        }
        "BatchMatMul" | "BatchMatMulV2" | "BatchMatMulV3" => {
            let (a, b) = (shape(0)?, shape(1)?);
            if a.len() < 2 || b.len() < 2 {
                return None;
            }
            let mut out = broadcast_shape(&a[..a.len() - 2], &b[..b.len() - 2]).ok()?;
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
                geometry::mul(*in_c, *out, "channels").ok()?
            };
            let spatial = Spatial::from_node(node, "strides").ok()?;
            one(spatial.output_shape(shape(0)?, (*kh, *kw), channels).ok()?)
        }
        "MaxPool" | "AvgPool" => {
            let spatial = Spatial::from_node(node, "strides").ok()?;
            let k = attrs::ints(node, "ksize")?;
            let [_, b, c, d] = k.as_slice() else {
                return None;
            };
            let (kh, kw) = if spatial.nchw { (*c, *d) } else { (*b, *c) };
            let window = (
                geometry::dim(kh, "ksize").ok()?,
                geometry::dim(kw, "ksize").ok()?,
            );
            one(spatial.output_shape(shape(0)?, window, 0).ok()?)
        }
        "Reshape" => one(reshape(shape(0), &ints(1)?)?),
        "ExpandDims" => {
            let x = shape(0)?;
            let [axis] = ints(1)?[..] else { return None };
            let at = geometry::axis(axis, x.len() + 1).ok()?;
            let mut out = x.to_vec();
            out.insert(at, 1);
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
            let squeezed = |i: usize| {
                if axes.is_empty() {
                    x[i] == 1
                } else {
                    axes.contains(&i)
                }
            };
            if axes.iter().any(|&a| x[a] != 1) {
                return None;
            }
            one((0..x.len())
                .filter(|&i| !squeezed(i))
                .map(|i| x[i])
                .collect())
        }
        "Transpose" => {
            let x = shape(0)?;
            let perm = ints(1)?;
            if perm.len() != x.len() {
                return None;
            }
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
            let multiples = ints(1)?;
            if multiples.len() != x.len() {
                return None;
            }
            let out = x
                .iter()
                .zip(&multiples)
                .map(|(&d, &m)| geometry::mul(d, geometry::dim(m, "multiples").ok()?, "Tile").ok())
                .collect::<Option<Vec<_>>>()?;
            one(out)
        }
        "Pad" | "PadV2" | "MirrorPad" => {
            let x = shape(0)?;
            let p = ints(1)?;
            if p.len() != x.len().checked_mul(2)? {
                return None;
            }
            let out = x
                .iter()
                .enumerate()
                .map(|(i, &d)| {
                    let before = geometry::dim(p[2 * i], "paddings").ok()?;
                    let after = geometry::dim(p[2 * i + 1], "paddings").ok()?;
                    geometry::add(geometry::add(d, before, "Pad").ok()?, after, "Pad").ok()
                })
                .collect::<Option<Vec<_>>>()?;
            one(out)
        }
        "BroadcastTo" => {
            let target = dims_from(&ints(1)?)?;
            let x = shape(0)?;
            (broadcast_shape(x, &target).ok()? == target).then(|| vec![Some(target)])
        }
        "Fill" => one(dims_from(&ints(0)?)?),
        "Slice" => {
            let x = shape(0)?;
            let (begin, size) = (ints(1)?, ints(2)?);
            if begin.len() != x.len() || size.len() != x.len() {
                return None;
            }
            let out = x
                .iter()
                .zip(begin.iter().zip(&size))
                .map(|(&d, (&b, &s))| {
                    let b = geometry::dim(b, "begin").ok()?;
                    let s = if s == -1 {
                        d.checked_sub(b)?
                    } else {
                        geometry::dim(s, "size").ok()?
                    };
                    (geometry::add(b, s, "Slice").ok()? <= d).then_some(s)
                })
                .collect::<Option<Vec<_>>>()?;
            one(out)
        }
        "StridedSlice" => {
            let plan = strided_slice_plan(
                shape(0)?,
                &ints(1)?,
                &ints(2)?,
                &ints(3)?,
                SliceMasks::of(node),
            )
            .ok()?;
            one(plan.iter().filter(|a| a.kept).map(|a| a.len).collect())
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
                let d = x[i + 1];
                out[i + 1] = if op == "SpaceToBatchND" {
                    let padded =
                        geometry::add(geometry::add(d, before, "").ok()?, after, "").ok()?;
                    (padded % b == 0).then(|| padded / b)?
                } else {
                    geometry::mul(d, b, "")
                        .ok()?
                        .checked_sub(before)?
                        .checked_sub(after)?
                };
            }
            out[0] = if op == "SpaceToBatchND" {
                geometry::mul(x[0], product, "").ok()?
            } else {
                (x[0] % product == 0).then(|| x[0] / product)?
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
            if parts == 0 || x[axis] % parts != 0 {
                return None;
            }
            let mut piece = x.to_vec();
            piece[axis] = x[axis] / parts;
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
            let sizes = dims_with_one_unknown(&sizes, x[axis])?;
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
            repeated(piece, x[axis])
        }
        "Pack" => {
            let first = shape(0)?;
            if (1..inputs.len()).any(|i| shape(i) != Some(first)) {
                return None;
            }
            let axis =
                geometry::axis(attrs::int(node, "axis").unwrap_or(0), first.len() + 1).ok()?;
            let mut out = first.to_vec();
            out.insert(axis, inputs.len());
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
            out[axis] = 0;
            for i in parts {
                let s = shape(i)?;
                if s.len() != first.len() || (0..s.len()).any(|k| k != axis && s[k] != first[k]) {
                    return None;
                }
                out[axis] = geometry::add(out[axis], s[axis], "Concat").ok()?;
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
                    (true, true) => Some(1),
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
            out.insert(at, depth);
            one(out)
        }
        "Einsum" => one(einsum(node, inputs)?),
        _ => None,
    }
}

/// Non-negative dimensions from integer values.
fn dims_from(values: &[i64]) -> Option<Vec<usize>> {
    values
        .iter()
        .map(|&v| geometry::dim(v, "shape").ok())
        .collect()
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

/// Reshape's output: the requested dims, with a -1 resolved when the input shape is known.
fn reshape(input: Option<&[usize]>, requested: &[i64]) -> Option<Vec<usize>> {
    let unknown: Vec<usize> = (0..requested.len())
        .filter(|&i| requested[i] == -1)
        .collect();
    if unknown.len() > 1 {
        return None;
    }
    let mut out = Vec::with_capacity(requested.len());
    let mut known_product = 1usize;
    for &r in requested {
        let d = if r == -1 {
            1
        } else {
            geometry::dim(r, "shape").ok()?
        };
        known_product = geometry::mul(known_product, d, "").ok()?;
        out.push(d);
    }
    let total = input.map(geometry::element_count).transpose().ok()?;
    match (unknown.first(), total) {
        (Some(&k), Some(total)) => {
            if known_product == 0 || total % known_product != 0 {
                return None;
            }
            out[k] = total / known_product;
        }
        (Some(_), None) => return None,
        (None, Some(total)) if total != known_product => return None,
        (None, _) => {}
    }
    Some(out)
}

/// Einsum's output shape for equations without an ellipsis.
fn einsum(node: &NodeDef, inputs: &[Input<'_>]) -> Option<Vec<usize>> {
    let equation = attrs::string(node, "equation")?;
    if equation.contains('.') {
        return None;
    }
    let (lhs, rhs) = equation.split_once("->")?;
    let operands: Vec<&str> = lhs.split(',').map(str::trim).collect();
    if operands.len() != inputs.len() {
        return None;
    }
    let mut sizes: HashMap<char, usize> = HashMap::new();
    for (labels, input) in operands.iter().zip(inputs) {
        let dims = input.shape?;
        if labels.chars().count() != dims.len() {
            return None;
        }
        for (label, &d) in labels.chars().zip(dims) {
            let size = sizes.entry(label).or_insert(d);
            if *size != d {
                if *size == 1 {
                    *size = d;
                } else if d != 1 {
                    return None;
                }
            }
        }
    }
    rhs.trim().chars().map(|l| sizes.get(&l).copied()).collect()
}

/// Const values with more elements than this are not decoded for inference: the rules only
/// read integer shapes, axes, paddings and sizes, never weights.
const MAX_VALUE_ELEMENTS: usize = 1 << 16;

/// A Const's shape, read from its TensorProto without decoding it, and its value when it is
/// a small integer tensor (the only values the rules read).
fn const_shape_and_value(node: &NodeDef) -> Option<(Vec<usize>, Option<Tensor>)> {
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
        edit::const_value(node)
    } else {
        None
    };
    Some((dims, value))
}

/// The statically known output shapes of a graph's nodes, by node name; the memory they take
/// is held on the budget for as long as they are kept.
#[derive(Debug, Default)]
pub struct StaticShapes {
    shapes: HashMap<String, Shapes>,
    _held: Vec<crate::budget::Charge>,
}

impl StaticShapes {
    /// The output shapes of node `name`, as far as they are known.
    pub fn get(&self, name: &str) -> Option<&Shapes> {
        self.shapes.get(name)
    }

    /// The shape of `tensor` ("node" or "node:port"), if known.
    pub fn of(&self, tensor: &str) -> Option<&[usize]> {
        let parsed = InputRef::parse(tensor);
        self.shapes
            .get(parsed.node)?
            .get(parsed.port as usize)?
            .as_deref()
    }
}

/// Memory one node's entry takes: its name, its shapes and the map's own bookkeeping.
fn entry_bytes(name: &str, shapes: &Shapes) -> u64 {
    const ENTRY: usize = 64;
    let vecs = shapes.len().saturating_add(1) * std::mem::size_of::<Option<Vec<usize>>>();
    let dims = dims_held(shapes) * std::mem::size_of::<usize>();
    (ENTRY + name.len() + vecs + dims) as u64
}

/// Output shapes of every node that can be known statically (Const values and the rules
/// above, from Placeholder shapes), by node name. Weights are never decoded: Const shapes come
/// from their protos, and only small integer values are read.
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
    let order =
        crate::graph::execution_order(graph).unwrap_or_else(|_| (0..graph.node.len()).collect());
    let mut known = StaticShapes::default();
    let mut values: HashMap<String, Tensor> = HashMap::new();
    for i in order {
        let Some(node) = graph.node.get(i) else {
            continue;
        };
        let (shapes, value) = match const_shape_and_value(node) {
            Some((dims, value)) => (Some(vec![Some(dims)]), value),
            None => {
                let inputs: Vec<Input<'_>> = edit::data_inputs(node)
                    .into_iter()
                    .map(|input| {
                        let parsed = InputRef::parse(input);
                        Input {
                            shape: known.of(input),
                            value: (parsed.port == 0)
                                .then(|| values.get(parsed.node))
                                .flatten(),
                        }
                    })
                    .collect();
                (infer(node, &inputs), None)
            }
        };
        let Some(shapes) = shapes else {
            continue;
        };
        let value_bytes = value.as_ref().map_or(0, Tensor::memory_bytes);
        match crate::budget::hold(entry_bytes(&node.name, &shapes).saturating_add(value_bytes)) {
            Ok(charge) => known._held.push(charge),
            Err(_) => break,
        }
        if let Some(value) = value {
            values.insert(node.name.clone(), value);
        }
        known.shapes.insert(node.name.clone(), shapes);
    }
    known
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
