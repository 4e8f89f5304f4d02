//! What a run writes to its directory: the inference model and the checkpoint, `log.jsonl`, the curves
//! and TensorBoard events; and the run id.

use std::collections::HashMap;
use std::path::Path;

use crate::checkpoint::safetensors::{self as st, StorageDtype};
use crate::checkpoint::{Tensor, Weights};
use crate::gpu::GpuContext;
use crate::train::events::{EventWriter, PrelogitsHistogram};

use super::{EpochLog, State, TrainConfig};

pub(super) fn download_all(ctx: &GpuContext, state: &State, for_inference: bool) -> Result<Weights, crate::workflows::Error> {
    let mut w = Weights::default();
    let store = &state.net.store;
    for (i, p) in store.params().iter().enumerate() {
        let src = match (&state.ema, for_inference) {
            (Some(ema), true) if i < ema.shadows.len() => &ema.shadows[i],
            _ => &p.value,
        };
        w.tensors.insert(p.name.clone(), Tensor { shape: p.value.shape.clone(), data: src.download(ctx)? });
    }
    for (name, t) in store.state_tensors() {
        w.tensors.insert(name.to_string(), Tensor { shape: t.shape.clone(), data: t.download(ctx)? });
    }
    if !for_inference {
        for (p, slots) in store.params().iter().zip(&state.opt.slots) {
            for (k, s) in slots.iter().enumerate() {
                w.tensors
                    .insert(format!("{}/{}_{k}", p.name, state.opt.kind.name()), Tensor { shape: s.shape.clone(), data: s.download(ctx)? });
            }
        }
        if let Some(ema) = &state.ema {
            for (p, s) in store.params().iter().zip(&ema.shadows) {
                w.tensors.insert(format!("{}/ExponentialMovingAverage", p.name), Tensor { shape: s.shape.clone(), data: s.download(ctx)? });
            }
        }
        w.tensors.insert("centers".into(), Tensor { shape: state.centers.shape.clone(), data: state.centers.download(ctx)? });
    }
    Ok(w)
}

pub(super) fn save_files(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    dir: &Path,
    state: &State,
    classes: &[String],
) -> Result<(), crate::workflows::Error> {
    let std_name = match cfg.standardization() {
        crate::checkpoint::Standardization::Fixed => "fixed",
        crate::checkpoint::Standardization::Prewhiten => "prewhiten",
    };
    let model_meta = HashMap::from([
        ("format".to_string(), "facegpu".to_string()),
        ("architecture".to_string(), "inception_resnet_v1".to_string()),
        ("embedding_size".to_string(), cfg.embedding_size.to_string()),
        ("standardization".to_string(), std_name.to_string()),
        ("image_size".to_string(), cfg.image_size.to_string()),
        ("epoch".to_string(), state.epoch.to_string()),
        ("step".to_string(), state.opt.step.to_string()),
    ]);
    st::save(&download_all(ctx, state, true)?, &dir.join("model.safetensors"), model_meta, StorageDtype::F32)?;
    let ckpt_meta = HashMap::from([
        ("format".to_string(), "facegpu-checkpoint".to_string()),
        ("epoch".to_string(), state.epoch.to_string()),
        ("batch".to_string(), state.batch.to_string()),
        ("step".to_string(), state.opt.step.to_string()),
        ("optimizer".to_string(), state.opt.kind.name().to_string()),
        ("classes".to_string(), serde_json::to_string(classes)?),
    ]);
    st::save(&download_all(ctx, state, false)?, &dir.join("checkpoint.safetensors"), ckpt_meta, StorageDtype::F32)?;
    Ok(())
}

pub(super) fn plot_curves(path: &Path, logs: &[EpochLog]) -> Result<(), crate::workflows::Error> {
    use crate::eval::plot::{Plot, Series};
    let loss: Vec<(f64, f64)> = logs.iter().map(|l| (l.epoch as f64, l.loss)).collect();
    let acc: Vec<(f64, f64)> = logs.iter().map(|l| (l.epoch as f64, l.accuracy)).collect();
    let last = logs.last().map_or(1.0, |l| l.epoch as f64).max(1.0);
    let first = logs.first().map_or(0.0, |l| l.epoch as f64 - 1.0);
    let max_loss = loss.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-6) * 1.05;
    let top = Plot {
        title: "Training loss",
        x_label: "Epoch",
        y_label: "Loss",
        x_range: (first, last),
        y_range: (0.0, max_loss),
        series: vec![Series { points: &loss, color: [214, 39, 40] }],
        diagonal: false,
    }
    .render()?;
    let bottom = Plot {
        title: "Training accuracy",
        x_label: "Epoch",
        y_label: "Accuracy",
        x_range: (first, last),
        y_range: (0.0, 1.0),
        series: vec![Series { points: &acc, color: [31, 119, 180] }],
        diagonal: false,
    }
    .render()?;
    let mut img = image::RgbImage::new(top.width(), top.height() + bottom.height());
    image::imageops::replace(&mut img, &top, 0, 0);
    image::imageops::replace(&mut img, &bottom, 0, top.height() as i64);
    Ok(crate::eval::plot::save_png(&img, path)?)
}

/// One epoch's line of `log.jsonl` as TensorBoard scalars at the epoch's last step (facenet's tags where
/// it has them: `lfw/accuracy`, `lfw/val_rate`, `time/total`), and the prelogits histogram when kept.
pub(super) fn write_epoch_events(
    w: &mut EventWriter,
    log: &EpochLog,
    hist: Option<PrelogitsHistogram>,
) -> Result<(), crate::workflows::Error> {
    let step = log.step;
    let mut scalars = vec![
        ("train/loss", log.loss),
        ("train/cross_entropy", log.cross_entropy),
        ("train/center_loss", log.center_loss),
        ("train/prelogits_norm", log.prelogits_norm),
        ("train/regularization_loss", log.regularization_loss),
        ("train/accuracy", log.accuracy),
        ("learning_rate", log.learning_rate),
        ("time/total", log.seconds),
        ("time/images_per_s", log.images_per_s),
    ];
    let optional = [
        ("lfw/accuracy", log.lfw_accuracy),
        ("lfw/val_rate", log.lfw_val),
        ("val/cross_entropy", log.val_cross_entropy),
        ("val/accuracy", log.val_accuracy),
    ];
    scalars.extend(optional.into_iter().filter_map(|(t, v)| v.map(|v| (t, v))));
    for (tag, v) in scalars {
        w.scalar(step, tag, v)?;
    }
    if let Some(h) = hist {
        w.histogram(step, "prelogits/abs", &h.to_histogram())?;
    }
    Ok(())
}

pub(super) fn read_log(path: &Path) -> Vec<EpochLog> {
    std::fs::read_to_string(path).map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()).unwrap_or_default()
}

/// A run id like facenet's `%Y%m%d-%H%M%S` (UTC), with a suffix if that directory exists.
pub(super) fn chrono_like_id() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_micros()).unwrap_or(0);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}-{nanos:06}", rem / 3600, rem % 3600 / 60, rem % 60)
}
