//! Late weights (batch-norm folding's scaled weights, computed as they are written): the bytes
//! written are those of computing every weight at once, and no transform that does not accept
//! them ever sees a Const holding its unscaled source.

mod common;

use std::sync::{Arc, Mutex};

use common::graphs::{attr, dtype, floats, graph, ints, node, placeholder, s};
use graphopt_core::graph::edit::const_node;
use graphopt_core::io::{self, GraphFormat};
use graphopt_core::late_weights::{ScaledWeight, Step};
use graphopt_core::proto::{attr_value, DataType, GraphDef, NodeDef};
use graphopt_core::tensor::{Data, Tensor};
use graphopt_core::transforms::{self, Registry, Transform, TransformContext};
use ndarray::{ArrayD, IxDyn};

fn conv(name: &str, input: &str, weights: &str) -> NodeDef {
    node(
        name,
        "Conv2D",
        &[input, weights],
        &[
            ("strides", ints(&[1, 1, 1, 1])),
            ("padding", s("SAME")),
            ("data_format", s("NHWC")),
        ],
    )
}

fn mul(name: &str, a: &str, b: &str) -> NodeDef {
    node(name, "Mul", &[a, b], &[])
}

/// Conv weights [3, 3, 64, 64] whose channel `c` is `2^(c % 4)` everywhere, with the scale
/// that makes every element 1: not uniform before scaling, uniform after.
fn becoming_uniform() -> (NodeDef, NodeDef) {
    let values: Vec<f32> = (0..3 * 3 * 64 * 64)
        .map(|i| (1 << (i % 64 % 4)) as f32)
        .collect();
    let scale: Vec<f32> = (0..64).map(|c| 1.0 / (1 << (c % 4)) as f32).collect();
    let tensor = |dims: &[usize], v: Vec<f32>| {
        Tensor::from_data(Data::F32(ArrayD::from_shape_vec(IxDyn(dims), v).unwrap()))
    };
    (
        const_node(
            "w_uniform".into(),
            String::new(),
            &tensor(&[3, 3, 64, 64], values),
        ),
        const_node("m_uniform".into(), String::new(), &tensor(&[64], scale)),
    )
}

/// Every way a weight gets scaled: twice over two sweeps, shared by two layers (copies),
/// depthwise, MatMul with transpose_b (a scale per row), small (computed at once), scaled to
/// one value, and a Mul fold followed by a FusedBatchNormV3 fold of the same weights.
fn folding_graph() -> GraphDef {
    let (w_uniform, m_uniform) = becoming_uniform();
    let mut bn = node(
        "bn3",
        "FusedBatchNormV3",
        &["mul3", "gamma", "beta", "mean", "variance"],
        &[
            ("epsilon", attr_value::Value::F(1e-3)),
            ("is_training", attr_value::Value::B(false)),
            ("data_format", s("NHWC")),
        ],
    );
    bn.attr.insert("U".into(), attr(dtype(DataType::DtFloat)));
    let mut matmul = node("mm", "MatMul", &["v", "wm"], &[]);
    matmul
        .attr
        .insert("transpose_b".into(), attr(attr_value::Value::B(true)));
    graph(vec![
        placeholder("x", &[1, 8, 8, 64]),
        floats("w1", &[3, 3, 64, 64], 1),
        conv("conv1", "x", "w1"),
        floats("m1", &[64], 2),
        mul("mul1", "conv1", "m1"),
        floats("m1b", &[64], 3),
        mul("mul1b", "mul1", "m1b"),
        floats("w2", &[3, 3, 64, 64], 4),
        conv("conv2a", "mul1b", "w2"),
        conv("conv2b", "mul1b", "w2"),
        floats("m2a", &[64], 5),
        floats("m2b", &[64], 6),
        mul("mul2a", "conv2a", "m2a"),
        mul("mul2b", "conv2b", "m2b"),
        floats("wd", &[5, 5, 64, 16], 7),
        node(
            "dw",
            "DepthwiseConv2dNative",
            &["mul1b", "wd"],
            &[("strides", ints(&[1, 1, 1, 1])), ("padding", s("SAME"))],
        ),
        floats("md", &[1024], 8),
        mul("muld", "dw", "md"),
        floats("ws", &[3, 3, 64, 8], 9),
        conv("convs", "mul1b", "ws"),
        floats("ms", &[8], 10),
        mul("muls", "convs", "ms"),
        placeholder("v", &[1, 512]),
        floats("wm", &[256, 512], 11),
        matmul,
        floats("mm_scale", &[256], 12),
        mul("mulm", "mm", "mm_scale"),
        w_uniform,
        conv("convu", "mul1b", "w_uniform"),
        m_uniform,
        mul("mulu", "convu", "m_uniform"),
        floats("w3", &[3, 3, 64, 64], 13),
        conv("conv3", "mul1b", "w3"),
        floats("m3", &[64], 14),
        mul("mul3", "conv3", "m3"),
        floats("gamma", &[64], 15),
        floats("beta", &[64], 16),
        floats("mean", &[64], 17),
        // Positive variances.
        const_node(
            "variance".into(),
            String::new(),
            &Tensor::from_data(Data::F32(
                ArrayD::from_shape_vec(IxDyn(&[64]), (1..=64).map(|i| i as f32 / 8.0).collect())
                    .unwrap(),
            )),
        ),
        bn,
    ])
}

const OUTPUTS: &[&str] = &["mul2a", "mul2b", "muld", "muls", "mulm", "mulu", "bn3"];

const FOLDS: &str = "fold_batch_norms fold_old_batch_norms sort_by_execution_order";

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn eager(pipeline: &str, registry: &Registry) -> GraphDef {
    let mut g = folding_graph();
    let specs = transforms::parse(pipeline).unwrap();
    transforms::run(
        registry,
        &mut g,
        &specs,
        &names(&["x", "v"]),
        &names(OUTPUTS),
    )
    .unwrap();
    g
}

fn deferred(pipeline: &str, registry: &Registry) -> graphopt_core::late_weights::Deferred {
    let specs = transforms::parse(pipeline).unwrap();
    let (optimized, _) = transforms::run_deferred(
        registry,
        folding_graph(),
        &specs,
        &names(&["x", "v"]),
        &names(OUTPUTS),
    )
    .unwrap();
    optimized
}

fn written(
    optimized: &graphopt_core::late_weights::Deferred,
    file: &str,
    format: GraphFormat,
) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    io::write_deferred(&path, optimized, format).unwrap();
    std::fs::read(&path).unwrap()
}

#[test]
fn written_late_weights_are_the_bytes_of_computing_them_at_once() {
    let registry = Registry::with_builtins();
    let expected = eager(FOLDS, &registry);
    let optimized = deferred(FOLDS, &registry);
    // w1 (scaled twice), w2's two copies, wd, wm and w3 (Mul, then the batch norm) are late;
    // ws is too small and w_uniform becomes one value.
    assert_eq!(optimized.late_count(), 6);
    assert_eq!(
        written(&optimized, "late.pb", GraphFormat::Binary),
        io::encode_graph(&expected)
    );
    assert_eq!(
        written(&optimized, "late.pbtxt", GraphFormat::Text),
        io::graph_to_text(&expected).unwrap().into_bytes()
    );
    assert_eq!(optimized.into_graph().unwrap(), expected);
    // The folds did fold: every Mul and the batch norm are gone.
    assert!(expected
        .node
        .iter()
        .all(|n| n.op != "Mul" && n.op != "FusedBatchNormV3"));
}

/// (name, encoding) of Consts.
type Encodings = Vec<(String, Vec<u8>)>;

/// Each Const of `graph`, encoded.
fn const_encodings(graph: &GraphDef) -> Encodings {
    graph
        .node
        .iter()
        .filter(|n| n.op == "Const")
        .map(|n| {
            let alone = GraphDef {
                node: vec![n.clone()],
                ..GraphDef::default()
            };
            (n.name.clone(), io::encode_graph(&alone))
        })
        .collect()
}

/// Records every Const it sees; it does not accept late weights.
struct SeesConsts(Arc<Mutex<Encodings>>);

impl Transform for SeesConsts {
    fn name(&self) -> &str {
        "sees_consts"
    }
    fn summary(&self) -> &str {
        "records Const values"
    }
    fn apply(
        &self,
        graph: &mut GraphDef,
        _context: &TransformContext<'_>,
    ) -> graphopt_core::Result<()> {
        *self.0.lock().unwrap() = const_encodings(graph);
        Ok(())
    }
}

#[test]
fn a_transform_that_does_not_accept_late_weights_sees_them_computed() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut registry = Registry::with_builtins();
    registry.register(SeesConsts(seen.clone()));
    let expected = const_encodings(&eager(FOLDS, &registry));
    let optimized = deferred(&format!("{FOLDS} sees_consts"), &registry);
    assert_eq!(optimized.late_count(), 0, "computed before sees_consts ran");
    assert_eq!(*seen.lock().unwrap(), expected);
}

/// Accepts late weights, makes `w1` late, and fails.
struct FailsAfterMakingLate;

impl Transform for FailsAfterMakingLate {
    fn name(&self) -> &str {
        "fails_after_making_late"
    }
    fn summary(&self) -> &str {
        "makes a weight late, then fails"
    }
    fn apply(
        &self,
        graph: &mut GraphDef,
        context: &TransformContext<'_>,
    ) -> graphopt_core::Result<()> {
        let w1 = graph.node.iter().find(|n| n.name == "w1").unwrap();
        let Some(attr_value::Value::Tensor(tensor)) = &w1.attr["value"].value else {
            panic!("w1 is a Const");
        };
        let step = Step::new(64, false, &[2.0; 64]).unwrap();
        let weight = ScaledWeight::new(tensor.tensor_content.clone(), step).unwrap();
        context
            .late_weights
            .borrow_mut()
            .insert("w1".into(), weight);
        Err(context.error("failing on purpose"))
    }
    fn accepts_late_weights(&self) -> bool {
        true
    }
}

#[test]
fn an_undone_transform_leaves_no_late_weight_behind() {
    let mut registry = Registry::with_builtins();
    registry.register(FailsAfterMakingLate);
    let undone = eager("fails_after_making_late(ignore_errors=true)", &registry);
    assert_eq!(undone, folding_graph());
    let optimized = deferred("fails_after_making_late(ignore_errors=true)", &registry);
    assert_eq!(optimized.late_count(), 0);
}

/// `folding_graph` written to `file` and read back from it (memory-mapped: the late weights'
/// sources are slices of the mapping, read again with pread when written).
fn deferred_from_file(file: &str) -> (std::path::PathBuf, graphopt_core::late_weights::Deferred) {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    std::fs::write(&path, io::encode_graph(&folding_graph())).unwrap();
    let loaded = io::read_graph(&path).unwrap();
    let specs = transforms::parse(FOLDS).unwrap();
    let (optimized, _) = transforms::run_deferred(
        &Registry::with_builtins(),
        loaded.graph,
        &specs,
        &names(&["x", "v"]),
        &names(OUTPUTS),
    )
    .unwrap();
    assert!(optimized.late_count() > 0);
    (path, optimized)
}

/// The input cut to its first `keep` bytes.
fn truncate(path: &std::path::Path, keep: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(keep))
        .unwrap();
}

/// The input truncated after it was read and folded, before the output is written: the late
/// weights' sources, read again from the file, are gone. Reading them through the mapping
/// instead (what `copy_out` did when its read failed) killed the process with SIGBUS; it is an
/// error naming the input, and no output is left behind.
#[cfg(unix)]
#[test]
fn an_input_truncated_before_its_late_weights_are_written_is_an_error() {
    for (format, file) in [
        (GraphFormat::Binary, "cut.pb"),
        (GraphFormat::Text, "cut.pbtxt"),
    ] {
        let (input, optimized) = deferred_from_file(&format!("truncated_input_{file}"));
        truncate(&input, 4096);
        let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
        let _ = std::fs::remove_file(&out);
        let error = io::write_deferred(&out, &optimized, format).unwrap_err();
        let message = error.to_string();
        assert!(message.contains(&*input.to_string_lossy()), "{message}");
        assert!(message.contains("now 4096 bytes"), "{message}");
        assert!(!out.exists(), "no output written");
        // Nor a temporary left.
        let dir = out.parent().unwrap();
        let prefix = format!(".{file}.");
        let left = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(&prefix));
        assert!(!left, "a temporary of {file} was left");
        // Computing them for the caller is the same error.
        let error = optimized.into_graph().unwrap_err();
        assert!(error.to_string().contains("now 4096 bytes"), "{error}");
    }
}

/// A transform that does not accept late weights after the folds: they are computed before it
/// runs, which reads them from the input again; truncated meanwhile, that is the run's error.
#[cfg(unix)]
#[test]
fn late_weights_unreadable_before_a_later_transform_fail_the_run() {
    /// Truncates the input when it runs: it accepts late weights, so they stay late.
    struct Truncates(std::path::PathBuf);
    impl Transform for Truncates {
        fn name(&self) -> &str {
            "truncates"
        }
        fn summary(&self) -> &str {
            "truncates the input file"
        }
        fn apply(&self, _: &mut GraphDef, _: &TransformContext<'_>) -> graphopt_core::Result<()> {
            truncate(&self.0, 4096);
            Ok(())
        }
        fn accepts_late_weights(&self) -> bool {
            true
        }
    }
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("truncated_midway.pb");
    std::fs::write(&path, io::encode_graph(&folding_graph())).unwrap();
    let mut registry = Registry::with_builtins();
    registry.register(Truncates(path.clone()));
    let specs = transforms::parse(&format!("{FOLDS} truncates strip_unused_nodes")).unwrap();
    let loaded = io::read_graph(&path).unwrap();
    let error = transforms::run_deferred(
        &registry,
        loaded.graph,
        &specs,
        &names(&["x", "v"]),
        &names(OUTPUTS),
    )
    .unwrap_err();
    let message = error.to_string();
    assert!(message.contains("strip_unused_nodes"), "{message}");
    assert!(message.contains("now 4096 bytes"), "{message}");
}

/// `folding_graph` with more ways for weights to be held or scaled: half and double weights
/// (scaled decoded, never late), float32 weights as packed `float_val`, weights shared by
/// three layers, and a convolution whose weights a Mul, a FusedBatchNormV3 and another Mul
/// each scale (three steps over three transforms).
fn more_folding() -> (GraphDef, Vec<&'static str>) {
    let mut g = folding_graph();
    let cast = |name: &str, seed: u32, dims: &[usize], dtype: DataType| {
        let value = graphopt_core::graph::edit::const_value(&floats(name, dims, seed)).unwrap();
        let cast = graphopt_core::eval::cast_tensor(&value, dtype).unwrap();
        const_node(name.into(), String::new(), &cast)
    };
    let mut packed = floats("wp", &[3, 3, 64, 64], 21);
    if let Some(attr_value::Value::Tensor(t)) =
        packed.attr.get_mut("value").and_then(|v| v.value.as_mut())
    {
        t.float_val = t
            .tensor_content
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        t.tensor_content = Default::default();
    }
    let mut bn = node(
        "bn5",
        "FusedBatchNormV3",
        &["mul5", "gamma", "beta", "mean", "variance"],
        &[
            ("epsilon", attr_value::Value::F(1e-3)),
            ("is_training", attr_value::Value::B(false)),
            ("data_format", s("NHWC")),
        ],
    );
    bn.attr.insert("U".into(), attr(dtype(DataType::DtFloat)));
    g.node.extend([
        cast("wh", 22, &[3, 3, 64, 64], DataType::DtHalf),
        conv("convh", "mul1b", "wh"),
        cast("mh", 23, &[64], DataType::DtHalf),
        mul("mulh", "convh", "mh"),
        cast("wdd", 24, &[3, 3, 64, 64], DataType::DtDouble),
        conv("convdd", "mul1b", "wdd"),
        cast("mdd", 25, &[64], DataType::DtDouble),
        mul("muldd", "convdd", "mdd"),
        packed,
        conv("convp", "mul1b", "wp"),
        floats("mp", &[64], 26),
        mul("mulp", "convp", "mp"),
        floats("w4", &[3, 3, 64, 64], 27),
        conv("conv4a", "mul1b", "w4"),
        conv("conv4b", "mul1b", "w4"),
        conv("conv4c", "mul1b", "w4"),
        floats("m4a", &[64], 28),
        floats("m4b", &[64], 29),
        floats("m4c", &[64], 30),
        mul("mul4a", "conv4a", "m4a"),
        mul("mul4b", "conv4b", "m4b"),
        mul("mul4c", "conv4c", "m4c"),
        floats("w5", &[3, 3, 64, 64], 31),
        conv("conv5", "mul1b", "w5"),
        floats("m5", &[64], 32),
        mul("mul5", "conv5", "m5"),
        bn,
        floats("m5b", &[64], 33),
        mul("mul5b", "bn5", "m5b"),
    ]);
    let mut outputs = OUTPUTS.to_vec();
    outputs.extend(["mulh", "muldd", "mulp", "mul4a", "mul4b", "mul4c", "mul5b"]);
    (g, outputs)
}

/// Pipelines mixing the folds with transforms that do not accept late weights (which see them
/// computed), renames and an undone transform: written binary or text, the deferred path's
/// bytes are those of `transforms::run` and `io::encode_graph` / `io::graph_to_text`.
#[test]
fn every_pipeline_writes_the_bytes_of_the_in_memory_path() {
    let registry = Registry::with_builtins();
    let pipelines = [
        "fold_batch_norms fold_old_batch_norms fold_batch_norms",
        "fold_batch_norms strip_unused_nodes fold_old_batch_norms fold_batch_norms",
        "fold_old_batch_norms merge_duplicate_nodes fold_batch_norms sort_by_execution_order",
        "fold_batch_norms obfuscate_names",
        "fold_batch_norms fold_constants(ignore_errors=true) fold_old_batch_norms",
        "fold_batch_norms round_weights(num_steps=16) fold_old_batch_norms fold_batch_norms",
    ];
    let (graph, outputs) = more_folding();
    let outputs = names(&outputs);
    let mut late_seen = 0;
    for pipeline in pipelines {
        let specs = transforms::parse(pipeline).unwrap();
        let mut expected = graph.clone();
        transforms::run(
            &registry,
            &mut expected,
            &specs,
            &names(&["x", "v"]),
            &outputs,
        )
        .unwrap();
        let (optimized, _) = transforms::run_deferred(
            &registry,
            graph.clone(),
            &specs,
            &names(&["x", "v"]),
            &outputs,
        )
        .unwrap();
        late_seen += optimized.late_count();
        assert!(
            written(&optimized, "more.pb", GraphFormat::Binary) == io::encode_graph(&expected),
            "{pipeline}: binary"
        );
        assert!(
            written(&optimized, "more.pbtxt", GraphFormat::Text)
                == io::graph_to_text(&expected).unwrap().into_bytes(),
            "{pipeline}: text"
        );
    }
    assert!(late_seen > 0, "some pipeline left weights late");
}
