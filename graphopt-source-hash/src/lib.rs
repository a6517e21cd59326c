//! For graphopt's build scripts: the SHA-256 of the crate's own sources (`Cargo.toml`,
//! `build.rs` and every file under `src/`). graphopt-core and graphopt-build export theirs, and
//! graphopt-build puts both in its cache keys, so graphopt from git or a path with changed code
//! at an unchanged version never reuses an artifact the old code produced.

use std::path::{Path, PathBuf};

pub use sha2::Digest;
use sha2::Sha256;

/// Starts the hash of the sources of the crate whose build script calls it: each file's path
/// relative to the crate root, then its bytes, each prefixed by its length, in path order.
/// Tells cargo to rerun the build script when any of them changes. The caller may mix in more
/// before [`hex`].
pub fn own_sources() -> std::io::Result<Sha256> {
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
    for watched in ["src", "Cargo.toml", "build.rs"] {
        println!("cargo::rerun-if-changed={watched}");
    }
    Ok(hasher)
}

/// The finished hash in lowercase hex.
pub fn hex(hasher: Sha256) -> String {
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every file below `dir`, recursively.
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
