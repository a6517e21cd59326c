//! Every number of the README's node-count table, recomputed: originals from the fixtures,
//! TF GTT and Grappler from the recorded TensorFlow results, graphopt's by running the
//! pipelines. A stale table fails here.

mod common;

const STANDARD: &str = "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms sort_by_execution_order";

fn readme_rows() -> Vec<(String, Vec<usize>)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(path).unwrap();
    let start = text
        .find("<!-- node-counts -->")
        .expect("table start marker");
    let end = text
        .find("<!-- /node-counts -->")
        .expect("table end marker");
    text[start..end]
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| fixture") && !l.starts_with("| ---"))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let name = cells[0].split_whitespace().next().unwrap().to_string();
            let numbers = cells[1..]
                .iter()
                .map(|c| {
                    c.parse()
                        .unwrap_or_else(|_| panic!("{name}: '{c}' is not a count"))
                })
                .collect();
            (name, numbers)
        })
        .collect()
}

#[test]
fn readme_node_count_table_is_current() {
    let grappler: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("expected/grappler.json")).unwrap(),
    )
    .unwrap();
    let version = common::readme::figures("and by TensorFlow {}'s Graph Transform Tool");
    assert_eq!(
        grappler["tensorflow_version"]
            .as_str()
            .map(|v| v.starts_with(&format!("{}.", version[0]))),
        Some(true),
        "the TensorFlow that Grappler's record came from vs the README's"
    );
    assert_eq!(
        common::readme::between("The standard deployment pipeline `", "`, run by graphopt"),
        STANDARD,
        "the README's standard pipeline"
    );
    let tolerances: Vec<f64> = common::readme::figures(
        "every output stays within {} of TensorFlow's relative to the output's largest value, \
         and within {} relative plus {} absolute element by element",
    )
    .iter()
    .map(|f| f.parse().unwrap())
    .collect();
    let [tolerance, rtol, atol] = tolerances[..] else {
        panic!("three tolerances");
    };
    // The Grappler optimizers the README names are the ones the record ran.
    let named = common::readme::between("TensorFlow's Grappler (its ", " optimizers;");
    let mut named: Vec<String> = named
        .replace(" and ", ", ")
        .split(", ")
        .map(|o| match o.trim() {
            "common-subgraph" => "common_subgraph_elimination".to_string(),
            other => other.to_string(),
        })
        .collect();
    named.sort();
    let mut ran: Vec<String> = grappler["rewriter_config"]["optimizers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_str().unwrap().to_string())
        .collect();
    ran.sort();
    assert_eq!(named, ran, "the Grappler optimizers the README names");
    let rows = readme_rows();
    let mut listed: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    listed.sort();
    let mut all: Vec<&str> = common::MODELS.to_vec();
    all.sort();
    assert_eq!(listed, all, "the table lists every fixture once");
    for (name, numbers) in &rows {
        let expected = common::expected(name);
        let standard = if name == "training_leftovers" {
            format!("remove_training_nodes {STANDARD}")
        } else {
            STANDARD.to_string()
        };
        let (standard, deploy) = (
            common::apply(name, &standard),
            common::apply(name, "@deploy"),
        );
        for (pipeline, graph) in [("standard", &standard), ("@deploy", &deploy)] {
            let outputs = common::run_fixture(name, graph);
            let what = format!("{name}, {pipeline}");
            common::assert_outputs_match_with(&what, name, &outputs, tolerance, rtol, atol);
        }
        // GTT ran the standard pipeline (without graphopt's remove_training_nodes on
        // training_leftovers, as the table says), told each fixture's placeholder shape: the
        // record says what it was given.
        let placeholder = common::load(name);
        let placeholder = placeholder
            .node
            .iter()
            .find(|n| n.op == "Placeholder")
            .unwrap_or_else(|| panic!("{name}: no Placeholder"));
        let dims: Vec<String> = graphopt_core::graph::attrs::shape(placeholder, "shape")
            .unwrap()
            .dim
            .iter()
            .map(|d| d.size.to_string())
            .collect();
        let told = STANDARD.replacen(
            "strip_unused_nodes",
            &format!(
                r#"strip_unused_nodes(type=float, shape="{}")"#,
                dims.join(",")
            ),
            1,
        );
        assert_eq!(
            expected["gtt_pipeline"]["transforms"].as_str(),
            Some(told.as_str()),
            "{name}: what GTT was given"
        );
        let actual = vec![
            common::load(name).node.len(),
            expected["gtt_pipeline"]["node_count"].as_u64().unwrap() as usize,
            standard.node.len(),
            grappler["fixtures"][name]["grappler"]["node_count"]
                .as_u64()
                .unwrap() as usize,
            deploy.node.len(),
        ];
        assert_eq!(
            numbers, &actual,
            "{name}: original, GTT, standard, Grappler, @deploy"
        );
    }
}

#[test]
fn readme_function_body_counts_are_current() {
    let grappler: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("expected/grappler.json")).unwrap(),
    )
    .unwrap();
    let figures = common::readme::figures(
        "function_calls, the one fixture that calls library functions, has {} nodes in its \
         bodies, Grappler's output {} and `@deploy`'s {} (",
    );
    let figures: Vec<usize> = figures.iter().map(|f| f.parse().unwrap()).collect();
    let bodies = |graph: &graphopt_core::proto::GraphDef| -> usize {
        graph
            .library
            .iter()
            .flat_map(|l| &l.function)
            .map(|f| f.node_def.len())
            .sum()
    };
    let recorded = &grappler["fixtures"]["function_calls"];
    let actual = vec![
        bodies(&common::load("function_calls")),
        recorded["grappler"]["function_node_count"]
            .as_u64()
            .unwrap() as usize,
        bodies(&common::apply("function_calls", "@deploy")),
    ];
    assert_eq!(
        figures, actual,
        "original, Grappler, @deploy function body nodes"
    );
    assert_eq!(
        recorded["original"]["function_node_count"].as_u64(),
        Some(actual[0] as u64),
        "the recorder's count of the original's bodies"
    );
    // "the one fixture that calls library functions"
    for name in common::MODELS {
        let has_library = common::load(name)
            .library
            .is_some_and(|l| !l.function.is_empty());
        assert_eq!(has_library, *name == "function_calls", "{name}");
    }
}
