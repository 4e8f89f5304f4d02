//! Max, average and global average pooling over NHWC.

use super::conv2d::Padding;
use crate::gpu::{check_shape, flags, groups_1d, DType, Encoder, GpuError, GpuTensor, Shader};
use crate::ops::pool::flag;
pub use crate::ops::pool::PoolParams;

/// Max pool; `argmax` (u32, same shape as `y`), when given for a backward pass, receives the flat input
/// index of each maximum. Inference leaves it out and saves its stores.
pub fn max_pool(
    enc: &mut Encoder,
    x: &GpuTensor,
    y: &GpuTensor,
    argmax: Option<&GpuTensor>,
    k: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
) -> Result<PoolParams, GpuError> {
    let mut p = PoolParams::new(&x.shape, k, stride, padding)?;
    check_shape("max_pool", "output", &y.shape, &p.out_shape())?;
    if let Some(argmax) = argmax {
        check_shape("max_pool", "argmax", &argmax.shape, &p.out_shape())?;
        if argmax.dtype != DType::U32 {
            return Err(GpuError::Invalid { op: "max_pool", detail: format!("argmax tensor '{}' must be u32", argmax.label) });
        }
        p.flags = flag::ARGMAX;
    }
    let argmax = argmax.map_or(enc.absent_rw(), |a| &a.buffer).clone();
    // Four channels per invocation where c is a multiple of 4.
    p.flags |= p.vec4_flag();
    let invocations = if p.c.is_multiple_of(4) { y.len() / 4 } else { y.len() };
    // With 4-channel groups x is read through the staging texture (see GpuContext::staging_texture).
    let (xt, tshift) = enc.texture_of_if(x, p.c.is_multiple_of(4))?;
    p._pad[0] = tshift;
    enc.dispatch_with(
        Shader::Pool,
        "max_pool",
        &flags(p.flags),
        &p,
        &[Some(&x.buffer), Some(&y.buffer), Some(&argmax)],
        &[(4, &xt)],
        groups_1d(invocations),
    )?;
    Ok(p)
}

/// Average pool; padded taps are not counted (TF semantics).
pub fn avg_pool(
    enc: &mut Encoder,
    x: &GpuTensor,
    y: &GpuTensor,
    k: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
) -> Result<PoolParams, GpuError> {
    let p = PoolParams::new(&x.shape, k, stride, padding)?;
    check_shape("avg_pool", "output", &y.shape, &p.out_shape())?;
    enc.dispatch_with(Shader::Pool, "avg_pool", &flags(p.flags), &p, &[Some(&x.buffer), Some(&y.buffer), None], &[], groups_1d(y.len()))?;
    Ok(p)
}

/// `y[n, c]` = mean of `x[n, :, :, c]`.
pub fn global_avg_pool(enc: &mut Encoder, x: &GpuTensor, y: &GpuTensor) -> Result<PoolParams, GpuError> {
    let p = PoolParams::global(&x.shape)?;
    check_shape("global_avg_pool", "output", &y.shape, &[p.n as usize, p.c as usize])?;
    enc.dispatch_with(
        Shader::Pool,
        "global_avg_pool",
        &flags(p.flags),
        &p,
        &[Some(&x.buffer), Some(&y.buffer), None],
        &[],
        groups_1d(y.len()),
    )?;
    Ok(p)
}

/// `dx (+)=` the max-pool gradient: each `dy` goes to the input its window's `argmax` names.
#[allow(clippy::too_many_arguments)]
pub fn max_pool_backward(
    enc: &mut Encoder,
    dy: &GpuTensor,
    argmax: &GpuTensor,
    dx: &GpuTensor,
    k: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
    accumulate: bool,
) -> Result<(), GpuError> {
    let mut p = PoolParams::new(&dx.shape, k, stride, padding)?;
    check_shape("max_pool_backward", "dy", &dy.shape, &p.out_shape())?;
    check_shape("max_pool_backward", "argmax", &argmax.shape, &p.out_shape())?;
    // Accumulate (flag 1); four channels as vec4s where c is a multiple of 4.
    p.flags = if accumulate { flag::ACCUMULATE } else { 0 } | p.vec4_flag();
    enc.dispatch_with(
        Shader::Pool,
        "max_pool_backward",
        &flags(p.flags),
        &p,
        &[Some(&dy.buffer), Some(&dx.buffer), Some(&argmax.buffer)],
        &[],
        groups_1d(dx.len().div_ceil(4)),
    )
}

/// `dx (+)=` the average-pool gradient (each window's `dy` shared by its in-image taps).
pub fn avg_pool_backward(
    enc: &mut Encoder,
    dy: &GpuTensor,
    dx: &GpuTensor,
    k: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
    accumulate: bool,
) -> Result<(), GpuError> {
    let mut p = PoolParams::new(&dx.shape, k, stride, padding)?;
    check_shape("avg_pool_backward", "dy", &dy.shape, &p.out_shape())?;
    p.flags = if accumulate { flag::ACCUMULATE } else { 0 } | p.vec4_flag();
    // The shader's shared gather references argmax, so the entry's layout holds it: bind a stand-in.
    let unused = enc.absent_rw();
    enc.dispatch_with(
        Shader::Pool,
        "avg_pool_backward",
        &flags(p.flags),
        &p,
        &[Some(&dy.buffer), Some(&dx.buffer), Some(unused)],
        &[],
        groups_1d(dx.len().div_ceil(4)),
    )
}

/// `dx[n, y, x, c] (+)= dy[n, c] / (h * w)`.
pub fn global_avg_pool_backward(enc: &mut Encoder, dy: &GpuTensor, dx: &GpuTensor, accumulate: bool) -> Result<(), GpuError> {
    let mut p = PoolParams::global(&dx.shape)?;
    check_shape("global_avg_pool_backward", "dy", &dy.shape, &[p.n as usize, p.c as usize])?;
    p.flags = accumulate as u32;
    enc.dispatch_with(
        Shader::Pool,
        "global_avg_pool_backward",
        &flags(p.flags),
        &p,
        &[Some(&dy.buffer), Some(&dx.buffer), None],
        &[],
        groups_1d(dx.len()),
    )
}
