//! facenet's triplet loss on consecutive (anchor, positive, negative) embedding rows, with its gradient.

use super::reduce::sum_scaled;
use crate::gpu::{check_shape, groups_1d, Encoder, GpuError, GpuTensor, Shader};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct TripletParams {
    pub k: u32,
    pub d: u32,
    pub alpha: f32,
    pub scale: f32,
}

impl TripletParams {
    pub fn new(e: &[usize], alpha: f32, weight: f32) -> Result<Self, GpuError> {
        match e {
            [rows, d] if rows % 3 == 0 && *rows > 0 => {
                Ok(Self { k: (rows / 3) as u32, d: *d as u32, alpha, scale: weight / (rows / 3) as f32 })
            }
            _ => Err(GpuError::Shape {
                op: "triplet_loss",
                detail: format!("embeddings {e:?} must be [3k, d]: (anchor, positive, negative) rows"),
            }),
        }
    }
}

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
