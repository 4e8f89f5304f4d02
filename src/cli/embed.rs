//! `facegpu embed`, `compare` and `convert`.

use std::path::PathBuf;

use facegpu::checkpoint::safetensors::StorageDtype;
use facegpu::checkpoint::Standardization;
use facegpu::workflows::embed::{convert, distance_matrix};

use super::common::*;
use super::BoxError;

#[derive(clap::Args)]
pub(crate) struct EmbedCmd {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Images per GPU batch.
    #[arg(long, default_value_t = 32)]
    pub(crate) batch_size: usize,
    /// Print one JSON object per line: {"image": PATH, "embedding": [...]}.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also write an (N, d) float32 .npy here, with the image paths in <out>.names.txt.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// Debug: write facenet's named activations of the first batch as DIR/activation_<tap>.npy
    /// (the end points of `arch::inception_resnet_v1::TAPS`).
    #[arg(long, value_name = "DIR")]
    pub(crate) dump_activations: Option<PathBuf>,
    /// export_embeddings.py: embed every image of an identity-folder dataset (raw photos are
    /// detected and aligned first, the first face at --margin 44, unless --aligned) and write --out
    /// (float64, N x d) with labels.npy (int64) and label_strings.npy beside it.
    #[arg(long, conflicts_with = "images", requires = "out")]
    pub(crate) data_dir: Option<PathBuf>,
    /// With --data-dir: the images are aligned faces already.
    #[arg(long)]
    pub(crate) aligned: bool,
    /// With --data-dir: pixels added around the box before the crop.
    #[arg(long, default_value_t = 44.0)]
    pub(crate) margin: f64,
    /// With --data-dir: only part K of N of the identity folders (labels stay the whole dataset's).
    #[arg(long, requires = "data_dir")]
    pub(crate) shard: Option<facegpu::data::Shard>,
    #[command(flatten)]
    pub(crate) mtcnn: MtcnnArgs,
    /// Aligned face images.
    #[arg(required_unless_present = "data_dir")]
    pub(crate) images: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct CompareCmd {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) mtcnn: MtcnnArgs,
    /// The images are aligned faces already: no detection.
    #[arg(long)]
    pub(crate) aligned: bool,
    /// Pixels added around the box before the crop.
    #[arg(long, default_value_t = 44.0)]
    pub(crate) margin: f64,
    /// Print {"images": [...], "distances": [[...]]} instead.
    #[arg(long)]
    pub(crate) json: bool,
    /// Photos (or aligned faces with --aligned).
    #[arg(required = true, num_args = 2..)]
    pub(crate) images: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct ConvertCmd {
    /// TF model folder, checkpoint prefix, .index file, or frozen graph .pb.
    #[arg(long, alias = "model")]
    pub(crate) tf_checkpoint: PathBuf,
    /// Output .safetensors path.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Standardization the model expects, recorded in the file (default: from the run id in the path,
    /// fixed from 20180401-000000 on, else prewhiten).
    #[arg(long, value_enum)]
    pub(crate) standardization: Option<Standardization>,
    /// Storage precision; compute stays f32.
    #[arg(long, value_enum, default_value = "f32")]
    pub(crate) dtype: StorageDtype,
}

pub(crate) fn embed_dataset(args: EmbedCmd) -> Result<(), BoxError> {
    let EmbedCmd { model, data_dir, aligned, margin, shard, mtcnn, out, .. } = args;
    let dir = data_dir.expect("dispatched with --data-dir");
    let ctx = gpu()?;
    let mut embedder = model.load(&ctx)?;
    let (mut detector, detect) = mtcnn.load(&ctx)?;
    let out = out.ok_or("--data-dir needs --out")?;
    let align =
        facegpu::workflows::recognize::FaceAlign { image_size: model.image_size, margin, mode: facegpu::workflows::align::AlignMode::Crop };
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
    Ok(())
}

pub(crate) fn embed(args: EmbedCmd) -> Result<(), BoxError> {
    let EmbedCmd { model, batch_size, json, out, dump_activations, images, .. } = args;
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
        let d = embedder.model.embedding_size();
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
    Ok(())
}

pub(crate) fn compare(args: CompareCmd) -> Result<(), BoxError> {
    let CompareCmd { model, mtcnn, aligned, margin, json, images } = args;
    let ctx = gpu()?;
    let mut embedder = model.load(&ctx)?;
    let (mut detector, detect) = mtcnn.load(&ctx)?;
    let align =
        facegpu::workflows::recognize::FaceAlign { image_size: model.image_size, margin, mode: facegpu::workflows::align::AlignMode::Crop };
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
    Ok(())
}

pub(crate) fn convert_model(args: ConvertCmd) -> Result<(), BoxError> {
    let ConvertCmd { tf_checkpoint, out, standardization, dtype } = args;
    let (standardization, why) = match standardization {
        Some(s) => (s, "--standardization".to_string()),
        None => facegpu::checkpoint::standardization_for(&tf_checkpoint),
    };
    eprintln!("standardization: {standardization:?} ({why})");
    let n = convert(&tf_checkpoint, &out, standardization, dtype)?;
    println!("wrote {n} tensors to {}", out.display());
    Ok(())
}
