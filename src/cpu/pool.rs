//! CPU twin of `kernels::pool`.

use crate::ops::conv2d::Padding;
use crate::ops::pool::PoolParams;
use crate::ops::OpError;

/// Visits the in-image taps of output element `i`, passing the flat input index.
fn taps(p: &PoolParams, i: usize, mut f: impl FnMut(usize)) {
    let c = p.c as usize;
    let (ch, pix) = (i % c, i / c);
    let (ox, oy, b) = (pix % p.ow as usize, (pix / p.ow as usize) % p.oh as usize, pix / (p.ow * p.oh) as usize);
    for ky in 0..p.kh as i64 {
        let iy = (oy * p.sh as usize) as i64 - p.pad_top as i64 + ky;
        if iy < 0 || iy >= p.h as i64 {
            continue;
        }
        for kx in 0..p.kw as i64 {
            let ix = (ox * p.sw as usize) as i64 - p.pad_left as i64 + kx;
            if ix < 0 || ix >= p.w as i64 {
                continue;
            }
            f(((b * p.h as usize + iy as usize) * p.w as usize + ix as usize) * c + ch);
        }
    }
}

/// Returns `(y, argmax)`.
pub fn max_pool(
    x: &[f32],
    x_shape: &[usize],
    k: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
) -> Result<(Vec<f32>, Vec<u32>, PoolParams), OpError> {
    let p = PoolParams::new(x_shape, k, stride, padding)?;
    let n_out: usize = p.out_shape().iter().product();
    let (mut y, mut arg) = (vec![0f32; n_out], vec![0u32; n_out]);
    for i in 0..n_out {
        let (mut best, mut at) = (f32::MIN, 0usize);
        taps(&p, i, |j| {
            if x[j] > best {
                best = x[j];
                at = j;
            }
        });
        y[i] = best;
        arg[i] = at as u32;
    }
    Ok((y, arg, p))
}

pub fn avg_pool(
    x: &[f32],
    x_shape: &[usize],
    k: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
) -> Result<(Vec<f32>, PoolParams), OpError> {
    let p = PoolParams::new(x_shape, k, stride, padding)?;
    let n_out: usize = p.out_shape().iter().product();
    let y = (0..n_out)
        .map(|i| {
            let (mut s, mut count) = (0f32, 0usize);
            taps(&p, i, |j| {
                s += x[j];
                count += 1;
            });
            s / count.max(1) as f32
        })
        .collect();
    Ok((y, p))
}

pub fn global_avg_pool(x: &[f32], x_shape: &[usize]) -> Result<Vec<f32>, OpError> {
    let p = PoolParams::global(x_shape)?;
    let (hw, c) = ((p.h * p.w) as usize, p.c as usize);
    Ok((0..(p.n as usize * c))
        .map(|i| {
            let base = (i / c) * hw * c;
            (0..hw).map(|q| x[base + q * c + i % c]).sum::<f32>() / hw as f32
        })
        .collect())
}

fn store(dx: &mut [f32], accumulate: bool) {
    if !accumulate {
        dx.iter_mut().for_each(|v| *v = 0.0);
    }
}

/// Scatters each `dy` to the input its window's `argmax` names.
pub fn max_pool_backward(dy: &[f32], argmax: &[u32], dx: &mut [f32], accumulate: bool) {
    store(dx, accumulate);
    for (&d, &a) in dy.iter().zip(argmax) {
        dx[a as usize] += d;
    }
}

#[allow(clippy::too_many_arguments)]
pub fn avg_pool_backward(
    dy: &[f32],
    dx: &mut [f32],
    x_shape: &[usize],
    k: (usize, usize),
    stride: (usize, usize),
    padding: Padding,
    accumulate: bool,
) -> Result<(), OpError> {
    let p = PoolParams::new(x_shape, k, stride, padding)?;
    store(dx, accumulate);
    for (i, &d) in dy.iter().enumerate() {
        let mut count = 0usize;
        taps(&p, i, |_| count += 1);
        taps(&p, i, |j| dx[j] += d / count.max(1) as f32);
    }
    Ok(())
}

pub fn global_avg_pool_backward(dy: &[f32], dx: &mut [f32], x_shape: &[usize], accumulate: bool) -> Result<(), OpError> {
    let p = PoolParams::global(x_shape)?;
    let (hw, c) = ((p.h * p.w) as usize, p.c as usize);
    store(dx, accumulate);
    for (i, v) in dx.iter_mut().enumerate() {
        *v += dy[(i / (hw * c)) * c + i % c] / hw as f32;
    }
    Ok(())
}
