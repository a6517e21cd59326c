//! Concatenations simplified, exactly (the same elements in the same places), as Grappler does:
//! - a `ConcatV2` that is the one reader of another `ConcatV2` along the same axis takes the
//!   inner one's parts in its place (Grappler's constant folding merges concats this way);
//! - when every part of a `ConcatV2` is the same elementwise unary op (a Relu per branch of an
//!   Inception block) read by nothing else, the op moves after the concatenation, once
//!   (Grappler's arithmetic optimizer hoists such chains).

use std::collections::HashSet;

use crate::graph::edit::{const_value, control_inputs, data_inputs, unique_name, Uses};
use crate::graph::InputRef;
use crate::proto::{attr_value, AttrValue, GraphDef, NodeDef};
use crate::rewrite::remove::remove_unread;

/// Unary ops that map each element alone, keep the shape and the type: hoisting them out of
/// a concatenation computes the same values.
const ELEMENTWISE_UNARY: &[&str] = &[
    "Abs",
    "Ceil",
    "Cos",
    "Elu",
    "Erf",
    "Exp",
    "Expm1",
    "Floor",
    "LeakyRelu",
    "Log",
    "Log1p",
    "Neg",
    "Reciprocal",
    "Relu",
    "Relu6",
    "Round",
    "Rsqrt",
    "Selu",
    "Sigmoid",
    "Sign",
    "Sin",
    "Softplus",
    "Softsign",
    "Sqrt",
    "Square",
    "Tanh",
];

/// A node's attributes that define what it computes: not annotations such as
/// `_output_shapes`, which differ between parts of different sizes.
fn semantic_attrs(node: &NodeDef) -> std::collections::BTreeMap<&str, &AttrValue> {
    node.attr
        .iter()
        .filter(|(key, _)| !key.starts_with('_'))
        .map(|(key, value)| (key.as_str(), value))
        .collect()
}

/// Both rewrites until neither applies; returns how many concatenations changed.
pub fn simplify_concats(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    let mut total = 0;
    // Each pass changes at least one concatenation of a finite graph and never adds one
    // that could change again without removing a node; the bound is a guard.
    for _ in 0..graph.node.len().max(1) {
        let changed =
            merge_nested_concats(graph, protected) + hoist_unary_out_of_concats(graph, protected);
        if changed == 0 {
            break;
        }
        total += changed;
    }
    total
}

/// The constant axis of a `ConcatV2` (its last data input), if it is one: a Const `protected`
/// names may be a fed input, whose value is whatever is fed.
fn constant_axis(
    graph: &GraphDef,
    uses: &Uses,
    protected: &HashSet<String>,
    node: &NodeDef,
) -> Option<i64> {
    let axis = *data_inputs(node).last()?;
    if InputRef::parse(axis).port != 0 {
        return None;
    }
    let producer = graph.node.get(uses.producer(axis)?)?;
    if protected.contains(&producer.name) {
        return None;
    }
    let value = const_value(producer)?;
    match value.integers()?.as_slice() {
        [axis] => Some(*axis),
        _ => None,
    }
}

/// The node at index `i` is read once, by data, through output 0, and may go.
fn read_once(graph: &GraphDef, uses: &Uses, protected: &HashSet<String>, i: usize) -> bool {
    uses.count(i) == 1
        && uses.data_count(i) == 1
        && !uses.reads_other_outputs(i)
        && !protected.contains(&graph.node[i].name)
}

fn set_part_count(node: &mut NodeDef, parts: usize) {
    node.attr.insert(
        "N".into(),
        AttrValue {
            value: Some(attr_value::Value::I(parts as i64)),
        },
    );
}

/// `ConcatV2(a, ConcatV2(b, c, axis), d, axis)` becomes `ConcatV2(a, b, c, d, axis)` when the
/// inner concatenation has no other reader and no control input. Returns how many outer
/// concatenations took parts in.
pub fn merge_nested_concats(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    let uses = Uses::new(graph);
    let mut merged = 0;
    let mut absorbed: HashSet<usize> = HashSet::new();
    let mut new_inputs: Vec<(usize, Vec<String>, usize)> = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        if node.op != "ConcatV2" || absorbed.contains(&i) {
            continue;
        }
        let Some(axis) = constant_axis(graph, &uses, protected, node) else {
            continue;
        };
        let inputs = data_inputs(node);
        let Some((axis_input, parts)) = inputs.split_last() else {
            continue;
        };
        let mut flattened: Vec<String> = Vec::with_capacity(parts.len());
        let mut took = false;
        for part in parts {
            let inner = uses.producer(part).filter(|&p| {
                let n = &graph.node[p];
                p != i
                    && n.op == "ConcatV2"
                    && InputRef::parse(part).port == 0
                    && !absorbed.contains(&p)
                    && new_inputs.iter().all(|(outer, _, _)| *outer != p)
                    && read_once(graph, &uses, protected, p)
                    && control_inputs(n).is_empty()
                    && n.attr.get("T") == node.attr.get("T")
                    && constant_axis(graph, &uses, protected, n) == Some(axis)
            });
            match inner {
                Some(p) => {
                    let inner_inputs = data_inputs(&graph.node[p]);
                    let inner_parts = &inner_inputs[..inner_inputs.len().saturating_sub(1)];
                    flattened.extend(inner_parts.iter().map(|s| s.to_string()));
                    absorbed.insert(p);
                    took = true;
                }
                None => flattened.push(part.to_string()),
            }
        }
        if took {
            let parts = flattened.len();
            flattened.push(axis_input.to_string());
            flattened.extend(control_inputs(node));
            new_inputs.push((i, flattened, parts));
            merged += 1;
        }
    }
    if merged == 0 {
        return 0;
    }
    let mut unread = HashSet::new();
    for p in &absorbed {
        unread.insert(graph.node[*p].name.clone());
    }
    for (i, inputs, parts) in new_inputs {
        let node = &mut graph.node[i];
        node.input = inputs;
        set_part_count(node, parts);
    }
    remove_unread(graph, unread, protected);
    merged
}

/// `ConcatV2(u(a), u(b), axis)`, every part the same elementwise unary op `u` (same
/// attributes and device) read by nothing else, becomes `u(ConcatV2(a, b, axis))`: the
/// concatenation keeps its name for its readers and turns into `u`, reading a new
/// concatenation of the parts' inputs. Returns how many.
pub fn hoist_unary_out_of_concats(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    let uses = Uses::new(graph);
    let mut taken: HashSet<String> = graph.node.iter().map(|n| n.name.clone()).collect();
    // (concat, the unary nodes that are its parts).
    let mut hoists: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut claimed: HashSet<usize> = HashSet::new();
    for (i, node) in graph.node.iter().enumerate() {
        if node.op != "ConcatV2" || protected.contains(&node.name) {
            continue;
        }
        let inputs = data_inputs(node);
        let Some((_, parts)) = inputs.split_last() else {
            continue;
        };
        if parts.len() < 2 {
            continue;
        }
        let producers: Option<Vec<usize>> = parts
            .iter()
            .map(|part| {
                uses.producer(part)
                    .filter(|&p| InputRef::parse(part).port == 0 && !claimed.contains(&p))
            })
            .collect();
        let Some(producers) = producers else {
            continue;
        };
        let first = &graph.node[producers[0]];
        let same = |p: &usize| {
            let n = &graph.node[*p];
            n.op == first.op
                && semantic_attrs(n) == semantic_attrs(first)
                && n.device == first.device
                && data_inputs(n).len() == 1
                && control_inputs(n).is_empty()
                && read_once(graph, &uses, protected, *p)
        };
        let distinct: HashSet<&usize> = producers.iter().collect();
        if !ELEMENTWISE_UNARY.contains(&first.op.as_str())
            || distinct.len() != producers.len()
            || !producers.iter().all(same)
        {
            continue;
        }
        claimed.extend(producers.iter().copied());
        claimed.insert(i);
        hoists.push((i, producers));
    }
    let count = hoists.len();
    let mut unread = HashSet::new();
    let mut added = Vec::with_capacity(count);
    for (i, producers) in hoists {
        let template = graph.node[producers[0]].clone();
        let concat = &mut graph.node[i];
        let mut inner = concat.clone();
        inner.name = unique_name(&format!("{}/parts", concat.name), &mut taken);
        // The concatenation's control inputs stay on the node its readers read.
        inner.input.retain(|input| !input.starts_with('^'));
        // Data inputs come first: the parts, then the axis.
        for (slot, &p) in inner.input.iter_mut().zip(&producers) {
            slot.clone_from(&graph.node[p].input[0]);
        }
        let concat = &mut graph.node[i];
        let controls = control_inputs(concat);
        concat.op = template.op.clone();
        // The op's own attributes from a part; annotations such as `_output_shapes` stay the
        // concatenation's, whose output this still is.
        concat.attr.retain(|key, _| key.starts_with('_'));
        concat.attr.extend(
            template
                .attr
                .into_iter()
                .filter(|(key, _)| !key.starts_with('_')),
        );
        concat.input = std::iter::once(inner.name.clone())
            .chain(controls)
            .collect();
        for &p in &producers {
            unread.insert(graph.node[p].name.clone());
        }
        added.push(inner);
    }
    graph.node.extend(added);
    remove_unread(graph, unread, protected);
    count
}
