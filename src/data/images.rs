//! Image decoding for the commands: RGB, resized to the model's input size when needed.

use std::path::Path;

use image::imageops::FilterType;
use image::RgbImage;

/// Decodes any supported image (format taken from the content, not the extension) as RGB; grey images
/// become RGB and alpha is dropped, as facenet's `to_rgb` / `img[:, :, 0:3]`. The error names the file.
pub fn load_image(path: &Path) -> Result<RgbImage, String> {
    let fail = |e: &dyn std::fmt::Display| format!("{}: cannot read image: {e}", path.display());
    let img = image::ImageReader::open(path)
        .map_err(|e| fail(&e))?
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
