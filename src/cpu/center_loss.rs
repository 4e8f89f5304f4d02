//! CPU twin of `kernels::center_loss`.

use crate::ops::center_loss::CenterLossParams;
use crate::ops::OpError;

/// Returns the loss and `diff = x - centers[label]` (with the centers before the update) and updates
/// `centers` in place.
pub fn center_loss(
    x: &[f32],
    x_shape: &[usize],
    labels: &[u32],
    centers: &mut [f32],
    centers_shape: &[usize],
    alfa: f32,
) -> Result<(f32, Vec<f32>), OpError> {
    let p = CenterLossParams::new(x_shape, centers_shape, alfa)?;
    let (b, d) = (p.b as usize, p.d as usize);
    if labels.len() != b || labels.iter().any(|&l| l >= p.classes) {
        return Err(OpError::Invalid { op: "center_loss", detail: format!("need {b} labels below {}", p.classes) });
    }
    let mut sq = vec![0f32; b * d];
    let mut diff = vec![0f32; b * d];
    for i in 0..b {
        for k in 0..d {
            let c = centers[labels[i] as usize * d + k];
            diff[i * d + k] = x[i * d + k] - c;
            sq[i * d + k] = diff[i * d + k].powi(2);
        }
    }
    for i in 0..b {
        for k in 0..d {
            centers[labels[i] as usize * d + k] += (1.0 - alfa) * diff[i * d + k];
        }
    }
    Ok((super::reduce::sum_scaled(&sq, 1.0 / (b * d).max(1) as f32), diff))
}
