//! Freezing without TensorFlow: TF1 graphs with variables plus their checkpoint, and TF2
//! SavedModels, into frozen GraphDefs whose variables are Consts.

pub mod checkpoint;
pub mod saved_model;
mod tf1;

pub use saved_model::{freeze_saved_model, Frozen, SavedModelOptions};
pub use tf1::{freeze_graph, read_meta_graph};

/// Why a model could not be frozen. Each variant names what is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FreezeError {
    #[error("{0}")]
    Checkpoint(#[from] checkpoint::CheckpointError),
    #[error("output '{0}' is not a node of the graph")]
    NoOutput(String),
    #[error("variable '{variable}' has no value in the checkpoint (looked for '{key}')")]
    NoValue { variable: String, key: String },
    #[error(
        "variable '{variable}' (checkpoint tensor '{key}'): the checkpoint holds {found}, the \
         graph declares {declared}"
    )]
    Mismatch {
        variable: String,
        key: String,
        found: String,
        declared: String,
    },
    #[error("variable '{variable}' (checkpoint tensor '{key}'): {message}")]
    TooLarge {
        variable: String,
        key: String,
        /// The checkpoint, the value's size, the frozen constants' total and the budget's
        /// refusal.
        message: String,
    },
    #[error("{0}")]
    SavedModel(String),
}

impl From<FreezeError> for crate::Error {
    fn from(error: FreezeError) -> Self {
        crate::Error::Freeze(error.to_string())
    }
}
