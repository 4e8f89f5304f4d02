//! Training data: facenet's identity-per-folder dataset and validation split, seeded sampling, and a
//! bounded queue of batches decoded and augmented on CPU worker threads while the GPU trains.

use super::{io_at, DataError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;

use image::imageops::FilterType;
use image::RgbImage;

use super::images::load_image;

/// One identity: its name (the folder) and its images.
#[derive(Debug, Clone)]
pub struct ImageClass {
    pub name: String,
    pub paths: Vec<PathBuf>,
}

/// facenet's `get_dataset`: one class per sub-folder, classes and images sorted by name.
pub fn get_dataset(dir: &Path) -> Result<Vec<ImageClass>, DataError> {
    let invalid = |detail: &str| DataError::Invalid { path: dir.to_path_buf(), detail: detail.into() };
    if !dir.is_dir() {
        return Err(invalid("not a directory (expected one sub-folder per identity)"));
    }
    let classes: Vec<ImageClass> = identity_folders(dir)?
        .into_iter()
        .map(|(name, paths)| ImageClass { name, paths: paths.into_iter().filter(|p| !is_side_file(p)).collect() })
        .collect();
    if classes.iter().all(|c| c.paths.is_empty()) {
        return Err(invalid("no images in any identity folder"));
    }
    Ok(classes)
}

/// Files `align` writes next to the images (`bounding_boxes_*.txt`, partial PNGs).
fn is_side_file(p: &Path) -> bool {
    let name = p.file_name().unwrap_or_default().to_string_lossy();
    name.ends_with(".txt") || name.ends_with(".partial")
}

/// A seeded xorshift64* generator: the whole data pipeline derives from `--seed` through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut r = Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(0x2545_F491_4F6C_DD1D) | 1);
        r.next_u64();
        r
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
    /// An independent stream for item `i` (one image of one batch).
    pub fn fork(&self, i: u64) -> Rng {
        Rng::new(self.0 ^ i.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }
}

/// facenet's `split_dataset` (mode SPLIT_IMAGES): each class's images shuffled, the last
/// `ratio` of them held out; a class keeps a training part only with at least `min_per_class` images
/// there and at least one held out. With `ratio` 0 everything trains.
pub fn split_dataset(classes: &[ImageClass], ratio: f64, min_per_class: usize, rng: &mut Rng) -> (Vec<ImageClass>, Vec<ImageClass>) {
    if ratio <= 0.0 {
        return (classes.to_vec(), Vec::new());
    }
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for c in classes {
        let mut paths = c.paths.clone();
        rng.shuffle(&mut paths);
        let n = paths.len();
        let mut split = (n as f64 * (1.0 - ratio)).floor() as usize;
        if split == n {
            split = n.saturating_sub(1);
        }
        if split >= min_per_class && n - split >= 1 {
            train.push(ImageClass { name: c.name.clone(), paths: paths[..split].to_vec() });
            val.push(ImageClass { name: c.name.clone(), paths: paths[split..].to_vec() });
        }
    }
    (train, val)
}

/// Augmentation and standardization of one training image (facenet's flags).
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    pub image_size: u32,
    pub random_crop: bool,
    pub random_flip: bool,
    pub random_rotate: bool,
    pub fixed_standardization: bool,
}

/// Bilinear rotation about the centre by `deg` degrees (facenet: `misc.imrotate`, uniform +-10 degrees).
fn rotate(img: &RgbImage, deg: f64) -> RgbImage {
    let (w, h) = img.dimensions();
    let (c, s) = (deg.to_radians().cos(), deg.to_radians().sin());
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let mut out = RgbImage::new(w, h);
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let (sx, sy) = (c * dx + s * dy + cx, -s * dx + c * dy + cy);
            if sx < 0.0 || sy < 0.0 || sx > (w - 1) as f64 || sy > (h - 1) as f64 {
                continue;
            }
            let (x0, y0) = (sx.floor() as u32, sy.floor() as u32);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (fx, fy) = (sx - x0 as f64, sy - y0 as f64);
            let mut px = [0u8; 3];
            for (k, v) in px.iter_mut().enumerate() {
                let at = |x: u32, y: u32| img.get_pixel(x, y)[k] as f64;
                let top = at(x0, y0) * (1.0 - fx) + at(x1, y0) * fx;
                let bottom = at(x0, y1) * (1.0 - fx) + at(x1, y1) * fx;
                *v = (top * (1.0 - fy) + bottom * fy).round() as u8;
            }
            out.put_pixel(x, y, image::Rgb(px));
        }
    }
    out
}

/// Decodes and augments one image into `size x size x 3` standardized values.
pub fn load_sample(path: &Path, aug: &Augment, rng: &mut Rng) -> Result<Vec<f32>, DataError> {
    let mut img = load_image(path)?;
    if aug.random_rotate {
        img = rotate(&img, rng.uniform() * 20.0 - 10.0);
    }
    let s = aug.image_size;
    // Too small an image for a crop is first resized up (facenet's aligned data is never smaller).
    if img.width() < s || img.height() < s {
        img = image::imageops::resize(&img, img.width().max(s), img.height().max(s), FilterType::Triangle);
    }
    let (ox, oy) = if aug.random_crop {
        (rng.below((img.width() - s + 1) as usize) as u32, rng.below((img.height() - s + 1) as usize) as u32)
    } else {
        ((img.width() - s) / 2, (img.height() - s) / 2)
    };
    let mut img = image::imageops::crop_imm(&img, ox, oy, s, s).to_image();
    if aug.random_flip && rng.uniform() < 0.5 {
        img = image::imageops::flip_horizontal(&img);
    }
    let px: Vec<f32> = img.into_raw().into_iter().map(f32::from).collect();
    Ok(standardize(px, aug.fixed_standardization))
}

/// `(x - 127.5) / 128` (fixed) or `tf.image.per_image_standardization` (prewhiten).
pub fn standardize(mut px: Vec<f32>, fixed: bool) -> Vec<f32> {
    if fixed {
        px.iter_mut().for_each(|v| *v = (*v - 127.5) / 128.0);
    } else {
        let n = px.len() as f64;
        let mean = px.iter().map(|&v| v as f64).sum::<f64>() / n;
        let std = (px.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt().max(1.0 / n.sqrt());
        px.iter_mut().for_each(|v| *v = ((*v as f64 - mean) / std) as f32);
    }
    px
}

/// One batch ready for the GPU.
pub struct Batch {
    pub index: usize,
    /// `n x size x size x 3` standardized values.
    pub pixels: Vec<f32>,
    pub labels: Vec<u32>,
    /// Images that could not be read (logged and left out of the batch).
    pub skipped: Vec<String>,
}

/// Decodes and augments the batches `plan[start..]` (image path and label per item) on `workers`
/// threads, at most `queue` batches ahead of the consumer, handed out in plan order. Item `j` of batch
/// `b` is augmented with `rng.fork(b * 65536 + j)`, so the result depends neither on thread timing nor
/// on where a resumed epoch starts.
pub fn spawn_loader(
    plan: Vec<Vec<(PathBuf, u32)>>,
    start: usize,
    aug: Augment,
    rng: Rng,
    workers: usize,
    queue: usize,
) -> impl Iterator<Item = Batch> {
    let plan = Arc::new(plan);
    let n = plan.len();
    let workers = workers.clamp(1, n.saturating_sub(start).max(1));
    let mut receivers: Vec<Receiver<Batch>> = Vec::new();
    for w in 0..workers {
        let (tx, rx) = sync_channel::<Batch>(queue.max(1).div_ceil(workers));
        let plan = plan.clone();
        std::thread::spawn(move || {
            for b in (start + w..plan.len()).step_by(workers) {
                let (mut pixels, mut labels, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
                for (j, (path, label)) in plan[b].iter().enumerate() {
                    let mut r = rng.fork((b as u64) << 16 | j as u64);
                    match load_sample(path, &aug, &mut r) {
                        Ok(px) => {
                            pixels.extend(px);
                            labels.push(*label);
                        }
                        Err(e) => skipped.push(e.to_string()),
                    }
                }
                if tx.send(Batch { index: b, pixels, labels, skipped }).is_err() {
                    return;
                }
            }
        });
        receivers.push(rx);
    }
    // Batch b comes from worker (b - start) % workers, in order, so reading round-robin restores the
    // plan order.
    let mut pending: BTreeMap<usize, Batch> = BTreeMap::new();
    (start..n).filter_map(move |b| {
        if let Some(batch) = pending.remove(&b) {
            return Some(batch);
        }
        let batch = receivers[(b - start) % workers].recv().ok()?;
        if batch.index == b {
            Some(batch)
        } else {
            pending.insert(batch.index, batch);
            pending.remove(&b)
        }
    })
}

/// `(class name, files)` per identity folder, both sorted (facenet's `get_dataset`).
pub fn identity_folders(dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>, DataError> {
    let list = |d: &Path| -> Result<Vec<PathBuf>, DataError> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d).map_err(io_at(d))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        v.sort();
        Ok(v)
    };
    let mut out = Vec::new();
    for class in list(dir)?.into_iter().filter(|p| p.is_dir()) {
        let files = list(&class)?.into_iter().filter(|p| p.is_file()).collect();
        out.push((class.file_name().unwrap_or_default().to_string_lossy().into_owned(), files));
    }
    Ok(out)
}
