//! Reading and writing GraphDefs: binary `.pb` and text `.pbtxt`, detected like TensorFlow's
//! `transform_graph` does (binary first, then text). Weight bytes are not copied on load: the
//! file is memory-mapped on unix ([`map_regular`]) and every `tensor_content` is a slice of it.
//!
//! Reading is bounded: only regular files are read (a FIFO or a device, also behind a symlink,
//! is refused before it is opened), never past their size, and the file's length is asked of
//! the [`budget`] before it is read or mapped (a sparse file's too, which occupies little on
//! disk); what decoding will take in memory is estimated from the encoded bytes first
//! ([`wire`]) and asked of the budget, together with a node-count limit, so a small file
//! cannot expand into gigabytes. Bytes the estimate cannot size are refused, never decoded
//! unchecked. Text output is sized and asked of the budget before it is built. Writing is
//! atomic, and leftovers of killed writers are cleaned up.

use std::fs;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use prost::{Message, Name as _};

use crate::budget;
use crate::error::{Error, Result};
use crate::late_weights::Deferred;
use crate::proto::GraphDef;
use crate::text_format;

mod stream;
pub mod wire;

/// More NodeDefs than this (in the graph and its functions together) are refused at decode.
pub const MAX_NODES: u64 = 1 << 21;

/// Memory set aside per node for what every command builds over a graph (name index,
/// consumer lists, execution order, validation), charged with the decoded size.
pub const PROCESSING_BYTES_PER_NODE: u64 = 512;

/// Memory per byte of text format that a default budget sets aside for the parser's
/// intermediate message (prost-reflect builds a dynamic message before the typed one). What a
/// parse is charged is counted on the text itself ([`text_format::TextScan::parse_memory`]:
/// 3 to 10 bytes per byte on TensorFlow's own text, more for list syntax); the typed graph is
/// charged by the estimate of its encoding before it is decoded.
pub const TEXT_BYTES_PER_BYTE: u64 = 24;

/// How many bytes of binary input one byte of text format counts as for a default budget:
/// the parser's intermediate message ([`TEXT_BYTES_PER_BYTE`]) plus the graph it becomes, in
/// [`budget::MEMORY_PER_INPUT_BYTE`] units.
pub const TEXT_INPUT_WEIGHT: u64 =
    (TEXT_BYTES_PER_BYTE + budget::MEMORY_PER_INPUT_BYTE) / budget::MEMORY_PER_INPUT_BYTE;

/// How many leading bytes of a file [`input_size`] reads to tell text format from binary.
const SNIFF_BYTES: u64 = 4096;

/// Whether `head`, the start of a file, reads as protobuf text format: a field name or a
/// comment first, and no control character but whitespace. A binary GraphDef's first node
/// holds its op field's tag (0x12) within its first bytes, so a real binary graph never reads
/// as text; a crafted one that does gains only the text weight, a bounded larger budget.
fn reads_as_text(head: &[u8]) -> bool {
    let first = head.iter().find(|b| !b.is_ascii_whitespace());
    matches!(first, Some(b) if b.is_ascii_alphabetic() || *b == b'#')
        && head
            .iter()
            .all(|&b| b >= 0x20 || matches!(b, b'\t' | b'\n' | b'\r'))
}

/// Whether the regular file at `path` starts as text format ([`reads_as_text`]); unreadable
/// counts as binary.
fn starts_as_text(path: &Path) -> bool {
    let mut head = Vec::new();
    open_regular(path)
        .and_then(|(file, _)| file.take(SNIFF_BYTES).read_to_end(&mut head))
        .is_ok_and(|_| reads_as_text(&head))
}

/// Whether `path`'s extension names text format.
fn is_text_path(path: &Path) -> bool {
    // `MODEL.PBTXT` is as much text as `model.pbtxt`.
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["pbtxt", "txt", "prototxt"]
            .iter()
            .any(|t| e.eq_ignore_ascii_case(t))
    })
}

/// The size of the regular file at `path`; anything else (a FIFO would block, a device never
/// ends, a directory) is an error, checked after following symlinks and before anything opens
/// the file.
pub fn regular_file(path: &Path) -> std::io::Result<u64> {
    let metadata = fs::metadata(path)?;
    if metadata.is_file() {
        return Ok(metadata.len());
    }
    let what = if metadata.is_dir() {
        "a directory"
    } else {
        let kind = metadata.file_type();
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileTypeExt as _;
            if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_char_device() || kind.is_block_device() {
                "a device"
            } else if kind.is_socket() {
                "a socket"
            } else {
                "not a regular file"
            }
        }
        #[cfg(not(unix))]
        {
            let _ = kind;
            "not a regular file"
        }
    };
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("{what}; graphopt reads only regular files"),
    ))
}

/// The regular file at `path` (symlinks followed and checked), opened, and its size.
fn open_regular(path: &Path) -> std::io::Result<(fs::File, u64)> {
    let expected = regular_file(path)?;
    let file = fs::File::open(path)?;
    // The file opened may not be the one checked (a swap in between): check what is open.
    let size = file.metadata()?;
    if !size.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file; graphopt reads only regular files",
        ));
    }
    let size = size.len();
    if size != expected {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file changed while it was opened",
        ));
    }
    Ok((file, size))
}

/// The space `metadata`'s file occupies on disk where that is less than its length (a sparse
/// file), else its length.
fn stored(metadata: &fs::Metadata) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        metadata.len().min(metadata.blocks().saturating_mul(512))
    }
    #[cfg(not(unix))]
    metadata.len()
}

/// Asks the current budget for the `size` bytes of `file`, about to be read or mapped: its
/// length, not the space it occupies on disk, since reading it (or decoding it from a mapping)
/// touches every page. A file longer than the budget allows is refused before a byte is read.
fn charge_file(file: &fs::File, size: u64) -> std::io::Result<()> {
    budget::alloc(size).map_err(|e| {
        let occupied = file.metadata().map_or(size, |m| stored(&m));
        let sparse = if occupied < size {
            format!(
                " but occupies {} on disk (a sparse file?)",
                budget::size(occupied)
            )
        } else {
            String::new()
        };
        std::io::Error::other(format!(
            "the file is {} long{sparse}; reading it {e}",
            budget::size(size)
        ))
    })
}

/// The bytes of the regular file at `path`, memory-mapped ([`crate::pages::map`]; read into
/// memory without the `mmap` feature): decoding touches only the pages it reads, and weights
/// sliced from the result stay in the page cache until used. A FIFO, a device or a directory
/// is an error before anything opens it; the file's length is charged to the current budget
/// before it is mapped, like [`read_regular`]'s buffer.
pub fn map_regular(path: &Path) -> std::io::Result<Bytes> {
    #[cfg(feature = "mmap")]
    {
        let (file, size) = open_regular(path)?;
        charge_file(&file, size)?;
        crate::pages::map(&file, path)
    }
    #[cfg(not(feature = "mmap"))]
    read_regular(path).map(Bytes::from)
}

/// The bytes of the regular file at `path` (symlinks followed and checked), read up to the
/// size it had when opened: a FIFO, a device or a file that keeps growing is an error, never
/// a hang or an endless read. The buffer is charged to the current budget.
pub fn read_regular(path: &Path) -> std::io::Result<Vec<u8>> {
    let (file, size) = open_regular(path)?;
    charge_file(&file, size)?;
    let capacity = usize::try_from(size).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "the file is too large")
    })?;
    let mut data = Vec::with_capacity(capacity);
    // One byte past the size, to see a file that grew; nothing for a file of size 0, which is
    // what a /proc file that streams without end (or blocks) reports.
    let limit = if size == 0 { 0 } else { size.saturating_add(1) };
    file.take(limit).read_to_end(&mut data)?;
    if data.len() as u64 != size {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "the file changed while it was read ({size} bytes expected, {} read)",
                data.len()
            ),
        ));
    }
    Ok(data)
}

/// Bytes of input at `path` that a command reads, which budgets scale with: a regular file's
/// size; for a directory, the files a SavedModel or checkpoint reader opens in it and in its
/// `variables/` (`saved_model.pb`, `saved_model.pbtxt`, checkpoint `*.index` and `*.data-*`
/// shards), never anything else a directory holds. A file counts the space it occupies on disk
/// where that is less than its length, so a sparse file claiming 100 GB does not buy a budget
/// of 800 GB. A text-format file counts [`TEXT_INPUT_WEIGHT`] times that: parsing text takes
/// [`TEXT_BYTES_PER_BYTE`] per byte, which the default budget's share per input byte would not
/// cover. Its first 4 KiB decide, whatever the file is called.
pub fn input_size(path: &Path) -> u64 {
    let file_size = |path: &Path| match fs::metadata(path) {
        Ok(metadata) if metadata.is_file() => {
            let weight = if starts_as_text(path) {
                TEXT_INPUT_WEIGHT
            } else {
                1
            };
            stored(&metadata).saturating_mul(weight)
        }
        _ => 0,
    };
    let Ok(metadata) = fs::metadata(path) else {
        return 0;
    };
    if !metadata.is_dir() {
        return file_size(path);
    }
    let is_model_file = |name: &str| {
        matches!(name, "saved_model.pb" | "saved_model.pbtxt")
            || name.ends_with(".index")
            || name.contains(".data-")
    };
    let mut total = 0u64;
    for dir in [path.to_path_buf(), path.join("variables")] {
        let Ok(listing) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in listing.flatten().take(100_000) {
            if entry.file_name().to_str().is_some_and(is_model_file) {
                total = total.saturating_add(file_size(&entry.path()));
            }
        }
    }
    total
}

/// Refuses to decode what the estimate says would not fit: more than [`MAX_NODES`] nodes, or
/// more memory (decoded messages plus [`PROCESSING_BYTES_PER_NODE`] per node) than the budget
/// has left. The memory is charged otherwise: the graph lives as long as the command.
fn check_estimate(estimate: &wire::Estimate, file_bytes: usize, path: &Path) -> Result<()> {
    if estimate.nodes > MAX_NODES {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            detail: format!(
                "{} nodes, more than graphopt decodes ({MAX_NODES})",
                estimate.nodes
            ),
        });
    }
    let memory = estimate
        .memory
        .saturating_add(estimate.nodes.saturating_mul(PROCESSING_BYTES_PER_NODE));
    budget::alloc(memory).map_err(|e| Error::TooLarge {
        path: path.to_path_buf(),
        detail: format!(
            "decoding {}{} would take about {} ({:.0} bytes per file byte): {e}",
            match estimate.nodes {
                0 => String::new(),
                n => format!("{n} nodes from "),
            },
            budget::size(file_bytes as u64),
            budget::size(memory),
            memory as f64 / file_bytes.max(1) as f64
        ),
    })
}

/// Decodes `data` as message `T` (e.g. a SavedModel or MetaGraphDef) after the same checks as
/// a GraphDef: the memory estimate and node count against the budget. `path` names the file in
/// errors.
pub fn decode_message<T: Message + prost::Name + Default>(data: Bytes, path: &Path) -> Result<T> {
    decode_partly::<T>(data, path, &T::full_name(), &[])
}

/// Decodes `data`, an encoded `schema` message (e.g. `tensorflow.SavedModel`), as `T`: a
/// message declaring some of `schema`'s fields, with the message fields `opaque` names
/// (message type, field number) declared as `bytes`, left encoded to decode on demand. The
/// checks of [`decode_message`], on what `T` decodes; bytes the estimate cannot size are an
/// error, never decoded unchecked.
pub fn decode_partly<T: Message + Default>(
    data: Bytes,
    path: &Path,
    schema: &str,
    opaque: &[(&str, u32)],
) -> Result<T> {
    let not_a = |message: String| Error::Decode {
        path: path.to_path_buf(),
        what: schema.rsplit('.').next().unwrap_or(schema).to_string(),
        message,
    };
    let estimate = wire::measure_opaque(&data, schema, opaque).map_err(|e| not_a(e.to_string()))?;
    check_estimate(&estimate, data.len(), path)?;
    T::decode(data).map_err(|e| not_a(e.to_string()))
}

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
        if as_text || is_text_path(path) {
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

/// Reads a GraphDef from `path`, binary or text, under the current budget (a default one
/// for the file's size when none is entered): the file's length, then what decoding it takes.
pub fn read_graph(path: impl AsRef<Path>) -> Result<LoadedGraph> {
    let path = path.as_ref();
    budget::enter_or_default(|| input_size(path), || read_graph_within_budget(path))
}

fn read_graph_within_budget(path: &Path) -> Result<LoadedGraph> {
    // Windows cannot replace a file while it is mapped, and an output may be written over its
    // own input: there the graph is read into memory.
    #[cfg(unix)]
    let data = map_regular(path).map_err(|e| Error::io(path, e))?;
    #[cfg(not(unix))]
    let data = Bytes::from(read_regular(path).map_err(|e| Error::io(path, e))?);
    let file_size = data.len() as u64;
    let (graph, format, estimate) = decode_graph_measured(data, path)?;
    let mut warnings = Vec::new();
    // prost drops fields it does not know; the estimate counted them on the way.
    if let Some(wire::Estimate {
        unknown_bytes: bytes @ 1..,
        first_unknown: Some(first),
        ..
    }) = estimate
    {
        warnings.push(format!(
            "{}: {bytes} byte(s) of fields unknown to graphopt (first: {first}) will not be written back",
            path.display()
        ));
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
    decode_graph_measured(data, path).map(|(graph, format, _)| (graph, format))
}

/// [`decode_graph`], with the estimate of a binary graph (what fields it holds that graphopt
/// does not know).
fn decode_graph_measured(
    data: Bytes,
    path: &Path,
) -> Result<(GraphDef, GraphFormat, Option<wire::Estimate>)> {
    if data.is_empty() {
        return Err(Error::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let binary_error = match wire::measure(&data, "tensorflow.GraphDef") {
        // Not binary, or not sizable: prost never sees it (it would decode it unchecked).
        Err(malformed) => malformed.to_string(),
        Ok(estimate) => {
            check_estimate(&estimate, data.len(), path)?;
            match GraphDef::decode(data.clone()) {
                Ok(graph) if looks_like_graph(&graph) => {
                    return Ok((graph, GraphFormat::Binary, Some(estimate)))
                }
                Ok(_) => "decoded to a message with no nodes, functions or versions".to_string(),
                Err(e) => e.to_string(),
            }
        }
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
    let text_error = match text_parse(text, path)? {
        Ok(graph) if looks_like_graph(&graph) => return Ok((graph, GraphFormat::Text, None)),
        Ok(_) => "parsed to a graph with no nodes, functions or versions".to_string(),
        Err(e) => e.to_string(),
    };
    // A file that reads as text (a field name first) was meant as text.
    let meant_as_text = reads_as_text(text.as_bytes());
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

/// Parses text format after asking the budget for its parsing memory, then decodes the
/// graph it describes as a binary one is: its encoding is measured and the estimate checked
/// before anything is decoded. The outer `Result` is a refusal, the inner one the parser's
/// verdict.
fn text_parse(
    text: &str,
    path: &Path,
) -> Result<std::result::Result<GraphDef, text_format::TextFormatError>> {
    let scan = match text_format::scan(text) {
        Ok(scan) => scan,
        Err(e) => return Ok(Err(e)),
    };
    let memory = scan.parse_memory();
    let refused = |e: budget::BudgetError, what: &str, memory: u64| Error::TooLarge {
        path: path.to_path_buf(),
        detail: format!(
            "{what} {} of text format would take about {}: {e}",
            budget::size(text.len() as u64),
            budget::size(memory)
        ),
    };
    // The parser's intermediate message is gone once it returns; its encoding stays until
    // the graph is decoded from it.
    let encoded = budget::scratch_scope(|| {
        budget::alloc(memory).map_err(|e| refused(e, "parsing", memory))?;
        Ok::<_, Error>(text_format::parse_to_encoding(&GraphDef::full_name(), text))
    })?;
    let encoded = match encoded {
        Ok(encoded) => encoded,
        Err(e) => return Ok(Err(e)),
    };
    let length = encoded.len() as u64;
    let _held = budget::hold(length).map_err(|e| refused(e, "the encoding of", length))?;
    let estimate = wire::measure(&encoded, "tensorflow.GraphDef").map_err(|e| Error::Decode {
        path: path.to_path_buf(),
        what: "GraphDef".into(),
        message: format!("its parsed graph encodes malformed, {e}"),
    })?;
    check_estimate(&estimate, text.len(), path)?;
    Ok(GraphDef::decode(Bytes::from(encoded))
        .map_err(|e| text_format::TextFormatError::Convert(e.to_string())))
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

/// Text-format encoding of `graph`, deterministic and readable by TensorFlow. What it takes
/// (the text, and the dynamic message the writer copies the graph into) is sized from the
/// graph's encoding and asked of the current budget first; the text stays charged to the
/// caller's scope.
pub fn graph_to_text(graph: &GraphDef) -> Result<String> {
    text_within_budget(graph).map_err(|message| Error::Encode {
        what: "GraphDef as text".into(),
        message,
    })
}

/// [`graph_to_text`], failing with the reason alone.
fn text_within_budget(graph: &GraphDef) -> std::result::Result<String, String> {
    let write = || text_format::to_text(graph).map_err(|e| e.to_string());
    if budget::current().is_none() {
        return write();
    }
    // Sizing reads the graph's encoding, which the writer makes too.
    let encoded = graph.encoded_len() as u64;
    let cost = budget::scratch_scope(|| {
        budget::alloc(encoded).map_err(|e| {
            format!(
                "sizing its text needs its {} encoding, which {e}",
                budget::size(encoded)
            )
        })?;
        wire::measure_text(&graph.encode_to_vec(), "tensorflow.GraphDef")
            .map_err(|e| format!("it encodes malformed, {e}"))
    })?;
    let besides = cost.memory.saturating_add(encoded);
    let refused = |e: budget::BudgetError| {
        format!(
            "the text would take up to {} and writing it {} besides: {e}",
            budget::size(cost.text),
            budget::size(besides)
        )
    };
    // A string grown by doubling holds up to twice its length.
    budget::alloc(cost.text.saturating_mul(2)).map_err(refused)?;
    budget::scratch_scope(|| {
        budget::alloc(besides).map_err(refused)?;
        write()
    })
}

/// Writes `graph` to `path` in `format`, atomically (temporary file, then rename), so a
/// concurrent reader never sees a partial graph. Binary output is streamed node by node, so
/// writing needs no second copy of the weights in memory.
pub fn write_graph(path: impl AsRef<Path>, graph: &GraphDef, format: GraphFormat) -> Result<()> {
    let path = path.as_ref();
    match format {
        GraphFormat::Binary => write_atomically_with(path, |out| stream::graph(graph, out)),
        GraphFormat::Text => {
            // Text is built from the graph's bytes in one go: an input that shrank since it
            // was mapped is an error before, not a fault during (see `pages::check_backed`).
            stream::check_backed(graph.node.iter())
                .and_then(|()| {
                    let functions = graph.library.iter().flat_map(|l| &l.function);
                    functions.into_iter().try_for_each(stream::function_backed)
                })
                .map_err(|e| Error::io(path, e))?;
            let text = text_within_budget(graph).map_err(|message| Error::TooLarge {
                path: path.to_path_buf(),
                detail: format!("cannot write the graph as text: {message}"),
            })?;
            write_atomically_with(path, |out| out.write_all(text.as_bytes()))
        }
    }
}

/// [`write_graph`] of a graph that may hold late weights: binary output computes each as it
/// is written (see [`crate::late_weights`]); text output computes them all first. The bytes
/// are those of writing `deferred.into_graph()`.
pub fn write_deferred(
    path: impl AsRef<Path>,
    deferred: &Deferred,
    format: GraphFormat,
) -> Result<()> {
    let (graph, late) = deferred.parts();
    match format {
        GraphFormat::Binary => write_atomically_with(path.as_ref(), |out| {
            stream::graph_with_late(graph, late, out)
        }),
        GraphFormat::Text if late.is_empty() => write_graph(path, graph, format),
        GraphFormat::Text => {
            let computed = deferred.clone().into_graph()?;
            write_graph(path, &computed, format)
        }
    }
}

/// Writes `bytes` to a sibling temporary file and renames it over `path`.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomically_with(path, |out| out.write_all(bytes))
}

/// A temporary file left this long without a write is stale even if its writer's process id is
/// alive (the id may have been reused); a live writer writes more often than this.
pub const STALE_TEMPORARY_AGE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// A writer whose process id is not alive here may still be alive elsewhere (another PID
/// namespace writing to a shared directory): its file is removed only after this long without
/// a write (a live writer's longest silence is the final sync of a large output).
pub const FOREIGN_TEMPORARY_AGE: std::time::Duration = std::time::Duration::from_secs(120);

/// Removes the `.NAME.<pid>.<hex>-<hex>.tmp` (or older `.NAME.<pid>.tmp`) files a killed writer
/// of `NAME` left in `dir`: those whose process is gone (where that can be told: Linux) and
/// that nobody wrote to for [`FOREIGN_TEMPORARY_AGE`], and any nobody wrote to for
/// [`STALE_TEMPORARY_AGE`]. This process's own files are never removed.
pub fn remove_stale_temporaries(dir: &Path, file_name: &str) {
    let prefix = format!(".{file_name}.");
    let Ok(listing) = fs::read_dir(dir) else {
        return;
    };
    let own = std::process::id();
    for entry in listing.flatten().take(100_000) {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(temporary_pid)
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        // symlink_metadata: a symlink named like a temporary is not followed or removed.
        let Ok(metadata) = entry.path().symlink_metadata() else {
            continue;
        };
        if !metadata.is_file() {
            continue;
        }
        let idle_for = |age: std::time::Duration| {
            metadata
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|idle| idle >= age)
        };
        let gone = Path::new("/proc/self").exists() && !Path::new(&format!("/proc/{pid}")).exists();
        if (gone && idle_for(FOREIGN_TEMPORARY_AGE)) || idle_for(STALE_TEMPORARY_AGE) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The writer's process id in a temporary's `<pid>` or `<pid>.<hex>-<hex>` (what follows
/// `.NAME.`); `None` for anything else, such as another file's temporary (`.NAME.5.tmp` of
/// `NAME.5`'s writer reads `5.<pid>.<hex>-<hex>`, which has a second dot).
fn temporary_pid(rest: &str) -> Option<u32> {
    let (pid, unique) = rest.split_once('.').unwrap_or((rest, "0-0"));
    let (clock, counter) = unique.split_once('-')?;
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(clock) || !hex(counter) || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Creates a temporary file for `file_name` in `dir` that no other writer shares: threads of
/// one process, and processes of other PID namespaces with the same id, each get their own
/// (`create_new` fails rather than open another writer's file).
fn create_temporary(dir: &Path, file_name: &str) -> std::io::Result<(PathBuf, fs::File)> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut attempt = 0;
    loop {
        let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = dir.join(format!(
            ".{file_name}.{}.{clock:x}-{unique:x}.tmp",
            std::process::id()
        ));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
        {
            Ok(file) => return Ok((temp, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// What an existing output path names, as far as writing it goes.
enum Destination {
    /// Nothing, or a regular file (or a symlink to one): a new file is renamed over it.
    Replaced,
    /// A character device (`/dev/null`, `/dev/full`, a terminal) or a FIFO (`/dev/stdout`
    /// into a pipe): written straight into, as any tool writes it. Renamed over, it would be
    /// replaced by a regular file: run as root, `--out_graph=/dev/null` replaced the system's
    /// /dev/null with the graph.
    Device,
}

/// How `path` is written; an error for a block device or socket (writing into a disk
/// overwrites it, renaming over one destroys it).
fn destination(path: &Path) -> std::io::Result<Destination> {
    let Ok(metadata) = fs::metadata(path) else {
        return Ok(Destination::Replaced);
    };
    let kind = metadata.file_type();
    if kind.is_file() || kind.is_dir() {
        // A directory fails at the rename, with the system's message.
        return Ok(Destination::Replaced);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_char_device() || kind.is_fifo() {
            return Ok(Destination::Device);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        "it is a block device or socket, not a file to write a graph to",
    ))
}

fn write_atomically_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<crate::pages::WriteBehind>) -> std::io::Result<()>,
) -> Result<()> {
    let buffered = |file| {
        // No larger than what goes out unbuffered, so weights are never copied into it.
        std::io::BufWriter::with_capacity(
            stream::STREAMED_CONTENT,
            crate::pages::WriteBehind::new(file),
        )
    };
    // Errors name the path as given; the writing goes to what it names.
    let shown = path;
    let resolved = through_symlink(path);
    let path = resolved.as_deref().unwrap_or(path);
    match destination(path).map_err(|e| Error::io(shown, e))? {
        Destination::Replaced => {}
        Destination::Device => {
            let written = fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|file| {
                    let mut out = buffered(file);
                    fill(&mut out)?;
                    out.flush()
                });
            return written.map_err(|e| Error::io(shown, e));
        }
    }
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "graph".into());
    remove_stale_temporaries(&dir, &file_name);
    let (temp, file) = match create_temporary(&dir, &file_name) {
        Ok(created) => created,
        Err(e) => return Err(Error::io(shown, e)),
    };
    // Removes the temporary should `fill` panic (a defect, but not one to leave a file for).
    let mut guard = RemoveOnDrop(Some(&temp));
    let result = Ok(file)
        .and_then(|file| {
            let mut out = buffered(file);
            fill(&mut out)?;
            let file = out.into_inner().map_err(|e| e.into_error())?.into_file();
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if let Err(e) = result {
        return Err(Error::io(shown, e));
    }
    guard.0 = None;
    Ok(())
}

/// The file a symlink at `path` leads to, which is what gets replaced: the link stays, as
/// TensorFlow's own writers follow it. Renamed over, the link itself became a regular file;
/// `/dev/stdout` with the output redirected to a file is such a link, and run as root that
/// replaced the system's own. None for anything but a link to something that exists (a
/// dangling link is replaced).
fn through_symlink(path: &Path) -> Option<PathBuf> {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    is_link.then(|| fs::canonicalize(path).ok()).flatten()
}

/// Removes the file at its path when dropped, unless the path was taken out.
struct RemoveOnDrop<'a>(Option<&'a Path>);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outputs that are no regular file: a character device or FIFO is written into and
    /// stays what it was (renamed over, a root user's `/dev/null` became a regular file
    /// holding the graph; `/dev/full` a file instead of "no space left"); a block device is
    /// refused, untouched. The devices are made in a temporary directory (as root; skipped
    /// otherwise).
    #[cfg(unix)]
    #[test]
    fn devices_are_written_into_and_fifos_refused_never_replaced() {
        use std::os::unix::fs::FileTypeExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let made = |name: &str, kind: &str, numbers: &[&str]| {
            let path = dir.path().join(name);
            let made = std::process::Command::new("mknod")
                .arg(&path)
                .arg(kind)
                .args(numbers)
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            made.then_some(path)
        };
        if let (Some(null), Some(full)) = (
            made("null", "c", &["1", "3"]),
            made("full", "c", &["1", "7"]),
        ) {
            write_atomically(&null, b"graph").expect("written into /dev/null");
            let error = write_atomically(&full, b"graph").expect_err("/dev/full is full");
            assert!(error.to_string().contains("full"), "{error}");
            for device in [&null, &full] {
                let kind = fs::metadata(device).expect("still there").file_type();
                assert!(
                    kind.is_char_device(),
                    "{} is still a device",
                    device.display()
                );
            }
        }
        if let Some(block) = made("block", "b", &["7", "250"]) {
            let error = write_atomically(&block, b"graph").expect_err("a disk is refused");
            assert!(error.to_string().contains("block device"), "{error}");
            let kind = fs::metadata(&block).expect("still there").file_type();
            assert!(kind.is_block_device());
        }
        let fifo = made("fifo", "p", &[]).expect("mkfifo");
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || fs::read(fifo).expect("read the FIFO"))
        };
        write_atomically(&fifo, b"graph").expect("written into the FIFO");
        assert_eq!(reader.join().expect("reader"), b"graph");
        assert!(fs::metadata(&fifo)
            .expect("still there")
            .file_type()
            .is_fifo());
        assert_no_temporaries(dir.path());
    }

    /// No temporary output file (they start with '.') is left in `dir`.
    fn assert_no_temporaries(dir: &Path) {
        let names: Vec<_> = fs::read_dir(dir)
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            !names.iter().any(|n| n.to_string_lossy().starts_with('.')),
            "{names:?}"
        );
    }

    /// An output that is a symlink is written through: the file it leads to gets the graph,
    /// the link stays a link (renamed over, it became a regular file). A dangling link is
    /// replaced.
    #[cfg(unix)]
    #[test]
    fn symlinks_are_written_through() {
        let dir = tempfile::tempdir().expect("temp dir");
        let versions = dir.path().join("versions");
        fs::create_dir(&versions).expect("mkdir");
        let target = versions.join("v3.pb");
        fs::write(&target, b"old").expect("write");
        let link = dir.path().join("model.pb");
        std::os::unix::fs::symlink("versions/v3.pb", &link).expect("symlink");
        write_atomically(&link, b"graph").expect("written");
        let kind = fs::symlink_metadata(&link).expect("link").file_type();
        assert!(kind.is_symlink(), "the link stays a link");
        assert_eq!(fs::read(&target).expect("target"), b"graph");
        // Nothing left beside either.
        assert_no_temporaries(dir.path());
        assert_no_temporaries(&versions);
        let dangling = dir.path().join("dangling.pb");
        std::os::unix::fs::symlink("nowhere/x.pb", &dangling).expect("symlink");
        write_atomically(&dangling, b"graph").expect("written");
        assert_eq!(fs::read(&dangling).expect("replaced"), b"graph");
    }

    #[test]
    fn stale_temporaries_of_dead_writers_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.pb");
        // A process id that cannot be alive (Linux caps ids at 2^22).
        let dead = dir.path().join(".out.pb.4294967294.tmp");
        let live = dir
            .path()
            .join(format!(".out.pb.{}.tmp", std::process::id()));
        let other = dir.path().join(".other.pb.4294967294.tmp");
        // A dead id whose file was written just now: perhaps a live writer in another PID
        // namespace sharing the directory.
        let recent = dir.path().join(".out.pb.4294967293.5f-0.tmp");
        // Past FOREIGN_TEMPORARY_AGE, short of STALE_TEMPORARY_AGE.
        let minutes_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(180);
        for f in [&dead, &live, &other, &recent] {
            fs::write(f, b"partial").expect("write");
            if f != &recent {
                let file = fs::File::options().write(true).open(f).expect("open");
                file.set_modified(minutes_ago).expect("backdate");
            }
        }
        write_atomically(&path, b"graph").expect("write");
        assert_eq!(fs::read(&path).expect("read"), b"graph");
        if Path::new("/proc/self").exists() {
            assert!(!dead.exists(), "a dead writer's temporary is removed");
        }
        assert!(
            recent.exists(),
            "a temporary written just now is left alone"
        );
        assert!(other.exists(), "another file's temporary is left alone");
        assert!(live.exists(), "this process's own files are left alone");
    }

    #[test]
    fn only_this_files_temporaries_are_recognized() {
        assert_eq!(temporary_pid("4242"), Some(4242));
        assert_eq!(temporary_pid("4242.3b9ac9ff-1f"), Some(4242));
        // Another file's: `.out.5.4242.3b-0.tmp` is a temporary of `out.5`, not of `out`.
        assert_eq!(temporary_pid("5.4242.3b-0"), None);
        assert_eq!(temporary_pid("4242.xyz-1"), None);
        assert_eq!(temporary_pid("4242.3b"), None);
        assert_eq!(temporary_pid("-1"), None);
        assert_eq!(temporary_pid(""), None);
    }

    #[test]
    fn concurrent_writers_of_one_file_never_mix() {
        // Threads of one process share its id: each still writes a temporary of its own, so
        // the file is always one writer's whole output.
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("out.pb");
        let contents: Vec<Vec<u8>> = (0..8u8).map(|k| vec![k; 1 << 18]).collect();
        std::thread::scope(|scope| {
            for content in &contents {
                let path = &path;
                scope.spawn(move || {
                    for _ in 0..4 {
                        write_atomically(path, content).expect("write");
                    }
                });
            }
        });
        let written = fs::read(&path).expect("read");
        assert!(contents.contains(&written), "a mix of writers' bytes");
        let left: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "out.pb")
            .collect();
        assert!(left.is_empty(), "temporaries left behind: {left:?}");
    }

    #[test]
    fn only_regular_files_are_read() {
        let dir = tempfile::tempdir().expect("temp dir");
        assert!(read_regular(dir.path()).is_err());
        #[cfg(unix)]
        {
            let link = dir.path().join("zero");
            std::os::unix::fs::symlink("/dev/zero", &link).expect("symlink");
            let error = read_regular(&link).expect_err("a device");
            assert!(error.to_string().contains("a device"), "{error}");
        }
        let file = dir.path().join("f");
        fs::write(&file, b"\x0a\x01x").expect("write");
        assert_eq!(read_regular(&file).expect("read"), b"\x0a\x01x");
        assert_eq!(&map_regular(&file).expect("map")[..], b"\x0a\x01x");
        let error = map_regular(dir.path()).expect_err("a directory");
        assert!(error.to_string().contains("directory"), "{error}");
        assert_eq!(input_size(&file), 3);
        // Text format counts what parsing it takes, whatever the file is called.
        assert_eq!(TEXT_INPUT_WEIGHT, 4);
        let text_graph = b"# a graph\nnode { name: \"x\" }\n";
        for name in ["g.pbtxt", "g.pb", "g"] {
            let text = dir.path().join(name);
            fs::write(&text, text_graph).expect("write");
            let expected = text_graph.len() as u64 * TEXT_INPUT_WEIGHT;
            assert_eq!(input_size(&text), expected, "{name}");
        }
        // Binary under a text name counts as binary.
        let binary = dir.path().join("binary.pbtxt");
        let graph = GraphDef {
            node: vec![crate::proto::NodeDef {
                name: "x".into(),
                op: "Const".into(),
                ..Default::default()
            }],
            ..GraphDef::default()
        };
        assert!(!reads_as_text(&graph.encode_to_vec()));
        fs::write(&binary, graph.encode_to_vec()).expect("write");
        assert_eq!(input_size(&binary), graph.encoded_len() as u64);
    }

    #[test]
    fn input_size_counts_the_files_a_reader_opens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let variables = dir.path().join("variables");
        fs::create_dir(&variables).expect("variables");
        fs::write(dir.path().join("saved_model.pb"), [1u8; 4096]).expect("write");
        fs::write(variables.join("variables.index"), [1u8; 4096]).expect("write");
        fs::write(variables.join("variables.data-00000-of-00001"), [1u8; 8192]).expect("write");
        fs::write(dir.path().join("notes.txt"), [1u8; 4096]).expect("write");
        fs::create_dir(dir.path().join("assets")).expect("assets");
        fs::write(dir.path().join("assets/vocab.txt"), [1u8; 4096]).expect("write");
        assert_eq!(input_size(dir.path()), 16384);
        // A sparse shard counts the space it occupies, not the length it claims.
        #[cfg(unix)]
        let sparse =
            fs::File::create(variables.join("variables.data-00001-of-00002")).expect("create");
        #[cfg(unix)]
        {
            sparse.set_len(100 << 30).expect("set_len");
            assert!(
                input_size(dir.path()) < 1 << 20,
                "{}",
                input_size(dir.path())
            );
        }
        assert_eq!(input_size(&dir.path().join("missing")), 0);
    }
}
