//! I/O benchmark: load, validate, summarize and write a large synthetic frozen graph.
//!
//! `cargo bench -p graphopt-core --bench io [-- SIZE_MB]` (default 400 MB of weights). Prints
//! wall times and the process's peak resident memory, which shows whether weight bytes are
//! copied on load: the input is memory-mapped, so a peak well under the file size means the
//! weights stayed in the page cache until the writer read them.
//!
//! `cargo bench -p graphopt-core --bench io -- --per-byte` measures decode memory per file byte
//! on the shapes that expand most (nodes without weights, attribute maps, lists of messages),
//! binary and text, each in a fresh process: peak RSS growth during `read_graph` divided by the
//! file's size.

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
                        value: Some(attr_value::Value::Tensor(Box::new(tensor))),
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

/// Graphs whose decoded form is large for their file size, each about `target` bytes encoded.
fn expanding_graphs(target: usize) -> Vec<(&'static str, GraphDef)> {
    use prost::Message;
    let grow = |make: &dyn Fn(usize) -> NodeDef| -> GraphDef {
        let mut graph = GraphDef::default();
        let mut size = 0;
        let mut i = 0;
        while size < target {
            let node = make(i);
            size += node.encoded_len() + 3;
            graph.node.push(node);
            i += 1;
        }
        graph
    };
    let attr = |value: attr_value::Value| AttrValue { value: Some(value) };
    let mut list = attr_value::ListValue::default();
    let mut tensors = 0;
    while tensors * 2 < target {
        list.tensor.push(TensorProto::default());
        tensors += 1;
    }
    let list_graph = GraphDef {
        node: vec![NodeDef {
            name: "tensors".into(),
            op: "Const".into(),
            attr: [(
                "list".to_string(),
                attr(attr_value::Value::List(Box::new(list))),
            )]
            .into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    vec![
        ("empty nodes", grow(&|_| NodeDef::default())),
        (
            "chain (name, op, input)",
            grow(&|i| NodeDef {
                name: format!("n{i}"),
                op: "Identity".into(),
                input: vec![format!("n{}", i.saturating_sub(1))],
                ..Default::default()
            }),
        ),
        (
            "nodes with one attribute",
            grow(&|i| NodeDef {
                name: format!("n{i}"),
                op: "Const".into(),
                attr: [("T".to_string(), attr(attr_value::Value::Type(1)))].into(),
                ..Default::default()
            }),
        ),
        (
            "nodes with many empty inputs",
            grow(&|_| NodeDef {
                input: vec![String::new(); 1000],
                ..Default::default()
            }),
        ),
        ("attribute list of empty tensors", list_graph),
    ]
}

/// Decode memory per file byte of each expanding graph, binary and text.
fn per_byte() {
    let dir = tempfile::tempdir().expect("temp dir");
    println!(
        "{:<34} {:>6} {:>10} {:>10} {:>12} {:>12}",
        "graph", "format", "file KiB", "peak MiB", "bytes/byte", "estimate/b"
    );
    for (name, graph) in expanding_graphs(4 << 20) {
        for format in [io::GraphFormat::Binary, io::GraphFormat::Text] {
            let path = dir.path().join(format!(
                "g.{}",
                if format == io::GraphFormat::Binary {
                    "pb"
                } else {
                    "pbtxt"
                }
            ));
            io::write_graph(&path, &graph, format).expect("write");
            let out = std::process::Command::new(std::env::current_exe().expect("own path"))
                .arg("--load")
                .arg(&path)
                .output()
                .expect("run measurement");
            let text = String::from_utf8_lossy(&out.stdout);
            let mut fields = text.split_whitespace();
            let (grown, file): (f64, f64) = (
                fields
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN),
                fields
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN),
            );
            let estimate = match format {
                io::GraphFormat::Binary => {
                    let bytes = std::fs::read(&path).expect("read back");
                    io::wire::estimate(&bytes, "tensorflow.GraphDef")
                        .map(|e| (e.memory + e.nodes * io::PROCESSING_BYTES_PER_NODE) as f64 / file)
                }
                io::GraphFormat::Text => Some(io::TEXT_BYTES_PER_BYTE as f64),
            };
            let outcome = if out.status.success() {
                format!(
                    "{:>12.1} {:>12.1}",
                    grown / file,
                    estimate.unwrap_or(f64::NAN)
                )
            } else {
                format!("  refused: {}", String::from_utf8_lossy(&out.stderr).trim())
            };
            println!(
                "{name:<34} {:>6} {:>10.0} {:>10.1} {outcome}",
                if format == io::GraphFormat::Binary {
                    "binary"
                } else {
                    "text"
                },
                file / 1024.0,
                grown / 1048576.0,
            );
        }
    }
}

/// Loads one graph and prints the peak RSS growth and the file size, in bytes.
fn load(path: &std::path::Path) {
    let before = peak_rss_mb().unwrap_or(0.0);
    let file = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    match io::read_graph(path) {
        Ok(loaded) => {
            let grown = (peak_rss_mb().unwrap_or(0.0) - before) * 1048576.0;
            println!("{grown} {file}");
            drop(loaded);
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--measure") {
        let path = args.get(i + 1).expect("--measure PATH");
        measure(std::path::Path::new(path));
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--load") {
        let path = args.get(i + 1).expect("--load PATH");
        load(std::path::Path::new(path));
        return;
    }
    if args.iter().any(|a| a == "--per-byte") {
        per_byte();
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
