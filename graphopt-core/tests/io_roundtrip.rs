//! Every fixture survives binary -> graph -> binary and text -> graph -> binary, and writing is
//! deterministic.

mod common;

use bytes::Bytes;
use graphopt_core::io::{self, GraphFormat};
use graphopt_core::proto::GraphDef;
use prost::Message;

#[test]
fn binary_round_trip_keeps_every_byte_of_content() {
    for name in common::MODELS {
        let original = std::fs::read(common::model_path(name, "pb")).unwrap();
        let loaded = io::read_graph(common::model_path(name, "pb")).unwrap();
        assert_eq!(loaded.format, GraphFormat::Binary, "{name}");
        assert!(!loaded.graph.node.is_empty(), "{name}");
        assert_eq!(
            loaded.warnings,
            Vec::<String>::new(),
            "{name}: fields dropped"
        );
        let encoded = io::encode_graph(&loaded.graph);
        // TensorFlow's Python writer emits map entries in insertion order and we sort them, so
        // the bytes may be permuted, but nothing may be lost or added. The one exception is
        // map entries with a default value (function_calls' `resource_arg_unique_id`, `arg_attr`):
        // TensorFlow spells out the zero value, prost leaves it implicit; both decode the same.
        if *name == "function_calls" {
            assert_eq!(original.len() - encoded.len(), 4, "{name}");
        } else {
            assert_eq!(
                encoded.len(),
                original.len(),
                "{name}: a field was dropped or added"
            );
        }
        let again = GraphDef::decode(encoded.as_slice()).unwrap();
        assert!(
            again == loaded.graph,
            "{name}: binary round trip changed the graph"
        );
        assert!(
            encoded == io::encode_graph(&again),
            "{name}: encoding is not stable"
        );
    }
}

#[test]
fn tensorflow_text_parses_to_the_same_graph() {
    // generate.py writes no text form of graphs over 100 kB.
    let without_text = ["dense_mlp"];
    for name in common::MODELS {
        let has_text = common::model_path(name, "pbtxt").exists();
        assert_eq!(
            has_text,
            !without_text.contains(name),
            "{name}: text fixture"
        );
        if !has_text {
            continue;
        }
        let from_binary = common::load(name);
        let loaded = io::read_graph(common::model_path(name, "pbtxt")).unwrap();
        assert_eq!(loaded.format, GraphFormat::Text, "{name}");
        assert!(
            loaded.graph == from_binary,
            "{name}: TF's text and binary disagree"
        );
        assert!(
            io::encode_graph(&loaded.graph) == io::encode_graph(&from_binary),
            "{name}"
        );
    }
}

#[test]
fn our_text_round_trips_and_is_deterministic() {
    let out_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("graphopt-text");
    std::fs::create_dir_all(&out_dir).unwrap();
    for name in common::MODELS {
        let graph = common::load(name);
        let text = io::graph_to_text(&graph).unwrap();
        assert_eq!(
            text,
            io::graph_to_text(&graph).unwrap(),
            "{name}: text not stable"
        );
        let (reparsed, format) =
            io::decode_graph(Bytes::from(text.clone().into_bytes()), name.as_ref()).unwrap();
        assert_eq!(format, GraphFormat::Text);
        assert!(
            reparsed == graph,
            "{name}: our text does not read back to the same graph"
        );
        // Left for tests/fixtures/check_tf_reads_our_text.py, which parses these with TensorFlow.
        std::fs::write(out_dir.join(format!("{name}.pbtxt")), text).unwrap();
    }
}

#[test]
fn text_writer_escapes_and_formats_floats_readably() {
    let mut graph = GraphDef::default();
    let mut node = graphopt_core::proto::NodeDef {
        name: "c".into(),
        op: "Const".into(),
        ..Default::default()
    };
    let tensor = graphopt_core::proto::TensorProto {
        dtype: 1,
        float_val: vec![1.0, 0.1, 1e30, -2.5e-7, f32::INFINITY, f32::NAN],
        tensor_content: Bytes::from_static(b"\x00\xff\"'\\\n"),
        ..Default::default()
    };
    node.attr.insert(
        "value".into(),
        graphopt_core::proto::AttrValue {
            value: Some(graphopt_core::proto::attr_value::Value::Tensor(Box::new(
                tensor,
            ))),
        },
    );
    graph.node.push(node);
    let text = io::graph_to_text(&graph).unwrap();
    assert!(
        text.contains(r#"tensor_content: "\000\377\"\'\\\n""#),
        "{text}"
    );
    for expected in [
        "float_val: 1.0\n",
        "float_val: 0.1\n",
        "float_val: 1e30\n",
        "float_val: -2.5e-7\n",
        "float_val: inf\n",
        "float_val: nan\n",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in {text}");
    }
    let back = graphopt_core::text_format::parse::<GraphDef>(&text).unwrap();
    let original_bits: Vec<u32> = graph.node[0].attr["value"]
        .encode_to_vec()
        .iter()
        .map(|&b| u32::from(b))
        .collect();
    let back_bits: Vec<u32> = back.node[0].attr["value"]
        .encode_to_vec()
        .iter()
        .map(|&b| u32::from(b))
        .collect();
    assert_eq!(
        original_bits, back_bits,
        "floats must read back bit-exactly (NaN included)"
    );
}

#[test]
fn maps_are_written_in_key_order() {
    let graph = common::load("keras_cnn");
    let text = io::graph_to_text(&graph).unwrap();
    for block in text.split("\nnode {").skip(1) {
        let keys: Vec<&str> = block
            .lines()
            .filter(|l| l.starts_with("    key: "))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}

#[test]
fn weights_are_not_copied_when_loading() {
    let data = Bytes::from(std::fs::read(common::model_path("tf1_conv_bn", "pb")).unwrap());
    let range = data.as_ptr_range();
    let (graph, _) = io::decode_graph(data.clone(), "tf1_conv_bn.pb".as_ref()).unwrap();
    let mut shared = 0;
    for node in &graph.node {
        if let Some(graphopt_core::proto::attr_value::Value::Tensor(t)) =
            node.attr.get("value").and_then(|a| a.value.as_ref())
        {
            if !t.tensor_content.is_empty() {
                assert!(
                    range.contains(&t.tensor_content.as_ptr()),
                    "{}: weights copied",
                    node.name
                );
                shared += 1;
            }
        }
    }
    assert!(shared >= 3, "expected several weight tensors, saw {shared}");
}

#[test]
fn fields_unknown_to_graphopt_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(common::model_path("tf1_conv_bn", "pb")).unwrap();
    let clean = io::read_graph(common::model_path("tf1_conv_bn", "pb")).unwrap();
    assert!(clean.warnings.is_empty(), "{:?}", clean.warnings);
    // Field 99 (varint) of GraphDef: unknown to TensorFlow 2.21 and to graphopt.
    bytes.extend_from_slice(&[0x98, 0x06, 0x01]);
    let path = dir.path().join("future.pb");
    std::fs::write(&path, &bytes).unwrap();
    let loaded = io::read_graph(&path).unwrap();
    assert_eq!(loaded.graph, clean.graph);
    assert_eq!(loaded.warnings.len(), 1);
    assert!(
        loaded.warnings[0].contains("3 byte(s) of fields unknown"),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn streamed_file_equals_the_in_memory_encoding() {
    let dir = tempfile::tempdir().unwrap();
    for name in common::MODELS {
        let graph = common::load(name);
        let path = dir.path().join(format!("{name}.pb"));
        io::write_graph(&path, &graph, GraphFormat::Binary).unwrap();
        assert!(
            std::fs::read(&path).unwrap() == io::encode_graph(&graph),
            "{name}"
        );
    }
    // Library, versions and the deprecated version field after the nodes.
    let mut graph = common::load("tf1_conv_bn");
    graph.version = 7;
    graph.library = Some(Default::default());
    let path = dir.path().join("with_library.pb");
    io::write_graph(&path, &graph, GraphFormat::Binary).unwrap();
    assert!(std::fs::read(&path).unwrap() == io::encode_graph(&graph));
}

/// `transform --in_graph=X --out_graph=X`: the input is memory-mapped while the output is
/// written over it (by rename), and weights of several pages are released after writing.
/// Reading the result back gives the graph, and the graph still in memory is unchanged.
#[test]
fn a_graph_written_over_its_own_mapped_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.pb");
    let mut graph = common::load("tf1_conv_bn");
    let weights: Vec<u8> = (0..64 * 1024u32)
        .flat_map(|i| (i as f32).to_le_bytes())
        .collect();
    graph.node.push(graphopt_core::proto::NodeDef {
        name: "big".into(),
        op: "Const".into(),
        attr: [(
            "value".to_string(),
            graphopt_core::proto::AttrValue {
                value: Some(graphopt_core::proto::attr_value::Value::Tensor(Box::new(
                    graphopt_core::proto::TensorProto {
                        dtype: graphopt_core::proto::DataType::DtFloat as i32,
                        tensor_content: Bytes::from(weights.clone()),
                        ..Default::default()
                    },
                ))),
            },
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    });
    io::write_graph(&path, &graph, GraphFormat::Binary).unwrap();
    let loaded = io::read_graph(&path).unwrap();
    assert!(loaded.graph == graph);
    for _ in 0..2 {
        io::write_graph(&path, &loaded.graph, GraphFormat::Binary).unwrap();
        assert!(loaded.graph == graph, "the mapped graph changed");
        assert!(io::read_graph(&path).unwrap().graph == graph);
    }
}
