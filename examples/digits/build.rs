//! Optimizes the bundled digits model at compile time. `cargo build` re-runs this only when the
//! model file changes; an unchanged model comes from graphopt's cache.

fn main() -> Result<(), graphopt_build::Error> {
    graphopt_build::Model::new("digits", "models/digits.pb")
        .inputs(["image"])
        .outputs(["probs"])
        // The recommended pipeline: strip, fold constants and batch norms, move scales into
        // the next layer, simplify, remove leftovers, merge duplicates, sort.
        .transforms("@deploy")
        .build()?;
    Ok(())
}
