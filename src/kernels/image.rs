//! Image ops for the pipelines: bilinear and area resize, crop with zero padding, horizontal flip,
//! fixed standardization and prewhiten (per-image standardization).

use crate::gpu::{check_shape, groups_1d, Encoder, GpuContext, GpuError, GpuTensor, Shader};
pub use crate::ops::image::{hw, ImageParams, Transform};

fn run(enc: &mut Encoder, entry: &'static str, p: &ImageParams, x: &GpuTensor, y: &GpuTensor) -> Result<(), GpuError> {
    check_shape(entry, "output", &y.shape, &p.out_shape())?;
    enc.dispatch(Shader::Image, entry, p, &[Some(&x.buffer), Some(&y.buffer), None, None], groups_1d(y.len()))
}

/// Resizes to `y`'s height and width with half-pixel bilinear interpolation (OpenCV INTER_LINEAR).
pub fn resize_bilinear(enc: &mut Encoder, x: &GpuTensor, y: &GpuTensor) -> Result<(), GpuError> {
    let p = ImageParams::new("resize_bilinear", &x.shape, hw(&y.shape))?;
    run(enc, "resize_bilinear", &p, x, y)
}

/// Resizes to `y`'s height and width as OpenCV INTER_AREA, then applies `t`.
pub fn resize_area(enc: &mut Encoder, x: &GpuTensor, y: &GpuTensor, t: Transform) -> Result<(), GpuError> {
    let p = ImageParams::new("resize_area", &x.shape, hw(&y.shape))?.with_transform(t);
    check_shape("resize_area", "output", &y.shape, &p.out_shape())?;
    enc.dispatch(Shader::Image, "resize_area", &p, &[Some(&x.buffer), Some(&y.buffer), None, None], groups_1d(y.len()))
}

/// MTCNN's crops: for each box `(image, x0, y0, cw, ch)` of `boxes` (i32 stored in a u32 tensor `[n, 5]`),
/// the `ch x cw` window at `(y0, x0)` of that image of `x`, zero outside the image, area-resized to `y`'s
/// `[n, oh, ow, c]`, then `t`. Image indices must be below `x`'s batch.
pub fn crop_resize_area(enc: &mut Encoder, x: &GpuTensor, boxes: &GpuTensor, y: &GpuTensor, t: Transform) -> Result<(), GpuError> {
    let mut p = ImageParams::new("crop_resize_area", &x.shape, hw(&y.shape))?.with_transform(t);
    p.n = y.shape[0] as u32;
    check_shape("crop_resize_area", "boxes", &boxes.shape, &[p.n as usize, 5])?;
    check_shape("crop_resize_area", "output", &y.shape, &p.out_shape())?;
    enc.dispatch(Shader::Image, "crop_resize_area", &p, &[Some(&x.buffer), Some(&y.buffer), None, Some(&boxes.buffer)], groups_1d(y.len()))
}

/// Texture rows of [`PackedImages`] written per upload: 16 MiB at the widest rows.
const UPLOAD_ROWS: usize = 64;

/// RGB8 images as the `*_rgb8` resizes read them: a pixel per u32 (`pack_rgb8`), each row padded with zero
/// pixels to a multiple of 4, in an rgba32uint texture of 4-pixel texels (texel `q` at
/// `(q & (2^shift - 1), q >> shift)`). A texture load is a gather on CPU drivers where a storage-buffer
/// load is a loop over the lanes, and one texel brings 4 pixels: MTCNN's pyramid and crops load a
/// window's inner pixels 4 at a time.
#[derive(Default)]
pub struct PackedImages {
    /// `[n, h, w]` of the images held.
    pub shape: [usize; 3],
    texture: Option<(wgpu::Texture, wgpu::TextureView)>,
    shift: u32,
}

impl PackedImages {
    /// Uploads `n` images of `h x w` pixels, `pixels` holding `n * h * w` values of `pack_rgb8` row by row,
    /// reusing the texture when it is large enough.
    pub fn upload(&mut self, ctx: &GpuContext, [n, h, w]: [usize; 3], pixels: &[u32]) -> Result<(), GpuError> {
        const OP: &str = "packed RGB8 images";
        if pixels.len() != n * h * w || n * h * w == 0 {
            return Err(GpuError::Shape { op: OP, detail: format!("{} pixels for {n} non-empty images of {h}x{w}", pixels.len()) });
        }
        let row_texels = w.div_ceil(4);
        let texels = (n * h * row_texels) as u64;
        let rows = ctx.texture_rows(OP, texels)?;
        let width = 1u64 << ctx.texture_row_shift;
        if self.texture.as_ref().is_none_or(|(t, _)| (t.height() as u64) < rows) {
            self.texture = Some(ctx.row_texture(OP, wgpu::TextureFormat::Rgba32Uint, rows));
        }
        // Written in blocks of texture rows, so neither the host copy nor wgpu's staging buffer grows with
        // the photo (a 100-megapixel photo is 400 MB packed).
        let (texture, _) = self.texture.as_ref().expect("just made");
        let (width, slots_per_row) = (width as usize, row_texels * 4);
        for r0 in (0..rows as usize).step_by(UPLOAD_ROWS) {
            let r1 = (r0 + UPLOAD_ROWS).min(rows as usize);
            let (s0, s1) = (r0 * width * 4, r1 * width * 4);
            let mut data = vec![0u32; s1 - s0];
            let first = s0 / slots_per_row;
            let last = (s1.div_ceil(slots_per_row)).min(n * h);
            for r in first..last {
                let start = r * slots_per_row;
                let (from, to) = (start.max(s0), (start + w).min(s1));
                if from < to {
                    data[from - s0..to - s0].copy_from_slice(&pixels[r * w + (from - start)..r * w + (to - start)]);
                }
            }
            ctx.queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d { x: 0, y: r0 as u32, z: 0 },
                    aspect: wgpu::TextureAspect::All,
                },
                bytemuck::cast_slice(&data),
                wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some((width * 16) as u32), rows_per_image: None },
                wgpu::Extent3d { width: width as u32, height: (r1 - r0) as u32, depth_or_array_layers: 1 },
            );
        }
        self.shape = [n, h, w];
        self.shift = ctx.texture_row_shift;
        Ok(())
    }

    /// Bytes of the texture.
    pub fn bytes(&self) -> usize {
        self.texture.as_ref().map_or(0, |(t, _)| t.width() as usize * t.height() as usize * 16)
    }

    fn view(&self, op: &'static str) -> Result<&wgpu::TextureView, GpuError> {
        match &self.texture {
            Some((_, v)) if self.shape[0] > 0 => Ok(v),
            _ => Err(GpuError::Invalid { op, detail: "no images uploaded".into() }),
        }
    }
}

/// One RGB pixel packed into a u32, `r | g << 8 | b << 16`: the layout of the `*_rgb8` resizes' input.
pub fn pack_rgb8(px: [u8; 3]) -> u32 {
    u32::from(px[0]) | u32::from(px[1]) << 8 | u32::from(px[2]) << 16
}

/// The params of an `*_rgb8` resize of `img` into `y`, whose 4 channels are R, G, B and a zero (MTCNN's
/// input layout).
fn rgb8_params(op: &'static str, img: &PackedImages, out_hw: (usize, usize), t: Transform) -> Result<ImageParams, GpuError> {
    let [n, h, w] = img.shape;
    let mut p = ImageParams::new(op, &[n, h, w, 4], out_hw)?.with_transform(t);
    p.tshift = img.shift;
    Ok(p)
}

/// `resize_area` of packed RGB8 images into `y` `[n, oh, ow, 4]` (R, G, B, 0), then `t`: MTCNN's pyramid.
/// A pixel per invocation.
pub fn resize_area_rgb8(enc: &mut Encoder, img: &PackedImages, y: &GpuTensor, t: Transform) -> Result<(), GpuError> {
    resize_area_rgb8_rows(enc, img, hw(&y.shape).0, 0, y, t)
}

/// Rows `row0 .. row0 + rows` of the `oh`-row [`resize_area_rgb8`] into `y` `[n, rows, ow, 4]`: a band of
/// a pyramid level too large for one buffer, equal to those rows of the whole resize.
pub fn resize_area_rgb8_rows(
    enc: &mut Encoder,
    img: &PackedImages,
    oh: usize,
    row0: usize,
    y: &GpuTensor,
    t: Transform,
) -> Result<(), GpuError> {
    const OP: &str = "resize_area_rgb8";
    let (rows, ow) = hw(&y.shape);
    let mut p = rgb8_params(OP, img, (oh, ow), t)?;
    if row0 + rows > oh {
        return Err(GpuError::Shape { op: OP, detail: format!("rows {row0}..{} of a {oh}-row resize", row0 + rows) });
    }
    (p.row0, p.rows) = (row0 as u32, rows as u32);
    check_shape(OP, "output", &y.shape, &[p.n as usize, rows, ow, 4])?;
    enc.tag_with(|| format!("{:?} -> {:?} rows {row0}..", img.shape, y.shape));
    enc.dispatch_textured(Shader::Image, OP, &p, &[None, Some(&y.buffer)], &[(5, img.view(OP)?)], groups_1d(y.len() / 4))
}

/// `crop_resize_area` of packed RGB8 images into `y` `[n, oh, ow, 4]` (R, G, B, 0): MTCNN's RNet and ONet
/// crops. Image indices must be below `img`'s count.
pub fn crop_resize_area_rgb8(
    enc: &mut Encoder,
    img: &PackedImages,
    boxes: &GpuTensor,
    y: &GpuTensor,
    t: Transform,
) -> Result<(), GpuError> {
    const OP: &str = "crop_resize_area_rgb8";
    let mut p = rgb8_params(OP, img, hw(&y.shape), t)?;
    p.n = y.shape[0] as u32;
    check_shape(OP, "boxes", &boxes.shape, &[p.n as usize, 5])?;
    check_shape(OP, "output", &y.shape, &p.out_shape())?;
    let buffers = [None, Some(&y.buffer), None, Some(&boxes.buffer)];
    enc.dispatch_textured(Shader::Image, OP, &p, &buffers, &[(5, img.view(OP)?)], groups_1d(y.len() / 4))
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
    enc.dispatch(Shader::Image, "prewhiten_stats", &p, &[Some(&x.buffer), None, Some(&stats.buffer), None], [p.n, 1, 1])?;
    enc.dispatch(Shader::Image, "prewhiten_apply", &p, &[Some(&x.buffer), Some(&y.buffer), Some(&stats.buffer), None], groups_1d(x.len()))
}
