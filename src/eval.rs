//! Running an embedded graph with graphopt's reference evaluator (feature `eval`).
//!
//! ```
//! # mod digits {
//! #     // What `graphopt::include_model!(digits)` generates, in short, for the digits example's model.
//! #     use graphopt::{DType, Shape, TensorSpec};
//! #     pub static GRAPH_DEF: &[u8] = include_bytes!("../examples/digits/models/digits.pb");
//! #     pub mod inputs { use super::*; pub const IMAGE: TensorSpec = TensorSpec::__new("image", "image:0", DType::Float, Shape::Known(&[-1, 8, 8, 1])); }
//! #     pub mod outputs { use super::*; pub const PROBS: TensorSpec = TensorSpec::__new("probs", "probs:0", DType::Float, Shape::Known(&[-1, 10])); }
//! # }
//! # fn main() -> Result<(), graphopt::eval::Error> {
//! // At the crate root: graphopt::include_model!(digits);
//! use graphopt::eval::{Model, Tensor};
//!
//! let model = Model::from_bytes(digits::GRAPH_DEF)?;       // borrows the embedded bytes
//! let pixels = vec![0.5f32; 64];
//! // f32 in, f32 out:
//! let outputs = model.run_f32(&[(digits::inputs::IMAGE, &pixels, &[1, 8, 8, 1])], &[digits::outputs::PROBS])?;
//! let (probs, shape) = &outputs[0];
//! assert_eq!(shape, &[1, 10]);
//! // Any element type (`Tensor::new(&[3i32, 1, 4], &[1, 3])` for int32 tokens, say):
//! let image = Tensor::new(&pixels, &[1, 8, 8, 1])?;
//! let typed = model.run(&[(digits::inputs::IMAGE, image)], &[digits::outputs::PROBS])?;
//! let values: Option<Vec<f32>> = typed[0].to_vec();        // None if the elements are not f32
//! assert_eq!(values.as_ref(), Some(probs));
//! # Ok(()) }
//! ```
//!
//! The evaluator is checked against TensorFlow kernel by kernel. A [`Model`] decodes its
//! weights on the first run and keeps them (memory about the size of the weights), and keeps
//! the buffers its runs free (at most 32 MiB) for the next run's outputs, so later runs only
//! compute; elementwise nodes write over inputs nothing else reads, Keras' swish runs as one
//! pass, and matrix products use matrixmultiply's packed kernels. With the `threads` feature,
//! matrix products, depthwise convolutions and long elementwise runs are split over a pool of
//! threads, one per core (`MATMUL_NUM_THREADS` sets how many; the results are bit-identical
//! to one thread's). Figures against TensorFlow's own run time are in `docs/benchmarks.md`.
//!
//! A run is unbounded by default: the embedded model is the app's own, built and checked at
//! compile time, so no memory or work budget and no cap on a while loop's iterations (an
//! infinite loop runs forever, as in TensorFlow). One guard stays: a single tensor over 4 GiB
//! is an [`Error::Eval`] naming the node, not an allocation whose failure would abort the
//! process. An app that runs graphs it did not build, or feeds dimensions from outside, can
//! bound each run with [`Model::with_limits`]; past a limit the run is an [`Error::Eval`]
//! naming the node.

use std::collections::BTreeMap;

use graphopt_core::budget::{Budget, Remedy};
use graphopt_core::proto::{DataType, GraphDef};
use graphopt_core::tensor::Data;
use ndarray::{ArrayD, IxDyn};

use crate::{DType, TensorSpec};

/// Why a model could not be loaded or run. One line each.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a GraphDef graphopt can read.
    #[error("the graph does not decode: {0}")]
    Decode(String),
    /// A flat buffer does not have as many values as its dimensions need.
    #[error("{count} values do not fill {dims:?}")]
    Fill { count: usize, dims: Vec<usize> },
    /// Dimensions whose sizes other than zero multiply past the address space.
    #[error("dimensions {dims:?} are too large to address")]
    TooLarge { dims: Vec<usize> },
    /// An input does not fit the model's input.
    #[error("input '{name}': {message}")]
    Input { name: String, message: String },
    /// An output is not of the type asked for.
    #[error("output '{name}': {message}")]
    Output { name: String, message: String },
    /// The evaluator failed (an op it lacks, a missing input, a limit).
    #[error("{0}")]
    Eval(String),
}

/// TensorFlow's `half` and `bfloat16` elements, as the `half` crate defines them.
pub use half::{bf16, f16};

/// A float output: its values, flat and row-major, and its shape.
pub type FloatOutput = (Vec<f32>, Vec<usize>);

mod private {
    pub trait Sealed: Sized {
        fn wrap(array: ndarray::ArrayD<Self>) -> graphopt_core::tensor::Data;
        fn unwrap(data: &graphopt_core::tensor::Data) -> Option<&ndarray::ArrayD<Self>>;
    }
}

/// An element type a [`Tensor`] can hold: `f32`, `f64`, [`f16`](struct@f16), [`bf16`], `i8`, `i16`, `i32`,
/// `i64`, `u8`, `u16`, `u32`, `u64`, `bool`.
pub trait Element: Copy + private::Sealed {
    /// The TensorFlow type of such elements.
    const DTYPE: DType;
}

macro_rules! elements {
    ($($t:ty => $variant:ident, $dtype:ident;)*) => {$(
        impl private::Sealed for $t {
            fn wrap(array: ArrayD<Self>) -> Data {
                Data::$variant(array)
            }
            fn unwrap(data: &Data) -> Option<&ArrayD<Self>> {
                match data {
                    Data::$variant(array) => Some(array),
                    _ => None,
                }
            }
        }
        impl Element for $t {
            const DTYPE: DType = DType::$dtype;
        }
    )*};
}

elements! {
    f32 => F32, Float;
    f64 => F64, Double;
    f16 => F16, Half;
    bf16 => BF16, BFloat16;
    i8 => I8, Int8;
    i16 => I16, Int16;
    i32 => I32, Int32;
    i64 => I64, Int64;
    u8 => U8, UInt8;
    u16 => U16, UInt16;
    u32 => U32, UInt32;
    u64 => U64, UInt64;
    bool => Bool, Bool;
}

/// A tensor to feed to or read from a model: typed values with a shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor(graphopt_core::tensor::Tensor);

impl Tensor {
    /// A tensor of `dims` from flat row-major `values`, which must fill it exactly
    /// (`&[]` dims for a scalar of one value).
    pub fn new<T: Element>(values: &[T], dims: &[usize]) -> Result<Tensor, Error> {
        let fill = || Error::Fill {
            count: values.len(),
            dims: dims.to_vec(),
        };
        let needed = dims
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(fill)?;
        if needed != values.len() {
            return Err(fill());
        }
        // The values fill the dims; what ndarray can still refuse is dims whose nonzero
        // sizes multiply past the address space (with a zero among them).
        let array =
            ArrayD::from_shape_vec(IxDyn(dims), values.to_vec()).map_err(|_| Error::TooLarge {
                dims: dims.to_vec(),
            })?;
        Ok(Tensor(graphopt_core::tensor::Tensor::from_data(T::wrap(
            array,
        ))))
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        DType::from_tf_enum(self.0.dtype() as i32).unwrap_or(DType::Variant)
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        self.0.shape()
    }

    /// The values, flat and row-major, if the elements are `T`s; no conversion.
    pub fn to_vec<T: Element>(&self) -> Option<Vec<T>> {
        T::unwrap(self.0.data()).map(|a| a.iter().copied().collect())
    }
}

/// Where a run past [`Model::with_limits`] points the user.
const LIMITS: Remedy = Remedy {
    memory: "the limits given to Model::with_limits",
    work: "the limits given to Model::with_limits",
};

/// A decoded graph, ready to run.
#[derive(Clone)]
pub struct Model {
    graph: GraphDef,
    /// Memory bytes and element operations one run may take; `None`: unbounded.
    limits: Option<(u64, u64)>,
    /// The weights, decoded on the first run and shared by later runs (and by clones).
    constants: std::sync::Arc<graphopt_core::eval::Constants>,
}

/// A summary: the graph's size, the limits and the decoded weights, not the weights'
/// values.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let functions = self.graph.library.as_ref().map_or(0, |l| l.function.len());
        f.debug_struct("Model")
            .field("nodes", &self.graph.node.len())
            .field("functions", &functions)
            .field("limits", &self.limits)
            .field("constants", &self.constants)
            .finish()
    }
}

impl Model {
    /// Decodes GraphDef bytes such as a module's `GRAPH_DEF`. The graph borrows them; the
    /// first run decodes the weights into tensors that every later run (and every clone of the
    /// model) shares.
    pub fn from_bytes(bytes: &'static [u8]) -> Result<Self, Error> {
        Self::decode(bytes::Bytes::from_static(bytes), "Model::from_bytes")
    }

    /// Decodes GraphDef bytes the model takes over (read from a file, say), without copying
    /// the weights again. Its inputs and outputs are named with [`TensorSpec::new`].
    pub fn from_vec(bytes: Vec<u8>) -> Result<Self, Error> {
        Self::decode(bytes::Bytes::from(bytes), "Model::from_vec")
    }

    /// The graph in `bytes`; errors name `source`, the constructor given them.
    fn decode(bytes: bytes::Bytes, source: &str) -> Result<Self, Error> {
        let (graph, _) = graphopt_core::io::decode_graph(bytes, source.as_ref())
            .map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Model {
            graph,
            limits: None,
            constants: Default::default(),
        })
    }

    /// Bounds each run to `memory_bytes` held at once and `operations` element operations
    /// (a multiply-add, a copied element, a loop iteration): a run past either is an
    /// [`Error::Eval`] naming the node, not an exhausted machine. A bounded run also caps a
    /// while loop at a million iterations. For graphs from elsewhere; the embedded model is
    /// unbounded by default.
    pub fn with_limits(mut self, memory_bytes: u64, operations: u64) -> Self {
        self.limits = Some((memory_bytes, operations));
        self
    }

    /// Runs the graph: each input tensor must have the spec's dtype and fit its shape (same
    /// rank, equal where the spec knows a dimension). Returns the requested outputs, in
    /// order. An input given twice is an error, as is one that is not its node's first
    /// output (`split:1`): the evaluator feeds nodes, not their other outputs.
    pub fn run(
        &self,
        inputs: &[(TensorSpec, Tensor)],
        outputs: &[TensorSpec],
    ) -> Result<Vec<Tensor>, Error> {
        let mut feeds = BTreeMap::new();
        for (spec, tensor) in inputs {
            let input = |message: String| Error::Input {
                name: spec.name.into(),
                message,
            };
            if tensor.dtype() != spec.dtype {
                return Err(input(format!(
                    "got {} values, the model takes {}",
                    tensor.dtype().name(),
                    spec.dtype.name()
                )));
            }
            if !spec.shape.accepts(tensor.shape()) {
                return Err(input(format!(
                    "shape {:?} does not fit {}",
                    tensor.shape(),
                    spec.shape
                )));
            }
            // The evaluator feeds a node by its name: its first output.
            let port = spec.tensor.rsplit_once(':').map(|(_, p)| p);
            if let Some(port) = port.and_then(|p| p.parse::<u64>().ok()).filter(|&p| p != 0) {
                return Err(input(format!(
                    "'{}' is the node's output {port}, and graphopt's evaluator feeds only a node's first output",
                    spec.tensor
                )));
            }
            if feeds.contains_key(spec.name) {
                return Err(input("given twice".into()));
            }
            feeds.insert(spec.name.to_string(), tensor.0.clone());
        }
        let fetches: Vec<String> = outputs.iter().map(|o| o.tensor.to_string()).collect();
        let budget = match self.limits {
            Some((memory, operations)) => Budget::set_by(memory, operations, LIMITS),
            None => Budget::unlimited(),
        };
        let values = budget
            .enter(|| {
                graphopt_core::eval::evaluate_cached(
                    &self.graph,
                    &self.constants,
                    &feeds,
                    &fetches,
                    self.options(),
                )
            })
            .map_err(|e| Error::Eval(e.to_string()))?;
        Ok(values.into_iter().map(Tensor).collect())
    }

    /// The evaluator's options for a run: unbounded, no cap on a loop's iterations; with
    /// limits, the evaluator's default cap as well. One tensor stays capped at 4 GiB either
    /// way: past it an allocation is refused with an error rather than tried (a failed
    /// allocation aborts the process).
    fn options(&self) -> graphopt_core::eval::Options {
        let bounded = graphopt_core::eval::Options::default();
        let max_iterations = match self.limits {
            Some(_) => bounded.max_iterations,
            None => u64::MAX,
        };
        // Results the app reads, not artifacts: the fast matrix product.
        graphopt_core::eval::Options {
            max_iterations,
            gemm: graphopt_core::eval::Gemm::Fast,
            ..bounded
        }
    }

    /// Runs the graph on f32 inputs, each a flat row-major buffer with its dimensions (every
    /// dimension given, also where the spec's is -1), and returns the outputs as flat f32
    /// buffers with their shapes. Outputs of other numeric types are converted to f32; one
    /// that cannot be (a string, say) is an error.
    pub fn run_f32(
        &self,
        inputs: &[(TensorSpec, &[f32], &[usize])],
        outputs: &[TensorSpec],
    ) -> Result<Vec<FloatOutput>, Error> {
        let tensors = inputs
            .iter()
            .map(|(spec, values, dims)| {
                Tensor::new(values, dims)
                    .map(|t| (*spec, t))
                    .map_err(|e| Error::Input {
                        name: spec.name.into(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let values = self.run(&tensors, outputs)?;
        values
            .into_iter()
            .zip(outputs)
            .map(|(t, spec)| {
                let shape = t.shape().to_vec();
                match graphopt_core::eval::cast_tensor(&t.0, DataType::DtFloat)
                    .map(graphopt_core::tensor::Tensor::into_data)
                {
                    Ok(Data::F32(a)) => Ok((a.iter().copied().collect(), shape)),
                    _ => Err(Error::Output {
                        name: spec.tensor.into(),
                        message: format!("{} values do not convert to f32", t.dtype().name()),
                    }),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shape;

    use graphopt_core::proto::{attr_value::Value, AttrValue, NodeDef};

    fn node(name: &str, op: &str, input: &[&str], attrs: Vec<(&str, Value)>) -> NodeDef {
        NodeDef {
            name: name.into(),
            op: op.into(),
            input: input.iter().map(|i| i.to_string()).collect(),
            attr: attrs
                .into_iter()
                .map(|(k, v)| (k.to_string(), AttrValue { value: Some(v) }))
                .collect(),
            ..Default::default()
        }
    }

    fn model_of(node: Vec<NodeDef>) -> Model {
        let graph = GraphDef {
            node,
            ..Default::default()
        };
        Model::from_vec(graphopt_core::io::encode_graph(&graph)).unwrap()
    }

    /// y = x * 2 with x: float [-1, 2], and a string constant `label`.
    fn model() -> Model {
        let float = DataType::DtFloat as i32;
        let x_shape = graphopt_core::proto::TensorShapeProto {
            dim: [-1, 2]
                .into_iter()
                .map(|size| graphopt_core::proto::tensor_shape_proto::Dim {
                    size,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let constant = |data: Data| {
            Value::Tensor(Box::new(
                graphopt_core::tensor::Tensor::from_data(data).to_proto(),
            ))
        };
        let two = ArrayD::from_shape_vec(IxDyn(&[]), vec![2.0f32]).unwrap();
        let label =
            ArrayD::from_shape_vec(IxDyn(&[]), vec![bytes::Bytes::from_static(b"a")]).unwrap();
        let graph = GraphDef {
            node: vec![
                node(
                    "x",
                    "Placeholder",
                    &[],
                    vec![
                        ("dtype", Value::Type(float)),
                        ("shape", Value::Shape(x_shape)),
                    ],
                ),
                node(
                    "two",
                    "Const",
                    &[],
                    vec![
                        ("dtype", Value::Type(float)),
                        ("value", constant(Data::F32(two))),
                    ],
                ),
                node("y", "Mul", &["x", "two"], vec![("T", Value::Type(float))]),
                node(
                    "label",
                    "Const",
                    &[],
                    vec![
                        ("dtype", Value::Type(DataType::DtString as i32)),
                        ("value", constant(Data::Str(label))),
                    ],
                ),
            ],
            ..Default::default()
        };
        Model::from_vec(graphopt_core::io::encode_graph(&graph)).unwrap()
    }

    const X: TensorSpec = TensorSpec {
        name: "x",
        tensor: "x:0",
        dtype: DType::Float,
        shape: Shape::Known(&[-1, 2]),
    };
    const Y: TensorSpec = TensorSpec {
        name: "y",
        tensor: "y:0",
        dtype: DType::Float,
        shape: Shape::Known(&[-1, 2]),
    };
    const LABEL: TensorSpec = TensorSpec {
        name: "label",
        tensor: "label:0",
        dtype: DType::String,
        shape: Shape::Known(&[]),
    };

    /// A float32 tensor of unknown shape.
    fn float_spec(name: &'static str, tensor: &'static str) -> TensorSpec {
        TensorSpec {
            name,
            tensor,
            dtype: DType::Float,
            shape: Shape::Unknown,
        }
    }

    #[test]
    fn embedded_bytes_are_borrowed_not_copied() {
        static GRAPH: &[u8] = include_bytes!("../tests/fixtures/models/tf1_conv_bn.pb");
        let model = Model::from_bytes(GRAPH).unwrap();
        let range = GRAPH.as_ptr_range();
        let weights: Vec<&[u8]> = model
            .graph
            .node
            .iter()
            .filter_map(|n| match n.attr.get("value")?.value.as_ref()? {
                graphopt_core::proto::attr_value::Value::Tensor(t) => Some(&t.tensor_content[..]),
                _ => None,
            })
            .filter(|c| !c.is_empty())
            .collect();
        assert!(!weights.is_empty());
        assert!(weights.iter().all(|w| range.contains(&w.as_ptr())));
    }

    #[test]
    fn runs_f32_and_typed_tensors() {
        let out = model()
            .run_f32(&[(X, &[1.0, 2.0, 3.0, 4.0], &[2, 2])], &[Y])
            .unwrap();
        assert_eq!(out, vec![(vec![2.0, 4.0, 6.0, 8.0], vec![2, 2])]);
        let x = Tensor::new(&[0.5f32, -1.0], &[1, 2]).unwrap();
        let y = model().run(&[(X, x)], &[Y]).unwrap();
        assert_eq!(y[0].dtype(), DType::Float);
        assert_eq!(y[0].shape(), &[1, 2]);
        assert_eq!(y[0].to_vec::<f32>(), Some(vec![1.0, -2.0]));
        assert_eq!(y[0].to_vec::<i32>(), None);
    }

    #[test]
    fn half_precision_tensors_keep_their_type() {
        let halves = [f16::from_f32(1.5), f16::from_f32(-2.0)];
        let t = Tensor::new(&halves, &[2]).unwrap();
        assert_eq!(t.dtype(), DType::Half);
        assert_eq!(t.to_vec::<f16>(), Some(halves.to_vec()));
        assert_eq!(t.to_vec::<f32>(), None);
        let brains = [bf16::from_f32(0.25)];
        let t = Tensor::new(&brains, &[1, 1]).unwrap();
        assert_eq!(t.dtype(), DType::BFloat16);
        assert_eq!(t.to_vec::<bf16>(), Some(brains.to_vec()));
    }

    #[test]
    fn runs_are_unbounded_unless_limited() {
        // 2^20 inputs: past a 64 KiB limit, well within the default's.
        let x = Tensor::new(&vec![1.0f32; 1 << 20], &[1 << 19, 2]).unwrap();
        // The environment's budget, which graphopt's commands obey, does not reach an app.
        std::env::set_var(graphopt_core::budget::MEMORY_ENV, "64K");
        let y = model().run(&[(X, x.clone())], &[Y]);
        std::env::remove_var(graphopt_core::budget::MEMORY_ENV);
        assert_eq!(y.unwrap()[0].shape(), &[1 << 19, 2]);
        let error = model()
            .with_limits(64 << 10, u64::MAX)
            .run(&[(X, x.clone())], &[Y])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("over the memory budget of 64.0 KiB")
                && error.ends_with("raise the limits given to Model::with_limits)"),
            "{error}"
        );
        let error = model()
            .with_limits(u64::MAX, 1000)
            .run(&[(X, x)], &[Y])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("over the work budget of 1000")
                && error.ends_with("raise the limits given to Model::with_limits)"),
            "{error}"
        );
    }

    #[test]
    fn wrong_inputs_and_outputs_are_one_line_errors() {
        let error = |e: Error| e.to_string();
        assert_eq!(
            error(Tensor::new(&[0f32; 3072], &[1, 32, 32, 4]).unwrap_err()),
            "3072 values do not fill [1, 32, 32, 4]"
        );
        assert_eq!(
            error(
                model()
                    .run_f32(&[(X, &[1.0; 3], &[2, 2])], &[Y])
                    .unwrap_err()
            ),
            "input 'x': 3 values do not fill [2, 2]"
        );
        assert_eq!(
            error(
                model()
                    .run_f32(&[(X, &[1.0; 6], &[2, 3])], &[Y])
                    .unwrap_err()
            ),
            "input 'x': shape [2, 3] does not fit [-1, 2]"
        );
        let ints = Tensor::new(&[1i32, 2], &[1, 2]).unwrap();
        assert_eq!(
            error(model().run(&[(X, ints)], &[Y]).unwrap_err()),
            "input 'x': got int32 values, the model takes float"
        );
        // A string output cannot become f32: an error, not an empty vector.
        assert_eq!(
            model().run(&[], &[LABEL]).unwrap()[0].dtype(),
            DType::String
        );
        assert_eq!(
            error(model().run_f32(&[], &[LABEL]).unwrap_err()),
            "output 'label:0': string values do not convert to f32"
        );
    }

    #[test]
    fn an_input_given_twice_or_fed_past_its_first_output_is_refused() {
        // An input given twice was the last value, silently.
        let error = model()
            .run_f32(
                &[(X, &[1.0, 2.0], &[1, 2]), (X, &[3.0, 4.0], &[1, 2])],
                &[Y],
            )
            .unwrap_err();
        assert_eq!(error.to_string(), "input 'x': given twice");
        // u = Unpack(x): feeding `u:1` fed the node's first output, and the run failed
        // naming what the model lacks ("has no output 1") rather than what the app asked.
        let float = Value::Type(DataType::DtFloat as i32);
        let unpacked = model_of(vec![
            node("x", "Placeholder", &[], vec![("dtype", float.clone())]),
            node(
                "u",
                "Unpack",
                &["x"],
                vec![
                    ("T", float.clone()),
                    ("num", Value::I(2)),
                    ("axis", Value::I(0)),
                ],
            ),
            node("b", "Neg", &["u:1"], vec![("T", float)]),
        ]);
        let spec = float_spec;
        let error = unpacked
            .run_f32(&[(spec("u", "u:1"), &[5.0], &[])], &[spec("b", "b:0")])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "input 'u': 'u:1' is the node's output 1, and graphopt's evaluator feeds only a node's first output"
        );
        // Its first output, spelled either way, and the node's whole input are fed.
        let x = spec("x", "x:0");
        let out = unpacked
            .run_f32(&[(x, &[1.0, 2.0], &[2])], &[spec("b", "b:0")])
            .unwrap();
        assert_eq!(out, vec![(vec![-2.0], vec![])]);
        let x = spec("x", "x");
        assert!(unpacked
            .run_f32(&[(x, &[1.0, 2.0], &[2])], &[spec("b", "b")])
            .is_ok());
    }

    #[test]
    fn an_unbounded_run_has_no_loop_iteration_cap_but_refuses_one_huge_tensor() {
        // The evaluator's default capped a while loop at a million iterations (an RNN over a
        // long sequence) in a run the docs call unbounded, and the app could not lift it.
        let defaults = graphopt_core::eval::Options::default();
        let options = model().options();
        assert_eq!(options.max_iterations, u64::MAX);
        assert_eq!(options.gemm, graphopt_core::eval::Gemm::Fast);
        // A bounded run keeps the cap, beside the budget it was given.
        let bounded = model().with_limits(1 << 30, 1 << 40).options();
        assert_eq!(bounded.max_iterations, defaults.max_iterations);
        // One tensor's cap stays: a product of [2^20, 0] and [0, 2^20] (4 TiB of zeros) is an
        // error, not an allocation that aborts the process.
        assert_eq!(options.limits, defaults.limits);
        let float = Value::Type(DataType::DtFloat as i32);
        let product = model_of(vec![
            node("a", "Placeholder", &[], vec![("dtype", float.clone())]),
            node("b", "Placeholder", &[], vec![("dtype", float.clone())]),
            node("c", "MatMul", &["a", "b"], vec![("T", float)]),
        ]);
        let spec = float_spec;
        let error = product
            .run_f32(
                &[
                    (spec("a", "a:0"), &[], &[1 << 20, 0]),
                    (spec("b", "b:0"), &[], &[0, 1 << 20]),
                ],
                &[spec("c", "c:0")],
            )
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("node 'c' (MatMul): "), "{error}");
    }

    #[test]
    fn dims_past_the_address_space_are_named_as_such() {
        // No elements, but dims whose other sizes multiply past isize::MAX: ndarray cannot
        // make the array. The error said that no values did not fill them, which they do.
        let error = Tensor::new::<f32>(&[], &[2, 1 << 62, 0]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "dimensions [2, 4611686018427387904, 0] are too large to address"
        );
        let error = model()
            .run_f32(&[(X, &[], &[1 << 62, 2, 0])], &[Y])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "input 'x': dimensions [4611686018427387904, 2, 0] are too large to address"
        );
        // Within it, an empty tensor is made.
        let empty = Tensor::new::<f32>(&[], &[1 << 40, 0]).unwrap();
        assert_eq!(empty.shape(), &[1 << 40, 0]);
    }

    #[test]
    fn a_graph_read_at_run_time_is_run_with_specs_the_app_makes() {
        // from_vec and with_limits are for graphs from elsewhere, but a TensorSpec could only
        // be made by include_model! (or the hidden constructor it calls).
        const INPUT: TensorSpec = TensorSpec::new("x:0", DType::Float, Shape::Known(&[-1, 2]));
        let output = TensorSpec::new("y", DType::Float, Shape::Unknown);
        assert_eq!((INPUT.name, INPUT.tensor, output.name), ("x", "x:0", "y"));
        let out = model()
            .with_limits(1 << 20, 1 << 20)
            .run_f32(&[(INPUT, &[1.0, 2.0], &[1, 2])], &[output])
            .unwrap();
        assert_eq!(out, vec![(vec![2.0, 4.0], vec![1, 2])]);
    }

    #[test]
    fn a_model_debug_prints_a_summary_not_its_weights() {
        // Debug was derived: every node and weight, 973,676 characters for this 343 KB graph
        // (hundreds of MB for a real CNN in an app's `{:?}` of a struct holding its model).
        static GRAPH: &[u8] = include_bytes!("../tests/fixtures/models/dense_mlp.pb");
        let model = Model::from_bytes(GRAPH).unwrap();
        assert_eq!(
            format!("{model:?}"),
            "Model { nodes: 23, functions: 0, limits: None, constants: Constants(0 decoded) }"
        );
        let limited = format!("{:?}", model.with_limits(1 << 20, 1000));
        assert!(
            limited.contains("limits: Some((1048576, 1000))"),
            "{limited}"
        );
    }

    #[test]
    fn bytes_that_are_no_graph_are_an_error_naming_the_constructor() {
        // It said "the embedded graph does not decode: GRAPH_DEF: ..." for bytes from a file.
        let error = |e: Result<Model, Error>| e.map(|_| ()).unwrap_err().to_string();
        assert_eq!(
            error(Model::from_vec(vec![0xff; 10])),
            "the graph does not decode: Model::from_vec: not a GraphDef: as binary protobuf: at byte 0: \
             the data ends in the middle of a field (truncated?)"
        );
        assert_eq!(
            error(Model::from_bytes(&[])),
            "the graph does not decode: Model::from_bytes: the file is empty; expected a GraphDef in binary or text format"
        );
    }
}
