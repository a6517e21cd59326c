//! `rename_op(old_op_name, new_op_name)`: changes the op type of every node of one type.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;

pub struct RenameOp;

impl Transform for RenameOp {
    fn name(&self) -> &str {
        "rename_op"
    }

    fn summary(&self) -> &str {
        "change the op type of every node of type old_op_name to new_op_name"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["old_op_name", "new_op_name"])
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let old = context.params.required("old_op_name")?;
        let new = context.params.required("new_op_name")?;
        if !is_valid_op_name(new) {
            return Err(context.error(format!(
                "'{new}' is not an op name TensorFlow can register (a capital letter, then letters, digits, '_' or '>')"
            )));
        }
        for node in &mut graph.node {
            if node.op == old {
                node.op = new.to_string();
            }
        }
        Ok(())
    }
}

/// TensorFlow's rule for op names (`op_def_builder.cc`: `[A-Z][a-zA-Z0-9>_]*`, or `_` and
/// anything for internal ops): no op of another name can be registered, so a graph using one
/// is refused (an empty op, "does not specify an operation").
fn is_valid_op_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some('_') => true,
        Some(c) if c.is_ascii_uppercase() => {
            chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '>'))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use crate::proto::{attr_value, AttrValue, DataType, GraphDef, NodeDef};
    use crate::transforms::{parse, run, Registry};

    /// An empty or malformed new op name is refused and the graph left alone; it had been
    /// written, and TensorFlow 2.21 refused the graph ("Node 'r' does not specify an operation").
    #[test]
    fn new_op_names_tensorflow_cannot_register_are_refused() {
        let mut graph = GraphDef {
            node: vec![NodeDef {
                name: "r".into(),
                op: "Relu".into(),
                attr: [(
                    "T".to_string(),
                    AttrValue {
                        value: Some(attr_value::Value::Type(DataType::DtFloat as i32)),
                    },
                )]
                .into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let registry = Registry::with_builtins();
        for bad in ["", "relu6", "Relu 6", "Relu:6", "6Relu"] {
            let spec = format!("rename_op(old_op_name=Relu, new_op_name=\"{bad}\")");
            let specs = parse(&spec).unwrap_or_default();
            let result = run(&registry, &mut graph, &specs, &[], &[]);
            assert!(
                matches!(&result, Err(e) if e.to_string().contains("not an op name")),
                "{bad:?}: {result:?}"
            );
            assert_eq!(graph.node[0].op, "Relu");
        }
        for good in ["Relu6", "_Internal", "My>Op_2"] {
            let spec = format!("rename_op(old_op_name=Relu, new_op_name=\"{good}\")");
            let specs = parse(&spec).unwrap_or_default();
            assert!(
                run(&registry, &mut graph, &specs, &[], &[]).is_ok(),
                "{good}"
            );
            assert_eq!(graph.node[0].op, good);
            graph.node[0].op = "Relu".into();
        }
    }
}
