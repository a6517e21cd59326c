//! Every evaluator kernel against TensorFlow's own results on per-op vectors
//! (tests/fixtures/generate_ops.py), every op in the kernel table covered by them, and the
//! README's kernel, vector and op counts equal to what is compared here.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use graphopt_core::eval::{self, kernels, Gemm, KernelContext, Options};
use graphopt_core::io;
use graphopt_core::proto::{GraphDef, NodeDef};
use graphopt_core::tensor::{Data, Tensor};

fn as_f64(t: &Tensor) -> Option<Vec<f64>> {
    let values = match t.data() {
        Data::F32(a) => a.iter().map(|&v| f64::from(v)).collect(),
        Data::F64(a) => a.iter().copied().collect(),
        Data::F16(a) => a.iter().map(|v| f64::from(v.to_f32())).collect(),
        Data::BF16(a) => a.iter().map(|v| f64::from(v.to_f32())).collect(),
        _ => return None,
    };
    Some(values)
}

fn compare(ours: &Tensor, theirs: &Tensor, rtol: f64, atol: f64) -> Result<(), String> {
    if ours.dtype() != theirs.dtype() {
        return Err(format!(
            "dtype {:?}, TensorFlow {:?}",
            ours.dtype(),
            theirs.dtype()
        ));
    }
    if ours.shape() != theirs.shape() {
        return Err(format!(
            "shape {:?}, TensorFlow {:?}",
            ours.shape(),
            theirs.shape()
        ));
    }
    match (as_f64(ours), as_f64(theirs)) {
        (Some(a), Some(b)) => {
            for (i, (x, y)) in a.iter().zip(&b).enumerate() {
                let same =
                    (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= atol + rtol * y.abs();
                if !same {
                    return Err(format!("element {i}: {x}, TensorFlow {y}"));
                }
            }
            Ok(())
        }
        _ if ours == theirs => Ok(()),
        _ => Err(format!(
            "values differ: {:?} vs TensorFlow {:?}",
            ours.data(),
            theirs.data()
        )),
    }
}

/// Runs `node`'s kernel on its evaluated data inputs. For ops without outputs (NoOp), which the
/// evaluator never fetches, so a case cannot reach them through `eval::evaluate`.
fn run_kernel(graph: &GraphDef, node: &NodeDef) -> Result<Vec<Tensor>, String> {
    let data_inputs: Vec<String> = node
        .input
        .iter()
        .filter(|i| !i.starts_with('^'))
        .cloned()
        .collect();
    let options = Options::default();
    let values = eval::evaluate(graph, &BTreeMap::new(), &data_inputs, options)
        .map_err(|e| e.to_string())?;
    let kernel = kernels::lookup(&node.op).ok_or("no kernel")?;
    let ctx = KernelContext {
        node,
        limits: options.limits,
        gemm: options.gemm,
    };
    let inputs: Vec<&Tensor> = values.iter().collect();
    eval::with_limits(options.limits, || kernel(&ctx, &inputs)).map_err(|e| e.to_string())
}

#[test]
fn kernels_match_tensorflow_vectors() {
    let dir = common::fixtures().join("ops");
    let graph = io::read_graph(dir.join("op_vectors.pb")).unwrap().graph;
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("op_vectors.json")).unwrap())
            .unwrap();
    let expected: BTreeMap<&str, Tensor> = graph
        .node
        .iter()
        .filter(|n| n.name.contains("/expected_"))
        .map(|n| {
            let value = n.attr["value"].value.as_ref().unwrap();
            let graphopt_core::proto::attr_value::Value::Tensor(t) = value else {
                panic!()
            };
            (n.name.as_str(), Tensor::from_proto(t).unwrap())
        })
        .collect();
    let nodes: BTreeMap<&str, &NodeDef> = graph.node.iter().map(|n| (n.name.as_str(), n)).collect();
    let mut failures = Vec::new();
    let mut ops = BTreeSet::new();
    let mut compared = 0;
    let cases = index["cases"].as_array().unwrap();
    for case in cases {
        let k = case["case"].as_u64().unwrap();
        let node = case["node"].as_str().unwrap();
        let op = case["op"].as_str().unwrap();
        let description = case["description"].as_str().unwrap();
        ops.insert(op);
        if nodes.get(node).map(|n| n.op.as_str()) != Some(op) {
            failures.push(format!("case {k} ({description}): no {op} node '{node}'"));
            continue;
        }
        let outputs: Vec<u64> = case["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        if outputs.is_empty() {
            // TensorFlow ran the op as a target; its kernel must run and, like TensorFlow's,
            // produce nothing.
            match run_kernel(&graph, nodes[node]) {
                Ok(values) if values.is_empty() => {}
                Ok(values) => failures.push(format!(
                    "case {k} ({description}): {} outputs, TensorFlow none",
                    values.len()
                )),
                Err(e) => failures.push(format!("case {k} ({description}): {e}")),
            }
            continue;
        }
        let fetches: Vec<String> = outputs.iter().map(|j| format!("{node}:{j}")).collect();
        // Both matrix products: the portable one folding uses, the fast one verify and the
        // eval feature use.
        for gemm in [Gemm::Portable, Gemm::Fast] {
            let options = Options {
                gemm,
                ..Options::default()
            };
            let values = match eval::evaluate(&graph, &BTreeMap::new(), &fetches, options) {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!("case {k} ({description}, {gemm:?}): {e}"));
                    continue;
                }
            };
            for (j, value) in outputs.iter().zip(&values) {
                let theirs = &expected[format!("case_{k}/expected_{j}").as_str()];
                compared += 1;
                let (rtol, atol) = (
                    case["rtol"].as_f64().unwrap(),
                    case["atol"].as_f64().unwrap(),
                );
                if let Err(e) = compare(value, theirs, rtol, atol) {
                    failures.push(format!(
                        "case {k} ({description}, {gemm:?}) output {j}: {e}"
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from TensorFlow:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // The vectors cover exactly the kernel table.
    let registered = kernels::registered_ops();
    let untested: Vec<&str> = registered
        .iter()
        .copied()
        .filter(|op| !ops.contains(op))
        .collect();
    assert!(
        untested.is_empty(),
        "{} of {} ops in the kernel table have no TensorFlow vectors \
         (add cases to tests/fixtures/generate_ops.py): {}",
        untested.len(),
        registered.len(),
        untested.join(", ")
    );
    let unregistered: Vec<&str> = ops
        .iter()
        .copied()
        .filter(|op| !registered.contains(op))
        .collect();
    assert!(
        unregistered.is_empty(),
        "vectors for ops that are not in the kernel table: {}",
        unregistered.join(", ")
    );

    // Exactly the counts the index states, and every expected tensor in the file compared.
    assert_eq!(
        cases.len() as u64,
        index["case_count"].as_u64().unwrap(),
        "cases in op_vectors.json"
    );
    assert_eq!(
        ops.len() as u64,
        index["op_count"].as_u64().unwrap(),
        "ops in op_vectors.json"
    );
    assert_eq!(
        compared,
        2 * expected.len(),
        "expected tensors compared, once per GEMM"
    );

    // The README's figures are these counts: the kernel table's size, the vectors compared
    // and the distinct ops they cover.
    let readme_kernels: usize = common::readme::figure("Reference evaluator: {} kernels incl.");
    assert_eq!(
        readme_kernels,
        registered.len(),
        "README's kernel count vs the kernel table"
    );
    let readme = common::readme::figures(
        "every kernel checked against TensorFlow on {} per-op vectors over {} ops, \
         every registered kernel covered",
    );
    assert_eq!(
        readme[0].parse::<usize>().unwrap(),
        cases.len(),
        "README's per-op vector count vs the cases compared"
    );
    assert_eq!(
        readme[1].parse::<usize>().unwrap(),
        ops.len(),
        "README's count of ops with vectors vs the distinct ops compared"
    );
}
