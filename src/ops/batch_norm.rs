use crate::ops::{rows_last, OpError};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BatchNormParams {
    pub rows: u32,
    pub c: u32,
    /// The `GAMMA`, `ACCUMULATE`, `ACCUMULATE_BETA`, `RELU` and `SQUARED_DEVIATIONS` bits.
    pub flags: u32,
    pub eps: f32,
    pub decay: f32,
    /// With c a multiple of 4, the training kernels sum rows per channel group in `blocks` blocks of
    /// `block_rows` rows (see `set_blocks` in kernels/batch_norm.rs).
    pub blocks: u32,
    pub block_rows: u32,
    /// Row shift of the staging texture x is read through (texel `i` at `(i & (width - 1), i >> tshift)`).
    pub tshift: u32,
}

/// `flags` bits, as the batch-norm shaders test them.
pub mod flag {
    /// A gamma is present (facenet's batch norm has none: scale=False).
    pub const GAMMA: u32 = 1;
    /// Backward adds dx to the gradient already there.
    pub const ACCUMULATE: u32 = 2;
    /// Backward adds d beta (and d gamma) to the gradients already there.
    pub const ACCUMULATE_BETA: u32 = 4;
    /// A ReLU follows, fused into the forward and backward passes.
    pub const RELU: u32 = 8;
    /// The statistics pass sums squared deviations from the mean (its second pass).
    pub const SQUARED_DEVIATIONS: u32 = 16;
}

impl BatchNormParams {
    pub fn new(x: &[usize], has_gamma: bool, eps: f32, decay: f32) -> Result<Self, OpError> {
        let (rows, c) = rows_last("batch_norm", x)?;
        Ok(Self {
            rows: rows as u32,
            c: c as u32,
            flags: if has_gamma { flag::GAMMA } else { 0 },
            eps,
            decay,
            blocks: 0,
            block_rows: 0,
            tshift: 0,
        })
    }
}
