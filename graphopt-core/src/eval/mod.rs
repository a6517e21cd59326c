//! The reference evaluator: runs a GraphDef (or the part of it a fetch needs) on given inputs.
//!
//! It is a dataflow executor in TensorFlow's model: every value carries a frame and an iteration,
//! so lowered control flow (Switch/Merge/Enter/Exit/NextIteration) runs as TensorFlow runs it,
//! including dead branches of `tf.cond` and loop-invariant `Enter(is_constant=true)` inputs.
//! Kernels live in the submodules, one family per file; [`kernels::lookup`] maps op names.
//!
//! Used for constant folding, for `graphopt verify`, and by the tests that compare graphopt's
//! results with TensorFlow's.
//!
//! Bounded by the current [`budget`] (a default one sized by the graph when the
//! caller entered none): every value the executor keeps is held on it, every kernel asks it
//! before allocating and charges its work, so a hostile graph ends in an error naming the node,
//! not in an abort, a hang or a runaway allocation.

// Kernels are written once over every element type through `map_data!`; for Copy types the
// generic `.clone()` calls are what clippy's clone_on_copy flags.
#![allow(clippy::clone_on_copy)]

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};

use crate::budget::{self, BudgetError, Charge};
use crate::graph::{attrs, InputRef};
use crate::proto::{FunctionDefLibrary, GraphDef, NodeDef};
use crate::tensor::{Limits, Tensor, TensorError};

mod alloc;
mod broadcast;
mod cast;
mod conv;
mod einsum;
mod elementwise;
mod exp;
mod functional;
mod fuse;
mod gemm;
mod image;
mod in_place;
pub mod kernels;
mod matmul;
mod nn;
mod parallel;
mod quantized;
mod recycle;
mod reduce;
mod shape_ops;

pub use broadcast::{check_output, with_limits};
pub use cast::cast as cast_tensor;
pub use elementwise::arithmetic as binary_arithmetic;
pub use gemm::Gemm;
pub use parallel::threads as matmul_threads;
mod slicing;

/// A failure while evaluating, naming the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    pub node: String,
    /// Empty when the problem is a name that is not in the graph.
    pub op: String,
    pub message: String,
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.op.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "node '{}' ({}): {}", self.node, self.op, self.message)
        }
    }
}

impl std::error::Error for EvalError {}

/// A kernel's own error; the executor adds the node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KernelError(pub String);

impl From<TensorError> for KernelError {
    fn from(e: TensorError) -> Self {
        KernelError(e.to_string())
    }
}

impl From<crate::analysis::geometry::GeometryError> for KernelError {
    fn from(e: crate::analysis::geometry::GeometryError) -> Self {
        KernelError(e.0)
    }
}

impl From<BudgetError> for KernelError {
    fn from(e: BudgetError) -> Self {
        KernelError(e.to_string())
    }
}

impl From<ndarray::ShapeError> for KernelError {
    fn from(e: ndarray::ShapeError) -> Self {
        KernelError(e.to_string())
    }
}

/// Result of a kernel.
pub type KernelResult = Result<Vec<Tensor>, KernelError>;

/// Shorthand for a kernel error.
pub fn fail<T>(message: impl Into<String>) -> Result<T, KernelError> {
    Err(KernelError(message.into()))
}

/// What a kernel sees: the node (for attributes), the evaluation limits and the matrix
/// product to use.
#[derive(Clone, Copy)]
pub struct KernelContext<'a> {
    pub node: &'a NodeDef,
    pub limits: Limits,
    /// The matrix product MatMul and the convolutions use.
    pub gemm: Gemm,
}

/// Bounds for one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// No kernel may produce a tensor larger than this.
    pub limits: Limits,
    /// A while loop running more iterations than this is an error, not a hang.
    pub max_iterations: u64,
    /// The matrix product: [`Gemm::Portable`] (the default) wherever results are written.
    pub gemm: Gemm,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            max_iterations: 1_000_000,
            gemm: Gemm::Portable,
        }
    }
}

/// A value the executor keeps, held on the budget until its last reference is dropped.
/// The tensor is shared with a [`Constants`] cache for a decoded Const.
#[derive(Debug)]
struct Held {
    tensor: Arc<Tensor>,
    _charge: Charge,
}

impl Held {
    fn new(tensor: Tensor) -> Result<Rc<Held>, BudgetError> {
        Self::shared(Arc::new(tensor))
    }

    fn shared(tensor: Arc<Tensor>) -> Result<Rc<Held>, BudgetError> {
        let charge = budget::hold(tensor.memory_bytes())?;
        Ok(Rc::new(Held {
            tensor,
            _charge: charge,
        }))
    }

    /// The tensor itself when nothing else refers to it (no other consumer, fetch, feed or
    /// cache), so a kernel may overwrite it.
    fn take_unique(value: &mut Value) -> Option<Tensor> {
        if !Self::is_unique(value) {
            return None;
        }
        let mut held = Rc::try_unwrap(value.take()?).ok()?;
        let tensor = std::mem::replace(&mut held.tensor, Arc::clone(&NOTHING));
        Arc::try_unwrap(tensor).ok()
    }

    fn is_unique(value: &Value) -> bool {
        value
            .as_ref()
            .is_some_and(|rc| Rc::strong_count(rc) == 1 && Arc::strong_count(&rc.tensor) == 1)
    }
}

/// What a [`Held`] holds once its tensor has been taken out.
static NOTHING: std::sync::LazyLock<Arc<Tensor>> = std::sync::LazyLock::new(|| {
    Arc::new(Tensor::from_data(crate::tensor::Data::F32(
        ndarray::ArrayD::zeros(ndarray::IxDyn(&[0])),
    )))
});

impl Drop for Held {
    /// A value's last reference gone: its memory goes to the next kernel's output.
    fn drop(&mut self) {
        // The value's charge ends before the pool's begins: the memory is counted once.
        drop(std::mem::replace(&mut self._charge, Charge::none()));
        let tensor = std::mem::replace(&mut self.tensor, Arc::clone(&NOTHING));
        if let Ok(tensor) = Arc::try_unwrap(tensor) {
            recycle::give_tensor(tensor);
        }
    }
}

/// Const values decoded once and shared by every later evaluation of the same graph: a
/// model run many times decodes its weights on the first run only. Entries are keyed by node
/// index and checked against the node's name, so a cache handed a different graph decodes
/// afresh rather than returning another graph's values.
///
/// It also keeps the buffers of the values a run frees, for the next run's kernels to write
/// into (see the `recycle` module): between runs they are the cache's memory, during a run they are
/// counted on its budget.
#[derive(Default)]
pub struct Constants {
    decoded: Mutex<HashMap<usize, (String, Arc<Tensor>)>>,
    buffers: recycle::Pool,
}

impl std::fmt::Debug for Constants {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let decoded = self.decoded.lock().unwrap_or_else(PoisonError::into_inner);
        write!(f, "Constants({} decoded)", decoded.len())
    }
}

impl Constants {
    fn get(&self, i: usize, name: &str) -> Option<Arc<Tensor>> {
        let decoded = self.decoded.lock().unwrap_or_else(PoisonError::into_inner);
        decoded
            .get(&i)
            .filter(|(cached, _)| cached == name)
            .map(|(_, tensor)| Arc::clone(tensor))
    }

    fn insert(&self, i: usize, name: &str, tensor: Arc<Tensor>) {
        let mut decoded = self.decoded.lock().unwrap_or_else(PoisonError::into_inner);
        decoded.insert(i, (name.to_string(), tensor));
    }
}

/// A value flowing along an edge; `None` is TensorFlow's "dead" (untaken branch).
type Value = Option<Rc<Held>>;

/// Memory the executor's bookkeeping takes per entry (frames, fired merges), charged so that a
/// loop running many iterations cannot grow it without bound.
const BOOKKEEPING_BYTES: u64 = 96;

/// One execution context: the root frame, or one activation of a while loop.
struct Frame {
    /// (parent frame, parent iteration); `None` for the root.
    parent: Option<(usize, u64)>,
    /// Loop invariants: (Enter node, value), delivered to every iteration.
    invariants: Vec<(usize, Value)>,
    /// Iterations started so far (0..started).
    started: u64,
}

/// Work charged for running one node or planning one node of a graph, whatever its tensors:
/// the executor's own bookkeeping (queues, maps, frames) costs about as much as a few hundred
/// element operations, so a loop of a million cheap iterations is stopped by the work budget
/// as surely as one heavy iteration.
const NODE_WORK: u64 = 256;

/// Work charged per node and edge each time a graph is planned for a run, and per value
/// delivered along an edge (see [`NODE_WORK`]).
const EDGE_WORK: u64 = 32;

/// The inputs of one node in one frame and iteration, gathered until it can run. Its slots are
/// held on the budget: a node of many inputs in a loop whose iterations never complete it
/// cannot pile them up without bound.
struct PendingNode {
    inputs: Vec<Option<Value>>,
    arrived: usize,
    /// Control inputs not arrived yet, and whether a live data input has (what Merge waits on).
    controls_missing: usize,
    live_data: bool,
    _charge: Charge,
}

struct Executor<'g> {
    graph: &'g GraphDef,
    /// Where functional ops find their functions: the library of the outermost graph.
    library: Option<&'g FunctionDefLibrary>,
    options: Options,
    needed: Vec<bool>,
    feeds: HashMap<usize, Rc<Held>>,
    /// Per node: (consumer index, input slot, is_control).
    consumers: Vec<Vec<(usize, usize, bool)>>,
    /// Per node: count of data and control inputs.
    input_counts: Vec<usize>,
    frames: Vec<Frame>,
    frame_ids: HashMap<(usize, u64, String), usize>,
    pending: HashMap<(usize, usize, u64), PendingNode>,
    fired_merges: HashSet<(usize, usize, u64)>,
    ready: VecDeque<(usize, usize, u64, Vec<Value>)>,
    fetched: HashMap<usize, Vec<Value>>,
    fetch_nodes: HashSet<usize>,
    /// Swish chains run as one kernel, by their first node (fast evaluations only).
    swishes: HashMap<usize, fuse::Swish>,
    /// Nodes whose value a fused kernel has computed: (node, frame, iteration) and the input
    /// slot they pass on.
    passing: HashMap<(usize, usize, u64), usize>,
    /// Library functions as runnable graphs, built once each (shared with nested calls).
    function_cache: &'g mut functional::Cache,
    /// Decoded Consts kept across evaluations, when the caller keeps them.
    constants: Option<&'g Constants>,
}

/// Evaluates `fetches` ("node" or "node:port") with `feeds` (node name -> value for output 0).
///
/// Runs under the current budget, or a default one for the graph's and the feeds' size when
/// none is entered.
pub fn evaluate(
    graph: &GraphDef,
    feeds: &BTreeMap<String, Tensor>,
    fetches: &[String],
    options: Options,
) -> Result<Vec<Tensor>, EvalError> {
    evaluate_top(graph, None, feeds, fetches, options)
}

/// [`evaluate`] for a graph run many times: its Consts are decoded on the first run into
/// `constants` and shared by the later ones, and the budget (the current one, or a default
/// one) counts them on each run as it would count fresh copies.
pub fn evaluate_cached(
    graph: &GraphDef,
    constants: &Constants,
    feeds: &BTreeMap<String, Tensor>,
    fetches: &[String],
    options: Options,
) -> Result<Vec<Tensor>, EvalError> {
    evaluate_top(graph, Some(constants), feeds, fetches, options)
}

/// The outermost graph's evaluation, under the current budget or a default one for the
/// graph's and the feeds' size.
fn evaluate_top(
    graph: &GraphDef,
    constants: Option<&Constants>,
    feeds: &BTreeMap<String, Tensor>,
    fetches: &[String],
    options: Options,
) -> Result<Vec<Tensor>, EvalError> {
    let input_bytes = || {
        use prost::Message as _;
        let fed: u64 = feeds.values().map(Tensor::memory_bytes).sum();
        (graph.encoded_len() as u64).saturating_add(fed)
    };
    budget::enter_or_default(input_bytes, || {
        recycle::scope(constants.map(|c| &c.buffers), || {
            let mut cache = functional::Cache::default();
            evaluate_in(
                graph,
                graph.library.as_ref(),
                &mut cache,
                constants,
                feeds,
                fetches,
                options,
            )
        })
    })
}

/// A refusal of the budget, for a node.
fn budget_error(graph: &GraphDef, i: usize, error: BudgetError) -> EvalError {
    let node = graph.node.get(i);
    EvalError {
        node: node.map(|n| n.name.clone()).unwrap_or_default(),
        op: node.map_or_else(|| "?".into(), |n| n.op.clone()),
        message: error.to_string(),
    }
}

/// [`evaluate`] for a graph whose functional ops call into `library`, with a function cache
/// shared by nested calls.
fn evaluate_in(
    graph: &GraphDef,
    library: Option<&FunctionDefLibrary>,
    cache: &mut functional::Cache,
    constants: Option<&Constants>,
    feeds: &BTreeMap<String, Tensor>,
    fetches: &[String],
    options: Options,
) -> Result<Vec<Tensor>, EvalError> {
    // Planning visits every node and edge of the graph, on every call of a function too.
    let edges: u64 = graph.node.iter().map(|n| n.input.len() as u64 + 1).sum();
    budget::work(edges.saturating_mul(EDGE_WORK)).map_err(|e| EvalError {
        node: String::new(),
        op: String::new(),
        message: format!("planning a graph of {} nodes: {e}", graph.node.len()),
    })?;
    let by_name = crate::graph::name_index(&graph.node);
    let lookup_error = |name: &str, what: &str| EvalError {
        node: name.to_string(),
        op: String::new(),
        message: format!("{what} '{name}' is not a node of the graph"),
    };
    let mut feed_index = HashMap::new();
    for (name, value) in feeds {
        let parsed = InputRef::parse(name);
        let &i = by_name
            .get(parsed.node)
            .ok_or_else(|| lookup_error(parsed.node, "feed"))?;
        let held = Held::new(value.clone()).map_err(|e| budget_error(graph, i, e))?;
        feed_index.insert(i, held);
    }
    let mut fetch_refs = Vec::with_capacity(fetches.len());
    for fetch in fetches {
        let parsed = InputRef::parse(fetch);
        let &i = by_name
            .get(parsed.node)
            .ok_or_else(|| lookup_error(parsed.node, "fetch"))?;
        fetch_refs.push((i, parsed.port as usize));
    }

    // Only what the fetches depend on runs; feeds cut the graph.
    let n = graph.node.len();
    let mut needed = vec![false; n];
    let mut stack: Vec<usize> = fetch_refs.iter().map(|&(i, _)| i).collect();
    while let Some(i) = stack.pop() {
        if std::mem::replace(&mut needed[i], true) || feed_index.contains_key(&i) {
            continue;
        }
        for input in graph
            .node
            .get(i)
            .map(|n| n.input.as_slice())
            .unwrap_or_default()
        {
            let parsed = InputRef::parse(input);
            match by_name.get(parsed.node) {
                Some(&p) => stack.push(p),
                None => {
                    return Err(EvalError {
                        node: graph
                            .node
                            .get(i)
                            .map(|n| n.name.clone())
                            .unwrap_or_default(),
                        op: graph.node.get(i).map(|n| n.op.clone()).unwrap_or_default(),
                        message: format!("input '{input}' does not exist"),
                    })
                }
            }
        }
    }

    let mut consumers = vec![Vec::new(); n];
    let mut input_counts = vec![0; n];
    for (i, node) in graph.node.iter().enumerate() {
        if !needed[i] || feed_index.contains_key(&i) {
            continue;
        }
        input_counts[i] = node.input.len();
        for (slot, input) in node.input.iter().enumerate() {
            let parsed = InputRef::parse(input);
            if let Some(&p) = by_name.get(parsed.node) {
                consumers[p].push((i, slot, parsed.control));
            }
        }
    }

    let fetch_nodes: HashSet<usize> = fetch_refs.iter().map(|&(i, _)| i).collect();
    let swishes = match options.gemm {
        Gemm::Fast => fuse::swishes(graph, &needed, &consumers, &fetch_nodes),
        Gemm::Portable => HashMap::new(),
    };
    let mut executor = Executor {
        graph,
        library,
        options,
        fetch_nodes,
        swishes,
        passing: HashMap::new(),
        needed,
        feeds: feed_index,
        consumers,
        input_counts,
        frames: vec![Frame {
            parent: None,
            invariants: Vec::new(),
            started: 1,
        }],
        frame_ids: HashMap::new(),
        pending: HashMap::new(),
        fired_merges: HashSet::new(),
        ready: VecDeque::new(),
        fetched: HashMap::new(),
        function_cache: cache,
        constants,
    };
    executor.run()?;

    fetch_refs
        .iter()
        .map(|&(i, port)| {
            let node = &graph.node[i];
            let error = |message: String| EvalError {
                node: node.name.clone(),
                op: node.op.clone(),
                message,
            };
            let outputs = executor.fetched.get(&i).ok_or_else(|| {
                error("was never computed (its inputs never became available)".into())
            })?;
            match outputs.get(port) {
                Some(Some(value)) => Ok(Tensor::clone(&value.tensor)),
                Some(None) => Err(error(format!("output {port} is dead (an untaken branch)"))),
                // A dead node's outputs are all dead, however many it has.
                None if outputs.iter().all(Option::is_none) && !outputs.is_empty() => {
                    Err(error(format!("output {port} is dead (an untaken branch)")))
                }
                None => Err(error(format!("has no output {port}"))),
            }
        })
        .collect()
}

/// Runs one kernel: its scratch memory is released afterwards, its outputs' memory and
/// elements are charged, and no output over the per-tensor limit is kept. As many outputs as
/// the node declares (when graphopt knows how many) or an error: a consumer of output `k`
/// never finds it missing, nor a folded Const standing for an output that does not exist.
pub fn run_kernel(
    kernel: kernels::Kernel,
    context: &KernelContext<'_>,
    inputs: &[&Tensor],
) -> Result<Vec<Tensor>, KernelError> {
    let outputs = budget::scratch_scope(|| {
        broadcast::with_limits(context.limits, || kernel(context, inputs))
    })?;
    let elements: u64 = outputs.iter().map(|t| t.len() as u64).sum();
    budget::work(elements.saturating_add(outputs.len() as u64))?;
    if let Some(declared) = crate::graph::ops::output_count(context.node) {
        if outputs.len() != declared {
            return Err(KernelError(format!(
                "{} computed {} output(s), but the node has {declared}",
                context.node.op,
                outputs.len()
            )));
        }
    }
    Ok(outputs)
}

impl Executor<'_> {
    fn node_error(&self, i: usize, message: impl Into<String>) -> EvalError {
        let node = &self.graph.node[i];
        EvalError {
            node: node.name.clone(),
            op: node.op.clone(),
            message: message.into(),
        }
    }

    fn budget_error(&self, i: usize, error: BudgetError) -> EvalError {
        budget_error(self.graph, i, error)
    }

    /// Charges the bookkeeping of one more frame or fired merge.
    fn bookkeeping(&self, i: usize) -> Result<(), EvalError> {
        budget::alloc(BOOKKEEPING_BYTES).map_err(|e| self.budget_error(i, e))
    }

    fn run(&mut self) -> Result<(), EvalError> {
        for i in 0..self.graph.node.len() {
            if !self.needed[i] {
                continue;
            }
            if let Some(value) = self.feeds.get(&i).cloned() {
                self.emit(i, 0, 0, vec![Some(value)])?;
            } else if self.input_counts[i] == 0 {
                self.ready.push_back((i, 0, 0, Vec::new()));
            }
        }
        while let Some((i, frame, iter, inputs)) = self.ready.pop_front() {
            budget::work(NODE_WORK).map_err(|e| self.budget_error(i, e))?;
            let outputs = self.fire(i, frame, iter, inputs)?;
            self.emit(i, frame, iter, outputs)?;
        }
        Ok(())
    }

    /// Runs node `i` on its inputs (dead inputs make dead outputs, except for Merge).
    fn fire(
        &mut self,
        i: usize,
        frame: usize,
        iter: u64,
        mut inputs: Vec<Value>,
    ) -> Result<Vec<Value>, EvalError> {
        let node = &self.graph.node[i];
        if let Some(slot) = self.passing.remove(&(i, frame, iter)) {
            return Ok(vec![inputs.get(slot).cloned().flatten()]);
        }
        if let Some(outputs) = self.fire_fused(i, frame, iter, &inputs)? {
            return Ok(outputs);
        }
        if let Some(outputs) = self.fire_in_place(i, &mut inputs)? {
            return Ok(outputs);
        }
        let data: Vec<&Value> = node
            .input
            .iter()
            .zip(&inputs)
            .filter(|(name, _)| !name.starts_with('^'))
            .map(|(_, v)| v)
            .collect();
        let op = node.op.as_str();
        match op {
            "Merge" | "RefMerge" => {
                let outputs = match data.iter().position(|v| v.is_some()) {
                    Some(k) => {
                        let k =
                            i32::try_from(k).map_err(|_| self.node_error(i, "too many inputs"))?;
                        let index = Tensor::from_data(crate::tensor::Data::I32(
                            ndarray::arr0(k).into_dyn(),
                        ));
                        let index = Held::new(index).map_err(|e| self.budget_error(i, e))?;
                        vec![data.get(k as usize).and_then(|v| (*v).clone()), Some(index)]
                    }
                    None => vec![None, None],
                };
                return Ok(outputs);
            }
            _ => {}
        }
        let control_dead = node
            .input
            .iter()
            .zip(&inputs)
            .any(|(name, v)| name.starts_with('^') && v.is_none());
        if control_dead || data.iter().any(|v| v.is_none()) {
            // All outputs dead: one dead entry stands for any number of them (an attribute such
            // as num_split must not size anything here).
            return Ok(vec![None]);
        }
        let tensors: Vec<&Tensor> = data
            .iter()
            .filter_map(|v| v.as_deref())
            .map(|h| &*h.tensor)
            .collect();
        match op {
            "Switch" | "RefSwitch" => {
                let pred = tensors
                    .get(1)
                    .and_then(|t| kernels::scalar_bool(t))
                    .ok_or_else(|| self.node_error(i, "predicate must be a scalar bool"))?;
                let value = data.first().and_then(|v| (*v).clone());
                return Ok(if pred {
                    vec![None, value]
                } else {
                    vec![value, None]
                });
            }
            "Enter" | "RefEnter" | "Exit" | "RefExit" | "NextIteration" | "RefNextIteration"
            | "LoopCond" => {
                return Ok(vec![data.first().and_then(|v| (*v).clone())]);
            }
            "Placeholder" => {
                return Err(self.node_error(i, "is an input of the graph and was not fed"));
            }
            // Logging ops pass their first input through; the evaluator does not print.
            "Print" => return Ok(vec![data.first().and_then(|v| (*v).clone())]),
            // Identities pass their values on without a copy.
            "IdentityN" => return Ok(data.iter().map(|v| (*v).clone()).collect()),
            _ if crate::graph::ops::IDENTITIES.contains(&op) && data.len() == 1 => {
                return Ok(vec![data.first().and_then(|v| (*v).clone())]);
            }
            _ => {}
        }
        if matches!(
            op,
            "While"
                | "StatelessWhile"
                | "If"
                | "StatelessIf"
                | "Case"
                | "StatelessCase"
                | "PartitionedCall"
                | "StatefulPartitionedCall"
        ) {
            let inputs: Vec<Tensor> = tensors.iter().map(|t| (*t).clone()).collect();
            let outputs = functional::run(
                self.library,
                node,
                inputs,
                self.options,
                self.function_cache,
            )
            .map_err(|e| self.node_error(i, e))?;
            return self.keep(i, outputs);
        }
        let kernel = kernels::lookup(op)
            .ok_or_else(|| self.node_error(i, "graphopt's evaluator has no kernel for this op"))?;
        let context = self.context(node);
        let cached = self.constants.filter(|_| op == "Const");
        if let Some(tensor) = cached.and_then(|c| c.get(i, &node.name)) {
            return self.keep_shared(i, tensor).map(|held| vec![held]);
        }
        let mut outputs =
            run_kernel(kernel, &context, &tensors).map_err(|e| self.node_error(i, e.0))?;
        if let (Some(constants), 1) = (cached, outputs.len()) {
            let tensor = Arc::new(outputs.remove(0));
            constants.insert(i, &node.name, Arc::clone(&tensor));
            return self.keep_shared(i, tensor).map(|held| vec![held]);
        }
        self.keep(i, outputs)
    }

    /// [`Self::keep`] for one tensor (shared with the Const cache, or new).
    fn keep_shared(&self, i: usize, tensor: Arc<Tensor>) -> Result<Value, EvalError> {
        if tensor.memory_bytes() > self.options.limits.max_bytes {
            return Err(self.node_error(i, "output exceeds the evaluation size limit"));
        }
        Held::shared(tensor)
            .map(Some)
            .map_err(|e| self.budget_error(i, e))
    }

    fn context<'n>(&self, node: &'n NodeDef) -> KernelContext<'n> {
        KernelContext {
            node,
            limits: self.options.limits,
            gemm: self.options.gemm,
        }
    }

    /// Runs the chain that starts at node `i` as one kernel (see [`fuse`]), if one does and
    /// its inputs allow it; the chain's later nodes then pass the value on.
    fn fire_fused(
        &mut self,
        i: usize,
        frame: usize,
        iter: u64,
        inputs: &[Value],
    ) -> Result<Option<Vec<Value>>, EvalError> {
        let Some(&chain) = self.swishes.get(&i) else {
            return Ok(None);
        };
        let [Some(a), Some(b)] = inputs else {
            return Ok(None);
        };
        let fused = budget::scratch_scope(|| fuse::swish(&chain, [&*a.tensor, &*b.tensor]))
            .map_err(|e| self.node_error(i, e.0))?;
        let Some(output) = fused else {
            return Ok(None);
        };
        budget::work(output.len() as u64 + 1).map_err(|e| self.budget_error(i, e))?;
        self.passing.insert((chain.gate, frame, iter), 0);
        self.passing
            .insert((chain.product, frame, iter), chain.gate_in_product);
        self.keep(i, vec![output]).map(Some)
    }

    /// Runs an elementwise node into the buffer of an input that nothing else refers to any
    /// more (see [`in_place`]); `None` when the node or its inputs do not allow it.
    fn fire_in_place(
        &self,
        i: usize,
        inputs: &mut [Value],
    ) -> Result<Option<Vec<Value>>, EvalError> {
        let node = &self.graph.node[i];
        if !in_place::supports(&node.op) || inputs.iter().any(Option::is_none) {
            return Ok(None);
        }
        let data: Vec<usize> = (0..inputs.len())
            .filter(|&k| node.input.get(k).is_some_and(|name| !name.starts_with('^')))
            .collect();
        let context = self.context(node);
        for (position, &slot) in data.iter().enumerate() {
            if !Held::is_unique(&inputs[slot]) {
                continue;
            }
            // The other operands, through handles of their own (the slot is taken below).
            let rest: Vec<Rc<Held>> = data
                .iter()
                .filter(|&&k| k != slot)
                .filter_map(|&k| inputs[k].clone())
                .collect();
            let others: Vec<&Tensor> = rest.iter().map(|h| &*h.tensor).collect();
            let applies = inputs[slot]
                .as_deref()
                .is_some_and(|h| in_place::applies(&context, &h.tensor, position, &others));
            if !applies {
                continue;
            }
            let Some(mine) = Held::take_unique(&mut inputs[slot]) else {
                continue;
            };
            let output = in_place::run(&context, mine, position, &others)
                .map_err(|e| self.node_error(i, e.0))?;
            budget::work(output.len() as u64 + 1).map_err(|e| self.budget_error(i, e))?;
            return self.keep(i, vec![output]).map(Some);
        }
        Ok(None)
    }

    /// Holds a node's outputs on the budget.
    fn keep(&self, i: usize, outputs: Vec<Tensor>) -> Result<Vec<Value>, EvalError> {
        outputs
            .into_iter()
            .map(|t| self.keep_shared(i, Arc::new(t)))
            .collect()
    }

    fn frame_for_enter(
        &mut self,
        enter: usize,
        parent: usize,
        iter: u64,
        name: &str,
    ) -> Result<usize, EvalError> {
        let key = (parent, iter, name.to_string());
        if let Some(&id) = self.frame_ids.get(&key) {
            return Ok(id);
        }
        self.bookkeeping(enter)?;
        budget::alloc(name.len() as u64).map_err(|e| self.budget_error(enter, e))?;
        let id = self.frames.len();
        self.frames.push(Frame {
            parent: Some((parent, iter)),
            invariants: Vec::new(),
            started: 1,
        });
        self.frame_ids.insert(key, id);
        Ok(id)
    }

    /// Routes node `i`'s outputs to its consumers in the right frame and iteration.
    fn emit(
        &mut self,
        i: usize,
        frame: usize,
        iter: u64,
        outputs: Vec<Value>,
    ) -> Result<(), EvalError> {
        if self.fetch_nodes.contains(&i) && frame == 0 {
            self.fetched.insert(i, outputs.clone());
        }
        let node = &self.graph.node[i];
        match node.op.as_str() {
            "Enter" | "RefEnter" => {
                let frame_name = attrs::string(node, "frame_name").unwrap_or_default();
                let child = self.frame_for_enter(i, frame, iter, &frame_name)?;
                let value = outputs.into_iter().next().flatten();
                if attrs::bool(node, "is_constant").unwrap_or(false) {
                    self.frames[child].invariants.push((i, value.clone()));
                    for it in 0..self.frames[child].started {
                        self.deliver(i, child, it, std::slice::from_ref(&value))?;
                    }
                    Ok(())
                } else {
                    self.deliver(i, child, 0, &[value])
                }
            }
            "NextIteration" | "RefNextIteration" => {
                // A dead NextIteration ends the loop instead of starting an iteration.
                if outputs.first().is_some_and(|v| v.is_some()) {
                    let next = iter + 1;
                    if next > self.options.max_iterations {
                        return Err(self.node_error(
                            i,
                            format!(
                                "the loop ran more than {} iterations",
                                self.options.max_iterations
                            ),
                        ));
                    }
                    self.start_iteration(frame, next)?;
                    self.deliver(i, frame, next, &outputs)?;
                }
                Ok(())
            }
            "Exit" | "RefExit" => {
                // Dead exits of the iterations that continued are dropped.
                if outputs.first().is_some_and(|v| v.is_some()) {
                    let (parent, parent_iter) = self.frames[frame].parent.unwrap_or((0, 0));
                    if self.fetch_nodes.contains(&i) && parent == 0 {
                        self.fetched.insert(i, outputs.clone());
                    }
                    self.deliver(i, parent, parent_iter, &outputs)?;
                }
                Ok(())
            }
            _ => self.deliver(i, frame, iter, &outputs),
        }
    }

    fn start_iteration(&mut self, frame: usize, iter: u64) -> Result<(), EvalError> {
        while self.frames[frame].started <= iter {
            let it = self.frames[frame].started;
            self.frames[frame].started += 1;
            let invariants = self.frames[frame].invariants.clone();
            for (enter, value) in invariants {
                self.deliver(enter, frame, it, &[value])?;
            }
        }
        Ok(())
    }

    fn deliver(
        &mut self,
        producer: usize,
        frame: usize,
        iter: u64,
        outputs: &[Value],
    ) -> Result<(), EvalError> {
        let consumers = std::mem::take(&mut self.consumers[producer]);
        let result = self.deliver_to(producer, &consumers, frame, iter, outputs);
        self.consumers[producer] = consumers;
        result
    }

    fn deliver_to(
        &mut self,
        producer: usize,
        consumers: &[(usize, usize, bool)],
        frame: usize,
        iter: u64,
        outputs: &[Value],
    ) -> Result<(), EvalError> {
        budget::work((consumers.len() as u64).saturating_mul(EDGE_WORK))
            .map_err(|e| self.budget_error(producer, e))?;
        let mut liveness = None;
        for &(consumer, slot, control) in consumers {
            let input = &self.graph.node[consumer].input[slot];
            let value = if control {
                // A control edge carries only liveness.
                let live = outputs.iter().any(|v| v.is_some()) || outputs.is_empty();
                if live && liveness.is_none() {
                    let token = Tensor::from_data(crate::tensor::Data::Bool(
                        ndarray::arr0(true).into_dyn(),
                    ));
                    liveness = Some(Held::new(token).map_err(|e| self.budget_error(producer, e))?);
                }
                if live {
                    liveness.clone()
                } else {
                    None
                }
            } else {
                let port = InputRef::parse(input).port as usize;
                match outputs.get(port) {
                    Some(v) => v.clone(),
                    // A dead node's outputs are all dead, however many it has.
                    None if outputs.iter().all(Option::is_none) && !outputs.is_empty() => None,
                    None => {
                        return Err(self.node_error(
                            producer,
                            format!(
                                "has no output {port} (read by '{}')",
                                self.graph.node[consumer].name
                            ),
                        ))
                    }
                }
            };
            self.arrive(consumer, frame, iter, slot, value)?;
        }
        Ok(())
    }

    fn arrive(
        &mut self,
        consumer: usize,
        frame: usize,
        iter: u64,
        slot: usize,
        value: Value,
    ) -> Result<(), EvalError> {
        let key = (consumer, frame, iter);
        let node = &self.graph.node[consumer];
        let is_merge = matches!(node.op.as_str(), "Merge" | "RefMerge");
        if is_merge && self.fired_merges.contains(&key) {
            return Ok(());
        }
        let count = self.input_counts[consumer];
        let state = match self.pending.entry(key) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let bytes = (count as u64)
                    .saturating_mul(std::mem::size_of::<Option<Value>>() as u64)
                    .saturating_add(BOOKKEEPING_BYTES);
                let charge = budget::hold(bytes)
                    .and_then(|charge| budget::work(count as u64).map(|()| charge))
                    .map_err(|e| budget_error(self.graph, consumer, e))?;
                entry.insert(PendingNode {
                    inputs: vec![None; count],
                    arrived: 0,
                    controls_missing: node.input.iter().filter(|n| n.starts_with('^')).count(),
                    live_data: false,
                    _charge: charge,
                })
            }
        };
        if let Some(slot_value) = state.inputs.get_mut(slot) {
            let control = node.input[slot].starts_with('^');
            if slot_value.is_none() {
                state.arrived += 1;
                if control {
                    state.controls_missing = state.controls_missing.saturating_sub(1);
                }
            }
            state.live_data |= !control && value.is_some();
            *slot_value = Some(value.clone());
        }
        // A Merge fires once its control inputs are in and any data input is live, or once
        // every input has arrived (all dead); any other node once every input has arrived.
        let ready =
            state.arrived == count || (is_merge && state.controls_missing == 0 && state.live_data);
        if ready {
            if let Some(state) = self.pending.remove(&key) {
                let inputs = state.inputs.into_iter().map(Option::flatten).collect();
                if is_merge {
                    self.bookkeeping(consumer)?;
                    self.fired_merges.insert(key);
                }
                self.ready.push_back((consumer, frame, iter, inputs));
            }
        }
        Ok(())
    }
}
