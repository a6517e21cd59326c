//! Optimizes the bundled digits model at compile time. `cargo build` re-runs this only when the
//! model file changes; an unchanged model comes from graphopt's cache.

fn main() -> Result<(), graphopt_build::Error> {
    graphopt_build::Model::new("digits", "models/digits.pb")
        .inputs(["image"])
        .outputs(["probs"])
        .transforms(
            "strip_unused_nodes remove_nodes(op=Identity, op=CheckNumerics) \
             fold_constants(ignore_errors=true) fold_batch_norms fold_old_batch_norms \
             merge_duplicate_nodes sort_by_execution_order",
        )
        .build()?;
    Ok(())
}
