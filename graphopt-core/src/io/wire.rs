//! Sizing an encoded message before decoding it: one pass over the protobuf wire format,
//! guided by the schema of `proto/` (its descriptor set, read with prost-types), that adds up
//! what prost's decoding would allocate — every message struct, string, repeated element and
//! map node, at its size in memory — and counts the NodeDefs, without allocating in
//! proportion to the file. Decoding asks the budget for the estimate first, so 20 MB of empty
//! nodes (2 bytes each on disk, a few hundred in memory) is one clear error instead of an
//! exhausted machine. Fields the schema does not know are counted too, which tells the reader
//! which bytes it will drop without decoding the file a second time.
//!
//! Every wire type is handled: groups (wire types 3 and 4, which no TensorFlow message uses)
//! are skipped to their end tag, nested no deeper than messages may be, and counted as unknown
//! bytes, as prost skips them. Bytes the walk cannot size are [`Malformed`], which callers
//! treat as a refusal: nothing is ever decoded without an estimate.
//!
//! [`measure_text`] sizes the other direction, writing a message as text format, from its
//! encoding: the text and the dynamic message that [`crate::text_format::to_text`] builds.

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::OnceLock;

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};

use crate::proto::*;

/// How deep messages (and groups) may nest below the outermost message: prost's own decoding
/// limit, counted as prost counts it.
const MAX_DEPTH: usize = 100;

/// Why bytes could not be sized: they are not a well-formed message of the type asked for (or
/// use something graphopt's schema never does). A refusal, never a reason to decode unchecked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: {reason}")]
pub struct Malformed {
    /// Where the offending field starts, from the start of the outermost message.
    pub offset: usize,
    pub reason: String,
}

impl Malformed {
    fn at(offset: usize, reason: impl Into<String>) -> Self {
        Malformed {
            offset,
            reason: reason.into(),
        }
    }
}

/// What decoding an encoded message will cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Estimate {
    /// Bytes of memory the decoded message takes (an upper bound; weights in `bytes` fields
    /// are shared with the file buffer and cost only their handle).
    pub memory: u64,
    /// NodeDefs anywhere in it (the graph and its functions).
    pub nodes: u64,
    /// Bytes of fields the schema does not know (decoding drops them).
    pub unknown_bytes: u64,
    /// Where the first unknown field is, e.g. `GraphDef.node.attr.value field 9`.
    pub first_unknown: Option<String>,
}

#[derive(Debug, Clone)]
enum Kind {
    /// A message of this type (its position in [`Schema::types`]).
    Message(usize),
    /// A message of a type the descriptor set does not hold (a well-formed message never
    /// uses the field).
    MissingType,
    String,
    Bytes,
    /// A scalar taking `memory` bytes in memory, `fixed` bytes on the wire (0: a varint) and
    /// at most `text` characters in text format.
    Scalar {
        memory: usize,
        fixed: usize,
        text: usize,
    },
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    kind: Kind,
    repeated: bool,
}

#[derive(Debug, Default)]
struct MessageType {
    /// Fully qualified, without the leading dot.
    name: String,
    /// By field number, sorted.
    fields: Vec<(u32, Field)>,
    /// (key, value) memory sizes when this is a map's entry type.
    map_entry: Option<(usize, usize)>,
    /// Bytes of the Rust struct.
    size: usize,
    is_node_def: bool,
}

impl MessageType {
    fn field(&self, number: u32) -> Option<&Field> {
        let i = self
            .fields
            .binary_search_by_key(&number, |(n, _)| *n)
            .ok()?;
        self.fields.get(i).map(|(_, f)| f)
    }
}

/// The messages of `proto/`, resolved once: walking a message looks fields and types up by
/// number and position, not by name.
#[derive(Debug, Default)]
struct Schema {
    types: Vec<MessageType>,
    by_name: HashMap<String, usize>,
}

/// In-memory size of the Rust type for each message of the schema.
macro_rules! sizes {
    ($($t:ty),* $(,)?) => {
        fn rust_sizes() -> HashMap<String, usize> {
            use prost::Name;
            let mut sizes = HashMap::new();
            $(sizes.insert(<$t>::full_name(), size_of::<$t>());)*
            sizes.insert("google.protobuf.Any".into(), size_of::<prost_types::Any>());
            // Wrapper types decode to the plain Rust value.
            for (name, size) in [
                ("StringValue", size_of::<String>()),
                ("BytesValue", size_of::<bytes::Bytes>()),
                ("Int64Value", 8),
                ("UInt64Value", 8),
                ("DoubleValue", 8),
                ("Int32Value", 4),
                ("UInt32Value", 4),
                ("FloatValue", 4),
                ("BoolValue", 1),
            ] {
                sizes.insert(format!("google.protobuf.{name}"), size);
            }
            sizes
        }
    };
}

sizes!(
    SerializedDType,
    tensor_shape_proto::Dim,
    TensorShapeProto,
    resource_handle_proto::DtypeAndShape,
    ResourceHandleProto,
    TensorProto,
    VariantTensorDataProto,
    attr_value::ListValue,
    AttrValue,
    NameAttrList,
    FullTypeDef,
    node_def::ExperimentalDebugInfo,
    NodeDef,
    op_def::ArgDef,
    op_def::AttrDef,
    OpDef,
    OpDeprecation,
    OpList,
    function_def::ArgAttrs,
    FunctionDef,
    GradientDef,
    RegisteredGradient,
    FunctionDefLibrary,
    VersionDef,
    graph_debug_info::FileLineCol,
    graph_debug_info::StackTrace,
    GraphDebugInfo,
    GraphDef,
    SavedModel,
    meta_graph_def::MetaInfoDef,
    MetaGraphDef,
    collection_def::NodeList,
    collection_def::BytesList,
    collection_def::Int64List,
    collection_def::FloatList,
    collection_def::AnyList,
    CollectionDef,
    tensor_info::CooSparse,
    tensor_info::CompositeTensor,
    TensorInfo,
    SignatureDef,
    AssetFileDef,
    SaverDef,
    VariableDef,
    SaveSliceInfoDef,
    StructuredValue,
    NoneValue,
    ListValue,
    TupleValue,
    DictValue,
    PairValue,
    NamedTupleValue,
    TensorSpecProto,
    BoundedTensorSpecProto,
    TypeSpecProto,
    SavedObjectGraph,
    SavedObject,
    SavedUserObject,
    SavedAsset,
    SavedFunction,
    CapturedTensor,
    SavedConcreteFunction,
    SavedBareConcreteFunction,
    SavedConstant,
    SavedVariable,
    FunctionSpec,
    SavedResource,
    SaveableObject,
    trackable_object_graph::trackable_object::ObjectReference,
    trackable_object_graph::trackable_object::SerializedTensor,
    trackable_object_graph::trackable_object::SlotVariableReference,
    trackable_object_graph::TrackableObject,
    TrackableObjectGraph,
    RegisteredSaver,
    BundleHeaderProto,
    BundleEntryProto,
    tensor_slice_proto::Extent,
    TensorSliceProto,
);

/// Characters a `float` takes at most in text format: 9 significant digits, a sign, and either
/// a point and up to 4 zeros (`-0.000123456789`), 15 digits and `.0` below 10^15
/// (`-999999950000000.0`), or an exponent (`-1.1754944e-38`).
const FLOAT_TEXT: usize = 18;
/// Characters a `double` takes at most: 17 significant digits (`-2.2250738585072014e-308`).
const DOUBLE_TEXT: usize = 24;
/// Characters any 64-bit integer takes at most (`-9223372036854775808`).
const INT64_TEXT: usize = 20;

/// `enum_text`: the longest enum value name of the schema (or an unknown value's number).
fn scalar(t: Type, enum_text: usize) -> Kind {
    let memory = match t {
        Type::Bool => 1,
        Type::Float | Type::Int32 | Type::Uint32 | Type::Enum | Type::Fixed32 => 4,
        Type::Sfixed32 | Type::Sint32 => 4,
        _ => 8,
    };
    let fixed = match t {
        Type::Float | Type::Fixed32 | Type::Sfixed32 => 4,
        Type::Double | Type::Fixed64 | Type::Sfixed64 => 8,
        _ => 0,
    };
    let text = match t {
        Type::Bool => 5,
        Type::Float => FLOAT_TEXT,
        Type::Double => DOUBLE_TEXT,
        Type::Enum => enum_text,
        Type::Int32 | Type::Sint32 | Type::Sfixed32 | Type::Uint32 | Type::Fixed32 => 11,
        _ => INT64_TEXT,
    };
    Kind::Scalar {
        memory,
        fixed,
        text,
    }
}

/// The schema of `proto/`'s descriptor set.
fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let Ok(set) = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET) else {
            return Schema::default();
        };
        let mut messages = Vec::new();
        for file in &set.file {
            for message in &file.message_type {
                collect_messages(&mut messages, file.package(), message);
            }
        }
        let by_name: HashMap<String, usize> = messages
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.clone(), i))
            .collect();
        let sizes = rust_sizes();
        // An enum value is written by name, or by number (an i32) when it has none.
        let enum_text = set
            .file
            .iter()
            .flat_map(|f| &f.enum_type)
            .chain(messages.iter().flat_map(|(_, m)| &m.enum_type))
            .flat_map(|e| &e.value)
            .map(|v| v.name().len())
            .fold(11, usize::max);
        let mut types: Vec<MessageType> = messages
            .into_iter()
            .map(|(name, message)| message_type(name, message, &by_name, &sizes, enum_text))
            .collect();
        // Map entries: key and value sizes in memory.
        let entry_sizes: Vec<Option<(usize, usize)>> = types
            .iter()
            .map(|m| {
                m.map_entry?;
                let size_of_field = |number: u32| -> usize {
                    match m.field(number).map(|f| &f.kind) {
                        Some(Kind::Message(t)) => types.get(*t).map_or(0, |t| t.size),
                        Some(Kind::String) => size_of::<String>(),
                        Some(Kind::Bytes) => size_of::<bytes::Bytes>(),
                        Some(Kind::Scalar { memory, .. }) => *memory,
                        Some(Kind::MissingType) | None => 0,
                    }
                };
                Some((size_of_field(1), size_of_field(2)))
            })
            .collect();
        for (m, sizes) in types.iter_mut().zip(entry_sizes) {
            m.map_entry = sizes;
        }
        Schema { types, by_name }
    })
}

/// `message` and its nested messages, with their fully qualified names.
fn collect_messages<'a>(
    out: &mut Vec<(String, &'a prost_types::DescriptorProto)>,
    scope: &str,
    message: &'a prost_types::DescriptorProto,
) {
    let name = format!("{scope}.{}", message.name());
    for nested in &message.nested_type {
        collect_messages(out, &name, nested);
    }
    out.push((name, message));
}

fn message_type(
    name: String,
    message: &prost_types::DescriptorProto,
    by_name: &HashMap<String, usize>,
    sizes: &HashMap<String, usize>,
    enum_text: usize,
) -> MessageType {
    let mut fields = Vec::new();
    for field in &message.field {
        let kind = match field.r#type() {
            Type::Message | Type::Group => by_name
                .get(field.type_name().trim_start_matches('.'))
                .map_or(Kind::MissingType, |&i| Kind::Message(i)),
            Type::String => Kind::String,
            Type::Bytes => Kind::Bytes,
            other => scalar(other, enum_text),
        };
        let Ok(number) = u32::try_from(field.number()) else {
            continue;
        };
        let field = Field {
            name: field.name().to_string(),
            kind,
            repeated: field.label() == Label::Repeated,
        };
        fields.push((number, field));
    }
    fields.sort_by_key(|(n, _)| *n);
    fields.dedup_by_key(|(n, _)| *n);
    let map_entry = message
        .options
        .as_ref()
        .and_then(|o| o.map_entry)
        .unwrap_or(false);
    MessageType {
        size: sizes.get(&name).copied().unwrap_or(0),
        is_node_def: name == "tensorflow.NodeDef",
        name,
        fields,
        map_entry: map_entry.then_some((0, 0)),
    }
}

/// Slots a BTreeMap of `entries` entries allocates, at most: a leaf holds 11, a node is at
/// least half full.
fn map_slots(entries: u64) -> u64 {
    if entries == 0 {
        0
    } else if entries <= 11 {
        11
    } else {
        entries.saturating_mul(11) / 5 + 11
    }
}

/// The base-128 varint at `data[*pos..]` (protobuf's, also LevelDB's in checkpoint indexes),
/// advancing `pos`; `None` when it runs past the end or over 10 bytes.
pub(crate) fn varint(data: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

const TRUNCATED: &str = "the data ends in the middle of a field (truncated?)";

/// [`varint`], with why it failed.
fn varint_or(data: &[u8], pos: &mut usize) -> Result<u64, &'static str> {
    varint(data, pos).ok_or(if *pos >= data.len() {
        TRUNCATED
    } else {
        "a varint longer than 10 bytes"
    })
}

/// A field's key: its number and wire type, checked as prost checks them.
fn key(data: &[u8], pos: &mut usize) -> Result<(u32, u64), String> {
    let key = varint_or(data, pos)?;
    let number =
        u32::try_from(key).map_err(|_| "a field key longer than 32 bits".to_string())? >> 3;
    if number == 0 {
        return Err("field number 0, which protobuf does not allow".into());
    }
    Ok((number, key & 7))
}

/// A field's value as the wire has it.
enum Payload<'d> {
    Varint,
    /// 4 or 8 bytes.
    Fixed(usize),
    /// Length-delimited: the bytes, and where they start in the outermost message.
    Delimited(&'d [u8], usize),
    /// A group (wire type 3 up to its end tag), skipped whole.
    Group,
}

/// One field read from the wire.
struct WireField<'d> {
    number: u32,
    /// Where its key starts in the slice being walked.
    start: usize,
    payload: Payload<'d>,
}

/// Reads the field at `data[*pos..]`, in a message nested `depth` below the outermost one,
/// whose byte 0 is byte `base` of the outermost message; advances `pos` past it.
fn read_field<'d>(
    data: &'d [u8],
    base: usize,
    pos: &mut usize,
    depth: usize,
) -> Result<WireField<'d>, Malformed> {
    let start = *pos;
    let (number, wire) = key(data, pos).map_err(|r| Malformed::at(base + start, r))?;
    let payload = read_value(data, base, pos, start, number, wire, depth)?;
    Ok(WireField {
        number,
        start,
        payload,
    })
}

/// The value of the field whose key (`number`, `wire`) started at `data[start..]` and ended at
/// `*pos`; advances `pos` past it. `depth`: as for [`read_field`].
fn read_value<'d>(
    data: &'d [u8],
    base: usize,
    pos: &mut usize,
    start: usize,
    number: u32,
    wire: u64,
    depth: usize,
) -> Result<Payload<'d>, Malformed> {
    let at = |reason: &str| Malformed::at(base + start, reason);
    Ok(match wire {
        0 => {
            varint_or(data, pos).map_err(at)?;
            Payload::Varint
        }
        1 | 5 => {
            let width = if wire == 1 { 8 } else { 4 };
            *pos = pos
                .checked_add(width)
                .filter(|&p| p <= data.len())
                .ok_or_else(|| at(TRUNCATED))?;
            Payload::Fixed(width)
        }
        2 => {
            let len = varint_or(data, pos).map_err(at)?;
            let end = usize::try_from(len)
                .ok()
                .and_then(|len| pos.checked_add(len))
                .filter(|&e| e <= data.len())
                .ok_or_else(|| at(TRUNCATED))?;
            let payload = &data[*pos..end];
            let payload_base = base + *pos;
            *pos = end;
            Payload::Delimited(payload, payload_base)
        }
        3 => {
            skip_group(data, base, pos, start, number, depth + 1)?;
            Payload::Group
        }
        4 => return Err(at("an end-group tag with no group open")),
        _ => {
            return Err(at(&format!(
                "wire type {wire}, which protobuf does not have"
            )))
        }
    })
}

/// Skips the group of field `number` that opened at `data[start..]` (its key ends at `*pos`),
/// `level` below the outermost message, to its end tag. Iterative over the group's fields,
/// recursive only into groups inside it, so never deeper than [`MAX_DEPTH`].
fn skip_group(
    data: &[u8],
    base: usize,
    pos: &mut usize,
    start: usize,
    number: u32,
    level: usize,
) -> Result<(), Malformed> {
    if level > MAX_DEPTH {
        return Err(Malformed::at(
            base + start,
            format!("messages and groups nested deeper than {MAX_DEPTH}"),
        ));
    }
    loop {
        if *pos >= data.len() {
            return Err(Malformed::at(
                base + start,
                format!("the group of field {number} never ends (truncated?)"),
            ));
        }
        let inner_start = *pos;
        let (inner, wire) = key(data, pos).map_err(|r| Malformed::at(base + inner_start, r))?;
        if wire == 4 {
            if inner == number {
                return Ok(());
            }
            return Err(Malformed::at(
                base + inner_start,
                format!("an end-group tag of field {inner} inside the group of field {number}"),
            ));
        }
        // prost skips every field of a group one level deeper than the group.
        if level + 1 > MAX_DEPTH {
            return Err(Malformed::at(
                base + inner_start,
                format!("messages and groups nested deeper than {MAX_DEPTH}"),
            ));
        }
        read_value(data, base, pos, inner_start, inner, wire, level)?;
    }
}

/// The schema's type `message`, for a message nested `depth` deep whose byte 0 is byte `base`
/// of the root; `Err` past [`MAX_DEPTH`].
fn type_at_depth(
    base: usize,
    message: usize,
    depth: usize,
) -> Result<&'static MessageType, Malformed> {
    if depth > MAX_DEPTH {
        return Err(Malformed::at(
            base,
            format!("messages and groups nested deeper than {MAX_DEPTH}"),
        ));
    }
    schema()
        .types
        .get(message)
        .ok_or_else(|| Malformed::at(base, "a message type missing from graphopt's schema"))
}

/// Field `number`, at byte `start` of a message at `base`, has a type the schema lacks.
fn missing_type(base: usize, start: usize, number: u32) -> Malformed {
    Malformed::at(
        base + start,
        format!("field {number} has a type graphopt's schema lacks"),
    )
}

/// A field of the schema found encoded as a group, which prost refuses to decode into it.
fn group_of_known_field(base: usize, start: usize, number: u32, field: &Field) -> Malformed {
    Malformed::at(
        base + start,
        format!(
            "field {number} ('{}') is encoded as a group, which TensorFlow's schema never uses",
            field.name
        ),
    )
}

/// The estimate for `data`, an encoded `message` (e.g. `tensorflow.GraphDef`); `Err` when the
/// bytes are not a well-formed message of that type. Decoding must refuse what this refuses:
/// prost would decode it without limits.
pub fn measure(data: &[u8], message: &str) -> Result<Estimate, Malformed> {
    measure_opaque(data, message, &[])
}

/// [`measure`], or `None` when the bytes are malformed: for reports (such as benchmarks)
/// only; decoding uses [`measure`], whose error is a refusal.
pub fn estimate(data: &[u8], message: &str) -> Option<Estimate> {
    measure(data, message).ok()
}

/// The root type `message` in the schema.
fn root(message: &str) -> Result<(usize, &'static MessageType), Malformed> {
    let schema = schema();
    schema
        .by_name
        .get(message)
        .and_then(|&i| Some((i, schema.types.get(i)?)))
        .ok_or_else(|| Malformed::at(0, format!("graphopt's schema has no message {message}")))
}

/// [`measure`] for a decoding that keeps the message fields `opaque` names (message type,
/// field number) encoded, as `bytes` shared with the file buffer: their contents are neither
/// walked nor counted.
pub fn measure_opaque(
    data: &[u8],
    message: &str,
    opaque: &[(&str, u32)],
) -> Result<Estimate, Malformed> {
    let mut out = Estimate::default();
    let (root, ty) = root(message)?;
    out.memory = ty.size as u64;
    let short = message.rsplit('.').next().unwrap_or(message);
    let mut walker = Walker {
        path: vec![short],
        opaque,
        out: &mut out,
    };
    walker.walk(data, 0, root, 0)?;
    Ok(out)
}

struct Walker<'a, 'o> {
    /// The field names from the root (for naming unknown fields).
    path: Vec<&'a str>,
    opaque: &'o [(&'o str, u32)],
    out: &'o mut Estimate,
}

impl<'a> Walker<'a, '_> {
    /// Walks one message, of the schema's type `message`, nested `depth` below the root, whose
    /// byte 0 is byte `base` of the root.
    fn walk(
        &mut self,
        data: &[u8],
        base: usize,
        message: usize,
        depth: usize,
    ) -> Result<(), Malformed> {
        let schema = schema();
        let ty = type_at_depth(base, message, depth)?;
        if ty.is_node_def {
            self.out.nodes += 1;
        }
        // Entries per map field of this message (few map fields per message).
        let mut map_entries: Vec<(u32, u64)> = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let WireField {
                number,
                start,
                payload,
            } = read_field(data, base, &mut pos, depth)?;
            let Some(field) = ty.field(number) else {
                // Dropped by decoding (a group is skipped whole), counted for the warning.
                unknown(self.out, &self.path, number, pos - start);
                continue;
            };
            let repeated = field.repeated;
            let slot = |size: usize| if repeated { 2 * size as u64 } else { 0 };
            let cost: u64 = match payload {
                Payload::Group => return Err(group_of_known_field(base, start, number, field)),
                Payload::Varint => match field.kind {
                    Kind::Scalar { memory, .. } => slot(memory),
                    _ => 0,
                },
                Payload::Fixed(width) => slot(width),
                Payload::Delimited(payload, payload_base) => {
                    let len = payload.len();
                    match &field.kind {
                        Kind::String => len as u64 + slot(size_of::<String>()),
                        // Shared with the file buffer: only the handle.
                        Kind::Bytes => slot(size_of::<bytes::Bytes>()),
                        Kind::Scalar { memory, fixed, .. } => {
                            // Packed: one element per varint, or per fixed-size chunk.
                            2 * (*memory as u64) * packed_count(payload, *fixed)
                        }
                        Kind::Message(_)
                            if self
                                .opaque
                                .iter()
                                .any(|&(m, n)| n == number && m == ty.name) =>
                        {
                            slot(size_of::<bytes::Bytes>())
                        }
                        Kind::MissingType => return Err(missing_type(base, start, number)),
                        Kind::Message(child) => {
                            let child_ty = schema.types.get(*child).ok_or_else(|| {
                                Malformed::at(base + start, "a type missing from graphopt's schema")
                            })?;
                            if child_ty.map_entry.is_some() {
                                match map_entries.iter_mut().find(|(n, _)| *n == number) {
                                    Some((_, count)) => *count += 1,
                                    None => map_entries.push((number, 1)),
                                }
                            }
                            self.path.push(field.name.as_str());
                            let walked = self.walk(payload, payload_base, *child, depth + 1);
                            self.path.pop();
                            walked?;
                            match child_ty.map_entry {
                                Some(_) => 0,
                                None => (child_ty.size as u64).saturating_mul(if repeated {
                                    2
                                } else {
                                    1
                                }),
                            }
                        }
                    }
                }
            };
            self.out.memory = self.out.memory.saturating_add(cost);
        }
        for (number, entries) in map_entries {
            let Some(Field {
                kind: Kind::Message(entry),
                ..
            }) = ty.field(number)
            else {
                continue;
            };
            let (key, value) = schema
                .types
                .get(*entry)
                .and_then(|e| e.map_entry)
                .unwrap_or((0, 0));
            let slots = map_slots(entries);
            self.out.memory = self
                .out
                .memory
                .saturating_add(slots.saturating_mul((key + value) as u64));
        }
        Ok(())
    }
}

/// Elements in a packed repeated scalar field's `payload`: one per varint, or per `fixed`-byte
/// chunk.
fn packed_count(payload: &[u8], fixed: usize) -> u64 {
    match payload.len().checked_div(fixed) {
        Some(count) => count as u64,
        None => payload.iter().filter(|&&b| b & 0x80 == 0).count() as u64,
    }
}

/// What writing a message in text format costs ([`crate::text_format::to_text`]): an upper
/// bound on the text's length, and on the memory of the dynamic message (prost-reflect's) that
/// the writer copies the message into first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextCost {
    /// Bytes of text.
    pub text: u64,
    /// Bytes of the dynamic message: a value per field and per element, a B-tree node per
    /// message, a hash map per map field, and a copy of every string and bytes field.
    pub memory: u64,
}

/// Memory of one value of a dynamic message.
const DYNAMIC_VALUE: u64 = size_of::<prost_reflect::Value>() as u64;
/// Memory of one field slot of a dynamic message's B-tree: the field number and the value,
/// with room for the slot's tag and the node's bookkeeping.
const DYNAMIC_SLOT: u64 = DYNAMIC_VALUE + 32;
/// Memory of one entry of a dynamic message's map: key, value and control byte, with the hash
/// table's spare capacity (below 3x), plus the writer's sorted list of entries.
const DYNAMIC_MAP_ENTRY: u64 =
    3 * (size_of::<prost_reflect::MapKey>() as u64 + DYNAMIC_VALUE + 1) + 16;

/// The cost of writing `data`, an encoded `message`, in text format; `Err` when the bytes are
/// not a well-formed message of that type.
pub fn measure_text(data: &[u8], message: &str) -> Result<TextCost, Malformed> {
    let (root, _) = root(message)?;
    let mut out = TextCost::default();
    text_walk(data, 0, root, 0, false, &mut out)?;
    Ok(out)
}

/// Characters `bytes` take quoted in text format (`text_format`'s escaping: two for `\n`,
/// `\r`, `\t`, quotes and backslashes, four for other bytes outside printable ASCII).
fn quoted_len(bytes: &[u8]) -> u64 {
    2 + bytes
        .iter()
        .map(|&b| match b {
            b'\n' | b'\r' | b'\t' | b'"' | b'\'' | b'\\' => 2u64,
            0x20..=0x7e => 1,
            _ => 4,
        })
        .sum::<u64>()
}

/// Adds the cost of writing one message of type `message`, nested `depth` deep (indented by
/// `2 * depth`), to `out`. A map entry (`entry`) is no message of its own in the dynamic
/// message: its key and value live in the map's hash table.
fn text_walk(
    data: &[u8],
    base: usize,
    message: usize,
    depth: usize,
    entry: bool,
    out: &mut TextCost,
) -> Result<(), Malformed> {
    let schema = schema();
    let ty = type_at_depth(base, message, depth)?;
    let indent = 2 * depth as u64;
    // Distinct fields present: the B-tree's slots.
    let mut present: Vec<u32> = Vec::new();
    let mut text = 0u64;
    let mut memory = 0u64;
    let mut pos = 0;
    while pos < data.len() {
        let WireField {
            number,
            start,
            payload,
        } = read_field(data, base, &mut pos, depth)?;
        let Some(field) = ty.field(number) else {
            // Kept as an unknown field (a copy), never written.
            memory = memory.saturating_add((pos - start) as u64 + DYNAMIC_VALUE);
            continue;
        };
        if !present.contains(&number) {
            present.push(number);
        }
        // `name: value\n`, indented.
        let line = |value: u64| indent + field.name.len() as u64 + 3 + value;
        let element = if field.repeated { 2 * DYNAMIC_VALUE } else { 0 };
        let width = |default: usize| match field.kind {
            Kind::Scalar { text, .. } => text,
            _ => default,
        } as u64;
        let (field_text, field_memory) = match payload {
            Payload::Group => return Err(group_of_known_field(base, start, number, field)),
            Payload::Varint => (line(width(INT64_TEXT)), element),
            Payload::Fixed(8) => (line(width(DOUBLE_TEXT)), element),
            Payload::Fixed(_) => (line(width(FLOAT_TEXT)), element),
            Payload::Delimited(payload, payload_base) => match &field.kind {
                Kind::String | Kind::Bytes => {
                    (line(quoted_len(payload)), payload.len() as u64 + element)
                }
                Kind::Scalar { fixed, text, .. } => {
                    // Packed: a line and a value per element.
                    let count = packed_count(payload, *fixed);
                    (
                        count.saturating_mul(line(*text as u64)),
                        count.saturating_mul(2 * DYNAMIC_VALUE),
                    )
                }
                Kind::MissingType => return Err(missing_type(base, start, number)),
                Kind::Message(child) => {
                    let is_entry = schema
                        .types
                        .get(*child)
                        .is_some_and(|t| t.map_entry.is_some());
                    // `name {\n` ... `}\n`, indented.
                    let mut text = 2 * indent + field.name.len() as u64 + 5;
                    let memory = if is_entry {
                        // A key or value left out on the wire is written as its default:
                        // `key: ""`, `value {\n}` and the like, indented one level deeper.
                        text += 2 * (indent + 2) + 64;
                        DYNAMIC_MAP_ENTRY
                    } else {
                        element
                    };
                    text_walk(payload, payload_base, *child, depth + 1, is_entry, out)?;
                    (text, memory)
                }
            },
        };
        text = text.saturating_add(field_text);
        memory = memory.saturating_add(field_memory);
    }
    if !entry {
        memory = memory.saturating_add(map_slots(present.len() as u64) * DYNAMIC_SLOT);
    }
    out.text = out.text.saturating_add(text);
    out.memory = out.memory.saturating_add(memory);
    Ok(())
}

fn unknown(out: &mut Estimate, path: &[&str], number: u32, bytes: usize) {
    out.unknown_bytes = out.unknown_bytes.saturating_add(bytes as u64);
    if out.first_unknown.is_none() {
        out.first_unknown = Some(format!("{} field {number}", path.join(".")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_of_the_schema_has_a_size() {
        let sizes = rust_sizes();
        let missing: Vec<&String> = schema()
            .types
            .iter()
            .filter(|m| m.map_entry.is_none() && !sizes.contains_key(&m.name))
            .map(|m| &m.name)
            .collect();
        let unresolved: Vec<(&String, &String)> = schema()
            .types
            .iter()
            .flat_map(|m| m.fields.iter().map(move |(_, f)| (&m.name, f)))
            .filter(|(_, f)| matches!(f.kind, Kind::MissingType))
            .map(|(m, f)| (m, &f.name))
            .collect();
        assert!(
            unresolved.is_empty(),
            "types not in the schema: {unresolved:?}"
        );
        assert!(missing.is_empty(), "no size for {missing:?}");
    }

    #[test]
    fn nodes_and_unknown_fields_are_counted() {
        let graph = GraphDef {
            node: vec![NodeDef::default(); 3],
            library: Some(FunctionDefLibrary {
                function: vec![FunctionDef {
                    node_def: vec![NodeDef::default(); 2],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut bytes = graph.encode_to_vec();
        let e = estimate(&bytes, "tensorflow.GraphDef").expect("well formed");
        assert_eq!(e.nodes, 5);
        assert_eq!(e.unknown_bytes, 0);
        assert!(e.memory >= 5 * size_of::<NodeDef>() as u64);
        // Field 99, varint 1.
        bytes.extend_from_slice(&[0x98, 0x06, 0x01]);
        let e = estimate(&bytes, "tensorflow.GraphDef").expect("well formed");
        assert_eq!(e.unknown_bytes, 3);
        assert_eq!(e.first_unknown.as_deref(), Some("GraphDef field 99"));
        let truncated = measure(&[0x0a, 0x05], "tensorflow.GraphDef").unwrap_err();
        assert_eq!(truncated.offset, 0);
        assert!(truncated.reason.contains("truncated"), "{truncated}");
        // Functions left encoded are not walked: their nodes are not counted.
        let opaque = [("tensorflow.FunctionDefLibrary", 1)];
        let e = measure_opaque(&bytes, "tensorflow.GraphDef", &opaque).expect("well formed");
        assert_eq!(e.nodes, 3);
    }

    /// `count` empty NodeDefs after `prefix`.
    fn empty_nodes_after(prefix: &[u8], count: usize) -> Vec<u8> {
        let mut bytes = prefix.to_vec();
        for _ in 0..count {
            bytes.extend_from_slice(&[0x0a, 0x00]);
        }
        bytes
    }

    #[test]
    fn unknown_groups_are_skipped_and_the_rest_still_counted() {
        // Field 99 as an empty group, then as a group holding a varint, a fixed64, a string
        // and a nested group of field 7: every field after them is still sized.
        let prefixes: [&[u8]; 2] = [
            &[0x9b, 0x06, 0x9c, 0x06],
            &[
                0x9b, 0x06, 0x08, 0x01, 0x11, 1, 2, 3, 4, 5, 6, 7, 8, 0x1a, 0x02, b'h', b'i', 0x3b,
                0x3c, 0x9c, 0x06,
            ],
        ];
        for prefix in prefixes {
            let bytes = empty_nodes_after(prefix, 1000);
            let e = measure(&bytes, "tensorflow.GraphDef").expect("well formed");
            assert_eq!(e.nodes, 1000);
            assert_eq!(e.unknown_bytes, prefix.len() as u64);
            assert_eq!(e.first_unknown.as_deref(), Some("GraphDef field 99"));
            // What prost makes of it: the same nodes, the group skipped.
            let graph = GraphDef::decode(bytes.as_slice()).expect("prost skips the group");
            assert_eq!(graph.node.len(), 1000);
        }
        // Inside a node too.
        let node = [0x0a, 0x04, 0x9b, 0x06, 0x9c, 0x06];
        assert_eq!(measure(&node, "tensorflow.GraphDef").unwrap().nodes, 1);
    }

    #[test]
    fn malformed_groups_and_keys_are_refused_with_their_offset() {
        let refused = |bytes: &[u8], offset: usize, words: &str| {
            let error = measure(bytes, "tensorflow.GraphDef").unwrap_err();
            assert_eq!(error.offset, offset, "{error}");
            assert!(error.reason.contains(words), "{error}");
            // prost refuses all of these too: refusing loses nothing it would decode.
            assert!(GraphDef::decode(bytes).is_err(), "{error}");
        };
        let nodes = empty_nodes_after(&[], 2);
        // A group never closed, closed by another field's tag, or an end tag alone.
        refused(
            &[nodes.as_slice(), &[0x9b, 0x06, 0x08, 0x01]].concat(),
            4,
            "never ends",
        );
        refused(&[0x9b, 0x06, 0xa4, 0x06], 2, "end-group tag of field 100");
        refused(
            &[nodes.as_slice(), &[0x9c, 0x06]].concat(),
            4,
            "no group open",
        );
        // A known field (node) encoded as a group.
        refused(&[0x0b, 0x0c], 0, "'node'");
        // Wire types 6 and 7, field number 0, a key past 32 bits, a varint past 10 bytes.
        refused(&[0x0e], 0, "wire type 6");
        refused(&[0x0a, 0x00, 0x0f], 2, "wire type 7");
        refused(&[0x00, 0x00], 0, "field number 0");
        refused(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], 0, "32 bits");
        refused(
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            0,
            "10 bytes",
        );
        // Groups nested past prost's limit; 97 levels inside a node are still fine.
        let nested = |levels: usize| {
            let mut bytes = Vec::new();
            bytes.extend(std::iter::repeat_n([0x9b, 0x06], levels).flatten());
            bytes.extend(std::iter::repeat_n([0x9c, 0x06], levels).flatten());
            bytes
        };
        refused(&nested(101), 200, "nested deeper");
        // Inside a node, around the limit: refused exactly where prost refuses.
        for levels in 97..101 {
            let group = nested(levels);
            let mut in_node = vec![0x0a];
            prost::encoding::encode_varint(group.len() as u64, &mut in_node);
            in_node.extend(group);
            let decoded = GraphDef::decode(in_node.as_slice()).is_ok();
            let measured = measure(&in_node, "tensorflow.GraphDef");
            assert_eq!(decoded, measured.is_ok(), "{levels}: {measured:?}");
            assert_eq!(decoded, levels < 100, "{levels}");
        }
    }

    #[test]
    fn messages_nest_as_deep_as_prost_decodes() {
        let int = || AttrValue {
            value: Some(attr_value::Value::I(1)),
        };
        let func = |attr: Vec<(String, AttrValue)>| AttrValue {
            value: Some(attr_value::Value::Func(NameAttrList {
                name: "f".into(),
                attr: attr.into_iter().collect(),
            })),
        };
        // Every depth around prost's limit: each round nests a NameAttrList, a map entry and
        // an AttrValue (three levels); the tail adds zero to three more.
        for rounds in 31..34 {
            for tail in 0..4 {
                let mut value = match tail {
                    0 => int(),
                    1 => func(Vec::new()),
                    _ => func(vec![("a".into(), int())]),
                };
                if tail == 3 {
                    value = func(vec![("a".into(), value)]);
                }
                for _ in 0..rounds {
                    value = func(vec![("a".into(), value)]);
                }
                let graph = GraphDef {
                    node: vec![NodeDef {
                        attr: [("a".to_string(), value)].into_iter().collect(),
                        ..Default::default()
                    }],
                    ..Default::default()
                };
                let bytes = graph.encode_to_vec();
                let decoded = GraphDef::decode(bytes.as_slice()).is_ok();
                let measured = measure(&bytes, "tensorflow.GraphDef");
                assert_eq!(decoded, measured.is_ok(), "{rounds}+{tail}: {measured:?}");
            }
        }
    }

    /// A graph using every kind of field text format writes: names, strings with every kind
    /// of escape, packed numbers at their widest, enums, maps with default keys and values.
    fn varied_graph() -> GraphDef {
        let tensor = TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![tensor_shape_proto::Dim {
                    size: i64::MIN,
                    name: "\n\"\x01\u{7f}\u{e9}".into(),
                }],
                unknown_rank: true,
            }),
            tensor_content: (0..=255u8).collect::<Vec<u8>>().into(),
            float_val: vec![
                -1.1754944e-38,
                -0.000_123_456_79,
                -999999950000000.0,
                f32::MIN,
                f32::NAN,
                f32::NEG_INFINITY,
                0.0,
                1.0,
            ],
            double_val: vec![-2.2250738585072014e-308, -0.00012345678901234567, f64::MIN],
            int64_val: vec![i64::MIN, -1, 0],
            uint64_val: vec![u64::MAX],
            int_val: vec![i32::MIN, -1],
            bool_val: vec![false, true],
            ..Default::default()
        };
        let attrs: std::collections::BTreeMap<String, AttrValue> = [
            (String::new(), AttrValue::default()),
            (
                "t".to_string(),
                AttrValue {
                    value: Some(attr_value::Value::Tensor(Box::new(tensor))),
                },
            ),
            (
                "list".to_string(),
                AttrValue {
                    value: Some(attr_value::Value::List(Box::new(attr_value::ListValue {
                        r#type: vec![DataType::DtVariantRef as i32, 12345],
                        f: vec![f32::MAX, -0.0],
                        ..Default::default()
                    }))),
                },
            ),
        ]
        .into();
        let node = NodeDef {
            name: "\t'\r".into(),
            op: "Const".into(),
            input: vec!["a:0".into(), "^b".into()],
            attr: attrs.into_iter().collect(),
            ..Default::default()
        };
        GraphDef {
            node: vec![node.clone(), NodeDef::default(), node],
            versions: Some(VersionDef {
                producer: -1,
                bad_consumers: vec![i32::MIN],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn text_cost_bounds_the_text_written() {
        let graph = varied_graph();
        let bytes = graph.encode_to_vec();
        let cost = measure_text(&bytes, "tensorflow.GraphDef").expect("well formed");
        let text = crate::text_format::to_text(&graph).expect("writes");
        assert!(
            cost.text >= text.len() as u64,
            "{} estimated, {} written",
            cost.text,
            text.len()
        );
        // A bound, not a guess: within a small factor of the text.
        assert!(
            cost.text <= 4 * text.len() as u64,
            "{} for {}",
            cost.text,
            text.len()
        );
        assert!(cost.memory > 0);
        // Names and escapes: exactly what the writer produces.
        let graph = GraphDef {
            node: vec![NodeDef {
                name: (0..128u8).map(char::from).chain(['\u{e9}']).collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = crate::text_format::to_text(&graph).expect("writes");
        let cost = measure_text(&graph.encode_to_vec(), "tensorflow.GraphDef").unwrap();
        assert_eq!(cost.text, text.len() as u64, "{text}");
    }
}
