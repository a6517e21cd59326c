//! What the real consumers did with graphopt's legalized graphs, as recorded by the committed
//! scripts in tests/consumers/ (OpenCV's dnn importer, run from Python), tied to today's
//! output: each record carries the SHA-256 of the graph it judged, and this test legalizes the
//! fixture afresh and fails when the bytes differ, so a record can never speak of an older
//! graph. Re-run the script after an intended change (see its docstring).

mod common;

use graphopt_core::io;
use graphopt_core::transforms::{self, Registry};
use sha2::{Digest, Sha256};

/// Fixtures OpenCV must load and compute within the record's tolerance of TensorFlow: every
/// CNN fixture of the generator that uses only ops OpenCV's importer implements as TensorFlow
/// does.
const OPENCV_MUST_MATCH: &[&str] = &[
    "keras_cnn",
    "tf1_conv_bn",
    "bn_patterns",
    "densenet_block",
    "efficientnet_block",
    "keras_cnn@deploy",
    "densenet_block@deploy",
    "efficientnet_block@deploy",
];

fn record(consumer: &str) -> serde_json::Value {
    let path = common::fixtures().join(format!("expected/{consumer}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn opencv_judged_todays_graphs() {
    let report = record("opencv");
    let cases = report["cases"].as_object().unwrap();
    for (case, judged) in cases {
        let name = case.split('@').next().unwrap();
        let (inputs, outputs) = common::io_names(name);
        let mut graph = common::load(name);
        let specs = transforms::parse(judged["pipeline"].as_str().unwrap()).unwrap();
        transforms::run(
            &Registry::with_builtins(),
            &mut graph,
            &specs,
            &inputs,
            &outputs,
        )
        .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(
            sha256_hex(&io::encode_graph(&graph)),
            judged["sha256"].as_str().unwrap(),
            "{case}: the graph OpenCV judged is not today's output; run tests/consumers/check_opencv.py"
        );
    }
    for case in OPENCV_MUST_MATCH {
        let judged = &cases[*case];
        assert_eq!(
            judged["loaded"], true,
            "{case}: OpenCV did not load it: {judged}"
        );
        assert_eq!(
            judged["matches_tensorflow"], true,
            "{case}: OpenCV's outputs differ from TensorFlow's: {judged}"
        );
    }
    assert_eq!(report["opencv_version"], "4.10.0");
}
