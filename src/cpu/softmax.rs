//! CPU twin of `kernels::softmax`.

use crate::ops::softmax::SoftmaxParams;
use crate::ops::OpError;

/// Softmax of one row into `out`; returns log-sum-exp.
fn softmax_row(z: &[f32], out: &mut [f32]) -> f32 {
    let mx = z.iter().copied().fold(f32::MIN, f32::max);
    let mut s = 0f32;
    for (o, &v) in out.iter_mut().zip(z) {
        *o = (v - mx).exp();
        s += *o;
    }
    out.iter_mut().for_each(|o| *o /= s);
    s.ln() + mx
}

pub fn softmax(z: &[f32], z_shape: &[usize]) -> Result<Vec<f32>, OpError> {
    let p = SoftmaxParams::new(z_shape)?;
    let cols = p.cols as usize;
    let mut prob = vec![0f32; z.len()];
    for (zr, pr) in z.chunks(cols).zip(prob.chunks_mut(cols)) {
        softmax_row(zr, pr);
    }
    Ok(prob)
}

/// Returns `(prob, row_loss, mean_loss)`.
pub fn softmax_xent(z: &[f32], z_shape: &[usize], labels: &[u32]) -> Result<(Vec<f32>, Vec<f32>, f32), OpError> {
    let p = SoftmaxParams::new(z_shape)?;
    let cols = p.cols as usize;
    if labels.len() != p.rows as usize || labels.iter().any(|&l| l as usize >= cols) {
        return Err(OpError::Invalid { op: "softmax_xent", detail: format!("need {} labels below {cols}", p.rows) });
    }
    let mut prob = vec![0f32; z.len()];
    let mut row_loss = vec![0f32; p.rows as usize];
    for (r, (zr, pr)) in z.chunks(cols).zip(prob.chunks_mut(cols)).enumerate() {
        row_loss[r] = softmax_row(zr, pr) - zr[labels[r] as usize];
    }
    let mean = super::reduce::sum_scaled(&row_loss, 1.0 / p.rows as f32);
    Ok((prob, row_loss, mean))
}

/// `dz (+)= weight / rows * (prob - onehot(labels))`.
pub fn softmax_xent_backward(prob: &[f32], labels: &[u32], weight: f32, dz: &mut [f32], accumulate: bool) {
    let cols = prob.len() / labels.len().max(1);
    let scale = weight / labels.len().max(1) as f32;
    for (i, d) in dz.iter_mut().enumerate() {
        let hot = if i % cols == labels[i / cols] as usize { 1.0 } else { 0.0 };
        let v = scale * (prob[i] - hot);
        *d = if accumulate { *d + v } else { v };
    }
}
