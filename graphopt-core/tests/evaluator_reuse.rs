//! The evaluator's buffer reuse and Const cache change no result: a chain evaluated with every
//! intermediate fetched (so no buffer can be reused) gives the same bits as the chain
//! evaluated for its end only, and a cached run gives the same bits as a fresh one. Nor do
//! the fast kernels' threads (the `threads` feature) or the buffers a cached model's runs
//! recycle.

mod common;

use std::collections::BTreeMap;

use common::graphs::{floats, graph, input, ints, node, placeholder, s};
use graphopt_core::eval::{evaluate, evaluate_cached, Constants, Gemm, Options};
use graphopt_core::proto::GraphDef;
use graphopt_core::tensor::{Data, Tensor};

/// Bits of a float tensor, so NaN payloads and signed zeros compare too.
fn bits(t: &Tensor) -> Vec<u32> {
    match t.data() {
        Data::F32(a) => a.iter().map(|v| v.to_bits()).collect(),
        other => panic!("expected floats, got {other:?}"),
    }
}

fn run(g: &GraphDef, x: &Tensor, fetches: &[&str]) -> Vec<Tensor> {
    let feeds = BTreeMap::from([("x".to_string(), x.clone())]);
    let fetches: Vec<String> = fetches.iter().map(|s| s.to_string()).collect();
    evaluate(g, &feeds, &fetches, Options::default()).unwrap()
}

/// Every elementwise form the executor may run in place: a bias along the last axis, an
/// operand of the same shape on either side (Sub and RealDiv keep their order), a scalar, a
/// broadcast that is not along the tail, unary activations, and an NCHW BiasAdd (which must
/// not take the channels-last shortcut).
fn chain() -> (GraphDef, Vec<&'static str>) {
    let nodes = vec![
        placeholder("x", &[2, 3, 4, 5]),
        floats("bias", &[5], 1),
        floats("same", &[2, 3, 4, 5], 2),
        floats("scalar", &[], 3),
        floats("middle", &[3, 1, 1], 4),
        floats("channels", &[3], 5),
        node("biased", "BiasAdd", &["x", "bias"], &[]),
        node("relu", "Relu", &["biased"], &[]),
        node("left", "Sub", &["same", "relu"], &[]),
        node("right", "RealDiv", &["left", "scalar"], &[]),
        node("spread", "Mul", &["middle", "right"], &[]),
        node("tanh", "Tanh", &["spread"], &[]),
        node("most", "Maximum", &["tanh", "same"], &[]),
        node(
            "nchw",
            "BiasAdd",
            &["most", "channels"],
            &[("data_format", s("NCHW"))],
        ),
        node("relu6", "Relu6", &["nchw"], &[]),
        node("square", "SquaredDifference", &["relu6", "x"], &[]),
    ];
    let names = nodes
        .iter()
        .skip(6)
        .map(|n| n.name.as_str())
        .collect::<Vec<_>>();
    let names: Vec<&'static str> = names
        .into_iter()
        .map(|n| &*Box::leak(n.to_string().into_boxed_str()))
        .collect();
    (graph(nodes), names)
}

#[test]
fn reused_buffers_give_the_same_bits() {
    let (g, names) = chain();
    let mut x = input(&[2, 3, 4, 5], 9);
    // A NaN and signed zeros travel through the chain as well.
    if let Data::F32(a) = x.data() {
        let mut a = a.clone();
        a[[0, 0, 0, 0]] = f32::NAN;
        a[[1, 2, 3, 4]] = -0.0;
        x = Tensor::from_data(Data::F32(a));
    }
    let end = *names.last().unwrap();
    let alone = run(&g, &x, &[end]);
    let everything = run(&g, &x, &names);
    assert_eq!(bits(&alone[0]), bits(everything.last().unwrap()));
    // The fetched intermediates are not overwritten by later nodes: each equals its own
    // evaluation on its own.
    for (k, name) in names.iter().enumerate() {
        let own = run(&g, &x, &[name]);
        assert_eq!(bits(&own[0]), bits(&everything[k]), "{name}");
    }
}

#[test]
fn a_fed_value_is_never_overwritten() {
    let (g, _) = chain();
    let x = input(&[2, 3, 4, 5], 9);
    let before = bits(&x);
    let out = run(&g, &x, &["relu", "x"]);
    assert_eq!(bits(&x), before);
    assert_eq!(bits(&out[1]), before);
}

#[test]
fn cached_constants_give_the_same_bits_and_follow_the_graph() {
    let (g, names) = chain();
    let x = input(&[2, 3, 4, 5], 9);
    let feeds = BTreeMap::from([("x".to_string(), x.clone())]);
    let fetches: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let fresh = evaluate(&g, &feeds, &fetches, Options::default()).unwrap();
    let constants = Constants::default();
    assert_eq!(format!("{constants:?}"), "Constants(0 decoded)");
    for _ in 0..3 {
        let cached = evaluate_cached(&g, &constants, &feeds, &fetches, Options::default()).unwrap();
        for (a, b) in fresh.iter().zip(&cached) {
            assert_eq!(bits(a), bits(b));
        }
    }
    // The first run decoded the five Consts; the later runs added none.
    assert_eq!(format!("{constants:?}"), "Constants(5 decoded)");
    // The same cache handed another graph, whose Consts have other names at the same
    // positions, decodes that graph's values instead of returning the first graph's.
    let mut other = g.clone();
    for n in &mut other.node {
        if n.op == "Const" {
            n.name = format!("{}_other", n.name);
        }
    }
    for n in &mut other.node {
        for input in &mut n.input {
            if ["bias", "same", "scalar", "middle", "channels"].contains(&input.as_str()) {
                *input = format!("{input}_other");
            }
        }
    }
    if let Some(bias) = other.node.iter_mut().find(|n| n.name == "bias_other") {
        *bias = floats("bias_other", &[5], 77);
    }
    let theirs = evaluate(&other, &feeds, &fetches, Options::default()).unwrap();
    let cached = evaluate_cached(&other, &constants, &feeds, &fetches, Options::default()).unwrap();
    for (a, b) in theirs.iter().zip(&cached) {
        assert_eq!(bits(a), bits(b));
    }
    assert_ne!(
        bits(&theirs[0]),
        bits(&fresh[0]),
        "the second graph's bias differs"
    );
}

#[test]
fn a_chain_reuses_one_buffer() {
    // Six activations on a 1 MiB input: the fed value stays held (the caller's), the first
    // activation allocates, and every later one writes over its input. Without reuse two
    // results would be held at once beside the feed.
    let mut nodes = vec![placeholder("x", &[256, 1024])];
    let ops = ["Relu", "Tanh", "Sigmoid", "Relu6", "Neg", "Abs"];
    for (k, op) in ops.iter().enumerate() {
        let from = if k == 0 {
            "x".to_string()
        } else {
            format!("a{}", k - 1)
        };
        nodes.push(node(&format!("a{k}"), op, &[&from], &[]));
    }
    let g = graph(nodes);
    let x = input(&[256, 1024], 3);
    let budget = graphopt_core::budget::Budget::unlimited();
    let out = budget.enter(|| run(&g, &x, &["a5"]));
    let mib = 1u64 << 20;
    assert!(
        budget.peak() < 2 * mib + mib / 2,
        "peak {} bytes: the chain did not reuse its buffer",
        budget.peak()
    );
    assert_eq!(
        bits(&out[0]),
        bits(&run(&g, &x, &["a0", "a1", "a2", "a3", "a4", "a5"])[5])
    );
}

/// The options of `verify` and the `eval` feature: the fast kernels.
fn fast() -> Options {
    Options {
        gemm: Gemm::Fast,
        ..Options::default()
    }
}

/// A cached model run on two inputs in turn, four times: each run's recycled buffers come
/// back holding the other input's values, so an element a kernel failed to write would
/// show. Each run must give `expected`'s bits (the fresh evaluations of `first`, `second`).
fn alternate(
    g: &GraphDef,
    (first, second): (&Feeds, &Feeds),
    expected: (&[Tensor], &[Tensor]),
    fetches: &[String],
    options: Options,
) {
    let constants = Constants::default();
    for run in 0..4 {
        let (feeds, expected) = if run % 2 == 0 {
            (first, expected.0)
        } else {
            (second, expected.1)
        };
        let cached = evaluate_cached(g, &constants, feeds, fetches, options).unwrap();
        for ((a, b), name) in expected.iter().zip(&cached).zip(fetches) {
            assert_eq!(
                bits(a),
                bits(b),
                "run {run} of the cached model, {:?}: {name}",
                options.gemm
            );
        }
    }
}

type Feeds = BTreeMap<String, Tensor>;

/// A depthwise convolution (split over threads by rows when the fast kernels have them), its
/// activation, a pointwise convolution and a padded one: large enough to be split and for
/// their buffers to be recycled.
fn convolutions() -> GraphDef {
    let same = [("strides", ints(&[1, 1, 1, 1])), ("padding", s("SAME"))];
    graph(vec![
        placeholder("x", &[1, 48, 48, 32]),
        floats("depthwise_filter", &[3, 3, 32, 2], 5),
        floats("pointwise_filter", &[1, 1, 64, 16], 6),
        floats("spatial_filter", &[3, 3, 16, 8], 7),
        floats("wide_filter", &[3, 3, 32, 32], 10),
        common::graphs::int32s("paddings", &[4, 2], &[0, 0, 1, 1, 2, 2, 0, 0]),
        node(
            "depthwise",
            "DepthwiseConv2dNative",
            &["x", "depthwise_filter"],
            &same,
        ),
        // Large enough for its product to be split by rows: each thread builds its own rows'
        // patches.
        node("wide", "Conv2D", &["x", "wide_filter"], &same),
        node("relu", "Relu6", &["depthwise"], &[]),
        node("pointwise", "Conv2D", &["relu", "pointwise_filter"], &same),
        node("pad", "Pad", &["pointwise", "paddings"], &[]),
        node(
            "spatial",
            "Conv2D",
            &["pad", "spatial_filter"],
            &[("strides", ints(&[1, 2, 2, 1])), ("padding", s("VALID"))],
        ),
    ])
}

#[test]
fn threads_and_recycled_buffers_give_the_same_bits() {
    let g = convolutions();
    let feeds = BTreeMap::from([("x".to_string(), input(&[1, 48, 48, 32], 9))]);
    let fetches = [
        "depthwise".to_string(),
        "spatial".to_string(),
        "wide".to_string(),
    ];
    let fast = fast();
    let portable = evaluate(&g, &feeds, &fetches, Options::default()).unwrap();
    let once = evaluate(&g, &feeds, &fetches, fast).unwrap();
    // The depthwise kernel is the same code for both kinds, whichever thread runs a row.
    assert_eq!(
        bits(&once[0]),
        bits(&portable[0]),
        "depthwise, fast vs portable"
    );
    // The products differ in their last bits between the kinds, not more.
    for (k, name) in [(1, "spatial"), (2, "wide")] {
        let (Data::F32(fast), Data::F32(exact)) = (once[k].data(), portable[k].data()) else {
            panic!("float outputs");
        };
        let worst = fast
            .iter()
            .zip(exact)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
            .fold(0f32, f32::max);
        assert!(
            worst < 1e-5,
            "{name}: fast differs from portable by {worst}"
        );
    }
    // A cached model's runs recycle their buffers, and kernels that overwrite every element
    // of their output take them with the last run's values in: runs on two inputs in turn
    // must each give a fresh evaluation's bits, so an element a kernel missed would show.
    let other = BTreeMap::from([("x".to_string(), input(&[1, 48, 48, 32], 23))]);
    let other_once = evaluate(&g, &other, &fetches, fast).unwrap();
    assert_ne!(bits(&other_once[0]), bits(&once[0]), "the inputs differ");
    alternate(&g, (&feeds, &other), (&once, &other_once), &fetches, fast);
}

/// Keras' swish, `x * sigmoid(beta * x)`, in both operand orders, beside chains that must
/// not be fused: a per-channel "beta", and a swish whose gate is fetched.
fn swishes() -> GraphDef {
    graph(vec![
        placeholder("x", &[1, 24, 24, 40]),
        floats("beta", &[], 3),
        floats("per_channel", &[40], 4),
        node("scale", "Mul", &["beta", "x"], &[]),
        node("gate", "Sigmoid", &["scale"], &[]),
        node("swish", "Mul", &["x", "gate"], &[]),
        node("scale_2", "Mul", &["swish", "beta"], &[]),
        node("gate_2", "Sigmoid", &["scale_2"], &[]),
        node("swish_2", "Mul", &["gate_2", "swish"], &[]),
        node("scale_3", "Mul", &["swish_2", "per_channel"], &[]),
        node("gate_3", "Sigmoid", &["scale_3"], &[]),
        node("not_scalar", "Mul", &["swish_2", "gate_3"], &[]),
        node("scale_4", "Mul", &["not_scalar", "beta"], &[]),
        node("gate_4", "Sigmoid", &["scale_4"], &[]),
        node("gate_fetched", "Mul", &["not_scalar", "gate_4"], &[]),
    ])
}

#[test]
fn fused_swishes_give_the_same_bits() {
    let g = swishes();
    let feeds = BTreeMap::from([("x".to_string(), input(&[1, 24, 24, 40], 8))]);
    let fetches = [
        "swish_2".to_string(),
        "gate_4".to_string(),
        "gate_fetched".to_string(),
    ];
    let fast = fast();
    let fused = evaluate(&g, &feeds, &fetches, fast).unwrap();
    let one_by_one = evaluate(&g, &feeds, &fetches, Options::default()).unwrap();
    for ((a, b), name) in fused.iter().zip(&one_by_one).zip(&fetches) {
        assert_eq!(bits(a), bits(b), "{name}");
    }
    // And fused in a cached model's repeated runs, on two inputs in turn (its output
    // buffer comes back holding the other input's values).
    let other = BTreeMap::from([("x".to_string(), input(&[1, 24, 24, 40], 19))]);
    let other_one_by_one = evaluate(&g, &other, &fetches, Options::default()).unwrap();
    alternate(
        &g,
        (&feeds, &other),
        (&one_by_one, &other_one_by_one),
        &fetches,
        fast,
    );
}

/// Matrix products of one size (128 KiB, large enough to be recycled, as are the
/// intermediates they may be handed): a plain one, one reading its left operand transposed, a
/// batched one broadcasting its right operand, and one with an empty inner dimension (all
/// zeros, on the fast kernels' many-rows path).
fn products() -> GraphDef {
    use graphopt_core::proto::attr_value::Value;
    graph(vec![
        placeholder("x", &[256, 128]),
        floats("weights", &[128, 128], 3),
        floats("columns", &[256, 256], 4),
        floats("batched_weights", &[1, 128, 128], 5),
        floats("empty_weights", &[0, 128], 6),
        common::graphs::int32s("batches", &[3], &[2, 128, 128]),
        common::graphs::int32s("begin", &[2], &[0, 0]),
        common::graphs::int32s("no_columns", &[2], &[256, 0]),
        node("tanh", "Tanh", &["x"], &[]),
        node("dense", "MatMul", &["tanh", "weights"], &[]),
        node("relu", "Relu", &["dense"], &[]),
        // [256, 128]ᵀ · [256, 256] = [128, 256].
        node(
            "transposed",
            "MatMul",
            &["relu", "columns"],
            &[("transpose_a", Value::B(true))],
        ),
        node("stacked", "Reshape", &["relu", "batches"], &[]),
        node(
            "batched",
            "BatchMatMulV2",
            &["stacked", "batched_weights"],
            &[],
        ),
        node("empty", "Slice", &["relu", "begin", "no_columns"], &[]),
        node("zeros", "MatMul", &["empty", "empty_weights"], &[]),
    ])
}

#[test]
fn recycled_products_give_the_same_bits() {
    let g = products();
    let fetches = ["transposed", "batched", "zeros"].map(String::from);
    let feeds = BTreeMap::from([("x".to_string(), input(&[256, 128], 9))]);
    let other = BTreeMap::from([("x".to_string(), input(&[256, 128], 31))]);
    for options in [Options::default(), fast()] {
        let once = evaluate(&g, &feeds, &fetches, options).unwrap();
        let other_once = evaluate(&g, &other, &fetches, options).unwrap();
        assert_ne!(bits(&other_once[1]), bits(&once[1]), "the inputs differ");
        assert!(bits(&once[2]).iter().all(|&v| v == 0), "an empty sum is +0");
        alternate(
            &g,
            (&feeds, &other),
            (&once, &other_once),
            &fetches,
            options,
        );
    }
}

/// Fused, a swish costs one pass over its elements: the chain is charged its output once
/// (checked, then computed: 2 per element), where its nodes one by one are charged 4.
#[test]
fn a_fused_swish_is_one_pass() {
    let g = graph(vec![
        placeholder("x", &[1, 24, 24, 40]),
        floats("beta", &[], 3),
        node("scale", "Mul", &["beta", "x"], &[]),
        node("gate", "Sigmoid", &["scale"], &[]),
        node("swish", "Mul", &["x", "gate"], &[]),
    ]);
    let feeds = BTreeMap::from([("x".to_string(), input(&[1, 24, 24, 40], 8))]);
    let fetches = ["swish".to_string()];
    let work = |options: Options| {
        let budget = graphopt_core::budget::Budget::unlimited();
        budget.enter(|| evaluate(&g, &feeds, &fetches, options).unwrap());
        budget.spent()
    };
    let (fused, one_by_one) = (work(fast()), work(Options::default()));
    let elements = 24 * 24 * 40;
    assert!(
        fused < 3 * elements && one_by_one >= 4 * elements,
        "work {fused} fused, {one_by_one} node by node, for {elements} elements"
    );
}
