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
    /// Things worth telling the user that did not stop the load.
    pub warnings: Vec<String>,
}

/// Reads a GraphDef from `path`, binary or text.
pub fn read_graph(path: impl AsRef<Path>) -> Result<LoadedGraph> {
    let path = path.as_ref();
    let data = fs::read(path).map_err(|e| Error::io(path, e))?;
    let file_size = data.len() as u64;
    let data = Bytes::from(data);
    let (graph, format) = decode_graph(data.clone(), path)?;
    let mut warnings = Vec::new();
    // prost drops fields it does not know. A shorter re-encoding can also just be a canonical
    // form of the same content (map entries with a default key), so look closer before warning.
    if format == GraphFormat::Binary && (graph.encoded_len() as u64) < file_size {
        if let Some((bytes, first)) = text_format::unknown_fields::<GraphDef>(&data) {
            warnings.push(format!(
                "{}: {bytes} byte(s) of fields unknown to graphopt (first: {first}) will not be written back",
                path.display()
            ));
        }
    }
    Ok(LoadedGraph {
        graph,
        format,
        file_size,
        warnings,
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
/// concurrent reader never sees a partial graph. Binary output is streamed node by node, so
/// writing needs no second copy of the weights in memory.
pub fn write_graph(path: impl AsRef<Path>, graph: &GraphDef, format: GraphFormat) -> Result<()> {
    let path = path.as_ref();
    match format {
        GraphFormat::Binary => write_atomically_with(path, |out| stream_graph(graph, out)),
        GraphFormat::Text => {
            let text = graph_to_text(graph)?;
            write_atomically_with(path, |out| out.write_all(text.as_bytes()))
        }
    }
}

/// Writes the same bytes as [`encode_graph`]: prost emits fields in number order, and `node`
/// (field 1) comes first, so nodes can go out one at a time followed by everything else.
fn stream_graph(graph: &GraphDef, out: &mut impl std::io::Write) -> std::io::Result<()> {
    let mut buffer = Vec::new();
    for node in &graph.node {
        buffer.clear();
        prost::encoding::message::encode(1, node, &mut buffer);
        out.write_all(&buffer)?;
    }
    // The library (field 2) from where it is, not from a copy: a large one costs about as
    // much memory as the nodes.
    if let Some(library) = &graph.library {
        buffer.clear();
        prost::encoding::message::encode(2, library, &mut buffer);
        out.write_all(&buffer)?;
    }
    out.write_all(&graph.clone_without_nodes_or_library().encode_to_vec())
}

impl GraphDef {
    /// The graph's version fields and debug info, without its nodes and library.
    fn clone_without_nodes_or_library(&self) -> GraphDef {
        GraphDef {
            node: Vec::new(),
            library: None,
            version: self.version,
            versions: self.versions.clone(),
            debug_info: self.debug_info.clone(),
        }
    }
}

/// Writes `bytes` to a sibling temporary file and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |out| out.write_all(bytes))
}

fn write_atomically_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<fs::File>) -> std::io::Result<()>,
) -> Result<()> {
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
        .and_then(|file| {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            fill(&mut out)?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(Error::io(path, e));
    }
    Ok(())
}
