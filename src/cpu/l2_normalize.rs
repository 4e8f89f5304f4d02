//! CPU twin of `kernels::l2_normalize`.

use crate::gpu::GpuError;
use crate::kernels::l2_normalize::L2NormalizeParams;

/// Returns `(y, inv)`.
pub fn l2_normalize(x: &[f32], x_shape: &[usize], eps: f32) -> Result<(Vec<f32>, Vec<f32>), GpuError> {
    let p = L2NormalizeParams::new(x_shape, eps)?;
    let cols = p.cols as usize;
    let mut y = vec![0f32; x.len()];
    let mut inv = vec![0f32; p.rows as usize];
    for (r, (xr, yr)) in x.chunks(cols).zip(y.chunks_mut(cols)).enumerate() {
        let s: f32 = xr.iter().map(|v| v * v).sum();
        inv[r] = 1.0 / s.max(eps).sqrt();
        for (o, &v) in yr.iter_mut().zip(xr) {
            *o = v * inv[r];
        }
    }
    Ok((y, inv))
}
