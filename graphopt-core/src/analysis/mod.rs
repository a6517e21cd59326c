//! The analysis layer: what can be known about a graph without running it.
//!
//! - [`geometry`]: checked shape arithmetic shared with the kernels (broadcasting, windows,
//!   strided-slice plans).
//! - [`shapes`]: static shape inference, one shape function per op, from input shapes (partly
//!   known ones too: a rank with unknown dims) and whichever inputs are constant or computed
//!   shapes. No kernel runs here.

pub mod geometry;
pub mod shapes;
