//! What the benchmarks share.

use std::path::{Path, PathBuf};

/// A path given on the command line. `cargo bench` runs a bench in its package's directory,
/// while the documented commands name files from the workspace root (`target/tmp/...`): a
/// relative path that does not exist here is taken from the workspace root instead.
pub fn argument_path(arg: &str) -> PathBuf {
    let given = Path::new(arg);
    if given.is_absolute() || given.exists() {
        return given.to_path_buf();
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let from_root = workspace.join(given);
    if from_root.exists() {
        from_root
    } else {
        given.to_path_buf()
    }
}
