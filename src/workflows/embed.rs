//! The `embed`, `compare` and `convert` workflows, and `bench embed`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::checkpoint::safetensors::{save, StorageDtype};
use crate::checkpoint::{CheckpointError, Standardization, Weights};
use crate::data::images::load_rgb;
use crate::gpu::GpuContext;
use crate::models::{Device, ModelError, Network};
use crate::progress::{Event, Progress};

/// A model ready to embed, with the standardization to use.
pub struct Embedder {
    pub model: Network,
    /// Why the model runs where it does (see [`Device::choose`]).
    pub device_reason: String,
    pub standardization: Standardization,
    /// Why: `--standardization`, the model file's record, or the run id in its path.
    pub standardization_reason: String,
    pub image_size: u32,
    /// Batches that failed on the GPU and were embedded in halves (see [`Embedder::embed_batch`]).
    pub split_batches: usize,
    /// The model's file name and a crc32c of its weights (names, shapes and values), so a gallery knows
    /// which model made it whatever the file format.
    pub model_id: String,
}

/// `name crc32c:XXXXXXXX` of `weights` loaded from `path`.
pub fn model_id(path: &Path, weights: &Weights) -> String {
    let mut crc = 0u32;
    for (name, t) in &weights.tensors {
        crc = crc32c::crc32c_append(crc, name.as_bytes());
        crc = crc32c::crc32c_append(crc, bytemuck::cast_slice(&t.shape.iter().map(|&d| d as u64).collect::<Vec<u64>>()));
        crc = crc32c::crc32c_append(crc, bytemuck::cast_slice(&t.data));
    }
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    format!("{name} crc32c:{crc:08x}")
}

impl Embedder {
    /// Loads `--model` (TF model folder, prefix, `.index`, or `.safetensors`). The standardization is
    /// `override_std`, else the one the file records, else prewhiten (facenet's 2017 models).
    pub fn load(ctx: &GpuContext, model: &Path, override_std: Option<Standardization>, image_size: u32) -> Result<Self, CheckpointError> {
        Self::load_on(ctx, model, override_std, image_size, None)
    }

    /// [`Embedder::load`] on `device`, or where [`Device::choose`] says when `None`.
    pub fn load_on(
        ctx: &GpuContext,
        model: &Path,
        override_std: Option<Standardization>,
        image_size: u32,
        device: Option<Device>,
    ) -> Result<Self, CheckpointError> {
        let weights = Weights::load(model)?;
        let model_id = model_id(model, &weights);
        let (device, device_reason) = Device::choose(device, ctx);
        let network = Network::load(ctx, &weights, device)?;
        let (standardization, standardization_reason) = match (override_std, weights.standardization) {
            (Some(s), _) => (s, "--standardization".to_string()),
            (None, Some(s)) => (s, format!("recorded in {}", model.display())),
            (None, None) => crate::checkpoint::standardization_for(model),
        };
        Ok(Self { model: network, device_reason, standardization, standardization_reason, image_size, split_batches: 0, model_id })
    }

    /// Embeds image files in batches. Unreadable files, and images whose embedding fails on the GPU
    /// alone, are reported to `progress` and skipped; the result lists the files that were embedded with
    /// their embeddings.
    pub fn embed_files(
        &mut self,
        ctx: &GpuContext,
        files: &[PathBuf],
        batch_size: usize,
        progress: &mut dyn Progress,
    ) -> Result<Vec<(PathBuf, Vec<f32>)>, ModelError> {
        let s = self.image_size as usize;
        let mut out = Vec::with_capacity(files.len());
        for chunk in files.chunks(batch_size.max(1)) {
            let mut pixels = Vec::with_capacity(chunk.len() * s * s * 3);
            let mut names = Vec::new();
            for f in chunk {
                match load_rgb(f, self.image_size) {
                    Ok(p) => {
                        pixels.extend(p);
                        names.push(f.clone());
                    }
                    Err(e) => progress.report(Event::Skipped(e.to_string())),
                }
            }
            let rows = self.embed_batch(ctx, &pixels, names.len())?;
            for (name, row) in names.into_iter().zip(rows) {
                match row {
                    Ok(e) => out.push((name, e)),
                    Err(e) => progress.report(Event::Skipped(format!("{}: {e}", name.display()))),
                }
            }
        }
        Ok(out)
    }

    /// The embeddings of `n` images of `image_size` (RGB values 0..255, row by row), one result per
    /// image. Where the batch fails on the GPU (a buffer above the adapter's binding limit or memory) it
    /// is embedded in halves, down to single images, whose own errors are returned in their place; a lost
    /// device ends the call.
    pub fn embed_batch(&mut self, ctx: &GpuContext, pixels: &[f32], n: usize) -> Result<Vec<Result<Vec<f32>, ModelError>>, ModelError> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let s = self.image_size as usize;
        match self.model.embed(ctx, pixels, [n, s, s, 3], self.standardization) {
            Ok(emb) => Ok(emb.chunks(self.model.embedding_size()).map(|e| Ok(e.to_vec())).collect()),
            Err(e) if e.is_device_lost() || !matches!(e, ModelError::Gpu(_)) => Err(e),
            Err(e) => {
                self.model.release_buffers();
                if n == 1 {
                    return Ok(vec![Err(e)]);
                }
                self.split_batches += 1;
                let half = n / 2;
                let mut rows = self.embed_batch(ctx, &pixels[..half * s * s * 3], half)?;
                rows.extend(self.embed_batch(ctx, &pixels[half * s * s * 3..], n - half)?);
                Ok(rows)
            }
        }
    }
}

impl Embedder {
    /// Writes facenet's named activations for `files` (one batch) as `dir/activation_<tap>.npy`, tap names
    /// with `/` replaced by `_`, shaped `[n, ...]`. Returns how many taps were written.
    pub fn dump_activations(&mut self, ctx: &GpuContext, files: &[PathBuf], dir: &Path) -> Result<usize, crate::workflows::Error> {
        let s = self.image_size as usize;
        let mut pixels = Vec::new();
        for f in files {
            pixels.extend(load_rgb(f, self.image_size)?);
        }
        let Network::Gpu(model) = &mut self.model else {
            return Err(crate::workflows::invalid!("--dump-activations runs on the GPU backend: add --device gpu"));
        };
        let (_, taps) = model.embed_with_taps(ctx, &pixels, [files.len(), s, s, 3], self.standardization, true)?;
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for (name, (shape, data)) in &taps {
            crate::data::npy::write_f32(&dir.join(format!("activation_{}.npy", name.replace('/', "_"))), shape, data)?;
        }
        Ok(taps.len())
    }
}

/// Euclidean distances between all pairs, row-major `n x n` (facenet's compare.py: `sqrt(sum((a-b)^2))`).
pub fn distance_matrix(embeddings: &[Vec<f32>]) -> Vec<Vec<f32>> {
    embeddings
        .iter()
        .map(|a| embeddings.iter().map(|b| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()).collect())
        .collect()
}

/// `facegpu convert`: a TF checkpoint or frozen graph to facegpu's safetensors with metadata. Refuses to
/// overwrite.
pub fn convert(tf_checkpoint: &Path, out: &Path, standardization: Standardization, dtype: StorageDtype) -> Result<usize, CheckpointError> {
    if out.exists() {
        return Err(CheckpointError::Safetensors {
            path: out.to_path_buf(),
            detail: "already exists; remove it or choose another --out (facegpu never overwrites)".into(),
        });
    }
    let weights = Weights::load(tf_checkpoint)?;
    let emb = weights.get_any("InceptionResnetV1/Bottleneck/weights")?.shape.get(1).copied().unwrap_or(0);
    let std = match standardization {
        Standardization::Prewhiten => "prewhiten",
        Standardization::Fixed => "fixed",
    };
    let meta = HashMap::from([
        ("format".to_string(), "facegpu".to_string()),
        ("architecture".to_string(), "inception_resnet_v1".to_string()),
        ("embedding_size".to_string(), emb.to_string()),
        ("standardization".to_string(), std.to_string()),
        ("source".to_string(), tf_checkpoint.display().to_string()),
    ]);
    save(&weights, out, meta, dtype)?;
    Ok(weights.tensors.len())
}

/// `facegpu bench embed`: median images/s of forward passes at `batch` (after upload, GPU synced), and
/// the activation memory (with the context's shared scratch) after the first and the last pass (flat: no
/// per-batch growth).
#[derive(Debug, serde::Serialize)]
pub struct EmbedBench {
    pub adapter: String,
    pub device: Device,
    /// The CPU backend's micro-kernel and threads (empty on the GPU).
    pub simd: String,
    pub batch_size: usize,
    pub images_per_s: f64,
    pub ms_per_batch: f64,
    pub activation_bytes_first: usize,
    pub activation_bytes_last: usize,
}

pub fn bench_embed(ctx: &GpuContext, embedder: &mut Embedder, batch: usize, reps: usize) -> Result<EmbedBench, ModelError> {
    let s = embedder.image_size as usize;
    let shape = [batch, s, s, 3];
    let pixels: Vec<f32> = (0..batch * s * s * 3).map(|i| ((i * 2_654_435_761) % 256) as f32).collect();
    embedder.model.embed(ctx, &pixels, shape, embedder.standardization)?;
    let first = embedder.model.activation_bytes() + ctx.scratch_bytes();
    ctx.reset_profile();
    let mut times = Vec::new();
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        embedder.model.embed(ctx, &pixels, shape, embedder.standardization)?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    let simd = match embedder.model.device() {
        Device::Cpu => format!("{:?} x {} threads", crate::simd::gemm::Isa::detect(), crate::simd::threads()),
        Device::Gpu => String::new(),
    };
    Ok(EmbedBench {
        adapter: ctx.adapter_name(),
        device: embedder.model.device(),
        simd,
        batch_size: batch,
        images_per_s: batch as f64 / med,
        ms_per_batch: med * 1e3,
        activation_bytes_first: first,
        activation_bytes_last: embedder.model.activation_bytes() + ctx.scratch_bytes(),
    })
}
