//! CPU twin of `kernels::matmul`.

use crate::ops::matmul::MatmulParams;
use crate::ops::OpError;

/// `c = [c +] op(a)·op(b) [+ bias]`; `c` is read only when `accumulate`.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    a: &[f32],
    a_shape: &[usize],
    b: &[f32],
    b_shape: &[usize],
    bias: Option<&[f32]>,
    c: &mut [f32],
    trans_a: bool,
    trans_b: bool,
    accumulate: bool,
) -> Result<MatmulParams, OpError> {
    let p = MatmulParams::new(a_shape, b_shape, trans_a, trans_b)?;
    let (m, n, k) = (p.m as usize, p.n as usize, p.k as usize);
    if c.len() != m * n {
        return Err(OpError::Shape { op: "matmul", detail: format!("output: expected {} elements, got {}", m * n, c.len()) });
    }
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f32;
            for kk in 0..k {
                s += a[i * p.a_rs as usize + kk * p.a_cs as usize] * b[kk * p.b_rs as usize + j * p.b_cs as usize];
            }
            if let Some(bias) = bias {
                s += bias[j];
            }
            let at = i * n + j;
            c[at] = if accumulate { c[at] + s } else { s };
        }
    }
    Ok(p)
}
