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
        let actual = vec![
            common::load(name).node.len(),
            expected["gtt_pipeline"]["node_count"].as_u64().unwrap() as usize,
            common::apply(name, &standard).node.len(),
            grappler["fixtures"][name]["grappler"]["node_count"]
                .as_u64()
                .unwrap() as usize,
            common::apply(name, "@deploy").node.len(),
        ];
        assert_eq!(
            numbers, &actual,
            "{name}: original, GTT, standard, Grappler, @deploy"
        );
    }
}
