//! Batch normalization over the channel (last) axis: inference with moving statistics, and training
//! forward with batch statistics (mean and invstd saved for backward, moving averages updated in place).

use super::rows_last;
use crate::gpu::{check_shape, groups_1d, Encoder, GpuError, GpuTensor, Shader};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BatchNormParams {
    pub rows: u32,
    pub c: u32,
    /// bit 0: gamma present (facenet's BN has none: scale=False).
    pub flags: u32,
    pub eps: f32,
    pub decay: f32,
    pub _pad: [u32; 3],
}

impl BatchNormParams {
    pub fn new(x: &[usize], has_gamma: bool, eps: f32, decay: f32) -> Result<Self, GpuError> {
        let (rows, c) = rows_last("batch_norm", x)?;
        Ok(Self { rows: rows as u32, c: c as u32, flags: has_gamma as u32, eps, decay, _pad: [0; 3] })
    }
}

fn check_channels(p: &BatchNormParams, named: &[(&str, Option<&GpuTensor>)]) -> Result<(), GpuError> {
    for (what, t) in named {
        if let Some(t) = t {
            check_shape("batch_norm", what, &t.shape, &[p.c as usize])?;
        }
    }
    Ok(())
}

/// `y = (x - moving_mean) / sqrt(moving_var + eps) * gamma + beta`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_inference(
    enc: &mut Encoder,
    x: &GpuTensor,
    moving_mean: &GpuTensor,
    moving_var: &GpuTensor,
    gamma: Option<&GpuTensor>,
    beta: &GpuTensor,
    y: &GpuTensor,
    eps: f32,
) -> Result<(), GpuError> {
    let p = BatchNormParams::new(&x.shape, gamma.is_some(), eps, 0.0)?;
    check_channels(&p, &[("moving_mean", Some(moving_mean)), ("moving_var", Some(moving_var)), ("gamma", gamma), ("beta", Some(beta))])?;
    check_shape("batch_norm", "output", &y.shape, &x.shape)?;
    let g = gamma.map(|t| &t.buffer).unwrap_or(enc.absent());
    enc.dispatch(
        Shader::BatchNorm,
        "bn_inference",
        &p,
        &[Some(&x.buffer), Some(&moving_mean.buffer), Some(&moving_var.buffer), Some(g), Some(&beta.buffer), Some(&y.buffer)],
        groups_1d(x.len()),
    )
}

/// Training forward: writes `y`, the batch `mean` and `invstd` (saved for backward) and updates the
/// moving statistics with `decay`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train(
    enc: &mut Encoder,
    x: &GpuTensor,
    gamma: Option<&GpuTensor>,
    beta: &GpuTensor,
    moving_mean: &GpuTensor,
    moving_var: &GpuTensor,
    y: &GpuTensor,
    mean: &GpuTensor,
    invstd: &GpuTensor,
    eps: f32,
    decay: f32,
) -> Result<(), GpuError> {
    let p = BatchNormParams::new(&x.shape, gamma.is_some(), eps, decay)?;
    check_channels(
        &p,
        &[
            ("gamma", gamma),
            ("beta", Some(beta)),
            ("moving_mean", Some(moving_mean)),
            ("moving_var", Some(moving_var)),
            ("mean", Some(mean)),
            ("invstd", Some(invstd)),
        ],
    )?;
    check_shape("batch_norm", "output", &y.shape, &x.shape)?;
    enc.dispatch(
        Shader::BatchNormStats,
        "bn_stats",
        &p,
        &[Some(&x.buffer), Some(&mean.buffer), Some(&invstd.buffer), Some(&moving_mean.buffer), Some(&moving_var.buffer)],
        [p.c, 1, 1],
    )?;
    let g = gamma.map(|t| &t.buffer).unwrap_or(enc.absent());
    enc.dispatch(
        Shader::BatchNorm,
        "bn_normalize",
        &p,
        &[Some(&x.buffer), Some(&mean.buffer), Some(&invstd.buffer), Some(g), Some(&beta.buffer), Some(&y.buffer)],
        groups_1d(x.len()),
    )
}
