//! Pipeline benchmark: where the time of a `graphopt transform` goes, step by step.
//!
//! `cargo bench -p graphopt-core --bench pipeline -- GRAPH [--inputs a] [--outputs b]
//! [--transforms '...']` (default: the standard pipeline of `bench/compare_tf.py`). Reads the
//! file, decodes it, runs each transform on its own (timed one by one, in order), encodes and
//! writes the result (with fsync), and prints each step's wall time and the process's peak
//! resident memory after it. Without GRAPH it says so and exits with status 2.

use std::time::Instant;

mod common;

use graphopt_core::transforms::{self, Registry};
use graphopt_core::{graph, io};

const STANDARD: &str = "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) \
    fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms \
    sort_by_execution_order";

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn fail(message: String) -> ! {
    eprintln!("pipeline bench: {message}");
    std::process::exit(1);
}

fn names(list: Option<String>) -> Vec<String> {
    list.unwrap_or_default()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn main() {
    let mut path = None;
    let (mut inputs, mut outputs, mut pipeline) = (Vec::new(), Vec::new(), STANDARD.to_string());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => {}
            "--inputs" => inputs = names(args.next()),
            "--outputs" => outputs = names(args.next()),
            "--transforms" => pipeline = args.next().unwrap_or_default(),
            other if !other.starts_with("--") => path = Some(common::argument_path(other)),
            other => fail(format!("unknown flag {other}")),
        }
    }
    let Some(path) = path else {
        eprintln!(
            "pipeline bench: give a frozen graph: cargo bench -p graphopt-core --bench pipeline \
             -- GRAPH [--inputs a] [--outputs b] [--transforms '...']"
        );
        std::process::exit(2);
    };
    let step = |name: &str, start: Instant| {
        println!(
            "{name:<55} {:>9.1} ms   peak {:>6.0} MiB",
            start.elapsed().as_secs_f64() * 1e3,
            peak_rss_mb()
        );
    };
    let total = Instant::now();
    let start = Instant::now();
    // As `io::read_graph` reads it: mapped, so "read" is the mapping and "decode" the faults.
    let data = io::map_regular(&path).unwrap_or_else(|e| fail(format!("{}: {e}", path.display())));
    let file_mb = data.len() as f64 / 1048576.0;
    step(&format!("map {file_mb:.1} MiB"), start);
    let start = Instant::now();
    let (mut graph, _) = io::decode_graph(data, &path).unwrap_or_else(|e| fail(e.to_string()));
    step(&format!("decode ({} nodes)", graph.node.len()), start);
    let start = Instant::now();
    graph::validate(&graph).unwrap_or_else(|e| fail(e.to_string()));
    step("validate", start);

    let specs = transforms::parse(&pipeline).unwrap_or_else(|e| fail(e.to_string()));
    let registry = Registry::with_builtins();
    for spec in &specs {
        let start = Instant::now();
        transforms::run(
            &registry,
            &mut graph,
            std::slice::from_ref(spec),
            &inputs,
            &outputs,
        )
        .unwrap_or_else(|e| fail(e.to_string()));
        step(
            &format!("{} -> {} nodes", spec.name, graph.node.len()),
            start,
        );
    }
    let out = std::env::temp_dir().join(format!("graphopt-pipeline-{}.pb", std::process::id()));
    let start = Instant::now();
    io::write_graph(&out, &graph, io::GraphFormat::Binary).unwrap_or_else(|e| fail(e.to_string()));
    step("write (encode, write, fsync)", start);
    let _ = std::fs::remove_file(&out);
    step("total", total);
}
