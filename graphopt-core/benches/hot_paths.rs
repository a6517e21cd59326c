//! The hot paths, one by one, under criterion, on graphs built in code (no model file, no
//! TensorFlow): decoding and encoding a CNN-shaped GraphDef, each transform of the standard
//! pipeline (and duplicate merging) on the graph as the transforms before it left it, and
//! the evaluator's kernels in a cached model's repeated runs, with both kinds of matrix
//! product.
//!
//! `cargo bench -p graphopt-core --bench hot_paths [-- FILTER]`; add `--features threads`
//! for the fast kernels on every core. criterion keeps each run under `target/criterion` and
//! reports the change against the last one, which is how a change to one step is measured.
//! The whole-process comparisons with TensorFlow's tools are `bench/compare_tf.py`'s; the
//! steps of a real model's run are the `pipeline` bench's.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use graphopt_core::eval::{evaluate_cached, Constants, Gemm, Options};
use graphopt_core::graph::edit::const_node;
use graphopt_core::io;
use graphopt_core::proto::attr_value::Value;
use graphopt_core::proto::{GraphDef, NodeDef};
use graphopt_core::tensor::{Data, Tensor};
use graphopt_core::transforms::{self, Registry};
use ndarray::{ArrayD, IxDyn};

#[allow(dead_code)] // the tests' helpers; the benches use some of them
#[path = "../tests/common/graphs.rs"]
mod graphs;

use graphs::{floats, graph, input, ints, node, placeholder, s};

/// The standard pipeline of `bench/compare_tf.py` and the README, then duplicate merging.
const PIPELINE: &str = "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) \
    fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms \
    merge_duplicate_nodes sort_by_execution_order";

/// Float values in [0.5, 1.5): batch-norm variances and scales that fold to finite weights.
fn positive(name: &str, dims: &[usize], seed: u32) -> NodeDef {
    let base = input(dims, seed);
    let Data::F32(values) = base.data() else {
        unreachable!("`input` gives floats")
    };
    let shifted: ArrayD<f32> = values.mapv(|v| v * 0.5 + 1.0);
    let values = shifted.into_raw_vec_and_offset().0;
    let tensor = Tensor::from_data(Data::F32(
        ArrayD::from_shape_vec(IxDyn(dims), values).expect("the shape of `dims`"),
    ));
    const_node(name.into(), String::new(), &tensor)
}

/// A Keras-shaped CNN before optimization: `blocks` of 3x3 convolution, inference-mode
/// FusedBatchNormV3 and ReLU, each output read through an Identity, and in each block a
/// shape Const equal to every other block's (duplicates to merge).
fn cnn(blocks: usize, channels: usize, side: usize) -> GraphDef {
    let side_i64 = i64::try_from(side).expect("a small side");
    let channels_i64 = i64::try_from(channels).expect("a few channels");
    let mut nodes = vec![placeholder("x", &[1, side_i64, side_i64, channels_i64])];
    let mut last = "x".to_string();
    for b in 0..blocks {
        let seed = u32::try_from(b).expect("a few blocks") * 8;
        let p = format!("block{b}");
        nodes.push(floats(
            &format!("{p}/kernel"),
            &[3, 3, channels, channels],
            seed,
        ));
        nodes.push(positive(&format!("{p}/gamma"), &[channels], seed + 1));
        nodes.push(floats(&format!("{p}/beta"), &[channels], seed + 2));
        nodes.push(floats(&format!("{p}/mean"), &[channels], seed + 3));
        nodes.push(positive(&format!("{p}/variance"), &[channels], seed + 4));
        nodes.push(graphs::int32s(
            &format!("{p}/shape"),
            &[4],
            &[1, side as i32, side as i32, channels as i32],
        ));
        nodes.push(node(
            &format!("{p}/conv"),
            "Conv2D",
            &[&last, &format!("{p}/kernel")],
            &[("strides", ints(&[1, 1, 1, 1])), ("padding", s("SAME"))],
        ));
        let mut bn = node(
            &format!("{p}/bn"),
            "FusedBatchNormV3",
            &[
                &format!("{p}/conv"),
                &format!("{p}/gamma"),
                &format!("{p}/beta"),
                &format!("{p}/mean"),
                &format!("{p}/variance"),
            ],
            &[
                ("epsilon", Value::F(1e-3)),
                ("is_training", Value::B(false)),
                ("data_format", s("NHWC")),
            ],
        );
        bn.attr.insert("U".into(), bn.attr["T"].clone());
        nodes.push(bn);
        nodes.push(node(
            &format!("{p}/relu"),
            "Relu",
            &[&format!("{p}/bn")],
            &[],
        ));
        nodes.push(node(
            &format!("{p}/reshape"),
            "Reshape",
            &[&format!("{p}/relu"), &format!("{p}/shape")],
            &[],
        ));
        nodes.push(node(
            &format!("{p}/out"),
            "Identity",
            &[&format!("{p}/reshape")],
            &[],
        ));
        last = format!("{p}/out");
    }
    nodes.push(node("output", "Identity", &[&last], &[]));
    graph(nodes)
}

fn quick(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut group = c.benchmark_group("hot_paths");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    group
}

fn io_paths(c: &mut Criterion) {
    // 48 blocks of 3x3x128x128 weights: 27 MiB, 530 nodes.
    let graph = cnn(48, 128, 8);
    let encoded = Bytes::from(io::encode_graph(&graph));
    let path = Path::new("synthetic.pb");
    let mut group = quick(c);
    group.bench_function("decode 27 MiB CNN", |b| {
        b.iter(|| io::decode_graph(black_box(encoded.clone()), path).expect("decodes"))
    });
    group.bench_function("encode 27 MiB CNN", |b| {
        b.iter(|| io::encode_graph(black_box(&graph)))
    });
    group.finish();
}

fn transform_paths(c: &mut Criterion) {
    let registry = Registry::with_builtins();
    let specs = transforms::parse(PIPELINE).expect("the pipeline parses");
    let (inputs, outputs) = (vec!["x".to_string()], vec!["output".to_string()]);
    let mut graph = cnn(48, 128, 8);
    let mut group = quick(c);
    for spec in &specs {
        // Each transform on the graph the transforms before it left.
        let before = graph.clone();
        let step = std::slice::from_ref(spec);
        group.bench_function(format!("transform {}", spec.name), |b| {
            b.iter_batched(
                || before.clone(),
                |mut g| {
                    transforms::run(&registry, &mut g, step, &inputs, &outputs).expect("runs");
                    g
                },
                BatchSize::LargeInput,
            )
        });
        transforms::run(&registry, &mut graph, step, &inputs, &outputs).expect("runs");
    }
    group.finish();
    // The graph exercised what the names say: every batch norm folded away, every Identity
    // but the output's removed, the 48 equal shape Consts merged into one.
    let count = |op: &str| graph.node.iter().filter(|n| n.op == op).count();
    assert_eq!(
        (
            count("FusedBatchNormV3"),
            count("Identity"),
            count("Reshape")
        ),
        (0, 1, 48),
        "the synthetic CNN no longer exercises the pipeline"
    );
    let shapes = graph
        .node
        .iter()
        .filter(|n| n.name.ends_with("/shape"))
        .count();
    assert_eq!(shapes, 1, "the shape Consts were not merged");
}

/// One node of each kernel kind the CNNs spend their time in, fed by `x`.
fn kernels() -> GraphDef {
    let same = [("strides", ints(&[1, 1, 1, 1])), ("padding", s("SAME"))];
    graph(vec![
        placeholder("x", &[1, 56, 56, 64]),
        floats("conv_filter", &[3, 3, 64, 64], 1),
        floats("depthwise_filter", &[3, 3, 64, 1], 2),
        floats("dense_weights", &[64, 1000], 3),
        graphs::int32s("axes", &[2], &[1, 2]),
        node("conv", "Conv2D", &["x", "conv_filter"], &same),
        node(
            "depthwise",
            "DepthwiseConv2dNative",
            &["x", "depthwise_filter"],
            &same,
        ),
        node("pool", "Mean", &["x", "axes"], &[]),
        node("dense", "MatMul", &["pool", "dense_weights"], &[]),
    ])
}

fn eval_paths(c: &mut Criterion) {
    let graph = kernels();
    let feeds = BTreeMap::from([("x".to_string(), input(&[1, 56, 56, 64], 7))]);
    let mut group = quick(c);
    for fetch in ["conv", "depthwise", "dense"] {
        for gemm in [Gemm::Portable, Gemm::Fast] {
            let options = Options {
                gemm,
                ..Options::default()
            };
            let fetches = [fetch.to_string()];
            let constants = Constants::default();
            group.bench_function(format!("eval {fetch} {gemm:?}"), |b| {
                b.iter(|| {
                    evaluate_cached(&graph, &constants, &feeds, &fetches, options).expect("runs")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(hot_paths, io_paths, transform_paths, eval_paths);
criterion_main!(hot_paths);
