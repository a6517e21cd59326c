//! The graph layer: the graph model (`name:port` / `^control` input parsing, a name index with
//! consumer lists, validation, TensorFlow's execution order, which lets while-loop back edges
//! through), and in submodules what every layer above needs to read and edit a graph:
//! [`attrs`] (typed NodeDef attributes), [`edit`] (use counts, Const values, renaming, batched
//! edits), [`ops`] (op knowledge from TensorFlow's OpDefs) and [`inline`] (function inlining).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;

pub mod attrs;
pub mod body;
pub mod edit;
pub mod functions;
pub mod inline;
pub mod ops;
#[cfg(test)]
pub(crate) mod test_nodes;

use crate::proto::{AttrValue, GraphDef, NodeDef};

/// A map keyed by node names, the lookups every pass makes many thousands of: hashed with
/// foldhash (seeded per process, as std's maps are) rather than SipHash, which was a sixth of
/// the instructions of a standard-pipeline run on Inception-v3. Iteration order is as
/// arbitrary as std's, so nothing may depend on it.
pub type NameMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// A set of node names or indices; see [`NameMap`].
pub type NameSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// An empty [`NameMap`] with room for `capacity` entries.
pub fn name_map<K, V>(capacity: usize) -> NameMap<K, V> {
    NameMap::with_capacity_and_hasher(capacity, Default::default())
}

/// One parsed entry of `NodeDef.input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InputRef<'a> {
    /// Name of the producing node.
    pub node: &'a str,
    /// Output index of the producer (0 when written without `:N`; 0 for control edges).
    pub port: u32,
    /// A `^node` control dependency rather than a data edge.
    pub control: bool,
}

impl<'a> InputRef<'a> {
    /// Parses `node`, `node:N` or `^node`. A suffix after the last `:` that is not a number is
    /// part of the name (as in TensorFlow, which only treats digits as a port).
    pub fn parse(input: &'a str) -> Self {
        if let Some(node) = input.strip_prefix('^') {
            return InputRef {
                node,
                port: 0,
                control: true,
            };
        }
        // `:N` at the end, found from the end: the name before it (often 50 bytes of scopes)
        // is never searched.
        let digits = input.bytes().rev().take_while(u8::is_ascii_digit).count();
        let colon = (digits > 0)
            .then(|| input.len().checked_sub(digits + 1))
            .flatten()
            .filter(|&c| input.as_bytes().get(c) == Some(&b':'));
        if let Some(colon) = colon {
            if let Ok(port) = input[colon + 1..].parse() {
                return InputRef {
                    node: &input[..colon],
                    port,
                    control: false,
                };
            }
        }
        InputRef {
            node: input,
            port: 0,
            control: false,
        }
    }
}

impl fmt::Display for InputRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.control {
            write!(f, "^{}", self.node)
        } else if self.port == 0 {
            f.write_str(self.node)
        } else {
            write!(f, "{}:{}", self.node, self.port)
        }
    }
}

/// An estimate of the memory `node` takes once decoded: the struct, its strings and inputs,
/// and its attribute map (values at up to 8 bytes per encoded byte, as packed varints widen;
/// tensor contents are shared with the file buffer and not counted). Budgets charge it for
/// every node a step creates (inlining, function graphs) and decoding uses it per node.
pub fn node_memory(node: &NodeDef) -> u64 {
    use prost::Message as _;
    use std::mem::size_of;
    let strings = node.name.len() + node.op.len() + node.device.len();
    let inputs: usize = node
        .input
        .iter()
        .map(|i| i.len() + size_of::<String>())
        .sum();
    let values: usize = node
        .attr
        .iter()
        .map(|(key, value)| {
            let content = match &value.value {
                Some(crate::proto::attr_value::Value::Tensor(t)) => t.tensor_content.len(),
                _ => 0,
            };
            key.len() + 8 * value.encoded_len().saturating_sub(content)
        })
        .sum();
    // A BTreeMap allocates leaves of 11 entries, at least half full past the first.
    let entries = node.attr.len();
    let slots = match entries {
        0 => 0,
        1..=11 => 11,
        n => n * 11 / 5 + 11,
    };
    let map = slots * (size_of::<String>() + size_of::<crate::proto::AttrValue>());
    (size_of::<NodeDef>() + strings + inputs + values + map) as u64
}

/// How errors name a node: `node 'NAME' (OP)`.
pub fn node_label(node: &NodeDef) -> String {
    format!("node '{}' ({})", node.name, node.op)
}

/// Node name of an input or tensor string: strips `^` and a numeric `:N`.
pub fn node_name(input: &str) -> &str {
    InputRef::parse(input).node
}

/// Whether TensorFlow's importer takes `name` as a node name: pieces separated by `>`, each a
/// letter, digit or `.` followed by letters, digits and `_ - . /` (`IsValidNodeName` in
/// graph_constructor.cc; it refuses the whole graph otherwise).
pub fn is_valid_node_name(name: &str) -> bool {
    name.split('>').all(|piece| {
        let mut chars = piece.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '.')
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
    })
}

/// Canonical tensor name `node:N` for an input or tensor string.
pub fn tensor_name(input: &str) -> String {
    let r = InputRef::parse(input);
    format!("{}:{}", r.node, r.port)
}

/// What is wrong with a graph. Each variant names the node concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("node #{index} has an empty name")]
    EmptyName { index: usize },
    #[error(
        "node '{name}' has a name TensorFlow refuses: names start with a letter, digit or '.' \
         and go on with letters, digits and '_', '.', '-', '/', '>'"
    )]
    InvalidName { name: String },
    #[error("node '{name}' does not name an op")]
    EmptyOp { name: String },
    #[error("node '{name}' is defined more than once")]
    DuplicateName { name: String },
    #[error("node '{node}' has input '{input}', but there is no node '{missing}'")]
    DanglingInput {
        node: String,
        input: String,
        missing: String,
    },
    #[error("node '{node}' has data input '{input}' after a control input; control inputs must come last")]
    DataAfterControl { node: String, input: String },
    #[error(
        "node '{node}' has input '{input}', but '{producer}' ({op}) has only {outputs} output(s)"
    )]
    BadPort {
        node: String,
        input: String,
        producer: String,
        op: String,
        outputs: usize,
    },
    #[error("node '{node}' ({op}) is missing required attribute '{attr}'")]
    MissingAttr {
        node: String,
        op: String,
        attr: String,
    },
    #[error("{count} node(s) form a cycle that is not a while loop: {}", path.join(" -> "))]
    Cycle { count: usize, path: Vec<String> },
}

/// Node name to index, owning its keys, for passes that edit the graph while they look names up
/// (a borrowing [`GraphIndex`] serves everything else). Duplicate names keep the first node.
pub fn owned_name_index(graph: &GraphDef) -> NameMap<String, usize> {
    let mut index = name_map(graph.node.len());
    for (i, node) in graph.node.iter().enumerate() {
        index.entry(node.name.clone()).or_insert(i);
    }
    index
}

/// Node name to index, borrowing the names; duplicate names keep the first node.
pub fn name_index(nodes: &[NodeDef]) -> NameMap<&str, usize> {
    let mut index = name_map(nodes.len());
    for (i, node) in nodes.iter().enumerate() {
        index.entry(node.name.as_str()).or_insert(i);
    }
    index
}

/// Where a node's output is consumed: consumer node index and the position in its input list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Consumer {
    pub node: usize,
    pub slot: usize,
}

/// Name index and consumer lists over a borrowed GraphDef; built in one pass.
#[derive(Debug)]
pub struct GraphIndex<'g> {
    nodes: &'g [NodeDef],
    by_name: NameMap<&'g str, usize>,
    consumers: Vec<Vec<Consumer>>,
}

impl<'g> GraphIndex<'g> {
    /// Indexes `graph`. Duplicate names keep the first node; `validate` reports them.
    pub fn new(graph: &'g GraphDef) -> Self {
        Self::over(&graph.node)
    }

    /// Indexes a list of nodes (a function body's, a graph's).
    pub fn over(nodes: &'g [NodeDef]) -> Self {
        let by_name = name_index(nodes);
        let mut consumers = vec![Vec::new(); nodes.len()];
        for (i, node) in nodes.iter().enumerate() {
            for (slot, input) in node.input.iter().enumerate() {
                if let Some(&producer) = by_name.get(node_name(input)) {
                    if let Some(list) = consumers.get_mut(producer) {
                        list.push(Consumer { node: i, slot });
                    }
                }
            }
        }
        GraphIndex {
            nodes,
            by_name,
            consumers,
        }
    }

    /// The indexed nodes.
    pub fn nodes(&self) -> &'g [NodeDef] {
        self.nodes
    }

    /// Index of the node called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&'g NodeDef> {
        self.index_of(name).and_then(|i| self.nodes.get(i))
    }

    /// Every (node, input slot) that reads from node `index`, control edges included.
    pub fn consumers(&self, index: usize) -> &[Consumer] {
        self.consumers.get(index).map_or(&[], Vec::as_slice)
    }
}

/// Checks what every later step relies on: unique names TensorFlow accepts, an op on every
/// node, inputs that exist, control inputs after data inputs, ports within a known op's output
/// count, required attributes of known ops, and no cycles other than while loops.
pub fn validate(graph: &GraphDef) -> Result<(), GraphError> {
    // One name map serves the duplicate check, the input check and the sort: this runs after
    // every transform.
    let mut by_name = name_map(graph.node.len());
    for (index, node) in graph.node.iter().enumerate() {
        if node.name.is_empty() {
            return Err(GraphError::EmptyName { index });
        }
        if !is_valid_node_name(&node.name) {
            return Err(GraphError::InvalidName {
                name: node.name.clone(),
            });
        }
        if node.op.is_empty() {
            return Err(GraphError::EmptyOp {
                name: node.name.clone(),
            });
        }
        if by_name.insert(node.name.as_str(), index).is_some() {
            return Err(GraphError::DuplicateName {
                name: node.name.clone(),
            });
        }
    }
    for node in &graph.node {
        let mut saw_control = false;
        for input in &node.input {
            let parsed = InputRef::parse(input);
            let Some(producer) = by_name.get(parsed.node).and_then(|&i| graph.node.get(i)) else {
                return Err(GraphError::DanglingInput {
                    node: node.name.clone(),
                    input: input.clone(),
                    missing: parsed.node.to_string(),
                });
            };
            if parsed.control {
                saw_control = true;
                continue;
            }
            if saw_control {
                return Err(GraphError::DataAfterControl {
                    node: node.name.clone(),
                    input: input.clone(),
                });
            }
            if let Some(outputs) = ops::output_count(producer) {
                if parsed.port as usize >= outputs {
                    return Err(GraphError::BadPort {
                        node: node.name.clone(),
                        input: input.clone(),
                        producer: producer.name.clone(),
                        op: producer.op.clone(),
                        outputs,
                    });
                }
            }
        }
        if let Some(attr) = ops::missing_required_attr(node) {
            return Err(GraphError::MissingAttr {
                node: node.name.clone(),
                op: node.op.clone(),
                attr: attr.to_string(),
            });
        }
    }
    order_with(graph, &by_name).map(|_| ())
}

/// Merge nodes start a while-loop iteration: they may run once any one data input is ready,
/// which is what lets the NextIteration back edge close the loop.
fn is_merge(node: &NodeDef) -> bool {
    matches!(node.op.as_str(), "Merge" | "RefMerge")
}

/// TensorFlow's execution order (the one `sort_by_execution_order` writes): Kahn's algorithm
/// with a LIFO ready stack seeded with input-less nodes in file order. A Merge is ready once
/// all its control inputs and at least one data input are done. Errors on dangling inputs and on
/// cycles that do not pass through a Merge, naming the nodes of one such cycle.
pub fn execution_order(graph: &GraphDef) -> Result<Vec<usize>, GraphError> {
    order_with(graph, &name_index(&graph.node))
}

/// [`execution_order`] with the name map already built (the first node of each name).
fn order_with(graph: &GraphDef, by_name: &NameMap<&str, usize>) -> Result<Vec<usize>, GraphError> {
    let n = graph.node.len();
    // pending[i]: inputs still to run (for a Merge: control inputs plus one data input).
    let mut pending = vec![0usize; n];
    let mut merge_waiting_data = vec![false; n];
    let mut outputs: Vec<Vec<(usize, bool)>> = vec![Vec::new(); n];
    let mut ready = Vec::new();
    for (i, node) in graph.node.iter().enumerate() {
        let merge = is_merge(node);
        let mut count = 0;
        let mut has_data = false;
        for input in &node.input {
            let parsed = InputRef::parse(input);
            let Some(&producer) = by_name.get(parsed.node) else {
                return Err(GraphError::DanglingInput {
                    node: node.name.clone(),
                    input: input.clone(),
                    missing: parsed.node.to_string(),
                });
            };
            if let Some(list) = outputs.get_mut(producer) {
                list.push((i, parsed.control));
            }
            if !merge || parsed.control {
                count += 1;
            } else {
                has_data = true;
            }
        }
        if merge && has_data {
            count += 1;
            merge_waiting_data[i] = true;
        }
        pending[i] = count;
        if count == 0 {
            ready.push(i);
        }
    }
    // LIFO, as in TensorFlow: the most recently readied node runs next.
    let mut order = Vec::with_capacity(n);
    while let Some(current) = ready.pop() {
        order.push(current);
        // Each node is popped once, so its consumer list can be moved out.
        let consumers = outputs
            .get_mut(current)
            .map(std::mem::take)
            .unwrap_or_default();
        for (consumer, control) in consumers {
            let merge_data = !control && merge_waiting_data.get(consumer).copied() == Some(true);
            if merge_data {
                // Only the first data input of a Merge counts.
                merge_waiting_data[consumer] = false;
            } else if !control && graph.node.get(consumer).is_some_and(is_merge) {
                continue;
            }
            if let Some(p) = pending.get_mut(consumer) {
                *p = p.saturating_sub(1);
                if *p == 0 {
                    ready.push(consumer);
                }
            }
        }
    }
    if order.len() < n {
        return Err(cycle_error(graph, by_name, &order));
    }
    Ok(order)
}

/// Finds one cycle among the nodes the sort could not reach, for the error message.
fn cycle_error(graph: &GraphDef, by_name: &NameMap<&str, usize>, order: &[usize]) -> GraphError {
    let n = graph.node.len();
    let mut done = vec![false; n];
    for &i in order {
        done[i] = true;
    }
    let count = done.iter().filter(|d| !**d).count();
    let Some(start) = done.iter().position(|d| !*d) else {
        return GraphError::Cycle {
            count,
            path: Vec::new(),
        };
    };
    // Walk backwards along unfinished inputs; in a finite graph we must revisit a node.
    let mut position_in_walk: HashMap<usize, usize> = HashMap::new();
    let mut walk = vec![start];
    let mut current = start;
    loop {
        position_in_walk.insert(current, walk.len() - 1);
        let next = graph.node.get(current).and_then(|node| {
            node.input
                .iter()
                .filter_map(|input| by_name.get(node_name(input)).copied())
                .find(|&p| !done[p])
        });
        let Some(next) = next else { break };
        if let Some(&at) = position_in_walk.get(&next) {
            let mut path: Vec<String> = walk[at..]
                .iter()
                .rev()
                .filter_map(|&i| graph.node.get(i).map(|node| node.name.clone()))
                .collect();
            if let Some(first) = path.first().cloned() {
                path.push(first);
            }
            return GraphError::Cycle { count, path };
        }
        walk.push(next);
        current = next;
    }
    GraphError::Cycle {
        count,
        path: walk
            .iter()
            .filter_map(|&i| graph.node.get(i).map(|node| node.name.clone()))
            .collect(),
    }
}

/// Names of nodes that run inside a loop frame or a cond branch: everything downstream of an
/// Enter or Switch, up to the Exit or the branch-joining Merge.
pub fn inside_control_flow(graph: &GraphDef) -> HashSet<String> {
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for input in &node.input {
            consumers
                .entry(InputRef::parse(input).node)
                .or_default()
                .push(i);
        }
    }
    let next_iterations: HashSet<&str> = graph
        .node
        .iter()
        .filter(|n| matches!(n.op.as_str(), "NextIteration" | "RefNextIteration"))
        .map(|n| n.name.as_str())
        .collect();
    // Decided once per node: asking per consumer edge would read a Merge's whole input list
    // once per input (quadratic for a Merge of thousands of inputs).
    let loop_merge: Vec<bool> = graph
        .node
        .iter()
        .map(|n| {
            n.input
                .iter()
                .any(|input| next_iterations.contains(InputRef::parse(input).node))
        })
        .collect();
    let is_loop_merge = |i: usize| loop_merge.get(i).copied().unwrap_or(false);
    let mut framed = HashSet::new();
    let mut queue: VecDeque<usize> = graph
        .node
        .iter()
        .enumerate()
        .filter(|(_, n)| matches!(n.op.as_str(), "Enter" | "RefEnter" | "Switch" | "RefSwitch"))
        .map(|(i, _)| i)
        .collect();
    while let Some(i) = queue.pop_front() {
        let node = &graph.node[i];
        if !framed.insert(node.name.clone()) {
            continue;
        }
        for &c in consumers
            .get(node.name.as_str())
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let op = graph.node[c].op.as_str();
            let leaves = matches!(op, "Exit" | "RefExit")
                || (matches!(op, "Merge" | "RefMerge") && !is_loop_merge(c));
            if !leaves {
                queue.push_back(c);
            }
        }
    }
    framed
}

/// Whether `graph` has a TF1 while loop (an Enter node): only then can a node's frame be
/// wrong.
pub fn has_loop_frames(graph: &GraphDef) -> bool {
    graph
        .node
        .iter()
        .any(|n| matches!(n.op.as_str(), "Enter" | "RefEnter"))
}

/// Gives each Const that a rewrite added (a name not in `existed`) and that has no inputs the
/// frame of the node reading it: a control input from another input of its first reader that
/// runs inside control flow. TensorFlow places a Const without inputs in the outermost frame,
/// so one read inside a while loop's body (a folded chain constant, a folded bias) would make
/// the graph fail with inputs "from different frames"; the Consts it replaced carried such an
/// anchor (`^while/Identity`). A control edge cannot name a Switch's output port, so where a
/// Switch output is the reader's only framed input the anchor is an Identity of that output
/// (`SWITCH/anchor_PORT`, added once), as TensorFlow's own anchors are.
pub fn anchor_new_constants(graph: &mut GraphDef, existed: &HashSet<String>) {
    let framed = inside_control_flow(graph);
    let index = GraphIndex::new(graph);
    let mut anchors: Vec<(usize, String)> = Vec::new();
    // Identities to add, by (Switch, port): their names and dtypes.
    let mut switch_anchors: BTreeMap<(String, u32), (String, Option<AttrValue>)> = BTreeMap::new();
    // Every name, once a Switch anchor needs one (rarely).
    let mut taken: Option<HashSet<String>> = None;
    for (i, node) in graph.node.iter().enumerate() {
        if node.op != "Const" || !node.input.is_empty() || existed.contains(&node.name) {
            continue;
        }
        let Some(reader) = index.consumers(i).iter().map(|c| c.node).min() else {
            continue;
        };
        let Some(reader) = graph.node.get(reader) else {
            continue;
        };
        if !framed.contains(&reader.name) {
            continue;
        }
        let framed_inputs = || {
            reader.input.iter().filter_map(|input| {
                let parsed = InputRef::parse(input);
                let source = index.node(parsed.node)?;
                let usable = source.name != node.name
                    && framed.contains(&source.name)
                    && !(source.op == "Const" && source.input.is_empty());
                usable.then_some((source, input))
            })
        };
        let is_switch = |n: &NodeDef| matches!(n.op.as_str(), "Switch" | "RefSwitch");
        if let Some((source, _)) = framed_inputs().find(|(source, _)| !is_switch(source)) {
            anchors.push((i, format!("^{}", source.name)));
        } else if let Some((switch, input)) =
            framed_inputs().find(|(s, i)| is_switch(s) && !InputRef::parse(i).control)
        {
            let port = InputRef::parse(input).port;
            let key = (switch.name.clone(), port);
            let name = match switch_anchors.get(&key) {
                Some((name, _)) => name.clone(),
                None => {
                    let taken = taken
                        .get_or_insert_with(|| graph.node.iter().map(|n| n.name.clone()).collect());
                    let name = edit::unique_name(&format!("{}/anchor_{port}", switch.name), taken);
                    switch_anchors.insert(key, (name.clone(), switch.attr.get("T").cloned()));
                    name
                }
            };
            anchors.push((i, format!("^{name}")));
        }
    }
    for (i, anchor) in anchors {
        if let Some(node) = graph.node.get_mut(i) {
            node.input.push(anchor);
        }
    }
    for ((switch, port), (name, dtype)) in switch_anchors {
        let mut identity = NodeDef {
            name,
            op: "Identity".into(),
            input: vec![if port == 0 {
                switch
            } else {
                format!("{switch}:{port}")
            }],
            ..NodeDef::default()
        };
        if let Some(dtype) = dtype {
            identity.attr.insert("T".into(), dtype);
        }
        graph.node.push(identity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_parse_as_tensorflow_writes_them() {
        let data = |node, port| InputRef {
            node,
            port,
            control: false,
        };
        let cases = [
            ("a", data("a", 0)),
            ("a:0", data("a", 0)),
            (
                "scope/conv2d_93/Conv2D:12",
                data("scope/conv2d_93/Conv2D", 12),
            ),
            ("conv2d_93", data("conv2d_93", 0)),
            ("a:b:2", data("a:b", 2)),
            ("a:07", data("a", 7)),
            // Not a port: no digits, a letter among them, or beyond u32.
            ("a:", data("a:", 0)),
            ("a:1x", data("a:1x", 0)),
            ("a:99999999999", data("a:99999999999", 0)),
            (":3", data("", 3)),
            ("7", data("7", 0)),
            ("", data("", 0)),
            (
                "^scope/b:1",
                InputRef {
                    node: "scope/b:1",
                    port: 0,
                    control: true,
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(InputRef::parse(input), expected, "{input:?}");
        }
    }

    /// The importer's verdicts, from TensorFlow 2.21's `import_graph_def` on one Const per name.
    #[test]
    fn node_names_follow_tensorflows_importer() {
        let accepted = [
            "a", "A.b", ".a", "1a", "a-b", "a/b", "a//b", "a/", "a>b", "a_", "a.b",
        ];
        let refused = ["_a", "-a", "/a", "a:b", "a^b", "a b", "a$b", "\u{e9}", ""];
        for name in accepted {
            assert!(
                is_valid_node_name(name),
                "{name:?} is accepted by TensorFlow"
            );
        }
        for name in refused {
            assert!(
                !is_valid_node_name(name),
                "{name:?} is refused by TensorFlow"
            );
        }
    }

    #[test]
    fn validation_refuses_names_and_ops_tensorflow_refuses() {
        let node = |name: &str, op: &str| NodeDef {
            name: name.into(),
            op: op.into(),
            ..NodeDef::default()
        };
        let graph = |nodes| GraphDef {
            node: nodes,
            ..GraphDef::default()
        };
        assert!(validate(&graph(vec![node("a", "NoOp")])).is_ok());
        let err = validate(&graph(vec![node("a", "NoOp"), node("b:1", "NoOp")]));
        assert!(
            matches!(&err, Err(GraphError::InvalidName { name }) if name == "b:1"),
            "{err:?}"
        );
        let err = validate(&graph(vec![node("a", "")]));
        assert!(
            matches!(&err, Err(GraphError::EmptyOp { name }) if name == "a"),
            "{err:?}"
        );
    }
}
