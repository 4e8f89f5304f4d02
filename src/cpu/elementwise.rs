//! CPU twin of `kernels::elementwise`.

use crate::kernels::elementwise::dropout_uniform;

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
