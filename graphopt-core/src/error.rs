//! The error type of graphopt-core: every failure names the file, transform and node it is about.

use std::path::PathBuf;

use crate::budget::BudgetError;
use crate::graph::GraphError;
use crate::transforms::spec::SpecError;

/// Result alias used throughout graphopt-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in graphopt-core. `Display` is one readable line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: the file is empty; expected a GraphDef in binary or text format", path.display())]
    EmptyFile { path: PathBuf },
    #[error("{}: not a GraphDef: {detail}", path.display())]
    NotAGraph { path: PathBuf, detail: String },
    #[error("{}: invalid graph: {source}", path.display())]
    InvalidGraph {
        path: PathBuf,
        source: Box<GraphError>,
    },
    #[error("{0}")]
    Graph(Box<GraphError>),
    #[error("invalid --transforms string: {0}")]
    Spec(#[from] SpecError),
    #[error("transform '{transform}': {message}")]
    Transform { transform: String, message: String },
    #[error("transform '{transform}' left an invalid graph: {source}")]
    TransformBrokeGraph {
        transform: String,
        source: Box<GraphError>,
    },
    #[error("{}: {flag} names '{name}', which is not a node of the graph", path.display())]
    UnknownName {
        path: PathBuf,
        flag: String,
        name: String,
    },
    #[error("freeze: {0}")]
    Freeze(String),
    #[error("cannot encode {what}: {message}")]
    Encode { what: String, message: String },
    /// The command's memory or work budget refused what a node needed.
    #[error("node '{node}': {source}")]
    Budget { node: String, source: BudgetError },
}

impl From<GraphError> for Error {
    fn from(error: GraphError) -> Self {
        Error::Graph(Box::new(error))
    }
}

impl Error {
    /// The graph at `path` failed validation.
    pub fn invalid_graph(path: impl Into<PathBuf>, source: GraphError) -> Self {
        Error::InvalidGraph {
            path: path.into(),
            source: Box::new(source),
        }
    }

    /// A transform failure with a message; callers include the node name in `message`.
    pub fn transform(transform: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Transform {
            transform: transform.into(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
