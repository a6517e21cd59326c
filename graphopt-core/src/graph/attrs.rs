//! Reading node attributes with the types kernels need.

use crate::proto::{attr_value, DataType, NodeDef, TensorProto, TensorShapeProto};

fn value<'a>(node: &'a NodeDef, name: &str) -> Option<&'a attr_value::Value> {
    node.attr.get(name).and_then(|a| a.value.as_ref())
}

pub fn string(node: &NodeDef, name: &str) -> Option<String> {
    match value(node, name)? {
        attr_value::Value::S(s) => Some(String::from_utf8_lossy(s).into_owned()),
        _ => None,
    }
}

pub fn bool(node: &NodeDef, name: &str) -> Option<bool> {
    match value(node, name)? {
        attr_value::Value::B(b) => Some(*b),
        _ => None,
    }
}

pub fn int(node: &NodeDef, name: &str) -> Option<i64> {
    match value(node, name)? {
        attr_value::Value::I(i) => Some(*i),
        _ => None,
    }
}

pub fn float(node: &NodeDef, name: &str) -> Option<f32> {
    match value(node, name)? {
        attr_value::Value::F(f) => Some(*f),
        _ => None,
    }
}

pub fn dtype(node: &NodeDef, name: &str) -> Option<DataType> {
    match value(node, name)? {
        attr_value::Value::Type(t) => DataType::try_from(crate::tensor::base_dtype(*t)).ok(),
        _ => None,
    }
}

/// A type attribute's enum value as written, reference types (`float_ref`) kept.
pub fn raw_type(node: &NodeDef, name: &str) -> Option<i32> {
    match value(node, name)? {
        attr_value::Value::Type(t) => Some(*t),
        _ => None,
    }
}

pub fn ints(node: &NodeDef, name: &str) -> Option<Vec<i64>> {
    match value(node, name)? {
        attr_value::Value::List(list) => Some(list.i.clone()),
        _ => None,
    }
}

pub fn shape<'a>(node: &'a NodeDef, name: &str) -> Option<&'a TensorShapeProto> {
    match value(node, name)? {
        attr_value::Value::Shape(s) => Some(s),
        _ => None,
    }
}

pub fn tensor<'a>(node: &'a NodeDef, name: &str) -> Option<&'a TensorProto> {
    match value(node, name)? {
        attr_value::Value::Tensor(t) => Some(t),
        _ => None,
    }
}
