//! Elementwise ops: relu, prelu, add_scaled (`x + s*z`), affine (`a*x + b`), seeded dropout, in-place axpy,
//! and the backward of relu, prelu and dropout.

use super::rows_last;
use crate::gpu::{check_shape, flags, groups_1d, DType, Encoder, GpuError, GpuTensor, Shader};
pub use crate::ops::elementwise::{dropout_uniform, ElementwiseParams};

fn same(op: &'static str, x: &GpuTensor, y: &GpuTensor) -> Result<ElementwiseParams, GpuError> {
    check_shape(op, "output", &y.shape, &x.shape)?;
    Ok(ElementwiseParams::new(x.len()))
}

pub fn relu(enc: &mut Encoder, x: &GpuTensor, y: &GpuTensor) -> Result<(), GpuError> {
    let p = same("relu", x, y)?;
    enc.dispatch_with(
        Shader::Elementwise,
        "relu",
        &flags(p.flags),
        &p,
        &[Some(&x.buffer), None, Some(&y.buffer), None],
        &[],
        groups_1d(x.len().div_ceil(4)),
    )
}

/// `alpha` has one value per channel (last axis).
pub fn prelu(enc: &mut Encoder, x: &GpuTensor, alpha: &GpuTensor, y: &GpuTensor) -> Result<(), GpuError> {
    let mut p = same("prelu", x, y)?;
    let (_, c) = rows_last("prelu", &x.shape)?;
    check_shape("prelu", "alpha", &alpha.shape, &[c])?;
    p.c = c as u32;
    enc.dispatch_with(
        Shader::Elementwise,
        "prelu",
        &flags(p.flags),
        &p,
        &[Some(&x.buffer), Some(&alpha.buffer), Some(&y.buffer), None],
        &[],
        groups_1d(x.len().div_ceil(4)),
    )
}

/// `y = x + s * z`.
pub fn add_scaled(enc: &mut Encoder, x: &GpuTensor, z: &GpuTensor, s: f32, y: &GpuTensor) -> Result<(), GpuError> {
    let mut p = same("add_scaled", x, y)?;
    check_shape("add_scaled", "z", &z.shape, &x.shape)?;
    p.a = s;
    enc.dispatch_with(
        Shader::Elementwise,
        "add_scaled",
        &flags(p.flags),
        &p,
        &[Some(&x.buffer), Some(&z.buffer), Some(&y.buffer), None],
        &[],
        groups_1d(x.len().div_ceil(4)),
    )
}

/// `y = a * x + b`.
pub fn affine(enc: &mut Encoder, x: &GpuTensor, a: f32, b: f32, y: &GpuTensor) -> Result<(), GpuError> {
    let mut p = same("affine", x, y)?;
    p.a = a;
    p.b = b;
    enc.dispatch_with(
        Shader::Elementwise,
        "affine",
        &flags(p.flags),
        &p,
        &[Some(&x.buffer), None, Some(&y.buffer), None],
        &[],
        groups_1d(x.len().div_ceil(4)),
    )
}

/// Inverted dropout: keeps each element with probability `keep` (scaled by `1/keep`), writing the u32
/// keep-mask for backward. The same `seed` gives the same mask.
pub fn dropout(enc: &mut Encoder, x: &GpuTensor, keep: f32, seed: u32, y: &GpuTensor, mask: &GpuTensor) -> Result<(), GpuError> {
    let mut p = same("dropout", x, y)?;
    check_shape("dropout", "mask", &mask.shape, &x.shape)?;
    if mask.dtype != DType::U32 || !(keep > 0.0 && keep <= 1.0) {
        return Err(GpuError::Invalid { op: "dropout", detail: format!("keep probability {keep} must be in (0, 1] and the mask u32") });
    }
    p.a = keep;
    p.seed = seed;
    enc.dispatch_with(
        Shader::Elementwise,
        "dropout",
        &flags(p.flags),
        &p,
        &[Some(&x.buffer), None, Some(&y.buffer), Some(&mask.buffer)],
        &[],
        groups_1d(x.len().div_ceil(4)),
    )
}

/// `y += a * x` in place.
pub fn axpy(enc: &mut Encoder, a: f32, x: &GpuTensor, y: &GpuTensor) -> Result<(), GpuError> {
    if x.len() != y.len() {
        return Err(GpuError::Shape { op: "axpy", detail: format!("x {:?} and y {:?} differ in size", x.shape, y.shape) });
    }
    let mut p = ElementwiseParams::new(x.len());
    p.a = a;
    enc.dispatch_with(
        Shader::Elementwise,
        "axpy",
        &flags(p.flags),
        &p,
        &[Some(&x.buffer), None, Some(&y.buffer), None],
        &[],
        groups_1d(x.len().div_ceil(4)),
    )
}

/// `dst = s * src`, or `dst += s * src` when `accumulate`: how a gradient reaches a tensor that may
/// already hold one.
pub fn scale_into(enc: &mut Encoder, src: &GpuTensor, s: f32, dst: &GpuTensor, accumulate: bool) -> Result<(), GpuError> {
    if accumulate {
        axpy(enc, s, src, dst)
    } else {
        if src.len() != dst.len() {
            return Err(GpuError::Shape { op: "scale_into", detail: format!("{:?} into {:?}", src.shape, dst.shape) });
        }
        let mut p = ElementwiseParams::new(src.len());
        p.a = s;
        enc.dispatch_with(
            Shader::Elementwise,
            "affine",
            &flags(p.flags),
            &p,
            &[Some(&src.buffer), None, Some(&dst.buffer), None],
            &[],
            groups_1d(src.len().div_ceil(4)),
        )
    }
}

/// `dx (+)= dy * (y > 0)`.
pub fn relu_backward(enc: &mut Encoder, dy: &GpuTensor, y: &GpuTensor, dx: &GpuTensor, accumulate: bool) -> Result<(), GpuError> {
    let mut p = same("relu_backward", dy, dx)?;
    check_shape("relu_backward", "y", &y.shape, &dy.shape)?;
    p.flags = accumulate as u32;
    enc.dispatch_with(
        Shader::Elementwise,
        "relu_backward",
        &flags(p.flags),
        &p,
        &[Some(&dy.buffer), Some(&y.buffer), Some(&dx.buffer), None],
        &[],
        groups_1d(dy.len().div_ceil(4)),
    )
}

/// `dx (+)= dy * (x > 0 ? 1 : alpha)`; `prod = dy * min(x, 0)`, whose column sums are d alpha.
#[allow(clippy::too_many_arguments)]
pub fn prelu_backward(
    enc: &mut Encoder,
    dy: &GpuTensor,
    x: &GpuTensor,
    alpha: &GpuTensor,
    dx: &GpuTensor,
    prod: &GpuTensor,
    accumulate: bool,
) -> Result<(), GpuError> {
    let mut p = same("prelu_backward", dy, dx)?;
    let (_, c) = rows_last("prelu_backward", &x.shape)?;
    check_shape("prelu_backward", "x", &x.shape, &dy.shape)?;
    check_shape("prelu_backward", "alpha", &alpha.shape, &[c])?;
    check_shape("prelu_backward", "product", &prod.shape, &dy.shape)?;
    p.c = c as u32;
    p.flags = accumulate as u32;
    enc.dispatch_with(
        Shader::Elementwise,
        "prelu_backward",
        &flags(p.flags),
        &p,
        &[Some(&dy.buffer), Some(&alpha.buffer), Some(&dx.buffer), None, Some(&x.buffer), Some(&prod.buffer)],
        &[],
        groups_1d(dy.len().div_ceil(4)),
    )
}

/// `dx (+)= dy * mask / keep`.
pub fn dropout_backward(
    enc: &mut Encoder,
    dy: &GpuTensor,
    mask: &GpuTensor,
    keep: f32,
    dx: &GpuTensor,
    accumulate: bool,
) -> Result<(), GpuError> {
    let mut p = same("dropout_backward", dy, dx)?;
    check_shape("dropout_backward", "mask", &mask.shape, &dy.shape)?;
    p.a = keep;
    p.flags = accumulate as u32;
    enc.dispatch_with(
        Shader::Elementwise,
        "dropout_backward",
        &flags(p.flags),
        &p,
        &[Some(&dy.buffer), None, Some(&dx.buffer), Some(&mask.buffer)],
        &[],
        groups_1d(dy.len().div_ceil(4)),
    )
}
