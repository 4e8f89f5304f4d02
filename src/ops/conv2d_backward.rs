use crate::ops::conv2d::{Conv2dParams, Padding};
use crate::ops::OpError;

/// Conv geometry plus the backward kernels' split-K fields.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Conv2dBackwardParams {
    pub conv: Conv2dParams,
    /// Number of output-pixel chunks the weight gradient is split into.
    pub splits: u32,
    /// Output pixels per split.
    pub chunk: u32,
    /// grad_input's stride class: the input pixels with `iy % sh == cls_y` and `ix % sw == cls_x`.
    pub cls_y: u32,
    pub cls_x: u32,
    /// log2 of the texels in a row of the texture grad_input reads g through and grad_weight x (see
    /// `Encoder::texture_of`).
    pub tshift: u32,
    pub _pad: [u32; 3],
}

/// Flag bits of the backward kernels (in `conv.flags`).
pub const ACCUMULATE: u32 = 1;
pub const AFFINE: u32 = 2;
pub const RESIDUAL: u32 = 4;
pub const ACCUMULATE_RESIDUAL: u32 = 8;

impl Conv2dBackwardParams {
    pub fn new(x: &[usize], w: &[usize], stride: (usize, usize), padding: Padding) -> Result<Self, OpError> {
        let conv = Conv2dParams::new(x, w, stride, padding)?;
        let pixels = (conv.n * conv.oh * conv.ow) as usize;
        let tiles = (conv.kh * conv.kw * conv.c.div_ceil(8) * conv.oc.div_ceil(8)) as usize;
        // Enough invocations to fill a large GPU, but never fewer than 128 pixels per split.
        let splits = 4096usize.div_ceil(tiles).max(pixels.div_ceil(1024)).clamp(1, pixels.div_ceil(128).max(1));
        // Whole steps of grad_weight's vec4 path (four pixels each).
        let chunk = pixels.div_ceil(splits).next_multiple_of(4);
        let splits = pixels.div_ceil(chunk).max(1);
        Ok(Self { conv, splits: splits as u32, chunk: chunk as u32, cls_y: 0, cls_x: 0, tshift: 0, _pad: [0; 3] })
    }

    /// Elements of the split-K scratch `grad_weight` needs (0 when it writes the gradient directly).
    pub fn scratch_len(&self) -> usize {
        let c = &self.conv;
        if self.splits == 1 {
            0
        } else {
            self.splits as usize * (c.kh * c.kw * c.c * c.oc) as usize
        }
    }
}
