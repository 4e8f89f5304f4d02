//! Image decoding for the commands: RGB, resized to the model's input size when needed.

use super::DataError;
use std::path::Path;

use image::RgbImage;

/// Most pixels a JPEG may declare before it is refused unread (a decompression bomb): the `image`
/// crate's default allocation limit, 512 MiB of RGB.
const MAX_JPEG_PIXELS: usize = (512 << 20) / 3;

/// Decodes a JPEG as libjpeg does for PIL, and so for facenet: the integer "islow" IDCT and fancy
/// (triangle) chroma upsampling, through libjpeg-turbo's C decoder (the `mozjpeg` crate). `None` where
/// libjpeg cannot give RGB (CMYK/YCCK JPEGs, which PIL converts itself) or refuses the file, so the
/// caller falls back to the `image` crate's decoder and its error message.
fn decode_jpeg_like_libjpeg(bytes: &[u8]) -> Option<RgbImage> {
    std::panic::catch_unwind(|| -> Option<RgbImage> {
        let d = mozjpeg::Decompress::new_mem(bytes).ok()?;
        let (w, h) = d.size();
        if w == 0 || h == 0 || w.saturating_mul(h) > MAX_JPEG_PIXELS {
            return None;
        }
        if !matches!(d.color_space(), mozjpeg::ColorSpace::JCS_YCbCr | mozjpeg::ColorSpace::JCS_RGB | mozjpeg::ColorSpace::JCS_GRAYSCALE) {
            return None;
        }
        let mut started = d.rgb().ok()?;
        let pixels: Vec<u8> = started.read_scanlines().ok()?;
        started.finish().ok()?;
        RgbImage::from_raw(w as u32, h as u32, pixels)
    })
    .ok()
    .flatten()
}

/// Decodes any supported image (format taken from the content, not the extension) as RGB; grey images
/// become RGB and alpha is dropped, as facenet's `to_rgb` / `img[:, :, 0:3]`. JPEGs are decoded the way
/// facenet's PIL decodes them (`decode_jpeg_like_libjpeg`), so MTCNN sees the same pixels. The error
/// names the file.
pub fn load_image(path: &Path) -> Result<RgbImage, DataError> {
    let fail = |e: &dyn std::fmt::Display| DataError::Image { path: path.to_path_buf(), detail: e.to_string() };
    let bytes = std::fs::read(path).map_err(|e| fail(&e))?;
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        if let Some(img) = decode_jpeg_like_libjpeg(&bytes) {
            return Ok(img);
        }
    }
    let img = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| fail(&e))?
        .decode()
        .map_err(|e| fail(&e))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(fail(&"the image is empty"));
    }
    Ok(img.to_rgb8())
}

/// Decodes `path` as RGB and returns `size x size x 3` pixel values (0..255), resized bilinearly when the
/// image is not already that size (facenet's `misc.imresize(..., 'bilinear')`). The error names the file.
pub fn load_rgb(path: &Path, size: u32) -> Result<Vec<f32>, DataError> {
    let img = load_image(path)?;
    let img = if img.width() == size && img.height() == size { img } else { resize_bilinear_like_pil(&img, size, size) };
    Ok(img.into_raw().into_iter().map(f32::from).collect())
}

/// Resizes as PIL's `Image.resize(size, BILINEAR)` (Pillow's Resample.c), which facenet reaches through
/// `scipy.misc.imresize(..., interp='bilinear')` for its aligned faces: a separable triangle filter whose
/// support grows with the downscale factor, weights normalized and rounded to 22-bit fixed point, the
/// horizontal pass first (into 8-bit rows, only those the vertical pass reads), then the vertical one.
pub fn resize_bilinear_like_pil(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    const PRECISION_BITS: u32 = 32 - 8 - 2;
    /// Per output index: the first input index, and the fixed-point weights from there.
    fn coeffs(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale; // the bilinear filter's support is 1
        (0..out_size)
            .map(|xx| {
                let center = (xx as f64 + 0.5) * scale;
                let xmin = ((center - support + 0.5) as i64).max(0) as usize;
                let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
                let w: Vec<f64> = (xmin..xmax).map(|x| (1.0 - ((x as f64 - center + 0.5) / filterscale).abs()).max(0.0)).collect();
                let total: f64 = w.iter().sum();
                let k = w
                    .iter()
                    .map(|&v| {
                        let v = if total != 0.0 { v / total } else { v } * f64::from(1u32 << PRECISION_BITS);
                        (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i32
                    })
                    .collect();
                (xmin, k)
            })
            .collect()
    }
    let clip = |s: i64| (s >> PRECISION_BITS).clamp(0, 255) as u8;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    let horiz = coeffs(w, ow);
    let vert = coeffs(h, oh);
    let src = img.as_raw();
    // Rows the vertical pass reads.
    let first = vert.first().map_or(0, |v| v.0);
    let last = vert.iter().map(|(y, k)| y + k.len()).max().unwrap_or(h);
    let (rows, tmp): (usize, Vec<u8>) = if ow != w {
        let mut tmp = vec![0u8; (last - first) * ow * 3];
        for y in first..last {
            for (xx, (xmin, k)) in horiz.iter().enumerate() {
                for c in 0..3 {
                    let mut s: i64 = 1 << (PRECISION_BITS - 1);
                    for (j, &kk) in k.iter().enumerate() {
                        s += i64::from(src[(y * w + xmin + j) * 3 + c]) * i64::from(kk);
                    }
                    tmp[((y - first) * ow + xx) * 3 + c] = clip(s);
                }
            }
        }
        (last - first, tmp)
    } else {
        (last - first, src[first * w * 3..last * w * 3].to_vec())
    };
    debug_assert_eq!(tmp.len(), rows * ow * 3);
    if oh == h && ow != w {
        return RgbImage::from_raw(width, height, tmp).expect("sizes agree");
    }
    let mut out = vec![0u8; oh * ow * 3];
    for (yy, (ymin, k)) in vert.iter().enumerate() {
        for x in 0..ow * 3 {
            let mut s: i64 = 1 << (PRECISION_BITS - 1);
            for (j, &kk) in k.iter().enumerate() {
                s += i64::from(tmp[(ymin - first + j) * ow * 3 + x]) * i64::from(kk);
            }
            out[yy * ow * 3 + x] = clip(s);
        }
    }
    RgbImage::from_raw(width, height, out).expect("sizes agree")
}
