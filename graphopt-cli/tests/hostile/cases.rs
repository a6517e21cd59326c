//! The hostile corpus: small crafted models, one per way a model file from the internet has
//! broken graphopt (issue 11's classes), written by [`all`] and committed under
//! `tests/hostile/` (regenerate with `GRAPHOPT_BLESS=1 cargo test -p graphopt-cli --test
//! hostile`). Each case names its class, what it attacks, the command that runs it and the
//! outcome expected: an error (exit 1, one line) or, where the right answer exists and is
//! cheap, success.

use graphopt_core::freeze::checkpoint::{masked_crc32c, slice_key};
use graphopt_core::proto::{
    attr_value, meta_graph_def, op_def, tensor_info, tensor_shape_proto, AttrValue,
    BundleEntryProto, BundleHeaderProto, DataType, FunctionDef, FunctionDefLibrary, GraphDef,
    MetaGraphDef, NameAttrList, NodeDef, OpDef, SavedModel, SignatureDef, TensorInfo, TensorProto,
    TensorShapeProto, TensorSliceProto, VersionDef,
};
use prost::Message;

#[path = "superlinear.rs"]
mod superlinear;

/// What a case must end in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exit 1 with one line on stderr; `Err` from the library.
    Error,
    /// Exit 0; `Ok` from the library (the right answer exists and is cheap).
    Success,
}

/// Files that cannot be committed, made when the case runs.
#[derive(Debug, Clone)]
pub enum Special {
    /// A FIFO at this path (relative to the case directory).
    Fifo(&'static str),
    /// A symlink at this path to that target.
    Symlink(&'static str, &'static str),
    /// A leftover temporary of a writer whose process is gone.
    DeadTemporary(&'static str),
    /// A sparse file at this path of this length, occupying next to nothing on disk.
    Sparse(&'static str, u64),
}

pub struct Case {
    pub name: &'static str,
    /// The class (0: the transform-string parser).
    pub class: u32,
    pub about: &'static str,
    pub files: Vec<(&'static str, Vec<u8>)>,
    pub special: Vec<Special>,
    /// CLI arguments; `{dir}` is the case's directory, `{out}` a fresh output directory.
    pub args: Vec<String>,
    pub expect: Expect,
}

const GIB: i64 = 1 << 30;

fn attr(value: attr_value::Value) -> AttrValue {
    AttrValue { value: Some(value) }
}

fn dtype(t: DataType) -> AttrValue {
    attr(attr_value::Value::Type(t as i32))
}

fn int(i: i64) -> AttrValue {
    attr(attr_value::Value::I(i))
}

fn string(s: &str) -> AttrValue {
    attr(attr_value::Value::S(s.as_bytes().to_vec().into()))
}

fn ints(values: &[i64]) -> AttrValue {
    attr(attr_value::Value::List(Box::new(attr_value::ListValue {
        i: values.to_vec(),
        ..Default::default()
    })))
}

fn func(name: &str) -> AttrValue {
    attr(attr_value::Value::Func(NameAttrList {
        name: name.into(),
        ..Default::default()
    }))
}

fn types(values: &[DataType]) -> AttrValue {
    attr(attr_value::Value::List(Box::new(attr_value::ListValue {
        r#type: values.iter().map(|&t| t as i32).collect(),
        ..Default::default()
    })))
}

fn shape(dims: &[i64]) -> TensorShapeProto {
    TensorShapeProto {
        dim: dims
            .iter()
            .map(|&size| tensor_shape_proto::Dim {
                size,
                name: String::new(),
            })
            .collect(),
        unknown_rank: false,
    }
}

fn node(name: &str, op: &str, inputs: &[&str], attrs: Vec<(&str, AttrValue)>) -> NodeDef {
    NodeDef {
        name: name.into(),
        op: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        attr: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        ..Default::default()
    }
}

/// A Const from a TensorProto.
fn constant(name: &str, tensor: TensorProto) -> NodeDef {
    let t = DataType::try_from(tensor.dtype).unwrap_or(DataType::DtFloat);
    node(
        name,
        "Const",
        &[],
        vec![
            ("dtype", dtype(t)),
            ("value", attr(attr_value::Value::Tensor(Box::new(tensor)))),
        ],
    )
}

/// A Const of `dtype` and shape `dims` whose values `fill` puts in the TensorProto.
fn typed_const(
    name: &str,
    dtype: DataType,
    dims: &[i64],
    fill: impl FnOnce(&mut TensorProto),
) -> NodeDef {
    let mut tensor = TensorProto {
        dtype: dtype as i32,
        tensor_shape: Some(shape(dims)),
        ..Default::default()
    };
    fill(&mut tensor);
    constant(name, tensor)
}

fn floats(name: &str, dims: &[i64], values: &[f32]) -> NodeDef {
    typed_const(name, DataType::DtFloat, dims, |t| {
        t.float_val = values.to_vec()
    })
}

fn int64s(name: &str, dims: &[i64], values: &[i64]) -> NodeDef {
    typed_const(name, DataType::DtInt64, dims, |t| {
        t.int64_val = values.to_vec()
    })
}

fn int32s(name: &str, dims: &[i64], values: &[i32]) -> NodeDef {
    typed_const(name, DataType::DtInt32, dims, |t| {
        t.int_val = values.to_vec()
    })
}

fn placeholder(name: &str, t: DataType, dims: &[i64]) -> NodeDef {
    node(
        name,
        "Placeholder",
        &[],
        vec![
            ("dtype", dtype(t)),
            ("shape", attr(attr_value::Value::Shape(shape(dims)))),
        ],
    )
}

fn graph(nodes: Vec<NodeDef>) -> GraphDef {
    GraphDef {
        node: nodes,
        versions: Some(VersionDef {
            producer: 1205,
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pb(g: &GraphDef) -> Vec<u8> {
    g.encode_to_vec()
}

fn t(dtype: DataType) -> (&'static str, AttrValue) {
    ("T", self::dtype(dtype))
}

/// `verify m.pb m.pb`: the evaluator runs the model (twice).
fn verify() -> Vec<String> {
    vec![
        "verify".into(),
        "{dir}/model.pb".into(),
        "{dir}/model.pb".into(),
    ]
}

fn transform(transforms: &str, outputs: &str) -> Vec<String> {
    let mut args = vec![
        "transform".into(),
        "--in_graph={dir}/model.pb".into(),
        "--out_graph={out}/out.pb".into(),
        format!("--transforms={transforms}"),
    ];
    if !outputs.is_empty() {
        args.push(format!("--outputs={outputs}"));
    }
    args
}

fn model_case(
    name: &'static str,
    class: u32,
    about: &'static str,
    g: GraphDef,
    args: Vec<String>,
    expect: Expect,
) -> Case {
    Case {
        name,
        class,
        about,
        files: vec![("model.pb", pb(&g))],
        special: Vec::new(),
        args,
        expect,
    }
}

/// A class-10 case: freezing a one-element variable whose shard holds its 4 bytes, with the
/// crafted checkpoint `index`; it must fail.
fn checkpoint_index_case(name: &'static str, about: &'static str, index: Vec<u8>) -> Case {
    Case {
        name,
        class: 10,
        about,
        files: vec![
            ("model.pb", pb(&variable_graph(&[1]))),
            ("ckpt.index", index),
            ("ckpt.data-00000-of-00001", vec![0; 4]),
        ],
        special: Vec::new(),
        args: freeze_tf1(),
        expect: Expect::Error,
    }
}

/// A function `name` with one float input `x` and one output, whose body is `nodes` (reading
/// `x`) and returns `ret` (function notation, e.g. `call:output:0`).
fn function(name: &str, nodes: Vec<NodeDef>, ret: &str) -> FunctionDef {
    let arg = |n: &str| op_def::ArgDef {
        name: n.into(),
        r#type: DataType::DtFloat as i32,
        ..Default::default()
    };
    FunctionDef {
        signature: Some(OpDef {
            name: name.into(),
            input_arg: vec![arg("x")],
            output_arg: vec![arg("y")],
            ..Default::default()
        }),
        node_def: nodes,
        ret: [("y".to_string(), ret.to_string())].into(),
        ..Default::default()
    }
}

fn call(name: &str, input: &str, f: &str) -> NodeDef {
    node(
        name,
        "PartitionedCall",
        &[input],
        vec![
            ("f", func(f)),
            ("Tin", types(&[DataType::DtFloat])),
            ("Tout", types(&[DataType::DtFloat])),
        ],
    )
}

/// A function that calls `callee` twice and adds the results.
fn calls_twice(name: &str, callee: &str) -> FunctionDef {
    function(
        name,
        vec![
            call("a", "x", callee),
            call("b", "x", callee),
            node(
                "sum",
                "AddV2",
                &["a:output:0", "b:output:0"],
                vec![t(DataType::DtFloat)],
            ),
        ],
        "sum:z:0",
    )
}

fn with_library(mut g: GraphDef, functions: Vec<FunctionDef>) -> GraphDef {
    g.library = Some(FunctionDefLibrary {
        function: functions,
        ..Default::default()
    });
    g
}

// --- checkpoints: TensorFlow's table format, written the way TF does it ---

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// One table block from (key, value) pairs, with its 5-byte trailer (kind, masked crc).
fn block(entries: &[(Vec<u8>, Vec<u8>)], kind: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in entries {
        varint(&mut out, 0);
        varint(&mut out, key.len() as u64);
        varint(&mut out, value.len() as u64);
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
    out.extend_from_slice(&0u32.to_le_bytes()); // restart at 0
    out.extend_from_slice(&1u32.to_le_bytes()); // one restart
    trailer(out, kind)
}

fn trailer(mut contents: Vec<u8>, kind: u8) -> Vec<u8> {
    let mut checked = contents.clone();
    checked.push(kind);
    let crc = masked_crc32c(&checked);
    contents.push(kind);
    contents.extend_from_slice(&crc.to_le_bytes());
    contents
}

fn footer(metaindex: (u64, u64), index: (u64, u64)) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [metaindex.0, metaindex.1, index.0, index.1] {
        varint(&mut out, v);
    }
    out.resize(40, 0);
    out.extend_from_slice(&0xdb47_7524_8b80_fb57u64.to_le_bytes());
    out
}

/// A checkpoint index holding `entries` (sorted by key) in one data block.
fn index_file(entries: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let data = block(entries, 0);
    let data_size = data.len() as u64 - 5;
    let mut handle = Vec::new();
    varint(&mut handle, 0);
    varint(&mut handle, data_size);
    let last = entries.last().map(|e| e.0.clone()).unwrap_or_default();
    let index = block(&[(last, handle)], 0);
    let meta = block(&[], 0);
    let mut file = data;
    let index_offset = file.len() as u64;
    file.extend_from_slice(&index);
    let meta_offset = file.len() as u64;
    file.extend_from_slice(&meta);
    file.extend_from_slice(&footer(
        (meta_offset, meta.len() as u64 - 5),
        (index_offset, index.len() as u64 - 5),
    ));
    file
}

/// A scalar string tensor at the start of shard 0, as TensorFlow's bundle writer stores it
/// (the length as a varint, the masked CRC32C of the length, the bytes): its index entry and
/// the shard's contents.
fn string_scalar_entry(value: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let length = u32::try_from(value.len()).expect("a test string under 4 GiB");
    let mut shard = Vec::new();
    varint(&mut shard, u64::from(length));
    shard.extend_from_slice(&masked_crc32c(&length.to_le_bytes()).to_le_bytes());
    shard.extend_from_slice(value);
    // The entry's checksum covers the length as TensorFlow hashes it (four bytes), then the
    // rest of what follows the varint.
    let varint_len = shard.len() - 4 - value.len();
    let mut covered = length.to_le_bytes().to_vec();
    covered.extend_from_slice(&shard[varint_len..]);
    let entry = BundleEntryProto {
        dtype: DataType::DtString as i32,
        shape: Some(shape(&[])),
        shard_id: 0,
        offset: 0,
        size: shard.len() as i64,
        crc32c: masked_crc32c(&covered),
        ..Default::default()
    };
    (entry.encode_to_vec(), shard)
}

fn header_entry() -> (Vec<u8>, Vec<u8>) {
    (
        Vec::new(),
        BundleHeaderProto {
            num_shards: 1,
            ..Default::default()
        }
        .encode_to_vec(),
    )
}

/// A TF1 graph with one variable `v` of `dims`, read by `out`.
fn variable_graph(dims: &[i64]) -> GraphDef {
    graph(vec![
        node(
            "v",
            "VariableV2",
            &[],
            vec![
                ("dtype", dtype(DataType::DtFloat)),
                ("shape", attr(attr_value::Value::Shape(shape(dims)))),
            ],
        ),
        node("out", "Identity", &["v"], vec![t(DataType::DtFloat)]),
    ])
}

fn freeze_tf1() -> Vec<String> {
    vec![
        "freeze".into(),
        "--in_graph={dir}/model.pb".into(),
        "--checkpoint={dir}/ckpt".into(),
        "--outputs=out".into(),
        "--out_graph={out}/frozen.pb".into(),
    ]
}

/// A TF1-style SavedModel (no object graph) of `g`, whose signature returns `output`.
fn saved_model(g: GraphDef, output: &str) -> Vec<u8> {
    saved_model_with_inputs(g, &[], output)
}

/// [`saved_model`] whose signature also takes the float `inputs`, `(key, node)` each.
fn saved_model_with_inputs(g: GraphDef, inputs: &[(String, String)], output: &str) -> Vec<u8> {
    let tensor = |name: String| TensorInfo {
        encoding: Some(tensor_info::Encoding::Name(name)),
        dtype: DataType::DtFloat as i32,
        ..Default::default()
    };
    let signature = SignatureDef {
        inputs: inputs
            .iter()
            .map(|(key, node)| (key.clone(), tensor(format!("{node}:0"))))
            .collect(),
        outputs: [("output".to_string(), tensor(format!("{output}:0")))].into(),
        method_name: "tensorflow/serving/predict".into(),
        ..Default::default()
    };
    SavedModel {
        saved_model_schema_version: 1,
        meta_graphs: vec![MetaGraphDef {
            meta_info_def: Some(meta_graph_def::MetaInfoDef {
                tags: vec!["serve".into()],
                ..Default::default()
            }),
            graph_def: Some(g),
            signature_def: [("serving_default".to_string(), signature)].into(),
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn freeze_saved_model() -> Vec<String> {
    vec![
        "freeze".into(),
        "--saved_model_dir={dir}/model".into(),
        "--out_graph={out}/frozen.pb".into(),
    ]
}

/// The lowered while loop `i = 0; while i < 1e9: i += sign(sum(fill([1000, 1000], 1.0)))`:
/// each iteration is cheap to write and a million elements of work.
fn heavy_while_loop() -> GraphDef {
    let enter = |name: &str, input: &str, constant: bool, t: DataType| {
        node(
            name,
            "Enter",
            &[input],
            vec![
                self::t(t),
                ("frame_name", string("loop")),
                ("is_constant", attr(attr_value::Value::B(constant))),
            ],
        )
    };
    let i32t = DataType::DtInt32;
    graph(vec![
        int32s("zero", &[], &[0]),
        int32s("limit", &[], &[1_000_000_000]),
        int32s("dims", &[2], &[1000, 1000]),
        floats("one", &[], &[1.0]),
        int32s("axes", &[2], &[0, 1]),
        enter("i_enter", "zero", false, i32t),
        enter("limit_enter", "limit", true, i32t),
        enter("dims_enter", "dims", true, i32t),
        enter("one_enter", "one", true, DataType::DtFloat),
        enter("axes_enter", "axes", true, i32t),
        node(
            "merge",
            "Merge",
            &["i_enter", "next"],
            vec![t(i32t), ("N", int(2))],
        ),
        node("less", "Less", &["merge", "limit_enter"], vec![t(i32t)]),
        node("cond", "LoopCond", &["less"], vec![]),
        node("switch", "Switch", &["merge", "cond"], vec![t(i32t)]),
        node("body", "Identity", &["switch:1"], vec![t(i32t)]),
        node(
            "fill",
            "Fill",
            &["dims_enter", "one_enter"],
            vec![t(DataType::DtFloat), ("index_type", dtype(i32t))],
        ),
        node(
            "sum",
            "Sum",
            &["fill", "axes_enter"],
            vec![t(DataType::DtFloat), ("Tidx", dtype(i32t))],
        ),
        node(
            "cast",
            "Cast",
            &["sum"],
            vec![("SrcT", dtype(DataType::DtFloat)), ("DstT", dtype(i32t))],
        ),
        node("step", "Sign", &["cast"], vec![t(i32t)]),
        node("add", "AddV2", &["body", "step"], vec![t(i32t)]),
        node("next", "NextIteration", &["add"], vec![t(i32t)]),
        node("exit", "Exit", &["switch"], vec![t(i32t)]),
        node("out", "Identity", &["exit"], vec![t(i32t)]),
    ])
}

/// `Enter` attributes for the frame of [`counter_loop`].
fn loop_enter(t: DataType, constant: bool) -> Vec<(&'static str, AttrValue)> {
    vec![
        self::t(t),
        ("frame_name", string("counter")),
        ("is_constant", attr(attr_value::Value::B(constant))),
    ]
}

/// The lowered loop `i = 0; while i < iterations: i = f(i) + 1`, where `body` makes the nodes
/// of `f` from the name of the body's `i` and names `f(i)`.
fn counter_loop(
    iterations: i32,
    body: impl FnOnce(&'static str) -> (Vec<NodeDef>, &'static str),
) -> GraphDef {
    let i32t = DataType::DtInt32;
    let (extra, result) = body("i_body");
    let mut nodes = vec![
        int32s("zero", &[], &[0]),
        int32s("limit", &[], &[iterations]),
        int32s("step", &[], &[1]),
        node("i_enter", "Enter", &["zero"], loop_enter(i32t, false)),
        node("limit_enter", "Enter", &["limit"], loop_enter(i32t, true)),
        node("step_enter", "Enter", &["step"], loop_enter(i32t, true)),
        node(
            "merge",
            "Merge",
            &["i_enter", "next"],
            vec![t(i32t), ("N", int(2))],
        ),
        node("less", "Less", &["merge", "limit_enter"], vec![t(i32t)]),
        node("cond", "LoopCond", &["less"], vec![]),
        node("switch", "Switch", &["merge", "cond"], vec![t(i32t)]),
        node("i_body", "Identity", &["switch:1"], vec![t(i32t)]),
        node("add", "AddV2", &[result, "step_enter"], vec![t(i32t)]),
        node("next", "NextIteration", &["add"], vec![t(i32t)]),
        node("exit", "Exit", &["switch"], vec![t(i32t)]),
    ];
    nodes.extend(extra);
    nodes.push(node("out", "Identity", &["exit"], vec![t(i32t)]));
    graph(nodes)
}

/// `Pad(x, [[2^62, 2^62], [0, 0]])`: the padded size overflows.
fn huge_pad() -> GraphDef {
    graph(vec![
        floats("x", &[2, 2], &[1.0]),
        int64s("p", &[2, 2], &[1 << 62, 1 << 62, 0, 0]),
        node(
            "out",
            "Pad",
            &["x", "p"],
            vec![
                t(DataType::DtFloat),
                ("Tpaddings", dtype(DataType::DtInt64)),
            ],
        ),
    ])
}

/// `While(x0)` with the condition `x < limit` and `body`, a function named "body".
/// `BatchToSpaceND(DepthwiseConv2dNative(SpaceToBatchND(x, block, pads), 3x3 filter), block,
/// crops)`, every parameter an int64 Const.
fn atrous_pattern(block: [i64; 2], pads: [i64; 4], crops: [i64; 4]) -> GraphDef {
    let f = DataType::DtFloat;
    let i64s = || dtype(DataType::DtInt64);
    graph(vec![
        placeholder("x", f, &[1, 4, 4, 1]),
        int64s("block", &[2], &block),
        int64s("pads", &[2, 2], &pads),
        int64s("crops", &[2, 2], &crops),
        floats("filter", &[3, 3, 1, 1], &[1.0; 9]),
        node(
            "s2b",
            "SpaceToBatchND",
            &["x", "block", "pads"],
            vec![t(f), ("Tblock_shape", i64s()), ("Tpaddings", i64s())],
        ),
        node(
            "conv",
            "DepthwiseConv2dNative",
            &["s2b", "filter"],
            vec![
                t(f),
                ("strides", ints(&[1, 1, 1, 1])),
                ("padding", string("VALID")),
            ],
        ),
        node(
            "out",
            "BatchToSpaceND",
            &["conv", "block", "crops"],
            vec![t(f), ("Tblock_shape", i64s()), ("Tcrops", i64s())],
        ),
    ])
}

/// A float While of `x` over the functions `cond` and `body`.
fn while_node(name: &str) -> NodeDef {
    node(
        name,
        "While",
        &["x"],
        vec![
            ("T", types(&[DataType::DtFloat])),
            ("cond", func("cond")),
            ("body", func("body")),
        ],
    )
}

fn functional_while(x0: f32, limit: f32, body: FunctionDef) -> GraphDef {
    let f = DataType::DtFloat;
    with_library(
        graph(vec![floats("x", &[], &[x0]), while_node("out")]),
        vec![
            function(
                "cond",
                vec![
                    floats("limit", &[], &[limit]),
                    node("less", "Less", &["x", "limit:output:0"], vec![t(f)]),
                ],
                "less:z:0",
            ),
            body,
        ],
    )
}

/// Every case of the corpus.
// One push per case keeps each case next to the comment naming its class.
#[allow(clippy::vec_init_then_push)]
pub fn all() -> Vec<Case> {
    use DataType::{DtFloat, DtInt32, DtInt64};
    let f = DtFloat;
    let mut cases = Vec::new();

    // 0: the transform-string parser.
    cases.push(model_case(
        "c00_unclosed_transform",
        0,
        "a transform string with an unclosed parenthesis",
        graph(vec![floats("x", &[], &[1.0])]),
        transform("fold_constants(exclude_op=Fill", "x"),
        Expect::Error,
    ));

    // 1: unchecked arithmetic on dims, attributes and values.
    cases.push(model_case(
        "c01_pad_huge_paddings",
        1,
        "Pad by 2^62 on each side: the padded size overflows",
        huge_pad(),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c01_batch_to_space_block_wraps",
        1,
        "BatchToSpaceND whose block product wraps to 0 (a division by zero)",
        graph(vec![
            floats("x", &[4, 1, 1, 1], &[1.0]),
            int64s("block", &[2], &[1 << 32, 1 << 32]),
            int64s("crops", &[2, 2], &[0, 0, 0, 0]),
            node(
                "out",
                "BatchToSpaceND",
                &["x", "block", "crops"],
                vec![
                    t(f),
                    ("Tblock_shape", dtype(DtInt64)),
                    ("Tcrops", dtype(DtInt64)),
                ],
            ),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c01_splitv_sizes_wrap",
        1,
        "SplitV sizes whose sum wraps around to the dimension",
        graph(vec![
            floats("x", &[4], &[1.0]),
            int64s("sizes", &[3], &[i64::MAX, i64::MAX, 6]),
            int32s("axis", &[], &[0]),
            node(
                "out",
                "SplitV",
                &["x", "sizes", "axis"],
                vec![t(f), ("Tlen", dtype(DtInt64)), ("num_split", int(3))],
            ),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c01_conv_explicit_padding",
        1,
        "Conv2D with EXPLICIT paddings of 2^32: the output would be 2^66 elements",
        graph(vec![
            floats("x", &[1, 2, 2, 1], &[1.0]),
            floats("w", &[1, 1, 1, 1], &[1.0]),
            node(
                "out",
                "Conv2D",
                &["x", "w"],
                vec![
                    t(f),
                    ("strides", ints(&[1, 1, 1, 1])),
                    ("padding", string("EXPLICIT")),
                    (
                        "explicit_paddings",
                        ints(&[0, 0, 1 << 32, 1 << 32, 1 << 32, 1 << 32, 0, 0]),
                    ),
                ],
            ),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c01_maxpool_explicit_padding",
        1,
        "MaxPool with EXPLICIT paddings near 2^40",
        graph(vec![
            floats("x", &[1, 2, 2, 1], &[1.0]),
            node(
                "out",
                "MaxPool",
                &["x"],
                vec![
                    t(f),
                    ("ksize", ints(&[1, 1, 1, 1])),
                    ("strides", ints(&[1, 1, 1, 1])),
                    ("padding", string("EXPLICIT")),
                    (
                        "explicit_paddings",
                        ints(&[0, 0, 1 << 40, 1 << 40, 1 << 40, 1 << 40, 0, 0]),
                    ),
                ],
            ),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c01_range_wraps",
        1,
        "Range from i64::MIN to i64::MAX: the count wraps",
        graph(vec![
            int64s("start", &[], &[i64::MIN]),
            int64s("limit", &[], &[i64::MAX]),
            int64s("delta", &[], &[1]),
            node(
                "out",
                "Range",
                &["start", "limit", "delta"],
                vec![("Tidx", dtype(DtInt64))],
            ),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c01_slice_bounds_wrap",
        1,
        "Slice whose begin + size wraps",
        graph(vec![
            floats("x", &[4], &[1.0]),
            int64s("begin", &[1], &[i64::MAX]),
            int64s("size", &[1], &[2]),
            node(
                "out",
                "Slice",
                &["x", "begin", "size"],
                vec![t(f), ("Index", dtype(DtInt64))],
            ),
        ]),
        verify(),
        Expect::Error,
    ));
    let huge_placeholder = graph(vec![
        placeholder("x", f, &[1 << 32, 1 << 32]),
        node(
            "out",
            "Size",
            &["x"],
            vec![t(f), ("out_type", dtype(DtInt64))],
        ),
    ]);
    cases.push(model_case(
        "c01_size_of_huge_placeholder_folds",
        1,
        "Size of a [2^32, 2^32] placeholder: 2^64 does not fit, so it is not folded (it folded to 0)",
        huge_placeholder.clone(),
        transform("fold_constants", "out"),
        Expect::Success,
    ));
    cases.push(model_case(
        "c01_size_of_huge_placeholder_verify",
        1,
        "verify seeds a [2^32, 2^32] input: the element count overflows",
        huge_placeholder,
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c01_strided_slice_huge_stride",
        1,
        "StridedSlice with a stride of i64::MAX takes one element (the index wrapped)",
        graph(vec![
            floats("x", &[10], &[1.0, 2.0]),
            int64s("begin", &[1], &[0]),
            int64s("end", &[1], &[10]),
            int64s("strides", &[1], &[i64::MAX]),
            node(
                "out",
                "StridedSlice",
                &["x", "begin", "end", "strides"],
                vec![t(f), ("Index", dtype(DtInt64))],
            ),
        ]),
        verify(),
        Expect::Success,
    ));
    cases.push(model_case(
        "c01_tile_multiples_wrap",
        1,
        "Tile by 2^62 x 2^62: the output dims overflow",
        graph(vec![
            floats("x", &[2, 2], &[1.0]),
            int64s("m", &[2], &[1 << 62, 1 << 62]),
            node(
                "out",
                "Tile",
                &["x", "m"],
                vec![t(f), ("Tmultiples", dtype(DtInt64))],
            ),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c01_concat_dims_wrap",
        1,
        "ConcatV2 of empty tensors whose concatenated dimension overflows",
        graph(vec![
            floats("a", &[i64::MAX, 0], &[]),
            floats("b", &[i64::MAX, 0], &[]),
            floats("c", &[4, 0], &[]),
            int32s("axis", &[], &[0]),
            node(
                "out",
                "ConcatV2",
                &["a", "b", "c", "axis"],
                vec![t(f), ("N", int(3)), ("Tidx", dtype(DtInt32))],
            ),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c01_one_hot_depth",
        1,
        "OneHot with a depth of 2^62",
        graph(vec![
            int32s("i", &[3], &[0, 1, 2]),
            int32s("depth", &[], &[i32::MAX]),
            floats("on", &[], &[1.0]),
            floats("off", &[], &[0.0]),
            node(
                "out",
                "OneHot",
                &["i", "depth", "on", "off"],
                vec![t(f), ("TI", dtype(DtInt32)), ("axis", int(-1))],
            ),
        ]),
        verify(),
        Expect::Error,
    ));

    // 2: allocations sized by an attribute or a dim.
    cases.push(model_case(
        "c02_tile_multiples",
        2,
        "Tile a 1000-element tensor a million times (4 GB)",
        graph(vec![
            floats("x", &[1000], &[1.0]),
            int32s("m", &[1], &[1_000_000]),
            node("out", "Tile", &["x", "m"], vec![t(f)]),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c02_split_num_split",
        2,
        "Split an empty tensor into 2^40 parts",
        graph(vec![
            int32s("axis", &[], &[0]),
            floats("x", &[0], &[]),
            node(
                "out",
                "Split",
                &["axis", "x"],
                vec![t(f), ("num_split", int(1 << 40))],
            ),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c02_dynamic_partition_count",
        2,
        "DynamicPartition into 2^40 partitions",
        graph(vec![
            floats("x", &[2], &[1.0]),
            int32s("p", &[2], &[0, 1]),
            node(
                "out",
                "DynamicPartition",
                &["x", "p"],
                vec![t(f), ("num_partitions", int(1 << 40))],
            ),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c02_dead_branch_outputs",
        2,
        "a Split with num_split 2^60 on the untaken branch of a Switch",
        graph(vec![
            floats("x", &[2], &[1.0]),
            typed_const("pred", DataType::DtBool, &[], |t| t.bool_val = vec![false]),
            int32s("axis", &[], &[0]),
            node("switch", "Switch", &["x", "pred"], vec![t(f)]),
            node(
                "out",
                "Split",
                &["axis", "switch:1"],
                vec![t(f), ("num_split", int(1 << 60))],
            ),
        ]),
        vec![
            "verify".into(),
            "{dir}/model.pb".into(),
            "{dir}/model.pb".into(),
            "--outputs=out:7".into(),
        ],
        Expect::Error,
    ));
    cases.push(model_case(
        "c02_verify_seeded_input",
        2,
        "verify seeds a [2^20, 2^20] float input (4 TB)",
        graph(vec![
            placeholder("x", f, &[1 << 20, 1 << 20]),
            node("out", "Relu", &["x"], vec![t(f)]),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c02_batch_matmul_broadcast",
        2,
        "BatchMatMulV2 whose broadcast batch copies are 10^10 elements",
        graph(vec![
            floats("a", &[1000, 1, 100, 1], &[1.0]),
            floats("b", &[1, 1000, 1, 100], &[1.0]),
            node("out", "BatchMatMulV2", &["a", "b"], vec![t(f)]),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c02_fill_huge",
        2,
        "Fill [2^20, 2^20]",
        graph(vec![
            int64s("dims", &[2], &[1 << 20, 1 << 20]),
            floats("v", &[], &[1.0]),
            node(
                "out",
                "Fill",
                &["dims", "v"],
                vec![t(f), ("index_type", dtype(DtInt64))],
            ),
        ]),
        verify(),
        Expect::Error,
    ));

    // 3: zero-element tensors with huge dims.
    let empty_huge = |name: &str| floats(name, &[1 << 40, 0], &[]);
    cases.push(model_case(
        "c03_sum_of_empty_huge",
        3,
        "Sum over the empty axis of a [2^40, 0] tensor: the output has 2^40 elements",
        graph(vec![
            empty_huge("x"),
            int32s("axes", &[1], &[1]),
            node(
                "out",
                "Sum",
                &["x", "axes"],
                vec![t(f), ("Tidx", dtype(DtInt32))],
            ),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c03_slice_of_empty_huge",
        3,
        "Slice of a [2^40, 0] tensor: an empty result, no index list of 2^40",
        graph(vec![
            empty_huge("x"),
            int64s("begin", &[2], &[0, 0]),
            int64s("size", &[2], &[-1, -1]),
            node(
                "out",
                "Slice",
                &["x", "begin", "size"],
                vec![t(f), ("Index", dtype(DtInt64))],
            ),
        ]),
        verify(),
        Expect::Success,
    ));
    cases.push(model_case(
        "c03_mirror_pad_of_empty_huge",
        3,
        "MirrorPad (SYMMETRIC) of a [2^40, 0] tensor: an empty result, no index lists",
        graph(vec![
            empty_huge("x"),
            int32s("p", &[2, 2], &[1, 1, 0, 0]),
            node(
                "out",
                "MirrorPad",
                &["x", "p"],
                vec![
                    t(f),
                    ("mode", string("SYMMETRIC")),
                    ("Tpaddings", dtype(DtInt32)),
                ],
            ),
        ]),
        verify(),
        Expect::Success,
    ));
    cases.push(model_case(
        "c03_strided_slice_ellipsis_of_empty_huge",
        3,
        "StridedSlice with an ellipsis of a [2^40, 0, 3] tensor",
        graph(vec![
            floats("x", &[1 << 40, 0, 3], &[]),
            int32s("begin", &[2], &[0, 1]),
            int32s("end", &[2], &[0, 2]),
            int32s("strides", &[2], &[1, 1]),
            node(
                "out",
                "StridedSlice",
                &["x", "begin", "end", "strides"],
                vec![t(f), ("Index", dtype(DtInt32)), ("ellipsis_mask", int(1))],
            ),
        ]),
        verify(),
        Expect::Success,
    ));
    cases.push(model_case(
        "c03_unpack_of_empty_huge",
        3,
        "Unpack a [2^40, 0] tensor into 2^40 outputs",
        graph(vec![
            empty_huge("x"),
            node(
                "out",
                "Unpack",
                &["x"],
                vec![t(f), ("num", int(1 << 40)), ("axis", int(0))],
            ),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c03_batch_norm_of_empty_huge",
        3,
        "fold_batch_norms scaling an empty [1, 1, 0, 2^40] filter: 2^40 per-channel values",
        graph(vec![
            placeholder("x", f, &[1, 2, 2, 0]),
            floats("w", &[1, 1, 0, 1 << 40], &[]),
            node(
                "conv",
                "Conv2D",
                &["x", "w"],
                vec![
                    t(f),
                    ("strides", ints(&[1, 1, 1, 1])),
                    ("padding", string("SAME")),
                ],
            ),
            floats("m", &[], &[2.0]),
            node("out", "Mul", &["conv", "m"], vec![t(f)]),
        ]),
        transform("fold_batch_norms", "out"),
        Expect::Error,
    ));

    // 3: an empty tensor or output whose other dims multiply past isize::MAX: no elements,
    // but ndarray panics on the shape and strides overflow.
    let explicit_2_40 = || {
        vec![
            t(f),
            ("strides", ints(&[1, 1, 1, 1])),
            ("padding", string("EXPLICIT")),
            (
                "explicit_paddings",
                ints(&[0, 0, 1 << 40, 1 << 40, 1 << 40, 1 << 40, 0, 0]),
            ),
        ]
    };
    // `op(x, 1x1 filter)` padded by 2^40, read by `then` where given.
    let empty_batch = |x: NodeDef, op: &str, then: Option<&str>| -> GraphDef {
        let conv = if then.is_some() { "conv" } else { "out" };
        let mut nodes = vec![x, floats("w", &[1, 1, 1, 1], &[1.0])];
        nodes.push(node(conv, op, &["x", "w"], explicit_2_40()));
        if let Some(then) = then {
            nodes.push(node("out", then, &["conv"], vec![t(f)]));
        }
        graph(nodes)
    };
    for (case, about, g, command, expect) in [
        (
            "c03_fill_of_empty_huge",
            "Fill to [2^62, 2^62, 0]: no elements, but the shape cannot be addressed",
            graph(vec![
                int64s("s", &[3], &[1 << 62, 1 << 62, 0]),
                floats("v", &[], &[1.0]),
                node(
                    "out",
                    "Fill",
                    &["s", "v"],
                    vec![t(f), ("index_type", dtype(DtInt64))],
                ),
            ]),
            verify(),
            Expect::Error,
        ),
        (
            "c03_conv_of_empty_batch_padded",
            "Conv2D of a [0, 1, 1, 1] batch padded by 2^40 on every side",
            empty_batch(floats("x", &[0, 1, 1, 1], &[]), "Conv2D", None),
            transform("fold_constants", "out"),
            Expect::Success,
        ),
        (
            "c03_conv_of_empty_placeholder_padded",
            "verify seeds a [0, 1, 1, 1] input to a Conv2D padded by 2^40 on every side",
            empty_batch(placeholder("x", f, &[0, 1, 1, 1]), "Conv2D", Some("Shape")),
            verify(),
            Expect::Error,
        ),
        (
            "c03_depthwise_of_empty_batch_padded",
            "DepthwiseConv2dNative of a [0, 1, 1, 1] batch padded by 2^40 on every side",
            empty_batch(
                floats("x", &[0, 1, 1, 1], &[]),
                "DepthwiseConv2dNative",
                None,
            ),
            verify(),
            Expect::Error,
        ),
        (
            "c03_resize_of_empty_batch",
            "ResizeBilinear of a [0, 1, 1, 2^40] batch to 2^31 - 1 squared",
            graph(vec![
                floats("x", &[0, 1, 1, 1 << 40], &[]),
                int32s("size", &[2], &[i32::MAX, i32::MAX]),
                node("out", "ResizeBilinear", &["x", "size"], vec![t(f)]),
            ]),
            verify(),
            Expect::Error,
        ),
        (
            "c03_legalize_pad_of_empty_placeholder",
            "legalize(target=tract) on a Pad by 2^40 of a [0, 1, 1] placeholder",
            graph(vec![
                placeholder("x", f, &[0, 1, 1]),
                int64s("p", &[3, 2], &[0, 0, 1 << 40, 1 << 40, 1 << 40, 1 << 40]),
                node(
                    "out",
                    "Pad",
                    &["x", "p"],
                    vec![t(f), ("Tpaddings", dtype(DtInt64))],
                ),
            ]),
            transform("legalize(target=tract)", "out"),
            Expect::Success,
        ),
        (
            "c03_flatten_atrous_empty_filter",
            "flatten_atrous_conv on an atrous pattern with block 2^40 and a [3, 3, 0, 2^20] \
             filter",
            {
                let mut g = atrous_pattern([1 << 40, 1 << 40], [0; 4], [0; 4]);
                for n in &mut g.node {
                    if n.name == "filter" {
                        *n = floats("filter", &[3, 3, 0, 1 << 20], &[]);
                    }
                }
                g
            },
            transform("flatten_atrous_conv", "out"),
            Expect::Success,
        ),
    ] {
        cases.push(model_case(case, 3, about, g, command, expect));
    }

    // 4: shape inference on non-constant graphs.
    cases.push(model_case(
        "c04_shape_inference_of_placeholders",
        4,
        "fold_constants infers shapes through Tile(2^30) of a [2^40, 0] placeholder and Size",
        graph(vec![
            placeholder("x", f, &[1 << 40, 0]),
            int64s("m", &[2], &[1 << 30, 1 << 40]),
            node(
                "tile",
                "Tile",
                &["x", "m"],
                vec![t(f), ("Tmultiples", dtype(DtInt64))],
            ),
            node(
                "shape",
                "Shape",
                &["tile"],
                vec![t(f), ("out_type", dtype(DtInt64))],
            ),
            node(
                "size",
                "Size",
                &["tile"],
                vec![t(f), ("out_type", dtype(DtInt32))],
            ),
            node(
                "out",
                "Pack",
                &["shape", "shape"],
                vec![t(DtInt64), ("N", int(2))],
            ),
        ]),
        transform("fold_constants", "out,size"),
        Expect::Success,
    ));

    // 4: shapes inferred statically cost memory: many outputs, high ranks, long chains.
    let mut split_graph = vec![
        placeholder("x", f, &[[1].repeat(100), vec![65536]].concat()),
        int32s("axis", &[], &[100]),
    ];
    let mut split_outputs = Vec::new();
    for i in 0..64 {
        split_graph.push(node(
            &format!("split{i}"),
            "Split",
            &["axis", "x"],
            vec![t(f), ("num_split", int(65536))],
        ));
        split_outputs.push(format!("split{i}:65535"));
    }
    let refs: Vec<&str> = split_outputs.iter().map(String::as_str).collect();
    split_graph.push(node("out", "AddN", &refs, vec![t(f), ("N", int(64))]));
    for (name, transforms) in [
        ("c04_split_shape_amplifier_fold", "fold_constants"),
        ("c04_split_shape_amplifier_nchw", "convert_to_nchw"),
    ] {
        cases.push(model_case(
            name,
            4,
            "64 Splits of a rank-101 placeholder into 65536 parts each: 4 million inferred shapes",
            graph(split_graph.clone()),
            transform(transforms, "out"),
            Expect::Success,
        ));
    }
    cases.push(model_case(
        "c04_split_shape_amplifier_add_shapes",
        4,
        "add_shapes on 64 Splits into 65536 parts: 4 million unknown shapes, written in budget",
        graph(split_graph),
        transform("add_shapes", "out"),
        Expect::Success,
    ));
    let mut rank_graph = vec![
        placeholder("x", f, &[1]),
        typed_const("dims", DtInt32, &[65536], |t| {
            t.tensor_content = [1i32.to_le_bytes(); 65536].concat().into()
        }),
        node(
            "r0",
            "Reshape",
            &["x", "dims"],
            vec![t(f), ("Tshape", dtype(DtInt32))],
        ),
    ];
    for i in 1..2000 {
        rank_graph.push(node(
            &format!("r{i}"),
            "Relu",
            &[&format!("r{}", i - 1)],
            vec![t(f)],
        ));
    }
    cases.push(model_case(
        "c04_rank_amplifier",
        4,
        "a Reshape to rank 65536 followed by 2000 Relus (each would store its shape)",
        graph(rank_graph),
        transform(
            "fold_constants remove_leftovers simplify_arithmetic",
            "r1999",
        ),
        Expect::Success,
    ));
    let mut chain = vec![placeholder("x", f, &[1; 254])];
    for i in 0..25_000 {
        let input = if i == 0 {
            "x".to_string()
        } else {
            format!("n{}", i - 1)
        };
        chain.push(node(&format!("n{i}"), "Relu", &[&input], vec![t(f)]));
    }
    cases.push(model_case(
        "c04_high_rank_chain_add_shapes",
        4,
        "add_shapes on 25000 Relus of a rank-254 placeholder: 6 million dims to write",
        graph(chain),
        transform("add_shapes", "n24999"),
        Expect::Error,
    ));

    // 5: small TensorProtos that decode into gigabytes.
    cases.push(model_case(
        "c05_float_val_expands",
        5,
        "one float_val with shape [2^30]: 16 bytes on disk, 4 GiB decoded",
        graph(vec![
            floats("x", &[GIB], &[1.0]),
            node("out", "Identity", &["x"], vec![t(f)]),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c05_strings_expand",
        5,
        "one string_val with shape [2^24]: each element costs a 32-byte handle",
        graph(vec![
            typed_const("x", DataType::DtString, &[1 << 24], |t| {
                t.string_val = vec![b"x".to_vec().into()]
            }),
            node("out", "Identity", &["x"], vec![t(DataType::DtString)]),
        ]),
        verify(),
        Expect::Error,
    ));

    // 6: recursion.
    let recursive_while = functional_while(
        1.0,
        10.0,
        function("body", vec![while_node("again")], "again:output:0"),
    );
    cases.push(model_case(
        "c06_while_body_contains_itself",
        6,
        "a While whose body runs the same While",
        recursive_while,
        verify(),
        Expect::Error,
    ));
    cases.push(Case {
        name: "c06_text_nesting",
        class: 6,
        about: "text format nested 5000 deep (the parser recursed per level)",
        files: vec![("model.pbtxt", {
            let mut text = String::from(
                "node { name: \"x\" op: \"NoOp\" attr { key: \"a\" value { func { name: \"f\" ",
            );
            for _ in 0..5000 {
                text.push_str("attr { key: \"a\" value { func { name: \"f\" ");
            }
            text.push_str(&"} } } ".repeat(5001));
            text.push_str("}\n");
            text.into_bytes()
        })],
        special: Vec::new(),
        args: vec!["summarize".into(), "{dir}/model.pbtxt".into()],
        expect: Expect::Error,
    });
    cases.push(model_case(
        "c06_inline_calls_itself_twice",
        6,
        "inline_partitionedcall of a function that calls itself twice (375 bytes)",
        with_library(
            graph(vec![floats("x", &[], &[1.0]), call("out", "x", "f")]),
            vec![calls_twice("f", "f")],
        ),
        transform("inline_partitionedcall", "out"),
        Expect::Error,
    ));
    cases.push(model_case(
        "c06_inline_call_dag",
        6,
        "inline_partitionedcall of a 40-level call DAG, each level calling the next twice",
        with_library(
            graph(vec![floats("x", &[], &[1.0]), call("out", "x", "f0")]),
            (0..40)
                .map(|i| calls_twice(&format!("f{i}"), &format!("f{}", i + 1)))
                .chain([function(
                    "f40",
                    vec![node("y", "Identity", &["x"], vec![t(f)])],
                    "y:output:0",
                )])
                .collect(),
        ),
        transform("inline_partitionedcall", "out"),
        Expect::Error,
    ));
    cases.push(Case {
        name: "c06_freeze_calls_itself_twice",
        class: 6,
        about: "freezing a SavedModel whose signature calls a function that calls itself twice",
        files: vec![
            (
                "model/saved_model.pb",
                saved_model(
                    with_library(
                        graph(vec![placeholder("x", f, &[]), call("call", "x", "f")]),
                        vec![calls_twice("f", "f")],
                    ),
                    "call",
                ),
            ),
            (
                "model/variables/variables.index",
                index_file(&[header_entry()]),
            ),
            ("model/variables/variables.data-00000-of-00001", Vec::new()),
        ],
        special: Vec::new(),
        args: freeze_saved_model(),
        expect: Expect::Error,
    });

    // 7: work without a bound.
    cases.push(model_case(
        "c07_while_loop_heavy_body",
        7,
        "a while loop of a billion iterations, each filling and summing a million elements",
        heavy_while_loop(),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c07_int_matmul_of_fills",
        7,
        "an int32 MatMul of two 4096x4096 Fills (7 * 10^10 multiply-adds)",
        graph(vec![
            int32s("dims", &[2], &[4096, 4096]),
            int32s("one", &[], &[1]),
            node("a", "Fill", &["dims", "one"], vec![t(DtInt32)]),
            node("b", "Fill", &["dims", "one"], vec![t(DtInt32)]),
            node("out", "MatMul", &["a", "b"], vec![t(DtInt32)]),
        ]),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c07_maxpool_huge_ksize",
        7,
        "MaxPool with a 2^30 x 2^30 window over a 1000 x 1000 image",
        graph(vec![
            int32s("dims", &[4], &[1, 1000, 1000, 1]),
            floats("one", &[], &[1.0]),
            node("x", "Fill", &["dims", "one"], vec![t(f)]),
            node(
                "out",
                "MaxPool",
                &["x"],
                vec![
                    t(f),
                    ("ksize", ints(&[1, GIB, GIB, 1])),
                    ("strides", ints(&[1, 1, 1, 1])),
                    ("padding", string("SAME")),
                ],
            ),
        ]),
        verify(),
        Expect::Error,
    ));

    // 7: the evaluator's own bookkeeping is work too.
    let mut merge_graph = vec![
        floats("x", &[], &[1.0]),
        typed_const("no", DataType::DtBool, &[], |t| t.bool_val = vec![false]),
        node("s", "Switch", &["x", "no"], vec![t(f)]),
    ];
    // The live input arrives last: the Switch delivers to its consumers in input order.
    let mut merge_inputs = vec!["s:1"; 120_000];
    merge_inputs.push("s:0");
    merge_graph.push(node(
        "out",
        "Merge",
        &merge_inputs,
        vec![t(f), ("N", int(120_001))],
    ));
    cases.push(model_case(
        "c07_merge_of_120k_dead_inputs",
        7,
        "a Merge of 120000 dead inputs and one live one, run by the evaluator",
        graph(merge_graph),
        verify(),
        Expect::Success,
    ));
    cases.push(model_case(
        "c07_loop_with_wide_merge",
        7,
        "a while loop of 50 iterations whose body has a Merge of 20000 dead inputs",
        counter_loop(50, |body| {
            let mut nodes = vec![
                typed_const("no", DataType::DtBool, &[], |t| t.bool_val = vec![false]),
                node(
                    "no_enter",
                    "Enter",
                    &["no"],
                    loop_enter(DataType::DtBool, true),
                ),
                node("dead", "Switch", &[body, "no_enter"], vec![t(DtInt32)]),
            ];
            let mut inputs = vec!["dead:1"; 20_000];
            inputs.push("dead:0");
            nodes.push(node(
                "wide",
                "Merge",
                &inputs,
                vec![t(DtInt32), ("N", int(20_001))],
            ));
            (nodes, "wide")
        }),
        verify(),
        Expect::Success,
    ));
    cases.push(model_case(
        "c07_loop_pending_wide_node",
        7,
        "a node in a loop of 100000 iterations whose 50000 inputs from outside the loop never arrive",
        counter_loop(100_000, |body| {
            let mut nodes = vec![
                int32s("one", &[], &[1]),
                node("one_enter", "Enter", &["one"], loop_enter(DtInt32, true)),
            ];
            // Read without an Enter, "one" lives in the outer frame only: each iteration's
            // copy of the node waits for it in vain, holding 50000 slots.
            let mut inputs = vec!["one"; 50_000];
            inputs.push("one_enter");
            inputs.push(body);
            nodes.push(node(
                "wide",
                "AddN",
                &inputs,
                vec![t(DtInt32), ("N", int(50_002))],
            ));
            (nodes, body)
        }),
        verify(),
        Expect::Error,
    ));
    cases.push(model_case(
        "c07_counter_loop_1m",
        7,
        "a while loop of a million cheap iterations",
        counter_loop(1_000_000, |body| (Vec::new(), body)),
        verify(),
        Expect::Error,
    ));
    let mut dead_body = vec![
        floats("one", &[], &[1.0]),
        node("next", "AddV2", &["x", "one:output:0"], vec![t(f)]),
    ];
    for i in 0..20_000 {
        dead_body.push(node(&format!("unused{i}"), "NoOp", &[], vec![]));
    }
    let functional_while = functional_while(0.0, 1e6, function("body", dead_body, "next:z:0"));
    cases.push(model_case(
        "c07_functional_while_large_body",
        7,
        "a functional While of a million iterations whose body holds 20000 unused nodes",
        functional_while,
        verify(),
        Expect::Error,
    ));

    // 8: super-linear transforms.
    let mut merge_graph = vec![
        floats("x", &[], &[1.0]),
        placeholder("p", DataType::DtBool, &[]),
    ];
    let mut merge_inputs = Vec::new();
    for i in 0..5000 {
        merge_graph.push(node(&format!("s{i}"), "Switch", &["x", "p"], vec![t(f)]));
        merge_inputs.push(format!("s{i}:1"));
    }
    let refs: Vec<&str> = merge_inputs.iter().map(String::as_str).collect();
    merge_graph.push(node("out", "Merge", &refs, vec![t(f), ("N", int(5000))]));
    cases.push(model_case(
        "c08_merge_of_5000_inputs",
        8,
        "remove_control_dependencies and remove_training_nodes on a Merge of 5000 inputs",
        graph(merge_graph),
        transform("remove_control_dependencies remove_training_nodes", "out"),
        Expect::Success,
    ));

    // 9: memory per input byte.
    cases.push(Case {
        name: "c09_empty_nodes",
        class: 9,
        about: "400000 empty nodes: 800 KB on disk, about 100 MB decoded and far more processed",
        files: vec![("model.pb", {
            let mut bytes = Vec::with_capacity(800_000);
            for _ in 0..400_000 {
                bytes.extend_from_slice(&[0x0a, 0x00]);
            }
            bytes
        })],
        special: Vec::new(),
        args: vec!["summarize".into(), "{dir}/model.pb".into()],
        expect: Expect::Error,
    });
    cases.push(Case {
        name: "c09_group_before_empty_nodes",
        class: 9,
        about: "c09_empty_nodes behind a 4-byte group (which prost skips): the size estimate \
                gave up on the group and decoding ran without its checks",
        files: vec![("model.pb", {
            let mut bytes = Vec::with_capacity(800_004);
            // Field 99, wire types 3 and 4: an empty group.
            bytes.extend_from_slice(&[0x9b, 0x06, 0x9c, 0x06]);
            for _ in 0..400_000 {
                bytes.extend_from_slice(&[0x0a, 0x00]);
            }
            bytes
        })],
        special: Vec::new(),
        args: vec!["summarize".into(), "{dir}/model.pb".into()],
        expect: Expect::Error,
    });
    cases.push(model_case(
        "c09_text_output_of_a_deep_list",
        9,
        "transform (no transforms: a conversion) to .pbtxt of 900000 packed zeros in a list \
         nested 100 deep: 900 KB written as 185 MB of indented lines, built whole before the \
         budget was asked",
        {
            let mut value = attr(attr_value::Value::List(Box::new(attr_value::ListValue {
                i: vec![0; 900_000],
                ..Default::default()
            })));
            // Each round nests a NameAttrList, a map entry and an AttrValue.
            for _ in 0..32 {
                value = attr(attr_value::Value::Func(NameAttrList {
                    name: "f".into(),
                    attr: [("a".to_string(), value)].into_iter().collect(),
                }));
            }
            graph(vec![node("out", "NoOp", &[], vec![("a", value)])])
        },
        vec![
            "transform".into(),
            "--in_graph={dir}/model.pb".into(),
            "--out_graph={out}/out.pbtxt".into(),
            "--transforms=".into(),
        ],
        Expect::Error,
    ));
    cases.push(Case {
        name: "c09_attribute_list_of_tensors",
        class: 9,
        about: "one attribute listing 400000 empty tensors: 2 bytes each on disk, 416 in memory",
        files: vec![("model.pb", {
            let list = attr_value::ListValue {
                tensor: vec![TensorProto::default(); 400_000],
                ..Default::default()
            };
            pb(&graph(vec![node(
                "x",
                "NoOp",
                &[],
                vec![("list", attr(attr_value::Value::List(Box::new(list))))],
            )]))
        })],
        special: Vec::new(),
        args: vec!["summarize".into(), "{dir}/model.pb".into()],
        expect: Expect::Error,
    });

    // 10: checkpoints.
    let sliced_entry = |dims: &[i64], slices: usize| {
        // Every part claims the same 4 bytes of the shard.
        let mut entries = vec![header_entry()];
        let part = BundleEntryProto {
            dtype: DtFloat as i32,
            shape: Some(shape(&[1])),
            shard_id: 0,
            offset: 0,
            size: 4,
            crc32c: masked_crc32c(&[0, 0, 128, 63]),
            ..Default::default()
        };
        let mut parts = Vec::new();
        let mut keys = Vec::new();
        for i in 0..slices as i64 {
            keys.push((slice_key("v", &[(i, 1), (0, -1)]), part.encode_to_vec()));
            parts.push(TensorSliceProto {
                extent: vec![
                    graphopt_core::proto::tensor_slice_proto::Extent {
                        start: i,
                        has_length: Some(
                            graphopt_core::proto::tensor_slice_proto::extent::HasLength::Length(1),
                        ),
                    },
                    Default::default(),
                ],
            });
        }
        entries.push((
            b"v".to_vec(),
            BundleEntryProto {
                dtype: DtFloat as i32,
                shape: Some(shape(dims)),
                slices: parts,
                ..Default::default()
            }
            .encode_to_vec(),
        ));
        entries.extend(keys);
        entries.sort();
        index_file(&entries)
    };
    cases.push(Case {
        name: "c10_aliased_slices",
        class: 10,
        about: "a partitioned variable whose 4096 parts all point at the same 4 shard bytes",
        files: vec![
            ("model.pb", pb(&variable_graph(&[4096, 1]))),
            ("ckpt.index", sliced_entry(&[4096, 1], 4096)),
            ("ckpt.data-00000-of-00001", vec![0, 0, 128, 63]),
        ],
        special: Vec::new(),
        args: freeze_tf1(),
        expect: Expect::Error,
    });
    cases.push(Case {
        name: "c10_restores_share_one_name_list",
        class: 10,
        about: "5000 RestoreV2 nodes sharing one list of 50000 tensor names: each was expanded \
                into its own list, 2.5e8 entries",
        files: vec![
            ("model.pb", {
                let strings = |name: &str, values: Vec<&str>| {
                    constant(
                        name,
                        TensorProto {
                            dtype: DataType::DtString as i32,
                            tensor_shape: Some(shape(&[values.len() as i64])),
                            string_val: values
                                .into_iter()
                                .map(|v| v.as_bytes().to_vec().into())
                                .collect(),
                            ..Default::default()
                        },
                    )
                };
                let mut g = variable_graph(&[1]);
                g.node.push(strings("prefix", vec!["ckpt"]));
                g.node.push(strings("names", vec!["v"; 50_000]));
                g.node.push(strings("specs", vec![""]));
                for r in 0..5_000 {
                    g.node.push(node(
                        &format!("r{r}"),
                        "RestoreV2",
                        &["prefix", "names", "specs"],
                        vec![("dtypes", types(&[DataType::DtFloat]))],
                    ));
                }
                g.node.push(node(
                    "assign",
                    "Assign",
                    &["v", "r4999"],
                    vec![t(DataType::DtFloat)],
                ));
                pb(&g)
            }),
            ("ckpt.index", {
                let entry = BundleEntryProto {
                    dtype: DataType::DtFloat as i32,
                    shape: Some(shape(&[1])),
                    size: 4,
                    crc32c: masked_crc32c(&[0, 0, 128, 63]),
                    ..Default::default()
                };
                index_file(&[header_entry(), (b"v".to_vec(), entry.encode_to_vec())])
            }),
            ("ckpt.data-00000-of-00001", vec![0, 0, 128, 63]),
        ],
        special: Vec::new(),
        args: freeze_tf1(),
        expect: Expect::Success,
    });
    cases.push(Case {
        name: "c10_object_graph_of_empty_nodes",
        class: 10,
        about: "a SavedModel checkpoint whose object graph is 2 million empty nodes in 4 MB \
                (decoded without an estimate: about 75 bytes of memory per byte)",
        files: {
            // TrackableObjectGraph: field 1 (nodes), each an empty message.
            let object_graph = [0x0a, 0x00].repeat(2 << 20);
            let (entry, shard) = string_scalar_entry(&object_graph);
            vec![
                (
                    "model/saved_model.pb",
                    saved_model(graph(vec![floats("c", &[], &[1.0])]), "c"),
                ),
                (
                    "model/variables/variables.index",
                    index_file(&[
                        header_entry(),
                        (b"_CHECKPOINTABLE_OBJECT_GRAPH".to_vec(), entry),
                    ]),
                ),
                ("model/variables/variables.data-00000-of-00001", shard),
            ]
        },
        special: Vec::new(),
        args: freeze_saved_model(),
        expect: Expect::Error,
    });
    cases.push(checkpoint_index_case(
        "c10_footer_lengths",
        "a checkpoint index whose footer block handle is near 2^64",
        {
            let mut file = block(&[header_entry()], 0);
            file.extend_from_slice(&footer((0, 0), (u64::MAX - 2, u64::MAX - 2)));
            file
        },
    ));
    cases.push(checkpoint_index_case(
        "c10_snappy_claims_1gib",
        "a checkpoint index block compressed with snappy that claims 1 GiB from 16 bytes",
        {
            let mut contents = Vec::new();
            varint(&mut contents, 1 << 30);
            contents.extend_from_slice(&[0u8; 16]);
            let data = trailer(contents, 1);
            let size = data.len() as u64 - 5;
            let mut file = data;
            file.extend_from_slice(&footer((0, size), (0, size)));
            file
        },
    ));
    cases.push(checkpoint_index_case(
        "c10_keys_grow_quadratically",
        "an index block whose keys each extend the last by 100 bytes (a 500 KB block, 1.25 GB of keys)",
        {
            let mut contents = Vec::new();
            let mut shared = 0u64;
            for _ in 0..5_000 {
                varint(&mut contents, shared);
                varint(&mut contents, 100);
                varint(&mut contents, 0);
                contents.extend_from_slice(&[b'k'; 100]);
                shared += 100;
            }
            contents.extend_from_slice(&0u32.to_le_bytes());
            contents.extend_from_slice(&1u32.to_le_bytes());
            let data = trailer(contents, 0);
            let size = data.len() as u64 - 5;
            let mut handle = Vec::new();
            varint(&mut handle, 0);
            varint(&mut handle, size);
            let index = block(&[(b"k".to_vec(), handle)], 0);
            let mut file = data;
            let index_offset = file.len() as u64;
            file.extend_from_slice(&index);
            file.extend_from_slice(&footer((0, 0), (index_offset, index.len() as u64 - 5)));
            file
        },
    ));

    // 11: model directories.
    let small_saved_model = saved_model(graph(vec![floats("c", &[], &[1.0])]), "c");
    cases.push(Case {
        name: "c11_fifo_saved_model",
        class: 11,
        about: "saved_model.pb is a FIFO (reading it blocked forever)",
        files: vec![
            (
                "model/variables/variables.index",
                index_file(&[header_entry()]),
            ),
            ("model/variables/variables.data-00000-of-00001", Vec::new()),
        ],
        special: vec![Special::Fifo("model/saved_model.pb")],
        args: freeze_saved_model(),
        expect: Expect::Error,
    });
    cases.push(Case {
        name: "c11_dev_zero_saved_model",
        class: 11,
        about: "saved_model.pb is a symlink to /dev/zero (read until memory ran out)",
        files: vec![(
            "model/variables/variables.index",
            index_file(&[header_entry()]),
        )],
        special: vec![Special::Symlink("model/saved_model.pb", "/dev/zero")],
        args: vec!["inspect".into(), "{dir}/model".into()],
        expect: Expect::Error,
    });
    cases.push(Case {
        name: "c11_dev_zero_index",
        class: 11,
        about: "the checkpoint index is a symlink to /dev/zero",
        files: vec![("model/saved_model.pb", small_saved_model.clone())],
        special: vec![Special::Symlink(
            "model/variables/variables.index",
            "/dev/zero",
        )],
        args: freeze_saved_model(),
        expect: Expect::Error,
    });
    cases.push(Case {
        name: "c11_fifo_shard",
        class: 11,
        about: "a checkpoint data shard is a FIFO",
        files: vec![
            ("model.pb", pb(&variable_graph(&[1]))),
            (
                "ckpt.index",
                index_file(&[
                    header_entry(),
                    (
                        b"v".to_vec(),
                        BundleEntryProto {
                            dtype: DtFloat as i32,
                            shape: Some(shape(&[1])),
                            size: 4,
                            ..Default::default()
                        }
                        .encode_to_vec(),
                    ),
                ]),
            ),
        ],
        special: vec![Special::Fifo("ckpt.data-00000-of-00001")],
        args: freeze_tf1(),
        expect: Expect::Error,
    });
    cases.push(Case {
        name: "c11_sparse_graph",
        class: 11,
        about: "the graph is a sparse file of 1 GiB occupying nothing on disk (its length was \
                neither capped nor charged: read and walked whole)",
        files: Vec::new(),
        special: vec![Special::Sparse("model.pb", 1 << 30)],
        args: vec!["summarize".into(), "{dir}/model.pb".into()],
        expect: Expect::Error,
    });
    cases.push(Case {
        name: "c11_fifo_graph",
        class: 11,
        about: "the graph given to summarize is a FIFO",
        files: Vec::new(),
        special: vec![Special::Fifo("model.pb")],
        args: vec!["summarize".into(), "{dir}/model.pb".into()],
        expect: Expect::Error,
    });

    // 12: fold_constants without outputs.
    cases.push(model_case(
        "c12_constant_sink_without_outputs",
        12,
        "fold_constants without --outputs on a graph whose sink is fully constant",
        graph(vec![
            floats("a", &[], &[1.0]),
            floats("b", &[], &[2.0]),
            node("sum", "AddV2", &["a", "b"], vec![t(f)]),
            node("out", "Identity", &["sum"], vec![t(f)]),
        ]),
        transform("fold_constants", ""),
        Expect::Success,
    ));

    // 13: leftovers of killed writers.
    cases.push(Case {
        name: "c13_stale_temporary",
        class: 13,
        about: "the output directory holds the temporary file of a writer that was killed",
        files: vec![("model.pb", pb(&graph(vec![floats("out", &[], &[1.0])])))],
        special: vec![Special::DeadTemporary(".out.pb.4294967294.tmp")],
        args: transform("sort_by_execution_order", "out"),
        expect: Expect::Success,
    });

    // 1: an Einsum output label listed twice ('ij->jj') once failed an assertion.
    cases.push(model_case(
        "c01_einsum_repeated_output_label",
        1,
        "an Einsum whose output repeats a label, run by the evaluator",
        graph(vec![
            floats("a", &[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            node(
                "y",
                "Einsum",
                &["a"],
                vec![t(f), ("N", int(1)), ("equation", string("ij->jj"))],
            ),
        ]),
        verify(),
        Expect::Error,
    ));

    // 1: legalize for tract turned a Pad of 2^62 into Const blocks of that size (ndarray
    // panicked on the overflowing shape).
    cases.push(model_case(
        "c01_legalize_pad_huge_paddings",
        1,
        "legalize(target=tract) on a Pad by 2^62: the pad-value blocks are never built",
        huge_pad(),
        transform("legalize(target=tract)", "out"),
        Expect::Success,
    ));

    // 1 and 2: flatten_atrous_conv on a depthwise atrous pattern computed the dilated
    // filter's size (and the padding it implies) from the model's block shape and paddings.
    // The overflowing patterns are left alone; the filter over the budget is refused.
    for (case, class, about, block, pads, crops, expect) in [
        (
            "c01_flatten_atrous_block_overflow",
            1,
            "flatten_atrous_conv on a depthwise atrous pattern with block shape 2^62",
            [1i64 << 62, 1],
            [0i64; 4],
            [0i64; 4],
            Expect::Success,
        ),
        (
            "c01_flatten_atrous_paddings_overflow",
            1,
            "flatten_atrous_conv on an atrous pattern padded by 2^63 - 1 and cropped by -1",
            [2, 2],
            [i64::MAX; 4],
            [-1; 4],
            Expect::Success,
        ),
        (
            "c02_flatten_atrous_dilated_filter",
            2,
            "flatten_atrous_conv on a depthwise atrous pattern whose dilated 3x3 filter has \
             (2^21 + 1)^2 taps",
            [1 << 20, 1 << 20],
            [0; 4],
            [0; 4],
            Expect::Error,
        ),
    ] {
        cases.push(model_case(
            case,
            class,
            about,
            atrous_pattern(block, pads, crops),
            transform("flatten_atrous_conv", "out"),
            expect,
        ));
    }

    // 14: names that break error lines.
    cases.push(model_case(
        "c14_name_with_control_characters",
        14,
        "a node name holding a newline and a terminal escape sequence, in an error",
        graph(vec![node(
            "bad\nname\u{1b}[2J",
            "Identity",
            &["missing\n\u{1b}[31m"],
            vec![t(f)],
        )]),
        vec!["summarize".into(), "{dir}/model.pb".into()],
        Expect::Error,
    ));

    cases.extend(superlinear::cases());
    cases
}
