//! CPU twin of `kernels::conv2d_backward`: plain loops, same arguments.

use crate::ops::conv2d::{Activation, Conv2dParams, Epilogue, Padding};
use crate::ops::OpError;

/// Gradient of the epilogue. Returns `g` (of the raw conv output); adds or writes the residual gradient
/// into `dres` and returns the PReLU product `dy * min(u, 0)` (empty without PReLU).
pub fn epilogue_backward(
    p: &Conv2dParams,
    epi: &Epilogue<&[f32]>,
    dy: &[f32],
    y: &[f32],
    preact: Option<&[f32]>,
    dres: Option<(&mut [f32], bool)>,
) -> Result<(Vec<f32>, Vec<f32>), OpError> {
    let oc = p.oc as usize;
    let mut g = vec![0f32; dy.len()];
    let mut prod = Vec::new();
    let mut dres = dres;
    for i in 0..dy.len() {
        let o = i % oc;
        let mut du = dy[i];
        match epi.act {
            Activation::None => {}
            Activation::Relu => du = if y[i] > 0.0 { dy[i] } else { 0.0 },
            Activation::Prelu(a) => {
                let u =
                    preact.ok_or(OpError::Invalid { op: "conv2d epilogue backward", detail: "PReLU needs the pre-activation".into() })?[i];
                du = if u > 0.0 { dy[i] } else { a[o] * dy[i] };
                prod.push(dy[i] * u.min(0.0));
            }
        }
        let mut gi = du;
        if let Some((_, s)) = epi.residual {
            if let Some((d, acc)) = dres.as_mut() {
                d[i] = if *acc { d[i] + du } else { du };
            }
            gi *= s;
        }
        if let Some((s, _)) = epi.affine {
            gi *= s[o];
        }
        g[i] = gi;
    }
    Ok((g, prod))
}

/// `dx (+)= conv2d_transpose(g, w)`.
#[allow(clippy::too_many_arguments)]
pub fn grad_input(
    g: &[f32],
    w: &[f32],
    w_shape: &[usize],
    dx: &mut [f32],
    dx_shape: &[usize],
    stride: (usize, usize),
    padding: Padding,
    accumulate: bool,
) -> Result<(), OpError> {
    let p = Conv2dParams::new(dx_shape, w_shape, stride, padding)?;
    if !accumulate {
        dx.iter_mut().for_each(|v| *v = 0.0);
    }
    taps(&p, |xo, wo, go| {
        for ci in 0..p.c as usize {
            let mut s = 0f32;
            for o in 0..p.oc as usize {
                s += g[go + o] * w[wo + ci * p.oc as usize + o];
            }
            dx[xo + ci] += s;
        }
    });
    Ok(())
}

/// `dw (+)= sum over pixels of x-tap ⊗ g`.
#[allow(clippy::too_many_arguments)]
pub fn grad_weight(
    x: &[f32],
    x_shape: &[usize],
    g: &[f32],
    dw: &mut [f32],
    w_shape: &[usize],
    stride: (usize, usize),
    padding: Padding,
    accumulate: bool,
) -> Result<(), OpError> {
    let p = Conv2dParams::new(x_shape, w_shape, stride, padding)?;
    if !accumulate {
        dw.iter_mut().for_each(|v| *v = 0.0);
    }
    taps(&p, |xo, wo, go| {
        for ci in 0..p.c as usize {
            for o in 0..p.oc as usize {
                dw[wo + ci * p.oc as usize + o] += x[xo + ci] * g[go + o];
            }
        }
    });
    Ok(())
}

/// Calls `f(x offset, w offset, g offset)` for every in-image tap of every output pixel.
fn taps(p: &Conv2dParams, mut f: impl FnMut(usize, usize, usize)) {
    let (h, w, c, oc) = (p.h as i64, p.w as i64, p.c as usize, p.oc as usize);
    for b in 0..p.n as usize {
        for oy in 0..p.oh as usize {
            for ox in 0..p.ow as usize {
                let go = ((b * p.oh as usize + oy) * p.ow as usize + ox) * oc;
                for ky in 0..p.kh as usize {
                    let iy = (oy * p.sh as usize + ky) as i64 - p.pad_top as i64;
                    if iy < 0 || iy >= h {
                        continue;
                    }
                    for kx in 0..p.kw as usize {
                        let ix = (ox * p.sw as usize + kx) as i64 - p.pad_left as i64;
                        if ix < 0 || ix >= w {
                            continue;
                        }
                        let xo = ((b * h as usize + iy as usize) * w as usize + ix as usize) * c;
                        f(xo, (ky * p.kw as usize + kx) * c * oc, go);
                    }
                }
            }
        }
    }
}
