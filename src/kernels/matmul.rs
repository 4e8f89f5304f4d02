//! matmul / linear: `c = a·b (+ bias) (+ c)` with optional transposes of either operand.

use crate::gpu::{check_shape, flags, groups_1d, Encoder, GpuError, GpuTensor, KernelShape, Shader};
use crate::ops::matmul::flag;
pub use crate::ops::matmul::MatmulParams;

/// Records `c = [c +] op(a)·op(b) [+ bias]`. `c` must be `[m, n]`. In the context's kernel shape.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    enc: &mut Encoder,
    a: &GpuTensor,
    b: &GpuTensor,
    bias: Option<&GpuTensor>,
    c: &GpuTensor,
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) -> Result<MatmulParams, GpuError> {
    let shape = enc.ctx().kernel_shape();
    matmul_shaped(enc, a, b, bias, c, (trans_a, trans_b, accumulate), shape)
}

/// [`matmul`] in a given kernel shape (the tests run both on any adapter): `matmul.wgsl`'s register
/// tiles for CPU drivers, or `matmul_tiled.wgsl`'s shared-memory tiles for GPUs.
pub fn matmul_shaped(
    enc: &mut Encoder,
    a: &GpuTensor,
    b: &GpuTensor,
    bias: Option<&GpuTensor>,
    c: &GpuTensor,
    (trans_a, trans_b, accumulate): (bool, bool, bool),
    shape: KernelShape,
) -> Result<MatmulParams, GpuError> {
    let mut p = MatmulParams::new(&a.shape, &b.shape, trans_a, trans_b)?;
    check_shape("matmul", "output", &c.shape, &[p.m as usize, p.n as usize])?;
    if let Some(bias) = bias {
        check_shape("matmul", "bias", &bias.shape, &[p.n as usize])?;
        p.flags |= flag::BIAS;
    }
    if accumulate {
        p.flags |= flag::ACCUMULATE;
    }
    // Untransposed operands with k and n multiples of 4: the vec4 path.
    if p.a_cs == 1 && p.b_cs == 1 && p.a_rs.is_multiple_of(4) && p.b_rs.is_multiple_of(4) && p.k.is_multiple_of(4) {
        p.flags |= flag::VEC4;
    }
    let bias_buf = bias.map(|t| &t.buffer).unwrap_or(enc.absent());
    if shape == KernelShape::Gpu {
        // One workgroup of 16 x 16 per 64 x 64 block of c (the vec4 flag is unused there).
        let groups = [p.n.div_ceil(64), p.m.div_ceil(64), 1];
        let buffers = [Some(&a.buffer), Some(&b.buffer), Some(bias_buf), Some(&c.buffer)];
        enc.dispatch_with(Shader::MatmulTiled, "matmul_tiled", &flags(p.flags), &p, &buffers, &[], groups)?;
        return Ok(p);
    }
    // One workgroup per 8x8 block of 8x8 output tiles.
    let blocks = p.m.div_ceil(64) as usize * p.n.div_ceil(8).div_ceil(8) as usize;
    enc.dispatch_with(
        Shader::Matmul,
        "matmul",
        &flags(p.flags),
        &p,
        &[Some(&a.buffer), Some(&b.buffer), Some(bias_buf), Some(&c.buffer)],
        &[],
        groups_1d(blocks * 64),
    )?;
    Ok(p)
}
