//! quantize_weights and round_weights against TensorFlow's Graph Transform Tool output
//! (tests/fixtures/expected/NAME.quantize_weights.pb and NAME.round_weights.pb).

mod common;

use std::collections::HashMap;
use std::io::Write;

use graphopt_core::graph::edit::const_value;
use graphopt_core::io;
use graphopt_core::proto::GraphDef;
use graphopt_core::rewrite::weights;
use graphopt_core::tensor::Data;

use common::apply;

fn tensorflow_result(model: &str, key: &str) -> GraphDef {
    io::read_graph(
        common::fixtures()
            .join("expected")
            .join(format!("{model}.{key}.pb")),
    )
    .unwrap()
    .graph
}

fn consts(graph: &GraphDef) -> HashMap<&str, graphopt_core::tensor::Tensor> {
    graph
        .node
        .iter()
        .filter_map(|n| const_value(n).map(|v| (n.name.as_str(), v)))
        .collect()
}

fn gzip_size(graph: &GraphDef) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(&io::encode_graph(graph)).unwrap();
    encoder.finish().unwrap().len()
}

#[test]
fn quantized_codes_are_bit_exact_with_tensorflow() {
    let (mut compared, mut degenerate, mut dequantized) = (0, 0, 0);
    for name in common::MODELS {
        let original = common::load(name);
        let originals = consts(&original);
        let ours = apply(name, "quantize_weights(minimum_size=16)");
        let theirs = tensorflow_result(name, "quantize_weights");
        // The README's "like every GTT transform, drops the graph's `versions`", on the other
        // GTT output the generator commits (round_weights' is checked below).
        assert!(
            original.versions.is_some() && theirs.versions.is_none(),
            "{name}: TensorFlow's quantize_weights kept `versions`"
        );
        assert_eq!(
            ours.versions, original.versions,
            "{name}: graphopt keeps `versions`"
        );
        let ours_ops: Vec<(&str, &str)> = ours
            .node
            .iter()
            .map(|n| (n.name.as_str(), n.op.as_str()))
            .collect();
        let theirs_ops: Vec<(&str, &str)> = theirs
            .node
            .iter()
            .map(|n| (n.name.as_str(), n.op.as_str()))
            .collect();
        let mut sorted_ours = ours_ops.clone();
        let mut sorted_theirs = theirs_ops.clone();
        sorted_ours.sort();
        sorted_theirs.sort();
        assert_eq!(sorted_ours, sorted_theirs, "{name}: different nodes");
        let (our_consts, their_consts) = (consts(&ours), consts(&theirs));
        for node in theirs.node.iter().filter(|n| n.op == "Dequantize") {
            let base = &node.name;
            let their_max = &their_consts[format!("{base}_quantized_max").as_str()];
            let their_max = weights::floats(their_max).unwrap()[0];
            let our_codes = &our_consts[format!("{base}_quantized_const").as_str()];
            dequantized += 1;
            // TensorFlow's range is degenerate (an FLT_MIN maximum, which dequantizes to NaN)
            // exactly where the original tensor is all zeros.
            let all_zero = weights::floats(&originals[base.as_str()])
                .unwrap()
                .iter()
                .all(|&v| v == 0.0);
            assert_eq!(
                their_max <= f64::from(f32::MIN_POSITIVE),
                all_zero,
                "{name}: {base}: TensorFlow's range {their_max:e}, all zeros: {all_zero}"
            );
            if all_zero {
                degenerate += 1;
                continue;
            }
            for suffix in ["_quantized_const", "_quantized_min", "_quantized_max"] {
                let key = format!("{base}{suffix}");
                assert_eq!(
                    our_consts[key.as_str()],
                    their_consts[key.as_str()],
                    "{name}: {key} differs from TensorFlow"
                );
            }
            assert!(matches!(our_codes.data(), Data::U8(_)));
            compared += 1;
        }
    }
    // Every tensor TensorFlow quantized over all fixtures, less its degenerate FLT_MIN ranges.
    assert_eq!(compared, 119, "quantized tensors compared");
    assert_eq!(compared + degenerate, dequantized);
    assert!(
        degenerate > 0,
        "no all-zero tensor to show TensorFlow's NaN on"
    );
}

#[test]
fn quantized_graphs_stay_close_and_small() {
    let mut tf_nan = Vec::new();
    for name in common::MODELS {
        let original = common::load(name);
        let ours = apply(name, "quantize_weights(minimum_size=16)");
        // Every weight moves by at most half a quantization step (plus float rounding).
        let originals = consts(&original);
        let our_consts = consts(&ours);
        let dequantized: Vec<_> = ours.node.iter().filter(|n| n.op == "Dequantize").collect();
        for node in &dequantized {
            let before = weights::floats(&originals[node.name.as_str()]).unwrap();
            let min = weights::floats(&our_consts[format!("{}_quantized_min", node.name).as_str()])
                .unwrap()[0];
            let max = weights::floats(&our_consts[format!("{}_quantized_max", node.name).as_str()])
                .unwrap()[0];
            let feeds = common::io_names(name)
                .0
                .iter()
                .enumerate()
                .map(|(k, input)| {
                    (
                        input.clone(),
                        common::tensor(name, &format!("input_{k}.pb")),
                    )
                })
                .collect();
            let after = graphopt_core::eval::evaluate(
                &ours,
                &feeds,
                std::slice::from_ref(&node.name),
                Default::default(),
            )
            .unwrap();
            let after = weights::floats(&after[0]).unwrap();
            let half_step = (max - min) / 255.0 / 2.0;
            for (b, a) in before.iter().zip(&after) {
                assert!(
                    a.is_finite() && (a - b).abs() <= half_step * 1.001 + 1e-7,
                    "{name} {}: {b} -> {a} (half step {half_step})",
                    node.name
                );
            }
        }
        // Outputs stay close to TensorFlow's, and where TensorFlow's own quantized graph
        // produced numbers, no worse than it.
        let outputs = common::run_fixture(name, &ours);
        let expected = common::expected(name);
        for (k, value) in outputs.iter().enumerate() {
            let theirs = common::tensor(name, &format!("output_{k}.pb"));
            let (rel, abs) = common::relative_error(value, &theirs);
            let tf_error = expected["quantize_weights"]["tensorflow_max_abs_error"][k].as_f64();
            println!("{name}: quantized output error {abs:.3e} (relative {rel:.3e}); TensorFlow's own: {tf_error:?}");
            assert!(rel < 0.02, "{name}: relative error {rel}");
            match tf_error {
                Some(tf_error) => assert!(
                    abs <= tf_error * 1.01 + 1e-6,
                    "{name}: {abs} worse than TensorFlow's {tf_error}"
                ),
                // The generator records a non-finite TensorFlow error (its NaN) as null; ours
                // stays finite.
                None => {
                    assert!(
                        expected["quantize_weights"]["tensorflow_max_abs_error"][k].is_null(),
                        "{name}: no TensorFlow error recorded"
                    );
                    assert!(abs.is_finite(), "{name}: graphopt's output is not finite");
                    tf_nan.push(name.to_string());
                }
            }
        }
    }
    // The README: "its quantized transformer and MLP fixtures output NaN".
    tf_nan.sort();
    tf_nan.dedup();
    assert_eq!(tf_nan, ["dense_mlp", "transformer_block"]);
    let original = io::encode_graph(&common::load("dense_mlp")).len();
    let quantized = io::encode_graph(&apply("dense_mlp", "quantize_weights")).len();
    let ratio = quantized as f64 / original as f64;
    println!("dense_mlp: {original} -> {quantized} bytes ({ratio:.3}x)");
    // The figure the README prints, to its 3 digits.
    let readme = common::readme::figures("`dense_mlp` shrinks to {}x.");
    assert_eq!(
        format!("{ratio:.3}"),
        readme[0],
        "dense_mlp's quantized size ratio ({quantized} / {original} bytes) vs the README's"
    );
}

#[test]
fn rounded_weights_compress_at_least_as_well_as_tensorflows() {
    let mut dropped_controls = 0;
    for name in common::MODELS {
        let original = common::load(name);
        let ours = apply(name, "round_weights(num_steps=256)");
        let mut theirs = tensorflow_result(name, "round_weights");
        // TensorFlow's tool drops `versions` (and adds an empty library) and drops the control
        // inputs of the constants it rounds, as the README says; compare the weights only.
        assert!(
            original.versions.is_some() && theirs.versions.is_none(),
            "{name}: TensorFlow's round_weights kept `versions`"
        );
        assert_eq!(
            ours.versions, original.versions,
            "{name}: graphopt keeps `versions`"
        );
        let controls = |g: &graphopt_core::proto::GraphDef, node: &str| {
            g.node
                .iter()
                .find(|n| n.name == node)
                .map_or(0, |n| n.input.iter().filter(|i| i.starts_with('^')).count())
        };
        for node in original.node.iter().filter(|n| n.op == "Const") {
            let before = controls(&original, &node.name);
            if before > 0 && controls(&theirs, &node.name) == 0 {
                dropped_controls += 1;
                assert_eq!(controls(&ours, &node.name), before, "{name}: {}", node.name);
            }
        }
        theirs.versions = ours.versions.clone();
        theirs.library = ours.library.clone();
        let our_inputs: HashMap<&str, &Vec<String>> = ours
            .node
            .iter()
            .map(|n| (n.name.as_str(), &n.input))
            .collect();
        for node in &mut theirs.node {
            if let Some(inputs) = our_inputs.get(node.name.as_str()) {
                node.input = (*inputs).clone();
            }
        }
        let (a, b, o) = (gzip_size(&ours), gzip_size(&theirs), gzip_size(&original));
        println!("{name}: gzip original {o}, TensorFlow {b}, graphopt {a}");
        assert!(a <= b, "{name}: ours {a} > TensorFlow's {b} bytes gzipped");
        // The rounded values themselves are TensorFlow's, element by element.
        let our_consts = consts(&ours);
        let mut compared = 0;
        for (const_name, their_value) in consts(&theirs) {
            let Some(their_values) = weights::floats(&their_value) else {
                continue;
            };
            let our_values = weights::floats(&our_consts[const_name])
                .unwrap_or_else(|| panic!("{name} {const_name}: not a float Const in ours"));
            assert_eq!(our_values.len(), their_values.len(), "{name} {const_name}");
            // A constant tensor (all elements equal) has no range to round in: TensorFlow widens
            // it and moves every value (1 becomes 1.00195, 0 a denormal); graphopt keeps it.
            let original_values = weights::floats(&consts(&original)[const_name]).unwrap();
            if original_values.iter().all(|v| *v == original_values[0]) {
                assert_eq!(our_values, original_values, "{name} {const_name}");
                continue;
            }
            let range = their_values.iter().fold(0f64, |m, v| m.max(v.abs()));
            let tolerance = range * 1e-6;
            for (k, (a, b)) in our_values.iter().zip(&their_values).enumerate() {
                assert!(
                    (a - b).abs() <= tolerance,
                    "{name} {const_name}[{k}]: graphopt {a}, TensorFlow {b}"
                );
            }
            compared += 1;
        }
        assert!(compared > 0, "{name}: no rounded weights compared");
        let outputs = common::run_fixture(name, &ours);
        let (rel, _) = common::relative_error(&outputs[0], &common::tensor(name, "output_0.pb"));
        assert!(rel < 0.02, "{name}: relative error {rel}");
    }
    assert!(
        dropped_controls > 0,
        "no fixture shows TensorFlow's round_weights dropping a Const's control inputs"
    );
}
