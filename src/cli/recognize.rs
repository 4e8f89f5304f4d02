//! `facegpu enroll`, `identify` and `cluster`.

use std::path::PathBuf;

use super::common::*;
use super::BoxError;

#[derive(clap::Args)]
pub(crate) struct EnrollCmd {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) mtcnn: MtcnnArgs,
    #[command(flatten)]
    pub(crate) face: FaceArgs,
    /// The gallery file to write (.safetensors).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Add to an existing gallery (otherwise an existing file is refused).
    #[arg(long)]
    pub(crate) update: bool,
    /// Squared L2 distance under which a face is taken as an enrolled person (default: calibrated
    /// with facenet's LFW rule, best accuracy, on the gallery's same- and different-person pairs).
    #[arg(long)]
    pub(crate) threshold: Option<f64>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// One folder of photos per person.
    pub(crate) dir: PathBuf,
}

#[derive(clap::Args)]
pub(crate) struct IdentifyCmd {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) mtcnn: MtcnnArgs,
    /// The gallery written by `enroll`.
    #[arg(long)]
    pub(crate) gallery: PathBuf,
    /// Squared L2 distance under which a face is named (default: the gallery's).
    #[arg(long)]
    pub(crate) threshold: Option<f64>,
    /// nearest: the nearest of each person's embeddings; mean: each person's mean embedding.
    #[arg(long = "match", value_enum, default_value = "nearest")]
    pub(crate) match_by: facegpu::workflows::recognize::MatchBy,
    /// One JSON line per photo: {"image", "faces": [{"box", "score", "name", "distance"}]}.
    #[arg(long)]
    pub(crate) json: bool,
    /// Write each photo with boxes and names to DIR/<name>_who.png.
    #[arg(long)]
    pub(crate) draw: Option<PathBuf>,
    #[arg(required = true)]
    pub(crate) images: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct ClusterCmd {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    #[command(flatten)]
    pub(crate) mtcnn: MtcnnArgs,
    #[command(flatten)]
    pub(crate) face: FaceArgs,
    /// Output folder (must not exist or be empty).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// chinese-whispers (facenet's contributed/clustering.py) or dbscan (contributed/cluster.py).
    #[arg(long, value_enum, default_value = "chinese-whispers")]
    pub(crate) method: facegpu::workflows::cluster::Method,
    /// Squared L2 distance under which two faces are neighbours (DBSCAN's eps is its square root).
    /// The default 0.8 groups every face of the fixture sets (deepface, johns) by person with both
    /// methods and facenet's 20170512 model (ARI 1.0 from 0.7 to 0.8; README).
    #[arg(long, default_value_t = facegpu::workflows::cluster::DEFAULT_THRESHOLD)]
    pub(crate) threshold: f64,
    /// Smallest cluster kept (DBSCAN: min_samples); smaller ones are listed as unclustered.
    #[arg(long, default_value_t = 2)]
    pub(crate) min_cluster_size: usize,
    /// Print clusters.json on stdout too.
    #[arg(long)]
    pub(crate) json: bool,
    /// Photos, or folders of photos (walked recursively).
    #[arg(required = true)]
    pub(crate) inputs: Vec<PathBuf>,
}

pub(crate) fn enroll(args: EnrollCmd) -> Result<(), BoxError> {
    let EnrollCmd { model, mtcnn, face, out, update, threshold, json, dir } = args;
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
    let (gallery, s) = facegpu::workflows::recognize::enroll(&ctx, &mut detector, &mut embedder, &dir, &out, &opts, &mut Bar::new())?;
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
    Ok(())
}

pub(crate) fn identify(args: IdentifyCmd) -> Result<(), BoxError> {
    let IdentifyCmd { model, mtcnn, gallery, threshold, match_by, json, draw, images } = args;
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
            facegpu::workflows::recognize::draw_names(&img, &photo.faces).save(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

pub(crate) fn cluster(args: ClusterCmd) -> Result<(), BoxError> {
    let ClusterCmd { model, mtcnn, face, out, method, threshold, min_cluster_size, json, inputs } = args;
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
    Ok(())
}
