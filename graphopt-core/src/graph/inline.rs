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

/// The types of a call's arguments (`attr` "Tin") or results ("Tout"): the call's list, else
/// the types `args` declare. The Identities and the IdentityN that stand for them need one
/// type each: a list of another length, or an argument of no fixed type with no list, is an
/// error (a node without its `T` would be an invalid graph).
fn argument_types(
    call: &NodeDef,
    attr: &str,
    args: &[crate::proto::op_def::ArgDef],
    fname: &str,
) -> Result<Vec<i32>, String> {
    match call.attr.get(attr).and_then(|a| a.value.as_ref()) {
        Some(attr_value::Value::List(list)) if list.r#type.len() == args.len() => {
            Ok(list.r#type.clone())
        }
        Some(attr_value::Value::List(list)) => Err(format!(
            "'{}' lists {} types in {attr} for the {} arguments of '{fname}'",
            call.name,
            list.r#type.len(),
            args.len()
        )),
        _ => args
            .iter()
            .map(|arg| match arg.r#type {
                0 => Err(format!(
                    "'{}' has no {attr}, and '{}' of '{fname}' has no fixed type",
                    call.name, arg.name
                )),
                dtype => Ok(dtype),
            })
            .collect(),
    }
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
    let tin = argument_types(call, "Tin", &signature.input_arg, fname)?;
    let tout = argument_types(call, "Tout", &signature.output_arg, fname)?;
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
    results.attr.insert(
        "T".into(),
        AttrValue {
            value: Some(attr_value::Value::List(Box::new(attr_value::ListValue {
                r#type: tout,
                ..Default::default()
            }))),
        },
    );
    out.push(results);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::test_nodes::{float_node, node};
    use crate::proto::op_def::ArgDef;
    use crate::proto::{DataType, OpDef};

    /// `f(x0: float) -> y0: float`, the identity of its argument.
    fn function() -> FunctionDef {
        let arg = |name: &str| ArgDef {
            name: name.into(),
            r#type: DataType::DtFloat as i32,
            ..Default::default()
        };
        FunctionDef {
            signature: Some(OpDef {
                name: "f".into(),
                input_arg: vec![arg("x0")],
                output_arg: vec![arg("y0")],
                ..Default::default()
            }),
            node_def: vec![float_node("b0", "Identity", &["x0"])],
            ret: [("y0".to_string(), "b0:output:0".to_string())].into(),
            ..Default::default()
        }
    }

    fn types(list: &[DataType]) -> AttrValue {
        AttrValue {
            value: Some(attr_value::Value::List(Box::new(attr_value::ListValue {
                r#type: list.iter().map(|&t| t as i32).collect(),
                ..Default::default()
            }))),
        }
    }

    fn type_of(node: &NodeDef) -> Option<&attr_value::Value> {
        node.attr.get("T").and_then(|t| t.value.as_ref())
    }

    /// A call whose `Tin` lists no type for its one argument left an Identity without `T`,
    /// an invalid graph (found by the pipeline fuzz target): an error now. Without `Tin` or
    /// `Tout`, the signature's own types are the Identities'.
    #[test]
    fn argument_types_come_from_the_call_or_the_signature_and_must_fit() {
        let mut call = node("c", "StatefulPartitionedCall", &["x"]);
        call.attr.insert("Tin".into(), types(&[]));
        call.attr.insert("Tout".into(), types(&[DataType::DtFloat]));
        let error = inline_call(&call, &function()).unwrap_err().to_string();
        assert!(
            error.contains("'c' lists 0 types in Tin for the 1 arguments of 'f'"),
            "{error}"
        );
        call.attr.remove("Tin");
        call.attr.remove("Tout");
        let nodes = inline_call(&call, &function()).unwrap();
        let input = nodes.iter().find(|n| n.name == "c/input/x0").unwrap();
        assert_eq!(
            type_of(input),
            Some(&attr_value::Value::Type(DataType::DtFloat as i32))
        );
        let results = nodes.iter().find(|n| n.op == "IdentityN").unwrap();
        assert_eq!(type_of(results), types(&[DataType::DtFloat]).value.as_ref());
        // An argument of no fixed type (a type attribute) and no list: nothing to go by.
        let mut generic = function();
        if let Some(signature) = generic.signature.as_mut() {
            signature.output_arg[0].r#type = 0;
            signature.output_arg[0].type_attr = "T".into();
        }
        let error = inline_call(&call, &generic).unwrap_err().to_string();
        assert!(
            error.contains("'c' has no Tout, and 'y0' of 'f' has no fixed type"),
            "{error}"
        );
    }
}
