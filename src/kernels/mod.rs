//! GPU kernels: one Rust file per WGSL file in `shaders/`, each a set of plain functions that check
//! shapes and record dispatches into an [`Encoder`](crate::gpu::Encoder). CPU twins live in `crate::cpu`.

pub mod batch_norm;
pub mod center_loss;
pub mod concat;
pub mod conv2d;
pub mod conv2d_backward;
pub mod elementwise;
pub mod image;
pub mod l2_normalize;
pub mod matmul;
pub mod optimizer;
pub mod pool;
pub mod reduce;
pub mod softmax;
pub mod triplet;

pub(crate) use crate::ops::rows_last;
