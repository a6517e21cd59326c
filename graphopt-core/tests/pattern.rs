//! The pattern API, and an application-defined transform built on it, registered by name.

use std::collections::HashSet;

use graphopt_core::proto::{GraphDef, NodeDef};
use graphopt_core::rewrite::pattern::{self, Pattern};
use graphopt_core::transforms::{self, Registry};

fn text(t: &str) -> GraphDef {
    graphopt_core::text_format::parse(t).unwrap()
}

const CHAIN: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "w" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } } attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape { dim { size: 1 } dim { size: 1 } dim { size: 1 } dim { size: 1 } } float_val: 2 } } } }
node { name: "conv" op: "Conv2D" input: "x" input: "w" attr { key: "T" value { type: DT_FLOAT } } attr { key: "strides" value { list { i: 1 i: 1 i: 1 i: 1 } } } attr { key: "padding" value { s: "SAME" } } }
node { name: "r1" op: "Relu" input: "conv" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "r2" op: "Relu" input: "r1" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "r3" op: "Relu" input: "r2" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "side" op: "Tanh" input: "r1" attr { key: "T" value { type: DT_FLOAT } } }
"#;

#[test]
fn patterns_parse_and_print() {
    let p = Pattern::parse("Relu|Relu6( Conv2D|DepthwiseConv2dNative(*, Const) )").unwrap();
    assert_eq!(
        p.to_string(),
        "Relu|Relu6(Conv2D|DepthwiseConv2dNative(*, Const))"
    );
    assert_eq!(
        p,
        Pattern::with_inputs(
            "Relu|Relu6",
            vec![Pattern::with_inputs(
                "Conv2D|DepthwiseConv2dNative",
                vec![Pattern::any(), Pattern::op("Const")]
            )]
        )
    );
    assert!(Pattern::parse("Relu(").is_err());
    assert!(Pattern::parse("Relu(x,,y)").is_err());
    assert!(Pattern::parse("Relu)x").is_err());
}

#[test]
fn matches_respect_alternatives_input_counts_and_never_overlap() {
    let graph = text(CHAIN);
    let names = |ms: Vec<pattern::Match>| -> Vec<Vec<String>> {
        ms.iter()
            .map(|m| {
                m.nodes()
                    .iter()
                    .map(|&i| graph.node[i].name.clone())
                    .collect()
            })
            .collect()
    };
    let conv = Pattern::parse("Relu|Relu6(Conv2D(*, Const))").unwrap();
    assert_eq!(
        names(pattern::find(&graph, &conv)),
        [["r1", "conv", "x", "w"]]
    );
    // Three Relus in a row: r2 over r1, and r3 over r2 — the inner Relu is a leaf, and leaves
    // may be shared; interiors may not.
    let double = Pattern::parse("Relu(Relu)").unwrap();
    assert_eq!(
        names(pattern::find(&graph, &double)),
        [["r2", "r1"], ["r3", "r2"]]
    );
    let triple = Pattern::parse("Relu(Relu(Relu))").unwrap();
    assert_eq!(names(pattern::find(&graph, &triple)), [["r3", "r2", "r1"]]);
    // Input counts must match exactly.
    assert!(pattern::find(&graph, &Pattern::parse("Conv2D(*)").unwrap()).is_empty());
}

#[test]
fn replacement_refuses_to_drop_a_node_read_outside_the_match() {
    let mut graph = text(CHAIN);
    let double = Pattern::parse("Relu(Relu)").unwrap();
    // Collapsing r2(r1(x)) into one Relu named r2 would drop r1, which `side` reads.
    let result = pattern::replace(&mut graph, &double, &HashSet::new(), |g, m| {
        let outer = &g.node[m.node];
        let inner = &g.node[m.inputs[0].node];
        Some(vec![NodeDef {
            input: inner.input.clone(),
            ..outer.clone()
        }])
    });
    // r2 over r1 is refused; r3 over r2 goes through (r3 now reads r1 directly).
    assert_eq!(result.count, 1);
    assert_eq!(result.refused.len(), 1, "{result:?}");
    assert!(result.refused[0].contains("'r1'"));
    graphopt_core::graph::validate(&graph).unwrap();
    let names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["x", "w", "conv", "r1", "r3", "side"]);
    assert_eq!(graph.node[4].input, ["r1"]);
}

// The README's "Writing your own transform" block, verbatim between the markers (the test
// below fails when the two differ), wrapped in a function that gives it a graph and returns
// what it made.
#[rustfmt::skip]
fn readme_custom_transform(mut graph: GraphDef, inputs: Vec<String>, outputs: Vec<String>) -> Result<(GraphDef, Registry), Box<dyn std::error::Error>> {
// README block begins
use graphopt_core::rewrite::pattern::{self, Pattern};
use graphopt_core::transforms::{self, Registry, Transform, TransformContext};

struct CollapseRelus;

impl Transform for CollapseRelus {
    fn name(&self) -> &str { "collapse_relus" }
    fn summary(&self) -> &str { "Relu(Relu(x)) -> Relu(x)" }
    fn apply(&self, graph: &mut graphopt_core::proto::GraphDef, cx: &TransformContext<'_>) -> graphopt_core::Result<()> {
        let keep = cx.outputs.iter().map(|o| graphopt_core::graph::node_name(o).to_string()).collect();
        let relu_of_relu = Pattern::parse("Relu(Relu)").map_err(|e| cx.error(e))?;
        let done = pattern::replace_until_stable(graph, &relu_of_relu, &keep, |g, m| {
            let (outer, inner) = (&g.node[m.node], &g.node[m.inputs[0].node]);
            Some(vec![graphopt_core::proto::NodeDef { input: inner.input.clone(), ..outer.clone() }])
        });
        done.refused.into_iter().for_each(|why| cx.warn(why));
        Ok(())
    }
}

let mut registry = Registry::with_builtins();
registry.register(CollapseRelus);
let specs = transforms::parse("collapse_relus fold_constants sort_by_execution_order")?;
transforms::run(&registry, &mut graph, &specs, &inputs, &outputs)?;
// README block ends
Ok((graph, registry))
}

#[test]
fn the_readme_custom_transform_block_is_the_one_tested_here() {
    let readme = include_str!("../../README.md");
    let section = readme
        .split("## Writing your own transform")
        .nth(1)
        .expect("the README has a 'Writing your own transform' section");
    let block = section
        .split("```rust\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section has a rust block");
    let here = include_str!("pattern.rs");
    let tested = here
        .split("// README block begins\n")
        .nth(1)
        .and_then(|b| b.split("// README block ends").next())
        .unwrap();
    assert_eq!(block, tested);
}

#[test]
fn an_application_transform_runs_by_name_from_a_transform_string() {
    let mut graph = text(CHAIN);
    graph.node.retain(|n| n.name != "side");
    let (graph, registry) =
        readme_custom_transform(graph, vec!["x".into()], vec!["r3".into()]).unwrap();
    let names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names.iter().filter(|n| n.starts_with('r')).count(),
        1,
        "{names:?}"
    );
    let relu = graph.node.iter().find(|n| n.op == "Relu").unwrap();
    assert_eq!(
        (relu.name.as_str(), relu.input.as_slice()),
        ("r3", ["conv".to_string()].as_slice())
    );
    // A refused replacement (r1 is also read by `side`) reaches the run's warnings.
    let mut graph = text(CHAIN);
    let specs = transforms::parse("collapse_relus").unwrap();
    let outcomes =
        transforms::run(&registry, &mut graph, &specs, &["x".into()], &["r3".into()]).unwrap();
    assert!(
        outcomes[0].warnings.iter().any(|w| w.contains("'r1'")),
        "{:?}",
        outcomes[0].warnings
    );
    assert!(registry
        .check(&transforms::parse("collapse_relus(x=1)").unwrap())
        .is_err());
}
