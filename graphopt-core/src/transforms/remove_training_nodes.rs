//! `remove_training_nodes(pin=keras_learning_phase)`: removes what training leaves in a graph
//! that inference does not need, keeping every result the same (see
//! [`crate::rewrite::training`]).
//!
//! 1. Training-flag placeholders — bool Placeholder or PlaceholderWithDefault whose name
//!    contains a `pin` value (default `keras_learning_phase`) — become Const `false`.
//! 2. Assert nodes go, with the control edges to them.
//! 3. `tf.cond`s whose predicate is now constant are resolved: the taken branch is wired
//!    through, the other branch is deleted, and each Merge becomes an Identity of its live
//!    input. Dropout behind a learning-phase cond disappears this way.
//! 4. Control edges from nodes that cannot have side effects (nothing stateful among them or
//!    their ancestors) are dropped, except those that place a source node inside a loop or
//!    branch. Guards like the one `tf.debugging.Assert` builds are then unreferenced.
//!
//! Run `strip_unused_nodes` (or the standard pipeline) afterwards to delete what became
//! unreachable. Queue and iterator input pipelines are cut by `strip_unused_nodes` at the
//! declared --inputs.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::training::remove_training_nodes;

pub struct RemoveTrainingNodes;

impl Transform for RemoveTrainingNodes {
    fn name(&self) -> &str {
        "remove_training_nodes"
    }

    fn summary(&self) -> &str {
        "pin training flags to false, drop Asserts, resolve constant tf.conds, drop pure control edges"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&["pin"])
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let mut pins: Vec<String> = context.params.list("pin").to_vec();
        if pins.is_empty() {
            pins.push("keras_learning_phase".into());
        }
        let protected = context.protected_names();
        remove_training_nodes(graph, &pins, &protected);
        Ok(())
    }
}
