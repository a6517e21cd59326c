//! Fixture access shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use graphopt_core::io;
use graphopt_core::proto::GraphDef;

/// The fixture models the generator writes (tests/fixtures/generate.py).
pub const MODELS: &[&str] = &["keras_cnn", "transformer_block", "while_rnn", "tf1_conv_bn"];

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
