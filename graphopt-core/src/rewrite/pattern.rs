//! Op-type patterns and subgraph replacement, for writing transforms that rewrite small
//! subgraphs (the idea of the Graph Transform Tool's OpTypePattern, with its sharp edges
//! removed).
//!
//! ```
//! use graphopt_core::rewrite::pattern::Pattern;
//! // Conv2D or DepthwiseConv2dNative whose second input is a Const, feeding a BiasAdd of a Const.
//! let p = Pattern::parse("BiasAdd(Conv2D|DepthwiseConv2dNative(*, Const), Const)").unwrap();
//! assert_eq!(p.to_string(), "BiasAdd(Conv2D|DepthwiseConv2dNative(*, Const), Const)");
//! ```
//!
//! Semantics: an op pattern is `*` (any op), one op, or alternatives `A|B`. A pattern with
//! inputs matches a node with exactly that many data inputs (control inputs are ignored), each
//! matching in order; a pattern without inputs matches whatever the node's inputs are. Matches
//! never overlap. [`replace`] hands each match to a callback and splices in what it returns:
//! matched nodes the replacement still reads (its weights, the subgraph's inputs) stay, the
//! rest go — and a replacement that would drop a matched node something outside the match
//! still reads is refused and reported, so a careless rewrite cannot dangle an edge. [`replace_until_stable`]
//! repeats until nothing matches, bounded by the graph's size.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::graph::edit::data_inputs;
use crate::graph::{self, InputRef};
use crate::proto::{GraphDef, NodeDef};

/// An op-type pattern tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// Accepted op types; empty means any op (`*`).
    pub ops: Vec<String>,
    /// Patterns for the data inputs, in order; `None` means "any inputs".
    pub inputs: Option<Vec<Pattern>>,
}

impl Pattern {
    /// Any node, any inputs.
    pub fn any() -> Self {
        Pattern {
            ops: Vec::new(),
            inputs: None,
        }
    }

    /// A node of `op` (`*`, `A`, or `A|B`) with any inputs.
    pub fn op(op: &str) -> Self {
        let ops = if op == "*" {
            Vec::new()
        } else {
            op.split('|').map(str::to_string).collect()
        };
        Pattern { ops, inputs: None }
    }

    /// A node of `op` whose data inputs match `inputs` exactly.
    pub fn with_inputs(op: &str, inputs: Vec<Pattern>) -> Self {
        Pattern {
            inputs: Some(inputs),
            ..Pattern::op(op)
        }
    }

    /// Parses `Op(Input, Other(*, Const))`, with `*` and `A|B` for ops.
    pub fn parse(text: &str) -> Result<Self, String> {
        let tokens: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
        let mut pos = 0;
        let pattern = parse_pattern(&tokens, &mut pos)?;
        if pos != tokens.len() {
            return Err(format!("unexpected '{}' at {}", tokens[pos], pos + 1));
        }
        Ok(pattern)
    }

    fn accepts(&self, op: &str) -> bool {
        self.ops.is_empty() || self.ops.iter().any(|o| o == op)
    }
}

fn parse_pattern(tokens: &[char], pos: &mut usize) -> Result<Pattern, String> {
    let start = *pos;
    while *pos < tokens.len()
        && (tokens[*pos].is_ascii_alphanumeric() || matches!(tokens[*pos], '_' | '|' | '*'))
    {
        *pos += 1;
    }
    if start == *pos {
        return Err(format!("expected an op name or '*' at {}", start + 1));
    }
    let op: String = tokens[start..*pos].iter().collect();
    if tokens.get(*pos) != Some(&'(') {
        return Ok(Pattern::op(&op));
    }
    *pos += 1;
    let mut inputs = Vec::new();
    loop {
        inputs.push(parse_pattern(tokens, pos)?);
        match tokens.get(*pos) {
            Some(',') => *pos += 1,
            Some(')') => {
                *pos += 1;
                return Ok(Pattern::with_inputs(&op, inputs));
            }
            _ => return Err(format!("expected ',' or ')' at {}", *pos + 1)),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ops.is_empty() {
            f.write_str("*")?;
        } else {
            f.write_str(&self.ops.join("|"))?;
        }
        if let Some(inputs) = &self.inputs {
            f.write_str("(")?;
            for (i, p) in inputs.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{p}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A matched subgraph: the node matched by a pattern and the matches of its inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// Index of the node in the graph the match was made on.
    pub node: usize,
    pub inputs: Vec<Match>,
    /// Matched by a pattern without inputs: a boundary that other matches may share.
    pub leaf: bool,
}

impl Match {
    /// The matched nodes that are not leaves (root included): what no other match may claim.
    pub fn interior(&self) -> Vec<usize> {
        let mut out = if self.leaf && !self.inputs.is_empty() {
            Vec::new()
        } else {
            vec![self.node]
        };
        for m in self.inputs.iter().filter(|m| !m.leaf) {
            out.extend(m.interior());
        }
        out
    }

    /// Every matched node, root first.
    pub fn nodes(&self) -> Vec<usize> {
        let mut out = vec![self.node];
        for m in &self.inputs {
            out.extend(m.nodes());
        }
        out
    }
}

fn match_at(
    graph: &GraphDef,
    index: &crate::graph::GraphIndex<'_>,
    pattern: &Pattern,
    i: usize,
    used: &HashSet<usize>,
) -> Option<Match> {
    let node = graph.node.get(i)?;
    if !pattern.accepts(&node.op) {
        return None;
    }
    let Some(input_patterns) = &pattern.inputs else {
        // Leaves are boundaries: several matches may share them.
        return Some(Match {
            node: i,
            inputs: Vec::new(),
            leaf: true,
        });
    };
    if used.contains(&i) {
        return None;
    }
    let inputs = data_inputs(node);
    if inputs.len() != input_patterns.len() {
        return None;
    }
    let mut matched = Vec::with_capacity(inputs.len());
    for (input, p) in inputs.iter().zip(input_patterns) {
        let producer = index.index_of(InputRef::parse(input).node)?;
        matched.push(match_at(graph, index, p, producer, used)?);
    }
    // A node may appear twice inside one match (x*x), but not in two matches.
    Some(Match {
        node: i,
        inputs: matched,
        leaf: false,
    })
}

/// Every non-overlapping match of `pattern`, roots in execution order.
pub fn find(graph: &GraphDef, pattern: &Pattern) -> Vec<Match> {
    let index = crate::graph::GraphIndex::new(graph);
    let order = graph::execution_order(graph).unwrap_or_else(|_| (0..graph.node.len()).collect());
    let mut used = HashSet::new();
    let mut matches = Vec::new();
    for i in order {
        if let Some(m) = match_at(graph, &index, pattern, i, &used) {
            used.extend(m.interior());
            matches.push(m);
        }
    }
    matches
}

/// What [`replace`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replaced {
    /// Matches replaced.
    pub count: usize,
    /// Replacements refused because they dropped a node still read outside the match.
    pub refused: Vec<String>,
}

/// Replaces every match of `pattern` with the nodes `rewrite` returns for it (`None` keeps the
/// match as it is). Replacement nodes take the position of the match's root. Nodes named in
/// `keep` count as read from outside, like --outputs.
pub fn replace(
    graph: &mut GraphDef,
    pattern: &Pattern,
    keep: &HashSet<String>,
    mut rewrite: impl FnMut(&GraphDef, &Match) -> Option<Vec<NodeDef>>,
) -> Replaced {
    let matches = find(graph, pattern);
    let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
    // Looking names up by scanning would be quadratic over many matches.
    let positions = crate::graph::name_index(&graph.node);
    for (c, node) in graph.node.iter().enumerate() {
        for input in &node.input {
            readers
                .entry(InputRef::parse(input).node)
                .or_default()
                .push(c);
        }
    }
    let mut result = Replaced::default();
    let mut removed: HashSet<usize> = HashSet::new();
    let mut inserted: HashMap<usize, Vec<NodeDef>> = HashMap::new();
    for m in &matches {
        // A match touching what an earlier replacement of this round removes waits for the
        // next round (matches may share leaves).
        if m.nodes().iter().any(|i| removed.contains(i)) {
            continue;
        }
        let Some(new_nodes) = rewrite(graph, m) else {
            continue;
        };
        // Matched nodes the replacement still reads (weights, the subgraph's inputs) stay.
        let provided: HashSet<&str> = new_nodes.iter().map(|n| n.name.as_str()).collect();
        let referenced: HashSet<&str> = new_nodes
            .iter()
            .flat_map(|n| n.input.iter())
            .map(|i| InputRef::parse(i).node)
            .collect();
        let doomed: HashSet<usize> = m
            .nodes()
            .into_iter()
            .filter(|&i| {
                let name = graph.node[i].name.as_str();
                provided.contains(name) || !referenced.contains(name)
            })
            .collect();
        let dropped = doomed.iter().find_map(|&i| {
            let name = graph.node[i].name.as_str();
            let outside = keep.contains(name)
                || readers
                    .get(name)
                    .is_some_and(|r| r.iter().any(|c| !doomed.contains(c)));
            (outside && !provided.contains(name)).then_some(name)
        });
        let needs_removed = referenced
            .iter()
            .any(|name| positions.get(name).is_some_and(|i| removed.contains(i)));
        if needs_removed {
            continue;
        }
        if let Some(name) = dropped {
            result.refused.push(format!(
                "replacing the match at '{}' would drop '{name}', which is still read",
                graph.node[m.node].name
            ));
            continue;
        }
        removed.extend(doomed);
        inserted.insert(m.node, new_nodes);
        result.count += 1;
    }
    if result.count > 0 {
        let old = std::mem::take(&mut graph.node);
        for (i, node) in old.into_iter().enumerate() {
            if let Some(new) = inserted.remove(&i) {
                graph.node.extend(new);
            } else if !removed.contains(&i) {
                graph.node.push(node);
            }
        }
    }
    result
}

/// [`replace`] until no match is replaced (at most once per node of the graph).
pub fn replace_until_stable(
    graph: &mut GraphDef,
    pattern: &Pattern,
    keep: &HashSet<String>,
    mut rewrite: impl FnMut(&GraphDef, &Match) -> Option<Vec<NodeDef>>,
) -> Replaced {
    let mut total = Replaced::default();
    for _ in 0..=graph.node.len() {
        let round = replace(graph, pattern, keep, &mut rewrite);
        total.refused.extend(round.refused);
        if round.count == 0 {
            break;
        }
        total.count += round.count;
    }
    total
}
