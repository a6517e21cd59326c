//! What the real consumers did with graphopt's legalized graphs, as recorded by the committed
//! judges (tests/consumers/check_opencv.py runs OpenCV's dnn importer from Python;
//! consumers/tract, a crate outside the workspace, runs tract-tensorflow), tied to today's
//! output: each record carries the SHA-256 of the graph it judged, and this test legalizes the
//! fixture afresh and fails when the bytes differ, so a record can never speak of an older
//! graph. Re-run the judge after an intended change (see its docs).

mod common;

use graphopt_core::io;

/// Fixtures OpenCV must load and compute within the record's tolerance of TensorFlow: every
/// CNN fixture of the generator (resize_pad_conv's SYMMETRIC MirrorPad and atrous_conv's
/// dilated convolutions in the forms `legalize(target=opencv)` writes for them).
const OPENCV_MUST_MATCH: &[&str] = &[
    "keras_cnn",
    "tf1_conv_bn",
    "bn_patterns",
    "resize_pad_conv",
    "atrous_conv",
    "densenet_block",
    "efficientnet_block",
    "keras_cnn@deploy",
    "densenet_block@deploy",
    "efficientnet_block@deploy",
    "keras_cnn@legalize",
    "bn_patterns@legalize",
    "densenet_block@legalize",
];

/// The fixture names in a stretch of README text, sorted.
fn fixtures_named(text: &str) -> Vec<&str> {
    let mut names: Vec<&str> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| common::MODELS.contains(word))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The fixtures of a must-match list, without their pipeline variants, sorted.
fn base_names(cases: &[&'static str]) -> Vec<&'static str> {
    let mut names: Vec<&str> = cases
        .iter()
        .map(|case| case.split('@').next().unwrap())
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// The fixtures a must-match list judges with a pipeline variant (`case@suffix`), sorted.
fn variant_names(cases: &[&'static str], suffix: &str) -> Vec<&'static str> {
    let mut names: Vec<&str> = cases
        .iter()
        .filter_map(|case| case.strip_suffix(suffix))
        .collect();
    names.sort_unstable();
    names
}

/// The text of `paragraph` between `start` and the next `end`.
fn inside<'a>(paragraph: &'a str, start: &str, end: &str) -> &'a str {
    let from = paragraph
        .find(start)
        .unwrap_or_else(|| panic!("README.md: no \"{start}\" in {paragraph}"))
        + start.len();
    let to = paragraph[from..]
        .find(end)
        .unwrap_or_else(|| panic!("README.md: no \"{end}\" after \"{start}\""));
    &paragraph[from..from + to]
}

fn record(consumer: &str) -> serde_json::Value {
    let path = common::fixtures().join(format!("expected/{consumer}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Re-runs every recorded pipeline and checks that its output is the graph the consumer
/// judged; `rerun` names the command that refreshes the record.
fn assert_records_are_todays(report: &serde_json::Value, rerun: &str) {
    let cases = report["cases"].as_object().unwrap();
    for (case, judged) in cases {
        let name = case.split('@').next().unwrap();
        let graph = common::apply(name, judged["pipeline"].as_str().unwrap());
        assert_eq!(
            common::sha256_hex(&io::encode_graph(&graph)),
            judged["sha256"].as_str().unwrap(),
            "{case}: the graph the consumer judged is not today's output; run {rerun}"
        );
    }
}

#[test]
fn opencv_judged_todays_graphs() {
    let report = record("opencv");
    assert_records_are_todays(&report, "tests/consumers/check_opencv.py");
    let cases = report["cases"].as_object().unwrap();
    for case in OPENCV_MUST_MATCH {
        let judged = &cases[*case];
        assert_eq!(
            judged["loaded"], true,
            "{case}: OpenCV did not load it: {judged}"
        );
        assert_eq!(
            judged["matches_tensorflow"], true,
            "{case}: OpenCV's outputs differ from TensorFlow's: {judged}"
        );
        // The verdict is element-wise: no element outside atol + rtol * |TensorFlow's|.
        assert_eq!(
            judged["mismatched_elements"], 0,
            "{case}: elements of OpenCV's output outside atol + rtol * |TensorFlow's|: {judged}"
        );
        assert!(
            judged["worst_element_rel_error"].is_f64(),
            "{case}: no worst element's relative error recorded: {judged}"
        );
    }
    assert_eq!(report["opencv_version"], "4.10.0");
    // The record's `tolerance` is the element-wise criterion's rtol; its atol is a small
    // absolute floor for elements near zero.
    assert_eq!(report["rtol"], report["tolerance"]);
    let atol = report["atol"].as_f64().expect("the record's atol");
    assert!(atol > 0.0 && atol <= 1e-5, "atol {atol:e}");
    // Every case that ran was judged element-wise, its verdict agreeing with its count.
    for (case, judged) in cases {
        if let Some(mismatched) = judged.get("mismatched_elements") {
            assert_eq!(
                judged["matches_tensorflow"],
                mismatched == 0,
                "{case}: the verdict is not the element-wise one: {judged}"
            );
        }
    }

    // What the README says of them: the record's tolerance, the largest relative error, and
    // the fixtures it names.
    let readme = common::readme::figures(
        "OpenCV loads and matches TensorFlow within the record's {} tolerance ({} relative at \
         most) on",
    );
    let (tolerance, at_most): (f64, f64) = (readme[0].parse().unwrap(), readme[1].parse().unwrap());
    assert_eq!(
        report["tolerance"].as_f64(),
        Some(tolerance),
        "the record's tolerance vs the README's"
    );
    let largest = OPENCV_MUST_MATCH
        .iter()
        .filter_map(|case| cases[*case]["max_rel_error"].as_f64())
        .fold(0f64, f64::max);
    assert!(
        largest > at_most / 2.0,
        "the README's {at_most:e} is loose: the largest relative error is {largest:e}"
    );
    for case in OPENCV_MUST_MATCH {
        let error = cases[*case]["max_rel_error"]
            .as_f64()
            .unwrap_or_else(|| panic!("{case}: no max_rel_error recorded"));
        assert!(
            error <= at_most,
            "{case}: OpenCV's relative error {error:e} is over the README's {at_most:e}"
        );
    }
    let named = common::readme::between(
        "OpenCV loads and matches TensorFlow within the record's",
        ". What legalization changes for OpenCV",
    );
    assert_eq!(
        fixtures_named(&named),
        base_names(OPENCV_MUST_MATCH),
        "the fixtures the README says OpenCV matches on"
    );
    // The fixtures it names for `@deploy` and for legalize alone are the judged ones.
    let paragraph = common::readme::between(
        "### Consumers: OpenCV 4.10 judges",
        "What legalization changes for OpenCV",
    );
    assert_eq!(
        fixtures_named(inside(&paragraph, "(and, on ", "`@deploy` too)")),
        variant_names(OPENCV_MUST_MATCH, "@deploy"),
        "the fixtures the README says OpenCV matches with @deploy"
    );
    assert_eq!(
        fixtures_named(inside(&paragraph, "alone too, on", ", since")),
        variant_names(OPENCV_MUST_MATCH, "@legalize"),
        "the fixtures the README says OpenCV matches with legalize alone"
    );
}

/// Fixtures tract-tensorflow 0.23 must load and run within the record's tolerance of
/// TensorFlow after `legalize(target=tract)` (the deploy-targets issue's acceptance, and every
/// other fixture the tract legalization makes loadable).
const TRACT_MUST_MATCH: &[&str] = &[
    "keras_cnn",
    "tf1_conv_bn",
    "efficientnet_block",
    "bn_patterns",
    "atrous_conv",
    "atrous_conv@dilated",
    "densenet_block",
    "dense_mlp",
    "function_calls",
    "training_leftovers@deploy",
    "keras_cnn@deploy",
    "tf1_conv_bn@deploy",
    "densenet_block@deploy",
    "efficientnet_block@deploy",
];

#[test]
fn tract_judged_todays_graphs() {
    let report = record("tract");
    assert_records_are_todays(
        &report,
        "`cargo run --release --manifest-path consumers/tract/Cargo.toml`",
    );
    let cases = report["cases"].as_object().unwrap();
    // The README's figures: the element-wise criterion, and the largest error relative to the
    // largest output, which every fixture tract matches is within.
    let figures = common::readme::figures(
        "tract loads and matches TensorFlow element by element (|tract - TensorFlow| <= {} + {} \
         |TensorFlow|; at most {} of the largest output) on",
    );
    let figure = |k: usize| -> f64 { figures[k].parse().expect("a number") };
    assert_eq!(
        report["atol"].as_f64(),
        Some(figure(0)),
        "the README's atol"
    );
    assert_eq!(
        report["rtol"].as_f64(),
        Some(figure(1)),
        "the README's rtol"
    );
    assert_eq!(report["rtol"], report["tolerance"]);
    let within = figure(2);
    let largest = TRACT_MUST_MATCH
        .iter()
        .filter_map(|case| cases[*case]["max_rel_error"].as_f64())
        .fold(0f64, f64::max);
    assert!(
        largest > within / 2.0,
        "the README's {within:e} is loose: the largest relative error is {largest:e}"
    );
    for case in TRACT_MUST_MATCH {
        let judged = &cases[*case];
        assert_eq!(
            judged["loaded"], true,
            "{case}: tract did not load it: {judged}"
        );
        assert_eq!(
            judged["matches_tensorflow"], true,
            "{case}: tract's outputs differ from TensorFlow's: {judged}"
        );
        let error = judged["max_rel_error"]
            .as_f64()
            .unwrap_or_else(|| panic!("{case}: no max_rel_error recorded"));
        assert!(
            error <= within,
            "{case}: tract's relative error {error:e} is over the README's {within:e}"
        );
        assert_eq!(
            judged["mismatched_elements"], 0,
            "{case}: elements of tract's output outside atol + rtol * |TensorFlow's|: {judged}"
        );
        assert!(
            judged["worst_element_rel_error"].is_f64(),
            "{case}: no worst element's relative error recorded: {judged}"
        );
    }
    // Every case that ran was judged element-wise, its verdict agreeing with its count.
    for (case, judged) in cases {
        if judged["ran"] == true && judged.get("error").is_none() {
            let mismatched = judged
                .get("mismatched_elements")
                .unwrap_or_else(|| panic!("{case}: ran but not judged element-wise: {judged}"));
            assert_eq!(
                judged["matches_tensorflow"],
                *mismatched == 0,
                "{case}: the verdict is not the element-wise one: {judged}"
            );
        }
    }
    let named = common::readme::between(
        "tract loads and matches TensorFlow element by element",
        ". What legalization changes for tract",
    );
    assert_eq!(
        fixtures_named(&named),
        base_names(TRACT_MUST_MATCH),
        "the fixtures the README says tract matches on"
    );
    let paragraph = common::readme::between(
        "### Consumers: tract-tensorflow judges",
        "What legalization changes for tract",
    );
    // Those with `@deploy` as well as the standard pipeline, and those with `@deploy` alone
    // ("NAME (`@deploy`)").
    let mut deployed = fixtures_named(inside(&paragraph, "(and, on ", "`@deploy` too)"));
    deployed.extend(
        common::MODELS
            .iter()
            .filter(|name| paragraph.contains(&format!("{name} (`@deploy`)"))),
    );
    deployed.sort_unstable();
    assert_eq!(
        deployed,
        variant_names(TRACT_MUST_MATCH, "@deploy"),
        "the fixtures the README says tract matches with @deploy"
    );
    // A fixture judged with `@deploy` alone has no standard-pipeline case.
    for name in common::MODELS
        .iter()
        .filter(|name| paragraph.contains(&format!("{name} (`@deploy`)")))
    {
        assert!(!TRACT_MUST_MATCH.contains(name), "{name}");
    }
    // The fixtures tract cannot run are recorded as failing, with tract's reason: ops it does
    // not register (ResizeBilinear, BatchMatMulV2) and its own while-loop import, whose
    // NextIteration sink fails analysis.
    for (case, op) in [
        ("resize_pad_conv", "ResizeBilinear"),
        ("transformer_block", "BatchMatMulV2"),
        ("bert_encoder", "BatchMatMulV2"),
        ("while_rnn", "next_iteration"),
    ] {
        let judged = &cases[case];
        assert_eq!(judged["matches_tensorflow"], false, "{case}");
        assert!(
            judged["errors"].to_string().contains(op),
            "{case}: expected tract to name {op}: {judged}"
        );
    }
    assert_eq!(report["tolerance"], 1e-4);
    let version = common::readme::figures("loads the result in tract-tensorflow {}, runs it");
    assert_eq!(
        report["tract_version"].as_str(),
        Some(version[0].as_str()),
        "the tract-tensorflow version that judged vs the README's"
    );
}
