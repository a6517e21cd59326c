//! Per-output-channel arithmetic on the weights of convolutions and matrix products: what the
//! batch-norm folds need to move a per-channel scale and shift into a layer.

use ndarray::{ArrayD, IxDyn};

use crate::graph::attrs;
use crate::late_weights::{ScaledWeight, Step, LATE_FROM};
use crate::proto::{DataType, NodeDef, TensorProto};
use crate::tensor::{shape_proto, Data, Limits, Tensor};

/// What scaling a Const's weights gave.
#[derive(Debug, Clone)]
pub enum Scaled {
    /// The scaled value.
    Now(TensorProto),
    /// A late weight: the value as the Const holds it meanwhile (the unscaled source), and
    /// how to compute it.
    Late(TensorProto, ScaledWeight),
}

/// A layer whose output channels can absorb a per-channel scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Filter [kh, kw, in, out]; output channel = filter's last index.
    Conv2D,
    /// Filter [kh, kw, in, multiplier]; output channel = in * multiplier + m.
    Depthwise,
    /// Weights [in, out], or [out, in] with `transpose_b`.
    MatMul { transpose_b: bool },
}

impl Layer {
    /// The layer kind of `node`, if it is one.
    pub fn of(node: &NodeDef) -> Option<Layer> {
        match node.op.as_str() {
            "Conv2D" => Some(Layer::Conv2D),
            "DepthwiseConv2dNative" => Some(Layer::Depthwise),
            "MatMul" if !attrs::bool(node, "transpose_a").unwrap_or(false) => Some(Layer::MatMul {
                transpose_b: attrs::bool(node, "transpose_b").unwrap_or(false),
            }),
            _ => None,
        }
    }

    /// Rank of the layer's output and the axis its channels are on.
    pub fn output_layout(self, node: &NodeDef) -> (usize, usize) {
        match self {
            Layer::MatMul { .. } => (2, 1),
            _ => {
                let nchw = attrs::string(node, "data_format").is_some_and(|f| f == "NCHW");
                (4, if nchw { 1 } else { 3 })
            }
        }
    }

    /// Number of output channels given the weights.
    pub fn channels(self, weights: &Tensor) -> Option<usize> {
        self.channels_of_dims(weights.shape())
    }

    /// Number of output channels given the weights' dims.
    pub fn channels_of_dims(self, s: &[usize]) -> Option<usize> {
        match (self, s) {
            (Layer::Conv2D, [_, _, _, out]) => Some(*out),
            (Layer::Depthwise, [_, _, c, m]) => Some(c * m),
            (Layer::MatMul { transpose_b: false }, [_, out]) => Some(*out),
            (Layer::MatMul { transpose_b: true }, [out, _]) => Some(*out),
            _ => None,
        }
    }

    /// The output channel that flat weight element `i` contributes to.
    fn channel_of(self, shape: &[usize], i: usize) -> usize {
        match (self, shape) {
            (Layer::MatMul { transpose_b: true }, [_, cols]) => i / (*cols).max(1),
            (_, [.., last]) => i % (*last).max(1),
            _ => 0,
        }
    }

    /// Weights with every output channel `c` multiplied by `scale[c]`, in the weights' dtype;
    /// `None` if that overflows the dtype (see [`overflows`]).
    pub fn scale(self, weights: &Tensor, scale: &[f64]) -> Option<Tensor> {
        let channel = self.output_channel_fn(weights.shape(), scale.len())?;
        let scaled = map_floats(weights, |i, v| {
            v * scale.get(channel(i)).copied().unwrap_or(1.0)
        })?;
        (!overflows(weights, &scaled)).then_some(scaled)
    }

    /// The output channel of each flat weight index, for weights of `shape` with `channels`
    /// output channels (`None` if they do not have that many).
    fn output_channel_fn(
        self,
        shape: &[usize],
        channels: usize,
    ) -> Option<impl Fn(usize) -> usize> {
        if self.channels_of_dims(shape)? != channels {
            return None;
        }
        // Depthwise channels are in * multiplier + m, which is the flat index modulo in*m.
        let flat_len = match self {
            Layer::Depthwise => shape.get(2)? * shape.get(3)?,
            _ => 0,
        };
        let shape = shape.to_vec();
        Some(move |i: usize| {
            if self == Layer::Depthwise {
                i % flat_len.max(1)
            } else {
                self.channel_of(&shape, i)
            }
        })
    }

    /// [`Layer::scale`] on an encoded Const value, giving the encoded result: exactly
    /// `scale(decoded).to_proto()`, computed straight from and into little-endian bytes for
    /// float32 `tensor_content` (the weights of every real model), with no decoded copy.
    /// An error if the weights lie in a mapped input that can no longer be read.
    pub fn scale_proto(
        self,
        weights: &TensorProto,
        scale: &[f64],
    ) -> std::io::Result<Option<TensorProto>> {
        Ok(match self.scale_deferred(weights, None, scale)? {
            None => None,
            Some(Scaled::Now(proto)) => Some(proto),
            Some(Scaled::Late(mut proto, weight)) => {
                proto.tensor_content = weight.compute()?;
                Some(proto)
            }
        })
    }

    /// [`Layer::scale_proto`], leaving a large float32 result late: the proto then holds the
    /// unscaled source and the [`ScaledWeight`] says how to compute it (see
    /// [`crate::late_weights`]). `prior` is the late weight `weights` holds, if any: its
    /// content is that weight's source, and the result scales it once more. `Ok(None)` if the
    /// weights cannot be scaled so; an error if their bytes cannot be read (a mapped input
    /// that shrank, see [`crate::pages::copy_out`]).
    pub fn scale_deferred(
        self,
        weights: &TensorProto,
        prior: Option<&ScaledWeight>,
        scale: &[f64],
    ) -> std::io::Result<Option<Scaled>> {
        // Decoding reads the content as it is, which for a late weight is not its value.
        let decoded = || {
            Ok(match prior {
                None => self.scale_decoded(weights, scale).map(Scaled::Now),
                Some(_) => None,
            })
        };
        let Some((DataType::DtFloat, dims)) = Tensor::check_proto(weights, Limits::default())
        else {
            return decoded();
        };
        let packed = &weights.tensor_content;
        if weights.dtype != DataType::DtFloat as i32 || packed.is_empty() {
            return decoded();
        }
        if self.channels_of_dims(&dims) != Some(scale.len()) {
            return Ok(None);
        }
        // Output channels run along the rows of the flat weights (cyclically), except for
        // MatMul with transpose_b, where each row is one channel.
        let (row, per_row) = match (self, dims.as_slice()) {
            (Layer::MatMul { transpose_b: true }, [_, cols]) => (*cols, true),
            (Layer::Depthwise, [_, _, c, m]) => match c.checked_mul(*m) {
                Some(row) => (row, false),
                None => return Ok(None),
            },
            (_, [.., last]) => (*last, false),
            _ => return decoded(),
        };
        let Some(step) = Step::new(row, per_row, scale) else {
            return decoded();
        };
        let weight = match prior {
            Some(prior) => prior.then(step),
            None => ScaledWeight::new(packed.clone(), step),
        };
        let Some(weight) = weight else {
            return Ok(None);
        };
        let head = TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(shape_proto(&dims)),
            ..Default::default()
        };
        // As `Tensor::to_proto`: one value when every element is the same.
        if let Some(value) = weight.uniform()? {
            return Ok(Some(Scaled::Now(TensorProto {
                float_val: vec![f32::from_le_bytes(value)],
                ..head
            })));
        }
        if weight.len() < LATE_FROM {
            return Ok(Some(Scaled::Now(TensorProto {
                tensor_content: weight.compute()?,
                ..head
            })));
        }
        Ok(Some(Scaled::Late(
            TensorProto {
                tensor_content: weight.source().clone(),
                ..head
            },
            weight,
        )))
    }

    fn scale_decoded(self, weights: &TensorProto, scale: &[f64]) -> Option<TensorProto> {
        let value = Tensor::from_proto(weights).ok()?;
        Some(self.scale(&value, scale)?.to_proto())
    }
}

impl Layer {
    /// Number of input channels given the weights.
    pub fn input_channels(self, weights: &Tensor) -> Option<usize> {
        match (self, weights.shape()) {
            (Layer::Conv2D | Layer::Depthwise, [_, _, c, _]) => Some(*c),
            (Layer::MatMul { transpose_b: false }, [rows, _]) => Some(*rows),
            (Layer::MatMul { transpose_b: true }, [_, cols]) => Some(*cols),
            _ => None,
        }
    }

    /// Weights with every input channel `c` multiplied by `scale[c]`: the layer applied to `x`
    /// then equals the original layer applied to `x * scale` (per channel).
    pub fn scale_inputs(self, weights: &Tensor, scale: &[f64]) -> Option<Tensor> {
        if self.input_channels(weights)? != scale.len() {
            return None;
        }
        let shape = weights.shape().to_vec();
        let channel = |i: usize| -> usize {
            match (self, shape.as_slice()) {
                // [kh, kw, in, k]: the input channel is the third index.
                (Layer::Conv2D | Layer::Depthwise, [_, _, c, k]) => (i / (*k).max(1)) % (*c).max(1),
                (Layer::MatMul { transpose_b: false }, [_, cols]) => i / (*cols).max(1),
                (Layer::MatMul { transpose_b: true }, [_, cols]) => i % (*cols).max(1),
                _ => 0,
            }
        };
        let scaled = map_floats(weights, |i, v| {
            v * scale.get(channel(i)).copied().unwrap_or(1.0)
        })?;
        (!overflows(weights, &scaled)).then_some(scaled)
    }
}

/// Whether `new` holds more infinities or NaNs than `old`: values folded in a narrow type can
/// overflow it (a half shift of 100 divided by a scale of 1e-3 is 1e5, past half's 65504; a
/// half batch norm's offset `beta - mean * scale` likewise), and the layer then outputs
/// infinities or NaN where TensorFlow, computing the norm in float32, gave numbers.
pub fn overflows(old: &Tensor, new: &Tensor) -> bool {
    let non_finite = |t: &Tensor| {
        t.float_values()
            .map_or(0, |values| values.filter(|v| !v.is_finite()).count())
    };
    non_finite(new) > non_finite(old)
}

/// Applies `f(flat index, value)` to every element of a float tensor, keeping its dtype.
pub fn map_floats(t: &Tensor, f: impl Fn(usize, f64) -> f64) -> Option<Tensor> {
    let data = match t.data() {
        Data::F32(a) => Data::F32(indexed(a, |i, v: f32| f(i, f64::from(v)) as f32)),
        Data::F64(a) => Data::F64(indexed(a, |i, v: f64| f(i, v))),
        Data::F16(a) => Data::F16(indexed(a, |i, v: half::f16| {
            half::f16::from_f64(f(i, v.to_f64()))
        })),
        Data::BF16(a) => Data::BF16(indexed(a, |i, v: half::bf16| {
            half::bf16::from_f64(f(i, v.to_f64()))
        })),
        _ => return None,
    };
    Tensor::new(t.dtype(), data).ok()
}

fn indexed<T: Copy>(a: &ArrayD<T>, f: impl Fn(usize, T) -> T) -> ArrayD<T> {
    let values: Vec<T> = a.iter().enumerate().map(|(i, &v)| f(i, v)).collect();
    ArrayD::from_shape_vec(a.raw_dim(), values).unwrap_or_else(|_| a.clone())
}

/// Elements of a float tensor as f64.
pub fn floats(t: &Tensor) -> Option<Vec<f64>> {
    t.floats()
}

/// The `channels` per-channel values of `value` when it broadcasts against a rank-`rank`
/// output only along `axis` (a scalar repeats); `None` if it varies along any other axis.
pub fn per_channel(value: &Tensor, channels: usize, axis: usize, rank: usize) -> Option<Vec<f64>> {
    let values = floats(value)?;
    let shape = value.shape();
    if shape.len() > rank {
        return None;
    }
    if values.len() == 1 {
        // The channel count comes from the weights' dims, which an empty tensor may have huge.
        crate::budget::alloc_items(channels, std::mem::size_of::<f64>(), "per-channel values")
            .ok()?;
        return Some(vec![values[0]; channels]);
    }
    // Align trailing dimensions: only the channel axis may be larger than one.
    let offset = rank - shape.len();
    for (i, &d) in shape.iter().enumerate() {
        let out_axis = i + offset;
        if out_axis == axis {
            if d != channels {
                return None;
            }
        } else if d != 1 {
            return None;
        }
    }
    (values.len() == channels).then_some(values)
}

/// A 1-D tensor of `dtype` holding `values`; `None` if a value overflows `dtype`.
pub fn vector(values: &[f64], dtype: DataType) -> Option<Tensor> {
    let wide = Tensor::from_data(Data::F64(
        ArrayD::from_shape_vec(IxDyn(&[values.len()]), values.to_vec()).ok()?,
    ));
    let narrow = crate::eval::cast_tensor(&wide, dtype).ok()?;
    (!overflows(&wide, &narrow)).then_some(narrow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(dims: &[usize], uniform: bool) -> Tensor {
        let n: usize = dims.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|i| {
                if uniform {
                    0.5
                } else {
                    (i as f32 * 0.37).sin() * 3.0
                }
            })
            .collect();
        let array = ArrayD::from_shape_vec(IxDyn(dims), values).unwrap_or_default();
        Tensor::from_data(Data::F32(array))
    }

    /// The byte path gives exactly the decode-scale-encode result, for every layer kind.
    #[test]
    fn scale_proto_matches_decoded_scaling() {
        let cases = [
            (Layer::Conv2D, vec![3, 3, 4, 5]),
            (Layer::Depthwise, vec![3, 3, 4, 2]),
            (Layer::MatMul { transpose_b: false }, vec![6, 7]),
            (Layer::MatMul { transpose_b: true }, vec![7, 6]),
            // Large enough to be split over two threads (odd row counts: unequal halves),
            // in buffers of their own or cut from a shared chunk (`pages::zeroed`).
            (Layer::Conv2D, vec![3, 3, 257, 259]),
            (Layer::MatMul { transpose_b: true }, vec![301, 1031]),
            (Layer::Depthwise, vec![5, 5, 1023, 23]),
        ];
        for (layer, dims) in cases {
            for uniform in [false, true] {
                let w = weights(&dims, uniform);
                let channels = layer.channels(&w).unwrap_or(0);
                let scale: Vec<f64> = (0..channels).map(|c| 0.1 + c as f64 * 0.77).collect();
                let ones = vec![1.0; channels];
                for scale in [&scale, &ones] {
                    let expected = layer.scale(&w, scale).map(|t| t.to_proto());
                    let packed = w.to_proto_as_content();
                    assert_eq!(
                        layer.scale_proto(&packed, scale).unwrap(),
                        expected,
                        "{layer:?} {dims:?}"
                    );
                    assert_eq!(layer.scale_proto(&w.to_proto(), scale).unwrap(), expected);
                }
                assert_eq!(layer.scale_proto(&w.to_proto(), &[1.0]).unwrap(), None);
            }
        }
    }
}
