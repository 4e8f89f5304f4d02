//! Row-wise L2 normalization (`tf.nn.l2_normalize`), saving the inverse norm for backward; its backward;
//! and facenet's prelogits p-norm loss with its gradient.

use crate::gpu::{check_shape, groups_1d, Encoder, GpuError, GpuTensor, Shader};
pub use crate::ops::l2_normalize::L2NormalizeParams;

/// `y = x / sqrt(max(sum x^2, eps))` per row; `inv` `[rows]` receives the factor.
pub fn l2_normalize(enc: &mut Encoder, x: &GpuTensor, y: &GpuTensor, inv: &GpuTensor, eps: f32) -> Result<(), GpuError> {
    let p = L2NormalizeParams::new(&x.shape, eps)?;
    check_shape("l2_normalize", "output", &y.shape, &x.shape)?;
    check_shape("l2_normalize", "inverse norms", &inv.shape, &[p.rows as usize])?;
    enc.dispatch(
        Shader::L2Normalize,
        "l2_normalize",
        &p,
        &[Some(&x.buffer), Some(&y.buffer), Some(&inv.buffer)],
        groups_1d(p.rows as usize),
    )
}

/// `dx (+)= inv * (dy - y * <dy, y>)` per row.
#[allow(clippy::too_many_arguments)]
pub fn l2_normalize_backward(
    enc: &mut Encoder,
    dy: &GpuTensor,
    y: &GpuTensor,
    inv: &GpuTensor,
    dx: &GpuTensor,
    eps: f32,
    accumulate: bool,
) -> Result<(), GpuError> {
    let mut p = L2NormalizeParams::new(&y.shape, eps)?;
    check_shape("l2_normalize_backward", "dy", &dy.shape, &y.shape)?;
    check_shape("l2_normalize_backward", "dx", &dx.shape, &y.shape)?;
    check_shape("l2_normalize_backward", "inverse norms", &inv.shape, &[p.rows as usize])?;
    p.flags = accumulate as u32;
    enc.dispatch(
        Shader::L2Normalize,
        "l2_normalize_backward",
        &p,
        &[None, Some(&y.buffer), Some(&inv.buffer), Some(&dy.buffer), Some(&dx.buffer)],
        groups_1d(p.rows as usize),
    )
}

/// facenet's prelogits norm: `norm[r] = ||(|x[r]| + eps)||_pw`, and in `grad` the gradient of
/// `weight * mean_r norm[r]` (the loss is terminal, so its gradient is known in the forward).
#[allow(clippy::too_many_arguments)]
pub fn pnorm_rows(
    enc: &mut Encoder,
    x: &GpuTensor,
    norm: &GpuTensor,
    grad: &GpuTensor,
    pw: f32,
    eps: f32,
    weight: f32,
) -> Result<(), GpuError> {
    let mut p = L2NormalizeParams::new(&x.shape, eps)?;
    check_shape("pnorm_rows", "norms", &norm.shape, &[p.rows as usize])?;
    check_shape("pnorm_rows", "gradient", &grad.shape, &x.shape)?;
    if pw.is_nan() || pw < 1.0 {
        return Err(GpuError::Invalid { op: "pnorm_rows", detail: format!("p = {pw} must be at least 1") });
    }
    p.pw = pw;
    p.scale = weight / p.rows as f32;
    enc.dispatch(
        Shader::L2Normalize,
        "pnorm_rows",
        &p,
        &[Some(&x.buffer), None, Some(&norm.buffer), None, Some(&grad.buffer)],
        groups_1d(p.rows as usize),
    )
}
