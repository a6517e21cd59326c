//! Leftovers: what export and earlier rewrites leave behind that computes nothing at inference.
//! [`remove_leftovers`] removes, safely around control flow:
//! - identity-like ops: Identity, IdentityN (Keras' custom-gradient wrapper of swish),
//!   StopGradient, Snapshot, PreventGradient, Cast to the same type;
//! - shape no-ops: Reshape to the shape its input already has, ExpandDims undone by a Squeeze
//!   of the same axis (and the reverse), two Transposes whose permutations cancel;
//! - control edges that order nothing (from nodes without side effects, see
//!   [`drop_pure_control_edges`]) and then the NoOps that no longer wait for anything, such
//!   as the control anchor Keras 3 puts on every output (OpenCV's importer rejects those).
//!
//! Used by the `remove_leftovers` transform, the deployment pipeline and the targets'
//! legalization.

use std::collections::HashSet;

use crate::analysis::shapes;
use crate::graph::attrs;
use crate::graph::edit::{bypassed_controls, const_value, control_inputs, data_inputs, Uses};
use crate::graph::{self, InputRef};
use crate::proto::{AttrValue, GraphDef, NodeDef};
use crate::rewrite::remove::{remove_nodes, remove_unread};

/// Ops that pass their (first) input through at inference.
pub const IDENTITY_LIKE: &[&str] = &[
    "Identity",
    "IdentityN",
    "StopGradient",
    "Snapshot",
    "PreventGradient",
];

/// What [`remove_leftovers`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeftoverCounts {
    /// Casts and shape no-ops turned into identities.
    pub no_ops_found: usize,
    /// Nodes removed in all.
    pub nodes_removed: usize,
}

/// Removes the leftovers listed in the module docs; `protected` nodes stay.
pub fn remove_leftovers(graph: &mut GraphDef, protected: &HashSet<String>) -> LeftoverCounts {
    let before = graph.node.len();
    let mut no_ops_found = identities_for_same_type_casts(graph, protected);
    let (shape_no_ops, bypassed) = identities_for_shape_no_ops(graph, protected);
    no_ops_found += shape_no_ops;
    remove_unread(graph, bypassed, protected);
    let ops: HashSet<&str> = IDENTITY_LIKE.iter().copied().collect();
    // Dropping control edges frees identities that were kept for theirs (one with a control
    // input that feeds a Merge: a TF1 cond's `control_dependency`), which a second run then
    // removed: the rounds go on until one changes nothing, so that the result is a fixed
    // point. Each round removes nodes or inputs; the rounds are capped all the same.
    let size = |graph: &GraphDef| {
        (
            graph.node.len(),
            graph.node.iter().map(|n| n.input.len()).sum::<usize>(),
        )
    };
    for _ in 0..LEFTOVER_ROUNDS {
        let before = size(graph);
        remove_nodes(graph, &ops, 1, protected);
        drop_pure_control_edges(graph);
        remove_idle_no_ops(graph, protected);
        if size(graph) == before {
            break;
        }
    }
    LeftoverCounts {
        no_ops_found,
        nodes_removed: before.saturating_sub(graph.node.len()),
    }
}

/// At most this many rounds of identity removal and control-edge dropping in
/// [`remove_leftovers`] (a TF1 graph needs two; each is linear in the graph).
const LEFTOVER_ROUNDS: usize = 8;

/// Turns `node` into an Identity of `input` of type `t`, keeping its control inputs.
fn become_identity(node: &mut NodeDef, input: String, t: Option<AttrValue>) {
    let controls = control_inputs(node);
    node.op = "Identity".into();
    node.input = vec![input];
    node.input.extend(controls);
    node.attr.clear();
    if let Some(t) = t {
        node.attr.insert("T".into(), t);
    }
}

fn identities_for_same_type_casts(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    let mut count = 0;
    for node in &mut graph.node {
        if node.op != "Cast" || protected.contains(&node.name) {
            continue;
        }
        let (src, dst) = (attrs::dtype(node, "SrcT"), attrs::dtype(node, "DstT"));
        let Some(input) = data_inputs(node).first().map(|s| s.to_string()) else {
            continue;
        };
        if src.is_some() && src == dst {
            let t = node.attr.get("SrcT").cloned();
            become_identity(node, input, t);
            count += 1;
        }
    }
    count
}

/// The int values of the Const feeding `input`, if it is one and `protected` does not name it
/// (a Const named in --inputs holds what is fed).
fn const_ints(
    graph: &GraphDef,
    uses: &Uses,
    protected: &HashSet<String>,
    input: &str,
) -> Option<Vec<i64>> {
    let producer = graph.node.get(uses.producer(input)?)?;
    if protected.contains(&producer.name) {
        return None;
    }
    const_value(producer)?.integers()
}

/// Reshapes to the same shape, ExpandDims/Squeeze pairs and cancelling Transposes become
/// Identities of the tensor they leave unchanged. Returns how many, and the nodes they no
/// longer read.
fn identities_for_shape_no_ops(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
) -> (usize, HashSet<String>) {
    let known = shapes::infer_graph(graph);
    let shape_of = |input: &str| -> Option<Vec<usize>> {
        let parsed = InputRef::parse(input);
        known.get(parsed.node)?.get(parsed.port as usize)?.clone()
    };
    let uses = Uses::new(graph);
    let mut rewrites: Vec<(usize, String)> = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        if protected.contains(&node.name) {
            continue;
        }
        let inputs = data_inputs(node);
        let Some(&first) = inputs.first() else {
            continue;
        };
        let inner = uses
            .producer(first)
            .and_then(|p| graph.node.get(p).map(|n| (p, n)));
        let inner_is_private = |p: usize| uses.count(p) == 1 && !uses.reads_other_outputs(p);
        let replacement = match node.op.as_str() {
            "Reshape" => {
                let input_shape = shape_of(first);
                let output_shape = known
                    .get(&node.name)
                    .and_then(|s| s.first().cloned().flatten());
                (input_shape.is_some() && input_shape == output_shape).then(|| first.to_string())
            }
            "Squeeze" | "ExpandDims" => inner.and_then(|(p, inner)| {
                let undoes = matches!(
                    (node.op.as_str(), inner.op.as_str()),
                    ("Squeeze", "ExpandDims") | ("ExpandDims", "Squeeze")
                );
                if !undoes || !inner_is_private(p) || protected.contains(&inner.name) {
                    return None;
                }
                let x = *data_inputs(inner).first()?;
                // Same rank in and out, same shape: the pair changed nothing.
                let (before, after) = (shape_of(x)?, known.get(&node.name)?.first()?.clone()?);
                (before == after).then(|| x.to_string())
            }),
            "Transpose" => inner.and_then(|(p, inner)| {
                if inner.op != "Transpose"
                    || !inner_is_private(p)
                    || protected.contains(&inner.name)
                {
                    return None;
                }
                let outer_perm = const_ints(graph, &uses, protected, inputs.get(1)?)?;
                let inner_inputs = data_inputs(inner);
                let inner_perm = const_ints(graph, &uses, protected, inner_inputs.get(1)?)?;
                let cancels = outer_perm.len() == inner_perm.len()
                    && outer_perm.iter().enumerate().all(|(k, &o)| {
                        usize::try_from(o)
                            .ok()
                            .and_then(|o| inner_perm.get(o))
                            .is_some_and(|&v| v == k as i64)
                    });
                cancels.then(|| inner_inputs[0].to_string())
            }),
            _ => None,
        };
        if let Some(source) = replacement {
            rewrites.push((i, source));
        }
    }
    let count = rewrites.len();
    let mut bypassed = HashSet::new();
    let by_name = graph::owned_name_index(graph);
    for (i, source) in rewrites {
        // An inner Transpose or Squeeze waited for: the node keeps waiting for it.
        let inherited = bypassed_controls(graph, &by_name, i, &source);
        let node = &mut graph.node[i];
        bypassed.extend(
            data_inputs(node)
                .iter()
                .map(|d| graph::node_name(d).to_string()),
        );
        let t = node.attr.get("T").cloned();
        become_identity(node, source, t);
        node.input.extend(inherited);
    }
    (count, bypassed)
}

/// Removes NoOps that wait for nothing (no inputs) and are not protected, with the control
/// edges to them; repeated, since a NoOp may have waited only for such a NoOp.
fn remove_idle_no_ops(graph: &mut GraphDef, protected: &HashSet<String>) {
    loop {
        let idle: HashSet<String> = graph
            .node
            .iter()
            .filter(|n| n.op == "NoOp" && n.input.is_empty() && !protected.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        if idle.is_empty() {
            return;
        }
        graph.node.retain(|n| !idle.contains(&n.name));
        for node in &mut graph.node {
            node.input
                .retain(|i| !(i.starts_with('^') && idle.contains(graph::node_name(i))));
        }
    }
}

/// Ops whose running has effects beyond their outputs.
pub fn has_side_effects(op: &str) -> bool {
    matches!(
        op,
        "Assert"
            | "Print"
            | "PrintV2"
            | "Assign"
            | "AssignAdd"
            | "AssignSub"
            | "AssignVariableOp"
            | "AssignAddVariableOp"
            | "AssignSubVariableOp"
            | "SaveV2"
            | "RestoreV2"
            | "VarHandleOp"
            | "VariableV2"
            | "Variable"
    ) || op.contains("Queue")
        || op.contains("Iterator")
        || op.starts_with("Scatter")
        || op.starts_with("ResourceScatter")
        || op.starts_with("ResourceApply")
        || op.starts_with("Apply")
}

/// Whether running `op` may depend on or change state that a control edge orders: the ops
/// above, and every op TensorFlow's OpDef marks stateful (a variable read, a stateful call,
/// a random generator) or graphopt has no OpDef for. In a function body a variable is an
/// argument, not a VarHandleOp, so the read itself must count.
fn orders_state(op: &str) -> bool {
    has_side_effects(op) || crate::graph::ops::op_def(op).is_none_or(|def| def.is_stateful)
}

/// Drops control edges from nodes that cannot have side effects (nothing stateful among them
/// or their ancestors), except those that place a source node inside a loop or branch.
pub fn drop_pure_control_edges(graph: &mut GraphDef) {
    let order = graph::execution_order(graph).unwrap_or_else(|_| (0..graph.node.len()).collect());
    let index = crate::graph::owned_name_index(graph);
    let mut impure = vec![false; graph.node.len()];
    for &i in &order {
        let node = &graph.node[i];
        impure[i] = orders_state(&node.op)
            || node.input.iter().any(|input| {
                index
                    .get(InputRef::parse(input).node)
                    .is_some_and(|&p| impure[p])
            });
    }
    let framed = framed_sources(graph);
    for (i, node) in graph.node.iter_mut().enumerate() {
        let source_like = node.input.iter().all(|input| input.starts_with('^'));
        let keep_frame = source_like && framed.contains(&i);
        node.input.retain(|input| {
            let parsed = InputRef::parse(input);
            !parsed.control || keep_frame || index.get(parsed.node).is_some_and(|&p| impure[p])
        });
    }
}

/// Source nodes (only control inputs) whose control inputs come from inside a loop or branch.
fn framed_sources(graph: &GraphDef) -> HashSet<usize> {
    let inside = graph::inside_control_flow(graph);
    graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            !n.input.is_empty()
                && n.input.iter().all(|i| i.starts_with('^'))
                && n.input
                    .iter()
                    .any(|i| inside.contains(InputRef::parse(i).node))
        })
        .map(|(i, _)| i)
        .collect()
}
