//! Chains of nodes the fast kernels run as one pass over memory. Keras' swish,
//! `x * sigmoid(beta * x)`, is three nodes (Mul by a scalar, Sigmoid, Mul): three passes
//! over an activation, the first into a new buffer. Fused, it reads `x` once and writes the
//! result once. Each element gets the same operations, in the same order and with the same
//! operand order, as the three kernels give it, so the bits are the same; only
//! [`Gemm::Fast`](super::Gemm::Fast) evaluations fuse (folding runs node by node).

use std::collections::{HashMap, HashSet};

use ndarray::ArrayD;

use super::elementwise::{mul, sigmoid, Real};
use super::{broadcast, parallel, recycle, KernelError};
use crate::proto::GraphDef;
use crate::tensor::{Data, Tensor};

/// `scale = x * c` (or `c * x`), `gate = Sigmoid(scale)`, `product = x * gate` (or
/// `gate * x`): found at the `scale` node, whose kernel computes `product`'s value; `gate`
/// and `product` then pass it on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Swish {
    pub gate: usize,
    pub product: usize,
    /// The input slot of `x` in `scale`.
    pub x_in_scale: usize,
    /// The input slot of `gate` in `product`.
    pub gate_in_product: usize,
}

/// The swish chains among the nodes that run: every link the only consumer of the one
/// before (and not fetched), all data inputs, `product` taking the same `x` as `scale`.
/// Whether `c` is a scalar is known only when `scale` runs.
pub fn swishes(
    graph: &GraphDef,
    needed: &[bool],
    consumers: &[Vec<(usize, usize, bool)>],
    fetched: &HashSet<usize>,
) -> HashMap<usize, Swish> {
    let op = |i: usize| graph.node.get(i).map_or("", |n| n.op.as_str());
    let inputs = |i: usize| graph.node.get(i).map_or(&[][..], |n| n.input.as_slice());
    let only_consumer = |i: usize| match consumers.get(i).map(Vec::as_slice) {
        Some(&[(next, slot, false)]) if !fetched.contains(&i) => Some((next, slot)),
        _ => None,
    };
    let mut found = HashMap::new();
    for scale in (0..graph.node.len()).filter(|&i| needed.get(i) == Some(&true)) {
        if op(scale) != "Mul" || inputs(scale).len() != 2 {
            continue;
        }
        let Some((gate, 0)) = only_consumer(scale) else {
            continue;
        };
        if op(gate) != "Sigmoid" || inputs(gate).len() != 1 {
            continue;
        }
        let Some((product, gate_in_product)) = only_consumer(gate) else {
            continue;
        };
        if op(product) != "Mul" || inputs(product).len() != 2 {
            continue;
        }
        let x = &inputs(product)[1 - gate_in_product];
        let Some(x_in_scale) = inputs(scale).iter().position(|name| name == x) else {
            continue;
        };
        if x.starts_with('^') {
            continue;
        }
        found.insert(
            scale,
            Swish {
                gate,
                product,
                x_in_scale,
                gate_in_product,
            },
        );
    }
    found
}

/// `product`'s value from `scale`'s inputs (in their slots), or `None` when they are not a
/// float tensor laid out row-major and a float scalar of its type (the nodes then run one by
/// one).
pub fn swish(chain: &Swish, inputs: [&Tensor; 2]) -> Result<Option<Tensor>, KernelError> {
    let (x, c) = (inputs[chain.x_in_scale], inputs[1 - chain.x_in_scale]);
    let data = match (x.data(), c.data()) {
        (Data::F32(a), Data::F32(k)) => run(chain, a, k)?.map(Data::F32),
        (Data::F64(a), Data::F64(k)) => run(chain, a, k)?.map(Data::F64),
        _ => None,
    };
    Ok(data.map(Tensor::from_data))
}

fn run<T: Real>(
    chain: &Swish,
    x: &ArrayD<T>,
    c: &ArrayD<T>,
) -> Result<Option<ArrayD<T>>, KernelError> {
    // A scalar of no more dimensions than `x`: the products then have `x`'s shape.
    let (Some(values), Some(&[c]), true) = (x.as_slice(), c.as_slice(), c.ndim() <= x.ndim())
    else {
        return Ok(None);
    };
    let len = broadcast::check_output(x.shape(), std::mem::size_of::<T>())?;
    let (x_first, x_first_in_product) = (chain.x_in_scale == 0, chain.gate_in_product == 1);
    // The loop below writes every element.
    let mut out = recycle::overwritten(len, T::zero());
    parallel::rows(&mut out, 1, len, |first, block| {
        for (y, &v) in block.iter_mut().zip(&values[first..]) {
            let scaled = if x_first { mul(v, c) } else { mul(c, v) };
            let gate = sigmoid(scaled);
            *y = if x_first_in_product {
                mul(v, gate)
            } else {
                mul(gate, v)
            };
        }
    });
    Ok(Some(ArrayD::from_shape_vec(x.raw_dim(), out)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::graph::test_nodes::node;

    fn consumers(graph: &GraphDef) -> Vec<Vec<(usize, usize, bool)>> {
        let index = |name: &str| graph.node.iter().position(|n| n.name == name);
        let mut consumers = vec![Vec::new(); graph.node.len()];
        for (i, n) in graph.node.iter().enumerate() {
            for (slot, input) in n.input.iter().enumerate() {
                let control = input.starts_with('^');
                if let Some(p) = index(input.trim_start_matches('^')) {
                    consumers[p].push((i, slot, control));
                }
            }
        }
        consumers
    }

    #[test]
    fn chains_are_found_only_where_nothing_else_sees_their_links() {
        let graph = GraphDef {
            node: vec![
                node("x", "Placeholder", &[]),
                node("beta", "Const", &[]),
                // 2..5: a swish, beta first, x first in the product.
                node("scale", "Mul", &["beta", "x"]),
                node("gate", "Sigmoid", &["scale"]),
                node("swish", "Mul", &["x", "gate"]),
                // 5..8: the gate has a second consumer.
                node("scale_2", "Mul", &["swish", "beta"]),
                node("gate_2", "Sigmoid", &["scale_2"]),
                node("product_2", "Mul", &["gate_2", "swish"]),
                node("other", "Relu", &["gate_2"]),
                // 9..12: the product multiplies another tensor.
                node("scale_3", "Mul", &["product_2", "beta"]),
                node("gate_3", "Sigmoid", &["scale_3"]),
                node("product_3", "Mul", &["gate_3", "other"]),
                // 12..15: a swish whose scale is fetched.
                node("scale_4", "Mul", &["product_3", "beta"]),
                node("gate_4", "Sigmoid", &["scale_4"]),
                node("product_4", "Mul", &["product_3", "gate_4"]),
            ],
            ..Default::default()
        };
        let needed = vec![true; graph.node.len()];
        let fetched = HashSet::from([12, 14]);
        let found = swishes(&graph, &needed, &consumers(&graph), &fetched);
        let expected = HashMap::from([(
            2,
            Swish {
                gate: 3,
                product: 4,
                x_in_scale: 1,
                gate_in_product: 1,
            },
        )]);
        assert_eq!(found, expected);
    }

    #[test]
    fn only_a_scalar_of_the_same_type_fuses() {
        let chain = Swish {
            gate: 1,
            product: 2,
            x_in_scale: 0,
            gate_in_product: 0,
        };
        let x = Tensor::from_data(Data::F32(ArrayD::from_elem(ndarray::IxDyn(&[2, 3]), 0.5)));
        let scalar = Tensor::from_data(Data::F32(ndarray::arr0(1.5).into_dyn()));
        let row = Tensor::from_data(Data::F32(ArrayD::from_elem(ndarray::IxDyn(&[3]), 1.5)));
        let wide = Tensor::from_data(Data::F64(ndarray::arr0(1.5).into_dyn()));
        let fused = swish(&chain, [&x, &scalar])
            .unwrap()
            .expect("a scalar fuses");
        let expected = sigmoid(0.5f32 * 1.5) * 0.5;
        let Data::F32(values) = fused.data() else {
            panic!("float32 in, float32 out");
        };
        assert!(values.iter().all(|v| v.to_bits() == expected.to_bits()));
        assert!(swish(&chain, [&x, &row]).unwrap().is_none());
        assert!(swish(&chain, [&x, &wide]).unwrap().is_none());
    }
}
