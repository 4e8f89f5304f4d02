//! CPU twin of `kernels::conv2d`: plain loops, same arguments, same epilogue order.

use crate::ops::conv2d::{Activation, Conv2dParams, Epilogue, Padding};
use crate::ops::OpError;

pub fn conv2d(
    x: &[f32],
    x_shape: &[usize],
    w: &[f32],
    w_shape: &[usize],
    epi: &Epilogue<&[f32]>,
    stride: (usize, usize),
    padding: Padding,
) -> Result<(Vec<f32>, Conv2dParams), OpError> {
    let p = Conv2dParams::new(x_shape, w_shape, stride, padding)?.with_epilogue(epi, |t| t.len())?;
    let (n, h, wd, c) = (p.n as usize, p.h as i64, p.w as i64, p.c as usize);
    let (oh, ow, oc, kh, kw) = (p.oh as usize, p.ow as usize, p.oc as usize, p.kh as usize, p.kw as usize);
    let mut y = vec![0f32; n * oh * ow * oc];
    let mut acc = vec![0f32; oc];
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                acc.iter_mut().for_each(|a| *a = 0.0);
                for ky in 0..kh {
                    let iy = (oy * p.sh as usize + ky) as i64 - p.pad_top as i64;
                    if iy < 0 || iy >= h {
                        continue;
                    }
                    for kx in 0..kw {
                        let ix = (ox * p.sw as usize + kx) as i64 - p.pad_left as i64;
                        if ix < 0 || ix >= wd {
                            continue;
                        }
                        let xo = ((b * h as usize + iy as usize) * wd as usize + ix as usize) * c;
                        for ci in 0..c {
                            let xv = x[xo + ci];
                            let wo = ((ky * kw + kx) * c + ci) * oc;
                            for (o, a) in acc.iter_mut().enumerate() {
                                *a += xv * w[wo + o];
                            }
                        }
                    }
                }
                let base = ((b * oh + oy) * ow + ox) * oc;
                for o in 0..oc {
                    y[base + o] = epilogue(acc[o], o, base + o, epi);
                }
            }
        }
    }
    Ok((y, p))
}

/// The epilogue of one output element: bias, affine, residual, activation.
pub fn epilogue(mut v: f32, channel: usize, at: usize, epi: &Epilogue<&[f32]>) -> f32 {
    if let Some(b) = epi.bias {
        v += b[channel];
    }
    if let Some((s, t)) = epi.affine {
        v = v * s[channel] + t[channel];
    }
    if let Some((r, s)) = epi.residual {
        v = r[at] + s * v;
    }
    match epi.act {
        Activation::None => v,
        Activation::Relu => v.max(0.0),
        Activation::Prelu(a) => v.max(0.0) + a[channel] * v.min(0.0),
    }
}
