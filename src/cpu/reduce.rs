//! CPU twin of `kernels::reduce`.

pub fn sum_scaled(x: &[f32], scale: f32) -> f32 {
    x.iter().map(|&v| v as f64).sum::<f64>() as f32 * scale
}
