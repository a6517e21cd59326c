//! Per-output-channel arithmetic on the weights of convolutions and matrix products: what the
//! batch-norm folds need to move a per-channel scale and shift into a layer.

use ndarray::{ArrayD, IxDyn};

use crate::graph::attrs;
use crate::proto::{DataType, NodeDef, TensorProto};
use crate::tensor::{shape_proto, Data, Limits, Tensor};

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
    pub fn scale_proto(self, weights: &TensorProto, scale: &[f64]) -> Option<TensorProto> {
        let Some((DataType::DtFloat, dims)) = Tensor::check_proto(weights, Limits::default())
        else {
            return self.scale_decoded(weights, scale);
        };
        let packed = &weights.tensor_content;
        if weights.dtype != DataType::DtFloat as i32 || packed.is_empty() {
            return self.scale_decoded(weights, scale);
        }
        if self.channels_of_dims(&dims)? != scale.len() {
            return None;
        }
        // Output channels run along the rows of the flat weights (cyclically), except for
        // MatMul with transpose_b, where each row is one channel.
        let (row, per_row) = match (self, dims.as_slice()) {
            (Layer::MatMul { transpose_b: true }, [_, cols]) => (*cols, true),
            (Layer::Depthwise, [_, _, c, m]) => (c * m, false),
            (_, [.., last]) => (*last, false),
            _ => return self.scale_decoded(weights, scale),
        };
        if !per_row && scale.len() != row {
            return self.scale_decoded(weights, scale);
        }
        let mut buffer = crate::pages::zeroed(packed.len());
        let content = &mut buffer[..];
        let scale_one = |out: &mut [u8], input: &[u8], s: f64| {
            let v = f32::from_le_bytes([input[0], input[1], input[2], input[3]]);
            out.copy_from_slice(&((f64::from(v) * s) as f32).to_le_bytes());
        };
        let row_bytes = row.max(1) * 4;
        let scale_rows = |first_row: usize, out: &mut [u8], input: &[u8]| {
            // A mapped input's pages of the weights in one request rather than a fault each.
            crate::pages::populate(input);
            let rows = out
                .chunks_exact_mut(row_bytes)
                .zip(input.chunks_exact(row_bytes));
            for (r, (out_row, in_row)) in rows.enumerate() {
                let values = out_row.chunks_exact_mut(4).zip(in_row.chunks_exact(4));
                if per_row {
                    let s = scale.get(first_row + r).copied().unwrap_or(1.0);
                    for (out, input) in values {
                        scale_one(out, input, s);
                    }
                } else {
                    for ((out, input), &s) in values.zip(scale) {
                        scale_one(out, input, s);
                    }
                }
            }
        };
        // Large weights in two halves on two threads: each element is computed the same way
        // whichever thread computes it, so the bytes do not depend on the split.
        let mid = content.len() / row_bytes / 2;
        if content.len() < SPLIT_SCALING_FROM || mid == 0 {
            scale_rows(0, content, packed);
        } else {
            let (out_a, out_b) = content.split_at_mut(mid * row_bytes);
            let (in_a, in_b) = packed.split_at(out_a.len());
            // The second half, for the helper thread or, if none can be had, for this one.
            let second = std::sync::Mutex::new(Some((out_b, in_b)));
            let scale_second = || {
                let half = second.lock().map(|mut half| half.take()).ok().flatten();
                if let Some((out, input)) = half {
                    scale_rows(mid, out, input);
                }
            };
            std::thread::scope(|scope| {
                let _helper = std::thread::Builder::new().spawn_scoped(scope, scale_second);
                scale_rows(0, out_a, in_a);
            });
            scale_second();
        }
        // The old weights are read: a mapped input's pages of them need not stay resident.
        crate::pages::release(packed);
        let mut proto = TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(shape_proto(&dims)),
            ..Default::default()
        };
        // As `Tensor::to_proto`: one value when every element is the same.
        let first = [content[0], content[1], content[2], content[3]];
        if content.chunks_exact(4).all(|c| c == first) {
            proto.float_val = vec![f32::from_le_bytes(first)];
        } else {
            proto.tensor_content = buffer.freeze();
        }
        Some(proto)
    }

    fn scale_decoded(self, weights: &TensorProto, scale: &[f64]) -> Option<TensorProto> {
        let value = Tensor::from_proto(weights).ok()?;
        Some(self.scale(&value, scale)?.to_proto())
    }
}

/// Weights at least this large are scaled on two threads.
const SPLIT_SCALING_FROM: usize = 1 << 20;

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
                        layer.scale_proto(&packed, scale),
                        expected,
                        "{layer:?} {dims:?}"
                    );
                    assert_eq!(layer.scale_proto(&w.to_proto(), scale), expected);
                }
                assert_eq!(layer.scale_proto(&w.to_proto(), &[1.0]), None);
            }
        }
    }
}
