use crate::ops::{rows_last, OpError};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SoftmaxParams {
    pub rows: u32,
    pub cols: u32,
    /// bit 0: the backward adds to the gradient instead of writing it.
    pub flags: u32,
    /// Backward: the loss weight divided by the rows (mean loss).
    pub scale: f32,
}

impl SoftmaxParams {
    pub fn new(z: &[usize]) -> Result<Self, OpError> {
        let (rows, cols) = rows_last("softmax", z)?;
        Ok(Self { rows: rows as u32, cols: cols as u32, flags: 0, scale: 0.0 })
    }
}
