//! Freezing without TensorFlow: checkpoints, TF1 graphs with variables, TF2 SavedModels.

pub mod checkpoint;
