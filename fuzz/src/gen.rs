//! A structural generator of small GraphDefs, driven by libFuzzer's bytes through
//! [`arbitrary::Unstructured`].
//!
//! Nodes are Consts (small tensors of every dtype, sometimes with huge zero-element or
//! one-value shapes), Placeholders (small, unknown or huge dims) and ops from a fixed menu: the
//! evaluator's kernels, lowered and functional control flow and a few ops it lacks. Each op's
//! inputs and attributes follow its TensorFlow OpDef (bundled with graphopt-core): as many
//! inputs as its arguments take, inputs of the dtype an argument asks for when one is at hand,
//! every attribute of its declared type, with values drawn from small, meaningful and extreme
//! menus. A graph may carry up to two library functions, generated the same way, which
//! functional ops and other functions (themselves included) call.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arbitrary::{Result, Unstructured};
use graphopt_core::graph::ops::op_def;
use graphopt_core::proto::{
    attr_value, op_def::ArgDef, tensor_shape_proto::Dim, AttrValue, DataType, FunctionDef,
    FunctionDefLibrary, GraphDef, NameAttrList, NodeDef, OpDef, TensorProto, TensorShapeProto,
    VersionDef,
};

/// Dtypes of generated tensors, the common ones first (choices lean on the low end).
const DTYPES: &[DataType] = &[
    DataType::DtFloat,
    DataType::DtInt32,
    DataType::DtInt64,
    DataType::DtBool,
    DataType::DtDouble,
    DataType::DtUint8,
    DataType::DtInt8,
    DataType::DtHalf,
    DataType::DtBfloat16,
    DataType::DtString,
    DataType::DtInt16,
    DataType::DtUint16,
    DataType::DtUint32,
    DataType::DtUint64,
    DataType::DtComplex64,
    DataType::DtQint8,
    DataType::DtQuint8,
];

/// Integers as attribute values, dims and tensor elements: small ones most of the time.
const SMALL_INTS: &[i64] = &[0, 1, 2, 3, -1, 4, -2, 5, 6, 7, 8, 15, 16, -3, 32];
/// ... and the ones that overflow, wrap or ask for too much.
const EXTREME_INTS: &[i64] = &[
    i64::MAX,
    i64::MIN,
    i64::MAX - 1,
    i64::MIN + 1,
    i32::MAX as i64,
    i32::MIN as i64,
    1 << 31,
    1 << 32,
    (1 << 32) + 1,
    1 << 40,
    1 << 62,
    -(1 << 40),
    -(1 << 62),
    1 << 20,
    1 << 30,
    65536,
    1000,
];
/// Dims of huge shapes (with no or one element stored).
const HUGE_DIMS: &[i64] = &[
    0,
    1,
    2,
    1 << 20,
    1 << 30,
    1 << 31,
    1 << 32,
    1 << 40,
    1 << 62,
    i64::MAX,
];
const FLOATS: &[f64] = &[
    0.0,
    1.0,
    -1.0,
    0.5,
    2.0,
    3.0,
    -0.0,
    1e-3,
    100.0,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    1e30,
    f32::MAX as f64,
    f64::MIN_POSITIVE,
    -2.5,
];

/// Ops the generator builds, besides Const and Placeholder: the evaluator's kernels (added at
/// run time from its registry), these, and the shape-heavy ones below once more so that they
/// come up more often.
const EXTRA_OPS: &[&str] = &[
    "Switch",
    "Merge",
    "Enter",
    "Exit",
    "NextIteration",
    "LoopCond",
    "Identity",
    "IdentityN",
    "StopGradient",
    "PlaceholderWithDefault",
    "Print",
    "Assert",
    "NoOp",
    "While",
    "StatelessWhile",
    "If",
    "StatelessIf",
    "Case",
    "PartitionedCall",
    "StatefulPartitionedCall",
    "VariableV2",
    "ReadVariableOp",
    "NotAnOp",
];

const FOCUS_OPS: &[&str] = &[
    "Add",
    "AddV2",
    "Mul",
    "Sub",
    "MatMul",
    "BatchMatMulV2",
    "Conv2D",
    "DepthwiseConv2dNative",
    "MaxPool",
    "AvgPool",
    "BiasAdd",
    "FusedBatchNormV3",
    "Reshape",
    "StridedSlice",
    "Slice",
    "Pad",
    "PadV2",
    "MirrorPad",
    "Tile",
    "ConcatV2",
    "Split",
    "SplitV",
    "Sum",
    "Mean",
    "Range",
    "Fill",
    "Transpose",
    "Pack",
    "Unpack",
    "Shape",
    "Size",
    "ExpandDims",
    "Squeeze",
    "BroadcastTo",
    "GatherV2",
    "OneHot",
    "Cast",
    "Einsum",
    "SpaceToBatchND",
    "BatchToSpaceND",
    "DynamicPartition",
    "Rsqrt",
    "Relu",
    "Switch",
    "Merge",
    "Identity",
];

fn ops() -> &'static [&'static str] {
    static OPS: OnceLock<Vec<&'static str>> = OnceLock::new();
    OPS.get_or_init(|| {
        let mut ops = graphopt_core::eval::kernels::registered_ops();
        ops.extend_from_slice(EXTRA_OPS);
        ops.extend_from_slice(FOCUS_OPS);
        ops
    })
}

/// The OpDef the generator follows for `op`: TensorFlow's, as graphopt bundles it.
fn definition(op: &str) -> Option<&'static OpDef> {
    op_def(op)
}

/// One generated graph and how to drive it.
#[derive(Debug, Clone)]
pub struct Generated {
    pub graph: GraphDef,
    /// Placeholders: name, dtype and declared shape (`None`: unknown rank).
    pub placeholders: Vec<(String, DataType, Option<Vec<i64>>)>,
    /// Tensors worth fetching: the last node, sometimes others.
    pub outputs: Vec<String>,
}

/// A value a node can take as input.
#[derive(Debug, Clone)]
struct Value {
    /// How an input names it: `node`, `node:1` in a graph, `node:arg:0` or `arg` in a function.
    reference: String,
    dtype: Option<DataType>,
}

/// A library function's signature, decided before any body so that bodies can call every
/// function, themselves included.
#[derive(Debug, Clone)]
struct Signature {
    name: String,
    inputs: Vec<DataType>,
    outputs: Vec<DataType>,
}

struct Scope<'a> {
    values: Vec<Value>,
    /// Names of the nodes generated so far (for control inputs).
    nodes: Vec<String>,
    /// Inside a function body input references take the `node:arg:index` form.
    in_function: bool,
    functions: &'a [Signature],
}

fn small_or_extreme(u: &mut Unstructured<'_>) -> Result<i64> {
    if u.ratio(1, 6)? {
        Ok(*u.choose(EXTREME_INTS)?)
    } else {
        Ok(*u.choose(SMALL_INTS)?)
    }
}

fn dtype(u: &mut Unstructured<'_>) -> Result<DataType> {
    // Half of the time one of the first four.
    if u.arbitrary()? {
        Ok(*u.choose(&DTYPES[..4])?)
    } else {
        Ok(*u.choose(DTYPES)?)
    }
}

/// A dim of a declared shape: small, unknown (-1) or huge.
fn shape_dim(u: &mut Unstructured<'_>) -> Result<i64> {
    Ok(match u.int_in_range(0..=9)? {
        0 => -1,
        1 => *u.choose(HUGE_DIMS)?,
        _ => u.int_in_range(0..=4)?,
    })
}

/// A declared shape (Placeholder, shape attributes).
pub fn shape(u: &mut Unstructured<'_>) -> Result<TensorShapeProto> {
    if u.ratio(1, 10)? {
        return Ok(TensorShapeProto {
            unknown_rank: true,
            ..Default::default()
        });
    }
    let rank = u.int_in_range(0..=4)?;
    let dim = (0..rank)
        .map(|_| {
            Ok(Dim {
                size: shape_dim(u)?,
                ..Default::default()
            })
        })
        .collect::<Result<_>>()?;
    Ok(TensorShapeProto {
        dim,
        ..Default::default()
    })
}

fn dims_proto(dims: &[i64]) -> TensorShapeProto {
    TensorShapeProto {
        dim: dims
            .iter()
            .map(|&size| Dim {
                size,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// Little-endian bytes of one element of `dtype` made from `int` (integers) or `float`.
fn element_bytes(dtype: DataType, int: i64, float: f64, out: &mut Vec<u8>) {
    match dtype {
        DataType::DtFloat => out.extend_from_slice(&(float as f32).to_le_bytes()),
        DataType::DtDouble => out.extend_from_slice(&float.to_le_bytes()),
        DataType::DtHalf | DataType::DtBfloat16 | DataType::DtInt16 | DataType::DtUint16 => {
            out.extend_from_slice(&(int as u16).to_le_bytes())
        }
        DataType::DtInt32 | DataType::DtUint32 => {
            out.extend_from_slice(&(int as u32).to_le_bytes())
        }
        DataType::DtInt64 | DataType::DtUint64 => out.extend_from_slice(&int.to_le_bytes()),
        DataType::DtComplex64 => {
            out.extend_from_slice(&(float as f32).to_le_bytes());
            out.extend_from_slice(&(int as f32).to_le_bytes());
        }
        _ => out.push(int as u8),
    }
}

/// A TensorProto: a small tensor of `dtype` (or a dtype of its own), its values given as typed
/// fields, as `tensor_content`, as one value to repeat, or as too many or too few; sometimes a
/// huge shape with no or one value.
pub fn tensor(u: &mut Unstructured<'_>, dtype: Option<DataType>) -> Result<TensorProto> {
    let dtype = match dtype {
        Some(d) => d,
        None => self::dtype(u)?,
    };
    let (dims, count) = if u.ratio(1, 12)? {
        let rank = u.int_in_range(1..=3)?;
        let dims: Vec<i64> = (0..rank)
            .map(|_| u.choose(HUGE_DIMS).copied())
            .collect::<Result<_>>()?;
        (dims, u.int_in_range(0..=1)?)
    } else {
        // Scalars and vectors most often: they are what shape arguments are made of.
        let rank = *u.choose(&[0usize, 1, 1, 1, 2, 2, 3, 4])?;
        let mut dims = Vec::with_capacity(rank);
        let mut count = 1usize;
        for _ in 0..rank {
            let d = u.int_in_range(0..=4usize)?;
            let d = if count * d > 64 { 1 } else { d };
            count *= d;
            dims.push(d as i64);
        }
        let count = match u.int_in_range(0..=9)? {
            0 => count.min(1),
            1 => count + 1,
            _ => count,
        };
        (dims, count)
    };
    let mut proto = TensorProto {
        dtype: dtype as i32,
        tensor_shape: Some(dims_proto(&dims)),
        ..Default::default()
    };
    let mut ints = Vec::with_capacity(count);
    let mut floats = Vec::with_capacity(count);
    for _ in 0..count {
        ints.push(small_or_extreme(u)?);
        floats.push(*u.choose(FLOATS)?);
    }
    let as_content = dtype != DataType::DtString && dtype != DataType::DtBool && u.ratio(1, 4)?;
    if as_content {
        let mut content = Vec::new();
        for (&i, &f) in ints.iter().zip(&floats) {
            element_bytes(dtype, i, f, &mut content);
        }
        if u.ratio(1, 10)? {
            content.push(0);
        }
        proto.tensor_content = content.into();
        return Ok(proto);
    }
    match dtype {
        DataType::DtFloat => proto.float_val = floats.iter().map(|&f| f as f32).collect(),
        DataType::DtDouble => proto.double_val = floats,
        DataType::DtInt64 => proto.int64_val = ints,
        DataType::DtBool => proto.bool_val = ints.iter().map(|&i| i & 1 == 1).collect(),
        DataType::DtString => {
            proto.string_val = ints
                .iter()
                .map(|&i| format!("s{i}").into_bytes().into())
                .collect()
        }
        DataType::DtHalf | DataType::DtBfloat16 => {
            proto.half_val = ints.iter().map(|&i| i32::from(i as u16)).collect()
        }
        DataType::DtUint32 => proto.uint32_val = ints.iter().map(|&i| i as u32).collect(),
        DataType::DtUint64 => proto.uint64_val = ints.iter().map(|&i| i as u64).collect(),
        DataType::DtComplex64 => {
            proto.scomplex_val = floats.iter().flat_map(|&f| [f as f32, 0.5]).collect()
        }
        _ => proto.int_val = ints.iter().map(|&i| i as i32).collect(),
    }
    Ok(proto)
}

fn attr(value: attr_value::Value) -> AttrValue {
    AttrValue { value: Some(value) }
}

fn list(value: attr_value::ListValue) -> AttrValue {
    attr(attr_value::Value::List(Box::new(value)))
}

fn int_list(u: &mut Unstructured<'_>, name: &str) -> Result<Vec<i64>> {
    let (len, small): (usize, &[i64]) = match name {
        "strides" | "ksize" | "dilations" => {
            let len = if u.ratio(4, 5)? {
                4
            } else {
                u.int_in_range(0..=5)?
            };
            (len, &[1, 1, 1, 2, 3])
        }
        "explicit_paddings" => (if u.ratio(4, 5)? { 8 } else { 4 }, &[0, 0, 1, 2]),
        _ => (u.int_in_range(0..=4)?, &[0, 1, 2, -1, 3]),
    };
    (0..len)
        .map(|_| {
            if u.ratio(1, 8)? {
                small_or_extreme(u)
            } else {
                u.choose(small).copied()
            }
        })
        .collect()
}

fn string_attr(u: &mut Unstructured<'_>, name: &str, allowed: &[&[u8]]) -> Result<Vec<u8>> {
    if !allowed.is_empty() && u.ratio(9, 10)? {
        return Ok(u.choose(allowed)?.to_vec());
    }
    let menu: &[&str] = match name {
        "padding" => &["SAME", "VALID", "EXPLICIT"],
        "data_format" => &["NHWC", "NCHW", "NDHWC", "NCDHW"],
        "equation" => &[
            "ij,jk->ik",
            "bij,bjk->bik",
            "i,i->",
            "ii->i",
            "ij->ji",
            "...ij,...jk->...ik",
            "abc,cd->abd",
            "i->",
            "ij,ij->ij",
            "a,b->ab",
        ],
        "mode" => &["REFLECT", "SYMMETRIC", "CONSTANT", "MIN_COMBINED", "SCALED"],
        _ => &["", "x", "NHWC", "SAME", "frame"],
    };
    Ok(u.choose(menu)?.as_bytes().to_vec())
}

fn func_name(u: &mut Unstructured<'_>, scope: &Scope<'_>) -> Result<NameAttrList> {
    let name = if scope.functions.is_empty() || u.ratio(1, 10)? {
        "no_such_function".to_string()
    } else {
        u.choose(scope.functions)?.name.clone()
    };
    Ok(NameAttrList {
        name,
        ..Default::default()
    })
}

/// An input for an argument that wants `want` (when known): a value of that dtype if one is at
/// hand, most of the time.
fn pick(u: &mut Unstructured<'_>, scope: &Scope<'_>, want: Option<DataType>) -> Result<Value> {
    if let Some(want) = want {
        let matching: Vec<&Value> = scope
            .values
            .iter()
            .filter(|v| v.dtype == Some(want))
            .collect();
        if !matching.is_empty() && u.ratio(4, 5)? {
            return Ok((*u.choose(&matching)?).clone());
        }
    }
    // Recent values more often: they make deeper chains.
    let n = scope.values.len();
    let i = if u.arbitrary()? {
        n - 1 - u.int_in_range(0..=(n - 1).min(2))?
    } else {
        u.choose_index(n)?
    };
    Ok(scope.values[i].clone())
}

fn const_node(u: &mut Unstructured<'_>, name: String, want: Option<DataType>) -> Result<NodeDef> {
    let value = tensor(u, want)?;
    let dtype = value.dtype;
    let mut node = NodeDef {
        name,
        op: "Const".into(),
        ..Default::default()
    };
    node.attr
        .insert("dtype".into(), attr(attr_value::Value::Type(dtype)));
    node.attr.insert(
        "value".into(),
        attr(attr_value::Value::Tensor(Box::new(value))),
    );
    Ok(node)
}

fn placeholder_node(u: &mut Unstructured<'_>, name: String) -> Result<NodeDef> {
    let mut node = NodeDef {
        name,
        op: "Placeholder".into(),
        ..Default::default()
    };
    node.attr.insert(
        "dtype".into(),
        attr(attr_value::Value::Type(dtype(u)? as i32)),
    );
    if u.ratio(9, 10)? {
        node.attr
            .insert("shape".into(), attr(attr_value::Value::Shape(shape(u)?)));
    }
    Ok(node)
}

fn arg_dtype(arg: &ArgDef, types: &BTreeMap<String, i32>) -> Option<DataType> {
    if arg.r#type != 0 {
        DataType::try_from(arg.r#type).ok()
    } else if !arg.type_attr.is_empty() {
        types
            .get(&arg.type_attr)
            .and_then(|&t| DataType::try_from(t).ok())
    } else {
        None
    }
}

/// An op node: inputs and attributes after the op's OpDef.
fn op_node(u: &mut Unstructured<'_>, scope: &Scope<'_>, name: String) -> Result<NodeDef> {
    let op = *u.choose(ops())?;
    let mut node = NodeDef {
        name,
        op: op.into(),
        ..Default::default()
    };
    let empty = OpDef::default();
    let def = definition(op).unwrap_or(&empty);
    // Attribute values the inputs decide.
    let mut types: BTreeMap<String, i32> = BTreeMap::new();
    let mut numbers: BTreeMap<String, i64> = BTreeMap::new();
    let mut type_lists: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    if def.input_arg.is_empty() && definition(op).is_none() {
        for _ in 0..u.int_in_range(0..=3)? {
            node.input.push(pick(u, scope, None)?.reference);
        }
    }
    for arg in &def.input_arg {
        let count = if !arg.number_attr.is_empty() {
            let n = match numbers.get(&arg.number_attr) {
                Some(&n) => n,
                None => u.int_in_range(1..=4)?,
            };
            numbers.insert(arg.number_attr.clone(), n);
            n as usize
        } else if !arg.type_list_attr.is_empty() {
            u.int_in_range(0..=3)?
        } else {
            1
        };
        for _ in 0..count {
            let value = pick(u, scope, arg_dtype(arg, &types))?;
            let dtype = value.dtype.unwrap_or(DataType::DtFloat) as i32;
            if !arg.type_attr.is_empty() {
                types.entry(arg.type_attr.clone()).or_insert(dtype);
            }
            if !arg.type_list_attr.is_empty() {
                type_lists
                    .entry(arg.type_list_attr.clone())
                    .or_default()
                    .push(dtype);
            }
            node.input.push(value.reference);
        }
    }
    for def_attr in &def.attr {
        // Sometimes left out: its default, or a missing required attribute.
        if u.ratio(1, 16)? {
            continue;
        }
        let name = def_attr.name.as_str();
        let allowed = def_attr
            .allowed_values
            .as_ref()
            .and_then(|a| match &a.value {
                Some(attr_value::Value::List(l)) => Some(l.as_ref().clone()),
                _ => None,
            })
            .unwrap_or_default();
        use attr_value::{ListValue, Value as V};
        let value = match def_attr.r#type.as_str() {
            "type" => {
                let t = match types.get(name) {
                    Some(&t) if u.ratio(15, 16)? => t,
                    _ if !allowed.r#type.is_empty() => *u.choose(&allowed.r#type)?,
                    _ => dtype(u)? as i32,
                };
                types.insert(name.to_string(), t);
                attr(V::Type(t))
            }
            "int" => {
                let n = match numbers.get(name) {
                    Some(&n) if u.ratio(15, 16)? => n,
                    _ => small_or_extreme(u)?,
                };
                attr(V::I(n))
            }
            "list(type)" => {
                let types = match type_lists.get(name) {
                    Some(t) if u.ratio(15, 16)? => t.clone(),
                    _ => (0..u.int_in_range(0..=3)?)
                        .map(|_| Ok(dtype(u)? as i32))
                        .collect::<Result<_>>()?,
                };
                list(ListValue {
                    r#type: types,
                    ..Default::default()
                })
            }
            "bool" => attr(V::B(u.arbitrary()?)),
            "float" => attr(V::F(*u.choose(FLOATS)? as f32)),
            "string" => {
                let allowed: Vec<&[u8]> = allowed.s.iter().map(|s| s.as_ref()).collect();
                attr(V::S(string_attr(u, name, &allowed)?.into()))
            }
            "list(int)" => list(ListValue {
                i: int_list(u, name)?,
                ..Default::default()
            }),
            "list(float)" => list(ListValue {
                f: (0..u.int_in_range(0..=3)?)
                    .map(|_| Ok(*u.choose(FLOATS)? as f32))
                    .collect::<Result<_>>()?,
                ..Default::default()
            }),
            "list(string)" => list(ListValue {
                s: (0..u.int_in_range(0..=2)?)
                    .map(|_| Ok(string_attr(u, name, &[])?.into()))
                    .collect::<Result<_>>()?,
                ..Default::default()
            }),
            "shape" => attr(V::Shape(shape(u)?)),
            "list(shape)" => list(ListValue {
                shape: (0..u.int_in_range(0..=2)?)
                    .map(|_| shape(u))
                    .collect::<Result<_>>()?,
                ..Default::default()
            }),
            "tensor" => attr(V::Tensor(Box::new(tensor(u, None)?))),
            "func" => attr(V::Func(func_name(u, scope)?)),
            "list(func)" => list(ListValue {
                func: (0..u.int_in_range(1..=3)?)
                    .map(|_| func_name(u, scope))
                    .collect::<Result<_>>()?,
                ..Default::default()
            }),
            _ => continue,
        };
        node.attr.insert(name.to_string(), value);
    }
    if definition(op).is_none() {
        if let Some(value) = scope.values.first() {
            let t = value.dtype.unwrap_or(DataType::DtFloat) as i32;
            node.attr
                .insert("T".into(), attr(attr_value::Value::Type(t)));
        }
    }
    Ok(node)
}

/// The values node `node` makes available: its first outputs, typed when the OpDef says.
fn outputs_of(node: &NodeDef, in_function: bool) -> Vec<Value> {
    let types: BTreeMap<String, i32> = node
        .attr
        .iter()
        .filter_map(|(k, v)| match v.value {
            Some(attr_value::Value::Type(t)) => Some((k.clone(), t)),
            _ => None,
        })
        .collect();
    let value = |reference: String, dtype: Option<DataType>| Value { reference, dtype };
    if node.op == "Const" || node.op == "Placeholder" {
        let dtype = types.get("dtype").and_then(|&t| DataType::try_from(t).ok());
        let reference = if in_function {
            format!("{}:output:0", node.name)
        } else {
            node.name.clone()
        };
        return vec![value(reference, dtype)];
    }
    let Some(def) = definition(&node.op) else {
        return vec![value(
            if in_function {
                format!("{}:output:0", node.name)
            } else {
                node.name.clone()
            },
            None,
        )];
    };
    let mut out = Vec::new();
    let mut port = 0;
    for arg in def.output_arg.iter() {
        let dtype = arg_dtype(arg, &types);
        let count = declared_count(node, arg);
        // At most two values per argument and three in all: enough to reach later ports
        // without flooding the scope; the port still advances past every declared output.
        for index in 0..count {
            if index < 2 && out.len() < 3 {
                let reference = match (in_function, port) {
                    (true, _) => format!("{}:{}:{index}", node.name, arg.name),
                    (false, 0) => node.name.clone(),
                    (false, p) => format!("{}:{p}", node.name),
                };
                out.push(value(reference, dtype));
            }
            port += 1;
        }
    }
    out
}

/// How many outputs `arg` of `node` declares: one, its number attribute, or the length of its
/// type-list attribute (zero when the attribute is missing or negative, as TensorFlow rejects).
fn declared_count(node: &NodeDef, arg: &ArgDef) -> usize {
    if !arg.number_attr.is_empty() {
        return match node
            .attr
            .get(&arg.number_attr)
            .and_then(|a| a.value.as_ref())
        {
            Some(attr_value::Value::I(n)) => usize::try_from(*n).unwrap_or(0).min(64),
            _ => 0,
        };
    }
    if !arg.type_list_attr.is_empty() {
        return match node
            .attr
            .get(&arg.type_list_attr)
            .and_then(|a| a.value.as_ref())
        {
            Some(attr_value::Value::List(list)) => list.r#type.len(),
            _ => 0,
        };
    }
    1
}

fn node(u: &mut Unstructured<'_>, scope: &Scope<'_>, name: String) -> Result<NodeDef> {
    if scope.values.is_empty() {
        return if !scope.in_function && u.ratio(1, 3)? {
            placeholder_node(u, name)
        } else {
            const_node(u, name, None)
        };
    }
    match u.int_in_range(0..=9)? {
        0..=2 => const_node(u, name, None),
        3 if !scope.in_function => placeholder_node(u, name),
        _ => op_node(u, scope, name),
    }
}

/// Adds `count` generated nodes named `{prefix}{i}` to `nodes`, making their outputs
/// available to the later ones.
fn nodes(
    u: &mut Unstructured<'_>,
    scope: &mut Scope<'_>,
    prefix: &str,
    count: usize,
    nodes: &mut Vec<NodeDef>,
) -> Result<()> {
    for i in 0..count {
        // Past the end of the input every choice is its first option and every attribute is
        // left out, which only makes invalid nodes.
        if i > 0 && u.is_empty() {
            break;
        }
        let mut node = node(u, scope, format!("{prefix}{i}"))?;
        // A control input now and then; in the main graph, a Merge may also take a later node
        // (a loop's back edge).
        if !scope.nodes.is_empty() && u.ratio(1, 12)? {
            node.input
                .push(format!("^{}", u.choose(&scope.nodes)?.clone()));
        }
        if !scope.in_function && node.op == "Merge" && u.ratio(1, 3)? {
            let later = u.int_in_range(i..=i + 3)?;
            node.input.push(format!("{prefix}{later}"));
        }
        scope.values.extend(outputs_of(&node, scope.in_function));
        scope.nodes.push(node.name.clone());
        nodes.push(node);
    }
    Ok(())
}

fn arg(name: String, dtype: DataType) -> ArgDef {
    ArgDef {
        name,
        r#type: dtype as i32,
        ..Default::default()
    }
}

fn function(u: &mut Unstructured<'_>, signatures: &[Signature], me: usize) -> Result<FunctionDef> {
    let sig = &signatures[me];
    let mut scope = Scope {
        values: sig
            .inputs
            .iter()
            .enumerate()
            .map(|(i, &dtype)| Value {
                reference: format!("x{i}"),
                dtype: Some(dtype),
            })
            .collect(),
        nodes: Vec::new(),
        in_function: true,
        functions: signatures,
    };
    let mut body = Vec::new();
    let count = u.int_in_range(0..=5)?;
    nodes(u, &mut scope, "b", count, &mut body)?;
    let mut ret = BTreeMap::new();
    for (i, &dtype) in sig.outputs.iter().enumerate() {
        ret.insert(format!("y{i}"), pick(u, &scope, Some(dtype))?.reference);
    }
    Ok(FunctionDef {
        signature: Some(OpDef {
            name: sig.name.clone(),
            input_arg: sig
                .inputs
                .iter()
                .enumerate()
                .map(|(i, &t)| arg(format!("x{i}"), t))
                .collect(),
            output_arg: sig
                .outputs
                .iter()
                .enumerate()
                .map(|(i, &t)| arg(format!("y{i}"), t))
                .collect(),
            ..Default::default()
        }),
        node_def: body,
        ret,
        ..Default::default()
    })
}

/// A graph of 1 to 12 nodes, with up to two library functions.
pub fn graph(u: &mut Unstructured<'_>) -> Result<Generated> {
    let function_count = *u.choose(&[0usize, 0, 0, 1, 1, 2])?;
    let mut signatures = Vec::new();
    for i in 0..function_count {
        let inputs: Vec<DataType> = (0..u.int_in_range(1..=2)?)
            .map(|_| dtype(u))
            .collect::<Result<_>>()?;
        // The input's dtype (a While body), bool (a While condition) or any.
        let outputs = match u.int_in_range(0..=4)? {
            0..=2 => vec![inputs[0]],
            3 => vec![DataType::DtBool],
            _ => vec![dtype(u)?],
        };
        signatures.push(Signature {
            name: format!("f{i}"),
            inputs,
            outputs,
        });
    }
    let library = (0..function_count)
        .map(|i| function(u, &signatures, i))
        .collect::<Result<Vec<_>>>()?;
    let mut scope = Scope {
        values: Vec::new(),
        nodes: Vec::new(),
        in_function: false,
        functions: &signatures,
    };
    let mut graph = GraphDef {
        versions: Some(VersionDef {
            producer: 1205,
            ..Default::default()
        }),
        library: (!library.is_empty()).then(|| FunctionDefLibrary {
            function: library,
            ..Default::default()
        }),
        ..Default::default()
    };
    let count = u.int_in_range(1..=12)?;
    nodes(u, &mut scope, "n", count, &mut graph.node)?;
    let placeholders = graph
        .node
        .iter()
        .filter(|n| n.op == "Placeholder")
        .map(|n| {
            let dtype = match n.attr.get("dtype").and_then(|a| a.value.as_ref()) {
                Some(attr_value::Value::Type(t)) => {
                    DataType::try_from(*t).unwrap_or(DataType::DtFloat)
                }
                _ => DataType::DtFloat,
            };
            let shape = match n.attr.get("shape").and_then(|a| a.value.as_ref()) {
                Some(attr_value::Value::Shape(s)) if !s.unknown_rank => {
                    Some(s.dim.iter().map(|d| d.size).collect())
                }
                _ => None,
            };
            (n.name.clone(), dtype, shape)
        })
        .collect();
    let mut outputs = vec![scope
        .values
        .last()
        .map(|v| v.reference.clone())
        .unwrap_or_default()];
    for _ in 0..u.int_in_range(0..=2)? {
        let value = u.choose(&scope.values)?;
        if !outputs.contains(&value.reference) {
            outputs.push(value.reference.clone());
        }
    }
    Ok(Generated {
        graph,
        placeholders,
        outputs,
    })
}

/// Values for the placeholders: tensors of their dtype and declared shape (unknown dims 1 to
/// 3), or of a small shape of their own when the declared one is huge or by chance.
pub fn feeds(
    u: &mut Unstructured<'_>,
    generated: &Generated,
) -> Result<BTreeMap<String, TensorProto>> {
    let mut feeds = BTreeMap::new();
    for (name, dtype, shape) in &generated.placeholders {
        if u.ratio(1, 16)? {
            continue;
        }
        let declared = shape.as_ref().filter(|dims| {
            dims.iter().all(|&d| d <= 4) && dims.iter().map(|&d| d.max(1)).product::<i64>() <= 64
        });
        let proto = match declared {
            Some(dims) if u.ratio(7, 8)? => {
                let dims: Vec<i64> = dims
                    .iter()
                    .map(|&d| if d < 0 { u.int_in_range(1..=3) } else { Ok(d) })
                    .collect::<Result<_>>()?;
                let count = dims.iter().product::<i64>() as usize;
                let mut proto = TensorProto {
                    dtype: *dtype as i32,
                    tensor_shape: Some(dims_proto(&dims)),
                    ..Default::default()
                };
                let mut content = Vec::new();
                for _ in 0..count {
                    let (i, f) = (small_or_extreme(u)?, *u.choose(FLOATS)?);
                    match dtype {
                        DataType::DtString => proto.string_val.push(format!("{i}").into()),
                        DataType::DtBool => proto.bool_val.push(i & 1 == 1),
                        _ => element_bytes(*dtype, i, f, &mut content),
                    }
                }
                proto.tensor_content = content.into();
                proto
            }
            _ => tensor(u, Some(*dtype))?,
        };
        feeds.insert(name.clone(), proto);
    }
    Ok(feeds)
}

/// A transform string for `generated`: one to four transforms from the registry, each with
/// up to two of its parameters (values from a menu that names the graph's nodes and ops).
pub fn transforms(
    u: &mut Unstructured<'_>,
    registry: &graphopt_core::transforms::Registry,
    generated: &Generated,
) -> Result<String> {
    const FAVOURITES: &[&str] = &[
        "fold_constants",
        "@deploy",
        "strip_unused_nodes",
        "fold_batch_norms",
        "fold_old_batch_norms",
        "remove_nodes",
        "merge_duplicate_nodes",
        "fix_input_shapes",
        "add_shapes",
        "simplify_arithmetic",
        "remove_leftovers",
        "fold_scale_axis",
        "convert_to_nchw",
        "legalize",
        "inline_partitionedcall",
    ];
    let names: Vec<&str> = registry
        .iter()
        .map(|t| t.name())
        .chain(FAVOURITES.iter().copied())
        .collect();
    let mut text = String::new();
    for _ in 0..u.int_in_range(1..=4)? {
        let name = *u.choose(&names)?;
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(name);
        let accepted: Vec<&str> = registry
            .get(name)
            .and_then(|t| t.params())
            .map(|p| p.to_vec())
            .unwrap_or_default();
        let mut params = Vec::new();
        if u.ratio(1, 4)? {
            params.push("ignore_errors=true".to_string());
        }
        if name == "legalize" || name == "remove_nodes" || u.ratio(1, 2)? {
            for _ in 0..u.int_in_range(0..=2)? {
                let Ok(param) = u.choose(&accepted) else {
                    break;
                };
                params.push(format!("{param}=\"{}\"", param_value(u, param, generated)?));
            }
        }
        if name == "legalize" && !params.iter().any(|p| p.starts_with("target=")) {
            let target = u.choose(&["opencv", "tract", "tvm", "tensorrt", "ascend", "graphopt"])?;
            params.push(format!("target={target}"));
        }
        if !params.is_empty() {
            text.push('(');
            text.push_str(&params.join(", "));
            text.push(')');
        }
    }
    Ok(text)
}

fn param_value(u: &mut Unstructured<'_>, param: &str, generated: &Generated) -> Result<String> {
    let node = |u: &mut Unstructured<'_>| -> Result<String> {
        Ok(u.choose(&generated.graph.node)?.name.clone())
    };
    Ok(match param {
        "op" | "op_name" | "exclude_op" | "old_op_name" | "new_op_name" => {
            let op = u.choose(&generated.graph.node)?.op.clone();
            (*u.choose(&[op.as_str(), "Identity", "CheckNumerics", "*"])?).to_string()
        }
        "name" | "exclude_node" | "old_node_name" | "new_node_name" | "pin" => node(u)?,
        "shape" | "shape_for_name" => (*u.choose(&[
            "1,2,3",
            "-1,4",
            "",
            "2",
            "1,-1,3,3",
            "4294967296,4294967296",
        ])?)
        .to_string(),
        "type" | "type_for_name" => (*u.choose(&["float", "int32", "bool", "string"])?).into(),
        "target" => (*u.choose(&[
            "opencv", "tract", "tvm", "tensorrt", "ascend", "graphopt", "x",
        ])?)
        .into(),
        _ => (*u.choose(&[
            "true",
            "false",
            "0",
            "1",
            "-1",
            "2",
            "10",
            "100000000000",
            "x",
            "",
        ])?)
        .into(),
    })
}
