//! Functional control flow — While/StatelessWhile, If/StatelessIf, Case/StatelessCase — and
//! function calls ((Stateful)PartitionedCall), run by
//! calling their library functions: each function becomes a small graph (Placeholders feeding
//! a call that is inlined), built once per evaluation (nested calls share the cache, and no
//! function graph copies the library) and evaluated per call.
//!
//! Calls nest at most [`MAX_CALL_DEPTH`] deep (a function calling itself is an error, not a
//! stack overflow); their work and memory count against the caller's budget.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use super::{evaluate_in, kernels, Options};
use crate::proto::{attr_value, AttrValue, FunctionDefLibrary, GraphDef, NodeDef};
use crate::tensor::{Data, Tensor};

/// A function ready to evaluate: its graph and the names to feed and fetch.
pub struct FunctionGraph {
    graph: GraphDef,
    args: Vec<String>,
    results: Vec<String>,
}

/// Function graphs by name, built once per evaluation.
pub type Cache = HashMap<String, Rc<FunctionGraph>>;

fn func_name(node: &NodeDef, attr: &str) -> Option<String> {
    match node.attr.get(attr)?.value.as_ref()? {
        attr_value::Value::Func(f) => Some(f.name.clone()),
        _ => None,
    }
}

fn build(library: Option<&FunctionDefLibrary>, name: &str) -> Result<FunctionGraph, String> {
    let function = library
        .and_then(|l| {
            l.function
                .iter()
                .find(|f| f.signature.as_ref().is_some_and(|s| s.name == name))
        })
        .ok_or_else(|| format!("function '{name}' is not in the graph's library"))?;
    let signature = function
        .signature
        .as_ref()
        .ok_or("function without a signature")?;
    let mut graph = GraphDef::default();
    let mut call = NodeDef {
        name: "call".into(),
        op: "PartitionedCall".into(),
        ..Default::default()
    };
    let mut args = Vec::new();
    let mut tin = Vec::new();
    for (k, arg) in signature.input_arg.iter().enumerate() {
        let placeholder = format!("arg_{k}");
        graph.node.push(crate::graph::edit::placeholder(
            placeholder.clone(),
            arg.r#type,
            None,
        ));
        call.input.push(placeholder.clone());
        args.push(placeholder);
        tin.push(arg.r#type);
    }
    let tout: Vec<i32> = signature.output_arg.iter().map(|a| a.r#type).collect();
    let list = |types: Vec<i32>| AttrValue {
        value: Some(attr_value::Value::List(Box::new(attr_value::ListValue {
            r#type: types,
            ..Default::default()
        }))),
    };
    call.attr.insert("Tin".into(), list(tin));
    call.attr.insert("Tout".into(), list(tout.clone()));
    let body = crate::graph::inline::inline_call(&call, function).map_err(|e| e.to_string())?;
    let memory: u64 = body.iter().map(crate::graph::node_memory).sum();
    crate::budget::alloc(memory).map_err(|e| e.to_string())?;
    graph.node.extend(body);
    let results = (0..tout.len()).map(|k| format!("call:{k}")).collect();
    Ok(FunctionGraph {
        graph,
        args,
        results,
    })
}

/// Calls nested deeper than this are an error (a function calling itself), not a stack
/// overflow.
pub const MAX_CALL_DEPTH: usize = 64;

/// How the depth error starts; it is passed up unwrapped (one line, not one level per call).
pub const TOO_DEEP: &str = "function calls nested more than";

thread_local! {
    static CALL_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn call(
    library: Option<&FunctionDefLibrary>,
    name: &str,
    inputs: &[Tensor],
    options: Options,
    cache: &mut Cache,
) -> Result<Vec<Tensor>, String> {
    let depth = CALL_DEPTH.with(|d| d.get());
    if depth >= MAX_CALL_DEPTH {
        return Err(format!(
            "{TOO_DEEP} {MAX_CALL_DEPTH} deep at '{name}'; is a function recursive?"
        ));
    }
    CALL_DEPTH.with(|d| d.set(depth + 1));
    // Restored even if the call unwinds.
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            CALL_DEPTH.with(|d| d.set(self.0));
        }
    }
    let _restore = Restore(depth);
    call_once(library, name, inputs, options, cache)
}

fn call_once(
    library: Option<&FunctionDefLibrary>,
    name: &str,
    inputs: &[Tensor],
    options: Options,
    cache: &mut Cache,
) -> Result<Vec<Tensor>, String> {
    let function = match cache.get(name) {
        Some(function) => Rc::clone(function),
        None => {
            let built = Rc::new(build(library, name)?);
            cache.insert(name.to_string(), Rc::clone(&built));
            built
        }
    };
    if function.args.len() != inputs.len() {
        return Err(format!(
            "'{name}' takes {} inputs, got {}",
            function.args.len(),
            inputs.len()
        ));
    }
    let feeds: BTreeMap<String, Tensor> = function
        .args
        .iter()
        .cloned()
        .zip(inputs.iter().cloned())
        .collect();
    evaluate_in(
        &function.graph,
        library,
        cache,
        None,
        &feeds,
        &function.results,
        options,
    )
    .map_err(|e| {
        if e.message.starts_with(TOO_DEEP) {
            e.message
        } else {
            format!("in '{name}': {e}")
        }
    })
}

/// TensorFlow's truth of a condition (If, While): a scalar is its value (a number is true
/// when nonzero, a string when non-empty); any other tensor is true when it has elements,
/// whatever they are.
fn truth(t: &Tensor) -> Result<bool, String> {
    if !t.shape().is_empty() {
        return Ok(!t.is_empty());
    }
    if let Some(b) = kernels::scalar_bool(t) {
        return Ok(b);
    }
    if let Data::Str(a) = t.data() {
        return Ok(a.iter().any(|s| !s.is_empty()));
    }
    match crate::eval::cast_tensor(t, crate::proto::DataType::DtBool).map(Tensor::into_data) {
        Ok(Data::Bool(a)) if a.len() == 1 => Ok(a.iter().any(|v| *v)),
        _ => Err(format!(
            "a condition of type {:?} has no truth value",
            t.dtype()
        )),
    }
}

/// Runs the functional control-flow op `node` on `inputs`.
pub fn run(
    graph: Option<&FunctionDefLibrary>,
    node: &NodeDef,
    inputs: Vec<Tensor>,
    options: Options,
    cache: &mut Cache,
) -> Result<Vec<Tensor>, String> {
    match node.op.as_str() {
        "While" | "StatelessWhile" => {
            let cond = func_name(node, "cond").ok_or("While without a cond function")?;
            let body = func_name(node, "body").ok_or("While without a body function")?;
            let mut vars = inputs;
            for _ in 0..options.max_iterations {
                let c = call(graph, &cond, &vars, options, cache)?;
                if !truth(c.first().ok_or("cond returned nothing")?)? {
                    return Ok(vars);
                }
                vars = call(graph, &body, &vars, options, cache)?;
            }
            Err(format!(
                "the loop ran more than {} iterations",
                options.max_iterations
            ))
        }
        "PartitionedCall" | "StatefulPartitionedCall" => {
            let f = func_name(node, "f").ok_or("a call without a function 'f'")?;
            call(graph, &f, &inputs, options, cache)
        }
        "If" | "StatelessIf" => {
            let (cond, args) = inputs.split_first().ok_or("If without a condition")?;
            let branch = if truth(cond)? {
                "then_branch"
            } else {
                "else_branch"
            };
            let f = func_name(node, branch).ok_or("If without a branch function")?;
            call(graph, &f, args, options, cache)
        }
        _ => {
            let (index, args) = inputs.split_first().ok_or("Case without a branch index")?;
            let index = crate::eval::cast_tensor(index, crate::proto::DataType::DtInt64)
                .ok()
                .and_then(|t| match t.into_data() {
                    Data::I64(a) => a.iter().next().copied(),
                    _ => None,
                })
                .ok_or("Case needs a scalar integer branch index")?;
            let branches: Vec<String> =
                match node.attr.get("branches").and_then(|a| a.value.as_ref()) {
                    Some(attr_value::Value::List(l)) => {
                        l.func.iter().map(|f| f.name.clone()).collect()
                    }
                    _ => Vec::new(),
                };
            // Out-of-range indices take the last branch, as in TensorFlow.
            let chosen = usize::try_from(index)
                .ok()
                .filter(|&i| i < branches.len())
                .unwrap_or(branches.len().saturating_sub(1));
            let f = branches.get(chosen).ok_or("Case without branches")?;
            call(graph, f, args, options, cache)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(data: Data) -> Tensor {
        Tensor::from_data(data)
    }

    /// TensorFlow 2.21's If: a non-scalar condition is true when it has elements, so [False]
    /// and [0] take the then branch (graphopt took the else branch); strings are true when
    /// non-empty.
    #[test]
    fn conditions_are_true_as_in_tensorflow() {
        let cases = [
            (tensor(Data::Bool(ndarray::arr1(&[false]).into_dyn())), true),
            (tensor(Data::I32(ndarray::arr1(&[0]).into_dyn())), true),
            (
                tensor(Data::F32(ndarray::arr2(&[[0.0f32]]).into_dyn())),
                true,
            ),
            (
                tensor(Data::Bool(ndarray::ArrayD::from_elem(
                    ndarray::IxDyn(&[0]),
                    true,
                ))),
                false,
            ),
            (tensor(Data::F32(ndarray::arr0(0.0f32).into_dyn())), false),
            (tensor(Data::F32(ndarray::arr0(f32::NAN).into_dyn())), true),
            (tensor(Data::I64(ndarray::arr0(-3i64).into_dyn())), true),
            (tensor(Data::Bool(ndarray::arr0(false).into_dyn())), false),
            (
                tensor(Data::Str(ndarray::arr0(bytes::Bytes::new()).into_dyn())),
                false,
            ),
            (
                tensor(Data::Str(
                    ndarray::arr0(bytes::Bytes::from_static(b"a")).into_dyn(),
                )),
                true,
            ),
        ];
        for (t, expected) in cases {
            assert_eq!(truth(&t), Ok(expected), "{:?}", t.data());
        }
    }
}
