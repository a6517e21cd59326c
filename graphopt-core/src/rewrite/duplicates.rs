//! Merging identical nodes: [`merge_duplicates`] keeps one of every group of nodes with the
//! same op, inputs, device and attributes and points the others' readers at it (the
//! `merge_duplicate_nodes` transform, and constant sharing in the deployment pipelines).
//!
//! Nodes are visited in execution order with their inputs already pointed at the first-visited
//! member of each group of duplicates, so a merge of two constants makes their readers
//! identical in the same pass, whichever member stays: one pass merges everything,
//! and every node is hashed once, a large weight by its ends only, then whole if its ends
//! match another's. Equal hashes are confirmed by comparing the nodes in full. Only pure ops
//! merge (see [`crate::graph::ops::is_pure`]): never two random number generators, variables,
//! control-flow primitives or graph inputs. Protected names survive: when a protected node
//! duplicates another, the protected one is kept; otherwise the one first in the file is.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};

use prost::Message;

use crate::graph::{self, ops, GraphError, InputRef};
use crate::proto::{attr_value, AttrValue, GraphDef, NodeDef, TensorProto};

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
///
/// Returns the hash, and whether it left any content out (if not, it is the whole hash too).
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
                let bytes = &tensor.tensor_content;
                hasher.write(&tensor_header(tensor));
                hasher.write_usize(bytes.len());
                match content {
                    Content::Sampled if bytes.len() > 2 * SAMPLED_CONTENT => {
                        sampled = true;
                        hasher.write(&bytes[..SAMPLED_CONTENT]);
                        hasher.write(&bytes[bytes.len() - SAMPLED_CONTENT..]);
                    }
                    _ => hasher.write(bytes),
                }
            }
            _ => hasher.write(&value.encode_to_vec()),
        }
    }
    // Compared by `same_content` too: nodes that differ only here must not share a list.
    for part in [
        encoded(&node.experimental_debug_info),
        encoded(&node.experimental_type),
    ] {
        hasher.write_u8(u8::from(part.is_some()));
        hasher.write(part.as_deref().unwrap_or_default());
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

/// Whether two nodes compute the same thing: equal but for their names, attribute values
/// compared by their encoding (so a NaN attribute equals itself and `-0.0` differs from
/// `0.0`, as they would in the graph's file), a tensor's content in place.
fn same_content(a: &NodeDef, b: &NodeDef) -> bool {
    let same_value = |x: &AttrValue, y: &AttrValue| match (&x.value, &y.value) {
        (Some(attr_value::Value::Tensor(x)), Some(attr_value::Value::Tensor(y))) => {
            x.tensor_content == y.tensor_content && tensor_header(x) == tensor_header(y)
        }
        _ => x.encode_to_vec() == y.encode_to_vec(),
    };
    a.op == b.op
        && a.input == b.input
        && a.device == b.device
        && a.attr.len() == b.attr.len()
        && a.attr
            .iter()
            .zip(&b.attr)
            .all(|((ka, va), (kb, vb))| ka == kb && same_value(va, vb))
        && encoded(&a.experimental_debug_info) == encoded(&b.experimental_debug_info)
        && encoded(&a.experimental_type) == encoded(&b.experimental_type)
}

fn encoded<M: Message>(message: &Option<M>) -> Option<Vec<u8>> {
    message.as_ref().map(Message::encode_to_vec)
}

/// A tensor's encoding without its `tensor_content`.
fn tensor_header(tensor: &TensorProto) -> Vec<u8> {
    let mut header = tensor.clone();
    header.tensor_content = Default::default();
    header.encode_to_vec()
}

/// The groups of identical nodes found so far. While the pass runs, readers are pointed at a
/// group's representative, the member visited first, which never changes, so that readers of
/// any member become identical whenever they are visited. Which member stays (a protected one,
/// else the one first in the file) may change as members are found; readers are pointed at it
/// once the pass is done. One lookup per input, where following a chain of replaced names per
/// input is quadratic (every one of thousands of identical nodes replacing the last).
struct Merged {
    /// Group of each member's name, the representative's included.
    group_of: HashMap<String, usize>,
    /// Group of each representative, by node index.
    group_of_node: Vec<Option<usize>>,
    representative: Vec<String>,
    /// The member that stays, by node index and name.
    kept: Vec<(usize, String)>,
}

impl Merged {
    fn new(nodes: usize) -> Self {
        Merged {
            group_of: HashMap::new(),
            group_of_node: vec![None; nodes],
            representative: Vec::new(),
            kept: Vec::new(),
        }
    }

    /// The group whose representative is node `index`, made if it has none yet.
    fn group(&mut self, index: usize, name: &str) -> usize {
        if let Some(group) = self.group_of_node.get(index).copied().flatten() {
            return group;
        }
        let group = self.representative.len();
        self.representative.push(name.to_string());
        self.kept.push((index, name.to_string()));
        self.group_of.insert(name.to_string(), group);
        if let Some(slot) = self.group_of_node.get_mut(index) {
            *slot = Some(group);
        }
        group
    }

    fn kept(&self, group: usize) -> Option<&(usize, String)> {
        self.kept.get(group)
    }

    /// Node `index`, named `name`, joins `group`; `stays` when it is the member that stays.
    fn join(&mut self, group: usize, index: usize, name: &str, stays: bool) {
        self.group_of.insert(name.to_string(), group);
        if stays {
            if let Some(slot) = self.kept.get_mut(group) {
                *slot = (index, name.to_string());
            }
        }
    }

    /// Points `input` at its group's representative (`Pass`) or at the member that stays
    /// (`Done`).
    fn redirect(&self, input: &mut String, when: Stage) {
        let parsed = InputRef::parse(input);
        let Some(&group) = self.group_of.get(parsed.node) else {
            return;
        };
        let target = match when {
            Stage::Pass => self.representative.get(group),
            Stage::Done => self.kept.get(group).map(|(_, name)| name),
        };
        if let Some(target) = target.filter(|t| t.as_str() != parsed.node) {
            *input = InputRef {
                node: target,
                ..parsed
            }
            .to_string();
        }
    }
}

#[derive(Clone, Copy)]
enum Stage {
    Pass,
    Done,
}

/// Merges identical pure nodes of `graph`; returns how many nodes were removed.
pub fn merge_duplicates(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
) -> Result<usize, GraphError> {
    merge_duplicates_except(graph, protected, &HashSet::new())
}

/// [`merge_duplicates`], leaving the nodes named in `fed` out entirely: a node the caller
/// feeds (a declared input) holds what is fed, not what it computes, so it neither takes
/// another node's readers nor gives its own to another.
pub fn merge_duplicates_except(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
    fed: &HashSet<String>,
) -> Result<usize, GraphError> {
    let order = graph::execution_order(graph)?;
    let mut merged = Merged::new(graph.node.len());
    let mut candidates_of = Candidates::new(graph.node.len());
    let mut removed = vec![false; graph.node.len()];
    for i in order {
        for input in &mut graph.node[i].input {
            merged.redirect(input, Stage::Pass);
        }
        let node = &graph.node[i];
        if !ops::is_pure(&node.op) || fed.contains(&node.name) {
            continue;
        }
        let Some(candidates) = candidates_of.of(&graph.node, i) else {
            continue;
        };
        let Some(&representative) = candidates
            .iter()
            .find(|&&k| same_content(&graph.node[k], node))
        else {
            candidates.push(i);
            continue;
        };
        let group = merged.group(representative, &graph.node[representative].name);
        let Some((kept, kept_name)) = merged.kept(group).cloned() else {
            continue;
        };
        let (kept_protected, new_protected) = (
            protected.contains(&kept_name),
            protected.contains(&node.name),
        );
        if kept_protected && new_protected {
            continue;
        }
        // A protected name stays; otherwise the node first in the file does.
        let stays = new_protected || (!kept_protected && i < kept);
        if stays {
            removed[kept] = true;
        } else {
            removed[i] = true;
        }
        merged.join(group, i, &node.name, stays);
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
        for input in &mut node.input {
            merged.redirect(input, Stage::Done);
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

    /// The later of two identical Consts is visited first, with its reader, and the earlier
    /// one stays: the reader visited before the choice must still meet the other reader.
    #[test]
    fn readers_visited_before_the_kept_node_changes_still_merge() {
        let mut graph = GraphDef {
            node: vec![
                weights("c1", 64, 3, 1),
                weights("c2", 64, 3, 1),
                node("r1", "Neg", &["c1"]),
                node("r2", "Neg", &["c2"]),
            ],
            ..Default::default()
        };
        assert_eq!(merge_duplicates(&mut graph, &HashSet::new()), Ok(2));
        let names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["c1", "r1"]);
        assert_eq!(graph.node[1].input, ["c1"]);
    }

    /// Attribute values are compared as the file holds them: a NaN equals itself, `-0.0` is
    /// not `0.0`.
    #[test]
    fn attributes_compare_by_their_encoding() {
        let leaky = |name: &str, alpha: f32| {
            let mut n = node(name, "LeakyRelu", &["x"]);
            n.attr.insert(
                "alpha".into(),
                AttrValue {
                    value: Some(attr_value::Value::F(alpha)),
                },
            );
            n
        };
        let mut graph = GraphDef {
            node: vec![
                node("x", "Placeholder", &[]),
                leaky("nan1", f32::NAN),
                leaky("nan2", f32::NAN),
                leaky("zero", 0.0),
                leaky("negative_zero", -0.0),
            ],
            ..Default::default()
        };
        assert_eq!(merge_duplicates(&mut graph, &HashSet::new()), Ok(1));
        let names: Vec<&str> = graph.node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["x", "nan1", "zero", "negative_zero"]);
    }

    #[test]
    fn nodes_that_differ_in_debug_info_stay_apart() {
        let mut a = weights("a", 4096, 1, 2);
        let mut b = weights("b", 4096, 1, 2);
        for (node, original) in [(&mut a, "x"), (&mut b, "y")] {
            node.experimental_debug_info = Some(crate::proto::node_def::ExperimentalDebugInfo {
                original_node_names: vec![original.into()],
                ..Default::default()
            });
        }
        let mut graph = GraphDef {
            node: vec![a, b],
            ..Default::default()
        };
        assert_eq!(merge_duplicates(&mut graph, &HashSet::new()), Ok(0));
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
