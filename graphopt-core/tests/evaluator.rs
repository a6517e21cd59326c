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
