//! Scale-axis folding: a per-channel multiply moved forward through activations into the
//! weights of the next layers, as TVM's FoldScaleAxis does. A pre-activation batch norm
//! (`BN -> ReLU -> Conv`, DenseNet's pattern) then leaves only an add:
//!
//! `layer(act(x * s + b))` = `layer'(act(x + b / s))` with `layer'`'s input channels scaled by
//! `s`, for every `s > 0` and `act` positively homogeneous: ReLU, LeakyReLU, MaxPool, AvgPool,
//! a zero Pad, or a chain of them (`act(s * z) = s * act(z)` for `s > 0`). ReLU6 clips at 6 and
//! does not commute; negative or zero scales stop the move. The layers are Conv2D,
//! DepthwiseConv2dNative (NHWC) and MatMul with Const weights; every reader of the chain's end
//! must be one of them, reading it as its data input. Weights another node also reads are
//! copied, never scaled under it.
//!
//! (The backward direction, a scale after a linear op, is batch-norm folding: see
//! [`super::batch_norms`].)

use std::collections::HashSet;

use crate::graph::attrs;
use crate::graph::edit::{const_value, data_inputs, Uses};
use crate::graph::InputRef;
use crate::proto::GraphDef;
use crate::rewrite::batch_norms::FoldEdits;
use crate::rewrite::weights::{floats, vector, Layer};

/// Ops through which a positive per-channel scale moves unchanged.
const HOMOGENEOUS: &[&str] = &["Relu", "LeakyRelu", "MaxPool", "AvgPool", "Pad"];

/// Moves positive per-channel multiplies forward into the next layers' weights, until nothing
/// changes; returns how many multiplies were removed.
pub fn fold_scales_forward(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    let mut total = 0;
    for _ in 0..graph.node.len().max(1) {
        let moved = sweep(graph, protected);
        if moved == 0 {
            break;
        }
        total += moved;
    }
    total
}

/// Who reads each node, for one sweep: the readers when the sweep began, plus those a move
/// rewired onto the node since. Looking readers up here instead of scanning the graph keeps a
/// sweep linear. Entries may be stale or repeated; [`Readers::of`] checks them.
struct Readers(Vec<Vec<usize>>);

impl Readers {
    fn new(graph: &GraphDef, uses: &Uses) -> Self {
        let mut readers = vec![Vec::new(); graph.node.len()];
        for (r, node) in graph.node.iter().enumerate() {
            for input in &node.input {
                if let Some(list) = uses.producer(input).and_then(|p| readers.get_mut(p)) {
                    list.push(r);
                }
            }
        }
        Readers(readers)
    }

    /// The nodes now reading node `i` through an input `reads` accepts, in graph order.
    fn of(&self, graph: &GraphDef, i: usize, reads: impl Fn(&InputRef<'_>) -> bool) -> Vec<usize> {
        let Some(name) = graph.node.get(i).map(|n| n.name.as_str()) else {
            return Vec::new();
        };
        let mut found: Vec<usize> = self
            .0
            .get(i)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .copied()
            .filter(|&r| {
                graph.node.get(r).is_some_and(|n| {
                    n.input.iter().any(|input| {
                        let parsed = InputRef::parse(input);
                        parsed.node == name && reads(&parsed)
                    })
                })
            })
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Node `r` now reads node `p` (if `p` is known).
    fn add(&mut self, p: Option<usize>, r: usize) {
        if let Some(list) = p.and_then(|p| self.0.get_mut(p)) {
            list.push(r);
        }
    }
}

/// The only reader of node `i`'s output 0, if it has exactly one (data) reader.
fn only_reader(graph: &GraphDef, uses: &Uses, readers: &Readers, i: usize) -> Option<usize> {
    if uses.count(i) != 1 || uses.reads_other_outputs(i) {
        return None;
    }
    readers.of(graph, i, |r| !r.control).first().copied()
}

/// The Const operand of a binary node and the other input, if exactly one is constant.
fn const_operand(graph: &GraphDef, uses: &Uses, node: usize) -> Option<(usize, String)> {
    let inputs = data_inputs(graph.node.get(node)?);
    let [a, b] = inputs.as_slice() else {
        return None;
    };
    let is_const = |s: &str| {
        uses.producer(s)
            .and_then(|p| graph.node.get(p))
            .is_some_and(|n| n.op == "Const")
    };
    match (is_const(a), is_const(b)) {
        (false, true) => Some((uses.producer(b)?, a.to_string())),
        (true, false) => Some((uses.producer(a)?, b.to_string())),
        _ => None,
    }
}

/// One sweep; the number of multiplies removed.
fn sweep(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    let uses = Uses::new(graph);
    let mut readers = Readers::new(graph, &uses);
    let mut edits = FoldEdits::new(graph, protected);
    let mut moved = 0;
    for mul in 0..graph.node.len() {
        edits.begin_fold();
        if graph.node[mul].op != "Mul" || !edits.free(graph, &uses, &[mul]) {
            continue;
        }
        if let Some(done) = try_move(graph, &uses, &mut readers, &mut edits, protected, mul) {
            moved += usize::from(done);
        }
    }
    edits.finish(graph);
    moved
}

fn try_move(
    graph: &mut GraphDef,
    uses: &Uses,
    index: &mut Readers,
    edits: &mut FoldEdits,
    protected: &HashSet<String>,
    mul: usize,
) -> Option<bool> {
    let (s_node, x) = const_operand(graph, uses, mul)?;
    let s_value = const_value(graph.node.get(s_node)?)?;
    let scale = floats(&s_value)?;
    if scale.is_empty() || scale.iter().any(|&v| !(v > 0.0 && v.is_finite())) {
        return None;
    }
    // A scale that varies along anything but the last axis is not per channel.
    if s_value.shape().iter().rev().skip(1).any(|&d| d != 1) {
        return None;
    }
    let private = |i: usize| !protected.contains(&graph.node[i].name);
    if !private(mul) {
        return None;
    }
    // Optional shift, then the homogeneous chain.
    let mut end = only_reader(graph, uses, index, mul)?;
    let mut shift = None;
    if matches!(graph.node[end].op.as_str(), "Add" | "AddV2" | "BiasAdd") {
        let (b_node, _) = const_operand(graph, uses, end)?;
        let nchw = attrs::string(&graph.node[end], "data_format").is_some_and(|f| f == "NCHW");
        if nchw || !private(end) {
            return None;
        }
        shift = Some((end, b_node));
        end = only_reader(graph, uses, index, end)?;
    }
    let mut chain = Vec::new();
    while HOMOGENEOUS.contains(&graph.node[end].op.as_str()) {
        let node = &graph.node[end];
        let nchw = attrs::string(node, "data_format").is_some_and(|f| f == "NCHW");
        if nchw || !private(end) || (node.op == "Pad" && !zero_pad_keeps_channels(graph, uses, end))
        {
            return None;
        }
        chain.push(end);
        match only_reader(graph, uses, index, end) {
            Some(next) => end = next,
            None => break,
        }
    }
    // The readers that absorb the scale: the chain's end (or the shift, or the Mul itself).
    let last = *chain
        .last()
        .or(shift.as_ref().map(|(a, _)| a))
        .unwrap_or(&mul);
    let last_name = graph.node[last].name.clone();
    let readers = index.of(graph, last, |_| true);
    if readers.is_empty() || protected.contains(&last_name) {
        return None;
    }
    let mut scaled = Vec::new();
    for &r in &readers {
        let node = &graph.node[r];
        let layer = Layer::of(node)?;
        let nchw = attrs::string(node, "data_format").is_some_and(|f| f == "NCHW");
        let inputs = data_inputs(node);
        // Read as the data input (0), once, never as a control input or the weights.
        let reads_as_data = inputs
            .first()
            .is_some_and(|i| InputRef::parse(i).node == last_name)
            && node
                .input
                .iter()
                .filter(|i| InputRef::parse(i).node == last_name)
                .count()
                == 1;
        if nchw || !reads_as_data {
            return None;
        }
        let w = uses.producer(inputs.get(1)?)?;
        let w_value = const_value(graph.node.get(w)?)?;
        if layer.input_channels(&w_value)? != scale_len(&scale, &w_value, layer)? {
            return None;
        }
        let per_channel = expand(&scale, layer.input_channels(&w_value)?)?;
        scaled.push((r, w, layer.scale_inputs(&w_value, &per_channel)?));
    }
    let mut involved = vec![mul, s_node];
    involved.extend(shift.map(|(a, b)| [a, b]).into_iter().flatten());
    involved.extend(&chain);
    involved.extend(scaled.iter().flat_map(|(r, w, _)| [*r, *w]));
    if !edits.free(graph, uses, &involved) {
        return None;
    }
    let new_shift = match shift {
        Some((add, b_node)) => {
            let b_value = const_value(&graph.node[b_node])?;
            let b = floats(&b_value)?;
            let channels = scale.len().max(b.len());
            let (s, b) = (expand(&scale, channels)?, expand(&b, channels)?);
            let divided: Vec<f64> = b.iter().zip(&s).map(|(b, s)| b / s).collect();
            let mut value = vector(&divided, b_value.dtype())?;
            if b_value.shape().len() > 1 {
                value = reshape_like(&value, b_value.shape())?;
            }
            Some((add, b_node, value))
        }
        None => None,
    };
    edits.touch(&involved);
    for (r, w, value) in &scaled {
        edits.set_input_value(graph, uses, *r, 1, *w, value);
    }
    if let Some((add, b_node, value)) = new_shift {
        let slot = data_inputs(&graph.node[add])
            .iter()
            .position(|i| uses.producer(i) == Some(b_node))?;
        edits.set_input_value(graph, uses, add, slot, b_node, &value);
    }
    // Every reader of the Mul now reads x (and waits for what the Mul waited for).
    let mul_name = graph.node[mul].name.clone();
    let controls = crate::graph::edit::control_inputs(&graph.node[mul]);
    let x_producer = uses.producer(&x);
    for r in index.of(graph, mul, |r| !r.control) {
        let Some(node) = graph.node.get_mut(r) else {
            continue;
        };
        for input in &mut node.input {
            let parsed = InputRef::parse(input);
            if !parsed.control && parsed.node == mul_name {
                *input = x.clone();
            }
        }
        node.input.extend(controls.iter().cloned());
        index.add(x_producer, r);
    }
    edits.removed.insert(mul);
    Some(true)
}

/// The per-channel length of `scale` against a layer's input channels (a scalar fits any).
fn scale_len(scale: &[f64], weights: &crate::tensor::Tensor, layer: Layer) -> Option<usize> {
    match scale.len() {
        1 => layer.input_channels(weights),
        n => Some(n),
    }
}

/// `values` as `channels` values (a single value repeats).
fn expand(values: &[f64], channels: usize) -> Option<Vec<f64>> {
    match values.len() {
        1 => Some(vec![values[0]; channels]),
        n if n == channels => Some(values.to_vec()),
        _ => None,
    }
}

fn reshape_like(t: &crate::tensor::Tensor, dims: &[usize]) -> Option<crate::tensor::Tensor> {
    let values = floats(t)?;
    let wide = crate::tensor::Tensor::from_data(crate::tensor::Data::F64(
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(dims), values).ok()?,
    ));
    crate::eval::cast_tensor(&wide, t.dtype()).ok()
}

/// A Pad whose paddings are Const, pad with zeros (Pad pads with 0) and leave the channel axis
/// alone.
fn zero_pad_keeps_channels(graph: &GraphDef, uses: &Uses, pad: usize) -> bool {
    let Some(p) = data_inputs(&graph.node[pad])
        .get(1)
        .and_then(|i| uses.producer(i))
        .and_then(|p| const_value(&graph.node[p]))
        .and_then(|v| v.integers())
    else {
        return false;
    };
    p.len() >= 2 && p[p.len() - 2..].iter().all(|&v| v == 0)
}
