//! Helpers for transforms that rewrite subgraphs: a name index with use counts built once per
//! sweep, Const values, unique names, and Const node construction.

use std::collections::{HashMap, HashSet};

use crate::eval::attrs;
use crate::graph::InputRef;
use crate::proto::{attr_value, AttrValue, GraphDef, NodeDef};
use crate::tensor::Tensor;

/// A snapshot of a graph's names and how often each node is read.
pub struct Uses {
    index: HashMap<String, usize>,
    uses: Vec<usize>,
    /// Outputs other than 0 that something reads, per node.
    high_ports: Vec<bool>,
}

impl Uses {
    pub fn new(graph: &GraphDef) -> Self {
        let index: HashMap<String, usize> = graph
            .node
            .iter()
            .enumerate()
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let mut uses = vec![0; graph.node.len()];
        let mut high_ports = vec![false; graph.node.len()];
        for node in &graph.node {
            for input in &node.input {
                let parsed = InputRef::parse(input);
                if let Some(&p) = index.get(parsed.node) {
                    uses[p] += 1;
                    high_ports[p] |= parsed.port > 0;
                }
            }
        }
        Uses {
            index,
            uses,
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

    /// Whether anything reads an output of node `i` other than output 0.
    pub fn reads_other_outputs(&self, i: usize) -> bool {
        self.high_ports.get(i).copied().unwrap_or(false)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
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
    node.attr.insert(
        "dtype".into(),
        AttrValue {
            value: Some(attr_value::Value::Type(value.dtype() as i32)),
        },
    );
    node.attr.insert(
        "value".into(),
        AttrValue {
            value: Some(attr_value::Value::Tensor(value.to_proto())),
        },
    );
    node
}

/// Replaces the value of Const node `node` in place.
pub fn set_const_value(node: &mut NodeDef, value: &Tensor) {
    node.attr.insert(
        "dtype".into(),
        AttrValue {
            value: Some(attr_value::Value::Type(value.dtype() as i32)),
        },
    );
    node.attr.insert(
        "value".into(),
        AttrValue {
            value: Some(attr_value::Value::Tensor(value.to_proto())),
        },
    );
}
