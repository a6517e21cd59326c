//! Function inlining: a (Stateful)PartitionedCall replaced by its library function's body.
//! Used by the `inline_partitionedcall` transform, by freezing (TF2 SavedModels call through
//! StatefulPartitionedCall) and by the evaluator (functional While/If/Case bodies).
//!
//! For a call `c`: the body's nodes become `c/NODE`; each argument enters through an Identity
//! `c/input/ARG` that also waits for the call's control inputs (via `c/input_control_node`),
//! so ordering is kept; the call itself becomes an IdentityN named `c` over the function's
//! return values, with its control returns as control inputs, so `c:k` and `^c` keep meaning
//! what they meant.
//!
//! Bounded: nesting deeper than [`Limits::max_depth`] is an error (a recursive function), and so
//! is a graph that inlining would grow past [`Limits::max_nodes`] (a function calling itself
//! twice doubles per level) or past the memory [`budget`]: every inlined node
//! is charged before it is added.

use std::collections::HashMap;

use crate::budget::{self, BudgetError};
use crate::graph::InputRef;
use crate::proto::{attr_value, AttrValue, FunctionDef, GraphDef, NodeDef};

/// Why a call could not be inlined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InlineError {
    #[error("call '{call}': {message}")]
    Call { call: String, message: String },
    #[error("calls are nested more than {0} deep; is a function recursive?")]
    TooDeep(usize),
    #[error("inlining would grow the graph past {limit} nodes (at call '{call}'); a function that calls itself several times grows exponentially")]
    TooLarge { limit: usize, call: String },
    #[error("inlining call '{call}': {source}")]
    Budget { call: String, source: BudgetError },
}

/// Bounds for inlining.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rounds of inlining (nesting depth of calls).
    pub max_depth: usize,
    /// Nodes the graph may have after inlining.
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_nodes: 1 << 22,
        }
    }
}

/// The library function a call node calls, if it is a (Stateful)PartitionedCall.
fn callee<'f>(
    node: &NodeDef,
    functions: &HashMap<&str, &'f FunctionDef>,
) -> Option<&'f FunctionDef> {
    if !matches!(
        node.op.as_str(),
        "PartitionedCall" | "StatefulPartitionedCall"
    ) {
        return None;
    }
    match node.attr.get("f").and_then(|a| a.value.as_ref()) {
        Some(attr_value::Value::Func(f)) => functions.get(f.name.as_str()).copied(),
        _ => None,
    }
}

/// Inlines every (Stateful)PartitionedCall of a library function in `graph`, and the calls in
/// the inlined bodies, until none is left. The library is kept.
pub fn inline_all_calls(graph: &mut GraphDef, limits: Limits) -> Result<(), InlineError> {
    use prost::Message as _;
    let size = graph.encoded_len() as u64;
    budget::enter_or_default(|| size, || inline_all_calls_in(graph, limits))
}

fn inline_all_calls_in(graph: &mut GraphDef, limits: Limits) -> Result<(), InlineError> {
    // The bodies are read where they are: the nodes and the library are separate fields.
    let GraphDef {
        node: nodes,
        library,
        ..
    } = graph;
    let functions: HashMap<&str, &FunctionDef> = library
        .iter()
        .flat_map(|l| l.function.iter())
        .filter_map(|f| f.signature.as_ref().map(|s| (s.name.as_str(), f)))
        .collect();
    for _ in 0..limits.max_depth {
        let mut inlined_any = false;
        let old = std::mem::take(nodes);
        let mut count = old.len();
        for node in old {
            match callee(&node, &functions) {
                Some(function) => {
                    // The body's size is known before it is built: refuse a growth past the
                    // node limit without building it.
                    let grown = count.saturating_add(function.node_def.len());
                    if grown > limits.max_nodes {
                        return Err(InlineError::TooLarge {
                            limit: limits.max_nodes,
                            call: node.name.clone(),
                        });
                    }
                    let body = inline_call(&node, function)?;
                    count = count.saturating_add(body.len()).saturating_sub(1);
                    if count > limits.max_nodes {
                        return Err(InlineError::TooLarge {
                            limit: limits.max_nodes,
                            call: node.name.clone(),
                        });
                    }
                    let memory: u64 = body.iter().map(crate::graph::node_memory).sum();
                    budget::alloc(memory).map_err(|source| InlineError::Budget {
                        call: node.name.clone(),
                        source,
                    })?;
                    nodes.extend(body);
                    inlined_any = true;
                }
                None => nodes.push(node),
            }
        }
        if !inlined_any {
            return Ok(());
        }
    }
    Err(InlineError::TooDeep(limits.max_depth))
}

fn identity(name: String, input: String, dtype: Option<AttrValue>) -> NodeDef {
    let mut node = NodeDef {
        name,
        op: "Identity".into(),
        input: vec![input],
        ..Default::default()
    };
    if let Some(t) = dtype {
        node.attr.insert("T".into(), t);
    }
    node
}

fn has_placeholder(value: &AttrValue) -> bool {
    matches!(value.value, Some(attr_value::Value::Placeholder(_)))
}

/// The nodes replacing `call`.
/// The nodes replacing `call`, a call of `function`.
pub fn inline_call(call: &NodeDef, function: &FunctionDef) -> Result<Vec<NodeDef>, InlineError> {
    body_of_call(call, function).map_err(|message| InlineError::Call {
        call: call.name.clone(),
        message,
    })
}

fn body_of_call(call: &NodeDef, function: &FunctionDef) -> Result<Vec<NodeDef>, String> {
    let prefix = &call.name;
    let signature = function
        .signature
        .as_ref()
        .ok_or("function without a signature")?;
    let fname = &signature.name;
    let data = crate::graph::edit::data_inputs(call);
    let controls = crate::graph::edit::control_inputs(call);
    if data.len() != signature.input_arg.len() {
        return Err(format!(
            "'{}' passes {} inputs to '{fname}', which takes {}",
            call.name,
            data.len(),
            signature.input_arg.len()
        ));
    }
    let tin = match call.attr.get("Tin").and_then(|a| a.value.as_ref()) {
        Some(attr_value::Value::List(l)) => l.r#type.clone(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    let control_node = format!("{prefix}/input_control_node");
    if !controls.is_empty() {
        out.push(NodeDef {
            name: control_node.clone(),
            op: "NoOp".into(),
            input: controls.clone(),
            device: call.device.clone(),
            ..Default::default()
        });
    }
    // Arguments enter through Identities that wait for the call's control inputs.
    let mut arg_names: HashMap<&str, String> = HashMap::new();
    for (k, (arg, input)) in signature.input_arg.iter().zip(&data).enumerate() {
        let name = format!("{prefix}/input/{}", arg.name);
        let dtype = tin.get(k).map(|&t| AttrValue {
            value: Some(attr_value::Value::Type(t)),
        });
        let mut node = identity(name.clone(), input.to_string(), dtype);
        node.device = call.device.clone();
        if !controls.is_empty() {
            node.input.push(format!("^{control_node}"));
        }
        out.push(node);
        arg_names.insert(arg.name.as_str(), name);
    }
    let body: HashMap<&str, &NodeDef> = function
        .node_def
        .iter()
        .map(|n| (n.name.as_str(), n))
        .collect();
    // Function notation: `arg`, `node:out_arg:index`, `^node`.
    let translate = |reference: &str| -> Result<String, String> {
        let (control, reference) = match reference.strip_prefix('^') {
            Some(r) => (true, r),
            None => (false, reference),
        };
        let mut parts = reference.split(':');
        let head = parts.next().unwrap_or_default();
        let translated = if let Some(arg) = arg_names.get(head) {
            arg.clone()
        } else if let Some(node) = body.get(head) {
            let port = match (parts.next(), parts.next()) {
                (Some(arg), Some(index)) => {
                    let index: usize = index
                        .parse()
                        .map_err(|_| format!("bad reference '{reference}' in '{fname}'"))?;
                    crate::graph::ops::output_port(node, arg, index)
                        .ok_or_else(|| format!("'{reference}' in '{fname}' names no output"))?
                }
                (Some(index), None) => {
                    let port: usize = index
                        .parse()
                        .map_err(|_| format!("bad reference '{reference}' in '{fname}'"))?;
                    if crate::graph::ops::output_count(node).is_some_and(|count| port >= count) {
                        return Err(format!("'{reference}' in '{fname}' names no output"));
                    }
                    port
                }
                _ => 0,
            };
            let name = format!("{prefix}/{head}");
            if port == 0 {
                name
            } else {
                format!("{name}:{port}")
            }
        } else {
            return Err(format!("'{reference}' in function '{fname}' names nothing"));
        };
        Ok(if control {
            format!("^{}", InputRef::parse(&translated).node)
        } else {
            translated
        })
    };
    for node in &function.node_def {
        if node.attr.values().any(has_placeholder) {
            return Err(format!(
                "function '{fname}' uses attribute placeholders, which graphopt cannot instantiate"
            ));
        }
        // The graph checks its own nodes' attributes, not the bodies': a body node without
        // one would make the graph invalid once inlined.
        if let Some(attr) = crate::graph::ops::missing_required_attr(node) {
            return Err(format!(
                "node '{}' ({}) of function '{fname}' is missing required attribute '{attr}'",
                node.name, node.op
            ));
        }
        let first_control = node.input.iter().position(|i| i.starts_with('^'));
        if first_control.is_some_and(|at| node.input[at..].iter().any(|i| !i.starts_with('^'))) {
            return Err(format!(
                "node '{}' of function '{fname}' lists a data input after a control input",
                node.name
            ));
        }
        let mut inlined = node.clone();
        inlined.name = format!("{prefix}/{}", node.name);
        inlined.input = node
            .input
            .iter()
            .map(|i| translate(i))
            .collect::<Result<_, _>>()?;
        // Sources inside the body run after the call's control inputs, as they would in the call.
        if inlined.input.is_empty() && !controls.is_empty() {
            inlined.input.push(format!("^{control_node}"));
        }
        if inlined.device.is_empty() {
            inlined.device = call.device.clone();
        }
        out.push(inlined);
    }
    // The call becomes an IdentityN over the return values, after the control returns.
    let mut results = NodeDef {
        name: call.name.clone(),
        op: "IdentityN".into(),
        device: call.device.clone(),
        ..Default::default()
    };
    for arg in &signature.output_arg {
        let source = function
            .ret
            .get(&arg.name)
            .ok_or_else(|| format!("function '{fname}' does not return '{}'", arg.name))?;
        results.input.push(translate(source)?);
    }
    for target in function.control_ret.values() {
        results.input.push(format!("^{prefix}/{target}"));
    }
    if let Some(tout) = call.attr.get("Tout") {
        results.attr.insert("T".into(), tout.clone());
    }
    out.push(results);
    Ok(out)
}
