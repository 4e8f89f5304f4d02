//! `facegpu detect` and `facegpu align`.

use std::path::PathBuf;

use facegpu::workflows::detect::Outcome;

use super::common::*;
use super::BoxError;

#[derive(clap::Args)]
pub(crate) struct AlignCmd {
    #[command(flatten)]
    pub(crate) mtcnn: MtcnnArgs,
    /// Input: one folder per identity.
    pub(crate) input_dir: PathBuf,
    /// Output: the same folders with PNG face crops; existing outputs are kept and skipped.
    pub(crate) output_dir: PathBuf,
    /// Side of the square output crops.
    #[arg(long, default_value_t = 182)]
    pub(crate) image_size: u32,
    /// Pixels added around the box (half on each side) before resizing.
    #[arg(long, default_value_t = 44.0)]
    pub(crate) margin: f64,
    /// Write every face (NAME_0.png, NAME_1.png, ...) instead of the largest central one.
    #[arg(long)]
    pub(crate) detect_multiple_faces: bool,
    /// Shuffle the order (lets several processes share one dataset).
    #[arg(long)]
    pub(crate) random_order: bool,
    /// Images detected together.
    #[arg(long, default_value_t = 8)]
    pub(crate) batch_size: usize,
    /// crop: facenet's box + margin (default); similarity: warp the 5 landmarks onto a canonical
    /// template (ArcFace's, scaled to --image-size; --margin is then unused).
    #[arg(long, value_enum, default_value = "crop")]
    pub(crate) align_mode: facegpu::workflows::align::AlignMode,
    /// Try again the files listed in OUTPUT_DIR/align_errors.tsv (a resumed run skips them otherwise).
    #[arg(long)]
    pub(crate) retry_failed: bool,
    /// Only part K of N of the identity folders (a Slurm array or indexed Job: 1/8 .. 8/8).
    #[arg(long)]
    pub(crate) shard: Option<facegpu::data::Shard>,
}

#[derive(clap::Args)]
pub(crate) struct DetectCmd {
    #[command(flatten)]
    pub(crate) mtcnn: MtcnnArgs,
    /// Print one JSON object per image per line: {"image", "width", "height", "faces": [{"box", "score", "landmarks"}]}.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also write DIR/<name>_faces.png with boxes and landmarks drawn.
    #[arg(long, value_name = "DIR")]
    pub(crate) draw: Option<PathBuf>,
    /// Images decoded and detected together (same-size images share GPU passes).
    #[arg(long, default_value_t = 8)]
    pub(crate) batch_size: usize,
    /// Photos.
    #[arg(required = true)]
    pub(crate) images: Vec<PathBuf>,
}

pub(crate) fn align(args: AlignCmd) -> Result<(), BoxError> {
    let AlignCmd {
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
    } = args;
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
    Ok(())
}

pub(crate) fn detect(args: DetectCmd) -> Result<(), BoxError> {
    let DetectCmd { mtcnn, json, draw, batch_size, images } = args;
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
    Ok(())
}
