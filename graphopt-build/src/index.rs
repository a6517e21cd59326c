//! The index of the models one build-script run declared, so `include_model!` sees exactly
//! those and never an artifact an earlier run left in OUT_DIR.
//!
//! The first model a build-script process builds empties `$OUT_DIR/graphopt/` (cargo keeps
//! OUT_DIR across runs, so it holds every artifact ever written there). Each model built then
//! adds its name to the run's list, rewrites `$OUT_DIR/graphopt/index.json` and passes the list
//! to the package's compilation as `cargo::rustc-env=GRAPHOPT_MODELS=a,b`: cargo keeps the last
//! value, which names every model of the run. The macro trusts that variable alone, so a build
//! script that builds no model at all leaves nothing embeddable either.

use std::path::Path;
use std::sync::Mutex;

/// The variable `include_model!` reads; keep in sync with graphopt-macros.
pub const MODELS_VAR: &str = "GRAPHOPT_MODELS";

/// Models built so far by this process, or `None` before the first.
static RUN: Mutex<Option<Vec<String>>> = Mutex::new(None);

/// Starts the run on its first call in this process (removing every earlier artifact from
/// `dir`), and refuses a name declared twice in one run.
pub fn begin(dir: &Path, name: &str) -> Result<(), BeginError> {
    let mut run = RUN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    match run.as_ref() {
        Some(models) if models.iter().any(|m| m == name) => Err(BeginError::Duplicate),
        Some(_) => Ok(()),
        None => {
            clear(dir).map_err(BeginError::Io)?;
            *run = Some(Vec::new());
            Ok(())
        }
    }
}

/// Why a model cannot start.
#[derive(Debug)]
pub enum BeginError {
    Duplicate,
    Io(std::io::Error),
}

/// Removes every file in `dir` (artifacts and index of an earlier run).
fn clear(dir: &Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Adds `name` to the run, rewrites `dir/index.json` and tells cargo the run's models.
pub fn record(dir: &Path, name: &str) -> std::io::Result<()> {
    let mut run = RUN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let models = run.get_or_insert_with(Vec::new);
    if !models.iter().any(|m| m == name) {
        models.push(name.to_string());
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({ "models": models }))
        .map_err(std::io::Error::other)?;
    crate::cache::write_atomically(&dir.join("index.json"), format!("{json}\n").as_bytes())?;
    println!("cargo::rustc-env={MODELS_VAR}={}", models.join(","));
    Ok(())
}
