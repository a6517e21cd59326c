//! `merge_duplicate_nodes`: merges nodes that are identical — same op, inputs, device and
//! attributes — keeping the first and pointing the others' readers at it, until nothing more
//! merges (merging two constants can make their consumers identical).
//!
//! Differences from TensorFlow's transform, both deliberate: nodes are compared in full (their
//! encoded bytes with the name left out), not by a hash alone; and only ops known to be
//! stateless merge — Const and the ops graphopt's evaluator implements — so two random-number
//! or variable nodes are never fused into one. Names in --inputs/--outputs survive.

use std::collections::{HashMap, HashSet};

use prost::Message;

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph::InputRef;
use crate::proto::{GraphDef, NodeDef};

pub struct MergeDuplicateNodes;

impl Transform for MergeDuplicateNodes {
    fn name(&self) -> &str {
        "merge_duplicate_nodes"
    }

    fn summary(&self) -> &str {
        "merge identical stateless nodes (compared in full), keeping the first"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let protected = context.protected_names();
        while merge_once(graph, &protected) {}
        Ok(())
    }
}

fn mergeable(node: &NodeDef) -> bool {
    node.op == "Const"
        || (node.op != "Placeholder" && crate::eval::kernels::lookup(&node.op).is_some())
}

/// The node's content without its name: equal keys mean equal nodes.
fn content_key(node: &NodeDef) -> Vec<u8> {
    NodeDef {
        name: String::new(),
        ..node.clone()
    }
    .encode_to_vec()
}

fn merge_once(graph: &mut GraphDef, protected: &HashSet<String>) -> bool {
    let mut first_of: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut replace: HashMap<String, String> = HashMap::new();
    let mut removed = HashSet::new();
    for (i, node) in graph.node.iter().enumerate() {
        if !mergeable(node) {
            continue;
        }
        let key = content_key(node);
        match first_of.get(&key) {
            None => {
                first_of.insert(key, i);
            }
            Some(&keep) => {
                let (kept, dropped) = (&graph.node[keep], node);
                if protected.contains(&dropped.name) {
                    if protected.contains(&kept.name) {
                        continue;
                    }
                    // Keep the protected name: the earlier node goes instead.
                    replace.insert(kept.name.clone(), dropped.name.clone());
                    removed.insert(keep);
                    first_of.insert(key, i);
                } else {
                    replace.insert(dropped.name.clone(), kept.name.clone());
                    removed.insert(i);
                }
            }
        }
    }
    if replace.is_empty() {
        return false;
    }
    let old = std::mem::take(&mut graph.node);
    for (i, mut node) in old.into_iter().enumerate() {
        if removed.contains(&i) {
            continue;
        }
        for input in &mut node.input {
            let parsed = InputRef::parse(input);
            if let Some(target) = replace.get(parsed.node) {
                *input = InputRef {
                    node: target,
                    ..parsed
                }
                .to_string();
            }
        }
        // Two control inputs may now name the same node.
        let mut seen = HashSet::new();
        node.input
            .retain(|input| !input.starts_with('^') || seen.insert(input.clone()));
        graph.node.push(node);
    }
    true
}
