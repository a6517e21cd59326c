//! TF2 SavedModel freezing: pick the MetaGraph by tag set and the signature by key, replace
//! the variables the signature's function captures with their checkpoint values (mapped through
//! the SavedObjectGraph's bound inputs and the checkpoint's object graph), inline the function
//! calls, turn variable reads into plain tensors, and name inputs and outputs after the
//! signature's keys.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use prost::Message;

use super::checkpoint::Checkpoint;
use super::tf1::{
    check_declared, freeze_graph, reachable, rewrite_resource_reads, variable_to_const,
    FrozenConstants,
};
use super::FreezeError;
use crate::graph::functions::EncodedLibrary;
use crate::graph::inline;
use crate::graph::{self, InputRef};
use crate::proto::{
    attr_value, saved_object, AttrValue, FunctionDef, GraphDebugInfo, GraphDef, MetaGraphDef,
    NodeDef, SavedModel, SavedObjectGraph, SignatureDef, TrackableObjectGraph, VersionDef,
};
use crate::rewrite::order::sort_by_execution_order;
use crate::rewrite::strip::{strip_unused, StripOptions};
use crate::tensor::Data;

/// Which MetaGraph and signature to freeze.
#[derive(Debug, Clone)]
pub struct SavedModelOptions {
    /// Comma-separated tags, `serve` by default.
    pub tag_set: String,
    /// Signature key, `serving_default` by default.
    pub signature: String,
}

impl Default for SavedModelOptions {
    fn default() -> Self {
        SavedModelOptions {
            tag_set: "serve".into(),
            signature: "serving_default".into(),
        }
    }
}

/// A frozen signature: the graph and its input and output node names (the signature's keys).
#[derive(Debug, Clone)]
pub struct Frozen {
    pub graph: GraphDef,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// The shape the signature declares for each input and output, by node name: -1 for an
    /// unknown dimension, `None` for an unknown rank.
    pub shapes: BTreeMap<String, Option<Vec<i64>>>,
}

/// What freezing reads of a SavedModel (declared like `tensorflow.SavedModel` and its parts,
/// with only the fields used), the function library left encoded: a Keras SavedModel's
/// library holds its save, restore and training functions besides the few a signature calls,
/// and decoding them all cost more than the rest of the file.
#[derive(Clone, PartialEq, Message)]
struct SavedModelToFreeze {
    #[prost(message, repeated, tag = "2")]
    meta_graphs: Vec<MetaGraphToFreeze>,
}

#[derive(Clone, PartialEq, Message)]
struct MetaGraphToFreeze {
    #[prost(message, optional, tag = "1")]
    meta_info_def: Option<MetaInfoTags>,
    #[prost(message, optional, tag = "2")]
    graph_def: Option<GraphToFreeze>,
    #[prost(btree_map = "string, message", tag = "5")]
    signature_def: BTreeMap<String, SignatureDef>,
    #[prost(message, optional, tag = "7")]
    object_graph_def: Option<SavedObjectGraph>,
}

#[derive(Clone, PartialEq, Message)]
struct MetaInfoTags {
    #[prost(string, repeated, tag = "4")]
    tags: Vec<String>,
}

#[derive(Clone, PartialEq, Message)]
struct GraphToFreeze {
    #[prost(message, repeated, tag = "1")]
    node: Vec<NodeDef>,
    #[prost(message, optional, tag = "2")]
    library: Option<EncodedLibrary>,
    #[prost(int32, tag = "3")]
    version: i32,
    #[prost(message, optional, tag = "4")]
    versions: Option<VersionDef>,
    #[prost(message, optional, tag = "5")]
    debug_info: Option<GraphDebugInfo>,
}

fn read_saved_model_to_freeze(dir: &Path) -> Result<SavedModelToFreeze, FreezeError> {
    let path = dir.join("saved_model.pb");
    let bytes =
        crate::io::read_regular(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    crate::io::decode_partly(
        bytes.into(),
        &path,
        "tensorflow.SavedModel",
        &[EncodedLibrary::OPAQUE],
    )
    .map_err(|e| fail(e.to_string()))
}

/// The checkpoint key of TF2's object graph; TF1 checkpoints have none.
const OBJECT_GRAPH_KEY: &str = "_CHECKPOINTABLE_OBJECT_GRAPH";

fn fail(message: impl Into<String>) -> FreezeError {
    FreezeError::SavedModel(message.into())
}

/// Reads `DIR/saved_model.pb`.
pub fn read_saved_model(dir: &Path) -> Result<SavedModel, FreezeError> {
    let path = dir.join("saved_model.pb");
    let bytes =
        crate::io::read_regular(&path).map_err(|e| fail(format!("{}: {e}", path.display())))?;
    crate::io::decode_message::<SavedModel>(bytes.into(), &path).map_err(|e| fail(e.to_string()))
}

/// The MetaGraph whose tags are exactly `tag_set`.
pub fn meta_graph<'a>(
    model: &'a SavedModel,
    tag_set: &str,
) -> Result<&'a MetaGraphDef, FreezeError> {
    let tags = model
        .meta_graphs
        .iter()
        .map(|m| m.meta_info_def.as_ref().map_or(&[][..], |i| &i.tags[..]));
    Ok(&model.meta_graphs[tag_set_position(tags, tag_set)?])
}

/// The position of the tag list that is exactly `tag_set`'s tags, in any order.
fn tag_set_position<'a>(
    tag_lists: impl Iterator<Item = &'a [String]> + Clone,
    tag_set: &str,
) -> Result<usize, FreezeError> {
    let mut wanted: Vec<&str> = tag_set
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    wanted.sort_unstable();
    let sorted = |tags: &'a [String]| {
        let mut tags: Vec<&str> = tags.iter().map(String::as_str).collect();
        tags.sort_unstable();
        tags
    };
    tag_lists
        .clone()
        .position(|tags| sorted(tags) == wanted)
        .ok_or_else(|| {
            let available: Vec<String> = tag_lists.map(|t| sorted(t).join(",")).collect();
            fail(format!(
                "no MetaGraph with tags '{tag_set}'; available: {}",
                available.join(" | ")
            ))
        })
}

fn signature<'a>(
    signatures: &'a BTreeMap<String, SignatureDef>,
    key: &str,
) -> Result<&'a SignatureDef, FreezeError> {
    signatures.get(key).ok_or_else(|| {
        let keys: Vec<&str> = signatures
            .keys()
            .map(String::as_str)
            .filter(|k| !k.starts_with("__"))
            .collect();
        fail(format!(
            "no signature '{key}'; available: {}",
            keys.join(", ")
        ))
    })
}

/// The tensor each of a signature's `inputs` or `outputs` (`what`) names, by key; an error
/// for one that is not a plain tensor (a sparse or composite one) or whose key cannot name a
/// node (the frozen graph's inputs and outputs are named after the keys).
fn plain_tensors<'a>(
    signature: &str,
    what: &str,
    tensors: &'a BTreeMap<String, crate::proto::TensorInfo>,
) -> Result<BTreeMap<&'a String, &'a str>, FreezeError> {
    use crate::proto::tensor_info::Encoding;
    tensors
        .iter()
        .map(|(key, info)| {
            let kind = match &info.encoding {
                Some(Encoding::Name(name)) => return Ok((key, name.as_str())),
                Some(Encoding::CooSparse(_)) => "a sparse tensor",
                Some(Encoding::CompositeTensor(_)) => "a composite tensor",
                None => "no tensor",
            };
            Err(fail(format!(
                "signature '{signature}' {what} '{key}' is {kind}; only plain tensors can be \
                 frozen"
            )))
        })
        .map(|entry| {
            let (key, tensor) = entry?;
            if key.is_empty() || InputRef::parse(key).node != key.as_str() {
                return Err(fail(format!(
                    "signature '{signature}' {what} '{key}': the key is not a node name, which \
                     the frozen {what} would take"
                )));
            }
            Ok((key, tensor))
        })
        .collect()
}

fn tensor_name(info: &crate::proto::TensorInfo) -> Option<&str> {
    match info.encoding.as_ref()? {
        crate::proto::tensor_info::Encoding::Name(name) => Some(name),
        _ => None,
    }
}

/// Checkpoint key of each object-graph node that is a variable.
fn variable_keys(
    checkpoint: &Checkpoint,
    prefix: &Path,
) -> Result<HashMap<usize, String>, FreezeError> {
    let tensor = checkpoint.read(OBJECT_GRAPH_KEY)?;
    let Data::Str(values) = tensor.data() else {
        return Err(fail("the checkpoint's object graph is not a string"));
    };
    let bytes = values
        .iter()
        .next()
        .ok_or_else(|| fail("empty object graph"))?;
    // Measured and charged like any message read from a file: a few bytes can declare
    // millions of empty nodes.
    let source = PathBuf::from(format!(
        "{}.data-* (checkpoint entry {OBJECT_GRAPH_KEY})",
        prefix.display()
    ));
    let graph = crate::io::decode_message::<TrackableObjectGraph>(bytes.clone(), &source)
        .map_err(|e| fail(e.to_string()))?;
    Ok(graph
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, node)| {
            node.attributes
                .iter()
                .find(|a| a.name == "VARIABLE_VALUE")
                .map(|a| (i, a.checkpoint_key.clone()))
        })
        .collect())
}

/// Freezes one signature of the SavedModel in `dir`. Runs under the budget entered on this
/// thread, else under a default one for the directory's model files; the frozen Consts are
/// charged to it whole, even where several captures are bound to one checkpoint tensor.
pub fn freeze_saved_model(dir: &Path, options: &SavedModelOptions) -> Result<Frozen, FreezeError> {
    crate::budget::enter_or_default(
        || crate::io::input_size(dir),
        || freeze_saved_model_in(dir, options),
    )
}

fn freeze_saved_model_in(dir: &Path, options: &SavedModelOptions) -> Result<Frozen, FreezeError> {
    let mut model = read_saved_model_to_freeze(dir)?;
    let tags = model
        .meta_graphs
        .iter()
        .map(|m| m.meta_info_def.as_ref().map_or(&[][..], |i| &i.tags[..]));
    let position = tag_set_position(tags, &options.tag_set)?;
    // The graph is moved out of the MetaGraph, not copied.
    let meta = &mut model.meta_graphs[position];
    let GraphToFreeze {
        node,
        library: encoded_library,
        version,
        versions,
        debug_info,
    } = meta
        .graph_def
        .take()
        .ok_or_else(|| fail("the MetaGraph has no graph"))?;
    let mut graph = GraphDef {
        node,
        library: None,
        version,
        versions,
        debug_info,
    };
    // The functions a set of nodes reaches, decoded (budgeted like any message) on demand.
    let encoded_library = encoded_library.unwrap_or_default();
    let model_path = dir.join("saved_model.pb");
    let functions_of = |nodes: &[NodeDef]| {
        encoded_library.decode_reachable(nodes, |bytes| {
            crate::io::decode_message::<FunctionDef>(bytes, &model_path)
                .map_err(|e| fail(e.to_string()))
        })
    };
    let meta = &model.meta_graphs[position];
    let sig = signature(&meta.signature_def, &options.signature)?;
    // Like TensorFlow's loader, a SavedModel without a variables index (TF1's Builder leaves
    // an empty variables/ for a graph without variables) restores nothing; a variable the
    // graph needs is then reported missing by name.
    let prefix = variables_prefix(dir);
    let index = PathBuf::from(format!("{}.index", prefix.display()));
    let checkpoint = if index.symlink_metadata().is_ok() {
        Checkpoint::open(&prefix)?
    } else {
        Checkpoint::empty(&prefix)
    };

    // Replace the variables each signature call captures with their values.
    let outputs = plain_tensors(&options.signature, "output", &sig.outputs)?;
    let inputs = plain_tensors(&options.signature, "input", &sig.inputs)?;
    let index = graph::owned_name_index(&graph);
    let mut frozen_handles: HashMap<String, i32> = HashMap::new();
    let mut constants = FrozenConstants::default();
    if checkpoint.entry(OBJECT_GRAPH_KEY).is_some() {
        let keys = variable_keys(&checkpoint, &prefix)?;
        let object_graph = meta.object_graph_def.as_ref();
        // Each call once, however many outputs it gives: binding its captures reads all its
        // inputs.
        let calls: std::collections::BTreeSet<usize> = outputs
            .values()
            .filter_map(|t| index.get(graph::node_name(t)).copied())
            .collect();
        for call in calls {
            let node = graph.node[call].clone();
            let Some(attr_value::Value::Func(f)) =
                node.attr.get("f").and_then(|a| a.value.as_ref())
            else {
                continue;
            };
            let bound = object_graph
                .and_then(|o| o.concrete_functions.get(&f.name))
                .map(|c| c.bound_inputs.clone())
                .unwrap_or_default();
            let data = graph::edit::data_inputs(&node);
            // Captures are the call's last inputs; more of them than inputs cannot be matched.
            let Some(first_captured) = data.len().checked_sub(bound.len()) else {
                return Err(fail(format!(
                    "the call '{}' of '{}' has {} inputs, but its function records {} captured ones",
                    node.name,
                    f.name,
                    data.len(),
                    bound.len()
                )));
            };
            for (position, &object) in (first_captured..data.len()).zip(&bound) {
                let handle = graph::node_name(data[position]).to_string();
                if frozen_handles.contains_key(&handle) {
                    continue;
                }
                let kind = object_graph
                    .zip(usize::try_from(object).ok())
                    .and_then(|(o, i)| o.nodes.get(i))
                    .and_then(|n| n.kind.as_ref());
                match kind {
                    // Variables (and objects the SavedObjectGraph does not describe) are read
                    // from the checkpoint below.
                    Some(saved_object::Kind::Variable(_)) | None => {}
                    // A captured constant tensor (a Keras Rescaling or Normalization layer's
                    // mean and variance, say) is frozen to its value, the Const the object
                    // names, as TensorFlow's loader and convert_variables_to_constants_v2 do.
                    Some(saved_object::Kind::Constant(constant)) => {
                        let source = captured_constant(&graph, &index, &constant.operation)
                            .map_err(|why| {
                                fail(format!(
                                    "captured constant '{handle}' of '{}' (object {object}): {why}",
                                    f.name
                                ))
                            })?;
                        if source != handle {
                            // The object graph, not the call's input, says which tensor
                            // TensorFlow binds; follow it.
                            if let Some(call_input) = graph.node[call]
                                .input
                                .iter_mut()
                                .filter(|i| !i.starts_with('^'))
                                .nth(position)
                            {
                                *call_input = source;
                            }
                        }
                        continue;
                    }
                    Some(other) => {
                        return Err(fail(format!(
                            "captured input '{handle}' of '{}' is a {} (object {object} of the \
                             SavedObjectGraph); only variables and constants can be frozen",
                            f.name,
                            kind_name(other)
                        )));
                    }
                }
                let Some(key) = usize::try_from(object).ok().and_then(|o| keys.get(&o)) else {
                    return Err(fail(format!("captured input '{handle}' of '{}' is not a variable in the checkpoint's object graph", f.name)));
                };
                let value = checkpoint.read_proto(key)?;
                let &h = index
                    .get(&handle)
                    .ok_or_else(|| fail(format!("no node '{handle}'")))?;
                if graph.node[h].op != "VarHandleOp" {
                    return Err(fail(format!(
                        "captured input '{handle}' is a {}, not a variable",
                        graph.node[h].op
                    )));
                }
                // Captures of many calls, or many objects, may name one checkpoint tensor:
                // each Const is charged whole.
                check_declared(&graph.node[h], key, &value)?;
                constants.charge(&checkpoint, &handle, key, &value)?;
                frozen_handles.insert(handle, value.dtype);
                variable_to_const(&mut graph.node[h], value);
            }
        }
    } else {
        // A TF1 SavedModel: plain variables in the graph, restored by its Saver.
        let wanted: Vec<String> = outputs.values().map(|t| t.to_string()).collect();
        graph = freeze_graph(&graph, &checkpoint, &wanted)?;
    }

    // Keep what the outputs need, inline every call, and follow the frozen handles through.
    let output_tensors: Vec<String> = outputs.values().map(|t| t.to_string()).collect();
    let keep = reachable(&graph, &output_tensors)?;
    let nodes = std::mem::take(&mut graph.node);
    graph.node = nodes
        .into_iter()
        .zip(keep)
        .filter(|(_, k)| *k)
        .map(|(n, _)| n)
        .collect();
    // Only now, with the graph cut to what the outputs need, are its functions decoded.
    graph.library = functions_of(&graph.node)?;
    inline::inline_all_calls(&mut graph, inline::Limits::default())
        .map_err(|e| fail(e.to_string()))?;
    propagate_handles(&mut graph, &mut frozen_handles);
    rewrite_resource_reads(&mut graph, &frozen_handles);

    // Inputs and outputs take the signature's names: the renames are worked out one after
    // another on the set of names (a key may take a name an earlier rename freed), then done
    // in one pass over the graph.
    let mut input_names = Vec::new();
    // Each current name, with the name its node had before the renames.
    let mut current: HashMap<String, String> = graph
        .node
        .iter()
        .map(|n| (n.name.clone(), n.name.clone()))
        .collect();
    let mut renames = HashMap::new();
    // The input key of each node an input names.
    let mut input_nodes: HashMap<&str, &String> = HashMap::new();
    for (key, tensor) in &inputs {
        let name = graph::node_name(tensor);
        if !index.contains_key(name) {
            return Err(fail(format!(
                "signature '{}' input '{key}' names '{tensor}', which is not a node of the \
                 graph",
                options.signature
            )));
        }
        if let Some(other) = input_nodes.insert(name, key) {
            return Err(fail(format!(
                "signature '{}' inputs '{other}' and '{key}' both name node '{name}'",
                options.signature
            )));
        }
        if current.contains_key(*key) && name != **key {
            return Err(fail(format!(
                "cannot rename input '{name}' to '{key}': the name is taken"
            )));
        }
        match current.remove(name) {
            Some(original) => {
                renames.insert(original.clone(), (*key).clone());
                current.insert((*key).clone(), original);
            }
            // Pruned above: the outputs do not need it.
            None => {
                current.insert((*key).clone(), (*key).clone());
            }
        }
        input_names.push((*key).clone());
    }
    renames.retain(|old, new| old != new);
    crate::graph::edit::rename_nodes(&mut graph, &renames);
    let mut output_names = Vec::new();
    for (key, tensor) in &outputs {
        // A tensor that is its node's first output, the node bearing the key's name (a TF1
        // `y` under the key `y`), is the output as it is.
        let source = InputRef::parse(tensor);
        if source.node == key.as_str()
            && source.port == 0
            && !source.control
            && current.get(*key).is_some_and(|original| original == *key)
        {
            output_names.push((*key).clone());
            continue;
        }
        if current.contains_key(*key) {
            return Err(fail(format!(
                "cannot name output '{key}': a node of that name exists"
            )));
        }
        let dtype = sig.outputs.get(*key).map_or(1, |i| i.dtype);
        let mut identity = NodeDef {
            name: (*key).clone(),
            op: "Identity".into(),
            // An output that is also an input reads the input under its new name.
            input: vec![match renames.get(graph::node_name(tensor)) {
                Some(new) => InputRef {
                    node: new,
                    ..InputRef::parse(tensor)
                }
                .to_string(),
                None => (*tensor).to_string(),
            }],
            ..Default::default()
        };
        identity.attr.insert(
            "T".into(),
            AttrValue {
                value: Some(attr_value::Value::Type(dtype)),
            },
        );
        graph.node.push(identity);
        current.insert((*key).clone(), (*key).clone());
        output_names.push((*key).clone());
    }
    let present = graph::owned_name_index(&graph);
    let strip = StripOptions {
        inputs: input_names
            .iter()
            .filter(|name| present.contains_key(name.as_str()))
            .cloned()
            .collect(),
        outputs: output_names.clone(),
        ..Default::default()
    };
    strip_unused(&mut graph, &strip).map_err(|e| fail(e.to_string()))?;
    // Inputs the outputs do not need, pruned above or by the strip, are Placeholders again:
    // TensorFlow's frozen signature keeps every input.
    let present = graph::owned_name_index(&graph);
    for (key, info) in &sig.inputs {
        if present.contains_key(key.as_str()) {
            continue;
        }
        graph.node.push(crate::graph::edit::placeholder(
            key.clone(),
            info.dtype,
            info.tensor_shape.clone(),
        ));
    }
    sort_by_execution_order(&mut graph).map_err(|e| fail(e.to_string()))?;
    // Functional control flow (While, If, Case) keeps calling library functions; the rest of
    // the library (the SavedModel's save and restore functions, the inlined calls) goes.
    crate::graph::functions::prune_library(&mut graph);
    let shapes = sig
        .inputs
        .iter()
        .chain(&sig.outputs)
        .map(|(key, info)| {
            let dims = info
                .tensor_shape
                .as_ref()
                .and_then(crate::dtype::shape_dims);
            (key.clone(), dims)
        })
        .collect();
    Ok(Frozen {
        graph,
        inputs: input_names,
        outputs: output_names,
        shapes,
    })
}

/// The Const node a captured SavedConstant names (its `operation`), or why it cannot be used.
fn captured_constant(
    graph: &GraphDef,
    index: &graph::NameMap<String, usize>,
    operation: &str,
) -> Result<String, String> {
    let name = graph::node_name(operation);
    let &i = index
        .get(name)
        .ok_or_else(|| format!("the graph has no node '{name}'"))?;
    let node = &graph.node[i];
    if node.op != "Const" {
        return Err(format!("'{name}' is a {}, not a Const", node.op));
    }
    if !node.attr.contains_key("value") {
        return Err(format!("Const '{name}' has no value"));
    }
    Ok(name.to_string())
}

/// The SavedObject kind's name in saved_object_graph.proto, for messages.
fn kind_name(kind: &saved_object::Kind) -> &'static str {
    match kind {
        saved_object::Kind::UserObject(_) => "user_object",
        saved_object::Kind::Asset(_) => "asset",
        saved_object::Kind::Function(_) => "function",
        saved_object::Kind::Variable(_) => "variable",
        saved_object::Kind::BareConcreteFunction(_) => "bare_concrete_function",
        saved_object::Kind::Constant(_) => "constant",
        saved_object::Kind::Resource(_) => "resource",
        saved_object::Kind::CapturedTensor(_) => "captured_tensor",
    }
}

/// `DIR/variables/variables`.
pub fn variables_prefix(dir: &Path) -> PathBuf {
    dir.join("variables").join("variables")
}

/// Identities of frozen handles (left by inlining, typed as resources) carry the value now.
fn propagate_handles(graph: &mut GraphDef, frozen: &mut HashMap<String, i32>) {
    let order = graph::execution_order(graph).unwrap_or_else(|_| (0..graph.node.len()).collect());
    for i in order {
        let node = &mut graph.node[i];
        if node.op != "Identity" {
            continue;
        }
        let Some(source) = node
            .input
            .first()
            .map(|s| InputRef::parse(s).node.to_string())
        else {
            continue;
        };
        if let Some(&dtype) = frozen.get(&source) {
            node.attr.insert(
                "T".into(),
                AttrValue {
                    value: Some(attr_value::Value::Type(dtype)),
                },
            );
            frozen.insert(node.name.clone(), dtype);
        }
    }
}

/// What `graphopt inspect` prints: each MetaGraph's tags, and each signature's method and
/// inputs and outputs with dtype, shape (-1 unknown) and the graph tensor they name. Names from
/// the file are escaped ([`one_line`](crate::error::one_line)): a tag or signature key with a
/// line break or a terminal escape sequence cannot forge or hide lines.
pub fn describe(model: &SavedModel) -> String {
    use crate::error::one_line;
    use std::fmt::Write;
    let mut text = String::new();
    for meta in &model.meta_graphs {
        let tags = meta
            .meta_info_def
            .as_ref()
            .map(|i| i.tags.join(","))
            .unwrap_or_default();
        let _ = writeln!(text, "MetaGraph with tag set '{}':", one_line(&tags));
        let functions = meta
            .graph_def
            .as_ref()
            .and_then(|g| g.library.as_ref())
            .map_or(0, |l| l.function.len());
        let nodes = meta.graph_def.as_ref().map_or(0, |g| g.node.len());
        let _ = writeln!(text, "  graph: {nodes} nodes, {functions} functions");
        for (key, signature) in meta
            .signature_def
            .iter()
            .filter(|(k, _)| !k.starts_with("__"))
        {
            let _ = writeln!(
                text,
                "  signature '{}' (method {}):",
                one_line(key),
                one_line(&signature.method_name)
            );
            for (title, tensors) in [
                ("inputs", &signature.inputs),
                ("outputs", &signature.outputs),
            ] {
                let _ = writeln!(text, "    {title}:");
                for (name, info) in tensors {
                    let shape = match info
                        .tensor_shape
                        .as_ref()
                        .and_then(crate::dtype::shape_dims)
                    {
                        Some(dims) => format!("{dims:?}"),
                        None => "unknown rank".into(),
                    };
                    let _ = writeln!(
                        text,
                        "      {}: {} {shape} ({})",
                        one_line(name),
                        crate::dtype::dtype_name(info.dtype),
                        one_line(tensor_name(info).unwrap_or("composite tensor"))
                    );
                }
            }
        }
    }
    text
}
