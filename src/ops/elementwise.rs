#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ElementwiseParams {
    pub n: u32,
    pub c: u32,
    pub a: f32,
    pub b: f32,
    pub seed: u32,
    /// bit 0: backward kernels add to the gradient instead of writing it.
    pub flags: u32,
    pub _pad: [u32; 2],
}

impl ElementwiseParams {
    pub fn new(n: usize) -> Self {
        Self { n: n as u32, c: 1, a: 0.0, b: 0.0, seed: 0, flags: 0, _pad: [0; 2] }
    }
}

/// The dropout hash shared with the CPU twin: PCG of `seed ^ (i * 0x9E3779B9)`, top 24 bits in [0, 1).
pub fn dropout_uniform(seed: u32, i: u32) -> f32 {
    let state = (seed ^ i.wrapping_mul(0x9E37_79B9)).wrapping_mul(747_796_405).wrapping_add(2_891_336_453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277_803_737);
    (((word >> 22) ^ word) >> 8) as f32 / 16_777_216.0
}
