//! Recognition: every face of a set of photos embedded ([`embed_faces`]), people enrolled into a
//! [`Gallery`] with a calibrated threshold, and faces identified against it, with "unknown" above the
//! threshold. Distances are squared L2 between L2-normalized embeddings (0 to 4), facenet's LFW metric.
//!
//! Nearest-neighbour search runs on the GPU: the gallery is uploaded once in blocks that fit the
//! adapter's binding limit ([`GalleryIndex`]), and a photo's faces are compared with every block in one
//! matmul each (`d^2 = 2 - 2 q.g`), so a 100,000-face gallery costs one pass over 51 MB per photo.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::checkpoint::safetensors::{self as st, StorageDtype};
use crate::checkpoint::{Standardization, Tensor, Weights};
use crate::data::images::load_rgb;
use crate::eval::metrics;
use crate::gpu::{Encoder, GpuContext, GpuError, GpuTensor};
use crate::kernels::matmul::matmul;
use crate::models::mtcnn::{DetectOptions, Face, Mtcnn};
use crate::progress::{Event, Progress};
use crate::workflows::align::{face_image, AlignMode};
use crate::workflows::detect::{detect_files, Outcome};
use crate::workflows::embed::Embedder;

/// How a face is cut from a photo before embedding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FaceAlign {
    pub image_size: u32,
    pub margin: f64,
    pub mode: AlignMode,
}

/// Which faces of a photo are embedded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// The largest box (enrollment: the photo's subject).
    Largest,
    /// The first face in facenet's order (highest score first): what compare.py and
    /// export_embeddings.py take (`bounding_boxes[0]`).
    First,
    /// Every face.
    All,
}

/// One embedded face: its photo, its box (`None` for a ready crop), ONet's score and the embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceEmbedding {
    /// The face's place in the order `embed_faces` aligned them (its crop's index).
    pub crop: usize,
    pub image: PathBuf,
    pub bbox: Option<[f64; 4]>,
    pub score: f64,
    pub embedding: Vec<f32>,
}

/// A photo that gave no face: unreadable, failed, or without a face.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Skipped {
    pub image: PathBuf,
    pub reason: String,
}

/// Faces waiting for an embedding pass, and the results so far.
struct Batcher<'a> {
    ctx: &'a GpuContext,
    embedder: &'a mut Embedder,
    pixels: Vec<f32>,
    pending: Vec<FaceEmbedding>,
    out: Vec<FaceEmbedding>,
    skipped: Vec<Skipped>,
    /// Crops handed out so far (the next crop's index).
    crops: usize,
}

impl Batcher<'_> {
    const BATCH: usize = 32;

    /// Queues one face crop; a full batch is embedded at once.
    fn push(&mut self, image: &Path, crop: &RgbImage, bbox: Option<[f64; 4]>, score: f64) -> Result<(), crate::workflows::Error> {
        self.pixels.extend(crop.as_raw().iter().map(|&v| f32::from(v)));
        self.pending.push(FaceEmbedding { crop: self.crops, image: image.to_path_buf(), bbox, score, embedding: Vec::new() });
        self.crops += 1;
        if self.pending.len() >= Self::BATCH {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), crate::workflows::Error> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let rows = self.embedder.embed_batch(self.ctx, &self.pixels, self.pending.len())?;
        for (mut face, row) in self.pending.drain(..).zip(rows) {
            match row {
                Ok(e) => {
                    face.embedding = e;
                    self.out.push(face);
                }
                Err(e) => self.skipped.push(Skipped { image: face.image, reason: format!("embedding failed: {e}") }),
            }
        }
        self.pixels.clear();
        Ok(())
    }

    fn skip(&mut self, image: &Path, reason: String) {
        self.skipped.push(Skipped { image: image.to_path_buf(), reason });
    }
}

/// Detects, aligns and embeds the faces of `files` (`pick` chooses which), or with `aligned` takes each
/// file as a ready face crop. `on_face(index, crop)` sees every aligned crop in output order (a caller
/// that keeps them, e.g. `cluster`, writes them out). Returns the faces and the photos that gave none.
#[allow(clippy::too_many_arguments)]
pub fn embed_faces(
    ctx: &GpuContext,
    mtcnn: &mut Mtcnn,
    embedder: &mut Embedder,
    files: &[PathBuf],
    detect: &DetectOptions,
    align: &FaceAlign,
    pick: Pick,
    aligned: bool,
    progress: &mut dyn Progress,
    mut on_face: impl FnMut(usize, &RgbImage) -> Result<(), crate::workflows::Error>,
) -> Result<(Vec<FaceEmbedding>, Vec<Skipped>), crate::workflows::Error> {
    if embedder.image_size != align.image_size {
        return Err(crate::workflows::invalid!(
            "faces are aligned at {} px but the model is fed {} px",
            align.image_size,
            embedder.image_size
        ));
    }
    let mut b = Batcher { ctx, embedder, pixels: Vec::new(), pending: Vec::new(), out: Vec::new(), skipped: Vec::new(), crops: 0 };
    progress.report(Event::Start { what: "photos", total: files.len() });
    if aligned {
        for (i, f) in files.iter().enumerate() {
            match load_rgb(f, align.image_size) {
                Ok(px) => {
                    let crop = RgbImage::from_raw(align.image_size, align.image_size, px.iter().map(|&v| v as u8).collect())
                        .ok_or("crop of the wrong size")?;
                    on_face(b.crops, &crop)?;
                    b.push(f, &crop, None, 1.0)?;
                }
                Err(e) => b.skip(f, e.to_string()),
            }
            progress.report(Event::Advance { done: i + 1, status: None });
        }
    } else {
        let mut done = 0;
        detect_files(ctx, mtcnn, files, detect, 8, |i, outcome| {
            done += 1;
            progress.report(Event::Advance { done, status: None });
            let (d, img) = match outcome {
                Outcome::Detected(d, img) => (d, img),
                Outcome::Unreadable(e) | Outcome::Failed(e) => {
                    b.skip(&files[i], e);
                    return Ok(());
                }
            };
            let chosen = pick.choose(&d.faces);
            if chosen.is_empty() {
                b.skip(&files[i], "no face found".into());
            }
            for face in chosen {
                let (crop, _) = face_image(img, face, align.margin, align.image_size, align.mode);
                on_face(b.crops, &crop)?;
                b.push(&files[i], &crop, Some(face.bbox), face.score)?;
            }
            Ok(())
        })?;
    }
    b.flush()?;
    progress.report(Event::Finish);
    Ok((b.out, b.skipped))
}

impl Pick {
    /// The faces of one photo this choice keeps, in facenet's order.
    fn choose<'f>(&self, faces: &'f [Face]) -> Vec<&'f Face> {
        match self {
            Pick::All => faces.iter().collect(),
            Pick::Largest => faces.iter().max_by(|a, b| area(&a.bbox).total_cmp(&area(&b.bbox))).into_iter().collect(),
            Pick::First => faces.first().into_iter().collect(),
        }
    }
}

fn area(b: &[f64; 4]) -> f64 {
    (b[2] - b[0]) * (b[3] - b[1])
}

/// Squared L2 distance.
pub fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2)).sum()
}

/// The threshold chosen at enrollment.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Calibration {
    /// Squared L2 distance under which two faces are taken as one person.
    pub threshold: f64,
    /// The accuracy it reaches on the gallery's own pairs.
    pub accuracy: f64,
    pub same_pairs: usize,
    pub different_pairs: usize,
}

/// Used where a gallery has no same-person pair to calibrate on (everyone enrolled with one photo): the
/// threshold [`calibrate`] gives for facenet's 20170512 model over all 61 deepface fixture photos (140
/// same-person and 1690 different-person pairs, accuracy 0.9973).
pub const DEFAULT_THRESHOLD: f64 = 0.77;

/// facenet's LFW rule on the gallery's own pairs: every pair of embeddings, the first threshold of
/// 0, 0.01, ..., 3.99 with the best accuracy of predicting "same person" where the distance is below it.
/// `None` where there is no same-person pair or no different-person pair.
pub fn calibrate(embeddings: &[Vec<f32>], labels: &[usize]) -> Option<Calibration> {
    let mut dist = Vec::new();
    let mut same = Vec::new();
    for i in 0..embeddings.len() {
        for j in i + 1..embeddings.len() {
            dist.push(distance(&embeddings[i], &embeddings[j]));
            same.push(labels[i] == labels[j]);
        }
    }
    let same_pairs = same.iter().filter(|&&s| s).count();
    let different_pairs = same.len() - same_pairs;
    if same_pairs == 0 || different_pairs == 0 {
        return None;
    }
    let (threshold, accuracy) = metrics::best_threshold(&metrics::thresholds(0.01), &dist, &same);
    Some(Calibration { threshold, accuracy, same_pairs, different_pairs })
}

/// How a face is matched to a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MatchBy {
    /// The nearest of all of a person's embeddings.
    Nearest,
    /// The person's mean embedding (normalized).
    Mean,
}

/// Enrolled people: every embedding with its person, the model that made them and the threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Gallery {
    pub people: Vec<String>,
    /// Per embedding: its index in `people`.
    pub labels: Vec<usize>,
    /// Per embedding: the photo it came from.
    pub files: Vec<PathBuf>,
    pub embeddings: Vec<Vec<f32>>,
    /// The model's file name and a hash of its weights ([`Embedder::model_id`]).
    pub model: String,
    pub standardization: Standardization,
    pub threshold: f64,
    pub align: FaceAlign,
}

/// Errors of gallery files, each naming the file.
#[derive(Debug, thiserror::Error)]
pub enum GalleryError {
    #[error("{path}: not a facegpu gallery: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error("{path}: made with model {gallery} ({gallery_std:?}), but this run uses {model} ({model_std:?}): enroll again with this model, or pass the gallery's")]
    OtherModel { path: PathBuf, gallery: String, gallery_std: Standardization, model: String, model_std: Standardization },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
}

impl Gallery {
    /// Writes the gallery as safetensors (`embeddings` `[n, d]`, the rest as metadata), through a
    /// temporary file.
    pub fn save(&self, path: &Path) -> Result<(), GalleryError> {
        let d = self.embeddings.first().map_or(0, Vec::len);
        let mut w = Weights::default();
        w.tensors.insert(
            "embeddings".into(),
            Tensor { shape: vec![self.embeddings.len(), d], data: self.embeddings.iter().flatten().copied().collect() },
        );
        let meta = HashMap::from([
            ("format".to_string(), "facegpu-gallery".to_string()),
            ("people".to_string(), json(&self.people)),
            ("labels".to_string(), json(&self.labels)),
            ("files".to_string(), json(&self.files)),
            ("model".to_string(), self.model.clone()),
            ("standardization".to_string(), json(&self.standardization)),
            ("threshold".to_string(), self.threshold.to_string()),
            ("image_size".to_string(), self.align.image_size.to_string()),
            ("margin".to_string(), self.align.margin.to_string()),
            ("align_mode".to_string(), format!("{:?}", self.align.mode).to_lowercase()),
        ]);
        st::save(&w, path, meta, StorageDtype::F32)?;
        Ok(())
    }

    /// Reads a gallery, checking that every part agrees with the others.
    pub fn load(path: &Path) -> Result<Self, GalleryError> {
        let bad = |detail: String| GalleryError::Corrupt { path: path.to_path_buf(), detail };
        let (w, meta) = st::load_with_metadata(path).map_err(|e| bad(e.to_string()))?;
        let field = |k: &str| meta.get(k).ok_or_else(|| bad(format!("no '{k}' in its metadata")));
        if field("format")? != "facegpu-gallery" {
            return Err(bad(format!("format '{}'", field("format")?)));
        }
        fn parse<T: serde::de::DeserializeOwned>(k: &str, v: &str) -> Result<T, String> {
            serde_json::from_str(v).map_err(|e| format!("metadata '{k}': {e}"))
        }
        let people: Vec<String> = parse("people", field("people")?).map_err(bad)?;
        let labels: Vec<usize> = parse("labels", field("labels")?).map_err(bad)?;
        let files: Vec<PathBuf> = parse("files", field("files")?).map_err(bad)?;
        let standardization: Standardization = parse("standardization", field("standardization")?).map_err(bad)?;
        let number = |k: &str| field(k)?.parse::<f64>().map_err(|e| bad(format!("metadata '{k}': {e}")));
        let mode = match field("align_mode")?.as_str() {
            "crop" => AlignMode::Crop,
            "similarity" => AlignMode::Similarity,
            other => return Err(bad(format!("align_mode '{other}'"))),
        };
        let t = w.tensors.get("embeddings").ok_or_else(|| bad("no 'embeddings' tensor".into()))?;
        let [n, d] = t.shape[..] else { return Err(bad(format!("embeddings of shape {:?}", t.shape))) };
        if labels.len() != n || files.len() != n || labels.iter().any(|&l| l >= people.len()) || (n > 0 && d == 0) {
            return Err(bad(format!("{n} embeddings, {} labels, {} files, {} people", labels.len(), files.len(), people.len())));
        }
        Ok(Self {
            embeddings: t.data.chunks(d.max(1)).map(<[f32]>::to_vec).collect(),
            people,
            labels,
            files,
            model: field("model")?.clone(),
            standardization,
            threshold: number("threshold")?,
            align: FaceAlign { image_size: number("image_size")? as u32, margin: number("margin")?, mode },
        })
    }

    /// Refuses a gallery made with another model or standardization than `embedder`'s, naming both.
    pub fn check_model(&self, path: &Path, embedder: &Embedder) -> Result<(), GalleryError> {
        // The weights' hash decides (a TF checkpoint and its converted safetensors are one model).
        let hash = |id: &str| id.rsplit(' ').next().unwrap_or_default().to_string();
        if hash(&self.model) != hash(&embedder.model_id) || self.standardization != embedder.standardization {
            return Err(GalleryError::OtherModel {
                path: path.to_path_buf(),
                gallery: self.model.clone(),
                gallery_std: self.standardization,
                model: embedder.model_id.clone(),
                model_std: embedder.standardization,
            });
        }
        Ok(())
    }

    /// Adds `faces` as photos of `person` (a new person, or more photos of an enrolled one).
    pub fn add(&mut self, person: &str, faces: Vec<FaceEmbedding>) {
        let label = self.people.iter().position(|p| p == person).unwrap_or_else(|| {
            self.people.push(person.to_string());
            self.people.len() - 1
        });
        for f in faces {
            self.labels.push(label);
            self.files.push(f.image);
            self.embeddings.push(f.embedding);
        }
    }

    /// The per-person mean embeddings, normalized, in `people` order.
    pub fn means(&self) -> Vec<Vec<f32>> {
        let d = self.embeddings.first().map_or(0, Vec::len);
        let mut sums = vec![vec![0f64; d]; self.people.len()];
        for (e, &l) in self.embeddings.iter().zip(&self.labels) {
            for (s, v) in sums[l].iter_mut().zip(e) {
                *s += f64::from(*v);
            }
        }
        sums.into_iter()
            .map(|s| {
                let n = s.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
                s.iter().map(|v| (v / n) as f32).collect()
            })
            .collect()
    }
}

/// `v` as JSON text (gallery metadata).
fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// A face's answer: the nearest person and distance, and the name when within the threshold.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Match {
    /// `None`: unknown (farther than the threshold from everyone).
    pub name: Option<String>,
    pub nearest: String,
    pub distance: f64,
}

/// Vectors on the GPU in blocks of rows that each fit the binding limit, for nearest-neighbour search.
pub struct GalleryIndex {
    /// (first row, block `[rows, dim]`).
    blocks: Vec<(usize, GpuTensor)>,
    pub rows: usize,
    pub dim: usize,
}

impl GalleryIndex {
    /// Uploads `vectors` (unit length, all of one dimension).
    pub fn new(ctx: &GpuContext, vectors: &[Vec<f32>]) -> Result<Self, GpuError> {
        let dim = vectors.first().map_or(0, Vec::len);
        let per_block = ((ctx.binding_limit() / (dim.max(1) as u64 * 4)) as usize).clamp(1, 1 << 16);
        let mut blocks = Vec::new();
        for (b, chunk) in vectors.chunks(per_block).enumerate() {
            let flat: Vec<f32> = chunk.iter().flatten().copied().collect();
            blocks.push((b * per_block, GpuTensor::upload(ctx, "gallery block", &[chunk.len(), dim], &flat)?));
        }
        Ok(Self { blocks, rows: vectors.len(), dim })
    }

    /// Calls `each(query, first row, distances)` with the squared L2 distances (`2 - 2 q.g` of unit
    /// vectors, clamped at 0) of every query to every block's rows. Queries go to the GPU in chunks whose
    /// similarities against a block fit the binding limit, so no buffer grows with the input.
    pub fn visit(&self, ctx: &GpuContext, queries: &[Vec<f32>], mut each: impl FnMut(usize, usize, &[f32])) -> Result<(), GpuError> {
        let widest = self.blocks.iter().map(|(_, b)| b.shape[0]).max().unwrap_or(1);
        let chunk = ((ctx.binding_limit() / (widest as u64 * 4)) as usize).clamp(1, 4096);
        for (c, part) in queries.chunks(chunk).enumerate() {
            let flat: Vec<f32> = part.iter().flatten().copied().collect();
            let q = GpuTensor::upload(ctx, "queries", &[part.len(), self.dim], &flat)?;
            for (first, block) in &self.blocks {
                let m = block.shape[0];
                let sims = GpuTensor::zeros(ctx, "similarities", &[part.len(), m]);
                let mut enc = Encoder::new(ctx);
                matmul(&mut enc, &q, block, None, &sims, false, true, false)?;
                enc.submit()?;
                let mut s = sims.download(ctx)?;
                s.iter_mut().for_each(|v| *v = (2.0 - 2.0 * *v).max(0.0));
                for (i, row) in s.chunks(m).enumerate() {
                    each(c * chunk + i, *first, row);
                }
            }
        }
        Ok(())
    }

    /// Squared L2 distances `[queries.len()][rows]` ([`GalleryIndex::visit`]).
    pub fn distances(&self, ctx: &GpuContext, queries: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, GpuError> {
        let mut out = vec![Vec::with_capacity(self.rows); queries.len()];
        self.visit(ctx, queries, |i, _, d| out[i].extend_from_slice(d))?;
        Ok(out)
    }
}

/// Nearest-neighbour search over a gallery: the index of every embedding (for [`MatchBy::Nearest`]) or
/// of the people's means.
pub struct Matcher<'g> {
    gallery: &'g Gallery,
    index: GalleryIndex,
    by: MatchBy,
}

impl<'g> Matcher<'g> {
    pub fn new(ctx: &GpuContext, gallery: &'g Gallery, by: MatchBy) -> Result<Self, GpuError> {
        let index = match by {
            MatchBy::Nearest => GalleryIndex::new(ctx, &gallery.embeddings)?,
            MatchBy::Mean => GalleryIndex::new(ctx, &gallery.means())?,
        };
        Ok(Self { gallery, index, by })
    }

    /// Each face's nearest person, named when within `threshold`.
    pub fn identify(&self, ctx: &GpuContext, faces: &[Vec<f32>], threshold: f64) -> Result<Vec<Match>, GpuError> {
        let dist = self.index.distances(ctx, faces)?;
        Ok(dist
            .iter()
            .map(|row| {
                let (best, d) = row.iter().enumerate().fold((0, f32::INFINITY), |acc, (i, &d)| if d < acc.1 { (i, d) } else { acc });
                let person = match self.by {
                    MatchBy::Nearest => self.gallery.labels.get(best).copied().unwrap_or(0),
                    MatchBy::Mean => best,
                };
                let nearest = self.gallery.people.get(person).cloned().unwrap_or_default();
                let distance = f64::from(d);
                Match { name: (distance < threshold).then(|| nearest.clone()), nearest, distance }
            })
            .collect())
    }
}

/// The person folders of `dir` (sorted) with their files (sorted), as `align` reads a dataset.
pub fn people(dir: &Path) -> Result<Vec<(String, Vec<PathBuf>)>, crate::workflows::Error> {
    let list = crate::data::dataset::identity_folders(dir)?;
    if list.is_empty() {
        return Err(crate::workflows::invalid!("{}: no person folders (expected one folder of photos per person)", dir.display()));
    }
    Ok(list)
}

/// What `enroll` did: people and photos added, the photos skipped, and the threshold.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EnrollSummary {
    pub people_added: Vec<String>,
    pub people_extended: Vec<String>,
    pub photos: usize,
    pub embeddings: usize,
    pub skipped: Vec<Skipped>,
    /// People none of whose photos gave a face (not enrolled).
    pub empty_people: Vec<String>,
    pub calibration: Option<Calibration>,
    pub threshold: f64,
}

/// Options of [`enroll`].
#[derive(Debug, Clone)]
pub struct EnrollOptions {
    pub align: FaceAlign,
    pub detect: DetectOptions,
    /// Photos are ready face crops: no detection.
    pub aligned: bool,
    /// Add to an existing gallery (otherwise an existing file is refused).
    pub update: bool,
    /// Use this threshold instead of calibrating.
    pub threshold: Option<f64>,
}

/// Enrolls the people of `dir` (one folder of photos each) into the gallery at `out`: the largest face
/// of each photo, embedded. With `update`, adds to the existing gallery (which must come from the same
/// model); without, an existing file is refused. The threshold is calibrated on the whole gallery's
/// pairs unless given. Nothing is written unless at least one person has a face.
pub fn enroll(
    ctx: &GpuContext,
    mtcnn: &mut Mtcnn,
    embedder: &mut Embedder,
    dir: &Path,
    out: &Path,
    opts: &EnrollOptions,
    progress: &mut dyn Progress,
) -> Result<(Gallery, EnrollSummary), crate::workflows::Error> {
    let mut gallery = match (out.exists(), opts.update) {
        (true, false) => return Err(crate::workflows::invalid!("{} already exists: pass --update to add people to it", out.display())),
        (true, true) => {
            let g = Gallery::load(out)?;
            g.check_model(out, embedder)?;
            g
        }
        (false, _) => Gallery {
            people: Vec::new(),
            labels: Vec::new(),
            files: Vec::new(),
            embeddings: Vec::new(),
            model: embedder.model_id.clone(),
            standardization: embedder.standardization,
            threshold: DEFAULT_THRESHOLD,
            align: opts.align,
        },
    };
    let people = people(dir)?;
    let files: Vec<PathBuf> = people.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
    let (faces, skipped) =
        embed_faces(ctx, mtcnn, embedder, &files, &opts.detect, &opts.align, Pick::Largest, opts.aligned, progress, |_, _| Ok(()))?;
    let mut by_file: BTreeMap<PathBuf, FaceEmbedding> = faces.into_iter().map(|f| (f.image.clone(), f)).collect();
    let mut summary = EnrollSummary {
        people_added: Vec::new(),
        people_extended: Vec::new(),
        photos: files.len(),
        embeddings: 0,
        skipped,
        empty_people: Vec::new(),
        calibration: None,
        threshold: 0.0,
    };
    for (person, files) in &people {
        let faces: Vec<FaceEmbedding> = files.iter().filter_map(|f| by_file.remove(f)).collect();
        if faces.is_empty() {
            summary.empty_people.push(person.clone());
            continue;
        }
        if gallery.people.contains(person) { &mut summary.people_extended } else { &mut summary.people_added }.push(person.clone());
        summary.embeddings += faces.len();
        gallery.add(person, faces);
    }
    if summary.embeddings == 0 {
        return Err(crate::workflows::invalid!(
            "{}: no face found in any photo; nothing enrolled, {} left as it was",
            dir.display(),
            out.display()
        ));
    }
    summary.calibration = calibrate(&gallery.embeddings, &gallery.labels);
    gallery.threshold = opts.threshold.or(summary.calibration.map(|c| c.threshold)).unwrap_or(DEFAULT_THRESHOLD);
    summary.threshold = gallery.threshold;
    gallery.save(out)?;
    Ok((gallery, summary))
}

/// The photo with each face's box and its name (or "unknown") above it.
pub fn draw_names(img: &RgbImage, faces: &[IdentifiedFace]) -> RgbImage {
    let boxes: Vec<Face> = faces.iter().map(|f| Face { bbox: f.bbox, score: f.score, landmarks: [[-100.0; 2]; 5] }).collect();
    let mut out = crate::workflows::detect::draw(img, &boxes);
    // Names about 1/30 of the photo's longer side high, at least 14 pixels.
    let size = (img.width().max(img.height()) / 30).max(14);
    for f in faces {
        let label = f.name.clone().unwrap_or_else(|| "unknown".into());
        let (x, y) = (f.bbox[0] as i64, f.bbox[1] as i64 - size as i64 - 4);
        let colour = if f.name.is_some() { [0, 255, 0] } else { [255, 64, 64] };
        crate::eval::plot::text(&mut out, x.max(0), y.max(0), &label, size, colour);
    }
    out
}

/// One photo's answers, in the JSON form of `identify --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Identified {
    pub image: PathBuf,
    pub faces: Vec<IdentifiedFace>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct IdentifiedFace {
    #[serde(rename = "box")]
    pub bbox: [f64; 4],
    pub score: f64,
    pub name: Option<String>,
    pub distance: f64,
}

/// Groups `faces` (in photo order) by photo with their matches.
pub fn by_photo(faces: &[FaceEmbedding], matches: &[Match]) -> Vec<Identified> {
    let mut out: Vec<Identified> = Vec::new();
    for (f, m) in faces.iter().zip(matches) {
        if out.last().is_none_or(|o| o.image != f.image) {
            out.push(Identified { image: f.image.clone(), faces: Vec::new() });
        }
        let face = IdentifiedFace { bbox: f.bbox.unwrap_or_default(), score: f.score, name: m.name.clone(), distance: m.distance };
        out.last_mut().expect("just pushed").faces.push(face);
    }
    out
}

/// Random unit vectors of `dim` (seeded xorshift, Box-Muller normals).
pub fn random_unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let v: Vec<f64> = (0..dim).map(|_| (-2.0 * uniform().ln()).sqrt() * (2.0 * std::f64::consts::PI * uniform()).cos()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.iter().map(|x| (x / norm) as f32).collect()
        })
        .collect()
}

/// The process's peak resident set (VmHWM) in bytes, where the system reports it (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// `bench identify` figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IdentifyBench {
    pub adapter: String,
    pub gallery_size: usize,
    pub faces_per_photo: usize,
    /// Uploading the gallery to the GPU, once.
    pub index_ms: f64,
    /// Median time to match one photo's faces against the whole gallery.
    pub ms_per_photo: f64,
    pub gallery_bytes: u64,
    pub peak_rss_bytes: Option<u64>,
}

/// Times [`Matcher::identify`] of `faces` random faces against a gallery of `size` random unit vectors
/// (10 per person), `reps` times after a warm-up.
pub fn bench_identify(ctx: &GpuContext, size: usize, faces: usize, reps: usize) -> Result<IdentifyBench, GpuError> {
    let dim = 128;
    let embeddings = random_unit_vectors(size, dim, 1);
    let people = size.div_ceil(10);
    let gallery = Gallery {
        people: (0..people).map(|p| format!("person_{p}")).collect(),
        labels: (0..size).map(|i| i / 10).collect(),
        files: vec![PathBuf::new(); size],
        embeddings,
        model: String::new(),
        standardization: Standardization::Prewhiten,
        threshold: DEFAULT_THRESHOLD,
        align: FaceAlign { image_size: 160, margin: 32.0, mode: AlignMode::Crop },
    };
    let t = std::time::Instant::now();
    let matcher = Matcher::new(ctx, &gallery, MatchBy::Nearest)?;
    let index_ms = t.elapsed().as_secs_f64() * 1e3;
    let queries = random_unit_vectors(faces, dim, 2);
    matcher.identify(ctx, &queries, DEFAULT_THRESHOLD)?;
    let mut runs = Vec::new();
    for _ in 0..reps.max(1) {
        let t = std::time::Instant::now();
        matcher.identify(ctx, &queries, DEFAULT_THRESHOLD)?;
        runs.push(t.elapsed().as_secs_f64() * 1e3);
    }
    runs.sort_by(f64::total_cmp);
    Ok(IdentifyBench {
        adapter: ctx.adapter_name(),
        gallery_size: size,
        faces_per_photo: faces,
        index_ms,
        ms_per_photo: runs[runs.len() / 2],
        gallery_bytes: (size * dim * 4) as u64,
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// What `embed --data-dir` wrote.
#[derive(Debug, Clone)]
pub struct ExportSummary {
    pub classes: usize,
    pub images: usize,
    pub embedded: usize,
    pub skipped: Vec<Skipped>,
    pub files: Vec<PathBuf>,
}

/// facenet's `contributed/export_embeddings.py`: every image of the identity folders of `dir` (this
/// `shard` of them), raw photos aligned first (the first face) unless `aligned`, embedded; writes `out`
/// (float64 `[n, d]`), and beside it `labels.npy` (int64 class index of each row, the index among all
/// of `dir`'s folders so shards agree) and `label_strings.npy` (each row's class name). Images that give
/// no face are skipped and named, rows and labels staying in step.
#[allow(clippy::too_many_arguments)]
pub fn export_embeddings(
    ctx: &GpuContext,
    mtcnn: &mut Mtcnn,
    embedder: &mut Embedder,
    dir: &Path,
    out: &Path,
    detect: &DetectOptions,
    align: &FaceAlign,
    aligned: bool,
    shard: Option<crate::data::Shard>,
    progress: &mut dyn Progress,
) -> Result<ExportSummary, crate::workflows::Error> {
    let all = people(dir)?;
    let indexed: Vec<(usize, (String, Vec<PathBuf>))> = all.into_iter().enumerate().collect();
    let classes = match shard {
        Some(s) => s.select(indexed),
        None => indexed,
    };
    let files: Vec<PathBuf> = classes.iter().flat_map(|(_, (_, f))| f.iter().cloned()).collect();
    let (faces, skipped) = embed_faces(ctx, mtcnn, embedder, &files, detect, align, Pick::First, aligned, progress, |_, _| Ok(()))?;
    let class_of: HashMap<&Path, (usize, &str)> =
        classes.iter().flat_map(|(i, (name, f))| f.iter().map(move |p| (p.as_path(), (*i, name.as_str())))).collect();
    let d = faces.first().map_or(embedder.model.embedding_size(), |f| f.embedding.len());
    let data: Vec<f64> = faces.iter().flat_map(|f| f.embedding.iter().map(|&v| f64::from(v))).collect();
    let labels: Vec<i64> = faces.iter().map(|f| class_of[f.image.as_path()].0 as i64).collect();
    let strings: Vec<String> = faces.iter().map(|f| class_of[f.image.as_path()].1.to_string()).collect();
    let beside = |name: &str| out.parent().map_or_else(|| PathBuf::from(name), |p| p.join(name));
    let (labels_path, strings_path) = (beside("labels.npy"), beside("label_strings.npy"));
    crate::data::npy::write_f64(out, &[faces.len(), d], &data)?;
    crate::data::npy::write_i64(&labels_path, &labels)?;
    crate::data::npy::write_strings(&strings_path, &strings)?;
    Ok(ExportSummary {
        classes: classes.len(),
        images: files.len(),
        embedded: faces.len(),
        skipped,
        files: vec![out.to_path_buf(), labels_path, strings_path],
    })
}
