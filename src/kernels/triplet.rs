//! facenet's triplet loss on consecutive (anchor, positive, negative) embedding rows, with its gradient.

use super::reduce::sum_scaled;
use crate::gpu::{check_shape, groups_1d, Encoder, GpuError, GpuTensor, Shader};
pub use crate::ops::triplet::TripletParams;

/// Writes per-triplet losses `row_loss` `[k]`, their mean `loss` `[1]` and in `grad` the gradient of
/// `weight * mean loss`.
pub fn triplet_loss(
    enc: &mut Encoder,
    e: &GpuTensor,
    row_loss: &GpuTensor,
    loss: &GpuTensor,
    grad: &GpuTensor,
    alpha: f32,
    weight: f32,
) -> Result<(), GpuError> {
    let p = TripletParams::new(&e.shape, alpha, weight)?;
    check_shape("triplet_loss", "row losses", &row_loss.shape, &[p.k as usize])?;
    check_shape("triplet_loss", "gradient", &grad.shape, &e.shape)?;
    enc.dispatch(
        Shader::Triplet,
        "triplet_loss",
        &p,
        &[Some(&e.buffer), Some(&row_loss.buffer), Some(&grad.buffer)],
        groups_1d(p.k as usize),
    )?;
    sum_scaled(enc, row_loss, loss, 1.0 / p.k as f32)
}
