//! Row-wise softmax, and softmax cross-entropy with its mean loss.

use super::reduce::sum_scaled;
use super::rows_last;
use crate::gpu::{check_shape, flags, groups_1d, Encoder, GpuError, GpuTensor, Shader};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SoftmaxParams {
    pub rows: u32,
    pub cols: u32,
    /// bit 0: the backward adds to the gradient instead of writing it.
    pub flags: u32,
    /// Backward: the loss weight divided by the rows (mean loss).
    pub scale: f32,
}

impl SoftmaxParams {
    pub fn new(z: &[usize]) -> Result<Self, GpuError> {
        let (rows, cols) = rows_last("softmax", z)?;
        Ok(Self { rows: rows as u32, cols: cols as u32, flags: 0, scale: 0.0 })
    }
}

pub fn softmax(enc: &mut Encoder, z: &GpuTensor, prob: &GpuTensor) -> Result<(), GpuError> {
    let p = SoftmaxParams::new(&z.shape)?;
    check_shape("softmax", "probabilities", &prob.shape, &z.shape)?;
    enc.dispatch_with(
        Shader::Softmax,
        "softmax",
        &flags(p.flags),
        &p,
        &[Some(&z.buffer), None, Some(&prob.buffer), None],
        &[],
        groups_1d(p.rows as usize),
    )
}

/// Writes `prob` (saved for backward), per-row losses `row_loss` `[rows]` and their mean `loss` `[1]`.
pub fn softmax_xent(
    enc: &mut Encoder,
    z: &GpuTensor,
    labels: &GpuTensor,
    prob: &GpuTensor,
    row_loss: &GpuTensor,
    loss: &GpuTensor,
) -> Result<(), GpuError> {
    let p = SoftmaxParams::new(&z.shape)?;
    check_shape("softmax_xent", "labels", &labels.shape, &[p.rows as usize])?;
    check_shape("softmax_xent", "probabilities", &prob.shape, &z.shape)?;
    check_shape("softmax_xent", "row losses", &row_loss.shape, &[p.rows as usize])?;
    enc.dispatch_with(
        Shader::Softmax,
        "softmax_xent",
        &flags(p.flags),
        &p,
        &[Some(&z.buffer), Some(&labels.buffer), Some(&prob.buffer), Some(&row_loss.buffer)],
        &[],
        groups_1d(p.rows as usize),
    )?;
    sum_scaled(enc, row_loss, loss, 1.0 / p.rows as f32)
}

/// `dz (+)= weight / rows * (prob - onehot(labels))`: the gradient of `weight * mean cross-entropy`.
pub fn softmax_xent_backward(
    enc: &mut Encoder,
    prob: &GpuTensor,
    labels: &GpuTensor,
    weight: f32,
    dz: &GpuTensor,
    accumulate: bool,
) -> Result<(), GpuError> {
    let mut p = SoftmaxParams::new(&prob.shape)?;
    check_shape("softmax_xent_backward", "labels", &labels.shape, &[p.rows as usize])?;
    check_shape("softmax_xent_backward", "dz", &dz.shape, &prob.shape)?;
    p.flags = accumulate as u32;
    p.scale = weight / p.rows as f32;
    enc.dispatch_with(
        Shader::Softmax,
        "softmax_xent_backward",
        &flags(p.flags),
        &p,
        &[None, Some(&labels.buffer), Some(&prob.buffer), None, Some(&dz.buffer)],
        &[],
        groups_1d(prob.len()),
    )
}
