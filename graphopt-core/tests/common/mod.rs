//! Fixture access shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use graphopt_core::io;
use graphopt_core::proto::GraphDef;

pub mod graphs;
pub mod readme;

/// Every fixture model the generators write (tests/fixtures/generate.py and
/// generate_more.py); `every_fixture_is_listed` keeps this list complete.
pub const MODELS: &[&str] = &[
    "keras_cnn",
    "transformer_block",
    "while_rnn",
    "tf1_conv_bn",
    "bn_patterns",
    "training_leftovers",
    "resize_pad_conv",
    "atrous_conv",
    "dense_mlp",
    "function_calls",
    "efficientnet_block",
    "densenet_block",
    "bert_encoder",
];

/// The fixtures' names as found in tests/fixtures/models.
pub fn fixture_files() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join("models"))
        .expect("fixtures/models")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".pb").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

pub fn model_path(name: &str, extension: &str) -> PathBuf {
    fixtures()
        .join("models")
        .join(format!("{name}.{extension}"))
}

pub fn load(name: &str) -> GraphDef {
    io::read_graph(model_path(name, "pb"))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
        .graph
}

pub fn expected(name: &str) -> serde_json::Value {
    let path = fixtures().join("expected").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A TensorProto file of the fixture data folder as a tensor.
pub fn tensor(model: &str, file: &str) -> graphopt_core::tensor::Tensor {
    use prost::Message;
    let path = fixtures().join("data").join(model).join(file);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let proto = graphopt_core::proto::TensorProto::decode(bytes.as_slice()).unwrap();
    graphopt_core::tensor::Tensor::from_proto(&proto).unwrap()
}

/// Names of a fixture's inputs and outputs, from its expectations.
pub fn io_names(model: &str) -> (Vec<String>, Vec<String>) {
    let expected = expected(model);
    let names = |key: &str| -> Vec<String> {
        expected[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect()
    };
    (names("inputs"), names("outputs"))
}

/// Error of `a` against TensorFlow's `b`: (largest |a - b| divided by the largest |b|, largest
/// |a - b|). Scaling by the tensor's magnitude rather than per element keeps outputs that come
/// from cancelling large float32 terms (where TensorFlow's own rounding is the noise) from
/// dominating.
pub fn relative_error(
    a: &graphopt_core::tensor::Tensor,
    b: &graphopt_core::tensor::Tensor,
) -> (f64, f64) {
    use graphopt_core::tensor::Data;
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    let (Data::F32(x), Data::F32(y)) = (a.data(), b.data()) else {
        panic!(
            "expected float32 tensors, got {:?} and {:?}",
            a.dtype(),
            b.dtype()
        );
    };
    let scale = y
        .iter()
        .fold(0f64, |m, v| m.max(f64::from(v.abs())))
        .max(f64::MIN_POSITIVE);
    let abs = x
        .iter()
        .zip(y.iter())
        .fold(0f64, |m, (p, q)| m.max(f64::from((p - q).abs())));
    assert!(
        x.iter().all(|v| v.is_finite()) == y.iter().all(|v| v.is_finite()),
        "non-finite values differ"
    );
    (abs / scale, abs)
}

/// The fixture after `transform_string`, run with the fixture's inputs and outputs.
pub fn apply(model: &str, transform_string: &str) -> GraphDef {
    use graphopt_core::transforms::{self, Registry};
    let (inputs, outputs) = io_names(model);
    let mut graph = load(model);
    let specs = transforms::parse(transform_string).unwrap();
    transforms::run(
        &Registry::with_builtins(),
        &mut graph,
        &specs,
        &inputs,
        &outputs,
    )
    .unwrap_or_else(|e| panic!("{model} `{transform_string}`: {e}"));
    graph
}

/// Lowercase hex SHA-256 of `bytes`, as the committed records write digests.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs a fixture with graphopt's evaluator on TensorFlow's inputs.
pub fn run_fixture(model: &str, graph: &GraphDef) -> Vec<graphopt_core::tensor::Tensor> {
    let (inputs, outputs) = io_names(model);
    let feeds = inputs
        .iter()
        .enumerate()
        .map(|(k, name)| (name.clone(), tensor(model, &format!("input_{k}.pb"))))
        .collect();
    graphopt_core::eval::evaluate(graph, &feeds, &outputs, Default::default())
        .unwrap_or_else(|e| panic!("{model}: {e}"))
}

/// Element-wise closeness, as numpy's `allclose`: every |a - b| <= atol + rtol * |b|
/// (b is TensorFlow's), NaN matching NaN. Returns the first element that is not close.
pub fn first_not_close(
    a: &graphopt_core::tensor::Tensor,
    b: &graphopt_core::tensor::Tensor,
    rtol: f64,
    atol: f64,
) -> Option<(usize, f64, f64)> {
    assert_eq!(a.shape(), b.shape(), "shapes differ");
    assert_eq!(a.dtype(), b.dtype(), "dtypes differ");
    let (x, y) = match (a.floats(), b.floats()) {
        (Some(x), Some(y)) => (x, y),
        _ => {
            let ints = |t: &graphopt_core::tensor::Tensor| {
                t.integers()
                    .map(|v| v.into_iter().map(|i| i as f64).collect::<Vec<_>>())
            };
            (ints(a).expect("numeric"), ints(b).expect("numeric"))
        }
    };
    x.iter().zip(&y).enumerate().find_map(|(i, (&p, &q))| {
        let close = (p.is_nan() && q.is_nan()) || p == q || (p - q).abs() <= atol + rtol * q.abs();
        (!close).then_some((i, p, q))
    })
}

/// Runs `graph` on the fixture's TensorFlow inputs and checks every output against
/// TensorFlow's ([`assert_outputs_match`]).
pub fn assert_matches_tensorflow(model: &str, graph: &GraphDef, tolerance: f64, atol: f64) {
    assert_outputs_match(model, model, &run_fixture(model, graph), tolerance, atol);
}

/// Checks `outputs`, a run of fixture `model`, against TensorFlow's: relative to each output's
/// magnitude (`relative_error`) within `tolerance`, and element-wise within `tolerance`
/// relative plus `atol` absolute, so small outputs cannot hide an error behind a large one.
/// `what` names the run in a failure.
pub fn assert_outputs_match(
    what: &str,
    model: &str,
    outputs: &[graphopt_core::tensor::Tensor],
    tolerance: f64,
    atol: f64,
) {
    assert_outputs_match_with(what, model, outputs, tolerance, tolerance, atol);
}

/// [`assert_outputs_match`] with the two tolerances apart: `tolerance` relative to each
/// output's magnitude, `rtol` and `atol` element-wise.
pub fn assert_outputs_match_with(
    what: &str,
    model: &str,
    outputs: &[graphopt_core::tensor::Tensor],
    tolerance: f64,
    rtol: f64,
    atol: f64,
) {
    assert_eq!(
        outputs.len(),
        io_names(model).1.len(),
        "{what}: output count"
    );
    for (k, value) in outputs.iter().enumerate() {
        let theirs = tensor(model, &format!("output_{k}.pb"));
        let (rel, abs) = relative_error(value, &theirs);
        assert!(
            rel <= tolerance,
            "{what} output {k}: relative error {rel:e} (absolute {abs:e})"
        );
        if let Some((i, ours, tf)) = first_not_close(value, &theirs, rtol, atol) {
            panic!("{what} output {k} element {i}: {ours}, TensorFlow {tf} (rtol {rtol:e}, atol {atol:e})");
        }
    }
}
