//! GPU runtime: one [`GpuContext`] per process, a pipeline cache keyed by (shader, entry point),
//! [`GpuTensor`] storage buffers and an [`Encoder`] that records many dispatches into one submission.

mod arena;
mod buffer;
mod context;
mod encoder;
mod error;
pub mod lavapipe;
mod pipeline;
mod platform;

pub use arena::Arena;
pub use buffer::{DType, GpuTensor};
pub use context::{subgroup_lanes_for, AdapterSummary, GpuContext, KernelShape, TESTED_SUBGROUP_SIZES};
pub use encoder::{flags, groups_1d, Encoder, WORKGROUP_1D};
pub use error::GpuError;
pub use pipeline::{Constants, Shader};
pub use platform::{cache_dir, ensure_runtime_dir, os_release_ids, Platform};

/// Checks that `got` equals `want`, naming the op and the operand on mismatch.
pub fn check_shape(op: &'static str, what: &str, got: &[usize], want: &[usize]) -> Result<(), GpuError> {
    Ok(crate::ops::check_shape(op, what, got, want)?)
}
