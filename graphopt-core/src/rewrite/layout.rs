//! Layout: [`to_nchw`] turns an NHWC graph into NCHW, for consumers that run channels-first
//! (TensorRT, Ascend, GPU runtimes).
//!
//! Every layout-sensitive op (Conv2D, DepthwiseConv2dNative, MaxPool, AvgPool, and BiasAdd and
//! FusedBatchNorm on 4-D inputs) switches its `data_format` to NCHW, with its strides, kernel
//! sizes, dilations and explicit paddings reordered, between a Transpose into NCHW and one back.
//! The Transposes then sink through what does not care about layout — unary elementwise ops,
//! binary ones whose other operand is a scalar, a per-channel constant (reshaped to
//! `[1, C, 1, 1]`) or another tensor waiting on the same Transpose, channel concatenations,
//! spatial reductions (kept dims included), paddings (Pad, PadV2, MirrorPad), Reshapes of
//! `[N, 1, 1, C]` tensors and Shape (read back through a GatherV2 into NHWC order) — and
//! cancelling pairs disappear, so a CNN keeps one Transpose at its input and one where it
//! leaves 4-D. Where it leaves 4-D by a flattening that only a dense layer (a MatMul with
//! Const weights) reads, the weights' rows take NCHW order instead and no Transpose is left
//! there either. Convolution filters need no change: TensorFlow's
//! are HWIO in both layouts. With `keep_io_layout = false` a 4-D Placeholder whose data reaches a
//! converted op takes NCHW itself (readers that stayed NHWC read it through a Transpose back). Protected nodes keep their layout, and so, in a graph with TF1 while loops, do
//! the nodes inside control flow (the Consts the Transposes read would sit in the outermost
//! frame). A ClipByValue passes a Transpose only with scalar bounds.

use std::collections::{HashMap, HashSet};

use crate::analysis::shapes;
use crate::graph::edit::{const_node, const_value, data_inputs};
use crate::graph::{attrs, ops, GraphIndex, InputRef};
use crate::proto::{attr_value, AttrValue, DataType, GraphDef, NodeDef};
use crate::rewrite::batch_norms::UniqueNames;
use crate::rewrite::remove::{mark_unread, remove_unread};
use crate::tensor::{Data, Tensor};

const TO_NCHW: [i64; 4] = [0, 3, 1, 2];
const TO_NHWC: [i64; 4] = [0, 2, 3, 1];

/// Ops that compute elementwise on one tensor, so a Transpose commutes with them (a
/// ClipByValue only when its bounds are scalars: bounds of the tensor's shape are NHWC too).
const UNARY_AGNOSTIC: &[&str] = &["Relu6", "Identity", "Cast", "ClipByValue"];

fn ints_attr(values: &[i64]) -> AttrValue {
    AttrValue {
        value: Some(attr_value::Value::List(Box::new(attr_value::ListValue {
            i: values.to_vec(),
            ..Default::default()
        }))),
    }
}

fn type_attr(dtype: DataType) -> AttrValue {
    AttrValue {
        value: Some(attr_value::Value::Type(dtype as i32)),
    }
}

fn string_attr(value: &'static str) -> AttrValue {
    AttrValue {
        value: Some(attr_value::Value::S(bytes::Bytes::from_static(
            value.as_bytes(),
        ))),
    }
}

/// An int32 tensor of `shape` (`[]`: a scalar); `None` when a value does not fit.
fn i32_tensor(values: &[i64], shape: &[usize]) -> Option<Tensor> {
    let values: Vec<i32> = values
        .iter()
        .map(|&x| i32::try_from(x).ok())
        .collect::<Option<_>>()?;
    let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(shape), values).ok()?;
    Some(Tensor::from_data(Data::I32(array)))
}

/// `[a, b, c, d]` in NHWC order as NCHW: `[a, d, b, c]`.
fn reorder4<T: Copy>(v: &[T]) -> Option<Vec<T>> {
    match v {
        [a, b, c, d] => Some(vec![*a, *d, *b, *c]),
        _ => None,
    }
}

/// Whether `node` is NHWC and sensitive to layout, given its input's rank.
fn convertible(node: &NodeDef, input_rank: Option<usize>) -> bool {
    let nhwc = attrs::string(node, "data_format").is_none_or(|f| f == "NHWC");
    let four_d = input_rank == Some(4);
    nhwc && match node.op.as_str() {
        "Conv2D" | "DepthwiseConv2dNative" | "MaxPool" | "AvgPool" => true,
        "BiasAdd" | "FusedBatchNorm" | "FusedBatchNormV2" | "FusedBatchNormV3" => four_d,
        _ => false,
    }
}

/// The type attribute of `node`'s output 0 as its OpDef gives it (a fixed type, such as a
/// comparison's bool, or the attribute it names, the OpDef's default when the node leaves it
/// out, as Keras 3's MaxPool does its `T`), else its `T`; `None` when neither says (the
/// Transpose that reads the output back would lack its `T`).
fn output_type(node: &NodeDef) -> Option<AttrValue> {
    match ops::op_def(&node.op).and_then(|d| d.output_arg.first()) {
        Some(arg) if arg.r#type != 0 => Some(AttrValue {
            value: Some(attr_value::Value::Type(arg.r#type)),
        }),
        Some(arg) if !arg.type_attr.is_empty() => {
            ops::attr_or_default(node, &arg.type_attr).cloned()
        }
        _ => node.attr.get("T").cloned(),
    }
}

/// A 4-D output's NHWC dims with known height, width and channels.
#[derive(Debug, Clone, Copy)]
struct Spatial {
    batch: Option<usize>,
    height: usize,
    width: usize,
    channels: usize,
}

impl Spatial {
    /// `[N, 1, 1, C]`: the same elements in the same order as its NCHW form `[N, C, 1, 1]`,
    /// so a Reshape can read either.
    fn is_unit(&self) -> bool {
        self.height == 1 && self.width == 1
    }
}

/// The two shared permutation constants, created once.
struct Perms {
    to_nchw: String,
    to_nhwc: String,
}

struct Builder {
    taken: HashSet<String>,
    names: UniqueNames,
    added: Vec<NodeDef>,
}

impl Builder {
    /// A free name from `base` (`base_1`, ... when taken), reserved.
    fn unique_name(&mut self, base: &str) -> String {
        self.names.reserve(base, &mut self.taken)
    }

    fn transpose(&mut self, base: &str, input: String, perm: &str, t: Option<AttrValue>) -> String {
        let name = self.unique_name(base);
        let mut node = NodeDef {
            name: name.clone(),
            op: "Transpose".into(),
            input: vec![input, perm.to_string()],
            ..Default::default()
        };
        if let Some(t) = t {
            node.attr.insert("T".into(), t);
        }
        node.attr
            .insert("Tperm".into(), type_attr(DataType::DtInt32));
        self.added.push(node);
        name
    }
}

/// Converts the graph to NCHW (see the module docs); returns how many ops changed layout.
pub fn to_nchw(graph: &mut GraphDef, protected: &HashSet<String>, keep_io_layout: bool) -> usize {
    // The Transposes share two permutation Consts (and sinking adds Consts each read by one
    // node); a Const without inputs runs in the outermost frame, so one read inside a while
    // loop fails the graph ("inputs from different frames"). With loops, what runs inside
    // control flow keeps its layout, as if protected.
    let mut protected = protected.clone();
    if crate::graph::has_loop_frames(graph) {
        protected.extend(crate::graph::inside_control_flow(graph));
    }
    let protected = &protected;
    let known = shapes::infer_graph(graph);
    // The rank is what matters, so a batch left unknown does not stop the conversion.
    let rank_of = |input: &str| -> Option<usize> { Some(known.partial_of(input)?.len()) };
    // Nodes whose output 0 is 4-D with known height, width and channels (in NHWC, as the
    // graph was): what a Reshape of it into 2-D or from `[N, C]` needs.
    let spatial: HashMap<String, Spatial> = graph
        .node
        .iter()
        .filter_map(|n| match known.partial_of(&n.name)? {
            [batch, Some(h), Some(w), Some(c)] => {
                let dims = Spatial {
                    batch: *batch,
                    height: *h,
                    width: *w,
                    channels: *c,
                };
                Some((n.name.clone(), dims))
            }
            _ => None,
        })
        .collect();
    // ClipByValues whose bounds are known scalars; the others may hold a bound per element.
    let scalar_clips: HashSet<String> = graph
        .node
        .iter()
        .filter(|n| n.op == "ClipByValue")
        .filter(|n| {
            let inputs = data_inputs(n);
            inputs.len() == 3
                && inputs[1..]
                    .iter()
                    .all(|b| known.partial_of(b).is_some_and(|s| s.is_empty()))
        })
        .map(|n| n.name.clone())
        .collect();
    let mut builder = Builder {
        taken: graph.node.iter().map(|n| n.name.clone()).collect(),
        names: UniqueNames::default(),
        added: Vec::new(),
    };
    let perms = Perms {
        to_nchw: builder.unique_name("layout/to_nchw"),
        to_nhwc: builder.unique_name("layout/to_nhwc"),
    };
    let mut converted: Vec<String> = Vec::new();
    for node in &mut graph.node {
        let first = data_inputs(node).first().map(|s| s.to_string());
        let Some(first) = first else { continue };
        if protected.contains(&node.name)
            || !convertible(node, rank_of(&first))
            || output_type(node).is_none()
        {
            continue;
        }
        // Keras 3 leaves out a MaxPool's `T` (float, its default).
        let Some(t) = ops::attr_or_default(node, "T").cloned() else {
            continue;
        };
        let entry = builder.transpose(
            &format!("{}/to_nchw", node.name),
            first,
            &perms.to_nchw,
            Some(t),
        );
        node.input[0] = entry;
        node.attr.insert("data_format".into(), string_attr("NCHW"));
        for key in ["strides", "ksize", "dilations"] {
            if let Some(v) = attrs::ints(node, key).and_then(|v| reorder4(&v)) {
                node.attr.insert(key.into(), ints_attr(&v));
            }
        }
        if let Some(p) = attrs::ints(node, "explicit_paddings").filter(|p| p.len() == 8) {
            let pairs: Vec<[i64; 2]> = p.chunks(2).map(|c| [c[0], c[1]]).collect();
            if let Some(r) = reorder4(&pairs) {
                let flat: Vec<i64> = r.into_iter().flatten().collect();
                node.attr
                    .insert("explicit_paddings".into(), ints_attr(&flat));
            }
        }
        converted.push(node.name.clone());
    }
    if converted.is_empty() {
        return 0;
    }
    // The entry Transposes join the graph first, so the rewiring below reaches them too.
    graph.node.append(&mut builder.added);
    // Readers of each converted op's output 0 read it back in NHWC.
    let mut exits: HashMap<String, String> = HashMap::new();
    let positions = crate::graph::owned_name_index(graph);
    for name in &converted {
        let t = positions
            .get(name)
            .and_then(|&i| graph.node.get(i))
            .and_then(output_type);
        let exit = builder.transpose(&format!("{name}/to_nhwc"), name.clone(), &perms.to_nhwc, t);
        exits.insert(name.clone(), exit);
    }
    for node in &mut graph.node {
        for input in &mut node.input {
            let parsed = InputRef::parse(input);
            if !parsed.control && parsed.port == 0 {
                if let Some(exit) = exits.get(parsed.node) {
                    *input = exit.clone();
                }
            }
        }
    }
    let perm_nodes = [
        (perms.to_nchw.clone(), TO_NCHW),
        (perms.to_nhwc.clone(), TO_NHWC),
    ];
    for (name, perm) in perm_nodes {
        if let Some(value) = i32_tensor(&perm, &[4]) {
            builder.added.push(const_node(name, String::new(), &value));
        }
    }
    graph.node.extend(std::mem::take(&mut builder.added));
    // Each step moves one Transpose past one node or cancels a pair; the bound is a guard.
    let steps = graph.node.len().saturating_mul(8);
    let dropped =
        Sinking::new(graph, protected, &perms, builder, &spatial, &scalar_clips).run(steps);
    if !keep_io_layout {
        inputs_take_nchw(graph, &perms, &converted);
    }
    let bypassed: HashSet<String> = graph
        .node
        .iter()
        .filter(|n| n.op == "Transpose" || n.op == "Const")
        .map(|n| n.name.clone())
        .chain(dropped)
        .collect();
    remove_unread(graph, bypassed, protected);
    converted.len()
}

/// What one sinking step does to the node it is at.
enum Step {
    /// A Transpose into NCHW of a Transpose out of it: its readers read this instead.
    Cancel(String),
    /// A global spatial reduction now reads NCHW: new inputs 0 and 1, and no Transpose after.
    Reduce(String, String),
    /// A Reshape of an `[N, 1, 1, C]` tensor reads its NCHW form instead (the same elements in
    /// the same order): new input 0, no Transpose after.
    Flatten(String),
    /// A Transpose into NCHW of a Reshape (read by nothing else) that makes `[N, 1, 1, C]`:
    /// the Reshape makes `[N, C, 1, 1]` instead (node, new shape Const), and the Transpose's
    /// readers read it.
    Unflatten(usize, String),
    /// A Reshape of a 4-D tensor into `[N, H*W*C]`, read only by a MatMul's first operand
    /// whose weights are a Const, reads the NCHW tensor instead (new input 0); the MatMul
    /// (node, input position) reads the weights with their rows in NCHW order (a new Const).
    FlattenIntoMatMul(String, usize, usize, String),
    /// A Shape now reads the NCHW tensor; its readers get the dims back in NHWC order through a
    /// new GatherV2 (by the permutation Const and axis Const named).
    Shape(String, String, String),
    /// The node now computes in NCHW from these data inputs (by data position); its readers
    /// get its output back through a new Transpose.
    Sink(Vec<(usize, String)>),
}

/// The sinking phase. Each step is the one at the first node, in graph order, where a step
/// applies (so the names of new nodes and the order of the result depend on it), as if the
/// graph were scanned from the top after every step; but only nodes a step changed, or whose
/// inputs' producers it changed, are looked at again, and readers come from an index, so the
/// phase is linear in the edges rather than a scan per step. Removed nodes stay in place, marked
/// `gone`, until the end: positions never shift.
struct Sinking<'g> {
    graph: &'g mut GraphDef,
    protected: &'g HashSet<String>,
    perms: &'g Perms,
    builder: Builder,
    spatial: &'g HashMap<String, Spatial>,
    /// The ClipByValues whose bounds are scalars (the only ones a Transpose sinks through).
    scalar_clips: &'g HashSet<String>,
    index: crate::graph::NameMap<String, usize>,
    /// Nodes that read each node (some perhaps no longer: check the inputs).
    readers: Vec<Vec<usize>>,
    /// Input entries of present nodes naming each node.
    reads: Vec<usize>,
    gone: Vec<bool>,
    /// Nodes where a step may apply.
    pending: std::collections::BTreeSet<usize>,
    /// Nodes whose reads fell to zero in this step (unread Transposes go after it).
    unread: Vec<usize>,
    /// Inputs a step stopped reading that are not Transposes (a Reshape's computed shape):
    /// removed at the end if nothing reads them.
    dropped: HashSet<String>,
    /// Weights reordered to NCHW rows, by (Const, H, W, C, transpose_b): dense layers that
    /// share weights share the reordered Const too.
    reordered: HashMap<(String, usize, usize, usize, bool), String>,
}

impl<'g> Sinking<'g> {
    fn new(
        graph: &'g mut GraphDef,
        protected: &'g HashSet<String>,
        perms: &'g Perms,
        builder: Builder,
        spatial: &'g HashMap<String, Spatial>,
        scalar_clips: &'g HashSet<String>,
    ) -> Self {
        let mut sinking = Sinking {
            index: crate::graph::owned_name_index(graph),
            graph,
            protected,
            perms,
            builder,
            spatial,
            scalar_clips,
            readers: Vec::new(),
            reads: Vec::new(),
            gone: Vec::new(),
            pending: Default::default(),
            unread: Vec::new(),
            dropped: HashSet::new(),
            reordered: HashMap::new(),
        };
        let count = sinking.graph.node.len();
        sinking.readers = vec![Vec::new(); count];
        sinking.reads = vec![0; count];
        sinking.gone = vec![false; count];
        for i in 0..count {
            sinking.count_reads(i);
        }
        sinking.pending = (0..count).collect();
        sinking
    }

    /// Records the reads of node `i`'s inputs.
    fn count_reads(&mut self, i: usize) {
        let Some(node) = self.graph.node.get(i) else {
            return;
        };
        for input in &node.input {
            if let Some(&p) = self.index.get(InputRef::parse(input).node) {
                if let (Some(list), Some(count)) = (self.readers.get_mut(p), self.reads.get_mut(p))
                {
                    list.push(i);
                    *count += 1;
                }
            }
        }
    }

    /// Steps until none applies or `steps` have been taken, then drops the removed nodes;
    /// returns the inputs steps stopped reading (see `dropped`).
    fn run(mut self, mut steps: usize) -> HashSet<String> {
        let mut first = true;
        while steps > 0 {
            let Some(i) = self.pending.pop_first() else {
                break;
            };
            if self.gone.get(i) != Some(&false) || !self.step(i) {
                continue;
            }
            steps -= 1;
            // Transposes nothing reads any more go at once, so counts stay small: after the
            // first step every one, then those this step left unread.
            let candidates: Vec<usize> = if first {
                (0..self.graph.node.len()).collect()
            } else {
                std::mem::take(&mut self.unread)
            };
            first = false;
            self.unread.clear();
            self.remove_unread_transposes(candidates);
        }
        let gone = self.gone;
        let mut i = 0;
        self.graph.node.retain(|_| {
            i += 1;
            gone.get(i - 1) != Some(&true)
        });
        self.dropped
    }

    /// The node feeding `input`, if present.
    fn producer(&self, input: &str) -> Option<&NodeDef> {
        let &p = self.index.get(InputRef::parse(input).node)?;
        (self.gone.get(p) == Some(&false))
            .then(|| self.graph.node.get(p))
            .flatten()
    }

    /// The input of `input`'s producer if it is a Transpose by `perm` (name of the perm Const).
    fn transposed_from(&self, input: &str, perm: &str) -> Option<String> {
        let parsed = InputRef::parse(input);
        if parsed.control || parsed.port != 0 {
            return None;
        }
        let node = self.producer(input)?;
        let inputs = data_inputs(node);
        (node.op == "Transpose" && inputs.get(1).map(|p| InputRef::parse(p).node) == Some(perm))
            .then(|| inputs.first().map(|s| s.to_string()))
            .flatten()
    }

    fn const_ints(&self, input: &str) -> Option<Vec<i64>> {
        const_value(self.producer(input)?)?.integers()
    }

    /// The step that applies at node `i`, if one does. Only a step that applies adds nodes
    /// (to the builder) or reserves names.
    fn plan(&mut self, i: usize) -> Option<Step> {
        let node = self.graph.node.get(i)?;
        if self.protected.contains(&node.name) {
            return None;
        }
        let inputs: Vec<String> = data_inputs(node).iter().map(|s| s.to_string()).collect();
        let back = |k: usize| -> Option<String> {
            self.transposed_from(inputs.get(k)?, &self.perms.to_nhwc)
        };
        // Transpose(Transpose(x, to_nhwc), to_nchw) is x.
        if node.op == "Transpose" {
            let is_to_nchw =
                inputs.get(1).map(|p| InputRef::parse(p).node) == Some(self.perms.to_nchw.as_str());
            if !is_to_nchw {
                return None;
            }
            if let Some(x) = back(0) {
                return Some(Step::Cancel(x));
            }
            return self.unflatten(inputs.first()?);
        }
        if node.op == "Shape" && inputs.len() == 1 {
            let x = back(0)?;
            let name = node.name.clone();
            let perm = builder_const(&mut self.builder, &format!("{name}/perm"), &TO_NHWC, &[4])?;
            let axis = builder_const(&mut self.builder, &format!("{name}/axis"), &[0], &[])?;
            return Some(Step::Shape(x, perm, axis));
        }
        if node.op == "Reshape" && inputs.len() == 2 {
            let x = back(0)?;
            let source = InputRef::parse(&x);
            let dims = *self.spatial.get(source.node).filter(|_| source.port == 0)?;
            if dims.is_unit() {
                return Some(Step::Flatten(x));
            }
            return self.flatten_into_matmul(i, x, dims);
        }
        output_type(node)?;
        let op = node.op.as_str();
        let name = node.name.clone();
        let scalar_bounds = op != "ClipByValue" || self.scalar_clips.contains(&node.name);
        let elementwise_unary =
            (ops::UNARY.contains(&op) || UNARY_AGNOSTIC.contains(&op)) && scalar_bounds;
        let rewrite: Vec<(usize, String)> = if elementwise_unary {
            vec![(0, back(0)?)]
        } else if ops::ELEMENTWISE_BINARY.contains(&op) && inputs.len() == 2 {
            match (back(0), back(1)) {
                (Some(a), Some(b)) => vec![(0, a), (1, b)],
                (Some(a), None) => {
                    let c = self.channel_operand(&inputs[1])?;
                    vec![(0, a), (1, c)]
                }
                (None, Some(b)) => {
                    let c = self.channel_operand(&inputs[0])?;
                    vec![(0, c), (1, b)]
                }
                (None, None) => return None,
            }
        } else if op == "ConcatV2" && inputs.len() >= 2 {
            let n = inputs.len() - 1;
            let parts: Vec<String> = (0..n).map(back).collect::<Option<_>>()?;
            if !matches!(self.const_ints(&inputs[n]).as_deref(), Some([3] | [-1]))
                || !int32_indices(node, "Tidx")
            {
                return None;
            }
            let axis = builder_const(&mut self.builder, &format!("{name}/axis_nchw"), &[1], &[])?;
            let mut r: Vec<(usize, String)> = parts.into_iter().enumerate().collect();
            r.push((n, axis));
            r
        } else if matches!(op, "Mean" | "Sum" | "Max" | "Min" | "Prod") && inputs.len() == 2 {
            let axes = self.const_ints(&inputs[1])?;
            let keep = attrs::bool(node, "keep_dims").unwrap_or(false);
            let x = back(0)?;
            if sorted(&axes) != [1, 2] || !int32_indices(node, "Tidx") {
                return None;
            }
            let a = builder_const(
                &mut self.builder,
                &format!("{name}/axes_nchw"),
                &[2, 3],
                &[2],
            )?;
            return Some(if keep {
                // [N, 1, 1, C] stays 4-D: the same reduction over NCHW's spatial axes gives
                // [N, C, 1, 1], and the Transpose sinks on (a squeeze-excite block's pooling).
                Step::Sink(vec![(0, x), (1, a)])
            } else {
                // A global spatial reduction: [N, C] in both layouts, no Transpose after.
                Step::Reduce(x, a)
            });
        } else if matches!((op, inputs.len()), ("Pad" | "MirrorPad", 2) | ("PadV2", 3)) {
            // A MirrorPad's mode and a PadV2's scalar fill do not depend on the layout.
            let pads = self.const_ints(&inputs[1])?;
            let x = back(0)?;
            if pads.len() != 8 || !int32_indices(node, "Tpaddings") {
                return None;
            }
            let pairs: Vec<[i64; 2]> = pads.chunks(2).map(|c| [c[0], c[1]]).collect();
            let flat: Vec<i64> = reorder4(&pairs)?.into_iter().flatten().collect();
            let base = format!("{name}/paddings_nchw");
            // TensorFlow's paddings are [rank, 2].
            let paddings = builder_const(&mut self.builder, &base, &flat, &[4, 2])?;
            vec![(0, x), (1, paddings)]
        } else {
            return None;
        };
        Some(Step::Sink(rewrite))
    }

    /// The step for a Transpose into NCHW of `input` when that is an unprotected Reshape read
    /// only here whose output is `[N, 1, 1, C]`: the Reshape makes `[N, C, 1, 1]` itself.
    fn unflatten(&mut self, input: &str) -> Option<Step> {
        let parsed = InputRef::parse(input);
        let &p = self.index.get(parsed.node)?;
        let reshape = self.producer(input)?;
        if parsed.port != 0
            || reshape.op != "Reshape"
            || self.protected.contains(&reshape.name)
            || self.reads.get(p) != Some(&1)
            || attrs::dtype(reshape, "Tshape").is_some_and(|t| t != DataType::DtInt32)
        {
            return None;
        }
        let dims = *self.spatial.get(&reshape.name).filter(|d| d.is_unit())?;
        let batch = dims.batch.map_or(Some(-1), |n| i64::try_from(n).ok())?;
        let channels = i64::try_from(dims.channels).ok()?;
        let base = format!("{}/shape_nchw", reshape.name);
        let shape = builder_const(&mut self.builder, &base, &[batch, channels, 1, 1], &[4])?;
        Some(Step::Unflatten(p, shape))
    }

    /// The step for Reshape `i` of the NHWC form of `x` (of `dims`) into `[N, H*W*C]` when
    /// only a MatMul reads it, as its first operand, with Const weights: the Reshape reads `x`
    /// in NCHW order and the weights' rows (columns, when the MatMul transposes them) are
    /// reordered to match, so no Transpose is left before a dense layer.
    fn flatten_into_matmul(&mut self, i: usize, x: String, dims: Spatial) -> Option<Step> {
        let reshape = self.graph.node.get(i)?;
        let flat = dims
            .height
            .checked_mul(dims.width)?
            .checked_mul(dims.channels)?;
        let shape = self.const_ints(data_inputs(reshape).get(1)?)?;
        let flat_i64 = i64::try_from(flat).ok()?;
        // Rows of H*W*C, one per batch item, in any spelling (`[-1, HWC]`, `[N, -1]`, ...):
        // the weights' row count below is H*W*C, so a graph that runs has one row per item.
        let one_row_per_item =
            |n: i64, f: i64| (f == flat_i64 && (n == -1 || n > 0)) || (f == -1 && n > 0);
        if !matches!(shape.as_slice(), [n, f] if one_row_per_item(*n, *f))
            || self.reads.get(i) != Some(&1)
        {
            return None;
        }
        let reshape_name = reshape.name.clone();
        let &matmul = self.readers.get(i)?.iter().find(|&&r| {
            self.gone.get(r) == Some(&false)
                && self.graph.node.get(r).is_some_and(|n| n.op == "MatMul")
        })?;
        let node = self.graph.node.get(matmul)?;
        let positions: Vec<usize> = node
            .input
            .iter()
            .enumerate()
            .filter(|(_, input)| !input.starts_with('^'))
            .map(|(position, _)| position)
            .collect();
        let (&first, &second) = (positions.first()?, positions.get(1)?);
        let reads_reshape = |k: usize| {
            node.input.get(k).is_some_and(|input| {
                let parsed = InputRef::parse(input);
                parsed.node == reshape_name && parsed.port == 0
            })
        };
        // A protected MatMul may read other weights: its output is the same.
        if positions.len() != 2
            || !reads_reshape(first)
            || reads_reshape(second)
            || attrs::bool(node, "transpose_a").unwrap_or(false)
        {
            return None;
        }
        let transpose_b = attrs::bool(node, "transpose_b").unwrap_or(false);
        let weights_input = node.input.get(second)?.clone();
        if InputRef::parse(&weights_input).port != 0 {
            return None;
        }
        // A clone shares the weights' bytes.
        let producer = self.producer(&weights_input)?.clone();
        // A protected Const (a graph input) must stay what the MatMul reads.
        if self.protected.contains(&producer.name) || producer.op != "Const" {
            return None;
        }
        let proto = attrs::tensor(&producer, "value")?;
        let declared: Vec<i64> = proto
            .tensor_shape
            .as_ref()?
            .dim
            .iter()
            .map(|d| d.size)
            .collect();
        let row_axis = usize::from(transpose_b);
        if declared.len() != 2 || declared.get(row_axis) != Some(&flat_i64) {
            return None;
        }
        let (h, w, c) = (dims.height, dims.width, dims.channels);
        // With one channel, or no weights at all, both orders are the same.
        if c == 1 || declared.contains(&0) {
            return Some(Step::FlattenIntoMatMul(x, matmul, second, weights_input));
        }
        let key = (producer.name.clone(), h, w, c, transpose_b);
        if let Some(name) = self.reordered.get(&key) {
            return Some(Step::FlattenIntoMatMul(x, matmul, second, name.clone()));
        }
        let columns = usize::try_from(*declared.get(1 - row_axis)?).ok()?;
        let elements = flat.checked_mul(columns)?;
        let element = crate::tensor::memory_element_size(DataType::try_from(proto.dtype).ok()?);
        // Row `(c, h, w)` of the NCHW flattening holds what row `(h, w, c)` held: the
        // weights split into their four axes, the channel axis moved first, and merged again.
        let (split, axes) = if transpose_b {
            (vec![columns, h, w, c], [0, 3, 1, 2])
        } else {
            (vec![h, w, c, columns], [2, 0, 1, 3])
        };
        let reordered = crate::budget::scratch_scope(|| {
            // Decoded, reordered and encoded: three copies at most at once.
            crate::budget::alloc_items(elements, element.saturating_mul(3), "reordered weights")
                .ok()?;
            crate::budget::work(u64::try_from(elements).ok()?).ok()?;
            let weights = const_value(&producer)?;
            let shape = weights.shape().to_vec();
            let data = crate::map_data!(weights.data(), a => {
                let split = a.view().into_shape_with_order(ndarray::IxDyn(&split)).ok()?;
                let moved = split.permuted_axes(ndarray::IxDyn(&axes)).as_standard_layout().into_owned();
                moved.into_shape_with_order(ndarray::IxDyn(&shape)).ok()?
            });
            Some(Tensor::from_data(data))
        })?;
        let name = self
            .builder
            .unique_name(&format!("{}/nchw_rows", producer.name));
        let weights = derived_const(&producer, name.clone(), &reordered);
        self.builder.added.push(weights);
        self.reordered.insert(key, name.clone());
        Some(Step::FlattenIntoMatMul(x, matmul, second, name))
    }

    /// A constant operand that broadcasts the same against NCHW: a scalar as it is, a
    /// per-channel vector `[C]` (or `[1, 1, 1, C]`) reshaped to `[1, C, 1, 1]`.
    fn channel_operand(&mut self, input: &str) -> Option<String> {
        if InputRef::parse(input).port != 0 {
            return None;
        }
        // A clone shares the weights' bytes.
        let producer = self.producer(input)?.clone();
        if self.protected.contains(&producer.name) {
            return None;
        }
        let value = const_value(&producer)?;
        let shape = value.shape().to_vec();
        if value.len() == 1 && shape.len() <= 1 {
            return Some(input.to_string());
        }
        let channels = match shape.as_slice() {
            [c] => *c,
            [1, 1, 1, c] => *c,
            _ => return None,
        };
        // The same values in the same order, shaped to broadcast along NCHW's channel axis.
        let mut proto = value.to_proto();
        proto.tensor_shape = Some(crate::tensor::shape_proto(&[1, channels, 1, 1]));
        let reshaped = Tensor::from_proto(&proto).ok()?;
        let name = self.builder.unique_name(&format!("{}/nchw", producer.name));
        let node = derived_const(&producer, name.clone(), &reshaped);
        self.builder.added.push(node);
        Some(name)
    }

    /// Takes the step at node `i` if one applies.
    fn step(&mut self, i: usize) -> bool {
        let Some(step) = self.plan(i) else {
            return false;
        };
        if let Step::Shape(_, perm, axis) = &step {
            let Some(node) = self.graph.node.get(i) else {
                return false;
            };
            let out_type = node
                .attr
                .get("out_type")
                .cloned()
                .unwrap_or_else(|| type_attr(DataType::DtInt32));
            let gather = NodeDef {
                name: self.builder.unique_name(&format!("{}/nhwc", node.name)),
                op: "GatherV2".into(),
                input: vec![node.name.clone(), perm.clone(), axis.clone()],
                device: node.device.clone(),
                attr: [
                    ("Tparams".to_string(), out_type),
                    ("Tindices".to_string(), type_attr(DataType::DtInt32)),
                    ("Taxis".to_string(), type_attr(DataType::DtInt32)),
                    (
                        "batch_dims".to_string(),
                        AttrValue {
                            value: Some(attr_value::Value::I(0)),
                        },
                    ),
                ]
                .into_iter()
                .collect(),
                ..Default::default()
            };
            self.builder.added.push(gather);
        }
        if let Step::Sink(_) = step {
            let Some(node) = self.graph.node.get(i) else {
                return false;
            };
            let (name, t) = (node.name.clone(), output_type(node));
            let perm = self.perms.to_nhwc.clone();
            self.builder
                .transpose(&format!("{name}/to_nhwc"), name, &perm, t);
        }
        // New nodes are named before the rewiring reads them, and read after it, so the
        // new Transpose after the node does not read itself.
        let added = self.place_built_nodes();
        match step {
            Step::Cancel(x) => self.rewire_readers(i, &x),
            Step::Reduce(x, axes) => {
                self.set_input(i, 0, x);
                self.set_input(i, 1, axes);
            }
            Step::Flatten(x) => self.set_input(i, 0, x),
            Step::FlattenIntoMatMul(x, matmul, position, weights) => {
                self.set_input(i, 0, x);
                self.set_input(matmul, position, weights);
            }
            Step::Shape(x, _, _) => {
                // The GatherV2 is the last node built; the Shape's readers read it.
                if let Some(gather) = added.clone().last().and_then(|e| self.graph.node.get(e)) {
                    let gather = gather.name.clone();
                    self.rewire_readers(i, &gather);
                }
                self.set_input(i, 0, x);
            }
            Step::Unflatten(reshape, shape) => {
                if let Some(name) = self.graph.node.get(reshape).map(|n| n.name.clone()) {
                    if let Some(position) = self.graph.node.get(reshape).and_then(|n| {
                        n.input
                            .iter()
                            .enumerate()
                            .filter(|(_, input)| !input.starts_with('^'))
                            .nth(1)
                            .map(|(position, _)| position)
                    }) {
                        if let Some(old) = self
                            .graph
                            .node
                            .get(reshape)
                            .and_then(|n| n.input.get(position))
                        {
                            self.dropped.insert(InputRef::parse(old).node.to_string());
                        }
                        self.set_input(reshape, position, shape);
                    }
                    self.rewire_readers(i, &name);
                }
            }
            Step::Sink(rewrite) => {
                if let Some(exit) = added.clone().last().and_then(|e| self.graph.node.get(e)) {
                    let exit = exit.name.clone();
                    self.rewire_readers(i, &exit);
                }
                let positions: Vec<usize> = self.graph.node.get(i).map_or(Vec::new(), |n| {
                    n.input
                        .iter()
                        .enumerate()
                        .filter(|(_, input)| !input.starts_with('^'))
                        .map(|(position, _)| position)
                        .collect()
                });
                for (k, value) in rewrite {
                    if let Some(&position) = positions.get(k) {
                        self.set_input(i, position, value);
                    }
                }
            }
        }
        for new in added {
            self.count_reads(new);
            self.pending.insert(new);
            self.unread.push(new);
        }
        true
    }

    /// Every data read of node `i`'s output 0 reads `source` instead.
    fn rewire_readers(&mut self, i: usize, source: &str) {
        let Some(name) = self.graph.node.get(i).map(|n| n.name.clone()) else {
            return;
        };
        let mut readers = self.readers.get(i).cloned().unwrap_or_default();
        readers.sort_unstable();
        readers.dedup();
        for r in readers {
            if self.gone.get(r) != Some(&false) {
                continue;
            }
            let positions: Vec<usize> = self.graph.node.get(r).map_or(Vec::new(), |n| {
                n.input
                    .iter()
                    .enumerate()
                    .filter(|(_, input)| {
                        let parsed = InputRef::parse(input);
                        !parsed.control && parsed.port == 0 && parsed.node == name
                    })
                    .map(|(position, _)| position)
                    .collect()
            });
            for position in positions {
                self.set_input(r, position, source.to_string());
            }
        }
    }

    /// Input `position` of node `r` becomes `value`, with reads, readers and the nodes where a
    /// step may now apply updated: `r`, and the readers of `r` if it is a Transpose (a step
    /// looks through Transposes at their input).
    fn set_input(&mut self, r: usize, position: usize, value: String) {
        let new_producer = self.index.get(InputRef::parse(&value).node).copied();
        let Some(input) = self
            .graph
            .node
            .get_mut(r)
            .and_then(|n| n.input.get_mut(position))
        else {
            return;
        };
        let old = std::mem::replace(input, value);
        if let Some(&p) = self.index.get(InputRef::parse(&old).node) {
            if let Some(count) = self.reads.get_mut(p) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.unread.push(p);
                }
            }
        }
        if let Some(p) = new_producer {
            if let (Some(list), Some(count)) = (self.readers.get_mut(p), self.reads.get_mut(p)) {
                list.push(r);
                *count += 1;
            }
        }
        self.pending.insert(r);
        if self.graph.node.get(r).is_some_and(|n| n.op == "Transpose") {
            self.pending
                .extend(self.readers.get(r).map_or(&[][..], Vec::as_slice));
        }
    }

    /// Moves the builder's new nodes to the end of the graph and into the name index; their
    /// reads are not counted yet. Returns their positions.
    fn place_built_nodes(&mut self) -> std::ops::Range<usize> {
        let start = self.graph.node.len();
        for node in std::mem::take(&mut self.builder.added) {
            let i = self.graph.node.len();
            self.index.entry(node.name.clone()).or_insert(i);
            self.graph.node.push(node);
            self.readers.push(Vec::new());
            self.reads.push(0);
            self.gone.push(false);
        }
        start..self.graph.node.len()
    }

    /// Removes the unread, unprotected Transposes among `candidates`, then the producers
    /// (Consts and pure ops) only they read, and so on.
    fn remove_unread_transposes(&mut self, candidates: Vec<usize>) {
        let pending = candidates
            .into_iter()
            .filter(|&i| self.graph.node.get(i).is_some_and(|n| n.op == "Transpose"))
            .collect();
        mark_unread(
            &self.graph.node,
            &self.index,
            &mut self.reads,
            &mut self.gone,
            pending,
            self.protected,
        );
    }
}

fn sorted(values: &[i64]) -> Vec<i64> {
    let mut v: Vec<i64> = values
        .iter()
        .map(|&a| if a < 0 { a + 4 } else { a })
        .collect();
    v.sort_unstable();
    v
}

/// A Const of `value` named `name` in place of Const `source`: its device, control inputs
/// (a Const in a loop body waits on the loop's pivot) and attributes other than its value.
fn derived_const(source: &NodeDef, name: String, value: &Tensor) -> NodeDef {
    let mut node = const_node(name, source.device.clone(), value);
    node.input = source
        .input
        .iter()
        .filter(|i| i.starts_with('^'))
        .cloned()
        .collect();
    for (key, attr) in &source.attr {
        if key != "value" && key != "dtype" {
            node.attr.insert(key.clone(), attr.clone());
        }
    }
    node
}

/// A new int32 Const of `shape` (`[]`: a scalar) holding `values`; `None`, with nothing added,
/// when a value does not fit in int32.
fn builder_const(
    builder: &mut Builder,
    base: &str,
    values: &[i64],
    shape: &[usize],
) -> Option<String> {
    let value = i32_tensor(values, shape)?;
    let name = builder.unique_name(base);
    builder
        .added
        .push(const_node(name.clone(), String::new(), &value));
    Some(name)
}

/// Whether `node`'s index-type attribute `attr` is int32 or absent (its default): the Consts
/// this module builds are int32.
fn int32_indices(node: &NodeDef, attr: &str) -> bool {
    attrs::dtype(node, attr).is_none_or(|t| t == DataType::DtInt32)
}

/// With `keep_io_layout = false`: every 4-D Placeholder whose data reaches a converted op
/// takes NCHW. Transposes of it into NCHW read it directly instead; any other reader (an op
/// that stayed NHWC, such as SpaceToBatchND or ResizeBilinear) reads it through one Transpose
/// back to NHWC. A 4-D input the conversion never reaches (a mask, say) keeps its layout.
fn inputs_take_nchw(graph: &mut GraphDef, perms: &Perms, converted: &[String]) {
    let reaching = reaching_converted(graph, converted);
    let is_entry = |node: &NodeDef| {
        node.op == "Transpose"
            && data_inputs(node).get(1).map(|q| InputRef::parse(q).node)
                == Some(perms.to_nchw.as_str())
    };
    let mut taken: HashSet<String> = graph.node.iter().map(|n| n.name.clone()).collect();
    let mut names = UniqueNames::default();
    // Placeholder -> the Transpose back to NHWC that its other readers read.
    let mut back: HashMap<String, String> = HashMap::new();
    let mut added = Vec::new();
    for (p, node) in graph.node.iter_mut().enumerate() {
        if node.op != "Placeholder" || !reaching.get(p).copied().unwrap_or(false) {
            continue;
        }
        let Some(dims) = attrs::shape(node, "shape")
            .filter(|s| !s.unknown_rank)
            .map(|s| s.dim.iter().map(|d| d.size).collect::<Vec<i64>>())
        else {
            continue;
        };
        let Some(nchw) = reorder4(&dims) else {
            continue;
        };
        node.attr.insert(
            "shape".into(),
            AttrValue {
                value: Some(attr_value::Value::Shape(crate::dtype::shape_from_dims(
                    &nchw,
                ))),
            },
        );
        let name = names.reserve(&format!("{}/to_nhwc", node.name), &mut taken);
        let mut transpose = NodeDef {
            name: name.clone(),
            op: "Transpose".into(),
            input: vec![node.name.clone(), perms.to_nhwc.clone()],
            ..Default::default()
        };
        if let Some(t) = node.attr.get("dtype") {
            transpose.attr.insert("T".into(), t.clone());
        }
        transpose
            .attr
            .insert("Tperm".into(), type_attr(DataType::DtInt32));
        added.push(transpose);
        back.insert(node.name.clone(), name);
    }
    if back.is_empty() {
        return;
    }
    // Entry Transposes of a converted input are bypassed: their readers read the input.
    let bypassed: HashMap<String, String> = graph
        .node
        .iter()
        .filter(|n| is_entry(n))
        .filter_map(|n| {
            let source = InputRef::parse(data_inputs(n).first()?);
            (source.port == 0 && back.contains_key(source.node))
                .then(|| (n.name.clone(), source.node.to_string()))
        })
        .collect();
    for node in &mut graph.node {
        if bypassed.contains_key(&node.name) {
            continue;
        }
        for input in &mut node.input {
            let parsed = InputRef::parse(input);
            if parsed.control || parsed.port != 0 {
                continue;
            }
            if let Some(placeholder) = bypassed.get(parsed.node) {
                *input = placeholder.clone();
            } else if let Some(transpose) = back.get(parsed.node) {
                *input = transpose.clone();
            }
        }
    }
    // Unread ones (every reader an entry Transpose) go with the other unread Transposes.
    graph.node.extend(added);
}

/// For each node, whether its output reaches a node of `converted` through data edges.
fn reaching_converted(graph: &GraphDef, converted: &[String]) -> Vec<bool> {
    let index = GraphIndex::new(graph);
    let mut reaching = vec![false; graph.node.len()];
    let mut stack: Vec<usize> = converted
        .iter()
        .filter_map(|name| index.index_of(name))
        .collect();
    while let Some(n) = stack.pop() {
        let Some(node) = graph.node.get(n) else {
            continue;
        };
        for input in data_inputs(node) {
            if let Some(i) = index.index_of(InputRef::parse(input).node) {
                if let Some(seen @ false) = reaching.get_mut(i) {
                    *seen = true;
                    stack.push(i);
                }
            }
        }
    }
    reaching
}
