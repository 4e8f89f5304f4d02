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

use crate::gpu::GpuError;

/// `(rows, last)` of a tensor viewed as `[rows, last-axis]`.
pub(crate) fn rows_last(op: &'static str, shape: &[usize]) -> Result<(usize, usize), GpuError> {
    match shape.last() {
        Some(&c) if c > 0 => Ok((shape.iter().product::<usize>() / c, c)),
        _ => Err(GpuError::Shape { op, detail: format!("expected a tensor with a non-empty last axis, got {shape:?}") }),
    }
}
