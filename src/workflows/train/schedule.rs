//! The learning rate of each epoch and the batches each epoch draws.

use std::path::{Path, PathBuf};

use super::TrainConfig;
use crate::data::dataset::Rng;

/// facenet's `get_learning_rate_from_file`: lines `epoch: lr` (`#` comments; `-` or a value <= 0 ends
/// training); the last line whose epoch is <= `epoch` wins.
pub fn learning_rate_from_file(path: &Path, epoch: usize) -> Result<f64, crate::workflows::Error> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lr = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (e, v) = line
            .split_once(':')
            .ok_or_else(|| crate::workflows::invalid!("{}:{}: expected 'epoch: learning_rate'", path.display(), i + 1))?;
        let e: usize = e.trim().parse().map_err(|_| format!("{}:{}: '{}' is not an epoch", path.display(), i + 1, e.trim()))?;
        let v = v.trim();
        let v: f64 =
            if v == "-" { -1.0 } else { v.parse().map_err(|_| format!("{}:{}: '{v}' is not a learning rate", path.display(), i + 1))? };
        if e <= epoch {
            lr = Some(v);
        } else {
            break;
        }
    }
    lr.ok_or_else(|| crate::workflows::invalid!("{}: no learning rate for epoch {epoch}", path.display()))
}

/// The learning rate of `epoch` (1-based) at global `step`: the schedule file's or `--learning-rate`, times
/// the staircase decay `factor ^ floor(step / (decay_epochs * epoch_size))`.
pub fn learning_rate(cfg: &TrainConfig, epoch: usize, step: u64) -> Result<f64, crate::workflows::Error> {
    let base = match (&cfg.learning_rate_schedule_file, cfg.learning_rate > 0.0) {
        (_, true) => cfg.learning_rate,
        (Some(f), false) => learning_rate_from_file(f, epoch)?,
        (None, false) => return Err("--learning-rate <= 0 needs --learning-rate-schedule-file".into()),
    };
    let period = (cfg.learning_rate_decay_epochs * cfg.epoch_size).max(1) as u64;
    Ok(base * cfg.learning_rate_decay_factor.powi((step / period) as i32))
}

/// The batches of one epoch: `epoch_size` batches drawn from a shuffle of all training images seeded by
/// (seed, epoch), wrapping around as often as needed (facenet's range_input_producer).
pub(super) fn epoch_plan(images: &[(PathBuf, u32)], cfg: &TrainConfig, epoch: usize) -> Vec<Vec<(PathBuf, u32)>> {
    let mut rng = Rng::new(cfg.seed ^ (epoch as u64).wrapping_mul(0x5851_F42D_4C95_7F2D));
    let mut order: Vec<usize> = (0..images.len()).collect();
    let mut out = Vec::with_capacity(cfg.epoch_size);
    let mut at = order.len();
    for _ in 0..cfg.epoch_size {
        let mut batch = Vec::with_capacity(cfg.batch_size);
        for _ in 0..cfg.batch_size {
            if at == order.len() {
                rng.shuffle(&mut order);
                at = 0;
            }
            batch.push(images[order[at]].clone());
            at += 1;
        }
        out.push(batch);
    }
    out
}
