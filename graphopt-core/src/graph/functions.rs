//! The function library: which functions a graph can call, and pruning the others.
//!
//! A function is reachable when a node of the main graph refers to it, or a reachable
//! function's body does: as its op (a direct call), through a function-valued attribute (`f`
//! of a PartitionedCall, `body`/`cond` of While, `then_branch`/`else_branch` of If, ...), through
//! a `list(func)` attribute (`branches` of Case), or through a function named inside such an
//! attribute's own attributes. A reachable function's gradient function stays with it.

use std::collections::{BTreeSet, HashMap};

use crate::proto::{
    attr_value, AttrValue, FunctionDef, FunctionDefLibrary, GradientDef, GraphDef, NameAttrList,
    NodeDef, RegisteredGradient,
};

/// Pushes every function name `value` mentions.
fn attr_functions<'a>(value: &'a AttrValue, out: &mut Vec<&'a str>) {
    match value.value.as_ref() {
        Some(attr_value::Value::Func(f)) => name_attr_functions(f, out),
        Some(attr_value::Value::List(list)) => {
            for f in &list.func {
                name_attr_functions(f, out);
            }
        }
        _ => {}
    }
}

fn name_attr_functions<'a>(f: &'a NameAttrList, out: &mut Vec<&'a str>) {
    out.push(&f.name);
    for value in f.attr.values() {
        attr_functions(value, out);
    }
}

/// Pushes every function name `nodes` mention, as ops or in attributes. Names that are not
/// library functions (ordinary ops) are filtered out by the caller.
fn node_functions<'a>(nodes: &'a [NodeDef], out: &mut Vec<&'a str>) {
    for node in nodes {
        out.push(&node.op);
        for value in node.attr.values() {
            attr_functions(value, out);
        }
    }
}

fn function_name(function: &FunctionDef) -> &str {
    function.signature.as_ref().map_or("", |s| s.name.as_str())
}

/// Each function's gradient functions, by function name.
fn gradients_by_function(gradients: &[GradientDef]) -> HashMap<&str, Vec<&str>> {
    let mut by_function: HashMap<&str, Vec<&str>> = HashMap::new();
    for gradient in gradients {
        by_function
            .entry(gradient.function_name.as_str())
            .or_default()
            .push(&gradient.gradient_func);
    }
    by_function
}

/// The names of the library functions `nodes` reach, sorted. `is_function` tells which names
/// are library functions; `mentions` pushes the library functions a reached function mentions
/// (see [`function_mentions`]), failing if the function cannot be read.
fn reach<E>(
    nodes: &[NodeDef],
    is_function: &dyn Fn(&str) -> bool,
    mut mentions: impl FnMut(&str, &mut Vec<String>) -> Result<(), E>,
) -> Result<BTreeSet<String>, E> {
    let mut named = Vec::new();
    node_functions(nodes, &mut named);
    let mut pending: Vec<String> = named
        .into_iter()
        .filter(|name| is_function(name))
        .map(str::to_string)
        .collect();
    let mut reached = BTreeSet::new();
    let mut found = Vec::new();
    while let Some(name) = pending.pop() {
        if reached.contains(&name) {
            continue;
        }
        mentions(&name, &mut found)?;
        pending.append(&mut found);
        reached.insert(name);
    }
    Ok(reached)
}

/// Pushes the library functions (as `is_function` tells) `function`'s body and attributes
/// mention, and its gradients; op names that are no function are never copied.
fn function_mentions(
    function: &FunctionDef,
    gradients: &HashMap<&str, Vec<&str>>,
    is_function: &dyn Fn(&str) -> bool,
    out: &mut Vec<String>,
) {
    let mut named = Vec::new();
    node_functions(&function.node_def, &mut named);
    for value in function.attr.values() {
        attr_functions(value, &mut named);
    }
    named.extend(gradients.get(function_name(function)).into_iter().flatten());
    out.extend(
        named
            .into_iter()
            .filter(|name| is_function(name))
            .map(str::to_string),
    );
}

/// The names of every library function the main graph can reach, sorted.
pub fn reachable_functions(graph: &GraphDef) -> BTreeSet<String> {
    let Some(library) = graph.library.as_ref() else {
        return BTreeSet::new();
    };
    let by_name: HashMap<&str, &FunctionDef> = library
        .function
        .iter()
        .map(|f| (function_name(f), f))
        .collect();
    let gradients = gradients_by_function(&library.gradient);
    let is_function = |name: &str| by_name.contains_key(name);
    let reached = reach(&graph.node, &is_function, |name, out| {
        if let Some(function) = by_name.get(name) {
            function_mentions(function, &gradients, &is_function, out);
        }
        Ok::<(), std::convert::Infallible>(())
    });
    match reached {
        Ok(reached) => reached,
        Err(never) => match never {},
    }
}

/// A function library left encoded (a SavedModel's holds its save, restore and training
/// functions besides the few a signature calls): each function is decoded when a graph
/// reaches it. Declared like `FunctionDefLibrary`, with its functions as `bytes`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EncodedLibrary {
    /// Encoded FunctionDefs.
    #[prost(bytes = "bytes", repeated, tag = "1")]
    pub function: Vec<bytes::Bytes>,
    #[prost(message, repeated, tag = "2")]
    pub gradient: Vec<GradientDef>,
    #[prost(message, repeated, tag = "3")]
    pub registered_gradients: Vec<RegisteredGradient>,
}

/// Only the name of a FunctionDef (its signature's), decoded without the body.
#[derive(Clone, PartialEq, prost::Message)]
struct FunctionName {
    #[prost(message, optional, tag = "1")]
    signature: Option<OpName>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OpName {
    #[prost(string, tag = "1")]
    name: String,
}

impl EncodedLibrary {
    /// The field this type keeps encoded, for [`crate::io::decode_partly`]: the library's
    /// functions.
    pub const OPAQUE: (&'static str, u32) = ("tensorflow.FunctionDefLibrary", 1);

    /// The library functions `nodes` can reach, in library order, each decoded by `decode`,
    /// with the gradient entries between them (what [`prune_library`] would keep of the
    /// decoded library); `None` when that is nothing. A function whose name cannot be read
    /// cannot be reached, so it is never decoded.
    pub fn decode_reachable<E>(
        &self,
        nodes: &[NodeDef],
        mut decode: impl FnMut(bytes::Bytes) -> Result<FunctionDef, E>,
    ) -> Result<Option<FunctionDefLibrary>, E> {
        use prost::Message as _;
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (i, encoded) in self.function.iter().enumerate() {
            if let Ok(FunctionName {
                signature: Some(OpName { name }),
            }) = FunctionName::decode(encoded.clone())
            {
                by_name.entry(name).or_insert(i);
            }
        }
        let gradients = gradients_by_function(&self.gradient);
        let mut decoded: Vec<Option<FunctionDef>> = vec![None; self.function.len()];
        let is_function = |name: &str| by_name.contains_key(name);
        let reached = reach(nodes, &is_function, |name, out| {
            let Some((i, encoded)) = by_name
                .get(name)
                .and_then(|&i| Some((i, self.function.get(i)?)))
            else {
                return Ok(());
            };
            let function = decode(encoded.clone())?;
            function_mentions(&function, &gradients, &is_function, out);
            if let Some(slot) = decoded.get_mut(i) {
                *slot = Some(function);
            }
            Ok(())
        })?;
        let library = FunctionDefLibrary {
            function: decoded.into_iter().flatten().collect(),
            gradient: self
                .gradient
                .iter()
                .filter(|g| {
                    reached.contains(&g.function_name) && reached.contains(&g.gradient_func)
                })
                .cloned()
                .collect(),
            registered_gradients: self
                .registered_gradients
                .iter()
                .filter(|g| reached.contains(&g.gradient_func))
                .cloned()
                .collect(),
        };
        let empty = library.function.is_empty()
            && library.gradient.is_empty()
            && library.registered_gradients.is_empty();
        Ok((!empty).then_some(library))
    }
}

/// Removes every library function the main graph cannot reach, with the gradient entries
/// that name removed functions; a library left empty is dropped. Returns the removed names,
/// sorted.
pub fn prune_library(graph: &mut GraphDef) -> Vec<String> {
    let keep = reachable_functions(graph);
    let Some(library) = graph.library.as_mut() else {
        return Vec::new();
    };
    let mut removed: Vec<String> = library
        .function
        .iter()
        .map(function_name)
        .filter(|name| !keep.contains(*name))
        .map(str::to_string)
        .collect();
    if removed.is_empty() {
        return removed;
    }
    removed.sort();
    library.function.retain(|f| keep.contains(function_name(f)));
    library
        .gradient
        .retain(|g| keep.contains(&g.function_name) && keep.contains(&g.gradient_func));
    library
        .registered_gradients
        .retain(|g| keep.contains(&g.gradient_func));
    if library.function.is_empty()
        && library.gradient.is_empty()
        && library.registered_gradients.is_empty()
    {
        graph.library = None;
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{attr_value::ListValue, FunctionDefLibrary, GradientDef, OpDef};

    fn function(name: &str, body: Vec<NodeDef>) -> FunctionDef {
        FunctionDef {
            signature: Some(OpDef {
                name: name.into(),
                ..Default::default()
            }),
            node_def: body,
            ..Default::default()
        }
    }

    fn node(name: &str, op: &str, attrs: &[(&str, AttrValue)]) -> NodeDef {
        NodeDef {
            name: name.into(),
            op: op.into(),
            attr: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Default::default()
        }
    }

    fn func(name: &str) -> AttrValue {
        AttrValue {
            value: Some(attr_value::Value::Func(NameAttrList {
                name: name.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn keeps_what_the_main_graph_reaches_through_calls_control_flow_and_lists() {
        // main: While(body=loop_body, cond=loop_cond), Case(branches=[b0, b1]), a direct call
        // to direct_fn; loop_body calls nested via PartitionedCall whose f carries an attr
        // naming inner; nested has a gradient grad_nested.
        let nested_attr = AttrValue {
            value: Some(attr_value::Value::Func(NameAttrList {
                name: "nested".into(),
                attr: [("g".to_string(), func("inner"))].into_iter().collect(),
            })),
        };
        let branches = AttrValue {
            value: Some(attr_value::Value::List(Box::new(ListValue {
                func: vec![
                    NameAttrList {
                        name: "b0".into(),
                        ..Default::default()
                    },
                    NameAttrList {
                        name: "b1".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }))),
        };
        let mut graph = GraphDef {
            node: vec![
                node(
                    "w",
                    "While",
                    &[("body", func("loop_body")), ("cond", func("loop_cond"))],
                ),
                node("c", "Case", &[("branches", branches)]),
                node("d", "direct_fn", &[]),
            ],
            library: Some(FunctionDefLibrary {
                function: vec![
                    function(
                        "loop_body",
                        vec![node("p", "PartitionedCall", &[("f", nested_attr)])],
                    ),
                    function("loop_cond", vec![]),
                    function("b0", vec![]),
                    function("b1", vec![]),
                    function("direct_fn", vec![]),
                    function("nested", vec![]),
                    function("inner", vec![]),
                    function("grad_nested", vec![]),
                    function(
                        "__inference__traced_save_12",
                        vec![node("s", "SaveV2", &[])],
                    ),
                    function("__traced_restore", vec![node("r", "helper", &[])]),
                    function("helper", vec![]),
                ],
                gradient: vec![
                    GradientDef {
                        function_name: "nested".into(),
                        gradient_func: "grad_nested".into(),
                    },
                    GradientDef {
                        function_name: "helper".into(),
                        gradient_func: "inner".into(),
                    },
                ],
                ..Default::default()
            }),
            ..Default::default()
        };
        // Left encoded, the library decodes to what pruning keeps, decoding nothing else.
        let full = graph.library.clone().expect("library");
        let encoded = EncodedLibrary {
            function: full
                .function
                .iter()
                .map(|f| prost::Message::encode_to_vec(f).into())
                .collect(),
            gradient: full.gradient.clone(),
            registered_gradients: full.registered_gradients.clone(),
        };
        let mut decoded_names = Vec::new();
        let decoded = encoded.decode_reachable(&graph.node, |bytes| {
            let f: FunctionDef = prost::Message::decode(bytes).map_err(|e| e.to_string())?;
            decoded_names.push(function_name(&f).to_string());
            Ok::<_, String>(f)
        });
        decoded_names.sort();
        assert!(!decoded_names.iter().any(|n| n.contains("traced")));
        let removed = prune_library(&mut graph);
        assert_eq!(decoded, Ok(graph.library.clone()));
        assert_eq!(decoded_names.len(), 8);
        assert_eq!(
            removed,
            ["__inference__traced_save_12", "__traced_restore", "helper"]
        );
        let library = graph.library.as_ref().map(|l| {
            let names: Vec<&str> = l.function.iter().map(function_name).collect();
            (names, l.gradient.len())
        });
        assert_eq!(
            library,
            Some((
                vec![
                    "loop_body",
                    "loop_cond",
                    "b0",
                    "b1",
                    "direct_fn",
                    "nested",
                    "inner",
                    "grad_nested"
                ],
                1
            ))
        );
        // Nothing more to remove the second time.
        assert!(prune_library(&mut graph).is_empty());
    }

    #[test]
    fn a_library_nothing_reaches_is_dropped() {
        let mut graph = GraphDef {
            node: vec![node("x", "Placeholder", &[])],
            library: Some(FunctionDefLibrary {
                function: vec![function("unused", vec![])],
                ..Default::default()
            }),
            ..Default::default()
        };
        let encoded = EncodedLibrary {
            function: vec![prost::Message::encode_to_vec(&function("unused", vec![])).into()],
            ..Default::default()
        };
        let decoded = encoded.decode_reachable(&graph.node, |_| Err("decoded"));
        assert_eq!(decoded, Ok(None));
        assert_eq!(prune_library(&mut graph), ["unused"]);
        assert_eq!(graph.library, None);
    }
}
