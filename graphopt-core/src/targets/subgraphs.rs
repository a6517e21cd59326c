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
    /// `node` is a Const holding one float32 (equal to `equals` when given).
    F32Scalar {
        node: String,
        #[serde(default)]
        equals: Option<f32>,
        otherwise: Otherwise,
        why: String,
    },
    /// `node` is a Const holding exactly `count` int32 values.
    I32Values {
        node: String,
        count: u64,
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
    fused_inputs: Vec<usize>,
    requires: Vec<(usize, Requirement)>,
}

/// The fused node a matched root becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    /// The pattern that matched.
    pub pattern: String,
    /// The root, rewritten as the importer leaves it: the fused op, its inputs (names of the
    /// graph's nodes), the root's own attributes.
    pub node: NodeDef,
    /// Why the importer fails on this match, if it does.
    pub fails: Option<String>,
}

/// What the fusions do to a list of nodes.
#[derive(Debug, Default)]
pub struct Fusions {
    /// Per node: removed by a fusion (it no longer exists for the importer).
    pub absorbed: Vec<bool>,
    /// The roots, by node position.
    pub fused: BTreeMap<usize, Fused>,
}

impl Fusions {
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
        for (pattern, compiled) in self.patterns.iter().zip(&self.compiled) {
            for root in 0..view.ops.len() {
                let Some(matched) = view.match_at(root, compiled) else {
                    continue;
                };
                let mut fails = None;
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
                    .map(|&f| view.input_feeding(compiled, &matched, f))
                    .collect();
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
                        fails,
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
        Fusions { absorbed, fused }
    }
}

fn requirement_otherwise(requirement: &Requirement) -> Otherwise {
    match requirement {
        Requirement::F32Scalar { otherwise, .. }
        | Requirement::I32Values { otherwise, .. }
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
    let fused_inputs = pattern
        .fused_inputs
        .iter()
        .map(|n| find(n))
        .collect::<Result<Vec<_>, _>>()?;
    let requires = pattern
        .requires
        .iter()
        .map(|r| {
            let (Requirement::F32Scalar { node, .. }
            | Requirement::I32Values { node, .. }
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

/// The graph as the matcher sees it: bypassed ops gone, ops renamed, each input the position
/// of the node feeding it (`None`: a control input or one without a producer).
struct View<'a> {
    ops: Vec<&'a str>,
    inputs: Vec<Vec<Option<usize>>>,
    /// Whether the importer removed the node before matching.
    bypassed: Vec<bool>,
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
        let mut resolved: Vec<Option<Option<usize>>> = vec![None; nodes.len()];
        let mut resolve = |start: usize| -> Option<usize> {
            let mut path = Vec::new();
            let mut current = Some(start);
            let end = loop {
                let Some(c) = current else { break None };
                if !bypassed.get(c).copied().unwrap_or(false) {
                    break Some(c);
                }
                if let Some(Some(done)) = resolved.get(c) {
                    break *done;
                }
                if path.contains(&c) || path.len() > nodes.len() {
                    break None;
                }
                path.push(c);
                current = first_input(c);
            };
            for p in path {
                if let Some(slot) = resolved.get_mut(p) {
                    *slot = Some(end);
                }
            }
            end
        };
        let mut ops = Vec::with_capacity(nodes.len());
        let mut inputs = Vec::with_capacity(nodes.len());
        for node in nodes {
            ops.push(
                fusion
                    .renamed
                    .get(&node.op)
                    .map_or(node.op.as_str(), String::as_str),
            );
            inputs.push(
                node.input
                    .iter()
                    .map(|input| {
                        if input.starts_with('^') {
                            return None;
                        }
                        index
                            .get(InputRef::parse(input).node)
                            .and_then(|&p| resolve(p))
                    })
                    .collect(),
            );
        }
        View {
            ops,
            inputs,
            bypassed,
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
    match requirement {
        Requirement::F32Scalar { equals, why, .. } => {
            let value = const_values(node, DataType::DtFloat, 1)
                .and_then(|t| f32_at(t, 0))
                .filter(|v| equals.is_none_or(|e| *v == e));
            value
                .is_none()
                .then(|| format!("'{}' is not a Const of one float32: {why}", node.name))
        }
        Requirement::I32Values { count, why, .. } => const_values(node, DataType::DtInt32, *count)
            .is_none()
            .then(|| {
                format!(
                    "'{}' is not a Const of {count} int32 values: {why}",
                    node.name
                )
            }),
        Requirement::AttrString {
            attr, equals, why, ..
        } => {
            let value = attrs::string(node, attr);
            (value.as_deref() != Some(equals.as_str())).then(|| {
                format!(
                    "'{}' has {attr} {}: {why}",
                    node.name,
                    value.map_or_else(|| "unset".to_string(), |v| format!("\"{v}\""))
                )
            })
        }
    }
}

/// The tensor of a Const of `dtype` whose shape holds exactly `count` elements, all stored.
fn const_values(node: &NodeDef, dtype: DataType, count: u64) -> Option<&TensorProto> {
    if node.op != "Const" {
        return None;
    }
    let tensor = attrs::tensor(node, "value")?;
    if tensor.dtype != dtype as i32 {
        return None;
    }
    let shape = tensor.tensor_shape.as_ref();
    let elements = match shape {
        None => 1u64,
        Some(s) if s.unknown_rank => return None,
        Some(s) => s.dim.iter().try_fold(1u64, |n, d| {
            u64::try_from(d.size).ok().and_then(|d| n.checked_mul(d))
        })?,
    };
    if elements != count {
        return None;
    }
    let width: u64 = 4;
    let stored = if tensor.tensor_content.is_empty() {
        match dtype {
            DataType::DtFloat => tensor.float_val.len() as u64,
            _ => tensor.int_val.len() as u64,
        }
    } else {
        tensor.tensor_content.len() as u64 / width
    };
    (stored == count).then_some(tensor)
}

fn f32_at(tensor: &TensorProto, k: usize) -> Option<f32> {
    if tensor.tensor_content.is_empty() {
        return tensor.float_val.get(k).copied();
    }
    let bytes = tensor.tensor_content.get(k * 4..k * 4 + 4)?;
    Some(f32::from_le_bytes(bytes.try_into().ok()?))
}
