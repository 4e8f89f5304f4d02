//! CPU twin of `kernels::l2_normalize`.

use crate::ops::l2_normalize::L2NormalizeParams;
use crate::ops::OpError;

/// Returns `(y, inv)`.
pub fn l2_normalize(x: &[f32], x_shape: &[usize], eps: f32) -> Result<(Vec<f32>, Vec<f32>), OpError> {
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

pub fn l2_normalize_backward(dy: &[f32], y: &[f32], inv: &[f32], dx: &mut [f32], eps: f32, accumulate: bool) {
    let cols = y.len() / inv.len().max(1);
    for (r, &k) in inv.iter().enumerate() {
        let row = r * cols..(r + 1) * cols;
        let dot: f32 = if k * k * eps < 0.9999 { dy[row.clone()].iter().zip(&y[row.clone()]).map(|(a, b)| a * b).sum() } else { 0.0 };
        for j in row {
            let v = k * (dy[j] - y[j] * dot);
            dx[j] = if accumulate { dx[j] + v } else { v };
        }
    }
}

/// Returns `(norms, grad)`: the rows' p-norms of `|x| + eps` and the gradient of `weight * mean(norms)`.
pub fn pnorm_rows(x: &[f32], x_shape: &[usize], pw: f32, eps: f32, weight: f32) -> Result<(Vec<f32>, Vec<f32>), OpError> {
    let p = L2NormalizeParams::new(x_shape, eps)?;
    let (rows, cols) = (p.rows as usize, p.cols as usize);
    let mut norms = vec![0f32; rows];
    let mut grad = vec![0f32; x.len()];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let norm = row.iter().map(|v| (v.abs() + eps).powf(pw)).sum::<f32>().powf(1.0 / pw);
        norms[r] = norm;
        let k = weight / rows as f32 * norm.powf(1.0 - pw);
        for (j, &v) in row.iter().enumerate() {
            let sign = if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            };
            grad[r * cols + j] = k * sign * (v.abs() + eps).powf(pw - 1.0);
        }
    }
    Ok((norms, grad))
}
