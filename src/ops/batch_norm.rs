use crate::ops::{rows_last, OpError};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BatchNormParams {
    pub rows: u32,
    pub c: u32,
    /// bit 0: gamma present (facenet's BN has none: scale=False).
    pub flags: u32,
    pub eps: f32,
    pub decay: f32,
    /// `[0]`, `[1]`: the row blocks of the training kernels' per-channel sums with c a multiple of 4, and
    /// the rows in each (see `set_blocks`).
    pub _pad: [u32; 3],
}

impl BatchNormParams {
    pub fn new(x: &[usize], has_gamma: bool, eps: f32, decay: f32) -> Result<Self, OpError> {
        let (rows, c) = rows_last("batch_norm", x)?;
        Ok(Self { rows: rows as u32, c: c as u32, flags: has_gamma as u32, eps, decay, _pad: [0; 3] })
    }
}
