//! Row-wise softmax, and softmax cross-entropy with its mean loss.

use super::reduce::sum_scaled;
use crate::gpu::{check_shape, flags, groups_1d, Encoder, GpuError, GpuTensor, Shader};
pub use crate::ops::softmax::SoftmaxParams;

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
