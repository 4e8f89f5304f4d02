//! `facegpu train`: facenet's train_softmax.py on the GPU tape. A run lives in
//! `MODELS_BASE_DIR/<run-id>/`: `args.json`, `log.jsonl` (one line per epoch), `curves.png`,
//! `model.safetensors` (inference weights, the moving average when enabled) and
//! `checkpoint.safetensors` (everything needed to resume exactly). Files are written to a temporary
//! name and renamed, so a crash mid-save leaves the previous file intact.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::checkpoint::safetensors::{self as st, StorageDtype};
use crate::checkpoint::{Tensor, Weights};
use crate::data::dataset::{get_dataset, spawn_loader, split_dataset, Augment, ImageClass, Rng};
use crate::data::write_atomic;
use crate::eval::metrics::DistanceMetric;
use crate::gpu::{Encoder, GpuContext, GpuTensor};
use crate::kernels::optimizer::OptimizerKind;
use crate::progress::{Event, Progress};
use crate::tape::Tape;
use crate::train::events::{EventWriter, PrelogitsHistogram};
use crate::train::net::TrainNet;
use crate::train::{Ema, Optimizer};

/// The loss a run minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Softmax cross-entropy over the identities (+ center loss, prelogits norm, weight decay).
    Softmax,
    /// facenet's triplet loss with its negative selection.
    Triplet,
}

/// Every setting of a run, with facenet's names and defaults; saved as `args.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub data_dir: PathBuf,
    pub models_base_dir: PathBuf,
    pub pretrained_model: Option<PathBuf>,
    pub image_size: u32,
    pub embedding_size: usize,
    pub max_nrof_epochs: usize,
    pub epoch_size: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerKind,
    pub learning_rate: f64,
    pub learning_rate_decay_epochs: usize,
    pub learning_rate_decay_factor: f64,
    pub learning_rate_schedule_file: Option<PathBuf>,
    pub moving_average_decay: f32,
    pub keep_probability: f32,
    pub weight_decay: f32,
    pub center_loss_factor: f32,
    pub center_loss_alfa: f32,
    pub prelogits_norm_loss_factor: f32,
    pub prelogits_norm_p: f32,
    pub random_crop: bool,
    pub random_flip: bool,
    pub random_rotate: bool,
    pub use_fixed_image_standardization: bool,
    pub seed: u64,
    pub validation_set_split_ratio: f64,
    pub min_nrof_val_images_per_class: usize,
    pub validate_every_n_epochs: usize,
    pub lfw_dir: Option<PathBuf>,
    pub lfw_pairs: Option<PathBuf>,
    pub lfw_distance_metric: DistanceMetric,
    pub lfw_subtract_mean: bool,
    pub lfw_use_flipped_images: bool,
    pub lfw_nrof_folds: usize,
    pub loss: LossKind,
    /// Triplet mode: people sampled per selection round, images per person, and the margin.
    pub people_per_batch: usize,
    pub images_per_person: usize,
    pub alpha: f32,
    /// Decoding threads.
    pub workers: usize,
    /// facenet's dataset filtering: a `facegpu filter-metrics` file, the percentile of distances to
    /// the class centre above which images are left out, and the fewest images a filtered class keeps.
    #[serde(default)]
    pub filter_filename: Option<PathBuf>,
    #[serde(default = "hundred")]
    pub filter_percentile: f64,
    #[serde(default)]
    pub filter_min_nrof_images_per_class: usize,
    /// Images per forward pass of the LFW evaluation (facenet's `--lfw_batch_size`).
    #[serde(default = "lfw_batch")]
    pub lfw_batch_size: usize,
    /// TensorBoard event files go to `logs_base_dir/<run id>/` (facenet's `--logs_base_dir`).
    #[serde(default)]
    pub logs_base_dir: Option<PathBuf>,
    /// Also log the histogram of |prelogits| per epoch (facenet's `--log_histograms`).
    #[serde(default)]
    pub log_histograms: bool,
    /// The histogram's range, values above clipped (facenet's `--prelogits_hist_max`).
    #[serde(default = "ten")]
    pub prelogits_hist_max: f32,
}

fn ten() -> f32 {
    10.0
}

fn hundred() -> f64 {
    100.0
}

fn lfw_batch() -> usize {
    100
}

impl TrainConfig {
    /// The input standardization the run trains with (and its model records).
    pub fn standardization(&self) -> crate::checkpoint::Standardization {
        if self.use_fixed_image_standardization {
            crate::checkpoint::Standardization::Fixed
        } else {
            crate::checkpoint::Standardization::Prewhiten
        }
    }

    /// facenet's defaults for everything but the data directory.
    pub fn new(data_dir: PathBuf, models_base_dir: PathBuf) -> Self {
        Self {
            data_dir,
            models_base_dir,
            pretrained_model: None,
            image_size: 160,
            embedding_size: 128,
            max_nrof_epochs: 500,
            epoch_size: 1000,
            batch_size: 90,
            optimizer: OptimizerKind::Adagrad,
            learning_rate: 0.1,
            learning_rate_decay_epochs: 100,
            learning_rate_decay_factor: 1.0,
            learning_rate_schedule_file: None,
            moving_average_decay: 0.9999,
            keep_probability: 1.0,
            weight_decay: 0.0,
            center_loss_factor: 0.0,
            center_loss_alfa: 0.95,
            prelogits_norm_loss_factor: 0.0,
            prelogits_norm_p: 1.0,
            random_crop: false,
            random_flip: false,
            random_rotate: false,
            use_fixed_image_standardization: false,
            seed: 666,
            validation_set_split_ratio: 0.0,
            min_nrof_val_images_per_class: 0,
            validate_every_n_epochs: 5,
            lfw_dir: None,
            lfw_pairs: None,
            lfw_distance_metric: DistanceMetric::Euclidean,
            lfw_subtract_mean: false,
            lfw_use_flipped_images: false,
            lfw_nrof_folds: 10,
            loss: LossKind::Softmax,
            people_per_batch: 45,
            images_per_person: 40,
            alpha: 0.2,
            workers: 2,
            filter_filename: None,
            filter_percentile: 100.0,
            filter_min_nrof_images_per_class: 0,
            lfw_batch_size: 100,
            logs_base_dir: None,
            log_histograms: false,
            prelogits_hist_max: 10.0,
        }
    }
}

/// One line of `log.jsonl`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EpochLog {
    pub epoch: usize,
    pub step: u64,
    /// Mean total loss (cross-entropy + weighted center loss + weighted prelogits norm + weight decay).
    pub loss: f64,
    pub cross_entropy: f64,
    pub center_loss: f64,
    pub prelogits_norm: f64,
    pub regularization_loss: f64,
    /// Mean training-batch accuracy.
    pub accuracy: f64,
    pub learning_rate: f64,
    pub seconds: f64,
    pub images_per_s: f64,
    /// Images that could not be read this epoch (logged by name and skipped).
    pub skipped_images: usize,
    /// Validation set (`--validation-set-split-ratio`): mean cross-entropy and accuracy in inference mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_cross_entropy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lfw_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lfw_val: Option<f64>,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub run_dir: PathBuf,
    pub epochs: Vec<EpochLog>,
    /// Why training stopped.
    pub stopped: String,
    /// What `--filter-filename` left out.
    pub filtered: Option<crate::workflows::filter::Filtered>,
}

/// facenet's `get_learning_rate_from_file`: lines `epoch: lr` (`#` comments; `-` or a value <= 0 ends
/// training); the last line whose epoch is <= `epoch` wins.
pub fn learning_rate_from_file(path: &Path, epoch: usize) -> Result<f64, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lr = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (e, v) = line.split_once(':').ok_or_else(|| format!("{}:{}: expected 'epoch: learning_rate'", path.display(), i + 1))?;
        let e: usize = e.trim().parse().map_err(|_| format!("{}:{}: '{}' is not an epoch", path.display(), i + 1, e.trim()))?;
        let v = v.trim();
        let v: f64 =
            if v == "-" { -1.0 } else { v.parse().map_err(|_| format!("{}:{}: '{v}' is not a learning rate", path.display(), i + 1))? };
        if e <= epoch {
            lr = Some(v);
        } else {
            break;
        }
    }
    lr.ok_or_else(|| format!("{}: no learning rate for epoch {epoch}", path.display()))
}

/// The learning rate of `epoch` (1-based) at global `step`: the schedule file's or `--learning-rate`, times
/// the staircase decay `factor ^ floor(step / (decay_epochs * epoch_size))`.
pub fn learning_rate(cfg: &TrainConfig, epoch: usize, step: u64) -> Result<f64, String> {
    let base = match (&cfg.learning_rate_schedule_file, cfg.learning_rate > 0.0) {
        (_, true) => cfg.learning_rate,
        (Some(f), false) => learning_rate_from_file(f, epoch)?,
        (None, false) => return Err("--learning-rate <= 0 needs --learning-rate-schedule-file".into()),
    };
    let period = (cfg.learning_rate_decay_epochs * cfg.epoch_size).max(1) as u64;
    Ok(base * cfg.learning_rate_decay_factor.powi((step / period) as i32))
}

/// Everything a run holds on the GPU between steps.
struct State<'w> {
    net: TrainNet<'w>,
    opt: Optimizer,
    ema: Option<Ema>,
    centers: GpuTensor,
    /// Completed epochs.
    epoch: usize,
    /// Batches done in the epoch after `epoch` (non-zero only in a checkpoint saved by Ctrl-C).
    batch: usize,
}

fn download_all(ctx: &GpuContext, state: &State, for_inference: bool) -> Result<Weights, Box<dyn std::error::Error>> {
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

fn save_files(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    dir: &Path,
    state: &State,
    classes: &[String],
) -> Result<(), Box<dyn std::error::Error>> {
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

fn plot_curves(path: &Path, logs: &[EpochLog]) -> Result<(), String> {
    use crate::eval::plot::{Plot, Series};
    let loss: Vec<(f64, f64)> = logs.iter().map(|l| (l.epoch as f64, l.loss)).collect();
    let acc: Vec<(f64, f64)> = logs.iter().map(|l| (l.epoch as f64, l.accuracy)).collect();
    let last = logs.last().map_or(1.0, |l| l.epoch as f64).max(1.0);
    let first = logs.first().map_or(0.0, |l| l.epoch as f64 - 1.0);
    let max_loss = loss.iter().map(|p| p.1).fold(0.0f64, f64::max).max(1e-6) * 1.05;
    let top = Plot {
        title: "TRAINING LOSS",
        x_label: "EPOCH",
        y_label: "LOSS",
        x_range: (first, last),
        y_range: (0.0, max_loss),
        series: vec![Series { points: &loss, color: [214, 39, 40] }],
        diagonal: false,
    }
    .render();
    let bottom = Plot {
        title: "TRAINING ACCURACY",
        x_label: "EPOCH",
        y_label: "ACCURACY",
        x_range: (first, last),
        y_range: (0.0, 1.0),
        series: vec![Series { points: &acc, color: [31, 119, 180] }],
        diagonal: false,
    }
    .render();
    let mut img = image::RgbImage::new(top.width(), top.height() + bottom.height());
    image::imageops::replace(&mut img, &top, 0, 0);
    image::imageops::replace(&mut img, &bottom, 0, top.height() as i64);
    let tmp = path.with_extension("png.partial");
    img.save_with_format(&tmp, image::ImageFormat::Png).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The batches of one epoch: `epoch_size` batches drawn from a shuffle of all training images seeded by
/// (seed, epoch), wrapping around as often as needed (facenet's range_input_producer).
fn epoch_plan(images: &[(PathBuf, u32)], cfg: &TrainConfig, epoch: usize) -> Vec<Vec<(PathBuf, u32)>> {
    let mut rng = Rng::new(cfg.seed ^ (epoch as u64).wrapping_mul(0x5851_F42D_4C95_7F2D));
    let mut order: Vec<usize> = (0..images.len()).collect();
    let mut out = Vec::with_capacity(cfg.epoch_size);
    let mut at = order.len();
    for _ in 0..cfg.epoch_size {
        let mut batch = Vec::with_capacity(cfg.batch_size);
        for _ in 0..cfg.batch_size {
            if at == order.len() {
                rng.shuffle(&mut order);
                at = 0;
            }
            batch.push(images[order[at]].clone());
            at += 1;
        }
        out.push(batch);
    }
    out
}

/// Starts a new run (`resume` None) or continues the run in `resume` exactly where it stopped.
/// `stop` is polled after every step (Ctrl-C): the run then saves a checkpoint and returns.
pub fn train(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    resume: Option<&Path>,
    stop: Arc<AtomicBool>,
    progress: &mut dyn Progress,
) -> Result<TrainSummary, Box<dyn std::error::Error>> {
    if cfg.loss == LossKind::Triplet && cfg.batch_size < 3 {
        return Err(format!("--batch-size {} holds no triplet (at least 3)", cfg.batch_size).into());
    }
    if cfg.image_size < 75 {
        return Err(format!("--image-size {} is too small for Inception-ResNet-v1 (at least 75)", cfg.image_size).into());
    }
    let mut classes = get_dataset(&cfg.data_dir)?;
    let filtered = match &cfg.filter_filename {
        Some(f) => {
            let m = crate::workflows::filter::FilterMetrics::load(f)?;
            let out =
                crate::workflows::filter::filter_dataset(&mut classes, &m, cfg.filter_percentile, cfg.filter_min_nrof_images_per_class)
                    .map_err(|e| format!("--filter-filename {}: {e}", f.display()))?;
            {
                progress.report(Event::Notice(format!(
                    "filter {}: distance threshold {:.4} (percentile {}): {} images and {} classes left out",
                    f.display(),
                    out.threshold,
                    cfg.filter_percentile,
                    out.removed_images.len(),
                    out.removed_classes.len()
                )));
            }
            Some(out)
        }
        None => None,
    };
    let mut split_rng = Rng::new(cfg.seed);
    let (train_set, val_set): (Vec<ImageClass>, Vec<ImageClass>) =
        split_dataset(&classes, cfg.validation_set_split_ratio, cfg.min_nrof_val_images_per_class, &mut split_rng);
    let class_names: Vec<String> = train_set.iter().map(|c| c.name.clone()).collect();
    let images: Vec<(PathBuf, u32)> =
        train_set.iter().enumerate().flat_map(|(l, c)| c.paths.iter().map(move |p| (p.clone(), l as u32))).collect();
    if images.is_empty() || class_names.len() < 2 {
        return Err(format!("{}: training needs at least two identities with images", cfg.data_dir.display()).into());
    }

    // The run directory, and what to start from.
    let (run_dir, resumed) = match resume {
        Some(dir) => {
            let (w, meta) = st::load_with_metadata(&dir.join("checkpoint.safetensors"))?;
            (dir.to_path_buf(), Some((w, meta)))
        }
        // Created once the network is built, so a refused --pretrained-model leaves no empty run behind.
        None => (cfg.models_base_dir.join(chrono_like_id()), None),
    };
    let pretrained = match (&resumed, &cfg.pretrained_model) {
        (Some(_), _) => None,
        (None, Some(p)) => Some(Weights::load(p)?),
        (None, None) => None,
    };
    let source: Option<&Weights> = resumed.as_ref().map(|(w, _)| w).or(pretrained.as_ref());
    let logits = if cfg.loss == LossKind::Softmax { class_names.len() } else { 0 };
    let mut net = TrainNet::new(cfg.embedding_size, logits, source, cfg.seed);
    if let (Some(w), None) = (&pretrained, &resumed) {
        if let Some(t) = w.tensors.get("Logits/weights") {
            if t.shape != [cfg.embedding_size, class_names.len()] {
                progress.report(Event::Notice(format!(
                    "--pretrained-model {}: Logits/weights has shape {:?} but this dataset has {} classes: the Logits layer is re-initialised",
                    w.source.display(),
                    t.shape,
                    class_names.len()
                )));
            }
        }
    }
    let b = cfg.batch_size;
    let s = cfg.image_size as usize;
    let input = GpuTensor::zeros(ctx, "train images", &[b, s, s, 3]);
    let labels = GpuTensor::zeros_u32(ctx, "train labels", &[b]);
    let mut tape = Tape::new();
    // One forward pass creates every parameter (and checks the image size works end to end).
    {
        let mut enc = Encoder::new(ctx);
        let x = tape.input(&input);
        net.forward(&mut tape, &mut enc, x, 1.0, 0)?;
        // Not submitted: the moving statistics stay as loaded.
        drop(enc);
        tape.reset();
    }
    if let Some(w) = source {
        if net.loaded.is_empty() {
            return Err(format!("{}: holds none of Inception-ResNet-v1's variables (e.g. 'InceptionResnetV1/Conv2d_1a_3x3/weights'); is it a facenet model?", w.source.display()).into());
        }
        let missing: Vec<&String> = net.initialised.iter().filter(|n| !n.starts_with("Logits/")).collect();
        if resumed.is_some() && !net.initialised.is_empty() {
            return Err(format!(
                "{}: checkpoint lacks {} variables, e.g. '{}'",
                w.source.display(),
                net.initialised.len(),
                net.initialised[0]
            )
            .into());
        }
        if !missing.is_empty() {
            progress.report(Event::Notice(format!(
                "{}: {} variables not found, initialised instead (e.g. '{}')",
                w.source.display(),
                missing.len(),
                missing[0]
            )));
        }
    }
    if resumed.is_none() {
        std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        write_atomic(&run_dir.join("args.json"), serde_json::to_string_pretty(cfg)?.as_bytes())?;
    }
    let mut opt = Optimizer::new(ctx, cfg.optimizer, &net.store)?;
    let ema = if cfg.moving_average_decay > 0.0 { Some(Ema::new(ctx, &net.store, cfg.moving_average_decay)?) } else { None };
    let centers = GpuTensor::zeros(ctx, "centers", &[class_names.len(), cfg.embedding_size]);
    let (mut epoch, mut batch) = (0, 0);
    if let Some((w, meta)) = &resumed {
        // Restore the optimizer slots, the moving averages, the centers and the counters.
        let get = |name: &str, t: &GpuTensor| -> Result<(), Box<dyn std::error::Error>> {
            let src = w.get(name, &t.shape)?;
            t.write(ctx, &src.data)?;
            Ok(())
        };
        for (p, slots) in net.store.params().iter().zip(&opt.slots) {
            for (k, sl) in slots.iter().enumerate() {
                get(&format!("{}/{}_{k}", p.name, opt.kind.name()), sl)?;
            }
        }
        if let Some(e) = &ema {
            for (p, sh) in net.store.params().iter().zip(&e.shadows) {
                get(&format!("{}/ExponentialMovingAverage", p.name), sh)?;
            }
        }
        get("centers", &centers)?;
        opt.step = meta.get("step").and_then(|v| v.parse().ok()).unwrap_or(0);
        epoch = meta.get("epoch").and_then(|v| v.parse().ok()).unwrap_or(0);
        batch = meta.get("batch").and_then(|v| v.parse().ok()).unwrap_or(0);
        if meta.get("optimizer").is_some_and(|o| o != opt.kind.name()) {
            return Err(format!(
                "{}: checkpoint was written by {} but args.json asks for {}",
                run_dir.display(),
                meta["optimizer"],
                opt.kind
            )
            .into());
        }
    }
    let mut state = State { net, opt, ema, centers, epoch, batch };
    let mut logs: Vec<EpochLog> = read_log(&run_dir.join("log.jsonl"));
    logs.retain(|l| l.epoch <= state.epoch);
    let aug = Augment {
        image_size: cfg.image_size,
        random_crop: cfg.random_crop,
        random_flip: cfg.random_flip,
        random_rotate: cfg.random_rotate,
        fixed_standardization: cfg.use_fixed_image_standardization,
    };
    let mut stopped = format!("reached --max-nrof-epochs {}", cfg.max_nrof_epochs);
    let mut events = match &cfg.logs_base_dir {
        Some(base) => Some(EventWriter::create(&base.join(run_dir.file_name().unwrap_or_default()))?),
        None => None,
    };
    let mut hist = PrelogitsHistogram::new(cfg.prelogits_hist_max);
    'epochs: while state.epoch < cfg.max_nrof_epochs {
        let epoch = state.epoch + 1;
        let lr = learning_rate(cfg, epoch, state.opt.step)?;
        if lr <= 0.0 {
            stopped = format!("the learning-rate schedule ends training at epoch {epoch}");
            break;
        }
        let plan = epoch_plan(&images, cfg, epoch);
        let phase = format!("steps of epoch {epoch}");
        progress.report(Event::Start { what: &phase, total: plan.len().max(cfg.epoch_size) });
        let t0 = Instant::now();
        let (mut sums, mut n_steps, mut n_images, mut skipped) = ([0f64; 5], 0usize, 0usize, 0usize);
        let start = std::mem::take(&mut state.batch);
        progress.report(Event::Advance { done: start, status: None });
        let mut done = start;
        if cfg.loss == LossKind::Triplet {
            let t = triplet_epoch(ctx, cfg, &mut state, &mut tape, &train_set, epoch, start, aug, &input, &stop, progress)?;
            sums = [t.loss_sum, 0.0, 0.0, 0.0, 0.0];
            (n_steps, n_images, skipped) = (t.steps, t.images, t.skipped);
            if t.interrupted && start + t.steps < cfg.epoch_size {
                progress.report(Event::Finish);
                state.batch = start + t.steps;
                save_files(ctx, cfg, &run_dir, &state, &class_names)?;
                stopped = format!(
                    "interrupted after batch {} of epoch {epoch}; checkpoint saved, --resume continues from there (with new triplet selections: they depend on the weights)",
                    state.batch
                );
                break 'epochs;
            }
        }
        let loader = spawn_loader(
            if cfg.loss == LossKind::Softmax { plan } else { Vec::new() },
            start,
            aug,
            Rng::new(cfg.seed ^ (epoch as u64) << 32),
            cfg.workers,
            4,
        );
        for batch in loader {
            done += 1;
            for e in &batch.skipped {
                progress.report(Event::Skipped(e.clone()));
            }
            skipped += batch.skipped.len();
            let n = batch.labels.len();
            if n == 0 {
                continue;
            }
            let x = input.prefix(&[n, s, s, 3])?;
            x.write(ctx, &batch.pixels)?;
            let y = labels.prefix(&[n])?;
            y.write_u32(ctx, &batch.labels)?;
            let lr = learning_rate(cfg, epoch, state.opt.step)? as f32;
            let m = step(ctx, cfg, &mut state, &mut tape, &x, &y, lr)?;
            if cfg.log_histograms {
                hist.add(&m.prelogits);
            }
            for (acc, v) in sums.iter_mut().zip([m.total, m.xent, m.center, m.norm, m.accuracy]) {
                *acc += v;
            }
            n_steps += 1;
            n_images += n;
            let secs = t0.elapsed().as_secs_f64();
            let status = format!("loss {:.3}  acc {:.3}  {:.1} img/s", m.total, m.accuracy, n_images as f64 / secs);
            progress.report(Event::Advance { done, status: Some(status) });
            if stop.load(Ordering::SeqCst) && done < cfg.epoch_size {
                progress.report(Event::Finish);
                state.batch = done;
                save_files(ctx, cfg, &run_dir, &state, &class_names)?;
                stopped = format!("interrupted after batch {done} of epoch {epoch}; checkpoint saved, --resume continues from there");
                break 'epochs;
            }
        }
        progress.report(Event::Finish);
        let secs = t0.elapsed().as_secs_f64();
        let k = n_steps.max(1) as f64;
        let reg = if cfg.weight_decay > 0.0 { regularization_loss(ctx, &state, cfg.weight_decay)? } else { 0.0 };
        state.epoch = epoch;
        let mut log = EpochLog {
            epoch,
            step: state.opt.step,
            loss: sums[0] / k + reg,
            cross_entropy: sums[1] / k,
            center_loss: sums[2] / k,
            prelogits_norm: sums[3] / k,
            regularization_loss: reg,
            accuracy: sums[4] / k,
            learning_rate: lr,
            seconds: secs,
            images_per_s: n_images as f64 / secs.max(1e-9),
            skipped_images: skipped,
            val_cross_entropy: None,
            val_accuracy: None,
            lfw_accuracy: None,
            lfw_val: None,
        };
        let due = epoch.is_multiple_of(cfg.validate_every_n_epochs.max(1)) || epoch == cfg.max_nrof_epochs;
        if due && cfg.loss == LossKind::Softmax && val_set.iter().any(|c| !c.paths.is_empty()) {
            let (xent, acc) = validate(ctx, cfg, &state, &val_set, progress)?;
            log.val_cross_entropy = Some(xent);
            log.val_accuracy = Some(acc);
        }
        if let (Some(dir), Some(pairs)) = (&cfg.lfw_dir, &cfg.lfw_pairs) {
            if epoch.is_multiple_of(cfg.validate_every_n_epochs.max(1)) || epoch == cfg.max_nrof_epochs {
                let (acc, val) = lfw_during_training(ctx, cfg, &state, dir, pairs, progress)?;
                log.lfw_accuracy = Some(acc);
                log.lfw_val = Some(val);
            }
        }
        {
            progress.report(Event::Notice(format!(
                "epoch {epoch}: loss {:.4}  xent {:.4}  accuracy {:.4}  lr {lr}  {:.1}s  {:.2} img/s{}",
                log.loss,
                log.cross_entropy,
                log.accuracy,
                log.seconds,
                log.images_per_s,
                log.lfw_accuracy.map(|a| format!("  LFW accuracy {a:.4}")).unwrap_or_default()
                    + &log.val_accuracy.map(|a| format!("  validation accuracy {a:.4}")).unwrap_or_default()
            )));
        }
        if let Some(w) = &mut events {
            write_epoch_events(
                w,
                &log,
                cfg.log_histograms.then(|| std::mem::replace(&mut hist, PrelogitsHistogram::new(cfg.prelogits_hist_max))),
            )?;
        }
        logs.push(log);
        save_files(ctx, cfg, &run_dir, &state, &class_names)?;
        let text: String = logs.iter().map(|l| serde_json::to_string(l).map(|s| s + "\n")).collect::<Result<_, _>>()?;
        write_atomic(&run_dir.join("log.jsonl"), text.as_bytes())?;
        plot_curves(&run_dir.join("curves.png"), &logs)?;
    }
    Ok(TrainSummary { run_dir, epochs: logs, stopped, filtered })
}

/// One epoch's line of `log.jsonl` as TensorBoard scalars at the epoch's last step (facenet's tags where
/// it has them: `lfw/accuracy`, `lfw/val_rate`, `time/total`), and the prelogits histogram when kept.
fn write_epoch_events(w: &mut EventWriter, log: &EpochLog, hist: Option<PrelogitsHistogram>) -> Result<(), String> {
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

fn read_log(path: &Path) -> Vec<EpochLog> {
    std::fs::read_to_string(path).map(|t| t.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()).unwrap_or_default()
}

/// A run id like facenet's `%Y%m%d-%H%M%S` (UTC), with a suffix if that directory exists.
fn chrono_like_id() -> String {
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

/// What a triplet epoch did.
struct TripletEpoch {
    loss_sum: f64,
    steps: usize,
    images: usize,
    skipped: usize,
    interrupted: bool,
}

/// facenet's `sample_people`: people in a shuffled order, up to `images_per_person` random images of
/// each, until `people_per_batch * images_per_person` images (or the dataset runs out).
pub fn sample_people(
    classes: &[ImageClass],
    people_per_batch: usize,
    images_per_person: usize,
    rng: &mut Rng,
) -> (Vec<PathBuf>, Vec<usize>) {
    let want = people_per_batch * images_per_person;
    let mut order: Vec<usize> = (0..classes.len()).collect();
    rng.shuffle(&mut order);
    let (mut paths, mut per_class) = (Vec::new(), Vec::new());
    for &c in &order {
        if paths.len() >= want {
            break;
        }
        let mut idx: Vec<usize> = (0..classes[c].paths.len()).collect();
        rng.shuffle(&mut idx);
        let take = idx.len().min(images_per_person).min(want - paths.len());
        if take == 0 {
            continue;
        }
        paths.extend(idx[..take].iter().map(|&i| classes[c].paths[i].clone()));
        per_class.push(take);
    }
    (paths, per_class)
}

/// facenet's `select_triplets`: for every anchor-positive pair of a person, a random negative among those
/// with `|a-n|^2 - |a-p|^2 < alpha` (none: the pair is dropped); the triplets are shuffled.
pub fn select_triplets(emb: &[Vec<f32>], per_class: &[usize], alpha: f32, rng: &mut Rng) -> Vec<[usize; 3]> {
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
    let mut triplets = Vec::new();
    let mut start = 0;
    for &n in per_class {
        for j in 1..n {
            let a = start + j - 1;
            let neg: Vec<f32> = (0..emb.len()).map(|i| dist(&emb[a], &emb[i])).collect();
            for p in j..n {
                let p = start + p;
                let pos = dist(&emb[a], &emb[p]);
                let candidates: Vec<usize> = (0..emb.len()).filter(|&i| (i < start || i >= start + n) && neg[i] - pos < alpha).collect();
                if !candidates.is_empty() {
                    triplets.push([a, p, candidates[rng.below(candidates.len())]]);
                }
            }
        }
        start += n;
    }
    rng.shuffle(&mut triplets);
    triplets
}

/// Decodes `paths` (no labels needed) in plan order.
fn load_images(
    paths: &[PathBuf],
    batch: usize,
    aug: Augment,
    rng: Rng,
    workers: usize,
) -> impl Iterator<Item = crate::data::dataset::Batch> {
    let plan: Vec<Vec<(PathBuf, u32)>> = paths.chunks(batch.max(1)).map(|c| c.iter().map(|p| (p.clone(), 0)).collect()).collect();
    spawn_loader(plan, 0, aug, rng, workers, 4)
}

/// One epoch of train_tripletloss.py: rounds of sampling people, embedding them with the current
/// weights (training mode, as facenet), selecting triplets and training on them, until `epoch_size`
/// batches.
#[allow(clippy::too_many_arguments)]
fn triplet_epoch(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    state: &mut State,
    tape: &mut Tape,
    classes: &[ImageClass],
    epoch: usize,
    start: usize,
    aug: Augment,
    input: &GpuTensor,
    stop: &AtomicBool,
    progress: &mut dyn Progress,
) -> Result<TripletEpoch, Box<dyn std::error::Error>> {
    let s = cfg.image_size as usize;
    let batch = cfg.batch_size - cfg.batch_size % 3;
    // A resumed epoch (start > 0) draws its own rounds: the interrupted ones depended on older weights.
    let mut rng = Rng::new(cfg.seed ^ (epoch as u64).wrapping_mul(0xA24B_AED4_963E_E407) ^ (start as u64) << 40);
    let mut out = TripletEpoch { loss_sum: 0.0, steps: 0, images: 0, skipped: 0, interrupted: false };
    let t0 = Instant::now();
    let mut round = 0u64;
    let todo = cfg.epoch_size.saturating_sub(start);
    while out.steps < todo {
        round += 1;
        let (paths, per_class) = sample_people(classes, cfg.people_per_batch, cfg.images_per_person, &mut rng);
        // Embeddings of the sampled images (unreadable ones are dropped with their class count fixed).
        let mut emb: Vec<Vec<f32>> = Vec::new();
        let mut kept: Vec<PathBuf> = Vec::new();
        let mut counts = per_class.clone();
        let class_of: Vec<usize> = per_class.iter().enumerate().flat_map(|(c, &n)| std::iter::repeat_n(c, n)).collect();
        let mut at = 0;
        for b in load_images(&paths, cfg.batch_size, aug, rng.fork(round), cfg.workers) {
            let chunk = &paths[at..(at + cfg.batch_size).min(paths.len())];
            for e in &b.skipped {
                progress.report(Event::Skipped(e.clone()));
                if let Some(i) = chunk.iter().position(|p| e.starts_with(&p.display().to_string())) {
                    counts[class_of[at + i]] -= 1;
                }
            }
            out.skipped += b.skipped.len();
            let n = b.pixels.len() / (s * s * 3);
            if n > 0 {
                let x = input.prefix(&[n, s, s, 3])?;
                x.write(ctx, &b.pixels)?;
                tape.reset();
                let mut enc = Encoder::new(ctx);
                let xv = tape.input(&x);
                let o = state.net.forward(tape, &mut enc, xv, cfg.keep_probability, 0)?;
                let e = tape.l2_normalize(&mut enc, o.prelogits, 1e-10)?;
                enc.submit()?;
                let v = tape.value(e).download(ctx)?;
                emb.extend(v.chunks(cfg.embedding_size).map(<[f32]>::to_vec));
                kept.extend(chunk.iter().filter(|p| !b.skipped.iter().any(|e| e.starts_with(&p.display().to_string()))).cloned());
            }
            at += chunk.len();
        }
        let triplets = select_triplets(&emb, &counts, cfg.alpha, &mut rng);
        if triplets.is_empty() {
            if round > 20 {
                return Err("no triplet violates the margin in 20 rounds: is there more than one person with two images?".into());
            }
            continue;
        }
        let flat: Vec<PathBuf> = triplets.iter().flat_map(|t| t.iter().map(|&i| kept[i].clone())).collect();
        for b in load_images(&flat, batch, aug, rng.fork(1000 + round), cfg.workers) {
            out.skipped += b.skipped.len();
            let n = b.pixels.len() / (s * s * 3);
            if !b.skipped.is_empty() || n == 0 || !n.is_multiple_of(3) {
                // A triplet lost an image: skip this batch rather than misalign the rows.
                continue;
            }
            let x = input.prefix(&[n, s, s, 3])?;
            x.write(ctx, &b.pixels)?;
            let lr = learning_rate(cfg, epoch, state.opt.step)? as f32;
            tape.reset();
            let mut enc = Encoder::new(ctx);
            let xv = tape.input(&x);
            let seed = (cfg.seed as u32) ^ (state.opt.step as u32).wrapping_mul(0x9E37_79B9);
            let o = state.net.forward(tape, &mut enc, xv, cfg.keep_probability, seed)?;
            let e = tape.l2_normalize(&mut enc, o.prelogits, 1e-10)?;
            let loss = tape.triplet_loss(&mut enc, e, cfg.alpha, 1.0)?;
            backward_and_update(&mut enc, cfg, state, tape, lr)?;
            enc.submit()?;
            let l = loss.download(ctx)?[0] as f64;
            out.loss_sum += l;
            out.steps += 1;
            out.images += n;
            let status =
                format!("triplet loss {l:.4}  {} triplets  {:.1} img/s", triplets.len(), out.images as f64 / t0.elapsed().as_secs_f64());
            progress.report(Event::Advance { done: start + out.steps, status: Some(status) });
            if stop.load(Ordering::SeqCst) {
                out.interrupted = true;
                return Ok(out);
            }
            if out.steps >= todo {
                break;
            }
        }
    }
    Ok(out)
}

/// The second half of every training step: backward, weight decay, the optimizer update and the moving
/// average, recorded after the losses.
fn backward_and_update(
    enc: &mut Encoder,
    cfg: &TrainConfig,
    state: &mut State,
    tape: &mut Tape,
    lr: f32,
) -> Result<(), Box<dyn std::error::Error>> {
    tape.backward(enc)?;
    state.net.store.weight_decay(enc, cfg.weight_decay)?;
    state.opt.step(enc, &state.net.store, lr)?;
    if let Some(ema) = &state.ema {
        ema.update(enc, &state.net.store, state.opt.step)?;
    }
    Ok(())
}

struct StepMetrics {
    total: f64,
    xent: f64,
    center: f64,
    norm: f64,
    accuracy: f64,
    /// The batch's prelogits when `--log-histograms` keeps their histogram (else empty).
    prelogits: Vec<f32>,
}

/// One training step: forward, the losses, backward, weight decay, the update and the moving average.
fn step(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    state: &mut State,
    tape: &mut Tape,
    x: &GpuTensor,
    y: &GpuTensor,
    lr: f32,
) -> Result<StepMetrics, Box<dyn std::error::Error>> {
    tape.reset();
    let mut enc = Encoder::new(ctx);
    let xv = tape.input(x);
    // Dropout masks differ per step and repeat on resume.
    let seed = (cfg.seed as u32) ^ (state.opt.step as u32).wrapping_mul(0x9E37_79B9);
    let out = state.net.forward(tape, &mut enc, xv, cfg.keep_probability, seed)?;
    let logits = out.logits.ok_or("the training net has no Logits layer")?;
    let (xent, prob) = tape.softmax_xent(&mut enc, logits, y, 1.0)?;
    let center = if cfg.center_loss_factor > 0.0 {
        Some(tape.center_loss(&mut enc, out.prelogits, y, &state.centers, cfg.center_loss_alfa, cfg.center_loss_factor)?)
    } else {
        None
    };
    let norm = if cfg.prelogits_norm_loss_factor > 0.0 {
        Some(tape.prelogits_norm(&mut enc, out.prelogits, cfg.prelogits_norm_p, 1e-4, cfg.prelogits_norm_loss_factor)?)
    } else {
        None
    };
    backward_and_update(&mut enc, cfg, state, tape, lr)?;
    enc.submit()?;
    let xent = xent.download(ctx)?[0] as f64;
    let center = match center {
        Some(c) => c.download(ctx)?[0] as f64,
        None => 0.0,
    };
    let norm = match norm {
        Some(c) => c.download(ctx)?[0] as f64,
        None => 0.0,
    };
    let prob = prob.download(ctx)?;
    let labels = y.download_u32(ctx)?;
    let prelogits = if cfg.log_histograms { tape.value(out.prelogits).download(ctx)? } else { Vec::new() };
    let c = state.net.classes;
    let hits = prob.chunks(c).zip(&labels).filter(|(p, &l)| (0..c).max_by(|&a, &b| p[a].total_cmp(&p[b])) == Some(l as usize)).count();
    Ok(StepMetrics {
        total: xent + cfg.center_loss_factor as f64 * center + cfg.prelogits_norm_loss_factor as f64 * norm,
        xent,
        center,
        norm,
        accuracy: hits as f64 / labels.len().max(1) as f64,
        prelogits,
    })
}

/// `wd/2 * sum w^2` over the decayed weights.
fn regularization_loss(ctx: &GpuContext, state: &State, wd: f32) -> Result<f64, Box<dyn std::error::Error>> {
    let n = state.net.store.params().iter().filter(|p| p.decay).count();
    let outs: Vec<GpuTensor> = (0..n).map(|i| GpuTensor::zeros(ctx, &format!("weight decay {i}"), &[1])).collect();
    let mut enc = Encoder::new(ctx);
    state.net.store.weight_decay_loss(&mut enc, wd, &outs)?;
    enc.submit()?;
    let mut total = 0.0;
    for o in &outs {
        total += o.download(ctx)?[0] as f64;
    }
    Ok(total)
}

/// facenet's `validate`: mean cross-entropy and accuracy on the validation set with the current weights
/// in inference mode (moving statistics), images centre-cropped and standardized as in training.
fn validate(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    state: &State,
    val_set: &[ImageClass],
    progress: &mut dyn Progress,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
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
                Err(e) => progress.report(Event::Skipped(e)),
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
fn lfw_during_training(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    state: &State,
    dir: &Path,
    pairs: &Path,
    progress: &mut dyn Progress,
) -> Result<(f64, f64), Box<dyn std::error::Error>> {
    let mut w = download_all(ctx, state, false)?;
    w.standardization = Some(cfg.standardization());
    let model = crate::models::inception_resnet_v1::InceptionResnetV1::load(ctx, &w)?;
    let mut embedder = crate::workflows::embed::Embedder {
        model,
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
