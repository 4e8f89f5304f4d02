//! `facegpu eval`: facenet's validate_on_lfw.py. Pairs are read in LFW's format, every image is embedded
//! once (optionally aligned on the fly with MTCNN, optionally with its mirror image), and the metrics of
//! [`crate::eval::metrics`] are computed exactly as facenet does.

use std::path::Path;

use image::RgbImage;

use crate::data::images::load_image;
use crate::eval::metrics::{DistanceMetric, Verification};
use crate::gpu::GpuContext;
use crate::models::mtcnn::{DetectOptions, Mtcnn};
use crate::progress::{Event, Progress};
use crate::workflows::align::{central_face, face_image, AlignMode};
use crate::workflows::embed::Embedder;

#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub folds: usize,
    pub metric: DistanceMetric,
    pub subtract_mean: bool,
    pub use_flipped_images: bool,
    pub batch_size: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        Self { folds: 10, metric: DistanceMetric::Euclidean, subtract_mean: false, use_flipped_images: false, batch_size: 32 }
    }
}

/// Align raw photos on the fly (facenet's evaluation settings: 160 pixels, margin 32).
pub struct OnTheFlyAlign<'a> {
    pub mtcnn: &'a mut Mtcnn,
    pub detect: DetectOptions,
    pub margin: f64,
}

/// What `eval` measured, and on what.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    #[serde(flatten)]
    pub metrics: Verification,
    /// Pairs evaluated.
    pub pairs: usize,
    /// Pairs skipped: an image missing, unreadable or (with alignment) without a face.
    pub skipped: usize,
    /// Unique images embedded.
    pub images: usize,
    #[serde(skip)]
    pub problems: Vec<String>,
}

impl EvalReport {
    /// validate_on_lfw.py's output lines.
    pub fn human(&self) -> String {
        let m = &self.metrics;
        format!(
            "Accuracy: {:.5}+-{:.5}\nValidation rate: {:.5}+-{:.5} @ FAR={:.5}\nArea Under Curve (AUC): {:.3}\nEqual Error Rate (EER): {:.3}",
            m.accuracy_mean, m.accuracy_std, m.val, m.val_std, m.far, m.auc, m.eer
        )
    }

    /// The fold-averaged ROC curve as a PNG.
    pub fn save_roc(&self, path: &Path) -> Result<(), crate::workflows::Error> {
        let points: Vec<(f64, f64)> = self.metrics.fpr.iter().copied().zip(self.metrics.tpr.iter().copied()).collect();
        let title = format!("ROC (AUC {:.3}, EER {:.3})", self.metrics.auc, self.metrics.eer);
        crate::eval::plot::Plot {
            title: &title,
            x_label: "False positive rate",
            y_label: "True positive rate",
            x_range: (0.0, 1.0),
            y_range: (0.0, 1.0),
            series: vec![crate::eval::plot::Series { points: &points, color: [31, 119, 180] }],
            diagonal: true,
        }
        .save(path)?;
        Ok(())
    }
}

/// `tf.image.resize_image_with_crop_or_pad`: centre crop or zero-pad to `size x size` (facenet's
/// evaluation input pipeline; an aligned image of the model's size passes through unchanged).
pub fn crop_or_pad(img: &RgbImage, size: u32) -> RgbImage {
    if img.width() == size && img.height() == size {
        return img.clone();
    }
    let mut out = RgbImage::new(size, size);
    // Offsets of the source in the output (pad) and of the output in the source (crop), per axis.
    let axis = |n: u32| if n >= size { ((n - size) / 2, 0) } else { (0, (size - n) / 2) };
    let ((cx, px), (cy, py)) = (axis(img.width()), axis(img.height()));
    for y in 0..size.min(img.height()) {
        for x in 0..size.min(img.width()) {
            out.put_pixel(x + px, y + py, *img.get_pixel(x + cx, y + cy));
        }
    }
    out
}

/// Embeds `images` (already `size x size`) in batches, with their mirror images appended to each
/// embedding when `flipped` (validate_on_lfw.py's `--use_flipped_images`).
pub fn embed_images(
    ctx: &GpuContext,
    embedder: &mut Embedder,
    images: &[RgbImage],
    batch: usize,
    flipped: bool,
) -> Result<Vec<Vec<f32>>, crate::workflows::Error> {
    let mut out: Vec<Vec<f32>> = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch.max(1)) {
        let mirrored: Vec<RgbImage> = if flipped { chunk.iter().map(image::imageops::flip_horizontal).collect() } else { Vec::new() };
        let mut views = Vec::new();
        for view in [chunk, &mirrored[..]].into_iter().filter(|v| !v.is_empty()) {
            let pixels: Vec<f32> = view.iter().flat_map(|im| im.as_raw().iter().map(|&v| f32::from(v))).collect();
            let rows = embedder.embed_batch(ctx, &pixels, view.len())?.into_iter().collect::<Result<Vec<_>, _>>()?;
            views.push(rows);
        }
        out.extend((0..chunk.len()).map(|i| views.iter().flat_map(|v| v[i].iter().copied()).collect()));
    }
    Ok(out)
}

/// Loads one image for evaluation: decoded, aligned when asked, brought to the model's size.
fn load_for_eval(ctx: &GpuContext, path: &Path, size: u32, align: &mut Option<OnTheFlyAlign>) -> Result<RgbImage, crate::workflows::Error> {
    let img = load_image(path)?;
    let img = match align {
        Some(a) => {
            let faces = a.mtcnn.detect(ctx, &[&img], &a.detect).map_err(|e| format!("{}: {e}", path.display()))?.remove(0);
            let i = central_face(&faces, img.width(), img.height())
                .ok_or_else(|| crate::workflows::invalid!("{}: no face found", path.display()))?;
            face_image(&img, &faces[i], a.margin, size, AlignMode::Crop).0
        }
        None => img,
    };
    Ok(crop_or_pad(&img, size))
}

/// Runs the LFW protocol on `lfw_dir` with `pairs_file`.
pub fn eval_lfw(
    ctx: &GpuContext,
    embedder: &mut Embedder,
    lfw_dir: &Path,
    pairs_file: &Path,
    opts: &EvalOptions,
    mut align: Option<OnTheFlyAlign>,
    progress: &mut dyn Progress,
) -> Result<EvalReport, crate::workflows::Error> {
    if !lfw_dir.is_dir() {
        return Err(crate::workflows::invalid!("--lfw-dir {}: not a directory", lfw_dir.display()));
    }
    let pairs = crate::eval::lfw::read_pairs(pairs_file)?;
    let resolved = crate::eval::lfw::resolve(lfw_dir, &pairs.pairs);
    let mut problems: Vec<String> = resolved.skipped.iter().map(|p| format!("missing image for pair {p}")).collect();
    progress.report(Event::Start { what: "images", total: resolved.images.len() });
    let mut done = 0;
    // Images are loaded and embedded a batch at a time, so memory holds one batch of pixels and the
    // embeddings, however long the pairs file.
    let mut emb: Vec<Option<Vec<f32>>> = vec![None; resolved.images.len()];
    let mut embedded = 0;
    for (c, paths) in resolved.images.chunks(opts.batch_size.max(1)).enumerate() {
        let mut images = Vec::with_capacity(paths.len());
        let mut index = Vec::with_capacity(paths.len());
        for (j, path) in paths.iter().enumerate() {
            match load_for_eval(ctx, path, embedder.image_size, &mut align) {
                Ok(img) => {
                    images.push(img);
                    index.push(c * opts.batch_size.max(1) + j);
                }
                Err(e) => {
                    progress.report(Event::Skipped(e.to_string()));
                    problems.push(e.to_string());
                }
            }
            done += 1;
            progress.report(Event::Advance { done, status: None });
        }
        for (i, e) in index.into_iter().zip(embed_images(ctx, embedder, &images, images.len(), opts.use_flipped_images)?) {
            emb[i] = Some(e);
            embedded += 1;
        }
    }
    progress.report(Event::Finish);
    let (mut e1, mut e2, mut same) = (Vec::new(), Vec::new(), Vec::new());
    let mut skipped = resolved.skipped.len();
    for &(a, b, s) in &resolved.pairs {
        match (&emb[a], &emb[b]) {
            (Some(a), Some(b)) => {
                e1.push(a.clone());
                e2.push(b.clone());
                same.push(s);
            }
            _ => skipped += 1,
        }
    }
    if same.len() < opts.folds.max(2) {
        return Err(crate::workflows::invalid!(
            "only {} usable pairs in {} ({skipped} skipped): too few for {} folds",
            same.len(),
            pairs_file.display(),
            opts.folds
        ));
    }
    let metrics = crate::eval::metrics::evaluate(&e1, &e2, &same, opts.folds, opts.metric, opts.subtract_mean);
    Ok(EvalReport { metrics, pairs: same.len(), skipped, images: embedded, problems })
}
