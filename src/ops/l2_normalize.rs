use crate::ops::{rows_last, OpError};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct L2NormalizeParams {
    pub rows: u32,
    pub cols: u32,
    pub eps: f32,
    /// bit 0: the backward adds to the gradient instead of writing it.
    pub flags: u32,
    /// p of the p-norm (pnorm_rows).
    pub pw: f32,
    /// Gradient scale (pnorm_rows).
    pub scale: f32,
    pub _pad: [u32; 2],
}

impl L2NormalizeParams {
    pub fn new(x: &[usize], eps: f32) -> Result<Self, OpError> {
        let (rows, cols) = rows_last("l2_normalize", x)?;
        Ok(Self { rows: rows as u32, cols: cols as u32, eps, flags: 0, pw: 2.0, scale: 0.0, _pad: [0; 2] })
    }
}
