use thiserror::Error;

use crate::checkpoint::CheckpointError;
use crate::data::DataError;
use crate::eval::lfw::PairsError;
use crate::gpu::GpuError;
use crate::models::ModelError;

/// Errors of the workflows: those of the layers below, and settings or inputs a workflow cannot work
/// with. Each names the file, flag or tensor involved.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Weights(#[from] CheckpointError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error(transparent)]
    Pairs(#[from] PairsError),
    #[error(transparent)]
    Plot(#[from] crate::eval::plot::PlotError),
    #[error(transparent)]
    Gallery(#[from] super::recognize::GalleryError),
    /// A file the workflow wrote itself that could not be encoded (JSON).
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A setting or an input the workflow cannot work with; the message names the flag or the file.
    #[error("{0}")]
    Invalid(String),
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::Invalid(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::Invalid(message.to_string())
    }
}

/// [`Error::Invalid`] with a `format!` message.
macro_rules! invalid {
    ($($arg:tt)*) => {
        $crate::workflows::Error::Invalid(format!($($arg)*))
    };
}
pub(crate) use invalid;
