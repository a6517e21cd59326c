//! Helpers for transforms that rewrite subgraphs: a name index with use counts built once per
//! sweep, Const values, unique names, and Const node construction.

use std::collections::{HashMap, HashSet};

use crate::graph::attrs;
use crate::graph::InputRef;
use crate::proto::{attr_value, AttrValue, GraphDef, NodeDef, TensorProto};
use crate::tensor::Tensor;

/// A snapshot of a graph's names and how often each node is read.
pub struct Uses {
    index: HashMap<String, usize>,
    uses: Vec<usize>,
    /// Data (non-control) reads per node.
    data_uses: Vec<usize>,
    /// Outputs other than 0 that something reads, per node.
    high_ports: Vec<bool>,
}

impl Uses {
    pub fn new(graph: &GraphDef) -> Self {
        let index = crate::graph::owned_name_index(graph);
        let mut uses = vec![0; graph.node.len()];
        let mut data_uses = vec![0; graph.node.len()];
        let mut high_ports = vec![false; graph.node.len()];
        for node in &graph.node {
            for input in &node.input {
                let parsed = InputRef::parse(input);
                if let Some(&p) = index.get(parsed.node) {
                    uses[p] += 1;
                    if !parsed.control {
                        data_uses[p] += 1;
                    }
                    high_ports[p] |= parsed.port > 0;
                }
            }
        }
        Uses {
            index,
            uses,
            data_uses,
            high_ports,
        }
    }

    /// Index of the node producing `input` (any spelling), if it exists.
    pub fn producer(&self, input: &str) -> Option<usize> {
        self.index.get(InputRef::parse(input).node).copied()
    }

    /// How many input entries (data and control) read node `i`.
    pub fn count(&self, i: usize) -> usize {
        self.uses.get(i).copied().unwrap_or(0)
    }

    /// How many data inputs (control edges not counted) read node `i`.
    pub fn data_count(&self, i: usize) -> usize {
        self.data_uses.get(i).copied().unwrap_or(0)
    }

    /// Whether anything reads an output of node `i` other than output 0.
    pub fn reads_other_outputs(&self, i: usize) -> bool {
        self.high_ports.get(i).copied().unwrap_or(false)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

/// Renames node `old` to `new` and every input that refers to it, keeping ports and control
/// markers. The caller checks that `new` is free.
pub fn rename_node(graph: &mut GraphDef, old: &str, new: &str) {
    for node in &mut graph.node {
        if node.name == old {
            node.name = new.to_string();
        }
        for input in &mut node.input {
            let parsed = InputRef::parse(input);
            if parsed.node == old {
                *input = InputRef {
                    node: new,
                    ..parsed
                }
                .to_string();
            }
        }
    }
}

/// The value of a Const node.
pub fn const_value(node: &NodeDef) -> Option<Tensor> {
    if node.op != "Const" {
        return None;
    }
    Tensor::from_proto(attrs::tensor(node, "value")?).ok()
}

/// The data inputs of `node` (control inputs skipped).
pub fn data_inputs(node: &NodeDef) -> Vec<&str> {
    node.input
        .iter()
        .filter(|i| !i.starts_with('^'))
        .map(String::as_str)
        .collect()
}

/// The control inputs (`^name`) of `node`, in order.
pub fn control_inputs(node: &NodeDef) -> Vec<String> {
    node.input
        .iter()
        .filter(|i| i.starts_with('^'))
        .cloned()
        .collect()
}

/// `base`, or `base_1`, `base_2`, ... whichever is not taken; the result is reserved.
pub fn unique_name(base: &str, taken: &mut HashSet<String>) -> String {
    let mut candidate = base.to_string();
    let mut k = 1;
    while taken.contains(&candidate) {
        candidate = format!("{base}_{k}");
        k += 1;
    }
    taken.insert(candidate.clone());
    candidate
}

/// A Const node holding `value`.
pub fn const_node(name: String, device: String, value: &Tensor) -> NodeDef {
    let mut node = NodeDef {
        name,
        op: "Const".into(),
        device,
        ..Default::default()
    };
    set_const_value(&mut node, value);
    node
}

/// A Const node holding `proto`, with `proto.dtype` as its dtype: the same node as
/// [`const_node`] gives for a tensor whose [`Tensor::to_proto`] is `proto`, without decoding.
pub fn const_node_from_proto(name: String, device: String, proto: TensorProto) -> NodeDef {
    let mut node = NodeDef {
        name,
        op: "Const".into(),
        device,
        ..Default::default()
    };
    set_const_proto(&mut node, proto);
    node
}

/// Replaces the value of Const node `node` in place.
pub fn set_const_value(node: &mut NodeDef, value: &Tensor) {
    set_const_proto(node, value.to_proto());
}

/// Replaces the value of Const node `node` with `proto` (and its dtype with `proto.dtype`).
pub fn set_const_proto(node: &mut NodeDef, proto: TensorProto) {
    node.attr.insert(
        "dtype".into(),
        AttrValue {
            value: Some(attr_value::Value::Type(proto.dtype)),
        },
    );
    node.attr.insert(
        "value".into(),
        AttrValue {
            value: Some(attr_value::Value::Tensor(Box::new(proto))),
        },
    );
}

/// Staged changes of one sweep: nodes to drop and Const nodes to insert before a node.
#[derive(Default)]
pub struct Edits {
    pub touched: HashSet<usize>,
    pub removed: HashSet<usize>,
    pub inserts: HashMap<usize, Vec<NodeDef>>,
    pub taken: HashSet<String>,
    /// Names that must survive even when nothing reads them.
    pub protected: HashSet<String>,
}

impl Edits {
    pub fn new(graph: &GraphDef, protected: &HashSet<String>) -> Self {
        Edits {
            taken: graph.node.iter().map(|n| n.name.clone()).collect(),
            protected: protected.clone(),
            ..Default::default()
        }
    }

    pub fn free(&self, nodes: &[usize]) -> bool {
        nodes.iter().all(|i| !self.touched.contains(i))
    }

    pub fn touch(&mut self, nodes: &[usize]) {
        self.touched.extend(nodes.iter().copied());
    }

    /// Gives input `slot` of `consumer` the value `value`: in place if `constant` has no other
    /// reader, else through a new Const inserted before the consumer.
    pub fn set_input_value(
        &mut self,
        graph: &mut GraphDef,
        uses: &Uses,
        consumer: usize,
        slot: usize,
        constant: usize,
        value: &Tensor,
    ) {
        self.set_input_proto(graph, uses, consumer, slot, constant, value.to_proto());
    }

    /// [`Edits::set_input_value`] with the value already encoded.
    pub fn set_input_proto(
        &mut self,
        graph: &mut GraphDef,
        uses: &Uses,
        consumer: usize,
        slot: usize,
        constant: usize,
        proto: TensorProto,
    ) {
        // Control edges read no value, so only data readers force a copy.
        if uses.data_count(constant) == 1 {
            if let Some(node) = graph.node.get_mut(constant) {
                set_const_proto(node, proto);
            }
            self.touched.insert(constant);
            return;
        }
        let base = graph
            .node
            .get(constant)
            .map(|n| format!("{}_bn_folded", n.name))
            .unwrap_or_default();
        let device = graph
            .node
            .get(consumer)
            .map(|n| n.device.clone())
            .unwrap_or_default();
        let name = unique_name(&base, &mut self.taken);
        self.inserts
            .entry(consumer)
            .or_default()
            .push(const_node_from_proto(name.clone(), device, proto));
        if let Some(input) = graph
            .node
            .get_mut(consumer)
            .and_then(|n| n.input.get_mut(slot))
        {
            *input = name;
        }
    }

    /// Adds a new Const before `consumer` and returns its name.
    pub fn new_const(
        &mut self,
        graph: &GraphDef,
        consumer: usize,
        base: &str,
        value: &Tensor,
    ) -> String {
        let name = unique_name(base, &mut self.taken);
        let device = graph
            .node
            .get(consumer)
            .map(|n| n.device.clone())
            .unwrap_or_default();
        self.inserts
            .entry(consumer)
            .or_default()
            .push(const_node(name.clone(), device, value));
        name
    }

    /// Applies removals and insertions, keeping the original order otherwise, and drops the
    /// touched Consts that nothing reads any more (parameters folded into other constants).
    pub fn finish(mut self, graph: &mut GraphDef) -> bool {
        let changed = !self.touched.is_empty();
        let touched_consts: HashSet<String> = self
            .touched
            .iter()
            .filter_map(|&i| graph.node.get(i))
            .filter(|n| n.op == "Const" && !self.protected.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        let old = std::mem::take(&mut graph.node);
        for (i, node) in old.into_iter().enumerate() {
            if let Some(new) = self.inserts.remove(&i) {
                graph.node.extend(new);
            }
            if !self.removed.contains(&i) {
                graph.node.push(node);
            }
        }
        if !touched_consts.is_empty() {
            let read: HashSet<String> = graph
                .node
                .iter()
                .flat_map(|n| n.input.iter())
                .map(|input| InputRef::parse(input).node.to_string())
                .collect();
            graph
                .node
                .retain(|n| !touched_consts.contains(&n.name) || read.contains(&n.name));
        }
        changed
    }
}

/// Removes the `candidates` that nothing reads (unprotected Consts and pure ops: a rewrite
/// bypassed them), then the producers only they read, and so on.
pub fn remove_unread(
    graph: &mut GraphDef,
    mut candidates: HashSet<String>,
    protected: &HashSet<String>,
) {
    while !candidates.is_empty() {
        let read: HashSet<&str> = graph
            .node
            .iter()
            .flat_map(|n| n.input.iter())
            .map(|i| crate::graph::node_name(i))
            .collect();
        let gone: HashMap<String, Vec<String>> = graph
            .node
            .iter()
            .filter(|n| {
                candidates.contains(&n.name)
                    && !read.contains(n.name.as_str())
                    && !protected.contains(&n.name)
                    && (n.op == "Const" || crate::graph::ops::is_pure(&n.op))
            })
            .map(|n| {
                let inputs = n
                    .input
                    .iter()
                    .map(|i| crate::graph::node_name(i).to_string());
                (n.name.clone(), inputs.collect())
            })
            .collect();
        if gone.is_empty() {
            return;
        }
        graph.node.retain(|n| !gone.contains_key(&n.name));
        candidates = gone.into_values().flatten().collect();
    }
}
