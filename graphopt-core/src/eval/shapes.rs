//! Static shape inference: output shapes of a node from its inputs' shapes and whichever inputs
//! are constant. Used by `fold_constants` to replace Shape/Size/Rank of tensors whose shape is
//! known. Unknown stays unknown (`None`); nothing is guessed.
//!
//! Shape-preserving and elementwise ops, matrix products, convolutions and pooling have direct
//! rules. Ops whose output shape depends on constant arguments (Reshape, StridedSlice,
//! reductions, ...) run their own kernel on a small dummy tensor of the input's shape, so the
//! rules cannot drift from the kernels.

use ndarray::{ArrayD, IxDyn};

use super::broadcast::broadcast_shape;
use super::conv::Spatial;
use super::{attrs, kernels, KernelContext};
use crate::proto::NodeDef;
use crate::tensor::{Data, Limits, Tensor};

/// What is known about one input of a node.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub shape: Option<&'a [usize]>,
    pub value: Option<&'a Tensor>,
}

/// Per output: the shape if fully known.
pub type Shapes = Vec<Option<Vec<usize>>>;

/// Dummy tensors are capped so inference never costs more than a small allocation.
const MAX_DUMMY_ELEMENTS: usize = 1 << 22;

/// Shape-preserving ops besides the kernels' unary and identity families.
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
];

/// How a dummy stands in for an input when running a kernel for its output shape.
#[derive(Clone, Copy)]
enum Role {
    /// Any tensor of the right shape will do; this element type is used.
    Data(fn(&[usize]) -> Data),
    /// The value decides the output shape: the input must be constant.
    Const,
}

fn u8_dummy(dims: &[usize]) -> Data {
    Data::U8(ArrayD::zeros(IxDyn(dims)))
}

fn f32_dummy(dims: &[usize]) -> Data {
    Data::F32(ArrayD::zeros(IxDyn(dims)))
}

fn i32_dummy(dims: &[usize]) -> Data {
    Data::I32(ArrayD::zeros(IxDyn(dims)))
}

fn roles(op: &str, count: usize) -> Option<Vec<Role>> {
    use Role::{Const, Data as D};
    let data = D(u8_dummy);
    let float = D(f32_dummy);
    Some(match op {
        "Reshape" | "ExpandDims" | "Transpose" | "Tile" | "Pad" | "MirrorPad" | "BroadcastTo" => {
            vec![data, Const]
        }
        "Squeeze" | "Unpack" => vec![data],
        "Slice" => vec![data, Const, Const],
        "SpaceToBatchND" | "BatchToSpaceND" => vec![data, Const, Const],
        "StridedSlice" => vec![data, Const, Const, Const],
        "PadV2" => vec![data, Const, data],
        "GatherV2" => vec![data, D(i32_dummy), Const],
        "Split" => vec![Const, data],
        "SplitV" => vec![data, Const, Const],
        "Pack" => vec![data; count],
        "ConcatV2" => {
            let mut r = vec![data; count.saturating_sub(1)];
            r.push(Const);
            r
        }
        "Sum" | "Prod" | "Mean" | "Max" | "Min" | "ArgMax" | "ArgMin" => vec![float, Const],
        "All" | "Any" => vec![D(|d| Data::Bool(ArrayD::from_elem(IxDyn(d), false))), Const],
        "Einsum" => vec![float; count],
        "Fill" => vec![Const, float],
        "OneHot" => vec![D(i32_dummy), Const, float, float],
        _ => return None,
    })
}

fn window_shapes(
    node: &NodeDef,
    x: &[usize],
    kernel_hw: (usize, usize),
    channels: usize,
) -> Option<Vec<usize>> {
    let ctx = KernelContext {
        node,
        limits: Limits::default(),
    };
    let spatial = Spatial::from_node(&ctx, "strides").ok()?;
    let [n, a, b, c] = x else { return None };
    let (h, w, in_c) = if spatial.nchw {
        (*b, *c, *a)
    } else {
        (*a, *b, *c)
    };
    let (wh, ww) = spatial.windows(h, w, kernel_hw.0, kernel_hw.1).ok()?;
    let out_c = if channels == 0 { in_c } else { channels };
    Some(if spatial.nchw {
        vec![*n, out_c, wh.out, ww.out]
    } else {
        vec![*n, wh.out, ww.out, out_c]
    })
}

/// Output shapes of `node`, or `None` when they cannot be known statically.
pub fn infer(node: &NodeDef, inputs: &[Input<'_>]) -> Option<Shapes> {
    let op = node.op.as_str();
    let data_inputs: Vec<&Input<'_>> = inputs.iter().collect();
    let shape = |i: usize| data_inputs.get(i).and_then(|input| input.shape);
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
        return Some(vec![Some(dims)]);
    }
    if SAME_AS_FIRST.contains(&op)
        || kernels::UNARY.contains(&op)
        || kernels::IDENTITIES.contains(&op)
    {
        return Some(vec![Some(shape(0)?.to_vec())]);
    }
    if kernels::ELEMENTWISE_BINARY.contains(&op)
        || kernels::COMPARISONS.contains(&op)
        || op == "SelectV2"
    {
        let mut out = shape(0)?.to_vec();
        for i in 1..data_inputs.len() {
            out = broadcast_shape(&out, shape(i)?).ok()?;
        }
        return Some(vec![Some(out)]);
    }
    match op {
        "Select" => return Some(vec![Some(shape(1)?.to_vec())]),
        "FusedBatchNorm" | "FusedBatchNormV2" | "FusedBatchNormV3" => {
            let x = shape(0)?.to_vec();
            let c = shape(1).map(|s| s.to_vec());
            let count = if op == "FusedBatchNormV3" { 6 } else { 5 };
            let mut out = vec![Some(x)];
            out.extend(std::iter::repeat_n(c, count - 1));
            return Some(out);
        }
        "MatMul" => {
            let (a, b) = (shape(0)?, shape(1)?);
            let ([a0, a1], [b0, b1]) = (a, b) else {
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
            return Some(vec![Some(vec![*m, *n])]);
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
            return Some(vec![Some(out)]);
        }
        "Conv2D" | "DepthwiseConv2dNative" => {
            let f = shape(1)?;
            let [kh, kw, _, out] = f else { return None };
            let channels = if op == "Conv2D" { *out } else { f[2] * f[3] };
            return Some(vec![window_shapes(node, shape(0)?, (*kh, *kw), channels)]);
        }
        "MaxPool" | "AvgPool" => {
            let k = attrs::ints(node, "ksize")?;
            let nchw = attrs::string(node, "data_format").is_some_and(|f| f == "NCHW");
            let [_, b, c, d] = k.as_slice() else {
                return None;
            };
            let (kh, kw) = if nchw { (*c, *d) } else { (*b, *c) };
            return Some(vec![window_shapes(
                node,
                shape(0)?,
                (usize::try_from(kh).ok()?, usize::try_from(kw).ok()?),
                0,
            )]);
        }
        _ => {}
    }
    by_dummy_run(node, inputs)
}

fn by_dummy_run(node: &NodeDef, inputs: &[Input<'_>]) -> Option<Shapes> {
    let roles = roles(&node.op, inputs.len())?;
    if roles.len() != inputs.len() {
        return None;
    }
    let mut owned = Vec::with_capacity(inputs.len());
    for (role, input) in roles.iter().zip(inputs) {
        let tensor = match (role, input.value) {
            (Role::Const, Some(value)) => value.clone(),
            (Role::Const, None) => return None,
            (Role::Data(make), _) => {
                let dims = input.shape?;
                if dims.iter().product::<usize>() > MAX_DUMMY_ELEMENTS {
                    return None;
                }
                Tensor::from_data(make(dims))
            }
        };
        owned.push(tensor);
    }
    let refs: Vec<&Tensor> = owned.iter().collect();
    let kernel = kernels::lookup(&node.op)?;
    let ctx = KernelContext {
        node,
        limits: Limits {
            max_bytes: (MAX_DUMMY_ELEMENTS * 8) as u64,
        },
    };
    let outputs = super::with_limits(ctx.limits, || kernel(&ctx, &refs)).ok()?;
    Some(outputs.iter().map(|t| Some(t.shape().to_vec())).collect())
}

/// Output shapes of every node that can be known statically (Const values and the rules
/// above, from Placeholder shapes), by node name.
pub fn infer_graph(graph: &crate::proto::GraphDef) -> std::collections::HashMap<String, Shapes> {
    use crate::graph::InputRef;
    let order =
        crate::graph::execution_order(graph).unwrap_or_else(|_| (0..graph.node.len()).collect());
    let mut known: std::collections::HashMap<String, Shapes> = std::collections::HashMap::new();
    let mut values: std::collections::HashMap<String, Tensor> = std::collections::HashMap::new();
    for i in order {
        let Some(node) = graph.node.get(i) else {
            continue;
        };
        if let Some(value) = crate::edit::const_value(node) {
            known.insert(node.name.clone(), vec![Some(value.shape().to_vec())]);
            values.insert(node.name.clone(), value);
            continue;
        }
        let inputs: Vec<(Option<Vec<usize>>, Option<&Tensor>)> = node
            .input
            .iter()
            .filter(|i| !i.starts_with('^'))
            .map(|input| {
                let parsed = InputRef::parse(input);
                let shape = known
                    .get(parsed.node)
                    .and_then(|s| s.get(parsed.port as usize).cloned().flatten());
                let value = if parsed.port == 0 {
                    values.get(parsed.node)
                } else {
                    None
                };
                (shape, value)
            })
            .collect();
        let view: Vec<Input<'_>> = inputs
            .iter()
            .map(|(s, v)| Input {
                shape: s.as_deref(),
                value: *v,
            })
            .collect();
        if let Some(shapes) = infer(node, &view) {
            known.insert(node.name.clone(), shapes);
        }
    }
    known
}
