//! What `graphopt summarize` reports: everything TensorFlow's `summarize_graph` prints (likely
//! inputs and outputs, variables, parameter counts, control edges, devices, op histogram, the
//! benchmark_model hint) plus file size and the largest constants, as a stable JSON document.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::budget;
use crate::dtype::{dtype_name, element_count, shape_dims};
use crate::error::one_line;
use crate::graph::{self, attrs, InputRef};
use crate::proto::{GraphDef, NodeDef, TensorProto};

/// How many constants `largest_constants` lists.
pub const LARGEST_CONSTANTS: usize = 10;

/// A placeholder or variable: name, element type and shape as the graph declares them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorDecl {
    pub name: String,
    pub op: String,
    /// TensorFlow's type name, e.g. `float`.
    pub dtype: String,
    /// `DataType` enum number.
    pub dtype_enum: i32,
    /// Dimensions (-1 unknown); `None` when the node has no shape attribute or the rank is unknown.
    pub shape: Option<Vec<i64>>,
    /// The shape attribute says the rank is unknown.
    pub unknown_rank: bool,
}

/// A node nothing consumes: a likely output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputDecl {
    pub name: String,
    pub op: String,
}

/// One op type and how many nodes use it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpCount {
    pub op: String,
    pub count: usize,
}

/// A constant and the bytes its value takes in the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConstantSize {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
    pub elements: u64,
    pub bytes: u64,
}

/// The summary of one graph. Field order and sorting are fixed, so the JSON is stable.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub file_size: Option<u64>,
    pub node_count: usize,
    pub function_count: usize,
    /// `Placeholder` nodes, as TensorFlow counts them.
    pub inputs: Vec<TensorDecl>,
    /// `Variable`/`VariableV2`/`VarHandleOp` nodes.
    pub variables: Vec<TensorDecl>,
    /// Nodes nothing consumes, except Const, Assign, NoOp and Placeholder.
    pub outputs: Vec<OutputDecl>,
    /// Elements in all `Const` values.
    pub const_parameters: u64,
    /// Elements in all variables' declared shapes.
    pub variable_parameters: u64,
    pub control_edges: usize,
    /// Nodes per non-empty device string.
    pub devices: BTreeMap<String, usize>,
    /// Op types of the main graph and function bodies, most used first (ties by name).
    pub op_counts: Vec<OpCount>,
    pub largest_constants: Vec<ConstantSize>,
    /// Arguments for TensorFlow's benchmark_model tool.
    pub benchmark_model_args: String,
}

/// Dimensions of a tensor value (a missing shape is a scalar).
fn tensor_dims(tensor: &TensorProto) -> Vec<i64> {
    tensor
        .tensor_shape
        .as_ref()
        .and_then(shape_dims)
        .unwrap_or_default()
}

fn tensor_decl(node: &NodeDef, type_attr: &str) -> TensorDecl {
    let shape = attrs::shape(node, "shape");
    let dtype = attrs::raw_type(node, type_attr).unwrap_or(0);
    TensorDecl {
        name: node.name.clone(),
        op: node.op.clone(),
        dtype: dtype_name(dtype),
        dtype_enum: dtype,
        shape: shape.and_then(shape_dims),
        unknown_rank: shape.is_some_and(|s| s.unknown_rank),
    }
}

/// Bytes a tensor value occupies in the file: its raw content, or its typed values.
fn tensor_bytes(t: &TensorProto) -> u64 {
    let typed = t.float_val.len() * 4
        + t.double_val.len() * 8
        + t.int_val.len() * 4
        + t.string_val.iter().map(|s| s.len()).sum::<usize>()
        + t.scomplex_val.len() * 4
        + t.int64_val.len() * 8
        + t.bool_val.len()
        + t.dcomplex_val.len() * 8
        + t.half_val.len() * 2
        + t.uint32_val.len() * 4
        + t.uint64_val.len() * 8
        + t.float8_val.len();
    (t.tensor_content.len() + typed) as u64
}

/// Summarizes `graph`; `file_size` is reported as given.
pub fn summarize(graph: &GraphDef, file_size: Option<u64>) -> Summary {
    let mut consumed: HashSet<&str> = HashSet::new();
    let mut control_edges = 0;
    for node in &graph.node {
        for input in &node.input {
            let parsed = InputRef::parse(input);
            if parsed.control {
                control_edges += 1;
            }
            consumed.insert(parsed.node);
        }
    }

    let mut inputs = Vec::new();
    let mut variables = Vec::new();
    let mut outputs = Vec::new();
    let mut const_parameters = 0u64;
    let mut variable_parameters = 0u64;
    let mut devices: BTreeMap<String, usize> = BTreeMap::new();
    let mut constants = Vec::new();
    for node in &graph.node {
        match node.op.as_str() {
            "Placeholder" => inputs.push(tensor_decl(node, "dtype")),
            "Variable" | "VariableV2" | "VarHandleOp" => {
                let decl = tensor_decl(node, "dtype");
                variable_parameters = variable_parameters
                    .saturating_add(decl.shape.as_deref().map_or(0, element_count));
                variables.push(decl);
            }
            "Const" => {
                if let Some(value) = attrs::tensor(node, "value") {
                    let dims = tensor_dims(value);
                    let elements = element_count(&dims);
                    const_parameters = const_parameters.saturating_add(elements);
                    constants.push(ConstantSize {
                        name: node.name.clone(),
                        dtype: dtype_name(value.dtype),
                        shape: dims,
                        elements,
                        bytes: tensor_bytes(value),
                    });
                }
            }
            _ => {}
        }
        if !consumed.contains(node.name.as_str())
            && !matches!(
                node.op.as_str(),
                "Const" | "Assign" | "NoOp" | "Placeholder"
            )
        {
            outputs.push(OutputDecl {
                name: node.name.clone(),
                op: node.op.clone(),
            });
        }
        if !node.device.is_empty() {
            *devices.entry(node.device.clone()).or_default() += 1;
        }
    }

    let mut histogram: BTreeMap<&str, usize> = BTreeMap::new();
    let library_nodes = graph
        .library
        .iter()
        .flat_map(|lib| lib.function.iter())
        .flat_map(|f| f.node_def.iter());
    for node in graph.node.iter().chain(library_nodes) {
        *histogram.entry(node.op.as_str()).or_default() += 1;
    }
    let mut op_counts: Vec<OpCount> = histogram
        .into_iter()
        .map(|(op, count)| OpCount {
            op: op.to_string(),
            count,
        })
        .collect();
    op_counts.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.op.cmp(&b.op)));

    constants.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    constants.truncate(LARGEST_CONSTANTS);

    let benchmark_model_args = benchmark_args(&inputs, &variables, &outputs);
    Summary {
        file_size,
        node_count: graph.node.len(),
        function_count: graph.library.as_ref().map_or(0, |l| l.function.len()),
        inputs,
        variables,
        outputs,
        const_parameters,
        variable_parameters,
        control_edges,
        devices,
        op_counts,
        largest_constants: constants,
        benchmark_model_args,
    }
}

fn benchmark_args(
    inputs: &[TensorDecl],
    variables: &[TensorDecl],
    outputs: &[OutputDecl],
) -> String {
    let layers: Vec<&TensorDecl> = inputs.iter().chain(variables).collect();
    let names: Vec<&str> = layers.iter().map(|d| d.name.as_str()).collect();
    let types: Vec<&str> = layers.iter().map(|d| d.dtype.as_str()).collect();
    let shapes: Vec<String> = layers
        .iter()
        .map(|d| match &d.shape {
            Some(dims) => dims
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
            None => String::new(),
        })
        .collect();
    let output_names: Vec<&str> = outputs.iter().map(|o| o.name.as_str()).collect();
    format!(
        "--input_layer={} --input_layer_type={} --input_layer_shape={} --output_layer={}",
        names.join(","),
        types.join(","),
        shapes.join(":"),
        output_names.join(",")
    )
}

/// TensorFlow's compact count: below 1000 as is, then `k`, `M`, `B`, `T` with two decimals.
pub fn human_readable(value: u64) -> String {
    if value < 1000 {
        return value.to_string();
    }
    let units = ['k', 'M', 'B', 'T'];
    let mut scale = 1000.0;
    let mut unit = 0;
    while (value as f64) >= scale * 1000.0 && unit + 1 < units.len() {
        scale *= 1000.0;
        unit += 1;
    }
    format!(
        "{:.2}{}",
        value as f64 / scale,
        units.get(unit).copied().unwrap_or('T')
    )
}

fn shape_text(decl: &TensorDecl) -> String {
    match (&decl.shape, decl.unknown_rank) {
        (_, true) => "<unknown>".into(),
        (None, false) => "None".into(),
        (Some(dims), false) => {
            let dims: Vec<String> = dims
                .iter()
                .map(|&d| {
                    if d < 0 {
                        "?".to_string()
                    } else {
                        d.to_string()
                    }
                })
                .collect();
            format!("[{}]", dims.join(","))
        }
    }
}

impl Summary {
    /// The report in summarize_graph's layout, with graphopt's additions at the end. Names
    /// from the graph (and `graph_path`) are escaped as error lines escape them
    /// ([`one_line`]): a name holding a line break or a terminal escape sequence cannot break
    /// a line of the report or drive the terminal.
    pub fn to_text(&self, graph_path: &str) -> String {
        let mut out = String::new();
        let decls = |out: &mut String, what: &str, none: &str, list: &[TensorDecl]| {
            if list.is_empty() {
                let _ = writeln!(out, "{none}");
                return;
            }
            let _ = write!(out, "Found {} {what}: ", list.len());
            for d in list {
                let _ = write!(
                    out,
                    "(name={}, type={}({}), shape={}) ",
                    one_line(&d.name),
                    one_line(&d.dtype),
                    d.dtype_enum,
                    shape_text(d)
                );
            }
            out.push('\n');
        };
        decls(
            &mut out,
            "possible inputs",
            "No inputs spotted.",
            &self.inputs,
        );
        decls(
            &mut out,
            "variables",
            "No variables spotted.",
            &self.variables,
        );
        if self.outputs.is_empty() {
            out.push_str("No outputs spotted.\n");
        } else {
            let _ = write!(out, "Found {} possible outputs: ", self.outputs.len());
            for o in &self.outputs {
                let _ = write!(out, "(name={}, op={}) ", one_line(&o.name), one_line(&o.op));
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "Found {} ({}) const parameters, {} ({}) variable parameters, and {} control_edges",
            self.const_parameters,
            human_readable(self.const_parameters),
            self.variable_parameters,
            human_readable(self.variable_parameters),
            self.control_edges
        );
        for (device, count) in &self.devices {
            let _ = writeln!(
                out,
                "{count} nodes assigned to device '{}'",
                one_line(device)
            );
        }
        let ops: Vec<String> = self
            .op_counts
            .iter()
            .map(|c| format!("{} {}", c.count, one_line(&c.op)))
            .collect();
        let _ = writeln!(out, "Op types used: {}", ops.join(", "));
        let _ = writeln!(
            out,
            "To use with tensorflow/tools/benchmark:benchmark_model try these arguments:"
        );
        let _ = writeln!(
            out,
            "bazel run tensorflow/tools/benchmark:benchmark_model -- --graph={} --show_flops {}",
            one_line(graph_path),
            one_line(&self.benchmark_model_args)
        );
        if let Some(size) = self.file_size {
            let _ = writeln!(out, "File size: {size} bytes ({})", budget::size(size));
        }
        let _ = writeln!(
            out,
            "Nodes: {} in the main graph, {} function(s) in the library",
            self.node_count, self.function_count
        );
        if !self.largest_constants.is_empty() {
            out.push_str("Largest constants:\n");
            for c in &self.largest_constants {
                let dims: Vec<String> = c.shape.iter().map(ToString::to_string).collect();
                let _ = writeln!(
                    out,
                    "  {} ({}[{}]): {}",
                    one_line(&c.name),
                    one_line(&c.dtype),
                    dims.join(","),
                    budget::size(c.bytes)
                );
            }
        }
        out
    }
}

/// An upper bound on the memory a summary of `graph` takes with its reports: the
/// [`Summary`] (names, ops, the benchmark arguments), its text or JSON, and, with `structure`,
/// the [`structure`] listing, every string counted as its escaped form (a control character
/// is written as an escape sequence up to six times its size) as many times as the reports
/// hold it at once. Names are all a graph file can hold, so a file of long names of control
/// characters made reports of 15 to 25 times its size (a 50 MB graph: 894 MB, and 1.3 GB as
/// JSON, over its 400 MB budget); callers ask the budget for this first.
pub fn report_memory(graph: &GraphDef, structure: bool) -> u64 {
    fn escaped(text: &str) -> u64 {
        let special = text
            .chars()
            .filter(|&c| c.is_control() || !c.is_ascii() || c == '"' || c == '\\')
            .count();
        (text.len() as u64).saturating_add(6u64.saturating_mul(special as u64))
    }
    let library_nodes = graph
        .library
        .iter()
        .flat_map(|lib| lib.function.iter())
        .flat_map(|f| f.node_def.iter());
    let mut total = 0u64;
    for node in graph.node.iter() {
        let inputs = node
            .input
            .iter()
            .fold(0u64, |sum, input| sum.saturating_add(escaped(input) + 2));
        // The summary and the benchmark arguments hold a name raw, the report and JSON
        // escaped twice (the possible outputs and the arguments) and once more while the
        // arguments are escaped; the listing adds the name, op and inputs once more each.
        let mut node_cost = escaped(&node.name)
            .saturating_mul(6)
            .saturating_add(escaped(&node.op).saturating_mul(3))
            .saturating_add(escaped(&node.device).saturating_mul(2))
            .saturating_add(192);
        // Declared shapes: each dimension a number in the summary, a string while the report
        // joins them, a line of the JSON.
        let shape_dims = match node.op.as_str() {
            "Placeholder" | "Variable" | "VariableV2" | "VarHandleOp" => {
                attrs::shape(node, "shape").map_or(0, |s| s.dim.len() as u64)
            }
            "Const" => attrs::tensor(node, "value")
                .and_then(|t| t.tensor_shape.as_ref())
                .map_or(0, |s| s.dim.len() as u64),
            _ => 0,
        };
        node_cost =
            node_cost.saturating_add(shape_dims.saturating_mul(if structure { 192 } else { 128 }));
        if structure {
            node_cost = node_cost
                .saturating_add(escaped(&node.name))
                .saturating_add(escaped(&node.op))
                .saturating_add(inputs.saturating_mul(3));
        }
        total = total.saturating_add(node_cost);
    }
    // Function bodies only count their ops.
    for node in library_nodes {
        total = total.saturating_add(escaped(&node.op).saturating_add(64));
    }
    total
}

/// `--print_structure`: nodes in execution order as `name (op): [inputs]`, with a short
/// description of each constant's value, one line per node (names escaped as in
/// [`Summary::to_text`]). Falls back to file order if the graph has a cycle.
pub fn structure(graph: &GraphDef) -> String {
    let order = graph::execution_order(graph).unwrap_or_else(|_| (0..graph.node.len()).collect());
    let mut out = String::new();
    for node in order.into_iter().filter_map(|i| graph.node.get(i)) {
        let _ = write!(
            out,
            "{} ({}): [{}]",
            one_line(&node.name),
            one_line(&node.op),
            one_line(&node.input.join(", "))
        );
        if node.op == "Const" {
            if let Some(value) = attrs::tensor(node, "value") {
                let dims: Vec<String> =
                    tensor_dims(value).iter().map(ToString::to_string).collect();
                let _ = write!(
                    out,
                    ", value=Tensor<type: {} shape: [{}]>",
                    dtype_name(value.dtype),
                    dims.join(",")
                );
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{attr_value, AttrValue, DataType};

    #[test]
    fn sizes_are_printed_in_binary_units() {
        let mut weights = crate::graph::test_nodes::node("w", "Const", &[]);
        weights.attr.insert(
            "dtype".into(),
            AttrValue {
                value: Some(attr_value::Value::Type(DataType::DtFloat as i32)),
            },
        );
        weights.attr.insert(
            "value".into(),
            AttrValue {
                value: Some(attr_value::Value::Tensor(Box::new(TensorProto {
                    dtype: DataType::DtFloat as i32,
                    tensor_content: vec![0; 1536].into(),
                    ..Default::default()
                }))),
            },
        );
        let graph = GraphDef {
            node: vec![weights],
            ..Default::default()
        };
        let text = summarize(&graph, Some(3 << 20)).to_text("g.pb");
        assert!(
            text.contains("File size: 3145728 bytes (3.0 MiB)"),
            "{text}"
        );
        assert!(text.contains("  w (float[]): 1.5 KiB"), "{text}");
    }
}
