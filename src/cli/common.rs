//! Arguments and helpers every command shares: model and detector flags, the progress bar, the GPU context.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use facegpu::checkpoint::Standardization;
use facegpu::gpu::GpuContext;
use facegpu::models::mtcnn::{DetectOptions, Mtcnn};
use facegpu::workflows::embed::Embedder;

/// How to load and feed Inception-ResNet-v1 (shared by `embed` and `compare`).
#[derive(clap::Args)]
pub(crate) struct ModelArgs {
    /// Model: a facenet model folder, a TF checkpoint prefix or .index, a frozen graph .pb, or a
    /// .safetensors file.
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// Image standardization; default: what the model file records, else from the run id in its path
    /// (fixed from 20180401-000000 on), else prewhiten.
    #[arg(long, value_enum)]
    pub(crate) standardization: Option<Standardization>,
    /// Input size; images of another size are resized bilinearly.
    #[arg(long, default_value_t = 160)]
    pub(crate) image_size: u32,
    /// Where the network runs: cpu (SIMD kernels) or gpu (the WGSL kernels); default FACEGPU_DEVICE,
    /// else cpu when the best adapter is a CPU driver, else gpu.
    #[arg(long, value_enum)]
    pub(crate) device: Option<facegpu::models::Device>,
}

impl ModelArgs {
    /// Loads the model and says on stderr where it runs and which standardization it gets, and why.
    pub(crate) fn load(&self, ctx: &GpuContext) -> Result<Embedder, facegpu::checkpoint::CheckpointError> {
        let e = Embedder::load_on(ctx, &self.model, self.standardization, self.image_size, self.device)?;
        eprintln!("device: {:?} ({})", e.model.device(), e.device_reason);
        eprintln!("standardization: {:?} ({})", e.standardization, e.standardization_reason);
        Ok(e)
    }
}

/// MTCNN weights and facenet's detection settings (shared by `detect` and `bench detect`).
#[derive(clap::Args)]
pub(crate) struct MtcnnArgs {
    /// MTCNN weights in facegpu's layout (default: the embedded weights/mtcnn.safetensors).
    #[arg(long)]
    pub(crate) mtcnn_weights: Option<PathBuf>,
    /// Smallest face searched for, in pixels.
    #[arg(long, default_value_t = 20.0)]
    pub(crate) min_size: f64,
    /// Score thresholds of PNet, RNet and ONet.
    #[arg(long, num_args = 3, value_delimiter = ',', default_values_t = [0.6, 0.7, 0.7])]
    pub(crate) thresholds: Vec<f64>,
    /// Pyramid scale factor.
    #[arg(long, default_value_t = 0.709)]
    pub(crate) factor: f64,
    /// Most RNet/ONet crops per GPU pass (bounds memory).
    #[arg(long, default_value_t = 256)]
    pub(crate) crop_batch: usize,
    /// Where MTCNN runs: cpu (SIMD kernels) or gpu; default FACEGPU_DEVICE, else cpu where the best
    /// adapter is a CPU driver and gpu otherwise.
    #[arg(long, value_enum)]
    pub(crate) detect_device: Option<facegpu::models::Device>,
}

impl MtcnnArgs {
    pub(crate) fn load(&self, ctx: &GpuContext) -> Result<(Mtcnn, DetectOptions), Box<dyn std::error::Error>> {
        let mut mtcnn = Mtcnn::load_from(ctx, self.mtcnn_weights.as_deref())?;
        mtcnn.device = facegpu::models::Device::choose(self.detect_device, ctx).0;
        mtcnn.chunk = self.crop_batch.max(1);
        let t = &self.thresholds;
        Ok((mtcnn, DetectOptions { min_size: self.min_size, thresholds: [t[0], t[1], t[2]], factor: self.factor }))
    }
}

/// How faces are cut from photos for recognition (shared by `enroll` and `cluster`).
#[derive(clap::Args)]
pub(crate) struct FaceArgs {
    /// Pixels added around the detected box before the crop (facenet's crop).
    #[arg(long, default_value_t = 32.0)]
    pub(crate) margin: f64,
    /// crop: facenet's box + margin; similarity: the 5 landmarks warped onto ArcFace's template.
    #[arg(long, value_enum, default_value = "crop")]
    pub(crate) align_mode: facegpu::workflows::align::AlignMode,
    /// Inputs are ready face crops: no detection.
    #[arg(long)]
    pub(crate) aligned: bool,
}

impl FaceArgs {
    pub(crate) fn align(&self, image_size: u32) -> facegpu::workflows::recognize::FaceAlign {
        facegpu::workflows::recognize::FaceAlign { image_size, margin: self.margin, mode: self.align_mode }
    }
}

/// Installs the Ctrl-C handler once and returns the flag it sets.
pub(crate) fn ctrl_c_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    if ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            // A second Ctrl-C exits at once.
            std::process::exit(130);
        }
        let _ = writeln!(std::io::stderr(), "\nCtrl-C: saving a checkpoint at the end of this step (press again to quit now)");
    })
    .is_err()
    {
        eprintln!("warning: could not install the Ctrl-C handler; an interrupt will not save a checkpoint");
    }
    flag
}

/// Renders a workflow's progress events on stderr: a bar per phase, a line per skipped file or notice.
pub(crate) struct Bar(indicatif::ProgressBar);

impl Bar {
    pub(crate) fn new() -> Self {
        Self(indicatif::ProgressBar::hidden())
    }
}

impl facegpu::progress::Progress for Bar {
    fn report(&mut self, event: facegpu::progress::Event) {
        use facegpu::progress::Event;
        match event {
            Event::Start { what, total } => {
                self.0.finish_and_clear();
                self.0 = indicatif::ProgressBar::new(total as u64);
                self.0.set_style(
                    indicatif::ProgressStyle::with_template(&format!(
                        "{{bar:40}} {{pos}}/{{len}} {what}  {{per_sec}}  ETA {{eta}}  {{msg}}"
                    ))
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
            }
            Event::Advance { done, status } => {
                self.0.set_position(done as u64);
                if let Some(m) = status {
                    self.0.set_message(m);
                }
            }
            Event::Finish => self.0.finish_and_clear(),
            Event::Skipped(m) => self.0.suspend(|| eprintln!("skipping {m}")),
            Event::Notice(m) => self.0.suspend(|| eprintln!("{m}")),
        }
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}

/// With `FACEGPU_PROFILE=1`, where a benchmark's GPU time went, kernel by kernel (on stderr).
pub(crate) fn print_profile(ctx: &GpuContext) {
    if let Some(table) = ctx.profile_table() {
        eprint!("{table}");
    }
}

/// facenet's `--model_def`: the one network facegpu has.
pub(crate) fn model_def(s: &str) -> Result<String, String> {
    match s {
        "models.inception_resnet_v1" | "inception_resnet_v1" => Ok(s.to_string()),
        other => Err(format!("'{other}' is not available: facegpu implements models.inception_resnet_v1 only")),
    }
}

pub(crate) fn list(names: &[String]) -> String {
    names.iter().map(|n| format!("\n  {n}")).collect()
}

pub(crate) fn names(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| format!("\n  {}", p.display())).collect()
}

/// The GPU context; on a CPU driver, says so once on stderr.
pub(crate) fn gpu() -> Result<GpuContext, facegpu::gpu::GpuError> {
    let ctx = GpuContext::new()?;
    if let Some(notice) = ctx.cpu_driver_notice() {
        eprintln!("note: {notice}");
    }
    Ok(ctx)
}
