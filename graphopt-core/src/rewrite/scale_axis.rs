//! Scale-axis folding: a per-channel multiply moved forward through activations into the
//! weights of the next layers, as TVM's FoldScaleAxis does. A pre-activation batch norm
//! (`BN -> ReLU -> Conv`, DenseNet's pattern) then leaves only an add:
//!
//! `layer(act(x * s + b))` = `layer'(act(x + b / s))` with `layer'`'s input channels scaled by
//! `s`. The chain `act` between the multiply (or its shift) and the layers is made of:
//! - ReLU, LeakyReLU and MaxPool: positively homogeneous (`act(s * z) = s * act(z)` for
//!   `s > 0`), not linear, so every scale they see must be positive; ReLU6 clips at 6 and does
//!   not commute at all;
//! - AvgPool, a zero Pad (channels not padded) and Mean over axes other than the channel axis
//!   (global average pooling, `keep_dims` true or false: the channel axis stays the last one):
//!   linear per channel, so any finite non-zero scale moves through them;
//! - ConcatV2 along the channel axis, per part: the multiply of one part moves past it as the
//!   concatenated scale, the other parts' channels scaled by 1 (channel counts from static
//!   shapes, or the weights of the layer producing a part).
//!
//! A chain with no ReLU, LeakyReLU or MaxPool (the multiply straight into the layer, or only
//! linear steps between) moves any finite non-zero scale, negative ones included, unless the
//! scaled weights or the divided shift would overflow their type ([`super::weights`]). The layers
//! are Conv2D, DepthwiseConv2dNative (NHWC) and MatMul with Const weights; every reader of the
//! chain's end must be one of them, reading it as its data input. Weights another node also
//! reads are copied, never scaled under it.
//!
//! (The backward direction, a scale after a linear op, is batch-norm folding: see
//! [`super::batch_norms`].)

use std::collections::HashSet;

use crate::analysis::shapes::{infer_graph, StaticShapes};
use crate::graph::attrs;
use crate::graph::edit::{const_value, data_inputs, Uses};
use crate::graph::InputRef;
use crate::proto::GraphDef;
use crate::rewrite::batch_norms::FoldEdits;
use crate::rewrite::weights::{floats, vector, Layer};

/// Ops through which a positive per-channel scale moves unchanged, keeping rank and channels.
const HOMOGENEOUS: &[&str] = &["Relu", "LeakyRelu", "MaxPool", "AvgPool", "Pad"];

/// The ops of the chain that are not linear: the scales they see must be positive.
const NONLINEAR: &[&str] = &["Relu", "LeakyRelu", "MaxPool"];

/// One node of the chain between a multiply and the layers.
enum Step {
    /// One of [`HOMOGENEOUS`]: rank and channels kept.
    Homogeneous,
    /// Mean over `axes` (as written, possibly negative), none of them the channel axis.
    Mean { axes: Vec<i64>, keep_dims: bool },
    /// ConcatV2 along `axis` (as written), which must be the channel axis.
    Concat { axis: i64 },
}

/// Moves per-channel multiplies forward into the next layers' weights (positive ones through
/// ReLU, LeakyReLU and MaxPool, any non-zero ones through linear steps only), until nothing
/// changes; returns how many multiplies were removed.
pub fn fold_scales_forward(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    fold_in_sweeps(graph, protected, true)
}

/// [`fold_scales_forward`]; `follow_runs: false` moves one Mul of a run per sweep (the
/// reference the tests hold the one-sweep moves to).
fn fold_in_sweeps(graph: &mut GraphDef, protected: &HashSet<String>, follow_runs: bool) -> usize {
    let mut total = 0;
    for _ in 0..graph.node.len().max(1) {
        let moved = sweep(graph, protected, follow_runs);
        if moved == 0 {
            break;
        }
        total += moved;
    }
    total
}

/// Who reads each node, for one sweep: the readers when the sweep began, plus those a move
/// rewired onto the node since, each with the position of the input entry that reads it.
/// Looking readers up here instead of scanning the graph keeps a sweep linear, and checking
/// the recorded entry instead of the reader's whole input list keeps it linear for a reader of
/// thousands of nodes (an AddN of 20000 Muls). Entries may be stale or repeated; [`Readers::of`]
/// checks them, and skips the Muls moved this sweep (`gone`), which still hold their inputs.
struct Readers(Vec<Vec<(usize, usize)>>, HashSet<usize>);

impl Readers {
    fn new(graph: &GraphDef, uses: &Uses) -> Self {
        let mut readers = vec![Vec::new(); graph.node.len()];
        for (r, node) in graph.node.iter().enumerate() {
            for (k, input) in node.input.iter().enumerate() {
                if let Some(list) = uses.producer(input).and_then(|p| readers.get_mut(p)) {
                    list.push((r, k));
                }
            }
        }
        Readers(readers, HashSet::new())
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
            .filter(|&&(r, k)| {
                !self.1.contains(&r)
                    && graph
                        .node
                        .get(r)
                        .and_then(|n| n.input.get(k))
                        .is_some_and(|input| {
                            let parsed = InputRef::parse(input);
                            parsed.node == name && reads(&parsed)
                        })
            })
            .map(|&(r, _)| r)
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Input `k` of node `r` now reads node `p` (if `p` is known).
    fn add(&mut self, p: Option<usize>, r: usize, k: usize) {
        if let Some(list) = p.and_then(|p| self.0.get_mut(p)) {
            list.push((r, k));
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
fn sweep(graph: &mut GraphDef, protected: &HashSet<String>, follow_runs: bool) -> usize {
    let uses = Uses::new(graph);
    let mut readers = Readers::new(graph, &uses);
    let mut edits = FoldEdits::new(graph, protected);
    // Static shapes, inferred the first time a concatenation needs a part's channel count.
    let mut shapes = None;
    let mut moved = 0;
    for first in 0..graph.node.len() {
        let (mut mul, mut run) = (first, None);
        loop {
            edits.begin_fold();
            if graph.node[mul].op != "Mul" || !edits.free(graph, &uses, &[mul]) {
                break;
            }
            let mut context = Sweep {
                uses: &uses,
                index: &mut readers,
                edits: &mut edits,
                shapes: &mut shapes,
                protected,
            };
            let Some(next) = try_move(graph, &mut context, mul, run) else {
                break;
            };
            moved += 1;
            // A run of Muls before one layer moves in this sweep, not one Mul per sweep.
            let Some(next) = next.filter(|_| follow_runs) else {
                break;
            };
            mul = next.mul;
            run = Some(next);
        }
    }
    edits.finish(graph);
    moved
}

/// The Mul before a move, when the move went into one layer whose weights nothing else reads,
/// with no shift and no control inputs, and that Mul reaches the moved Mul's input through
/// single-reader activations only (or directly): the next sweep would move that Mul into the
/// same layer, the layer's weights then being what this move wrote in place, and nothing else
/// reading what it touched. So it moves now, allowed the nodes this run touched (the layer,
/// its weights, the scale, the activations on the way): the result is the one of a sweep per
/// Mul, in one sweep.
struct Next {
    mul: usize,
    /// The layer, its weights and the last scale moved into them.
    reuse: [usize; 3],
    /// The activations between the last moved Mul's input and the layer, the layer's own
    /// input first: the end of the next Mul's chain, walked once for the whole run.
    chain_end: Vec<usize>,
}

/// What one sweep's moves share.
struct Sweep<'a> {
    uses: &'a Uses,
    index: &'a mut Readers,
    edits: &'a mut FoldEdits,
    /// Inferred when first needed (see [`sweep`]).
    shapes: &'a mut Option<StaticShapes>,
    protected: &'a HashSet<String>,
}

fn try_move(
    graph: &mut GraphDef,
    sweep: &mut Sweep<'_>,
    mul: usize,
    run: Option<Next>,
) -> Option<Option<Next>> {
    let uses = sweep.uses;
    let protected = sweep.protected;
    let (s_node, x) = const_operand(graph, uses, mul)?;
    // A Const named in --inputs holds what is fed: never a scale, shift or weights to fold.
    let fed = |i: usize| protected.contains(&graph.node[i].name);
    if fed(s_node) {
        return None;
    }
    let s_value = const_value(graph.node.get(s_node)?)?;
    let scale = floats(&s_value)?;
    // Non-linear steps further on may ask for more (positive scales): see below.
    if scale.is_empty() || scale.iter().any(|&v| !(v.is_finite() && v != 0.0)) {
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
    // Once the scale is in the weights the layer reads `x` itself: the multiply must not have
    // widened it (a one-channel image times per-RGB factors, a scale of higher rank).
    if sweep.shapes.is_none() {
        *sweep.shapes = Some(infer_graph(graph));
    }
    let x_dims = sweep.shapes.as_ref()?.partial_of(&x)?.to_vec();
    if !fits_without_broadcast(&x_dims, s_value.shape()) {
        return None;
    }
    // Optional shift, then the chain.
    let mut end = only_reader(graph, uses, sweep.index, mul)?;
    let mut shift = None;
    if matches!(graph.node[end].op.as_str(), "Add" | "AddV2" | "BiasAdd") {
        let (b_node, _) = const_operand(graph, uses, end)?;
        if fed(b_node) {
            return None;
        }
        let b_dims = crate::tensor::Tensor::check_proto(
            attrs::tensor(graph.node.get(b_node)?, "value")?,
            crate::tensor::Limits::default(),
        )?
        .1;
        if b_dims.iter().rev().skip(1).any(|&d| d != 1) || !fits_without_broadcast(&x_dims, &b_dims)
        {
            return None;
        }
        let nchw = attrs::string(&graph.node[end], "data_format").is_some_and(|f| f == "NCHW");
        if nchw || !private(end) {
            return None;
        }
        shift = Some((end, b_node));
        end = only_reader(graph, uses, sweep.index, end)?;
    }
    // The chain's steps; those after `chain` are the run's known end (already checked and
    // touched, activations only), not walked again. `current` is the scale as the tensor at
    // the chain's present end carries it, per channel (one value: every channel).
    let mut chain = Vec::new();
    let mut steps = Vec::new();
    let known: &[usize] = run.as_ref().map_or(&[], |r| &r.chain_end);
    let mut reaches_known = false;
    let mut current = scale.clone();
    let mut prev = shift.map_or(mul, |(a, _)| a);
    loop {
        if known.last() == Some(&end) {
            reaches_known = true;
            break;
        }
        let Some(step) = step_of(graph, uses, protected, end, prev) else {
            break;
        };
        if let Step::Concat { .. } = step {
            if sweep.shapes.is_none() {
                *sweep.shapes = Some(infer_graph(graph));
            }
            current = concatenated(graph, uses, sweep.shapes.as_ref()?, end, prev, &current)?;
        }
        chain.push(end);
        steps.push(step);
        prev = end;
        match only_reader(graph, uses, sweep.index, end) {
            Some(next) => end = next,
            None => break,
        }
    }
    let known = if reaches_known { known } else { &[] };
    // Only linear steps: any finite non-zero scale moves (checked above). A non-linear one
    // commutes with positive scales only.
    let nonlinear = chain
        .iter()
        .chain(known)
        .any(|&i| NONLINEAR.contains(&graph.node[i].op.as_str()));
    if nonlinear && scale.iter().any(|&v| v <= 0.0) {
        return None;
    }
    // The readers that absorb the scale: the chain's end (or the shift, or the Mul itself).
    let last = *known
        .first()
        .or(chain.last())
        .or(shift.as_ref().map(|(a, _)| a))
        .unwrap_or(&mul);
    let last_name = graph.node[last].name.clone();
    let readers = sweep.index.of(graph, last, |_| true);
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
        // The channel axis is the last one of the layer's data input; the steps' axes are
        // checked against the ranks that implies.
        let rank = match layer {
            Layer::MatMul { .. } => 2,
            Layer::Conv2D | Layer::Depthwise => 4,
        };
        if !steps_keep_the_channel_axis(&steps, rank) {
            return None;
        }
        let w = uses.producer(inputs.get(1)?)?;
        if fed(w) {
            return None;
        }
        let w_value = const_value(graph.node.get(w)?)?;
        if layer.input_channels(&w_value)? != scale_len(&current, &w_value, layer)? {
            return None;
        }
        let per_channel = expand(&current, layer.input_channels(&w_value)?)?;
        scaled.push((r, w, layer.scale_inputs(&w_value, &per_channel)?));
    }
    let mut involved = vec![mul, s_node];
    involved.extend(shift.map(|(a, b)| [a, b]).into_iter().flatten());
    involved.extend(&chain);
    involved.extend(scaled.iter().flat_map(|(r, w, _)| [*r, *w]));
    let fresh: Vec<usize> = involved
        .iter()
        .copied()
        .filter(|i| !run.as_ref().is_some_and(|r| r.reuse.contains(i)))
        .collect();
    if !sweep.edits.free(graph, uses, &fresh) {
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
    let edits = &mut *sweep.edits;
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
    let index = &mut *sweep.index;
    let mul_name = graph.node[mul].name.clone();
    // What the scale Const waited for too: its value is in the weights now.
    let controls = crate::graph::edit::controls_of(graph, &[mul, s_node]);
    let x_producer = uses.producer(&x);
    for r in index.of(graph, mul, |r| !r.control) {
        let Some(node) = graph.node.get_mut(r) else {
            continue;
        };
        for (k, input) in node.input.iter_mut().enumerate() {
            let parsed = InputRef::parse(input);
            if !parsed.control && parsed.node == mul_name {
                *input = x.clone();
                index.add(x_producer, r, k);
            }
        }
        node.input.extend(controls.iter().cloned());
    }
    edits.removed.insert(mul);
    index.1.insert(mul);
    // Runs follow activations only: a mean or a concatenation ends them.
    let activations_only = steps.iter().all(|s| matches!(s, Step::Homogeneous));
    let single = match scaled.as_slice() {
        [(r, w, _)]
            if shift.is_none()
                && controls.is_empty()
                && activations_only
                && uses.data_count(*w) == 1 =>
        {
            Some([*r, *w, s_node])
        }
        _ => None,
    };
    let Some(reuse) = single else {
        return Some(None);
    };
    let Some(before) = mul_before(graph, uses, &x) else {
        return Some(None);
    };
    // The next chain ends with this one: the activations walked now, then the known end.
    let mut chain_end = run.map(|r| r.chain_end).filter(|_| reaches_known);
    let chain_end = match chain_end.as_mut() {
        Some(end) => {
            end.extend(chain.iter().rev());
            std::mem::take(end)
        }
        None => chain.into_iter().rev().collect(),
    };
    Some(Some(Next {
        mul: before,
        reuse,
        chain_end,
    }))
}

/// Node `i` as a step of the chain, reading the chain's tensor (node `prev`'s output 0) as
/// the input that carries it: `None` if it is no step a scale moves through (then the chain
/// ends before it).
fn step_of(
    graph: &GraphDef,
    uses: &Uses,
    protected: &HashSet<String>,
    i: usize,
    prev: usize,
) -> Option<Step> {
    let node = graph.node.get(i)?;
    let prev_name = graph.node.get(prev)?.name.as_str();
    let nchw = attrs::string(node, "data_format").is_some_and(|f| f == "NCHW");
    if nchw || protected.contains(&node.name) {
        return None;
    }
    let inputs = data_inputs(node);
    let reads_prev = |input: &str| {
        let parsed = InputRef::parse(input);
        parsed.node == prev_name && parsed.port == 0
    };
    let constant = |input: &str| {
        uses.producer(input)
            .and_then(|p| graph.node.get(p))
            .and_then(const_value)
            .and_then(|v| v.integers())
    };
    let op = node.op.as_str();
    if HOMOGENEOUS.contains(&op) {
        let fits = inputs.first().is_some_and(|i| reads_prev(i))
            && (op != "Pad" || zero_pad_keeps_channels(graph, uses, i));
        return fits.then_some(Step::Homogeneous);
    }
    match op {
        "Mean" => {
            let [data, axes] = inputs.as_slice() else {
                return None;
            };
            if !reads_prev(data) {
                return None;
            }
            Some(Step::Mean {
                axes: constant(axes)?,
                keep_dims: attrs::bool(node, "keep_dims").unwrap_or(false),
            })
        }
        "ConcatV2" => {
            let (axis, parts) = inputs.split_last()?;
            let axis = match constant(axis)?.as_slice() {
                [a] => *a,
                _ => return None,
            };
            // The chain's tensor is exactly one part.
            (parts.iter().filter(|p| reads_prev(p)).count() == 1).then_some(Step::Concat { axis })
        }
        _ => None,
    }
}

/// Whether the steps, ending in a layer's data input of rank `rank` whose last axis is the
/// channel axis, leave the channel axis alone: no Mean reduces it, every ConcatV2 joins along
/// it. Ranks are followed back from the layer (a Mean without `keep_dims` drops its axes).
fn steps_keep_the_channel_axis(steps: &[Step], rank: usize) -> bool {
    let mut rank = rank as i64;
    for step in steps.iter().rev() {
        match step {
            Step::Homogeneous => {}
            Step::Concat { axis } => {
                if normalized(*axis, rank) != Some(rank - 1) {
                    return false;
                }
            }
            Step::Mean { axes, keep_dims } => {
                let input_rank = if *keep_dims {
                    rank
                } else {
                    rank + axes.len() as i64
                };
                let mut seen = HashSet::new();
                for &a in axes {
                    match normalized(a, input_rank) {
                        // Repeated axes would make the input rank other than assumed.
                        Some(a) if a != input_rank - 1 && seen.insert(a) => {}
                        _ => return false,
                    }
                }
                rank = input_rank;
            }
        }
    }
    true
}

/// Axis `axis` of a rank-`rank` tensor as a non-negative index, if it is one.
fn normalized(axis: i64, rank: i64) -> Option<i64> {
    let a = if axis < 0 { axis + rank } else { axis };
    (0..rank).contains(&a).then_some(a)
}

/// The per-channel scale after ConcatV2 node `concat`, whose part read from node `prev`
/// carries `scale` (one value: every channel of the part): the parts' scales laid end to end,
/// the other parts' channels scaled by 1.
fn concatenated(
    graph: &GraphDef,
    uses: &Uses,
    shapes: &StaticShapes,
    concat: usize,
    prev: usize,
    scale: &[f64],
) -> Option<Vec<f64>> {
    let inputs = data_inputs(graph.node.get(concat)?);
    let (_, parts) = inputs.split_last()?;
    let prev_name = graph.node.get(prev)?.name.as_str();
    let mut counts = Vec::with_capacity(parts.len());
    let mut total = 0usize;
    for part in parts {
        let known = part_channels(graph, uses, shapes, part);
        let n = if InputRef::parse(part).node == prev_name {
            match (scale.len(), known) {
                (1, known) => known?,
                (n, Some(k)) if k != n => return None,
                (n, _) => n,
            }
        } else {
            known?
        };
        total = total.checked_add(n)?;
        counts.push((n, InputRef::parse(part).node == prev_name));
    }
    crate::budget::alloc_items(total, std::mem::size_of::<f64>(), "per-channel scale").ok()?;
    let mut full = Vec::with_capacity(total);
    for (n, scaled) in counts {
        if scaled {
            full.extend(expand(scale, n)?);
        } else {
            full.extend(std::iter::repeat_n(1.0, n));
        }
    }
    Some(full)
}

/// The channel count (last dimension) of tensor `input`: from its static shape, else from the
/// weights of the layer producing it.
fn part_channels(
    graph: &GraphDef,
    uses: &Uses,
    shapes: &StaticShapes,
    input: &str,
) -> Option<usize> {
    if let Some(dims) = shapes.of(input) {
        return dims.last().copied();
    }
    if InputRef::parse(input).port != 0 {
        return None;
    }
    let node = graph.node.get(uses.producer(input)?)?;
    let layer = Layer::of(node)?;
    let w = graph.node.get(uses.producer(data_inputs(node).get(1)?)?)?;
    if w.op != "Const" {
        return None;
    }
    let (_, dims) = crate::tensor::Tensor::check_proto(
        attrs::tensor(w, "value")?,
        crate::tensor::Limits::default(),
    )?;
    layer.channels_of_dims(&dims)
}

/// The Mul whose output reaches `x` directly or through activations each read once, reading
/// one another's output 0.
fn mul_before(graph: &GraphDef, uses: &Uses, x: &str) -> Option<usize> {
    let mut input = x;
    loop {
        if InputRef::parse(input).port != 0 {
            return None;
        }
        let p = uses.producer(input)?;
        let node = graph.node.get(p)?;
        if node.op == "Mul" {
            return Some(p);
        }
        if !HOMOGENEOUS.contains(&node.op.as_str()) || uses.count(p) != 1 {
            return None;
        }
        input = data_inputs(node).first()?;
    }
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

/// Whether a per-channel constant of `dims` (all 1 but the last) combines with a tensor of
/// `x_dims` without widening it: no higher rank, and as many channels as the tensor is known
/// to have, or one.
fn fits_without_broadcast(x_dims: &[crate::analysis::shapes::Dim], dims: &[usize]) -> bool {
    let channels = dims.last().copied().unwrap_or(1);
    dims.len() <= x_dims.len() && (channels == 1 || x_dims.last() == Some(&Some(channels)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{attr_value, AttrValue, NodeDef};
    use crate::tensor::{Data, Tensor};

    use crate::graph::test_nodes::float_node as node;

    fn floats(name: &str, dims: &[usize], values: &[f32]) -> NodeDef {
        let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(dims), values.to_vec());
        let value = Tensor::from_data(Data::F32(array.expect("shape")));
        crate::graph::edit::const_node(name.into(), String::new(), &value)
    }

    /// A placeholder of a [1, 4, 4, 2] image (the scales below have two channels).
    fn image(name: &str) -> NodeDef {
        let mut placeholder = node(name, "Placeholder", &[]);
        placeholder.attr.insert(
            "shape".into(),
            AttrValue {
                value: Some(attr_value::Value::Shape(crate::tensor::shape_proto(&[
                    1, 4, 4, 2,
                ]))),
            },
        );
        placeholder
    }

    /// `op` on `inputs` with unit strides and VALID padding (and a 1x1 window for pooling),
    /// so shape inference knows its output.
    fn windowed(name: &str, op: &str, inputs: &[&str]) -> NodeDef {
        let mut windowed = node(name, op, inputs);
        let ones = || AttrValue {
            value: Some(attr_value::Value::List(Box::new(attr_value::ListValue {
                i: vec![1; 4],
                ..Default::default()
            }))),
        };
        windowed.attr.insert("strides".into(), ones());
        if op.ends_with("Pool") {
            windowed.attr.insert("ksize".into(), ones());
        }
        windowed.attr.insert(
            "padding".into(),
            AttrValue {
                value: Some(attr_value::Value::S(bytes::Bytes::from_static(b"VALID"))),
            },
        );
        windowed
    }

    fn conv(name: &str, input: &str, weights: &str) -> NodeDef {
        windowed(name, "Conv2D", &[input, weights])
    }

    /// Runs of Muls (some with an activation, a shift or control input between, some into
    /// shared weights) give in one sweep what one Mul per sweep gives.
    #[test]
    fn runs_of_muls_fold_as_one_per_sweep_does() {
        let mut nodes = vec![
            floats("s", &[2], &[1.5, 2.0]),
            floats("t", &[2], &[0.5, 3.0]),
            floats("b", &[2], &[1.0, -1.0]),
            floats("w", &[1, 1, 2, 2], &[1.0, 0.5, 0.25, 1.0]),
            floats("shared", &[1, 1, 2, 2], &[2.0, 0.5, 0.5, 1.0]),
        ];
        let mut outputs = Vec::new();
        for (k, shape) in ["plain", "relu", "shift", "control", "shared", "shared"]
            .iter()
            .enumerate()
        {
            let x = format!("x{k}");
            nodes.push(image(&x));
            let mut last = x;
            for i in 0..6 {
                let m = format!("m{k}_{i}");
                let scale = if i % 2 == 0 { "s" } else { "t" };
                let mut mul = node(&m, "Mul", &[&last, scale]);
                if *shape == "control" && i == 3 {
                    mul.input.push("^s".into());
                }
                nodes.push(mul);
                last = m;
                if (*shape == "relu" || *shape == "shift") && i == 2 {
                    let (op, inputs) = if *shape == "relu" {
                        ("Relu", vec![last.as_str()])
                    } else {
                        ("BiasAdd", vec![last.as_str(), "b"])
                    };
                    let between = format!("between{k}");
                    nodes.push(node(&between, op, &inputs));
                    last = between;
                }
            }
            let weights = if *shape == "shared" { "shared" } else { "w" };
            let c = format!("conv{k}");
            nodes.push(conv(&c, &last, weights));
            outputs.push(c);
        }
        // The weights `w` are read by several convolutions too.
        let graph = GraphDef {
            node: nodes,
            ..Default::default()
        };
        let protected: HashSet<String> = outputs.into_iter().collect();
        let mut one_sweep = graph.clone();
        let moved = fold_in_sweeps(&mut one_sweep, &protected, true);
        let mut per_sweep = graph;
        assert_eq!(fold_in_sweeps(&mut per_sweep, &protected, false), moved);
        assert!(moved > 6, "{moved}");
        assert_eq!(one_sweep, per_sweep);

        // One run into weights nothing else reads.
        let mut nodes = vec![
            image("x"),
            floats("s", &[2], &[1.5, 2.0]),
            floats("w", &[1, 1, 2, 2], &[1.0, 0.5, 0.25, 1.0]),
        ];
        let mut last = "x".to_string();
        for i in 0..50 {
            let m = format!("m{i}");
            nodes.push(node(&m, "Mul", &[&last, "s"]));
            last = m;
        }
        nodes.push(conv("conv", &last, "w"));
        let graph = GraphDef {
            node: nodes,
            ..Default::default()
        };
        let protected: HashSet<String> = ["conv".to_string()].into();
        let mut one_sweep = graph.clone();
        assert_eq!(sweep(&mut one_sweep, &protected, true), 50);
        let mut per_sweep = graph;
        assert_eq!(fold_in_sweeps(&mut per_sweep, &protected, false), 50);
        assert_eq!(one_sweep, per_sweep);
        assert_eq!(one_sweep.node.len(), 3);

        // One run with activations between the Muls, into weights nothing else reads: one
        // sweep too, walking each activation once.
        let mut nodes = vec![
            image("x"),
            floats("s", &[2], &[1.5, 2.0]),
            floats("t", &[2], &[0.5, 3.0]),
            floats("w", &[1, 1, 2, 2], &[1.0, 0.5, 0.25, 1.0]),
        ];
        let mut last = "x".to_string();
        for i in 0..40 {
            let m = format!("m{i}");
            nodes.push(node(
                &m,
                "Mul",
                &[&last, if i % 3 == 0 { "s" } else { "t" }],
            ));
            last = m;
            for k in 0..i % 3 {
                let a = format!("a{i}_{k}");
                nodes.push(windowed(
                    &a,
                    if k == 0 { "Relu" } else { "MaxPool" },
                    &[&last],
                ));
                last = a;
            }
        }
        nodes.push(conv("conv", &last, "w"));
        let graph = GraphDef {
            node: nodes,
            ..Default::default()
        };
        let mut one_sweep = graph.clone();
        assert_eq!(sweep(&mut one_sweep, &protected, true), 40);
        let mut per_sweep = graph;
        assert_eq!(fold_in_sweeps(&mut per_sweep, &protected, false), 40);
        assert_eq!(one_sweep, per_sweep);
        assert!(one_sweep.node.iter().all(|n| n.op != "Mul"));
    }

    /// Runs mixing negative scales (which move only where no ReLU follows them on the way to
    /// the layer, once the Muls after them have moved) give in one sweep what one Mul per
    /// sweep gives; one negative scale before a ReLU stops itself and every Mul before it.
    #[test]
    fn runs_with_negative_scales_fold_as_one_per_sweep_does() {
        const MULS: usize = 18;
        for blocker in [None, Some(0), Some(4), Some(12), Some(MULS - 1)] {
            let mut nodes = vec![
                image("x"),
                floats("s", &[2], &[1.5, 2.0]),
                floats("n", &[2], &[-0.5, 3.0]),
                floats("w", &[1, 1, 2, 2], &[1.0, 0.5, 0.25, 1.0]),
            ];
            let mut last = "x".to_string();
            for i in 0..MULS {
                let m = format!("m{i}");
                let negative = (i >= MULS / 2 && i % 2 == 0) || blocker == Some(i);
                nodes.push(node(&m, "Mul", &[&last, if negative { "n" } else { "s" }]));
                last = m;
                // Linear steps after any scale; ReLU only after positive ones before the negative
                // ones, and after a late blocker (an early one has ReLUs of later Muls after it).
                let mut steps = Vec::new();
                if i % 3 == 0 {
                    steps.push("AvgPool");
                }
                if (!negative && i < MULS / 2 && i % 4 == 1)
                    || (blocker == Some(i) && i >= MULS / 2)
                {
                    steps.push("Relu");
                }
                for (k, op) in steps.into_iter().enumerate() {
                    let a = format!("a{i}_{k}");
                    nodes.push(windowed(&a, op, &[&last]));
                    last = a;
                }
            }
            nodes.push(conv("conv", &last, "w"));
            let graph = GraphDef {
                node: nodes,
                ..Default::default()
            };
            let protected: HashSet<String> = ["conv".to_string()].into();
            let mut one_sweep = graph.clone();
            let moved = fold_in_sweeps(&mut one_sweep, &protected, true);
            let mut per_sweep = graph;
            assert_eq!(fold_in_sweeps(&mut per_sweep, &protected, false), moved);
            assert_eq!(one_sweep, per_sweep, "blocker {blocker:?}");
            let expected = blocker.map_or(MULS, |k| MULS - 1 - k);
            assert_eq!(moved, expected, "blocker {blocker:?}");
            let left = one_sweep.node.iter().filter(|n| n.op == "Mul").count();
            assert_eq!(left, MULS - expected, "blocker {blocker:?}");
        }
    }
}
