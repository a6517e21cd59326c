//! Every evaluator kernel against TensorFlow's own results on per-op vectors
//! (tests/fixtures/generate_ops.py).

mod common;

use std::collections::BTreeMap;

use graphopt_core::eval::{self, Options};
use graphopt_core::io;
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
    let mut failures = Vec::new();
    let mut ops = std::collections::BTreeSet::new();
    let cases = index["cases"].as_array().unwrap();
    for case in cases {
        let k = case["case"].as_u64().unwrap();
        let node = case["node"].as_str().unwrap();
        let description = case["description"].as_str().unwrap();
        ops.insert(case["op"].as_str().unwrap().to_string());
        let outputs: Vec<u64> = case["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        let fetches: Vec<String> = outputs.iter().map(|j| format!("{node}:{j}")).collect();
        let result = eval::evaluate(&graph, &BTreeMap::new(), &fetches, Options::default());
        let values = match result {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("case {k} ({description}): {e}"));
                continue;
            }
        };
        for (j, value) in outputs.iter().zip(&values) {
            let theirs = &expected[format!("case_{k}/expected_{j}").as_str()];
            let (rtol, atol) = (
                case["rtol"].as_f64().unwrap(),
                case["atol"].as_f64().unwrap(),
            );
            if let Err(e) = compare(value, theirs, rtol, atol) {
                failures.push(format!("case {k} ({description}) output {j}: {e}"));
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
    assert!(
        cases.len() >= 200 && ops.len() >= 100,
        "{} cases over {} ops",
        cases.len(),
        ops.len()
    );
}
