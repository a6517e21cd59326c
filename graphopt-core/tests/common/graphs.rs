//! Small graphs built in code, for tests of rewrites that check exactness with the evaluator:
//! seeded float Consts, integer Consts, float nodes, placeholders, and a run fed by `x`.

use std::collections::BTreeMap;

use graphopt_core::graph::edit::{const_node, const_value};
use graphopt_core::proto::{attr_value, AttrValue, DataType, GraphDef, NodeDef};
use graphopt_core::tensor::{Data, Tensor};
use ndarray::{ArrayD, IxDyn};

pub fn floats(name: &str, dims: &[usize], seed: u32) -> NodeDef {
    let n: usize = dims.iter().product();
    // A small deterministic generator: values in [-1, 1) with both signs.
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(12345);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state % 2000) as f32 / 1000.0 - 1.0
        })
        .collect();
    let t = Tensor::from_data(Data::F32(ArrayD::from_shape_vec(IxDyn(dims), v).unwrap()));
    const_node(name.into(), String::new(), &t)
}

pub fn int32s(name: &str, dims: &[usize], v: &[i32]) -> NodeDef {
    let t = Tensor::from_data(Data::I32(
        ArrayD::from_shape_vec(IxDyn(dims), v.to_vec()).unwrap(),
    ));
    const_node(name.into(), String::new(), &t)
}

pub fn int64s(name: &str, dims: &[usize], v: &[i64]) -> NodeDef {
    let t = Tensor::from_data(Data::I64(
        ArrayD::from_shape_vec(IxDyn(dims), v.to_vec()).unwrap(),
    ));
    const_node(name.into(), String::new(), &t)
}

pub fn attr(v: attr_value::Value) -> AttrValue {
    AttrValue { value: Some(v) }
}

pub fn dtype(t: DataType) -> attr_value::Value {
    attr_value::Value::Type(t as i32)
}

pub fn s(v: &str) -> attr_value::Value {
    attr_value::Value::S(bytes::Bytes::from(v.as_bytes().to_vec()))
}

pub fn ints(v: &[i64]) -> attr_value::Value {
    attr_value::Value::List(Box::new(attr_value::ListValue {
        i: v.to_vec(),
        ..Default::default()
    }))
}

pub fn node(name: &str, op: &str, inputs: &[&str], attrs: &[(&str, attr_value::Value)]) -> NodeDef {
    let mut n = NodeDef {
        name: name.into(),
        op: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    n.attr.insert("T".into(), attr(dtype(DataType::DtFloat)));
    for (k, v) in attrs {
        n.attr.insert(k.to_string(), attr(v.clone()));
    }
    n
}

pub fn placeholder(name: &str, dims: &[i64]) -> NodeDef {
    let mut n = NodeDef {
        name: name.into(),
        op: "Placeholder".into(),
        ..Default::default()
    };
    n.attr
        .insert("dtype".into(), attr(dtype(DataType::DtFloat)));
    n.attr.insert(
        "shape".into(),
        attr(attr_value::Value::Shape(
            graphopt_core::proto::TensorShapeProto {
                dim: dims
                    .iter()
                    .map(|&size| graphopt_core::proto::tensor_shape_proto::Dim {
                        size,
                        name: String::new(),
                    })
                    .collect(),
                unknown_rank: false,
            },
        )),
    );
    n
}

pub fn graph(nodes: Vec<NodeDef>) -> GraphDef {
    GraphDef {
        node: nodes,
        ..Default::default()
    }
}

pub fn input(dims: &[usize], seed: u32) -> Tensor {
    const_value(&floats("x", dims, seed)).unwrap()
}

pub fn evaluate(g: &GraphDef, x: &Tensor, fetches: &[&str]) -> Vec<Tensor> {
    let feeds = BTreeMap::from([("x".to_string(), x.clone())]);
    let fetches: Vec<String> = fetches.iter().map(|s| s.to_string()).collect();
    graphopt_core::eval::evaluate(g, &feeds, &fetches, Default::default()).unwrap()
}
