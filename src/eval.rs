//! Running an embedded graph with graphopt's reference evaluator (feature `eval`).

use std::collections::BTreeMap;

use graphopt_core::proto::GraphDef;
use graphopt_core::tensor::{Data, Tensor};

use crate::TensorSpec;

pub use graphopt_core::eval::EvalError;
pub use graphopt_core::tensor::{Data as TensorData, Tensor as Value};

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the embedded graph does not decode: {0}")]
    Decode(String),
    #[error("input '{name}': {message}")]
    Input { name: String, message: String },
    #[error("{0}")]
    Eval(#[from] EvalError),
}

/// A float output: its values, flat and row-major, and its shape.
pub type FloatOutput = (Vec<f32>, Vec<usize>);

/// A decoded graph, ready to run.
#[derive(Debug, Clone)]
pub struct Model {
    graph: GraphDef,
}

impl Model {
    /// Decodes GraphDef bytes, such as a module's `GRAPH_DEF`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        let (graph, _) =
            graphopt_core::io::decode_graph(bytes.to_vec().into(), "GRAPH_DEF".as_ref())
                .map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Model { graph })
    }

    /// Runs the graph on float inputs (one flat row-major buffer per input, shaped by `dims`,
    /// where -1 dimensions of the spec are taken from the buffer length) and returns the
    /// requested outputs as flat f32 buffers with their shapes.
    pub fn run_f32(
        &self,
        inputs: &[(TensorSpec, &[f32], &[usize])],
        outputs: &[TensorSpec],
    ) -> Result<Vec<FloatOutput>, Error> {
        let mut feeds = BTreeMap::new();
        for (spec, values, dims) in inputs {
            let array = ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(dims), values.to_vec())
                .map_err(|e| Error::Input {
                    name: spec.name.into(),
                    message: e.to_string(),
                })?;
            if !spec.shape.accepts(dims) {
                return Err(Error::Input {
                    name: spec.name.into(),
                    message: format!("shape {dims:?} does not fit {}", spec.shape),
                });
            }
            feeds.insert(spec.name.to_string(), Tensor::from_data(Data::F32(array)));
        }
        let fetches: Vec<String> = outputs.iter().map(|o| o.tensor.to_string()).collect();
        let values =
            graphopt_core::eval::evaluate(&self.graph, &feeds, &fetches, Default::default())?;
        Ok(values
            .into_iter()
            .map(|t| {
                let shape = t.shape().to_vec();
                let flat = match graphopt_core::eval::cast_tensor(
                    &t,
                    graphopt_core::proto::DataType::DtFloat,
                )
                .map(Tensor::into_data)
                {
                    Ok(Data::F32(a)) => a.iter().copied().collect(),
                    _ => Vec::new(),
                };
                (flat, shape)
            })
            .collect())
    }
}
