//! Center loss forward and facenet's center update (`centers[y] -= (1-alfa)(centers[y]-x)`).

use super::reduce::sum_scaled;
use crate::gpu::{check_shape, groups_1d, Encoder, GpuError, GpuTensor, Shader};
pub use crate::ops::center_loss::CenterLossParams;

/// Scratch a center-loss call writes: squared differences and `diff = x - centers[label]` (with the
/// centers before the update), `[b, d]` each. The loss's gradient is `2 diff / (b d)`.
pub struct CenterLossScratch {
    pub sq: GpuTensor,
    pub diff: GpuTensor,
}

/// `loss[0] = mean((x - centers[label])^2)` with the centers before the update, then the update.
/// Labels must be below the number of classes (checked by the caller that owns them on the host).
pub fn center_loss(
    enc: &mut Encoder,
    x: &GpuTensor,
    labels: &GpuTensor,
    centers: &GpuTensor,
    scratch: &CenterLossScratch,
    loss: &GpuTensor,
    alfa: f32,
) -> Result<(), GpuError> {
    let p = CenterLossParams::new(&x.shape, &centers.shape, alfa)?;
    check_shape("center_loss", "labels", &labels.shape, &[p.b as usize])?;
    check_shape("center_loss", "sq scratch", &scratch.sq.shape, &x.shape)?;
    check_shape("center_loss", "diff scratch", &scratch.diff.shape, &x.shape)?;
    let bufs = [Some(&x.buffer), Some(&labels.buffer), Some(&centers.buffer), Some(&scratch.sq.buffer), Some(&scratch.diff.buffer)];
    enc.dispatch(Shader::CenterLoss, "center_terms", &p, &bufs, groups_1d(x.len()))?;
    sum_scaled(enc, &scratch.sq, loss, 1.0 / x.len().max(1) as f32)?;
    enc.dispatch(
        Shader::CenterLoss,
        "center_update",
        &p,
        &[None, Some(&labels.buffer), Some(&centers.buffer), None, Some(&scratch.diff.buffer)],
        groups_1d(x.len()),
    )
}
