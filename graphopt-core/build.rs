//! Exports a fingerprint of this crate's own sources as `GRAPHOPT_CORE_SOURCE_SHA256`
//! ([`graphopt_core::SOURCE_SHA256`]), which graphopt-build puts in its cache key: graphopt
//! from git or a path at an unchanged version but with changed code never reuses an artifact
//! the old code produced.

fn main() -> std::io::Result<()> {
    let hex = graphopt_source_hash::hex(graphopt_source_hash::own_sources()?);
    println!("cargo::rustc-env=GRAPHOPT_CORE_SOURCE_SHA256={hex}");
    Ok(())
}
