//! `backport_concatv2`: rewrites ConcatV2 (axis last) as the pre-2016 Concat (axis first, no
//! `Tidx`), for runtimes that only know Concat.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;

pub struct BackportConcatV2;

impl Transform for BackportConcatV2 {
    fn name(&self) -> &str {
        "backport_concatv2"
    }

    fn summary(&self) -> &str {
        "rewrite ConcatV2 as Concat for old runtimes"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        for node in graph.node.iter_mut().filter(|n| n.op == "ConcatV2") {
            let data_count = node.input.iter().filter(|i| !i.starts_with('^')).count();
            if data_count < 2 {
                return Err(context.error(format!("ConcatV2 '{}' has no axis input", node.name)));
            }
            let axis = node.input.remove(data_count - 1);
            node.input.insert(0, axis);
            node.op = "Concat".into();
            if let Some(tidx) = node.attr.remove("Tidx") {
                // Concat's axis is always int32.
                if tidx.value
                    != Some(crate::proto::attr_value::Value::Type(
                        crate::proto::DataType::DtInt32 as i32,
                    ))
                {
                    return Err(context.error(format!(
                        "ConcatV2 '{}' has a non-int32 axis, which Concat cannot take",
                        node.name
                    )));
                }
            }
        }
        Ok(())
    }
}
