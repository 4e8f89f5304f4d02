//! Row-wise L2 normalization (`tf.nn.l2_normalize`), saving the inverse norm for backward.

use super::rows_last;
use crate::gpu::{check_shape, groups_1d, Encoder, GpuError, GpuTensor, Shader};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct L2NormalizeParams {
    pub rows: u32,
    pub cols: u32,
    pub eps: f32,
    pub _pad: u32,
}

impl L2NormalizeParams {
    pub fn new(x: &[usize], eps: f32) -> Result<Self, GpuError> {
        let (rows, cols) = rows_last("l2_normalize", x)?;
        Ok(Self { rows: rows as u32, cols: cols as u32, eps, _pad: 0 })
    }
}

/// `y = x / sqrt(max(sum x^2, eps))` per row; `inv` `[rows]` receives the factor.
pub fn l2_normalize(enc: &mut Encoder, x: &GpuTensor, y: &GpuTensor, inv: &GpuTensor, eps: f32) -> Result<(), GpuError> {
    let p = L2NormalizeParams::new(&x.shape, eps)?;
    check_shape("l2_normalize", "output", &y.shape, &x.shape)?;
    check_shape("l2_normalize", "inverse norms", &inv.shape, &[p.rows as usize])?;
    enc.dispatch(
        Shader::L2Normalize,
        "l2_normalize",
        &p,
        &[Some(&x.buffer), Some(&y.buffer), Some(&inv.buffer)],
        groups_1d(p.rows as usize),
    )
}
