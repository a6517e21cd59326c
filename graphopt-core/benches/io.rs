//! I/O benchmark: load, validate, summarize and write a large synthetic frozen graph.
//!
//! `cargo bench -p graphopt-core --bench io [-- SIZE_MB]` (default 400 MB of weights). Prints
//! wall times and the process's peak resident memory, which shows whether weight bytes are
//! copied on load (peak close to twice the file size means they are not: file buffer + output).

use std::time::Instant;

use bytes::Bytes;
use graphopt_core::proto::{
    attr_value, tensor_shape_proto, AttrValue, GraphDef, NodeDef, TensorProto, TensorShapeProto,
};
use graphopt_core::{graph, io, summary};

fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn synthetic_graph(total_mb: usize) -> GraphDef {
    let chunk_elements = 1 << 20; // 4 MiB of f32 per constant
    let constants = (total_mb / 4).max(1);
    let mut graph = GraphDef::default();
    graph.node.push(NodeDef {
        name: "input".into(),
        op: "Placeholder".into(),
        attr: [(
            "dtype".to_string(),
            AttrValue {
                value: Some(attr_value::Value::Type(1)),
            },
        )]
        .into(),
        ..Default::default()
    });
    let mut previous = "input".to_string();
    for i in 0..constants {
        let content: Vec<u8> = (0..chunk_elements * 4)
            .map(|b| (b * 31 + i) as u8)
            .collect();
        let tensor = TensorProto {
            dtype: 1,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![tensor_shape_proto::Dim {
                    size: chunk_elements as i64,
                    name: String::new(),
                }],
                unknown_rank: false,
            }),
            tensor_content: Bytes::from(content),
            ..Default::default()
        };
        let weight = format!("layer{i}/weights");
        graph.node.push(NodeDef {
            name: weight.clone(),
            op: "Const".into(),
            attr: [
                (
                    "dtype".to_string(),
                    AttrValue {
                        value: Some(attr_value::Value::Type(1)),
                    },
                ),
                (
                    "value".to_string(),
                    AttrValue {
                        value: Some(attr_value::Value::Tensor(tensor)),
                    },
                ),
            ]
            .into(),
            ..Default::default()
        });
        let add = format!("layer{i}/add");
        graph.node.push(NodeDef {
            name: add.clone(),
            op: "AddV2".into(),
            input: vec![previous, weight],
            attr: [(
                "T".to_string(),
                AttrValue {
                    value: Some(attr_value::Value::Type(1)),
                },
            )]
            .into(),
            ..Default::default()
        });
        previous = add;
    }
    graph
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        let path = args.get(i + 1).expect("--measure PATH");
        measure(std::path::Path::new(path));
        return;
    }
    let total_mb: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(400);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("big.pb");
    io::write_graph(&path, &synthetic_graph(total_mb), io::GraphFormat::Binary).expect("write");
    // Measure in a fresh process so building the input does not count towards peak memory.
    let status = std::process::Command::new(std::env::current_exe().expect("own path"))
        .arg("--measure")
        .arg(&path)
        .status()
        .expect("run measurement");
    assert!(status.success());
}

fn measure(path: &std::path::Path) {
    let file_mb = std::fs::metadata(path)
        .map(|m| m.len() as f64 / 1048576.0)
        .unwrap_or(0.0);

    let start = Instant::now();
    let loaded = io::read_graph(path).expect("read");
    let load = start.elapsed();
    let rss_after_load = peak_rss_mb().unwrap_or(0.0);

    let start = Instant::now();
    graph::validate(&loaded.graph).expect("valid");
    let validate = start.elapsed();

    let start = Instant::now();
    let report = summary::summarize(&loaded.graph, Some(loaded.file_size));
    let summarize = start.elapsed();

    let out = path.with_extension("out.pb");
    let start = Instant::now();
    io::write_graph(&out, &loaded.graph, io::GraphFormat::Binary).expect("write");
    let write = start.elapsed();

    println!(
        "file: {file_mb:.0} MiB, {} nodes, {} const parameters",
        report.node_count, report.const_parameters
    );
    println!("load:      {:>8.1} ms", load.as_secs_f64() * 1e3);
    println!("validate:  {:>8.1} ms", validate.as_secs_f64() * 1e3);
    println!("summarize: {:>8.1} ms", summarize.as_secs_f64() * 1e3);
    println!(
        "write:     {:>8.1} ms (encode + write + fsync)",
        write.as_secs_f64() * 1e3
    );
    println!(
        "peak RSS: {rss_after_load:.0} MiB after load (file {file_mb:.0} MiB), {:.0} MiB after write",
        peak_rss_mb().unwrap_or(0.0)
    );
}
