//! A library function's body as a graph of its own, so that the rewrites written for graphs
//! optimize function bodies too, and back.
//!
//! In the body graph each input argument is a Placeholder of the argument's name and type, and
//! references are graph notation (`node`, `node:2`) instead of function notation (`arg`,
//! `node:output_arg:index`). The function's return values become the body's outputs: the
//! nodes they name, the arguments and the control returns are protected (kept, by name), so the
//! signature, `ret` and `control_ret` survive any rewrite. A function graphopt cannot translate
//! both ways exactly (an op without a bundled OpDef, attribute placeholders, argument types
//! given by attributes) is left as it is.

use std::collections::{HashMap, HashSet};

use crate::graph::ops;
use crate::graph::InputRef;
use crate::proto::{attr_value, AttrValue, DataType, FunctionDef, GraphDef, NodeDef};

/// A function body as a graph.
#[derive(Debug, Clone)]
pub struct FunctionBody {
    /// The body: one Placeholder per input argument, then the function's nodes.
    pub graph: GraphDef,
    /// The return values in graph notation, by output argument name.
    pub returns: Vec<(String, String)>,
    /// Nodes a rewrite must keep by name: the arguments, what the return values and control
    /// returns name.
    pub protected: HashSet<String>,
    /// The input argument names (the body's Placeholders).
    pub arguments: Vec<String>,
}

impl FunctionBody {
    /// The body of `function` as a graph, or `None` if it cannot be translated exactly.
    pub fn of(function: &FunctionDef) -> Option<FunctionBody> {
        let signature = function.signature.as_ref()?;
        let mut graph = GraphDef::default();
        let mut arguments = Vec::with_capacity(signature.input_arg.len());
        for arg in &signature.input_arg {
            let dtype = DataType::try_from(arg.r#type).ok()?;
            if dtype == DataType::DtInvalid
                || !arg.number_attr.is_empty()
                || !arg.type_list_attr.is_empty()
            {
                return None;
            }
            graph
                .node
                .push(super::edit::placeholder(arg.name.clone(), arg.r#type, None));
            arguments.push(arg.name.clone());
        }
        let arg_set: HashSet<&str> = arguments.iter().map(String::as_str).collect();
        let body: HashMap<&str, &NodeDef> = function
            .node_def
            .iter()
            .map(|n| (n.name.as_str(), n))
            .collect();
        if body.len() != function.node_def.len() || body.keys().any(|n| arg_set.contains(n)) {
            return None;
        }
        let to_graph = |reference: &str| -> Option<String> {
            let (control, reference) = match reference.strip_prefix('^') {
                Some(r) => (true, r),
                None => (false, reference),
            };
            let mut parts = reference.split(':');
            let head = parts.next()?;
            if control {
                return (arg_set.contains(head) || body.contains_key(head))
                    .then(|| format!("^{head}"));
            }
            if arg_set.contains(head) {
                return parts.next().is_none().then(|| head.to_string());
            }
            let node = body.get(head)?;
            let port = match (parts.next(), parts.next(), parts.next()) {
                (Some(arg), Some(index), None) => {
                    ops::port_of_output_arg(node, arg, index.parse().ok()?)?
                }
                _ => return None,
            };
            Some(if port == 0 {
                head.to_string()
            } else {
                format!("{head}:{port}")
            })
        };
        for node in &function.node_def {
            // Every node must translate back too: its op needs a bundled OpDef.
            ops::op_def(&node.op)?;
            let placeholder =
                |v: &AttrValue| matches!(v.value, Some(attr_value::Value::Placeholder(_)));
            if node.attr.values().any(placeholder) {
                return None;
            }
            let mut translated = node.clone();
            translated.input = node
                .input
                .iter()
                .map(|i| to_graph(i))
                .collect::<Option<_>>()?;
            graph.node.push(translated);
        }
        let mut returns = Vec::with_capacity(signature.output_arg.len());
        for arg in &signature.output_arg {
            let value = to_graph(function.ret.get(&arg.name)?)?;
            returns.push((arg.name.clone(), value));
        }
        let mut body = FunctionBody {
            graph,
            returns,
            protected: HashSet::new(),
            arguments,
        };
        body.return_past_identities(function);
        body.protected = body
            .arguments
            .iter()
            .cloned()
            .chain(
                body.returns
                    .iter()
                    .map(|(_, value)| InputRef::parse(value).node.to_string()),
            )
            .chain(function.control_ret.values().cloned())
            .collect();
        Some(body)
    }

    /// A return value read through an Identity (how `tf.function` ends every body) returns
    /// the Identity's input: the Identity is then free to go.
    fn return_past_identities(&mut self, function: &FunctionDef) {
        let controls: HashSet<&str> = function.control_ret.values().map(String::as_str).collect();
        let index = crate::graph::GraphIndex::new(&self.graph);
        for (_, value) in &mut self.returns {
            let mut hops = 0;
            while let Some(node) = index.node(InputRef::parse(value).node) {
                // Only a bare Identity: one placed on a device, or carrying attributes besides
                // its type, says where the value is returned from.
                let plain = node.op == "Identity"
                    && node.device.is_empty()
                    && node.attr.keys().all(|k| k == "T")
                    && node.input.len() == 1
                    && !node.input[0].starts_with('^')
                    && InputRef::parse(value).port == 0
                    && !controls.contains(node.name.as_str());
                if !plain || hops >= self.graph.node.len() {
                    break;
                }
                *value = node.input[0].clone();
                hops += 1;
            }
        }
    }

    /// The body's return values in graph notation, in output argument order.
    pub fn outputs(&self) -> Vec<String> {
        self.returns.iter().map(|(_, v)| v.clone()).collect()
    }

    /// `function` with this (rewritten) body, or `None` if a reference cannot be written back
    /// in function notation or a control return names a node no longer there (then keep the
    /// original).
    pub fn into_function(self, function: &FunctionDef) -> Option<FunctionDef> {
        let arg_set: HashSet<&str> = self.arguments.iter().map(String::as_str).collect();
        let index = crate::graph::GraphIndex::new(&self.graph);
        if function
            .control_ret
            .values()
            .any(|n| index.node(n).is_none())
        {
            return None;
        }
        let to_function = |reference: &str| -> Option<String> {
            if reference.starts_with('^') {
                return Some(reference.to_string());
            }
            let parsed = InputRef::parse(reference);
            if arg_set.contains(parsed.node) {
                return (parsed.port == 0).then(|| parsed.node.to_string());
            }
            let node = index.node(parsed.node)?;
            let (arg, position) = ops::output_arg_of_port(node, parsed.port as usize)?;
            Some(format!("{}:{arg}:{position}", node.name))
        };
        let mut rewritten = function.clone();
        rewritten.node_def = Vec::with_capacity(self.graph.node.len());
        for node in &self.graph.node {
            if arg_set.contains(node.name.as_str()) {
                continue;
            }
            let mut back = node.clone();
            back.input = node
                .input
                .iter()
                .map(|i| to_function(i))
                .collect::<Option<_>>()?;
            rewritten.node_def.push(back);
        }
        for (arg, value) in &self.returns {
            rewritten.ret.insert(arg.clone(), to_function(value)?);
        }
        Some(rewritten)
    }
}

/// Rewrites the body of every library function the main graph reaches with `rewrite`, which
/// gets each body and must keep its protected nodes. A body that cannot be translated, is not
/// a valid graph, or that the rewrite fails on or leaves invalid or untranslatable, is left as
/// it was. Returns the number of body nodes removed.
pub fn rewrite_reachable_bodies<E>(
    graph: &mut GraphDef,
    mut rewrite: impl FnMut(&mut FunctionBody) -> Result<(), E>,
) -> usize {
    let reachable = crate::graph::functions::reachable_functions(graph);
    let Some(library) = graph.library.as_mut() else {
        return 0;
    };
    let mut removed = 0usize;
    for function in &mut library.function {
        let name = function.signature.as_ref().map_or("", |s| s.name.as_str());
        if !reachable.contains(name) {
            continue;
        }
        let Some(mut body) = FunctionBody::of(function) else {
            continue;
        };
        // The rewrites are written for valid graphs, as the main graph is checked to be.
        if crate::graph::validate(&body.graph).is_err()
            || rewrite(&mut body).is_err()
            || crate::graph::validate(&body.graph).is_err()
        {
            continue;
        }
        if let Some(rewritten) = body.into_function(function) {
            removed = removed.saturating_add(
                function
                    .node_def
                    .len()
                    .saturating_sub(rewritten.node_def.len()),
            );
            *function = rewritten;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::op_def::ArgDef;
    use crate::proto::OpDef;

    fn arg(name: &str) -> ArgDef {
        ArgDef {
            name: name.into(),
            r#type: DataType::DtFloat as i32,
            ..Default::default()
        }
    }

    fn node(name: &str, op: &str, inputs: &[&str], attrs: &[(&str, attr_value::Value)]) -> NodeDef {
        NodeDef {
            name: name.into(),
            op: op.into(),
            input: inputs.iter().map(|i| i.to_string()).collect(),
            attr: attrs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        AttrValue {
                            value: Some(v.clone()),
                        },
                    )
                })
                .collect(),
            ..Default::default()
        }
    }

    /// `y = Identity(Relu(Unpack(x)[2]) * w)`, with a control return on the Relu.
    fn function() -> FunctionDef {
        let float = attr_value::Value::Type(DataType::DtFloat as i32);
        let mut function = FunctionDef {
            signature: Some(OpDef {
                name: "f".into(),
                input_arg: vec![arg("x"), arg("w")],
                output_arg: vec![arg("y")],
                ..Default::default()
            }),
            node_def: vec![
                node(
                    "unstack",
                    "Unpack",
                    &["x"],
                    &[("T", float.clone()), ("num", attr_value::Value::I(3))],
                ),
                node(
                    "relu",
                    "Relu",
                    &["unstack:output:2"],
                    &[("T", float.clone())],
                ),
                node(
                    "mul",
                    "Mul",
                    &["relu:activations:0", "w"],
                    &[("T", float.clone())],
                ),
                node("Identity", "Identity", &["mul:z:0"], &[("T", float)]),
            ],
            ..Default::default()
        };
        function.ret.insert("y".into(), "Identity:output:0".into());
        function.control_ret.insert("side".into(), "relu".into());
        function
    }

    #[test]
    fn a_body_reads_as_a_graph_and_writes_back_exactly() {
        let function = function();
        let body = FunctionBody::of(&function).expect("translatable");
        let inputs = |name: &str| {
            body.graph
                .node
                .iter()
                .find(|n| n.name == name)
                .map(|n| n.input.clone())
        };
        assert_eq!(body.arguments, ["x", "w"]);
        assert_eq!(inputs("x"), Some(vec![]), "an argument is a Placeholder");
        assert_eq!(inputs("relu"), Some(vec!["unstack:2".to_string()]));
        assert_eq!(
            inputs("mul"),
            Some(vec!["relu".to_string(), "w".to_string()])
        );
        // The return value skips the Identity in front of it.
        assert_eq!(body.outputs(), ["mul"]);
        let mut protected: Vec<&str> = body.protected.iter().map(String::as_str).collect();
        protected.sort();
        assert_eq!(protected, ["mul", "relu", "w", "x"]);
        let back = body.into_function(&function).expect("writes back");
        assert_eq!(
            back.node_def, function.node_def,
            "references in function notation"
        );
        assert_eq!(back.ret.get("y").map(String::as_str), Some("mul:z:0"));
        assert_eq!(back.control_ret, function.control_ret);
        assert_eq!(back.signature, function.signature);
    }

    #[test]
    fn what_cannot_be_translated_both_ways_is_left_alone() {
        // A call of another library function by its name: no bundled OpDef to name outputs.
        let mut calls = function();
        calls
            .node_def
            .push(node("call", "some_library_function", &["x"], &[]));
        assert!(FunctionBody::of(&calls).is_none());
        // An argument typed by an attribute (a polymorphic function).
        let mut polymorphic = function();
        if let Some(signature) = polymorphic.signature.as_mut() {
            signature.input_arg[0].r#type = 0;
            signature.input_arg[0].type_attr = "T".into();
        }
        assert!(FunctionBody::of(&polymorphic).is_none());
        // A reference to an output argument the op does not have.
        let mut dangling = function();
        dangling.node_def[1].input[0] = "unstack:values:0".into();
        assert!(FunctionBody::of(&dangling).is_none());
        // A node the rewrite made that a reference cannot name: the original is kept.
        let mut graph = GraphDef {
            library: Some(crate::proto::FunctionDefLibrary {
                function: vec![function()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut call = node("call", "PartitionedCall", &[], &[]);
        call.attr.insert(
            "f".into(),
            AttrValue {
                value: Some(attr_value::Value::Func(crate::proto::NameAttrList {
                    name: "f".into(),
                    ..Default::default()
                })),
            },
        );
        graph.node.push(call);
        let before = graph.library.clone();
        let removed = rewrite_reachable_bodies(&mut graph, |body| -> Result<(), ()> {
            let mul = body.graph.node.iter_mut().find(|n| n.name == "mul");
            if let Some(mul) = mul {
                mul.input[0] = "relu:5".into();
            }
            Ok(())
        });
        assert_eq!(removed, 0);
        assert_eq!(graph.library, before);
    }
}
