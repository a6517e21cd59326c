//! Protobuf text format for the TensorFlow types: parsing (via prost-reflect) and a
//! deterministic writer that TensorFlow's own `TextFormat` parser accepts.
//!
//! The writer is our own because the output has to be byte-stable: fields in field-number
//! order, map entries sorted by key (as TensorFlow's C++ printer does), bytes as C escapes
//! with octal for anything non-printable, and floats in a form both parsers read back exactly.

use std::fmt::Write as _;
use std::sync::OnceLock;

use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value,
};

use crate::proto::FILE_DESCRIPTOR_SET;

/// Why a text-format document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TextFormatError {
    #[error("{0}")]
    Parse(String),
    #[error("text format describes a message graphopt cannot convert: {0}")]
    Convert(String),
}

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        // The descriptor set is generated from proto/ and checked by tests/proto_codegen.rs.
        DescriptorPool::decode(FILE_DESCRIPTOR_SET).unwrap_or_default()
    })
}

fn descriptor(full_name: &str) -> Result<MessageDescriptor, TextFormatError> {
    pool()
        .get_message_by_name(full_name)
        .ok_or_else(|| TextFormatError::Convert(format!("no descriptor for {full_name}")))
}

/// Parses `text` as the text format of message type `T` (e.g. a GraphDef). Nothing here is
/// budgeted: callers reading files go through [`scan`] and [`parse_to_encoding`] (as
/// `io::decode_graph` does) to size the parse and check the encoding before decoding it.
pub fn parse<T: prost::Message + prost::Name + Default>(text: &str) -> Result<T, TextFormatError> {
    let encoded = parse_to_encoding(&T::full_name(), text)?;
    T::decode(encoded.as_slice()).map_err(|e| TextFormatError::Convert(e.to_string()))
}

/// The stack the parser runs on: prost-reflect's parser recurses a few frames per level of
/// nesting, about 25 KiB a level unoptimized, so [`MAX_NESTING`] levels need some 2.5 MiB,
/// more than a test thread (2 MiB) or a caller deep in its own stack may have left.
#[cfg(feature = "text")]
const PARSE_STACK: usize = 32 << 20;

/// Parses `text` as the text format of message `full_name` (e.g. `tensorflow.GraphDef`) and
/// returns its binary encoding, refusing nesting deeper than [`MAX_NESTING`] first. The
/// parser's intermediate message is built, encoded and dropped on a thread of its own with
/// 32 MiB of stack, so the depth it reaches never depends on the caller's stack. It
/// takes up to [`TextScan::parse_memory`] while it runs.
#[cfg(feature = "text")]
pub fn parse_to_encoding(full_name: &str, text: &str) -> Result<Vec<u8>, TextFormatError> {
    scan(text)?;
    let desc = descriptor(full_name)?;
    let run = move || {
        DynamicMessage::parse_text_format(desc, text)
            .map(|message| prost::Message::encode_to_vec(&message))
            .map_err(|e| TextFormatError::Parse(describe_parse_error(text, &e)))
    };
    std::thread::scope(|scope| {
        let parser = std::thread::Builder::new()
            .name("graphopt-text-format".into())
            .stack_size(PARSE_STACK)
            .spawn_scoped(scope, run)
            .map_err(|e| TextFormatError::Convert(format!("cannot start the parser: {e}")))?;
        parser.join().unwrap_or_else(|_| {
            Err(TextFormatError::Convert(
                "the text-format parser failed".into(),
            ))
        })
    })
}

/// Without the `text` feature, text format cannot be read.
#[cfg(not(feature = "text"))]
pub fn parse_to_encoding(_full_name: &str, _text: &str) -> Result<Vec<u8>, TextFormatError> {
    Err(TextFormatError::Parse(
        "reading text format needs graphopt-core's `text` feature".into(),
    ))
}

/// Longest parse error message kept: the parser quotes the token it found whole, and a token
/// can be a string literal as long as the file.
#[cfg(feature = "text")]
const MAX_ERROR_CHARS: usize = 200;

#[cfg(feature = "text")]
fn describe_parse_error(text: &str, error: &prost_reflect::text_format::ParseError) -> String {
    let mut message = Bounded::default();
    let _ = write!(message, "{error}");
    let message = message.finish();
    let offset =
        error_offset(error).or_else(|| message.contains("end of input").then_some(text.len()));
    match offset {
        Some(offset) => {
            let before = text.get(..offset).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// A writer keeping the first [`MAX_ERROR_CHARS`] characters written and counting the rest.
#[cfg(feature = "text")]
#[derive(Default)]
struct Bounded {
    kept: String,
    chars: usize,
    dropped: usize,
}

#[cfg(feature = "text")]
impl Bounded {
    fn finish(mut self) -> String {
        if self.dropped > 0 {
            let _ = write!(self.kept, "... ({} more characters)", self.dropped);
        }
        self.kept
    }
}

#[cfg(feature = "text")]
impl std::fmt::Write for Bounded {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for c in s.chars() {
            if self.chars < MAX_ERROR_CHARS {
                self.kept.push(c);
                self.chars += 1;
            } else {
                self.dropped += 1;
            }
        }
        Ok(())
    }
}

/// Where in the text a parse error points. prost-reflect hands its spans out only through
/// miette's `Diagnostic` (a dependency with a proc-macro, for one number); its `Debug` form
/// holds the same span as a field of the error kind, `span: START..END`. Quoted strings there
/// (the tokens an error names and, when another crate turns miette on, the whole source
/// text) are skipped, so the first `span: ` outside them is the kind's. The `Debug` form is
/// scanned as it is written, never held: a quoted token can be as long as the file.
#[cfg(feature = "text")]
fn error_offset(error: &prost_reflect::text_format::ParseError) -> Option<usize> {
    let mut finder = SpanFinder::default();
    // The finder stops the formatting with an error once it has the number.
    let _ = write!(finder, "{error:?}");
    finder.digits.parse().ok()
}

/// Finds the digits after the first `span: ` outside quotes in what is written to it.
#[cfg(feature = "text")]
#[derive(Default)]
struct SpanFinder {
    quoted: bool,
    escaped: bool,
    /// How much of `span: ` the last characters outside quotes matched.
    matched: usize,
    digits: String,
}

#[cfg(feature = "text")]
impl std::fmt::Write for SpanFinder {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        const PATTERN: &[u8] = b"span: ";
        for c in s.chars() {
            if self.matched == PATTERN.len() {
                if c.is_ascii_digit() {
                    self.digits.push(c);
                    continue;
                }
                return Err(std::fmt::Error);
            }
            if self.escaped {
                self.escaped = false;
            } else if self.quoted {
                match c {
                    '\\' => self.escaped = true,
                    '"' => self.quoted = false,
                    _ => {}
                }
            } else if c == '"' {
                self.quoted = true;
                self.matched = 0;
            } else if PATTERN
                .get(self.matched)
                .is_some_and(|&p| char::from(p) == c)
            {
                self.matched += 1;
            } else {
                self.matched = usize::from(c == 's');
            }
        }
        Ok(())
    }
}

/// Writes `message` in text format, deterministically.
pub fn to_text<T: prost::Message + prost::Name>(message: &T) -> Result<String, TextFormatError> {
    let desc = descriptor(&T::full_name())?;
    let mut dynamic = DynamicMessage::new(desc);
    dynamic
        .transcode_from(message)
        .map_err(|e| TextFormatError::Convert(e.to_string()))?;
    let mut out = String::new();
    write_message(&mut out, &dynamic, 0);
    Ok(out)
}

fn write_message(out: &mut String, message: &DynamicMessage, indent: usize) {
    let desc = message.descriptor();
    let mut fields: Vec<FieldDescriptor> = desc.fields().collect();
    fields.sort_by_key(FieldDescriptor::number);
    for field in fields {
        if !message.has_field(&field) {
            continue;
        }
        let value = message.get_field(&field);
        match value.as_ref() {
            Value::List(items) => {
                for item in items {
                    write_field(out, &field, item, indent);
                }
            }
            Value::Map(map) => {
                let mut entries: Vec<(&MapKey, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let value_field = match field.kind() {
                    Kind::Message(entry) => entry.map_entry_value_field(),
                    _ => continue,
                };
                for (key, entry_value) in entries {
                    push_indent(out, indent);
                    out.push_str(field.name());
                    out.push_str(" {\n");
                    push_indent(out, indent + 2);
                    out.push_str("key: ");
                    write_map_key(out, key);
                    out.push('\n');
                    write_field(out, &value_field, entry_value, indent + 2);
                    push_indent(out, indent);
                    out.push_str("}\n");
                }
            }
            single => write_field(out, &field, single, indent),
        }
    }
}

fn write_field(out: &mut String, field: &FieldDescriptor, value: &Value, indent: usize) {
    push_indent(out, indent);
    out.push_str(field.name());
    match value {
        Value::Message(inner) => {
            out.push_str(" {\n");
            write_message(out, inner, indent + 2);
            push_indent(out, indent);
            out.push_str("}\n");
        }
        scalar => {
            out.push_str(": ");
            write_scalar(out, scalar, &field.kind());
            out.push('\n');
        }
    }
}

fn write_scalar(out: &mut String, value: &Value, kind: &Kind) {
    match value {
        Value::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
        Value::I32(v) => push_display(out, v),
        Value::I64(v) => push_display(out, v),
        Value::U32(v) => push_display(out, v),
        Value::U64(v) => push_display(out, v),
        Value::F32(v) => write_float(out, f64::from(*v), v.to_string(), format!("{v:e}")),
        Value::F64(v) => write_float(out, *v, v.to_string(), format!("{v:e}")),
        Value::String(s) => write_quoted(out, s.as_bytes()),
        Value::Bytes(b) => write_quoted(out, b),
        Value::EnumNumber(number) => match kind {
            Kind::Enum(desc) => match desc.get_value(*number) {
                Some(v) => out.push_str(v.name()),
                None => push_display(out, number),
            },
            _ => push_display(out, number),
        },
        // Lists, maps and messages are handled by the callers.
        Value::Message(_) | Value::List(_) | Value::Map(_) => {}
    }
}

/// Shortest round-trip digits; exponent form for very large or small magnitudes, because
/// TensorFlow's tokenizer reads a long digit run without a dot as an (overflowing) integer.
fn write_float(out: &mut String, value: f64, plain: String, exponent: String) {
    if value.is_nan() {
        out.push_str("nan");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "inf" } else { "-inf" });
    } else if value != 0.0 && !(1e-4..1e15).contains(&value.abs()) {
        out.push_str(&exponent);
    } else if plain.contains('.') {
        out.push_str(&plain);
    } else {
        out.push_str(&plain);
        out.push_str(".0");
    }
}

fn write_map_key(out: &mut String, key: &MapKey) {
    match key {
        MapKey::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
        MapKey::I32(v) => push_display(out, v),
        MapKey::I64(v) => push_display(out, v),
        MapKey::U32(v) => push_display(out, v),
        MapKey::U64(v) => push_display(out, v),
        MapKey::String(s) => write_quoted(out, s.as_bytes()),
    }
}

fn write_quoted(out: &mut String, bytes: &[u8]) {
    out.push('"');
    for &byte in bytes {
        match byte {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b'"' => out.push_str("\\\""),
            b'\'' => out.push_str("\\'"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(byte)),
            _ => {
                let _ = write!(out, "\\{byte:03o}");
            }
        }
    }
    out.push('"');
}

fn push_display(out: &mut String, value: impl std::fmt::Display) {
    let _ = write!(out, "{value}");
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// Bytes of fields in `bytes` (an encoded `T`) that graphopt's schema does not know, with the
/// path of the first one; `None` when there are none.
pub fn unknown_fields<T: prost::Name>(bytes: &[u8]) -> Option<(usize, String)> {
    let desc = descriptor(&T::full_name()).ok()?;
    let message = DynamicMessage::decode(desc, bytes).ok()?;
    let mut total = 0;
    let mut first = None;
    walk_unknown(&message, T::NAME, &mut total, &mut first);
    first.map(|path| (total, path))
}

fn walk_unknown(
    message: &DynamicMessage,
    path: &str,
    total: &mut usize,
    first: &mut Option<String>,
) {
    for field in message.unknown_fields() {
        *total += field.encoded_len();
        first.get_or_insert_with(|| format!("{path} field {}", field.number()));
    }
    for (field, value) in message.fields() {
        let here = format!("{path}.{}", field.name());
        match value {
            Value::Message(inner) => walk_unknown(inner, &here, total, first),
            Value::List(items) => {
                for item in items {
                    if let Value::Message(inner) = item {
                        walk_unknown(inner, &here, total, first);
                    }
                }
            }
            Value::Map(map) => {
                for item in map.values() {
                    if let Value::Message(inner) = item {
                        walk_unknown(inner, &here, total, first);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Messages nested deeper than this are refused before parsing: the parser recurses once per
/// level (binary decoding has the same limit).
pub const MAX_NESTING: usize = 100;

/// What a pass over a text-format document finds before it is parsed: how deep its message
/// blocks nest and how much the parser's intermediate message can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextScan {
    /// Deepest nesting of `{}`/`<>` blocks.
    pub deepest: usize,
    /// Message blocks opened (`{` or `<`).
    pub messages: u64,
    /// Message blocks closed straight after they opened (`{}`): no field map is allocated.
    pub empty_messages: u64,
    /// Field values and list items started (`:`, `,`, `[`): an upper bound on the scalar
    /// values the parser makes.
    pub values: u64,
    /// Length of the text.
    pub len: u64,
}

impl TextScan {
    /// An upper bound on the heap prost-reflect's parser holds at once for this document:
    /// every value a slot of a list that may have doubled (or of a field map's node), every
    /// message a value and a node of its field map (eleven slots, allocated at its first
    /// field), and the bytes of strings, which the text holds at most once each, twice over
    /// for their allocations and the encoding made of the message.
    pub fn parse_memory(&self) -> u64 {
        let slot = (std::mem::size_of::<Value>() + 16) as u64;
        let node = 16 + 11 * slot;
        self.values
            .saturating_mul(2 * slot)
            .saturating_add(self.messages.saturating_mul(2 * slot))
            .saturating_add(
                (self.messages.saturating_sub(self.empty_messages)).saturating_mul(node),
            )
            .saturating_add(self.len.saturating_mul(3))
    }
}

/// Scans `text` without parsing it: refuses `{}`/`<>` message blocks nested deeper than
/// [`MAX_NESTING`] (the parser recurses once per level) and counts what the parser will
/// build ([`TextScan`]).
pub fn scan(text: &str) -> Result<TextScan, TextFormatError> {
    scan_within(text, MAX_NESTING).map_err(|offset| {
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        TextFormatError::Parse(format!(
            "line {line}: messages are nested more than {MAX_NESTING} deep"
        ))
    })
}

/// Refuses text whose `{}`/`<>` message blocks nest deeper than [`MAX_NESTING`], before any
/// parser sees it.
pub fn check_nesting(text: &str) -> Result<(), TextFormatError> {
    scan(text).map(|_| ())
}

/// The deepest nesting of `{}`/`<>` message blocks in `text`, outside strings and comments, or
/// the byte offset where it first exceeds `limit`.
#[cfg(test)]
fn nesting_depth(text: &str, limit: usize) -> Result<usize, usize> {
    scan_within(text, limit).map(|scan| scan.deepest)
}

/// [`scan`] with the nesting limit given: the scan, or the byte offset where the nesting
/// first exceeds `limit`. Strings and comments are skipped as the parser's lexer skips them.
fn scan_within(text: &str, limit: usize) -> Result<TextScan, usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut i) = (0usize, 0usize);
    // The last byte outside whitespace, strings and comments.
    let mut last = 0u8;
    let mut found = TextScan {
        deepest: 0,
        messages: 0,
        empty_messages: 0,
        values: 0,
        len: text.len() as u64,
    };
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'#' => {
                while bytes.get(i).is_some_and(|&b| b != b'\n') {
                    i += 1;
                }
            }
            quote @ (b'"' | b'\'') => {
                i += 1;
                while let Some(&b) = bytes.get(i) {
                    if b == quote || b == b'\n' {
                        break;
                    }
                    i += if b == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'<' => {
                depth += 1;
                if depth > limit {
                    return Err(i);
                }
                found.deepest = found.deepest.max(depth);
                found.messages += 1;
            }
            b'}' | b'>' => {
                depth = depth.saturating_sub(1);
                if matches!(last, b'{' | b'<') {
                    found.empty_messages += 1;
                }
            }
            b':' | b',' | b'[' => found.values += 1,
            _ => {}
        }
        if !byte.is_ascii_whitespace() && byte != b'#' {
            last = byte;
        }
        i += 1;
    }
    Ok(found)
}

#[cfg(test)]
mod nesting_tests {
    use super::*;

    #[test]
    fn nesting_is_measured_outside_strings_and_comments() {
        assert_eq!(nesting_depth("a { b { } } c < d { } >", 10), Ok(2));
        assert_eq!(nesting_depth("s: \"{{{{\" # {{{{\n", 1), Ok(0));
        assert_eq!(nesting_depth("s: '\\'{' t { }", 10), Ok(1));
        assert_eq!(nesting_depth(&"a {".repeat(5), 3), Err(11));
    }

    #[test]
    fn the_scan_counts_values_and_messages_outside_strings_and_comments() {
        let scan = scan("a: [1, 2] b { } # c: { ,\nd < e: 's:{,' > f { # {\n }").unwrap();
        assert_eq!((scan.messages, scan.empty_messages, scan.values), (3, 2, 4));
        // An empty message allocates no field map.
        let empty = scan_within("n {}", 10).unwrap();
        let full = scan_within("n {a:1}", 10).unwrap();
        assert!(full.parse_memory() > empty.parse_memory() + 11 * 16);
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let text = format!(
            "{}{}",
            "library { function { ".repeat(2000),
            "} }".repeat(2000)
        );
        let error = check_nesting(&text);
        assert!(
            matches!(&error, Err(TextFormatError::Parse(m)) if m.contains("nested more than")),
            "{error:?}"
        );
        assert!(check_nesting("node { attr { key: \"T\" value { type: DT_FLOAT } } }").is_ok());
    }
}

#[cfg(test)]
mod tests {
    /// A parse error names the line and column it points at (read from prost-reflect's span).
    #[cfg(feature = "text")]
    #[test]
    fn parse_errors_name_line_and_column() {
        use super::parse;
        use crate::proto::GraphDef;
        let text = "node {\n  name: \"a\"\n  op: ]\n}\n";
        let error = parse::<GraphDef>(text).unwrap_err().to_string();
        assert!(error.contains("line 3, column 7: "), "{error}");
        // A string that quotes the span's own spelling does not confuse it.
        let text = "node { name: \"span: 1..2\" op: \"x\" }\nnode { ] }";
        let error = parse::<GraphDef>(text).unwrap_err().to_string();
        assert!(error.contains("line 2, column 8: "), "{error}");
        let error = parse::<GraphDef>("node {").unwrap_err().to_string();
        assert!(error.contains("line 1, column 7: "), "{error}");
        // A token as long as the file is quoted in part: the message had been four times the
        // length of a string literal of control characters.
        let text = format!("node {{ name: 'a' }}\n'{}' x", "\u{1}".repeat(100_000));
        let error = parse::<GraphDef>(&text).unwrap_err().to_string();
        assert!(
            error.starts_with("line 2, column 1: expected a field name"),
            "{error}"
        );
        assert!(error.len() < 300, "{} characters", error.len());
        assert!(error.ends_with("more characters)"), "{error}");
    }
}
