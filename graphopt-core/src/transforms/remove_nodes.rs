//! `remove_nodes(op=..., max_inputs=1)`: splices out nodes of the given op types (Identity,
//! CheckNumerics, StopGradient, Snapshot, ...), wiring their consumers to their first input.
//!
//! Differences from TensorFlow's transform, all deliberate (TensorFlow's breaks graphs):
//! - a node fed by a Switch that other nodes use as a control anchor (`^node`) is kept: it is
//!   how a `tf.cond` branch or loop body pins its constants to the taken branch, and a control
//!   edge from the Switch itself is live on both branches;
//! - a node with control inputs that feeds a Merge or Enter is kept, since moving those control
//!   inputs onto it would tie iterations or frames together;
//! - the removed node's control inputs move to its consumers instead of being dropped;
//! - a node read through an output other than 0 is kept (IdentityN maps each output to its
//!   input instead);
//! - nodes named in --inputs or --outputs are kept, however they are spelled (`Mul:0`).

use std::collections::HashSet;

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph::edit::{data_inputs, Uses};
use crate::graph::{self, InputRef};
use crate::proto::GraphDef;

pub struct RemoveNodes;

impl Transform for RemoveNodes {
    fn name(&self) -> &str {
        "remove_nodes"
    }

    fn summary(&self) -> &str {
        "splice out nodes of the given op types (op=Identity, ...), keeping control flow intact"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["op", "max_inputs"])
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let ops: HashSet<&str> = context
            .params
            .list("op")
            .iter()
            .map(String::as_str)
            .collect();
        if ops.is_empty() {
            return Err(
                context.error("give at least one op to remove, e.g. remove_nodes(op=Identity)")
            );
        }
        let max_inputs = usize::try_from(context.params.int("max_inputs", 1)?)
            .map_err(|_| context.error("max_inputs must not be negative"))?;
        let protected = context.protected_names();
        while splice(graph, &ops, max_inputs, &protected) {}
        Ok(())
    }
}

/// Removes every removable node whose neighbours are not being removed in the same pass.
fn splice(
    graph: &mut GraphDef,
    ops: &HashSet<&str>,
    max_inputs: usize,
    protected: &HashSet<String>,
) -> bool {
    let uses = Uses::new(graph);
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); graph.node.len()];
    for (c, node) in graph.node.iter().enumerate() {
        for input in &node.input {
            if let Some(p) = uses.producer(input) {
                consumers[p].push(c);
            }
        }
    }
    let mut removed = HashSet::new();
    let mut blocked = HashSet::new();
    for (i, node) in graph.node.iter().enumerate() {
        if !ops.contains(node.op.as_str()) || protected.contains(&node.name) || blocked.contains(&i)
        {
            continue;
        }
        let data = data_inputs(node);
        let identity_n = node.op == "IdentityN";
        if data.is_empty()
            || (!identity_n && (data.len() > max_inputs || uses.reads_other_outputs(i)))
        {
            continue;
        }
        let op_of = |n: usize| graph.node[n].op.as_str();
        let fed_by_switch = data
            .iter()
            .filter_map(|d| uses.producer(d))
            .any(|p| matches!(op_of(p), "Switch" | "RefSwitch"));
        let feeds_frame_boundary = consumers[i]
            .iter()
            .any(|&c| matches!(op_of(c), "Merge" | "RefMerge" | "Enter" | "RefEnter"));
        let is_anchor = consumers[i].iter().any(|&c| {
            graph.node[c]
                .input
                .iter()
                .any(|input| input.strip_prefix('^') == Some(node.name.as_str()))
        });
        let has_controls = node.input.iter().any(|input| input.starts_with('^'));
        if (fed_by_switch && is_anchor) || (feeds_frame_boundary && has_controls) {
            continue;
        }
        removed.insert(i);
        // Neighbours wait for the next pass, so rewiring never reads a removed node.
        blocked.extend(data.iter().filter_map(|d| uses.producer(d)));
        blocked.extend(consumers[i].iter().copied());
    }
    if removed.is_empty() {
        return false;
    }
    // Sorted, so the order control inputs are moved in is the same on every run.
    let mut ordered: Vec<usize> = removed.iter().copied().collect();
    ordered.sort_unstable();
    for r in ordered {
        let node = graph.node[r].clone();
        let data: Vec<String> = data_inputs(&node).iter().map(|s| s.to_string()).collect();
        let controls = crate::graph::edit::control_inputs(&node);
        for &c in &consumers[r] {
            let consumer = &mut graph.node[c];
            let mut moved_controls = false;
            let mut new_inputs = Vec::with_capacity(consumer.input.len());
            let mut new_controls = Vec::new();
            for input in &consumer.input {
                let parsed = InputRef::parse(input);
                if parsed.node != node.name {
                    if parsed.control {
                        new_controls.push(input.clone());
                    } else {
                        new_inputs.push(input.clone());
                    }
                    continue;
                }
                moved_controls = true;
                if parsed.control {
                    // ^R -> ^X for every data producer X.
                    new_controls.extend(data.iter().map(|d| format!("^{}", graph::node_name(d))));
                } else {
                    let source = data
                        .get(parsed.port as usize)
                        .or(data.first())
                        .cloned()
                        .unwrap_or_default();
                    new_inputs.push(source);
                }
            }
            if moved_controls {
                new_controls.extend(controls.iter().cloned());
            }
            let mut seen = HashSet::new();
            new_controls.retain(|c| {
                seen.insert(c.clone())
                    && !new_inputs
                        .iter()
                        .any(|i| graph::node_name(i) == graph::node_name(c))
            });
            new_inputs.extend(new_controls);
            consumer.input = new_inputs;
        }
    }
    let old = std::mem::take(&mut graph.node);
    graph.node = old
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !removed.contains(i))
        .map(|(_, n)| n)
        .collect();
    true
}
