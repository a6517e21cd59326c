//! Binary encoding of a graph written piece by piece: node by node, and a Const's weights
//! straight from where they lie (the input's mapping or the buffer a fold wrote) rather than
//! copied into the node's encoding first. The bytes are exactly [`prost::Message::encode`]'s:
//! prost emits fields in number order and map entries in key order, and this follows both.

use std::io::{self, Write};

use prost::encoding::{encode_key, encode_varint, encoded_len_varint, message, string, WireType};
use prost::Message;

use crate::late_weights::{LateWeightError, LateWeights, ScaledWeight};
use crate::proto::attr_value::Value;
use crate::proto::{AttrValue, FunctionDef, GraphDef, NodeDef, TensorProto};

/// Tensor contents at least this large go to the writer on their own; smaller ones are not
/// worth a separate write. The writer's buffer should be no larger, or it copies them anyway.
pub const STREAMED_CONTENT: usize = 64 << 10;

/// Writes the same bytes as `graph.encode_to_vec()`. `node` (field 1) comes first, so nodes
/// go out one at a time, then the library (field 2) and the version fields.
pub fn graph(graph: &GraphDef, out: &mut impl Write) -> io::Result<()> {
    graph_with_late(graph, &LateWeights::default(), out)
}

/// [`graph`] of a graph whose late weights are `late`: the bytes of the graph with every one
/// computed, each computed a chunk at a time as it is written.
pub fn graph_with_late(
    graph: &GraphDef,
    late: &LateWeights,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut buffer = Vec::new();
    let mut scratch = crate::late_weights::ChunkBuffers::default();
    for (i, node_def) in graph.node.iter().enumerate() {
        // Before anything reads their mapped bytes: an input that shrank since is an error
        // here, where reading them would fault (SIGBUS). A batch of nodes at a time, so a
        // graph of many small nodes pays one `fstat` per batch, not per node.
        if i % CHECKED_TOGETHER == 0 {
            let batch = graph.node.get(i..).unwrap_or_default();
            check_backed(batch.iter().take(CHECKED_TOGETHER))?;
        }
        match late.of(node_def) {
            None => node(node_def, None, &mut buffer, out)?,
            Some(weight) if streamed(value_attr(node_def)).is_some() => {
                node(node_def, Some((weight, &mut scratch)), &mut buffer, out)?;
            }
            // Not written on its own (small, or a field after the content): computed first.
            Some(weight) => {
                let mut computed = node_def.clone();
                if let Some(Value::Tensor(tensor)) = computed
                    .attr
                    .get_mut("value")
                    .and_then(|v| v.value.as_mut())
                {
                    tensor.tensor_content = weight
                        .compute()
                        .map_err(|e| LateWeightError::new(&node_def.name, e).into_io())?;
                }
                node(&computed, None, &mut buffer, out)?;
            }
        }
        // Written: the weights' pages of a mapped input need not stay resident.
        for value in node_def.attr.values() {
            if let Some(Value::Tensor(tensor)) = &value.value {
                crate::pages::release(&tensor.tensor_content);
            }
        }
    }
    // The library from where it is, not from a copy: a large one costs about as much memory
    // as the nodes.
    if let Some(library) = &graph.library {
        library.function.iter().try_for_each(function_backed)?;
        buffer.clear();
        message::encode(2, library, &mut buffer);
        out.write_all(&buffer)?;
    }
    let rest = GraphDef {
        node: Vec::new(),
        library: None,
        version: graph.version,
        versions: graph.versions.clone(),
        debug_info: graph.debug_info.clone(),
    };
    out.write_all(&rest.encode_to_vec())
}

/// Nodes the writer checks with one look at the input's length.
const CHECKED_TOGETHER: usize = 256;

/// An error if bytes `nodes` hold (tensor contents, strings) lie in a mapped input that no
/// longer holds them (see [`crate::pages::check_backed`]): they are checked before they are
/// read, so that a truncated input is an error rather than a fault. The error names the first
/// node whose bytes are gone.
pub fn check_backed<'a>(nodes: impl Iterator<Item = &'a NodeDef> + Clone) -> io::Result<()> {
    let mut slices = Vec::new();
    for node in nodes.clone() {
        node.attr.values().for_each(|v| attr_slices(v, &mut slices));
    }
    let Err(error) = crate::pages::check_backed(slices) else {
        return Ok(());
    };
    // Which node: its own bytes alone fail the check.
    let culprit = nodes.into_iter().find(|node| {
        let mut own = Vec::new();
        node.attr.values().for_each(|v| attr_slices(v, &mut own));
        crate::pages::check_backed(own).is_err()
    });
    Err(match culprit {
        Some(node) => io::Error::new(error.kind(), format!("node '{}': {error}", node.name)),
        None => error,
    })
}

/// [`check_backed`] of every node and attribute of a library function.
pub fn function_backed(function: &FunctionDef) -> io::Result<()> {
    let mut slices = Vec::new();
    let defaults = function
        .signature
        .iter()
        .flat_map(|s| &s.attr)
        .flat_map(|a| a.default_value.iter().chain(&a.allowed_values));
    let attrs = function
        .attr
        .values()
        .chain(function.arg_attr.values().flat_map(|a| a.attr.values()));
    defaults
        .chain(attrs)
        .for_each(|v| attr_slices(v, &mut slices));
    crate::pages::check_backed(slices)
        .and_then(|()| check_backed(function.node_def.iter()))
        .map_err(|e| {
            let name = function.signature.as_ref().map_or("", |s| s.name.as_str());
            io::Error::new(e.kind(), format!("function '{name}': {e}"))
        })
}

/// The byte fields of an attribute value (strings, tensor contents), into `slices`.
fn attr_slices<'a>(value: &'a AttrValue, slices: &mut Vec<&'a [u8]>) {
    match &value.value {
        Some(Value::S(s)) => slices.push(s),
        Some(Value::Tensor(tensor)) => tensor_slices(tensor, slices),
        Some(Value::List(list)) => {
            slices.extend(list.s.iter().map(|s| &s[..]));
            list.tensor.iter().for_each(|t| tensor_slices(t, slices));
            for func in &list.func {
                func.attr.values().for_each(|v| attr_slices(v, slices));
            }
        }
        Some(Value::Func(func)) => func.attr.values().for_each(|v| attr_slices(v, slices)),
        _ => {}
    }
}

fn tensor_slices<'a>(tensor: &'a TensorProto, slices: &mut Vec<&'a [u8]>) {
    slices.push(&tensor.tensor_content);
    slices.push(&tensor.float8_val);
    slices.extend(tensor.string_val.iter().map(|s| &s[..]));
    for variant in &tensor.variant_val {
        slices.push(&variant.metadata);
        variant
            .tensors
            .iter()
            .for_each(|t| tensor_slices(t, slices));
    }
}

fn value_attr(node: &NodeDef) -> &AttrValue {
    static EMPTY: AttrValue = AttrValue { value: None };
    node.attr.get("value").unwrap_or(&EMPTY)
}

/// One node as GraphDef field 1. `buffer` is scratch space kept between nodes. `late`: the
/// late weight the node's `value` holds (its content is computed as it is written, through
/// the scratch buffer), when that value is streamed.
fn node(
    node: &NodeDef,
    mut late: Option<(&ScaledWeight, &mut crate::late_weights::ChunkBuffers)>,
    buffer: &mut Vec<u8>,
    out: &mut impl Write,
) -> io::Result<()> {
    buffer.clear();
    // Cheap test first; `streamed` decides per attribute below (the manual encoding is exact
    // either way).
    let large = |value: &AttrValue| matches!(&value.value, Some(Value::Tensor(t)) if t.tensor_content.len() >= STREAMED_CONTENT);
    if !node.attr.values().any(large) {
        message::encode(1, node, buffer);
        return out.write_all(buffer);
    }
    encode_key(1, WireType::LengthDelimited, buffer);
    encode_varint(node.encoded_len() as u64, buffer);
    // Fields 1 to 4, skipped when empty as prost does for proto3 scalars.
    if !node.name.is_empty() {
        string::encode(1, &node.name, buffer);
    }
    if !node.op.is_empty() {
        string::encode(2, &node.op, buffer);
    }
    string::encode_repeated(3, &node.input, buffer);
    if !node.device.is_empty() {
        string::encode(4, &node.device, buffer);
    }
    // Field 5, one map entry per attribute in key order. An entry leaves out a default key
    // or value, as prost's map encoding does.
    let empty = AttrValue::default();
    for (key, value) in &node.attr {
        let key_len = if key.is_empty() {
            0
        } else {
            string::encoded_len(1, key)
        };
        let value_len = if *value == empty {
            0
        } else {
            message::encoded_len(2, value)
        };
        encode_key(5, WireType::LengthDelimited, buffer);
        encode_varint((key_len + value_len) as u64, buffer);
        if key_len > 0 {
            string::encode(1, key, buffer);
        }
        match streamed(value) {
            Some((tensor, head)) => {
                // AttrValue { tensor (8): TensorProto { fields 1-3, tensor_content (4) } }.
                encode_key(2, WireType::LengthDelimited, buffer);
                encode_varint(value.encoded_len() as u64, buffer);
                encode_key(8, WireType::LengthDelimited, buffer);
                encode_varint(tensor.encoded_len() as u64, buffer);
                head.encode_raw(buffer);
                encode_key(4, WireType::LengthDelimited, buffer);
                encode_varint(tensor.tensor_content.len() as u64, buffer);
                out.write_all(buffer)?;
                buffer.clear();
                match late.as_mut().filter(|_| key == "value") {
                    Some((weight, scratch)) => weight.write_to(&node.name, out, scratch)?,
                    None => {
                        crate::pages::populate(&tensor.tensor_content);
                        out.write_all(&tensor.tensor_content)?;
                    }
                }
            }
            None if value_len > 0 => message::encode(2, value, buffer),
            None => {}
        }
    }
    if let Some(info) = &node.experimental_debug_info {
        message::encode(6, info, buffer);
    }
    if let Some(full_type) = &node.experimental_type {
        message::encode(7, full_type, buffer);
    }
    out.write_all(buffer)
}

/// The tensor of an attribute whose content is written on its own, with its fields before
/// `tensor_content`: only when the content is large and no field after it is set, so the
/// content ends the tensor's encoding.
fn streamed(value: &AttrValue) -> Option<(&TensorProto, TensorProto)> {
    let Some(Value::Tensor(tensor)) = &value.value else {
        return None;
    };
    let content = tensor.tensor_content.len();
    if content < STREAMED_CONTENT {
        return None;
    }
    let head = TensorProto {
        dtype: tensor.dtype,
        tensor_shape: tensor.tensor_shape.clone(),
        version_number: tensor.version_number,
        ..TensorProto::default()
    };
    // Lengths add up field by field: equality means every later field is empty.
    let content_field = 1 + encoded_len_varint(content as u64) + content;
    (head.encoded_len() + content_field == tensor.encoded_len()).then_some((tensor, head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{tensor_shape_proto, TensorShapeProto};

    fn tensor(content_len: usize, float_val: Vec<f32>) -> AttrValue {
        AttrValue {
            value: Some(Value::Tensor(Box::new(TensorProto {
                dtype: 1,
                tensor_shape: Some(TensorShapeProto {
                    dim: vec![tensor_shape_proto::Dim {
                        size: (content_len / 4) as i64,
                        name: String::new(),
                    }],
                    unknown_rank: false,
                }),
                version_number: 3,
                tensor_content: (0..content_len).map(|i| (i % 251) as u8).collect(),
                float_val,
                ..TensorProto::default()
            }))),
        }
    }

    /// Writes that remember how they were split, to tell streamed contents from copied ones.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn streams_like_prost(graph_def: &GraphDef) -> Writes {
        let mut writes = Writes::default();
        graph(graph_def, &mut writes).expect("writing to memory");
        assert_eq!(writes.0.concat(), graph_def.encode_to_vec());
        writes
    }

    #[test]
    fn the_bytes_are_prosts_whatever_the_node_holds() {
        let large = STREAMED_CONTENT + 12;
        let mut weights = NodeDef {
            name: "w".into(),
            op: "Const".into(),
            input: vec!["^a".into(), "b:1".into()],
            device: "/cpu:0".into(),
            experimental_debug_info: Some(crate::proto::node_def::ExperimentalDebugInfo {
                original_node_names: vec!["orig".into()],
                original_func_names: Vec::new(),
            }),
            ..NodeDef::default()
        };
        weights
            .attr
            .insert("value".into(), tensor(large, Vec::new()));
        weights
            .attr
            .insert("a_small".into(), tensor(16, Vec::new()));
        weights
            .attr
            .insert("z_large".into(), tensor(large * 2, Vec::new()));
        weights.attr.insert("empty".into(), AttrValue::default());
        weights
            .attr
            .insert(String::new(), tensor(large, Vec::new()));
        // A later field set: the tensor cannot end with its content, so it is not streamed.
        weights
            .attr
            .insert("typed_too".into(), tensor(large, vec![1.0, 2.0]));
        let plain = NodeDef {
            name: "plain".into(),
            op: "Add".into(),
            ..NodeDef::default()
        };
        let graph_def = GraphDef {
            node: vec![plain, weights, NodeDef::default()],
            version: 7,
            ..GraphDef::default()
        };
        let writes = streams_like_prost(&graph_def);
        // The three streamable contents went out as writes of their own, untouched.
        let streamed = writes.0.iter().filter(|w| w.len() >= large).count();
        assert_eq!(
            streamed,
            3 + 1,
            "three contents alone, the typed tensor inside its entry"
        );
    }

    #[test]
    fn a_graph_without_large_tensors_is_one_write_per_node() {
        let graph_def = GraphDef {
            node: (0..3)
                .map(|i| NodeDef {
                    name: format!("n{i}"),
                    op: "Const".into(),
                    attr: [("value".to_string(), tensor(64, Vec::new()))].into(),
                    ..NodeDef::default()
                })
                .collect(),
            version: 1,
            ..GraphDef::default()
        };
        let writes = streams_like_prost(&graph_def);
        assert_eq!(writes.0.len(), 3 + 1, "three nodes and the version");
    }
}
