//! Errors of graphopt-build: one line each, naming the model and what went wrong. `Debug`
//! prints the same line, so a build script's `main` returning `Result` shows no struct dump.

use std::path::PathBuf;

#[derive(thiserror::Error)]
pub enum Error {
    #[error("graphopt: {0} is not set; graphopt_build must run inside a build script")]
    NotInBuildScript(&'static str),
    #[error("graphopt: model '{model}': {}: {source}", path.display())]
    Io {
        model: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("graphopt: model '{model}': {source}")]
    Core {
        model: String,
        source: Box<graphopt_core::Error>,
    },
    #[error(
        "graphopt: model '{model}': '{name}' is not a valid Rust identifier for a model module"
    )]
    BadName { model: String, name: String },
    #[error("graphopt: model '{model}' is built twice by this build script; give each Model::new a name of its own")]
    Duplicate { model: String },
    #[error("graphopt: model '{model}': {message}")]
    Model { model: String, message: String },
    #[error(
        "graphopt: model '{model}': the artifact's sha256 {actual} differs from {expected} recorded in {}; \
         the build is not reproducible (set GRAPHOPT_UPDATE_LOCK=1 to record the new hash)",
        lock.display()
    )]
    LockMismatch {
        model: String,
        lock: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("graphopt: [package.metadata.graphopt] in {}: {message}", path.display())]
    Metadata { path: PathBuf, message: String },
}

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}
