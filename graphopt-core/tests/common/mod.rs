//! Fixture access shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use graphopt_core::io;
use graphopt_core::proto::GraphDef;

/// The fixture models the generator writes (tests/fixtures/generate.py).
pub const MODELS: &[&str] = &[
    "keras_cnn",
    "transformer_block",
    "while_rnn",
    "tf1_conv_bn",
    "bn_patterns",
    "training_leftovers",
    "resize_pad_conv",
];

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
