//! graphopt-core: everything about TensorFlow graphs that graphopt does.
//!
//! - [`proto`]: TensorFlow's wire types (GraphDef, NodeDef, TensorProto, SavedModel, ...),
//!   generated from `proto/` with BTreeMap maps so encoding is deterministic.
//! - [`io`]: reading binary or text GraphDefs without copying weights, deterministic writing.
//! - [`graph`]: input parsing, the name/consumer index, validation, execution order.
//! - [`ops`]: output counts and required attributes of the ops graphopt knows.
//! - [`transforms`]: the transform-string grammar, the registry and the transforms.
//! - [`summary`]: what `graphopt summarize` reports.

pub mod edit;
pub mod error;
pub mod eval;
pub mod freeze;
pub mod graph;
pub mod io;
pub mod ops;
pub mod pattern;
pub mod proto;
pub mod summary;
pub mod tensor;
pub mod text_format;
pub mod transforms;
pub mod verify;
pub mod weights;

pub use error::{Error, Result};
