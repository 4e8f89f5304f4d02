//! Grouping faces by identity without labels: the neighbour graph of the embeddings (pairs closer than a
//! threshold), found on the GPU a block of rows at a time, then Chinese whispers (facenet's
//! `contributed/clustering.py`) or DBSCAN (facenet's `contributed/cluster.py`, scikit-learn's
//! semantics). Neither ever holds the n x n distance matrix: each block of rows is compared with every
//! face in one matmul, and only its pairs below the threshold are kept.
//!
//! Distances are squared L2 between unit embeddings, as in [`crate::workflows::recognize`]. Chinese whispers weighs
//! an edge by the cosine similarity `1 - d^2 / 2` (facenet: an edge where the similarity is above 0.55,
//! that is `d^2 < 0.9`); DBSCAN's `eps` is the Euclidean distance `sqrt(threshold)`.

use std::path::{Path, PathBuf};

use crate::gpu::{GpuContext, GpuError};
use crate::workflows::recognize::GalleryIndex;

/// The clustering method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    ChineseWhispers,
    Dbscan,
}

impl Method {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::ChineseWhispers => "chinese-whispers",
            Method::Dbscan => "dbscan",
        }
    }
}

/// Every face's neighbours: `(other face, squared distance)` for each pair below the threshold, the face
/// itself excluded, in index order.
pub type Neighbours = Vec<Vec<(u32, f32)>>;

/// The neighbour graph of `vectors` (unit length) under `threshold` (squared L2), on the GPU: the
/// vectors indexed in blocks and compared with every one of them a chunk at a time
/// ([`GalleryIndex::visit`]), keeping only the pairs below the threshold.
pub fn neighbours(ctx: &GpuContext, vectors: &[Vec<f32>], threshold: f64) -> Result<Neighbours, GpuError> {
    let mut out: Neighbours = vec![Vec::new(); vectors.len()];
    let index = GalleryIndex::new(ctx, vectors)?;
    index.visit(ctx, vectors, |i, first, row| {
        for (j, &d) in row.iter().enumerate() {
            if f64::from(d) < threshold && first + j != i {
                out[i].push(((first + j) as u32, d));
            }
        }
    })?;
    Ok(out)
}

/// Chinese whispers over the neighbour graph: every face starts as its own cluster; `iterations` times,
/// in a shuffled order (seeded: the same input gives the same clusters), each face takes the cluster
/// whose neighbours' similarities (`1 - d^2 / 2`) sum highest. Returns a cluster label per face.
pub fn chinese_whispers(graph: &Neighbours, iterations: usize, seed: u64) -> Vec<usize> {
    let n = graph.len();
    let mut label: Vec<usize> = (0..n).collect();
    let mut order: Vec<usize> = (0..n).collect();
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut sums: std::collections::HashMap<usize, f64> = Default::default();
    for _ in 0..iterations {
        for i in (1..n).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        for &v in &order {
            if graph[v].is_empty() {
                continue;
            }
            sums.clear();
            for &(u, d) in &graph[v] {
                *sums.entry(label[u as usize]).or_default() += 1.0 - f64::from(d) / 2.0;
            }
            // The highest sum; ties go to the smallest label, so the result does not depend on hashing.
            let best =
                sums.iter().fold((usize::MAX, f64::NEG_INFINITY), |b, (&l, &s)| if s > b.1 || (s == b.1 && l < b.0) { (l, s) } else { b });
            label[v] = best.0;
        }
    }
    label
}

/// DBSCAN as scikit-learn's with `metric='precomputed'`: a face is a core point when at least
/// `min_samples` faces (itself included) lie within `eps`; clusters grow from core points in index order;
/// a face no core point reaches is noise (`None`).
pub fn dbscan(graph: &Neighbours, min_samples: usize) -> Vec<Option<usize>> {
    let n = graph.len();
    let core: Vec<bool> = graph.iter().map(|nb| nb.len() + 1 >= min_samples).collect();
    let mut label: Vec<Option<usize>> = vec![None; n];
    let mut next = 0;
    let mut stack = Vec::new();
    for start in 0..n {
        if label[start].is_some() || !core[start] {
            continue;
        }
        let mut i = start;
        loop {
            if label[i].is_none() {
                label[i] = Some(next);
                if core[i] {
                    let mut nb: Vec<usize> = graph[i].iter().map(|&(u, _)| u as usize).chain([i]).collect();
                    nb.sort_unstable();
                    stack.extend(nb.into_iter().filter(|&u| label[u].is_none()));
                }
            }
            match stack.pop() {
                Some(u) => i = u,
                None => break,
            }
        }
        next += 1;
    }
    label
}

/// Clusters as lists of face indices, largest first (ties: the one with the smallest first index),
/// those smaller than `min_size` left out and returned second.
pub fn groups(labels: &[Option<usize>], min_size: usize) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut by_label: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    let mut rest = Vec::new();
    for (i, l) in labels.iter().enumerate() {
        match l {
            Some(l) => by_label.entry(*l).or_default().push(i),
            None => rest.push(i),
        }
    }
    let mut clusters: Vec<Vec<usize>> = Vec::new();
    for c in by_label.into_values() {
        if c.len() >= min_size.max(1) {
            clusters.push(c);
        } else {
            rest.extend(c);
        }
    }
    clusters.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    rest.sort_unstable();
    (clusters, rest)
}

/// Clusters `vectors` with `method` under `threshold` (squared L2); returns the clusters of at least
/// `min_size` faces (largest first) and the faces left out.
pub fn cluster(
    ctx: &GpuContext,
    vectors: &[Vec<f32>],
    method: Method,
    threshold: f64,
    min_size: usize,
) -> Result<(Vec<Vec<usize>>, Vec<usize>), GpuError> {
    let graph = neighbours(ctx, vectors, threshold)?;
    let labels: Vec<Option<usize>> = match method {
        Method::ChineseWhispers => chinese_whispers(&graph, 20, 0).into_iter().map(Some).collect(),
        Method::Dbscan => dbscan(&graph, min_size.max(1)),
    };
    Ok(groups(&labels, min_size))
}

/// The fraction of faces whose cluster's majority label is theirs (faces left out count as their own
/// clusters of one).
pub fn purity(clusters: &[Vec<usize>], rest: &[usize], truth: &[usize]) -> f64 {
    let n: usize = clusters.iter().map(Vec::len).sum::<usize>() + rest.len();
    let mut right = rest.len();
    for c in clusters {
        let mut counts: std::collections::BTreeMap<usize, usize> = Default::default();
        for &i in c {
            *counts.entry(truth[i]).or_default() += 1;
        }
        right += counts.values().max().copied().unwrap_or(0);
    }
    right as f64 / n.max(1) as f64
}

/// The adjusted Rand index of the clustering (faces left out as clusters of one) against `truth`, as
/// scikit-learn's `adjusted_rand_score`.
pub fn adjusted_rand_index(clusters: &[Vec<usize>], rest: &[usize], truth: &[usize]) -> f64 {
    let n = truth.len();
    let mut pred = vec![0usize; n];
    for (c, members) in clusters.iter().enumerate() {
        for &i in members {
            pred[i] = c;
        }
    }
    for (k, &i) in rest.iter().enumerate() {
        pred[i] = clusters.len() + k;
    }
    let choose2 = |x: usize| (x * x.saturating_sub(1)) as f64 / 2.0;
    let mut table: std::collections::HashMap<(usize, usize), usize> = Default::default();
    let (mut a, mut b): (std::collections::HashMap<usize, usize>, std::collections::HashMap<usize, usize>) = Default::default();
    for i in 0..n {
        *table.entry((pred[i], truth[i])).or_default() += 1;
        *a.entry(pred[i]).or_default() += 1;
        *b.entry(truth[i]).or_default() += 1;
    }
    let index: f64 = table.values().map(|&v| choose2(v)).sum();
    let sa: f64 = a.values().map(|&v| choose2(v)).sum();
    let sb: f64 = b.values().map(|&v| choose2(v)).sum();
    let expected = sa * sb / choose2(n).max(1.0);
    let max = (sa + sb) / 2.0;
    if max == expected {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

/// One face in `clusters.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterFace {
    pub image: PathBuf,
    #[serde(rename = "box")]
    pub bbox: Option<[f64; 4]>,
    /// The aligned crop, relative to the output folder.
    pub crop: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterEntry {
    pub id: usize,
    pub faces: Vec<ClusterFace>,
}

/// `OUT/clusters.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterReport {
    pub method: Method,
    pub threshold: f64,
    pub min_cluster_size: usize,
    pub clusters: Vec<ClusterEntry>,
    pub unclustered: Vec<ClusterFace>,
}

/// Escapes text for HTML.
fn html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A static contact sheet: one row of thumbnails per cluster with its size, then the unclustered faces.
pub fn contact_sheet(report: &ClusterReport) -> String {
    let mut out = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>facegpu clusters</title>\n<style>\n\
         body{font-family:sans-serif;margin:16px;background:#fafafa;color:#222}\n\
         h1{font-size:20px} h2{font-size:15px;margin:14px 0 4px}\n\
         .row{display:flex;flex-wrap:wrap;gap:4px}\n\
         .row img{width:80px;height:80px;object-fit:cover;border-radius:3px}\n\
         </style></head><body>\n",
    );
    let faces: usize = report.clusters.iter().map(|c| c.faces.len()).sum::<usize>() + report.unclustered.len();
    out += &format!(
        "<h1>{} clusters of {faces} faces ({}, threshold {}, smallest cluster {})</h1>\n",
        report.clusters.len(),
        report.method.name(),
        report.threshold,
        report.min_cluster_size
    );
    let row = |title: String, faces: &[ClusterFace]| {
        let imgs: String = faces
            .iter()
            .map(|f| format!("<img src=\"{}\" title=\"{}\" loading=\"lazy\">", html(&f.crop), html(&f.image.display().to_string())))
            .collect();
        format!("<h2>{title}</h2>\n<div class=\"row\">{imgs}</div>\n")
    };
    for c in &report.clusters {
        out += &row(format!("Cluster {}: {} faces", c.id, c.faces.len()), &c.faces);
    }
    if !report.unclustered.is_empty() {
        out += &row(format!("Unclustered: {} faces", report.unclustered.len()), &report.unclustered);
    }
    out + "</body></html>\n"
}

/// Options of [`cluster_photos`].
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub method: Method,
    /// Squared L2 distance under which two faces are neighbours.
    pub threshold: f64,
    pub min_size: usize,
    pub align: crate::workflows::recognize::FaceAlign,
    pub detect: crate::models::mtcnn::DetectOptions,
    /// Inputs are ready face crops: no detection.
    pub aligned: bool,
}

/// The image files of `inputs`: files as given, folders walked (sorted, recursively) for JPEG and PNG.
pub fn image_files(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, crate::workflows::Error> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), crate::workflows::Error> {
        let mut entries: Vec<PathBuf> =
            std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|e| matches!(e.to_ascii_lowercase().to_str(), Some("jpg" | "jpeg" | "png"))) {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            walk(p, &mut out)?;
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

/// `facegpu cluster`: every face of every photo of `inputs`, grouped by identity. Writes
/// `out/clusters.json`, a folder of aligned crops per cluster (`cluster_000`, ... largest first, and
/// `unclustered`) and `out/index.html`. `out` must not exist or be empty: nothing is overwritten.
pub fn cluster_photos(
    ctx: &GpuContext,
    mtcnn: &mut crate::models::mtcnn::Mtcnn,
    embedder: &mut crate::workflows::embed::Embedder,
    inputs: &[PathBuf],
    out: &Path,
    opts: &ClusterOptions,
    progress: &mut dyn crate::progress::Progress,
) -> Result<(ClusterReport, Vec<crate::workflows::recognize::Skipped>), crate::workflows::Error> {
    if out.exists() && std::fs::read_dir(out).map_err(|e| format!("{}: {e}", out.display()))?.next().is_some() {
        return Err(crate::workflows::invalid!("{} exists and is not empty: choose a new folder (nothing is overwritten)", out.display()));
    }
    let files = image_files(inputs)?;
    if files.is_empty() {
        return Err("no JPEG or PNG images among the inputs".into());
    }
    let crops = out.join(".crops");
    std::fs::create_dir_all(&crops).map_err(|e| format!("{}: {e}", crops.display()))?;
    let crop_path = |i: usize| crops.join(format!("face_{i:06}.png"));
    let (faces, skipped) = crate::workflows::recognize::embed_faces(
        ctx,
        mtcnn,
        embedder,
        &files,
        &opts.detect,
        &opts.align,
        crate::workflows::recognize::Pick::All,
        opts.aligned,
        progress,
        |i, crop| crop.save(crop_path(i)).map_err(|e| format!("{}: {e}", crop_path(i).display()).into()),
    )?;
    let vectors: Vec<Vec<f32>> = faces.iter().map(|f| f.embedding.clone()).collect();
    let (clusters, rest) = cluster(ctx, &vectors, opts.method, opts.threshold, opts.min_size)?;
    let place = |i: usize, folder: &str| -> Result<ClusterFace, crate::workflows::Error> {
        let f = &faces[i];
        let dir = out.join(folder);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = format!("face_{:06}.png", f.crop);
        std::fs::rename(crop_path(f.crop), dir.join(&name)).map_err(|e| format!("{}: {e}", dir.join(&name).display()))?;
        Ok(ClusterFace { image: f.image.clone(), bbox: f.bbox, crop: format!("{folder}/{name}") })
    };
    let mut report = ClusterReport {
        method: opts.method,
        threshold: opts.threshold,
        min_cluster_size: opts.min_size,
        clusters: Vec::new(),
        unclustered: Vec::new(),
    };
    for (id, members) in clusters.iter().enumerate() {
        let faces = members.iter().map(|&i| place(i, &format!("cluster_{id:03}"))).collect::<Result<_, _>>()?;
        report.clusters.push(ClusterEntry { id, faces });
    }
    report.unclustered = rest.iter().map(|&i| place(i, "unclustered")).collect::<Result<_, _>>()?;
    let _ = std::fs::remove_dir_all(&crops);
    crate::data::write_atomic(&out.join("clusters.json"), serde_json::to_string_pretty(&report)?.as_bytes())?;
    crate::data::write_atomic(&out.join("index.html"), contact_sheet(&report).as_bytes())?;
    Ok((report, skipped))
}

/// `bench cluster` figures.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClusterBench {
    pub adapter: String,
    pub faces: usize,
    pub identities: usize,
    pub method: Method,
    pub neighbour_ms: f64,
    pub cluster_ms: f64,
    pub edges: usize,
    pub clusters: usize,
    pub adjusted_rand_index: f64,
    pub peak_rss_bytes: Option<u64>,
}

/// The default neighbour threshold of `cluster` (squared L2): on the fixture face sets (deepface, johns)
/// with facenet's 20170512 model both methods group every face by person from 0.7 to 0.8.
pub const DEFAULT_THRESHOLD: f64 = 0.8;

/// Clusters `faces` synthetic faces: identities of 10, each face its identity's random unit vector plus
/// noise (same-identity squared distances around 0.45, others around 2), at [`DEFAULT_THRESHOLD`].
pub fn bench_cluster(ctx: &GpuContext, faces: usize, method: Method) -> Result<ClusterBench, GpuError> {
    let dim = 128;
    let identities = faces.div_ceil(10);
    let centres = crate::workflows::recognize::random_unit_vectors(identities, dim, 3);
    let noise = crate::workflows::recognize::random_unit_vectors(faces, dim, 4);
    let truth: Vec<usize> = (0..faces).map(|i| i / 10).collect();
    let vectors: Vec<Vec<f32>> = (0..faces)
        .map(|i| {
            let v: Vec<f32> = centres[truth[i]].iter().zip(&noise[i]).map(|(c, n)| c + 0.5 * n).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter().map(|x| x / norm).collect()
        })
        .collect();
    let t = std::time::Instant::now();
    let graph = neighbours(ctx, &vectors, DEFAULT_THRESHOLD)?;
    let neighbour_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = std::time::Instant::now();
    let labels: Vec<Option<usize>> = match method {
        Method::ChineseWhispers => chinese_whispers(&graph, 20, 0).into_iter().map(Some).collect(),
        Method::Dbscan => dbscan(&graph, 2),
    };
    let (clusters, rest) = groups(&labels, 2);
    let cluster_ms = t.elapsed().as_secs_f64() * 1e3;
    Ok(ClusterBench {
        adapter: ctx.adapter_name(),
        faces,
        identities,
        method,
        neighbour_ms,
        cluster_ms,
        edges: graph.iter().map(Vec::len).sum::<usize>() / 2,
        clusters: clusters.len(),
        adjusted_rand_index: adjusted_rand_index(&clusters, &rest, &truth),
        peak_rss_bytes: crate::workflows::recognize::peak_rss_bytes(),
    })
}
