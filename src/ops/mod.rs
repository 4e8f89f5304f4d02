//! What the GPU kernels, their CPU twins and the tape share, and nothing that runs: each op's parameter
//! block (the uniform a WGSL shader reads, `#[repr(C)]`), its shape rules (`Padding`, `out_size`), the
//! fused conv epilogue, optimizer kinds, and [`OpError`] for arguments an op cannot take.
//!
//! This is the lowest layer: it imports no other module of the crate.

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

use thiserror::Error;

/// Arguments an op cannot take. Each names the op.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpError {
    #[error("{op}: shape mismatch: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("{op}: invalid argument: {detail}")]
    Invalid { op: &'static str, detail: String },
}

/// `Ok` when `got == want`, else a shape error naming `what`.
pub fn check_shape(op: &'static str, what: &str, got: &[usize], want: &[usize]) -> Result<(), OpError> {
    if got == want {
        Ok(())
    } else {
        Err(OpError::Shape { op, detail: format!("{what}: expected {want:?}, got {got:?}") })
    }
}

/// `(rows, last)` of a tensor viewed as `[rows, last-axis]`.
pub fn rows_last(op: &'static str, shape: &[usize]) -> Result<(usize, usize), OpError> {
    match shape.last() {
        Some(&c) if c > 0 => Ok((shape.iter().product::<usize>() / c, c)),
        _ => Err(OpError::Shape { op, detail: format!("expected a tensor with a non-empty last axis, got {shape:?}") }),
    }
}
