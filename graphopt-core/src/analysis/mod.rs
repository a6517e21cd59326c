//! The analysis layer: what can be known about a graph without running it.
//!
//! - [`geometry`]: checked shape arithmetic shared with the kernels (broadcasting, windows,
//!   strided-slice plans).
//! - [`shapes`]: static shape inference, one shape function per op, from input shapes and
//!   whichever inputs are constant. No kernel runs here.

pub mod geometry;
pub mod shapes;
