//! Splicing nodes out: [`remove_nodes`] removes nodes of given op types, wiring their readers
//! to their inputs (the `remove_nodes` transform, and the leftover removal of the deployment
//! pipelines).
//!
//! Safe around control flow, unlike TensorFlow's transform:
//! - a node fed by a Switch that other nodes use as a control anchor (`^node`) is kept: it is
//!   how a `tf.cond` branch or loop body pins its constants to the taken branch, and a control
//!   edge from the Switch itself is live on both branches;
//! - a node with control inputs that feeds a Merge or Enter is kept, since moving those control
//!   inputs onto it would tie iterations or frames together;
//! - the removed node's control inputs move to its readers instead of being dropped;
//! - a node read through an output other than 0 is kept (IdentityN maps each output to its
//!   input instead);
//! - protected nodes are kept.

use std::collections::HashSet;

use crate::graph::edit::{control_inputs, data_inputs, Uses};
use crate::graph::{self, InputRef, NameMap, NameSet};
use crate::proto::GraphDef;

// Bypassed-node removal lives in the graph layer (`graph::edit`), re-exported for the rewrites
// that use it from here.
pub(crate) use crate::graph::edit::mark_unread;
pub use crate::graph::edit::remove_unread;

/// Removes nodes whose op is in `ops` and that have at most `max_inputs` data inputs (IdentityN
/// any number), until none is left that can be removed safely; `protected` nodes stay.
pub fn remove_nodes(
    graph: &mut GraphDef,
    ops: &HashSet<&str>,
    max_inputs: usize,
    protected: &HashSet<String>,
) {
    while splice_once(graph, ops, max_inputs, protected) {}
}

/// One pass: removes every removable node whose neighbours are not being removed in the same
/// pass; true if anything was removed.
fn splice_once(
    graph: &mut GraphDef,
    ops: &HashSet<&str>,
    max_inputs: usize,
    protected: &HashSet<String>,
) -> bool {
    let uses = Uses::new(graph);
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); graph.node.len()];
    // Nodes something reads through a control edge (an anchor), found in the same pass: asking
    // each consumer's whole input list per removable node is quadratic (an AddN of 60000
    // Identities).
    let mut control_read = vec![false; graph.node.len()];
    for (c, node) in graph.node.iter().enumerate() {
        for input in &node.input {
            if let Some(p) = uses.producer(input) {
                consumers[p].push(c);
                if input.starts_with('^') {
                    control_read[p] = true;
                }
            }
        }
    }
    let mut removed = NameSet::default();
    let mut blocked = NameSet::default();
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
        let is_anchor = control_read[i];
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
    rewire_around(graph, &removed);
    true
}

/// Points every reader of a node in `removed` at that node's inputs (a data read of port k at
/// its k-th data input, or its first; a control read at each data producer), moves the removed
/// node's control inputs to its data readers, and drops the removed nodes. Each input list is
/// rewritten once, so the cost is linear in the edges.
fn rewire_around(graph: &mut GraphDef, removed: &NameSet<usize>) {
    struct Splice {
        data: Vec<String>,
        controls: Vec<String>,
    }
    let splices: NameMap<String, Splice> = removed
        .iter()
        .map(|&r| {
            let node = &graph.node[r];
            let splice = Splice {
                data: data_inputs(node).iter().map(|s| s.to_string()).collect(),
                controls: control_inputs(node),
            };
            (node.name.clone(), splice)
        })
        .collect();
    for (c, consumer) in graph.node.iter_mut().enumerate() {
        if removed.contains(&c)
            || !consumer
                .input
                .iter()
                .any(|i| splices.contains_key(graph::node_name(i)))
        {
            continue;
        }
        let mut new_inputs = Vec::with_capacity(consumer.input.len());
        let mut new_controls = Vec::new();
        // Control inputs move in the order their removed nodes are read, so runs agree (the
        // set keeps the membership test constant-time for consumers of thousands of them).
        let mut moved: Vec<&str> = Vec::new();
        let mut moved_set: NameSet<&str> = NameSet::default();
        for input in &consumer.input {
            let parsed = InputRef::parse(input);
            let Some(splice) = splices.get(parsed.node) else {
                if parsed.control {
                    new_controls.push(input.clone());
                } else {
                    new_inputs.push(input.clone());
                }
                continue;
            };
            if moved_set.insert(parsed.node) {
                moved.push(parsed.node);
            }
            if parsed.control {
                // ^R -> ^X for every data producer X.
                new_controls.extend(
                    splice
                        .data
                        .iter()
                        .map(|d| format!("^{}", graph::node_name(d))),
                );
            } else {
                let source = splice
                    .data
                    .get(parsed.port as usize)
                    .or(splice.data.first())
                    .cloned()
                    .unwrap_or_default();
                new_inputs.push(source);
            }
        }
        for name in moved {
            if let Some(splice) = splices.get(name) {
                new_controls.extend(splice.controls.iter().cloned());
            }
        }
        let data_producers: NameSet<&str> =
            new_inputs.iter().map(|i| graph::node_name(i)).collect();
        let mut seen = NameSet::default();
        new_controls.retain(|c| {
            let name = graph::node_name(c);
            !data_producers.contains(name) && seen.insert(name.to_string())
        });
        new_inputs.extend(new_controls);
        consumer.input = new_inputs;
    }
    let old = std::mem::take(&mut graph.node);
    graph.node = old
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !removed.contains(i))
        .map(|(_, n)| n)
        .collect();
}
