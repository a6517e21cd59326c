//! TF1 freezing: a GraphDef with Variable/VariableV2 (or VarHandleOp) nodes plus a checkpoint
//! and the output names give a graph of only what the outputs need, with every variable a
//! Const holding its checkpoint value (the checkpoint key of a TF1 Saver is the variable's
//! node name).

use std::collections::{HashMap, HashSet, VecDeque};

use super::checkpoint::Checkpoint;
use super::FreezeError;
use crate::budget;
use crate::graph::attrs;
use crate::graph::{self, InputRef};
use crate::proto::{attr_value, AttrValue, GraphDef, NodeDef, TensorProto};
use crate::tensor::{base_dtype, Data, Tensor};

const VARIABLE_OPS: &[&str] = &["Variable", "VariableV2", "VarHandleOp"];

/// Nodes the outputs need (data and control inputs followed), in graph order.
pub(crate) fn reachable(graph: &GraphDef, outputs: &[String]) -> Result<Vec<bool>, FreezeError> {
    let index = graph::GraphIndex::new(graph);
    let mut keep = vec![false; graph.node.len()];
    let mut queue = VecDeque::new();
    for output in outputs {
        let name = graph::node_name(output);
        queue.push_back(
            index
                .index_of(name)
                .ok_or_else(|| FreezeError::NoOutput(name.to_string()))?,
        );
    }
    while let Some(i) = queue.pop_front() {
        if std::mem::replace(&mut keep[i], true) {
            continue;
        }
        for input in &graph.node[i].input {
            if let Some(p) = index.index_of(InputRef::parse(input).node) {
                queue.push_back(p);
            }
        }
    }
    Ok(keep)
}

fn type_attr(dtype: i32) -> AttrValue {
    AttrValue {
        value: Some(attr_value::Value::Type(dtype)),
    }
}

/// The bytes of the Consts freezing has made so far, each charged to the [`budget`] as it is
/// made. A frozen Const holds a slice of the checkpoint's shard, not a copy, so variables that
/// all read one checkpoint tensor (VarHandleOps sharing a `shared_name`, Assigns from one
/// restored key, captures bound to one object) would share its bytes in memory; but the
/// frozen graph holds and writes every Const whole, so each is charged in full: 1600 such
/// variables of a 512 KiB tensor are 800 MiB of output from under 1 MB of input. (A value
/// the reader had to copy, a partitioned or string tensor, was charged once more as read.)
#[derive(Debug, Default)]
pub(crate) struct FrozenConstants {
    total: u64,
}

impl FrozenConstants {
    /// Charges the Const that `variable` becomes, holding `value` (tensor `key` of
    /// `checkpoint`); a refusal names the variable, the tensor and the checkpoint.
    pub(crate) fn charge(
        &mut self,
        checkpoint: &Checkpoint,
        variable: &str,
        key: &str,
        value: &TensorProto,
    ) -> Result<(), FreezeError> {
        let strings = value.string_val.iter().fold(0u64, |n, s| {
            n.saturating_add(s.len() as u64)
                .saturating_add(std::mem::size_of::<bytes::Bytes>() as u64)
        });
        let bytes = (value.tensor_content.len() as u64)
            .saturating_add(strings)
            .saturating_add(budget::VALUE_OVERHEAD);
        let total = self.total.saturating_add(bytes);
        budget::alloc(bytes).map_err(|e| FreezeError::TooLarge {
            variable: variable.to_string(),
            key: key.to_string(),
            message: format!(
                "its value from checkpoint {} ({}) would bring the frozen graph's constants to \
                 {}: {e}",
                checkpoint.prefix().display(),
                budget::size(bytes),
                budget::size(total)
            ),
        })?;
        self.total = total;
        Ok(())
    }
}

/// Refuses a checkpoint value (tensor `key`) that the variable `node` cannot hold, as
/// TensorFlow's restore (Assign, AssignVariableOp) refuses it: another dtype, or a shape its
/// declared `shape` does not match (an unknown rank or dimension matches anything; a legacy
/// `Variable`'s scalar shape means unknown).
pub(crate) fn check_declared(
    node: &NodeDef,
    key: &str,
    value: &TensorProto,
) -> Result<(), FreezeError> {
    let found: Vec<i64> = value
        .tensor_shape
        .as_ref()
        .map_or_else(Vec::new, |s| s.dim.iter().map(|d| d.size).collect());
    let declared_dtype = attrs::dtype(node, "dtype").map(|d| base_dtype(d as i32));
    let declared_shape = attrs::shape(node, "shape")
        .and_then(crate::dtype::shape_dims)
        .filter(|dims| !(node.op == "Variable" && dims.is_empty()));
    let dtype_fits = declared_dtype.is_none_or(|d| d == value.dtype);
    let shape_fits = declared_shape.as_ref().is_none_or(|dims| {
        dims.len() == found.len() && dims.iter().zip(&found).all(|(&d, &f)| d < 0 || d == f)
    });
    if dtype_fits && shape_fits {
        return Ok(());
    }
    let describe = |dtype: i32, dims: Option<&[i64]>| match dims {
        Some(dims) => format!("{} {dims:?}", crate::dtype::dtype_name(dtype)),
        None => format!("{} of any shape", crate::dtype::dtype_name(dtype)),
    };
    Err(FreezeError::Mismatch {
        variable: node.name.clone(),
        key: key.to_string(),
        found: describe(value.dtype, Some(&found)),
        declared: describe(
            declared_dtype.unwrap_or(value.dtype),
            declared_shape.as_deref(),
        ),
    })
}

/// Turns the variable node `node` into a Const holding `value`.
pub(crate) fn variable_to_const(node: &mut NodeDef, value: TensorProto) {
    let device = std::mem::take(&mut node.device);
    *node = NodeDef {
        name: std::mem::take(&mut node.name),
        op: "Const".into(),
        device,
        ..Default::default()
    };
    node.attr.insert("dtype".into(), type_attr(value.dtype));
    node.attr.insert(
        "value".into(),
        AttrValue {
            value: Some(attr_value::Value::Tensor(Box::new(value))),
        },
    );
}

/// Rewrites readers of frozen resource handles: ReadVariableOp becomes Identity, and
/// ResourceGather becomes GatherV2 on axis 0.
pub(crate) fn rewrite_resource_reads(graph: &mut GraphDef, frozen: &HashMap<String, i32>) {
    let mut axes = Vec::new();
    for node in &mut graph.node {
        let Some(handle) = node
            .input
            .first()
            .map(|i| InputRef::parse(i).node.to_string())
        else {
            continue;
        };
        let Some(&dtype) = frozen.get(&handle) else {
            continue;
        };
        match node.op.as_str() {
            "ReadVariableOp" => {
                node.op = "Identity".into();
                node.attr.clear();
                node.attr.insert("T".into(), type_attr(dtype));
            }
            "ResourceGather" if attrs::int(node, "batch_dims").unwrap_or(0) == 0 => {
                let indices_type = node
                    .attr
                    .get("Tindices")
                    .cloned()
                    .unwrap_or_else(|| type_attr(crate::proto::DataType::DtInt32 as i32));
                let axis = format!("{}/axis", node.name);
                node.op = "GatherV2".into();
                node.attr.clear();
                node.attr.insert("Tparams".into(), type_attr(dtype));
                node.attr.insert("Tindices".into(), indices_type);
                node.attr.insert(
                    "Taxis".into(),
                    type_attr(crate::proto::DataType::DtInt32 as i32),
                );
                node.attr.insert(
                    "batch_dims".into(),
                    AttrValue {
                        value: Some(attr_value::Value::I(0)),
                    },
                );
                let data_count = node.input.iter().filter(|i| !i.starts_with('^')).count();
                node.input.insert(data_count, axis.clone());
                axes.push(crate::graph::edit::const_node(
                    axis,
                    node.device.clone(),
                    &Tensor::from_data(Data::I32(ndarray::arr0(0).into_dyn())),
                ));
            }
            _ => {}
        }
    }
    graph.node.extend(axes);
}

/// The GraphDef inside a `.meta` file (a MetaGraphDef, as `tf.compat.v1.train.Saver` writes).
pub fn read_meta_graph(path: &std::path::Path) -> Result<GraphDef, FreezeError> {
    let bytes =
        crate::io::read_regular(path).map_err(|e| FreezeError::SavedModel(e.to_string()))?;
    let meta = crate::io::decode_message::<crate::proto::MetaGraphDef>(bytes.into(), path)
        .map_err(|e| FreezeError::SavedModel(e.without_path()))?;
    meta.graph_def
        .ok_or_else(|| FreezeError::SavedModel("the MetaGraphDef holds no graph".into()))
}

/// Identities followed from an Assign back to the RestoreV2 it restores from: TensorFlow's
/// Saver puts one there for a resource variable.
const RESTORE_IDENTITIES: usize = 4;

/// A variable's checkpoint key and, for a part of a partitioned variable, the part's extents.
type RestoreSource = (String, Vec<(i64, i64)>);

/// Where a Saver restores each variable from: its checkpoint key and, for a part of a
/// partitioned variable, the part's extents. Read, for each Assign, from the RestoreV2 it
/// consumes, directly or through an Identity, and that node's `tensor_names` and
/// `shape_and_slices` Consts: only the strings at the Assign's port, so that many RestoreV2
/// nodes sharing one long list cost nothing each. The strings read are charged as work, the
/// keys kept as memory.
fn restore_sources(graph: &GraphDef) -> Result<HashMap<String, RestoreSource>, FreezeError> {
    let index = graph::GraphIndex::new(graph);
    let strings = |input: Option<&String>| -> Option<&[bytes::Bytes]> {
        let node = index.node(graph::node_name(input?))?;
        Some(&attrs::tensor(node, "value")?.string_val)
    };
    let mut sources = HashMap::new();
    for assign in graph
        .node
        .iter()
        .filter(|n| n.op == "Assign" || n.op == "AssignVariableOp")
    {
        let (Some(variable), Some(value)) = (assign.input.first(), assign.input.get(1)) else {
            continue;
        };
        let mut value = InputRef::parse(value);
        for _ in 0..RESTORE_IDENTITIES {
            match index.node(value.node) {
                Some(node) if node.op == "Identity" && value.port == 0 => {
                    let Some(input) = node.input.first().filter(|i| !i.starts_with('^')) else {
                        break;
                    };
                    value = InputRef::parse(input);
                }
                _ => break,
            }
        }
        let Some(restore) = index.node(value.node).filter(|n| n.op == "RestoreV2") else {
            continue;
        };
        let (Some(names), Some(specs)) =
            (strings(restore.input.get(1)), strings(restore.input.get(2)))
        else {
            continue;
        };
        let Some((port, name)) = usize::try_from(value.port)
            .ok()
            .and_then(|p| Some((p, names.get(p)?)))
        else {
            continue;
        };
        // A single string stands for every tensor (TF's fill shorthand).
        let spec = specs
            .get(port)
            .or(specs.first().filter(|_| specs.len() == 1));
        let cost = (name.len() as u64)
            .saturating_add(spec.map_or(0, |s| s.len() as u64))
            .saturating_add(budget::VALUE_OVERHEAD);
        budget::work(cost)
            .and_then(|()| budget::alloc(cost))
            .map_err(|e| {
                FreezeError::SavedModel(format!(
                    "restoring '{}' ({}): {e}",
                    assign.name, restore.name
                ))
            })?;
        let extents = spec
            .and_then(|s| parse_slice_spec(&String::from_utf8_lossy(s)))
            .unwrap_or_default();
        sources.insert(
            graph::node_name(variable).to_string(),
            (String::from_utf8_lossy(name).into_owned(), extents),
        );
    }
    Ok(sources)
}

/// `shape_and_slices` of a Saver: "" for a whole tensor, else the full shape's dimensions and
/// a slice `start,length:...` (`-` for a whole dimension).
fn parse_slice_spec(spec: &str) -> Option<Vec<(i64, i64)>> {
    let mut tokens: Vec<&str> = spec.split_whitespace().collect();
    let Some(slice) = tokens.pop() else {
        return Some(Vec::new());
    };
    slice
        .split(':')
        .map(|extent| {
            if extent == "-" {
                return Some((0, -1));
            }
            let (start, length) = extent.split_once(',')?;
            Some((start.parse().ok()?, length.parse().ok()?))
        })
        .collect()
}

fn default_key(node: &NodeDef, checkpoint: &Checkpoint) -> String {
    match attrs::string(node, "shared_name") {
        Some(shared)
            if node.op == "VarHandleOp"
                && !shared.is_empty()
                && checkpoint.entry(&shared).is_some() =>
        {
            shared
        }
        _ => node.name.clone(),
    }
}

/// Freezes a TF1 graph: keeps what `outputs` need and replaces each variable with its value
/// from `checkpoint`. Runs under the budget entered on this thread, else under a default one
/// for the graph and the checkpoint's files; the frozen Consts are charged to it whole, even
/// where several share one checkpoint tensor.
pub fn freeze_graph(
    graph: &GraphDef,
    checkpoint: &Checkpoint,
    outputs: &[String],
) -> Result<GraphDef, FreezeError> {
    let input_bytes = || {
        use prost::Message;
        // The checkpoint's files, counted as the CLI counts them: the prefix's directory.
        let dir = checkpoint
            .prefix()
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        (graph.encoded_len() as u64).saturating_add(crate::io::input_size(dir))
    };
    budget::enter_or_default(input_bytes, || freeze_graph_in(graph, checkpoint, outputs))
}

fn freeze_graph_in(
    graph: &GraphDef,
    checkpoint: &Checkpoint,
    outputs: &[String],
) -> Result<GraphDef, FreezeError> {
    let keep = reachable(graph, outputs)?;
    let mut frozen = GraphDef {
        library: graph.library.clone(),
        versions: graph.versions.clone(),
        ..Default::default()
    };
    let mut handles: HashMap<String, i32> = HashMap::new();
    let mut constants = FrozenConstants::default();
    let sources = restore_sources(graph)?;
    for (node, _) in graph.node.iter().zip(&keep).filter(|(_, k)| **k) {
        let mut node = node.clone();
        if VARIABLE_OPS.contains(&node.op.as_str()) {
            // The Saver's restore ops say where each variable comes from; without a Saver,
            // resource variables created with a shared_name are saved under it, others under
            // their node name.
            let (key, extents) = match sources.get(&node.name) {
                Some((key, extents)) => (key.clone(), extents.clone()),
                None => (default_key(&node, checkpoint), Vec::new()),
            };
            if checkpoint.entry(&key).is_none() {
                return Err(FreezeError::NoValue {
                    variable: node.name.clone(),
                    key,
                });
            }
            let value = if extents.is_empty() {
                checkpoint.read_proto(&key)?
            } else {
                checkpoint.read_slice(&key, &extents)?
            };
            check_declared(&node, &key, &value)?;
            constants.charge(checkpoint, &node.name, &key, &value)?;
            if node.op == "VarHandleOp" {
                handles.insert(node.name.clone(), value.dtype);
            }
            variable_to_const(&mut node, value);
        }
        frozen.node.push(node);
    }
    rewrite_resource_reads(&mut frozen, &handles);
    // Ref-typed attributes of readers (Identity of a VariableV2 is `T: float`, fine) need no
    // change; anything else the outputs reach that writes variables is an error.
    let writers: HashSet<&str> = ["Assign", "AssignAdd", "AssignSub", "AssignVariableOp"]
        .into_iter()
        .collect();
    if let Some(node) = frozen.node.iter().find(|n| writers.contains(n.op.as_str())) {
        return Err(FreezeError::SavedModel(format!(
            "the outputs depend on '{}' ({}), which writes a variable",
            node.name, node.op
        )));
    }
    // Functions only the removed nodes called (the Saver's, training's) go too.
    crate::graph::functions::prune_library(&mut frozen);
    Ok(frozen)
}
