//! Merging identical nodes: [`merge_duplicates`] keeps one of every group of nodes with the
//! same op, inputs, device and attributes and points the others' readers at it (the
//! `merge_duplicate_nodes` transform, and constant sharing in the deployment pipelines).
//!
//! Nodes are visited in execution order with their inputs already redirected, so a merge of
//! two constants makes their readers identical in the same pass: one pass merges everything,
//! and every node is hashed once, a large weight by its ends only, then whole if its ends
//! match another's. Equal hashes are confirmed by comparing the nodes in full. Only pure ops
//! merge (see [`crate::graph::ops::is_pure`]): never two random number generators, variables,
//! control-flow primitives or graph inputs. Protected names survive: when a protected node
//! duplicates another, the protected one is kept; otherwise the one first in the file is.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

use prost::Message;

use crate::graph::{self, ops, GraphError, InputRef};
use crate::proto::{attr_value, GraphDef, NodeDef};

/// How much of a tensor's content the first, sampled hash reads: the whole content when it is
/// at most this long, else this much from each end. Trained weights differ within their
/// first bytes, so the sample alone tells real weights apart and each is read only here.
const SAMPLED_CONTENT: usize = 512;

/// Whether a hash reads a large tensor's content whole or only its ends.
#[derive(Clone, Copy)]
enum Content {
    Sampled,
    Whole,
}

/// A hash of everything but the name. Hashes decide nothing but which nodes get compared in
/// full, so any fixed seed gives the same merges.
///
/// Weights are most of a graph's bytes and every round of `@deploy` looks at them all: the
/// first hash reads only the ends of a large tensor (content hashing was a fifth of
/// `@deploy`'s time on ResNet-50); nodes whose sampled hashes agree are hashed whole before
/// any full comparison, so tensors that agree at their ends but not inside cost one whole
/// hash each, never a comparison with every other.
/// The hash, and whether it left any content out (if not, it is the whole hash too).
fn content_hash(node: &NodeDef, content: Content) -> (u64, bool) {
    let mut sampled = false;
    let mut hasher = foldhash::quality::FixedState::with_seed(0x6772_6170_686f_7074).build_hasher();
    hasher.write(node.op.as_bytes());
    hasher.write_u8(0);
    for input in &node.input {
        hasher.write(input.as_bytes());
        hasher.write_u8(0);
    }
    hasher.write(node.device.as_bytes());
    hasher.write_u8(0);
    for (key, value) in &node.attr {
        hasher.write(key.as_bytes());
        match &value.value {
            Some(attr_value::Value::Tensor(tensor)) => {
                let mut header = tensor.clone();
                let bytes = std::mem::take(&mut header.tensor_content);
                hasher.write(&header.encode_to_vec());
                hasher.write_usize(bytes.len());
                match content {
                    Content::Sampled if bytes.len() > 2 * SAMPLED_CONTENT => {
                        sampled = true;
                        hasher.write(&bytes[..SAMPLED_CONTENT]);
                        hasher.write(&bytes[bytes.len() - SAMPLED_CONTENT..]);
                    }
                    _ => hasher.write(&bytes),
                }
            }
            _ => hasher.write(&value.encode_to_vec()),
        }
    }
    (hasher.finish(), sampled)
}

/// Where the kept nodes that may equal a node are found: by sampled hash while one node has
/// it, by whole hash once a second one does, so that no list holds nodes that only look alike.
struct Candidates {
    /// The one node of each sampled hash so far, taken out when a second one comes.
    first: HashMap<u64, Option<usize>>,
    by_whole: HashMap<u64, Vec<usize>>,
    /// Each node's whole hash, once known.
    whole: Vec<Option<u64>>,
}

impl Candidates {
    fn new(nodes: usize) -> Self {
        Candidates {
            first: HashMap::new(),
            by_whole: HashMap::new(),
            whole: vec![None; nodes],
        }
    }

    fn whole_hash(&mut self, nodes: &[NodeDef], i: usize) -> u64 {
        match self.whole.get(i).copied().flatten() {
            Some(hash) => hash,
            None => {
                let hash = nodes
                    .get(i)
                    .map_or(0, |n| content_hash(n, Content::Whole).0);
                if let Some(slot) = self.whole.get_mut(i) {
                    *slot = Some(hash);
                }
                hash
            }
        }
    }

    /// The kept nodes node `i` may equal, or `None` when it is the first of its kind (then it
    /// is kept, and registered as such).
    fn of(&mut self, nodes: &[NodeDef], i: usize) -> Option<&mut Vec<usize>> {
        let (sampled, partial) = content_hash(nodes.get(i)?, Content::Sampled);
        if !partial {
            if let Some(slot) = self.whole.get_mut(i) {
                *slot = Some(sampled);
            }
        }
        match self.first.entry(sampled) {
            std::collections::hash_map::Entry::Vacant(entry) => {
                entry.insert(Some(i));
                return None;
            }
            std::collections::hash_map::Entry::Occupied(mut entry) => {
                // Nothing merged into the first node yet: it had no candidates to meet.
                if let Some(first) = entry.get_mut().take() {
                    let hash = self.whole_hash(nodes, first);
                    self.by_whole.entry(hash).or_default().push(first);
                }
            }
        }
        let hash = self.whole_hash(nodes, i);
        Some(self.by_whole.entry(hash).or_default())
    }
}

fn same_content(a: &NodeDef, b: &NodeDef) -> bool {
    a.op == b.op
        && a.input == b.input
        && a.device == b.device
        && a.attr == b.attr
        && a.experimental_debug_info == b.experimental_debug_info
        && a.experimental_type == b.experimental_type
}

/// Where each merged-away node's readers go: the node's group, whose kept node may change
/// while the pass runs (a protected or earlier duplicate takes over). One lookup per input,
/// where following a chain of replaced names per input is quadratic (every one of thousands of
/// identical nodes replacing the last).
struct Merged {
    /// Group of each merged-away name.
    group_of: HashMap<String, usize>,
    /// Kept node name of each group.
    kept: Vec<String>,
    /// Group of each kept node (by index), once something merged into it.
    node_group: Vec<Option<usize>>,
}

impl Merged {
    fn new(nodes: usize) -> Self {
        Merged {
            group_of: HashMap::new(),
            kept: Vec::new(),
            node_group: vec![None; nodes],
        }
    }

    /// Where `name` ends up after the merges so far.
    fn resolve<'a>(&'a self, name: &'a str) -> &'a str {
        self.group_of
            .get(name)
            .and_then(|&g| self.kept.get(g))
            .map_or(name, String::as_str)
    }

    /// `dropped` is merged into `kept`, along with everything merged into `dropped` before.
    fn merge(&mut self, dropped: usize, kept: usize, names: (&str, &str)) {
        let (dropped_name, kept_name) = names;
        // At most one of them has a group: the other was just visited.
        let group_of = |i: usize| self.node_group.get(i).copied().flatten();
        let group = match group_of(dropped).or(group_of(kept)) {
            Some(g) => g,
            None => {
                self.kept.push(String::new());
                self.kept.len() - 1
            }
        };
        if let Some(slot) = self.kept.get_mut(group) {
            *slot = kept_name.to_string();
        }
        self.group_of.insert(dropped_name.to_string(), group);
        if let Some(g) = self.node_group.get_mut(kept) {
            *g = Some(group);
        }
    }

    fn redirect(&self, input: &mut String) {
        let parsed = InputRef::parse(input);
        let target = self.resolve(parsed.node);
        if target != parsed.node {
            *input = InputRef {
                node: target,
                ..parsed
            }
            .to_string();
        }
    }
}

/// Merges identical pure nodes of `graph`; returns how many nodes were removed.
pub fn merge_duplicates(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
) -> Result<usize, GraphError> {
    let order = graph::execution_order(graph)?;
    let mut merged = Merged::new(graph.node.len());
    let mut candidates_of = Candidates::new(graph.node.len());
    let mut removed = vec![false; graph.node.len()];
    for i in order {
        for input in &mut graph.node[i].input {
            merged.redirect(input);
        }
        let node = &graph.node[i];
        if !ops::is_pure(&node.op) {
            continue;
        }
        let Some(candidates) = candidates_of.of(&graph.node, i) else {
            continue;
        };
        let Some(slot) = candidates
            .iter()
            .position(|&k| same_content(&graph.node[k], node))
        else {
            candidates.push(i);
            continue;
        };
        let keep = candidates[slot];
        let (kept, new) = (&graph.node[keep], &graph.node[i]);
        let (kept_protected, new_protected) = (
            protected.contains(&kept.name),
            protected.contains(&new.name),
        );
        if kept_protected && new_protected {
            continue;
        }
        // A protected name stays; otherwise the node first in the file does.
        if new_protected || (!kept_protected && i < keep) {
            merged.merge(keep, i, (&kept.name, &new.name));
            removed[keep] = true;
            candidates[slot] = i;
        } else {
            merged.merge(i, keep, (&new.name, &kept.name));
            removed[i] = true;
        }
    }
    let count = removed.iter().filter(|&&r| r).count();
    if count == 0 {
        return Ok(0);
    }
    let old = std::mem::take(&mut graph.node);
    for (i, mut node) in old.into_iter().enumerate() {
        if removed[i] {
            continue;
        }
        // Readers visited before a protected swap still name the dropped node.
        for input in &mut node.input {
            merged.redirect(input);
        }
        // Two control inputs may now name the same node, or a node also read as data.
        let data: HashSet<String> = node
            .input
            .iter()
            .filter(|i| !i.starts_with('^'))
            .map(|i| graph::node_name(i).to_string())
            .collect();
        let mut seen = HashSet::new();
        node.input.retain(|input| match input.strip_prefix('^') {
            Some(name) => !data.contains(name) && seen.insert(name.to_string()),
            None => true,
        });
        graph.node.push(node);
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::graph::test_nodes::float_node as node;

    #[test]
    fn three_identical_with_the_last_protected() {
        let mut graph = GraphDef {
            node: vec![
                node("x", "Placeholder", &[]),
                node("a", "Relu", &["x"]),
                node("b", "Relu", &["x"]),
                node("c", "Relu", &["x"]),
                node("ra", "Neg", &["a"]),
                node("rb", "Sqrt", &["b"]),
            ],
            ..Default::default()
        };
        let protected: HashSet<String> = ["c".to_string()].into();
        assert_eq!(merge_duplicates(&mut graph, &protected), Ok(2));
        let names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["x", "c", "ra", "rb"]);
        for reader in &graph.node[2..] {
            assert_eq!(reader.input, ["c"], "{} reads a removed node", reader.name);
        }
        assert_eq!(crate::graph::validate(&graph), Ok(()));
    }

    #[test]
    fn stateful_ops_never_merge() {
        let mut graph = GraphDef {
            node: vec![
                node("s", "Const", &[]),
                node("r1", "RandomUniform", &["s"]),
                node("r2", "RandomUniform", &["s"]),
            ],
            ..Default::default()
        };
        assert_eq!(merge_duplicates(&mut graph, &HashSet::new()), Ok(0));
    }

    /// TensorFlow does not mark AssignAdd stateful, but it writes its ref variable: two
    /// increments are two increments.
    #[test]
    fn writes_through_ref_inputs_never_merge() {
        let mut graph = GraphDef {
            node: vec![
                node("v", "VariableV2", &[]),
                node("d", "Const", &[]),
                node("a1", "AssignAdd", &["v", "d"]),
                node("a2", "AssignAdd", &["v", "d"]),
            ],
            ..Default::default()
        };
        assert_eq!(merge_duplicates(&mut graph, &HashSet::new()), Ok(0));
        assert_eq!(graph.node.len(), 4);
    }

    /// A Const of `len` bytes of content, all `fill` but `middle` at its middle two bytes.
    fn weights(name: &str, len: usize, fill: u8, middle: u16) -> NodeDef {
        let mut content = vec![fill; len];
        content[len / 2..len / 2 + 2].copy_from_slice(&middle.to_le_bytes());
        let mut node = node(name, "Const", &[]);
        let tensor = crate::proto::TensorProto {
            dtype: crate::proto::DataType::DtUint8 as i32,
            tensor_content: content.into(),
            ..Default::default()
        };
        node.attr.insert(
            "value".into(),
            crate::proto::AttrValue {
                value: Some(attr_value::Value::Tensor(Box::new(tensor))),
            },
        );
        node
    }

    #[test]
    fn large_constants_that_differ_only_inside_stay_apart() {
        let len = 8 * SAMPLED_CONTENT;
        let mut graph = GraphDef {
            node: vec![
                weights("a", len, 1, 0),
                weights("b", len, 1, 9),
                weights("c", len, 1, 0),
            ],
            ..Default::default()
        };
        assert_eq!(merge_duplicates(&mut graph, &HashSet::new()), Ok(1));
        let names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
    }

    /// Many weights alike at their ends: each is hashed whole once and compared in full only
    /// with its duplicate, never with every other (8 million comparisons of 16 KiB).
    #[test]
    fn weights_alike_at_their_ends_are_not_compared_pairwise() {
        let count = 4000;
        let mut graph = GraphDef {
            node: (0..count)
                .map(|i| weights(&format!("w{i}"), 16 << 10, 7, (i % 2000) as u16))
                .collect(),
            ..Default::default()
        };
        // 2000 distinct middles, each twice.
        assert_eq!(merge_duplicates(&mut graph, &HashSet::new()), Ok(2000));
        let names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names.first(), Some(&"w0"));
        assert_eq!(names.last(), Some(&"w1999"));
    }

    #[test]
    fn merged_constants_make_their_readers_merge_in_one_pass() {
        let mut graph = GraphDef {
            node: vec![
                node("x", "Placeholder", &[]),
                node("c1", "Const", &[]),
                node("c2", "Const", &[]),
                node("m1", "Mul", &["x", "c1"]),
                node("m2", "Mul", &["x", "c2"]),
                node("out", "AddV2", &["m1", "m2"]),
            ],
            ..Default::default()
        };
        assert_eq!(merge_duplicates(&mut graph, &HashSet::new()), Ok(2));
        let out = graph
            .node
            .iter()
            .find(|n| n.name == "out")
            .map(|n| n.input.clone());
        assert_eq!(out, Some(vec!["m1".to_string(), "m1".to_string()]));
    }
}
