//! Rewrites into forms a consumer's importer reads, each exact: what the targets'
//! legalization composes (see `crate::transforms` `legalize`).
//!
//! - [`decompose_batch_norms`]: inference FusedBatchNorm (any version) left after folding
//!   becomes `x * scale + offset` with per-channel Consts (for importers without the op);
//! - [`downgrade_batch_norms`]: FusedBatchNormV2/V3 become FusedBatchNorm (V1), dropping the
//!   attributes V1 lacks (`U`, `exponential_avg_factor`), when only output 0 is read;
//! - [`rename_ops`]: op renames with identical semantics (`AddV2` -> `Add`);
//! - [`constants_as_tensor_content`]: every fixed-size Const's values in `tensor_content`;
//! - [`resource_gathers_to_gather_v2`]: `ResourceGather` of a frozen (Const) table becomes
//!   `GatherV2` with a Const axis 0;
//! - [`strip_attributes`]: attributes an importer refuses, per op;
//! - [`placeholders_without_defaults`]: PlaceholderWithDefault becomes a Placeholder (the app
//!   always feeds its inputs; some importers lack the op).

use std::collections::HashSet;

use crate::graph::attrs;
use crate::graph::edit::{
    const_node, const_value, control_inputs, data_inputs, remove_unread, unique_name, Uses,
};
use crate::proto::{attr_value, AttrValue, DataType, GraphDef, NodeDef};
use crate::rewrite::weights::{floats, vector};
use crate::tensor::Tensor;

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
    let mut taken: HashSet<String> = graph.node.iter().map(|n| n.name.clone()).collect();
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
        let scale_name = unique_name(&format!("{name}/scale"), &mut taken);
        let offset_name = unique_name(&format!("{name}/offset"), &mut taken);
        let mul_name = unique_name(&format!("{name}/mul"), &mut taken);
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

/// FusedBatchNormV2/V3 in inference whose only read output is 0 become FusedBatchNorm (V1).
pub fn downgrade_batch_norms(graph: &mut GraphDef) -> usize {
    let uses = Uses::new(graph);
    let norms: Vec<usize> = inference_norms(graph, &uses)
        .into_iter()
        .map(|(i, _, _)| i)
        .filter(|&i| graph.node[i].op != "FusedBatchNorm")
        .collect();
    for &i in &norms {
        let node = &mut graph.node[i];
        node.op = "FusedBatchNorm".into();
        node.attr.remove("U");
        node.attr.remove("exponential_avg_factor");
    }
    norms.len()
}

/// Renames ops whose semantics are the same (`AddV2` -> `Add`).
pub fn rename_ops(graph: &mut GraphDef, from: &str, to: &str) -> usize {
    let mut count = 0;
    for node in graph.node.iter_mut().filter(|n| n.op == from) {
        node.op = to.into();
        count += 1;
    }
    count
}

/// Every fixed-size Const of rank 1 or more keeps its values in `tensor_content` (graphopt's
/// writer otherwise stores a uniform tensor as one `*_val`, as TensorFlow allows); scalars keep
/// their single value, which is how TensorFlow writes them.
pub fn constants_as_tensor_content(graph: &mut GraphDef) -> usize {
    let mut count = 0;
    for node in graph.node.iter_mut().filter(|n| n.op == "Const") {
        let Some(value) = const_value(node) else {
            continue;
        };
        if value.shape().is_empty() || value.is_empty() {
            continue;
        }
        let proto = value.to_proto_as_content();
        let unchanged = attrs::tensor(node, "value")
            .is_some_and(|current| current.tensor_content == proto.tensor_content);
        if proto.tensor_content.is_empty() || unchanged {
            continue; // strings, or already there
        }
        node.attr.insert(
            "value".into(),
            AttrValue {
                value: Some(attr_value::Value::Tensor(proto)),
            },
        );
        count += 1;
    }
    count
}

/// `ResourceGather(table, indices)` with a Const table becomes `GatherV2(table, indices, 0)`.
pub fn resource_gathers_to_gather_v2(graph: &mut GraphDef) -> usize {
    let uses = Uses::new(graph);
    let mut taken: HashSet<String> = graph.node.iter().map(|n| n.name.clone()).collect();
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
        if !table_is_const || attrs::int(node, "batch_dims").unwrap_or(0) != 0 {
            continue;
        }
        let axis_name = unique_name(&format!("{}/axis", node.name), &mut taken);
        let device = node.device.clone();
        let node = &mut graph.node[i];
        let dtype = node.attr.remove("dtype");
        let tindices = node.attr.remove("Tindices");
        node.attr.clear();
        node.op = "GatherV2".into();
        node.input.insert(2, axis_name.clone());
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

/// Removes the named attributes from every node of `op`.
pub fn strip_attributes(graph: &mut GraphDef, op: &str, names: &[&str]) -> usize {
    let mut count = 0;
    for node in graph.node.iter_mut().filter(|n| n.op == op) {
        for name in names {
            count += usize::from(node.attr.remove(*name).is_some());
        }
    }
    count
}

/// PlaceholderWithDefault becomes a Placeholder of the same dtype and shape; its default input
/// is dropped (and with it, anything only the default read, once unused nodes are stripped).
pub fn placeholders_without_defaults(graph: &mut GraphDef) -> usize {
    let mut count = 0;
    for node in graph
        .node
        .iter_mut()
        .filter(|n| n.op == "PlaceholderWithDefault")
    {
        node.op = "Placeholder".into();
        node.input.clear();
        count += 1;
    }
    count
}
