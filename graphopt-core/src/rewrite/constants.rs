//! Constant folding: every node whose inputs are all constant is evaluated and the subgraph
//! replaced with Const nodes; Shape, Size, Rank and ShapeN of tensors whose shape is statically
//! known become constants too, so shape arithmetic collapses once input shapes are fixed (the
//! `fold_constants` transform).
//!
//! - Only ops graphopt's evaluator has a kernel for are folded; all of them are stateless.
//!   Control flow, Placeholders, variables and graph inputs are never folded; a
//!   PlaceholderWithDefault that is not a graph input folds to its default, unless excluded.
//! - No output larger than the byte limit is computed, let alone kept: a Fill asking for
//!   10^15 elements stays a Fill.
//! - A node whose kernel fails on its constant inputs is left as it is, as TensorFlow does; so
//!   is one with fewer values than outputs read (an Unpack whose `num` is not its input's
//!   dimension fails in TensorFlow; readers of an output past an op's last are kept reading).
//! - A folded node keeps its name (output 0); other used outputs become `NAME/folded_K`.
//!   TensorFlow renames folded nodes; keeping names keeps outputs valid. A node fetched
//!   through another output (`split:1`) is not folded, for the same reason.
//! - Unlike TensorFlow, nodes unreachable from the outputs are not removed here (that is
//!   stripping's job); constants left without consumers by folding are.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use crate::analysis::geometry;
use crate::analysis::shapes::{self, Input};
use crate::budget::{self, Charge};
use crate::eval::{kernels, KernelContext};
use crate::graph::{self, GraphIndex, InputRef};
use crate::proto::{DataType, GraphDef, NodeDef, TensorProto};
use crate::tensor::{Data, Limits, Tensor};

/// Settings of one folding pass.
pub struct FoldOptions {
    pub limits: Limits,
    pub exclude_ops: HashSet<String>,
    pub exclude_nodes: HashSet<String>,
    /// Graph inputs: never constant, even if they are Const nodes.
    pub inputs: HashSet<String>,
    /// Nodes that must keep their names (outputs).
    pub protected: HashSet<String>,
    /// The outputs as given (`node`, `node:K`): a node fetched through an output other than 0
    /// is not folded (its Const would have output 0 only, and `node:K` would name nothing).
    pub outputs: Vec<String>,
}

/// The largest value folding makes a Const of, unless told otherwise (`fold_constants`'
/// `max_constant_size_in_bytes`): larger ones (a Fill or Tile of a big shape) are cheaper to
/// compute at run time than to ship.
pub const DEFAULT_MAX_FOLDED_BYTES: u64 = 10 << 20;

impl FoldOptions {
    /// Folds every constant value up to `max_bytes`, around a graph's `inputs` (never
    /// constant, even when they are Consts) and `outputs` (kept by name), both as given on the
    /// command line (`node`, `node:K`).
    pub fn around(inputs: &[String], outputs: &[String], max_bytes: u64) -> Self {
        let names = |list: &[String]| -> HashSet<String> {
            list.iter()
                .map(|n| graph::node_name(n).to_string())
                .collect()
        };
        FoldOptions {
            limits: Limits { max_bytes },
            exclude_ops: HashSet::new(),
            exclude_nodes: HashSet::new(),
            inputs: names(inputs),
            protected: names(outputs),
            outputs: outputs.to_vec(),
        }
    }
}

/// The shape-reading ops that fold from a statically known shape.
fn shape_value(node: &NodeDef, shapes: &[Option<&[usize]>]) -> Option<Vec<Rc<Tensor>>> {
    let int_type = crate::graph::attrs::dtype(node, "out_type").unwrap_or(DataType::DtInt32);
    // Values that do not fit (a dimension past 2^31 as int32, an element count past 2^63)
    // leave the node unfolded rather than wrap.
    let int_tensor = |values: Vec<i64>, dims: &[usize]| -> Option<Rc<Tensor>> {
        let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(dims), values.clone()).ok()?;
        let t = crate::eval::cast_tensor(&Tensor::from_data(Data::I64(array)), int_type).ok()?;
        (t.integers()? == values).then(|| Rc::new(t))
    };
    match node.op.as_str() {
        "Shape" | "ShapeN" => shapes
            .iter()
            .map(|s| {
                let dims: Vec<i64> = s
                    .as_ref()?
                    .iter()
                    .map(|&d| geometry::dim_i64(d).ok())
                    .collect::<Option<_>>()?;
                let n = dims.len();
                int_tensor(dims, &[n])
            })
            .collect(),
        "Size" => {
            let dims = shapes.first().copied().flatten()?;
            let count = geometry::element_count(dims).ok()?;
            Some(vec![int_tensor(vec![geometry::dim_i64(count).ok()?], &[])?])
        }
        "Rank" => {
            let dims = shapes.first().copied().flatten()?;
            let rank = Tensor::from_data(Data::I32(ndarray::arr0(dims.len() as i32).into_dyn()));
            Some(vec![Rc::new(rank)])
        }
        _ => None,
    }
}

/// Folds `graph` in place, under the current budget (or a default one for the graph's size):
/// every value kept while folding is held on it. A node the budget refuses stops folding with
/// an error naming it (the refusal also stays on the budget, for the transform runner): the
/// result never depends on the budget, only whether there is one. On an error the graph is
/// unchanged: it is rewritten only after every value is known.
pub fn fold(graph: &mut GraphDef, options: &FoldOptions) -> crate::Result<()> {
    use prost::Message as _;
    let size = graph.encoded_len() as u64;
    budget::enter_or_default(|| size, || fold_in(graph, options))
}

/// A constant output known while folding.
#[derive(Clone)]
enum Known {
    /// The value of Const node `.0`, not decoded: a weight only a foldable node's kernel
    /// reads is decoded, once, and most weights never are (a copy of a Const through an
    /// identity shares it too, when its encoding is the canonical one).
    Encoded(usize),
    /// The bytes of Const node `.0` (in its canonical encoding) with other dims: what a
    /// Reshape, ExpandDims or Squeeze of it makes, shared rather than copied.
    Relabelled(usize, Rc<[usize]>),
    Decoded(Rc<Tensor>),
}

impl Known {
    /// The Const whose bytes this value is, if it is one's.
    fn source(&self) -> Option<usize> {
        match self {
            Known::Encoded(c) | Known::Relabelled(c, _) => Some(*c),
            Known::Decoded(_) => None,
        }
    }
}

/// Ops whose output is their input 0's elements in the same order, under dims their shape
/// function gives.
const RELABELLING_OPS: &[&str] = &["Reshape", "ExpandDims", "Squeeze"];

/// Folding state: what is known of every node, and the decoded Consts.
struct Folder<'g> {
    graph: &'g GraphDef,
    options: &'g FoldOptions,
    /// Per node: its outputs, when constant.
    values: Vec<Option<Vec<Known>>>,
    /// Per Const node: its decoded value, once a kernel or shape rule has needed it (`None`
    /// inside when decoding failed).
    decoded: Vec<Option<Option<Rc<Tensor>>>>,
    /// The memory of the decoded and computed values, held until folding ends.
    held: Vec<Charge>,
    /// Relabelled Consts decoded for a kernel, by source Const and dims (decoded once, like
    /// the Consts themselves).
    relabelled: HashMap<Relabelling, Option<Rc<Tensor>>>,
}

/// A Const (by node index) under other dims.
type Relabelling = (usize, Rc<[usize]>);

impl Folder<'_> {
    /// The decoded value of `known` (decoding a Const on first use, like its kernel would).
    fn value(&mut self, known: &Known) -> crate::Result<Option<Rc<Tensor>>> {
        let c = match known {
            Known::Decoded(t) => return Ok(Some(t.clone())),
            Known::Encoded(c) => *c,
            Known::Relabelled(c, dims) => {
                let key = (*c, dims.clone());
                if let Some(done) = self.relabelled.get(&key) {
                    return Ok(done.clone());
                }
                // Decoded from the Const's bytes under the new dims, once.
                let node = &self.graph.node[*c];
                let Some(mut proto) = crate::graph::attrs::tensor(node, "value").cloned() else {
                    return Ok(None);
                };
                proto.tensor_shape = Some(crate::tensor::shape_proto(dims));
                let value = match Tensor::from_proto_with_limits(&proto, self.options.limits) {
                    Ok(value) => {
                        let charge = budget::hold(value.memory_bytes()).map_err(|source| {
                            crate::Error::Budget {
                                node: node.name.clone(),
                                source,
                            }
                        })?;
                        self.held.push(charge);
                        Some(Rc::new(value))
                    }
                    Err(_) => None,
                };
                self.relabelled.insert(key, value.clone());
                return Ok(value);
            }
        };
        if let Some(done) = &self.decoded[c] {
            return Ok(done.clone());
        }
        let node = &self.graph.node[c];
        let value = match kernels::lookup(&node.op) {
            Some(kernel) => self.run(node, kernel, &[])?.and_then(|mut v| v.pop()),
            None => None,
        }
        .map(Rc::new);
        self.decoded[c] = Some(value.clone());
        Ok(value)
    }

    /// Runs `kernel` for `node` as folding does: its outputs if it succeeds and they fit,
    /// held on the budget; an error only when the budget refused something.
    fn run(
        &mut self,
        node: &NodeDef,
        kernel: kernels::Kernel,
        inputs: &[&Tensor],
    ) -> crate::Result<Option<Vec<Tensor>>> {
        let ctx = KernelContext {
            node,
            limits: self.options.limits,
            // Folded values are written into the graph: the same bytes on every machine.
            gemm: crate::eval::Gemm::Portable,
        };
        let mut result = None;
        if let Ok(outputs) = crate::eval::run_kernel(kernel, &ctx, inputs) {
            let bytes: u64 = outputs.iter().map(Tensor::memory_bytes).sum();
            let fits = outputs
                .iter()
                .all(|t| t.byte_size() as u64 <= self.options.limits.max_bytes);
            if fits {
                if let Ok(charge) = budget::hold(bytes) {
                    self.held.push(charge);
                    result = Some(outputs);
                }
            }
        }
        if let Some(source) = budget::current().and_then(|b| b.failure()) {
            return Err(crate::Error::Budget {
                node: node.name.clone(),
                source,
            });
        }
        Ok(result)
    }

    /// Whether `known` is an integer tensor (the only values shape rules read).
    fn is_integer(&self, known: &Known) -> bool {
        let dtype = match known {
            Known::Decoded(t) => t.dtype(),
            Known::Encoded(c) | Known::Relabelled(c, _) => {
                match crate::graph::attrs::tensor(&self.graph.node[*c], "value")
                    .and_then(|p| DataType::try_from(crate::tensor::base_dtype(p.dtype)).ok())
                {
                    Some(dtype) => dtype,
                    None => return true,
                }
            }
        };
        !matches!(
            dtype,
            DataType::DtFloat
                | DataType::DtDouble
                | DataType::DtHalf
                | DataType::DtBfloat16
                | DataType::DtComplex64
                | DataType::DtComplex128
        )
    }
}

/// What `node` makes of its input 0 when that is a Const's bytes it only relabels: an identity
/// passes them on; a Reshape, ExpandDims or Squeeze of a Const in its canonical encoding gives
/// the same bytes under the dims its shape function computes (from the shape or axis input's
/// value), so folding a Keras layer's reshaped kernel copies nothing. `None` for anything else.
fn relabel(
    folder: &mut Folder<'_>,
    node: &NodeDef,
    known: &[Option<Known>],
    input_shapes: &[Option<Vec<usize>>],
) -> crate::Result<Option<Known>> {
    let Some(Some(first)) = known.first() else {
        return Ok(None);
    };
    let Some(c) = first.source() else {
        return Ok(None);
    };
    let canonical = crate::graph::attrs::tensor(&folder.graph.node[c], "value")
        .is_some_and(Tensor::proto_is_canonical);
    if !canonical {
        return Ok(None);
    }
    let op = node.op.as_str();
    if graph::ops::IDENTITIES.contains(&op) && known.len() == 1 {
        return Ok(Some(first.clone()));
    }
    let arity = if op == "Squeeze" { 1 } else { 2 };
    if !RELABELLING_OPS.contains(&op) || known.len() != arity {
        return Ok(None);
    }
    let Some(Some(dims)) = input_shapes.first() else {
        return Ok(None);
    };
    let mut inputs = vec![Input {
        shape: Some(dims),
        value: None,
    }];
    let operand = match known.get(1) {
        Some(Some(k)) => folder.value(k)?,
        _ => None,
    };
    if arity == 2 {
        let Some(operand) = operand.as_deref() else {
            return Ok(None);
        };
        inputs.push(Input {
            shape: Some(operand.shape()),
            value: Some(operand),
        });
    }
    let out = shapes::infer(node, &inputs)
        .and_then(|s| s.into_iter().next())
        .flatten();
    let same_count =
        |out: &[usize]| geometry::element_count(out).ok() == geometry::element_count(dims).ok();
    Ok(out
        .filter(|out| same_count(out))
        .map(|out| Known::Relabelled(c, out.into())))
}

/// The dims of Const `node`'s value when decoding it is certain to succeed (the budget
/// aside) and to fit in `limits`: such a Const is constant without being decoded.
fn lazy_const_dims(node: &NodeDef, limits: Limits) -> Option<Vec<usize>> {
    if node.op != "Const" {
        return None;
    }
    let proto = crate::graph::attrs::tensor(node, "value")?;
    let (_, dims) = Tensor::check_proto(proto, limits)?;
    Some(dims)
}

fn fold_in(graph: &mut GraphDef, options: &FoldOptions) -> crate::Result<()> {
    let order = graph::execution_order(graph)?;
    let n = graph.node.len();
    let index = GraphIndex::new(graph);
    let mut folder = Folder {
        graph: &*graph,
        options,
        values: vec![None; n],
        decoded: vec![None; n],
        held: Vec::new(),
        relabelled: HashMap::new(),
    };
    let mut shapes_of: Vec<Option<shapes::Shapes>> = vec![None; n];
    // Per node: how many outputs its readers need (one past the highest port read). A folded
    // node must have a value for each: a reader of an output it lacks would be left reading a
    // Const's missing output, or a node folding removed.
    let mut ports_read = vec![0usize; n];
    for node in &graph.node {
        for input in &node.input {
            let parsed = InputRef::parse(input);
            if parsed.control {
                continue;
            }
            if let Some(p) = index.index_of(parsed.node) {
                ports_read[p] = ports_read[p].max(parsed.port as usize + 1);
            }
        }
    }
    let mut fetched_past_0 = vec![false; n];
    for output in &options.outputs {
        let parsed = InputRef::parse(output);
        if let Some(p) = index.index_of(parsed.node) {
            fetched_past_0[p] |= parsed.port > 0;
        }
    }

    for &i in &order {
        let g = folder.graph;
        let node = &g.node[i];
        let mut data = Vec::new();
        let mut controls_constant = true;
        for input in &node.input {
            let parsed = InputRef::parse(input);
            let Some(p) = index.index_of(parsed.node) else {
                continue;
            };
            if parsed.control {
                controls_constant &= folder.values[p].is_some();
            } else {
                data.push((p, parsed.port as usize));
            }
        }
        let known: Vec<Option<Known>> = data
            .iter()
            .map(|&(p, port)| folder.values[p].as_ref().and_then(|v| v.get(port)).cloned())
            .collect();
        let mut input_shapes: Vec<Option<Vec<usize>>> = data
            .iter()
            .zip(&known)
            .map(|(&(p, port), k)| {
                if let Some(Known::Decoded(v)) = k {
                    return Some(v.shape().to_vec());
                }
                shapes_of[p]
                    .as_ref()
                    .and_then(|s| s.get(port).cloned().flatten())
            })
            .collect();

        let eligible = !options.exclude_ops.contains(&node.op)
            && !options.exclude_nodes.contains(&node.name)
            && !options.inputs.contains(&node.name)
            && controls_constant;
        let mut folded: Option<Vec<Known>> = None;
        // Values decoded for this node (kernel inputs, or integers for the shape rules).
        let mut input_values: Vec<Option<Rc<Tensor>>> = vec![None; data.len()];
        if eligible {
            if let Some(dims) = lazy_const_dims(node, options.limits) {
                folded = Some(vec![Known::Encoded(i)]);
                shapes_of[i] = Some(vec![Some(dims)]);
            } else if known.iter().all(Option::is_some) {
                if let Some(kernel) = kernels::lookup(&node.op) {
                    if let Some(relabelled) = relabel(&mut folder, node, &known, &input_shapes)? {
                        shapes_of[i] = Some(vec![match &relabelled {
                            Known::Relabelled(_, dims) => Some(dims.to_vec()),
                            _ => input_shapes.first().cloned().flatten(),
                        }]);
                        folded = Some(vec![relabelled]);
                    } else {
                        for (slot, k) in known.iter().enumerate() {
                            if let Some(k) = k {
                                input_values[slot] = folder.value(k)?;
                            }
                        }
                        if input_values.iter().all(Option::is_some) {
                            let refs: Vec<&Tensor> =
                                input_values.iter().flatten().map(|t| t.as_ref()).collect();
                            folded = folder.run(node, kernel, &refs)?.map(|outputs| {
                                outputs
                                    .into_iter()
                                    .map(|t| Known::Decoded(Rc::new(t)))
                                    .collect()
                            });
                        } else {
                            // A Const failed to decode: not a constant after all.
                            for (slot, v) in input_values.iter().enumerate() {
                                if v.is_none() {
                                    if let Some((p, _)) = data.get(slot) {
                                        folder.values[*p] = None;
                                    }
                                }
                            }
                            let shapes: Vec<Option<&[usize]>> =
                                input_shapes.iter().map(|s| s.as_deref()).collect();
                            folded = shape_value(node, &shapes)
                                .map(|v| v.into_iter().map(Known::Decoded).collect());
                        }
                    }
                }
            } else {
                let shapes: Vec<Option<&[usize]>> =
                    input_shapes.iter().map(|s| s.as_deref()).collect();
                folded =
                    shape_value(node, &shapes).map(|v| v.into_iter().map(Known::Decoded).collect());
            }
        }
        // Outputs the node does not have (a kernel or shape rule that disagrees with the
        // node's declared outputs, or readers of outputs past them) leave it unfolded, and so
        // does a fetch of an output other than 0.
        let folded = folded.filter(|outputs| {
            !fetched_past_0[i]
                && outputs.len() >= ports_read[i]
                && graph::ops::output_count(node).is_none_or(|count| count == outputs.len())
        });
        if folded.is_none() {
            // The shape rules read integer values only.
            for (slot, k) in known.iter().enumerate() {
                if let Some(k) = k {
                    if input_values[slot].is_none() && folder.is_integer(k) {
                        input_values[slot] = folder.value(k)?;
                    }
                }
            }
            for (slot, v) in input_values.iter().enumerate() {
                if let (Some(v), Some(shape)) = (v, input_shapes.get_mut(slot)) {
                    *shape = Some(v.shape().to_vec());
                }
            }
            let inputs: Vec<Input<'_>> = input_shapes
                .iter()
                .zip(&input_values)
                .map(|(s, v)| Input {
                    shape: s.as_deref(),
                    value: v.as_deref(),
                })
                .collect();
            shapes_of[i] = shapes::infer(node, &inputs);
        }
        folder.values[i] = folded;
    }
    drop(index);
    let Folder {
        values,
        decoded,
        held,
        ..
    } = folder;
    materialize(graph, &values, &decoded, options);
    drop(held);
    Ok(())
}

/// Replaces the frontier of each constant subgraph with Const nodes and drops the interior.
fn materialize(
    graph: &mut GraphDef,
    values: &[Option<Vec<Known>>],
    decoded: &[Option<Option<Rc<Tensor>>>],
    options: &FoldOptions,
) {
    let n = graph.node.len();
    let index = GraphIndex::new(graph);
    let is_const = |i: usize| values[i].is_some();
    // For each constant node: which outputs non-constant consumers read, and whether anything
    // reads it at all.
    let mut used_ports: Vec<HashSet<usize>> = vec![HashSet::new(); n];
    let mut control_used = vec![false; n];
    let mut consumed = vec![false; n];
    for (c, node) in graph.node.iter().enumerate() {
        for input in &node.input {
            let parsed = InputRef::parse(input);
            let Some(p) = index.index_of(parsed.node) else {
                continue;
            };
            consumed[p] = true;
            if !is_const(c) && is_const(p) {
                if parsed.control {
                    control_used[p] = true;
                } else {
                    used_ports[p].insert(parsed.port as usize);
                }
            }
        }
    }
    drop(index);
    let mut existing: HashSet<String> = graph.node.iter().map(|node| node.name.clone()).collect();
    let mut renames: HashMap<String, String> = HashMap::new();
    let mut new_nodes = Vec::with_capacity(n);
    // The protos of the Consts that folded identities copy (cheap: the bytes are shared).
    let sources: HashMap<usize, TensorProto> = values
        .iter()
        .enumerate()
        .filter(|&(i, _)| graph.node[i].op != "Const")
        .flat_map(|(_, v)| v.iter().flatten())
        .filter_map(Known::source)
        .filter_map(|c| {
            Some((
                c,
                crate::graph::attrs::tensor(&graph.node[c], "value")?.clone(),
            ))
        })
        .collect();
    // A Const holding `known`, named `name`: the source Const's proto shared when it is
    // canonical (the encoding its decoded value would get), else the value encoded.
    let const_of = |known: &Known, name: String, device: String| -> Option<NodeDef> {
        let (c, dims) = match known {
            Known::Decoded(t) => return Some(crate::graph::edit::const_node(name, device, t)),
            Known::Encoded(c) => (*c, None),
            Known::Relabelled(c, dims) => (*c, Some(dims)),
        };
        let proto = sources.get(&c)?;
        if let Some(dims) = dims {
            // Relabelled only from a canonical encoding: the same bytes under the new dims.
            let mut proto = proto.clone();
            proto.tensor_shape = Some(crate::tensor::shape_proto(dims));
            return Some(crate::graph::edit::const_node_from_proto(
                name, device, proto,
            ));
        }
        if Tensor::proto_is_canonical(proto) {
            return Some(crate::graph::edit::const_node_from_proto(
                name,
                device,
                proto.clone(),
            ));
        }
        let value = match decoded.get(c) {
            Some(Some(Some(t))) => t.clone(),
            _ => Rc::new(Tensor::from_proto_with_limits(proto, options.limits).ok()?),
        };
        Some(crate::graph::edit::const_node(name, device, &value))
    };
    for (i, node) in std::mem::take(&mut graph.node).into_iter().enumerate() {
        let Some(outputs) = &values[i] else {
            new_nodes.push(node);
            continue;
        };
        // A folded node nothing reads is a sink of the graph, an output even when none was
        // named: it becomes a Const like a protected one (dropping it would leave its
        // readers-to-be, and the graph's results, dangling).
        let protected = options.protected.contains(&node.name) || !consumed[i];
        let frontier = protected || control_used[i] || !used_ports[i].is_empty();
        if !frontier {
            // Interior of a folded subgraph (or an unused constant that was already there).
            if !consumed[i] {
                new_nodes.push(node);
            }
            continue;
        }
        if node.op == "Const" {
            // Its control inputs come from folded nodes (a node waiting on anything else is
            // not folded), which may be gone now: like the NoOp below, it keeps none.
            new_nodes.push(NodeDef {
                input: Vec::new(),
                ..node
            });
            continue;
        }
        if outputs.is_empty() {
            // A NoOp that only waited on constants: keep it for its consumers, without the
            // (now meaningless) control inputs.
            new_nodes.push(NodeDef {
                input: Vec::new(),
                ..node
            });
            continue;
        }
        let keep_self = protected || control_used[i] || used_ports[i].contains(&0);
        let mut ports: Vec<usize> = used_ports[i].iter().copied().filter(|&p| p != 0).collect();
        ports.sort_unstable();
        let name = node.name.clone();
        let device = node.device.clone();
        if keep_self {
            if let Some(value) = outputs.first() {
                new_nodes.extend(const_of(value, name.clone(), device.clone()));
            }
        }
        for port in ports {
            let Some(value) = outputs.get(port) else {
                continue;
            };
            let mut candidate = format!("{name}/folded_{port}");
            let mut suffix = 1;
            while existing.contains(&candidate) {
                candidate = format!("{name}/folded_{port}_{suffix}");
                suffix += 1;
            }
            existing.insert(candidate.clone());
            renames.insert(format!("{name}:{port}"), candidate.clone());
            new_nodes.extend(const_of(value, candidate, device.clone()));
        }
    }
    for node in &mut new_nodes {
        for input in &mut node.input {
            if input.starts_with('^') {
                continue;
            }
            if let Some(new) = renames.get(&graph::tensor_name(input)) {
                *input = new.clone();
            }
        }
    }
    graph.node = new_nodes;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::edit::const_node;
    use crate::graph::test_nodes::{float_node, node};

    fn ints(name: &str, values: &[i32]) -> NodeDef {
        let array =
            ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[values.len()]), values.to_vec());
        const_node(
            name.into(),
            String::new(),
            &Tensor::from_data(Data::I32(array.unwrap())),
        )
    }

    fn content(graph: &GraphDef, name: &str) -> (Vec<usize>, prost::bytes::Bytes) {
        let node = graph.node.iter().find(|n| n.name == name).unwrap();
        assert_eq!(node.op, "Const", "{name}");
        let proto = crate::graph::attrs::tensor(node, "value").unwrap();
        let dims = proto
            .tensor_shape
            .as_ref()
            .unwrap()
            .dim
            .iter()
            .map(|d| d.size as usize);
        (dims.collect(), proto.tensor_content.clone())
    }

    /// A Reshape, ExpandDims and Squeeze chain of a weight folds to a Const that shares the
    /// weight's bytes (no copy) under the last op's dims; a kernel that reads the relabelled
    /// weight (Neg) sees it under those dims too.
    #[test]
    fn reshapes_of_a_const_share_its_bytes() {
        let values: Vec<f32> = (0..24).map(|i| i as f32 - 7.5).collect();
        let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[2, 3, 4]), values).unwrap();
        let weight = Tensor::from_data(Data::F32(array));
        let mut graph = GraphDef {
            node: vec![
                const_node("w".into(), String::new(), &weight),
                ints("shape", &[-1, 4]),
                node("r", "Reshape", &["w", "shape"]),
                ints("axis", &[0]),
                node("e", "ExpandDims", &["r", "axis"]),
                node("q", "Squeeze", &["e"]),
                float_node("x", "Placeholder", &[]),
                float_node("mm", "MatMul", &["x", "q"]),
                node("n", "Neg", &["e"]),
                float_node("y", "Placeholder", &[]),
                float_node("add", "AddV2", &["y", "n"]),
            ],
            ..Default::default()
        };
        let (_, original) = content(&graph, "w");
        let options = FoldOptions::around(
            &["x".into(), "y".into()],
            &["mm".into(), "add".into()],
            DEFAULT_MAX_FOLDED_BYTES,
        );
        fold(&mut graph, &options).unwrap();
        let (dims, bytes) = content(&graph, "q");
        assert_eq!(dims, [6, 4]);
        assert_eq!(
            bytes.as_ptr(),
            original.as_ptr(),
            "the weight's bytes, shared"
        );
        let (dims, negated) = content(&graph, "n");
        assert_eq!(dims, [1, 6, 4]);
        let negated: Vec<f32> = negated
            .chunks(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let expected: Vec<f32> = (0..24).map(|i| 7.5 - i as f32).collect();
        assert_eq!(negated, expected);
        assert!(graph.node.iter().all(|n| n.name != "r" && n.name != "e"));
    }
}
