//! train_tripletloss.py's epoch: sample people, embed them, select triplets, train on them.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::data::dataset::{spawn_loader, Augment, ImageClass, Rng};
use crate::gpu::{Encoder, GpuContext, GpuTensor};
use crate::progress::{Event, Progress};
use crate::tape::Tape;

use super::schedule::learning_rate;
use super::step::backward_and_update;
use super::{State, TrainConfig};

/// What a triplet epoch did.
pub(super) struct TripletEpoch {
    pub(super) loss_sum: f64,
    pub(super) steps: usize,
    pub(super) images: usize,
    pub(super) skipped: usize,
    pub(super) interrupted: bool,
}

/// facenet's `sample_people`: people in a shuffled order, up to `images_per_person` random images of
/// each, until `people_per_batch * images_per_person` images (or the dataset runs out).
pub fn sample_people(
    classes: &[ImageClass],
    people_per_batch: usize,
    images_per_person: usize,
    rng: &mut Rng,
) -> (Vec<PathBuf>, Vec<usize>) {
    let want = people_per_batch * images_per_person;
    let mut order: Vec<usize> = (0..classes.len()).collect();
    rng.shuffle(&mut order);
    let (mut paths, mut per_class) = (Vec::new(), Vec::new());
    for &c in &order {
        if paths.len() >= want {
            break;
        }
        let mut idx: Vec<usize> = (0..classes[c].paths.len()).collect();
        rng.shuffle(&mut idx);
        let take = idx.len().min(images_per_person).min(want - paths.len());
        if take == 0 {
            continue;
        }
        paths.extend(idx[..take].iter().map(|&i| classes[c].paths[i].clone()));
        per_class.push(take);
    }
    (paths, per_class)
}

/// facenet's `select_triplets`: for every anchor-positive pair of a person, a random negative among those
/// with `|a-n|^2 - |a-p|^2 < alpha` (none: the pair is dropped); the triplets are shuffled.
pub fn select_triplets(emb: &[Vec<f32>], per_class: &[usize], alpha: f32, rng: &mut Rng) -> Vec<[usize; 3]> {
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>();
    let mut triplets = Vec::new();
    let mut start = 0;
    for &n in per_class {
        for j in 1..n {
            let a = start + j - 1;
            let neg: Vec<f32> = (0..emb.len()).map(|i| dist(&emb[a], &emb[i])).collect();
            for p in j..n {
                let p = start + p;
                let pos = dist(&emb[a], &emb[p]);
                let candidates: Vec<usize> = (0..emb.len()).filter(|&i| (i < start || i >= start + n) && neg[i] - pos < alpha).collect();
                if !candidates.is_empty() {
                    triplets.push([a, p, candidates[rng.below(candidates.len())]]);
                }
            }
        }
        start += n;
    }
    rng.shuffle(&mut triplets);
    triplets
}

/// Decodes `paths` (no labels needed) in plan order.
pub(super) fn load_images(
    paths: &[PathBuf],
    batch: usize,
    aug: Augment,
    rng: Rng,
    workers: usize,
) -> impl Iterator<Item = crate::data::dataset::Batch> {
    let plan: Vec<Vec<(PathBuf, u32)>> = paths.chunks(batch.max(1)).map(|c| c.iter().map(|p| (p.clone(), 0)).collect()).collect();
    spawn_loader(plan, 0, aug, rng, workers, 4)
}

/// The sampled images' embeddings with the current weights, the paths they belong to, and the images per
/// class left after unreadable ones are dropped.
struct Sampled {
    emb: Vec<Vec<f32>>,
    kept: Vec<PathBuf>,
    counts: Vec<usize>,
}

/// The buffers and settings a triplet epoch works with.
pub(super) struct TripletCtx<'a> {
    pub(super) ctx: &'a GpuContext,
    pub(super) cfg: &'a TrainConfig,
    pub(super) input: &'a GpuTensor,
    pub(super) aug: Augment,
}

impl TripletCtx<'_> {
    /// Records a forward pass of `x` (dropout seeded by `seed`) and returns the L2-normalized embeddings.
    fn embed(
        &self,
        state: &mut State,
        tape: &mut Tape,
        enc: &mut Encoder,
        x: &GpuTensor,
        seed: u32,
    ) -> Result<crate::tape::Var, crate::gpu::GpuError> {
        tape.reset();
        let xv = tape.input(x);
        let o = state.net.forward(tape, enc, xv, self.cfg.keep_probability, seed)?;
        tape.l2_normalize(enc, o.prelogits, 1e-10)
    }

    /// Embeds the sample with the current weights in training mode, as facenet does.
    fn embed_sample(
        &self,
        state: &mut State,
        tape: &mut Tape,
        (paths, per_class): (&[PathBuf], &[usize]),
        rng: Rng,
        progress: &mut dyn Progress,
    ) -> Result<(Sampled, usize), crate::workflows::Error> {
        let (cfg, s) = (self.cfg, self.cfg.image_size as usize);
        let mut out = Sampled { emb: Vec::new(), kept: Vec::new(), counts: per_class.to_vec() };
        let class_of: Vec<usize> = per_class.iter().enumerate().flat_map(|(c, &n)| std::iter::repeat_n(c, n)).collect();
        let (mut at, mut skipped) = (0, 0);
        for b in load_images(paths, cfg.batch_size, self.aug, rng, cfg.workers) {
            let chunk = &paths[at..(at + cfg.batch_size).min(paths.len())];
            let lost = |p: &PathBuf| b.skipped.iter().any(|e| e.starts_with(&p.display().to_string()));
            for (i, _) in chunk.iter().enumerate().filter(|(_, p)| lost(p)) {
                out.counts[class_of[at + i]] -= 1;
            }
            b.skipped.iter().for_each(|e| progress.report(Event::Skipped(e.clone())));
            skipped += b.skipped.len();
            let n = b.pixels.len() / (s * s * 3);
            if n > 0 {
                let x = self.input.prefix(&[n, s, s, 3])?;
                x.write(self.ctx, &b.pixels)?;
                let mut enc = Encoder::new(self.ctx);
                let e = self.embed(state, tape, &mut enc, &x, 0)?;
                enc.submit()?;
                let v = tape.value(e).download(self.ctx)?;
                out.emb.extend(v.chunks(cfg.embedding_size).map(<[f32]>::to_vec));
                out.kept.extend(chunk.iter().filter(|p| !lost(p)).cloned());
            }
            at += chunk.len();
        }
        Ok((out, skipped))
    }

    /// One step on a batch of whole triplets (anchor, positive, negative rows); returns the loss.
    fn step(&self, state: &mut State, tape: &mut Tape, x: &GpuTensor, lr: f32) -> Result<f64, crate::workflows::Error> {
        let cfg = self.cfg;
        let mut enc = Encoder::new(self.ctx);
        let seed = (cfg.seed as u32) ^ (state.opt.step as u32).wrapping_mul(0x9E37_79B9);
        let e = self.embed(state, tape, &mut enc, x, seed)?;
        let loss = tape.triplet_loss(&mut enc, e, cfg.alpha, 1.0)?;
        backward_and_update(&mut enc, cfg, state, tape, lr)?;
        enc.submit()?;
        Ok(loss.download(self.ctx)?[0] as f64)
    }
}

/// One epoch of train_tripletloss.py: rounds of sampling people, embedding them with the current
/// weights (training mode, as facenet), selecting triplets and training on them, until `epoch_size`
/// batches.
#[allow(clippy::too_many_arguments)]
pub(super) fn triplet_epoch(
    t: &TripletCtx,
    state: &mut State,
    tape: &mut Tape,
    classes: &[ImageClass],
    epoch: usize,
    start: usize,
    stop: &AtomicBool,
    progress: &mut dyn Progress,
) -> Result<TripletEpoch, crate::workflows::Error> {
    let cfg = t.cfg;
    let s = cfg.image_size as usize;
    let batch = cfg.batch_size - cfg.batch_size % 3;
    // A resumed epoch (start > 0) draws its own rounds: the interrupted ones depended on older weights.
    let mut rng = Rng::new(cfg.seed ^ (epoch as u64).wrapping_mul(0xA24B_AED4_963E_E407) ^ (start as u64) << 40);
    let mut out = TripletEpoch { loss_sum: 0.0, steps: 0, images: 0, skipped: 0, interrupted: false };
    let (t0, mut round, todo) = (Instant::now(), 0u64, cfg.epoch_size.saturating_sub(start));
    while out.steps < todo {
        round += 1;
        let (paths, per_class) = sample_people(classes, cfg.people_per_batch, cfg.images_per_person, &mut rng);
        let (sample, skipped) = t.embed_sample(state, tape, (&paths, &per_class), rng.fork(round), progress)?;
        out.skipped += skipped;
        let triplets = select_triplets(&sample.emb, &sample.counts, cfg.alpha, &mut rng);
        if triplets.is_empty() {
            if round > 20 {
                return Err("no triplet violates the margin in 20 rounds: is there more than one person with two images?".into());
            }
            continue;
        }
        let flat: Vec<PathBuf> = triplets.iter().flat_map(|tr| tr.iter().map(|&i| sample.kept[i].clone())).collect();
        for b in load_images(&flat, batch, t.aug, rng.fork(1000 + round), cfg.workers) {
            out.skipped += b.skipped.len();
            let n = b.pixels.len() / (s * s * 3);
            if !b.skipped.is_empty() || n == 0 || !n.is_multiple_of(3) {
                // A triplet lost an image: skip this batch rather than misalign the rows.
                continue;
            }
            let x = t.input.prefix(&[n, s, s, 3])?;
            x.write(t.ctx, &b.pixels)?;
            let l = t.step(state, tape, &x, learning_rate(cfg, epoch, state.opt.step)? as f32)?;
            (out.loss_sum, out.steps, out.images) = (out.loss_sum + l, out.steps + 1, out.images + n);
            let speed = out.images as f64 / t0.elapsed().as_secs_f64();
            let status = format!("triplet loss {l:.4}  {} triplets  {speed:.1} img/s", triplets.len());
            progress.report(Event::Advance { done: start + out.steps, status: Some(status) });
            if stop.load(Ordering::SeqCst) {
                out.interrupted = true;
                return Ok(out);
            }
            if out.steps >= todo {
                break;
            }
        }
    }
    Ok(out)
}
