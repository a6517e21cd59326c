//! What TensorFlow did with graphopt's frozen graphs, as `tests/fixtures/check_tf_runs_frozen.py`
//! recorded it in `tests/fixtures/expected/tf_runs_frozen.json`: each case is frozen again
//! with the same arguments and must give the bytes TensorFlow ran (else the record is stale:
//! rerun the script), every element TensorFlow computed must be within the record's
//! atol + rtol * |recorded|, and the README's sentence about those runs must say what the record
//! says: every case named, each figure at least the recorded error, "exactly" only for errors
//! of zero.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn record() -> serde_json::Value {
    let path = workspace_root().join("tests/fixtures/expected/tf_runs_frozen.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The README's paragraph on TensorFlow running the frozen fixtures, white space normalized.
fn readme_paragraph() -> String {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let text = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    let start = text
        .find("`tests/fixtures/check_tf_runs_frozen.py` (in the fixture virtualenv)")
        .expect("the README's paragraph on check_tf_runs_frozen.py");
    let end = start + text[start..].find(" exactly.").expect("its end") + " exactly.".len();
    text[start..end].to_string()
}

/// The number right after `phrase` in `text`.
fn figure_after(text: &str, phrase: &str) -> f64 {
    let at = text
        .find(phrase)
        .unwrap_or_else(|| panic!("README: no {phrase:?}"))
        + phrase.len();
    let number: String = text[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '-'))
        .collect();
    number
        .parse()
        .unwrap_or_else(|_| panic!("README: {phrase:?} is not followed by a figure"))
}

#[test]
fn the_record_is_of_todays_frozen_graphs() {
    let record = record();
    let cases = record["cases"].as_object().unwrap();
    assert!(cases.len() >= 8, "every saved/ fixture, the .meta form too");
    let dir = tempfile::tempdir().unwrap();
    for (name, case) in cases {
        let out = dir.path().join(format!("{name}.pb"));
        let arguments: Vec<&str> = case["arguments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let run = Command::new(env!("CARGO_BIN_EXE_graphopt"))
            .current_dir(workspace_root())
            .arg("freeze")
            .args(&arguments)
            .arg("--out_graph")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{name}: graphopt freeze {arguments:?} failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let digest = Sha256::digest(std::fs::read(&out).unwrap());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            Some(hex.as_str()),
            case["sha256"].as_str(),
            "{name}: today's frozen graph is not the one TensorFlow ran; rerun \
             tests/fixtures/check_tf_runs_frozen.py in the fixture virtualenv"
        );
    }
}

#[test]
fn tensorflow_matched_every_element() {
    let record = record();
    let (rtol, atol) = (record["rtol"].as_f64(), record["atol"].as_f64());
    assert!(
        matches!((rtol, atol), (Some(r), Some(a)) if r > 0.0 && r <= 1e-5 && a > 0.0 && a <= r),
        "the record's element-wise bounds: rtol {rtol:?}, atol {atol:?}"
    );
    for (name, case) in record["cases"].as_object().unwrap() {
        assert_eq!(
            case["matches_recorded"], true,
            "{name}: TensorFlow's output of the frozen graph is not within atol + rtol * \
             |recorded| everywhere: {case}"
        );
        assert_eq!(case["mismatched_elements"], 0, "{name}: {case}");
        let worst = case["worst_element_rel_error"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: no worst element's relative error recorded"));
        if case["max_rel_error"] == 0.0 {
            assert_eq!(worst, 0.0, "{name}: exact, yet an element differs");
        }
    }
}

#[test]
fn the_readme_says_what_tensorflow_did() {
    let record = record();
    let error = |name: &str| {
        record["cases"][name]["max_rel_error"]
            .as_f64()
            .unwrap_or_else(|| panic!("{name}: no error recorded"))
    };
    let readme = readme_paragraph();
    for (name, phrase) in [
        ("keras_cnn", "the Keras CNN matches TF's recorded output to"),
        ("keras_normalization", "the Keras normalization model to"),
        ("tf1_sharded", "variables sharded over two devices to"),
    ] {
        let figure = figure_after(&readme, phrase);
        assert!(
            error(name) <= figure,
            "{name}: TensorFlow's error {:e} is over the README's {figure:e}",
            error(name)
        );
        // And not loose: the figure is the error rounded up, not a bound far above it.
        assert!(
            error(name) > figure / 2.0,
            "{name}: the README's {figure:e} is loose for an error of {:e}",
            error(name)
        );
    }
    let exact = readme
        .rsplit_once(';')
        .map(|(_, tail)| tail)
        .expect("the list of exact cases after the last ';'");
    for (name, phrase) in [
        ("while_embedding", "while-loop/embedding model"),
        ("tf1_saved_model", "TF1-style SavedModel"),
        ("tf1", "TF1 graph (GraphDef"),
        ("tf1_meta", "and `.meta`)"),
        ("tf1_partitioned", "partitioned variables"),
    ] {
        assert!(
            exact.contains(phrase),
            "README: {phrase:?} not among the exact cases"
        );
        assert_eq!(error(name), 0.0, "{name}: the README says exactly");
    }
    assert_eq!(
        record["cases"].as_object().unwrap().len(),
        8,
        "a case the README's sentence does not name"
    );
}
