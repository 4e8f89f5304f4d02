//! Scaled sum of a whole tensor into one element (mean losses).

use crate::gpu::{check_shape, Encoder, GpuError, GpuTensor, Shader};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ReduceParams {
    pub n: u32,
    pub scale: f32,
    pub _pad: [u32; 2],
}

/// `out[0] = scale * sum(x)`; `out` has shape `[1]`.
pub fn sum_scaled(enc: &mut Encoder, x: &GpuTensor, out: &GpuTensor, scale: f32) -> Result<(), GpuError> {
    check_shape("sum_scaled", "output", &out.shape, &[1])?;
    let p = ReduceParams { n: x.len() as u32, scale, _pad: [0; 2] };
    enc.dispatch(Shader::Reduce, "sum_scaled", &p, &[Some(&x.buffer), Some(&out.buffer)], [1, 1, 1])
}
