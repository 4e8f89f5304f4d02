//! Reductions: a scaled sum (or sum of squares) of a whole tensor into one element, and column sums.

use crate::gpu::{check_shape, groups_1d, Encoder, GpuError, GpuTensor, Shader};
use crate::ops::reduce::flag;
pub use crate::ops::reduce::ReduceParams;

/// `out[0] = scale * sum(x)`; `out` has shape `[1]`.
pub fn sum_scaled(enc: &mut Encoder, x: &GpuTensor, out: &GpuTensor, scale: f32) -> Result<(), GpuError> {
    check_shape("sum_scaled", "output", &out.shape, &[1])?;
    let p = ReduceParams { n: x.len() as u32, scale, cols: 1, flags: 0 };
    enc.dispatch(Shader::Reduce, "sum_scaled", &p, &[Some(&x.buffer), Some(&out.buffer)], [1, 1, 1])
}

/// `out[0] = scale * sum(x^2)` (L2 weight decay: scale = wd / 2).
pub fn sum_squares(enc: &mut Encoder, x: &GpuTensor, out: &GpuTensor, scale: f32) -> Result<(), GpuError> {
    check_shape("sum_squares", "output", &out.shape, &[1])?;
    let p = ReduceParams { n: x.len() as u32, scale, cols: 1, flags: flag::SQUARE };
    enc.dispatch(Shader::Reduce, "sum_scaled", &p, &[Some(&x.buffer), Some(&out.buffer)], [1, 1, 1])
}

/// `out[j] (+)= scale * sum_r x[r, j]`, with `x` viewed as `[rows, out.len()]`.
pub fn col_sum(enc: &mut Encoder, x: &GpuTensor, out: &GpuTensor, scale: f32, accumulate: bool) -> Result<(), GpuError> {
    let cols = out.len();
    if cols == 0 || !x.len().is_multiple_of(cols) {
        return Err(GpuError::Shape { op: "col_sum", detail: format!("{:?} cannot be viewed as rows of {cols} columns", x.shape) });
    }
    let p = ReduceParams { n: x.len() as u32, scale, cols: cols as u32, flags: if accumulate { flag::ACCUMULATE } else { 0 } };
    enc.dispatch(Shader::Reduce, "col_sum", &p, &[Some(&x.buffer), Some(&out.buffer)], groups_1d(cols))
}
