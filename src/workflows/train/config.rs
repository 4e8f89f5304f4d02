//! A run's settings (`TrainConfig`, parsed by the CLI and saved as `args.json`) and its per-epoch log line.

use std::path::PathBuf;

/// The loss a run minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Softmax cross-entropy over the identities (+ center loss, prelogits norm, weight decay).
    Softmax,
    /// facenet's triplet loss with its negative selection.
    Triplet,
}

/// Every setting of a run, with facenet's names and defaults (`train_softmax.py`'s flags spelled with
/// hyphens); the CLI parses it directly, and a run saves it as `args.json`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, clap::Parser)]
pub struct TrainConfig {
    /// Training images: one folder per identity (aligned faces, e.g. from `facegpu align`).
    #[arg(long, default_value = "", hide_default_value = true, value_parser = any_path)]
    pub data_dir: PathBuf,
    /// Runs are written to MODELS_BASE_DIR/RUN_ID/.
    #[arg(long, default_value = "models/facegpu")]
    pub models_base_dir: PathBuf,
    /// Start from these weights (TF checkpoint or .safetensors); a Logits layer of another size is re-initialised.
    #[arg(long)]
    pub pretrained_model: Option<PathBuf>,
    /// Input size (images are cropped to it; at least 75).
    #[arg(long, default_value_t = 160)]
    pub image_size: u32,
    #[arg(long, default_value_t = 128)]
    pub embedding_size: usize,
    #[arg(long, default_value_t = 500)]
    pub max_nrof_epochs: usize,
    /// Batches per epoch.
    #[arg(long, default_value_t = 1000)]
    pub epoch_size: usize,
    #[arg(long, default_value_t = 90)]
    pub batch_size: usize,
    /// ADAGRAD, ADADELTA, ADAM, RMSPROP or MOM (or SGD).
    #[arg(long, default_value = "ADAGRAD")]
    pub optimizer: crate::kernels::optimizer::OptimizerKind,
    /// Initial learning rate; <= 0 reads --learning-rate-schedule-file.
    #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
    pub learning_rate: f64,
    #[arg(long, default_value_t = 100)]
    pub learning_rate_decay_epochs: usize,
    #[arg(long, default_value_t = 1.0)]
    pub learning_rate_decay_factor: f64,
    /// Lines "epoch: lr"; an lr of "-" or <= 0 ends training.
    #[arg(long)]
    pub learning_rate_schedule_file: Option<PathBuf>,
    /// Decay of the weights' exponential moving average (0 turns it off).
    #[arg(long, default_value_t = 0.9999)]
    pub moving_average_decay: f32,
    /// Dropout keep probability before the bottleneck.
    #[arg(long, default_value_t = 1.0)]
    pub keep_probability: f32,
    /// L2 weight decay of conv and fully-connected weights.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    #[arg(long, default_value_t = 0.0)]
    pub center_loss_factor: f32,
    #[arg(long, default_value_t = 0.95)]
    pub center_loss_alfa: f32,
    #[arg(long, default_value_t = 0.0)]
    pub prelogits_norm_loss_factor: f32,
    #[arg(long, default_value_t = 1.0)]
    pub prelogits_norm_p: f32,
    /// Random crops of --image-size (else a centre crop).
    #[arg(long)]
    pub random_crop: bool,
    #[arg(long)]
    pub random_flip: bool,
    /// Random rotation within +-10 degrees.
    #[arg(long)]
    pub random_rotate: bool,
    /// (x - 127.5) / 128 instead of per-image standardization.
    #[arg(long)]
    pub use_fixed_image_standardization: bool,
    #[arg(long, default_value_t = 666)]
    pub seed: u64,
    #[arg(long, default_value_t = 0.0)]
    pub validation_set_split_ratio: f64,
    #[arg(long, default_value_t = 0)]
    pub min_nrof_val_images_per_class: usize,
    /// LFW evaluation interval (with --lfw-dir and --lfw-pairs).
    #[arg(long, default_value_t = 5)]
    pub validate_every_n_epochs: usize,
    /// Aligned LFW images for evaluation during training.
    #[arg(long)]
    pub lfw_dir: Option<PathBuf>,
    #[arg(long)]
    pub lfw_pairs: Option<PathBuf>,
    #[arg(long, default_value = "euclidean")]
    pub lfw_distance_metric: crate::eval::metrics::DistanceMetric,
    #[arg(long)]
    pub lfw_subtract_mean: bool,
    #[arg(long)]
    pub lfw_use_flipped_images: bool,
    #[arg(long, default_value_t = 10)]
    pub lfw_nrof_folds: usize,
    /// Images per forward pass of the LFW evaluation.
    #[arg(long, default_value_t = 100)]
    #[serde(default = "lfw_batch")]
    pub lfw_batch_size: usize,
    /// A `facegpu filter-metrics` file: leave out the images farthest from their class centre.
    #[arg(long)]
    #[serde(default)]
    pub filter_filename: Option<PathBuf>,
    /// Keep the images below this percentile of the distances to their class centre.
    #[arg(long, default_value_t = 100.0)]
    #[serde(default = "hundred")]
    pub filter_percentile: f64,
    /// Drop filtered classes left with fewer images than this.
    #[arg(long, default_value_t = 0)]
    #[serde(default)]
    pub filter_min_nrof_images_per_class: usize,
    /// Write TensorBoard event files to LOGS_BASE_DIR/RUN_ID/ (the log.jsonl scalars per epoch).
    #[arg(long)]
    #[serde(default)]
    pub logs_base_dir: Option<PathBuf>,
    /// With --logs-base-dir: also the histogram of |prelogits| per epoch.
    #[arg(long)]
    #[serde(default)]
    pub log_histograms: bool,
    /// The prelogits histogram's range (larger values are clipped).
    #[arg(long, default_value_t = 10.0)]
    #[serde(default = "ten")]
    pub prelogits_hist_max: f32,
    /// softmax (train_softmax.py) or triplet (train_tripletloss.py).
    #[arg(long, value_enum, default_value = "softmax")]
    pub loss: LossKind,
    /// Triplet mode: people sampled per selection round.
    #[arg(long, default_value_t = 45)]
    pub people_per_batch: usize,
    /// Triplet mode: images sampled per person.
    #[arg(long, default_value_t = 40)]
    pub images_per_person: usize,
    /// Triplet mode: the margin.
    #[arg(long, default_value_t = 0.2)]
    pub alpha: f32,
    /// Image decoding threads.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
}

/// A path argument that may be empty (`--data-dir`'s default, left empty when `--resume` is given).
fn any_path(s: &str) -> Result<PathBuf, std::convert::Infallible> {
    Ok(PathBuf::from(s))
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

    /// facenet's defaults (the CLI's) for everything but the data directory.
    pub fn new(data_dir: PathBuf, models_base_dir: PathBuf) -> Self {
        let defaults = <Self as clap::Parser>::try_parse_from(["train"]).expect("every flag has a default");
        Self { data_dir, models_base_dir, ..defaults }
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
