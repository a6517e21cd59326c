//! graphopt's reference evaluator reproduces TensorFlow's outputs on every fixture model.

mod common;

#[test]
fn fixtures_match_tensorflow_outputs() {
    for name in common::MODELS {
        let graph = common::load(name);
        let ours = common::run_fixture(name, &graph);
        for (k, value) in ours.iter().enumerate() {
            let theirs = common::tensor(name, &format!("output_{k}.pb"));
            let (rel, abs) = common::relative_error(value, &theirs);
            println!("{name} output {k}: max relative error {rel:.3e}, max absolute {abs:.3e}");
        }
        common::assert_outputs_match(name, name, &ours, 1e-5, 1e-6);
    }
}

/// A float32 Const of `values`.
fn values(name: &str, dims: &[usize], values: &[f32]) -> graphopt_core::proto::NodeDef {
    let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(dims), values.to_vec()).unwrap();
    let t = graphopt_core::tensor::Tensor::from_data(graphopt_core::tensor::Data::F32(array));
    graphopt_core::graph::edit::const_node(name.into(), String::new(), &t)
}

/// A Conv2D whose filter holds inf or NaN, against TensorFlow 2.21 (`tf.raw_ops.Conv2D`,
/// its default oneDNN kernel): taps in the padding add nothing, so a weight of inf there
/// leaves the output finite. graphopt's patch matrix filled them with zeros, and 0 * inf
/// made the output NaN, with either matrix product.
#[test]
fn padding_taps_of_a_non_finite_filter_add_nothing() {
    use common::graphs::{graph, ints, node, s};
    use graphopt_core::eval::Gemm;
    let (inf, nan) = (f32::INFINITY, f32::NAN);
    let mut corner = vec![1.0; 9];
    corner[0] = inf;
    let mut mixed = vec![1.0; 54];
    // [2, 1, 1, 2] and [0, 2, 0, 1] of the [3, 3, 2, 3] filter.
    mixed[(2 * 3 + 1) * 6 + 3 + 2] = -inf;
    mixed[2 * 6 + 1] = nan;
    let cases = [
        // SAME 3x3, stride 1.
        (
            vec![1, 3, 3, 1],
            (vec![3, 3, 1, 1], corner),
            vec![("strides", ints(&[1, 1, 1, 1])), ("padding", s("SAME"))],
            vec![4.0, 6.0, 4.0, 6.0, inf, inf, 4.0, inf, inf],
        ),
        // SAME 3x3, stride 2, two input and three output channels.
        (
            vec![1, 5, 5, 2],
            (vec![3, 3, 2, 3], mixed),
            vec![("strides", ints(&[1, 2, 2, 1])), ("padding", s("SAME"))],
            vec![
                8.0, 8.0, -inf, 12.0, 12.0, -inf, 8.0, 8.0, -inf, 12.0, nan, -inf, 18.0, nan, -inf,
                12.0, 12.0, -inf, 8.0, nan, 8.0, 12.0, nan, 12.0, 8.0, 8.0, 8.0,
            ],
        ),
        // A 1x1 filter of inf with a padded row above the image.
        (
            vec![1, 3, 3, 1],
            (vec![1, 1, 1, 1], vec![inf]),
            vec![
                ("strides", ints(&[1, 1, 1, 1])),
                ("padding", s("EXPLICIT")),
                ("explicit_paddings", ints(&[0, 0, 1, 0, 0, 0, 0, 0])),
            ],
            [vec![0.0; 3], vec![inf; 9]].concat(),
        ),
    ];
    for (input, (filter_dims, filter), attrs, expected) in cases {
        let attrs: Vec<_> = attrs.iter().map(|(k, v)| (*k, v.clone())).collect();
        let g = graph(vec![
            values("x", &input, &vec![1.0; input.iter().product()]),
            values("w", &filter_dims, &filter),
            node("conv", "Conv2D", &["x", "w"], &attrs),
        ]);
        for gemm in [Gemm::Portable, Gemm::Fast] {
            let y = conv_output(&g, gemm);
            let same = y
                .iter()
                .zip(&expected)
                .all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
            assert!(
                same && y.len() == expected.len(),
                "{gemm:?}, filter {filter_dims:?}: {y:?}, TensorFlow {expected:?}"
            );
        }
    }
    // Large enough to be split over threads: the fast kernels give the portable bits.
    let mut filter = vec![0.5; 3 * 3 * 16 * 16];
    filter[7] = inf;
    let g = graph(vec![
        common::graphs::floats("x", &[2, 48, 48, 16], 3),
        values("w", &[3, 3, 16, 16], &filter),
        node(
            "conv",
            "Conv2D",
            &["x", "w"],
            &[("strides", ints(&[1, 1, 1, 1])), ("padding", s("SAME"))],
        ),
    ]);
    let bits = |gemm| {
        conv_output(&g, gemm)
            .iter()
            .map(|v| v.to_bits())
            .collect::<Vec<_>>()
    };
    assert_eq!(bits(Gemm::Fast), bits(Gemm::Portable));
}

/// The float32 output of node `conv` of `g`, run with the kernels of `gemm`.
fn conv_output(g: &graphopt_core::proto::GraphDef, gemm: graphopt_core::eval::Gemm) -> Vec<f32> {
    use graphopt_core::eval::{evaluate, Options};
    let options = Options {
        gemm,
        ..Options::default()
    };
    let out = evaluate(g, &Default::default(), &["conv".into()], options).unwrap();
    let graphopt_core::tensor::Data::F32(y) = out[0].data() else {
        panic!("float32 out");
    };
    y.iter().copied().collect()
}
