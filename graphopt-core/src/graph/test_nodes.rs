//! Node builders for the crate's unit tests.

use crate::proto::{attr_value, AttrValue, DataType, NodeDef};

/// A node with no attributes.
pub(crate) fn node(name: &str, op: &str, inputs: &[&str]) -> NodeDef {
    NodeDef {
        name: name.into(),
        op: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

/// A node of float type: `dtype` for a Placeholder, `T` for anything else.
pub(crate) fn float_node(name: &str, op: &str, inputs: &[&str]) -> NodeDef {
    let mut node = node(name, op, inputs);
    let type_attr = if op == "Placeholder" { "dtype" } else { "T" };
    node.attr.insert(
        type_attr.into(),
        AttrValue {
            value: Some(attr_value::Value::Type(DataType::DtFloat as i32)),
        },
    );
    node
}
