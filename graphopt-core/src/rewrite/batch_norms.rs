//! Batch-norm folding: per-channel scales and shifts moved into the weights of the layer before
//! them and one BiasAdd.
//!
//! [`fold_scales_and_shifts`] (the `fold_batch_norms` transform):
//! - `Mul(layer(x, W), m)` -> `layer(x, W*m)` (GTT's rule; the layer takes the Mul's name).
//! - `Mul(BiasAdd(layer(x, W), b), m)` -> `BiasAdd(layer(x, W*m), b*m)` (TF1's unfused
//!   `tf.nn.batch_normalization` after a biased conv: the bias is scaled too).
//! - `Add|AddV2(layer, c)`, `Sub(layer, c)` -> `BiasAdd(layer, ±c)`: the add half of Keras 3's
//!   decomposed batch norm, which TensorFlow's tool leaves in place.
//! - `Add|AddV2|Sub(BiasAdd(y, b), c)` and `BiasAdd(BiasAdd(y, b), c)` -> `BiasAdd(y, b±c)`.
//!
//! [`fold_batch_norm_ops`] (the `fold_old_batch_norms` transform): FusedBatchNorm, V2, V3
//! (inference) and BatchNormWithGlobalNormalization after a layer become scaled weights and a
//! BiasAdd named after the norm. Differences from TensorFlow's transform, all deliberate:
//! - V2 and V3 are folded (TensorFlow's transform only knows FusedBatchNorm, though every
//!   graph since TF 1.14 uses V3);
//! - a BiasAdd or Add of a Const between the layer and the norm is folded too, with the bias
//!   scaled and shifted (`Conv2D -> BiasAdd -> BatchNorm`, Keras' `use_bias=True`);
//! - NCHW is honoured: the norm's data format must match the layer's;
//! - a norm whose other outputs (batch mean, variance) are read is left alone.
//!
//! Both: `layer` is Conv2D, DepthwiseConv2dNative or MatMul with Const weights; scales and
//! shifts are Consts that vary only along the output channels (or are scalars); none of them is
//! named in --inputs (a fed Const holds what is fed) or --outputs. Weights that
//! another node also reads are copied (`NAME_bn_folded`) rather than scaled under the other
//! reader. A multiply is never folded into a layer whose output something else reads, and no
//! protected node loses its name. Run after constant folding, so the parameters are Consts.

use std::collections::{HashMap, HashSet};
use std::ops::{Deref, DerefMut};

use crate::graph;
use crate::graph::attrs;
use crate::graph::edit::{const_value, control_inputs, controls_of, data_inputs, Edits, Uses};
use crate::late_weights::{LateWeightError, LateWeights};
use crate::proto::{attr_value, AttrValue, DataType, GraphDef, NodeDef, TensorProto};
use crate::rewrite::weights::{floats, per_channel, vector, Layer, Scaled};
use crate::tensor::{Limits, Tensor};

/// Folds per-channel Mul/Add/Sub/BiasAdd after layers into their weights and one BiasAdd,
/// until nothing changes; `protected` nodes keep their names. An error only if weights in a
/// mapped input can no longer be read (see [`crate::pages::copy_out`]).
pub fn fold_scales_and_shifts(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
) -> Result<(), LateWeightError> {
    computed_at_once(graph, protected, fold_scales_and_shifts_deferred)
}

/// [`fold_scales_and_shifts`], leaving large scaled weights late in `late` (see
/// [`crate::late_weights`]), and scaling those already late there once more.
pub fn fold_scales_and_shifts_deferred(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
    late: &mut LateWeights,
) -> Result<(), LateWeightError> {
    until_unchanged(graph, protected, late, sweep_scales)
}

/// Folds FusedBatchNorm(V2/V3) and BatchNormWithGlobalNormalization after layers into their
/// weights and a BiasAdd, until nothing changes; `protected` nodes keep their names. An error
/// as for [`fold_scales_and_shifts`].
pub fn fold_batch_norm_ops(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
) -> Result<(), LateWeightError> {
    computed_at_once(graph, protected, fold_batch_norm_ops_deferred)
}

/// [`fold_batch_norm_ops`], leaving large scaled weights late in `late`, as
/// [`fold_scales_and_shifts_deferred`] does.
pub fn fold_batch_norm_ops_deferred(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
    late: &mut LateWeights,
) -> Result<(), LateWeightError> {
    until_unchanged(graph, protected, late, sweep_norms)
}

/// The signature of a deferred fold and of one sweep of it (true if anything changed).
type Fold<T> = fn(&mut GraphDef, &HashSet<String>, &mut LateWeights) -> Result<T, LateWeightError>;

/// `fold` with every weight it leaves late computed before returning.
fn computed_at_once(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
    fold: Fold<()>,
) -> Result<(), LateWeightError> {
    let mut late = LateWeights::default();
    fold(graph, protected, &mut late)?;
    late.compute_all(graph)
}

/// `sweep` until it changes nothing; then `late` forgets the Consts the sweeps removed.
fn until_unchanged(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
    late: &mut LateWeights,
    sweep: Fold<bool>,
) -> Result<(), LateWeightError> {
    let swept = loop {
        match sweep(graph, protected, late) {
            Ok(true) => continue,
            done => break done,
        }
    };
    late.forget_missing(graph);
    swept.map(|_| ())
}

/// Turns `node` into `BiasAdd(input, bias)` with the given data format (NHWC when `None`),
/// keeping its control inputs and its `T`.
fn become_bias_add(
    node: &mut NodeDef,
    input: String,
    bias: String,
    data_format: Option<AttrValue>,
) {
    let controls = control_inputs(node);
    node.op = "BiasAdd".into();
    node.input = vec![input, bias];
    node.input.extend(controls);
    let t = node.attr.get("T").cloned();
    node.attr.clear();
    if let Some(t) = t {
        node.attr.insert("T".into(), t);
    }
    node.attr.insert(
        "data_format".into(),
        data_format.unwrap_or(AttrValue {
            value: Some(attr_value::Value::S(bytes::Bytes::from_static(b"NHWC"))),
        }),
    );
}

/// Position of the one Const among two data inputs, with the other input's producer.
fn split_operands(
    graph: &GraphDef,
    uses: &Uses,
    node: &NodeDef,
    const_second_only: bool,
) -> Option<(usize, usize, usize)> {
    let inputs = data_inputs(node);
    let [a, b] = inputs.as_slice() else {
        return None;
    };
    let pa = uses.producer(a)?;
    let pb = uses.producer(b)?;
    let a_const = graph.node.get(pa)?.op == "Const";
    let b_const = graph.node.get(pb)?.op == "Const";
    let plain = |s: &str| graph::InputRef::parse(s).port == 0;
    match (a_const, b_const) {
        (false, true) if plain(a) => Some((pa, pb, 1)),
        (true, false) if plain(b) && !const_second_only => Some((pb, pa, 0)),
        _ => None,
    }
}

/// (rank, channel axis) of a BiasAdd's output, given its bias length.
fn bias_layout(node: &NodeDef) -> (usize, usize) {
    let nchw = attrs::string(node, "data_format").is_some_and(|f| f == "NCHW");
    if nchw {
        (4, 1)
    } else {
        (0, usize::MAX)
    }
}

/// The axis a BiasAdd node adds its bias along, on an input of rank `rank`: 1 for NCHW, else
/// the last.
fn bias_add_axis(node: &NodeDef, rank: usize) -> usize {
    if bias_layout(node).0 == 4 {
        1
    } else {
        rank.saturating_sub(1)
    }
}

/// Per-channel values of `c` for a BiasAdd-like output of rank `output_rank` (when known);
/// NHWC accepts any trailing layout that does not make the sum's rank higher than the
/// output's (a `c` of rank 2 or more needs the output's rank known).
fn bias_values(
    c: &Tensor,
    channels: usize,
    layout: (usize, usize),
    output_rank: Option<usize>,
) -> Option<Vec<f64>> {
    match layout {
        (0, _) => {
            let rank = c.shape().len().max(1);
            if rank > 1 && output_rank.is_none_or(|r| r < rank) {
                return None;
            }
            per_channel(c, channels, rank - 1, rank)
        }
        (rank, axis) => per_channel(c, channels, axis, rank),
    }
}

/// The [`Edits`] of one folding sweep (here and in [`super::scale_axis`]), for folds that may
/// share a Const with an earlier fold of the sweep. Such a Const is only read, or copied, while
/// other folds read it, so it need not be free: a chain of layers sharing their weights or
/// scale folds in one sweep instead of one sweep per fold (quadratic). A fold that goes ahead
/// only because of that would have waited for a later sweep, whose read counts no longer hold
/// the readers given copies since: its copies count them, so it writes the Const in place for
/// the last reader, and the result is the one of a sweep per fold.
pub(crate) struct FoldEdits {
    edits: Edits,
    /// Data readers of a Const given their own copy in this sweep.
    copied: HashMap<usize, usize>,
    /// Touched shared Consts the current fold found free only by the rule above.
    relaxed: HashSet<usize>,
    /// Control inputs of the nodes folds dropped, for the readers of a name: what read the
    /// dropped node keeps waiting for what it waited for.
    readers_wait: Vec<(String, Vec<String>)>,
    /// The late weights of the graph: those given to the sweep, and those its folds leave.
    late: LateWeights,
    /// The first weights of the sweep that could not be read (their fold was not made).
    unreadable: Option<LateWeightError>,
}

/// The graph layer's per-base name memo, for the rewrites that keep their own taken set.
pub(crate) use crate::graph::edit::UniqueNames;

impl Deref for FoldEdits {
    type Target = Edits;

    fn deref(&self) -> &Edits {
        &self.edits
    }
}

impl DerefMut for FoldEdits {
    fn deref_mut(&mut self) -> &mut Edits {
        &mut self.edits
    }
}

impl FoldEdits {
    pub(crate) fn new(graph: &GraphDef, protected: &HashSet<String>) -> Self {
        FoldEdits {
            edits: Edits::new(graph, protected),
            copied: HashMap::new(),
            relaxed: HashSet::new(),
            readers_wait: Vec::new(),
            late: LateWeights::default(),
            unreadable: None,
        }
    }

    /// [`FoldEdits::new`] for a graph whose late weights are `late` (taken; handed back by
    /// [`FoldEdits::finish_deferred`]).
    fn with_late(graph: &GraphDef, protected: &HashSet<String>, late: &mut LateWeights) -> Self {
        let mut edits = FoldEdits::new(graph, protected);
        edits.late = std::mem::take(late);
        edits
    }

    /// The value of Const `i` for a fold to take in; `None` for a late weight, whose content
    /// is not its value yet, and for a protected Const: one named in --inputs holds what is
    /// fed, one named in --outputs must keep its value, so neither is folded away nor written
    /// in place.
    fn value(&self, graph: &GraphDef, i: usize) -> Option<Tensor> {
        let node = graph.node.get(i)?;
        if self.late.of(node).is_some() || self.edits.protected.contains(&node.name) {
            return None;
        }
        const_value(node)
    }

    /// Weights `proto` of Const `w` scaled per output channel of `layer`, late where large.
    /// Weights that cannot be read are not scaled, and the sweep ends in their error.
    fn scale_weights(
        &mut self,
        graph: &GraphDef,
        w: usize,
        layer: Layer,
        proto: &TensorProto,
        scale: &[f64],
    ) -> Option<Scaled> {
        let node = graph.node.get(w)?;
        let prior = self.late.of(node);
        match layer.scale_deferred(proto, prior, scale) {
            Ok(scaled) => scaled,
            Err(error) => {
                self.unreadable
                    .get_or_insert_with(|| LateWeightError::new(&node.name, error));
                None
            }
        }
    }

    /// [`FoldEdits::set_input_proto`] of scaled weights, recording a late one under the name
    /// of the Const that ends up holding it.
    fn set_input_scaled(
        &mut self,
        graph: &mut GraphDef,
        uses: &Uses,
        consumer: usize,
        slot: usize,
        constant: usize,
        scaled: Scaled,
    ) {
        match scaled {
            Scaled::Now(proto) => {
                self.set_input_proto(graph, uses, consumer, slot, constant, proto);
            }
            Scaled::Late(proto, weight) => {
                if let Some(holder) =
                    self.set_input_proto(graph, uses, consumer, slot, constant, proto)
                {
                    self.late.insert(holder, weight);
                }
            }
        }
    }

    /// Makes the readers of `name` (at the end of the sweep) wait for what `dropped` waited
    /// for: a fold that removes them, or takes their value into another node, keeps the
    /// order they imposed. A reader of the name read the dropped nodes' value, so it already
    /// ran after those control inputs: no cycle can come of it.
    pub(crate) fn readers_keep_waiting(&mut self, graph: &GraphDef, name: &str, dropped: &[usize]) {
        let mut controls = controls_of(graph, dropped);
        // A dropped node that would itself have been given control inputs at the end (a run
        // of folded Muls) passes them on.
        for input in dropped
            .iter()
            .filter_map(|&i| graph.node.get(i))
            .flat_map(|n| data_inputs(n))
        {
            let source = graph::node_name(input);
            for (_, pending) in self.readers_wait.iter().filter(|(n, _)| n == source) {
                for control in pending {
                    if !controls.contains(control) {
                        controls.push(control.clone());
                    }
                }
            }
        }
        if !controls.is_empty() {
            self.readers_wait.push((name.to_string(), controls));
        }
    }

    /// Starts looking at the next fold of the sweep.
    pub(crate) fn begin_fold(&mut self) {
        self.relaxed.clear();
    }

    /// Data readers of Const `c` that still read the original.
    fn readers_left(&self, uses: &Uses, c: usize) -> usize {
        uses.data_count(c)
            .saturating_sub(self.copied.get(&c).copied().unwrap_or(0))
    }

    /// Whether no fold of this sweep has touched `nodes`, Consts other folds also read aside.
    pub(crate) fn free(&mut self, graph: &GraphDef, uses: &Uses, nodes: &[usize]) -> bool {
        for &i in nodes {
            if !self.edits.touched.contains(&i) {
                continue;
            }
            let is_const = graph.node.get(i).is_some_and(|n| n.op == "Const");
            if !is_const || self.readers_left(uses, i) < 2 {
                return false;
            }
            self.relaxed.insert(i);
        }
        true
    }

    /// Gives input `slot` of `consumer` the value `proto`: in place if `constant` has no
    /// other data reader (left, see above), else through a new Const inserted before the
    /// consumer. The name of the Const that holds it, if any.
    pub(crate) fn set_input_proto(
        &mut self,
        graph: &mut GraphDef,
        uses: &Uses,
        consumer: usize,
        slot: usize,
        constant: usize,
        proto: TensorProto,
    ) -> Option<String> {
        let readers = if self.relaxed.contains(&constant) {
            self.readers_left(uses, constant)
        } else {
            uses.data_count(constant)
        };
        if readers == 1 {
            self.edits.write_const(graph, constant, proto);
            return graph.node.get(constant).map(|n| n.name.clone());
        }
        let copy = self
            .edits
            .copy_const(graph, consumer, slot, constant, proto);
        if copy.is_some() {
            *self.copied.entry(constant).or_insert(0) += 1;
        }
        copy
    }

    /// [`FoldEdits::set_input_proto`] of a decoded value.
    pub(crate) fn set_input_value(
        &mut self,
        graph: &mut GraphDef,
        uses: &Uses,
        consumer: usize,
        slot: usize,
        constant: usize,
        value: &Tensor,
    ) {
        self.set_input_proto(graph, uses, consumer, slot, constant, value.to_proto());
    }

    /// [`FoldEdits::finish`], handing the late weights back to `late`; the error of weights
    /// that could not be read, if any.
    fn finish_deferred(
        mut self,
        graph: &mut GraphDef,
        late: &mut LateWeights,
    ) -> Result<bool, LateWeightError> {
        *late = std::mem::take(&mut self.late);
        let unreadable = self.unreadable.take();
        let changed = self.finish(graph);
        match unreadable {
            Some(error) => Err(error),
            None => Ok(changed),
        }
    }

    pub(crate) fn finish(self, graph: &mut GraphDef) -> bool {
        if !self.readers_wait.is_empty() {
            let waits: HashMap<&str, &Vec<String>> = self
                .readers_wait
                .iter()
                .map(|(name, controls)| (name.as_str(), controls))
                .collect();
            for node in &mut graph.node {
                let mut added: Vec<String> = Vec::new();
                for input in &node.input {
                    let parsed = graph::InputRef::parse(input);
                    if let Some(controls) = waits.get(parsed.node).filter(|_| !parsed.control) {
                        added.extend(controls.iter().cloned());
                    }
                }
                for control in added {
                    if !node.input.contains(&control) {
                        node.input.push(control);
                    }
                }
            }
        }
        self.edits.finish(graph)
    }
}

/// One pass over the graph; true if anything changed.
fn sweep_scales(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
    late: &mut LateWeights,
) -> Result<bool, LateWeightError> {
    let uses = Uses::new(graph);
    let mut edits = FoldEdits::with_late(graph, protected, late);
    for i in 0..graph.node.len() {
        edits.begin_fold();
        if !edits.free(graph, &uses, &[i]) {
            continue;
        }
        let op = graph.node[i].op.clone();
        let at = || crate::graph::node_label(&graph.node[i]);
        match op.as_str() {
            "Mul" => crate::budget::at(at(), || fold_mul(graph, &uses, &mut edits, protected, i)),
            "Add" | "AddV2" | "Sub" | "BiasAdd" => {
                crate::budget::at(at(), || fold_add(graph, &uses, &mut edits, protected, i))
            }
            _ => {}
        }
    }
    edits.finish_deferred(graph, late)
}

/// A layer's Const weights, read from their encoding without decoding them: only a fold
/// that goes ahead computes new weights, straight from the encoded ones.
struct Weights {
    proto: TensorProto,
    dims: Vec<usize>,
    dtype: DataType,
}

impl Weights {
    fn channels(&self, layer: Layer) -> Option<usize> {
        layer.channels_of_dims(&self.dims)
    }

    /// `value` as one number per output channel of `layer` (node `node`, these its weights):
    /// `None` when it varies along any other axis of the output.
    fn per_output_channel(&self, layer: Layer, node: &NodeDef, value: &Tensor) -> Option<Vec<f64>> {
        let channels = self.channels(layer)?;
        let (rank, axis) = layer.output_layout(node);
        per_channel(value, channels, axis, rank)
    }
}

/// A node's two data inputs, owned so the graph can be edited while they are held.
fn two_data_inputs(node: &NodeDef) -> Option<[String; 2]> {
    match data_inputs(node).as_slice() {
        [a, b] => Some([a.to_string(), b.to_string()]),
        _ => None,
    }
}

/// Layer node `l` with its float Const weights: (weights node, weights, layer kind).
fn layer_with_weights(
    graph: &GraphDef,
    uses: &Uses,
    protected: &HashSet<String>,
    l: usize,
) -> Option<(usize, Weights, Layer)> {
    let node = graph.node.get(l)?;
    let layer = Layer::of(node)?;
    let w_input = data_inputs(node).get(1).copied()?;
    let w = uses.producer(w_input)?;
    let w_node = graph.node.get(w)?;
    if w_node.op != "Const" || protected.contains(&w_node.name) {
        return None;
    }
    let proto = attrs::tensor(w_node, "value")?;
    let (dtype, dims) = Tensor::check_proto(proto, Limits::default())?;
    if !matches!(
        dtype,
        DataType::DtFloat | DataType::DtDouble | DataType::DtHalf | DataType::DtBfloat16
    ) {
        return None;
    }
    let weights = Weights {
        proto: proto.clone(),
        dims,
        dtype,
    };
    Some((w, weights, layer))
}

fn fold_mul(
    graph: &mut GraphDef,
    uses: &Uses,
    edits: &mut FoldEdits,
    protected: &HashSet<String>,
    mul: usize,
) {
    let Some((x, m, _)) = split_operands(graph, uses, &graph.node[mul], false) else {
        return;
    };
    let Some(m_value) = edits.value(graph, m) else {
        return;
    };
    if uses.count(x) != 1 || protected.contains(&graph.node[x].name) || uses.reads_other_outputs(x)
    {
        return;
    }
    if graph.node[x].op == "BiasAdd" {
        // Mul(BiasAdd(layer, b), m): scale weights and bias.
        let Some([y, b]) = two_data_inputs(&graph.node[x]) else {
            return;
        };
        let (Some(l), Some(bn)) = (uses.producer(&y), uses.producer(&b)) else {
            return;
        };
        let Some(b_value) = edits.value(graph, bn) else {
            return;
        };
        if uses.count(l) != 1
            || protected.contains(&graph.node[l].name)
            || !edits.free(graph, uses, &[x, l, bn, m])
        {
            return;
        }
        let Some((w, w_value, layer)) = layer_with_weights(graph, uses, protected, l) else {
            return;
        };
        // The bias must run along the layer's channels, as the scale does: a BiasAdd of
        // another data format adds it along another axis (b[h] * m[c] is no b' per channel).
        let (rank, axis) = layer.output_layout(&graph.node[l]);
        if bias_add_axis(&graph.node[x], rank) != axis {
            return;
        }
        let (Some(scale), Some(bias)) = (
            w_value.per_output_channel(layer, &graph.node[l], &m_value),
            floats(&b_value),
        ) else {
            return;
        };
        if bias.len() != scale.len() {
            return;
        }
        let Some(new_w) = edits.scale_weights(graph, w, layer, &w_value.proto, &scale) else {
            return;
        };
        let scaled_bias: Vec<f64> = bias.iter().zip(&scale).map(|(b, s)| b * s).collect();
        let Some(new_b) = vector(&scaled_bias, b_value.dtype()) else {
            return;
        };
        edits.touch(&[mul, x, l, w, bn, m]);
        let mul_name = graph.node[mul].name.clone();
        edits.readers_keep_waiting(graph, &mul_name, &[mul, m]);
        edits.set_input_scaled(graph, uses, l, 1, w, new_w);
        edits.set_input_value(graph, uses, x, 1, bn, &new_b);
        graph.node[x].name = mul_name;
        edits.removed.insert(mul);
        return;
    }
    // Mul(layer, m).
    let Some((w, w_value, layer)) = layer_with_weights(graph, uses, protected, x) else {
        return;
    };
    if !edits.free(graph, uses, &[x, w, m]) {
        return;
    }
    let Some(scale) = w_value.per_output_channel(layer, &graph.node[x], &m_value) else {
        return;
    };
    let Some(new_w) = edits.scale_weights(graph, w, layer, &w_value.proto, &scale) else {
        return;
    };
    edits.touch(&[mul, x, w, m]);
    let mul_name = graph.node[mul].name.clone();
    edits.readers_keep_waiting(graph, &mul_name, &[mul, m]);
    edits.set_input_scaled(graph, uses, x, 1, w, new_w);
    graph.node[x].name = mul_name;
    edits.removed.insert(mul);
}

fn fold_add(
    graph: &mut GraphDef,
    uses: &Uses,
    edits: &mut FoldEdits,
    protected: &HashSet<String>,
    add: usize,
) {
    let op = graph.node[add].op.clone();
    let is_bias_add = op == "BiasAdd";
    let Some((x, c, c_slot)) =
        split_operands(graph, uses, &graph.node[add], op == "Sub" || is_bias_add)
    else {
        return;
    };
    let Some(c_value) = edits.value(graph, c) else {
        return;
    };
    let sign = if op == "Sub" { -1.0 } else { 1.0 };
    let x_input = data_inputs(&graph.node[add])
        .get(1 - c_slot)
        .map(|s| s.to_string())
        .unwrap_or_default();

    if graph.node[x].op == "BiasAdd" {
        // (y + b) + c -> y + (b + c).
        if uses.count(x) != 1
            || protected.contains(&graph.node[x].name)
            || !edits.free(graph, uses, &[x, c])
        {
            return;
        }
        let Some([y, b]) = two_data_inputs(&graph.node[x]) else {
            return;
        };
        let Some(bn) = uses.producer(&b) else { return };
        let Some(b_value) = edits.value(graph, bn) else {
            return;
        };
        let Some(bias) = floats(&b_value) else { return };
        let layout = bias_layout(&graph.node[x]);
        if is_bias_add && bias_layout(&graph.node[add]) != layout {
            return;
        }
        // The output's rank, where the BiasAdd's input comes from a layer.
        let output_rank = uses
            .producer(&y)
            .and_then(|l| Some(Layer::of(&graph.node[l])?.output_layout(&graph.node[l]).0));
        let Some(extra) = bias_values(&c_value, bias.len(), layout, output_rank) else {
            return;
        };
        let merged: Vec<f64> = bias.iter().zip(&extra).map(|(b, e)| b + sign * e).collect();
        let Some(new_b) = vector(&merged, b_value.dtype()) else {
            return;
        };
        if !edits.free(graph, uses, &[bn]) {
            return;
        }
        edits.touch(&[add, x, c, bn]);
        let base = format!("{}/bias", graph.node[add].name);
        let bias_name = edits.new_const(graph, add, &base, &new_b);
        let data_format = graph.node[x].attr.get("data_format").cloned();
        let waited = controls_of(graph, &[x, c, bn]);
        become_bias_add(&mut graph.node[add], y, bias_name, data_format);
        keep_waiting(&mut graph.node[add], waited);
        edits.removed.insert(x);
        return;
    }
    // layer + c -> BiasAdd(layer, c), the layer's own bias: only where the add is the layer's
    // one reader. Otherwise nothing is folded, and consumers that fuse a BiasAdd into the
    // layer before it would add the bias for the other readers too (OpenCV 4.10 does).
    if is_bias_add || uses.count(x) != 1 {
        return;
    }
    let Some((_, w_value, layer)) = layer_with_weights(graph, uses, protected, x) else {
        return;
    };
    let Some(values) = w_value.per_output_channel(layer, &graph.node[x], &c_value) else {
        return;
    };
    let values: Vec<f64> = values.iter().map(|v| sign * v).collect();
    let Some(bias) = vector(&values, c_value.dtype()) else {
        return;
    };
    if !edits.free(graph, uses, &[c]) {
        return;
    }
    edits.touch(&[add, c]);
    let base = format!("{}/bias", graph.node[add].name);
    let bias_name = edits.new_const(graph, add, &base, &bias);
    let data_format = match layer {
        Layer::MatMul { .. } => None,
        _ => graph.node[x].attr.get("data_format").cloned(),
    };
    let waited = controls_of(graph, &[c]);
    become_bias_add(&mut graph.node[add], x_input, bias_name, data_format);
    keep_waiting(&mut graph.node[add], waited);
}

fn sweep_norms(
    graph: &mut GraphDef,
    protected: &HashSet<String>,
    late: &mut LateWeights,
) -> Result<bool, LateWeightError> {
    let uses = Uses::new(graph);
    let mut edits = FoldEdits::with_late(graph, protected, late);
    for i in 0..graph.node.len() {
        edits.begin_fold();
        if matches!(
            graph.node[i].op.as_str(),
            "FusedBatchNorm"
                | "FusedBatchNormV2"
                | "FusedBatchNormV3"
                | "BatchNormWithGlobalNormalization"
        ) && edits.free(graph, &uses, &[i])
        {
            let at = crate::graph::node_label(&graph.node[i]);
            crate::budget::at(at, || fold_norm(graph, &uses, &mut edits, protected, i));
        }
    }
    edits.finish_deferred(graph, late)
}

/// Per-channel (scale, offset) of a batch norm node, from its Const parameters.
fn norm_parameters(
    graph: &GraphDef,
    uses: &Uses,
    edits: &FoldEdits,
    bn: usize,
) -> Option<(Vec<f64>, Vec<f64>, Vec<usize>)> {
    let node = &graph.node[bn];
    let inputs = data_inputs(node);
    let producers: Vec<usize> = inputs
        .iter()
        .skip(1)
        .map(|s| uses.producer(s))
        .collect::<Option<_>>()?;
    let values: Vec<Vec<f64>> = producers
        .iter()
        .map(|&p| floats(&edits.value(graph, p)?))
        .collect::<Option<_>>()?;
    let (gamma, beta, mean, var, epsilon) = if node.op == "BatchNormWithGlobalNormalization" {
        let [mean, var, beta, gamma] = values.as_slice() else {
            return None;
        };
        let gamma = if attrs::bool(node, "scale_after_normalization").unwrap_or(false) {
            gamma.clone()
        } else {
            vec![1.0; mean.len()]
        };
        (
            gamma,
            beta.clone(),
            mean.clone(),
            var.clone(),
            attrs::float(node, "variance_epsilon")?,
        )
    } else {
        if attrs::bool(node, "is_training").unwrap_or(true) {
            return None;
        }
        let [scale, offset, mean, var] = values.as_slice() else {
            return None;
        };
        (
            scale.clone(),
            offset.clone(),
            mean.clone(),
            var.clone(),
            attrs::float(node, "epsilon").unwrap_or(1e-4),
        )
    };
    let c = mean.len();
    if [gamma.len(), beta.len(), var.len()].iter().any(|&l| l != c) {
        return None;
    }
    let epsilon = f64::from(epsilon);
    let scale: Vec<f64> = gamma
        .iter()
        .zip(&var)
        .map(|(g, v)| g / (v + epsilon).sqrt())
        .collect();
    let offset: Vec<f64> = beta
        .iter()
        .zip(&mean)
        .zip(&scale)
        .map(|((b, m), s)| b - m * s)
        .collect();
    Some((scale, offset, producers))
}

fn fold_norm(
    graph: &mut GraphDef,
    uses: &Uses,
    edits: &mut FoldEdits,
    protected: &HashSet<String>,
    bn: usize,
) {
    if uses.reads_other_outputs(bn) {
        return;
    }
    let Some((scale, mut offset, params)) = norm_parameters(graph, uses, edits, bn) else {
        return;
    };
    let Some(x_input) = data_inputs(&graph.node[bn]).first().map(|s| s.to_string()) else {
        return;
    };
    if graph::InputRef::parse(&x_input).port != 0 {
        return;
    }
    let Some(mut x) = uses.producer(&x_input) else {
        return;
    };
    let mut between = None;
    let mut between_bias = None;
    // An optional BiasAdd/Add of a Const between the layer and the norm.
    if matches!(graph.node[x].op.as_str(), "BiasAdd" | "Add" | "AddV2") {
        let Some([y, b]) = two_data_inputs(&graph.node[x]) else {
            return;
        };
        let (Some(l), Some(bp)) = (uses.producer(&y), uses.producer(&b)) else {
            return;
        };
        let Some(bias_value) = edits.value(graph, bp) else {
            return;
        };
        let Some(bias) = floats(&bias_value) else {
            return;
        };
        if uses.count(x) != 1
            || protected.contains(&graph.node[x].name)
            || bias.len() != offset.len()
        {
            return;
        }
        // Per channel along the norm's channel axis, at the layer output's rank: an Add of
        // another shape (varying along height, or of higher rank) is no bias.
        let Some(layer) = Layer::of(&graph.node[l]) else {
            return;
        };
        let (rank, axis) = layer.output_layout(&graph.node[l]);
        let norm_nchw = attrs::string(&graph.node[bn], "data_format").is_some_and(|f| f == "NCHW");
        let norm_axis = if norm_nchw { 1 } else { rank - 1 };
        let bias_axis = match graph.node[x].op.as_str() {
            "BiasAdd" => bias_add_axis(&graph.node[x], rank),
            _ => {
                if per_channel(&bias_value, bias.len(), axis, rank).is_none() {
                    return;
                }
                axis
            }
        };
        if bias_axis != axis || norm_axis != axis {
            return;
        }
        for (o, (b, s)) in offset.iter_mut().zip(bias.iter().zip(&scale)) {
            *o += b * s;
        }
        between = Some(x);
        between_bias = Some(bp);
        x = l;
    }
    let Some((w, w_value, layer)) = layer_with_weights(graph, uses, protected, x) else {
        return;
    };
    let layer_node = &graph.node[x];
    if uses.count(x) != 1 || protected.contains(&layer_node.name) {
        return;
    }
    let bn_nchw = attrs::string(&graph.node[bn], "data_format").is_some_and(|f| f == "NCHW");
    let layer_nchw = attrs::string(layer_node, "data_format").is_some_and(|f| f == "NCHW");
    if matches!(layer, Layer::MatMul { .. }) && bn_nchw
        || !matches!(layer, Layer::MatMul { .. }) && bn_nchw != layer_nchw
    {
        return;
    }
    if w_value.channels(layer) != Some(scale.len()) {
        return;
    }
    let mut involved = vec![bn, x, w];
    involved.extend(&params);
    involved.extend(between);
    if !edits.free(graph, uses, &involved) {
        return;
    }
    let Some(new_w) = edits.scale_weights(graph, w, layer, &w_value.proto, &scale) else {
        return;
    };
    let Some(bias) = vector(&offset, w_value.dtype) else {
        return;
    };
    edits.touch(&involved);
    edits.set_input_scaled(graph, uses, x, 1, w, new_w);
    let base = format!("{}/bias", graph.node[bn].name);
    let bias_name = edits.new_const(graph, bn, &base, &bias);
    let layer_output = graph.node[x].name.clone();
    let format: &'static [u8] = if bn_nchw { b"NCHW" } else { b"NHWC" };
    let data_format = AttrValue {
        value: Some(attr_value::Value::S(bytes::Bytes::from_static(format))),
    };
    let mut dropped = params.clone();
    dropped.extend(between);
    dropped.extend(between_bias);
    let waited = controls_of(graph, &dropped);
    become_bias_add(
        &mut graph.node[bn],
        layer_output,
        bias_name,
        Some(data_format),
    );
    keep_waiting(&mut graph.node[bn], waited);
    if let Some(b) = between {
        edits.removed.insert(b);
    }
}

/// Adds `controls` to `node`'s inputs, those it has not already: what the node read through
/// the nodes a fold dropped, it keeps waiting for.
fn keep_waiting(node: &mut NodeDef, controls: Vec<String>) {
    for control in controls {
        if !node.input.contains(&control) {
            node.input.push(control);
        }
    }
}
