//! Deployment targets: what each consumer of a frozen GraphDef can load, and a checker that
//! names every node a target cannot load.
//!
//! A [`Target`] is data: one JSON profile per consumer in `targets/profiles/` (embedded with
//! `include_str!`), naming the source it was read from, the version, the op lists with their
//! counts, and the [`Constraint`]s beyond op names (Const inputs, Const encodings, static
//! shapes, attributes, ...). graphopt's own evaluator is a target too ([`GRAPHOPT`]), built
//! from the kernel table rather than from a file.
//!
//! [`check`] returns one [`Problem`] per node and reason, in graph order, then the nodes inside
//! called functions where the target converts function bodies. A problem is *blocking* when the
//! target fails on it; the others are advice (a missing `_output_shapes`) or an op the profile
//! cannot vouch for (a target whose op list could only partly be read). Legalization composes
//! rewrites until [`check`] has nothing blocking left; [`Problem::kind`] tells it which rewrite
//! applies.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

mod subgraphs;
pub use subgraphs::{Otherwise, Pattern, PatternNode, Requirement, SubgraphFusion};

use crate::graph::edit::data_inputs;
use crate::graph::ops::CONTROL_FLOW_PRIMITIVES;
use crate::graph::{attrs, GraphIndex, InputRef};
use crate::proto::{attr_value, DataType, FunctionDef, GraphDef, NodeDef, TensorProto};

/// Name of the target that stands for graphopt's own evaluator.
pub const GRAPHOPT: &str = "graphopt";

/// The profiles shipped with graphopt, in the order `graphopt targets` lists them.
const PROFILES: &[(&str, &str)] = &[
    ("opencv.json", include_str!("profiles/opencv.json")),
    ("tract.json", include_str!("profiles/tract.json")),
    ("tvm.json", include_str!("profiles/tvm.json")),
    ("tensorrt.json", include_str!("profiles/tensorrt.json")),
    ("ascend.json", include_str!("profiles/ascend.json")),
];

/// Ops graphopt's executor runs itself rather than through the kernel table (`eval/mod.rs`,
/// `Executor::fire` and `emit`): feeds, logging, TF1 control flow, functional ops and calls.
pub fn executor_ops() -> impl Iterator<Item = &'static str> {
    let feeds_and_logging = ["Placeholder", "Print"];
    let functional_and_calls = [
        "While",
        "StatelessWhile",
        "If",
        "StatelessIf",
        "Case",
        "StatelessCase",
        "PartitionedCall",
        "StatefulPartitionedCall",
    ];
    feeds_and_logging
        .into_iter()
        .chain(CONTROL_FLOW_PRIMITIVES.iter().copied())
        .chain(functional_and_calls)
}

/// What can go wrong finding or reading a target profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("unknown target '{name}'; the targets are: {}", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
    #[error("target profile {file}: {message}")]
    BadProfile { file: String, message: String },
    #[error("target profile {file}: op list '{list}' says {said} ops but has {has}")]
    CountMismatch {
        file: String,
        list: String,
        said: usize,
        has: usize,
    },
}

/// Where a profile's facts were read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// `owner/name` of the repository.
    pub repository: String,
    /// Tag and commit (or other pin) that was read.
    pub revision: String,
    /// File path inside the repository.
    pub path: String,
    /// What was read there.
    pub read: String,
}

/// One list of op names a target accepts, as its source spells them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpList {
    pub name: String,
    pub what: String,
    /// The number of ops, as recorded when the list was read (checked against `ops`).
    pub count: usize,
    pub ops: Vec<String>,
}

/// Input positions per op; negative positions count from the last data input (-1 = last).
pub type InputPositions = BTreeMap<String, Vec<i64>>;

/// A rule beyond op names. Each carries the reason reported with its problems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Constraint {
    /// These ops fail whatever their op list says (variables, functional control flow, ...).
    RejectedOps { ops: Vec<String>, why: String },
    /// These nodes must have at least one input.
    InputlessNodes { ops: Vec<String>, why: String },
    /// These ops load only inside a pattern the target's importer recognizes (and fuses, or
    /// folds away); the patterns graphopt recognizes too are named in `recognized`.
    FusedOnly {
        ops: Vec<String>,
        #[serde(default)]
        recognized: Vec<String>,
        why: String,
    },
    /// The inputs must be Const nodes (looking through the `through` ops).
    ConstInputs {
        inputs: InputPositions,
        #[serde(default)]
        through: Vec<String>,
        why: String,
    },
    /// The inputs must be Consts holding their value in `int_val` (not `tensor_content`).
    ConstIntVal {
        inputs: InputPositions,
        #[serde(default)]
        through: Vec<String>,
        why: String,
    },
    /// The inputs must be Consts holding their values in `tensor_content`.
    ConstTensorContent {
        inputs: InputPositions,
        #[serde(default)]
        through: Vec<String>,
        why: String,
    },
    /// Every Const read by an op of the `readers` op lists must have one of `dtypes` and
    /// store every element (no empty value list, no one-value splat).
    ConstValuesReadable {
        readers: Vec<String>,
        dtypes: Vec<String>,
        #[serde(default)]
        through: Vec<String>,
        why: String,
    },
    /// These ops (graph inputs) must declare a fully known shape.
    StaticInputShapes { ops: Vec<String>, why: String },
    /// Nodes should carry `_output_shapes` (advice, not blocking).
    OutputShapes { why: String },
    /// `attr` of these ops must be one of `allowed` (`default` when absent); a string, integer,
    /// bool or integer list (`[1, 1, 1, 1]`).
    AttrValues {
        ops: Vec<String>,
        attr: String,
        allowed: Vec<serde_json::Value>,
        #[serde(default)]
        default: Option<serde_json::Value>,
        #[serde(default = "yes")]
        blocking: bool,
        why: String,
    },
    /// These ops must not carry these attributes.
    AttrsAbsent {
        ops: Vec<String>,
        attrs: Vec<String>,
        why: String,
    },
    /// A Const read by one of these ops must have no other reader.
    PrivateConsts { readers: Vec<String>, why: String },
    /// A graph input (these ops) of a fixed rank-4 shape must get a layout from the
    /// `data_format` attributes of the nodes after it, inferred as OpenCV's importer infers it
    /// (see [`inferred_input_layouts`]).
    InferredInputLayout { ops: Vec<String>, why: String },
}

fn yes() -> bool {
    true
}

/// A deployment target: a consumer of frozen GraphDefs, what it loads and where that was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Short name used on the command line (`--target=opencv`).
    pub name: String,
    pub title: String,
    /// The version whose sources were read.
    pub version: String,
    /// Whether the consumer installs here (its tests then run it for real).
    pub installs_here: bool,
    pub sources: Vec<Source>,
    /// Whether `op_lists` are the target's whole op list. When not, an op outside them is
    /// reported as unverified rather than as a failure.
    pub ops_complete: bool,
    pub op_lists: Vec<OpList>,
    /// Why an op outside every list fails.
    pub unknown_op_why: String,
    #[serde(default)]
    pub constraints: Vec<Constraint>,
    /// Subgraphs the importer fuses before loading (their nodes are checked as what they
    /// become).
    #[serde(default)]
    pub fused_subgraphs: Option<SubgraphFusion>,
    /// Whether the target converts the bodies of called functions (then they are checked too).
    #[serde(default)]
    pub check_functions: bool,
    #[serde(default)]
    pub notes: Vec<String>,
    /// What this profile could not verify.
    #[serde(default)]
    pub unverified: Vec<String>,
}

impl Target {
    /// The target called `name`.
    pub fn by_name(name: &str) -> Result<&'static Target, TargetError> {
        let targets = all()?;
        targets
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| TargetError::Unknown {
                name: name.to_string(),
                known: targets.iter().map(|t| t.name.clone()).collect(),
            })
    }

    /// Whether some op list of the target names `op`.
    pub fn lists_op(&self, op: &str) -> bool {
        self.op_lists.iter().any(|l| l.ops.iter().any(|o| o == op))
    }

    /// Every op named by the target's op lists, sorted, each once.
    pub fn ops(&self) -> BTreeSet<&str> {
        self.op_lists
            .iter()
            .flat_map(|l| l.ops.iter().map(String::as_str))
            .collect()
    }

    /// Whether one of the op lists called `names` names `op` (asked per node: no set is
    /// built, which sorting each time made a third of OpenCV's check on a large graph).
    fn lists_op_in(&self, names: &[String], op: &str) -> bool {
        self.op_lists
            .iter()
            .any(|l| names.contains(&l.name) && has(&l.ops, op))
    }

    /// Parses one JSON profile and checks its recorded counts and its references.
    pub fn from_json(file: &str, text: &str) -> Result<Target, TargetError> {
        let bad = |message: String| TargetError::BadProfile {
            file: file.to_string(),
            message,
        };
        let mut target: Target = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        if let Some(fusion) = &mut target.fused_subgraphs {
            fusion.compile().map_err(bad)?;
        }
        for list in &target.op_lists {
            if list.count != list.ops.len() {
                return Err(TargetError::CountMismatch {
                    file: file.to_string(),
                    list: list.name.clone(),
                    said: list.count,
                    has: list.ops.len(),
                });
            }
        }
        for constraint in &target.constraints {
            match constraint {
                Constraint::ConstValuesReadable {
                    readers, dtypes, ..
                } => {
                    if let Some(r) = readers
                        .iter()
                        .find(|r| !target.op_lists.iter().any(|l| &l.name == *r))
                    {
                        return Err(bad(format!("constraint names no op list '{r}'")));
                    }
                    if let Some(d) = dtypes.iter().find(|d| DataType::from_str_name(d).is_none()) {
                        return Err(bad(format!("unknown dtype '{d}'")));
                    }
                }
                Constraint::FusedOnly { recognized, .. } => {
                    if let Some(p) = recognized.iter().find(|p| !PATTERNS.contains(&p.as_str())) {
                        return Err(bad(format!("unknown fused pattern '{p}'")));
                    }
                }
                _ => {}
            }
        }
        Ok(target)
    }

    /// graphopt's own evaluator as a target: the ops its kernel table has plus the ones its
    /// executor runs itself; called functions are checked too, since it runs them.
    pub fn graphopt() -> Target {
        let kernels: Vec<String> = crate::eval::kernels::registered_ops()
            .into_iter()
            .map(str::to_string)
            .collect();
        let executor: Vec<String> = executor_ops().map(str::to_string).collect();
        Target {
            name: GRAPHOPT.into(),
            title: "graphopt's reference evaluator (graphopt::eval, the `eval` feature)".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            installs_here: true,
            sources: vec![
                Source {
                    repository: "graphopt".into(),
                    revision: format!("graphopt-core {}", env!("CARGO_PKG_VERSION")),
                    path: "graphopt-core/src/eval/kernels.rs".into(),
                    read: "kernels::registered_ops(), the kernel table itself".into(),
                },
                Source {
                    repository: "graphopt".into(),
                    revision: format!("graphopt-core {}", env!("CARGO_PKG_VERSION")),
                    path: "graphopt-core/src/eval/mod.rs".into(),
                    read: "the ops Executor::fire and emit run without a kernel".into(),
                },
            ],
            ops_complete: true,
            op_lists: vec![
                OpList {
                    name: "kernels".into(),
                    what: "ops graphopt's kernel table has a kernel for".into(),
                    count: kernels.len(),
                    ops: kernels,
                },
                OpList {
                    name: "executor".into(),
                    what: "ops the executor runs itself: feeds, TF1 control flow, functional control flow and calls".into(),
                    count: executor.len(),
                    ops: executor,
                },
            ],
            unknown_op_why: "graphopt's evaluator has no kernel for this op: an app running the graph with the `eval` feature would fail here at run time".into(),
            constraints: Vec::new(),
            fused_subgraphs: None,
            check_functions: true,
            notes: vec!["The ops inside called functions (While/If/Case bodies, PartitionedCall) are checked too: the evaluator runs them.".into()],
            unverified: Vec::new(),
        }
    }
}

/// Every target: graphopt's evaluator, then the shipped profiles.
pub fn all() -> Result<&'static [Target], TargetError> {
    static TARGETS: OnceLock<Result<Vec<Target>, TargetError>> = OnceLock::new();
    TARGETS
        .get_or_init(|| {
            let mut targets = vec![Target::graphopt()];
            for (file, text) in PROFILES {
                targets.push(Target::from_json(file, text)?);
            }
            Ok(targets)
        })
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// Why a node cannot be loaded; tells a legalizer which rewrite applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The op is in none of the target's op lists.
    UnknownOp,
    /// The op is outside the part of an incomplete op list that could be read (not blocking).
    UnverifiedOp,
    /// The target rejects this op whatever its op lists say.
    RejectedOp,
    /// The node has no inputs, and the target needs some.
    InputlessNode,
    /// The op loads only inside a pattern (fused or folded away) this node is not part of.
    FusedOnly,
    /// An input must be a Const and is not.
    NonConstInput,
    /// A Const input is stored in a form the target does not read.
    ConstEncoding,
    /// A graph input has unknown dimensions.
    DynamicInputShape,
    /// Nodes lack `_output_shapes` (advice, not blocking).
    MissingOutputShapes,
    /// An attribute has a value the target does not support.
    AttrValue,
    /// An attribute the target rejects is present.
    RejectedAttr,
    /// The importer's own preprocessing fails here (a fused subgraph's check, a control input
    /// it cannot resolve).
    ImportFails,
    /// A Const input is shared with other readers, and the target needs it private.
    SharedConst,
    /// The target cannot tell the layout of a graph input of fixed shape.
    UnknownInputLayout,
}

/// One node a target cannot load (or, when not blocking, one it may mishandle).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The node's name; inside a function body, `function/node`.
    pub node: String,
    pub op: String,
    pub why: String,
    pub kind: ProblemKind,
    /// Whether the target fails on it (false: advice, or an op the profile cannot vouch for).
    pub blocking: bool,
}

impl std::fmt::Display for Problem {
    /// `node (op): why`, as `graphopt check` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.node, self.op, self.why)
    }
}

/// [`check`] against the target called `name`.
pub fn check_target(graph: &GraphDef, name: &str) -> Result<Vec<Problem>, TargetError> {
    Ok(check(graph, Target::by_name(name)?))
}

/// Every node of `graph` that `target` cannot load, in graph order, then the nodes of called
/// function bodies when the target converts them.
pub fn check(graph: &GraphDef, target: &Target) -> Vec<Problem> {
    let mut problems = check_nodes(&graph.node, target, None);
    problems.extend(shared_const_problems(graph, target));
    problems.extend(input_layout_problems(graph, target));
    if let Some(problem) = output_shapes_advice(&graph.node, target) {
        problems.push(problem);
    }
    if target.check_functions {
        let library: HashMap<&str, &FunctionDef> = graph
            .library
            .iter()
            .flat_map(|l| l.function.iter())
            .filter_map(|f| f.signature.as_ref().map(|s| (s.name.as_str(), f)))
            .collect();
        let mut seen = BTreeSet::new();
        // (function, caller's name, caller's op): a problem about the call names both.
        let mut pending: Vec<(String, String, String)> = graph
            .node
            .iter()
            .filter(|n| target.lists_op(&n.op))
            .flat_map(|n| {
                called_functions(n)
                    .into_iter()
                    .map(|f| (f, n.name.clone(), n.op.clone()))
            })
            .collect();
        while let Some((name, caller, caller_op)) = pending.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(function) = library.get(name.as_str()) else {
                problems.push(Problem {
                    node: caller.clone(),
                    op: caller_op,
                    why: format!(
                        "calls function '{name}', which the graph's library does not define"
                    ),
                    kind: ProblemKind::UnknownOp,
                    blocking: true,
                });
                continue;
            };
            let scope = Scope {
                function: &name,
                caller: &caller,
            };
            problems.extend(check_nodes(&function.node_def, target, Some(scope)));
            for node in &function.node_def {
                if target.lists_op(&node.op) {
                    for called in called_functions(node) {
                        pending.push((called, format!("{name}/{}", node.name), node.op.clone()));
                    }
                }
            }
        }
    }
    problems
}

/// Whether `problems` contain one the target fails on.
pub fn any_blocking(problems: &[Problem]) -> bool {
    problems.iter().any(|p| p.blocking)
}

/// The nodes the target fails on, each once, in the order of their first problem (a node can
/// break more than one constraint).
pub fn blocking_nodes(problems: &[Problem]) -> Vec<&Problem> {
    let mut seen = HashSet::new();
    problems
        .iter()
        .filter(|p| p.blocking && seen.insert(p.node.as_str()))
        .collect()
}

/// The function body a node belongs to, for naming.
#[derive(Clone, Copy)]
struct Scope<'a> {
    function: &'a str,
    caller: &'a str,
}

/// Names of the functions a node calls (`f`, `then_branch`, `body`, `branches`, ...).
fn called_functions(node: &NodeDef) -> Vec<String> {
    let mut names = Vec::new();
    for value in node.attr.values() {
        match &value.value {
            Some(attr_value::Value::Func(f)) => names.push(f.name.clone()),
            Some(attr_value::Value::List(list)) => {
                names.extend(list.func.iter().map(|f| f.name.clone()));
            }
            _ => {}
        }
    }
    names
}

/// The patterns graphopt recognizes, by the name profiles use.
const PATTERNS: &[&str] = &["atrous_convolution", "dead_branch_merge"];

struct Nodes<'a> {
    nodes: &'a [NodeDef],
    index: GraphIndex<'a>,
    /// [`Nodes::source`]'s answers per `through` list, by node: every node of a chain of
    /// through-ops is asked about, and walking the chain for each is quadratic.
    sources: RefCell<HashMap<Vec<String>, Vec<Resolved>>>,
}

/// What [`Nodes::source`] knows of a node while resolving.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Resolved {
    Unknown,
    /// On the path being walked (met again: a cycle of through-ops).
    Walking,
    /// The source's index, `None` if the chain reaches an input without a producer.
    Source(Option<usize>),
}

impl<'a> Nodes<'a> {
    fn new(nodes: &'a [NodeDef]) -> Self {
        Nodes {
            nodes,
            index: GraphIndex::over(nodes),
            sources: RefCell::new(HashMap::new()),
        }
    }

    fn position(&self, input: &str) -> Option<usize> {
        self.index.index_of(InputRef::parse(input).node)
    }

    fn producer(&self, input: &str) -> Option<&'a NodeDef> {
        self.position(input).and_then(|i| self.nodes.get(i))
    }

    /// The node feeding `input`, looking through `through` ops (their first data input). A
    /// cycle of through-ops (an invalid graph) resolves to the node where the walk met itself.
    fn source(&self, input: &str, through: &[String]) -> Option<&'a NodeDef> {
        let start = self.position(input)?;
        let mut memo = self.sources.borrow_mut();
        if !memo.contains_key(through) {
            memo.insert(through.to_vec(), vec![Resolved::Unknown; self.nodes.len()]);
        }
        let known = memo.get_mut(through)?;
        let mut path = Vec::new();
        let mut current = start;
        let source = loop {
            let (Some(&state), Some(node)) = (known.get(current), self.nodes.get(current)) else {
                break None;
            };
            match state {
                Resolved::Source(source) => break source,
                Resolved::Walking => break Some(current),
                Resolved::Unknown if !through.contains(&node.op) => break Some(current),
                Resolved::Unknown => {}
            }
            if let Some(state) = known.get_mut(current) {
                *state = Resolved::Walking;
            }
            path.push(current);
            let next = data_inputs(node).first().and_then(|i| self.position(i));
            match next {
                Some(next) => current = next,
                None => break None,
            }
        };
        for i in path {
            if let Some(state) = known.get_mut(i) {
                *state = Resolved::Source(source);
            }
        }
        source.and_then(|i| self.nodes.get(i))
    }
}

/// The data input at `position` (negative: from the end).
fn input_at<'n>(inputs: &[&'n str], position: i64) -> Option<(usize, &'n str)> {
    let index = if position < 0 {
        inputs.len().checked_sub(position.unsigned_abs() as usize)?
    } else {
        usize::try_from(position).ok()?
    };
    inputs.get(index).map(|i| (index, *i))
}

/// Whether `ops` names `op`.
fn has(ops: &[String], op: &str) -> bool {
    ops.iter().any(|o| o == op)
}

fn check_nodes(nodes: &[NodeDef], target: &Target, scope: Option<Scope<'_>>) -> Vec<Problem> {
    let index = Nodes::new(nodes);
    let recognized = recognized_patterns(&index, target);
    let mut fusions = target
        .fused_subgraphs
        .as_ref()
        .map(|f| f.apply(nodes))
        .unwrap_or_default();
    let mut problems = Vec::new();
    for (position, original) in nodes.iter().enumerate() {
        if let Some(why) = fusions.failures.remove(&position) {
            problems.push(Problem {
                node: match scope {
                    Some(s) => format!("{}/{}", s.function, original.name),
                    None => original.name.clone(),
                },
                op: original.op.clone(),
                why,
                kind: ProblemKind::ImportFails,
                blocking: true,
            });
            continue;
        }
        if fusions.is_absorbed(position) {
            continue;
        }
        let fused = fusions.fused.remove(&position);
        let node = fused.as_ref().map_or(original, |f| &f.node);
        let fused_as = fused.as_ref().map(|f| {
            format!(
                " (as the {} the importer fuses its {} into)",
                f.node.op, f.pattern
            )
        });
        let mut report = |kind: ProblemKind, why: String, blocking: bool| {
            let why = match &fused_as {
                Some(fused_as) => format!("{why}{fused_as}"),
                None => why,
            };
            let (name, why) = match scope {
                Some(s) => (
                    format!("{}/{}", s.function, node.name),
                    format!(
                        "{why} (inside function '{}', called by '{}')",
                        s.function, s.caller
                    ),
                ),
                None => (node.name.clone(), why),
            };
            problems.push(Problem {
                node: name,
                op: node.op.clone(),
                why,
                kind,
                blocking,
            });
        };
        // A fused node is the importer's own construction: only its inputs and attributes
        // are checked.
        let op_problem = match fused {
            Some(_) => None,
            None => op_problem(node, target, &recognized),
        };
        if let Some((kind, why)) = op_problem {
            let blocking = kind != ProblemKind::UnverifiedOp;
            report(kind, why, blocking);
            if blocking {
                continue;
            }
        }
        for constraint in &target.constraints {
            for (kind, why, blocking) in
                node_problems(node, constraint, target, &index, scope.is_some())
            {
                report(kind, why, blocking);
            }
        }
    }
    problems
}

/// The op-level problem of a node: rejected, fused-only outside a pattern, or unknown.
fn op_problem(
    node: &NodeDef,
    target: &Target,
    recognized: &BTreeSet<&str>,
) -> Option<(ProblemKind, String)> {
    let op = node.op.as_str();
    for constraint in &target.constraints {
        match constraint {
            Constraint::RejectedOps { ops, why } if has(ops, op) => {
                return Some((ProblemKind::RejectedOp, why.clone()));
            }
            Constraint::FusedOnly { ops, why, .. }
                if has(ops, op) && !recognized.contains(node.name.as_str()) =>
            {
                return Some((ProblemKind::FusedOnly, why.clone()));
            }
            Constraint::FusedOnly { ops, .. } if has(ops, op) => return None,
            _ => {}
        }
    }
    if target.lists_op(op) {
        return None;
    }
    let kind = if target.ops_complete {
        ProblemKind::UnknownOp
    } else {
        ProblemKind::UnverifiedOp
    };
    Some((kind, target.unknown_op_why.clone()))
}

/// Names of the nodes that are part of a fused pattern the target's importer recognizes.
fn recognized_patterns<'a>(index: &Nodes<'a>, target: &Target) -> BTreeSet<&'a str> {
    let mut names = BTreeSet::new();
    let wanted: BTreeSet<&str> = target
        .constraints
        .iter()
        .flat_map(|c| match c {
            Constraint::FusedOnly { recognized, .. } => recognized.as_slice(),
            _ => &[],
        })
        .map(String::as_str)
        .collect();
    if wanted.contains("atrous_convolution") {
        for node in index.nodes.iter().filter(|n| n.op == "BatchToSpaceND") {
            if atrous_read_right(index, node).is_some() {
                names.insert(node.name.as_str());
            }
        }
    }
    if wanted.contains("dead_branch_merge") {
        dead_branch_merges(index, &mut names);
    }
    names
}

/// Adds the Merges a Switch with a Const predicate cuts off, as tract's `Switch::incorporate`
/// (tract-tensorflow's ops/logic.rs) finds them: once analysis knows a Switch's predicate it
/// wires the Switch's data input through, and walks from the dead output (output 0, taken when
/// the predicate is false, dies when it is true) along data edges, every output of each node
/// reached dead in turn, shunting each Merge it reaches to its other input instead of going
/// on. Predicates are read from Consts (through Identity), scalar DT_BOOL. Linear in the
/// edges: every node dies once.
fn dead_branch_merges<'a>(index: &Nodes<'a>, names: &mut BTreeSet<&'a str>) {
    let through = ["Identity".to_string()];
    let mut roots = Vec::new();
    for (i, node) in index.nodes.iter().enumerate() {
        if node.op != "Switch" {
            continue;
        }
        let predicate = data_inputs(node)
            .get(1)
            .and_then(|p| index.source(p, &through))
            .and_then(const_scalar_bool);
        if let Some(predicate) = predicate {
            roots.push((i, u32::from(!predicate)));
        }
    }
    if roots.is_empty() {
        return;
    }
    // Data edges by producer: (output port, consumer).
    let mut edges: Vec<Vec<(u32, usize)>> = vec![Vec::new(); index.nodes.len()];
    for (c, node) in index.nodes.iter().enumerate() {
        for input in data_inputs(node) {
            let input = InputRef::parse(input);
            if let Some(list) = index
                .index
                .index_of(input.node)
                .and_then(|p| edges.get_mut(p))
            {
                list.push((input.port, c));
            }
        }
    }
    let mut dead = vec![false; index.nodes.len()];
    let mut reached: Vec<usize> = Vec::new();
    for (switch, port) in roots {
        let outgoing = edges.get(switch).map_or(&[][..], Vec::as_slice);
        reached.extend(outgoing.iter().filter(|(p, _)| *p == port).map(|(_, c)| *c));
        while let Some(c) = reached.pop() {
            let Some(node) = index.nodes.get(c) else {
                continue;
            };
            if node.op == "Merge" {
                names.insert(node.name.as_str());
                continue;
            }
            if dead.get(c).copied().unwrap_or(true) {
                continue;
            }
            if let Some(d) = dead.get_mut(c) {
                *d = true;
            }
            let outgoing = edges.get(c).map_or(&[][..], Vec::as_slice);
            reached.extend(outgoing.iter().map(|(_, consumer)| *consumer));
        }
    }
}

/// The value of a Const holding one DT_BOOL scalar.
fn const_scalar_bool(node: &NodeDef) -> Option<bool> {
    if node.op != "Const" {
        return None;
    }
    let tensor = attrs::tensor(node, "value")?;
    let scalar = tensor
        .tensor_shape
        .as_ref()
        .is_none_or(|s| s.dim.is_empty() && !s.unknown_rank);
    if tensor.dtype != DataType::DtBool as i32 || !scalar {
        return None;
    }
    match tensor.tensor_content.as_ref() {
        [] => Some(tensor.bool_val.first().copied().unwrap_or(false)),
        [byte] => Some(*byte != 0),
        _ => None,
    }
}

/// Whether `b2s` ends `SpaceToBatchND -> Conv2D/DepthwiseConv2dNative -> BatchToSpaceND` as
/// OpenCV's parseConvolution reads it right: one undilated stride-1 VALID convolution between,
/// fed only by the SpaceToBatchND and read only by `b2s`, both blocks the same Consts, and
/// what OpenCV computes (the convolution dilated by the block, padded on both sides by the
/// paddings before, crops ignored) equal to what the ops define: crops before 0, paddings
/// after minus crops after equal to the paddings before.
fn atrous_read_right(index: &Nodes<'_>, b2s: &NodeDef) -> Option<()> {
    let ints = |input: &str| {
        let p = index.producer(input).filter(|p| p.op == "Const")?;
        crate::graph::edit::const_value(p)?.integers()
    };
    let b2s_inputs = data_inputs(b2s);
    let conv = index.producer(b2s_inputs.first()?)?;
    let s2b = index.producer(data_inputs(conv).first()?)?;
    let single_reader = |n: &NodeDef, reader: &NodeDef| {
        let at = |m: &NodeDef| index.index.index_of(&m.name);
        let (n, reader) = (at(n)?, at(reader)?);
        Some(matches!(index.index.consumers(n), [only] if only.node == reader))
    };
    let ones = |name: &str| attrs::ints(conv, name).is_none_or(|v| v.iter().all(|&d| d == 1));
    if !matches!(conv.op.as_str(), "Conv2D" | "DepthwiseConv2dNative")
        || s2b.op != "SpaceToBatchND"
        || attrs::string(conv, "padding").as_deref() != Some("VALID")
        || !ones("strides")
        || !ones("dilations")
        || single_reader(s2b, conv) != Some(true)
        || single_reader(conv, b2s) != Some(true)
    {
        return None;
    }
    let s2b_inputs = data_inputs(s2b);
    let block = ints(s2b_inputs.get(1)?)?;
    let pads = ints(s2b_inputs.get(2)?)?;
    let crops = ints(b2s_inputs.get(2)?)?;
    let read_right = block.len() == 2
        && ints(b2s_inputs.get(1)?)? == block
        && pads.len() == 4
        && crops.len() == 4
        && (0..2).all(|a| crops[2 * a] == 0 && pads[2 * a + 1] - crops[2 * a + 1] == pads[2 * a]);
    read_right.then_some(())
}

/// Problems of one node under one constraint (op-level constraints are handled by
/// [`op_problem`]; Const checks skip function bodies, whose inputs name function outputs).
fn node_problems(
    node: &NodeDef,
    constraint: &Constraint,
    target: &Target,
    index: &Nodes<'_>,
    in_function: bool,
) -> Vec<(ProblemKind, String, bool)> {
    let op = node.op.as_str();
    let inputs = data_inputs(node);
    let mut out = Vec::new();
    match constraint {
        Constraint::InputlessNodes { ops, why } if has(ops, op) && node.input.is_empty() => {
            out.push((ProblemKind::InputlessNode, why.clone(), true));
        }
        Constraint::ConstInputs {
            inputs: positions,
            through,
            why,
        }
        | Constraint::ConstIntVal {
            inputs: positions,
            through,
            why,
        }
        | Constraint::ConstTensorContent {
            inputs: positions,
            through,
            why,
        } if !in_function => {
            let positions = positions.get(op).map_or(&[][..], Vec::as_slice);
            let encoding = ConstEncoding::wanted_by(constraint);
            const_input_problems(&mut out, index, &inputs, positions, through, why, encoding);
        }
        Constraint::ConstValuesReadable {
            readers,
            dtypes,
            through,
            why,
        } if !in_function && target.lists_op_in(readers, op) && op != "Const" => {
            let int_val_slots = int_val_slots(target, op, inputs.len());
            let dtypes: Vec<i32> = dtypes
                .iter()
                .filter_map(|d| DataType::from_str_name(d))
                .map(|d| d as i32)
                .collect();
            for (k, input) in inputs.iter().enumerate() {
                if int_val_slots.contains(&k) {
                    continue;
                }
                let Some(p) = index.source(input, through).filter(|p| p.op == "Const") else {
                    continue;
                };
                let Some(tensor) = attrs::tensor(p, "value") else {
                    continue;
                };
                if let Some(problem) = unreadable_const(tensor, &dtypes) {
                    out.push((
                        ProblemKind::ConstEncoding,
                        format!("input {k} ('{input}') {problem}: {why}"),
                        true,
                    ));
                }
            }
        }
        Constraint::StaticInputShapes { ops, why } if has(ops, op) => {
            let shape = attrs::shape(node, "shape");
            let unknown = match shape {
                None => Some("declares no shape".to_string()),
                Some(s) if s.unknown_rank => Some("has an unknown rank".to_string()),
                Some(s) if s.dim.iter().any(|d| d.size < 0) => Some(format!(
                    "has unknown dimensions [{}]",
                    s.dim
                        .iter()
                        .map(|d| d.size.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                )),
                Some(_) => None,
            };
            if let Some(unknown) = unknown {
                out.push((
                    ProblemKind::DynamicInputShape,
                    format!("the input {unknown}: {why}"),
                    true,
                ));
            }
        }
        Constraint::AttrValues {
            ops,
            attr,
            allowed,
            default,
            blocking,
            why,
        } if has(ops, op) => {
            let value = attr_json(node, attr).or_else(|| default.clone());
            if let Some(value) = value {
                if !allowed.contains(&value) {
                    out.push((
                        ProblemKind::AttrValue,
                        format!("{attr} is {value}: {why}"),
                        *blocking,
                    ));
                }
            }
        }
        Constraint::AttrsAbsent {
            ops,
            attrs: names,
            why,
        } if has(ops, op) => {
            for name in names {
                if node.attr.contains_key(name) {
                    out.push((
                        ProblemKind::RejectedAttr,
                        format!("has attribute '{name}': {why}"),
                        true,
                    ));
                }
            }
        }
        _ => {}
    }
    out
}

/// How a Const-input constraint wants the Const's value stored: `holds` accepts the value,
/// `lacks` ends "is a Const without ..." for one that does not.
struct ConstEncoding {
    holds: fn(&TensorProto) -> bool,
    lacks: &'static str,
}

impl ConstEncoding {
    /// The encoding `constraint` asks of its Consts; `None` takes any.
    fn wanted_by(constraint: &Constraint) -> Option<Self> {
        match constraint {
            Constraint::ConstIntVal { .. } => Some(ConstEncoding {
                holds: |t| !t.int_val.is_empty() && t.tensor_content.is_empty(),
                lacks: "its value in int_val",
            }),
            Constraint::ConstTensorContent { .. } => Some(ConstEncoding {
                holds: |t| !t.tensor_content.is_empty(),
                lacks: "tensor_content",
            }),
            _ => None,
        }
    }
}

/// Problems of the inputs at `positions` under a Const-input constraint: each must come from a
/// Const (looking through the `through` ops) whose value, given an `encoding`, is stored so.
fn const_input_problems(
    out: &mut Vec<(ProblemKind, String, bool)>,
    index: &Nodes<'_>,
    inputs: &[&str],
    positions: &[i64],
    through: &[String],
    why: &str,
    encoding: Option<ConstEncoding>,
) {
    for &position in positions {
        let Some((k, input)) = input_at(inputs, position) else {
            continue;
        };
        match index.source(input, through) {
            Some(p) if p.op == "Const" => {
                let Some(encoding) = &encoding else { continue };
                if !attrs::tensor(p, "value").is_some_and(encoding.holds) {
                    out.push((
                        ProblemKind::ConstEncoding,
                        format!(
                            "input {k} ('{input}') is a Const without {}: {why}",
                            encoding.lacks
                        ),
                        true,
                    ));
                }
            }
            source => out.push((
                ProblemKind::NonConstInput,
                format!("input {k} ('{input}') {}: {why}", described(source)),
                true,
            )),
        }
    }
}

/// "comes from OP 'name', not a Const" or "has no producer".
fn described(source: Option<&NodeDef>) -> String {
    match source {
        Some(p) => format!("comes from {} '{}', not a Const", p.op, p.name),
        None => "has no producer in the graph, so it is not a Const".into(),
    }
}

/// Input slots of `op` that a ConstIntVal constraint covers (they are read from int_val).
fn int_val_slots(target: &Target, op: &str, count: usize) -> BTreeSet<usize> {
    let mut slots = BTreeSet::new();
    for constraint in &target.constraints {
        if let Constraint::ConstIntVal { inputs, .. } = constraint {
            for &position in inputs.get(op).map_or(&[][..], Vec::as_slice) {
                let index = if position < 0 {
                    count.checked_sub(position.unsigned_abs() as usize)
                } else {
                    usize::try_from(position).ok()
                };
                slots.extend(index);
            }
        }
    }
    slots
}

/// Why a Const's stored values are not readable by an importer that takes `dtypes`, reads
/// `tensor_content` or else the typed value list, and never expands a one-value splat.
fn unreadable_const(tensor: &TensorProto, dtypes: &[i32]) -> Option<String> {
    let dtype_name = DataType::try_from(tensor.dtype)
        .map(|d| d.as_str_name().to_string())
        .unwrap_or_else(|_| tensor.dtype.to_string());
    if !dtypes.contains(&tensor.dtype) {
        return Some(format!("is a Const of type {dtype_name}"));
    }
    if !tensor.tensor_content.is_empty() {
        return None;
    }
    // Dims come from the file: their product is checked.
    let elements: Option<i64> = match &tensor.tensor_shape {
        Some(shape) => match shape
            .dim
            .iter()
            .try_fold(1i64, |count, d| count.checked_mul(d.size))
        {
            Some(n) => Some(n),
            None => {
                return Some(format!(
                    "is a {dtype_name} Const whose element count overflows"
                ))
            }
        },
        None => None,
    };
    let stored = stored_values(tensor);
    match elements {
        Some(n) if stored == 0 => Some(format!(
            "is a {dtype_name} Const with {n} element(s) and no stored values"
        )),
        Some(n) if n >= 0 && stored as i64 != n => Some(format!(
            "is a {dtype_name} Const of {n} elements stored as {stored} value(s) (TensorFlow's splat form)"
        )),
        _ => None,
    }
}

/// How many values a TensorProto stores in its typed value list.
fn stored_values(tensor: &TensorProto) -> usize {
    match DataType::try_from(tensor.dtype) {
        Ok(DataType::DtFloat) => tensor.float_val.len(),
        Ok(DataType::DtDouble) => tensor.double_val.len(),
        Ok(DataType::DtHalf | DataType::DtBfloat16) => tensor.half_val.len(),
        Ok(DataType::DtInt64) => tensor.int64_val.len(),
        Ok(DataType::DtBool) => tensor.bool_val.len(),
        Ok(DataType::DtString) => tensor.string_val.len(),
        _ => tensor.int_val.len(),
    }
}

/// An attribute as JSON, for comparison with a profile's allowed values (strings, ints and
/// bools; other kinds are not compared).
fn attr_json(node: &NodeDef, name: &str) -> Option<serde_json::Value> {
    match node.attr.get(name)?.value.as_ref()? {
        attr_value::Value::S(s) => Some(serde_json::Value::String(
            String::from_utf8_lossy(s).into_owned(),
        )),
        attr_value::Value::I(i) => Some(serde_json::Value::from(*i)),
        attr_value::Value::B(b) => Some(serde_json::Value::Bool(*b)),
        attr_value::Value::List(l) if !l.i.is_empty() => Some(serde_json::Value::from(l.i.clone())),
        _ => None,
    }
}

/// The Const inputs that readers under a [`Constraint::PrivateConsts`] share with other nodes.
/// Checked on the graph as written, before the importer's own fusions (which these Consts
/// break).
fn shared_const_problems(graph: &GraphDef, target: &Target) -> Vec<Problem> {
    let mut problems = Vec::new();
    for constraint in &target.constraints {
        let Constraint::PrivateConsts { readers, why } = constraint else {
            continue;
        };
        let index = GraphIndex::over(&graph.node);
        // Data reads of every node, all readers together.
        let mut data_reads = vec![0usize; graph.node.len()];
        for node in &graph.node {
            for input in data_inputs(node) {
                if let Some(p) = index.index_of(InputRef::parse(input).node) {
                    data_reads[p] += 1;
                }
            }
        }
        for node in graph.node.iter().filter(|n| has(readers, &n.op)) {
            // This node's reads of each Const, in the order of its first read of each.
            let mut mine: Vec<(usize, usize, &str)> = Vec::new();
            let mut slot: HashMap<usize, usize> = HashMap::new();
            for input in data_inputs(node) {
                let Some(p) = index
                    .index_of(InputRef::parse(input).node)
                    .filter(|&p| graph.node[p].op == "Const")
                else {
                    continue;
                };
                let k = *slot.entry(p).or_insert_with(|| {
                    mine.push((p, 0, input));
                    mine.len() - 1
                });
                mine[k].1 += 1;
            }
            for (p, reads, input) in mine {
                if data_reads[p] > reads {
                    problems.push(Problem {
                        node: node.name.clone(),
                        op: node.op.clone(),
                        why: format!("its input '{input}' is a Const other nodes read too: {why}"),
                        kind: ProblemKind::SharedConst,
                        blocking: true,
                    });
                }
            }
        }
    }
    problems
}

/// A layout as OpenCV's TensorFlow importer tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Unknown,
    Nhwc,
    Nchw,
    Ndhwc,
}

/// The layout of every node as OpenCV 4.10's importer infers it before parsing
/// (tf_importer.cpp's populateNet): walking the nodes in reverse execution order, a node's
/// `data_format` (else what its readers gave it) passes to each node it reads through a data
/// input; readers that disagree leave a node `Unknown`. A graph input then gets the layout of
/// what it flows into: a fixed NHWC input shape is permuted to OpenCV's NCHW only when that
/// is `Nhwc`. `None` when the graph has no execution order. An approximation where readers
/// disagree: OpenCV walks its own order over the graph its simplifier left (Identities removed,
/// subgraphs fused), and merging three or more layouts depends on the order; an unknown
/// `data_format` value, which OpenCV refuses, counts as `Unknown` here.
pub fn inferred_input_layouts(graph: &GraphDef) -> Option<HashMap<&str, Layout>> {
    let declared = |node: &NodeDef| match attrs::string(node, "data_format").as_deref() {
        Some("NHWC" | "channels_last") => Layout::Nhwc,
        Some("NCHW" | "channels_first") => Layout::Nchw,
        Some("NDHWC") => Layout::Ndhwc,
        _ => Layout::Unknown,
    };
    // A known layout met at an entry already holding another makes it Unknown.
    let merge = |entry: &mut Layout, layout: Layout| {
        if layout != Layout::Unknown {
            if *entry == Layout::Unknown {
                *entry = layout;
            } else if *entry != layout {
                *entry = Layout::Unknown;
            }
        }
    };
    let order = crate::graph::execution_order(graph).ok()?;
    let mut layouts: HashMap<&str, Layout> = HashMap::new();
    for &i in order.iter().rev() {
        let node = graph.node.get(i)?;
        let mut layout = declared(node);
        match layouts.get_mut(node.name.as_str()) {
            Some(entry) if layout == Layout::Unknown => layout = *entry,
            Some(entry) => {
                merge(entry, layout);
                layout = *entry;
            }
            None => {
                layouts.insert(&node.name, layout);
            }
        }
        for input in data_inputs(node) {
            let name = InputRef::parse(input).node;
            match layouts.get_mut(name) {
                Some(entry) => merge(entry, layout),
                None => {
                    layouts.insert(name, layout);
                }
            }
        }
    }
    Some(layouts)
}

/// The graph inputs of fixed rank-4 shape whose layout the target infers as neither NHWC nor
/// NCHW (the [`Constraint::InferredInputLayout`] constraint). OpenCV then takes the declared
/// `[N, H, W, C]` as `[N, C, H, W]`: blocking when a Conv2D the input reaches through ops that
/// keep channels has filters whose input channels do not divide `H`, which its shape check
/// refuses at load; advice otherwise (the graph loads, computing on a
/// transposed reading of the input).
fn input_layout_problems(graph: &GraphDef, target: &Target) -> Vec<Problem> {
    let Some((ops, why)) = target.constraints.iter().find_map(|c| match c {
        Constraint::InferredInputLayout { ops, why } => Some((ops, why)),
        _ => None,
    }) else {
        return Vec::new();
    };
    let fixed_rank_4 = |node: &NodeDef| {
        let s = attrs::shape(node, "shape")?;
        let dims: Vec<u64> = s
            .dim
            .iter()
            .filter_map(|d| u64::try_from(d.size).ok())
            .collect();
        (!s.unknown_rank && s.dim.len() == 4 && dims.len() == 4).then_some(dims)
    };
    let index = GraphIndex::over(&graph.node);
    let inputs: Vec<(usize, Vec<u64>)> = graph
        .node
        .iter()
        .enumerate()
        .filter(|(i, n)| has(ops, &n.op) && !index.consumers(*i).is_empty())
        .filter_map(|(i, n)| Some((i, fixed_rank_4(n)?)))
        .collect();
    if inputs.is_empty() {
        return Vec::new();
    }
    let Some(layouts) = inferred_input_layouts(graph) else {
        return Vec::new();
    };
    let mut problems = Vec::new();
    // One visit mark per node, reused: the walks together stay linear in the graph only when
    // inputs share no path, so they stop after [`LAYOUT_WALKS`] inputs.
    let mut seen = vec![usize::MAX; graph.node.len()];
    for (walked, (i, dims)) in inputs.into_iter().enumerate() {
        if walked >= LAYOUT_WALKS {
            break;
        }
        let node = &graph.node[i];
        if matches!(
            layouts.get(node.name.as_str()),
            Some(Layout::Nhwc | Layout::Nchw)
        ) {
            continue;
        }
        let refused = first_convolution_channels(graph, &index, i, &mut seen)
            .into_iter()
            .find(|&channels| channels == 0 || dims[1] % channels != 0);
        let (blocking, consequence) = match refused {
            Some(channels) => (
                true,
                format!(
                    "OpenCV reads its fixed shape {dims:?} as NCHW, {} channels, and the convolution it reaches refuses that (filters of {channels} input channels)",
                    dims[1]
                ),
            ),
            None => (
                false,
                format!("OpenCV reads its fixed shape {dims:?} as NCHW and computes on that reading"),
            ),
        };
        problems.push(Problem {
            node: node.name.clone(),
            op: node.op.clone(),
            why: format!(
                "no node it flows into says its layout (a `data_format` attribute), or they disagree: {consequence}: {why}"
            ),
            kind: ProblemKind::UnknownInputLayout,
            blocking,
        });
    }
    problems
}

/// How many graph inputs [`input_layout_problems`] follows to their first convolutions (a
/// model has a handful; a hostile graph's thousands would each walk the graph).
const LAYOUT_WALKS: usize = 64;

/// Ops through which a tensor keeps its layout and channel count, elementwise or spatial, that
/// [`first_convolution_channels`] walks through.
const KEEP_CHANNELS: &[&str] = &[
    "Abs",
    "Add",
    "AddV2",
    "AvgPool",
    "BiasAdd",
    "Cast",
    "ClipByValue",
    "Elu",
    "Exp",
    "FusedBatchNorm",
    "FusedBatchNormV2",
    "FusedBatchNormV3",
    "Identity",
    "LeakyRelu",
    "MaxPool",
    "Maximum",
    "Minimum",
    "MirrorPad",
    "Mul",
    "Neg",
    "Pad",
    "PadV2",
    "RealDiv",
    "Relu",
    "Relu6",
    "ResizeBilinear",
    "ResizeNearestNeighbor",
    "Rsqrt",
    "Selu",
    "Sigmoid",
    "Softplus",
    "Sqrt",
    "Square",
    "Sub",
    "Tanh",
];

/// The input channels of the filters of every Conv2D that node `start` reaches, as the
/// convolution's input (slot 0), through data edges and [`KEEP_CHANNELS`] ops only (from the
/// filter Const's shape, `[H, W, in, out]`). `seen` marks visited nodes with `start`.
fn first_convolution_channels(
    graph: &GraphDef,
    index: &GraphIndex<'_>,
    start: usize,
    seen: &mut [usize],
) -> Vec<u64> {
    let mut pending = vec![start];
    let mut channels = Vec::new();
    while let Some(i) = pending.pop() {
        for consumer in index.consumers(i) {
            let Some(node) = graph.node.get(consumer.node) else {
                continue;
            };
            let data = node
                .input
                .get(consumer.slot)
                .is_some_and(|i| !i.starts_with('^'));
            if !data || seen.get(consumer.node).is_none_or(|&s| s == start) {
                continue;
            }
            seen[consumer.node] = start;
            if node.op == "Conv2D" && consumer.slot == 0 {
                let filter = data_inputs(node)
                    .get(1)
                    .and_then(|f| index.index_of(InputRef::parse(f).node))
                    .and_then(|f| attrs::tensor(&graph.node[f], "value"))
                    .and_then(|t| t.tensor_shape.as_ref())
                    .and_then(|s| s.dim.get(2))
                    .and_then(|d| u64::try_from(d.size).ok());
                channels.extend(filter);
            } else if KEEP_CHANNELS.contains(&node.op.as_str()) {
                pending.push(consumer.node);
            }
        }
    }
    channels
}

/// One advice problem when nodes lack `_output_shapes` and the target asks for them.
fn output_shapes_advice(nodes: &[NodeDef], target: &Target) -> Option<Problem> {
    let why = target.constraints.iter().find_map(|c| match c {
        Constraint::OutputShapes { why } => Some(why),
        _ => None,
    })?;
    let missing: Vec<&NodeDef> = nodes
        .iter()
        .filter(|n| !n.attr.contains_key("_output_shapes"))
        .collect();
    let first = missing.first()?;
    Some(Problem {
        node: first.name.clone(),
        op: first.op.clone(),
        why: format!(
            "{} of {} nodes (this one first) have no `_output_shapes`: {why}",
            missing.len(),
            nodes.len()
        ),
        kind: ProblemKind::MissingOutputShapes,
        blocking: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{tensor_shape_proto, AttrValue, FunctionDefLibrary, NameAttrList, OpDef};
    use crate::proto::{TensorProto, TensorShapeProto};

    use crate::graph::test_nodes::node;

    #[test]
    fn a_const_whose_dims_overflow_is_reported_not_multiplied() {
        let huge = tensor_shape_proto::Dim {
            size: 1 << 32,
            name: String::new(),
        };
        let tensor = TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(TensorShapeProto {
                dim: vec![huge.clone(), huge],
                unknown_rank: false,
            }),
            float_val: vec![1.0],
            ..Default::default()
        };
        let why = unreadable_const(&tensor, &[DataType::DtFloat as i32]);
        assert_eq!(
            why.as_deref(),
            Some("is a DT_FLOAT Const whose element count overflows")
        );
    }

    fn with_attr(mut node: NodeDef, name: &str, value: attr_value::Value) -> NodeDef {
        node.attr
            .insert(name.into(), AttrValue { value: Some(value) });
        node
    }

    fn shape(dims: &[i64]) -> TensorShapeProto {
        TensorShapeProto {
            dim: dims
                .iter()
                .map(|&size| tensor_shape_proto::Dim {
                    size,
                    ..Default::default()
                })
                .collect(),
            unknown_rank: false,
        }
    }

    fn placeholder(name: &str, dims: &[i64]) -> NodeDef {
        let n = with_attr(
            node(name, "Placeholder", &[]),
            "dtype",
            attr_value::Value::Type(DataType::DtFloat as i32),
        );
        with_attr(n, "shape", attr_value::Value::Shape(shape(dims)))
    }

    fn constant(name: &str, tensor: TensorProto) -> NodeDef {
        let n = with_attr(
            node(name, "Const", &[]),
            "dtype",
            attr_value::Value::Type(tensor.dtype),
        );
        with_attr(n, "value", attr_value::Value::Tensor(Box::new(tensor)))
    }

    /// An int32 Const with its values in int_val.
    fn int_val(name: &str, values: &[i32], dims: &[i64]) -> NodeDef {
        constant(
            name,
            TensorProto {
                dtype: DataType::DtInt32 as i32,
                tensor_shape: Some(shape(dims)),
                int_val: values.to_vec(),
                ..Default::default()
            },
        )
    }

    /// An int32 Const with its values in tensor_content.
    fn int_content(name: &str, values: &[i32], dims: &[i64]) -> NodeDef {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        constant(
            name,
            TensorProto {
                dtype: DataType::DtInt32 as i32,
                tensor_shape: Some(shape(dims)),
                tensor_content: bytes.into(),
                ..Default::default()
            },
        )
    }

    fn float_content(name: &str, values: &[f32], dims: &[i64]) -> NodeDef {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        constant(
            name,
            TensorProto {
                dtype: DataType::DtFloat as i32,
                tensor_shape: Some(shape(dims)),
                tensor_content: bytes.into(),
                ..Default::default()
            },
        )
    }

    fn float_val(name: &str, values: &[f32], dims: &[i64]) -> NodeDef {
        constant(
            name,
            TensorProto {
                dtype: DataType::DtFloat as i32,
                tensor_shape: Some(shape(dims)),
                float_val: values.to_vec(),
                ..Default::default()
            },
        )
    }

    fn graph(nodes: Vec<NodeDef>) -> GraphDef {
        GraphDef {
            node: nodes,
            ..Default::default()
        }
    }

    fn target(name: &str) -> &'static Target {
        Target::by_name(name).unwrap()
    }

    fn blocking(graph: &GraphDef, name: &str) -> Vec<Problem> {
        check(graph, target(name))
            .into_iter()
            .filter(|p| p.blocking)
            .collect()
    }

    fn kinds(problems: &[Problem]) -> Vec<(String, ProblemKind)> {
        problems.iter().map(|p| (p.node.clone(), p.kind)).collect()
    }

    #[test]
    fn every_profile_loads_with_its_recorded_counts() {
        let targets = all().unwrap();
        let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            ["graphopt", "opencv", "tract", "tvm", "tensorrt", "ascend"]
        );
        let count = |t: &str, list: &str| {
            target(t)
                .op_lists
                .iter()
                .find(|l| l.name == list)
                .map(|l| l.ops.len())
        };
        assert_eq!(count("opencv", "dispatch"), Some(62));
        assert_eq!(count("opencv", "layer_registry"), Some(22));
        assert_eq!(count("tract", "registered"), Some(71));
        assert_eq!(count("tvm", "convert_map"), Some(178));
        assert_eq!(count("tensorrt", "registered"), Some(69));
        assert_eq!(count("ascend", "tensorflow_op_map"), Some(40));
        assert_eq!(count("ascend", "tf_plugin_origin_op_types"), Some(828));
        for t in targets {
            assert!(!t.sources.is_empty(), "{} names no source", t.name);
            assert!(!t.version.is_empty());
            for list in &t.op_lists {
                let unique: BTreeSet<&String> = list.ops.iter().collect();
                assert_eq!(unique.len(), list.ops.len(), "{}/{}", t.name, list.name);
            }
        }
        for (name, installs) in [
            ("graphopt", true),
            ("opencv", true),
            ("tract", true),
            ("tvm", false),
            ("tensorrt", false),
            ("ascend", false),
        ] {
            assert_eq!(target(name).installs_here, installs, "{name}");
        }
        assert!(!target("ascend").ops_complete);
        assert!(!target("opencv").lists_op("FusedBatchNormV2"));
        assert!(target("tensorrt").lists_op("FusedBatchNorm"));
        assert!(!target("tensorrt").lists_op("AddV2"));
        assert!(!target("tract").lists_op("FusedBatchNormV3"));
    }

    #[test]
    fn an_unknown_target_lists_the_known_ones() {
        let error = Target::by_name("coreml").unwrap_err();
        let text = error.to_string();
        assert!(text.contains("unknown target 'coreml'"), "{text}");
        assert!(
            text.contains("graphopt, opencv, tract, tvm, tensorrt, ascend"),
            "{text}"
        );
    }

    #[test]
    fn a_profile_whose_count_is_wrong_does_not_load() {
        let text = PROFILES[0].1.replacen("\"count\": 62", "\"count\": 63", 1);
        assert!(matches!(
            Target::from_json("opencv.json", &text),
            Err(TargetError::CountMismatch {
                said: 63,
                has: 62,
                ..
            })
        ));
        let text = PROFILES[0].1.replacen("\"DT_HALF\"", "\"DT_HALFWAY\"", 1);
        assert!(Target::from_json("opencv.json", &text).is_err());
    }

    #[test]
    fn graphopt_target_is_the_kernel_table_plus_the_executor() {
        let t = target(GRAPHOPT);
        for op in crate::eval::kernels::registered_ops() {
            assert!(t.lists_op(op), "{op}");
        }
        // Every executor op is one the executor in eval/mod.rs names.
        let executor = include_str!("../eval/mod.rs");
        for op in executor_ops() {
            assert!(
                executor.contains(&format!("\"{op}\"")),
                "{op} not in eval/mod.rs"
            );
            assert!(t.lists_op(op));
        }
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            node("a", "Relu", &["x"]),
            node("b", "MatrixInverse", &["a"]),
        ]);
        let problems = check_target(&g, GRAPHOPT).unwrap();
        assert_eq!(
            kinds(&problems),
            [("b".to_string(), ProblemKind::UnknownOp)]
        );
        assert!(problems[0]
            .to_string()
            .starts_with("b (MatrixInverse): graphopt's evaluator has no kernel"));
        assert!(check_target(&g, "coreml").is_err());
    }

    fn call_graph(call_op: &str, body_op: &str) -> GraphDef {
        let call = with_attr(
            node("call", call_op, &["x"]),
            "f",
            attr_value::Value::Func(NameAttrList {
                name: "body_fn".into(),
                ..Default::default()
            }),
        );
        let mut g = graph(vec![placeholder("x", &[1, 4]), call]);
        g.library = Some(FunctionDefLibrary {
            function: vec![FunctionDef {
                signature: Some(OpDef {
                    name: "body_fn".into(),
                    ..Default::default()
                }),
                node_def: vec![node("inner", body_op, &["x"])],
                ..Default::default()
            }],
            ..Default::default()
        });
        g
    }

    /// A call of a function the library lacks was reported with an empty op (`call (): calls
    /// function ...`); it names the calling node's op, in the main graph and in a body.
    #[test]
    fn a_call_of_a_missing_function_names_the_caller_and_its_op() {
        let mut g = call_graph("PartitionedCall", "StatefulPartitionedCall");
        if let Some(body) = g.library.as_mut().and_then(|l| l.function.first_mut()) {
            body.node_def[0] = with_attr(
                body.node_def[0].clone(),
                "f",
                attr_value::Value::Func(NameAttrList {
                    name: "gone".into(),
                    ..Default::default()
                }),
            );
        }
        let missing: Vec<(String, String)> = check(&g, target(GRAPHOPT))
            .into_iter()
            .filter(|p| p.why.contains("does not define"))
            .map(|p| (p.node, p.op))
            .collect();
        assert_eq!(
            missing,
            [(
                "body_fn/inner".to_string(),
                "StatefulPartitionedCall".to_string()
            )]
        );
        g.library = None;
        let missing: Vec<(String, String)> = check(&g, target(GRAPHOPT))
            .into_iter()
            .filter(|p| p.why.contains("does not define"))
            .map(|p| (p.node, p.op))
            .collect();
        assert_eq!(
            missing,
            [("call".to_string(), "PartitionedCall".to_string())]
        );
    }

    #[test]
    fn called_function_bodies_are_checked_where_the_target_runs_them() {
        let problems = blocking(&call_graph("PartitionedCall", "MatrixInverse"), GRAPHOPT);
        assert_eq!(
            kinds(&problems),
            [("body_fn/inner".to_string(), ProblemKind::UnknownOp)]
        );
        assert!(problems[0].why.contains("called by 'call'"));
        assert!(blocking(&call_graph("PartitionedCall", "Relu"), GRAPHOPT).is_empty());
        // TVM converts PartitionedCall bodies op by op.
        let problems = blocking(
            &call_graph("StatefulPartitionedCall", "MatrixInverse"),
            "tvm",
        );
        assert!(
            problems.iter().any(|p| p.node == "body_fn/inner"),
            "{problems:?}"
        );
        // OpenCV rejects the call itself and never looks inside.
        let problems = blocking(&call_graph("PartitionedCall", "MatrixInverse"), "opencv");
        assert_eq!(
            kinds(&problems),
            [("call".to_string(), ProblemKind::RejectedOp)]
        );
    }

    #[test]
    fn unknown_ops_fail_and_listed_ones_pass() {
        let g = graph(vec![placeholder("x", &[1, 4]), node("r", "Rsqrt", &["x"])]);
        assert_eq!(
            kinds(&blocking(&g, "opencv")),
            [("r".to_string(), ProblemKind::FusedOnly)]
        );
        let g = graph(vec![placeholder("x", &[1, 4]), node("e", "Expm1", &["x"])]);
        let problems = blocking(&g, "opencv");
        assert_eq!(
            kinds(&problems),
            [("e".to_string(), ProblemKind::UnknownOp)]
        );
        assert!(problems[0].why.contains("Can't create layer"));
        // A dispatch op, and a registry op that loads through a same-name layer.
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            node("r", "Relu", &["x"]),
            node("s", "Sqrt", &["r"]),
        ]);
        assert!(check(&g, target("opencv")).is_empty());
    }

    #[test]
    fn an_incomplete_op_list_reports_unverified_ops_without_blocking() {
        let g = graph(vec![placeholder("x", &[1, 4]), node("e", "Erfinv", &["x"])]);
        let problems = check(&g, target("ascend"));
        assert_eq!(
            kinds(&problems),
            [("e".to_string(), ProblemKind::UnverifiedOp)]
        );
        assert!(!any_blocking(&problems));
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            node("i", "Identity", &["x"]),
            node("r", "Relu", &["i"]),
        ]);
        assert!(check(&g, target("ascend")).is_empty());
    }

    #[test]
    fn rejected_ops_fail_with_their_reason() {
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            int_content("p", &[0, 0, 1, 1], &[2, 2]),
            node("pad", "Pad", &["x", "p"]),
        ]);
        let problems = blocking(&g, "tract");
        assert_eq!(
            kinds(&problems),
            [("pad".to_string(), ProblemKind::RejectedOp)]
        );
        assert!(problems[0].why.contains("TDim"));
        assert!(blocking(&g, "opencv").is_empty());
        let g = graph(vec![
            node("v", "VarHandleOp", &[]),
            node("r", "ReadVariableOp", &["v"]),
        ]);
        let problems = blocking(&g, "tvm");
        assert_eq!(problems.len(), 2);
        assert!(problems
            .iter()
            .all(|p| p.why.contains("Graph is not frozen")));
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            node("a", "AddV2", &["x", "x"]),
        ]);
        assert_eq!(
            kinds(&blocking(&g, "tensorrt")),
            [("a".to_string(), ProblemKind::RejectedOp)]
        );
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            node("a", "Add", &["x", "x"]),
        ]);
        assert!(blocking(&g, "tensorrt").is_empty());
    }

    /// A tf.cond lowered to Switch and Merge: `Merge(Relu(s:0), Sigmoid(s:1))`.
    fn cond(predicate: NodeDef) -> GraphDef {
        graph(vec![
            placeholder("x", &[1, 4]),
            predicate,
            node("p_id", "Identity", &["p"]),
            node("s", "Switch", &["x", "p_id"]),
            node("f", "Relu", &["s"]),
            node("t", "Sigmoid", &["s:1"]),
            node("m", "Merge", &["f", "t"]),
            node("out", "Relu", &["m"]),
        ])
    }

    fn bool_const(name: &str, value: bool) -> NodeDef {
        constant(
            name,
            TensorProto {
                dtype: DataType::DtBool as i32,
                tensor_shape: Some(shape(&[])),
                bool_val: vec![value],
                ..Default::default()
            },
        )
    }

    #[test]
    fn tract_takes_a_cond_only_on_a_constant_predicate_and_no_while_loop() {
        // A constant predicate: tract's Switch::incorporate cuts the dead branch and its Merge.
        for value in [true, false] {
            let g = cond(bool_const("p", value));
            assert!(blocking(&g, "tract").is_empty(), "{value}");
        }
        // The dead output is the one the predicate does not take: a Merge reading only the live
        // branch is not cut.
        let mut g = cond(bool_const("p", true));
        if let Some(m) = g.node.iter_mut().find(|n| n.name == "m") {
            m.input = vec!["t".into(), "t".into()];
        }
        assert_eq!(
            kinds(&blocking(&g, "tract")),
            [("m".to_string(), ProblemKind::FusedOnly)]
        );
        // The dead branch (output 1 for a false predicate) is followed through every output
        // of what it reaches.
        let mut g = cond(bool_const("p", false));
        g.node.push(node("split", "Unpack", &["s:1"]));
        g.node.push(node("far", "Relu", &["split:1"]));
        if let Some(m) = g.node.iter_mut().find(|n| n.name == "m") {
            m.input = vec!["f".into(), "far".into()];
        }
        let problems = blocking(&g, "tract");
        assert!(!problems.iter().any(|p| p.node == "m"), "{problems:?}");
        // A predicate known only at run time: neither the Switch nor the Merge goes.
        let mut p = placeholder("p", &[]);
        p.attr.insert(
            "dtype".into(),
            AttrValue {
                value: Some(attr_value::Value::Type(DataType::DtBool as i32)),
            },
        );
        let problems = blocking(&cond(p), "tract");
        assert_eq!(
            kinds(&problems),
            [
                ("s".to_string(), ProblemKind::NonConstInput),
                ("m".to_string(), ProblemKind::FusedOnly)
            ]
        );
        assert!(problems[1].why.contains("Switch::incorporate"));
        // A while loop's ops: NextIteration fails tract's analysis, the loop gates its typing.
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            node("enter", "Enter", &["x"]),
            node("merge", "Merge", &["enter", "next"]),
            node("cond", "LoopCond", &["merge"]),
            node("switch", "Switch", &["merge", "cond"]),
            node("body", "Relu", &["switch:1"]),
            node("next", "NextIteration", &["body"]),
            node("exit", "Exit", &["switch"]),
        ]);
        let problems = blocking(&g, "tract");
        let rejected: Vec<&str> = problems
            .iter()
            .filter(|p| p.kind == ProblemKind::RejectedOp)
            .map(|p| p.op.as_str())
            .collect();
        assert_eq!(rejected, ["Enter", "LoopCond", "NextIteration", "Exit"]);
        let next = problems.iter().find(|p| p.op == "NextIteration").unwrap();
        assert!(next.why.contains("Op says 1, node says 0"), "{}", next.why);
        // graphopt's evaluator runs any cond.
        assert!(blocking(&cond(bool_const("p", true)), GRAPHOPT).is_empty());
    }

    #[test]
    fn opencv_rejects_input_less_noops() {
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            node("noop", "NoOp", &[]),
            node("out", "Relu", &["x", "^noop"]),
        ]);
        let problems = blocking(&g, "opencv");
        assert_eq!(
            kinds(&problems),
            [("noop".to_string(), ProblemKind::InputlessNode)]
        );
        assert!(problems[0].why.contains("removePhaseSwitches"));
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            node("noop", "NoOp", &["^x"]),
            node("out", "Relu", &["x", "^noop"]),
        ]);
        assert!(blocking(&g, "opencv").is_empty());
        // tract takes an input-less NoOp.
        let g = graph(vec![placeholder("x", &[1, 4]), node("noop", "NoOp", &[])]);
        assert!(blocking(&g, "tract").is_empty());
    }

    #[test]
    fn opencv_fused_only_ops_pass_inside_a_recognized_pattern() {
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            float_val("hi", &[6.0], &[]),
            float_val("lo", &[0.0], &[]),
            node("min", "Minimum", &["x", "hi"]),
            node("max", "Maximum", &["min", "lo"]),
        ]);
        assert!(
            blocking(&g, "opencv").is_empty(),
            "{:?}",
            blocking(&g, "opencv")
        );
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            float_val("lo", &[0.0], &[]),
            node("max", "Maximum", &["x", "lo"]),
        ]);
        assert_eq!(
            kinds(&blocking(&g, "opencv")),
            [("max".to_string(), ProblemKind::FusedOnly)]
        );
    }

    /// tf.nn.batch_normalization as Keras writes it, variables frozen: OpenCV's
    /// BatchNormSubgraph, with `y = x * (rsqrt(var + eps) * gamma) + (beta - mean * that)`.
    fn keras_batch_norm(epsilon: NodeDef, gamma: NodeDef, extra: Vec<NodeDef>) -> GraphDef {
        keras_batch_norm_in_order(epsilon, gamma, ["bn/Rsqrt", "gamma_id"], extra)
    }

    fn keras_batch_norm_in_order(
        epsilon: NodeDef,
        gamma: NodeDef,
        scale_inputs: [&str; 2],
        extra: Vec<NodeDef>,
    ) -> GraphDef {
        let mut nodes = vec![
            placeholder("x", &[1, 4]),
            epsilon,
            float_content("var", &[1.0; 4], &[4]),
            float_content("mean", &[0.5; 4], &[4]),
            float_content("beta", &[0.1; 4], &[4]),
            gamma,
            node("gamma_id", "Identity", &["gamma"]),
            node("bn/add", "AddV2", &["var", "eps"]),
            node("bn/Rsqrt", "Rsqrt", &["bn/add"]),
            node("bn/mul", "Mul", &scale_inputs),
            node("bn/mul_1", "Mul", &["x", "bn/mul"]),
            node("bn/mul_2", "Mul", &["mean", "bn/mul"]),
            node("bn/sub", "Sub", &["beta", "bn/mul_2"]),
            node("bn/add_1", "AddV2", &["bn/mul_1", "bn/sub"]),
        ];
        nodes.extend(extra);
        graph(nodes)
    }

    #[test]
    fn opencv_fuses_a_keras_batch_norm_and_checks_what_it_becomes() {
        let eps = || float_val("eps", &[1e-3], &[]);
        let gamma = || float_content("gamma", &[2.0; 4], &[4]);
        let g = keras_batch_norm(eps(), gamma(), vec![]);
        assert!(
            blocking(&g, "opencv").is_empty(),
            "{:#?}",
            blocking(&g, "opencv")
        );
        // The Rsqrt read outside the pattern stays in the graph: OpenCV has no layer for it.
        let g = keras_batch_norm(eps(), gamma(), vec![node("other", "Relu", &["bn/Rsqrt"])]);
        assert_eq!(
            kinds(&blocking(&g, "opencv")),
            [("bn/Rsqrt".to_string(), ProblemKind::FusedOnly)]
        );
        // The fused FusedBatchNorm reads gamma only from tensor_content.
        let g = keras_batch_norm(eps(), float_val("gamma", &[2.0], &[]), vec![]);
        let problems = blocking(&g, "opencv");
        assert_eq!(
            kinds(&problems),
            [("bn/add_1".to_string(), ProblemKind::ConstEncoding)]
        );
        assert!(
            problems[0].why.contains("as the FusedBatchNorm")
                && problems[0].why.contains("BatchNormSubgraph"),
            "{}",
            problems[0].why
        );
        // An epsilon of two values fails OpenCV's finalize check; one stored value passes
        // whatever the declared shape (OpenCV counts what is stored).
        let g = keras_batch_norm(float_content("eps", &[1e-3; 2], &[2]), gamma(), vec![]);
        let problems = blocking(&g, "opencv");
        assert_eq!(
            kinds(&problems),
            [("bn/add_1".to_string(), ProblemKind::ImportFails)]
        );
        assert!(
            problems[0].why.contains("one float32"),
            "{}",
            problems[0].why
        );
        let g = keras_batch_norm(float_val("eps", &[1e-3], &[4]), gamma(), vec![]);
        assert!(blocking(&g, "opencv").is_empty());
        // Once anything is fused, a control input left in the graph fails the import; one
        // from an Identity is a data input by then.
        let g = keras_batch_norm(
            eps(),
            gamma(),
            vec![
                node("anchor", "Identity", &["x"]),
                node("after", "Relu", &["bn/add_1", "^anchor"]),
                node("other", "Relu", &["bn/add_1", "^x"]),
            ],
        );
        let problems = blocking(&g, "opencv");
        assert_eq!(
            kinds(&problems),
            [("other".to_string(), ProblemKind::ImportFails)]
        );
        assert!(
            problems[0].why.contains("control input"),
            "{}",
            problems[0].why
        );
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            node("other", "Relu", &["x", "^x"]),
        ]);
        assert!(
            blocking(&g, "opencv").is_empty(),
            "nothing fused, nothing counted"
        );
        // Mul(gamma, Rsqrt) matches too (Mul commutes), but OpenCV wires the fused node's
        // inputs by pattern position: its gamma becomes the Rsqrt, and the import fails
        // (tests/consumers/probe_opencv_profile.py: "More than one input is Const op").
        let g = keras_batch_norm_in_order(eps(), gamma(), ["gamma_id", "bn/Rsqrt"], vec![]);
        assert_eq!(
            kinds(&blocking(&g, "opencv")),
            [
                ("bn/Rsqrt".to_string(), ProblemKind::FusedOnly),
                ("bn/add_1".to_string(), ProblemKind::NonConstInput)
            ]
        );
    }

    #[test]
    fn opencv_fuses_relu6_only_with_a_max_of_six() {
        let relu6 = |max: f32| {
            graph(vec![
                placeholder("x", &[1, 4]),
                node("relu", "Relu", &["x"]),
                float_val("six", &[max], &[]),
                float_val("zero", &[0.0], &[]),
                node("min", "Minimum", &["relu", "six"]),
                node("max", "Maximum", &["min", "zero"]),
            ])
        };
        assert!(blocking(&relu6(6.0), "opencv").is_empty());
        // Not ReLU6, but still Minimum -> Maximum: the later ClipByValue pattern takes it.
        assert!(blocking(&relu6(5.0), "opencv").is_empty());
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            float_val("hi", &[6.0], &[]),
            node("min", "Minimum", &["x", "hi"]),
            node("neg", "Neg", &["min"]),
        ]);
        assert_eq!(
            kinds(&blocking(&g, "opencv")),
            [
                ("min".to_string(), ProblemKind::FusedOnly),
                ("neg".to_string(), ProblemKind::FusedOnly)
            ]
        );
    }

    #[test]
    fn a_subgraph_pattern_naming_no_earlier_node_is_a_bad_profile() {
        let mut fusion = target("opencv").fused_subgraphs.clone().unwrap();
        fusion.patterns[0].nodes[6].inputs[0] = "nowhere".into();
        let error = fusion.compile().unwrap_err();
        assert!(
            error.contains("BatchNormSubgraph") && error.contains("'nowhere'"),
            "{error}"
        );
    }

    #[test]
    fn const_inputs_fail_when_computed_and_pass_through_identity() {
        let perm = |g: Vec<NodeDef>| graph(g);
        let g = perm(vec![
            placeholder("x", &[1, 4]),
            placeholder("p", &[2]),
            node("t", "Transpose", &["x", "p"]),
        ]);
        let problems = blocking(&g, "tensorrt");
        assert_eq!(
            kinds(&problems),
            [("t".to_string(), ProblemKind::NonConstInput)]
        );
        assert!(
            problems[0].why.contains("comes from Placeholder 'p'"),
            "{}",
            problems[0].why
        );
        let g = perm(vec![
            placeholder("x", &[1, 4]),
            int_content("p", &[1, 0], &[2]),
            node("id", "Identity", &["p"]),
            node("t", "Transpose", &["x", "id"]),
        ]);
        assert!(blocking(&g, "tensorrt").is_empty());
        // TVM: a reduction axis from Shape arithmetic.
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            node("shape", "Shape", &["x"]),
            node("m", "Mean", &["x", "shape"]),
        ]);
        assert_eq!(
            kinds(&blocking(&g, "tvm")),
            [("m".to_string(), ProblemKind::NonConstInput)]
        );
    }

    #[test]
    fn sources_are_resolved_once_per_chain_and_through_cycles() {
        // Two Transposes behind one chain of Identities: the second reuses the first's walk.
        let mut nodes = vec![placeholder("x", &[1, 4]), int_content("p", &[1, 0], &[2])];
        let mut last = "p".to_string();
        for i in 0..100 {
            nodes.push(node(&format!("id{i}"), "Identity", &[&last]));
            last = format!("id{i}");
        }
        nodes.push(node("t1", "Transpose", &["x", &last]));
        nodes.push(node("t2", "Transpose", &["x", "id50"]));
        assert!(blocking(&graph(nodes), "tensorrt").is_empty());
        // A cycle of Identities (an invalid graph) ends the walk where it meets itself.
        let g = graph(vec![
            placeholder("x", &[1, 4]),
            node("a", "Identity", &["b"]),
            node("b", "Identity", &["a"]),
            node("t", "Transpose", &["x", "a"]),
        ]);
        let problems = blocking(&g, "tensorrt");
        assert_eq!(
            kinds(&problems),
            [("t".to_string(), ProblemKind::NonConstInput)]
        );
        assert!(
            problems[0].why.contains("comes from Identity"),
            "{}",
            problems[0].why
        );
    }

    #[test]
    fn opencv_reads_concat_axes_from_int_val_only() {
        let concat = |axis: NodeDef| {
            graph(vec![
                placeholder("x", &[1, 4]),
                axis,
                node("c", "ConcatV2", &["x", "x", "axis"]),
            ])
        };
        let problems = blocking(&concat(int_content("axis", &[1], &[])), "opencv");
        assert_eq!(
            kinds(&problems),
            [("c".to_string(), ProblemKind::ConstEncoding)]
        );
        assert!(problems[0].why.contains("int_val"));
        assert!(blocking(&concat(int_val("axis", &[1], &[])), "opencv").is_empty());
    }

    #[test]
    fn opencv_reads_batch_norm_scale_and_offset_from_tensor_content_only() {
        let bn = |gamma: NodeDef| {
            graph(vec![
                placeholder("x", &[1, 2, 2, 2]),
                gamma,
                float_content("beta", &[0.5, 0.5], &[2]),
                float_content("mean", &[0.0, 0.1], &[2]),
                float_content("var", &[1.0, 2.0], &[2]),
                {
                    // Saying NHWC, so that OpenCV knows the fixed input's layout.
                    let mut bn = node(
                        "bn",
                        "FusedBatchNormV3",
                        &["x", "gamma", "beta", "mean", "var"],
                    );
                    bn.attr.insert(
                        "data_format".into(),
                        AttrValue {
                            value: Some(attr_value::Value::S(bytes::Bytes::from_static(b"NHWC"))),
                        },
                    );
                    bn
                },
            ])
        };
        let problems = blocking(&bn(float_val("gamma", &[1.0, 2.0], &[2])), "opencv");
        assert_eq!(
            kinds(&problems),
            [("bn".to_string(), ProblemKind::ConstEncoding)]
        );
        assert!(problems[0].why.contains("silently dropped"));
        assert!(blocking(&bn(float_content("gamma", &[1.0, 2.0], &[2])), "opencv").is_empty());
    }

    #[test]
    fn opencv_needs_every_const_value_stored_in_a_type_it_reads() {
        let conv = |bias: NodeDef| {
            graph(vec![
                placeholder("x", &[1, 4]),
                bias,
                node("b", "BiasAdd", &["x", "bias"]),
            ])
        };
        // TensorFlow's splat form: one value for four elements.
        let problems = blocking(&conv(float_val("bias", &[0.0], &[4])), "opencv");
        assert_eq!(
            kinds(&problems),
            [("b".to_string(), ProblemKind::ConstEncoding)]
        );
        assert!(problems[0].why.contains("splat"), "{}", problems[0].why);
        // No values at all: OpenCV's "!field.empty()" assertion.
        let problems = blocking(&conv(float_val("bias", &[], &[4])), "opencv");
        assert!(problems[0].why.contains("no stored values"));
        // int64 is not a type getTensorContentRef_ decodes.
        let int64 = constant(
            "bias",
            TensorProto {
                dtype: DataType::DtInt64 as i32,
                tensor_shape: Some(shape(&[1])),
                int64_val: vec![3],
                ..Default::default()
            },
        );
        assert!(blocking(&conv(int64), "opencv")[0].why.contains("DT_INT64"));
        assert!(blocking(
            &conv(float_val("bias", &[1.0, 2.0, 3.0, 4.0], &[4])),
            "opencv"
        )
        .is_empty());
        assert!(blocking(&conv(float_content("bias", &[1.0; 4], &[4])), "opencv").is_empty());
    }

    #[test]
    fn tvm_wants_static_input_shapes_and_output_shapes() {
        let g = graph(vec![placeholder("x", &[-1, 4]), node("r", "Relu", &["x"])]);
        let problems = check(&g, target("tvm"));
        assert_eq!(
            kinds(&problems),
            [
                ("x".to_string(), ProblemKind::DynamicInputShape),
                ("x".to_string(), ProblemKind::MissingOutputShapes)
            ]
        );
        assert!(problems[0].blocking && !problems[1].blocking);
        assert!(problems[1].why.contains("2 of 2 nodes"));
        let shapes = |n: NodeDef, dims: &[i64]| {
            with_attr(
                n,
                "_output_shapes",
                attr_value::Value::List(Box::new(attr_value::ListValue {
                    shape: vec![shape(dims)],
                    ..Default::default()
                })),
            )
        };
        let g = graph(vec![
            shapes(placeholder("x", &[1, 4]), &[1, 4]),
            shapes(node("r", "Relu", &["x"]), &[1, 4]),
        ]);
        assert!(check(&g, target("tvm")).is_empty());
        // tract takes input facts at load time: no static shapes needed.
        let g = graph(vec![placeholder("x", &[-1, 4]), node("r", "Relu", &["x"])]);
        assert!(check(&g, target("tract")).is_empty());
    }

    #[test]
    fn attribute_values_outside_the_supported_ones_fail() {
        let slice = |mask: i64| {
            let n = node("s", "StridedSlice", &["x", "b", "e", "st"]);
            let n = with_attr(n, "ellipsis_mask", attr_value::Value::I(mask));
            graph(vec![
                placeholder("x", &[1, 4]),
                int_content("b", &[0], &[1]),
                int_content("e", &[1], &[1]),
                int_content("st", &[1], &[1]),
                n,
            ])
        };
        let problems = blocking(&slice(1), "tensorrt");
        assert_eq!(
            kinds(&problems),
            [("s".to_string(), ProblemKind::AttrValue)]
        );
        assert!(problems[0].why.contains("ellipsis_mask is 1"));
        assert!(blocking(&slice(0), "tensorrt").is_empty());
        // keep_dims=false is advice for UFF (it loads with another shape).
        let mean = |keep: bool| {
            graph(vec![
                placeholder("x", &[1, 4]),
                int_content("axes", &[1], &[1]),
                with_attr(
                    node("m", "Mean", &["x", "axes"]),
                    "keep_dims",
                    attr_value::Value::B(keep),
                ),
            ])
        };
        let problems = check(&mean(false), target("tensorrt"));
        assert_eq!(
            kinds(&problems),
            [("m".to_string(), ProblemKind::AttrValue)]
        );
        assert!(!problems[0].blocking);
        assert!(check(&mean(true), target("tensorrt")).is_empty());
        // tract parses only SAME and VALID padding.
        let conv = |padding: &str| {
            graph(vec![
                placeholder("x", &[1, 4, 4, 1]),
                float_content("w", &[1.0], &[1, 1, 1, 1]),
                with_attr(
                    node("c", "Conv2D", &["x", "w"]),
                    "padding",
                    attr_value::Value::S(padding.as_bytes().to_vec().into()),
                ),
            ])
        };
        assert_eq!(
            kinds(&blocking(&conv("EXPLICIT"), "tract")),
            [("c".to_string(), ProblemKind::AttrValue)]
        );
        assert!(blocking(&conv("SAME"), "tract").is_empty());
    }

    #[test]
    fn rejected_attributes_fail_where_present() {
        let bn = |attr: bool| {
            let mut n = node("bn", "FusedBatchNormV3", &["x", "g", "b", "m", "v"]);
            if attr {
                n = with_attr(n, "exponential_avg_factor", attr_value::Value::F(1.0));
            }
            let mut nodes = vec![placeholder("x", &[1, 2, 2, 2])];
            for c in ["g", "b", "m", "v"] {
                nodes.push(float_content(c, &[1.0, 1.0], &[2]));
            }
            nodes.push(n);
            graph(nodes)
        };
        let problems = blocking(&bn(true), "tvm");
        assert_eq!(
            kinds(&problems),
            [("bn".to_string(), ProblemKind::RejectedAttr)]
        );
        assert!(problems[0].why.contains("exponential_avg_factor"));
        assert!(blocking(&bn(false), "tvm").is_empty());
    }
}
