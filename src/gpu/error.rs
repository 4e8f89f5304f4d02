use thiserror::Error;

/// Errors of the GPU layer. Each names the op, shader or buffer involved.
#[derive(Debug, Error)]
pub enum GpuError {
    /// `fix` is this platform's one-line remedy ([`super::Platform::no_adapter_fix`]).
    #[error("no GPU adapter found{filter}: {fix}")]
    NoAdapter { filter: String, fix: String },
    #[error("adapter '{adapter}' lacks {what}")]
    Unsupported { adapter: String, what: String },
    #[error("could not open a device on adapter '{adapter}': {source}")]
    RequestDevice { adapter: String, source: wgpu::RequestDeviceError },
    #[error("shader '{shader}' entry point '{entry}' failed validation: {message}")]
    ShaderValidation { shader: &'static str, entry: &'static str, message: String },
    #[error("{op}: shape mismatch: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("{op}: invalid argument: {detail}")]
    Invalid { op: &'static str, detail: String },
    #[error("GPU submission failed: {0}")]
    Submit(String),
    /// The device stopped working (driver reset, GPU removed, out of memory in the driver); a new
    /// [`super::GpuContext`] may work.
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    #[error("reading back buffer '{label}' failed: {message}")]
    Readback { label: String, message: String },
}

impl GpuError {
    pub fn is_device_lost(&self) -> bool {
        matches!(self, GpuError::DeviceLost(_))
    }
}

impl From<crate::ops::OpError> for GpuError {
    fn from(e: crate::ops::OpError) -> Self {
        match e {
            crate::ops::OpError::Shape { op, detail } => GpuError::Shape { op, detail },
            crate::ops::OpError::Invalid { op, detail } => GpuError::Invalid { op, detail },
        }
    }
}
