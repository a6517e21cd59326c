//! End-to-end tests of the `graphopt` binary: the transform and summarize commands on the
//! fixtures, and bad input, which must give exit code 1 and one line naming the problem.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/models")
        .join(name)
}

fn graphopt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graphopt"))
        .args(args)
        .output()
        .expect("run graphopt")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Exit code 1 and exactly one line on stderr, which mentions every `needle`.
fn assert_clean_failure(output: &Output, needles: &[&str]) {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(1), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "expected one line, got: {err}");
    assert!(err.starts_with("graphopt: error: "), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "{err:?} does not mention {needle:?}");
    }
}

#[test]
fn summarize_prints_what_summarize_graph_prints() {
    let path = fixture("tf1_conv_bn.pb");
    let output = graphopt(&["summarize", path.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("Found 1 possible inputs: (name=input, type=float(1), shape=[1,16,16,3])"),
        "{text}"
    );
    assert!(text.contains("No variables spotted."), "{text}");
    assert!(
        text.contains("Found 1 possible outputs: (name=probs, op=Softmax)"),
        "{text}"
    );
    assert!(
        text.contains(
            "Found 5250 (5.25k) const parameters, 0 (0) variable parameters, and 0 control_edges"
        ),
        "{text}"
    );
    assert!(
        text.contains("nodes assigned to device '/device:CPU:0'"),
        "{text}"
    );
    assert!(text.contains("--input_layer=input --input_layer_type=float --input_layer_shape=1,16,16,3 --output_layer=probs"), "{text}");
    assert!(text.contains("Largest constants:"), "{text}");
}

#[test]
fn summarize_json_is_machine_readable_and_stable() {
    let path = fixture("keras_cnn.pb");
    let first = graphopt(&["summarize", "--json", path.to_str().unwrap()]);
    let second = graphopt(&[
        "summarize",
        "--json",
        &format!("--in_graph={}", path.display()),
    ]);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(first.stdout, second.stdout);
    let json: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(json["inputs"][0]["name"], "input");
    assert_eq!(
        json["inputs"][0]["shape"],
        serde_json::json!([1, 32, 32, 3])
    );
    assert_eq!(json["outputs"][0]["name"], "Identity");
    assert_eq!(json["node_count"], 72);
    assert!(json["file_size"].as_u64().unwrap() > 10_000);
    assert!(json["op_counts"].as_array().unwrap().len() > 5);
}

#[test]
fn print_structure_lists_nodes_in_execution_order() {
    let output = graphopt(&[
        "summarize",
        "--print_structure",
        fixture("tf1_conv_bn.pb").to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let position = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle} missing"))
    };
    assert!(position("input (Placeholder): []") < position("conv/Conv2D (Conv2D): [input"));
    assert!(position("conv/Conv2D (Conv2D)") < position("probs (Softmax)"));
    assert!(
        text.contains("value=Tensor<type: float shape: [3,3,3,4]>"),
        "{text}"
    );
}

#[test]
fn transform_writes_binary_and_text_deterministically() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("tf1_conv_bn.pb");
    let out_a = dir.path().join("a.pb");
    let out_b = dir.path().join("b.pb");
    let out_text = dir.path().join("c.pbtxt");
    let transforms = "remove_device sort_by_execution_order";
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "transform".to_string(),
            format!("--in_graph={}", input.display()),
            format!("--out_graph={}", out.display()),
            "--inputs=input".into(),
            "--outputs=probs".into(),
        ];
        args.push(format!("--transforms={transforms}"));
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        graphopt(&refs)
    };
    assert!(run(&out_a, &[]).status.success());
    assert!(run(&out_b, &[]).status.success());
    assert_eq!(
        std::fs::read(&out_a).unwrap(),
        std::fs::read(&out_b).unwrap()
    );
    let output = run(&out_text, &[]);
    assert!(output.status.success());
    let text = std::fs::read_to_string(&out_text).unwrap();
    assert!(text.starts_with("node {\n  name: "), "{text}");
    assert!(
        text.contains("  name: \"input\"\n  op: \"Placeholder\"\n"),
        "{text}"
    );
    assert!(!text.contains("device:"), "remove_device left a device");

    // `--flag value` spelling and --output_as_text with a .pb name.
    let out_d = dir.path().join("d.pb");
    let output = graphopt(&[
        "transform",
        "--in_graph",
        input.to_str().unwrap(),
        "--out_graph",
        out_d.to_str().unwrap(),
        "--transforms",
        transforms,
        "--output_as_text",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read_to_string(&out_d).unwrap(), text);
    let summary = graphopt(&["summarize", "--json", out_d.to_str().unwrap()]);
    assert!(
        summary.status.success(),
        "text output must read back: {}",
        stderr(&summary)
    );
}

#[test]
fn ignore_errors_skips_a_failing_transform_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pb");
    let output = graphopt(&[
        "transform",
        &format!("--in_graph={}", fixture("tf1_conv_bn.pb").display()),
        &format!("--out_graph={}", out.display()),
        "--transforms=rename_node(old_node_name=nope, new_node_name=x, ignore_errors=true) remove_device",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let err = stderr(&output);
    assert!(
        err.contains("warning: rename_node(") && err.contains("there is no node called 'nope'"),
        "{err}"
    );
    assert!(out.exists());
}

#[test]
fn usage_errors_exit_2() {
    let output = graphopt(&["transform", "--in_graph=x.pb"]);
    assert_eq!(output.status.code(), Some(2));
    let output = graphopt(&["frobnicate"]);
    assert_eq!(output.status.code(), Some(2));
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn transform_args(input: &Path, out: &Path, transforms: &str) -> Vec<String> {
    vec![
        "transform".into(),
        format!("--in_graph={}", input.display()),
        format!("--out_graph={}", out.display()),
        format!("--transforms={transforms}"),
    ]
}

fn run_transform(input: &Path, out: &Path, transforms: &str) -> Output {
    let args = transform_args(input, out, transforms);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    graphopt(&refs)
}

#[test]
fn bad_files_fail_with_one_line_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pb");
    let good = std::fs::read(fixture("keras_cnn.pb")).unwrap();

    let empty = write(dir.path(), "empty.pb", b"");
    assert_clean_failure(
        &run_transform(&empty, &out, "remove_device"),
        &["empty.pb", "empty"],
    );

    let truncated = write(dir.path(), "truncated.pb", &good[..good.len() / 2 + 7]);
    assert_clean_failure(
        &run_transform(&truncated, &out, "remove_device"),
        &["truncated.pb", "not a GraphDef"],
    );

    let mut flipped = good.clone();
    for byte in flipped.iter_mut().step_by(97) {
        *byte ^= 0xA5;
    }
    let corrupted = write(dir.path(), "corrupted.pb", &flipped);
    let output = run_transform(&corrupted, &out, "remove_device");
    assert_clean_failure(&output, &["corrupted.pb"]);

    let garbage = write(dir.path(), "garbage.pb", &[0xff; 64]);
    assert_clean_failure(
        &run_transform(&garbage, &out, "remove_device"),
        &["garbage.pb", "not a GraphDef"],
    );

    let hostile_length = write(
        dir.path(),
        "hostile.pb",
        &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x0a],
    );
    assert_clean_failure(
        &run_transform(&hostile_length, &out, "remove_device"),
        &["hostile.pb"],
    );

    let missing = dir.path().join("missing.pb");
    assert_clean_failure(
        &run_transform(&missing, &out, "remove_device"),
        &["missing.pb"],
    );
    assert_clean_failure(
        &graphopt(&["summarize", missing.to_str().unwrap()]),
        &["missing.pb"],
    );
    assert!(!out.exists(), "no output may be written on failure");
}

const CYCLE: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "a" op: "Add" input: "x" input: "c" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "b" op: "Relu" input: "a" attr { key: "T" value { type: DT_FLOAT } } }
node { name: "c" op: "Relu" input: "b" attr { key: "T" value { type: DT_FLOAT } } }
"#;

const DANGLING: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "y" op: "Relu" input: "nowhere:0" attr { key: "T" value { type: DT_FLOAT } } }
"#;

const DUPLICATE: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
"#;

const BAD_PORT: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "y" op: "Relu" input: "x:3" attr { key: "T" value { type: DT_FLOAT } } }
"#;

const MISSING_ATTR: &str = r#"
node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
node { name: "y" op: "Relu" input: "x" }
"#;

const BAD_TEXT: &str = "node { name: \"x\" op: \"Placeholder\"\n  atr { key: \"dtype\" }\n}\n";

#[test]
fn invalid_graphs_fail_with_one_line_naming_file_and_node() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pb");
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "cycle.pbtxt",
            CYCLE,
            &["cycle.pbtxt", "3 node(s) form a cycle", "b -> c -> a -> b"],
        ),
        (
            "dangling.pbtxt",
            DANGLING,
            &["dangling.pbtxt", "'y'", "'nowhere'"],
        ),
        (
            "duplicate.pbtxt",
            DUPLICATE,
            &["duplicate.pbtxt", "'x' is defined more than once"],
        ),
        (
            "bad_port.pbtxt",
            BAD_PORT,
            &["bad_port.pbtxt", "'y'", "x:3", "1 output"],
        ),
        (
            "missing_attr.pbtxt",
            MISSING_ATTR,
            &["missing_attr.pbtxt", "'y' (Relu)", "'T'"],
        ),
        (
            "bad_text.pbtxt",
            BAD_TEXT,
            &["bad_text.pbtxt", "line 2", "atr"],
        ),
    ];
    for (name, text, needles) in cases {
        let path = write(dir.path(), name, text.as_bytes());
        assert_clean_failure(
            &run_transform(&path, &out, "sort_by_execution_order"),
            needles,
        );
    }
    // summarize still reports what it can, then fails on the invalid graph.
    let path = write(dir.path(), "dangling2.pbtxt", DANGLING.as_bytes());
    let output = graphopt(&["summarize", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stdout).contains("Found 1 possible inputs"));
}

#[test]
fn bad_transform_strings_and_names_fail_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pb");
    let input = fixture("tf1_conv_bn.pb");
    assert_clean_failure(
        &run_transform(&input, &out, "remove_device frobnicate"),
        &["frobnicate", "not a known transform"],
    );
    assert_clean_failure(
        &run_transform(&input, &out, "strip_unused_nodes(type=float"),
        &["column 30", "not closed"],
    );
    assert_clean_failure(
        &run_transform(&input, &out, "rename_op(old_op_name=Relu)"),
        &["rename_op", "new_op_name"],
    );
    assert_clean_failure(
        &run_transform(
            &input,
            &out,
            "remove_attribute(attribute_name=T, op_name=Relu)",
        ),
        &["remove_attribute", "'relu' (Relu)", "'T'"],
    );
    assert_clean_failure(
        &run_transform(
            &input,
            &out,
            "rename_node(old_node_name=relu, new_node_name=probs)",
        ),
        &["rename_node", "'probs' already exists"],
    );
    let mut args = transform_args(&input, &out, "remove_device");
    args.push("--outputs=probs,logits:0".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_clean_failure(
        &graphopt(&refs),
        &["tf1_conv_bn.pb", "--outputs", "'logits:0'"],
    );
    assert!(!out.exists());
}

#[test]
fn verify_accepts_an_exact_rewrite_and_rejects_a_wrong_one() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("tf1_conv_bn.pb");
    let good = dir.path().join("good.pb");
    let bad = dir.path().join("bad.pb");
    let pipeline = "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) fold_constants fold_batch_norms fold_old_batch_norms sort_by_execution_order";
    let mut args = transform_args(&input, &good, pipeline);
    args.extend(["--inputs=input".to_string(), "--outputs=probs".to_string()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(graphopt(&refs).status.success());
    let output = graphopt(&[
        "verify",
        input.to_str().unwrap(),
        good.to_str().unwrap(),
        "--seed",
        "7",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("probs") && text.contains("within the tolerance"),
        "{text}"
    );
    // JSON report.
    let output = graphopt(&[
        "verify",
        "--json",
        input.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(json["outputs"][0]["max_rel_error"].as_f64().unwrap() < 1e-5);

    assert!(
        run_transform(&input, &bad, "rename_op(old_op_name=Relu, new_op_name=Elu)")
            .status
            .success()
    );
    let output = graphopt(&["verify", input.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_clean_failure(
        &output,
        &[
            "bad.pb differs from",
            "output 'probs'",
            "over the tolerance",
        ],
    );
}

fn saved(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/saved")
        .join(name)
}

fn saved_tensor(path: &Path) -> graphopt_core::tensor::Tensor {
    use prost::Message;
    let bytes = std::fs::read(path).unwrap();
    graphopt_core::tensor::Tensor::from_proto(
        &graphopt_core::proto::TensorProto::decode(bytes.as_slice()).unwrap(),
    )
    .unwrap()
}

/// Runs `graph` on the fixture's TF input and returns the worst error relative to TF's output.
fn relative_error_against_tensorflow(
    graph: &Path,
    fixture: &str,
    input: &str,
    output: &str,
) -> f32 {
    let graph = graphopt_core::io::read_graph(graph).unwrap().graph;
    let io = saved(&format!("{fixture}.io"));
    let feeds = [(input.to_string(), saved_tensor(&io.join("input_0.pb")))]
        .into_iter()
        .collect();
    let out =
        graphopt_core::eval::evaluate(&graph, &feeds, &[output.to_string()], Default::default())
            .unwrap();
    let expected = saved_tensor(&io.join("output_0.pb"));
    let (graphopt_core::tensor::Data::F32(got), graphopt_core::tensor::Data::F32(want)) =
        (out[0].data(), expected.data())
    else {
        panic!("float outputs expected");
    };
    assert_eq!(got.shape(), want.shape());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want.iter())
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

#[test]
fn freeze_turns_savedmodels_and_tf1_checkpoints_into_graphs_tensorflow_agrees_with() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cnn.pb");
    let dir_arg = format!("--saved_model_dir={}", saved("keras_cnn").display());
    let out_arg = format!("--out_graph={}", out.display());
    let output = graphopt(&["freeze", &dir_arg, &out_arg]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("inputs: image; outputs: output_0"));
    let first = std::fs::read(&out).unwrap();
    let error = relative_error_against_tensorflow(&out, "keras_cnn", "image", "output_0");
    assert!(error < 1e-6, "relative error {error}");
    // Deterministic: the same SavedModel freezes to the same bytes.
    let output = graphopt(&[
        "freeze",
        &dir_arg,
        &out_arg,
        "--signature_def=serving_default",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(&out).unwrap(), first);

    // The TF1 graph `in_graph` with its checkpoint, frozen to `out`.
    let freeze_tf1 = |in_graph: &str, out: &Path| {
        let output = graphopt(&[
            "freeze",
            &format!("--in_graph={}", saved(in_graph).display()),
            &format!("--checkpoint={}", saved("tf1/model.ckpt").display()),
            "--outputs=probs",
            &format!("--out_graph={}", out.display()),
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let error = relative_error_against_tensorflow(out, "tf1", "input", "probs");
        assert!(error < 1e-6, "{in_graph}: relative error {error}");
    };
    freeze_tf1("tf1/graph.pb", &dir.path().join("tf1.pbtxt"));
    // The Saver's .meta file (a MetaGraphDef) is accepted in place of the GraphDef.
    freeze_tf1("tf1/model.ckpt.meta", &dir.path().join("tf1_meta.pb"));
}

#[test]
fn freeze_errors_name_the_directory_signature_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = format!("--out_graph={}", dir.path().join("x.pb").display());
    let model = saved("keras_cnn");
    let output = graphopt(&[
        "freeze",
        &format!("--saved_model_dir={}", model.display()),
        "--signature_def=predict",
        &out,
    ]);
    assert_clean_failure(
        &output,
        &["keras_cnn", "no signature 'predict'", "serving_default"],
    );
    let output = graphopt(&[
        "freeze",
        &format!("--saved_model_dir={}", model.display()),
        "--tag_set=train",
        &out,
    ]);
    assert_clean_failure(&output, &["no MetaGraph with tags 'train'", "serve"]);
    let output = graphopt(&[
        "freeze",
        &format!("--in_graph={}", saved("tf1/graph.pb").display()),
        &format!("--checkpoint={}", dir.path().join("missing").display()),
        "--outputs=probs",
        &out,
    ]);
    assert_clean_failure(&output, &["missing.index", "checkpoint prefix"]);
    let output = graphopt(&[
        "freeze",
        &format!("--in_graph={}", saved("tf1/graph.pb").display()),
        &format!("--checkpoint={}", saved("tf1/model.ckpt").display()),
        "--outputs=nope",
        &out,
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "graphopt: error: {}: --outputs names 'nope', which is not a node of the graph; \
             likely outputs: global_step/read, probs, save/control_dependency\n",
            saved("tf1/graph.pb").display()
        )
    );
    // A truncated saved_model.pb.
    let broken = dir.path().join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    let bytes = std::fs::read(model.join("saved_model.pb")).unwrap();
    std::fs::write(broken.join("saved_model.pb"), &bytes[..bytes.len() / 3]).unwrap();
    let output = graphopt(&[
        "freeze",
        &format!("--saved_model_dir={}", broken.display()),
        &out,
    ]);
    assert_clean_failure(&output, &["broken", "saved_model.pb"]);
    // Neither a SavedModel nor a TF1 graph is a usage error.
    assert_eq!(graphopt(&["freeze", &out]).status.code(), Some(2));
}

#[test]
fn inspect_lists_tag_sets_and_signatures_with_dtypes_and_shapes() {
    let output = graphopt(&["inspect", saved("while_embedding").to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("MetaGraph with tag set 'serve'"), "{text}");
    assert!(text.contains("signature 'serving_default'"), "{text}");
    assert!(text.contains("tokens: int32 [-1, 5]"), "{text}");
    assert!(text.contains("logits: float [-1, 3]"), "{text}");
    let output = graphopt(&["inspect", saved("tf1").to_str().unwrap()]);
    assert_clean_failure(&output, &["saved_model.pb"]);
}

#[test]
fn check_names_every_node_a_target_cannot_load_and_exits_1() {
    let path = fixture("while_rnn.pb");
    let output = graphopt(&["check", "--target=opencv", path.to_str().unwrap()]);
    assert_clean_failure(&output, &["while_rnn.pb", "cannot load", "opencv 4.10.0"]);
    let text = String::from_utf8(output.stdout).unwrap();
    for op in ["(Enter)", "(Exit)", "(NextIteration)", "(LoopCond)"] {
        assert!(text.contains(op), "{op} not named:\n{text}");
    }
    assert!(
        text.contains("while/LoopCond/_18 (LoopCond): a TF1 while loop"),
        "{text}"
    );
    // TensorRT's UFF converter has no FusedBatchNormV3.
    let path = fixture("tf1_conv_bn.pb");
    let output = graphopt(&["check", "--target", "tensorrt", path.to_str().unwrap()]);
    assert_clean_failure(&output, &["tf1_conv_bn.pb", "tensorrt"]);
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.contains("bn/FusedBatchNormV3 (FusedBatchNormV3): UFF registers only FusedBatchNorm"),
        "{text}"
    );
}

/// Every graph real OpenCV loaded and matched TensorFlow on (tests/fixtures/expected/opencv.json,
/// made by the pipeline the record names, or the fixture itself) passes `graphopt check
/// --target=opencv`: exit 0.
#[test]
fn check_exits_0_on_every_graph_opencv_matched() {
    let dir = tempfile::tempdir().unwrap();
    let read = |path: PathBuf| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    };
    let expected = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/expected");
    let record = read(expected.join("opencv.json"));
    let mut checked = 0;
    for (case, judged) in record["cases"].as_object().unwrap() {
        let pipeline = judged["pipeline"].as_str().unwrap();
        if judged["matches_tensorflow"] != true {
            continue;
        }
        let name = case.split('@').next().unwrap();
        if pipeline.is_empty() {
            // The fixture as TensorFlow wrote it.
            let fixture = fixture(&format!("{name}.pb"));
            let output = graphopt(&["check", "--target=opencv", fixture.to_str().unwrap()]);
            assert!(output.status.success(), "{case}: {}", stderr(&output));
            checked += 1;
            continue;
        }
        let spec = read(expected.join(format!("{name}.json")));
        let names = |key: &str| -> String {
            let list: Vec<&str> = spec[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap())
                .collect();
            list.join(",")
        };
        let out = dir.path().join(format!("{case}.pb"));
        let mut args = transform_args(&fixture(&format!("{name}.pb")), &out, pipeline);
        args.push(format!("--inputs={}", names("inputs")));
        args.push(format!("--outputs={}", names("outputs")));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = graphopt(&refs);
        assert!(output.status.success(), "{case}: {}", stderr(&output));
        let output = graphopt(&["check", "--target=opencv", out.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "{case}: exit {:?}: {}{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            stderr(&output)
        );
        checked += 1;
    }
    assert_eq!(checked, 15, "the graphs OpenCV matched");
}

/// `@deploy` and `legalize` by name on the command line: the recommended pipeline keeps the
/// outputs (`verify`), and what legalize leaves for a target it reports node by node, with
/// the count `check` then gives (nodes, not problems: a node can break two constraints).
#[test]
fn deploy_and_legalize_run_from_the_command_line_and_report_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let original = fixture("keras_cnn.pb");
    let deployed = dir.path().join("deployed.pb");
    let mut args = transform_args(&original, &deployed, "@deploy");
    args.extend(["--inputs=input".into(), "--outputs=Identity".into()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = graphopt(&refs);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    let counts = err
        .lines()
        .find_map(|l| l.strip_prefix("graphopt: @deploy: "))
        .unwrap_or_else(|| panic!("no @deploy line: {err}"));
    let (before, after) = counts
        .trim_end_matches(" nodes")
        .split_once(" -> ")
        .unwrap();
    let (before, after): (usize, usize) = (before.parse().unwrap(), after.parse().unwrap());
    assert!(after < before, "{counts}");
    let verified = graphopt(&[
        "verify",
        original.to_str().unwrap(),
        deployed.to_str().unwrap(),
    ]);
    assert!(verified.status.success(), "{}", stderr(&verified));

    // `check` counts nodes: on the raw loop one Pack breaks two constraints.
    let check = |path: &Path| {
        let checked = graphopt(&["check", "--target=opencv", path.to_str().unwrap()]);
        let listed = String::from_utf8(checked.stdout.clone()).unwrap();
        let nodes: std::collections::BTreeSet<String> = listed
            .lines()
            .map(|l| l.split(" (").next().unwrap().to_string())
            .collect();
        (checked, listed, nodes.len())
    };
    let raw = fixture("while_rnn.pb");
    let (checked, listed, nodes) = check(&raw);
    assert!(
        nodes < listed.lines().count(),
        "no node with two problems: {listed}"
    );
    assert_clean_failure(
        &checked,
        &[&format!("while_rnn.pb: {nodes} node(s) that opencv")],
    );

    let legalized = dir.path().join("rnn.opencv.pb");
    let mut args = transform_args(&raw, &legalized, "legalize(target=opencv)");
    args.push("--outputs=Identity".into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = graphopt(&refs);
    let err = stderr(&output);
    assert!(output.status.success(), "{err}");
    let (checked, listed, nodes) = check(&legalized);
    assert_clean_failure(
        &checked,
        &[&format!("rnn.opencv.pb: {nodes} node(s) that opencv")],
    );
    for problem in listed.lines() {
        assert!(
            err.contains(&format!("left for opencv: {problem}")),
            "{problem} not reported by legalize: {err}"
        );
    }
    assert!(
        err.contains(&format!(
            "{nodes} node(s) that opencv 4.10.0 cannot load remain, which no rewrite of legalize handles"
        )),
        "{err}"
    );
}

#[test]
fn check_exits_0_on_a_graph_the_target_loads() {
    use graphopt_core::proto::{attr_value, AttrValue, GraphDef, NodeDef};
    use prost::Message;
    let node = |name: &str, op: &str, inputs: &[&str]| NodeDef {
        name: name.into(),
        op: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let float = |mut n: NodeDef, attr: &str| {
        n.attr.insert(
            attr.into(),
            AttrValue {
                value: Some(attr_value::Value::Type(1)),
            },
        );
        n
    };
    let graph = GraphDef {
        node: vec![
            float(node("input", "Placeholder", &[]), "dtype"),
            float(node("relu", "Relu", &["input"]), "T"),
            float(node("out", "Sigmoid", &["relu"]), "T"),
        ],
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "small.pb", &graph.encode_to_vec());
    for target in ["opencv", "tract", "tensorrt", "graphopt"] {
        let output = graphopt(&[
            "check",
            &format!("--target={target}"),
            path.to_str().unwrap(),
        ]);
        assert!(output.status.success(), "{target}: {}", stderr(&output));
        let text = String::from_utf8(output.stdout).unwrap();
        assert!(text.contains("loads all 3 nodes"), "{target}: {text}");
    }
    // graphopt's evaluator runs the fixtures, while loop included.
    let output = graphopt(&[
        "check",
        "--target=graphopt",
        fixture("while_rnn.pb").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn check_json_reports_node_op_and_why() {
    let path = fixture("tf1_conv_bn.pb");
    let output = graphopt(&["check", "--target=tract", "--json", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["target"], "tract");
    assert_eq!(json["loadable"], false);
    let problems = json["problems"].as_array().unwrap();
    assert!(!problems.is_empty());
    for p in problems {
        assert!(
            p["node"].is_string() && p["op"].is_string() && p["why"].is_string(),
            "{p}"
        );
    }
    let path = fixture("keras_cnn.pb");
    let output = graphopt(&[
        "check",
        "--target=graphopt",
        "--json",
        path.to_str().unwrap(),
    ]);
    assert!(output.status.success());
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["loadable"], true);
    assert_eq!(json["problems"], serde_json::json!([]));
}

#[test]
fn check_with_an_unknown_target_is_a_usage_error_listing_the_targets() {
    let path = fixture("keras_cnn.pb");
    let output = graphopt(&["check", "--target=coreml", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("unknown target 'coreml'"), "{err}");
    assert!(
        err.contains("graphopt, opencv, tract, tvm, tensorrt, ascend"),
        "{err}"
    );
    let output = graphopt(&["check", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn targets_lists_every_target_with_version_and_source() {
    let output = graphopt(&["targets"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    for line in [
        "opencv 4.10.0: OpenCV dnn TensorFlow importer",
        "tract 0.23.9: tract-tensorflow",
        "tvm 0.19.0: TVM Relay TensorFlow frontend",
        "tensorrt uff 0.6.3",
        "ascend Ascend/parser at fc02ad76",
        "graphopt 0.1.0",
        "source: opencv/opencv @ 4.10.0",
        "source: sonos/tract @ crates.io release 0.23.9",
        "source: apache/tvm @ tag v0.19.0",
        "ops: convert_map 178",
        "ops: dispatch 62",
        "profile only (does not install here)",
    ] {
        assert!(text.contains(line), "{line:?} missing:\n{text}");
    }
}

#[test]
fn savedmodel_paths_and_wrong_names_point_the_way() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pb");
    let out_arg = format!("--out_graph={}", out.display());
    let saved = saved("keras_cnn");
    let s = saved.display();
    let to_savedmodel = format!(
        "graphopt: error: {s}: is a SavedModel directory, not a graph file; freeze it first \
         (graphopt freeze --saved_model_dir={s} --out_graph=frozen.pb) or list its signatures (graphopt inspect {s})\n"
    );
    let in_graph = format!("--in_graph={s}");
    for args in [
        vec![
            "transform",
            &in_graph,
            &out_arg,
            "--transforms=remove_device",
        ],
        vec!["summarize", &in_graph],
        vec!["summarize", s.to_string().leak()],
    ] {
        let output = graphopt(&args);
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(stderr(&output), to_savedmodel);
    }
    let graph_file = saved.join("saved_model.pb");
    let output = graphopt(&["summarize", graph_file.to_str().unwrap()]);
    assert_eq!(
        stderr(&output),
        format!(
            "graphopt: error: {}: is a SavedModel's graph, not a frozen GraphDef; freeze its directory first \
             (graphopt freeze --saved_model_dir={s} --out_graph=frozen.pb)\n",
            graph_file.display()
        )
    );
    let plain = dir.path().display().to_string();
    let output = graphopt(&["summarize", &plain]);
    assert_eq!(
        stderr(&output),
        format!("graphopt: error: {plain}: is a directory, not a graph file\n")
    );

    // Wrong names list the likely ones.
    let input = fixture("tf1_conv_bn.pb");
    for (flag, likely) in [
        ("--outputs=prob", "likely outputs: probs"),
        ("--inputs=image", "likely inputs: input"),
    ] {
        let mut args = transform_args(&input, &out, "remove_device");
        args.push(flag.into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = graphopt(&refs);
        let (flag, name) = flag.split_once('=').unwrap();
        assert_eq!(
            stderr(&output),
            format!(
                "graphopt: error: {}: {flag} names '{name}', which is not a node of the graph; {likely}\n",
                input.display()
            )
        );
    }
}

#[test]
fn savedmodel_commands_given_a_file_and_verify_and_freeze_given_wrong_names_point_the_way() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pb");
    let out_arg = format!("--out_graph={}", out.display());
    let fails_with = |args: &[&str], expected: String| {
        let output = graphopt(args);
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(stderr(&output), expected, "{args:?}");
    };

    // A SavedModel's saved_model.pb in place of its directory.
    let model = saved("keras_cnn");
    let graph_file = model.join("saved_model.pb");
    let (g, d) = (graph_file.display(), model.display());
    fails_with(
        &["freeze", &format!("--saved_model_dir={g}"), &out_arg],
        format!(
            "graphopt: error: {g}: is the saved_model.pb file of a SavedModel, not its directory; \
             give the directory: --saved_model_dir={d}\n"
        ),
    );
    fails_with(
        &["inspect", &g.to_string()],
        format!(
            "graphopt: error: {g}: is the saved_model.pb file of a SavedModel, not its directory; \
             give the directory: graphopt inspect {d}\n"
        ),
    );

    // A GraphDef file in place of a SavedModel directory.
    let frozen = fixture("keras_cnn.pb");
    let f = frozen.display();
    fails_with(
        &["inspect", &f.to_string()],
        format!(
            "graphopt: error: {f}: is a GraphDef file, not a SavedModel directory; \
             summarize it instead (graphopt summarize {f})\n"
        ),
    );
    fails_with(
        &["freeze", &format!("--saved_model_dir={f}"), &out_arg],
        format!(
            "graphopt: error: {f}: is a GraphDef file, not a SavedModel directory; \
             it has no variables to freeze (graphopt summarize {f})\n"
        ),
    );
    let tf1 = saved("tf1/graph.pb");
    let t = tf1.display();
    fails_with(
        &["freeze", &format!("--saved_model_dir={t}"), &out_arg],
        format!(
            "graphopt: error: {t}: is a GraphDef file, not a SavedModel directory; \
             freeze it with its checkpoint (graphopt freeze --in_graph={t} --checkpoint=PREFIX \
             --outputs=NAMES --out_graph=frozen.pb)\n"
        ),
    );
    let other = write(dir.path(), "notes.txt", b"not a graph");
    let o = other.display();
    fails_with(
        &["inspect", &o.to_string()],
        format!("graphopt: error: {o}: is a file, not a SavedModel directory\n"),
    );

    // verify's and freeze's wrong names list the likely ones, as transform's do.
    let input = fixture("tf1_conv_bn.pb");
    let i = input.display().to_string();
    for (flag, likely) in [
        ("--outputs=prob", "likely outputs: probs"),
        ("--inputs=image", "likely inputs: input"),
    ] {
        let (name_flag, name) = flag.split_once('=').unwrap();
        fails_with(
            &["verify", &i, &i, flag],
            format!(
                "graphopt: error: {i}: {name_flag} names '{name}', which is not a node of the graph; {likely}\n"
            ),
        );
    }
    fails_with(
        &[
            "freeze",
            &format!("--in_graph={t}"),
            &format!("--checkpoint={}", saved("tf1/model.ckpt").display()),
            "--outputs=prob",
            &out_arg,
        ],
        format!(
            "graphopt: error: {t}: --outputs names 'prob', which is not a node of the graph; \
             likely outputs: global_step/read, probs, save/control_dependency\n"
        ),
    );
    assert!(!out.exists(), "no output may be written on failure");
}

#[test]
fn transform_errors_name_the_declared_inputs_not_a_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pb");
    let input = fixture("tf1_conv_bn.pb");
    let output = run_transform(&input, &out, "fix_input_shapes(shape=\"1,16,16,3\")");
    assert_eq!(output.status.code(), Some(1));
    // The file, the transform, what is wrong.
    assert_eq!(
        stderr(&output),
        format!(
            "graphopt: error: {}: transform 'fix_input_shapes': give name and shape once per \
             input, e.g. fix_input_shapes(name=input, shape=\"1,224,224,3\"), or one shape alone \
             for every declared input\n",
            input.display()
        )
    );
    let mut args = transform_args(
        &input,
        &out,
        "strip_unused_nodes(name=relu, type_for_name=float)",
    );
    args.extend(["--inputs=input".to_string(), "--outputs=probs".to_string()]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let output = graphopt(&refs);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        format!(
            "graphopt: error: {}: transform 'strip_unused_nodes': name=relu is not one of the \
             declared inputs\n",
            input.display()
        )
    );
    assert!(!out.exists());
}

#[test]
fn transform_says_what_it_wrote_and_freeze_keeps_only_called_functions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pb");
    let output = run_transform(&fixture("tf1_conv_bn.pb"), &out, "remove_device");
    assert!(output.status.success(), "{}", stderr(&output));
    let bytes = std::fs::read(&out).unwrap();
    let (graph, _) =
        graphopt_core::io::decode_graph(bytes.clone().into(), Path::new("out.pb")).unwrap();
    assert!(
        stderr(&output).ends_with(&format!(
            "graphopt: wrote {} (binary, {} bytes): {} nodes, 0 functions\n",
            out.display(),
            bytes.len(),
            graph.node.len()
        )),
        "{}",
        stderr(&output)
    );
    // A link is written through (the link stays, its file gets the graph and its size is
    // told); a device has no size to tell.
    let link = dir.path().join("link.pb");
    std::os::unix::fs::symlink(&out, &link).unwrap();
    std::fs::write(&out, b"old").unwrap();
    let output = run_transform(&fixture("tf1_conv_bn.pb"), &link, "remove_device");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    assert!(
        stderr(&output).contains(&format!("(binary, {} bytes)", bytes.len())),
        "{}",
        stderr(&output)
    );
    let output = run_transform(
        &fixture("tf1_conv_bn.pb"),
        Path::new("/dev/null"),
        "remove_device",
    );
    assert!(
        stderr(&output).ends_with(&format!(
            "graphopt: wrote /dev/null (binary): {} nodes, 0 functions\n",
            graph.node.len()
        )),
        "{}",
        stderr(&output)
    );

    // The while loop's body and condition stay; the SavedModel's save/restore functions and
    // the inlined signature function go.
    let frozen = dir.path().join("frozen.pbtxt");
    let output = graphopt(&[
        "freeze",
        &format!("--saved_model_dir={}", saved("while_embedding").display()),
        &format!("--out_graph={}", frozen.display()),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let loaded = graphopt_core::io::read_graph(&frozen).unwrap();
    let mut names: Vec<String> = loaded
        .graph
        .library
        .unwrap_or_default()
        .function
        .iter()
        .map(|f| f.signature.as_ref().unwrap().name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["while_body_946", "while_cond_945"]);
    assert!(
        stderr(&output).contains("nodes, 2 functions\n"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn verify_help_states_each_default_once_and_explains_exact_match() {
    let output = graphopt(&["verify", "--help"]);
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(
        !help.contains("[default: ]") && !help.contains("[default: \"\"]"),
        "{help}"
    );
    assert_eq!(
        help.matches("default: the original's Placeholders").count(),
        1,
        "{help}"
    );
    assert_eq!(
        help.matches("default: the original's likely outputs")
            .count(),
        1,
        "{help}"
    );
    assert!(help.contains("\"exact_match\": null"), "{help}");
}

#[test]
fn verify_json_compares_floats_by_error_and_other_outputs_exactly() {
    let float = fixture("tf1_conv_bn.pb");
    let output = graphopt(&[
        "verify",
        float.to_str().unwrap(),
        float.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["outputs"][0]["exact_match"], serde_json::Value::Null);

    let dir = tempfile::tempdir().unwrap();
    let ints = write(
        dir.path(),
        "ints.pbtxt",
        br#"node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_INT32 } } attr { key: "shape" value { shape { dim { size: 2 } } } } }
node { name: "y" op: "Identity" input: "x" attr { key: "T" value { type: DT_INT32 } } }
"#,
    );
    let output = graphopt(&[
        "verify",
        ints.to_str().unwrap(),
        ints.to_str().unwrap(),
        "--json",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["outputs"][0]["exact_match"], true);
}

#[test]
fn transforms_lists_parameters_with_their_defaults() {
    let output = graphopt(&["transforms"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let listing = String::from_utf8_lossy(&output.stdout);
    for line in [
        "round_weights(num_steps=256)\n",
        "fold_constants(exclude_op, exclude_node, max_constant_size_in_bytes=10485760, clear_output_shapes=true)\n",
        "set_device(device=\"\", if_default=false)\n",
        "legalize(target)\n",
    ] {
        assert!(listing.contains(line), "{line:?} not in {listing}");
    }
}

/// A graph of `count` nodes of an op no target knows, each read from one Placeholder: `check`
/// prints a line per node and `summarize --print_structure` one per node, far more than a
/// pipe holds.
fn many_unknown_ops(dir: &Path, count: usize) -> PathBuf {
    use graphopt_core::proto::{attr_value, AttrValue, GraphDef, NodeDef};
    use prost::Message;
    let mut input = NodeDef {
        name: "input".into(),
        op: "Placeholder".into(),
        ..Default::default()
    };
    input.attr.insert(
        "dtype".into(),
        AttrValue {
            value: Some(attr_value::Value::Type(1)),
        },
    );
    let mut node = vec![input];
    node.extend((0..count).map(|k| NodeDef {
        name: format!("layer_{k}/unknown_op_with_a_long_name"),
        op: "FrobnicateSomething".into(),
        input: vec!["input".into()],
        ..Default::default()
    }));
    let graph = GraphDef {
        node,
        ..Default::default()
    };
    write(dir, "many.pb", &graph.encode_to_vec())
}

/// Runs graphopt with stdout a pipe whose reader takes one line and closes it; returns the
/// line read, the exit code and stderr.
fn graphopt_read_one_line(args: &[&str]) -> (String, Option<i32>, String) {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_graphopt"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run graphopt");
    let mut line = String::new();
    {
        let stdout = child.stdout.take().unwrap();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        // The reader goes here: the pipe's read end is closed while graphopt still writes.
    }
    let output = child.wait_with_output().unwrap();
    (line, output.status.code(), stderr(&output))
}

#[test]
fn a_reader_that_stops_early_ends_the_output_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = many_unknown_ops(dir.path(), 5000);
    let path = path.to_str().unwrap();
    // The command's own exit code: check fails on the graph, summarize succeeds.
    for (args, code) in [
        (vec!["check", "--target=tract", path], 1),
        (vec!["check", "--target=opencv", "--json", path], 1),
        (vec!["summarize", "--print_structure", path], 0),
        (vec!["summarize", "--json", path], 0),
    ] {
        let (line, status, err) = graphopt_read_one_line(&args);
        assert!(!line.is_empty(), "{args:?}: no first line");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_ne!(status, Some(101), "{args:?}: {err}");
        assert_eq!(status, Some(code), "{args:?}: {err}");
        // No word about the closed pipe: at most the command's own error line.
        assert!(!err.to_lowercase().contains("pipe"), "{args:?}: {err}");
        assert!(err.lines().count() <= 1, "{args:?}: {err}");
    }
    // `transforms` lists more than one line too.
    let (line, status, err) = graphopt_read_one_line(&["transforms"]);
    assert!(!line.is_empty());
    assert_eq!(status, Some(0), "{err}");
}

/// A text-format graph whose names hold a line break and a terminal escape sequence.
const HOSTILE_NAMES: &str = r#"
node {
  name: "in\nput\x1b[2J"
  op: "Placeholder"
  attr { key: "dtype" value { type: DT_FLOAT } }
}
node {
  name: "bad\n\x1b[2Jnode"
  op: "Frob\x1b[31m"
  input: "in\nput\x1b[2J"
}
node {
  name: "out\x1b[2J"
  op: "Relu"
  input: "bad\n\x1b[2Jnode"
  device: "/cpu\n\x1b[2J"
  attr { key: "T" value { type: DT_FLOAT } }
}
"#;

#[test]
fn check_and_summarize_escape_names_as_error_lines_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "hostile.pbtxt", HOSTILE_NAMES.as_bytes());
    let path = path.to_str().unwrap();
    let no_raw_controls = |what: &str, text: &str| {
        assert!(!text.contains('\u{1b}'), "{what}: raw ESC in {text:?}");
    };
    // TensorFlow's importer refuses these node names, and so does every command, naming the
    // first one escaped.
    let refused = [
        "hostile.pbtxt",
        r"node 'in\nput\u{1b}[2J' has a name TensorFlow refuses",
    ];
    for args in [
        &["check", "--target=tract", path][..],
        &["check", "--target=tract", "--json", path],
        &["check", "--target=graphopt", path],
    ] {
        let output = graphopt(args);
        assert_clean_failure(&output, &refused);
        assert!(output.stdout.is_empty(), "{args:?}");
    }

    // summarize reports after the summary, as summarize_graph does.
    let output = graphopt(&["summarize", "--print_structure", path]);
    assert_clean_failure(&output, &refused);
    let text = String::from_utf8(output.stdout).unwrap();
    no_raw_controls("summarize", &text);
    for line in [
        r"Found 1 possible inputs: (name=in\nput\u{1b}[2J, type=float(1), shape=None) ",
        r"Found 1 possible outputs: (name=out\u{1b}[2J, op=Relu) ",
        r"1 nodes assigned to device '/cpu\n\u{1b}[2J'",
        r"Op types used: 1 Frob\u{1b}[31m, 1 Placeholder, 1 Relu",
        // --print_structure: one line per node.
        r"in\nput\u{1b}[2J (Placeholder): []",
        r"bad\n\u{1b}[2Jnode (Frob\u{1b}[31m): [in\nput\u{1b}[2J]",
        r"out\u{1b}[2J (Relu): [bad\n\u{1b}[2Jnode]",
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} not in {text:?}");
    }
    assert!(
        text.contains(r"--input_layer=in\nput\u{1b}[2J "),
        "{text:?}"
    );

    // JSON keeps the names as they are (serde escapes them).
    let output = graphopt(&["summarize", "--json", path]);
    no_raw_controls("summarize --json", &String::from_utf8_lossy(&output.stdout));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["inputs"][0]["name"], "in\nput\u{1b}[2J");

    // Names TensorFlow takes, an op and a device that are hostile: check reports the op.
    let ops = HOSTILE_NAMES
        .replace(r"in\nput\x1b[2J", "in_put")
        .replace(r"bad\n\x1b[2Jnode", "bad_node")
        .replace(r"out\x1b[2J", "out");
    let path = write(dir.path(), "hostile_ops.pbtxt", ops.as_bytes());
    let path = path.to_str().unwrap();
    let output = graphopt(&["check", "--target=tract", path]);
    assert_clean_failure(&output, &["hostile_ops.pbtxt", "cannot load"]);
    let text = String::from_utf8(output.stdout).unwrap();
    no_raw_controls("check", &text);
    // One line for the one node tract does not know, its op escaped as error lines do.
    assert_eq!(text.lines().count(), 1, "{text:?}");
    assert!(text.starts_with(r"bad_node (Frob\u{1b}[31m): "), "{text:?}");
    let output = graphopt(&["check", "--target=graphopt", path]);
    let text = String::from_utf8(output.stdout).unwrap();
    no_raw_controls("check --target=graphopt", &text);
    assert_eq!(text.lines().count(), 1, "{text:?}");
    let output = graphopt(&["check", "--target=tract", "--json", path]);
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["problems"][0]["op"], "Frob\u{1b}[31m");
}

/// `--memory_budget` and `--work_budget` bound a command: under a tight one it stops with one
/// line naming the budget and the flag that raises it; a generous one changes nothing.
#[test]
fn budget_flags_bound_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("keras_cnn.pb");
    let out = dir.path().join("out.pb");
    let pipeline = "fold_constants fold_batch_norms fold_old_batch_norms";
    let run = |budget: &[&str]| {
        let mut args = transform_args(&input, &out, pipeline);
        args.extend(budget.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        graphopt(&args)
    };
    assert_clean_failure(
        &run(&["--work_budget=1000"]),
        &["over the work budget of 1000", "--work_budget"],
    );
    assert_clean_failure(
        &run(&["--memory_budget", "64K"]),
        &["over the memory budget of 64.0 KiB", "--memory_budget"],
    );
    let generous = run(&["--memory_budget=1G", "--work_budget=unlimited"]);
    assert!(generous.status.success(), "{}", stderr(&generous));
    let default = dir.path().join("default.pb");
    let args = transform_args(&input, &default, pipeline);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert!(graphopt(&args).status.success());
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&default).unwrap(),
        "a budget changes no output"
    );
}

/// An output path that cannot be written is refused in one line before any transform runs
/// (it had failed only after all the work, below the transforms' progress lines), and an
/// upper-case `.PBTXT` is written as text like `.pbtxt`.
#[test]
fn unwritable_outputs_fail_before_any_work_and_pbtxt_is_text_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("tf1_conv_bn.pb");
    assert_clean_failure(
        &run_transform(&input, dir.path(), "remove_device"),
        &["cannot write the output graph", "is a directory"],
    );
    let missing = dir.path().join("no/such/dir/out.pb");
    assert_clean_failure(
        &run_transform(&input, &missing, "remove_device"),
        &["no/such/dir/out.pb", "its directory does not exist"],
    );
    let file = write(dir.path(), "file", b"x");
    assert_clean_failure(
        &run_transform(&input, &file.join("out.pb"), "remove_device"),
        &["its parent is not a directory"],
    );
    let frozen = graphopt(&[
        "freeze",
        &format!("--saved_model_dir={}", dir.path().display()),
        &format!("--out_graph={}", missing.display()),
    ]);
    assert_clean_failure(&frozen, &["its directory does not exist"]);

    let text = dir.path().join("OUT.PBTXT");
    let output = run_transform(&input, &text, "remove_device");
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(std::fs::read_to_string(&text)
        .unwrap()
        .starts_with("node {"));
}

/// `--tolerance` NaN passed every comparison and a negative one failed every one: both are
/// usage errors. An infinity in the original output had scaled every difference to zero or
/// NaN, so `[inf, 1]` against `[5, 1]` or `[inf, 2]` was within any tolerance, while the same
/// infinity on both sides was an infinite error.
#[test]
fn verify_refuses_meaningless_tolerances_and_compares_infinities_as_values() {
    let dir = tempfile::tempdir().unwrap();
    let constant = |name: &str, values: &str| {
        let text = format!(
            "node {{ name: \"out\" op: \"Const\" attr {{ key: \"dtype\" value {{ type: DT_FLOAT }} }} \
             attr {{ key: \"value\" value {{ tensor {{ dtype: DT_FLOAT tensor_shape {{ dim {{ size: 2 }} }} \
             float_val: [{values}] }} }} }} }}\n"
        );
        write(dir.path(), name, text.as_bytes())
    };
    let original = constant("a.pbtxt", "inf, 1");
    let verify = |other: &Path, extra: &[&str]| {
        let mut args = vec![
            "verify",
            "--outputs=out",
            original.to_str().unwrap(),
            other.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        graphopt(&args)
    };
    for tolerance in ["--tolerance=nan", "--tolerance=-1", "--tolerance=abc"] {
        let output = verify(&original, &[tolerance]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{tolerance}: {}",
            stderr(&output)
        );
    }
    let output = verify(&original, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    for (name, values) in [
        ("b.pbtxt", "5, 1"),
        ("c.pbtxt", "inf, 2"),
        ("d.pbtxt", "-inf, 1"),
    ] {
        let other = constant(name, values);
        let output = verify(&other, &["--tolerance=0.5"]);
        assert_clean_failure(&output, &[name, "output 'out'", "over the tolerance"]);
    }
}
