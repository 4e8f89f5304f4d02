//! CPU twin of `kernels::triplet`.

use crate::ops::triplet::TripletParams;
use crate::ops::OpError;

/// Returns (per-triplet losses, mean loss, gradient of `weight * mean loss`).
pub fn triplet_loss(e: &[f32], e_shape: &[usize], alpha: f32, weight: f32) -> Result<(Vec<f32>, f32, Vec<f32>), OpError> {
    let p = TripletParams::new(e_shape, alpha, weight)?;
    let (k, d) = (p.k as usize, p.d as usize);
    let mut losses = vec![0f32; k];
    let mut grad = vec![0f32; e.len()];
    // Each triplet indexes three rows of `e` and `grad` besides its own loss.
    #[allow(clippy::needless_range_loop)]
    for t in 0..k {
        let (a, q, n) = (3 * t * d, 3 * t * d + d, 3 * t * d + 2 * d);
        let pos: f32 = (0..d).map(|j| (e[a + j] - e[q + j]).powi(2)).sum();
        let neg: f32 = (0..d).map(|j| (e[a + j] - e[n + j]).powi(2)).sum();
        losses[t] = (pos - neg + alpha).max(0.0);
        if losses[t] > 0.0 {
            for j in 0..d {
                grad[a + j] = 2.0 * p.scale * (e[n + j] - e[q + j]);
                grad[q + j] = 2.0 * p.scale * (e[q + j] - e[a + j]);
                grad[n + j] = 2.0 * p.scale * (e[a + j] - e[n + j]);
            }
        }
    }
    let mean = super::reduce::sum_scaled(&losses, 1.0 / k as f32);
    Ok((losses, mean, grad))
}
