//! Sizing an encoded message before decoding it: one pass over the protobuf wire format,
//! guided by the schema of `proto/` (its descriptor set, read with prost-types), that adds up
//! what prost's decoding would allocate — every message struct, string, repeated element and
//! map node, at its size in memory — and counts the NodeDefs, without allocating in
//! proportion to the file. Decoding asks the budget for the estimate first, so 20 MB of empty
//! nodes (2 bytes each on disk, a few hundred in memory) is one clear error instead of an
//! exhausted machine. Fields the schema does not know are counted too, which tells the reader
//! which bytes it will drop without decoding the file a second time.

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::OnceLock;

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};

use crate::proto::*;

/// How deep messages may nest (prost's own decoding limit).
const MAX_DEPTH: usize = 100;

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
    /// A scalar taking `memory` bytes in memory and `fixed` bytes on the wire (0: a varint).
    Scalar {
        memory: usize,
        fixed: usize,
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

fn scalar(t: Type) -> Kind {
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
    Kind::Scalar { memory, fixed }
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
        let mut types: Vec<MessageType> = messages
            .into_iter()
            .map(|(name, message)| message_type(name, message, &by_name, &sizes))
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
) -> MessageType {
    let mut fields = Vec::new();
    for field in &message.field {
        let kind = match field.r#type() {
            Type::Message | Type::Group => by_name
                .get(field.type_name().trim_start_matches('.'))
                .map_or(Kind::MissingType, |&i| Kind::Message(i)),
            Type::String => Kind::String,
            Type::Bytes => Kind::Bytes,
            other => scalar(other),
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

/// The estimate for `data`, an encoded `message` (e.g. `tensorflow.GraphDef`); `None` when the
/// bytes are not a well-formed message of that type (decoding will say why).
pub fn estimate(data: &[u8], message: &str) -> Option<Estimate> {
    estimate_opaque(data, message, &[])
}

/// [`estimate`] for a decoding that keeps the message fields `opaque` names (message type,
/// field number) encoded, as `bytes` shared with the file buffer: their contents are neither
/// walked nor counted.
pub fn estimate_opaque(data: &[u8], message: &str, opaque: &[(&str, u32)]) -> Option<Estimate> {
    let mut out = Estimate::default();
    let schema = schema();
    let root = *schema.by_name.get(message)?;
    out.memory = schema.types.get(root)?.size as u64;
    let short = message.rsplit('.').next().unwrap_or(message);
    let mut walker = Walker {
        path: vec![short],
        opaque,
        out: &mut out,
    };
    walker.walk(data, root)?;
    Some(out)
}

struct Walker<'a, 'o> {
    /// The field names from the root (for naming unknown fields).
    path: Vec<&'a str>,
    opaque: &'o [(&'o str, u32)],
    out: &'o mut Estimate,
}

impl<'a> Walker<'a, '_> {
    /// Walks one message, of the schema's type `message`.
    fn walk(&mut self, data: &[u8], message: usize) -> Option<()> {
        if self.path.len() > MAX_DEPTH {
            return None;
        }
        let schema = schema();
        let ty = schema.types.get(message)?;
        if ty.is_node_def {
            self.out.nodes += 1;
        }
        // Entries per map field of this message (few map fields per message).
        let mut map_entries: Vec<(u32, u64)> = Vec::new();
        let mut pos = 0;
        while pos < data.len() {
            let start = pos;
            let key = varint(data, &mut pos)?;
            let number = u32::try_from(key >> 3).ok()?;
            let wire = key & 7;
            let field = ty.field(number);
            let repeated = field.is_some_and(|f| f.repeated);
            let slot = |size: usize| if repeated { 2 * size as u64 } else { 0 };
            match wire {
                0 => {
                    varint(data, &mut pos)?;
                    if let Some(Field {
                        kind: Kind::Scalar { memory, .. },
                        ..
                    }) = field
                    {
                        self.out.memory = self.out.memory.saturating_add(slot(*memory));
                    }
                }
                1 => {
                    pos = pos.checked_add(8).filter(|&p| p <= data.len())?;
                    self.out.memory = self.out.memory.saturating_add(slot(8));
                }
                5 => {
                    pos = pos.checked_add(4).filter(|&p| p <= data.len())?;
                    self.out.memory = self.out.memory.saturating_add(slot(4));
                }
                2 => {
                    let len = usize::try_from(varint(data, &mut pos)?).ok()?;
                    let end = pos.checked_add(len).filter(|&e| e <= data.len())?;
                    let payload = &data[pos..end];
                    pos = end;
                    let Some(field) = field else {
                        unknown(self.out, &self.path, number, end - start);
                        continue;
                    };
                    let cost: u64 = match &field.kind {
                        Kind::String => len as u64 + slot(size_of::<String>()),
                        // Shared with the file buffer: only the handle.
                        Kind::Bytes => slot(size_of::<bytes::Bytes>()),
                        Kind::Scalar { memory, fixed } => {
                            // Packed: one element per varint, or per fixed-size chunk.
                            let count = if *fixed > 0 {
                                (len / fixed) as u64
                            } else {
                                payload.iter().filter(|&&b| b & 0x80 == 0).count() as u64
                            };
                            2 * (*memory as u64) * count
                        }
                        Kind::Message(_)
                            if self
                                .opaque
                                .iter()
                                .any(|&(m, n)| n == number && m == ty.name) =>
                        {
                            slot(size_of::<bytes::Bytes>())
                        }
                        Kind::MissingType => return None,
                        Kind::Message(child) => {
                            let child_ty = schema.types.get(*child)?;
                            if child_ty.map_entry.is_some() {
                                match map_entries.iter_mut().find(|(n, _)| *n == number) {
                                    Some((_, count)) => *count += 1,
                                    None => map_entries.push((number, 1)),
                                }
                            }
                            self.path.push(field.name.as_str());
                            let walked = self.walk(payload, *child);
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
                    };
                    self.out.memory = self.out.memory.saturating_add(cost);
                }
                _ => return None,
            }
            if field.is_none() && wire != 2 {
                unknown(self.out, &self.path, number, pos - start);
            }
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
        Some(())
    }
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
        assert!(estimate(&[0x0a, 0x05], "tensorflow.GraphDef").is_none());
        // Functions left encoded are not walked: their nodes are not counted.
        let opaque = [("tensorflow.FunctionDefLibrary", 1)];
        let e = estimate_opaque(&bytes, "tensorflow.GraphDef", &opaque).expect("well formed");
        assert_eq!(e.nodes, 3);
    }
}
