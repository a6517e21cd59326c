//! Rewrites into forms a consumer's importer reads, each exact: what the targets'
//! legalization composes (see `crate::transforms` `legalize`).
//!
//! - [`decompose_batch_norms`]: inference FusedBatchNorm (any version) left after folding
//!   becomes `x * scale + offset` with per-channel Consts (for importers without the op);
//! - [`downgrade_batch_norms`]: inference FusedBatchNormV2/V3 become FusedBatchNorm (V1),
//!   whatever feeds their parameters, dropping the attributes V1 lacks (`U`,
//!   `exponential_avg_factor`), when no reserve space is read;
//! - [`rename_ops`]: op renames with identical semantics (`AddV2` -> `Add`);
//! - [`constants_as_tensor_content`]: every fixed-size Const's values in `tensor_content`
//!   (but the ones [`constants_in_int_val`] writes: [`consts_read_at`] finds them);
//! - [`constants_in_int_val`]: int32 Consts an importer reads from `int_val` get every value
//!   there;
//! - [`resource_gathers_to_gather_v2`]: `ResourceGather` of a frozen (Const) table becomes
//!   `GatherV2` with a Const axis 0;
//! - [`strip_attributes`]: attributes an importer refuses, where removing them keeps the
//!   node's meaning (the OpDef default, or unused at inference);
//! - [`remove_check_numerics`]: CheckNumerics, an identity at inference, is removed;
//! - [`placeholders_without_defaults`]: PlaceholderWithDefault becomes a Placeholder where the
//!   app may feed it, else an Identity of its default (some importers lack the op);
//! - [`pads_into_convolutions`]: a constant zero `Pad` read only by VALID convolutions whose
//!   `SAME` padding would add exactly those zeros disappears, the convolutions becoming `SAME`
//!   (Keras' `ZeroPadding2D` before a strided convolution, as in MobileNet and EfficientNet);
//! - [`pads_as_concats`]: any other `Pad`/`PadV2` with constant paddings and value, on a tensor
//!   of known shape, becomes `ConcatV2`s of the input with constant blocks of the pad value
//!   (for importers whose Pad is missing or broken);
//! - [`non_negative_axes`]: a negative `ConcatV2` axis (a Const) or `Pack` axis (an attribute)
//!   becomes the same axis counted from the front;
//! - [`constants_with_explicit_values`]: a float/double/int32/int64 Const in TensorFlow's
//!   shorthands (no values meaning zeros, or fewer values than elements, the last repeated)
//!   spells its values out (for importers that read only one value or all of them);
//! - [`explicit_data_formats`]: a `data_format` left to its OpDef default is written out (for
//!   importers that infer layouts from the attribute: OpenCV);
//! - [`constants_private_to_packs`]: a Const a `Pack` shares with other readers gets a copy
//!   of its own for that Pack (OpenCV 4.10 failed running EfficientNet-B0 with shared ones);
//! - [`unpacks_as_slices`]: `Unpack` becomes one `StridedSlice` per output, each taking one
//!   index of the axis and dropping it;
//! - [`dilated_convolutions_as_space_to_batch`]: a dilated `Conv2D` becomes
//!   `SpaceToBatchND -> Conv2D -> BatchToSpaceND`, TensorFlow's own atrous decomposition (for
//!   importers that ignore a Conv2D's `dilations`);
//! - [`space_to_batch_paddings_apart`]: `SpaceToBatchND` paddings become a `Pad` before it and
//!   `BatchToSpaceND` crops a `StridedSlice` after it, both ops then padding and cropping
//!   nothing;
//! - [`dilated_convolutions_as_symmetric_atrous`]: a dilated `Conv2D` or
//!   `DepthwiseConv2dNative` becomes the atrous pattern with its own padding symmetric in the
//!   `SpaceToBatchND` paddings or in a `Pad` in front, and the crops taking back only the
//!   rounding (for importers that read the pattern as a dilated convolution padded by the
//!   paddings before on both sides, ignoring crops: OpenCV);
//! - [`symmetric_mirror_pads_as_slices`]: a `SYMMETRIC` `MirrorPad` becomes `ConcatV2`s of
//!   one-index `Slice`s around the tensor (for importers that pad every MirrorPad as
//!   `REFLECT`: OpenCV).

use std::collections::HashSet;

use ndarray::{ArrayD, IxDyn};

use crate::analysis::{geometry, shapes};
use crate::budget::BudgetError;
use crate::graph::attrs;
use crate::graph::edit::{
    const_node, const_value, control_inputs, data_inputs, remove_unread, NameReserver, Uses,
};
use crate::graph::InputRef;
use crate::proto::{attr_value, AttrValue, DataType, GraphDef, NodeDef, TensorProto};
use crate::rewrite::weights::{floats, vector};
use crate::tensor::{Data, Limits, Tensor, TensorError};

const FUSED_BATCH_NORMS: &[&str] = &["FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3"];

fn type_attr(t: i32) -> AttrValue {
    AttrValue {
        value: Some(attr_value::Value::Type(t)),
    }
}

/// Inference batch norms whose only read output is 0, with Const parameters: (node index,
/// per-channel scale, per-channel offset).
fn inference_norms(graph: &GraphDef, uses: &Uses) -> Vec<(usize, Vec<f64>, Vec<f64>)> {
    let mut out = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        if !FUSED_BATCH_NORMS.contains(&node.op.as_str())
            || attrs::bool(node, "is_training").unwrap_or(true)
            || uses.reads_other_outputs(i)
        {
            continue;
        }
        let inputs = data_inputs(node);
        let values: Option<Vec<Vec<f64>>> = inputs
            .iter()
            .skip(1)
            .map(|s| {
                uses.producer(s)
                    .and_then(|p| graph.node.get(p))
                    .and_then(const_value)
                    .and_then(|v| floats(&v))
            })
            .collect();
        let Some([gamma, beta, mean, var]) = values.as_deref() else {
            continue;
        };
        let epsilon = f64::from(attrs::float(node, "epsilon").unwrap_or(1e-4));
        let c = mean.len();
        if [gamma.len(), beta.len(), var.len()].iter().any(|&l| l != c) {
            continue;
        }
        let scale: Vec<f64> = gamma
            .iter()
            .zip(var)
            .map(|(g, v)| g / (v + epsilon).sqrt())
            .collect();
        let offset: Vec<f64> = beta
            .iter()
            .zip(mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        out.push((i, scale, offset));
    }
    out
}

/// Inference FusedBatchNorms (NHWC) become `Mul` by a per-channel scale and `Add` of an
/// offset; the norm's name moves to the Add. Returns how many.
pub fn decompose_batch_norms(
    graph: &mut GraphDef,
    add_op: &str,
    protected: &HashSet<String>,
) -> usize {
    let uses = Uses::new(graph);
    let norms = inference_norms(graph, &uses);
    let mut taken = NameReserver::new(graph);
    let mut added = Vec::new();
    let mut parameters = HashSet::new();
    let mut count = 0;
    for (i, scale, offset) in norms {
        let node = &graph.node[i];
        if attrs::string(node, "data_format").is_some_and(|f| f != "NHWC") {
            continue;
        }
        let inputs = data_inputs(node);
        let Some(x) = inputs.first().map(|s| s.to_string()) else {
            continue;
        };
        parameters.extend(
            inputs[1..]
                .iter()
                .map(|p| crate::graph::node_name(p).to_string()),
        );
        let t = node.attr.get("T").cloned();
        let dtype = attrs::dtype(node, "T").unwrap_or(DataType::DtFloat);
        let (Some(scale), Some(offset)) = (vector(&scale, dtype), vector(&offset, dtype)) else {
            continue;
        };
        let name = node.name.clone();
        let device = node.device.clone();
        let controls = control_inputs(node);
        let scale_name = taken.reserve(&format!("{name}/scale"));
        let offset_name = taken.reserve(&format!("{name}/offset"));
        let mul_name = taken.reserve(&format!("{name}/mul"));
        let mut mul = NodeDef {
            name: mul_name.clone(),
            op: "Mul".into(),
            input: vec![x, scale_name.clone()],
            device: device.clone(),
            ..Default::default()
        };
        mul.input.extend(controls);
        let add = &mut graph.node[i];
        add.op = add_op.into();
        add.input = vec![mul_name, offset_name.clone()];
        add.attr.clear();
        if let Some(t) = t {
            mul.attr.insert("T".into(), t.clone());
            add.attr.insert("T".into(), t);
        }
        added.push(const_node(scale_name, device.clone(), &scale));
        added.push(const_node(offset_name, device, &offset));
        added.push(mul);
        count += 1;
    }
    graph.node.extend(added);
    remove_unread(graph, parameters, protected);
    count
}

/// Outputs every FusedBatchNorm version gives the same meaning: `y`, `batch_mean` and
/// `batch_variance`. The reserve spaces are the kernel's scratch for the gradient (V3 adds a
/// sixth), so a graph that reads one keeps its version.
const SHARED_NORM_OUTPUTS: u32 = 3;

/// The highest output of each node that a data input reads (`None`: none is read).
fn highest_read_outputs(graph: &GraphDef, uses: &Uses) -> Vec<Option<u32>> {
    let mut highest = vec![None; graph.node.len()];
    for input in graph.node.iter().flat_map(|n| &n.input) {
        let parsed = InputRef::parse(input);
        if parsed.control {
            continue;
        }
        if let Some(slot) = uses.producer(input).and_then(|p| highest.get_mut(p)) {
            *slot = Some(slot.map_or(parsed.port, |h: u32| h.max(parsed.port)));
        }
    }
    highest
}

/// FusedBatchNormV2/V3 in inference (`is_training=false`) become FusedBatchNorm (V1), whatever
/// feeds their parameters, when V1 has the same meaning: `T` is float (V1's only type), the
/// data format is a 2-D one (V1 has no NDHWC/NCDHW) and no reserve space is read. `U` (always
/// float) and `exponential_avg_factor` go: V1 has no `U`, and TF1's V1, which the importers
/// wanting V1 read, has no `exponential_avg_factor`, which TensorFlow reads only in training.
pub fn downgrade_batch_norms(graph: &mut GraphDef) -> usize {
    let uses = Uses::new(graph);
    let highest = highest_read_outputs(graph, &uses);
    let mut count = 0;
    for (node, highest) in graph.node.iter_mut().zip(highest) {
        let downgrades = matches!(node.op.as_str(), "FusedBatchNormV2" | "FusedBatchNormV3")
            && !attrs::bool(node, "is_training").unwrap_or(true)
            && attrs::dtype(node, "T") == Some(DataType::DtFloat)
            && attrs::string(node, "data_format").is_none_or(|f| f == "NHWC" || f == "NCHW")
            && highest.is_none_or(|port| port < SHARED_NORM_OUTPUTS);
        if !downgrades {
            continue;
        }
        node.op = "FusedBatchNorm".into();
        node.attr.remove("U");
        node.attr.remove("exponential_avg_factor");
        count += 1;
    }
    count
}

/// Renames ops whose semantics are the same (`AddV2` -> `Add`), where the node's types are
/// ones `to` takes (TensorFlow's `Add` has no uint16, uint32 or uint64, which `AddV2` has).
pub fn rename_ops(graph: &mut GraphDef, from: &str, to: &str) -> usize {
    let mut count = 0;
    for node in graph
        .node
        .iter_mut()
        .filter(|n| n.op == from && crate::graph::ops::values_allowed(n, to))
    {
        node.op = to.into();
        count += 1;
    }
    count
}

/// Every fixed-size Const of rank 1 or more keeps its values in `tensor_content` (graphopt's
/// writer otherwise stores a uniform tensor as one `*_val`, as TensorFlow allows); scalars keep
/// their single value, which is how TensorFlow writes them. The Consts named in `keep` (ones
/// the importer reads from `int_val`, see [`constants_in_int_val`]) are left alone.
/// TensorFlow's shorthands let a few bytes stand for any number of values: what is spelled
/// out is asked of the budget before it is built, and a refusal is an error naming the Const.
pub fn constants_as_tensor_content(
    graph: &mut GraphDef,
    keep: &HashSet<String>,
) -> crate::Result<usize> {
    let mut count = 0;
    for node in graph
        .node
        .iter_mut()
        .filter(|n| n.op == "Const" && !keep.contains(&n.name))
    {
        let Some(current) = attrs::tensor(node, "value") else {
            continue;
        };
        if let Some((dtype, dims)) = Tensor::check_proto(current, Limits::default()) {
            // Scalars and empty tensors keep their form; so does a value already all in
            // `tensor_content`, which encoding again gives byte for byte (booleans aside,
            // whose bytes other than 0 and 1 are written as 1), so it is not decoded.
            let elements = geometry::element_count(&dims).unwrap_or(0);
            let in_content = !current.tensor_content.is_empty() && dtype != DataType::DtBool;
            if dims.is_empty() || elements == 0 || in_content {
                continue;
            }
        }
        // Decoding, and encoding through `to_proto` and then as content: two copies of the
        // value's bytes besides the value.
        let proto = const_reencoded(node, |value| {
            if value.shape().is_empty() || value.is_empty() || matches!(value.data(), Data::Str(_))
            {
                return Ok(None);
            }
            crate::budget::alloc_items(value.byte_size(), 2, "a Const's values")?;
            Ok(Some(value.to_proto_as_content()))
        })?;
        let Some(proto) = proto else {
            continue;
        };
        let unchanged = attrs::tensor(node, "value")
            .is_some_and(|current| current.tensor_content == proto.tensor_content);
        if proto.tensor_content.is_empty() || unchanged {
            continue; // strings, or already there
        }
        keep_const_value(node, proto)?;
        count += 1;
    }
    Ok(count)
}

/// The Consts that the data inputs at `positions` (per op; negative positions count from the
/// last data input) read, looking through the `through` ops (their first data input), by name.
pub fn consts_read_at(
    graph: &GraphDef,
    positions: &std::collections::BTreeMap<String, Vec<i64>>,
    through: &[String],
) -> HashSet<String> {
    /// Where the chain from a node ends: a Const's index, or `None`.
    #[derive(Clone, Copy)]
    enum End {
        Unknown,
        /// On the chain being walked (met again: a cycle).
        Walking,
        Known(Option<usize>),
    }
    let uses = Uses::new(graph);
    let mut ends = vec![End::Unknown; graph.node.len()];
    let mut found = HashSet::new();
    for node in &graph.node {
        let Some(slots) = positions.get(&node.op) else {
            continue;
        };
        let inputs = data_inputs(node);
        for &slot in slots {
            let index = if slot < 0 {
                inputs.len().checked_sub(slot.unsigned_abs() as usize)
            } else {
                usize::try_from(slot).ok()
            };
            let Some(start) = index
                .and_then(|k| inputs.get(k))
                .and_then(|i| uses.producer(i))
            else {
                continue;
            };
            // The chain from `start` through `through` ops; what each node on it leads to is
            // kept, so chains shared by many readers are walked once.
            let mut path = Vec::new();
            let mut current = Some(start);
            let end = loop {
                let Some(c) = current else { break None };
                match ends.get(c).copied() {
                    Some(End::Known(end)) => break end,
                    Some(End::Walking) | None => break None,
                    Some(End::Unknown) => {}
                }
                let Some(producer) = graph.node.get(c) else {
                    break None;
                };
                if producer.op == "Const" {
                    break Some(c);
                }
                if !through.contains(&producer.op) {
                    break None;
                }
                if let Some(e) = ends.get_mut(c) {
                    *e = End::Walking;
                }
                path.push(c);
                current = data_inputs(producer).first().and_then(|i| uses.producer(i));
            };
            for c in path {
                if let Some(e) = ends.get_mut(c) {
                    *e = End::Known(end);
                }
            }
            if let Some(constant) = end.and_then(|c| graph.node.get(c)) {
                found.insert(constant.name.clone());
            }
        }
    }
    found
}

/// Every int32 Const named in `names` keeps its values in `int_val`, every element written
/// out (for importers that read such a Const as `int_val().Get(0)`: OpenCV's axes and split
/// dimensions, whatever their rank). Exact. Returns how many changed.
pub fn constants_in_int_val(graph: &mut GraphDef, names: &HashSet<String>) -> crate::Result<usize> {
    let mut count = 0;
    for node in graph
        .node
        .iter_mut()
        .filter(|n| n.op == "Const" && names.contains(&n.name))
    {
        let Some(current) = attrs::tensor(node, "value") else {
            continue;
        };
        if current.dtype != DataType::DtInt32 as i32 {
            continue;
        }
        let proto = const_reencoded(node, |value| {
            let Data::I32(array) = value.data() else {
                return Ok(None);
            };
            if array.is_empty() {
                return Ok(None);
            }
            crate::budget::alloc(value.byte_size() as u64)?;
            let mut proto = value.to_proto();
            proto.tensor_content = Default::default();
            proto.int_val = array.iter().copied().collect();
            Ok(Some(proto))
        })?;
        let Some(proto) = proto else {
            continue;
        };
        if attrs::tensor(node, "value") == Some(&proto) {
            continue;
        }
        keep_const_value(node, proto)?;
        count += 1;
    }
    Ok(count)
}

/// Const `node`'s value, decoded and made into a new `TensorProto` by `encode` (which asks the
/// budget for the copies it makes): the decoded value and `encode`'s temporaries are scratch,
/// released on return; what the graph keeps is charged by [`keep_const_value`]. `None` when
/// the value does not decode or `encode` gives nothing (the Const is left alone); an error
/// naming the node when the budget refuses.
fn const_reencoded(
    node: &NodeDef,
    encode: impl FnOnce(&Tensor) -> Result<Option<TensorProto>, BudgetError>,
) -> crate::Result<Option<TensorProto>> {
    let refused = |source| crate::Error::Budget {
        node: node.name.clone(),
        source,
    };
    let Some(proto) = attrs::tensor(node, "value") else {
        return Ok(None);
    };
    crate::budget::scratch_scope(|| {
        let value = match Tensor::from_proto(proto) {
            Ok(value) => value,
            Err(TensorError::Budget(source)) => return Err(refused(source)),
            Err(_) => return Ok(None),
        };
        encode(&value).map_err(refused)
    })
}

/// Makes `proto` Const `node`'s value, charging the memory it keeps in the graph to the budget
/// for the rest of the command.
fn keep_const_value(node: &mut NodeDef, proto: TensorProto) -> crate::Result<()> {
    use prost::Message as _;
    crate::budget::alloc(proto.encoded_len() as u64).map_err(|source| crate::Error::Budget {
        node: node.name.clone(),
        source,
    })?;
    node.attr.insert(
        "value".into(),
        AttrValue {
            value: Some(attr_value::Value::Tensor(Box::new(proto))),
        },
    );
    Ok(())
}

/// `ResourceGather(table, indices)` with a Const table becomes `GatherV2(table, indices, 0)`;
/// the axis goes after the two data inputs, before any control input. A ResourceGather with
/// other than two data inputs (a malformed graph, which validation does not catch: it checks
/// no op's arity) is left for the target's check to report.
pub fn resource_gathers_to_gather_v2(graph: &mut GraphDef) -> usize {
    let uses = Uses::new(graph);
    let mut taken = NameReserver::new(graph);
    let mut axes = Vec::new();
    let mut count = 0;
    for i in 0..graph.node.len() {
        let node = &graph.node[i];
        if node.op != "ResourceGather" {
            continue;
        }
        let inputs = data_inputs(node);
        let table_is_const = inputs
            .first()
            .and_then(|t| uses.producer(t))
            .is_some_and(|p| graph.node[p].op == "Const");
        if inputs.len() != 2 || !table_is_const || attrs::int(node, "batch_dims").unwrap_or(0) != 0
        {
            continue;
        }
        // Control inputs follow the data inputs (validation holds that).
        let axis_slot = node
            .input
            .iter()
            .position(|i| i.starts_with('^'))
            .unwrap_or(node.input.len());
        let axis_name = taken.reserve(&format!("{}/axis", node.name));
        let device = node.device.clone();
        let node = &mut graph.node[i];
        let dtype = node.attr.remove("dtype");
        let tindices = node.attr.remove("Tindices");
        node.attr.clear();
        node.op = "GatherV2".into();
        node.input.insert(axis_slot, axis_name.clone());
        if let Some(d) = dtype {
            node.attr.insert("Tparams".into(), d);
        }
        if let Some(t) = tindices {
            node.attr.insert("Tindices".into(), t);
        }
        node.attr
            .insert("Taxis".into(), type_attr(DataType::DtInt32 as i32));
        node.attr.insert(
            "batch_dims".into(),
            AttrValue {
                value: Some(attr_value::Value::I(0)),
            },
        );
        let zero = Tensor::from_data(crate::tensor::Data::I32(ndarray::arr0(0).into_dyn()));
        axes.push(const_node(axis_name, device, &zero));
        count += 1;
    }
    graph.node.extend(axes);
    count
}

/// What [`strip_attributes`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StrippedAttributes {
    /// Attributes removed.
    pub removed: usize,
    /// `(node, attribute)` pairs left in place, because removing them would change the node.
    pub kept: Vec<(String, String)>,
}

/// Removes the attributes `names` from every node of `ops` where that keeps the node's meaning:
/// the attribute holds its OpDef default (TensorFlow's, bundled with graphopt), or it is the
/// `exponential_avg_factor` of a FusedBatchNorm in inference (TensorFlow reads it only in
/// training). The others stay and are returned.
pub fn strip_attributes(graph: &mut GraphDef, ops: &[&str], names: &[&str]) -> StrippedAttributes {
    let mut out = StrippedAttributes::default();
    for node in graph
        .node
        .iter_mut()
        .filter(|n| ops.contains(&n.op.as_str()))
    {
        for &name in names {
            let Some(value) = node.attr.get(name) else {
                continue;
            };
            let default = crate::graph::ops::attr_default(&node.op, name);
            let unused_in_inference = name == "exponential_avg_factor"
                && FUSED_BATCH_NORMS.contains(&node.op.as_str())
                && attrs::bool(node, "is_training") == Some(false);
            if default == Some(value) || unused_in_inference {
                node.attr.remove(name);
                out.removed += 1;
            } else {
                out.kept.push((node.name.clone(), name.to_string()));
            }
        }
    }
    out
}

/// CheckNumerics nodes are removed, their readers reading their input: at inference a
/// CheckNumerics passes its input through (it only fails on NaN or Inf). Protected nodes stay.
pub fn remove_check_numerics(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    let before = graph.node.len();
    let checks: HashSet<&str> = ["CheckNumerics"].into_iter().collect();
    crate::rewrite::remove::remove_nodes(graph, &checks, 1, protected);
    before.saturating_sub(graph.node.len())
}

/// PlaceholderWithDefault becomes a Placeholder of the same dtype and shape where the app may
/// feed it: `fed` names it, or is `None` (the inputs are not declared). Its default input is
/// dropped (and with it, anything only the default read, once unused nodes are stripped); its
/// control inputs stay. One that declared inputs leave out always holds its default, which a
/// Placeholder would lose (the consumer would then ask the app for a value): it becomes an
/// Identity of its default, which leftover removal then takes out. Returns how many.
pub fn placeholders_without_defaults(graph: &mut GraphDef, fed: Option<&HashSet<String>>) -> usize {
    let mut count = 0;
    for node in graph
        .node
        .iter_mut()
        .filter(|n| n.op == "PlaceholderWithDefault")
    {
        if fed.is_some_and(|fed| !fed.contains(&node.name)) {
            let Some(dtype) = node.attr.remove("dtype") else {
                continue;
            };
            node.op = "Identity".into();
            node.attr.remove("shape");
            node.attr.insert("T".into(), dtype);
        } else {
            node.op = "Placeholder".into();
            node.input.retain(|i| i.starts_with('^'));
        }
        count += 1;
    }
    count
}

/// A padding node's constant operands: the input tensor, `(before, after)` per dimension, and
/// the pad value as a scalar of the input's dtype (zero for `Pad`).
struct ConstantPad {
    input: String,
    paddings: Vec<(usize, usize)>,
    value: Tensor,
}

/// Reads a `Pad` or `PadV2` whose paddings (and value) are Consts; `None` for anything else.
fn constant_pad(graph: &GraphDef, uses: &Uses, node: &NodeDef) -> Option<ConstantPad> {
    if !matches!(node.op.as_str(), "Pad" | "PadV2") {
        return None;
    }
    let inputs = data_inputs(node);
    let constant = |k: usize| {
        inputs
            .get(k)
            .and_then(|s| uses.producer(s))
            .and_then(|p| graph.node.get(p))
            .and_then(const_value)
    };
    let paddings = constant(1)?;
    let flat = paddings.integers()?;
    if paddings.shape().len() != 2 || paddings.shape()[1] != 2 {
        return None;
    }
    let paddings: Option<Vec<(usize, usize)>> = flat
        .chunks(2)
        .map(|p| Some((usize::try_from(p[0]).ok()?, usize::try_from(p[1]).ok()?)))
        .collect();
    let dtype = attrs::dtype(node, "T")?;
    let value = match node.op.as_str() {
        "PadV2" => {
            let v = constant(2)?;
            (v.shape().is_empty() && v.dtype() == dtype).then_some(v)?
        }
        _ => zero(dtype)?,
    };
    Some(ConstantPad {
        input: inputs.first()?.to_string(),
        paddings: paddings?,
        value,
    })
}

/// The scalar zero of a numeric or boolean dtype.
fn zero(dtype: DataType) -> Option<Tensor> {
    use half::{bf16, f16};
    let data = match dtype {
        DataType::DtFloat => Data::F32(ArrayD::from_elem(IxDyn(&[]), 0.0)),
        DataType::DtDouble => Data::F64(ArrayD::from_elem(IxDyn(&[]), 0.0)),
        DataType::DtHalf => Data::F16(ArrayD::from_elem(IxDyn(&[]), f16::ZERO)),
        DataType::DtBfloat16 => Data::BF16(ArrayD::from_elem(IxDyn(&[]), bf16::ZERO)),
        DataType::DtInt8 => Data::I8(ArrayD::from_elem(IxDyn(&[]), 0)),
        DataType::DtInt16 => Data::I16(ArrayD::from_elem(IxDyn(&[]), 0)),
        DataType::DtInt32 => Data::I32(ArrayD::from_elem(IxDyn(&[]), 0)),
        DataType::DtInt64 => Data::I64(ArrayD::from_elem(IxDyn(&[]), 0)),
        DataType::DtUint8 => Data::U8(ArrayD::from_elem(IxDyn(&[]), 0)),
        DataType::DtUint16 => Data::U16(ArrayD::from_elem(IxDyn(&[]), 0)),
        DataType::DtUint32 => Data::U32(ArrayD::from_elem(IxDyn(&[]), 0)),
        DataType::DtUint64 => Data::U64(ArrayD::from_elem(IxDyn(&[]), 0)),
        DataType::DtBool => Data::Bool(ArrayD::from_elem(IxDyn(&[]), false)),
        _ => return None,
    };
    Tensor::new(dtype, data).ok()
}

/// A tensor of `dims` whose every element is the scalar `value`.
fn filled(value: &Tensor, dims: &[usize]) -> Option<Tensor> {
    // Padding amounts come from the model: the block is counted and asked of the budget
    // before it exists (a pad of 2^62 is no block at all).
    let count = geometry::element_count(dims)
        .ok()
        .filter(|&n| isize::try_from(n).is_ok())?;
    let per_element = value
        .memory_bytes()
        .saturating_sub(crate::budget::VALUE_OVERHEAD);
    crate::budget::alloc((count as u64).saturating_mul(per_element)).ok()?;
    let data =
        crate::map_data!(value.data(), a => ArrayD::from_elem(IxDyn(dims), a.first().cloned()?));
    Tensor::new(value.dtype(), data).ok()
}

/// Whether `x` is the scalar zero of its dtype (bitwise: `-0.0` pads differently under some
/// consumers, so it is not taken for zero).
fn is_zero(x: &Tensor) -> bool {
    zero(x.dtype()).is_some_and(|z| z.to_proto() == x.to_proto())
}

/// The padded tensor's static shape by tensor name, from shape inference.
fn static_shape<'a>(known: &'a shapes::StaticShapes, tensor: &str) -> Option<&'a [usize]> {
    known.of(tensor)
}

/// Whether padding a `[n, h, w, c]` input by `pads` and convolving with `consumer` (VALID) is
/// what `consumer` computes with `SAME` padding on the unpadded input.
fn same_padding_matches(
    known: &shapes::StaticShapes,
    consumer: &NodeDef,
    input: &[usize],
    pads: &[(usize, usize)],
) -> bool {
    if !matches!(consumer.op.as_str(), "Conv2D" | "DepthwiseConv2dNative") {
        return false;
    }
    let Ok(spatial) = geometry::Spatial::from_node(consumer, "strides") else {
        return false;
    };
    if spatial.nchw || spatial.padding != "VALID" || spatial.dilations != (1, 1) {
        return false;
    }
    let filter = data_inputs(consumer)
        .get(1)
        .and_then(|f| static_shape(known, f));
    let Some(&[kh, kw, _, _]) = filter else {
        return false;
    };
    let [_, h, w, _] = input else {
        return false;
    };
    let expect = |size: usize, kernel: usize, stride: usize| -> Option<(usize, usize)> {
        let window = geometry::window(size, kernel, stride, 1, "SAME", (0, 0)).ok()?;
        let span = (window.out.max(1) - 1)
            .checked_mul(stride)?
            .checked_add(kernel)?;
        let total = span.saturating_sub(size);
        Some((window.pad_before, total - window.pad_before))
    };
    pads.len() == 4
        && pads[0] == (0, 0)
        && pads[3] == (0, 0)
        && expect(*h, kh, spatial.strides.0) == Some(pads[1])
        && expect(*w, kw, spatial.strides.1) == Some(pads[2])
}

/// A zero `Pad` (or `PadV2` of zero) of an NHWC tensor whose every reader is a VALID
/// `Conv2D`/`DepthwiseConv2dNative` for which `SAME` padding adds exactly these zeros is
/// removed; its readers read the unpadded tensor with `padding = "SAME"`, and get its control
/// inputs. Exact: `SAME` is defined as that zero padding. Needs the input's static shape.
/// Returns how many.
pub fn pads_into_convolutions(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    let uses = Uses::new(graph);
    let known = shapes::infer_graph(graph);
    let mut readers: std::collections::HashMap<&str, Vec<usize>> = std::collections::HashMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for input in &node.input {
            let parsed = InputRef::parse(input);
            readers.entry(parsed.node).or_default().push(i);
        }
    }
    let mut folds: Vec<(usize, String, Vec<usize>)> = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        if protected.contains(&node.name) || uses.reads_other_outputs(i) {
            continue;
        }
        let Some(pad) = constant_pad(graph, &uses, node) else {
            continue;
        };
        let Some(input) = static_shape(&known, &pad.input) else {
            continue;
        };
        let consumers = readers.get(node.name.as_str()).cloned().unwrap_or_default();
        let fits = !consumers.is_empty()
            && is_zero(&pad.value)
            && uses.count(i) == uses.data_count(i)
            && consumers.iter().all(|&c| {
                let consumer = &graph.node[c];
                // Read as the convolution's input (slot 0) and nowhere else.
                data_inputs(consumer)
                    .iter()
                    .enumerate()
                    .all(|(slot, s)| (slot == 0) == (InputRef::parse(s).node == node.name))
                    && same_padding_matches(&known, consumer, input, &pad.paddings)
            });
        if fits {
            let mut unique = consumers;
            unique.dedup();
            folds.push((i, pad.input, unique));
        }
    }
    let mut parameters = HashSet::new();
    let mut removed = HashSet::new();
    for (i, input, consumers) in &folds {
        // What the Pad waited for, its readers now wait for.
        let controls = control_inputs(&graph.node[*i]);
        for &c in consumers {
            let consumer = &mut graph.node[c];
            if let Some(first) = consumer.input.first_mut() {
                *first = input.clone();
            }
            for control in &controls {
                if !consumer.input.contains(control) {
                    consumer.input.push(control.clone());
                }
            }
            consumer.attr.insert(
                "padding".into(),
                AttrValue {
                    value: Some(attr_value::Value::S(bytes::Bytes::from_static(b"SAME"))),
                },
            );
        }
        let pad = &graph.node[*i];
        parameters.extend(
            data_inputs(pad)
                .iter()
                .skip(1)
                .map(|p| crate::graph::node_name(p).to_string()),
        );
        removed.insert(pad.name.clone());
    }
    graph.node.retain(|n| !removed.contains(&n.name));
    remove_unread(graph, parameters, protected);
    folds.len()
}

/// Every `Pad`/`PadV2` with constant paddings and value whose input shape is static becomes
/// one `ConcatV2` per padded dimension: the blocks of the pad value before and after, the
/// tensor between. The last concat takes the pad's name. Exact (the same elements, copied).
/// Returns how many pads.
pub fn pads_as_concats(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    let uses = Uses::new(graph);
    let known = shapes::infer_graph(graph);
    let mut taken = NameReserver::new(graph);
    let mut replacements: std::collections::HashMap<usize, Vec<NodeDef>> =
        std::collections::HashMap::new();
    let mut parameters = HashSet::new();
    for (i, node) in graph.node.iter().enumerate() {
        if uses.reads_other_outputs(i) {
            continue;
        }
        let Some(pad) = constant_pad(graph, &uses, node) else {
            continue;
        };
        let Some(input) = static_shape(&known, &pad.input) else {
            continue;
        };
        if input.len() != pad.paddings.len() {
            continue;
        }
        let Some(nodes) = concat_chain(node, &pad, input, &mut taken) else {
            continue;
        };
        parameters.extend(
            data_inputs(node)
                .iter()
                .skip(1)
                .map(|p| crate::graph::node_name(p).to_string()),
        );
        replacements.insert(i, nodes);
    }
    splice(graph, replacements, parameters, protected)
}

/// Puts each replacement's nodes where the node at its index stood, then removes the
/// `parameters` (inputs of the replaced nodes) that nothing reads any more. Returns how many
/// nodes were replaced.
fn splice(
    graph: &mut GraphDef,
    mut replacements: std::collections::HashMap<usize, Vec<NodeDef>>,
    parameters: HashSet<String>,
    protected: &HashSet<String>,
) -> usize {
    let count = replacements.len();
    if count == 0 {
        return 0;
    }
    let old = std::mem::take(&mut graph.node);
    for (i, node) in old.into_iter().enumerate() {
        match replacements.remove(&i) {
            Some(nodes) => graph.node.extend(nodes),
            None => graph.node.push(node),
        }
    }
    remove_unread(graph, parameters, protected);
    count
}

/// The nodes replacing `node` (a constant pad of a `dims`-shaped tensor): per padded
/// dimension, the value blocks and a ConcatV2 along it; `None` when nothing is padded or a
/// block cannot be made.
fn concat_chain(
    node: &NodeDef,
    pad: &ConstantPad,
    dims: &[usize],
    taken: &mut NameReserver,
) -> Option<Vec<NodeDef>> {
    let padded: Vec<usize> = (0..dims.len())
        .filter(|&d| pad.paddings[d] != (0, 0))
        .collect();
    let last = *padded.last()?;
    let mut out = Vec::new();
    let mut current = pad.input.clone();
    let mut shape = dims.to_vec();
    let controls = control_inputs(node);
    let device = node.device.clone();
    let t = node.attr.get("T").cloned();
    for &d in &padded {
        let (before, after) = pad.paddings[d];
        let mut parts = Vec::new();
        for (amount, side) in [(before, "before"), (after, "after")] {
            if amount == 0 {
                continue;
            }
            let mut block_dims = shape.clone();
            block_dims[d] = amount;
            let block = filled(&pad.value, &block_dims)?;
            let name = taken.reserve(&format!("{}/{side}_{d}", node.name));
            out.push(const_node(name.clone(), device.clone(), &block));
            parts.push((side, name));
        }
        let mut inputs: Vec<String> = Vec::new();
        inputs.extend(
            parts
                .iter()
                .filter(|p| p.0 == "before")
                .map(|p| p.1.clone()),
        );
        inputs.push(current.clone());
        inputs.extend(parts.iter().filter(|p| p.0 == "after").map(|p| p.1.clone()));
        let n = i64::try_from(inputs.len()).ok()?;
        let axis_name = taken.reserve(&format!("{}/axis_{d}", node.name));
        let axis = i32::try_from(d).ok()?;
        let axis = Tensor::from_data(Data::I32(ArrayD::from_elem(IxDyn(&[]), axis)));
        out.push(const_node(axis_name.clone(), device.clone(), &axis));
        inputs.push(axis_name);
        let name = if d == last {
            node.name.clone()
        } else {
            taken.reserve(&format!("{}/concat_{d}", node.name))
        };
        if d == padded[0] {
            inputs.extend(controls.iter().cloned());
        }
        let mut concat = NodeDef {
            name: name.clone(),
            op: "ConcatV2".into(),
            input: inputs,
            device: device.clone(),
            ..Default::default()
        };
        if let Some(t) = &t {
            concat.attr.insert("T".into(), t.clone());
        }
        concat.attr.insert(
            "N".into(),
            AttrValue {
                value: Some(attr_value::Value::I(n)),
            },
        );
        concat
            .attr
            .insert("Tidx".into(), type_attr(DataType::DtInt32 as i32));
        out.push(concat);
        shape[d] = shape[d].checked_add(before)?.checked_add(after)?;
        current = name;
    }
    Some(out)
}

/// Every `MirrorPad` in `SYMMETRIC` mode with constant paddings, on a tensor of static shape,
/// becomes one `ConcatV2` per padded dimension of one-index `Slice`s around the tensor, in
/// mirrored order: padding `(b, a)` along a dimension of size `n` reads indices `b-1 .. 0`
/// before the tensor and `n-1 .. n-a` after it, which is what `SYMMETRIC` means (the edge is
/// repeated; `REFLECT` would skip it). For importers that pad every MirrorPad as `REFLECT`
/// (OpenCV 4.10). The last concat takes the pad's name. Exact (the same elements, copied).
/// Returns how many.
pub fn symmetric_mirror_pads_as_slices(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    let uses = Uses::new(graph);
    let known = shapes::infer_graph(graph);
    let mut taken = NameReserver::new(graph);
    let mut replacements: std::collections::HashMap<usize, Vec<NodeDef>> =
        std::collections::HashMap::new();
    let mut parameters = HashSet::new();
    for (i, node) in graph.node.iter().enumerate() {
        if node.op != "MirrorPad"
            || attrs::string(node, "mode").as_deref() != Some("SYMMETRIC")
            || uses.reads_other_outputs(i)
        {
            continue;
        }
        let inputs = data_inputs(node);
        let (Some(x), Some(p)) = (inputs.first(), inputs.get(1)) else {
            continue;
        };
        let Some(amounts) = uses
            .producer(p)
            .and_then(|k| graph.node.get(k))
            .and_then(const_value)
        else {
            continue;
        };
        let Some(flat) = amounts.integers() else {
            continue;
        };
        let Some(dims) = static_shape(&known, x) else {
            continue;
        };
        if amounts.shape() != [dims.len(), 2] {
            continue;
        }
        let Some(paddings) = flat
            .chunks(2)
            .zip(dims)
            .map(|(p, &n)| {
                let (b, a) = (usize::try_from(p[0]).ok()?, usize::try_from(p[1]).ok()?);
                (b <= n && a <= n).then_some((b, a))
            })
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let Some(nodes) = mirror_chain(node, x, dims, &paddings, &mut taken) else {
            continue;
        };
        parameters.insert(crate::graph::node_name(p).to_string());
        replacements.insert(i, nodes);
    }
    splice(graph, replacements, parameters, protected)
}

/// The nodes replacing `node`, a SYMMETRIC mirror pad of `input` (of shape `dims`) by
/// `paddings`: per padded dimension, one-index Slices and a ConcatV2 along it.
fn mirror_chain(
    node: &NodeDef,
    input: &str,
    dims: &[usize],
    paddings: &[(usize, usize)],
    taken: &mut NameReserver,
) -> Option<Vec<NodeDef>> {
    let padded: Vec<usize> = (0..dims.len()).filter(|&d| paddings[d] != (0, 0)).collect();
    let last = *padded.last()?;
    let rank = dims.len();
    let mut out = Vec::new();
    let mut current = input.to_string();
    let controls = control_inputs(node);
    let device = node.device.clone();
    let t = node.attr.get("T").cloned();
    let typed = |name: String, op: &str, input: Vec<String>| {
        let mut n = NodeDef {
            name,
            op: op.into(),
            input,
            device: device.clone(),
            ..Default::default()
        };
        if let Some(t) = &t {
            n.attr.insert("T".into(), t.clone());
        }
        n
    };
    for &d in &padded {
        let (before, after) = paddings[d];
        let n = dims[d];
        // One index of dimension d, every element of the others.
        let mut size = vec![-1i32; rank];
        size[d] = 1;
        let size_name = taken.reserve(&format!("{}/size_{d}", node.name));
        out.push(const_node(
            size_name.clone(),
            device.clone(),
            &int32_tensor(&[rank], size)?,
        ));
        let indices = (0..before)
            .rev()
            .map(Some)
            .chain([None])
            .chain((n - after..n).rev().map(Some));
        let mut inputs = Vec::new();
        for index in indices {
            let Some(index) = index else {
                inputs.push(current.clone());
                continue;
            };
            let mut begin = vec![0i32; rank];
            begin[d] = i32::try_from(index).ok()?;
            let begin_name = taken.reserve(&format!("{}/begin_{d}_{index}", node.name));
            out.push(const_node(
                begin_name.clone(),
                device.clone(),
                &int32_tensor(&[rank], begin)?,
            ));
            let slice_name = taken.reserve(&format!("{}/slice_{d}_{index}", node.name));
            let mut slice = typed(
                slice_name.clone(),
                "Slice",
                vec![current.clone(), begin_name, size_name.clone()],
            );
            slice
                .attr
                .insert("Index".into(), type_attr(DataType::DtInt32 as i32));
            out.push(slice);
            inputs.push(slice_name);
        }
        let count = i64::try_from(inputs.len()).ok()?;
        let axis_name = taken.reserve(&format!("{}/axis_{d}", node.name));
        let axis = Tensor::from_data(Data::I32(ArrayD::from_elem(
            IxDyn(&[]),
            i32::try_from(d).ok()?,
        )));
        out.push(const_node(axis_name.clone(), device.clone(), &axis));
        inputs.push(axis_name);
        if d == padded[0] {
            inputs.extend(controls.iter().cloned());
        }
        let name = if d == last {
            node.name.clone()
        } else {
            taken.reserve(&format!("{}/concat_{d}", node.name))
        };
        let mut concat = typed(name.clone(), "ConcatV2", inputs);
        concat.attr.insert("N".into(), attr_i(count));
        concat
            .attr
            .insert("Tidx".into(), type_attr(DataType::DtInt32 as i32));
        out.push(concat);
        current = name;
    }
    Some(out)
}

/// Rank of a tensor from shape inference.
fn static_rank(known: &shapes::StaticShapes, tensor: &str) -> Option<usize> {
    static_shape(known, tensor).map(<[usize]>::len)
}

/// A scalar int32 Const value or a new one: `node`'s data input `slot` (a Const) gets `value`,
/// in place when nothing else reads the Const and `protected` does not name it (a declared
/// output keeps its value), else through a new Const. `added` collects new nodes.
#[allow(clippy::too_many_arguments)]
fn set_const_input(
    graph: &mut GraphDef,
    uses: &Uses,
    protected: &HashSet<String>,
    node: usize,
    slot: usize,
    value: &Tensor,
    taken: &mut NameReserver,
    added: &mut Vec<NodeDef>,
) -> Option<()> {
    let input = data_inputs(&graph.node[node]).get(slot)?.to_string();
    let producer = uses.producer(&input)?;
    if uses.count(producer) == 1
        && InputRef::parse(&input).port == 0
        && !protected.contains(&graph.node[producer].name)
    {
        crate::graph::edit::set_const_value(&mut graph.node[producer], value);
        return Some(());
    }
    let name = taken.reserve(&format!("{}/{}", graph.node[node].name, "axis"));
    let device = graph.node[node].device.clone();
    added.push(const_node(name.clone(), device, value));
    let position = graph.node[node]
        .input
        .iter()
        .enumerate()
        .filter(|(_, i)| !i.starts_with('^'))
        .nth(slot)?
        .0;
    graph.node[node].input[position] = name;
    Some(())
}

/// A negative `ConcatV2` axis (its last input, a Const) or `Pack` axis (attribute `axis`)
/// becomes `axis + rank` (for Pack, the output's rank), which means the same; needs the
/// inputs' rank from shape inference. An axis Const named in `fed` is left (it holds what is
/// fed); one named in `protected` (a declared output) is not written in place. Returns how
/// many nodes changed.
pub fn non_negative_axes(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
    fed: &HashSet<String>,
) -> usize {
    let uses = Uses::new(graph);
    let known = shapes::infer_graph(graph);
    let mut taken = NameReserver::new(graph);
    let mut added = Vec::new();
    let mut count = 0;
    for i in 0..graph.node.len() {
        let node = &graph.node[i];
        let inputs = data_inputs(node);
        let Some(rank) = inputs.first().and_then(|x| static_rank(&known, x)) else {
            continue;
        };
        match node.op.as_str() {
            "ConcatV2" => {
                let slot = inputs.len() - 1;
                // A fed Const holds what the app feeds: no constant axis.
                let axis = uses
                    .producer(inputs[slot])
                    .and_then(|p| graph.node.get(p))
                    .filter(|p| !fed.contains(&p.name))
                    .and_then(const_value);
                let Some(axis) = axis.filter(|a| a.shape().is_empty()) else {
                    continue;
                };
                let Some(value) = axis.integers().and_then(|v| v.first().copied()) else {
                    continue;
                };
                let Ok(rank) = i64::try_from(rank) else {
                    continue;
                };
                if value >= 0 || value < -rank {
                    continue;
                }
                let fixed = match axis.data() {
                    Data::I64(_) => Data::I64(ArrayD::from_elem(IxDyn(&[]), value + rank)),
                    _ => match i32::try_from(value + rank) {
                        Ok(v) => Data::I32(ArrayD::from_elem(IxDyn(&[]), v)),
                        Err(_) => continue,
                    },
                };
                let fixed = Tensor::from_data(fixed);
                let set = set_const_input(
                    graph, &uses, protected, i, slot, &fixed, &mut taken, &mut added,
                );
                if set.is_some() {
                    count += 1;
                }
            }
            "Pack" => {
                let Some(axis) = attrs::int(node, "axis") else {
                    continue;
                };
                let Ok(out_rank) = i64::try_from(rank + 1) else {
                    continue;
                };
                if axis >= 0 || axis < -out_rank {
                    continue;
                }
                graph.node[i].attr.insert(
                    "axis".into(),
                    AttrValue {
                        value: Some(attr_value::Value::I(axis + out_rank)),
                    },
                );
                count += 1;
            }
            _ => {}
        }
    }
    graph.node.extend(added);
    count
}

fn int32_tensor(dims: &[usize], values: Vec<i32>) -> Option<Tensor> {
    Some(Tensor::from_data(Data::I32(
        ArrayD::from_shape_vec(IxDyn(dims), values).ok()?,
    )))
}

fn attr_i(v: i64) -> AttrValue {
    AttrValue {
        value: Some(attr_value::Value::I(v)),
    }
}

/// `SpaceToBatchND(x, block, paddings)` becomes `SpaceToBatchND(Pad(x, paddings'), block, 0)`
/// and `BatchToSpaceND(y, block, crops)` becomes `StridedSlice(BatchToSpaceND(y, block, 0))`:
/// what the two ops are defined to do, spelled apart. For importers that fuse the TF1 atrous
/// pattern into a dilated convolution while ignoring its paddings and crops (tract). Needs
/// Const paddings/crops and, for the crops, the output's static shape. Returns how many.
pub fn space_to_batch_paddings_apart(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    let uses = Uses::new(graph);
    let known = shapes::infer_graph(graph);
    let mut taken = NameReserver::new(graph);
    let mut inserts: std::collections::HashMap<usize, Vec<NodeDef>> =
        std::collections::HashMap::new();
    let mut parameters = HashSet::new();
    let mut count = 0;
    for i in 0..graph.node.len() {
        let node = &graph.node[i];
        if !matches!(node.op.as_str(), "SpaceToBatchND" | "BatchToSpaceND") {
            continue;
        }
        let inputs = data_inputs(node);
        let Some(amounts) = inputs
            .get(2)
            .and_then(|p| uses.producer(p))
            .and_then(|p| graph.node.get(p))
            .and_then(const_value)
        else {
            continue;
        };
        let Some(flat) = amounts.integers() else {
            continue;
        };
        if amounts.shape().len() != 2 || amounts.shape()[1] != 2 || flat.iter().all(|&v| v == 0) {
            continue;
        }
        let Some(pairs) = flat
            .chunks(2)
            .map(|p| Some((i32::try_from(p[0]).ok()?, i32::try_from(p[1]).ok()?)))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        if pairs.iter().any(|&(a, b)| a < 0 || b < 0) {
            continue;
        }
        let name = node.name.clone();
        let device = node.device.clone();
        let t = node.attr.get("T").cloned();
        let x = inputs[0].to_string();
        let old_amounts = crate::graph::node_name(inputs[2]).to_string();
        let Some(zeros) = int32_tensor(amounts.shape(), vec![0; flat.len()]) else {
            continue;
        };
        let mut new = Vec::new();
        if node.op == "SpaceToBatchND" {
            let Some(rank) = static_rank(&known, &x) else {
                continue;
            };
            if rank < pairs.len() + 1 {
                continue;
            }
            let mut full = vec![0i32; 2 * rank];
            for (m, &(a, b)) in pairs.iter().enumerate() {
                full[2 * (m + 1)] = a;
                full[2 * (m + 1) + 1] = b;
            }
            let Some(full) = int32_tensor(&[rank, 2], full) else {
                continue;
            };
            let paddings_name = taken.reserve(&format!("{name}/explicit_paddings"));
            let pad_name = taken.reserve(&format!("{name}/padded"));
            let zeros_name = taken.reserve(&format!("{name}/no_paddings"));
            new.push(const_node(paddings_name.clone(), device.clone(), &full));
            let mut pad = NodeDef {
                name: pad_name.clone(),
                op: "Pad".into(),
                input: vec![x, paddings_name],
                device: device.clone(),
                ..Default::default()
            };
            if let Some(t) = &t {
                pad.attr.insert("T".into(), t.clone());
            }
            pad.attr
                .insert("Tpaddings".into(), type_attr(DataType::DtInt32 as i32));
            new.push(pad);
            new.push(const_node(zeros_name.clone(), device, &zeros));
            let node = &mut graph.node[i];
            node.input[0] = pad_name;
            node.input[2] = zeros_name;
            node.attr
                .insert("Tpaddings".into(), type_attr(DataType::DtInt32 as i32));
            inserts.entry(i).or_default().extend(new);
            parameters.insert(old_amounts);
        } else {
            let Some(out) = static_shape(&known, &name).map(<[usize]>::to_vec) else {
                continue;
            };
            if out.len() < pairs.len() + 1 || uses.reads_other_outputs(i) {
                continue;
            }
            let mut begin = vec![0i32; out.len()];
            let mut end = Vec::with_capacity(out.len());
            for (d, &size) in out.iter().enumerate() {
                if let Some(&(a, _)) = d.checked_sub(1).and_then(|m| pairs.get(m)) {
                    begin[d] = a;
                }
                let Some(e) = i32::try_from(size)
                    .ok()
                    .and_then(|s| s.checked_add(begin[d]))
                else {
                    continue;
                };
                end.push(e);
            }
            if end.len() != out.len() {
                continue;
            }
            let rank = out.len();
            let (Some(begin), Some(end), Some(strides)) = (
                int32_tensor(&[rank], begin),
                int32_tensor(&[rank], end),
                int32_tensor(&[rank], vec![1; rank]),
            ) else {
                continue;
            };
            let uncropped = taken.reserve(&format!("{name}/uncropped"));
            let names: Vec<String> = ["begin", "end", "strides"]
                .iter()
                .map(|k| taken.reserve(&format!("{name}/{k}")))
                .collect();
            let zeros_name = taken.reserve(&format!("{name}/no_crops"));
            let mut b2s = graph.node[i].clone();
            b2s.name = uncropped.clone();
            b2s.input = vec![
                b2s.input[0].clone(),
                b2s.input[1].clone(),
                zeros_name.clone(),
            ];
            b2s.input.extend(control_inputs(&graph.node[i]));
            b2s.attr
                .insert("Tcrops".into(), type_attr(DataType::DtInt32 as i32));
            new.push(const_node(zeros_name, device.clone(), &zeros));
            new.push(b2s);
            for (n, value) in names.iter().zip([&begin, &end, &strides]) {
                new.push(const_node(n.clone(), device.clone(), value));
            }
            let slice = &mut graph.node[i];
            slice.op = "StridedSlice".into();
            slice.input = vec![uncropped];
            slice.input.extend(names);
            slice.attr.clear();
            if let Some(t) = t {
                slice.attr.insert("T".into(), t);
            }
            slice
                .attr
                .insert("Index".into(), type_attr(DataType::DtInt32 as i32));
            for mask in [
                "begin_mask",
                "end_mask",
                "ellipsis_mask",
                "new_axis_mask",
                "shrink_axis_mask",
            ] {
                slice.attr.insert(mask.into(), attr_i(0));
            }
            inserts.entry(i).or_default().extend(new);
            parameters.insert(old_amounts);
        }
        count += 1;
    }
    if count > 0 {
        let old = std::mem::take(&mut graph.node);
        for (i, node) in old.into_iter().enumerate() {
            if let Some(new) = inserts.remove(&i) {
                graph.node.extend(new);
            }
            graph.node.push(node);
        }
        remove_unread(graph, parameters, protected);
    }
    count
}

/// Every float, double, int32 and int64 Const whose proto relies on TensorFlow's shorthands
/// (no values at all for zeros, or fewer values than elements with the last one repeated)
/// gets explicit values: one typed value when every element is the same (zeros included),
/// else `tensor_content`. Returns how many. What is spelled out is asked of the budget
/// before it is built; a refusal is an error naming the Const.
pub fn constants_with_explicit_values(graph: &mut GraphDef) -> crate::Result<usize> {
    let mut count = 0;
    for node in graph.node.iter_mut().filter(|n| n.op == "Const") {
        let Some(proto) = attrs::tensor(node, "value") else {
            continue;
        };
        if !proto.tensor_content.is_empty() {
            continue;
        }
        let given = match DataType::try_from(proto.dtype) {
            Ok(DataType::DtFloat) => proto.float_val.len(),
            Ok(DataType::DtDouble) => proto.double_val.len(),
            Ok(DataType::DtInt32) => proto.int_val.len(),
            Ok(DataType::DtInt64) => proto.int64_val.len(),
            _ => continue,
        };
        // The element count from the shape, without decoding: these dtypes decode exactly
        // when the proto checks.
        let Some((_, dims)) = Tensor::check_proto(proto, Limits::default()) else {
            continue;
        };
        let n = geometry::element_count(&dims).unwrap_or(0);
        if n == 0 || given == n || given == 1 {
            continue;
        }
        // Canonical form: one value when all elements are equal (zeros included), else
        // tensor_content (one copy of the value's bytes, besides the value).
        let proto = const_reencoded(node, |value| {
            crate::budget::alloc(value.byte_size() as u64)?;
            Ok(Some(value.to_proto()))
        })?;
        let Some(proto) = proto else {
            continue;
        };
        keep_const_value(node, proto)?;
        count += 1;
    }
    Ok(count)
}

/// Every node whose op has a `data_format` attribute but leaves it out (its OpDef default,
/// `NHWC` for the 2-D ops, which Keras 3's exports and graphopt's rewrites omit) gets it
/// written out. Exact. OpenCV infers the layout of a graph input from the `data_format` of the
/// nodes after it: when none says it (a Placeholder -> Pad -> Conv2D whose BiasAdd was folded
/// away), it reads a fixed NHWC input shape as NCHW and refuses the first convolution
/// ("Number of input channels should be multiple of 3 but got 224"). Returns how many.
pub fn explicit_data_formats(graph: &mut GraphDef) -> usize {
    let mut count = 0;
    for node in &mut graph.node {
        if node.attr.contains_key("data_format") {
            continue;
        }
        if let Some(default) = crate::graph::ops::attr_default(&node.op, "data_format") {
            node.attr.insert("data_format".into(), default.clone());
            count += 1;
        }
    }
    count
}

/// Afterwards no `Pack` reads a Const that another node reads too: each Pack reading a shared
/// Const gets a copy of its own (one per Pack, however many of its inputs name the Const),
/// except that when only Packs read it, the first of them keeps the original. Observed with
/// OpenCV 4.10: EfficientNet-B0 after `@deploy`, whose squeeze-and-excite reshapes (`Shape ->
/// StridedSlice -> Pack -> Reshape`, which OpenCV's simplifier fuses) share their `1` Consts
/// among their Packs, loads and then fails when it runs (`Duplicate of inferred dim`); with
/// private copies the same graph runs and matches TensorFlow. Exact: a copy keeps the
/// original's control inputs (a Const inside a TF1 cond branch or loop body has one), so it
/// runs in the same branch and frame. Each copy is asked of the budget (what it adds in
/// memory, [`crate::graph::node_memory`]). Returns how many copies.
pub fn constants_private_to_packs(graph: &mut GraphDef) -> crate::Result<usize> {
    let uses = Uses::new(graph);
    // Per node: the first Pack reading it, and whether anything else reads it.
    let mut first_pack: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    let mut other_readers: HashSet<usize> = HashSet::new();
    for (i, node) in graph.node.iter().enumerate() {
        for input in data_inputs(node) {
            if let Some(p) = uses.producer(input) {
                if node.op == "Pack" {
                    first_pack.entry(p).or_insert(i);
                } else {
                    other_readers.insert(p);
                }
            }
        }
    }
    let mut taken = NameReserver::new(graph);
    let mut inserts: std::collections::HashMap<usize, Vec<NodeDef>> =
        std::collections::HashMap::new();
    let mut count = 0;
    for pack in 0..graph.node.len() {
        if graph.node[pack].op != "Pack" {
            continue;
        }
        // How often this Pack reads each producer; (original name, copy name) made for it.
        let mut reads: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
        for input in data_inputs(&graph.node[pack]) {
            if let Some(p) = uses.producer(input) {
                *reads.entry(p).or_default() += 1;
            }
        }
        let mut copies: std::collections::HashMap<String, String> =
            std::collections::HashMap::new();
        for k in 0..graph.node[pack].input.len() {
            let input = &graph.node[pack].input[k];
            let parsed = InputRef::parse(input);
            if parsed.control || parsed.port != 0 {
                continue;
            }
            let Some(c) = uses.producer(input) else {
                continue;
            };
            let constant = &graph.node[c];
            let reads_here = reads.get(&c).copied().unwrap_or(0);
            let keeps_original = first_pack.get(&c) == Some(&pack) && !other_readers.contains(&c);
            let shared = uses.data_count(c) > reads_here && !keeps_original;
            if constant.op != "Const" || !shared {
                continue;
            }
            let original = constant.name.clone();
            let copy = match copies.get(&original) {
                Some(copy) => copy.clone(),
                None => {
                    let mut node = constant.clone();
                    node.name = taken.reserve(&format!("{original}/private"));
                    crate::budget::alloc(crate::graph::node_memory(&node)).map_err(|source| {
                        crate::Error::Budget {
                            node: original.clone(),
                            source,
                        }
                    })?;
                    let name = node.name.clone();
                    inserts.entry(pack).or_default().push(node);
                    copies.insert(original, name.clone());
                    count += 1;
                    name
                }
            };
            graph.node[pack].input[k] = copy;
        }
    }
    if count == 0 {
        return Ok(0);
    }
    let old = std::mem::take(&mut graph.node);
    for (i, node) in old.into_iter().enumerate() {
        if let Some(new) = inserts.remove(&i) {
            graph.node.extend(new);
        }
        graph.node.push(node);
    }
    Ok(count)
}

/// Every `Unpack` of a tensor of known rank becomes one `StridedSlice` per output (index `k`
/// of the axis, the axis shrunk): output 0 keeps the node's name, output `k` is `NAME/k` and
/// its readers are rewired. Exact (the same elements). Returns how many.
pub fn unpacks_as_slices(graph: &mut GraphDef) -> usize {
    let known = shapes::infer_graph(graph);
    let mut taken = NameReserver::new(graph);
    let mut inserts: std::collections::HashMap<usize, Vec<NodeDef>> =
        std::collections::HashMap::new();
    let mut renames: std::collections::HashMap<String, Vec<String>> =
        std::collections::HashMap::new();
    for i in 0..graph.node.len() {
        let node = &graph.node[i];
        if node.op != "Unpack" {
            continue;
        }
        let Some(x) = data_inputs(node).first().map(|x| x.to_string()) else {
            continue;
        };
        let (Some(dims), Some(num)) = (static_shape(&known, &x), attrs::int(node, "num")) else {
            continue;
        };
        let rank = dims.len();
        let axis = attrs::int(node, "axis").unwrap_or(0);
        let Ok(signed_rank) = i64::try_from(rank) else {
            continue;
        };
        let axis = if axis < 0 { axis + signed_rank } else { axis };
        let (Ok(axis), Ok(num)) = (usize::try_from(axis), usize::try_from(num)) else {
            continue;
        };
        if axis >= rank || dims[axis] != num || rank >= 63 {
            continue;
        }
        let all = (1i64 << rank) - 1;
        let others = all & !(1i64 << axis);
        let name = node.name.clone();
        let device = node.device.clone();
        let t = node.attr.get("T").cloned();
        let controls = control_inputs(node);
        let mut new = Vec::new();
        let mut outputs = Vec::with_capacity(num);
        let mut slices = Vec::with_capacity(num);
        for k in 0..num {
            let Ok(index) = i32::try_from(k) else {
                break;
            };
            let mut begin = vec![0i32; rank];
            let mut end = vec![0i32; rank];
            begin[axis] = index;
            end[axis] = index + 1;
            let (Some(begin), Some(end), Some(strides)) = (
                int32_tensor(&[rank], begin),
                int32_tensor(&[rank], end),
                int32_tensor(&[rank], vec![1; rank]),
            ) else {
                break;
            };
            let out = if k == 0 {
                name.clone()
            } else {
                taken.reserve(&format!("{name}/{k}"))
            };
            let consts: Vec<String> = ["begin", "end", "strides"]
                .iter()
                .map(|c| taken.reserve(&format!("{name}/{c}_{k}")))
                .collect();
            for (c, value) in consts.iter().zip([&begin, &end, &strides]) {
                new.push(const_node(c.clone(), device.clone(), value));
            }
            let mut slice = NodeDef {
                name: out.clone(),
                op: "StridedSlice".into(),
                input: vec![x.clone()],
                device: device.clone(),
                ..Default::default()
            };
            slice.input.extend(consts);
            slice.input.extend(controls.iter().cloned());
            if let Some(t) = &t {
                slice.attr.insert("T".into(), t.clone());
            }
            slice
                .attr
                .insert("Index".into(), type_attr(DataType::DtInt32 as i32));
            for (mask, value) in [
                ("begin_mask", others),
                ("end_mask", others),
                ("ellipsis_mask", 0),
                ("new_axis_mask", 0),
                ("shrink_axis_mask", 1i64 << axis),
            ] {
                slice.attr.insert(mask.into(), attr_i(value));
            }
            outputs.push(out);
            slices.push(slice);
        }
        if slices.len() != num {
            continue;
        }
        // The first slice replaces the Unpack in place; the rest go before it.
        let mut slices = slices.into_iter();
        if let Some(first) = slices.next() {
            graph.node[i] = first;
        }
        new.extend(slices);
        inserts.insert(i, new);
        renames.insert(name, outputs);
    }
    let count = renames.len();
    if count == 0 {
        return 0;
    }
    let old = std::mem::take(&mut graph.node);
    for (i, node) in old.into_iter().enumerate() {
        if let Some(new) = inserts.remove(&i) {
            graph.node.extend(new);
        }
        graph.node.push(node);
    }
    for node in &mut graph.node {
        for input in &mut node.input {
            let parsed = InputRef::parse(input);
            if parsed.control || parsed.port == 0 {
                continue;
            }
            if let Some(out) = renames
                .get(parsed.node)
                .and_then(|o| o.get(parsed.port as usize))
            {
                *input = out.clone();
            }
        }
    }
    count
}

/// Every NHWC `Conv2D` with dilations above 1 (strides 1, as TensorFlow requires), SAME or
/// VALID, on an input of known height and width, becomes `SpaceToBatchND(x, dilations,
/// paddings) -> Conv2D(undilated, VALID) -> BatchToSpaceND(dilations, crops)`, the
/// decomposition TensorFlow's `with_space_to_batch` uses: paddings are SAME's zeros plus what
/// makes each size a multiple of the dilation, the crops take that back. The convolution keeps
/// its name. Exact. Returns how many.
pub fn dilated_convolutions_as_space_to_batch(graph: &mut GraphDef) -> usize {
    dilated_as_atrous(graph, AtrousPadding::InPaddings)
}

/// Every NHWC `Conv2D` or `DepthwiseConv2dNative` with dilations above 1 (strides 1), SAME,
/// VALID or EXPLICIT, on an input of known height and width, becomes the atrous pattern in the
/// form an importer computes right when it reads the pattern as one dilated convolution padded
/// on both sides by the paddings before and ignores the rest of the paddings and the crops
/// (OpenCV 4.10, whose Conv2D ignores `dilations`): `[Pad ->] SpaceToBatchND -> conv(undilated,
/// VALID) -> BatchToSpaceND`. Along an axis where the convolution pads as much before as after,
/// the paddings carry that padding; where it pads asymmetrically (an even dilated kernel under
/// SAME, or EXPLICIT), a `Pad` in front adds it and the paddings before are 0. The paddings
/// after add what makes each size a multiple of the dilation, the crops after take that back.
/// The convolution keeps its name. Exact. Returns how many.
pub fn dilated_convolutions_as_symmetric_atrous(graph: &mut GraphDef) -> usize {
    dilated_as_atrous(graph, AtrousPadding::Symmetric)
}

/// Where [`dilated_as_atrous`] puts a convolution's own zero padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtrousPadding {
    /// In the SpaceToBatchND paddings, as TensorFlow's decomposition (Conv2D, SAME or VALID).
    InPaddings,
    /// In the paddings when symmetric, else in a Pad in front (Conv2D and
    /// DepthwiseConv2dNative, SAME, VALID or EXPLICIT).
    Symmetric,
}

fn dilated_as_atrous(graph: &mut GraphDef, mode: AtrousPadding) -> usize {
    let symmetric = mode == AtrousPadding::Symmetric;
    let known = shapes::infer_graph(graph);
    let mut taken = NameReserver::new(graph);
    let mut inserts: std::collections::HashMap<usize, Vec<NodeDef>> =
        std::collections::HashMap::new();
    let mut renames: Vec<(usize, String)> = Vec::new();
    for i in 0..graph.node.len() {
        let node = &graph.node[i];
        let op_ok = match node.op.as_str() {
            "Conv2D" => true,
            "DepthwiseConv2dNative" => symmetric,
            _ => false,
        };
        if !op_ok {
            continue;
        }
        let Ok(spatial) = geometry::Spatial::from_node(node, "strides") else {
            continue;
        };
        let padding_ok = match spatial.padding.as_str() {
            "SAME" | "VALID" => true,
            "EXPLICIT" => symmetric,
            _ => false,
        };
        if spatial.nchw || spatial.strides != (1, 1) || spatial.dilations == (1, 1) || !padding_ok {
            continue;
        }
        let inputs = data_inputs(node);
        let (Some(x), Some(f)) = (inputs.first(), inputs.get(1)) else {
            continue;
        };
        let (Some(&[_, h, w, _]), Some(&[kh, kw, _, _])) =
            (static_shape(&known, x), static_shape(&known, f))
        else {
            continue;
        };
        // Per spatial axis: (pad in front, pad before, pad after, crop after).
        let axis = |size: usize, kernel: usize, dilation: usize, explicit: (usize, usize)| {
            let window =
                geometry::window(size, kernel, 1, dilation, &spatial.padding, explicit).ok()?;
            let span = kernel
                .checked_sub(1)?
                .checked_mul(dilation)?
                .checked_add(1)?;
            let total = match spatial.padding.as_str() {
                "SAME" => span - 1,
                "EXPLICIT" => explicit.0.checked_add(explicit.1)?,
                _ => 0,
            };
            let before = window.pad_before;
            let after = total.checked_sub(before)?;
            let padded = size.checked_add(total)?;
            let extra = (dilation - padded % dilation) % dilation;
            let int = |v: usize| i32::try_from(v).ok();
            Some(if symmetric && before != after {
                [
                    (int(before)?, int(after)?),
                    (0, int(extra)?),
                    (0, int(extra)?),
                ]
            } else {
                [
                    (0, 0),
                    (int(before)?, int(after.checked_add(extra)?)?),
                    (0, int(extra)?),
                ]
            })
        };
        let (Some([front_h, pads_h, crops_h]), Some([front_w, pads_w, crops_w])) = (
            axis(h, kh, spatial.dilations.0, spatial.explicit[0]),
            axis(w, kw, spatial.dilations.1, spatial.explicit[1]),
        ) else {
            continue;
        };
        let (Ok(dh), Ok(dw)) = (
            i32::try_from(spatial.dilations.0),
            i32::try_from(spatial.dilations.1),
        ) else {
            continue;
        };
        let (Some(block), Some(paddings), Some(crops), Some(front)) = (
            int32_tensor(&[2], vec![dh, dw]),
            int32_tensor(&[2, 2], vec![pads_h.0, pads_h.1, pads_w.0, pads_w.1]),
            int32_tensor(&[2, 2], vec![crops_h.0, crops_h.1, crops_w.0, crops_w.1]),
            int32_tensor(
                &[4, 2],
                vec![0, 0, front_h.0, front_h.1, front_w.0, front_w.1, 0, 0],
            ),
        ) else {
            continue;
        };
        let in_front = front_h != (0, 0) || front_w != (0, 0);
        let name = node.name.clone();
        let device = node.device.clone();
        let t = node.attr.get("T").cloned();
        let names: Vec<String> = ["block", "paddings", "crops", "space_to_batch", "conv"]
            .iter()
            .map(|k| taken.reserve(&format!("{name}/{k}")))
            .collect();
        let [block_name, paddings_name, crops_name, s2b_name, conv_name] = names.as_slice() else {
            continue;
        };
        let typed = |op: &str, name: &str, inputs: Vec<String>| {
            let mut n = NodeDef {
                name: name.to_string(),
                op: op.into(),
                input: inputs,
                device: device.clone(),
                ..Default::default()
            };
            if let Some(t) = &t {
                n.attr.insert("T".into(), t.clone());
            }
            n
        };
        let mut new = Vec::new();
        let mut s2b_input = x.to_string();
        if in_front {
            let front_name = taken.reserve(&format!("{name}/explicit_paddings"));
            let padded_name = taken.reserve(&format!("{name}/padded"));
            let mut pad = typed("Pad", &padded_name, vec![s2b_input, front_name.clone()]);
            pad.attr
                .insert("Tpaddings".into(), type_attr(DataType::DtInt32 as i32));
            new.push(const_node(front_name, device.clone(), &front));
            new.push(pad);
            s2b_input = padded_name;
        }
        let mut s2b = typed(
            "SpaceToBatchND",
            s2b_name,
            vec![s2b_input, block_name.clone(), paddings_name.clone()],
        );
        s2b.attr
            .insert("Tblock_shape".into(), type_attr(DataType::DtInt32 as i32));
        s2b.attr
            .insert("Tpaddings".into(), type_attr(DataType::DtInt32 as i32));
        let mut conv = graph.node[i].clone();
        conv.name = conv_name.clone();
        conv.input[0] = s2b_name.clone();
        conv.attr.insert(
            "dilations".into(),
            AttrValue {
                value: Some(attr_value::Value::List(Box::new(attr_value::ListValue {
                    i: vec![1, 1, 1, 1],
                    ..Default::default()
                }))),
            },
        );
        conv.attr.insert(
            "padding".into(),
            AttrValue {
                value: Some(attr_value::Value::S(bytes::Bytes::from_static(b"VALID"))),
            },
        );
        if spatial.padding == "EXPLICIT" {
            // Emptied rather than removed: a second legalization meets the convolution it
            // flattens back as EXPLICIT, and gives the same node as the first (which keeps a
            // SAME convolution's empty list).
            conv.attr.insert(
                "explicit_paddings".into(),
                AttrValue {
                    value: Some(attr_value::Value::List(Box::default())),
                },
            );
        }
        let mut b2s = typed(
            "BatchToSpaceND",
            &name,
            vec![conv_name.clone(), block_name.clone(), crops_name.clone()],
        );
        b2s.attr
            .insert("Tblock_shape".into(), type_attr(DataType::DtInt32 as i32));
        b2s.attr
            .insert("Tcrops".into(), type_attr(DataType::DtInt32 as i32));
        new.splice(
            0..0,
            [
                const_node(block_name.clone(), device.clone(), &block),
                const_node(paddings_name.clone(), device.clone(), &paddings),
                const_node(crops_name.clone(), device.clone(), &crops),
            ],
        );
        new.push(s2b);
        new.push(conv);
        inserts.insert(i, new);
        renames.push((i, name));
        graph.node[i] = b2s;
    }
    let count = renames.len();
    if count > 0 {
        let old = std::mem::take(&mut graph.node);
        for (i, node) in old.into_iter().enumerate() {
            if let Some(new) = inserts.remove(&i) {
                graph.node.extend(new);
            }
            graph.node.push(node);
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(value: attr_value::Value) -> AttrValue {
        AttrValue { value: Some(value) }
    }

    fn node(name: &str, op: &str, inputs: &[&str]) -> NodeDef {
        NodeDef {
            name: name.into(),
            op: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// TensorFlow's Add has no uint16, uint32 or uint64 (AddV2 has): an AddV2 of uint32 stays,
    /// as `Add` TensorFlow refuses it (uint32 is not in the list of allowed values, TF 2.21).
    #[test]
    fn add_v2_becomes_add_only_for_types_add_takes() {
        let mut graph = GraphDef::default();
        for (name, t) in [
            ("f", DataType::DtFloat),
            ("u8", DataType::DtUint8),
            ("u16", DataType::DtUint16),
            ("u32", DataType::DtUint32),
            ("u64", DataType::DtUint64),
        ] {
            let mut add = node(name, "AddV2", &["a", "b"]);
            add.attr
                .insert("T".into(), attr(attr_value::Value::Type(t as i32)));
            graph.node.push(add);
        }
        assert_eq!(rename_ops(&mut graph, "AddV2", "Add"), 2);
        let ops: Vec<&str> = graph.node.iter().map(|n| n.op.as_str()).collect();
        assert_eq!(ops, ["Add", "Add", "AddV2", "AddV2", "AddV2"]);
    }

    /// x -> FusedBatchNormV3 (parameters through Identities, as TF1 exports them) -> `reader`
    /// reading `port`.
    fn norm_graph(t: DataType, training: bool, port: u32) -> GraphDef {
        let mut norm = node("bn", "FusedBatchNormV3", &["x", "g", "b", "m", "v"]);
        for (k, v) in [
            ("T", type_attr(t as i32)),
            ("U", type_attr(DataType::DtFloat as i32)),
            ("exponential_avg_factor", attr(attr_value::Value::F(1.0))),
            ("is_training", attr(attr_value::Value::B(training))),
            ("epsilon", attr(attr_value::Value::F(0.001))),
        ] {
            norm.attr.insert(k.into(), v);
        }
        let mut nodes = vec![node("x", "Placeholder", &[])];
        for p in ["g", "b", "m", "v"] {
            nodes.push(node(&format!("{p}_var"), "Const", &[]));
            nodes.push(node(p, "Identity", &[&format!("{p}_var")]));
        }
        nodes.push(norm);
        let read = if port == 0 {
            "bn".to_string()
        } else {
            format!("bn:{port}")
        };
        nodes.push(node("reader", "Identity", &[&read]));
        GraphDef {
            node: nodes,
            ..Default::default()
        }
    }

    fn op_of(graph: &GraphDef, name: &str) -> String {
        graph
            .node
            .iter()
            .find(|n| n.name == name)
            .unwrap()
            .op
            .clone()
    }

    #[test]
    fn inference_norms_downgrade_whatever_feeds_their_parameters() {
        for port in [0, 1, 2] {
            let mut g = norm_graph(DataType::DtFloat, false, port);
            assert_eq!(downgrade_batch_norms(&mut g), 1, "port {port}");
            let bn = g.node.iter().find(|n| n.name == "bn").unwrap();
            assert_eq!(bn.op, "FusedBatchNorm");
            assert!(!bn.attr.contains_key("U"));
            assert!(!bn.attr.contains_key("exponential_avg_factor"));
            assert!(bn.attr.contains_key("epsilon") && bn.attr.contains_key("T"));
        }
    }

    #[test]
    fn norms_without_a_v1_equivalent_keep_their_version() {
        let cases = [
            // A reserve space is read (V3's reserve_space_3 has no V1 counterpart).
            norm_graph(DataType::DtFloat, false, 5),
            norm_graph(DataType::DtFloat, false, 3),
            // V1 is float only.
            norm_graph(DataType::DtHalf, false, 0),
            // Training.
            norm_graph(DataType::DtFloat, true, 0),
        ];
        for mut g in cases {
            assert_eq!(downgrade_batch_norms(&mut g), 0);
            assert_eq!(op_of(&g, "bn"), "FusedBatchNormV3");
        }
        let mut g = norm_graph(DataType::DtFloat, false, 0);
        let bn = g.node.iter_mut().find(|n| n.name == "bn").unwrap();
        bn.attr.insert(
            "data_format".into(),
            attr(attr_value::Value::S(bytes::Bytes::from_static(b"NDHWC"))),
        );
        assert_eq!(downgrade_batch_norms(&mut g), 0);
    }

    #[test]
    fn attributes_are_stripped_only_where_that_keeps_the_node() {
        let ops = ["FusedBatchNormV3"];
        let names = ["exponential_avg_factor"];
        // Default value: stripped.
        let mut g = norm_graph(DataType::DtFloat, true, 0);
        let done = strip_attributes(&mut g, &ops, &names);
        assert_eq!((done.removed, done.kept.len()), (1, 0));
        // Another value in training: kept and reported.
        let mut g = norm_graph(DataType::DtFloat, true, 0);
        let bn = g.node.iter_mut().find(|n| n.name == "bn").unwrap();
        bn.attr.insert(
            "exponential_avg_factor".into(),
            attr(attr_value::Value::F(0.5)),
        );
        let done = strip_attributes(&mut g, &ops, &names);
        assert_eq!(done.removed, 0);
        assert_eq!(
            done.kept,
            [("bn".to_string(), "exponential_avg_factor".to_string())]
        );
        // The same value in inference: TensorFlow never reads it.
        let mut g = norm_graph(DataType::DtFloat, false, 0);
        let bn = g.node.iter_mut().find(|n| n.name == "bn").unwrap();
        bn.attr.insert(
            "exponential_avg_factor".into(),
            attr(attr_value::Value::F(0.5)),
        );
        assert_eq!(strip_attributes(&mut g, &ops, &names).removed, 1);
    }

    #[test]
    fn check_numerics_pass_their_input_through() {
        let mut g = GraphDef {
            node: vec![
                node("x", "Placeholder", &[]),
                node("check", "CheckNumerics", &["x"]),
                node("relu", "Relu", &["check"]),
            ],
            ..Default::default()
        };
        assert_eq!(remove_check_numerics(&mut g, &HashSet::new()), 1);
        assert_eq!(g.node.len(), 2);
        assert_eq!(g.node[1].input, ["x"]);
        // A protected CheckNumerics (an output) stays.
        let mut g = GraphDef {
            node: vec![
                node("x", "Placeholder", &[]),
                node("check", "CheckNumerics", &["x"]),
            ],
            ..Default::default()
        };
        let protected: HashSet<String> = ["check".to_string()].into_iter().collect();
        assert_eq!(remove_check_numerics(&mut g, &protected), 0);
    }
}
