//! Checkpoints and freezing against TensorFlow's fixtures (tests/fixtures/generate_saved_models.py).

use std::collections::BTreeSet;
use std::path::PathBuf;

use graphopt_core::freeze::checkpoint::{Checkpoint, CheckpointError};
use graphopt_core::proto::GraphDef;
use graphopt_core::tensor::Data;

fn saved() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/saved")
}

#[test]
fn tf1_checkpoint_reads_every_variable() {
    let ckpt = Checkpoint::open(saved().join("tf1/model.ckpt")).unwrap();
    let keys: Vec<&str> = ckpt.keys().collect();
    assert_eq!(
        keys,
        ["conv/bias", "conv/weights", "dense/weights", "global_step"]
    );
    let weights = ckpt.read("conv/weights").unwrap();
    assert_eq!(weights.shape(), [3, 3, 2, 4]);
    let step = ckpt.read("global_step").unwrap();
    assert_eq!(step.data(), &Data::I64(ndarray::arr0(7i64).into_dyn()));
}

#[test]
fn savedmodel_checkpoints_read() {
    for name in ["keras_cnn", "while_embedding"] {
        let ckpt = Checkpoint::open(saved().join(name).join("variables/variables")).unwrap();
        assert!(
            ckpt.keys().any(|k| k == "_CHECKPOINTABLE_OBJECT_GRAPH"),
            "{name}"
        );
        for key in ckpt.keys().collect::<Vec<_>>() {
            ckpt.read(key)
                .unwrap_or_else(|e| panic!("{name} {key}: {e}"));
        }
    }
}

#[test]
fn damaged_checkpoints_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let base = saved().join("tf1/model.ckpt");
    let index = std::fs::read(format!("{}.index", base.display())).unwrap();
    let data = std::fs::read(format!("{}.data-00000-of-00001", base.display())).unwrap();
    let prefix = dir.path().join("m");
    let write = |index: &[u8], data: &[u8]| {
        std::fs::write(format!("{}.index", prefix.display()), index).unwrap();
        std::fs::write(format!("{}.data-00000-of-00001", prefix.display()), data).unwrap();
    };
    // Wrong prefix.
    let error = Checkpoint::open(dir.path().join("nope")).unwrap_err();
    assert!(
        error.to_string().contains("the checkpoint prefix?"),
        "{error}"
    );
    // Truncated index.
    write(&index[..index.len() / 2], &data);
    let error = Checkpoint::open(&prefix).unwrap_err();
    assert!(matches!(error, CheckpointError::File { .. }), "{error}");
    // Corrupted index block.
    let mut bad = index.clone();
    bad[5] ^= 0xff;
    write(&bad, &data);
    assert!(Checkpoint::open(&prefix)
        .unwrap_err()
        .to_string()
        .contains("checksum"));
    // Corrupted and truncated data.
    let mut bad = data.clone();
    bad[10] ^= 0xff;
    write(&index, &bad);
    let ckpt = Checkpoint::open(&prefix).unwrap();
    let errors: Vec<String> = ckpt
        .keys()
        .map(|k| {
            ckpt.read(k)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        })
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("checksum mismatch")),
        "{errors:?}"
    );
    write(&index, &data[..100]);
    let ckpt = Checkpoint::open(&prefix).unwrap();
    assert!(ckpt.keys().any(|k| ckpt
        .read(k)
        .err()
        .is_some_and(|e| e.to_string().contains("truncated"))));
    // Missing shard.
    std::fs::remove_file(format!("{}.data-00000-of-00001", prefix.display())).unwrap();
    let ckpt = Checkpoint::open(&prefix).unwrap();
    assert!(ckpt
        .read("conv/bias")
        .unwrap_err()
        .to_string()
        .contains("missing shard"));
}

/// The SavedModel fixture `name`, frozen with the default options.
fn freeze_saved(name: &str) -> graphopt_core::freeze::Frozen {
    graphopt_core::freeze::freeze_saved_model(&saved().join(name), &Default::default()).unwrap()
}

fn io_tensor(name: &str, file: &str) -> graphopt_core::tensor::Tensor {
    use prost::Message;
    let bytes = std::fs::read(saved().join(format!("{name}.io")).join(file)).unwrap();
    graphopt_core::tensor::Tensor::from_proto(
        &graphopt_core::proto::TensorProto::decode(bytes.as_slice()).unwrap(),
    )
    .unwrap()
}

fn max_error(a: &graphopt_core::tensor::Tensor, b: &graphopt_core::tensor::Tensor) -> f64 {
    let (Data::F32(x), Data::F32(y)) = (a.data(), b.data()) else {
        panic!("float outputs expected")
    };
    assert_eq!(x.shape(), y.shape());
    let scale = y.iter().fold(0f64, |m, v| m.max(f64::from(v.abs())));
    x.iter()
        .zip(y.iter())
        .fold(0f64, |m, (p, q)| m.max(f64::from((p - q).abs())))
        / scale
}

/// Runs `graph` on the fixture's recorded input (fed to `input`) and checks its `output`
/// against TensorFlow's recorded one.
fn assert_computes_tensorflows_output(graph: &GraphDef, fixture: &str, input: &str, output: &str) {
    let feeds = [(input.to_string(), io_tensor(fixture, "input_0.pb"))]
        .into_iter()
        .collect();
    let out = graphopt_core::eval::evaluate(graph, &feeds, &[output.into()], Default::default())
        .unwrap_or_else(|e| {
            let ops: BTreeSet<&str> = graph.node.iter().map(|n| n.op.as_str()).collect();
            panic!("{fixture}: {e}; ops {ops:?}")
        });
    let error = max_error(&out[0], &io_tensor(fixture, "output_0.pb"));
    assert!(error < 1e-6, "{fixture}: relative error {error}");
}

#[test]
fn tf1_graph_and_checkpoint_freeze_to_tensorflows_outputs() {
    let graph = graphopt_core::io::read_graph(saved().join("tf1/graph.pb"))
        .unwrap()
        .graph;
    let ckpt = Checkpoint::open(saved().join("tf1/model.ckpt")).unwrap();
    let frozen = graphopt_core::freeze::freeze_graph(&graph, &ckpt, &["probs".into()]).unwrap();
    assert!(
        !frozen
            .node
            .iter()
            .any(|n| n.op.starts_with("Variable") || n.op == "Assign"),
        "variables left"
    );
    graphopt_core::graph::validate(&frozen).unwrap();
    assert_computes_tensorflows_output(&frozen, "tf1", "input", "probs");
    // Unknown outputs and missing variables are named.
    let error = graphopt_core::freeze::freeze_graph(&graph, &ckpt, &["nope".into()]).unwrap_err();
    assert!(error.to_string().contains("'nope'"), "{error}");
}

#[test]
fn a_sharded_checkpoint_reads_each_variable_from_its_own_data_file() {
    let dir = saved().join("tf1_sharded");
    let ckpt = Checkpoint::open(dir.join("model.ckpt")).unwrap();
    assert_eq!(
        ckpt.keys().collect::<Vec<_>>(),
        [
            "layer0/bias",
            "layer0/kernel",
            "layer1/bias",
            "layer1/kernel"
        ]
    );
    // TensorFlow's Saver put each device's variables in a shard of its own.
    let shards: Vec<i32> = ckpt
        .keys()
        .map(|k| ckpt.entry(k).unwrap().shard_id)
        .collect();
    assert_eq!(shards, [0, 0, 1, 1]);
    assert_eq!(ckpt.read("layer1/kernel").unwrap().shape(), [7, 3]);
    let graph = graphopt_core::io::read_graph(dir.join("graph.pb"))
        .unwrap()
        .graph;
    let frozen = graphopt_core::freeze::freeze_graph(&graph, &ckpt, &["probs".into()]).unwrap();
    assert!(
        !frozen.node.iter().any(|n| n.op.starts_with("Variable")),
        "variables left"
    );
    assert_computes_tensorflows_output(&frozen, "tf1_sharded", "input", "probs");

    // Without its second data file, the variables stored there are an error naming the shard;
    // the first shard's still read.
    let copy = tempfile::tempdir().unwrap();
    for file in ["model.ckpt.index", "model.ckpt.data-00000-of-00002"] {
        std::fs::copy(dir.join(file), copy.path().join(file)).unwrap();
    }
    let partial = Checkpoint::open(copy.path().join("model.ckpt")).unwrap();
    partial.read("layer0/kernel").unwrap();
    let error = partial.read("layer1/kernel").unwrap_err().to_string();
    assert!(
        error.contains("missing shard") && error.contains("layer1/kernel"),
        "{error}"
    );
}

/// Freezes a Keras SavedModel fixture and checks the result: its signature's one input and
/// output, no variable or call left, valid, and TensorFlow's output computed.
fn assert_keras_freezes_to_tensorflows_output(name: &str, input: &str) {
    let frozen = freeze_saved(name);
    assert_eq!(frozen.inputs, [input]);
    assert_eq!(frozen.outputs, ["output_0"]);
    assert!(
        !frozen
            .graph
            .node
            .iter()
            .any(|n| n.op.contains("Variable") || n.op.contains("PartitionedCall")),
        "{:?}",
        frozen.graph.node.iter().map(|n| &n.op).collect::<Vec<_>>()
    );
    graphopt_core::graph::validate(&frozen.graph).unwrap();
    assert_computes_tensorflows_output(&frozen.graph, name, input, "output_0");
}

#[test]
fn keras_savedmodel_freezes_to_tensorflows_outputs() {
    assert_keras_freezes_to_tensorflows_output("keras_cnn", "image");
}

#[test]
fn while_loop_and_embedding_savedmodel_freezes_to_tensorflows_outputs() {
    let frozen = freeze_saved("while_embedding");
    assert_eq!(frozen.inputs, ["tokens"]);
    assert_eq!(frozen.outputs, ["logits"]);
    let ops: BTreeSet<&str> = frozen.graph.node.iter().map(|n| n.op.as_str()).collect();
    assert!(
        !ops.iter()
            .any(|o| o.contains("Variable") || o.starts_with("Resource")),
        "{ops:?}"
    );
    assert_computes_tensorflows_output(&frozen.graph, "while_embedding", "tokens", "logits");
}

#[test]
fn partitioned_tf1_variables_freeze_from_their_sliced_checkpoint_entries() {
    let dir = saved().join("tf1_partitioned");
    let graph = graphopt_core::io::read_graph(dir.join("graph.pb"))
        .unwrap()
        .graph;
    let ckpt = Checkpoint::open(dir.join("model.ckpt")).unwrap();
    // The parts are not keys of their own; each whole tensor is, and reads assembled.
    assert_eq!(
        ckpt.keys().collect::<Vec<_>>(),
        ["dense/kernel", "embedding"]
    );
    assert_eq!(ckpt.read("embedding").unwrap().shape(), [200, 6]);
    let frozen =
        graphopt_core::freeze::freeze_graph(&graph, &ckpt, &["logits".to_string()]).unwrap();
    assert_computes_tensorflows_output(&frozen, "tf1_partitioned", "ids", "logits");
    // The parts TensorFlow restores are the checkpoint's own slices: rows 67.. of the
    // embedding (a start that needs OrderedCode's two-byte form) equal the whole tensor's.
    let whole = ckpt.read("embedding").unwrap();
    let part = graphopt_core::tensor::Tensor::from_proto(
        &ckpt.read_slice("embedding", &[(67, 67), (0, -1)]).unwrap(),
    )
    .unwrap();
    let (Data::F32(whole), Data::F32(part)) = (whole.data(), part.data()) else {
        panic!("float tensors expected");
    };
    assert_eq!(part.shape(), [67, 6]);
    assert_eq!(
        part.iter().copied().collect::<Vec<_>>(),
        whole
            .iter()
            .skip(67 * 6)
            .take(67 * 6)
            .copied()
            .collect::<Vec<_>>()
    );
    // A slice that does not fit is an error naming the key.
    let error = ckpt
        .read_slice("embedding", &[(190, 20), (0, -1)])
        .unwrap_err();
    assert!(error.to_string().contains("embedding"), "{error}");
}

#[test]
fn tf1_style_savedmodels_freeze_through_their_saver() {
    let frozen = freeze_saved("tf1_saved_model");
    assert_eq!(frozen.inputs, ["x"]);
    assert_eq!(frozen.outputs, ["probabilities"]);
    assert!(!frozen
        .graph
        .node
        .iter()
        .any(|n| n.op.contains("Var") || n.op == "RestoreV2" || n.op == "ReadVariableOp"));
    assert_computes_tensorflows_output(&frozen.graph, "tf1_saved_model", "x", "probabilities");
}

#[test]
fn captured_constants_freeze_to_their_values() {
    // Keras' Normalization with a given mean and variance (as in keras.applications'
    // EfficientNet): the signature captures them as constant tensors, SavedConstant objects in
    // the SavedObjectGraph, not variables in the checkpoint.
    assert_keras_freezes_to_tensorflows_output("keras_normalization", "pixels");
}

#[test]
fn unsupported_captures_are_named_with_their_function() {
    use graphopt_core::proto::{saved_object::Kind, SavedModel, SavedResource};
    use prost::Message;
    let source = saved().join("keras_normalization");
    let model = SavedModel::decode(
        std::fs::read(source.join("saved_model.pb"))
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    // A copy of the fixture whose captured constants are changed by `edit`, frozen.
    let freeze_edited = |edit: &dyn Fn(&mut Kind)| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("variables")).unwrap();
        for file in ["variables.index", "variables.data-00000-of-00001"] {
            std::fs::copy(
                source.join("variables").join(file),
                dir.path().join("variables").join(file),
            )
            .unwrap();
        }
        let mut model = model.clone();
        let objects = &mut model.meta_graphs[0]
            .object_graph_def
            .as_mut()
            .unwrap()
            .nodes;
        for kind in objects.iter_mut().filter_map(|o| o.kind.as_mut()) {
            if matches!(kind, Kind::Constant(_)) {
                edit(kind);
            }
        }
        std::fs::write(dir.path().join("saved_model.pb"), model.encode_to_vec()).unwrap();
        graphopt_core::freeze::freeze_saved_model(dir.path(), &Default::default())
            .unwrap_err()
            .to_string()
    };
    // A kind freezing does not know: the capture, the function and the kind are named.
    let error = freeze_edited(&|kind| *kind = Kind::Resource(SavedResource::default()));
    assert!(
        error.contains("captured input 'Const_1' of '__inference_signature_wrapper")
            && error.contains("is a resource"),
        "{error}"
    );
    // A constant whose operation is not a Const.
    let error = freeze_edited(&|kind| {
        if let Kind::Constant(constant) = kind {
            constant.operation = "serving_default_pixels".into();
        }
    });
    assert!(
        error.contains("captured constant 'Const_1' of '__inference_signature_wrapper")
            && error.contains("'serving_default_pixels' is a Placeholder, not a Const"),
        "{error}"
    );
}

/// A TF1-style SavedModel of `graph` in `dir` (no `variables/`, which TensorFlow's loader
/// accepts as nothing to restore), whose signature maps the keys of
/// `inputs` and `outputs` to tensors.
fn write_saved_model(
    dir: &std::path::Path,
    graph: GraphDef,
    inputs: &[(&str, &str)],
    outputs: &[(&str, &str)],
) {
    use graphopt_core::proto::{
        meta_graph_def, tensor_info, DataType, MetaGraphDef, SavedModel, SignatureDef, TensorInfo,
    };
    use prost::Message;
    let infos = |list: &[(&str, &str)]| {
        list.iter()
            .map(|(key, tensor)| {
                let info = TensorInfo {
                    encoding: Some(tensor_info::Encoding::Name(tensor.to_string())),
                    dtype: DataType::DtFloat as i32,
                    ..Default::default()
                };
                (key.to_string(), info)
            })
            .collect()
    };
    let signature = SignatureDef {
        inputs: infos(inputs),
        outputs: infos(outputs),
        method_name: "tensorflow/serving/predict".into(),
        ..Default::default()
    };
    let model = SavedModel {
        saved_model_schema_version: 1,
        meta_graphs: vec![MetaGraphDef {
            meta_info_def: Some(meta_graph_def::MetaInfoDef {
                tags: vec!["serve".into()],
                ..Default::default()
            }),
            graph_def: Some(graph),
            signature_def: [("serving_default".to_string(), signature)].into(),
            ..Default::default()
        }],
    };
    std::fs::write(dir.join("saved_model.pb"), model.encode_to_vec()).unwrap();
}

#[test]
fn signature_keys_rename_inputs_and_name_outputs_even_an_output_that_is_an_input() {
    let graph = graphopt_core::text_format::parse(
        r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "y" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "sum" op: "AddV2" input: "x" input: "y" attr { key: "T" value { type: DT_FLOAT } } }
"#,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Keys swap the placeholders' names: `y` may take the name `x` once `x` has become `a`.
    write_saved_model(
        dir.path(),
        graph,
        &[("a", "x:0"), ("x", "y:0")],
        &[("total", "sum:0"), ("echo", "x:0")],
    );
    let frozen =
        graphopt_core::freeze::freeze_saved_model(dir.path(), &Default::default()).unwrap();
    graphopt_core::graph::validate(&frozen.graph).unwrap();
    let inputs_of = |name: &str| {
        let node = frozen.graph.node.iter().find(|n| n.name == name).unwrap();
        node.input.clone()
    };
    assert_eq!(inputs_of("sum"), ["a", "x"]);
    // The output reading input `x:0` reads it under its key `a`.
    assert_eq!(inputs_of("echo"), ["a"]);
    assert_eq!(inputs_of("total"), ["sum:0"]);
    let scalar =
        |v: f32| graphopt_core::tensor::Tensor::from_data(Data::F32(ndarray::arr0(v).into_dyn()));
    let feeds = [
        ("a".to_string(), scalar(2.0)),
        ("x".to_string(), scalar(5.0)),
    ]
    .into_iter()
    .collect();
    let out = graphopt_core::eval::evaluate(
        &frozen.graph,
        &feeds,
        &["total".into(), "echo".into()],
        Default::default(),
    )
    .unwrap();
    assert_eq!(out[0].data(), scalar(7.0).data());
    assert_eq!(out[1].data(), scalar(2.0).data());
}

#[test]
fn inspect_escapes_names_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write_saved_model(
        dir.path(),
        GraphDef::default(),
        &[("in\n\u{1b}[2Jput", "x:0")],
        &[("out", "y\u{1b}[31m:0")],
    );
    let model = graphopt_core::freeze::saved_model::read_saved_model(dir.path()).unwrap();
    let text = graphopt_core::freeze::saved_model::describe(&model);
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("in\\n\\u{1b}[2Jput: float"), "{text}");
    assert!(text.contains("(y\\u{1b}[31m:0)"), "{text}");
    assert_eq!(text.lines().count(), 7, "{text}");
}

// --- Hostile checkpoints (issue 11, fourth audit): bundles written in code, frozen under a
// --- small explicit budget.

/// A tensor bundle written the way TensorFlow writes one: an index table of one data block
/// and one data shard.
mod bundle {
    use std::path::Path;

    use graphopt_core::freeze::checkpoint::masked_crc32c;
    use graphopt_core::proto::{BundleEntryProto, BundleHeaderProto, DataType};
    use prost::Message;

    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// A table block of `entries` with its trailer (no compression, masked CRC32C).
    fn block(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in entries {
            varint(&mut out, 0);
            varint(&mut out, key.len() as u64);
            varint(&mut out, value.len() as u64);
            out.extend_from_slice(key);
            out.extend_from_slice(value);
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        let mut checked = out.clone();
        checked.push(0);
        let crc = masked_crc32c(&checked);
        out.push(0);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// Writes `PREFIX.index` holding the header and `entries` (sorted by key), and `shard` as
    /// the one data file.
    pub fn write(prefix: &Path, entries: &[(Vec<u8>, Vec<u8>)], shard: &[u8]) {
        let header = BundleHeaderProto {
            num_shards: 1,
            ..Default::default()
        };
        let mut all = vec![(Vec::new(), header.encode_to_vec())];
        all.extend_from_slice(entries);
        let data = block(&all);
        let mut handle = Vec::new();
        varint(&mut handle, 0);
        varint(&mut handle, data.len() as u64 - 5);
        let last = all.last().map(|e| e.0.clone()).unwrap_or_default();
        let index = block(&[(last, handle)]);
        let mut file = data;
        let index_offset = file.len() as u64;
        file.extend_from_slice(&index);
        let mut footer = Vec::new();
        for v in [0, 0, index_offset, index.len() as u64 - 5] {
            varint(&mut footer, v);
        }
        footer.resize(40, 0);
        footer.extend_from_slice(&0xdb47_7524_8b80_fb57u64.to_le_bytes());
        file.extend_from_slice(&footer);
        std::fs::write(format!("{}.index", prefix.display()), file).unwrap();
        std::fs::write(format!("{}.data-00000-of-00001", prefix.display()), shard).unwrap();
    }

    /// The entry of a float vector of `floats` elements stored at `offset` of the shard.
    pub fn float_entry(shard: &[u8], offset: usize, floats: usize) -> Vec<u8> {
        BundleEntryProto {
            dtype: DataType::DtFloat as i32,
            shape: Some(graphopt_core::tensor::shape_proto(&[floats])),
            offset: offset as i64,
            size: (floats * 4) as i64,
            crc32c: masked_crc32c(&shard[offset..offset + floats * 4]),
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// The entry of a scalar string tensor holding `value` at `offset` of `shard`, which it
    /// appends the stored bytes to (length, length checksum, bytes), checksummed as
    /// TensorFlow does.
    pub fn string_entry(shard: &mut Vec<u8>, value: &[u8]) -> Vec<u8> {
        let offset = shard.len();
        let mut stored = Vec::new();
        varint(&mut stored, value.len() as u64);
        let lengths = (value.len() as u32).to_le_bytes();
        let length_crc = masked_crc32c(&lengths).to_le_bytes();
        stored.extend_from_slice(&length_crc);
        stored.extend_from_slice(value);
        let mut checked = lengths.to_vec();
        checked.extend_from_slice(&length_crc);
        checked.extend_from_slice(value);
        shard.extend_from_slice(&stored);
        BundleEntryProto {
            dtype: DataType::DtString as i32,
            shape: Some(Default::default()),
            offset: offset as i64,
            size: stored.len() as i64,
            crc32c: masked_crc32c(&checked),
            ..Default::default()
        }
        .encode_to_vec()
    }
}

/// A 4 MiB memory budget: room for the small files below and a few frozen copies of a 256 KiB
/// tensor, not for 32 of them.
fn small_budget() -> graphopt_core::budget::Budget {
    graphopt_core::budget::Budget::new(4 << 20, u64::MAX)
}

/// Floats in the one checkpoint tensor `w` the hostile graphs below all read: 256 KiB.
const SHARED_FLOATS: usize = 64 << 10;

/// A TF1 graph of `count` VarHandleOps all created with `shared_name: "w"`, each read, the
/// reads summed by `out`.
fn shared_name_graph(count: usize) -> GraphDef {
    let mut text = String::new();
    let mut reads = String::new();
    for k in 0..count {
        text.push_str(&format!(
            r#"node {{ name: "v{k}" op: "VarHandleOp"
  attr {{ key: "dtype" value {{ type: DT_FLOAT }} }}
  attr {{ key: "shape" value {{ shape {{ dim {{ size: {SHARED_FLOATS} }} }} }} }}
  attr {{ key: "shared_name" value {{ s: "w" }} }} }}
node {{ name: "r{k}" op: "ReadVariableOp" input: "v{k}"
  attr {{ key: "dtype" value {{ type: DT_FLOAT }} }} }}
"#
        ));
        reads.push_str(&format!(" input: \"r{k}\""));
    }
    text.push_str(&format!(
        r#"node {{ name: "out" op: "AddN"{reads}
  attr {{ key: "N" value {{ i: {count} }} }} attr {{ key: "T" value {{ type: DT_FLOAT }} }} }}"#
    ));
    graphopt_core::text_format::parse(&text).unwrap()
}

#[test]
fn many_variables_sharing_one_checkpoint_tensor_are_charged_each() {
    // Each VarHandleOp becomes a Const over the same shard bytes (no copy), but the frozen
    // graph holds and writes every one: 1600 of a 512 KiB tensor made a 723 KB input abort at
    // 3 GB (text output) or write 2 GB (binary). Before, nothing charged them: freezing 32
    // here succeeded whatever the budget.
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("m");
    let shard: Vec<u8> = (0..SHARED_FLOATS as u32 * 4).map(|i| i as u8).collect();
    bundle::write(
        &prefix,
        &[(b"w".to_vec(), bundle::float_entry(&shard, 0, SHARED_FLOATS))],
        &shard,
    );
    let freeze = |count: usize| {
        let graph = shared_name_graph(count);
        small_budget().enter(|| {
            let checkpoint = Checkpoint::open(&prefix).unwrap();
            graphopt_core::freeze::freeze_graph(&graph, &checkpoint, &["out".into()])
        })
    };
    // A few fit: every variable is a Const of the shared tensor.
    let frozen = freeze(4).unwrap();
    let consts = frozen.node.iter().filter(|n| n.op == "Const").count();
    assert_eq!(consts, 4);
    // 32 x 256 KiB do not: refused naming the variable, the tensor and the checkpoint.
    let started = std::time::Instant::now();
    let error = freeze(32).unwrap_err();
    assert!(
        matches!(
            &error,
            graphopt_core::freeze::FreezeError::TooLarge { variable, key, .. }
                if variable.starts_with('v') && key == "w"
        ),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains(&format!("checkpoint {}", prefix.display()))
            && message.contains("memory budget"),
        "{message}"
    );
    assert!(started.elapsed().as_secs() < 5);
}

/// A SavedModel whose signature calls one function `f`, capturing variables.
struct CallModel<'a> {
    /// Distinct VarHandleOps `v0`, `v1`, ..., each with `variable_attrs`.
    handles: usize,
    /// The call's inputs, reading the handles in turn.
    inputs: usize,
    /// How many captured inputs the concrete function records, each bound to the one
    /// variable object, checkpoint key `w`: a float vector of [`SHARED_FLOATS`].
    bound: usize,
    /// Signature outputs `out0`, `out1`, ..., each naming `call:0`.
    keys: usize,
    variable_attrs: &'a str,
}

impl CallModel<'_> {
    /// `count` handles, each one input and one capture, and one output.
    fn captures(count: usize, variable_attrs: &str) -> CallModel<'_> {
        CallModel {
            handles: count,
            inputs: count,
            bound: count,
            keys: 1,
            variable_attrs,
        }
    }
}

/// Writes `model` as a SavedModel in `dir`.
fn write_capture_model(dir: &std::path::Path, model: &CallModel<'_>) {
    use graphopt_core::proto::{
        meta_graph_def, saved_object, tensor_info, trackable_object_graph, DataType, MetaGraphDef,
        SavedConcreteFunction, SavedModel, SavedObject, SavedObjectGraph, SavedVariable,
        SignatureDef, TensorInfo, TrackableObjectGraph,
    };
    use prost::Message;
    std::fs::create_dir_all(dir.join("variables")).unwrap();
    let mut shard: Vec<u8> = (0..SHARED_FLOATS as u32 * 4).map(|i| i as u8).collect();
    let w = bundle::float_entry(&shard, 0, SHARED_FLOATS);
    let objects = TrackableObjectGraph {
        nodes: vec![
            Default::default(),
            trackable_object_graph::TrackableObject {
                attributes: vec![trackable_object_graph::trackable_object::SerializedTensor {
                    name: "VARIABLE_VALUE".into(),
                    full_name: "w".into(),
                    checkpoint_key: "w".into(),
                }],
                ..Default::default()
            },
        ],
    };
    let object_graph = bundle::string_entry(&mut shard, &objects.encode_to_vec());
    bundle::write(
        &dir.join("variables/variables"),
        &[
            (b"_CHECKPOINTABLE_OBJECT_GRAPH".to_vec(), object_graph),
            (b"w".to_vec(), w),
        ],
        &shard,
    );
    let variable_attrs = model.variable_attrs;
    let mut text = String::new();
    for k in 0..model.handles {
        text.push_str(&format!(
            r#"node {{ name: "v{k}" op: "VarHandleOp"
  {variable_attrs} }}
"#
        ));
    }
    let (mut inputs, mut args, mut types) = (String::new(), String::new(), String::new());
    for k in 0..model.inputs {
        inputs.push_str(&format!(" input: \"v{}\"", k % model.handles.max(1)));
        args.push_str(&format!(
            " input_arg {{ name: \"h{k}\" type: DT_RESOURCE }}"
        ));
        types.push_str(" type: DT_RESOURCE");
    }
    text.push_str(&format!(
        r#"node {{ name: "call" op: "StatefulPartitionedCall"{inputs}
  attr {{ key: "Tin" value {{ list {{{types} }} }} }}
  attr {{ key: "Tout" value {{ list {{ type: DT_FLOAT }} }} }}
  attr {{ key: "f" value {{ func {{ name: "f" }} }} }} }}
library {{ function {{
  signature {{ name: "f"{args} output_arg {{ name: "y" type: DT_FLOAT }} is_stateful: true }}
  node_def {{ name: "r" op: "ReadVariableOp" input: "h0"
attr {{ key: "dtype" value {{ type: DT_FLOAT }} }} }}
  ret {{ key: "y" value: "r:value:0" }} }} }}"#
    ));
    let graph = graphopt_core::text_format::parse(&text).unwrap();
    let output = TensorInfo {
        encoding: Some(tensor_info::Encoding::Name("call:0".into())),
        dtype: DataType::DtFloat as i32,
        ..Default::default()
    };
    let signature = SignatureDef {
        outputs: (0..model.keys)
            .map(|k| (format!("out{k}"), output.clone()))
            .collect(),
        method_name: "tensorflow/serving/predict".into(),
        ..Default::default()
    };
    let variable = SavedObject {
        kind: Some(saved_object::Kind::Variable(SavedVariable {
            dtype: DataType::DtFloat as i32,
            ..Default::default()
        })),
        ..Default::default()
    };
    let saved = SavedModel {
        saved_model_schema_version: 1,
        meta_graphs: vec![MetaGraphDef {
            meta_info_def: Some(meta_graph_def::MetaInfoDef {
                tags: vec!["serve".into()],
                ..Default::default()
            }),
            graph_def: Some(graph),
            signature_def: [("serving_default".to_string(), signature)].into(),
            object_graph_def: Some(SavedObjectGraph {
                nodes: vec![Default::default(), variable],
                concrete_functions: [(
                    "f".to_string(),
                    SavedConcreteFunction {
                        bound_inputs: vec![1; model.bound],
                        ..Default::default()
                    },
                )]
                .into(),
            }),
            ..Default::default()
        }],
    };
    std::fs::write(dir.join("saved_model.pb"), saved.encode_to_vec()).unwrap();
}

/// The dtype and shape attributes of a float vector variable of `size` elements.
fn float_vector_attrs(size: i64) -> String {
    format!(
        r#"attr {{ key: "dtype" value {{ type: DT_FLOAT }} }}
  attr {{ key: "shape" value {{ shape {{ dim {{ size: {size} }} }} }} }}"#
    )
}

#[test]
fn many_captures_bound_to_one_checkpoint_tensor_are_charged_each() {
    // The SavedModel path: a signature call capturing `count` VarHandleOps, each bound to the
    // same variable object, hence the same checkpoint key.
    let write_model = |dir: &std::path::Path, count: usize| {
        write_capture_model(
            dir,
            &CallModel::captures(count, &float_vector_attrs(SHARED_FLOATS as i64)),
        )
    };
    let freeze = |count: usize| {
        let dir = tempfile::tempdir().unwrap();
        write_model(dir.path(), count);
        small_budget()
            .enter(|| graphopt_core::freeze::freeze_saved_model(dir.path(), &Default::default()))
    };
    // Two captures freeze: the call is inlined and reads the Const its first capture became.
    let frozen = freeze(2).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        frozen.graph.node.iter().any(|n| n.op == "Const"),
        "{:?}",
        frozen.graph
    );
    assert!(!frozen.graph.node.iter().any(|n| n.op.contains("Var")));
    // 32 captures of the same 256 KiB are refused, naming the capture and the tensor.
    let error = freeze(32).unwrap_err();
    assert!(
        matches!(
            &error,
            graphopt_core::freeze::FreezeError::TooLarge { variable, key, .. }
                if variable.starts_with('v') && key == "w"
        ),
        "{error}"
    );
    assert!(error.to_string().contains("memory budget"), "{error}");
}

#[test]
fn an_index_of_empty_dims_is_charged_at_its_decoded_size() {
    // A `dim {}` is 2 bytes in the index and a 32-byte struct once decoded (in a vector that
    // may have twice the capacity); the index's blocks were charged about 1 byte per byte, so
    // 48 KiB of empty dims (about 1 MiB decoded) opened under a 512 KiB budget. Now the
    // entry's decoding is charged first, and refused.
    use graphopt_core::proto::{BundleEntryProto, DataType, TensorShapeProto};
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("m");
    let write = |dims: usize| {
        let entry = BundleEntryProto {
            dtype: DataType::DtFloat as i32,
            shape: Some(TensorShapeProto {
                dim: vec![Default::default(); dims],
                ..Default::default()
            }),
            ..Default::default()
        };
        bundle::write(&prefix, &[(b"w".to_vec(), entry.encode_to_vec())], &[]);
    };
    let budget = || graphopt_core::budget::Budget::new(512 << 10, u64::MAX);
    // A rank-254 entry (TensorFlow's largest) opens.
    write(254);
    budget().enter(|| Checkpoint::open(&prefix)).unwrap();
    write(24 << 10);
    let index_size = std::fs::metadata(format!("{}.index", prefix.display()))
        .unwrap()
        .len();
    assert!(index_size < 64 << 10, "{index_size}");
    let error = budget().enter(|| Checkpoint::open(&prefix)).unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, CheckpointError::File { .. })
            && message.contains(&format!("{}.index", prefix.display()))
            && message.contains("entry 'w'")
            && message.contains("memory budget"),
        "{message}"
    );
    // Many small entries add up: their decoded size stays charged while the checkpoint is
    // open (32 entries of 1024 empty dims, each 2 KiB in the file and 32 KiB decoded).
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..32)
        .map(|k| {
            let entry = BundleEntryProto {
                dtype: DataType::DtFloat as i32,
                shape: Some(TensorShapeProto {
                    dim: vec![Default::default(); 1024],
                    ..Default::default()
                }),
                ..Default::default()
            };
            (format!("w{k:02}").into_bytes(), entry.encode_to_vec())
        })
        .collect();
    bundle::write(&prefix, &entries, &[]);
    let error = budget().enter(|| Checkpoint::open(&prefix)).unwrap_err();
    assert!(error.to_string().contains("memory budget"), "{error}");
}

/// Two float vectors `a` = [1, 2] and `b` = [10, 20] in one checkpoint at `prefix`.
fn write_two_vectors(prefix: &std::path::Path) {
    let shard: Vec<u8> = [1f32, 2., 10., 20.]
        .iter()
        .flat_map(|f| f.to_le_bytes())
        .collect();
    bundle::write(
        prefix,
        &[
            (b"a".to_vec(), bundle::float_entry(&shard, 0, 2)),
            (b"b".to_vec(), bundle::float_entry(&shard, 8, 2)),
        ],
        &shard,
    );
}

/// The float values of the Const `name` in `graph`.
fn const_floats(graph: &GraphDef, name: &str) -> Vec<f32> {
    let node = graph
        .node
        .iter()
        .find(|n| n.name == name && n.op == "Const")
        .unwrap_or_else(|| panic!("no Const '{name}'"));
    let Some(graphopt_core::proto::attr_value::Value::Tensor(t)) =
        node.attr["value"].value.as_ref()
    else {
        panic!("'{name}' has no value")
    };
    let tensor = graphopt_core::tensor::Tensor::from_proto(t).unwrap();
    let Data::F32(values) = tensor.data() else {
        panic!("'{name}' is not float")
    };
    values.iter().copied().collect()
}

#[test]
fn resource_variables_take_the_key_their_saver_restores_them_from() {
    // tf.compat.v1.train.Saver({"b": a, "a": b}) over resource variables: each
    // AssignVariableOp reads the RestoreV2 output through an Identity (the copy to the
    // variable's device). TensorFlow restores `a` from key "b"; graphopt used to miss the
    // Identity and take the key named like the variable, freezing `a` to b's value.
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("ckpt");
    write_two_vectors(&prefix);
    let variable = |name: &str| {
        format!(
            r#"node {{ name: "{name}" op: "VarHandleOp"
  attr {{ key: "dtype" value {{ type: DT_FLOAT }} }}
  attr {{ key: "shape" value {{ shape {{ dim {{ size: 2 }} }} }} }}
  attr {{ key: "shared_name" value {{ s: "{name}" }} }} }}
node {{ name: "read_{name}" op: "ReadVariableOp" input: "{name}"
  attr {{ key: "dtype" value {{ type: DT_FLOAT }} }} }}
"#
        )
    };
    let text = format!(
        r#"{}{}
node {{ name: "save/Const" op: "Const" attr {{ key: "dtype" value {{ type: DT_STRING }} }}
  attr {{ key: "value" value {{ tensor {{ dtype: DT_STRING tensor_shape {{}} string_val: "model" }} }} }} }}
node {{ name: "save/names" op: "Const" attr {{ key: "dtype" value {{ type: DT_STRING }} }}
  attr {{ key: "value" value {{ tensor {{ dtype: DT_STRING tensor_shape {{ dim {{ size: 2 }} }}
    string_val: "a" string_val: "b" }} }} }} }}
node {{ name: "save/slices" op: "Const" attr {{ key: "dtype" value {{ type: DT_STRING }} }}
  attr {{ key: "value" value {{ tensor {{ dtype: DT_STRING tensor_shape {{ dim {{ size: 2 }} }}
    string_val: "" string_val: "" }} }} }} }}
node {{ name: "save/RestoreV2" op: "RestoreV2"
  input: "save/Const" input: "save/names" input: "save/slices"
  attr {{ key: "dtypes" value {{ list {{ type: DT_FLOAT type: DT_FLOAT }} }} }} }}
node {{ name: "save/Identity" op: "Identity" input: "save/RestoreV2"
  attr {{ key: "T" value {{ type: DT_FLOAT }} }} }}
node {{ name: "save/AssignVariableOp" op: "AssignVariableOp" input: "b" input: "save/Identity"
  attr {{ key: "dtype" value {{ type: DT_FLOAT }} }} }}
node {{ name: "save/Identity_1" op: "Identity" input: "save/RestoreV2:1"
  attr {{ key: "T" value {{ type: DT_FLOAT }} }} }}
node {{ name: "save/AssignVariableOp_1" op: "AssignVariableOp" input: "a" input: "save/Identity_1"
  attr {{ key: "dtype" value {{ type: DT_FLOAT }} }} }}
"#,
        variable("a"),
        variable("b")
    );
    let graph = graphopt_core::text_format::parse(&text).unwrap();
    let checkpoint = Checkpoint::open(&prefix).unwrap();
    let frozen = graphopt_core::freeze::freeze_graph(
        &graph,
        &checkpoint,
        &["read_a".into(), "read_b".into()],
    )
    .unwrap();
    assert_eq!(const_floats(&frozen, "a"), [10., 20.]);
    assert_eq!(const_floats(&frozen, "b"), [1., 2.]);
}

#[test]
fn a_checkpoint_value_of_another_shape_than_the_variable_is_refused() {
    // TensorFlow's restore refuses it (Assign validates the shape); graphopt used to freeze
    // the variable to a Const of the checkpoint's shape, a graph that no longer computes.
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("ckpt");
    write_two_vectors(&prefix);
    let graph = |shape: &str| {
        graphopt_core::text_format::parse(&format!(
            r#"node {{ name: "a" op: "VariableV2"
  attr {{ key: "dtype" value {{ type: DT_FLOAT }} }}
  attr {{ key: "shape" value {{ shape {{ {shape} }} }} }} }}
node {{ name: "y" op: "Identity" input: "a" attr {{ key: "T" value {{ type: DT_FLOAT }} }} }}"#
        ))
        .unwrap()
    };
    let checkpoint = Checkpoint::open(&prefix).unwrap();
    let freeze = |shape: &str| {
        graphopt_core::freeze::freeze_graph(&graph(shape), &checkpoint, &["y".into()])
    };
    // Same shape, an unknown dimension, an unknown rank: frozen.
    for shape in ["dim { size: 2 }", "dim { size: -1 }", "unknown_rank: true"] {
        let frozen = freeze(shape).unwrap_or_else(|e| panic!("{shape}: {e}"));
        assert_eq!(const_floats(&frozen, "a"), [1., 2.]);
    }
    for shape in ["dim { size: 1 } dim { size: 2 }", "dim { size: 3 }", ""] {
        let Err(error) = freeze(shape) else {
            panic!("{shape}: frozen")
        };
        assert!(
            matches!(&error, graphopt_core::freeze::FreezeError::Mismatch { variable, .. } if variable == "a"),
            "{shape}: {error}"
        );
        assert!(error.to_string().contains("[2]"), "{shape}: {error}");
    }
}

#[test]
fn a_tf1_savedmodel_without_variables_freezes() {
    // TensorFlow's Builder leaves an empty variables/ directory when the graph has no
    // variables, and its loader restores nothing when variables.index is missing.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("variables")).unwrap();
    let graph = graphopt_core::text_format::parse(
        r#"node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "y" op: "Identity" input: "x" attr { key: "T" value { type: DT_FLOAT } } }"#,
    )
    .unwrap();
    write_saved_model(dir.path(), graph, &[("x", "x:0")], &[("out", "y:0")]);
    let frozen = graphopt_core::freeze::freeze_saved_model(dir.path(), &Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(frozen.inputs, ["x"]);
    assert_eq!(frozen.outputs, ["out"]);
}

#[test]
fn a_captured_variable_of_another_dtype_or_shape_than_its_checkpoint_value_is_refused() {
    // The checkpoint's `w` is a float vector of SHARED_FLOATS; the captured VarHandleOp
    // declares something else. TensorFlow's restore refuses both; graphopt used to freeze
    // the handle to the checkpoint's value whatever the graph declared.
    let freeze = |attrs: String| {
        let dir = tempfile::tempdir().unwrap();
        write_capture_model(dir.path(), &CallModel::captures(1, &attrs));
        graphopt_core::freeze::freeze_saved_model(dir.path(), &Default::default())
    };
    freeze(float_vector_attrs(SHARED_FLOATS as i64)).unwrap_or_else(|e| panic!("{e}"));
    freeze(float_vector_attrs(-1)).unwrap_or_else(|e| panic!("{e}"));
    let wrong_dtype = r#"attr { key: "dtype" value { type: DT_INT32 } }
  attr { key: "shape" value { shape { unknown_rank: true } } }"#;
    for attrs in [float_vector_attrs(3), wrong_dtype.to_string()] {
        let Err(error) = freeze(attrs.clone()) else {
            panic!("{attrs}: frozen")
        };
        assert!(
            matches!(&error, graphopt_core::freeze::FreezeError::Mismatch { variable, .. } if variable == "v0"),
            "{attrs}: {error}"
        );
    }
}

#[test]
fn an_output_whose_key_is_its_nodes_name_is_that_node() {
    // tf.compat.v1.saved_model.predict_signature_def({"x": x}, {"y": y}) with `y` named "y":
    // the output already bears its key's name. graphopt refused it ("cannot name output 'y':
    // a node of that name exists").
    let dir = tempfile::tempdir().unwrap();
    let graph = graphopt_core::text_format::parse(
        r#"node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "two" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 2 } } } }
node { name: "y" op: "Mul" input: "x" input: "two" attr { key: "T" value { type: DT_FLOAT } } }"#,
    )
    .unwrap();
    write_saved_model(dir.path(), graph, &[("x", "x:0")], &[("y", "y:0")]);
    let frozen = graphopt_core::freeze::freeze_saved_model(dir.path(), &Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(frozen.inputs, ["x"]);
    assert_eq!(frozen.outputs, ["y"]);
    let y = frozen.graph.node.iter().find(|n| n.name == "y").unwrap();
    assert_eq!(y.op, "Mul");
    graphopt_core::graph::validate(&frozen.graph).unwrap();
    // A key naming another output of its node is still refused: the node holds the name.
    let dir = tempfile::tempdir().unwrap();
    let graph = graphopt_core::text_format::parse(
        r#"node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "y" op: "IdentityN" input: "x" input: "x"
  attr { key: "T" value { list { type: DT_FLOAT type: DT_FLOAT } } } }"#,
    )
    .unwrap();
    write_saved_model(dir.path(), graph, &[("x", "x:0")], &[("y", "y:1")]);
    let error = graphopt_core::freeze::freeze_saved_model(dir.path(), &Default::default())
        .err()
        .map(|e| e.to_string());
    assert!(
        error.as_deref().is_some_and(|e| e.contains("'y'")),
        "{error:?}"
    );
}

/// A graph of Placeholders `x` and `u` and `y = x * 2`.
fn two_placeholder_graph() -> GraphDef {
    graphopt_core::text_format::parse(
        r#"node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "u" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "two" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
  attr { key: "value" value { tensor { dtype: DT_FLOAT tensor_shape {} float_val: 2 } } } }
node { name: "y" op: "Mul" input: "x" input: "two" attr { key: "T" value { type: DT_FLOAT } } }"#,
    )
    .unwrap()
}

#[test]
fn a_signature_input_the_outputs_do_not_need_stays_a_placeholder() {
    // predict_signature_def({"in": x, "unused": u}, {"out": y}): TensorFlow's frozen
    // signature keeps every input. graphopt pruned `u` and then failed ("node 'unused' (a
    // declared input or output) is not in the graph").
    let dir = tempfile::tempdir().unwrap();
    write_saved_model(
        dir.path(),
        two_placeholder_graph(),
        &[("in", "x:0"), ("unused", "u:0")],
        &[("out", "y:0")],
    );
    let frozen = graphopt_core::freeze::freeze_saved_model(dir.path(), &Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(frozen.inputs, ["in", "unused"]);
    let unused = frozen.graph.node.iter().find(|n| n.name == "unused");
    assert_eq!(unused.map(|n| n.op.as_str()), Some("Placeholder"));
    graphopt_core::graph::validate(&frozen.graph).unwrap();
    let mut names: Vec<&str> = frozen.graph.node.iter().map(|n| n.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["in", "out", "two", "unused", "y"]);
}

#[test]
fn a_signature_tensor_that_cannot_be_frozen_is_named() {
    let freeze = |inputs: &[(&str, &str)], outputs: &[(&str, &str)], composite: bool| {
        use graphopt_core::proto::{tensor_info, SavedModel};
        use prost::Message;
        let dir = tempfile::tempdir().unwrap();
        write_saved_model(dir.path(), two_placeholder_graph(), inputs, outputs);
        if composite {
            let path = dir.path().join("saved_model.pb");
            let mut model = SavedModel::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
            let signature = model.meta_graphs[0]
                .signature_def
                .get_mut("serving_default")
                .unwrap();
            for info in signature.outputs.values_mut() {
                info.encoding = Some(tensor_info::Encoding::CooSparse(tensor_info::CooSparse {
                    values_tensor_name: "y:0".into(),
                    ..Default::default()
                }));
            }
            std::fs::write(&path, model.encode_to_vec()).unwrap();
        }
        match graphopt_core::freeze::freeze_saved_model(dir.path(), &Default::default()) {
            Ok(_) => panic!("{inputs:?} {outputs:?}: frozen"),
            Err(e) => e.to_string(),
        }
    };
    // An input naming no node: was "cannot rename input 'nope' to 'x': the name is taken".
    let error = freeze(&[("x", "nope:0")], &[("out", "y:0")], false);
    assert!(
        error.contains("input 'x'") && error.contains("'nope:0'") && !error.contains("taken"),
        "{error}"
    );
    // A sparse output: was "needs outputs to know what to keep" (and a sparse output beside
    // others was dropped silently).
    let error = freeze(&[("in", "x:0")], &[("out", "y:0")], true);
    assert!(
        error.contains("output 'out'") && error.contains("sparse"),
        "{error}"
    );
    // A key that cannot name a node: was about node 'a', or an invalid output graph.
    for key in ["a:1", "", "^a"] {
        let error = freeze(&[("in", "x:0")], &[(key, "y:0")], false);
        assert!(
            error.contains(&format!("output '{key}'")) && error.contains("node name"),
            "{key}: {error}"
        );
    }
}

#[test]
fn parts_of_a_partitioned_tensor_cannot_share_bytes_around_an_empty_part() {
    // `v` [8] of parts rows 0..4 at shard offset 0 and rows 4..8 at offset 4: the second
    // overlaps the first by 12 bytes, aliasing that the reader refuses (a small checkpoint of
    // such parts would assemble into many times its size). An empty part (rows 4..4) at
    // offset 1 sorted between them hid the overlap from the check of neighbouring parts.
    use graphopt_core::freeze::checkpoint::{masked_crc32c, slice_key};
    use graphopt_core::proto::{
        tensor_slice_proto::{extent::HasLength, Extent},
        BundleEntryProto, DataType, TensorSliceProto,
    };
    use prost::Message;
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("ckpt");
    let shard: Vec<u8> = (0..40u8).collect();
    let part = |start: i64, length: i64, offset: usize| {
        let bytes = &shard[offset..offset + length as usize * 4];
        let entry = BundleEntryProto {
            dtype: DataType::DtFloat as i32,
            shape: Some(graphopt_core::tensor::shape_proto(&[length as usize])),
            offset: offset as i64,
            size: bytes.len() as i64,
            crc32c: masked_crc32c(bytes),
            ..Default::default()
        };
        let slice = TensorSliceProto {
            extent: vec![Extent {
                start,
                has_length: Some(HasLength::Length(length)),
            }],
        };
        (
            (slice_key("v", &[(start, length)]), entry.encode_to_vec()),
            slice,
        )
    };
    let read = |parts: &[(i64, i64, usize)]| {
        let (mut entries, slices): (Vec<_>, Vec<_>) =
            parts.iter().map(|&(s, l, o)| part(s, l, o)).unzip();
        entries.push((
            b"v".to_vec(),
            BundleEntryProto {
                dtype: DataType::DtFloat as i32,
                shape: Some(graphopt_core::tensor::shape_proto(&[8])),
                slices,
                ..Default::default()
            }
            .encode_to_vec(),
        ));
        entries.sort();
        bundle::write(&prefix, &entries, &shard);
        Checkpoint::open(&prefix).unwrap().read_proto("v")
    };
    // Disjoint parts assemble.
    let whole = read(&[(0, 4, 0), (4, 4, 16)]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(&whole.tensor_content[..], &shard[..32]);
    let error = read(&[(0, 4, 0), (4, 0, 1), (4, 4, 4)])
        .unwrap_err()
        .to_string();
    assert!(error.contains("overlap"), "{error}");
}

#[test]
fn a_call_named_by_many_signature_outputs_is_bound_once() {
    // Each output key re-read the call's bindings: keys x captures steps (10^8 here, minutes
    // in the dev profile) for a 200 KB file, which no budget saw.
    let (captures, keys) = (20_000usize, 5_000usize);
    let dir = tempfile::tempdir().unwrap();
    let attrs = float_vector_attrs(SHARED_FLOATS as i64);
    let model = CallModel {
        handles: 1,
        inputs: captures,
        bound: captures,
        keys,
        variable_attrs: &attrs,
    };
    write_capture_model(dir.path(), &model);
    let started = std::time::Instant::now();
    let frozen = graphopt_core::freeze::freeze_saved_model(dir.path(), &Default::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let elapsed = started.elapsed();
    assert_eq!(frozen.outputs.len(), keys);
    assert_eq!(const_floats(&frozen.graph, "v0").len(), SHARED_FLOATS);
    assert!(elapsed.as_secs() < 15, "{elapsed:?}");
}

#[test]
fn a_call_with_fewer_inputs_than_recorded_captures_is_refused() {
    // Captures are a call's last inputs: with more recorded than the call has, the inputs
    // would be matched to the wrong objects.
    let dir = tempfile::tempdir().unwrap();
    let attrs = float_vector_attrs(SHARED_FLOATS as i64);
    let model = CallModel {
        bound: 3,
        ..CallModel::captures(2, &attrs)
    };
    write_capture_model(dir.path(), &model);
    let error = graphopt_core::freeze::freeze_saved_model(dir.path(), &Default::default())
        .expect_err("more captures than inputs");
    assert!(
        error.to_string().contains(
            "the call 'call' of 'f' has 2 inputs, but its function records 3 captured ones"
        ),
        "{error}"
    );
}
