//! Errors of graphopt-build: one line each, naming the model and what went wrong, and where
//! there is one, the way out. `Debug` prints the same line, so a build script's `main`
//! returning `Result` shows no struct dump.

use std::path::PathBuf;

/// Why a model could not be built. Each variant displays as one line starting with
/// `graphopt:`; new variants may be added.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A variable cargo sets for build scripts is missing.
    #[error("graphopt: {0} is not set; graphopt_build must run inside a build script")]
    NotInBuildScript(&'static str),
    /// A file could not be read or written.
    #[error("graphopt: model '{model}': {}: {source}", path.display())]
    #[non_exhaustive]
    Io {
        model: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The model's path names nothing.
    #[error(
        "graphopt: model '{model}': {} does not exist (looked for {}: a relative path is taken from the package's directory); give Model::new the path of a GraphDef file or a SavedModel directory",
        path.display(), resolved.display()
    )]
    #[non_exhaustive]
    Missing {
        model: String,
        path: PathBuf,
        /// Where it was looked for.
        resolved: PathBuf,
    },
    /// The model's path is a directory that is no SavedModel.
    #[error(
        "graphopt: model '{model}': {} is a directory without a saved_model.pb, so not a SavedModel; give Model::new a GraphDef file or a SavedModel directory",
        path.display()
    )]
    #[non_exhaustive]
    NotSavedModel { model: String, path: PathBuf },
    /// graphopt-core refused the model: a graph that does not decode or validate, a transform
    /// that failed.
    #[error("graphopt: model '{model}': {source}")]
    #[non_exhaustive]
    Core { model: String, source: CoreError },
    /// The transform list does not parse.
    #[error("graphopt: model '{model}': .transforms(\"{transforms}\") does not parse: {message}")]
    #[non_exhaustive]
    Transforms {
        model: String,
        transforms: String,
        message: String,
    },
    /// The model's name cannot name a Rust module.
    #[error(
        "graphopt: model '{model}': '{model}' is not a valid Rust identifier for a model module; use letters, digits and '_', and not a Rust keyword"
    )]
    #[non_exhaustive]
    BadName { model: String },
    /// Two models of one build script share a name.
    #[error("graphopt: model '{model}' is built twice by this build script; give each Model::new a name of its own")]
    #[non_exhaustive]
    Duplicate { model: String },
    /// Two models of one build script have names that differ only in case, so their files
    /// would be one on a case-insensitive file system.
    #[error(
        "graphopt: model '{model}': its name differs from model '{other}' only in case, so on a case-insensitive file system (macOS, Windows) both would write one NAME.pb; give Model::new a name that differs by more than case"
    )]
    #[non_exhaustive]
    SameFiles { model: String, other: String },
    /// The path names a SavedModel's `saved_model.pb` rather than its directory.
    #[error(
        "graphopt: model '{model}': {} is the graph of a SavedModel; give its directory instead: Model::new(\"{model}\", \"{}\")",
        path.display(), dir.display()
    )]
    #[non_exhaustive]
    SavedModelFile {
        model: String,
        path: PathBuf,
        dir: PathBuf,
    },
    /// A declared input or output is not a node of the graph.
    #[error(
        "graphopt: model '{model}': .{list}([...]) names '{name}', which is not a node of {}; {}",
        path.display(), likely_names(likely, list)
    )]
    #[non_exhaustive]
    UnknownName {
        model: String,
        /// `inputs` or `outputs`.
        list: &'static str,
        name: String,
        path: PathBuf,
        /// The graph's likely inputs or outputs (Placeholders; nodes nothing reads).
        likely: Vec<String>,
    },
    /// No outputs were declared and none come from a SavedModel signature.
    #[error(
        "graphopt: model '{model}': no outputs declared; name them with .outputs([...]) ({})",
        likely_names(likely, "outputs")
    )]
    #[non_exhaustive]
    NoOutputs { model: String, likely: Vec<String> },
    /// Anything else about one model.
    #[error("graphopt: model '{model}': {message}")]
    #[non_exhaustive]
    Model { model: String, message: String },
    /// The lock file records a different artifact.
    #[error(
        "graphopt: model '{model}': the artifact's sha256 {actual} differs from {expected} recorded in {}; \
         the build is not reproducible (set GRAPHOPT_UPDATE_LOCK=1 to record the new hash)",
        lock.display()
    )]
    #[non_exhaustive]
    LockMismatch {
        model: String,
        lock: PathBuf,
        expected: String,
        actual: String,
    },
    /// [`Model::verify`](crate::Model::verify): an output of the optimized graph is over the
    /// tolerance.
    #[error(
        "graphopt: model '{model}': output '{output}' of the optimized graph differs from the original's by {error:.2e} (relative to its largest value), over .verify({tolerance:e}); \
         a transform changed what the model computes: `graphopt verify ORIGINAL OPTIMIZED` shows every output, and removing transforms from the list finds which"
    )]
    #[non_exhaustive]
    Verify {
        model: String,
        output: String,
        /// The output's largest relative error (infinite for a mismatch of integers).
        error: f64,
        tolerance: f64,
    },
    /// [`Model::target`](crate::Model::target): the legalized graph still has nodes the
    /// target cannot load.
    #[error(
        "graphopt: model '{model}': target '{target}' cannot load {} node(s) after legalize(target={target}): {}{}; `graphopt check --target={target}` says why for each",
        problems.len() + others.len(), problems.join("; "),
        if others.is_empty() { String::new() } else { format!("; and {}", others.join(", ")) }
    )]
    #[non_exhaustive]
    Target {
        model: String,
        target: String,
        /// The first few nodes, `node (op): why` (each node's first problem).
        problems: Vec<String>,
        /// The other nodes, `node (op)`.
        others: Vec<String>,
    },
    /// `[package.metadata.graphopt]` is malformed.
    #[error("graphopt: [package.metadata.graphopt] in {}: {message}", path.display())]
    #[non_exhaustive]
    Metadata { path: PathBuf, message: String },
    /// The cache limits in the environment do not parse.
    #[error("graphopt: {0}")]
    CacheLimits(String),
}

fn likely_names(names: &[String], list: &str) -> String {
    if names.is_empty() {
        format!("the graph has no likely {list}")
    } else {
        format!("likely {list}: {}", names.join(", "))
    }
}

/// As a build script's `main` prints it on failure: one line, whatever the model's names
/// hold (control characters escaped).
impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&graphopt_core::error::one_line(&self.to_string()))
    }
}

/// What graphopt-core reported, kept opaque so that graphopt-build's public API does not
/// carry graphopt-core's error type (and its version) with it: it displays as one line, and
/// `std::error::Error::source` reaches the cause.
pub struct CoreError(pub(crate) Box<graphopt_core::Error>);

impl std::fmt::Display for CoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for CoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for CoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}
