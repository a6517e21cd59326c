//! `remove_nodes(op=..., max_inputs=1)`: splices out nodes of the given op types (Identity,
//! CheckNumerics, StopGradient, Snapshot, ...), wiring their consumers to their first input
//! (see [`crate::rewrite::remove`]).
//!
//! Differences from TensorFlow's transform, all deliberate (TensorFlow's breaks graphs):
//! - a node fed by a Switch that other nodes use as a control anchor (`^node`) is kept: it is
//!   how a `tf.cond` branch or loop body pins its constants to the taken branch, and a control
//!   edge from the Switch itself is live on both branches;
//! - a node with control inputs that feeds a Merge or Enter is kept, since moving those control
//!   inputs onto it would tie iterations or frames together;
//! - the removed node's control inputs move to its consumers instead of being dropped;
//! - a node read through an output other than 0 is kept (IdentityN maps each output to its
//!   input instead);
//! - nodes named in --inputs or --outputs are kept, however they are spelled (`Mul:0`).

use std::collections::HashSet;

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::remove::remove_nodes;

pub struct RemoveNodes;

impl Transform for RemoveNodes {
    fn name(&self) -> &str {
        "remove_nodes"
    }

    fn summary(&self) -> &str {
        "splice out nodes of the given op types (op=Identity, ...), keeping control flow intact"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["op", "max_inputs"])
    }

    fn param_defaults(&self) -> &[(&str, &str)] {
        &[("max_inputs", "1")]
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let ops: HashSet<&str> = context
            .params
            .list("op")
            .iter()
            .map(String::as_str)
            .collect();
        if ops.is_empty() {
            return Err(
                context.error("give at least one op to remove, e.g. remove_nodes(op=Identity)")
            );
        }
        let max_inputs = usize::try_from(context.params.int("max_inputs", 1)?)
            .map_err(|_| context.error("max_inputs must not be negative"))?;
        let protected = context.protected_names();
        remove_nodes(graph, &ops, max_inputs, &protected);
        Ok(())
    }
}
