//! Area resizes on the CPU backend: MTCNN's image pyramid and its RNet/ONet crops.
//!
//! OpenCV's INTER_AREA is separable: each output value is `sum_y wy * (sum_x wx * pixel)`. The twin
//! (`cpu::image`) evaluates that sum per output value; here the inner sums are computed once per input
//! row (a horizontal pass into a scratch of `rows x ow` pixels) and the outer ones as weighted sums of
//! whole scratch rows (a vertical pass that vectorizes across the row). Both passes add in the twin's
//! order, so the results are the twin's bit for bit.

use super::par_rows;
use crate::ops::image::{area_taps, Transform};
use crate::ops::OpError;

/// An input value: `f32`, or `u8` (a decoded photo's bytes, read without a conversion pass).
pub trait Pixel: Copy + Into<f32> + Sync {
    /// The values as bytes, where they are bytes (read by [`rgb_row_sse`]).
    fn bytes(_x: &[Self]) -> Option<&[u8]> {
        None
    }
}
impl Pixel for f32 {}
impl Pixel for u8 {
    fn bytes(x: &[u8]) -> Option<&[u8]> {
        Some(x)
    }
}

/// The taps of every output index along one axis.
fn taps(n_in: usize, n_out: usize, shrink: bool) -> Vec<Vec<(usize, f32)>> {
    (0..n_out).map(|o| area_taps(o, n_in, n_out, shrink)).collect()
}

/// One output image of an area resize of the `cw x ch` window at `(y0, x0)` of image `img`
/// (`[h, w, c]`; pixels outside it read as 0) into `y` (`[oh, ow, c]`).
fn window<P: Pixel>(
    img: &[P],
    (h, w, c): (usize, usize, usize),
    (y0, x0, ch, cw): (i64, i64, usize, usize),
    y: &mut [f32],
    (oh, ow): (usize, usize),
    t: Transform,
) {
    let shrink = oh <= ch && ow <= cw;
    let (tx, ty) = (taps(cw, ow, shrink), taps(ch, oh, shrink));
    let mut rows = vec![0f32; ch * ow * c];
    horizontal(img, (h, w, c), (y0, x0), &tx, 0, &mut rows);
    vertical(&rows, ow * c, &ty, 0, y, t);
}

/// `rows[r][ox][ch] = sum_x wx * pixel(first + r, x)` for the window rows in `rows` (`ow * c` values each).
fn horizontal<P: Pixel>(
    img: &[P],
    (h, w, c): (usize, usize, usize),
    (y0, x0): (i64, i64),
    tx: &[Vec<(usize, f32)>],
    first: usize,
    rows: &mut [f32],
) {
    let ow = tx.len();
    let inside = x0 >= 0 && tx.iter().flatten().all(|&(ix, _)| x0 as usize + ix < w);
    for (r, row) in rows.chunks_exact_mut(ow * c).enumerate() {
        let iy = y0 + (first + r) as i64;
        if iy < 0 || iy >= h as i64 {
            row.fill(0.0);
            continue;
        }
        let line = &img[iy as usize * w * c..(iy as usize + 1) * w * c];
        if inside && c == 3 {
            // The row and what follows it in the image: rgb_row_sse reads 4 bytes per pixel.
            if let Some(ext) = P::bytes(&img[iy as usize * w * c + x0 as usize * 3..]) {
                if rgb_row_sse(ext, tx, row) {
                    continue;
                }
            }
        }
        match (inside, c) {
            (true, 3) => rgb_row(&line[x0 as usize * 3..], tx, row),
            _ => {
                for (ox, taps) in tx.iter().enumerate() {
                    for ch in 0..c {
                        let mut acc = 0f32;
                        for &(ix, wx) in taps {
                            let ix = x0 + ix as i64;
                            let v = if ix >= 0 && ix < w as i64 { line[ix as usize * c + ch].into() } else { 0.0 };
                            acc += wx * v;
                        }
                        row[ox * c + ch] = acc;
                    }
                }
            }
        }
    }
}

/// [`horizontal`] for one row of RGB pixels whose taps all lie inside `line`: the three channels'
/// sums side by side, each in tap order.
fn rgb_row<P: Pixel>(line: &[P], tx: &[Vec<(usize, f32)>], row: &mut [f32]) {
    for (out, taps) in row.chunks_exact_mut(3).zip(tx) {
        let mut acc = [0f32; 3];
        for &(ix, wx) in taps {
            let px = &line[ix * 3..ix * 3 + 3];
            for (a, &v) in acc.iter_mut().zip(px) {
                *a += wx * v.into();
            }
        }
        out.copy_from_slice(&acc);
    }
}

/// [`rgb_row`] of bytes with SSE2 (x86-64's baseline): each tap's pixel is loaded as 4 bytes (the 4th
/// belongs to the next pixel and is dropped) and the three channels are multiplied and added as one
/// 4-lane operation, each lane in tap order as the scalar path. False (nothing written) where `line`
/// does not hold the 4th byte of the last tap.
#[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
fn rgb_row_sse(line: &[u8], tx: &[Vec<(usize, f32)>], row: &mut [f32]) -> bool {
    // Taps move right with the output, so the last output's reach furthest (each load is checked
    // anyway; this sends a row that would fail to the scalar path).
    let reach = tx.last().and_then(|t| t.iter().map(|&(ix, _)| ix * 3 + 4).max()).unwrap_or(0);
    if !cfg!(target_arch = "x86_64") || reach > line.len() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of x86-64; the intrinsics touch no memory (loads and stores go through
    // checked slices).
    unsafe {
        use std::arch::x86_64::*;
        let zero = _mm_setzero_si128();
        let mut lanes = [0f32; 4];
        for (ox, taps) in tx.iter().enumerate() {
            let mut acc = _mm_setzero_ps();
            for &(ix, wx) in taps {
                let b = _mm_cvtsi32_si128(i32::from_le_bytes(line[ix * 3..ix * 3 + 4].try_into().expect("4 bytes")));
                let v = _mm_cvtepi32_ps(_mm_unpacklo_epi16(_mm_unpacklo_epi8(b, zero), zero));
                acc = _mm_add_ps(acc, _mm_mul_ps(_mm_set1_ps(wx), v));
            }
            _mm_storeu_ps(lanes.as_mut_ptr(), acc);
            row[ox * 3..ox * 3 + 3].copy_from_slice(&lanes[..3]);
        }
    }
    true
}

/// `y[oy] = t(sum_y wy * rows[y])` for output rows `first..` (as many as `y` holds).
fn vertical(rows: &[f32], len: usize, ty: &[Vec<(usize, f32)>], first: usize, y: &mut [f32], t: Transform) {
    for (r, out) in y.chunks_exact_mut(len).enumerate() {
        out.fill(0.0);
        for &(iy, wy) in &ty[first + r] {
            for (o, v) in out.iter_mut().zip(&rows[iy * len..(iy + 1) * len]) {
                *o += wy * v;
            }
        }
        if t.round {
            out.iter_mut().for_each(|v| *v = (round_ties_even(*v) + t.add) * t.mul);
        } else {
            out.iter_mut().for_each(|v| *v = t.apply(*v));
        }
    }
}

/// `v.round_ties_even()` without a call to `rintf` (the generic x86-64 target has no rounding
/// instruction): for |v| < 2^23, adding and subtracting 2^23 rounds |v| to an integer in the default
/// rounding mode (ties to even), exactly; both branches are plain arithmetic, so the loop vectorizes.
#[inline]
fn round_ties_even(v: f32) -> f32 {
    const TWO_23: f32 = 8_388_608.0;
    let a = v.abs();
    // From 2^23 up every f32 is an integer; rounding is symmetric about 0.
    if a < TWO_23 {
        ((a + TWO_23) - TWO_23).copysign(v)
    } else {
        v
    }
}

/// OpenCV INTER_AREA resize of NHWC `x` to `out_hw`, each value then mapped by `t`; equal to
/// `cpu::image::resize_area`.
pub fn resize_area<P: Pixel>(x: &[P], shape: [usize; 4], out_hw: (usize, usize), t: Transform) -> Result<Vec<f32>, OpError> {
    let mut y = vec![0f32; shape[0] * out_hw.0 * out_hw.1 * shape[3]];
    resize_area_into(x, shape, out_hw, t, &mut y, &mut Vec::new())?;
    Ok(y)
}

/// [`resize_area`] into `y` (`[n, oh, ow, c]`), with `rows` as scratch (grown as needed).
pub fn resize_area_into<P: Pixel>(
    x: &[P],
    [n, h, w, c]: [usize; 4],
    (oh, ow): (usize, usize),
    t: Transform,
    y: &mut [f32],
    rows: &mut Vec<f32>,
) -> Result<(), OpError> {
    check("resize_area", x, [n, h, w, c], (oh, ow))?;
    if y.len() != n * oh * ow * c {
        return Err(OpError::Shape { op: "resize_area", detail: format!("output of {} values for {:?}", y.len(), [n, oh, ow, c]) });
    }
    let shrink = oh <= h && ow <= w;
    let (tx, ty) = (taps(w, ow, shrink), taps(h, oh, shrink));
    rows.resize(h * ow * c, 0.0);
    for (b, out) in y.chunks_exact_mut(oh * ow * c).enumerate() {
        let img = &x[b * h * w * c..(b + 1) * h * w * c];
        par_rows(rows, ow * c, |first, band| horizontal(img, (h, w, c), (0, 0), &tx, first, band));
        par_rows(out, ow * c, |first, band| vertical(rows, ow * c, &ty, first, band, t));
    }
    Ok(())
}

/// Area resizes of windows of NHWC `x`, each to `out_hw`: `boxes` holds `(image, x0, y0, width,
/// height)` per output image, pixels outside the image reading as 0; equal to
/// `cpu::image::crop_resize_area`.
pub fn crop_resize_area<P: Pixel>(
    x: &[P],
    shape: [usize; 4],
    boxes: &[i32],
    out_hw: (usize, usize),
    t: Transform,
) -> Result<Vec<f32>, OpError> {
    let mut y = vec![0f32; boxes.len() / 5 * out_hw.0 * out_hw.1 * shape[3]];
    crop_resize_area_into(x, shape, boxes, out_hw, t, &mut y)?;
    Ok(y)
}

/// [`crop_resize_area`] into `y` (`[boxes, oh, ow, c]`).
pub fn crop_resize_area_into<P: Pixel>(
    x: &[P],
    [n, h, w, c]: [usize; 4],
    boxes: &[i32],
    (oh, ow): (usize, usize),
    t: Transform,
    y: &mut [f32],
) -> Result<(), OpError> {
    check("crop_resize_area", x, [n, h, w, c], (oh, ow))?;
    if let Some(bx) = boxes.chunks_exact(5).find(|bx| bx[0] < 0 || bx[0] as usize >= n) {
        return Err(OpError::Shape { op: "crop_resize_area", detail: format!("box {bx:?} names image {} of {n}", bx[0]) });
    }
    let size = oh * ow * c;
    if y.len() != boxes.len() / 5 * size {
        return Err(OpError::Shape {
            op: "crop_resize_area",
            detail: format!("output of {} values for {} crops of {:?}", y.len(), boxes.len() / 5, [oh, ow, c]),
        });
    }
    par_rows(y, size, |first, band| {
        for (i, out) in band.chunks_exact_mut(size).enumerate() {
            let bx = &boxes[(first + i) * 5..(first + i + 1) * 5];
            let img = &x[bx[0] as usize * h * w * c..(bx[0] as usize + 1) * h * w * c];
            let win = (bx[2] as i64, bx[1] as i64, bx[4].max(1) as usize, bx[3].max(1) as usize);
            window(img, (h, w, c), win, out, (oh, ow), t);
        }
    });
    Ok(())
}

fn check<P>(op: &'static str, x: &[P], shape: [usize; 4], (oh, ow): (usize, usize)) -> Result<(), OpError> {
    if shape[1] == 0 || shape[2] == 0 || oh == 0 || ow == 0 || x.len() != shape.iter().product::<usize>() {
        return Err(OpError::Shape {
            op,
            detail: format!(
                "input of {} values as {shape:?} must be a non-empty NHWC image and the output {:?} non-empty",
                x.len(),
                (oh, ow)
            ),
        });
    }
    Ok(())
}
