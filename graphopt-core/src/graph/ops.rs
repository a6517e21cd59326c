//! What graphopt knows about TensorFlow ops without linking TensorFlow: how many outputs an op
//! has and which attributes it cannot do without (those with no default in its OpDef), from a
//! table and, for the output count of ops outside it, TensorFlow's bundled OpDefs. Unknown ops
//! are passed through unchecked.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message;

use crate::proto::{attr_value, AttrValue, NodeDef, OpDef, OpList};

/// TensorFlow's OpDefs (descriptions dropped) for the ops graphopt knows, written by
/// tests/fixtures/dump_op_defs.py from TensorFlow 2.21.
const OP_DEFS: &[u8] = include_bytes!("op_defs.pb");

/// TensorFlow's definition of `op`, if graphopt carries it.
pub fn op_def(op: &str) -> Option<&'static OpDef> {
    static DEFS: OnceLock<HashMap<String, OpDef>> = OnceLock::new();
    DEFS.get_or_init(|| {
        OpList::decode(OP_DEFS)
            .map(|list| list.op.into_iter().map(|d| (d.name.clone(), d)).collect())
            .unwrap_or_default()
    })
    .get(op)
}

/// The default the bundled OpDef of `op` gives its attribute `name`, if any.
pub fn attr_default(op: &str, name: &str) -> Option<&'static AttrValue> {
    op_def(op)?
        .attr
        .iter()
        .find(|a| a.name == name)?
        .default_value
        .as_ref()
}

/// `node`'s attribute `name`, or its OpDef's default when the node leaves it out (as
/// TensorFlow's exporters do for defaults such as MaxPool's `T`).
pub fn attr_or_default<'a>(node: &'a NodeDef, name: &str) -> Option<&'a AttrValue> {
    node.attr.get(name).or_else(|| attr_default(&node.op, name))
}

/// Whether every type and string attribute of `node` is one that op `to`'s OpDef allows (an
/// attribute or OpDef graphopt does not carry restricts nothing): a rewrite that gives a node
/// another op, or copies attributes onto one, checks that TensorFlow will take them.
pub fn values_allowed(node: &NodeDef, to: &str) -> bool {
    let Some(def) = op_def(to) else {
        return true;
    };
    def.attr.iter().all(|a| {
        let allowed = a.allowed_values.as_ref().and_then(|v| match &v.value {
            Some(attr_value::Value::List(list)) => Some(list),
            _ => None,
        });
        match (
            allowed,
            node.attr.get(&a.name).and_then(|v| v.value.as_ref()),
        ) {
            (Some(allowed), Some(attr_value::Value::Type(t))) if !allowed.r#type.is_empty() => {
                allowed.r#type.contains(t)
            }
            (Some(allowed), Some(attr_value::Value::S(s))) if !allowed.s.is_empty() => {
                allowed.s.contains(s)
            }
            _ => true,
        }
    })
}

/// TF1's lowered control-flow primitives, with the Ref forms of those that have one.
pub const CONTROL_FLOW_PRIMITIVES: &[&str] = &[
    "Switch",
    "RefSwitch",
    "Merge",
    "RefMerge",
    "Enter",
    "RefEnter",
    "Exit",
    "RefExit",
    "NextIteration",
    "RefNextIteration",
    "LoopCond",
];

/// Ops that must never be merged or moved even though their OpDef says stateless, besides the
/// [`CONTROL_FLOW_PRIMITIVES`] (whose identity is their frame and iteration): the trigger and
/// the graph inputs.
const TRIGGER_AND_INPUTS: &[&str] = &[
    "ControlTrigger",
    "Placeholder",
    "PlaceholderWithDefault",
    "PlaceholderV2",
];

/// Whether two nodes of `op` with equal inputs and attributes are interchangeable: the op's
/// OpDef (bundled from TensorFlow) says it is not stateful and takes no ref input (AssignAdd
/// writes its ref variable though TensorFlow does not mark it stateful), it is not a
/// TensorArray op (their handles carry state) or an in-place update, and it is not a
/// control-flow primitive or a graph input. Ops graphopt has no OpDef for count as stateful.
pub fn is_pure(op: &str) -> bool {
    !CONTROL_FLOW_PRIMITIVES.contains(&op)
        && !TRIGGER_AND_INPUTS.contains(&op)
        && !op.starts_with("TensorArray")
        && !IN_PLACE_UPDATES.contains(&op)
        && op_def(op)
            .is_some_and(|def| !def.is_stateful && !def.input_arg.iter().any(|arg| arg.is_ref))
}

/// Ops that write into a regular (non-ref) tensor input.
const IN_PLACE_UPDATES: &[&str] = &["InplaceUpdate", "InplaceAdd", "InplaceSub"];

/// How an op's output count is determined.
#[derive(Debug, Clone, Copy)]
enum Outputs {
    Fixed(usize),
    /// The integer attribute with this name.
    IntAttr(&'static str),
    /// The length of the type-list attribute with this name.
    TypeListAttr(&'static str),
}

struct OpInfo {
    name: &'static str,
    outputs: Outputs,
    required_attrs: &'static [&'static str],
}

const fn op(name: &'static str, outputs: usize, required_attrs: &'static [&'static str]) -> OpInfo {
    OpInfo {
        name,
        outputs: Outputs::Fixed(outputs),
        required_attrs,
    }
}

const fn op_n(
    name: &'static str,
    outputs: Outputs,
    required_attrs: &'static [&'static str],
) -> OpInfo {
    OpInfo {
        name,
        outputs,
        required_attrs,
    }
}

const T: &[&str] = &["T"];
const CONV: &[&str] = &["T", "strides", "padding"];
const POOL: &[&str] = &["ksize", "strides", "padding"];

/// Sorted by name (checked by a test) so lookups can binary-search.
static OPS: &[OpInfo] = &[
    op("Abs", 1, T),
    op("Add", 1, T),
    op("AddN", 1, &["N", "T"]),
    op("AddV2", 1, T),
    op("All", 1, &[]),
    op("Any", 1, &[]),
    op("ArgMax", 1, T),
    op("ArgMin", 1, T),
    op("Assert", 0, &["T"]),
    op("Assign", 1, T),
    op("AvgPool", 1, &["ksize", "strides", "padding", "T"]),
    op("BatchMatMulV2", 1, T),
    op(
        "BatchNormWithGlobalNormalization",
        1,
        &["T", "variance_epsilon", "scale_after_normalization"],
    ),
    op("BatchToSpaceND", 1, T),
    op("BiasAdd", 1, T),
    op("BroadcastTo", 1, T),
    op("Cast", 1, &["SrcT", "DstT"]),
    op("CheckNumerics", 1, &["T", "message"]),
    op("Concat", 1, &["N", "T"]),
    op("ConcatV2", 1, &["N", "T"]),
    op("Const", 1, &["value", "dtype"]),
    op("Conv2D", 1, CONV),
    op("DepthwiseConv2dNative", 1, CONV),
    op("Dequantize", 1, T),
    op("Div", 1, T),
    op_n(
        "DynamicPartition",
        Outputs::IntAttr("num_partitions"),
        &["num_partitions", "T"],
    ),
    op("Elu", 1, T),
    op("Enter", 1, &["T", "frame_name"]),
    op("Equal", 1, T),
    op("Erf", 1, T),
    op("Exit", 1, T),
    op("Exp", 1, T),
    op("ExpandDims", 1, T),
    op("Fill", 1, T),
    op("FloorDiv", 1, T),
    op("FloorMod", 1, T),
    op("FusedBatchNorm", 5, T),
    op("FusedBatchNormV2", 5, &["T", "U"]),
    op("FusedBatchNormV3", 6, &["T", "U"]),
    op("GatherNd", 1, &["Tparams", "Tindices"]),
    op("GatherV2", 1, &["Tparams", "Tindices", "Taxis"]),
    op("Greater", 1, T),
    op("GreaterEqual", 1, T),
    op("Identity", 1, T),
    op_n("IdentityN", Outputs::TypeListAttr("T"), &["T"]),
    op("LeakyRelu", 1, T),
    op("Less", 1, T),
    op("LessEqual", 1, T),
    op("Log", 1, T),
    op("LogSoftmax", 1, T),
    op("LogicalAnd", 1, &[]),
    op("LogicalNot", 1, &[]),
    op("LogicalOr", 1, &[]),
    op("LoopCond", 1, &[]),
    op("MatMul", 1, T),
    op("Max", 1, T),
    op("MaxPool", 1, POOL),
    op("Maximum", 1, T),
    op("Mean", 1, T),
    op("Merge", 2, &["T", "N"]),
    op("Min", 1, T),
    op("Minimum", 1, T),
    op("MirrorPad", 1, &["T", "mode"]),
    op("Mul", 1, T),
    op("Neg", 1, T),
    op("NextIteration", 1, T),
    op("NoOp", 0, &[]),
    op("NotEqual", 1, T),
    op("OneHot", 1, &["T"]),
    op("OnesLike", 1, T),
    op("Pack", 1, &["N", "T"]),
    op("Pad", 1, T),
    op("PadV2", 1, T),
    op_n(
        "PartitionedCall",
        Outputs::TypeListAttr("Tout"),
        &["Tin", "Tout", "f"],
    ),
    op("Placeholder", 1, &["dtype"]),
    op("PlaceholderWithDefault", 1, &["dtype", "shape"]),
    op("Pow", 1, T),
    op("Prod", 1, T),
    op("Range", 1, &[]),
    op("Rank", 1, T),
    op("ReadVariableOp", 1, &["dtype"]),
    op("RealDiv", 1, T),
    op("Relu", 1, T),
    op("Relu6", 1, T),
    op("Reshape", 1, T),
    op("ResizeBilinear", 1, T),
    op("Rsqrt", 1, T),
    op("Select", 1, T),
    op("SelectV2", 1, T),
    op("Selu", 1, T),
    op("Shape", 1, T),
    op_n("ShapeN", Outputs::IntAttr("N"), &["N", "T"]),
    op("Sigmoid", 1, T),
    op("Size", 1, T),
    op("Slice", 1, &["T", "Index"]),
    op("Snapshot", 1, T),
    op("Softmax", 1, T),
    op("Softplus", 1, T),
    op("SpaceToBatchND", 1, T),
    op_n("Split", Outputs::IntAttr("num_split"), &["num_split", "T"]),
    op_n("SplitV", Outputs::IntAttr("num_split"), &["num_split", "T"]),
    op("Sqrt", 1, T),
    op("Square", 1, T),
    op("SquaredDifference", 1, T),
    op("Squeeze", 1, T),
    op_n(
        "StatefulPartitionedCall",
        Outputs::TypeListAttr("Tout"),
        &["Tin", "Tout", "f"],
    ),
    op("StopGradient", 1, T),
    op("StridedSlice", 1, &["T", "Index"]),
    op("Sub", 1, T),
    op("Sum", 1, T),
    op("Switch", 2, T),
    op("Tanh", 1, T),
    op("Tile", 1, T),
    op("Transpose", 1, T),
    op_n("Unpack", Outputs::IntAttr("num"), &["num", "T"]),
    op("VarHandleOp", 1, &["dtype", "shape"]),
    op("VariableV2", 1, &["shape", "dtype"]),
    op("ZerosLike", 1, T),
];

fn lookup(op: &str) -> Option<&'static OpInfo> {
    OPS.binary_search_by(|info| info.name.cmp(op))
        .ok()
        .and_then(|i| OPS.get(i))
}

/// Number of outputs of `node` if graphopt knows its op and the attributes that decide it: from
/// the table above, else from the op's bundled OpDef.
pub fn output_count(node: &NodeDef) -> Option<usize> {
    let Some(info) = lookup(&node.op) else {
        return op_def(&node.op).and_then(|def| op_def_output_count(node, def));
    };
    match info.outputs {
        Outputs::Fixed(n) => Some(n),
        Outputs::IntAttr(attr) => match node.attr.get(attr)?.value.as_ref()? {
            attr_value::Value::I(n) => usize::try_from(*n).ok(),
            _ => None,
        },
        Outputs::TypeListAttr(attr) => match node.attr.get(attr)?.value.as_ref()? {
            attr_value::Value::List(list) => Some(list.r#type.len()),
            _ => None,
        },
    }
}

/// Number of outputs `def` gives `node`: one per output argument, a list argument's length
/// from the node's attribute (or the OpDef's default for it).
fn op_def_output_count(node: &NodeDef, def: &OpDef) -> Option<usize> {
    output_arg_counts(node, def)?
        .into_iter()
        .try_fold(0usize, |sum, (_, count)| sum.checked_add(count))
}

/// Each output argument of `def` on `node`, in order: its name and how many tensors it holds.
fn output_arg_counts<'d>(node: &NodeDef, def: &'d OpDef) -> Option<Vec<(&'d str, usize)>> {
    let attr = |name: &str| {
        node.attr.get(name).or_else(|| {
            def.attr
                .iter()
                .find(|a| a.name == name)
                .and_then(|a| a.default_value.as_ref())
        })
    };
    def.output_arg
        .iter()
        .map(|arg| {
            let count = if !arg.number_attr.is_empty() {
                match attr(&arg.number_attr)?.value.as_ref()? {
                    attr_value::Value::I(n) => usize::try_from(*n).ok()?,
                    _ => return None,
                }
            } else if !arg.type_list_attr.is_empty() {
                match attr(&arg.type_list_attr)?.value.as_ref()? {
                    attr_value::Value::List(list) => list.r#type.len(),
                    _ => return None,
                }
            } else {
                1
            };
            Some((arg.name.as_str(), count))
        })
        .collect()
}

/// Function-body notation, from the op's bundled OpDef: the flat output port that
/// `node:arg:index` names, `None` for an op without one or an argument it lacks.
pub fn port_of_output_arg(node: &NodeDef, arg: &str, index: usize) -> Option<usize> {
    let mut offset = 0usize;
    for (name, count) in output_arg_counts(node, op_def(&node.op)?)? {
        if name == arg {
            return (index < count).then(|| offset.checked_add(index)).flatten();
        }
        offset = offset.checked_add(count)?;
    }
    None
}

/// The inverse of [`port_of_output_arg`]: the output argument and index flat port `port` of
/// `node` is, from the op's bundled OpDef.
pub fn output_arg_of_port(node: &NodeDef, port: usize) -> Option<(&'static str, usize)> {
    let mut offset = 0usize;
    for (name, count) in output_arg_counts(node, op_def(&node.op)?)? {
        let end = offset.checked_add(count)?;
        if port < end {
            return Some((name, port - offset));
        }
        offset = end;
    }
    None
}

/// The dtype of output `port` of `node`, from its op's bundled OpDef: the argument's fixed
/// type, or the type attribute it names (the node's, else the OpDef's default). `None` for an
/// op graphopt has no definition of. An op's output need not have the type of its `T`
/// (Equal's is bool, Shape's is `out_type`).
pub fn output_type(node: &NodeDef, port: usize) -> Option<crate::proto::DataType> {
    let (name, index) = output_arg_of_port(node, port)?;
    let arg = op_def(&node.op)?
        .output_arg
        .iter()
        .find(|a| a.name == name)?;
    let raw = if arg.r#type != 0 {
        arg.r#type
    } else if !arg.type_attr.is_empty() {
        match attr_or_default(node, &arg.type_attr)?.value.as_ref()? {
            attr_value::Value::Type(t) => *t,
            _ => return None,
        }
    } else {
        match attr_or_default(node, &arg.type_list_attr)?.value.as_ref()? {
            attr_value::Value::List(list) => *list.r#type.get(index)?,
            _ => return None,
        }
    };
    crate::proto::DataType::try_from(raw).ok()
}

/// The first attribute a known op requires that `node` lacks.
pub fn missing_required_attr(node: &NodeDef) -> Option<&'static str> {
    lookup(&node.op)?
        .required_attrs
        .iter()
        .copied()
        .find(|attr| !node.attr.contains_key(*attr))
}

/// Whether graphopt has a description of `op`.
pub fn is_known(op: &str) -> bool {
    lookup(op).is_some()
}

/// Output arguments of ops with more than one, in order: (name, how many tensors).
fn output_args(node: &NodeDef) -> Option<Vec<(&'static str, usize)>> {
    let list_len = |attr: &str| -> usize {
        match node.attr.get(attr).and_then(|a| a.value.as_ref()) {
            Some(attr_value::Value::I(n)) => usize::try_from(*n).unwrap_or(0),
            Some(attr_value::Value::List(l)) => l.r#type.len(),
            _ => 0,
        }
    };
    Some(match node.op.as_str() {
        "FusedBatchNorm" | "FusedBatchNormV2" => vec![
            ("y", 1),
            ("batch_mean", 1),
            ("batch_variance", 1),
            ("reserve_space_1", 1),
            ("reserve_space_2", 1),
        ],
        "FusedBatchNormV3" => vec![
            ("y", 1),
            ("batch_mean", 1),
            ("batch_variance", 1),
            ("reserve_space_1", 1),
            ("reserve_space_2", 1),
            ("reserve_space_3", 1),
        ],
        "Switch" | "RefSwitch" => vec![("output_false", 1), ("output_true", 1)],
        "Merge" | "RefMerge" => vec![("output", 1), ("value_index", 1)],
        "Unique" => vec![("y", 1), ("idx", 1)],
        "TopKV2" => vec![("values", 1), ("indices", 1)],
        "Split" | "SplitV" => vec![("output", list_len("num_split"))],
        "Unpack" => vec![("output", list_len("num"))],
        "DynamicPartition" => vec![("outputs", list_len("num_partitions"))],
        "ShapeN" => vec![("output", list_len("N"))],
        "IdentityN" => vec![("output", list_len("T"))],
        "PartitionedCall" | "StatefulPartitionedCall" => vec![("output", list_len("Tout"))],
        _ => return None,
    })
}

/// The flat output port of `node` for function-body notation `node:arg:index`: from the op's
/// bundled OpDef, else from graphopt's own table; ops neither describes (a call of a library
/// function by name) are taken to have a single output argument.
pub fn output_port(node: &NodeDef, arg: &str, index: usize) -> Option<usize> {
    if op_def(&node.op).is_some() {
        return port_of_output_arg(node, arg, index);
    }
    let Some(args) = output_args(node) else {
        return Some(index);
    };
    let mut offset = 0;
    for (name, count) in args {
        if name == arg {
            return (index < count.max(1)).then_some(offset + index);
        }
        offset += count;
    }
    None
}

/// Binary elementwise ops that broadcast (the evaluator has a kernel for each).
pub const ELEMENTWISE_BINARY: &[&str] = &[
    "Add",
    "AddV2",
    "Sub",
    "Mul",
    "RealDiv",
    "Div",
    "DivNoNan",
    "MulNoNan",
    "Maximum",
    "Minimum",
    "Pow",
    "SquaredDifference",
    "FloorDiv",
    "FloorMod",
    "TruncateDiv",
    "TruncateMod",
    "Atan2",
    "BitwiseAnd",
    "BitwiseOr",
    "BitwiseXor",
];
/// Comparisons and logical binary ops (broadcasting, bool output).
pub const COMPARISONS: &[&str] = &[
    "Equal",
    "NotEqual",
    "Less",
    "LessEqual",
    "Greater",
    "GreaterEqual",
    "LogicalAnd",
    "LogicalOr",
];
/// Elementwise unary ops.
pub const UNARY: &[&str] = &[
    "Neg",
    "Abs",
    "Sqrt",
    "Rsqrt",
    "Square",
    "Exp",
    "Expm1",
    "Log",
    "Log1p",
    "Tanh",
    "Sigmoid",
    "Erf",
    "Erfc",
    "Relu",
    "Relu6",
    "Elu",
    "Selu",
    "LeakyRelu",
    "Softplus",
    "Softsign",
    "Reciprocal",
    "Inv",
    "Floor",
    "Ceil",
    "Round",
    "Rint",
    "Sign",
    "Sin",
    "Cos",
    "Tan",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Acosh",
    "Atanh",
    "LogicalNot",
    "Invert",
];
/// Ops that pass their first input through unchanged at inference.
pub const IDENTITIES: &[&str] = &[
    "Identity",
    "StopGradient",
    "Snapshot",
    "PreventGradient",
    "EnsureShape",
    "PlaceholderWithDefault",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique() {
        for pair in OPS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} >= {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn split_outputs_follow_num_split() {
        let mut node = NodeDef {
            op: "Split".into(),
            ..Default::default()
        };
        assert_eq!(output_count(&node), None);
        node.attr.insert(
            "num_split".into(),
            crate::proto::AttrValue {
                value: Some(attr_value::Value::I(3)),
            },
        );
        assert_eq!(output_count(&node), Some(3));
        assert_eq!(missing_required_attr(&node), Some("T"));
    }

    fn int_attr(n: i64) -> crate::proto::AttrValue {
        crate::proto::AttrValue {
            value: Some(attr_value::Value::I(n)),
        }
    }

    /// Ops outside the table take their output count from their OpDef; DynamicPartition from
    /// the table, which `table_agrees_with_op_defs` checks against its OpDef.
    #[test]
    fn output_counts_of_ops_outside_the_table_follow_their_op_defs() {
        let node = |op: &str| NodeDef {
            op: op.into(),
            ..Default::default()
        };
        assert_eq!(output_count(&node("TopKV2")), Some(2));
        assert_eq!(output_count(&node("Atan")), Some(1));
        assert_eq!(output_count(&node("NotAnOp")), None);
        let mut partition = node("DynamicPartition");
        assert_eq!(output_count(&partition), None);
        partition.attr.insert("num_partitions".into(), int_attr(1));
        assert_eq!(output_count(&partition), Some(1));
        assert_eq!(output_port(&partition, "outputs", 0), Some(0));
        assert_eq!(output_port(&partition, "outputs", 1), None);
    }

    /// The functional and partitioning ops graphopt handles carry their OpDefs: the stateful
    /// forms are never merged, the stateless ones may be.
    #[test]
    fn functional_ops_have_op_defs_and_statefulness() {
        for op in [
            "While",
            "If",
            "Case",
            "DynamicPartition",
            "DynamicStitch",
            "ParallelDynamicStitch",
        ] {
            assert!(op_def(op).is_some(), "{op}");
        }
        for op in ["While", "If", "Case"] {
            assert!(!is_pure(op), "{op}");
            assert!(is_pure(&format!("Stateless{op}")), "Stateless{op}");
        }
        assert!(is_pure("DynamicStitch"));
        // Not stateful by their OpDefs, yet they write their ref or handle input.
        for op in [
            "AssignAdd",
            "AssignSub",
            "Assign",
            "TensorArrayWriteV2",
            "TensorArrayCloseV2",
        ] {
            assert!(!is_pure(op), "{op}");
        }
        assert!(is_pure("Conv2D") && is_pure("Relu"));
    }

    /// The table says what TensorFlow's OpDefs say, for every op both describe.
    #[test]
    fn table_agrees_with_op_defs() {
        for info in OPS {
            let Some(def) = op_def(info.name) else {
                continue;
            };
            let mut node = NodeDef {
                op: info.name.into(),
                ..Default::default()
            };
            match info.outputs {
                Outputs::Fixed(_) => {}
                Outputs::IntAttr(attr) => {
                    node.attr.insert(attr.into(), int_attr(3));
                }
                Outputs::TypeListAttr(attr) => {
                    let list = attr_value::ListValue {
                        r#type: vec![1, 1, 1],
                        ..Default::default()
                    };
                    node.attr.insert(
                        attr.into(),
                        crate::proto::AttrValue {
                            value: Some(attr_value::Value::List(Box::new(list))),
                        },
                    );
                }
            }
            assert_eq!(
                output_count(&node),
                op_def_output_count(&node, def),
                "{}",
                info.name
            );
        }
    }
}
