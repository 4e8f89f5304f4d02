//! The networks, built from the GPU kernels with the checkpoint's scope names.

pub mod inception_resnet_v1;
pub mod inception_resnet_v1_cpu;
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

/// Where inference runs: the wgpu kernels, or the CPU backend's SIMD kernels ([`crate::simd`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Device {
    Cpu,
    Gpu,
}

impl Device {
    /// `requested` (a `--device` flag), else `FACEGPU_DEVICE`, else the CPU backend when the best adapter
    /// is a CPU driver (lavapipe/llvmpipe, SwiftShader, WARP: the SIMD kernels are faster there) and the
    /// GPU otherwise; for Inception-ResNet-v1 and MTCNN alike. Returns the device and why.
    pub fn choose(requested: Option<Device>, ctx: &crate::gpu::GpuContext) -> (Device, String) {
        if let Some(d) = requested {
            return (d, "--device".into());
        }
        match std::env::var("FACEGPU_DEVICE").ok().as_deref() {
            Some("cpu") => return (Device::Cpu, "FACEGPU_DEVICE=cpu".into()),
            Some("gpu") => return (Device::Gpu, "FACEGPU_DEVICE=gpu".into()),
            _ => {}
        }
        if ctx.is_cpu_driver() {
            (Device::Cpu, format!("the best adapter, {}, is a CPU driver", ctx.adapter_name()))
        } else {
            (Device::Gpu, format!("the adapter {} is a GPU", ctx.adapter_name()))
        }
    }
}

/// Inception-ResNet-v1 on one backend.
pub enum Network {
    Gpu(Box<inception_resnet_v1::InceptionResnetV1>),
    Cpu(inception_resnet_v1_cpu::InceptionResnetV1Cpu),
}

impl Network {
    /// Builds the network from `weights` on `device`.
    pub fn load(ctx: &crate::gpu::GpuContext, weights: &crate::checkpoint::Weights, device: Device) -> Result<Self, CheckpointError> {
        Ok(match device {
            Device::Gpu => Network::Gpu(Box::new(inception_resnet_v1::InceptionResnetV1::load(ctx, weights)?)),
            Device::Cpu => Network::Cpu(inception_resnet_v1_cpu::InceptionResnetV1Cpu::load(weights)?),
        })
    }

    pub fn device(&self) -> Device {
        match self {
            Network::Gpu(_) => Device::Gpu,
            Network::Cpu(_) => Device::Cpu,
        }
    }

    pub fn embedding_size(&self) -> usize {
        match self {
            Network::Gpu(n) => n.embedding_size,
            Network::Cpu(n) => n.embedding_size,
        }
    }

    /// Embeddings of raw RGB images `[n, size, size, 3]` (0..255), `n x embedding_size` values.
    pub fn embed(
        &mut self,
        ctx: &crate::gpu::GpuContext,
        images: &[f32],
        shape: [usize; 4],
        std: crate::checkpoint::Standardization,
    ) -> Result<Vec<f32>, ModelError> {
        match self {
            Network::Gpu(n) => n.embed(ctx, images, shape, std),
            Network::Cpu(n) => n.embed(images, shape, std),
        }
    }

    /// The prelogits (before L2 normalization).
    pub fn prelogits(
        &mut self,
        ctx: &crate::gpu::GpuContext,
        images: &[f32],
        shape: [usize; 4],
        std: crate::checkpoint::Standardization,
    ) -> Result<Vec<f32>, ModelError> {
        match self {
            Network::Gpu(n) => n.prelogits(ctx, images, shape, std),
            Network::Cpu(n) => n.prelogits(images, shape, std),
        }
    }

    /// Drops the GPU activation buffers (see `InceptionResnetV1::release_buffers`).
    pub fn release_buffers(&mut self) {
        if let Network::Gpu(n) = self {
            n.release_buffers();
        }
    }

    /// Bytes of GPU activation buffers held (the CPU backend allocates per pass).
    pub fn activation_bytes(&self) -> usize {
        match self {
            Network::Gpu(n) => n.activation_bytes(),
            Network::Cpu(_) => 0,
        }
    }
}
