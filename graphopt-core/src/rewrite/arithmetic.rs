//! Arithmetic simplification: the rewrites of Grappler's arithmetic optimizer, each keeping
//! results within floating-point rounding (1e-5 relative) of the original on real models'
//! values (the exceptions are below).
//!
//! [`simplify_arithmetic`] applies, until nothing changes:
//! - neutral elements: `x + 0`, `0 + x`, `x - 0`, `BiasAdd(x, 0)`, `x * 1`, `1 * x`, `x / 1`,
//!   and a Transpose by the identity permutation become `x` (only when the constant cannot
//!   change `x`'s shape by broadcasting, which a partly known shape can show: a `[1, 1, 1, 3]`
//!   constant against `[?, 224, 224, 3]`);
//! - `Neg(Neg(x))` becomes `x`;
//! - chains of constant operands fold together: `(x * c1) * c2` -> `x * (c1 * c2)` and
//!   `(x ± c1) ± c2` -> `x + (±c1 ± c2)`, when the inner node has no other reader;
//! - common factors hoisted out of sums, as Grappler's HoistCommonFactorOutOfAggregation:
//!   `Add(Mul(x, a), Mul(x, b))` -> `Mul(x, Add(a, b))`, an AddN of such Muls likewise, and
//!   `Add(Div(a, x), Div(b, x))` -> `Div(Add(a, b), x)` (floating point only: integer
//!   division does not distribute). Only when every Mul or Div has the sum as its one reader
//!   and the other factors all have the same static shape (so no broadcast changes the result's
//!   shape); constant other factors are summed into one constant.
//!
//! - concatenations simplified ([`concat`](mod@super::concat)): nested ones along one axis
//!   merged, an elementwise unary op on every part moved after the concatenation.
//!
//! Nodes become Identities here; leftover removal splices them out.
//!
//! Where "within rounding" stops holding, as for Grappler's same rewrites: re-associating a
//! chain rounds differently, so `(x + 1e8) - 1e8` becomes exactly `x` where TensorFlow's
//! float32 gives `x` rounded to a multiple of 8, and `(x * 1e30) * 1e-30` becomes `x` where
//! TensorFlow overflows to infinity for large `x`; a hoisted factor turns `x*a + x*b` with
//! `x*a = inf` and `x*b = -inf` (NaN) into `x * (a + b)`; and `x + 0` keeps a `-0.0` that
//! TensorFlow's add would make `+0.0`. Each needs constants or values near the ends of the
//! float range, or constants that cancel: on the graphs of real models the results stay within
//! 1e-5 relative (the fixtures' and the five Keras CNNs' outputs are checked against
//! TensorFlow's).

use std::collections::{HashMap, HashSet};

use crate::analysis::geometry::broadcast_shape;
use crate::analysis::shapes;
use crate::eval::binary_arithmetic;
use crate::graph::edit::{
    bypassed_controls, const_node, const_value, control_inputs, data_inputs, unique_name, Uses,
};
use crate::graph::InputRef;
use crate::proto::{attr_value, AttrValue, DataType, GraphDef, NodeDef};
use crate::rewrite::concat;
use crate::rewrite::remove::remove_unread;
use crate::tensor::Tensor;

/// Every element equals `target` (numeric tensors only).
fn all_equal(t: &Tensor, target: f64) -> bool {
    match t.float_values() {
        Some(mut values) => values.all(|x| x == target),
        None => t
            .integers()
            .is_some_and(|v| v.into_iter().all(|i| i as f64 == target)),
    }
}

/// The other factors of a hoisted common factor, summed.
enum Hoisted {
    /// All constant: their sum, computed now.
    Constant(Tensor),
    /// A new AddV2 (two) or AddN (more) of these.
    Sum(Vec<String>),
}

/// What a node becomes.
enum Rewrite {
    /// `op` (Mul, or the Divs' op) of the common factor and the hoisted sum of the other
    /// factors (the sum first for a division).
    Hoist {
        op: String,
        common: String,
        sum: Hoisted,
        /// The control inputs of the Muls or Divs, unread afterwards.
        controls: Vec<String>,
    },
    /// An Identity of this input.
    Identity(String),
    /// The same op on `x` and a new constant (the folded chain), dropping the inner node.
    Chain {
        op: &'static str,
        x: String,
        constant: Tensor,
        /// The inner node of the chain, unread afterwards.
        inner: String,
    },
}

/// Simplifies the arithmetic of `graph` (see the module docs); `protected` nodes keep their
/// op. Returns how many nodes were rewritten.
pub fn simplify_arithmetic(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    let mut total = 0;
    // Each round rewrites at least one node of a finite graph; the bound is a guard.
    for _ in 0..graph.node.len().max(1) {
        let rewritten = one_round(graph, protected) + concat::simplify_concats(graph, protected);
        if rewritten == 0 {
            break;
        }
        total += rewritten;
    }
    total
}

fn one_round(graph: &mut GraphDef, protected: &HashSet<String>) -> usize {
    let known = shapes::infer_graph(graph);
    let shape_of = |input: &str| -> Option<Vec<usize>> {
        let parsed = InputRef::parse(input);
        known.get(parsed.node)?.get(parsed.port as usize)?.clone()
    };
    let uses = Uses::new(graph);
    // A Const named in --inputs or --outputs is not taken as constant: an input's value is
    // whatever is fed.
    let constant = |input: &str| -> Option<Tensor> {
        if InputRef::parse(input).port != 0 {
            return None;
        }
        let node = graph.node.get(uses.producer(input)?)?;
        if protected.contains(&node.name) {
            return None;
        }
        const_value(node)
    };
    let mut rewrites: Vec<(usize, Rewrite)> = Vec::new();
    let mut claimed: HashSet<usize> = HashSet::new();
    for (i, node) in graph.node.iter().enumerate() {
        if protected.contains(&node.name) || claimed.contains(&i) {
            continue;
        }
        let inputs = data_inputs(node);
        let op = node.op.as_str();
        // x OP c with c constant: (x, c, c is second).
        let operands = || -> Option<(&str, Tensor, bool)> {
            let [a, b] = inputs.as_slice() else {
                return None;
            };
            match (constant(a), constant(b)) {
                (None, Some(c)) => Some((*a, c, true)),
                (Some(c), None) => Some((*b, c, false)),
                _ => None,
            }
        };
        // The constant leaves x's shape alone.
        let keeps_shape = |x: &str, c: &Tensor| {
            c.shape().is_empty()
                || shape_of(x).is_some_and(|s| broadcast_shape(&s, c.shape()).ok() == Some(s))
                || known
                    .partial_of(x)
                    .is_some_and(|s| broadcast_keeps(s, c.shape()))
        };
        let rewrite = match op {
            "Add" | "AddV2" | "Sub" | "BiasAdd" | "Mul" | "Div" | "RealDiv" => {
                operands().and_then(|(x, c, second)| {
                    let neutral = match op {
                        "Add" | "AddV2" => all_equal(&c, 0.0),
                        "Sub" | "BiasAdd" => second && all_equal(&c, 0.0),
                        "Mul" => all_equal(&c, 1.0),
                        _ => second && all_equal(&c, 1.0),
                    };
                    if neutral && (op == "BiasAdd" || keeps_shape(x, &c)) {
                        return Some(Rewrite::Identity(x.to_string()));
                    }
                    chain(graph, &uses, protected, op, x, &c, second, &constant).map(|(p, r)| {
                        claimed.insert(p);
                        r
                    })
                })
            }
            "Transpose" => {
                let perm = inputs
                    .get(1)
                    .and_then(|p| constant(p))
                    .and_then(|p| p.integers());
                perm.filter(|p| p.iter().enumerate().all(|(k, &v)| v == k as i64))
                    .map(|_| Rewrite::Identity(inputs[0].to_string()))
            }
            "Neg" => inputs
                .first()
                .and_then(|&x| {
                    let p = uses.producer(x)?;
                    let inner = graph.node.get(p)?;
                    let private = uses.count(p) == 1 && !protected.contains(&inner.name);
                    (inner.op == "Neg" && private && InputRef::parse(x).port == 0)
                        .then(|| data_inputs(inner).first().map(|s| s.to_string()))
                        .flatten()
                })
                .map(Rewrite::Identity),
            _ => None,
        };
        // A sum of terms sharing a factor, where nothing above applied. Only sums aggregate:
        // `x*a - x*b` or `(x*a) * (x*b)` are no sums of terms.
        let rewrite = rewrite.or_else(|| {
            if !matches!(op, "Add" | "AddV2" | "AddN") {
                return None;
            }
            let terms = Terms {
                graph,
                uses: &uses,
                protected,
                claimed: &claimed,
                shape_of: &shape_of,
                constant: &constant,
            };
            let (taken, rewrite) = hoist(&terms, node)?;
            claimed.extend(taken);
            Some(rewrite)
        });
        if let Some(rewrite) = rewrite {
            claimed.insert(i);
            rewrites.push((i, rewrite));
        }
    }
    let count = rewrites.len();
    apply(graph, rewrites, protected);
    count
}

/// `(x op1 c1) op2 c2` with the inner node private: the outer node takes `x` and the combined
/// constant. Returns the inner node's index and the rewrite.
#[allow(clippy::too_many_arguments)]
fn chain(
    graph: &GraphDef,
    uses: &Uses,
    protected: &HashSet<String>,
    op: &str,
    inner_input: &str,
    c2: &Tensor,
    c2_second: bool,
    constant: &dyn Fn(&str) -> Option<Tensor>,
) -> Option<(usize, Rewrite)> {
    let additive = |op: &str| matches!(op, "Add" | "AddV2" | "Sub");
    if !(op == "Mul" || additive(op)) || (op == "Sub" && !c2_second) {
        return None;
    }
    let p = uses.producer(inner_input)?;
    let inner = graph.node.get(p)?;
    if uses.count(p) != 1
        || uses.reads_other_outputs(p)
        || protected.contains(&inner.name)
        || InputRef::parse(inner_input).port != 0
    {
        return None;
    }
    let same_family = (op == "Mul" && inner.op == "Mul") || (additive(op) && additive(&inner.op));
    if !same_family {
        return None;
    }
    let [a, b] = data_inputs(inner)[..] else {
        return None;
    };
    let (x, c1, c1_second) = match (constant(a), constant(b)) {
        (None, Some(c)) => (a, c, true),
        (Some(c), None) => (b, c, false),
        _ => return None,
    };
    if inner.op == "Sub" && !c1_second {
        return None; // c - x: the sign of x would flip
    }
    if c1.dtype() != c2.dtype() {
        return None;
    }
    let combined = if op == "Mul" {
        binary_arithmetic("Mul", &c1, c2).ok()?
    } else {
        // x + s1*c1 + s2*c2 with s = -1 for a subtracted constant.
        let signed = |op: &str, c: &Tensor| -> Option<Tensor> {
            if op == "Sub" {
                binary_arithmetic("Sub", &zero_like(c)?, c).ok()
            } else {
                Some(c.clone())
            }
        };
        binary_arithmetic("AddV2", &signed(&inner.op, &c1)?, &signed(op, c2)?).ok()?
    };
    let new_op = if op == "Mul" { "Mul" } else { "AddV2" };
    Some((
        p,
        Rewrite::Chain {
            op: new_op,
            x: x.to_string(),
            constant: combined,
            inner: inner.name.clone(),
        },
    ))
}

/// Broadcasting a constant of shape `c` against a tensor of partly known shape `x` leaves
/// `x`'s shape as it is: `c` has no more dimensions, and each of its dimensions (aligned from
/// the last) is 1 or equals `x`'s, known. (An unknown batch dimension of `x` against a 1 of
/// `c` stays what it is, so a per-channel constant needs only the channel count known.)
fn broadcast_keeps(x: &[shapes::Dim], c: &[usize]) -> bool {
    c.len() <= x.len()
        && c.iter()
            .rev()
            .zip(x.iter().rev())
            .all(|(&c, &x)| c == 1 || x == Some(c))
}

/// What [`hoist`] looks at.
struct Terms<'a> {
    graph: &'a GraphDef,
    uses: &'a Uses,
    protected: &'a HashSet<String>,
    /// Nodes another rewrite of this round has taken.
    claimed: &'a HashSet<usize>,
    shape_of: &'a dyn Fn(&str) -> Option<Vec<usize>>,
    constant: &'a dyn Fn(&str) -> Option<Tensor>,
}

/// `input` as `node:port`, so `x` and `x:0` compare equal.
fn canonical(input: &str) -> String {
    let parsed = InputRef::parse(input);
    format!("{}:{}", parsed.node, parsed.port)
}

/// Grappler's HoistCommonFactorOutOfAggregation on sum `node` (Add, AddV2 or AddN): every term
/// a Mul (or every term a Div) read only by the sum, all sharing one factor (for Divs, the
/// denominator), the other factors of one static shape. Returns the terms' indices and the
/// rewrite of the sum.
fn hoist(t: &Terms<'_>, node: &NodeDef) -> Option<(Vec<usize>, Rewrite)> {
    let inputs = data_inputs(node);
    if inputs.len() < 2 {
        return None;
    }
    let t_attr = node.attr.get("T");
    let mut terms = Vec::with_capacity(inputs.len());
    let mut factors: Vec<[&str; 2]> = Vec::with_capacity(inputs.len());
    let mut term_op: Option<&str> = None;
    for input in &inputs {
        let p = t.uses.producer(input)?;
        let term = t.graph.node.get(p)?;
        let op = term.op.as_str();
        if !matches!(op, "Mul" | "RealDiv" | "Div") || term_op.is_some_and(|o| o != op) {
            return None;
        }
        term_op = Some(op);
        // Read by the sum alone, once: the term goes with the rewrite.
        if InputRef::parse(input).port != 0
            || t.uses.count(p) != 1
            || t.uses.reads_other_outputs(p)
            || t.protected.contains(&term.name)
            || t.claimed.contains(&p)
            || term.attr.get("T") != t_attr
        {
            return None;
        }
        let [a, b] = data_inputs(term)[..] else {
            return None;
        };
        terms.push(p);
        factors.push([a, b]);
    }
    let op = term_op?;
    let dividing = op != "Mul";
    if dividing {
        // Integer division does not distribute over a sum.
        let float = matches!(
            crate::graph::attrs::dtype(node, "T"),
            Some(DataType::DtFloat | DataType::DtDouble | DataType::DtHalf | DataType::DtBfloat16)
        );
        if !float {
            return None;
        }
    }
    // The common factor: the denominator of every Div, or an operand of every Mul (exactly
    // one candidate, as in Grappler: `x*a + x*a` has two and is left alone).
    let candidates: Vec<&str> = if dividing {
        vec![factors[0][1]]
    } else {
        let [a, b] = factors[0];
        if canonical(a) == canonical(b) {
            vec![a]
        } else {
            vec![a, b]
        }
    };
    let shared: Vec<&str> = candidates
        .into_iter()
        .filter(|c| {
            let c = canonical(c);
            factors
                .iter()
                .all(|[a, b]| canonical(b) == c || (!dividing && canonical(a) == c))
        })
        .collect();
    let [common] = shared[..] else {
        return None;
    };
    let common_key = canonical(common);
    // The other factor of each term.
    let others: Vec<&str> = factors
        .iter()
        .map(|&[a, b]| {
            if dividing || canonical(b) == common_key {
                a
            } else {
                b
            }
        })
        .collect();
    // One static shape for all: then `common op sum` has the shape of every term, and so of
    // the sum it replaces, whatever the common factor's shape.
    let values: Vec<Option<Tensor>> = others.iter().map(|o| (t.constant)(o)).collect();
    let shapes: Vec<Option<Vec<usize>>> = others
        .iter()
        .zip(&values)
        .map(|(o, v)| {
            v.as_ref()
                .map(|v| v.shape().to_vec())
                .or_else(|| (t.shape_of)(o))
        })
        .collect();
    let first = shapes.first()?.as_ref()?;
    if shapes.iter().any(|s| s.as_ref() != Some(first)) {
        return None;
    }
    let sum = if values.iter().all(Option::is_some) {
        let mut values = values.into_iter().flatten();
        let mut total = values.next()?;
        for v in values {
            if v.dtype() != total.dtype() {
                return None;
            }
            total = binary_arithmetic("AddV2", &total, &v).ok()?;
        }
        Hoisted::Constant(total)
    } else {
        Hoisted::Sum(others.iter().map(|o| o.to_string()).collect())
    };
    let mut controls: Vec<String> = Vec::new();
    for &p in &terms {
        for c in control_inputs(&t.graph.node[p]) {
            if !controls.contains(&c) {
                controls.push(c);
            }
        }
    }
    Some((
        terms,
        Rewrite::Hoist {
            op: op.to_string(),
            common: common.to_string(),
            sum,
            controls,
        },
    ))
}

/// A scalar zero of `t`'s type.
fn zero_like(t: &Tensor) -> Option<Tensor> {
    binary_arithmetic("Sub", t, t)
        .ok()
        .and_then(|z| Tensor::from_proto(&z.to_proto()).ok())
}

fn apply(graph: &mut GraphDef, rewrites: Vec<(usize, Rewrite)>, protected: &HashSet<String>) {
    if rewrites.is_empty() {
        return;
    }
    let mut taken: HashSet<String> = graph.node.iter().map(|n| n.name.clone()).collect();
    let mut new_consts: HashMap<usize, NodeDef> = HashMap::new();
    let mut bypassed = HashSet::new();
    let by_name = crate::graph::owned_name_index(graph);
    for (i, rewrite) in rewrites {
        // What the node waited for through what it stops reading, it keeps waiting for (a
        // hoist keeps its terms' own).
        let inherited = match &rewrite {
            Rewrite::Identity(kept) | Rewrite::Chain { x: kept, .. } => {
                bypassed_controls(graph, &by_name, i, kept)
            }
            Rewrite::Hoist { .. } => Vec::new(),
        };
        let node = &mut graph.node[i];
        // What the node read before may be unread after (the neutral constant, the inner Neg).
        bypassed.extend(
            data_inputs(node)
                .iter()
                .map(|input| crate::graph::node_name(input).to_string()),
        );
        let controls = control_inputs(node);
        let t = node.attr.get("T").cloned();
        match rewrite {
            Rewrite::Identity(x) => {
                node.op = "Identity".into();
                node.input = vec![x];
                node.attr.clear();
                if let Some(t) = t {
                    node.attr.insert("T".into(), t);
                }
            }
            Rewrite::Hoist {
                op,
                common,
                sum,
                controls: term_controls,
            } => {
                let name = match sum {
                    Hoisted::Constant(value) => {
                        let name =
                            unique_name(&format!("{}/hoisted_factor", node.name), &mut taken);
                        new_consts.insert(i, const_node(name.clone(), node.device.clone(), &value));
                        name
                    }
                    Hoisted::Sum(factors) => {
                        let name = unique_name(&format!("{}/hoisted_sum", node.name), &mut taken);
                        let mut sum = NodeDef {
                            name: name.clone(),
                            op: if factors.len() == 2 { "AddV2" } else { "AddN" }.into(),
                            device: node.device.clone(),
                            ..Default::default()
                        };
                        if factors.len() != 2 {
                            sum.attr.insert(
                                "N".into(),
                                AttrValue {
                                    value: Some(attr_value::Value::I(factors.len() as i64)),
                                },
                            );
                        }
                        if let Some(t) = t.clone() {
                            sum.attr.insert("T".into(), t);
                        }
                        sum.input = factors;
                        new_consts.insert(i, sum);
                        name
                    }
                };
                node.input = if op == "Mul" {
                    vec![common, name]
                } else {
                    vec![name, common]
                };
                node.op = op;
                node.attr.clear();
                if let Some(t) = t {
                    node.attr.insert("T".into(), t);
                }
                for c in term_controls {
                    if !controls.contains(&c) {
                        node.input.push(c);
                    }
                }
            }
            Rewrite::Chain {
                op,
                x,
                constant,
                inner,
            } => {
                bypassed.insert(inner);
                let name = unique_name(&format!("{}/folded_constant", node.name), &mut taken);
                new_consts.insert(i, const_node(name.clone(), node.device.clone(), &constant));
                node.op = op.into();
                node.input = vec![x, name];
                node.attr.clear();
                if let Some(t) = t {
                    node.attr.insert("T".into(), t);
                }
            }
        }
        node.input.extend(controls);
        node.input.extend(inherited);
    }
    // Bypassed nodes, the inner nodes of folded chains and the constants they read are unread.
    let old = std::mem::take(&mut graph.node);
    for (i, node) in old.into_iter().enumerate() {
        if let Some(c) = new_consts.remove(&i) {
            graph.node.push(c);
        }
        graph.node.push(node);
    }
    remove_unread(graph, bypassed, protected);
}
