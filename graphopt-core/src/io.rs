//! Reading and writing GraphDefs: binary `.pb` and text `.pbtxt`, detected like TensorFlow's
//! `transform_graph` does (binary first, then text). Weight bytes are not copied on load: the
//! file is read once into a shared buffer and every `tensor_content` is a slice of it.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::Message;

use crate::error::{Error, Result};
use crate::proto::GraphDef;
use crate::text_format;

/// On-disk encoding of a GraphDef.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphFormat {
    Binary,
    Text,
}

impl GraphFormat {
    /// Text for a `.pbtxt`/`.txt`/`.prototxt` path or when `as_text` is set, binary otherwise.
    pub fn for_output(path: &Path, as_text: bool) -> Self {
        let text_extension = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("pbtxt" | "txt" | "prototxt")
        );
        if as_text || text_extension {
            GraphFormat::Text
        } else {
            GraphFormat::Binary
        }
    }
}

/// A graph read from a file, with how it was encoded and how large the file was.
#[derive(Debug, Clone)]
pub struct LoadedGraph {
    pub graph: GraphDef,
    pub format: GraphFormat,
    pub file_size: u64,
}

/// Reads a GraphDef from `path`, binary or text.
pub fn read_graph(path: impl AsRef<Path>) -> Result<LoadedGraph> {
    let path = path.as_ref();
    let data = fs::read(path).map_err(|e| Error::io(path, e))?;
    let file_size = data.len() as u64;
    let (graph, format) = decode_graph(Bytes::from(data), path)?;
    Ok(LoadedGraph {
        graph,
        format,
        file_size,
    })
}

/// Decodes GraphDef bytes; `path` only names the source in errors.
pub fn decode_graph(data: Bytes, path: &Path) -> Result<(GraphDef, GraphFormat)> {
    if data.is_empty() {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let binary_error = match GraphDef::decode(data.clone()) {
        Ok(graph) if looks_like_graph(&graph) => return Ok((graph, GraphFormat::Binary)),
        Ok(_) => "decoded to a message with no nodes, functions or versions".to_string(),
        Err(e) if e.to_string().contains("buffer underflow") => {
            format!("{e} (the file ends in the middle of a field: truncated?)")
        }
        Err(e) => e.to_string(),
    };
    let text = match std::str::from_utf8(&data) {
        Ok(text) => text,
        // Not text at all: only the binary failure is worth reporting.
        Err(_) => {
            return Err(Error::NotAGraph {
                path: path.to_path_buf(),
                detail: format!("as binary protobuf: {binary_error}"),
            })
        }
    };
    let text_error = match text_format::parse::<GraphDef>(text) {
        Ok(graph) if looks_like_graph(&graph) => return Ok((graph, GraphFormat::Text)),
        Ok(_) => "parsed to a graph with no nodes, functions or versions".to_string(),
        Err(e) => e.to_string(),
    };
    // A file that reads as text (a field name first) was meant as text.
    let meant_as_text = text
        .trim_start()
        .starts_with(|c: char| c.is_ascii_alphabetic() || c == '#');
    let detail = if meant_as_text {
        format!("as text format: {text_error}")
    } else {
        format!("as binary protobuf: {binary_error}; as text format: {text_error}")
    };
    Err(Error::NotAGraph {
        path: path.to_path_buf(),
        detail,
    })
}

/// prost skips fields it does not know, so arbitrary bytes can "decode" to an empty message;
/// a real GraphDef has at least a node, a function or a version stamp.
fn looks_like_graph(graph: &GraphDef) -> bool {
    !graph.node.is_empty() || graph.library.is_some() || graph.versions.is_some()
}

/// Binary encoding of `graph`. Deterministic: maps are ordered, fields in number order.
pub fn encode_graph(graph: &GraphDef) -> Vec<u8> {
    graph.encode_to_vec()
}

/// Text-format encoding of `graph`, deterministic and readable by TensorFlow.
pub fn graph_to_text(graph: &GraphDef) -> Result<String> {
    text_format::to_text(graph).map_err(|e| Error::Encode {
        what: "GraphDef as text".into(),
        message: e.to_string(),
    })
}

/// Writes `graph` to `path` in `format`, atomically (temporary file, then rename), so a
/// concurrent reader never sees a partial graph.
pub fn write_graph(path: impl AsRef<Path>, graph: &GraphDef, format: GraphFormat) -> Result<()> {
    let path = path.as_ref();
    let bytes = match format {
        GraphFormat::Binary => encode_graph(graph),
        GraphFormat::Text => graph_to_text(graph)?.into_bytes(),
    };
    write_atomically(path, &bytes)
}

/// Writes `bytes` to a sibling temporary file and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "graph".into());
    let temp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = fs::File::create(&temp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(Error::io(path, e));
    }
    Ok(())
}
