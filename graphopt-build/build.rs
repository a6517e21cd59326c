//! Exports a fingerprint of this crate's own sources as `GRAPHOPT_BUILD_SOURCE_SHA256`, part of
//! every cache key (with graphopt-core's and graphopt-types'), so graphopt from git or a path at
//! an unchanged version but with changed code never reuses an artifact the old code produced.
//!
//! Also sets `cfg(graphopt_build_optimized)` when this crate is compiled with optimizations,
//! which picks the SHA-256 implementation (see `src/sha256.rs`).
//!
//! `GRAPHOPT_BUILD_TEST_FINGERPRINT`, for graphopt's own tests, is mixed into the hash to
//! simulate changed code.

use graphopt_source_hash::Digest as _;

fn main() -> std::io::Result<()> {
    let mut hasher = graphopt_source_hash::own_sources()?;
    let simulated = std::env::var("GRAPHOPT_BUILD_TEST_FINGERPRINT").unwrap_or_default();
    if !simulated.is_empty() {
        hasher.update(simulated.as_bytes());
    }
    println!("cargo::rerun-if-env-changed=GRAPHOPT_BUILD_TEST_FINGERPRINT");
    let hex = graphopt_source_hash::hex(hasher);
    println!("cargo::rustc-env=GRAPHOPT_BUILD_SOURCE_SHA256={hex}");
    // Optimized code hashes fastest with sha2 (SHA extensions); unoptimized, with sha2-asm.
    println!("cargo::rustc-check-cfg=cfg(graphopt_build_optimized)");
    if std::env::var("OPT_LEVEL").is_ok_and(|level| level != "0") {
        println!("cargo::rustc-cfg=graphopt_build_optimized");
    }
    Ok(())
}
