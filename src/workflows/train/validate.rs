//! Evaluation during training: the validation split's cross-entropy and accuracy, and LFW.

use std::path::{Path, PathBuf};

use crate::data::dataset::ImageClass;
use crate::gpu::GpuContext;
use crate::progress::{Event, Progress};

use super::files::download_all;
use super::{State, TrainConfig};

/// facenet's `validate`: mean cross-entropy and accuracy on the validation set with the current weights
/// in inference mode (moving statistics), images centre-cropped and standardized as in training.
pub(super) fn validate(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    state: &State,
    val_set: &[ImageClass],
    progress: &mut dyn Progress,
) -> Result<(f64, f64), crate::workflows::Error> {
    let w = download_all(ctx, state, false)?;
    let mut model = crate::models::inception_resnet_v1::InceptionResnetV1::load(ctx, &w)?;
    let std = cfg.standardization();
    let c = state.net.classes;
    let lw = w.get("Logits/weights", &[cfg.embedding_size, c])?;
    let lb = w.get("Logits/biases", &[c])?;
    let s = cfg.image_size;
    let (mut xent, mut hits, mut n) = (0.0, 0usize, 0usize);
    let items: Vec<(PathBuf, usize)> =
        val_set.iter().enumerate().flat_map(|(l, cl)| cl.paths.iter().map(move |p| (p.clone(), l))).collect();
    for chunk in items.chunks(cfg.batch_size.max(1)) {
        let (mut pixels, mut labels) = (Vec::new(), Vec::new());
        for (p, l) in chunk {
            match crate::data::images::load_image(p) {
                Ok(img) => {
                    pixels.extend(crate::workflows::eval::crop_or_pad(&img, s).into_raw().into_iter().map(f32::from));
                    labels.push(*l);
                }
                Err(e) => progress.report(Event::Skipped(e.to_string())),
            }
        }
        if labels.is_empty() {
            continue;
        }
        let pre = model.prelogits(ctx, &pixels, [labels.len(), s as usize, s as usize, 3], std)?;
        for (row, &l) in pre.chunks(cfg.embedding_size).zip(&labels) {
            let z: Vec<f64> = (0..c)
                .map(|j| lb.data[j] as f64 + row.iter().enumerate().map(|(k, &v)| v as f64 * lw.data[k * c + j] as f64).sum::<f64>())
                .collect();
            let mx = z.iter().cloned().fold(f64::MIN, f64::max);
            let lse = z.iter().map(|v| (v - mx).exp()).sum::<f64>().ln() + mx;
            xent += lse - z[l];
            hits += usize::from((0..c).max_by(|&a, &b| z[a].total_cmp(&z[b])) == Some(l));
            n += 1;
        }
    }
    Ok((xent / n.max(1) as f64, hits as f64 / n.max(1) as f64))
}

/// LFW accuracy and VAL of the current weights (inference mode, moving statistics).
pub(super) fn lfw_during_training(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    state: &State,
    dir: &Path,
    pairs: &Path,
    progress: &mut dyn Progress,
) -> Result<(f64, f64), crate::workflows::Error> {
    let mut w = download_all(ctx, state, false)?;
    w.standardization = Some(cfg.standardization());
    let (device, device_reason) = crate::models::Device::choose(None, ctx);
    let model = crate::models::Network::load(ctx, &w, device)?;
    let mut embedder = crate::workflows::embed::Embedder {
        model,
        device_reason,
        standardization: cfg.standardization(),
        standardization_reason: "the training run's".into(),
        image_size: cfg.image_size,
        split_batches: 0,
        model_id: String::new(),
    };
    let opts = crate::workflows::eval::EvalOptions {
        folds: cfg.lfw_nrof_folds,
        metric: cfg.lfw_distance_metric,
        subtract_mean: cfg.lfw_subtract_mean,
        use_flipped_images: cfg.lfw_use_flipped_images,
        batch_size: cfg.lfw_batch_size,
    };
    let r = crate::workflows::eval::eval_lfw(ctx, &mut embedder, dir, pairs, &opts, None, progress)?;
    Ok((r.metrics.accuracy_mean, r.metrics.val))
}
