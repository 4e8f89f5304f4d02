//! CPU twin of `kernels::image`.

use crate::ops::image::{area_taps, hw, ImageParams, Transform};
use crate::ops::OpError;

fn map_out(p: &ImageParams, mut f: impl FnMut(usize, usize, usize, usize) -> f32) -> Vec<f32> {
    let (oh, ow, c) = (p.oh as usize, p.ow as usize, p.c as usize);
    let mut y = Vec::with_capacity(p.n as usize * oh * ow * c);
    for b in 0..p.n as usize {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    y.push(f(b, oy, ox, ch));
                }
            }
        }
    }
    y
}

fn at(x: &[f32], p: &ImageParams, b: usize, iy: usize, ix: usize, ch: usize) -> f32 {
    x[((b * p.h as usize + iy) * p.w as usize + ix) * p.c as usize + ch]
}

pub fn resize_bilinear(x: &[f32], x_shape: &[usize], out_hw: (usize, usize)) -> Result<Vec<f32>, OpError> {
    let p = ImageParams::new("resize_bilinear", x_shape, out_hw)?;
    let src = |o: usize, n_in: u32, n_out: u32| {
        let s = ((o as f32 + 0.5) * n_in as f32 / n_out as f32 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(n_in as usize - 1);
        (i0, (i0 + 1).min(n_in as usize - 1), s - i0 as f32)
    };
    Ok(map_out(&p, |b, oy, ox, ch| {
        let (y0, y1, fy) = src(oy, p.h, p.oh);
        let (x0, x1, fx) = src(ox, p.w, p.ow);
        let top = at(x, &p, b, y0, x0, ch) * (1.0 - fx) + at(x, &p, b, y0, x1, ch) * fx;
        let bot = at(x, &p, b, y1, x0, ch) * (1.0 - fx) + at(x, &p, b, y1, x1, ch) * fx;
        top * (1.0 - fy) + bot * fy
    }))
}

/// Area resize of the `ch x cw` window at `(y0, x0)` of a virtual image given by `pixel(iy, ix, ch)`.
fn area_window(
    p: &ImageParams,
    (cw, ch): (usize, usize),
    t: Transform,
    pixel: impl Fn(usize, i64, i64, usize) -> f32,
) -> impl FnMut(usize, usize, usize, usize) -> f32 {
    let shrink = p.oh as usize <= ch && p.ow as usize <= cw;
    let (oh, ow) = (p.oh as usize, p.ow as usize);
    move |b, oy, ox, c| {
        let mut acc = 0f32;
        for (iy, wy) in area_taps(oy, ch, oh, shrink) {
            let row: f32 = area_taps(ox, cw, ow, shrink).into_iter().map(|(ix, wx)| wx * pixel(b, iy as i64, ix as i64, c)).sum();
            acc += wy * row;
        }
        t.apply(acc)
    }
}

pub fn resize_area(x: &[f32], x_shape: &[usize], out_hw: (usize, usize), t: Transform) -> Result<Vec<f32>, OpError> {
    let p = ImageParams::new("resize_area", x_shape, out_hw)?;
    Ok(map_out(&p, area_window(&p, (p.w as usize, p.h as usize), t, |b, iy, ix, c| at(x, &p, b, iy as usize, ix as usize, c))))
}

/// `boxes` holds `(image, x0, y0, cw, ch)` per output image; see `kernels::image::crop_resize_area`.
pub fn crop_resize_area(x: &[f32], x_shape: &[usize], boxes: &[i32], out_hw: (usize, usize), t: Transform) -> Result<Vec<f32>, OpError> {
    let p = ImageParams::new("crop_resize_area", x_shape, out_hw)?;
    let mut y = Vec::new();
    for bx in boxes.chunks_exact(5) {
        let (src, x0, y0) = (bx[0] as usize, bx[1] as i64, bx[2] as i64);
        if src >= p.n as usize {
            return Err(OpError::Shape { op: "crop_resize_area", detail: format!("box {bx:?} names image {src} of {}", p.n) });
        }
        let size = (bx[3].max(1) as usize, bx[4].max(1) as usize);
        let one = ImageParams { n: 1, ..p };
        y.extend(map_out(
            &one,
            area_window(&one, size, t, |_, iy, ix, c| {
                let (iy, ix) = (iy + y0, ix + x0);
                if iy >= 0 && ix >= 0 && iy < p.h as i64 && ix < p.w as i64 {
                    at(x, &p, src, iy as usize, ix as usize, c)
                } else {
                    0.0
                }
            }),
        ));
    }
    Ok(y)
}

pub fn crop_pad(x: &[f32], x_shape: &[usize], out_hw: (usize, usize), top: i32, left: i32) -> Result<Vec<f32>, OpError> {
    let p = ImageParams::new("crop_pad", x_shape, out_hw)?;
    Ok(map_out(&p, |b, oy, ox, ch| {
        let (iy, ix) = (oy as i64 + top as i64, ox as i64 + left as i64);
        if iy >= 0 && iy < p.h as i64 && ix >= 0 && ix < p.w as i64 {
            at(x, &p, b, iy as usize, ix as usize, ch)
        } else {
            0.0
        }
    }))
}

pub fn flip_h(x: &[f32], x_shape: &[usize]) -> Result<Vec<f32>, OpError> {
    let p = ImageParams::new("flip_h", x_shape, hw(x_shape))?;
    Ok(map_out(&p, |b, oy, ox, ch| at(x, &p, b, oy, p.w as usize - 1 - ox, ch)))
}

pub fn fixed_standardize(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| (v - 127.5) / 128.0).collect()
}

/// Returns `(y, stats)` with stats `[n, 2]` = (mean, max(std, 1/sqrt(size))) per image.
pub fn prewhiten(x: &[f32], x_shape: &[usize]) -> Result<(Vec<f32>, Vec<f32>), OpError> {
    let p = ImageParams::new("prewhiten", x_shape, hw(x_shape))?;
    let size = (p.h * p.w * p.c) as usize;
    let mut y = Vec::with_capacity(x.len());
    let mut stats = Vec::with_capacity(p.n as usize * 2);
    for img in x.chunks(size.max(1)) {
        let mean = img.iter().map(|&v| v as f64).sum::<f64>() / size as f64;
        let std = (img.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / size as f64).sqrt();
        let div = std.max(1.0 / (size as f64).sqrt());
        stats.extend([mean as f32, div as f32]);
        y.extend(img.iter().map(|&v| ((v as f64 - mean) / div) as f32));
    }
    Ok((y, stats))
}
