//! The `facegpu` command line: argument parsing only; the work lives in the library.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use facegpu::checkpoint::safetensors::StorageDtype;
use facegpu::checkpoint::Standardization;
use facegpu::gpu::GpuContext;
use facegpu::models::mtcnn::{DetectOptions, Mtcnn};
use facegpu::workflows::detect::Outcome;
use facegpu::workflows::embed::{bench_embed, convert, distance_matrix, Embedder};

#[derive(Parser)]
#[command(name = "facegpu", version, about = "FaceNet face recognition on hand-written WGSL kernels (wgpu)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How to load and feed Inception-ResNet-v1 (shared by `embed` and `compare`).
#[derive(clap::Args)]
struct ModelArgs {
    /// Model: a facenet model folder, a TF checkpoint prefix or .index, a frozen graph .pb, or a
    /// .safetensors file.
    #[arg(long)]
    model: PathBuf,
    /// Image standardization; default: what the model file records, else from the run id in its path
    /// (fixed from 20180401-000000 on), else prewhiten.
    #[arg(long, value_enum)]
    standardization: Option<Standardization>,
    /// Input size; images of another size are resized bilinearly.
    #[arg(long, default_value_t = 160)]
    image_size: u32,
}

impl ModelArgs {
    /// Loads the model and says on stderr which standardization it gets and why.
    fn load(&self, ctx: &GpuContext) -> Result<Embedder, facegpu::checkpoint::CheckpointError> {
        let e = Embedder::load(ctx, &self.model, self.standardization, self.image_size)?;
        eprintln!("standardization: {:?} ({})", e.standardization, e.standardization_reason);
        Ok(e)
    }
}

/// MTCNN weights and facenet's detection settings (shared by `detect` and `bench detect`).
#[derive(clap::Args)]
struct MtcnnArgs {
    /// MTCNN weights in facegpu's layout (default: the embedded weights/mtcnn.safetensors).
    #[arg(long)]
    mtcnn_weights: Option<PathBuf>,
    /// Smallest face searched for, in pixels.
    #[arg(long, default_value_t = 20.0)]
    min_size: f64,
    /// Score thresholds of PNet, RNet and ONet.
    #[arg(long, num_args = 3, value_delimiter = ',', default_values_t = [0.6, 0.7, 0.7])]
    thresholds: Vec<f64>,
    /// Pyramid scale factor.
    #[arg(long, default_value_t = 0.709)]
    factor: f64,
    /// Most RNet/ONet crops per GPU pass (bounds memory).
    #[arg(long, default_value_t = 256)]
    crop_batch: usize,
}

impl MtcnnArgs {
    fn load(&self, ctx: &GpuContext) -> Result<(Mtcnn, DetectOptions), Box<dyn std::error::Error>> {
        let mut mtcnn = Mtcnn::load_from(ctx, self.mtcnn_weights.as_deref())?;
        mtcnn.chunk = self.crop_batch.max(1);
        let t = &self.thresholds;
        Ok((mtcnn, DetectOptions { min_size: self.min_size, thresholds: [t[0], t[1], t[2]], factor: self.factor }))
    }
}

/// What `classify train` and `classify predict` share.
#[derive(clap::Args)]
struct ClassifyArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Aligned faces, one folder per identity.
    #[arg(long)]
    data_dir: PathBuf,
    /// The classifier file (.safetensors with the class names).
    #[arg(long)]
    classifier: PathBuf,
    /// Split each class: train on the first --nrof-train-images-per-class (shuffled with --seed),
    /// predict on the rest.
    #[arg(long)]
    use_split_dataset: bool,
    /// With --use-split-dataset: classes with fewer images are left out.
    #[arg(long, default_value_t = 20)]
    min_nrof_images_per_class: usize,
    #[arg(long, default_value_t = 10)]
    nrof_train_images_per_class: usize,
    #[arg(long, default_value_t = 666)]
    seed: u64,
    /// Images per GPU batch.
    #[arg(long, default_value_t = 90)]
    batch_size: usize,
}

#[derive(Subcommand)]
enum ClassifyCommand {
    /// Embed the dataset and fit the classifier (never overwrites --classifier).
    Train {
        #[command(flatten)]
        args: ClassifyArgs,
    },
    /// Print each image's most likely class and its probability, then the accuracy.
    Predict {
        #[command(flatten)]
        args: ClassifyArgs,
        /// One JSON object per image: {"image", "class", "probability", "truth"}.
        #[arg(long)]
        json: bool,
    },
}

/// `facegpu train`: a run's settings, or --resume.
#[derive(clap::Args)]
struct TrainArgs {
    /// Continue the run in RUN_DIR exactly where it stopped (its args.json is used; other flags ignored).
    #[arg(long, value_name = "RUN_DIR")]
    resume: Option<PathBuf>,
    /// The network (facenet's module name); only models.inception_resnet_v1 exists here.
    #[arg(long, default_value = "models.inception_resnet_v1", value_parser = model_def)]
    model_def: String,
    #[command(flatten)]
    config: facegpu::workflows::train::TrainConfig,
}

/// How faces are cut from photos for recognition (shared by `enroll` and `cluster`).
#[derive(clap::Args)]
struct FaceArgs {
    /// Pixels added around the detected box before the crop (facenet's crop).
    #[arg(long, default_value_t = 32.0)]
    margin: f64,
    /// crop: facenet's box + margin; similarity: the 5 landmarks warped onto ArcFace's template.
    #[arg(long, value_enum, default_value = "crop")]
    align_mode: facegpu::workflows::align::AlignMode,
    /// Inputs are ready face crops: no detection.
    #[arg(long)]
    aligned: bool,
}

impl FaceArgs {
    fn align(&self, image_size: u32) -> facegpu::workflows::recognize::FaceAlign {
        facegpu::workflows::recognize::FaceAlign { image_size, margin: self.margin, mode: self.align_mode }
    }
}

/// Installs the Ctrl-C handler once and returns the flag it sets.
pub fn ctrl_c_flag() -> Arc<AtomicBool> {
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
struct Bar(indicatif::ProgressBar);

impl Bar {
    fn new() -> Self {
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

#[derive(Subcommand)]
enum Command {
    /// facenet's calculate_filtering_metrics.py: each image's distance to its class's mean embedding,
    /// written as JSON (class_names, image_list, label_list, distance_to_center) for train
    /// --filter-filename. With --merge, joins the files of several --shard runs instead.
    FilterMetrics {
        /// Model (as for embed).
        #[arg(long, required_unless_present = "merge")]
        model: Option<PathBuf>,
        #[arg(long, value_enum)]
        standardization: Option<Standardization>,
        #[arg(long, default_value_t = 160)]
        image_size: u32,
        /// Aligned faces, one folder per identity.
        #[arg(long, required_unless_present = "merge")]
        data_dir: Option<PathBuf>,
        /// The filter file to write (JSON).
        #[arg(long)]
        out: PathBuf,
        /// Only part K of N of the identity folders.
        #[arg(long)]
        shard: Option<facegpu::data::Shard>,
        /// Images per GPU batch.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Join these shard files (same dataset) into --out.
        #[arg(long, num_args = 1.., conflicts_with = "data_dir")]
        merge: Vec<PathBuf>,
    },
    /// Enroll people into a gallery: DIR holds one folder of photos per person; the largest face of each
    /// photo is detected, aligned and embedded, and a threshold is calibrated on the gallery's own pairs.
    Enroll {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        mtcnn: MtcnnArgs,
        #[command(flatten)]
        face: FaceArgs,
        /// The gallery file to write (.safetensors).
        #[arg(long)]
        out: PathBuf,
        /// Add to an existing gallery (otherwise an existing file is refused).
        #[arg(long)]
        update: bool,
        /// Squared L2 distance under which a face is taken as an enrolled person (default: calibrated
        /// with facenet's LFW rule, best accuracy, on the gallery's same- and different-person pairs).
        #[arg(long)]
        threshold: Option<f64>,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        /// One folder of photos per person.
        dir: PathBuf,
    },
    /// Who is in these photos: every face's nearest enrolled person, or unknown above the threshold.
    Identify {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        mtcnn: MtcnnArgs,
        /// The gallery written by `enroll`.
        #[arg(long)]
        gallery: PathBuf,
        /// Squared L2 distance under which a face is named (default: the gallery's).
        #[arg(long)]
        threshold: Option<f64>,
        /// nearest: the nearest of each person's embeddings; mean: each person's mean embedding.
        #[arg(long = "match", value_enum, default_value = "nearest")]
        match_by: facegpu::workflows::recognize::MatchBy,
        /// One JSON line per photo: {"image", "faces": [{"box", "score", "name", "distance"}]}.
        #[arg(long)]
        json: bool,
        /// Write each photo with boxes and names to DIR/<name>_who.png.
        #[arg(long)]
        draw: Option<PathBuf>,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Group every face of the photos by identity, without labels: OUT/clusters.json, a folder of
    /// aligned faces per cluster and OUT/index.html (a contact sheet).
    Cluster {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        mtcnn: MtcnnArgs,
        #[command(flatten)]
        face: FaceArgs,
        /// Output folder (must not exist or be empty).
        #[arg(long)]
        out: PathBuf,
        /// chinese-whispers (facenet's contributed/clustering.py) or dbscan (contributed/cluster.py).
        #[arg(long, value_enum, default_value = "chinese-whispers")]
        method: facegpu::workflows::cluster::Method,
        /// Squared L2 distance under which two faces are neighbours (DBSCAN's eps is its square root).
        /// The default 0.8 groups every face of the fixture sets (deepface, johns) by person with both
        /// methods and facenet's 20170512 model (ARI 1.0 from 0.7 to 0.8; README).
        #[arg(long, default_value_t = facegpu::workflows::cluster::DEFAULT_THRESHOLD)]
        threshold: f64,
        /// Smallest cluster kept (DBSCAN: min_samples); smaller ones are listed as unclustered.
        #[arg(long, default_value_t = 2)]
        min_cluster_size: usize,
        /// Print clusters.json on stdout too.
        #[arg(long)]
        json: bool,
        /// Photos, or folders of photos (walked recursively).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
    },
    /// Align a dataset (one folder per identity) with MTCNN, as facenet's align_dataset_mtcnn.py.
    Align {
        #[command(flatten)]
        mtcnn: MtcnnArgs,
        /// Input: one folder per identity.
        input_dir: PathBuf,
        /// Output: the same folders with PNG face crops; existing outputs are kept and skipped.
        output_dir: PathBuf,
        /// Side of the square output crops.
        #[arg(long, default_value_t = 182)]
        image_size: u32,
        /// Pixels added around the box (half on each side) before resizing.
        #[arg(long, default_value_t = 44.0)]
        margin: f64,
        /// Write every face (NAME_0.png, NAME_1.png, ...) instead of the largest central one.
        #[arg(long)]
        detect_multiple_faces: bool,
        /// Shuffle the order (lets several processes share one dataset).
        #[arg(long)]
        random_order: bool,
        /// Images detected together.
        #[arg(long, default_value_t = 8)]
        batch_size: usize,
        /// crop: facenet's box + margin (default); similarity: warp the 5 landmarks onto a canonical
        /// template (ArcFace's, scaled to --image-size; --margin is then unused).
        #[arg(long, value_enum, default_value = "crop")]
        align_mode: facegpu::workflows::align::AlignMode,
        /// Try again the files listed in OUTPUT_DIR/align_errors.tsv (a resumed run skips them otherwise).
        #[arg(long)]
        retry_failed: bool,
        /// Only part K of N of the identity folders (a Slurm array or indexed Job: 1/8 .. 8/8).
        #[arg(long)]
        shard: Option<facegpu::data::Shard>,
    },
    /// Detect faces and their 5 landmarks with MTCNN (facenet's detect_face).
    Detect {
        #[command(flatten)]
        mtcnn: MtcnnArgs,
        /// Print one JSON object per image per line: {"image", "width", "height", "faces": [{"box", "score", "landmarks"}]}.
        #[arg(long)]
        json: bool,
        /// Also write DIR/<name>_faces.png with boxes and landmarks drawn.
        #[arg(long, value_name = "DIR")]
        draw: Option<PathBuf>,
        /// Images decoded and detected together (same-size images share GPU passes).
        #[arg(long, default_value_t = 8)]
        batch_size: usize,
        /// Photos.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Verify on LFW-style pairs with facenet's protocol (validate_on_lfw.py): 10-fold accuracy, VAL@FAR,
    /// AUC and EER.
    Eval {
        #[command(flatten)]
        model: ModelArgs,
        /// Images in LFW's layout: NAME/NAME_0001.png (any image extension).
        #[arg(long)]
        lfw_dir: PathBuf,
        /// Pairs in LFW's format (header "folds n", then "name i j" and "name1 i name2 j" lines).
        #[arg(long)]
        lfw_pairs: PathBuf,
        /// Cross-validation folds.
        #[arg(long, default_value_t = 10)]
        lfw_nrof_folds: usize,
        /// euclidean: squared L2 (facenet's 0); cosine: arccos(similarity)/pi (facenet's 1).
        #[arg(long, default_value = "euclidean")]
        distance_metric: facegpu::eval::metrics::DistanceMetric,
        /// Subtract the training folds' mean embedding before computing distances.
        #[arg(long)]
        subtract_mean: bool,
        /// Concatenate each embedding with the embedding of the mirrored image.
        #[arg(long)]
        use_flipped_images: bool,
        /// Images per GPU batch.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Align raw photos on the fly with MTCNN (facenet's evaluation settings: the model's image size,
        /// margin 32, the largest central face).
        #[arg(long)]
        align: bool,
        /// Margin used with --align.
        #[arg(long, default_value_t = 32.0)]
        margin: f64,
        #[command(flatten)]
        mtcnn: MtcnnArgs,
        /// Print one JSON object: accuracy_mean, accuracy_std, val, val_std, far, auc, eer, pairs, skipped.
        #[arg(long)]
        json: bool,
        /// Also draw the ROC curve to this PNG.
        #[arg(long, value_name = "PNG")]
        roc: Option<PathBuf>,
    },
    /// Run the whole job on faces embedded in the binary: align with MTCNN, train briefly, evaluate with
    /// the LFW protocol, write the plots.
    Demo {
        /// Output folder (replaced if it holds an earlier demo; any other existing folder is refused).
        #[arg(long, default_value = "facegpu-demo")]
        out: PathBuf,
        /// Training epochs (4 batches of 12 each).
        #[arg(long, default_value_t = 4)]
        epochs: usize,
        /// Print the final metrics as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Classify faces with a linear classifier on the embeddings (facenet's classifier.py).
    #[command(subcommand)]
    Classify(ClassifyCommand),
    /// Train Inception-ResNet-v1 with softmax + center loss (facenet's train_softmax.py).
    Train(Box<TrainArgs>),
    /// Print the chosen GPU adapter, backend, driver and limits.
    Info {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Embed aligned face images with Inception-ResNet-v1 (L2-normalized embeddings).
    Embed {
        #[command(flatten)]
        model: ModelArgs,
        /// Images per GPU batch.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Print one JSON object per line: {"image": PATH, "embedding": [...]}.
        #[arg(long)]
        json: bool,
        /// Also write an (N, d) float32 .npy here, with the image paths in <out>.names.txt.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Debug: write facenet's named activations of the first batch as DIR/activation_<tap>.npy
        /// (the end points of `arch::inception_resnet_v1::TAPS`).
        #[arg(long, value_name = "DIR")]
        dump_activations: Option<PathBuf>,
        /// export_embeddings.py: embed every image of an identity-folder dataset (raw photos are
        /// detected and aligned first, the first face at --margin 44, unless --aligned) and write --out
        /// (float64, N x d) with labels.npy (int64) and label_strings.npy beside it.
        #[arg(long, conflicts_with = "images", requires = "out")]
        data_dir: Option<PathBuf>,
        /// With --data-dir: the images are aligned faces already.
        #[arg(long)]
        aligned: bool,
        /// With --data-dir: pixels added around the box before the crop.
        #[arg(long, default_value_t = 44.0)]
        margin: f64,
        /// With --data-dir: only part K of N of the identity folders (labels stay the whole dataset's).
        #[arg(long, requires = "data_dir")]
        shard: Option<facegpu::data::Shard>,
        #[command(flatten)]
        mtcnn: MtcnnArgs,
        /// Aligned face images.
        #[arg(required_unless_present = "data_dir")]
        images: Vec<PathBuf>,
    },
    /// facenet's compare.py: detect and align the first face of each photo (--image-size 160 --margin
    /// 44), embed, and print the matrix of Euclidean distances.
    Compare {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        mtcnn: MtcnnArgs,
        /// The images are aligned faces already: no detection.
        #[arg(long)]
        aligned: bool,
        /// Pixels added around the box before the crop.
        #[arg(long, default_value_t = 44.0)]
        margin: f64,
        /// Print {"images": [...], "distances": [[...]]} instead.
        #[arg(long)]
        json: bool,
        /// Photos (or aligned faces with --aligned).
        #[arg(required = true, num_args = 2..)]
        images: Vec<PathBuf>,
    },
    /// Convert a facenet TF checkpoint or frozen graph (.pb) into facegpu's safetensors format (never
    /// overwrites).
    Convert {
        /// TF model folder, checkpoint prefix, .index file, or frozen graph .pb.
        #[arg(long, alias = "model")]
        tf_checkpoint: PathBuf,
        /// Output .safetensors path.
        #[arg(long)]
        out: PathBuf,
        /// Standardization the model expects, recorded in the file (default: from the run id in the path,
        /// fixed from 20180401-000000 on, else prewhiten).
        #[arg(long, value_enum)]
        standardization: Option<Standardization>,
        /// Storage precision; compute stays f32.
        #[arg(long, value_enum, default_value = "f32")]
        dtype: StorageDtype,
    },
    /// Benchmarks with medians over repeated runs (GPU sync included).
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Batch size, repetitions and output form shared by every benchmark.
#[derive(clap::Args)]
struct BenchArgs {
    /// Batch size (images per forward pass; the conv2d shapes' batch).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Timed repetitions after one warm-up; the median is reported.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// conv2d at Inception-ResNet-v1 layer shapes and a 1024^3 matmul: ms and GFLOP/s.
    Kernels {
        #[command(flatten)]
        run: BenchArgs,
    },
    /// A training step (forward, backward, ADAM update) of one block35 (batch x 17x17x256) next to its
    /// training-mode forward.
    Block35 {
        #[command(flatten)]
        run: BenchArgs,
    },
    /// Full Inception-ResNet-v1 training steps (forward, backward, ADAM, moving average): images/s.
    Train {
        #[command(flatten)]
        run: BenchArgs,
        /// Input size.
        #[arg(long, default_value_t = 160)]
        image_size: usize,
        /// Identities of the Logits layer.
        #[arg(long, default_value_t = 1000)]
        classes: usize,
    },
    /// Image decoding: facegpu's (libjpeg's arithmetic for JPEGs) against the `image` crate's, ms per
    /// photo (median of --reps passes over all the photos).
    Decode {
        #[command(flatten)]
        run: BenchArgs,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Nearest-neighbour search of `identify` over a synthetic gallery of random unit vectors.
    Identify {
        /// Embeddings in the gallery.
        #[arg(long, default_value_t = 100_000)]
        gallery_size: usize,
        /// Faces per query photo.
        #[arg(long, default_value_t = 5)]
        faces: usize,
        #[command(flatten)]
        run: BenchArgs,
    },
    /// `cluster`'s neighbour search and clustering over synthetic identities (10 noisy faces each).
    Cluster {
        /// Faces to cluster.
        #[arg(long, default_value_t = 20_000)]
        faces: usize,
        #[arg(long, value_enum, default_value = "chinese-whispers")]
        method: facegpu::workflows::cluster::Method,
        #[command(flatten)]
        run: BenchArgs,
    },
    /// MTCNN detection: ms per photo, split into stages (decoding not timed).
    Detect {
        #[command(flatten)]
        mtcnn: MtcnnArgs,
        #[command(flatten)]
        run: BenchArgs,
        /// Photos.
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Inception-ResNet-v1 forward passes: images/s at a batch size (input upload and readback included).
    Embed {
        /// Model weights (TF model folder or .safetensors).
        #[arg(long)]
        model: PathBuf,
        #[command(flatten)]
        run: BenchArgs,
    },
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Align {
            mtcnn,
            input_dir,
            output_dir,
            image_size,
            margin,
            detect_multiple_faces,
            random_order,
            batch_size,
            align_mode,
            retry_failed,
            shard,
        } => {
            let ctx = gpu()?;
            let (mut mtcnn, det) = mtcnn.load(&ctx)?;
            let opts = facegpu::workflows::align::AlignOptions {
                image_size,
                margin,
                detect_multiple_faces,
                random_order,
                batch: batch_size,
                mode: align_mode,
                retry_failed,
                shard,
            };
            let t = std::time::Instant::now();
            let s = facegpu::workflows::align::align(&ctx, &mut mtcnn, &det, &input_dir, &output_dir, &opts, &mut Bar::new())?;
            let secs = t.elapsed().as_secs_f64();
            println!("Total number of images: {}", s.images);
            println!("Number of successfully aligned images: {} ({} faces written)", s.aligned, s.faces_written);
            println!("Already aligned (skipped): {}", s.already_done);
            println!("No face found: {}{}", s.no_face.len(), names(&s.no_face));
            println!("Unreadable: {}{}", s.unreadable.len(), names(&s.unreadable));
            println!("Failed: {}{}", s.failed.len(), names(&s.failed));
            if s.previously_failed > 0 {
                println!("Skipped, listed in the error report (--retry-failed to try again): {}", s.previously_failed);
            }
            if !s.unreadable.is_empty() || !s.failed.is_empty() || s.previously_failed > 0 {
                println!("Error report: {}", s.error_report.display());
            }
            println!("Bounding boxes: {}", s.bounding_boxes.display());
            let processed = s.images - s.already_done;
            println!("{processed} images in {secs:.1} s ({:.2} images/s)", processed as f64 / secs.max(1e-9));
        }
        Command::Detect { mtcnn, json, draw, batch_size, images } => {
            let ctx = gpu()?;
            let (mut mtcnn, opts) = mtcnn.load(&ctx)?;
            if let Some(dir) = &draw {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let mut skipped = 0;
            facegpu::workflows::detect::detect_files(&ctx, &mut mtcnn, &images, &opts, batch_size, |_, outcome| {
                let (d, img) = match outcome {
                    Outcome::Detected(d, img) => (d, img),
                    Outcome::Unreadable(e) | Outcome::Failed(e) => {
                        eprintln!("skipping {e}");
                        skipped += 1;
                        return Ok(());
                    }
                };
                if json {
                    println!("{}", serde_json::to_string(d)?);
                } else {
                    println!("{}: {}x{}, {} faces", d.image.display(), d.width, d.height, d.faces.len());
                    for f in &d.faces {
                        let [x1, y1, x2, y2] = f.bbox;
                        println!("  box [{x1:.1}, {y1:.1}, {x2:.1}, {y2:.1}]  score {:.4}", f.score);
                    }
                }
                if let Some(dir) = &draw {
                    let stem = d.image.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
                    let out = dir.join(format!("{stem}_faces.png"));
                    facegpu::workflows::detect::draw(img, &d.faces).save(&out).map_err(|e| format!("{}: {e}", out.display()))?;
                }
                Ok(())
            })?;
            if skipped > 0 {
                eprintln!("{skipped} of {} images skipped (see above)", images.len());
            }
        }
        Command::Bench(BenchCommand::Detect { mtcnn, run: BenchArgs { reps, json, .. }, images }) => {
            let ctx = gpu()?;
            let (mut mtcnn, opts) = mtcnn.load(&ctx)?;
            let imgs = images.iter().map(|p| facegpu::data::images::load_image(p)).collect::<Result<Vec<_>, _>>()?;
            let b = facegpu::workflows::detect::bench_detect(&ctx, &mut mtcnn, &imgs, &opts, reps)?;
            if json {
                println!("{}", serde_json::to_string(&b)?);
            } else {
                println!(
                    "adapter: {}
{} photos, {} faces: {:.1} ms per photo (median of {reps})",
                    b.adapter, b.photos, b.faces, b.ms_per_image
                );
                println!(
                    "  pyramid+PNet {:.1} ms, RNet {:.1} ms, ONet {:.1} ms, NMS and CPU work {:.1} ms per photo",
                    b.pnet_ms_per_image, b.rnet_ms_per_image, b.onet_ms_per_image, b.cpu_ms_per_image
                );
                println!("GPU working memory: {} bytes", b.activation_bytes);
            }
            print_profile(&ctx);
        }
        Command::Embed { model, data_dir: Some(dir), aligned, margin, shard, mtcnn, out, .. } => {
            let ctx = gpu()?;
            let mut embedder = model.load(&ctx)?;
            let (mut detector, detect) = mtcnn.load(&ctx)?;
            let out = out.ok_or("--data-dir needs --out")?;
            let align = facegpu::workflows::recognize::FaceAlign {
                image_size: model.image_size,
                margin,
                mode: facegpu::workflows::align::AlignMode::Crop,
            };
            let s = facegpu::workflows::recognize::export_embeddings(
                &ctx,
                &mut detector,
                &mut embedder,
                &dir,
                &out,
                &detect,
                &align,
                aligned,
                shard,
                &mut Bar::new(),
            )?;
            for k in &s.skipped {
                eprintln!("skipped {}: {}", k.image.display(), k.reason);
            }
            println!(
                "{} embeddings of {} images in {} classes{}",
                s.embedded,
                s.images,
                s.classes,
                shard.map(|s| format!(" (shard {s})")).unwrap_or_default()
            );
            for f in &s.files {
                println!("wrote {}", f.display());
            }
        }
        Command::Embed { model, batch_size, json, out, dump_activations, images, .. } => {
            let ctx = gpu()?;
            let mut embedder = model.load(&ctx)?;
            if let Some(dir) = dump_activations {
                let written = embedder.dump_activations(&ctx, &images[..images.len().min(batch_size)], &dir)?;
                eprintln!("wrote {written} activation taps to {}", dir.display());
            }
            let rows = embedder.embed_files(&ctx, &images, batch_size, &mut Bar::new())?;
            for (path, e) in &rows {
                if json {
                    println!("{}", serde_json::json!({ "image": path, "embedding": e, "standardization": embedder.standardization }));
                } else {
                    let head: Vec<String> = e.iter().take(4).map(|v| format!("{v:.5}")).collect();
                    println!("{}  d={}  [{}, ...]", path.display(), e.len(), head.join(", "));
                }
            }
            if let Some(out) = out {
                let d = embedder.model.embedding_size;
                let flat: Vec<f32> = rows.iter().flat_map(|(_, e)| e.iter().copied()).collect();
                facegpu::data::npy::write_f32(&out, &[rows.len(), d], &flat)?;
                let names: String = rows.iter().map(|(p, _)| format!("{}\n", p.display())).collect();
                let names_path = PathBuf::from(format!("{}.names.txt", out.display()));
                std::fs::write(&names_path, names).map_err(|e| format!("{}: {e}", names_path.display()))?;
                eprintln!("wrote {} embeddings to {} and names to {}", rows.len(), out.display(), names_path.display());
            }
            if rows.len() < images.len() {
                eprintln!("{} of {} images skipped (see above)", images.len() - rows.len(), images.len());
            }
        }
        Command::Compare { model, mtcnn, aligned, margin, json, images } => {
            let ctx = gpu()?;
            let mut embedder = model.load(&ctx)?;
            let (mut detector, detect) = mtcnn.load(&ctx)?;
            let align = facegpu::workflows::recognize::FaceAlign {
                image_size: model.image_size,
                margin,
                mode: facegpu::workflows::align::AlignMode::Crop,
            };
            let (faces, skipped) = facegpu::workflows::recognize::embed_faces(
                &ctx,
                &mut detector,
                &mut embedder,
                &images,
                &detect,
                &align,
                facegpu::workflows::recognize::Pick::First,
                aligned,
                &mut (),
                |_, _| Ok(()),
            )?;
            for k in &skipped {
                // compare.py: "can't detect face, remove <path>"
                eprintln!("can't use {}, removed: {}", k.image.display(), k.reason);
            }
            let embs: Vec<Vec<f32>> = faces.iter().map(|f| f.embedding.clone()).collect();
            let matrix = distance_matrix(&embs);
            if json {
                println!("{}", serde_json::json!({ "images": faces.iter().map(|f| &f.image).collect::<Vec<_>>(), "distances": matrix }));
            } else {
                println!("Images:");
                for (i, f) in faces.iter().enumerate() {
                    println!("{i}: {}", f.image.display());
                }
                println!("\nDistance matrix");
                print!("    ");
                for i in 0..faces.len() {
                    print!("    {i:1}     ");
                }
                println!();
                for (i, row) in matrix.iter().enumerate() {
                    print!("{i:1}  ");
                    for d in row {
                        print!("  {d:1.4}  ");
                    }
                    println!();
                }
            }
        }
        Command::Convert { tf_checkpoint, out, standardization, dtype } => {
            let (standardization, why) = match standardization {
                Some(s) => (s, "--standardization".to_string()),
                None => facegpu::checkpoint::standardization_for(&tf_checkpoint),
            };
            eprintln!("standardization: {standardization:?} ({why})");
            let n = convert(&tf_checkpoint, &out, standardization, dtype)?;
            println!("wrote {n} tensors to {}", out.display());
        }
        Command::Bench(BenchCommand::Embed { model, run: BenchArgs { batch_size, reps, json } }) => {
            let ctx = gpu()?;
            let mut embedder = Embedder::load(&ctx, &model, None, 160)?;
            let b = bench_embed(&ctx, &mut embedder, batch_size, reps)?;
            if json {
                println!("{}", serde_json::to_string(&b)?);
            } else {
                println!(
                    "adapter: {}\nbatch {}: {:.2} images/s ({:.1} ms per batch, median of {reps})",
                    b.adapter, b.batch_size, b.images_per_s, b.ms_per_batch
                );
                println!(
                    "activation memory: {} bytes after the first pass, {} after the last",
                    b.activation_bytes_first, b.activation_bytes_last
                );
            }
            print_profile(&ctx);
        }
        Command::Eval {
            model,
            lfw_dir,
            lfw_pairs,
            lfw_nrof_folds,
            distance_metric,
            subtract_mean,
            use_flipped_images,
            batch_size,
            align,
            margin,
            mtcnn,
            json,
            roc,
        } => {
            let ctx = gpu()?;
            let mut embedder = model.load(&ctx)?;
            let mut detector = if align { Some(mtcnn.load(&ctx)?) } else { None };
            let on_the_fly = detector.as_mut().map(|(m, d)| facegpu::workflows::eval::OnTheFlyAlign { mtcnn: m, detect: *d, margin });
            let opts = facegpu::workflows::eval::EvalOptions {
                folds: lfw_nrof_folds,
                metric: distance_metric,
                subtract_mean,
                use_flipped_images,
                batch_size,
            };
            let report = facegpu::workflows::eval::eval_lfw(&ctx, &mut embedder, &lfw_dir, &lfw_pairs, &opts, on_the_fly, &mut Bar::new())?;
            if let Some(path) = &roc {
                report.save_roc(path)?;
            }
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{} pairs ({} skipped), {} images", report.pairs, report.skipped, report.images);
                println!("{}", report.human());
                if let Some(path) = &roc {
                    println!("ROC curve: {}", path.display());
                }
            }
        }
        Command::Demo { out, epochs, json } => {
            let ctx = gpu()?;
            let r = {
                let (mut quiet, mut bar) = ((), Bar::new());
                let progress: &mut dyn facegpu::progress::Progress = if json { &mut quiet } else { &mut bar };
                facegpu::workflows::demo::demo(&ctx, &out, epochs, progress)?
            };
            if json {
                println!("{}", serde_json::to_string(&r.eval)?);
            } else {
                println!("adapter: {}", ctx.adapter_name());
                for l in &r.train.epochs {
                    println!("epoch {}: loss {:.4}, accuracy {:.3}, {:.1} images/s", l.epoch, l.loss, l.accuracy, l.images_per_s);
                }
                println!("{} pairs ({} skipped), {} images", r.eval.pairs, r.eval.skipped, r.eval.images);
                println!("{}", r.eval.human());
                println!(
                    "training curves: {}\nROC curve: {}\nmodel: {}",
                    r.curves.display(),
                    r.roc.display(),
                    r.train.run_dir.join("model.safetensors").display()
                );
                println!("done in {:.0} s", r.seconds);
            }
        }
        Command::Classify(cmd) => {
            use facegpu::workflows::classify::{classify_dataset, embed_dataset, predict_dir, Classifier};
            let ctx = gpu()?;
            match cmd {
                ClassifyCommand::Train { args } => {
                    let split = args.use_split_dataset.then_some((args.min_nrof_images_per_class, args.nrof_train_images_per_class));
                    let classes = classify_dataset(&args.data_dir, split, args.seed, true)?;
                    if args.classifier.exists() {
                        return Err(format!("{}: already exists; facegpu never overwrites a classifier", args.classifier.display()).into());
                    }
                    let mut embedder = args.model.load(&ctx)?;
                    let items = embed_dataset(&ctx, &mut embedder, &classes, args.batch_size, &mut Bar::new())?;
                    let names: Vec<String> = classes.iter().map(|c| c.name.clone()).collect();
                    let (emb, labels): (Vec<Vec<f32>>, Vec<u32>) = items.into_iter().map(|(_, l, e)| (e, l as u32)).unzip();
                    println!("Number of classes: {}\nNumber of images: {}", names.len(), emb.len());
                    let clf = Classifier::fit(&ctx, &emb, &labels, names, 300)?;
                    clf.save(&args.classifier)?;
                    println!("Saved classifier model to file \"{}\"", args.classifier.display());
                }
                ClassifyCommand::Predict { args, json } => {
                    let split = args.use_split_dataset.then_some((args.min_nrof_images_per_class, args.nrof_train_images_per_class));
                    let classes = classify_dataset(&args.data_dir, split, args.seed, false)?;
                    let clf = Classifier::load(&args.classifier)?;
                    let mut embedder = args.model.load(&ctx)?;
                    let preds = predict_dir(&ctx, &mut embedder, &clf, &classes, args.batch_size)?;
                    let mut known = 0;
                    let mut right = 0;
                    for (i, p) in preds.iter().enumerate() {
                        if json {
                            println!("{}", serde_json::to_string(p)?);
                        } else {
                            println!("{i:4}  {}: {:.3}  ({})", p.class, p.probability, p.image.display());
                        }
                        if let Some(t) = &p.truth {
                            known += 1;
                            right += usize::from(*t == p.class);
                        }
                    }
                    if !json && known > 0 {
                        println!("Accuracy: {:.3}", right as f64 / known as f64);
                    }
                }
            }
        }
        Command::Train(args) => {
            if args.resume.is_none() && args.config.data_dir.as_os_str().is_empty() {
                return Err("train needs --data-dir (or --resume RUN_DIR)".into());
            }
            let ctx = gpu()?;
            let cfg = match &args.resume {
                Some(dir) => {
                    let path = dir.join("args.json");
                    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
                    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
                }
                None => args.config.clone(),
            };
            let stop = ctrl_c_flag();
            let summary = facegpu::workflows::train::train(&ctx, &cfg, args.resume.as_deref(), stop, &mut Bar::new())?;
            println!("run: {}\nstopped: {}", summary.run_dir.display(), summary.stopped);
            if let Some(last) = summary.epochs.last() {
                println!("last epoch {}: loss {:.4}, accuracy {:.4}", last.epoch, last.loss, last.accuracy);
            }
        }
        Command::FilterMetrics { merge, out, .. } if !merge.is_empty() => {
            let files = merge.iter().map(|f| facegpu::workflows::filter::FilterMetrics::load(f)).collect::<Result<Vec<_>, _>>()?;
            let mut all = files[0].clone();
            for (f, m) in merge.iter().zip(&files).skip(1) {
                if m.class_names != all.class_names {
                    return Err(format!("{}: its classes are not {}'s: shards of one dataset only", f.display(), merge[0].display()).into());
                }
                all.image_list.extend(m.image_list.iter().cloned());
                all.label_list.extend(&m.label_list);
                all.distance_to_center.extend(&m.distance_to_center);
            }
            all.save(&out)?;
            println!("{} images of {} classes from {} files: {}", all.image_list.len(), all.class_names.len(), files.len(), out.display());
        }
        Command::FilterMetrics { model, standardization, image_size, data_dir, out, shard, batch_size, .. } => {
            let ctx = gpu()?;
            let model = ModelArgs { model: model.ok_or("--model is needed")?, standardization, image_size };
            let mut embedder = model.load(&ctx)?;
            let classes = facegpu::data::dataset::get_dataset(&data_dir.ok_or("--data-dir is needed")?)?;
            let mine = match shard {
                Some(s) => s.select(classes.clone()),
                None => classes.clone(),
            };
            let files: Vec<PathBuf> = mine.iter().flat_map(|c| c.paths.iter().cloned()).collect();
            let rows: std::collections::HashMap<PathBuf, Vec<f32>> =
                embedder.embed_files(&ctx, &files, batch_size, &mut Bar::new())?.into_iter().collect();
            // Every class is named (so shards merge); only this shard's images are measured.
            let mut m = facegpu::workflows::filter::FilterMetrics::compute(&mine, |p| rows.get(p).cloned());
            let names = m.class_names.clone();
            m.class_names = classes.iter().map(|c| c.name.clone()).collect();
            for l in &mut m.label_list {
                *l = m.class_names.iter().position(|n| *n == names[*l]).expect("a class of the dataset");
            }
            m.save(&out)?;
            println!("{} images of {} classes: {}", m.image_list.len(), mine.len(), out.display());
        }
        Command::Enroll { model, mtcnn, face, out, update, threshold, json, dir } => {
            let ctx = gpu()?;
            let mut embedder = model.load(&ctx)?;
            let (mut detector, detect) = mtcnn.load(&ctx)?;
            let opts = facegpu::workflows::recognize::EnrollOptions {
                align: face.align(model.image_size),
                detect,
                aligned: face.aligned,
                update,
                threshold,
            };
            let (gallery, s) =
                facegpu::workflows::recognize::enroll(&ctx, &mut detector, &mut embedder, &dir, &out, &opts, &mut Bar::new())?;
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!("Photos: {}, embeddings enrolled: {}", s.photos, s.embeddings);
                println!("People added: {}{}", s.people_added.len(), list(&s.people_added));
                if !s.people_extended.is_empty() {
                    println!("People given more photos: {}{}", s.people_extended.len(), list(&s.people_extended));
                }
                if !s.empty_people.is_empty() {
                    println!("People with no usable face (not enrolled): {}{}", s.empty_people.len(), list(&s.empty_people));
                }
                println!("Photos skipped: {}", s.skipped.len());
                for k in &s.skipped {
                    println!("  {}: {}", k.image.display(), k.reason);
                }
                match (s.calibration, threshold) {
                    (_, Some(t)) => println!("Threshold: {t} (--threshold)"),
                    (Some(c), None) => println!(
                        "Threshold: {:.2} (squared L2; accuracy {:.4} on {} same-person and {} different-person pairs)",
                        c.threshold, c.accuracy, c.same_pairs, c.different_pairs
                    ),
                    (None, None) => println!(
                        "Threshold: {} (the default: the gallery has no same-person pair to calibrate on)",
                        facegpu::workflows::recognize::DEFAULT_THRESHOLD
                    ),
                }
                println!("Gallery: {} ({} people, {} embeddings)", out.display(), gallery.people.len(), gallery.embeddings.len());
            }
        }
        Command::Identify { model, mtcnn, gallery, threshold, match_by, json, draw, images } => {
            let ctx = gpu()?;
            let g = facegpu::workflows::recognize::Gallery::load(&gallery)?;
            let mut embedder = model.load(&ctx)?;
            g.check_model(&gallery, &embedder)?;
            let (mut detector, detect) = mtcnn.load(&ctx)?;
            if let Some(dir) = &draw {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let (faces, skipped) = facegpu::workflows::recognize::embed_faces(
                &ctx,
                &mut detector,
                &mut embedder,
                &images,
                &detect,
                &g.align,
                facegpu::workflows::recognize::Pick::All,
                false,
                &mut Bar::new(),
                |_, _| Ok(()),
            )?;
            let matcher = facegpu::workflows::recognize::Matcher::new(&ctx, &g, match_by)?;
            let vectors: Vec<Vec<f32>> = faces.iter().map(|f| f.embedding.clone()).collect();
            let matches = matcher.identify(&ctx, &vectors, threshold.unwrap_or(g.threshold))?;
            let mut found = facegpu::workflows::recognize::by_photo(&faces, &matches);
            // Photos without a face still get their line.
            for k in &skipped {
                found.push(facegpu::workflows::recognize::Identified { image: k.image.clone(), faces: Vec::new() });
                eprintln!("{}: {}", k.image.display(), k.reason);
            }
            let order: std::collections::HashMap<&PathBuf, usize> = images.iter().enumerate().map(|(i, p)| (p, i)).collect();
            found.sort_by_key(|f| order.get(&f.image).copied().unwrap_or(usize::MAX));
            for photo in &found {
                if json {
                    println!("{}", serde_json::to_string(photo)?);
                } else {
                    println!("{}: {} faces", photo.image.display(), photo.faces.len());
                    for f in &photo.faces {
                        let [x1, y1, x2, y2] = f.bbox;
                        let who = f.name.as_deref().unwrap_or("unknown");
                        println!("  box [{x1:.1}, {y1:.1}, {x2:.1}, {y2:.1}]  {who}  distance {:.4}", f.distance);
                    }
                }
                if let (Some(dir), false) = (&draw, photo.faces.is_empty()) {
                    let img = facegpu::data::images::load_image(&photo.image)?;
                    let stem = photo.image.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "image".into());
                    let path = dir.join(format!("{stem}_who.png"));
                    facegpu::workflows::recognize::draw_names(&img, &photo.faces)
                        .save(&path)
                        .map_err(|e| format!("{}: {e}", path.display()))?;
                }
            }
        }
        Command::Cluster { model, mtcnn, face, out, method, threshold, min_cluster_size, json, inputs } => {
            let ctx = gpu()?;
            let mut embedder = model.load(&ctx)?;
            let (mut detector, detect) = mtcnn.load(&ctx)?;
            let opts = facegpu::workflows::cluster::ClusterOptions {
                method,
                threshold,
                min_size: min_cluster_size,
                align: face.align(model.image_size),
                detect,
                aligned: face.aligned,
            };
            let (report, skipped) =
                facegpu::workflows::cluster::cluster_photos(&ctx, &mut detector, &mut embedder, &inputs, &out, &opts, &mut Bar::new())?;
            for k in &skipped {
                eprintln!("skipped {}: {}", k.image.display(), k.reason);
            }
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                let faces: usize = report.clusters.iter().map(|c| c.faces.len()).sum();
                println!("{} clusters of {faces} faces, {} unclustered", report.clusters.len(), report.unclustered.len());
                for c in &report.clusters {
                    println!("  cluster_{:03}: {} faces", c.id, c.faces.len());
                }
                println!("{}\n{}", out.join("clusters.json").display(), out.join("index.html").display());
            }
        }
        Command::Bench(BenchCommand::Decode { run: BenchArgs { reps, json, .. }, images }) => {
            let time = |f: &dyn Fn(&PathBuf) -> bool| {
                let mut runs: Vec<f64> = (0..reps.max(1))
                    .map(|_| {
                        let t = std::time::Instant::now();
                        for p in &images {
                            std::hint::black_box(f(p));
                        }
                        t.elapsed().as_secs_f64() * 1e3 / images.len() as f64
                    })
                    .collect();
                runs.sort_by(f64::total_cmp);
                runs[runs.len() / 2]
            };
            let ours = time(&|p| facegpu::data::images::load_image(p).is_ok());
            let crate_ms = time(&|p| image::open(p).map(|i| i.to_rgb8()).is_ok());
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "photos": images.len(), "facegpu_ms_per_photo": ours, "image_crate_ms_per_photo": crate_ms })
                );
            } else {
                println!("{} photos: facegpu {ours:.3} ms per photo, image crate {crate_ms:.3} ms ({:.2}x)", images.len(), ours / crate_ms);
            }
        }
        Command::Bench(BenchCommand::Identify { gallery_size, faces, run: BenchArgs { reps, json, .. } }) => {
            let ctx = gpu()?;
            let b = facegpu::workflows::recognize::bench_identify(&ctx, gallery_size, faces, reps)?;
            if json {
                println!("{}", serde_json::to_string(&b)?);
            } else {
                println!(
                    "adapter: {}\ngallery: {} embeddings ({} bytes), indexed in {:.1} ms\nidentify: {:.2} ms per photo of {} faces\npeak RSS: {:?} bytes",
                    b.adapter, b.gallery_size, b.gallery_bytes, b.index_ms, b.ms_per_photo, b.faces_per_photo, b.peak_rss_bytes
                );
            }
        }
        Command::Bench(BenchCommand::Cluster { faces, method, run: BenchArgs { json, .. } }) => {
            let ctx = gpu()?;
            let b = facegpu::workflows::cluster::bench_cluster(&ctx, faces, method)?;
            if json {
                println!("{}", serde_json::to_string(&b)?);
            } else {
                println!(
                    "adapter: {}\n{} faces of {} identities: neighbours {:.0} ms ({} edges), {:?} {:.0} ms: {} clusters, ARI {:.4}\npeak RSS: {:?} bytes",
                    b.adapter, b.faces, b.identities, b.neighbour_ms, b.edges, b.method, b.cluster_ms, b.clusters, b.adjusted_rand_index, b.peak_rss_bytes
                );
            }
        }
        Command::Info { json } => {
            let ctx = gpu()?;
            let s = ctx.summary();
            if json {
                println!("{}", serde_json::to_string(&s)?);
            } else {
                println!("adapter: {}\nbackend: {}\ntype: {}\ndriver: {} {}", s.name, s.backend, s.device_type, s.driver, s.driver_info);
                println!("max storage buffer binding: {} bytes", s.max_storage_buffer_binding_size);
                println!("max buffer: {} bytes", s.max_buffer_size);
                println!("max workgroups per dimension: {}", s.max_compute_workgroups_per_dimension);
                println!("max invocations per workgroup: {}", s.max_compute_invocations_per_workgroup);
                println!("max storage buffers per stage: {}", s.max_storage_buffers_per_shader_stage);
                println!("subgroup sizes: {}..{}", s.subgroup_min_size, s.subgroup_max_size);
                match s.kernel_lanes {
                    Some(lanes) => println!("kernel lanes: {lanes} (subgroup operations)"),
                    None => println!("kernel lanes: none (no subgroup operations)"),
                }
            }
        }
        Command::Bench(BenchCommand::Block35 { run: BenchArgs { batch_size, reps, json } }) => {
            let ctx = gpu()?;
            let b = facegpu::workflows::bench::block35(&ctx, batch_size, reps)?;
            if json {
                println!("{}", serde_json::to_string(&b)?);
            } else {
                println!("adapter: {}  (block35, batch {} x 17x17x256, median of {reps})", b.adapter, b.batch_size);
                println!("forward (training mode)   {:>9.1} ms  {:>6.2} GFLOP/s", b.forward_ms, b.forward_gflop / b.forward_ms * 1e3);
                println!("forward + backward        {:>9.1} ms", b.forward_backward_ms);
                println!("training step (+ ADAM)    {:>9.1} ms", b.step_ms);
                println!("backward / forward        {:>9.2}", b.backward_over_forward);
            }
            print_profile(&ctx);
        }
        Command::Bench(BenchCommand::Train { run: BenchArgs { batch_size, reps, json }, image_size, classes }) => {
            let ctx = gpu()?;
            let b = facegpu::workflows::bench::train(&ctx, batch_size, image_size, reps, classes)?;
            if json {
                println!("{}", serde_json::to_string(&b)?);
            } else {
                println!(
                    "adapter: {}  (Inception-ResNet-v1, batch {} x {}x{}, ADAM, median of {reps})",
                    b.adapter, b.batch_size, b.image_size, b.image_size
                );
                println!("{:.2} training images/s ({:.0} ms per step)", b.train_images_per_s, b.ms_per_step);
                println!("memory held: {} bytes after the first timed step, {} after the last", b.memory_bytes_first, b.memory_bytes_last);
            }
            print_profile(&ctx);
        }
        Command::Bench(BenchCommand::Kernels { run: BenchArgs { batch_size, reps, json } }) => {
            let ctx = gpu()?;
            let rows = facegpu::workflows::bench::kernels(&ctx, batch_size, reps)?;
            let adapter = ctx.adapter_name();
            if json {
                println!("{}", serde_json::json!({ "adapter": adapter, "batch_size": batch_size, "kernels": rows }));
            } else {
                println!("adapter: {adapter}  (batch {batch_size}, median of {reps})");
                println!("{:<42} {:>10} {:>10}  shape", "kernel", "ms", "GFLOP/s");
                for r in &rows {
                    println!("{:<42} {:>10.2} {:>10.2}  {}", r.name, r.ms, r.gflops, r.shape);
                }
                let convs: Vec<f64> = rows.iter().filter(|r| r.name.starts_with("conv2d")).map(|r| r.gflops).collect();
                println!("conv2d mean GFLOP/s: {:.2}", convs.iter().sum::<f64>() / convs.len().max(1) as f64);
            }
            print_profile(&ctx);
        }
    }
    Ok(())
}

/// With `FACEGPU_PROFILE=1`, where a benchmark's GPU time went, kernel by kernel (on stderr).
fn print_profile(ctx: &GpuContext) {
    if let Some(table) = ctx.profile_table() {
        eprint!("{table}");
    }
}

/// facenet's `--model_def`: the one network facegpu has.
fn model_def(s: &str) -> Result<String, String> {
    match s {
        "models.inception_resnet_v1" | "inception_resnet_v1" => Ok(s.to_string()),
        other => Err(format!("'{other}' is not available: facegpu implements models.inception_resnet_v1 only")),
    }
}

fn list(names: &[String]) -> String {
    names.iter().map(|n| format!("\n  {n}")).collect()
}

fn names(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| format!("\n  {}", p.display())).collect()
}

/// The GPU context; on a CPU driver, says so once on stderr.
fn gpu() -> Result<GpuContext, facegpu::gpu::GpuError> {
    let ctx = GpuContext::new()?;
    if let Some(notice) = ctx.cpu_driver_notice() {
        eprintln!("note: {notice}");
    }
    Ok(ctx)
}

fn main() {
    // Before anything else runs: they set environment variables for the driver.
    facegpu::gpu::ensure_runtime_dir();
    facegpu::gpu::prefer_wide_llvmpipe_vectors();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
