//! Image decoding for the commands: RGB, resized to the model's input size when needed.

use std::path::Path;

use image::imageops::FilterType;
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
/// facenet's PIL decodes them ([`decode_jpeg_like_libjpeg`]), so MTCNN sees the same pixels. The error
/// names the file.
pub fn load_image(path: &Path) -> Result<RgbImage, String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: cannot read image: {e}", path.display());
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
pub fn load_rgb(path: &Path, size: u32) -> Result<Vec<f32>, String> {
    let img = load_image(path)?;
    let img =
        if img.width() == size && img.height() == size { img } else { image::imageops::resize(&img, size, size, FilterType::Triangle) };
    Ok(img.into_raw().into_iter().map(f32::from).collect())
}
