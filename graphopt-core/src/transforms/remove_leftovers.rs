//! `remove_leftovers`: removes what computes nothing at inference: identity-like ops
//! (IdentityN, StopGradient, Snapshot, ...), same-type Casts, shape no-ops, control edges that
//! order nothing and the NoOps left waiting for nothing. See [`crate::rewrite::leftovers`].

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::leftovers::remove_leftovers;

pub struct RemoveLeftovers;

impl Transform for RemoveLeftovers {
    fn name(&self) -> &str {
        "remove_leftovers"
    }

    fn summary(&self) -> &str {
        "remove identity-like ops, same-type casts, shape no-ops, control edges that order nothing and idle NoOps"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        remove_leftovers(graph, &context.protected_names_or_ends(graph));
        Ok(())
    }
}
