//! The CPU backend's kernels: SIMD Rust for machines where the best adapter is a CPU driver. Convolution
//! is an implicit GEMM ([`gemm`]) whose A panels are gathered straight from the NHWC input, with the
//! conv's epilogue fused into the stores and its output written into a channel slice of a wider tensor
//! (a concatenation in place); pooling and normalization are plain loops. Tensors are NHWC `f32` slices.
//!
//! This layer imports only [`crate::ops`].

pub mod gemm;
pub mod image;

use crate::ops::conv2d::{out_size, Padding};
use crate::ops::OpError;
use gemm::{Epilogue, Isa, Output, PackA, PackedB, Rows, Strided, KC, MR};

/// Activation buffers kept between layers and passes: large allocations are otherwise returned to the
/// OS when freed and fault their pages in again on the next pass.
#[derive(Default)]
pub struct Buffers(std::sync::Mutex<Vec<Vec<f32>>>);

impl Buffers {
    /// A buffer of `len` values (zeroed), reusing the smallest kept one that fits.
    pub fn take(&self, len: usize) -> Vec<f32> {
        let mut v = self.take_overwritten(len);
        v.fill(0.0);
        v
    }

    /// [`Buffers::take`] for a caller that writes every value: a reused buffer keeps its old values
    /// (only growth is zeroed), which saves a pass over memory per layer.
    pub fn take_overwritten(&self, len: usize) -> Vec<f32> {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let best = (0..kept.len()).filter(|&i| kept[i].capacity() >= len).min_by_key(|&i| kept[i].capacity());
        let mut v = best.map(|i| kept.swap_remove(i)).unwrap_or_default();
        v.resize(len, 0.0);
        v
    }

    pub fn give(&self, v: Vec<f32>) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(v);
    }
}

/// Worker threads for the CPU kernels: `FACEGPU_THREADS`, else the machine's available parallelism.
pub fn threads() -> usize {
    std::env::var("FACEGPU_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&t: &usize| t > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// A convolution's weights packed for [`gemm::gemm`], with its geometry.
#[derive(Debug, Clone)]
pub struct ConvWeights {
    pub kh: usize,
    pub kw: usize,
    pub cin: usize,
    pub cout: usize,
    pub stride: usize,
    pub padding: Padding,
    packed: PackedB,
}

impl ConvWeights {
    /// Packs HWIO weights `[kh, kw, cin, cout]`.
    pub fn new(w: &[f32], (kh, kw): (usize, usize), cin: usize, cout: usize, stride: usize, padding: Padding) -> Self {
        Self { kh, kw, cin, cout, stride, padding, packed: PackedB::new(w, kh * kw * cin, cout) }
    }

    /// `[n, oh, ow, cout]` for an NHWC input shape.
    pub fn out_shape(&self, x: [usize; 4]) -> Result<[usize; 4], OpError> {
        let (oh, _, _) = out_size("conv2d", x[1], self.kh, self.stride, self.padding, 0)?;
        let (ow, _, _) = out_size("conv2d", x[2], self.kw, self.stride, self.padding, 1)?;
        Ok([x[0], oh, ow, self.cout])
    }
}

/// The im2col rows of a convolution, gathered as they are packed: row `(b, oy, ox)`, column
/// `(ky, kx, ci)` (the HWIO weights' row order); taps outside the image read as 0.
struct Windows<'a> {
    x: &'a [f32],
    shape: [usize; 4],
    w: &'a ConvWeights,
    oh: usize,
    ow: usize,
    pad_top: usize,
    pad_left: usize,
}

impl PackA for Windows<'_> {
    fn strided(&self, r0: usize) -> Option<Strided<'_>> {
        let [_, h, wd, c] = self.shape;
        let (kh, kw, s) = (self.w.kh, self.w.kw, self.w.stride);
        let (b, oy, ox) = (r0 / (self.oh * self.ow), r0 / self.ow % self.oh, r0 % self.ow);
        // MR output pixels of one row, all of whose taps lie in the image.
        let (iy, ix) = ((oy * s).checked_sub(self.pad_top)?, (ox * s).checked_sub(self.pad_left)?);
        let inside = ox + MR <= self.ow && iy + kh <= h && ix + (MR - 1) * s + kw <= wd;
        inside.then(|| Strided { base: &self.x[((b * h + iy) * wd + ix) * c..], lda: s * c, seg: kw * c, seg_stride: wd * c, segs: kh })
    }

    fn pack(&self, r0: usize, k0: usize, depth: usize, dst: &mut [f32]) {
        let [n, h, wd, c] = self.shape;
        let (kw, stride) = (self.w.kw, self.w.stride);
        let (oh, ow) = (self.oh, self.ow);
        let m = n * oh * ow;
        // The first row's pixel and the first column's tap, decomposed once and then stepped.
        let (mut b, mut oy, mut ox) = (r0 / (oh * ow), r0 / ow % oh, r0 % ow);
        let (tap0, ci0) = (k0 / c, k0 % c);
        for r in 0..MR {
            let row = &mut dst[r * KC..r * KC + depth];
            if r0 + r >= m {
                row.fill(0.0);
                continue;
            }
            let (mut ky, mut kx, mut ci) = (tap0 / kw, tap0 % kw, ci0);
            let mut kk = 0;
            while kk < depth {
                let iy = (oy * stride + ky) as isize - self.pad_top as isize;
                let ix = (ox * stride + kx) as isize - self.pad_left as isize;
                let cols = if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= wd {
                    let run = (c - ci).min(depth - kk);
                    row[kk..kk + run].fill(0.0);
                    kk += run;
                    1
                } else {
                    // The taps kx.. of this kernel row that lie in the image are adjacent pixels of
                    // one input row, so contiguous in NHWC: one copy.
                    let cols = (kw - kx).min(wd - ix as usize);
                    let run = (cols * c - ci).min(depth - kk);
                    let at = ((b * h + iy as usize) * wd + ix as usize) * c + ci;
                    copy_run(&mut row[kk..kk + run], &self.x[at..at + run]);
                    kk += run;
                    cols
                };
                // Unless depth ended the run mid-way, it ended on a tap boundary.
                (kx, ci) = (kx + cols, 0);
                if kx == kw {
                    (ky, kx) = (ky + 1, 0);
                }
            }
            ox += 1;
            if ox == ow {
                (ox, oy) = (0, oy + 1);
                if oy == oh {
                    (oy, b) = (0, b + 1);
                }
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for the short runs of a narrow conv's gather (MTCNN's 3-48 channels): in
/// 8-value blocks the compiler keeps in registers rather than a call to `memcpy` per run.
#[inline]
fn copy_run(dst: &mut [f32], src: &[f32]) {
    if dst.len() > 64 {
        dst.copy_from_slice(src);
        return;
    }
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let block: [f32; 8] = s.try_into().expect("an 8-value chunk");
        d.copy_from_slice(&block);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// `y[.., off..off + cout] = epilogue(conv2d(x, w))`, y having `y_c` channels per pixel, with the
/// fastest micro-kernel.
pub fn conv2d_into(
    x: &[f32],
    shape: [usize; 4],
    w: &ConvWeights,
    epi: &Epilogue,
    y: &mut [f32],
    y_c: usize,
    off: usize,
) -> Result<[usize; 4], OpError> {
    conv2d_into_isa(Isa::detect(), x, shape, w, epi, y, y_c, off)
}

/// [`conv2d_into`] with a given micro-kernel (the tests run each).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_into_isa(
    isa: Isa,
    x: &[f32],
    shape: [usize; 4],
    w: &ConvWeights,
    epi: &Epilogue,
    y: &mut [f32],
    y_c: usize,
    off: usize,
) -> Result<[usize; 4], OpError> {
    if shape[3] != w.cin {
        return Err(OpError::Shape {
            op: "conv2d",
            detail: format!("input {shape:?} has {} channels, the weights expect {}", shape[3], w.cin),
        });
    }
    let out = w.out_shape(shape)?;
    let pad_top = out_size("conv2d", shape[1], w.kh, w.stride, w.padding, 0)?.1 as usize;
    let pad_left = out_size("conv2d", shape[2], w.kw, w.stride, w.padding, 1)?.1 as usize;
    let m = out[0] * out[1] * out[2];
    if y.len() < m * y_c || off + w.cout > y_c {
        return Err(OpError::Shape { op: "conv2d", detail: format!("output of {} values for {out:?} at channel {off} of {y_c}", y.len()) });
    }
    let mut dst = Output { c: &mut y[..m * y_c], ldc: y_c, off };
    let pointwise = w.kh == 1 && w.kw == 1 && w.stride == 1 && pad_top == 0 && pad_left == 0;
    if pointwise {
        gemm::gemm(isa, &Rows { a: x, m, k: w.cin }, m, &w.packed, epi, &mut dst, threads());
    } else {
        let windows = Windows { x, shape, w, oh: out[1], ow: out[2], pad_top, pad_left };
        gemm::gemm(isa, &windows, m, &w.packed, epi, &mut dst, threads());
    }
    Ok(out)
}

/// A `k x k` max pool with stride `s` into channels `[off, off + c)` of a `y_c`-channel output; taps
/// outside the image (SAME padding) are left out, as in TensorFlow.
#[allow(clippy::too_many_arguments)]
pub fn max_pool_into(
    x: &[f32],
    shape: [usize; 4],
    k: usize,
    s: usize,
    padding: Padding,
    y: &mut [f32],
    y_c: usize,
    off: usize,
) -> Result<[usize; 4], OpError> {
    let [n, h, w, c] = shape;
    let (oh, top, _) = out_size("max_pool", h, k, s, padding, 0)?;
    let (ow, left, _) = out_size("max_pool", w, k, s, padding, 1)?;
    let (top, left) = (top as usize, left as usize);
    if x.len() != n * h * w * c || y.len() < n * oh * ow * y_c || off + c > y_c {
        return Err(OpError::Shape {
            op: "max_pool",
            detail: format!("{} values as {shape:?} into {} values at channel {off} of {y_c}", x.len(), y.len()),
        });
    }
    // The taps of output index o along an axis of n_in: [lo, hi) of the input.
    let span = |o: usize, pad: usize, n_in: usize| ((o * s).saturating_sub(pad), (o * s + k).saturating_sub(pad).min(n_in));
    par_rows(&mut y[..n * oh * ow * y_c], ow * y_c, |first, band| {
        for (r, row) in band.chunks_exact_mut(ow * y_c).enumerate() {
            let (b, oy) = ((first + r) / oh, (first + r) % oh);
            let (y0, y1) = span(oy, top, h);
            for ox in 0..ow {
                let (x0, x1) = span(ox, left, w);
                let dst = &mut row[ox * y_c + off..ox * y_c + off + c];
                dst.fill(f32::NEG_INFINITY);
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let i = ((b * h + iy) * w + ix) * c;
                        for (d, v) in dst.iter_mut().zip(&x[i..i + c]) {
                            *d = d.max(*v);
                        }
                    }
                }
            }
        }
    });
    Ok([n, oh, ow, c])
}

/// Runs `f(first, band)` on `y` cut into bands of whole rows of `row_len` values, one band per worker
/// thread, `first` being the band's first row; small outputs run on the calling thread.
pub(crate) fn par_rows(y: &mut [f32], row_len: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    /// Below this many values a band is not worth a task.
    const SMALL: usize = 1 << 14;
    let rows = y.len() / row_len.max(1);
    let threads = threads().min(y.len() / SMALL).clamp(1, rows.max(1));
    if threads == 1 {
        f(0, y);
        return;
    }
    let per = rows.div_ceil(threads);
    let f = &f;
    rayon::scope(|s| {
        for (i, band) in y.chunks_mut(per * row_len).enumerate() {
            s.spawn(move |_| f(i * per, band));
        }
    });
}

/// The mean over each image's pixels: `[n, h, w, c]` to `[n, c]`.
pub fn global_avg_pool(x: &[f32], shape: [usize; 4]) -> Vec<f32> {
    let [n, h, w, c] = shape;
    let mut y = vec![0f32; n * c];
    for b in 0..n {
        let out = &mut y[b * c..(b + 1) * c];
        for p in 0..h * w {
            for (o, v) in out.iter_mut().zip(&x[(b * h * w + p) * c..(b * h * w + p + 1) * c]) {
                *o += v;
            }
        }
        out.iter_mut().for_each(|v| *v /= (h * w) as f32);
    }
    y
}

/// Rows of `[rows, d]` scaled to unit length (`eps` bounds the squared norm from below, as TF's
/// `l2_normalize`).
pub fn l2_normalize(x: &mut [f32], d: usize, eps: f32) {
    for row in x.chunks_mut(d) {
        let inv = 1.0 / row.iter().map(|v| v * v).sum::<f32>().max(eps).sqrt();
        row.iter_mut().for_each(|v| *v *= inv);
    }
}
