//! Evaluator benchmark: graphopt's reference evaluator running a frozen graph, per inference.
//!
//! `cargo bench -p graphopt-core --bench eval -- GRAPH [--inputs a,b] [--outputs c] [--runs N]
//! [--batch B]`. Feeds every input a seeded uniform [-1, 1) float tensor (unknown dimensions
//! become `--batch`, default 1), runs the graph once to warm up and then `--runs` times (default
//! 5), and prints each time, the median and the process's peak resident memory, then a
//! `json: {...}` line for `bench/compare_tf.py`. Consts are decoded on the warm-up run and kept, as
//! an app's `Model` keeps them. Large matrix products are split over threads with
//! `--features threads` (MATMUL_NUM_THREADS sets how many), one thread without. Without GRAPH it
//! says so and exits with status 2.

use std::collections::BTreeMap;
use std::time::Instant;

mod common;

use graphopt_core::eval::{evaluate_cached, Constants, Gemm, Options};
use graphopt_core::graph::attrs;
use graphopt_core::proto::DataType;
use graphopt_core::tensor::{Data, Tensor};
use graphopt_core::{io, summary};

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn usage() -> ! {
    eprintln!(
        "eval bench: give a frozen graph: cargo bench -p graphopt-core --bench eval -- \
         GRAPH [--inputs a,b] [--outputs c] [--runs N] [--batch B]"
    );
    std::process::exit(2);
}

fn fail(message: String) -> ! {
    eprintln!("eval bench: {message}");
    std::process::exit(1);
}

fn names(list: &str) -> Vec<String> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn main() {
    let mut graph_path = None;
    let (mut inputs, mut outputs) = (Vec::new(), Vec::new());
    let (mut runs, mut batch) = (5usize, 1usize);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            // cargo bench passes `--bench`.
            "--bench" => {}
            "--inputs" => inputs = names(&args.next().unwrap_or_else(|| usage())),
            "--outputs" => outputs = names(&args.next().unwrap_or_else(|| usage())),
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            "--batch" => {
                batch = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            other if !other.starts_with("--") => graph_path = Some(common::argument_path(other)),
            _ => usage(),
        }
    }
    let Some(path) = graph_path else { usage() };
    let loaded = io::read_graph(&path).unwrap_or_else(|e| fail(format!("{}: {e}", path.display())));
    let graph = loaded.graph;
    let report = summary::summarize(&graph, None);
    if inputs.is_empty() {
        inputs = report.inputs.iter().map(|i| i.name.clone()).collect();
    }
    if outputs.is_empty() {
        outputs = report.outputs.iter().map(|o| o.name.clone()).collect();
    }

    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut feeds = BTreeMap::new();
    for name in &inputs {
        let node = graph
            .node
            .iter()
            .find(|n| &n.name == name)
            .unwrap_or_else(|| fail(format!("no input node {name}")));
        if attrs::dtype(node, "dtype") != Some(DataType::DtFloat) {
            fail(format!("input {name} is not float"));
        }
        let dims: Vec<usize> = attrs::shape(node, "shape")
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| usize::try_from(d.size).unwrap_or(batch))
                    .collect()
            })
            .unwrap_or_else(|| vec![batch]);
        let count: usize = dims.iter().product();
        let values: Vec<f32> = (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect();
        let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&dims), values)
            .unwrap_or_else(|e| fail(e.to_string()));
        feeds.insert(name.clone(), Tensor::from_data(Data::F32(array)));
    }

    // As an app runs its model: the weights are decoded on the warm-up run and kept.
    let constants = Constants::default();
    let run = || {
        let start = Instant::now();
        evaluate_cached(
            &graph,
            &constants,
            &feeds,
            &outputs,
            Options {
                gemm: Gemm::Fast,
                ..Options::default()
            },
        )
        .unwrap_or_else(|e| fail(e.to_string()));
        start.elapsed().as_secs_f64()
    };
    let warm = run();
    let mut times: Vec<f64> = (0..runs.max(1)).map(|_| run()).collect();
    println!(
        "{}: inputs {}, outputs {}, warm-up {:.1} ms",
        path.display(),
        inputs.join(","),
        outputs.join(","),
        warm * 1e3
    );
    for t in &times {
        println!("run: {:.1} ms", t * 1e3);
    }
    times.sort_by(f64::total_cmp);
    // The matrix products' threads; every other kernel runs on the calling thread.
    let threads = graphopt_core::eval::matmul_threads();
    let median = times[times.len() / 2];
    let peak = peak_rss_mb();
    println!(
        "median {:.1} ms per inference (batch {batch}, {threads} matrix-product threads), \
         peak RSS {peak:.0} MiB",
        median * 1e3
    );
    println!(
        "json: {{\"median_seconds\": {median}, \"seconds\": {times:?}, \"peak_mib\": {peak}, \"threads\": {threads}}}"
    );
}
