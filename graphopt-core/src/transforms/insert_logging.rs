//! `insert_logging(op, prefix, show_op, show_name, message, first_n, summarize)`: puts a Print
//! after every matching node that something reads, so running the graph logs its values (what
//! `freeze_requantization_ranges` consumes). With neither `op` nor `prefix`, every node matches.
//!
//! See [`crate::rewrite::logging`] for where it differs from TensorFlow's transform.

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::proto::GraphDef;
use crate::rewrite::logging::{insert_logging, Logging};

pub struct InsertLogging;

impl Transform for InsertLogging {
    fn name(&self) -> &str {
        "insert_logging"
    }

    fn summary(&self) -> &str {
        "insert a Print after matching nodes (op=, prefix=) to log their values"
    }

    fn params(&self) -> Option<&[&str]> {
        Some(&[
            "op",
            "prefix",
            "show_op",
            "show_name",
            "message",
            "first_n",
            "summarize",
        ])
    }

    fn param_defaults(&self) -> &[(&str, &str)] {
        &[
            ("show_op", "false"),
            ("show_name", "false"),
            ("message", ""),
            ("first_n", "-1"),
            ("summarize", "1024"),
        ]
    }

    fn keeps_graph_on_error(&self) -> bool {
        // Parameters are read, and every Print asked of the budget, before the graph changes.
        true
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let ops = context.params.list("op");
        let prefixes = context.params.list("prefix");
        let show_op = context.params.bool("show_op", false)?;
        let show_name = context.params.bool("show_name", false)?;
        let message = context.params.string("message", "")?;
        let first_n = context.params.int("first_n", -1)?;
        let summarize = context.params.int("summarize", 1024)?;

        let logging = Logging {
            ops,
            prefixes,
            show_op,
            show_name,
            message,
            first_n,
            summarize,
        };
        insert_logging(graph, &logging)
    }
}
