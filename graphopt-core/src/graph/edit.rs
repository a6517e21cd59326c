//! Helpers for transforms that rewrite subgraphs: a name index with use counts built once per
//! sweep, Const values, unique names, Const node construction, and the removal of what a
//! rewrite left unread.

use std::collections::{HashMap, HashSet};

use crate::graph::attrs;
use crate::graph::InputRef;
use crate::proto::{attr_value, AttrValue, GraphDef, NodeDef, TensorProto, TensorShapeProto};
use crate::tensor::Tensor;

/// A snapshot of a graph's names and how often each node is read.
pub struct Uses {
    index: crate::graph::NameMap<String, usize>,
    uses: Vec<usize>,
    /// Data (non-control) reads per node.
    data_uses: Vec<usize>,
    /// Outputs other than 0 that something reads, per node.
    high_ports: Vec<bool>,
}

impl Uses {
    pub fn new(graph: &GraphDef) -> Self {
        let index = crate::graph::owned_name_index(graph);
        let mut uses = vec![0; graph.node.len()];
        let mut data_uses = vec![0; graph.node.len()];
        let mut high_ports = vec![false; graph.node.len()];
        for node in &graph.node {
            for input in &node.input {
                let parsed = InputRef::parse(input);
                if let Some(&p) = index.get(parsed.node) {
                    uses[p] += 1;
                    if !parsed.control {
                        data_uses[p] += 1;
                    }
                    high_ports[p] |= parsed.port > 0;
                }
            }
        }
        Uses {
            index,
            uses,
            data_uses,
            high_ports,
        }
    }

    /// Index of the node producing `input` (any spelling), if it exists.
    pub fn producer(&self, input: &str) -> Option<usize> {
        self.index.get(InputRef::parse(input).node).copied()
    }

    /// How many input entries (data and control) read node `i`.
    pub fn count(&self, i: usize) -> usize {
        self.uses.get(i).copied().unwrap_or(0)
    }

    /// How many data inputs (control edges not counted) read node `i`.
    pub fn data_count(&self, i: usize) -> usize {
        self.data_uses.get(i).copied().unwrap_or(0)
    }

    /// Whether anything reads an output of node `i` other than output 0.
    pub fn reads_other_outputs(&self, i: usize) -> bool {
        self.high_ports.get(i).copied().unwrap_or(false)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }
}

/// Renames node `old` to `new` and every input that refers to it, keeping ports and control
/// markers. The caller checks that `new` is free.
pub fn rename_node(graph: &mut GraphDef, old: &str, new: &str) {
    rename_nodes(graph, &HashMap::from([(old.to_string(), new.to_string())]));
}

/// Renames each node named by a key of `renames` (its name when the call begins) to the
/// value, and every input that refers to it, in one pass: [`rename_node`] for many nodes
/// without a pass per node. The caller checks that the new names are free.
pub fn rename_nodes(graph: &mut GraphDef, renames: &HashMap<String, String>) {
    if renames.is_empty() {
        return;
    }
    for node in &mut graph.node {
        if let Some(new) = renames.get(&node.name) {
            node.name = new.clone();
        }
        // TensorFlow's importer refuses a `loc:@` naming a node it does not have.
        for entry in colocations_mut(node) {
            let renamed = colocated_node(entry).and_then(|name| renames.get(name));
            if let Some(new) = renamed {
                *entry = [COLOCATION_PREFIX, new.as_bytes()].concat().into();
            }
        }
        for input in &mut node.input {
            let parsed = InputRef::parse(input);
            if let Some(new) = renames.get(parsed.node) {
                *input = InputRef {
                    node: new,
                    ..parsed
                }
                .to_string();
            }
        }
    }
}

/// The attribute holding a node's colocation constraints, a list of `loc:@NODE` strings.
const COLOCATION_ATTR: &str = "_class";
const COLOCATION_PREFIX: &[u8] = b"loc:@";

/// The entries of `node`'s colocation list (none if it has no list).
fn colocations_mut(node: &mut NodeDef) -> impl Iterator<Item = &mut bytes::Bytes> {
    let list = match node
        .attr
        .get_mut(COLOCATION_ATTR)
        .and_then(|a| a.value.as_mut())
    {
        Some(attr_value::Value::List(list)) => Some(list),
        _ => None,
    };
    list.into_iter().flat_map(|l| l.s.iter_mut())
}

/// The node a colocation entry (`loc:@NODE`) names.
fn colocated_node(entry: &[u8]) -> Option<&str> {
    std::str::from_utf8(entry.strip_prefix(COLOCATION_PREFIX)?).ok()
}

/// Drops the `loc:@NODE` colocation entries naming nodes the graph no longer has (and a
/// colocation list left empty), which TensorFlow's importer refuses ("expects to be colocated
/// with unknown node"); a transform that removes a node cannot know who was colocated with it.
/// Returns how many entries were dropped.
pub fn drop_dangling_colocations(graph: &mut GraphDef) -> usize {
    // Most graphs have no colocations: they pay for no name set.
    let colocated = |n: &NodeDef| n.attr.contains_key(COLOCATION_ATTR);
    if !graph.node.iter().any(colocated) {
        return 0;
    }
    let names: HashSet<String> = graph.node.iter().map(|n| n.name.clone()).collect();
    let mut dropped = 0;
    for node in graph.node.iter_mut().filter(|n| colocated(n)) {
        let Some(attr_value::Value::List(list)) = node
            .attr
            .get_mut(COLOCATION_ATTR)
            .and_then(|a| a.value.as_mut())
        else {
            continue;
        };
        let before = list.s.len();
        list.s
            .retain(|entry| colocated_node(entry).is_none_or(|name| names.contains(name)));
        let now = list.s.len();
        dropped += before - now;
        if now == 0 && before > 0 {
            node.attr.remove(COLOCATION_ATTR);
        }
    }
    dropped
}

/// The value of a Const node.
pub fn const_value(node: &NodeDef) -> Option<Tensor> {
    if node.op != "Const" {
        return None;
    }
    Tensor::from_proto(attrs::tensor(node, "value")?).ok()
}

/// The data inputs of `node` (control inputs skipped).
pub fn data_inputs(node: &NodeDef) -> Vec<&str> {
    node.input
        .iter()
        .filter(|i| !i.starts_with('^'))
        .map(String::as_str)
        .collect()
}

/// The control inputs (`^name`) of `node`, in order.
pub fn control_inputs(node: &NodeDef) -> Vec<String> {
    node.input
        .iter()
        .filter(|i| i.starts_with('^'))
        .cloned()
        .collect()
}

/// `base`, or `base_1`, `base_2`, ... whichever is not taken; the result is reserved. Probes
/// from `base` on every call: for many names from one base use a [`NameReserver`] (or
/// [`UniqueNames`]), which gives the same names in linear time.
pub fn unique_name(base: &str, taken: &mut HashSet<String>) -> String {
    UniqueNames::default().reserve(base, taken)
}

/// Where the search for a free name from each base resumes: [`unique_name`] for many names
/// from one base (thousands of copies of one Const would each try every suffix taken before).
/// It gives the names [`unique_name`] gives as long as it is always used with the same taken
/// set and that set only grows: every candidate before a base's resume point was taken when
/// it was tried (or reserved then), so it is still taken, and the first free candidate, the
/// one [`unique_name`] returns, lies at or after it. Names reserved from other bases (`a_1`
/// reserved as a base of its own, then `a`) are found taken when reached, as there.
#[derive(Default)]
pub struct UniqueNames(HashMap<String, usize>);

impl UniqueNames {
    /// `base`, or `base_1`, `base_2`, ... whichever is not in `taken`; the result is reserved.
    pub fn reserve(&mut self, base: &str, taken: &mut HashSet<String>) -> String {
        let next = self.0.entry(base.to_string()).or_insert(0);
        loop {
            let candidate = match *next {
                0 => base.to_string(),
                k => format!("{base}_{k}"),
            };
            *next += 1;
            if taken.insert(candidate.clone()) {
                return candidate;
            }
        }
    }
}

/// The names of a graph and those reserved since, handing out free ones: [`unique_name`] in
/// linear time over many calls. Names are only ever added, which keeps its [`UniqueNames`]
/// memo exact.
#[derive(Default)]
pub struct NameReserver {
    taken: HashSet<String>,
    next: UniqueNames,
}

impl NameReserver {
    /// The names of `graph`'s nodes, taken.
    pub fn new(graph: &GraphDef) -> Self {
        NameReserver {
            taken: graph.node.iter().map(|n| n.name.clone()).collect(),
            next: UniqueNames::default(),
        }
    }

    /// `base`, or `base_1`, `base_2`, ... whichever is free; the result is reserved.
    pub fn reserve(&mut self, base: &str) -> String {
        self.next.reserve(base, &mut self.taken)
    }
}

/// The control inputs of what node `node` reads, and of what those read, other than through
/// `kept`: a rewrite that makes the node read `kept` directly, bypassing the rest (a neutral
/// constant, an inner Neg, a cancelling Transpose, a chain's inner node and constants), keeps
/// the node waiting for what it waited for through them. Adding them can make no cycle: each
/// already ran before the node. In order, without repeats or the node's own.
pub fn bypassed_controls(
    graph: &GraphDef,
    by_name: &crate::graph::NameMap<String, usize>,
    node: usize,
    kept: &str,
) -> Vec<String> {
    let Some(this) = graph.node.get(node) else {
        return Vec::new();
    };
    let reads = |n: &NodeDef| -> Vec<usize> {
        data_inputs(n)
            .into_iter()
            .filter(|input| *input != kept)
            .filter_map(|input| by_name.get(crate::graph::node_name(input)).copied())
            .collect()
    };
    let mut bypassed = reads(this);
    let second: Vec<usize> = bypassed
        .iter()
        .filter_map(|&p| graph.node.get(p))
        .flat_map(reads)
        .collect();
    bypassed.extend(second);
    let own = control_inputs(this);
    let mut controls = controls_of(graph, &bypassed);
    controls.retain(|control| !own.contains(control));
    controls
}

/// The control inputs of `nodes`, in order, without repeats: what a rewrite that drops them
/// must make their readers (or the node taking their place) wait for.
pub fn controls_of(graph: &GraphDef, nodes: &[usize]) -> Vec<String> {
    let mut controls: Vec<String> = Vec::new();
    for control in nodes
        .iter()
        .filter_map(|&i| graph.node.get(i))
        .flat_map(control_inputs)
    {
        if !controls.contains(&control) {
            controls.push(control);
        }
    }
    controls
}

/// A Const node holding `value`.
pub fn const_node(name: String, device: String, value: &Tensor) -> NodeDef {
    let mut node = NodeDef {
        name,
        op: "Const".into(),
        device,
        ..Default::default()
    };
    set_const_value(&mut node, value);
    node
}

/// A Const node holding `proto`, with `proto.dtype` as its dtype: the same node as
/// [`const_node`] gives for a tensor whose [`Tensor::to_proto`] is `proto`, without decoding.
pub fn const_node_from_proto(name: String, device: String, proto: TensorProto) -> NodeDef {
    let mut node = NodeDef {
        name,
        op: "Const".into(),
        device,
        ..Default::default()
    };
    set_const_proto(&mut node, proto);
    node
}

/// A Placeholder of `dtype` (a `DataType` number, as in protos), with `shape` if given.
pub fn placeholder(name: String, dtype: i32, shape: Option<TensorShapeProto>) -> NodeDef {
    let mut node = NodeDef {
        name,
        op: "Placeholder".into(),
        ..Default::default()
    };
    node.attr.insert(
        "dtype".into(),
        AttrValue {
            value: Some(attr_value::Value::Type(dtype)),
        },
    );
    if let Some(shape) = shape {
        node.attr.insert(
            "shape".into(),
            AttrValue {
                value: Some(attr_value::Value::Shape(shape)),
            },
        );
    }
    node
}

/// Replaces the value of Const node `node` in place.
pub fn set_const_value(node: &mut NodeDef, value: &Tensor) {
    set_const_proto(node, value.to_proto());
}

/// Replaces the value of Const node `node` with `proto` (and its dtype with `proto.dtype`,
/// and the shape its `_output_shapes` says, if it has them, with `proto`'s: a fold may write
/// a value of another shape, a scalar shift made per channel, and TensorFlow refuses a graph
/// whose `_output_shapes` disagree with it).
pub fn set_const_proto(node: &mut NodeDef, proto: TensorProto) {
    if let Some(shapes) = node.attr.get_mut("_output_shapes") {
        shapes.value = Some(attr_value::Value::List(Box::new(attr_value::ListValue {
            shape: vec![proto.tensor_shape.clone().unwrap_or_default()],
            ..Default::default()
        })));
    }
    node.attr.insert(
        "dtype".into(),
        AttrValue {
            value: Some(attr_value::Value::Type(proto.dtype)),
        },
    );
    node.attr.insert(
        "value".into(),
        AttrValue {
            value: Some(attr_value::Value::Tensor(Box::new(proto))),
        },
    );
}

/// Staged changes of one sweep: nodes to drop and Const nodes to insert before a node.
#[derive(Default)]
pub struct Edits {
    pub touched: HashSet<usize>,
    pub removed: HashSet<usize>,
    pub inserts: HashMap<usize, Vec<NodeDef>>,
    pub names: NameReserver,
    /// Names that must survive even when nothing reads them.
    pub protected: HashSet<String>,
}

impl Edits {
    pub fn new(graph: &GraphDef, protected: &HashSet<String>) -> Self {
        Edits {
            names: NameReserver::new(graph),
            protected: protected.clone(),
            ..Default::default()
        }
    }

    pub fn free(&self, nodes: &[usize]) -> bool {
        nodes.iter().all(|i| !self.touched.contains(i))
    }

    pub fn touch(&mut self, nodes: &[usize]) {
        self.touched.extend(nodes.iter().copied());
    }

    /// Gives input `slot` of `consumer` the value `value`: in place if `constant` has no other
    /// data reader (control edges read no value), else through a new Const inserted before
    /// the consumer.
    pub fn set_input_value(
        &mut self,
        graph: &mut GraphDef,
        uses: &Uses,
        consumer: usize,
        slot: usize,
        constant: usize,
        value: &Tensor,
    ) {
        if uses.data_count(constant) == 1 {
            self.write_const(graph, constant, value.to_proto());
        } else {
            self.copy_const(graph, consumer, slot, constant, value.to_proto());
        }
    }

    /// Gives Const `constant` the value `proto` in place.
    pub fn write_const(&mut self, graph: &mut GraphDef, constant: usize, proto: TensorProto) {
        if let Some(node) = graph.node.get_mut(constant) {
            set_const_proto(node, proto);
        }
        self.touched.insert(constant);
    }

    /// Points input `slot` of `consumer` at a new Const holding `proto` (`NAME_bn_folded`,
    /// after Const `constant`), inserted before the consumer: its name, or `None` if
    /// `constant` is no node.
    pub fn copy_const(
        &mut self,
        graph: &mut GraphDef,
        consumer: usize,
        slot: usize,
        constant: usize,
        proto: TensorProto,
    ) -> Option<String> {
        let base = graph
            .node
            .get(constant)
            .map(|n| format!("{}_bn_folded", n.name))?;
        let device = graph
            .node
            .get(consumer)
            .map(|n| n.device.clone())
            .unwrap_or_default();
        let name = self.names.reserve(&base);
        self.inserts
            .entry(consumer)
            .or_default()
            .push(const_node_from_proto(name.clone(), device, proto));
        if let Some(input) = graph
            .node
            .get_mut(consumer)
            .and_then(|n| n.input.get_mut(slot))
        {
            input.clone_from(&name);
        }
        Some(name)
    }

    /// Adds a new Const before `consumer` and returns its name.
    pub fn new_const(
        &mut self,
        graph: &GraphDef,
        consumer: usize,
        base: &str,
        value: &Tensor,
    ) -> String {
        let name = self.names.reserve(base);
        let device = graph
            .node
            .get(consumer)
            .map(|n| n.device.clone())
            .unwrap_or_default();
        self.inserts
            .entry(consumer)
            .or_default()
            .push(const_node(name.clone(), device, value));
        name
    }

    /// Applies removals and insertions, keeping the original order otherwise, and drops the
    /// touched Consts that nothing reads any more (parameters folded into other constants).
    pub fn finish(mut self, graph: &mut GraphDef) -> bool {
        let changed = !self.touched.is_empty();
        let touched_consts: HashSet<String> = self
            .touched
            .iter()
            .filter_map(|&i| graph.node.get(i))
            .filter(|n| n.op == "Const" && !self.protected.contains(&n.name))
            .map(|n| n.name.clone())
            .collect();
        let old = std::mem::take(&mut graph.node);
        for (i, node) in old.into_iter().enumerate() {
            if let Some(new) = self.inserts.remove(&i) {
                graph.node.extend(new);
            }
            if !self.removed.contains(&i) {
                graph.node.push(node);
            }
        }
        if !touched_consts.is_empty() {
            let read: HashSet<String> = graph
                .node
                .iter()
                .flat_map(|n| n.input.iter())
                .map(|input| InputRef::parse(input).node.to_string())
                .collect();
            graph
                .node
                .retain(|n| !touched_consts.contains(&n.name) || read.contains(&n.name));
        }
        changed
    }
}

/// Removes the `candidates` that nothing reads (unprotected Consts and pure ops: a rewrite
/// bypassed them), then the producers only they read, and so on. Each removal lowers its
/// producers' read counts, so every edge is visited a bounded number of times (rescanning the
/// graph once per removed layer is quadratic on a bypassed chain).
pub fn remove_unread(
    graph: &mut GraphDef,
    candidates: HashSet<String>,
    protected: &HashSet<String>,
) {
    if candidates.is_empty() {
        return;
    }
    let index = crate::graph::owned_name_index(graph);
    // Input entries (data and control) naming each node.
    let mut reads = vec![0usize; graph.node.len()];
    for node in &graph.node {
        for input in &node.input {
            if let Some(&p) = index.get(crate::graph::node_name(input)) {
                reads[p] += 1;
            }
        }
    }
    let mut removed = vec![false; graph.node.len()];
    let pending = candidates
        .iter()
        .filter_map(|name| index.get(name.as_str()).copied())
        .collect();
    mark_unread(
        &graph.node,
        &index,
        &mut reads,
        &mut removed,
        pending,
        protected,
    );
    let mut i = 0;
    graph.node.retain(|_| {
        i += 1;
        !removed[i - 1]
    });
}

/// [`remove_unread`] on the caller's name index, read counts (input entries naming each node)
/// and removal marks, which it keeps up to date: marks removed each node of `pending` that
/// nothing reads and that is an unprotected Const or pure op, lowers its producers' counts,
/// and goes on with the producers it leaves unread.
pub(crate) fn mark_unread(
    nodes: &[NodeDef],
    index: &crate::graph::NameMap<String, usize>,
    reads: &mut [usize],
    removed: &mut [bool],
    mut pending: Vec<usize>,
    protected: &HashSet<String>,
) {
    while let Some(i) = pending.pop() {
        let Some(node) = nodes.get(i) else {
            continue;
        };
        let removable = !protected.contains(&node.name)
            && (node.op == "Const" || crate::graph::ops::is_pure(&node.op));
        if removed.get(i) != Some(&false) || reads.get(i) != Some(&0) || !removable {
            continue;
        }
        removed[i] = true;
        for input in &node.input {
            let Some(&p) = index.get(crate::graph::node_name(input)) else {
                continue;
            };
            if let Some(count) = reads.get_mut(p) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    pending.push(p);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::graph::test_nodes::node;

    /// The reference [`remove_unread`]: rescans the graph once per removed layer.
    fn remove_unread_rescanning(
        graph: &mut GraphDef,
        mut candidates: HashSet<String>,
        protected: &HashSet<String>,
    ) {
        while !candidates.is_empty() {
            let read: HashSet<&str> = graph
                .node
                .iter()
                .flat_map(|n| n.input.iter())
                .map(|i| crate::graph::node_name(i))
                .collect();
            let gone: HashMap<String, Vec<String>> = graph
                .node
                .iter()
                .filter(|n| {
                    candidates.contains(&n.name)
                        && !read.contains(n.name.as_str())
                        && !protected.contains(&n.name)
                        && (n.op == "Const" || crate::graph::ops::is_pure(&n.op))
                })
                .map(|n| {
                    let inputs = n.input.iter().map(|i| crate::graph::node_name(i).into());
                    (n.name.clone(), inputs.collect())
                })
                .collect();
            if gone.is_empty() {
                return;
            }
            graph.node.retain(|n| !gone.contains_key(&n.name));
            candidates = gone.into_values().flatten().collect();
        }
    }

    #[test]
    fn remove_unread_removes_what_rescanning_removes() {
        // A bypassed chain (each node read by the next but one), a producer shared with a
        // survivor, a protected node, a node reading itself and a stateful op.
        let mut nodes = vec![node("x", "Placeholder", &[]), node("c", "Const", &[])];
        for i in 0..50 {
            let input = if i < 2 {
                "x".to_string()
            } else {
                format!("n{}", i - 2)
            };
            nodes.push(node(&format!("n{i}"), "Relu", &[&input, "^c"]));
        }
        nodes.extend([
            node("kept", "Relu", &["c"]),
            node("self", "Relu", &["self"]),
            node("random", "RandomUniform", &["c"]),
            node("guard", "Relu", &["x"]),
        ]);
        let graph = GraphDef {
            node: nodes,
            ..Default::default()
        };
        let candidates: HashSet<String> = ["n49", "n48", "self", "random", "guard", "c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let protected: HashSet<String> = ["kept".to_string(), "guard".to_string()].into();
        let mut linear = graph.clone();
        remove_unread(&mut linear, candidates.clone(), &protected);
        let mut rescanning = graph;
        remove_unread_rescanning(&mut rescanning, candidates, &protected);
        assert_eq!(linear, rescanning);
        let names: Vec<&str> = linear.node.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["x", "c", "kept", "self", "random", "guard"]);
    }

    #[test]
    fn reserved_names_are_those_probing_from_one_gives() {
        // Bases whose suffixed names collide with each other and with the graph's names.
        let graph = GraphDef {
            node: ["a", "a_2", "b_1", "a_1_1"]
                .iter()
                .map(|n| node(n, "NoOp", &[]))
                .collect(),
            ..Default::default()
        };
        let bases = [
            "a", "a_1", "a", "a", "b", "b", "a_1", "b_1", "b", "a", "c", "c_1", "c", "a_1",
        ];
        let mut reserver = NameReserver::new(&graph);
        let mut taken: HashSet<String> = graph.node.iter().map(|n| n.name.clone()).collect();
        for base in bases {
            let once = unique_name(base, &mut taken.clone());
            let probed = {
                let mut candidate = base.to_string();
                let mut k = 1;
                while taken.contains(&candidate) {
                    candidate = format!("{base}_{k}");
                    k += 1;
                }
                taken.insert(candidate.clone());
                candidate
            };
            assert_eq!(once, probed, "base {base}");
            assert_eq!(reserver.reserve(base), probed, "base {base}");
        }
    }
}
