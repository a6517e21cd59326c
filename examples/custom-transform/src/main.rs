//! Loads a bundled fixture, registers an application-specific transform next to graphopt's
//! built-in ones, runs a transform string that uses both, and prints a before/after summary.
//!
//! `cargo run -p custom-transform [GRAPH]`

use std::path::PathBuf;

use graphopt_core::proto::GraphDef;
use graphopt_core::transforms::{self, Registry, Transform, TransformContext};
use graphopt_core::{io, summary};

/// Prefixes every node name (and every reference to it) with `prefix`, e.g. to merge graphs.
struct PrefixNames;

impl Transform for PrefixNames {
    fn name(&self) -> &str {
        "prefix_names"
    }

    fn summary(&self) -> &str {
        "prefix every node name with prefix (inputs and outputs keep their names)"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["prefix"])
    }

    fn apply(
        &self,
        graph: &mut GraphDef,
        context: &TransformContext<'_>,
    ) -> graphopt_core::Result<()> {
        let prefix = context.params.required("prefix")?;
        let keep = |name: &str| {
            context
                .inputs
                .iter()
                .chain(context.outputs)
                .any(|n| graphopt_core::graph::node_name(n) == name)
        };
        let renamed = |name: &str| {
            if keep(name) {
                name.to_string()
            } else {
                format!("{prefix}{name}")
            }
        };
        for node in &mut graph.node {
            node.name = renamed(&node.name);
            for input in &mut node.input {
                let parsed = graphopt_core::graph::InputRef::parse(input);
                let new_name = renamed(parsed.node);
                *input = graphopt_core::graph::InputRef {
                    node: &new_name,
                    ..parsed
                }
                .to_string();
            }
        }
        Ok(())
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../tests/fixtures/models/tf1_conv_bn.pb")
        });
    let mut loaded = io::read_graph(&path)?;
    let before = summary::summarize(&loaded.graph, Some(loaded.file_size));

    let mut registry = Registry::with_builtins();
    registry.register(PrefixNames);
    let specs =
        transforms::parse("remove_device prefix_names(prefix=model/) sort_by_execution_order")?;
    let inputs = ["input".to_string()];
    let outputs = ["probs".to_string()];
    for outcome in transforms::run(&registry, &mut loaded.graph, &specs, &inputs, &outputs)? {
        println!(
            "{}: {} -> {} nodes",
            outcome.transform, outcome.nodes_before, outcome.nodes_after
        );
    }

    let after = summary::summarize(&loaded.graph, None);
    println!(
        "devices before: {:?}, after: {:?}",
        before.devices, after.devices
    );
    println!(
        "first nodes now: {:?}",
        loaded
            .graph
            .node
            .iter()
            .take(3)
            .map(|n| &n.name)
            .collect::<Vec<_>>()
    );
    println!(
        "outputs still: {:?}",
        after.outputs.iter().map(|o| &o.name).collect::<Vec<_>>()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_transform_runs_by_name_next_to_builtins() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/models/tf1_conv_bn.pb");
        let mut graph = io::read_graph(path).unwrap().graph;
        let mut registry = Registry::with_builtins();
        registry.register(PrefixNames);
        let specs = transforms::parse("prefix_names(prefix=m/) sort_by_execution_order").unwrap();
        let outcomes = transforms::run(
            &registry,
            &mut graph,
            &specs,
            &["input".into()],
            &["probs".into()],
        )
        .unwrap();
        assert_eq!(outcomes.len(), 2);
        let names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
        assert!(
            names.contains(&"input") && names.contains(&"probs"),
            "{names:?}"
        );
        assert!(names.contains(&"m/conv/Conv2D"), "{names:?}");
        let conv = graph
            .node
            .iter()
            .find(|n| n.name == "m/conv/Conv2D")
            .unwrap();
        assert_eq!(conv.input, ["input", "m/conv/Conv2D/ReadVariableOp"]);
        // Unknown parameters of an application transform are rejected like built-in ones.
        let bad = transforms::parse("prefix_names(prefx=m/)").unwrap();
        assert!(registry
            .check(&bad)
            .unwrap_err()
            .to_string()
            .contains("it takes: prefix"));
    }
}
