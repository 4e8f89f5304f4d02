//! `facegpu train`: facenet's train_softmax.py on the GPU tape. A run lives in
//! `MODELS_BASE_DIR/<run-id>/`: `args.json`, `log.jsonl` (one line per epoch), `curves.png`,
//! `model.safetensors` (inference weights, the moving average when enabled) and
//! `checkpoint.safetensors` (everything needed to resume exactly). Files are written to a temporary
//! name and renamed, so a crash mid-save leaves the previous file intact.

mod config;
mod files;
mod schedule;
mod step;
mod triplet;
mod validate;

pub use config::{EpochLog, LossKind, TrainConfig};
pub use schedule::{learning_rate, learning_rate_from_file};
pub use triplet::{sample_people, select_triplets};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::checkpoint::safetensors::{self as st};
use crate::checkpoint::Weights;
use crate::data::dataset::{spawn_loader, Augment, ImageClass, Rng};
use crate::gpu::{Encoder, GpuContext, GpuTensor};
use crate::progress::{Event, Progress};
use crate::tape::Tape;
use crate::train::events::{EventWriter, PrelogitsHistogram};
use std::sync::Arc;

use crate::data::dataset::{get_dataset, split_dataset};
use crate::data::write_atomic;
use crate::train::net::TrainNet;
use crate::train::{Ema, Optimizer};
use files::{chrono_like_id, plot_curves, read_log, save_files, write_epoch_events};
use schedule::epoch_plan;
use step::{regularization_loss, step};
use triplet::{triplet_epoch, TripletCtx};
use validate::{lfw_during_training, validate};

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

/// Everything a run holds on the GPU between steps.
pub(super) struct State<'w> {
    pub(super) net: TrainNet<'w>,
    pub(super) opt: Optimizer,
    pub(super) ema: Option<Ema>,
    pub(super) centers: GpuTensor,
    /// Completed epochs.
    pub(super) epoch: usize,
    /// Batches done in the epoch after `epoch` (non-zero only in a checkpoint saved by Ctrl-C).
    pub(super) batch: usize,
}

/// The identities a run trains on, after filtering and the validation split.
struct TrainingData {
    train_set: Vec<ImageClass>,
    val_set: Vec<ImageClass>,
    class_names: Vec<String>,
    /// Every training image with its label.
    images: Vec<(PathBuf, u32)>,
    filtered: Option<crate::workflows::filter::Filtered>,
}

impl TrainingData {
    fn load(cfg: &TrainConfig, progress: &mut dyn Progress) -> Result<Self, crate::workflows::Error> {
        let mut classes = get_dataset(&cfg.data_dir)?;
        let filtered = match &cfg.filter_filename {
            Some(f) => Some(filter(cfg, f, &mut classes, progress)?),
            None => None,
        };
        let mut split_rng = Rng::new(cfg.seed);
        let (train_set, val_set) =
            split_dataset(&classes, cfg.validation_set_split_ratio, cfg.min_nrof_val_images_per_class, &mut split_rng);
        let class_names: Vec<String> = train_set.iter().map(|c| c.name.clone()).collect();
        let images: Vec<(PathBuf, u32)> =
            train_set.iter().enumerate().flat_map(|(l, c)| c.paths.iter().map(move |p| (p.clone(), l as u32))).collect();
        if images.is_empty() || class_names.len() < 2 {
            return Err(crate::workflows::invalid!("{}: training needs at least two identities with images", cfg.data_dir.display()));
        }
        Ok(Self { train_set, val_set, class_names, images, filtered })
    }
}

/// facenet's dataset filtering with `--filter-filename`.
fn filter(
    cfg: &TrainConfig,
    file: &Path,
    classes: &mut Vec<ImageClass>,
    progress: &mut dyn Progress,
) -> Result<crate::workflows::filter::Filtered, crate::workflows::Error> {
    let m = crate::workflows::filter::FilterMetrics::load(file)?;
    let out = crate::workflows::filter::filter_dataset(classes, &m, cfg.filter_percentile, cfg.filter_min_nrof_images_per_class)
        .map_err(|e| format!("--filter-filename {}: {e}", file.display()))?;
    progress.report(Event::Notice(format!(
        "filter {}: distance threshold {:.4} (percentile {}): {} images and {} classes left out",
        file.display(),
        out.threshold,
        cfg.filter_percentile,
        out.removed_images.len(),
        out.removed_classes.len()
    )));
    Ok(out)
}

fn check_config(cfg: &TrainConfig) -> Result<(), crate::workflows::Error> {
    if cfg.loss == LossKind::Triplet && cfg.batch_size < 3 {
        return Err(crate::workflows::invalid!("--batch-size {} holds no triplet (at least 3)", cfg.batch_size));
    }
    if cfg.image_size < 75 {
        return Err(crate::workflows::invalid!("--image-size {} is too small for Inception-ResNet-v1 (at least 75)", cfg.image_size));
    }
    Ok(())
}

/// A resumed run's checkpoint: its weights and its metadata (counters, optimizer).
type Resumed = (Weights, HashMap<String, String>);

/// Starts a new run (`resume` None) or continues the run in `resume` exactly where it stopped.
/// `stop` is polled after every step (Ctrl-C): the run then saves a checkpoint and returns.
pub fn train(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    resume: Option<&Path>,
    stop: Arc<AtomicBool>,
    progress: &mut dyn Progress,
) -> Result<TrainSummary, crate::workflows::Error> {
    check_config(cfg)?;
    let data = TrainingData::load(cfg, progress)?;
    let (dir, resumed): (PathBuf, Option<Resumed>) = match resume {
        Some(dir) => (dir.to_path_buf(), Some(st::load_with_metadata(&dir.join("checkpoint.safetensors"))?)),
        // Created once the network is built, so a refused --pretrained-model leaves no empty run behind.
        None => (cfg.models_base_dir.join(chrono_like_id()), None),
    };
    let pretrained = match (&resumed, &cfg.pretrained_model) {
        (None, Some(p)) => Some(Weights::load(p)?),
        _ => None,
    };
    let mut run = Run::open(ctx, cfg, &data, dir, resumed.as_ref(), pretrained.as_ref(), progress)?;
    let stopped = run.epochs(&stop, progress)?;
    Ok(TrainSummary { run_dir: run.dir, epochs: run.logs, stopped, filtered: data.filtered })
}

/// A run in progress: its settings, data and directory, the GPU state and the log so far.
struct Run<'a, 'w> {
    ctx: &'a GpuContext,
    cfg: &'a TrainConfig,
    data: &'a TrainingData,
    dir: PathBuf,
    state: State<'w>,
    tape: Tape,
    /// Batch-sized input buffers, reused by every step.
    input: GpuTensor,
    labels: GpuTensor,
    logs: Vec<EpochLog>,
    events: Option<EventWriter>,
    hist: PrelogitsHistogram,
}

/// What the steps of one epoch added up to.
#[derive(Default)]
struct EpochSteps {
    /// Sums of total loss, cross-entropy, center loss, prelogits norm and accuracy over the steps.
    sums: [f64; 5],
    steps: usize,
    images: usize,
    skipped: usize,
    /// Stopped by Ctrl-C after this many batches of the epoch.
    interrupted_at: Option<usize>,
}

impl<'a, 'w> Run<'a, 'w> {
    /// Builds the network from `resumed` or `pretrained` weights (else initialised), checks them, writes
    /// `args.json` for a new run, and restores a resumed run's optimizer, averages, centers and counters.
    fn open(
        ctx: &'a GpuContext,
        cfg: &'a TrainConfig,
        data: &'a TrainingData,
        dir: PathBuf,
        resumed: Option<&'w Resumed>,
        pretrained: Option<&'w Weights>,
        progress: &mut dyn Progress,
    ) -> Result<Self, crate::workflows::Error> {
        let source = resumed.map(|(w, _)| w).or(pretrained);
        let logits = if cfg.loss == LossKind::Softmax { data.class_names.len() } else { 0 };
        let mut net = TrainNet::new(cfg.embedding_size, logits, source, cfg.seed);
        let (b, s) = (cfg.batch_size, cfg.image_size as usize);
        let input = GpuTensor::zeros(ctx, "train images", &[b, s, s, 3]);
        let mut tape = Tape::new();
        // One forward pass creates every parameter (and checks the image size works end to end); it is
        // not submitted, so the moving statistics stay as loaded.
        let mut enc = Encoder::new(ctx);
        let x = tape.input(&input);
        net.forward(&mut tape, &mut enc, x, 1.0, 0)?;
        drop(enc);
        tape.reset();
        check_loaded(&net, source, resumed.is_some(), pretrained.filter(|_| resumed.is_none()), data, progress)?;
        if resumed.is_none() {
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            write_atomic(&dir.join("args.json"), serde_json::to_string_pretty(cfg)?.as_bytes())?;
        }
        let opt = Optimizer::new(ctx, cfg.optimizer, &net.store)?;
        let ema = if cfg.moving_average_decay > 0.0 { Some(Ema::new(ctx, &net.store, cfg.moving_average_decay)?) } else { None };
        let centers = GpuTensor::zeros(ctx, "centers", &[data.class_names.len(), cfg.embedding_size]);
        let mut state = State { net, opt, ema, centers, epoch: 0, batch: 0 };
        if let Some((w, meta)) = resumed {
            restore(ctx, &mut state, w, meta, &dir)?;
        }
        let mut logs = read_log(&dir.join("log.jsonl"));
        logs.retain(|l| l.epoch <= state.epoch);
        let events = match &cfg.logs_base_dir {
            Some(base) => Some(EventWriter::create(&base.join(dir.file_name().unwrap_or_default()))?),
            None => None,
        };
        let labels = GpuTensor::zeros_u32(ctx, "train labels", &[b]);
        let hist = PrelogitsHistogram::new(cfg.prelogits_hist_max);
        Ok(Self { ctx, cfg, data, dir, state, tape, input, labels, logs, events, hist })
    }

    /// Runs epochs until `--max-nrof-epochs`, the schedule's end or Ctrl-C; returns why it stopped.
    fn epochs(&mut self, stop: &AtomicBool, progress: &mut dyn Progress) -> Result<String, crate::workflows::Error> {
        let cfg = self.cfg;
        while self.state.epoch < cfg.max_nrof_epochs {
            let epoch = self.state.epoch + 1;
            let lr = learning_rate(cfg, epoch, self.state.opt.step)?;
            if lr <= 0.0 {
                return Ok(format!("the learning-rate schedule ends training at epoch {epoch}"));
            }
            let t0 = Instant::now();
            let done = self.epoch_steps(epoch, stop, progress)?;
            if let Some(at) = done.interrupted_at {
                self.state.batch = at;
                save_files(self.ctx, cfg, &self.dir, &self.state, &self.data.class_names)?;
                let triplet_note =
                    if cfg.loss == LossKind::Triplet { " (with new triplet selections: they depend on the weights)" } else { "" };
                return Ok(format!(
                    "interrupted after batch {at} of epoch {epoch}; checkpoint saved, --resume continues from there{triplet_note}"
                ));
            }
            let log = self.epoch_log(epoch, lr, &done, t0.elapsed().as_secs_f64(), progress)?;
            self.finish_epoch(log)?;
        }
        Ok(format!("reached --max-nrof-epochs {}", cfg.max_nrof_epochs))
    }

    /// The training steps of `epoch`, from the batch a Ctrl-C checkpoint stopped at.
    fn epoch_steps(&mut self, epoch: usize, stop: &AtomicBool, progress: &mut dyn Progress) -> Result<EpochSteps, crate::workflows::Error> {
        let cfg = self.cfg;
        let phase = format!("steps of epoch {epoch}");
        progress.report(Event::Start { what: &phase, total: cfg.epoch_size });
        let start = std::mem::take(&mut self.state.batch);
        progress.report(Event::Advance { done: start, status: None });
        let out = if cfg.loss == LossKind::Triplet {
            let tc = TripletCtx { ctx: self.ctx, cfg, input: &self.input, aug: augment(cfg) };
            let t = triplet_epoch(&tc, &mut self.state, &mut self.tape, &self.data.train_set, epoch, start, stop, progress)?;
            let interrupted_at = (t.interrupted && start + t.steps < cfg.epoch_size).then_some(start + t.steps);
            EpochSteps { sums: [t.loss_sum, 0.0, 0.0, 0.0, 0.0], steps: t.steps, images: t.images, skipped: t.skipped, interrupted_at }
        } else {
            self.softmax_steps(epoch, start, stop, progress)?
        };
        progress.report(Event::Finish);
        Ok(out)
    }

    /// train_softmax.py's steps over the epoch's plan of batches, decoded on loader threads.
    fn softmax_steps(
        &mut self,
        epoch: usize,
        start: usize,
        stop: &AtomicBool,
        progress: &mut dyn Progress,
    ) -> Result<EpochSteps, crate::workflows::Error> {
        let (ctx, cfg) = (self.ctx, self.cfg);
        let s = cfg.image_size as usize;
        let plan = epoch_plan(&self.data.images, cfg, epoch);
        let loader = spawn_loader(plan, start, augment(cfg), Rng::new(cfg.seed ^ (epoch as u64) << 32), cfg.workers, 4);
        let (mut out, mut done, t0) = (EpochSteps::default(), start, Instant::now());
        for batch in loader {
            done += 1;
            batch.skipped.iter().for_each(|e| progress.report(Event::Skipped(e.clone())));
            out.skipped += batch.skipped.len();
            let n = batch.labels.len();
            if n == 0 {
                continue;
            }
            let x = self.input.prefix(&[n, s, s, 3])?;
            x.write(ctx, &batch.pixels)?;
            let y = self.labels.prefix(&[n])?;
            y.write_u32(ctx, &batch.labels)?;
            let lr = learning_rate(cfg, epoch, self.state.opt.step)? as f32;
            let m = step(ctx, cfg, &mut self.state, &mut self.tape, &x, &y, lr)?;
            if cfg.log_histograms {
                self.hist.add(&m.prelogits);
            }
            for (acc, v) in out.sums.iter_mut().zip([m.total, m.xent, m.center, m.norm, m.accuracy]) {
                *acc += v;
            }
            (out.steps, out.images) = (out.steps + 1, out.images + n);
            let status = format!("loss {:.3}  acc {:.3}  {:.1} img/s", m.total, m.accuracy, out.images as f64 / t0.elapsed().as_secs_f64());
            progress.report(Event::Advance { done, status: Some(status) });
            if stop.load(Ordering::SeqCst) && done < cfg.epoch_size {
                out.interrupted_at = Some(done);
                break;
            }
        }
        Ok(out)
    }

    /// The epoch's line of `log.jsonl`, with the validation split's and LFW's figures when due.
    fn epoch_log(
        &mut self,
        epoch: usize,
        lr: f64,
        done: &EpochSteps,
        secs: f64,
        progress: &mut dyn Progress,
    ) -> Result<EpochLog, crate::workflows::Error> {
        let (ctx, cfg) = (self.ctx, self.cfg);
        let k = done.steps.max(1) as f64;
        let reg = if cfg.weight_decay > 0.0 { regularization_loss(ctx, &self.state, cfg.weight_decay)? } else { 0.0 };
        self.state.epoch = epoch;
        let [loss, cross_entropy, center_loss, prelogits_norm, accuracy] = done.sums.map(|v| v / k);
        let mut log = EpochLog {
            epoch,
            step: self.state.opt.step,
            loss: loss + reg,
            cross_entropy,
            center_loss,
            prelogits_norm,
            regularization_loss: reg,
            accuracy,
            learning_rate: lr,
            seconds: secs,
            images_per_s: done.images as f64 / secs.max(1e-9),
            skipped_images: done.skipped,
            val_cross_entropy: None,
            val_accuracy: None,
            lfw_accuracy: None,
            lfw_val: None,
        };
        let due = epoch.is_multiple_of(cfg.validate_every_n_epochs.max(1)) || epoch == cfg.max_nrof_epochs;
        if due && cfg.loss == LossKind::Softmax && self.data.val_set.iter().any(|c| !c.paths.is_empty()) {
            let (xent, acc) = validate(ctx, cfg, &self.state, &self.data.val_set, progress)?;
            (log.val_cross_entropy, log.val_accuracy) = (Some(xent), Some(acc));
        }
        if let (Some(dir), Some(pairs), true) = (&cfg.lfw_dir, &cfg.lfw_pairs, due) {
            let (acc, val) = lfw_during_training(ctx, cfg, &self.state, dir, pairs, progress)?;
            (log.lfw_accuracy, log.lfw_val) = (Some(acc), Some(val));
        }
        progress.report(Event::Notice(format!(
            "epoch {epoch}: loss {:.4}  xent {:.4}  accuracy {:.4}  lr {lr}  {:.1}s  {:.2} img/s{}{}",
            log.loss,
            log.cross_entropy,
            log.accuracy,
            log.seconds,
            log.images_per_s,
            log.lfw_accuracy.map(|a| format!("  LFW accuracy {a:.4}")).unwrap_or_default(),
            log.val_accuracy.map(|a| format!("  validation accuracy {a:.4}")).unwrap_or_default()
        )));
        Ok(log)
    }

    /// Writes the epoch's events, model, checkpoint, log and curves.
    fn finish_epoch(&mut self, log: EpochLog) -> Result<(), crate::workflows::Error> {
        let cfg = self.cfg;
        if let Some(w) = &mut self.events {
            let hist = cfg.log_histograms.then(|| std::mem::replace(&mut self.hist, PrelogitsHistogram::new(cfg.prelogits_hist_max)));
            write_epoch_events(w, &log, hist)?;
        }
        self.logs.push(log);
        save_files(self.ctx, cfg, &self.dir, &self.state, &self.data.class_names)?;
        let text: String = self.logs.iter().map(|l| serde_json::to_string(l).map(|s| s + "\n")).collect::<Result<_, _>>()?;
        write_atomic(&self.dir.join("log.jsonl"), text.as_bytes())?;
        plot_curves(&self.dir.join("curves.png"), &self.logs)?;
        Ok(())
    }
}

/// The run's augmentation settings.
fn augment(cfg: &TrainConfig) -> Augment {
    Augment {
        image_size: cfg.image_size,
        random_crop: cfg.random_crop,
        random_flip: cfg.random_flip,
        random_rotate: cfg.random_rotate,
        fixed_standardization: cfg.use_fixed_image_standardization,
    }
}

/// Refuses weights that hold none of the network's variables, or a checkpoint that lacks some; says
/// which variables of `--pretrained-model` were initialised instead (a Logits layer of another size).
fn check_loaded(
    net: &TrainNet,
    source: Option<&Weights>,
    resuming: bool,
    pretrained: Option<&Weights>,
    data: &TrainingData,
    progress: &mut dyn Progress,
) -> Result<(), crate::workflows::Error> {
    let Some(w) = source else { return Ok(()) };
    if let Some(t) = pretrained.and_then(|p| p.tensors.get("Logits/weights")) {
        if t.shape != [net.embedding_size, data.class_names.len()] {
            progress.report(Event::Notice(format!(
                "--pretrained-model {}: Logits/weights has shape {:?} but this dataset has {} classes: the Logits layer is re-initialised",
                w.source.display(),
                t.shape,
                data.class_names.len()
            )));
        }
    }
    if net.loaded.is_empty() {
        let e = "holds none of Inception-ResNet-v1's variables (e.g. 'InceptionResnetV1/Conv2d_1a_3x3/weights'); is it a facenet model?";
        return Err(crate::workflows::invalid!("{}: {e}", w.source.display()));
    }
    if resuming && !net.initialised.is_empty() {
        let n = net.initialised.len();
        return Err(crate::workflows::invalid!("{}: checkpoint lacks {n} variables, e.g. '{}'", w.source.display(), net.initialised[0]));
    }
    let missing: Vec<&String> = net.initialised.iter().filter(|n| !n.starts_with("Logits/")).collect();
    if !missing.is_empty() {
        let (n, first) = (missing.len(), missing[0]);
        progress.report(Event::Notice(format!("{}: {n} variables not found, initialised instead (e.g. '{first}')", w.source.display())));
    }
    Ok(())
}

/// Restores a resumed run's optimizer slots, moving averages, centers and counters from its checkpoint.
fn restore(
    ctx: &GpuContext,
    state: &mut State,
    w: &Weights,
    meta: &HashMap<String, String>,
    dir: &Path,
) -> Result<(), crate::workflows::Error> {
    if meta.get("optimizer").is_some_and(|o| o != state.opt.kind.name()) {
        let (was, now) = (&meta["optimizer"], state.opt.kind);
        return Err(crate::workflows::invalid!("{}: checkpoint was written by {was} but args.json asks for {now}", dir.display()));
    }
    let get = |name: &str, t: &GpuTensor| -> Result<(), crate::workflows::Error> {
        let src = w.get(name, &t.shape)?;
        t.write(ctx, &src.data)?;
        Ok(())
    };
    for (p, slots) in state.net.store.params().iter().zip(&state.opt.slots) {
        for (k, sl) in slots.iter().enumerate() {
            get(&format!("{}/{}_{k}", p.name, state.opt.kind.name()), sl)?;
        }
    }
    if let Some(e) = &state.ema {
        for (p, sh) in state.net.store.params().iter().zip(&e.shadows) {
            get(&format!("{}/ExponentialMovingAverage", p.name), sh)?;
        }
    }
    get("centers", &state.centers)?;
    let counter = |key: &str| meta.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
    state.opt.step = counter("step") as u64;
    (state.epoch, state.batch) = (counter("epoch"), counter("batch"));
    Ok(())
}
