//! CPU twin of `kernels::reduce`.

pub fn sum_scaled(x: &[f32], scale: f32) -> f32 {
    x.iter().map(|&v| v as f64).sum::<f64>() as f32 * scale
}

pub fn sum_squares(x: &[f32], scale: f32) -> f32 {
    x.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() as f32 * scale
}

/// `out[j] (+)= scale * sum_r x[r, j]`, with `x` viewed as `[rows, out.len()]`.
pub fn col_sum(x: &[f32], out: &mut [f32], scale: f32, accumulate: bool) {
    let cols = out.len();
    for (j, o) in out.iter_mut().enumerate() {
        let s: f32 = x.iter().skip(j).step_by(cols).sum();
        *o = if accumulate { *o + scale * s } else { scale * s };
    }
}
