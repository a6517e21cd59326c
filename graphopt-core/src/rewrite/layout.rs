//! Layout: [`to_nchw`] turns an NHWC graph into NCHW, for consumers that run channels-first
//! (TensorRT, Ascend, GPU runtimes).
//!
//! Every layout-sensitive op (Conv2D, DepthwiseConv2dNative, MaxPool, AvgPool, and BiasAdd and
//! FusedBatchNorm on 4-D inputs) switches its `data_format` to NCHW, with its strides, kernel
//! sizes, dilations and explicit paddings reordered, between a Transpose into NCHW and one back.
//! The Transposes then sink through what does not care about layout — unary elementwise ops,
//! binary ones whose other operand is a scalar, a per-channel constant (reshaped to
//! `[1, C, 1, 1]`) or another tensor waiting on the same Transpose, channel concatenations,
//! spatial reductions and paddings — and cancelling pairs disappear, so a CNN keeps one
//! Transpose at its input and one where it leaves 4-D. Filters need no change: TensorFlow's
//! are HWIO in both layouts. With `keep_io_layout = false` a 4-D Placeholder read only through
//! the input Transpose takes NCHW itself. Protected nodes keep their layout.

use std::collections::{HashMap, HashSet};

use crate::analysis::shapes;
use crate::graph::edit::{const_node, const_value, data_inputs, unique_name, Uses};
use crate::graph::{attrs, ops, InputRef};
use crate::proto::{attr_value, AttrValue, DataType, GraphDef, NodeDef};
use crate::tensor::{Data, Tensor};

const TO_NCHW: [i64; 4] = [0, 3, 1, 2];
const TO_NHWC: [i64; 4] = [0, 2, 3, 1];

/// Ops that compute elementwise on one tensor, so a Transpose commutes with them.
const UNARY_AGNOSTIC: &[&str] = &["Relu6", "Identity", "Cast", "ClipByValue"];

fn ints_attr(values: &[i64]) -> AttrValue {
    AttrValue {
        value: Some(attr_value::Value::List(Box::new(attr_value::ListValue {
            i: values.to_vec(),
            ..Default::default()
        }))),
    }
}

fn string_attr(value: &'static str) -> AttrValue {
    AttrValue {
        value: Some(attr_value::Value::S(bytes::Bytes::from_static(
            value.as_bytes(),
        ))),
    }
}

fn i32_vector(values: &[i64]) -> Option<Tensor> {
    let v: Vec<i32> = values
        .iter()
        .map(|&x| i32::try_from(x).ok())
        .collect::<Option<_>>()?;
    let n = v.len();
    Some(Tensor::from_data(Data::I32(
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[n]), v).ok()?,
    )))
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
/// comparison's bool, or the attribute it names), else its `T`; `None` when the node does not
/// say (the Transpose that reads the output back would lack its `T`).
fn output_type(node: &NodeDef) -> Option<AttrValue> {
    match ops::op_def(&node.op).and_then(|d| d.output_arg.first()) {
        Some(arg) if arg.r#type != 0 => Some(AttrValue {
            value: Some(attr_value::Value::Type(arg.r#type)),
        }),
        Some(arg) if !arg.type_attr.is_empty() => node.attr.get(&arg.type_attr).cloned(),
        _ => node.attr.get("T").cloned(),
    }
}

/// The two shared permutation constants, created once.
struct Perms {
    to_nchw: String,
    to_nhwc: String,
}

struct Builder {
    taken: HashSet<String>,
    added: Vec<NodeDef>,
}

impl Builder {
    fn transpose(&mut self, base: &str, input: String, perm: &str, t: Option<AttrValue>) -> String {
        let name = unique_name(base, &mut self.taken);
        let mut node = NodeDef {
            name: name.clone(),
            op: "Transpose".into(),
            input: vec![input, perm.to_string()],
            ..Default::default()
        };
        if let Some(t) = t {
            node.attr.insert("T".into(), t);
        }
        node.attr.insert(
            "Tperm".into(),
            AttrValue {
                value: Some(attr_value::Value::Type(DataType::DtInt32 as i32)),
            },
        );
        self.added.push(node);
        name
    }
}

/// Converts the graph to NCHW (see the module docs); returns how many ops changed layout.
pub fn to_nchw(graph: &mut GraphDef, protected: &HashSet<String>, keep_io_layout: bool) -> usize {
    let known = shapes::infer_graph(graph);
    let rank_of = |input: &str| -> Option<usize> {
        let parsed = InputRef::parse(input);
        Some(
            known
                .get(parsed.node)?
                .get(parsed.port as usize)?
                .as_ref()?
                .len(),
        )
    };
    let mut builder = Builder {
        taken: graph.node.iter().map(|n| n.name.clone()).collect(),
        added: Vec::new(),
    };
    let perms = Perms {
        to_nchw: unique_name("layout/to_nchw", &mut builder.taken),
        to_nhwc: unique_name("layout/to_nhwc", &mut builder.taken),
    };
    let mut converted: Vec<String> = Vec::new();
    for node in &mut graph.node {
        let first = data_inputs(node).first().map(|s| s.to_string());
        let Some(first) = first else { continue };
        if protected.contains(&node.name)
            || !convertible(node, rank_of(&first))
            || !node.attr.contains_key("T")
            || output_type(node).is_none()
        {
            continue;
        }
        let t = node.attr.get("T").cloned();
        let entry = builder.transpose(&format!("{}/to_nchw", node.name), first, &perms.to_nchw, t);
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
    for name in &converted {
        let t = graph
            .node
            .iter()
            .find(|n| n.name == *name)
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
        if let Some(value) = i32_vector(&perm) {
            builder.added.push(const_node(name, String::new(), &value));
        }
    }
    graph.node.extend(std::mem::take(&mut builder.added));
    // Each step moves one Transpose past one node or cancels a pair; the bound is a guard.
    let steps = graph.node.len().saturating_mul(8);
    for _ in 0..steps {
        if !sink_once(graph, protected, &perms, &mut builder) {
            break;
        }
        // Transposes nothing reads any more go at once, so counts stay small.
        let unread: HashSet<String> = graph
            .node
            .iter()
            .filter(|n| n.op == "Transpose")
            .map(|n| n.name.clone())
            .collect();
        crate::graph::edit::remove_unread(graph, unread, protected);
    }
    if !keep_io_layout {
        inputs_take_nchw(graph, &perms);
    }
    let bypassed: HashSet<String> = graph
        .node
        .iter()
        .filter(|n| n.op == "Transpose" || n.op == "Const")
        .map(|n| n.name.clone())
        .collect();
    crate::graph::edit::remove_unread(graph, bypassed, protected);
    converted.len()
}

/// The input of `input`'s producer if it is a Transpose by `perm` (name of the perm Const).
fn transposed_from<'g>(
    graph: &'g GraphDef,
    uses: &Uses,
    input: &str,
    perm: &str,
) -> Option<&'g str> {
    let parsed = InputRef::parse(input);
    if parsed.control || parsed.port != 0 {
        return None;
    }
    let node = graph.node.get(uses.producer(input)?)?;
    let inputs = data_inputs(node);
    (node.op == "Transpose" && inputs.get(1).map(|p| InputRef::parse(p).node) == Some(perm))
        .then(|| inputs.first().copied())
        .flatten()
}

/// One rewrite of the sinking phase; true if anything changed.
fn sink_once(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
    perms: &Perms,
    builder: &mut Builder,
) -> bool {
    let uses = Uses::new(graph);
    for i in 0..graph.node.len() {
        let node = &graph.node[i];
        if protected.contains(&node.name) {
            continue;
        }
        let inputs: Vec<String> = data_inputs(node).iter().map(|s| s.to_string()).collect();
        let back = |k: usize| -> Option<String> {
            transposed_from(graph, &uses, inputs.get(k)?, &perms.to_nhwc).map(str::to_string)
        };
        // Transpose(Transpose(x, to_nhwc), to_nchw) is x.
        if node.op == "Transpose" {
            let is_to_nchw =
                inputs.get(1).map(|p| InputRef::parse(p).node) == Some(perms.to_nchw.as_str());
            if let (true, Some(x)) = (is_to_nchw, back(0)) {
                replace_reads(graph, i, &x);
                return true;
            }
            continue;
        }
        if output_type(node).is_none() {
            continue;
        }
        let op = node.op.as_str();
        let elementwise_unary = ops::UNARY.contains(&op) || UNARY_AGNOSTIC.contains(&op);
        let rewrite: Option<Vec<(usize, String)>> = if elementwise_unary {
            back(0).map(|x| vec![(0, x)])
        } else if ops::ELEMENTWISE_BINARY.contains(&op) && inputs.len() == 2 {
            match (back(0), back(1)) {
                (Some(a), Some(b)) => Some(vec![(0, a), (1, b)]),
                (Some(a), None) => {
                    channel_operand(graph, &uses, &inputs[1], builder).map(|c| vec![(0, a), (1, c)])
                }
                (None, Some(b)) => {
                    channel_operand(graph, &uses, &inputs[0], builder).map(|c| vec![(0, c), (1, b)])
                }
                (None, None) => None,
            }
        } else if op == "ConcatV2" && inputs.len() >= 2 {
            let n = inputs.len() - 1;
            let parts: Option<Vec<String>> = (0..n).map(back).collect();
            let axis = const_ints(graph, &uses, &inputs[n]);
            match (parts, axis.as_deref()) {
                (Some(parts), Some([3] | [-1])) => {
                    let axis =
                        builder_const(builder, &format!("{}/axis_nchw", node.name), &[1], true);
                    let mut r: Vec<(usize, String)> = parts.into_iter().enumerate().collect();
                    r.push((n, axis));
                    Some(r)
                }
                _ => None,
            }
        } else if matches!(op, "Mean" | "Sum" | "Max" | "Min") && inputs.len() == 2 {
            let axes = const_ints(graph, &uses, &inputs[1]);
            let keep = attrs::bool(node, "keep_dims").unwrap_or(false);
            match (back(0), axes) {
                (Some(x), Some(axes)) if !keep && sorted(&axes) == [1, 2] => {
                    // A global spatial reduction: [N, C] in both layouts, no Transpose after.
                    let a =
                        builder_const(builder, &format!("{}/axes_nchw", node.name), &[2, 3], true);
                    let node = &mut graph.node[i];
                    node.input[0] = x;
                    node.input[1] = a;
                    graph.node.append(&mut builder.added);
                    return true;
                }
                _ => None,
            }
        } else if op == "Pad" && inputs.len() == 2 {
            let pads = const_ints(graph, &uses, &inputs[1]);
            match (back(0), pads) {
                (Some(x), Some(p)) if p.len() == 8 => {
                    let pairs: Vec<[i64; 2]> = p.chunks(2).map(|c| [c[0], c[1]]).collect();
                    reorder4(&pairs).map(|r| {
                        let flat: Vec<i64> = r.into_iter().flatten().collect();
                        let c = builder_const(
                            builder,
                            &format!("{}/paddings_nchw", node.name),
                            &flat,
                            false,
                        );
                        vec![(0, x), (1, c)]
                    })
                }
                _ => None,
            }
        } else {
            None
        };
        let Some(rewrite) = rewrite else { continue };
        // The op now computes in NCHW; its readers get it back through a new Transpose.
        let name = graph.node[i].name.clone();
        let t = output_type(&graph.node[i]);
        let exit = builder.transpose(&format!("{name}/to_nhwc"), name.clone(), &perms.to_nhwc, t);
        for node in &mut graph.node {
            for input in &mut node.input {
                let parsed = InputRef::parse(input);
                if !parsed.control && parsed.port == 0 && parsed.node == name {
                    *input = exit.clone();
                }
            }
        }
        let node = &mut graph.node[i];
        let mut k = 0;
        for input in node.input.iter_mut() {
            if input.starts_with('^') {
                continue;
            }
            if let Some((_, value)) = rewrite.iter().find(|(slot, _)| *slot == k) {
                *input = value.clone();
            }
            k += 1;
        }
        graph.node.append(&mut builder.added);
        return true;
    }
    false
}

fn sorted(values: &[i64]) -> Vec<i64> {
    let mut v: Vec<i64> = values
        .iter()
        .map(|&a| if a < 0 { a + 4 } else { a })
        .collect();
    v.sort_unstable();
    v
}

fn const_ints(graph: &GraphDef, uses: &Uses, input: &str) -> Option<Vec<i64>> {
    const_value(graph.node.get(uses.producer(input)?)?)?.integers()
}

/// A new int32 Const (a vector, or a scalar when `scalar` and one value).
fn builder_const(builder: &mut Builder, base: &str, values: &[i64], scalar: bool) -> String {
    let name = unique_name(base, &mut builder.taken);
    let value = if scalar && values.len() == 1 {
        i32::try_from(values[0])
            .ok()
            .map(|v| Tensor::from_data(Data::I32(ndarray::arr0(v).into_dyn())))
    } else {
        i32_vector(values)
    };
    if let Some(value) = value {
        builder
            .added
            .push(const_node(name.clone(), String::new(), &value));
    }
    name
}

/// A constant operand that broadcasts the same against NCHW: a scalar as it is, a per-channel
/// vector `[C]` (or `[1, 1, 1, C]`) reshaped to `[1, C, 1, 1]`.
fn channel_operand(
    graph: &GraphDef,
    uses: &Uses,
    input: &str,
    builder: &mut Builder,
) -> Option<String> {
    if InputRef::parse(input).port != 0 {
        return None;
    }
    let producer = graph.node.get(uses.producer(input)?)?;
    let value = const_value(producer)?;
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
    let name = unique_name(&format!("{}/nchw", producer.name), &mut builder.taken);
    builder
        .added
        .push(const_node(name.clone(), producer.device.clone(), &reshaped));
    Some(name)
}

/// Every data read of node `i`'s output 0 reads `source` instead.
fn replace_reads(graph: &mut GraphDef, i: usize, source: &str) {
    let name = graph.node[i].name.clone();
    for node in &mut graph.node {
        for input in &mut node.input {
            let parsed = InputRef::parse(input);
            if !parsed.control && parsed.port == 0 && parsed.node == name {
                *input = source.to_string();
            }
        }
    }
}

/// 4-D Placeholders read only through `to_nchw` Transposes take the NCHW shape themselves.
fn inputs_take_nchw(graph: &mut GraphDef, perms: &Perms) {
    let uses = Uses::new(graph);
    let mut rewires: Vec<(String, String)> = Vec::new();
    let mut placeholders = Vec::new();
    for (p, node) in graph.node.iter().enumerate() {
        // Inputs are protected by name, not by layout: asking for NCHW inputs is the point.
        if node.op != "Placeholder" {
            continue;
        }
        let readers: Vec<&NodeDef> = graph
            .node
            .iter()
            .filter(|n| n.input.iter().any(|i| InputRef::parse(i).node == node.name))
            .collect();
        let all_transposes = !readers.is_empty()
            && readers.iter().all(|r| {
                r.op == "Transpose"
                    && data_inputs(r).get(1).map(|q| InputRef::parse(q).node)
                        == Some(perms.to_nchw.as_str())
            });
        let shape = attrs::shape(node, "shape").filter(|s| !s.unknown_rank && s.dim.len() == 4);
        if all_transposes && shape.is_some() && uses.count(p) == readers.len() {
            rewires.extend(readers.iter().map(|r| (r.name.clone(), node.name.clone())));
            placeholders.push(p);
        }
    }
    for p in placeholders {
        let node = &mut graph.node[p];
        if let Some(shape) = attrs::shape(node, "shape").cloned() {
            let dims: Vec<i64> = shape.dim.iter().map(|d| d.size).collect();
            if let Some(nchw) = reorder4(&dims) {
                node.attr.insert(
                    "shape".into(),
                    AttrValue {
                        value: Some(attr_value::Value::Shape(crate::dtype::shape_from_dims(
                            &nchw,
                        ))),
                    },
                );
            }
        }
    }
    for (transpose, placeholder) in rewires {
        if let Some(i) = graph.node.iter().position(|n| n.name == transpose) {
            replace_reads(graph, i, &placeholder);
        }
    }
}
