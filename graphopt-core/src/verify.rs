//! Comparing two graphs numerically: run both through the reference evaluator on the same
//! seeded inputs and report, per output, how far the second is from the first. This is what
//! `graphopt verify ORIGINAL OPTIMIZED` prints.

use std::collections::BTreeMap;

use ndarray::{ArrayD, IxDyn};
use serde::Serialize;

use crate::eval::{self, Options};
use crate::graph::attrs;
use crate::proto::{DataType, GraphDef};
use crate::tensor::{Data, Tensor};
use crate::{graph, summary};

/// What to compare.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Input node names; default: the original graph's Placeholders.
    pub inputs: Vec<String>,
    /// Output tensors; default: the original graph's likely outputs.
    pub outputs: Vec<String>,
    /// Seed of the input generator.
    pub seed: u64,
    /// Size used for dimensions the graph leaves unknown.
    pub unknown_dim: usize,
}

/// The comparison of one output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputError {
    pub name: String,
    pub shape: Vec<usize>,
    /// Largest |optimized - original|.
    pub max_abs_error: f64,
    /// `max_abs_error` divided by the largest |original| (0 when both are all zero).
    pub max_rel_error: f64,
    /// Non-float outputs compare exactly: whether all elements are equal.
    pub exact_match: Option<bool>,
}

/// The inputs used and the per-output errors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub seed: u64,
    pub inputs: Vec<String>,
    pub outputs: Vec<OutputError>,
}

impl Report {
    /// The largest relative error over all outputs (infinite for a non-float mismatch).
    pub fn worst(&self) -> f64 {
        self.outputs
            .iter()
            .map(|o| {
                if o.exact_match == Some(false) {
                    f64::INFINITY
                } else {
                    o.max_rel_error
                }
            })
            .fold(0.0, f64::max)
    }
}

/// Why a comparison could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("input '{0}' is not a Placeholder with a known dtype in the original graph")]
    BadInput(String),
    #[error("input '{name}': {message}")]
    Input { name: String, message: String },
    #[error("the original graph: {0}")]
    Original(eval::EvalError),
    #[error("the optimized graph: {0}")]
    Optimized(eval::EvalError),
    #[error("no outputs to compare; name them (--outputs, or Model::outputs)")]
    NoOutputs,
    #[error("output '{name}': shapes differ, {original:?} in the original and {optimized:?} in the optimized graph")]
    ShapeMismatch {
        name: String,
        original: Vec<usize>,
        optimized: Vec<usize>,
    },
    #[error("output '{name}': dtypes differ, {original:?} in the original and {optimized:?} in the optimized graph")]
    DtypeMismatch {
        name: String,
        original: DataType,
        optimized: DataType,
    },
}

/// A small deterministic generator (SplitMix64): inputs must be identical for every run and
/// platform, which is all this needs.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 52) as f64 - 1.0
    }
}

/// A seeded input of `dims`, asked of the budget first (the dims come from the model).
fn seeded_input(
    dtype: DataType,
    dims: &[usize],
    rng: &mut SplitMix,
) -> Result<Option<Tensor>, String> {
    let n = crate::analysis::geometry::element_count(dims).map_err(|e| e.to_string())?;
    // The values are generated as f64, then cast.
    let element = crate::tensor::memory_element_size(dtype).max(8);
    crate::budget::alloc_items(n, element * 2, "a seeded input").map_err(|e| e.to_string())?;
    crate::budget::work(n as u64).map_err(|e| e.to_string())?;
    Ok(seeded_values(dtype, dims, n, rng))
}

fn seeded_values(dtype: DataType, dims: &[usize], n: usize, rng: &mut SplitMix) -> Option<Tensor> {
    let shape = IxDyn(dims);
    let data = match dtype {
        DataType::DtBool => Data::Bool(
            ArrayD::from_shape_vec(shape, (0..n).map(|_| rng.next() & 1 == 1).collect()).ok()?,
        ),
        DataType::DtInt32
        | DataType::DtInt64
        | DataType::DtUint8
        | DataType::DtInt8
        | DataType::DtInt16
        | DataType::DtUint16 => {
            // Small non-negative integers: valid as indices and lengths for most graphs.
            let values: Vec<f64> = (0..n).map(|_| (rng.next() % 4) as f64).collect();
            let wide = Tensor::from_data(Data::F64(ArrayD::from_shape_vec(shape, values).ok()?));
            return eval::cast_tensor(&wide, dtype).ok();
        }
        _ => {
            let values: Vec<f64> = (0..n).map(|_| rng.unit()).collect();
            let wide = Tensor::from_data(Data::F64(ArrayD::from_shape_vec(shape, values).ok()?));
            return eval::cast_tensor(&wide, dtype).ok();
        }
    };
    Some(Tensor::from_data(data))
}

fn as_f64(t: &Tensor) -> Option<Vec<f64>> {
    t.floats()
}

/// Runs `original` and `optimized` on the same seeded inputs and measures the difference,
/// under the current budget (or a default one for both graphs' size).
pub fn compare(
    original: &GraphDef,
    optimized: &GraphDef,
    options: &VerifyOptions,
) -> Result<Report, VerifyError> {
    use prost::Message as _;
    let size = (original.encoded_len() as u64).saturating_add(optimized.encoded_len() as u64);
    crate::budget::enter_or_default(|| size, || compare_in(original, optimized, options))
}

fn compare_in(
    original: &GraphDef,
    optimized: &GraphDef,
    options: &VerifyOptions,
) -> Result<Report, VerifyError> {
    let index = graph::GraphIndex::new(original);
    let inputs: Vec<String> = if options.inputs.is_empty() {
        original
            .node
            .iter()
            .filter(|n| n.op == "Placeholder")
            .map(|n| n.name.clone())
            .collect()
    } else {
        options
            .inputs
            .iter()
            .map(|n| graph::node_name(n).to_string())
            .collect()
    };
    let mut rng = SplitMix(options.seed);
    let mut feeds = BTreeMap::new();
    for name in &inputs {
        let node = index
            .node(name)
            .ok_or_else(|| VerifyError::BadInput(name.clone()))?;
        let dtype =
            attrs::dtype(node, "dtype").ok_or_else(|| VerifyError::BadInput(name.clone()))?;
        let dims: Vec<usize> = match attrs::shape(node, "shape") {
            Some(s) if !s.unknown_rank => s
                .dim
                .iter()
                .map(|d| usize::try_from(d.size).unwrap_or(options.unknown_dim.max(1)))
                .collect(),
            _ => vec![options.unknown_dim.max(1)],
        };
        let value = seeded_input(dtype, &dims, &mut rng)
            .map_err(|message| VerifyError::Input {
                name: name.clone(),
                message,
            })?
            .ok_or_else(|| VerifyError::BadInput(name.clone()))?;
        feeds.insert(name.clone(), value);
    }
    let outputs: Vec<String> = if options.outputs.is_empty() {
        summary::summarize(original, None)
            .outputs
            .into_iter()
            .filter(|o| o.op != "NoOp")
            .map(|o| o.name)
            .collect()
    } else {
        options.outputs.clone()
    };
    if outputs.is_empty() {
        return Err(VerifyError::NoOutputs);
    }
    // Compared, not written: the fast matrix product.
    let run_options = Options {
        gemm: eval::Gemm::Fast,
        ..Options::default()
    };
    // A graph only gets the feeds it has nodes for (the optimized one may have lost unused inputs).
    let feeds_for = |g: &GraphDef| -> BTreeMap<String, Tensor> {
        let names = graph::GraphIndex::new(g);
        feeds
            .iter()
            .filter(|(name, _)| names.index_of(name).is_some())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let before = eval::evaluate(original, &feeds_for(original), &outputs, run_options)
        .map_err(VerifyError::Original)?;
    let after = eval::evaluate(optimized, &feeds_for(optimized), &outputs, run_options)
        .map_err(VerifyError::Optimized)?;
    let mut errors = Vec::with_capacity(outputs.len());
    for ((name, a), b) in outputs.iter().zip(&before).zip(&after) {
        if a.shape() != b.shape() {
            return Err(VerifyError::ShapeMismatch {
                name: name.clone(),
                original: a.shape().to_vec(),
                optimized: b.shape().to_vec(),
            });
        }
        if a.dtype() != b.dtype() {
            return Err(VerifyError::DtypeMismatch {
                name: name.clone(),
                original: a.dtype(),
                optimized: b.dtype(),
            });
        }
        let (max_abs_error, max_rel_error, exact_match) = match (as_f64(a), as_f64(b)) {
            (Some(x), Some(y)) => {
                let scale = x.iter().fold(0f64, |m, v| m.max(v.abs()));
                let mut abs = 0f64;
                for (p, q) in x.iter().zip(&y) {
                    let d = if p.is_nan() && q.is_nan() {
                        0.0
                    } else {
                        (p - q).abs()
                    };
                    abs = abs.max(if d.is_nan() { f64::INFINITY } else { d });
                }
                let rel = if abs == 0.0 {
                    0.0
                } else {
                    abs / scale.max(f64::MIN_POSITIVE)
                };
                (abs, rel, None)
            }
            _ => (0.0, 0.0, Some(a == b)),
        };
        errors.push(OutputError {
            name: name.clone(),
            shape: a.shape().to_vec(),
            max_abs_error,
            max_rel_error,
            exact_match,
        });
    }
    Ok(Report {
        seed: options.seed,
        inputs,
        outputs: errors,
    })
}
