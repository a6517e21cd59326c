//! `obfuscate_names`: renames every node to a short generated name (`0`-`9`, `a`-`z`, `A`-`Z`,
//! then `10`, ...), keeping --inputs and --outputs, and rewrites every reference, ports and
//! control markers included. The function library is left as it is.
//!
//! Difference from TensorFlow's transform: names given with a port (`Mul:0`) still protect the
//! node; TensorFlow compares raw strings and renames it.

use std::collections::HashMap;

use super::{Transform, TransformContext};
use crate::error::Result;
use crate::graph::edit::rename_nodes;
use crate::proto::GraphDef;

pub struct ObfuscateNames;

const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

fn base62(mut n: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[n % DIGITS.len()]);
        n /= DIGITS.len();
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

impl Transform for ObfuscateNames {
    fn name(&self) -> &str {
        "obfuscate_names"
    }

    fn summary(&self) -> &str {
        "rename nodes to short generated names, keeping --inputs and --outputs"
    }

    fn apply(&self, graph: &mut GraphDef, context: &TransformContext<'_>) -> Result<()> {
        let protected = context.protected_names();
        let mut renames: HashMap<String, String> = HashMap::new();
        let mut counter = 0;
        for node in &graph.node {
            if protected.contains(&node.name) {
                continue;
            }
            let mut candidate = base62(counter);
            while protected.contains(&candidate) {
                counter += 1;
                candidate = base62(counter);
            }
            counter += 1;
            renames.insert(node.name.clone(), candidate);
        }
        rename_nodes(graph, &renames);
        Ok(())
    }
}
