//! `facegpu classify`: facenet's classifier.py workflow. `train` embeds an identity-per-folder dataset
//! and fits a linear classifier (multinomial logistic regression, trained on the GPU tape with ADAM) on
//! the embeddings; `predict` prints each image's most likely class and its probability, and the accuracy
//! where the folder names are known classes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::checkpoint::safetensors::{self as st, StorageDtype};
use crate::checkpoint::{Tensor, Weights};
use crate::data::dataset::{get_dataset, ImageClass, Rng};
use crate::data::images::load_image;
use crate::gpu::{Encoder, GpuContext, GpuTensor};
use crate::kernels::optimizer::OptimizerKind;
use crate::progress::{Event, Progress};
use crate::tape::{ParamStore, Tape};
use crate::train::Optimizer;
use crate::workflows::embed::Embedder;
use crate::workflows::eval::{crop_or_pad, embed_images};

/// A linear softmax classifier over embeddings, with its class names.
#[derive(Debug, Clone)]
pub struct Classifier {
    pub class_names: Vec<String>,
    /// `[d, classes]`, row-major.
    pub weights: Vec<f32>,
    pub biases: Vec<f32>,
    pub dim: usize,
}

/// classifier.py's `split_dataset`: classes with at least `min_per_class` images, shuffled (seeded);
/// the first `train_per_class` train, the rest test.
pub fn split_for_classifier(
    classes: &[ImageClass],
    min_per_class: usize,
    train_per_class: usize,
    seed: u64,
) -> (Vec<ImageClass>, Vec<ImageClass>) {
    let mut rng = Rng::new(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for c in classes {
        if c.paths.len() < min_per_class.max(1) {
            continue;
        }
        let mut paths = c.paths.clone();
        rng.shuffle(&mut paths);
        let k = train_per_class.min(paths.len());
        train.push(ImageClass { name: c.name.clone(), paths: paths[..k].to_vec() });
        test.push(ImageClass { name: c.name.clone(), paths: paths[k..].to_vec() });
    }
    (train, test)
}

/// (path, class index, embedding) of one image.
pub type Labelled = (PathBuf, usize, Vec<f32>);

/// Embeds every image of `classes` (centre crop or pad to the model's size); unreadable images are
/// reported and left out. Returns (path, class index, embedding).
pub fn embed_dataset(
    ctx: &GpuContext,
    embedder: &mut Embedder,
    classes: &[ImageClass],
    batch: usize,
    progress: &mut dyn Progress,
) -> Result<Vec<Labelled>, crate::workflows::Error> {
    let mut items: Vec<(PathBuf, usize)> = Vec::new();
    let mut images: Vec<RgbImage> = Vec::new();
    for (label, c) in classes.iter().enumerate() {
        for p in &c.paths {
            match load_image(p) {
                Ok(img) => {
                    images.push(crop_or_pad(&img, embedder.image_size));
                    items.push((p.clone(), label));
                }
                Err(e) => progress.report(Event::Skipped(e.to_string())),
            }
        }
    }
    let emb = embed_images(ctx, embedder, &images, batch, false)?;
    Ok(items.into_iter().zip(emb).map(|((p, l), e)| (p, l, e)).collect())
}

impl Classifier {
    /// Fits softmax regression on `(embedding, label)` pairs: full-batch ADAM, `steps` updates, a small
    /// L2 penalty on the weights.
    pub fn fit(
        ctx: &GpuContext,
        embeddings: &[Vec<f32>],
        labels: &[u32],
        class_names: Vec<String>,
        steps: usize,
    ) -> Result<Self, crate::workflows::Error> {
        let (n, c) = (embeddings.len(), class_names.len());
        let d = embeddings.first().map_or(0, Vec::len);
        if n == 0 || c < 2 {
            return Err("a classifier needs embedded images of at least two classes".into());
        }
        let mut store = ParamStore::new();
        let w = store.add(ctx, "classifier/weights", &[d, c], &vec![0.0; d * c], true)?;
        let b = store.add(ctx, "classifier/biases", &[c], &vec![0.0; c], false)?;
        let x = GpuTensor::upload(ctx, "classifier embeddings", &[n, d], &embeddings.concat())?;
        let y = GpuTensor::upload_u32(ctx, "classifier labels", &[n], labels)?;
        let mut opt = Optimizer::new(ctx, OptimizerKind::Adam, &store)?;
        let mut tape = Tape::new();
        for _ in 0..steps {
            tape.reset();
            let mut enc = Encoder::new(ctx);
            let (xv, wv, bv) = (tape.input(&x), tape.param(&store, w), tape.param(&store, b));
            let logits = tape.linear(&mut enc, xv, wv, Some(bv))?;
            tape.softmax_xent(&mut enc, logits, &y, 1.0)?;
            tape.backward(&mut enc)?;
            store.weight_decay(&mut enc, 1e-4)?;
            opt.step(&mut enc, &store, 0.5)?;
            enc.submit()?;
        }
        Ok(Self { class_names, weights: store.get(w).value.download(ctx)?, biases: store.get(b).value.download(ctx)?, dim: d })
    }

    /// Class probabilities of one embedding.
    pub fn probabilities(&self, e: &[f32]) -> Vec<f64> {
        let c = self.class_names.len();
        let z: Vec<f64> = (0..c)
            .map(|j| self.biases[j] as f64 + (0..self.dim).map(|k| e[k] as f64 * self.weights[k * c + j] as f64).sum::<f64>())
            .collect();
        let mx = z.iter().cloned().fold(f64::MIN, f64::max);
        let ex: Vec<f64> = z.iter().map(|v| (v - mx).exp()).collect();
        let s: f64 = ex.iter().sum();
        ex.into_iter().map(|v| v / s).collect()
    }

    /// The most likely class and its probability.
    pub fn predict(&self, e: &[f32]) -> (usize, f64) {
        let p = self.probabilities(e);
        let best = (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap_or(0);
        (best, p[best])
    }

    /// Writes the classifier (never over an existing file).
    pub fn save(&self, path: &Path) -> Result<(), crate::workflows::Error> {
        if path.exists() {
            return Err(
                format!("{}: already exists; remove it or choose another --classifier (facegpu never overwrites)", path.display()).into()
            );
        }
        let mut w = Weights::default();
        w.tensors.insert("classifier/weights".into(), Tensor { shape: vec![self.dim, self.class_names.len()], data: self.weights.clone() });
        w.tensors.insert("classifier/biases".into(), Tensor { shape: vec![self.class_names.len()], data: self.biases.clone() });
        let meta = HashMap::from([
            ("format".to_string(), "facegpu-classifier".to_string()),
            ("class_names".to_string(), serde_json::to_string(&self.class_names)?),
        ]);
        st::save(&w, path, meta, StorageDtype::F32)?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Self, crate::workflows::Error> {
        let (w, meta) = st::load_with_metadata(path)?;
        if meta.get("format").map(String::as_str) != Some("facegpu-classifier") {
            return Err(crate::workflows::invalid!("{}: not a facegpu classifier (written by `facegpu classify train`)", path.display()));
        }
        let class_names: Vec<String> =
            serde_json::from_str(meta.get("class_names").ok_or_else(|| crate::workflows::invalid!("{}: no class names", path.display()))?)?;
        let wt = w.get_any("classifier/weights")?;
        let bt = w.get("classifier/biases", &[class_names.len()])?;
        if wt.shape.len() != 2 || wt.shape[1] != class_names.len() {
            return Err(crate::workflows::invalid!(
                "{}: classifier/weights has shape {:?} for {} classes",
                path.display(),
                wt.shape,
                class_names.len()
            ));
        }
        Ok(Self { dim: wt.shape[0], weights: wt.data.clone(), biases: bt.data.clone(), class_names })
    }
}

/// One prediction of `classify predict`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Prediction {
    pub image: PathBuf,
    pub class: String,
    pub probability: f64,
    /// The image's folder name, when it is one of the classifier's classes.
    pub truth: Option<String>,
}

/// Embeds `data_dir` (one folder per identity) and predicts every image.
pub fn predict_dir(
    ctx: &GpuContext,
    embedder: &mut Embedder,
    classifier: &Classifier,
    classes: &[ImageClass],
    batch: usize,
) -> Result<Vec<Prediction>, crate::workflows::Error> {
    let items = embed_dataset(ctx, embedder, classes, batch, &mut ())?;
    let mut out = Vec::new();
    for (path, label, e) in items {
        if e.len() != classifier.dim {
            return Err(crate::workflows::invalid!(
                "the model gives {}-d embeddings but the classifier expects {}",
                e.len(),
                classifier.dim
            ));
        }
        let (best, p) = classifier.predict(&e);
        let folder = &classes[label].name;
        out.push(Prediction {
            image: path,
            class: classifier.class_names[best].clone(),
            probability: p,
            truth: classifier.class_names.contains(folder).then(|| folder.clone()),
        });
    }
    Ok(out)
}

/// The dataset of `classify`, with classifier.py's optional split.
pub fn classify_dataset(
    data_dir: &Path,
    split: Option<(usize, usize)>,
    seed: u64,
    train_part: bool,
) -> Result<Vec<ImageClass>, crate::workflows::Error> {
    let classes = get_dataset(data_dir)?;
    Ok(match split {
        Some((min, per_class)) => {
            let (train, test) = split_for_classifier(&classes, min, per_class, seed);
            if train_part {
                train
            } else {
                test
            }
        }
        None => classes,
    })
}
