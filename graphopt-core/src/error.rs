//! The error type of graphopt-core: every failure names the file, transform and node it is about.

use std::path::PathBuf;

use crate::budget::BudgetError;
use crate::graph::GraphError;
use crate::late_weights::LateWeightError;
use crate::transforms::spec::SpecError;

/// Result alias used throughout graphopt-core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in graphopt-core. `Display` is one readable line; new
/// variants may be added.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A file that does not decode as the message it should hold.
    #[error("{}: not a {what} ({message})", path.display())]
    Decode {
        path: PathBuf,
        what: String,
        message: String,
    },
    /// Decoding the file would take more than the budget allows (or more nodes than graphopt
    /// handles); nothing was decoded.
    #[error("{}: {detail}", path.display())]
    TooLarge { path: PathBuf, detail: String },
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
    /// A late weight (see [`crate::late_weights`]) could not be computed.
    #[error("{0}")]
    LateWeight(#[from] LateWeightError),
    /// The command's memory or work budget refused what a node needed.
    #[error("node '{node}': {source}")]
    Budget { node: String, source: BudgetError },
}

/// `text` made safe to print as one line on a terminal: line breaks, other control characters
/// (terminal escape sequences start with one) and Unicode's bidirectional overrides, which
/// names from a model file may hold, are shown escaped (`\n`, `\u{1b}`).
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
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

    /// The message without the file's path, for callers that name the file themselves.
    pub fn without_path(&self) -> String {
        match self {
            Error::Decode { what, message, .. } => format!("not a {what} ({message})"),
            Error::TooLarge { detail, .. } | Error::NotAGraph { detail, .. } => detail.clone(),
            Error::Io { source, .. } => source.to_string(),
            other => other.to_string(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_print_on_one_line() {
        assert_eq!(one_line("plain 'name'"), "plain 'name'");
        assert_eq!(
            one_line("a\nb\x1b[31mred\u{202e}"),
            "a\\nb\\u{1b}[31mred\\u{202e}"
        );
        assert!(!one_line("x\r\ty\u{7}").contains(['\r', '\t', '\u{7}']));
    }
}
