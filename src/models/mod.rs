//! The networks, built from the GPU kernels with the checkpoint's scope names.

pub mod inception_resnet_v1;
pub mod mtcnn;

use thiserror::Error;

use crate::checkpoint::CheckpointError;
use crate::gpu::GpuError;

/// Errors of the networks: weights that do not fit, inputs of the wrong shape, GPU failures.
#[derive(Debug, Error)]
pub enum ModelError {
    #[error(transparent)]
    Weights(#[from] CheckpointError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error("input batch has shape {got:?}, expected [n, {size}, {size}, 3]")]
    Input { got: Vec<usize>, size: usize },
    /// Even the smallest pass over the input needs a buffer above the adapter's limit.
    #[error("{what} needs a {need}-byte buffer even in the smallest pass, above the adapter's limit of {limit} bytes")]
    TooLarge { what: String, need: u64, limit: u64 },
}

impl ModelError {
    /// The GPU device stopped working: a new context may succeed where retrying on this one cannot.
    pub fn is_device_lost(&self) -> bool {
        matches!(self, ModelError::Gpu(e) if e.is_device_lost())
    }
}
