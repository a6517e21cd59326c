//! `inline_partitionedcall`: replaces each PartitionedCall and StatefulPartitionedCall of a
//! library function with the function's body, repeatedly, so calls inside calls are inlined
//! too.
//!
//! For a call `c`: the body's nodes become `c/NODE`; each argument enters through an Identity
//! `c/input/ARG` that also waits for the call's control inputs (via `c/input_control_node`),
//! so ordering is kept; the call itself becomes an IdentityN named `c` over the function's
//! return values, with its control returns as control inputs, so `c:k` and `^c` keep meaning
//! what they meant. `remove_nodes(op=Identity)` tidies the seams afterwards.
//!
//! Differences from TensorFlow's transform, deliberate: StatefulPartitionedCall is inlined too
//! (TF2 SavedModels call through it), nested calls are inlined, and control inputs and
//! `^call` readers are kept valid (TensorFlow's version leaves them dangling). The library is
//! kept. A function using attribute placeholders, or calling itself, is an error naming it.

use std::collections::HashMap;

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph::InputRef;
use crate::proto::{attr_value, AttrValue, FunctionDef, GraphDef, NodeDef};

pub struct InlinePartitionedCall;

/// Nesting deeper than this is taken to be recursion.
const MAX_DEPTH: usize = 64;

impl Transform for InlinePartitionedCall {
    fn name(&self) -> &str {
        "inline_partitionedcall"
    }

    fn summary(&self) -> &str {
        "replace (Stateful)PartitionedCall nodes with their function bodies, nested calls included"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let functions: HashMap<String, FunctionDef> = graph
            .library
            .iter()
            .flat_map(|l| l.function.iter())
            .filter_map(|f| f.signature.as_ref().map(|s| (s.name.clone(), f.clone())))
            .collect();
        for _ in 0..MAX_DEPTH {
            let mut inlined_any = false;
            let old = std::mem::take(&mut graph.node);
            for node in old {
                let callee = match node.op.as_str() {
                    "PartitionedCall" | "StatefulPartitionedCall" => {
                        match node.attr.get("f").and_then(|a| a.value.as_ref()) {
                            Some(attr_value::Value::Func(f)) => functions.get(&f.name),
                            _ => None,
                        }
                    }
                    _ => None,
                };
                match callee {
                    Some(function) => {
                        graph
                            .node
                            .extend(inline(&node, function).map_err(|e| context.error(e))?);
                        inlined_any = true;
                    }
                    None => graph.node.push(node),
                }
            }
            if !inlined_any {
                return Ok(());
            }
        }
        Err(context.error(format!(
            "calls are nested more than {MAX_DEPTH} deep; is a function recursive?"
        )))
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
pub(crate) fn inline(
    call: &NodeDef,
    function: &FunctionDef,
) -> std::result::Result<Vec<NodeDef>, String> {
    let prefix = &call.name;
    let signature = function
        .signature
        .as_ref()
        .ok_or("function without a signature")?;
    let fname = &signature.name;
    let data: Vec<&String> = call.input.iter().filter(|i| !i.starts_with('^')).collect();
    let controls: Vec<String> = call
        .input
        .iter()
        .filter(|i| i.starts_with('^'))
        .cloned()
        .collect();
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
        let mut node = identity(name.clone(), (*input).clone(), dtype);
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
    let translate = |reference: &str| -> std::result::Result<String, String> {
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
                    crate::ops::output_port(node, arg, index)
                        .ok_or_else(|| format!("'{reference}' in '{fname}' names no output"))?
                }
                (Some(index), None) => index
                    .parse()
                    .map_err(|_| format!("bad reference '{reference}' in '{fname}'"))?,
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
        let mut inlined = node.clone();
        inlined.name = format!("{prefix}/{}", node.name);
        inlined.input = node
            .input
            .iter()
            .map(|i| translate(i))
            .collect::<std::result::Result<_, _>>()?;
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
