//! CPU twin of `kernels::batch_norm`.

use crate::ops::batch_norm::BatchNormParams;
use crate::ops::OpError;

pub fn batch_norm_inference(
    x: &[f32],
    x_shape: &[usize],
    moving_mean: &[f32],
    moving_var: &[f32],
    gamma: Option<&[f32]>,
    beta: &[f32],
    eps: f32,
) -> Result<Vec<f32>, OpError> {
    let p = BatchNormParams::new(x_shape, gamma.is_some(), eps, 0.0)?;
    let c = p.c as usize;
    Ok(x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = i % c;
            (v - moving_mean[ch]) / (moving_var[ch] + eps).sqrt() * gamma.map_or(1.0, |g| g[ch]) + beta[ch]
        })
        .collect())
}

/// `(y, mean, invstd)` of a training-mode batch norm.
pub type TrainOutput = (Vec<f32>, Vec<f32>, Vec<f32>);

/// Returns `(y, mean, invstd)` and updates the moving statistics in place.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train(
    x: &[f32],
    x_shape: &[usize],
    gamma: Option<&[f32]>,
    beta: &[f32],
    moving_mean: &mut [f32],
    moving_var: &mut [f32],
    eps: f32,
    decay: f32,
) -> Result<TrainOutput, OpError> {
    let p = BatchNormParams::new(x_shape, gamma.is_some(), eps, decay)?;
    let (rows, c) = (p.rows as usize, p.c as usize);
    let mut mean = vec![0f32; c];
    let mut invstd = vec![0f32; c];
    for ch in 0..c {
        let m = (0..rows).map(|r| x[r * c + ch] as f64).sum::<f64>() / rows as f64;
        let var = (0..rows).map(|r| (x[r * c + ch] as f64 - m).powi(2)).sum::<f64>() / rows as f64;
        mean[ch] = m as f32;
        invstd[ch] = 1.0 / (var as f32 + eps).sqrt();
        let unbiased = var * rows as f64 / (rows.max(2) - 1) as f64;
        moving_mean[ch] -= (1.0 - decay) * (moving_mean[ch] - m as f32);
        moving_var[ch] -= (1.0 - decay) * (moving_var[ch] - unbiased as f32);
    }
    let y = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = i % c;
            (v - mean[ch]) * invstd[ch] * gamma.map_or(1.0, |g| g[ch]) + beta[ch]
        })
        .collect();
    Ok((y, mean, invstd))
}

/// Backward of `batch_norm_train`: writes (or adds to) `dx` and adds to `dgamma`/`dbeta`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    x: &[f32],
    dy: &[f32],
    gamma: Option<&[f32]>,
    mean: &[f32],
    invstd: &[f32],
    dx: &mut [f32],
    dgamma: Option<&mut [f32]>,
    dbeta: Option<&mut [f32]>,
    accumulate: bool,
) {
    let c = mean.len();
    let rows = x.len() / c;
    let mut sum_dy = vec![0f32; c];
    let mut sum_dyxh = vec![0f32; c];
    for i in 0..x.len() {
        let ch = i % c;
        sum_dy[ch] += dy[i];
        sum_dyxh[ch] += dy[i] * (x[i] - mean[ch]) * invstd[ch];
    }
    if let Some(dg) = dgamma {
        dg.iter_mut().zip(&sum_dyxh).for_each(|(d, s)| *d += s);
    }
    if let Some(db) = dbeta {
        db.iter_mut().zip(&sum_dy).for_each(|(d, s)| *d += s);
    }
    let n = rows as f32;
    for i in 0..x.len() {
        let ch = i % c;
        let xh = (x[i] - mean[ch]) * invstd[ch];
        let v = gamma.map_or(1.0, |g| g[ch]) * invstd[ch] * (dy[i] - sum_dy[ch] / n - xh * sum_dyxh[ch] / n);
        dx[i] = if accumulate { dx[i] + v } else { v };
    }
}
