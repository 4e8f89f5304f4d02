//! Image ops for the pipelines: bilinear and area resize, crop with zero padding, horizontal flip,
//! fixed standardization and prewhiten (per-image standardization).

use crate::gpu::{check_shape, groups_1d, Encoder, GpuError, GpuTensor, Shader};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ImageParams {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    pub oh: u32,
    pub ow: u32,
    pub y0: i32,
    pub x0: i32,
}

impl ImageParams {
    /// From an NHWC input shape and an output size.
    pub fn new(op: &'static str, x: &[usize], out_hw: (usize, usize)) -> Result<Self, GpuError> {
        if x.len() != 4 || x[1] == 0 || x[2] == 0 || out_hw.0 == 0 || out_hw.1 == 0 {
            return Err(GpuError::Shape {
                op,
                detail: format!("input {x:?} must be a non-empty NHWC image and the output {out_hw:?} non-empty"),
            });
        }
        Ok(Self { n: x[0] as u32, h: x[1] as u32, w: x[2] as u32, c: x[3] as u32, oh: out_hw.0 as u32, ow: out_hw.1 as u32, y0: 0, x0: 0 })
    }

    pub fn out_shape(&self) -> [usize; 4] {
        [self.n as usize, self.oh as usize, self.ow as usize, self.c as usize]
    }
}

/// `(height, width)` of an NHWC shape (0 where absent; `ImageParams::new` then refuses it).
pub fn hw(shape: &[usize]) -> (usize, usize) {
    (shape.get(1).copied().unwrap_or(0), shape.get(2).copied().unwrap_or(0))
}

fn run(enc: &mut Encoder, entry: &'static str, p: &ImageParams, x: &GpuTensor, y: &GpuTensor) -> Result<(), GpuError> {
    check_shape(entry, "output", &y.shape, &p.out_shape())?;
    enc.dispatch(Shader::Image, entry, p, &[Some(&x.buffer), Some(&y.buffer), None], groups_1d(y.len()))
}

/// Resizes to `y`'s height and width with half-pixel bilinear interpolation (OpenCV INTER_LINEAR).
pub fn resize_bilinear(enc: &mut Encoder, x: &GpuTensor, y: &GpuTensor) -> Result<(), GpuError> {
    let p = ImageParams::new("resize_bilinear", &x.shape, hw(&y.shape))?;
    run(enc, "resize_bilinear", &p, x, y)
}

/// Resizes to `y`'s height and width as OpenCV INTER_AREA (the MTCNN pyramid and crops).
pub fn resize_area(enc: &mut Encoder, x: &GpuTensor, y: &GpuTensor) -> Result<(), GpuError> {
    let p = ImageParams::new("resize_area", &x.shape, hw(&y.shape))?;
    run(enc, "resize_area", &p, x, y)
}

/// `y[oy, ox] = x[oy + top, ox + left]`, zero outside the image; `top`/`left` may be negative.
pub fn crop_pad(enc: &mut Encoder, x: &GpuTensor, y: &GpuTensor, top: i32, left: i32) -> Result<(), GpuError> {
    let mut p = ImageParams::new("crop_pad", &x.shape, hw(&y.shape))?;
    p.y0 = top;
    p.x0 = left;
    run(enc, "crop_pad", &p, x, y)
}

/// Mirrors left-right.
pub fn flip_h(enc: &mut Encoder, x: &GpuTensor, y: &GpuTensor) -> Result<(), GpuError> {
    let p = ImageParams::new("flip_h", &x.shape, hw(&x.shape))?;
    run(enc, "flip_h", &p, x, y)
}

/// `y = (x - 127.5) / 128`.
pub fn fixed_standardize(enc: &mut Encoder, x: &GpuTensor, y: &GpuTensor) -> Result<(), GpuError> {
    let p = ImageParams::new("fixed_standardize", &x.shape, hw(&x.shape))?;
    run(enc, "fixed_standardize", &p, x, y)
}

/// Per image: `y = (x - mean) / max(std, 1/sqrt(size))`; `stats` `[n, 2]` receives (mean, divisor).
pub fn prewhiten(enc: &mut Encoder, x: &GpuTensor, y: &GpuTensor, stats: &GpuTensor) -> Result<(), GpuError> {
    let p = ImageParams::new("prewhiten", &x.shape, hw(&x.shape))?;
    check_shape("prewhiten", "output", &y.shape, &x.shape)?;
    check_shape("prewhiten", "stats", &stats.shape, &[p.n as usize, 2])?;
    enc.dispatch(Shader::Image, "prewhiten_stats", &p, &[Some(&x.buffer), None, Some(&stats.buffer)], [p.n, 1, 1])?;
    enc.dispatch(Shader::Image, "prewhiten_apply", &p, &[Some(&x.buffer), Some(&y.buffer), Some(&stats.buffer)], groups_1d(x.len()))
}
