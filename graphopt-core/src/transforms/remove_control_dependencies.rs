//! `remove_control_dependencies`: drops the `^node` control inputs of the main graph.
//!
//! Difference from TensorFlow's transform, deliberate: a node with no data inputs (a Const
//! or NoOp) keeps its control inputs from inside a while loop or `tf.cond` branch. Those edges
//! are what place it in the loop's frame or the branch; without them TensorFlow's version
//! leaves loop-body constants outside their loop, and the graph no longer runs.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph::InputRef;
use crate::proto::GraphDef;

pub struct RemoveControlDependencies;

impl Transform for RemoveControlDependencies {
    fn name(&self) -> &str {
        "remove_control_dependencies"
    }

    fn summary(&self) -> &str {
        "drop control (^node) inputs, except those that place a constant inside a loop or branch"
    }

    fn apply(&self, graph: &mut GraphDef, _context: &TransformContext<'_>) -> Result<()> {
        let framed = inside_control_flow(graph);
        for node in &mut graph.node {
            let source_like = node.input.iter().all(|i| i.starts_with('^'));
            node.input.retain(|input| {
                let parsed = InputRef::parse(input);
                !parsed.control || (source_like && framed.contains(parsed.node))
            });
        }
        Ok(())
    }
}

/// Names of nodes that run inside a loop frame or a cond branch: everything downstream of an
/// Enter or Switch, up to the Exit or the branch-joining Merge.
fn inside_control_flow(graph: &GraphDef) -> HashSet<String> {
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for input in &node.input {
            consumers
                .entry(InputRef::parse(input).node)
                .or_default()
                .push(i);
        }
    }
    let is_loop_merge = |i: usize| {
        graph.node[i].input.iter().any(|input| {
            let producer = InputRef::parse(input).node;
            graph
                .node
                .iter()
                .any(|n| n.name == producer && n.op == "NextIteration")
        })
    };
    let mut framed = HashSet::new();
    let mut queue: VecDeque<usize> = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.op.as_str(), "Enter" | "RefEnter" | "Switch" | "RefSwitch"))
        .map(|(i, _)| i)
        .collect();
    while let Some(i) = queue.pop_front() {
        let node = &graph.node[i];
        if !framed.insert(node.name.clone()) {
            continue;
        }
        for &c in consumers
            .get(node.name.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let op = graph.node[c].op.as_str();
            let leaves = matches!(op, "Exit" | "RefExit")
                || (matches!(op, "Merge" | "RefMerge") && !is_loop_merge(c));
            if !leaves {
                queue.push_back(c);
            }
        }
    }
    framed
}
