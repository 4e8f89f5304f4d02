//! Dataset filtering as facenet's `calculate_filtering_metrics.py` and `train_softmax.py`'s
//! `--filter_*` flags: every image's distance to its class's mean embedding, then the images farthest
//! from their class (above a percentile of all distances) left out of training, and the classes left
//! with too few images dropped.
//!
//! facenet writes the metrics as HDF5; facegpu writes the same four datasets (`class_names`,
//! `image_list`, `label_list`, `distance_to_center`) as one JSON object, a format it already reads and
//! writes everywhere (a distance is `null` where facenet's would be NaN: an image that could not be
//! embedded).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::data::dataset::ImageClass;

/// The contents of a filter file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FilterMetrics {
    pub class_names: Vec<String>,
    pub image_list: Vec<PathBuf>,
    pub label_list: Vec<usize>,
    pub distance_to_center: Vec<Option<f64>>,
}

impl FilterMetrics {
    /// Distances of every image of `classes` to its class's mean embedding (Euclidean, as facenet's
    /// `sqrt(sum(square(emb - center)))`); `embedding(path)` gives an image's embedding, `None` where
    /// it has none (its distance is then `None` and it does not move the center).
    pub fn compute(classes: &[ImageClass], embedding: impl Fn(&Path) -> Option<Vec<f32>>) -> Self {
        let mut m = Self { class_names: Vec::new(), image_list: Vec::new(), label_list: Vec::new(), distance_to_center: Vec::new() };
        for (label, class) in classes.iter().enumerate() {
            m.class_names.push(class.name.clone());
            let embs: Vec<Option<Vec<f32>>> = class.paths.iter().map(|p| embedding(p)).collect();
            let known: Vec<&Vec<f32>> = embs.iter().flatten().collect();
            let d = known.first().map_or(0, |e| e.len());
            let center: Vec<f64> = (0..d).map(|j| known.iter().map(|e| f64::from(e[j])).sum::<f64>() / known.len() as f64).collect();
            for (p, e) in class.paths.iter().zip(&embs) {
                m.image_list.push(p.clone());
                m.label_list.push(label);
                m.distance_to_center
                    .push(e.as_ref().map(|e| e.iter().zip(&center).map(|(v, c)| (f64::from(*v) - c).powi(2)).sum::<f64>().sqrt()));
            }
        }
        m
    }

    pub fn save(&self, path: &Path) -> Result<(), crate::workflows::Error> {
        Ok(crate::data::write_atomic(path, serde_json::to_string(self)?.as_bytes())?)
    }

    /// Reads a filter file, checking that its lists agree.
    pub fn load(path: &Path) -> Result<Self, crate::workflows::Error> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let m: Self = serde_json::from_str(&text).map_err(|e| format!("{}: not a facegpu filter file: {e}", path.display()))?;
        let n = m.image_list.len();
        if m.label_list.len() != n || m.distance_to_center.len() != n || m.label_list.iter().any(|&l| l >= m.class_names.len()) {
            return Err(crate::workflows::invalid!(
                "{}: {n} images, {} labels, {} distances, {} classes do not agree",
                path.display(),
                m.label_list.len(),
                m.distance_to_center.len(),
                m.class_names.len()
            ));
        }
        Ok(m)
    }
}

/// facenet's `find_threshold`: the distance at `percentile` of the cumulative histogram (100 bins over
/// the distances' range, `np.interp` of the percentile over the bins' cumulative fractions and centres).
pub fn find_threshold(values: &[f64], percentile: f64) -> f64 {
    if values.is_empty() {
        return f64::INFINITY;
    }
    let (lo, hi) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    // np.histogram: equal bins over [lo, hi] (a zero range becomes [lo - 0.5, hi + 0.5]), the last bin
    // closed on the right.
    let (lo, hi) = if hi > lo { (lo, hi) } else { (lo - 0.5, hi + 0.5) };
    let width = (hi - lo) / 100.0;
    let mut hist = [0usize; 100];
    for &v in values {
        hist[(((v - lo) / width) as usize).min(99)] += 1;
    }
    let total = values.len() as f64;
    let mut cdf = [0f64; 100];
    let mut sum = 0;
    for (c, h) in cdf.iter_mut().zip(hist) {
        sum += h;
        *c = (sum as f64 / total) as f32 as f64; // facenet: np.float32(cumsum) / sum
    }
    let centres: Vec<f64> = (0..100).map(|i| lo + width * (i as f64 + 0.5)).collect();
    let x = percentile * 0.01;
    if x < cdf[0] {
        return centres[0];
    }
    if x >= cdf[99] {
        return centres[99];
    }
    // np.interp: the j with cdf[j] <= x < cdf[j + 1].
    let j = cdf.partition_point(|&c| c <= x) - 1;
    centres[j] + (centres[j + 1] - centres[j]) * (x - cdf[j]) / (cdf[j + 1] - cdf[j])
}

/// What filtering did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Filtered {
    pub threshold: f64,
    pub removed_images: Vec<PathBuf>,
    pub removed_classes: Vec<String>,
}

/// facenet's `filter_dataset`: images whose distance is at or above the `percentile` threshold are left
/// out; a class that then holds fewer than `min_images` images is dropped (facenet checks the classes of
/// the removed images only). A filter file made for another dataset (its class names or images not
/// those of `classes`) is refused.
pub fn filter_dataset(
    classes: &mut Vec<ImageClass>,
    m: &FilterMetrics,
    percentile: f64,
    min_images: usize,
) -> Result<Filtered, crate::workflows::Error> {
    let names: Vec<&String> = classes.iter().map(|c| &c.name).collect();
    if m.class_names.iter().collect::<Vec<_>>() != names {
        let first = m.class_names.iter().zip(&names).position(|(a, b)| a != *b).unwrap_or(m.class_names.len().min(names.len()));
        return Err(crate::workflows::invalid!(
            "the filter file is for another dataset: {} classes against {} here, the first difference at class {first} ({:?} vs {:?})",
            m.class_names.len(),
            names.len(),
            m.class_names.get(first),
            names.get(first)
        ));
    }
    let known: BTreeMap<&Path, usize> =
        classes.iter().enumerate().flat_map(|(i, c)| c.paths.iter().map(move |p| (p.as_path(), i))).collect();
    if let Some(p) = m.image_list.iter().find(|p| !known.contains_key(p.as_path())) {
        return Err(crate::workflows::invalid!(
            "the filter file is for another dataset: it lists {}, which is not in this one",
            p.display()
        ));
    }
    let distances: Vec<f64> = m.distance_to_center.iter().flatten().copied().collect();
    let threshold = find_threshold(&distances, percentile);
    let mut out = Filtered { threshold, ..Default::default() };
    let mut touched = Vec::new();
    for ((p, &label), d) in m.image_list.iter().zip(&m.label_list).zip(&m.distance_to_center) {
        if d.is_some_and(|d| d >= threshold) {
            let class = &mut classes[label];
            if let Some(i) = class.paths.iter().position(|q| q == p) {
                class.paths.remove(i);
                out.removed_images.push(p.clone());
            }
            touched.push(label);
        }
    }
    touched.sort_unstable();
    touched.dedup();
    for &label in touched.iter().rev() {
        if classes[label].paths.len() < min_images {
            out.removed_classes.push(classes.remove(label).name);
        }
    }
    out.removed_classes.reverse();
    Ok(out)
}
