//! Subgraphs an importer fuses before it loads a graph, simulated the way the importer runs
//! them (OpenCV's `simplifySubgraphs`): which nodes vanish into a fused node, and what op and
//! inputs each fused node ends up with. The patterns are profile data; this module is the
//! matcher.
//!
//! The simulation follows the importer rather than an ideal matcher, because what matters is
//! what the importer does: ops it removes beforehand are looked through, renamed ops match
//! under their new name, the two inputs of a commutative op are tried in both orders (with the
//! importer's bookkeeping, which shares one record between the two orders), patterns run in
//! order over the nodes in graph order, each seeing the graph as the earlier fusions left it,
//! and a matched node is removed only when nothing reads it any more.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::graph::{attrs, InputRef};
use crate::proto::{DataType, NodeDef, TensorProto};

/// How a target's importer rewrites fixed subgraphs before loading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubgraphFusion {
    /// Where the patterns and the matcher were read.
    pub source: String,
    /// Ops the importer removes before matching, their consumers reading the op's first input.
    pub bypassed: Vec<String>,
    /// The bypassed ops whose removal also turns a control input from them into a data input
    /// from what they read (OpenCV's RemoveIdentityOps strips the `^`).
    pub identities: Vec<String>,
    /// Why, once anything is fused, a control input left in the graph fails the import (OpenCV
    /// counts readers by input name, and `^name` names no node); absent when it does not.
    #[serde(default)]
    pub control_inputs_fail_after_fusion: Option<String>,
    /// Ops renamed before matching (OpenCV: AddV2 is matched as Add).
    #[serde(default)]
    pub renamed: BTreeMap<String, String>,
    /// Ops whose two inputs the matcher tries in both orders.
    pub commutative: Vec<String>,
    /// The patterns, in the order the importer tries them.
    pub patterns: Vec<Pattern>,
    /// The patterns with names resolved to positions (filled by [`SubgraphFusion::compile`]).
    #[serde(skip)]
    compiled: Vec<Compiled>,
}

/// One fused subgraph: nodes to match and the node the root becomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pattern {
    /// The importer's name for it.
    pub name: String,
    /// Pattern nodes; inputs name earlier ones. The last is the root, which becomes the fused
    /// node; an empty op matches any node.
    pub nodes: Vec<PatternNode>,
    /// The op the root becomes.
    pub fused_op: String,
    /// The fused node's inputs, as pattern node names.
    pub fused_inputs: Vec<String>,
    /// Conditions the importer checks on a match.
    #[serde(default)]
    pub requires: Vec<Requirement>,
}

/// A node of a pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternNode {
    pub name: String,
    /// The op it matches; empty matches any node.
    #[serde(default)]
    pub op: String,
    #[serde(default)]
    pub inputs: Vec<String>,
}

/// A condition the importer checks on a matched subgraph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Requirement {
    /// `node` is a Const storing one float32 or float16, its declared shape aside (equal to
    /// `equals` when given).
    F32Scalar {
        node: String,
        #[serde(default)]
        equals: Option<f32>,
        otherwise: Otherwise,
        why: String,
    },
    /// `node` is a Const storing exactly `count` int32 values (its declared shape aside).
    I32Values {
        node: String,
        count: u64,
        otherwise: Otherwise,
        why: String,
    },
    /// `node` is a Const with at least one value in `int_val`.
    IntVal {
        node: String,
        otherwise: Otherwise,
        why: String,
    },
    /// `node` is a DT_DOUBLE Const with at least one value in `double_val`.
    DoubleVal {
        node: String,
        otherwise: Otherwise,
        why: String,
    },
    /// `node`'s string attribute `attr` is `equals`.
    AttrString {
        node: String,
        attr: String,
        equals: String,
        otherwise: Otherwise,
        why: String,
    },
}

/// What the importer does when a [`Requirement`] does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Otherwise {
    /// The pattern does not match; the nodes stay as they are.
    NoMatch,
    /// The import fails.
    Fails,
}

#[derive(Debug, Clone, PartialEq)]
struct Compiled {
    ops: Vec<String>,
    inputs: Vec<Vec<usize>>,
    fused_inputs: Vec<FusedInput>,
    requires: Vec<(usize, Requirement)>,
}

/// Where a fused node's input comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum FusedInput {
    /// What the first matched node reading this pattern node reads there (the importer's
    /// `Subgraph::replace`).
    Node(usize),
    /// The root's own data input N as it was when matched (`@root.N` in the profile: an
    /// importer's finalize step that rewires it so).
    RootInput(usize),
}

/// The fused node a matched root becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    /// The pattern that matched.
    pub pattern: String,
    /// The root, rewritten as the importer leaves it: the fused op, its inputs (names of the
    /// graph's nodes), the root's own attributes.
    pub node: NodeDef,
}

/// What the fusions do to a list of nodes.
#[derive(Debug, Default)]
pub struct Fusions {
    /// Per node: removed by a fusion (it no longer exists for the importer).
    pub absorbed: Vec<bool>,
    /// The roots, by node position.
    pub fused: BTreeMap<usize, Fused>,
    /// Why the import fails, by the position of the node it fails at: a match whose checks
    /// fail (whatever later fusions do to the node), or a control input left once anything
    /// is fused.
    pub failures: BTreeMap<usize, String>,
}

impl Fusions {
    /// Whether the node is gone by the time the importer loads the graph.
    pub fn is_absorbed(&self, position: usize) -> bool {
        self.absorbed.get(position).copied().unwrap_or(false)
    }
}

/// A limit on the matcher's work per attempt: commutative ops double the records kept, so a
/// hostile profile could not make it explode either.
const MAX_STATES_PER_ATTEMPT: usize = 1 << 14;

impl SubgraphFusion {
    /// Resolves pattern names to positions; an error names the pattern and what is wrong.
    pub fn compile(&mut self) -> Result<(), String> {
        let mut compiled = Vec::with_capacity(self.patterns.len());
        for pattern in &self.patterns {
            compiled.push(
                compile_pattern(pattern, &self.commutative)
                    .map_err(|e| format!("subgraph pattern '{}': {e}", pattern.name))?,
            );
        }
        self.compiled = compiled;
        Ok(())
    }

    /// Runs every pattern over `nodes` as the importer would.
    pub fn apply(&self, nodes: &[NodeDef]) -> Fusions {
        let mut view = View::new(nodes, self);
        let mut matched_non_roots = Vec::new();
        let mut fused = BTreeMap::new();
        let mut failures = BTreeMap::new();
        let mut any = false;
        for (pattern, compiled) in self.patterns.iter().zip(&self.compiled) {
            for root in 0..view.ops.len() {
                let Some(matched) = view.match_at(root, compiled) else {
                    continue;
                };
                let mut fails: Option<String> = None;
                let mut rejected = false;
                for (node, requirement) in &compiled.requires {
                    let Some(&position) = matched.get(*node) else {
                        continue;
                    };
                    let Some(why) = unmet(requirement, nodes.get(position)) else {
                        continue;
                    };
                    match requirement_otherwise(requirement) {
                        Otherwise::NoMatch => rejected = true,
                        Otherwise::Fails => fails = fails.or(Some(why)),
                    }
                }
                if rejected {
                    continue;
                }
                let Some((&root_position, others)) = matched.split_last() else {
                    continue;
                };
                let inputs: Vec<Option<usize>> = compiled
                    .fused_inputs
                    .iter()
                    .map(|&f| match f {
                        FusedInput::Node(f) => view.input_feeding(compiled, &matched, f),
                        FusedInput::RootInput(k) => view
                            .inputs
                            .get(root_position)
                            .and_then(|i| i.get(k))
                            .copied()
                            .flatten(),
                    })
                    .collect();
                if let Some(why) = &fails {
                    failures.entry(root_position).or_insert_with(|| why.clone());
                }
                any = true;
                if let Some(op) = view.ops.get_mut(root_position) {
                    *op = &pattern.fused_op;
                }
                if let Some(slot) = view.inputs.get_mut(root_position) {
                    *slot = inputs.clone();
                }
                matched_non_roots.extend_from_slice(others);
                let Some(original) = nodes.get(root_position) else {
                    continue;
                };
                let node = NodeDef {
                    name: original.name.clone(),
                    op: pattern.fused_op.clone(),
                    input: inputs
                        .iter()
                        .map(|i| {
                            i.and_then(|i| nodes.get(i))
                                .map_or_else(String::new, |n| n.name.clone())
                        })
                        .collect(),
                    device: original.device.clone(),
                    attr: original.attr.clone(),
                    ..NodeDef::default()
                };
                fused.insert(
                    root_position,
                    Fused {
                        pattern: pattern.name.clone(),
                        node,
                    },
                );
            }
        }
        let absorbed = view.remove_unread(matched_non_roots);
        for (position, gone) in absorbed.iter().enumerate() {
            if *gone {
                fused.remove(&position);
            }
        }
        if let (true, Some(why)) = (any, &self.control_inputs_fail_after_fusion) {
            for (position, controls) in view.controls.iter().enumerate() {
                let present = !view.bypassed.get(position).copied().unwrap_or(true)
                    && !absorbed.get(position).copied().unwrap_or(true);
                if *controls && present {
                    failures.entry(position).or_insert_with(|| why.clone());
                }
            }
        }
        Fusions {
            absorbed,
            fused,
            failures,
        }
    }
}

fn requirement_otherwise(requirement: &Requirement) -> Otherwise {
    match requirement {
        Requirement::F32Scalar { otherwise, .. }
        | Requirement::I32Values { otherwise, .. }
        | Requirement::IntVal { otherwise, .. }
        | Requirement::DoubleVal { otherwise, .. }
        | Requirement::AttrString { otherwise, .. } => *otherwise,
    }
}

fn compile_pattern(pattern: &Pattern, commutative: &[String]) -> Result<Compiled, String> {
    let mut positions: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ops = Vec::new();
    let mut inputs = Vec::new();
    for node in &pattern.nodes {
        let mut resolved = Vec::new();
        for input in &node.inputs {
            let at = positions.get(input.as_str()).ok_or_else(|| {
                format!("node '{}' reads '{input}', not an earlier node", node.name)
            })?;
            resolved.push(*at);
        }
        if commutative.contains(&node.op) && resolved.len() != 2 {
            return Err(format!(
                "node '{}' is a commutative {} with {} inputs (the matcher takes two)",
                node.name,
                node.op,
                resolved.len()
            ));
        }
        if positions.insert(&node.name, ops.len()).is_some() {
            return Err(format!("two nodes are called '{}'", node.name));
        }
        ops.push(node.op.clone());
        inputs.push(resolved);
    }
    if ops.last().is_none_or(String::is_empty) {
        return Err("the root (last node) must name an op".into());
    }
    let find = |name: &str| {
        positions
            .get(name)
            .copied()
            .ok_or_else(|| format!("names no pattern node '{name}'"))
    };
    let root_inputs = inputs.last().map_or(0, Vec::len);
    let fused_inputs = pattern
        .fused_inputs
        .iter()
        .map(|n| match n.strip_prefix("@root.") {
            Some(k) => k
                .parse::<usize>()
                .ok()
                .filter(|k| *k < root_inputs)
                .map(FusedInput::RootInput)
                .ok_or_else(|| format!("'{n}' names no input of the root")),
            None => find(n).map(FusedInput::Node),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let requires = pattern
        .requires
        .iter()
        .map(|r| {
            let (Requirement::F32Scalar { node, .. }
            | Requirement::I32Values { node, .. }
            | Requirement::IntVal { node, .. }
            | Requirement::DoubleVal { node, .. }
            | Requirement::AttrString { node, .. }) = r;
            Ok((find(node)?, r.clone()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Compiled {
        ops,
        inputs,
        fused_inputs,
        requires,
    })
}

/// How far the walk through a chain of bypassed nodes has got.
#[derive(Clone, Copy)]
enum Chain {
    Unknown,
    /// On the walk in progress (met again: a cycle, which ends nowhere).
    Walking,
    Ends(Option<usize>),
}

/// The graph as the matcher sees it: bypassed ops gone, ops renamed, each input the position
/// of the node feeding it (`None`: a control input or one without a producer).
struct View<'a> {
    ops: Vec<&'a str>,
    inputs: Vec<Vec<Option<usize>>>,
    /// Whether the importer removed the node before matching.
    bypassed: Vec<bool>,
    /// Whether the node keeps a control input the importer cannot resolve.
    controls: Vec<bool>,
    commutative: &'a [String],
}

impl<'a> View<'a> {
    fn new(nodes: &'a [NodeDef], fusion: &'a SubgraphFusion) -> View<'a> {
        let index = crate::graph::name_index(nodes);
        let bypassed: Vec<bool> = nodes
            .iter()
            .map(|n| fusion.bypassed.contains(&n.op))
            .collect();
        let first_input = |position: usize| -> Option<usize> {
            let node = nodes.get(position)?;
            let input = node.input.first()?;
            index.get(InputRef::parse(input).node).copied()
        };
        // Where each bypassed node's chain ends (a cycle of bypassed nodes ends nowhere).
        let mut resolved: Vec<Chain> = vec![Chain::Unknown; nodes.len()];
        let mut resolve = |start: usize| -> Option<usize> {
            let mut path = Vec::new();
            let mut current = Some(start);
            let end = loop {
                let Some(c) = current else { break None };
                if !bypassed.get(c).copied().unwrap_or(false) {
                    break Some(c);
                }
                match resolved.get(c) {
                    Some(Chain::Ends(end)) => break *end,
                    Some(Chain::Walking) | None => break None,
                    Some(Chain::Unknown) => {}
                }
                if let Some(slot) = resolved.get_mut(c) {
                    *slot = Chain::Walking;
                }
                path.push(c);
                current = first_input(c);
            };
            for p in path {
                if let Some(slot) = resolved.get_mut(p) {
                    *slot = Chain::Ends(end);
                }
            }
            end
        };
        let mut ops = Vec::with_capacity(nodes.len());
        let mut inputs = Vec::with_capacity(nodes.len());
        let mut controls = Vec::with_capacity(nodes.len());
        for node in nodes {
            ops.push(
                fusion
                    .renamed
                    .get(&node.op)
                    .map_or(node.op.as_str(), String::as_str),
            );
            let mut has_control = false;
            inputs.push(
                node.input
                    .iter()
                    .map(|input| {
                        let producer = index.get(InputRef::parse(input).node).copied();
                        if input.starts_with('^') {
                            // A control input from an identity becomes a data input from what
                            // it reads; any other stays a name that matches no node.
                            let identity = producer
                                .and_then(|p| nodes.get(p))
                                .is_some_and(|p| fusion.identities.contains(&p.op));
                            if !identity {
                                has_control = true;
                                return None;
                            }
                        }
                        producer.and_then(&mut resolve)
                    })
                    .collect(),
            );
            controls.push(has_control);
        }
        View {
            ops,
            inputs,
            bypassed,
            controls,
            commutative: &fusion.commutative,
        }
    }

    /// The graph node matched to each pattern node, when the pattern matches with `root` as
    /// its last node.
    fn match_at(&self, root: usize, pattern: &Compiled) -> Option<Vec<usize>> {
        let root_op = pattern.ops.last()?;
        if self.bypassed.get(root).copied().unwrap_or(true)
            || self.ops.get(root).copied() != Some(root_op.as_str())
        {
            return None;
        }
        // Records of matched pairs (pattern node -> graph node). A state writes its match into
        // every record on its list, the last being its own: the two orders of a commutative
        // op's inputs each get a copy, and both still write into the records they came from.
        let mut records: Vec<BTreeMap<usize, usize>> = vec![BTreeMap::new()];
        let mut states: VecDeque<(usize, usize, Vec<usize>)> = VecDeque::new();
        states.push_back((root, pattern.ops.len().checked_sub(1)?, vec![0]));
        let mut steps = 0usize;
        while let Some((graph_node, pattern_node, lineage)) = states.pop_front() {
            steps += 1;
            if steps > MAX_STATES_PER_ATTEMPT {
                return None;
            }
            let own = *lineage.last()?;
            if records.get(own)?.contains_key(&pattern_node) {
                continue;
            }
            let wanted = pattern.ops.get(pattern_node)?;
            if !wanted.is_empty() {
                if self.bypassed.get(graph_node).copied().unwrap_or(true)
                    || self.ops.get(graph_node).copied() != Some(wanted.as_str())
                {
                    continue;
                }
                if self.inputs.get(graph_node)?.len() != pattern.inputs.get(pattern_node)?.len() {
                    continue;
                }
            }
            for &r in &lineage {
                records
                    .get_mut(r)?
                    .entry(pattern_node)
                    .or_insert(graph_node);
            }
            if wanted.is_empty() {
                continue;
            }
            let graph_inputs = self.inputs.get(graph_node)?;
            let pattern_inputs = pattern.inputs.get(pattern_node)?;
            // An input without a producer: the importer raises "Input node ... not found"
            // here; treated as no match (the unresolved input fails the import elsewhere).
            let feeding: Option<Vec<usize>> = graph_inputs.iter().copied().collect();
            let Some(feeding) = feeding else { continue };
            let commutes = pattern_inputs.len() == 2 && self.is_commutative(wanted);
            if commutes {
                for order in [[0usize, 1], [1, 0]] {
                    let copy = records.get(own)?.clone();
                    records.push(copy);
                    let mut branch = lineage.clone();
                    branch.push(records.len() - 1);
                    for (k, &p) in order.iter().enumerate() {
                        states.push_back((
                            *feeding.get(k)?,
                            *pattern_inputs.get(p)?,
                            branch.clone(),
                        ));
                    }
                }
            } else {
                for (&g, &p) in feeding.iter().zip(pattern_inputs) {
                    states.push_back((g, p, lineage.clone()));
                }
            }
        }
        let complete = records.iter().find(|r| r.len() == pattern.ops.len())?;
        Some(complete.values().copied().collect())
    }

    fn is_commutative(&self, op: &str) -> bool {
        self.commutative.iter().any(|c| c == op)
    }

    /// The graph node feeding pattern node `wanted` as the importer finds it: the input, at
    /// the first place a matched node reads `wanted`, of that matched node.
    fn input_feeding(&self, pattern: &Compiled, matched: &[usize], wanted: usize) -> Option<usize> {
        for (j, reads) in pattern.inputs.iter().enumerate() {
            if let Some(k) = reads.iter().position(|&r| r == wanted) {
                let graph_node = *matched.get(j)?;
                return self.inputs.get(graph_node)?.get(k).copied().flatten();
            }
        }
        None
    }

    /// Removes matched nodes nothing reads any more, from the last to the first, as the
    /// importer does; returns which nodes are gone.
    fn remove_unread(&self, mut candidates: Vec<usize>) -> Vec<bool> {
        let count = self.ops.len();
        let mut readers = vec![0usize; count];
        for (node, inputs) in self.inputs.iter().enumerate() {
            if self.bypassed.get(node).copied().unwrap_or(true) {
                continue;
            }
            for &i in inputs.iter().flatten() {
                if let Some(r) = readers.get_mut(i) {
                    *r += 1;
                }
            }
        }
        let mut gone = vec![false; count];
        candidates.sort_unstable_by(|a, b| b.cmp(a));
        for node in candidates {
            if gone.get(node).copied().unwrap_or(true) || readers.get(node) != Some(&0) {
                continue;
            }
            if let Some(g) = gone.get_mut(node) {
                *g = true;
            }
            for &i in self.inputs.get(node).into_iter().flatten().flatten() {
                if let Some(r) = readers.get_mut(i) {
                    *r = r.saturating_sub(1);
                }
            }
        }
        gone
    }
}

/// Why `requirement` does not hold for `node`, or `None` when it holds.
fn unmet(requirement: &Requirement, node: Option<&NodeDef>) -> Option<String> {
    let node = node?;
    let tensor = || attrs::tensor(node, "value").filter(|_| node.op == "Const");
    let name = &node.name;
    match requirement {
        Requirement::F32Scalar { equals, why, .. } => {
            let value = tensor()
                .and_then(single_float)
                .filter(|v| equals.is_none_or(|e| *v == e));
            value.is_none().then(|| match equals {
                Some(e) => format!("'{name}' is not a Const of one float32 equal to {e}: {why}"),
                None => format!("'{name}' is not a Const of one float32: {why}"),
            })
        }
        Requirement::I32Values { count, why, .. } => {
            let stored = tensor()
                .filter(|t| t.dtype == DataType::DtInt32 as i32)
                .map(|t| match t.tensor_content.len() {
                    0 => t.int_val.len() as u64,
                    bytes => bytes as u64 / 4,
                });
            (stored != Some(*count))
                .then(|| format!("'{name}' is not a Const of {count} int32 values: {why}"))
        }
        Requirement::IntVal { why, .. } => tensor()
            .is_none_or(|t| t.int_val.is_empty())
            .then(|| format!("'{name}' is not a Const with a value in int_val: {why}")),
        Requirement::DoubleVal { why, .. } => tensor()
            .is_none_or(|t| t.dtype != DataType::DtDouble as i32 || t.double_val.is_empty())
            .then(|| format!("'{name}' is not a float64 Const with a value in double_val: {why}")),
        Requirement::AttrString {
            attr, equals, why, ..
        } => {
            let value = attrs::string(node, attr);
            (value.as_deref() != Some(equals.as_str())).then(|| {
                let value = value.map_or_else(|| "unset".to_string(), |v| format!("\"{v}\""));
                format!("'{name}' has {attr} {value}: {why}")
            })
        }
    }
}

/// The one value a float32 or float16 tensor stores (in its content or its value list; the
/// importer reads what is stored, whatever the declared shape says).
fn single_float(tensor: &TensorProto) -> Option<f32> {
    let content = tensor.tensor_content.as_ref();
    if tensor.dtype == DataType::DtFloat as i32 {
        return match (content, tensor.float_val.as_slice()) {
            ([], [v]) => Some(*v),
            (bytes, _) => Some(f32::from_le_bytes(bytes.try_into().ok()?)),
        };
    }
    if tensor.dtype == DataType::DtHalf as i32 {
        let bits = match (content, tensor.half_val.as_slice()) {
            ([], [v]) => u16::try_from(*v).ok()?,
            (bytes, _) => u16::from_le_bytes(bytes.try_into().ok()?),
        };
        return Some(half::f16::from_bits(bits).to_f32());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::test_nodes::node;
    use crate::proto::{attr_value, AttrValue};

    /// A Const that meets `requirement` (or any Const when none applies).
    fn const_meeting(name: &str, requirement: Option<&Requirement>) -> NodeDef {
        let mut tensor = TensorProto {
            dtype: DataType::DtInt32 as i32,
            int_val: vec![1],
            ..Default::default()
        };
        match requirement {
            Some(Requirement::F32Scalar { equals, .. }) => {
                tensor = TensorProto {
                    dtype: DataType::DtFloat as i32,
                    float_val: vec![equals.unwrap_or(1e-3)],
                    ..Default::default()
                };
            }
            Some(Requirement::I32Values { count, .. }) => {
                tensor.int_val = vec![2; *count as usize];
            }
            Some(Requirement::DoubleVal { .. }) => {
                tensor = TensorProto {
                    dtype: DataType::DtDouble as i32,
                    double_val: vec![2.0],
                    ..Default::default()
                };
            }
            _ => {}
        }
        let mut n = node(name, "Const", &[]);
        n.attr.insert(
            "value".into(),
            AttrValue {
                value: Some(attr_value::Value::Tensor(Box::new(tensor))),
            },
        );
        n
    }

    /// Each profile pattern, written out as a graph node for node (any-op nodes as
    /// Placeholders, checks met), is fused at its root and its other nodes are gone: the
    /// pattern data and the matcher agree, the commutative ops' orders included.
    #[test]
    fn every_opencv_pattern_fuses_a_graph_written_as_it() {
        let Ok(target) = crate::targets::Target::by_name("opencv") else {
            panic!("the opencv profile loads");
        };
        let Some(fusion) = &target.fused_subgraphs else {
            panic!("the opencv profile has fused subgraphs");
        };
        assert_eq!(fusion.patterns.len(), 22);
        for pattern in &fusion.patterns {
            let requirement = |name: &str| {
                pattern.requires.iter().find(|r| match r {
                    Requirement::F32Scalar { node, .. }
                    | Requirement::I32Values { node, .. }
                    | Requirement::IntVal { node, .. }
                    | Requirement::DoubleVal { node, .. }
                    | Requirement::AttrString { node, .. } => node == name,
                })
            };
            let nodes: Vec<NodeDef> = pattern
                .nodes
                .iter()
                .map(|p| {
                    let inputs: Vec<&str> = p.inputs.iter().map(String::as_str).collect();
                    let mut n = match p.op.as_str() {
                        "" => node(&p.name, "Placeholder", &[]),
                        "Const" => const_meeting(&p.name, requirement(&p.name)),
                        op => node(&p.name, op, &inputs),
                    };
                    if let Some(Requirement::AttrString { attr, equals, .. }) = requirement(&p.name)
                    {
                        n.attr.insert(
                            attr.clone(),
                            AttrValue {
                                value: Some(attr_value::Value::S(
                                    equals.clone().into_bytes().into(),
                                )),
                            },
                        );
                    }
                    n
                })
                .collect();
            let fusions = fusion.apply(&nodes);
            let root = nodes.len() - 1;
            let fused = fusions.fused.get(&root);
            assert!(
                fused.is_some_and(|f| f.node.op == pattern.fused_op),
                "{}: root not fused as {}: {:?}",
                pattern.name,
                pattern.fused_op,
                fused.map(|f| (&f.pattern, &f.node.op))
            );
            assert!(
                fusions.failures.is_empty(),
                "{}: {:?}",
                pattern.name,
                fusions.failures
            );
            for (position, p) in pattern.nodes.iter().enumerate().take(root) {
                let feeds_fused = fused.is_some_and(|f| f.node.input.contains(&p.name));
                assert!(
                    fusions.is_absorbed(position) || feeds_fused,
                    "{}: '{}' neither absorbed nor read by the fused node",
                    pattern.name,
                    p.name
                );
            }
        }
    }
}
