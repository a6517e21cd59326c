//! Training leftovers: [`remove_training_nodes`] removes what training leaves in a graph
//! that inference does not need, keeping every result the same.
//!
//! 1. Training-flag placeholders — bool Placeholder or PlaceholderWithDefault whose name
//!    contains a `pin` value (the transform's default is `keras_learning_phase`) — become Const `false`.
//! 2. Assert nodes go, with the control edges to them.
//! 3. `tf.cond`s whose predicate is now constant are resolved: the taken branch is wired
//!    through, the other branch is deleted, and each Merge becomes an Identity of its live
//!    input. Dropout behind a learning-phase cond disappears this way.
//! 4. Control edges from nodes that cannot have side effects (nothing stateful among them or
//!    their ancestors) are dropped, except those that place a source node inside a loop or
//!    branch. Guards like the one `tf.debugging.Assert` builds are then unreferenced.
//!
//! Used by the `remove_training_nodes` transform. Run `strip_unused_nodes` (or the standard
//! pipeline) afterwards to delete what became
//! unreachable. Queue and iterator input pipelines are cut by `strip_unused_nodes` at the
//! declared --inputs.

use std::collections::{HashMap, HashSet};

use crate::graph::edit::{const_node, const_value, data_inputs};
use crate::graph::{self, InputRef};
use crate::proto::{DataType, GraphDef, NodeDef};
use crate::rewrite::leftovers::drop_pure_control_edges;
use crate::tensor::{Data, Tensor};

/// Pins the training flags named by `pins` to false, drops Asserts, resolves constant
/// `tf.cond`s and drops control edges that order nothing; `protected` nodes keep their names.
pub fn remove_training_nodes(graph: &mut GraphDef, pins: &[String], protected: &HashSet<String>) {
    pin_flags(graph, pins, protected);
    remove_asserts(graph);
    resolve_constant_conds(graph, protected);
    drop_pure_control_edges(graph);
}

fn bool_const(name: &str, value: bool) -> NodeDef {
    const_node(
        name.to_string(),
        String::new(),
        &Tensor::from_data(Data::Bool(ndarray::arr0(value).into_dyn())),
    )
}

fn pin_flags(graph: &mut GraphDef, pins: &[String], protected: &HashSet<String>) {
    for node in &mut graph.node {
        let is_flag = matches!(node.op.as_str(), "Placeholder" | "PlaceholderWithDefault")
            && crate::graph::attrs::dtype(node, "dtype") == Some(DataType::DtBool)
            && pins.iter().any(|p| node.name.contains(p.as_str()))
            && !protected.contains(&node.name);
        if is_flag {
            let device = std::mem::take(&mut node.device);
            *node = NodeDef {
                device,
                ..bool_const(&node.name, false)
            };
        }
    }
}

fn remove_asserts(graph: &mut GraphDef) {
    let asserts: HashSet<String> = graph
        .node
        .iter()
        .filter(|n| n.op == "Assert")
        .map(|n| n.name.clone())
        .collect();
    graph.node.retain(|n| !asserts.contains(&n.name));
    for node in &mut graph.node {
        node.input
            .retain(|i| !(i.starts_with('^') && asserts.contains(InputRef::parse(i).node)));
    }
}

/// The constant bool behind `input`, following Identity chains. `known` keeps the answer for
/// every node walked: Switches sharing one long chain of Identities walk it once between them
/// (once each is quadratic).
fn constant_predicate(
    graph: &GraphDef,
    index: &crate::graph::NameMap<String, usize>,
    known: &mut HashMap<usize, Option<bool>>,
    input: &str,
) -> Option<bool> {
    let mut current = index.get(InputRef::parse(input).node).copied()?;
    let mut path = Vec::new();
    let value = loop {
        if let Some(&value) = known.get(&current) {
            break value;
        }
        let Some(node) = graph.node.get(current) else {
            break None;
        };
        match node.op.as_str() {
            "Const" => {
                break match const_value(node).as_ref().map(Tensor::data) {
                    Some(Data::Bool(a)) if a.len() == 1 => a.iter().next().copied(),
                    _ => None,
                };
            }
            "Identity" => {
                // No answer while on the path: a cycle of Identities has none.
                known.insert(current, None);
                path.push(current);
                let next = data_inputs(node)
                    .first()
                    .and_then(|i| index.get(InputRef::parse(i).node).copied());
                match next {
                    Some(next) => current = next,
                    None => break None,
                }
            }
            _ => break None,
        }
    };
    for i in path {
        known.insert(i, value);
    }
    value
}

fn resolve_constant_conds(graph: &mut GraphDef, protected: &HashSet<String>) {
    let index = crate::graph::owned_name_index(graph);
    // Which Switch outputs are dead, and what a live output stands for.
    let mut dead_ports: HashSet<(String, u32)> = HashSet::new();
    let mut live_source: HashMap<String, String> = HashMap::new();
    let mut known = HashMap::new();
    for node in graph.node.iter().filter(|n| n.op == "Switch") {
        let inputs = data_inputs(node);
        let (Some(data), Some(pred)) = (inputs.first(), inputs.get(1)) else {
            continue;
        };
        let Some(value) = constant_predicate(graph, &index, &mut known, pred) else {
            continue;
        };
        dead_ports.insert((node.name.clone(), u32::from(!value)));
        live_source.insert(
            format!("{}:{}", node.name, u32::from(value)),
            (*data).to_string(),
        );
    }
    if dead_ports.is_empty() {
        return;
    }
    let order = graph::execution_order(graph).unwrap_or_else(|_| (0..graph.node.len()).collect());
    // Deadness spreads forward; a Merge is dead only when all its inputs are, and it may be
    // visited before its last input is known, so repeat until nothing changes.
    let mut dead: HashSet<String> = HashSet::new();
    let mut merges: HashMap<String, (String, usize)> = HashMap::new();
    for _ in 0..=graph.node.len() {
        let before = dead.len();
        merges.clear();
        for &i in &order {
            let node = &graph.node[i];
            let is_dead_input = |input: &str| {
                let parsed = InputRef::parse(input);
                dead.contains(parsed.node)
                    || (!parsed.control
                        && dead_ports.contains(&(parsed.node.to_string(), parsed.port)))
            };
            if node.op == "Merge" {
                let all = data_inputs(node);
                let live: Vec<(usize, &str)> = all
                    .iter()
                    .copied()
                    .enumerate()
                    .filter(|(_, i)| !is_dead_input(i))
                    .collect();
                match live.as_slice() {
                    [] => {
                        dead.insert(node.name.clone());
                    }
                    [(k, input)] if live.len() < all.len() => {
                        merges.insert(node.name.clone(), ((*input).to_string(), *k));
                    }
                    _ => {}
                }
            } else if node.input.iter().any(|input| is_dead_input(input)) {
                dead.insert(node.name.clone());
            }
        }
        if dead.len() == before {
            break;
        }
    }
    // A protected node (an output) that only a dead branch computes would be dead at run time
    // too; removing it would remove the output, keeping it would leave it reading nothing:
    // such conds stay as they are.
    if protected.iter().any(|name| dead.contains(name)) {
        return;
    }
    let old = std::mem::take(&mut graph.node);
    for mut node in old {
        if dead.contains(&node.name) {
            continue;
        }
        if let Some((input, k)) = merges.get(&node.name) {
            let controls = crate::graph::edit::control_inputs(&node);
            let t = node.attr.get("T").cloned();
            let mut identity = NodeDef {
                name: node.name.clone(),
                op: "Identity".into(),
                device: node.device.clone(),
                ..Default::default()
            };
            identity.input.push(input.clone());
            identity.input.extend(controls);
            if let Some(t) = t {
                identity.attr.insert("T".into(), t);
            }
            graph.node.push(identity);
            // value_index readers get the constant index.
            let mut index_node = const_node(
                format!("{}/value_index", node.name),
                node.device.clone(),
                &Tensor::from_data(Data::I32(ndarray::arr0(*k as i32).into_dyn())),
            );
            index_node.input.push(format!("^{}", node.name));
            graph.node.push(index_node);
            continue;
        }
        for input in &mut node.input {
            let parsed = InputRef::parse(input);
            if parsed.control {
                continue;
            }
            if let Some(source) = live_source.get(&format!("{}:{}", parsed.node, parsed.port)) {
                *input = source.clone();
            } else if merges.contains_key(parsed.node) && parsed.port == 1 {
                *input = format!("{}/value_index", parsed.node);
            }
        }
        node.input
            .retain(|i| !(i.starts_with('^') && dead.contains(InputRef::parse(i).node)));
        graph.node.push(node);
    }
    // Unused value_index constants are dropped again.
    let read: HashSet<String> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter())
        .map(|i| InputRef::parse(i).node.to_string())
        .collect();
    graph.node.retain(|n| {
        !(n.name.ends_with("/value_index")
            && merges.contains_key(n.name.trim_end_matches("/value_index"))
            && !read.contains(&n.name))
    });
}
