use crate::ops::conv2d::{out_size, Padding};
use crate::ops::OpError;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PoolParams {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    pub oh: u32,
    pub ow: u32,
    pub kh: u32,
    pub kw: u32,
    pub sh: u32,
    pub sw: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    /// bit 0: backward kernels add to the gradient instead of writing it; bit 1: max_pool writes argmax.
    pub flags: u32,
    /// `[0]`: log2 of the texels in a row of the texture max_pool reads x through.
    pub _pad: [u32; 3],
}

impl PoolParams {
    /// [`flag::VEC4`] where c is a multiple of 4: max_pool and the pool backwards take four channels
    /// per invocation as vec4s (compiled in or out with the flags).
    pub fn vec4_flag(&self) -> u32 {
        if self.c.is_multiple_of(4) {
            flag::VEC4
        } else {
            0
        }
    }

    pub fn new(x: &[usize], k: (usize, usize), stride: (usize, usize), padding: Padding) -> Result<Self, OpError> {
        if x.len() != 4 {
            return Err(OpError::Shape { op: "pool", detail: format!("input must be NHWC, got {x:?}") });
        }
        let (oh, pad_top, _) = out_size("pool", x[1], k.0, stride.0, padding, 0)?;
        let (ow, pad_left, _) = out_size("pool", x[2], k.1, stride.1, padding, 1)?;
        Ok(Self {
            n: x[0] as u32,
            h: x[1] as u32,
            w: x[2] as u32,
            c: x[3] as u32,
            oh: oh as u32,
            ow: ow as u32,
            kh: k.0 as u32,
            kw: k.1 as u32,
            sh: stride.0 as u32,
            sw: stride.1 as u32,
            pad_top,
            pad_left,
            flags: 0,
            _pad: [0; 3],
        })
    }

    /// The whole spatial extent as one window (global average pooling).
    pub fn global(x: &[usize]) -> Result<Self, OpError> {
        let (h, w) = (x.get(1).copied().unwrap_or(0), x.get(2).copied().unwrap_or(0));
        Self::new(x, (h.max(1), w.max(1)), (1, 1), Padding::Valid)
    }

    pub fn out_shape(&self) -> [usize; 4] {
        [self.n as usize, self.oh as usize, self.ow as usize, self.c as usize]
    }
}

/// `PoolParams::flags` bits (pool.wgsl's FLAGS).
pub mod flag {
    /// The backwards add into the input gradient.
    pub const ACCUMULATE: u32 = 1;
    /// max_pool saves the argmax for its backward.
    pub const ARGMAX: u32 = 2;
    /// c is a multiple of 4: four channels per invocation as vec4s.
    pub const VEC4: u32 = 4;
}
