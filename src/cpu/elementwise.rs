//! CPU twin of `kernels::elementwise`.

use crate::ops::elementwise::dropout_uniform;

pub fn relu(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| v.max(0.0)).collect()
}

pub fn prelu(x: &[f32], alpha: &[f32]) -> Vec<f32> {
    x.iter().enumerate().map(|(i, &v)| v.max(0.0) + alpha[i % alpha.len()] * v.min(0.0)).collect()
}

pub fn add_scaled(x: &[f32], z: &[f32], s: f32) -> Vec<f32> {
    x.iter().zip(z).map(|(&a, &b)| a + s * b).collect()
}

pub fn affine(x: &[f32], a: f32, b: f32) -> Vec<f32> {
    x.iter().map(|&v| a * v + b).collect()
}

/// Returns `(y, mask)`.
pub fn dropout(x: &[f32], keep: f32, seed: u32) -> (Vec<f32>, Vec<u32>) {
    let mask: Vec<u32> = (0..x.len()).map(|i| (dropout_uniform(seed, i as u32) < keep) as u32).collect();
    let y = x.iter().zip(&mask).map(|(&v, &m)| if m == 1 { v / keep } else { 0.0 }).collect();
    (y, mask)
}

fn store(dx: &mut [f32], i: usize, v: f32, accumulate: bool) {
    dx[i] = if accumulate { dx[i] + v } else { v };
}

pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    y.iter_mut().zip(x).for_each(|(y, &x)| *y += a * x);
}

pub fn relu_backward(dy: &[f32], y: &[f32], dx: &mut [f32], accumulate: bool) {
    for i in 0..dy.len() {
        store(dx, i, if y[i] > 0.0 { dy[i] } else { 0.0 }, accumulate);
    }
}

/// Returns `dy * min(x, 0)`, whose column sums are d alpha.
pub fn prelu_backward(dy: &[f32], x: &[f32], alpha: &[f32], dx: &mut [f32], accumulate: bool) -> Vec<f32> {
    let c = alpha.len();
    for i in 0..dy.len() {
        store(dx, i, if x[i] > 0.0 { dy[i] } else { alpha[i % c] * dy[i] }, accumulate);
    }
    dy.iter().zip(x).map(|(&d, &v)| d * v.min(0.0)).collect()
}

pub fn dropout_backward(dy: &[f32], mask: &[u32], keep: f32, dx: &mut [f32], accumulate: bool) {
    for i in 0..dy.len() {
        store(dx, i, if mask[i] == 1 { dy[i] / keep } else { 0.0 }, accumulate);
    }
}
