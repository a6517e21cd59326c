//! Logging inserted into a graph: a Print after every matching node that something reads, so
//! running the graph logs its values (the `insert_logging` transform; what
//! `freeze_requantization_ranges` consumes).
//!
//! Difference from TensorFlow's transform, deliberate: the Print's `U` lists the types of the
//! tensors it actually prints (the outputs that are read); TensorFlow lists all the node's
//! output types, which can disagree with its inputs.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::graph::attrs;
use crate::graph::InputRef;
use crate::proto::{attr_value, AttrValue, DataType, GraphDef, NodeDef};

/// Which nodes get a Print, and what it prints.
#[derive(Debug, Clone, Default)]
pub struct Logging<'a> {
    /// Ops whose nodes match (empty: any op).
    pub ops: &'a [String],
    /// Name prefixes that match (empty: any name).
    pub prefixes: &'a [String],
    /// Start the message with the node's op.
    pub show_op: bool,
    /// Start the message with the Print's name.
    pub show_name: bool,
    /// The message after those.
    pub message: &'a str,
    /// Print's `first_n`: how many runs log (-1: all).
    pub first_n: i64,
    /// Print's `summarize`: how many values of each tensor.
    pub summarize: i64,
}

/// Puts a Print after every node `logging` matches whose output 0 something reads; the
/// readers of output 0 read the Print instead. Every Print (and its entry in the rewiring) is
/// asked of the budget as it is made, since it can double the graph: a refusal is an error
/// naming the node it would log, and leaves the graph unchanged.
pub fn insert_logging(graph: &mut GraphDef, logging: &Logging<'_>) -> crate::Result<()> {
    let Logging {
        ops,
        prefixes,
        show_op,
        show_name,
        message,
        first_n,
        summarize,
    } = *logging;
    let mut read_ports: HashMap<String, BTreeSet<u32>> = HashMap::new();
    for node in &graph.node {
        for input in &node.input {
            let parsed = InputRef::parse(input);
            if !parsed.control {
                read_ports
                    .entry(parsed.node.to_string())
                    .or_default()
                    .insert(parsed.port);
            }
        }
    }
    let mut prints = Vec::new();
    let mut rewire: HashMap<String, String> = HashMap::new();
    // Names in use: a second insert_logging (or a node named like a Print) must not give
    // two nodes one name.
    let mut taken: HashSet<String> = graph.node.iter().map(|n| n.name.clone()).collect();
    for node in &graph.node {
        let wanted = (ops.is_empty() || ops.contains(&node.op))
            && (prefixes.is_empty() || prefixes.iter().any(|p| node.name.starts_with(p.as_str())));
        let Some(ports) = read_ports.get(&node.name) else {
            continue;
        };
        if !wanted || !ports.contains(&0) {
            continue;
        }
        let dtype = output_type(node);
        let mut name = format!("{}__print__", node.name);
        let mut suffix = 1;
        while taken.contains(&name) {
            name = format!("{}__print__{suffix}", node.name);
            suffix += 1;
        }
        taken.insert(name.clone());
        let mut text = String::new();
        if show_op {
            text.push_str(&format!(";{};", node.op));
        }
        if show_name {
            text.push_str(&format!(";{};", name));
        }
        text.push_str(message);
        let mut print = NodeDef {
            name: name.clone(),
            op: "Print".into(),
            device: node.device.clone(),
            ..Default::default()
        };
        print.input.push(node.name.clone());
        let mut types = Vec::new();
        for &port in ports {
            print.input.push(if port == 0 {
                node.name.clone()
            } else {
                format!("{}:{port}", node.name)
            });
            types.push(dtype as i32);
        }
        let set = |p: &mut NodeDef, k: &str, v: attr_value::Value| {
            p.attr.insert(k.into(), AttrValue { value: Some(v) });
        };
        set(&mut print, "T", attr_value::Value::Type(dtype as i32));
        set(
            &mut print,
            "U",
            attr_value::Value::List(Box::new(attr_value::ListValue {
                r#type: types,
                ..Default::default()
            })),
        );
        set(
            &mut print,
            "message",
            attr_value::Value::S(bytes::Bytes::from(text.into_bytes())),
        );
        set(&mut print, "first_n", attr_value::Value::I(first_n));
        set(&mut print, "summarize", attr_value::Value::I(summarize));
        // The Print, and the rewiring entry (its name and the node's) kept until the end.
        let rewiring = name.len() + node.name.len() + 2 * std::mem::size_of::<String>();
        let memory = crate::graph::node_memory(&print).saturating_add(rewiring as u64);
        crate::budget::alloc(memory).map_err(|source| crate::Error::Budget {
            node: node.name.clone(),
            source,
        })?;
        rewire.insert(node.name.clone(), name);
        prints.push(print);
    }
    for node in &mut graph.node {
        for input in &mut node.input {
            let parsed = InputRef::parse(input);
            if !parsed.control && parsed.port == 0 {
                if let Some(print) = rewire.get(parsed.node) {
                    *input = print.clone();
                }
            }
        }
    }
    graph.node.extend(prints);
    Ok(())
}

/// The dtype of output 0, from the attributes TensorFlow ops use for it.
fn output_type(node: &NodeDef) -> DataType {
    ["T", "dtype", "DstT", "out_type", "Tout"]
        .iter()
        .find_map(|a| attrs::dtype(node, a))
        .unwrap_or(DataType::DtFloat)
}
