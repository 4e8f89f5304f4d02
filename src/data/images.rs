//! Image decoding for the commands: RGB, resized to the model's input size when needed.

use std::path::Path;

use image::imageops::FilterType;

/// Decodes `path` as RGB and returns `size x size x 3` pixel values (0..255), resized bilinearly when the
/// image is not already that size (facenet's `misc.imresize(..., 'bilinear')`). The error names the file.
pub fn load_rgb(path: &Path, size: u32) -> Result<Vec<f32>, String> {
    let img = image::open(path).map_err(|e| format!("{}: cannot read image: {e}", path.display()))?.to_rgb8();
    let img =
        if img.width() == size && img.height() == size { img } else { image::imageops::resize(&img, size, size, FilterType::Triangle) };
    Ok(img.into_raw().into_iter().map(f32::from).collect())
}
