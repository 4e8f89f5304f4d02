use thiserror::Error;

/// Errors of the GPU layer. Each names the op, shader or buffer involved.
#[derive(Debug, Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found{filter}: install mesa-vulkan-drivers for a CPU Vulkan driver (lavapipe), \
         or set WGPU_BACKEND=vulkan|metal|dx12|gl to pick a backend"
    )]
    NoAdapter { filter: String },
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
    #[error("reading back buffer '{label}' failed: {message}")]
    Readback { label: String, message: String },
}
