//! The prost code and descriptor set in `src/proto/` are generated from `proto/` and committed,
//! so users compile neither protox nor prost-build. This test regenerates both and fails when
//! the committed copies are stale. Run with `GRAPHOPT_BLESS=1` to rewrite them.

use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("graphopt-core sits inside the workspace")
        .to_path_buf()
}

fn generate() -> (Vec<u8>, String) {
    let root = workspace_root();
    let proto_dir = root.join("proto");
    let files = [
        "tensorflow/graph.proto",
        "tensorflow/saved_model.proto",
        "tensorflow/tensor_bundle.proto",
    ];
    let descriptors = protox::compile(files, [&proto_dir]).expect("proto/ compiles");
    let descriptor_bytes = prost::Message::encode_to_vec(&descriptors);

    let out = tempfile::tempdir().expect("temp dir");
    let mut config = prost_build::Config::new();
    config
        .btree_map(["."])
        .enable_type_names()
        .bytes(["."])
        // An AttrValue is as large as its largest variant: unboxed, a whole TensorProto
        // (about 450 bytes) in every attribute of every node, and every B-tree leaf of an
        // attribute map about 5 KB. Boxed, the rare tensor and list values pay for themselves.
        .boxed(".tensorflow.AttrValue.value.tensor")
        .boxed(".tensorflow.AttrValue.value.list")
        .out_dir(out.path())
        .compile_fds(descriptors)
        .expect("prost-build generates code");
    let code = std::fs::read_to_string(out.path().join("tensorflow.rs")).expect("generated file");
    (descriptor_bytes, code)
}

#[test]
fn committed_generated_code_is_current() {
    let (descriptor_bytes, code) = generate();
    let dir = workspace_root().join("graphopt-core/src/proto");
    let code_path = dir.join("tensorflow.rs");
    let descriptor_path = dir.join("descriptor.bin");
    if std::env::var("GRAPHOPT_BLESS").is_ok_and(|v| !v.is_empty() && v != "0") {
        std::fs::write(&code_path, &code).expect("write generated code");
        std::fs::write(&descriptor_path, &descriptor_bytes).expect("write descriptor set");
        return;
    }
    let committed_code = std::fs::read_to_string(&code_path).unwrap_or_default();
    let committed_descriptor = std::fs::read(&descriptor_path).unwrap_or_default();
    assert!(
        committed_code == code && committed_descriptor == descriptor_bytes,
        "graphopt-core/src/proto is stale relative to proto/; regenerate with \
         `GRAPHOPT_BLESS=1 cargo test -p graphopt-core --test proto_codegen`"
    );
}
