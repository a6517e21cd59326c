//! The function library: which functions a graph can call, and pruning the others.
//!
//! A function is reachable when a node of the main graph refers to it, or a reachable
//! function's body does: as its op (a direct call), through a function-valued attribute (`f`
//! of a PartitionedCall, `body`/`cond` of While, `then_branch`/`else_branch` of If, ...), through
//! a `list(func)` attribute (`branches` of Case), or through a function named inside such an
//! attribute's own attributes. A reachable function's gradient function stays with it.

use std::collections::{BTreeSet, HashMap};

use crate::proto::{attr_value, AttrValue, FunctionDef, GraphDef, NameAttrList, NodeDef};

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
    let mut gradients: HashMap<&str, Vec<&str>> = HashMap::new();
    for gradient in &library.gradient {
        gradients
            .entry(gradient.function_name.as_str())
            .or_default()
            .push(&gradient.gradient_func);
    }
    let mut pending = Vec::new();
    node_functions(&graph.node, &mut pending);
    let mut reached = BTreeSet::new();
    while let Some(name) = pending.pop() {
        let Some(function) = by_name.get(name) else {
            continue;
        };
        if !reached.insert(name.to_string()) {
            continue;
        }
        node_functions(&function.node_def, &mut pending);
        for value in function.attr.values() {
            attr_functions(value, &mut pending);
        }
        pending.extend(gradients.get(name).into_iter().flatten().copied());
    }
    reached
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
        let removed = prune_library(&mut graph);
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
        assert_eq!(prune_library(&mut graph), ["unused"]);
        assert_eq!(graph.library, None);
    }
}
