//! Exports a fingerprint of this crate's own sources as `GRAPHOPT_BUILD_SOURCE_SHA256`, part of
//! every cache key (with graphopt-core's and graphopt-types'), so graphopt from git or a path at
//! an unchanged version but with changed code never reuses an artifact the old code produced.
//!
//! `GRAPHOPT_BUILD_TEST_FINGERPRINT`, for graphopt's own tests, is mixed into the hash to
//! simulate changed code.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut paths = vec![root.join("Cargo.toml"), root.join("build.rs")];
    files(&root.join("src"), &mut paths)?;
    paths.sort();
    let mut hasher = Sha256::new();
    for path in &paths {
        let name = path.strip_prefix(&root).unwrap_or(path).to_string_lossy();
        let bytes = std::fs::read(path)?;
        for piece in [name.as_bytes(), &bytes] {
            hasher.update((piece.len() as u64).to_le_bytes());
            hasher.update(piece);
        }
    }
    let simulated = std::env::var("GRAPHOPT_BUILD_TEST_FINGERPRINT").unwrap_or_default();
    if !simulated.is_empty() {
        hasher.update(simulated.as_bytes());
    }
    println!("cargo::rerun-if-env-changed=GRAPHOPT_BUILD_TEST_FINGERPRINT");
    let hex: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("cargo::rustc-env=GRAPHOPT_BUILD_SOURCE_SHA256={hex}");
    for watched in ["src", "Cargo.toml", "build.rs"] {
        println!("cargo::rerun-if-changed={watched}");
    }
    Ok(())
}
