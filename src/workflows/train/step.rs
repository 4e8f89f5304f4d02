//! One softmax training step on the tape: forward, losses, backward, weight decay, update, moving average.

use crate::gpu::{Encoder, GpuContext, GpuTensor};
use crate::tape::Tape;

use super::{State, TrainConfig};

/// The second half of every training step: backward, weight decay, the optimizer update and the moving
/// average, recorded after the losses.
pub(super) fn backward_and_update(
    enc: &mut Encoder,
    cfg: &TrainConfig,
    state: &mut State,
    tape: &mut Tape,
    lr: f32,
) -> Result<(), crate::workflows::Error> {
    tape.backward(enc)?;
    state.net.store.weight_decay(enc, cfg.weight_decay)?;
    state.opt.step(enc, &state.net.store, lr)?;
    if let Some(ema) = &state.ema {
        ema.update(enc, &state.net.store, state.opt.step)?;
    }
    Ok(())
}

pub(super) struct StepMetrics {
    pub(super) total: f64,
    pub(super) xent: f64,
    pub(super) center: f64,
    pub(super) norm: f64,
    pub(super) accuracy: f64,
    /// The batch's prelogits when `--log-histograms` keeps their histogram (else empty).
    pub(super) prelogits: Vec<f32>,
}

/// One training step: forward, the losses, backward, weight decay, the update and the moving average.
pub(super) fn step(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    state: &mut State,
    tape: &mut Tape,
    x: &GpuTensor,
    y: &GpuTensor,
    lr: f32,
) -> Result<StepMetrics, crate::workflows::Error> {
    tape.reset();
    let mut enc = Encoder::new(ctx);
    let xv = tape.input(x);
    // Dropout masks differ per step and repeat on resume.
    let seed = (cfg.seed as u32) ^ (state.opt.step as u32).wrapping_mul(0x9E37_79B9);
    let out = state.net.forward(tape, &mut enc, xv, cfg.keep_probability, seed)?;
    let logits = out.logits.ok_or("the training net has no Logits layer")?;
    let (xent, prob) = tape.softmax_xent(&mut enc, logits, y, 1.0)?;
    let center = if cfg.center_loss_factor > 0.0 {
        Some(tape.center_loss(&mut enc, out.prelogits, y, &state.centers, cfg.center_loss_alfa, cfg.center_loss_factor)?)
    } else {
        None
    };
    let norm = if cfg.prelogits_norm_loss_factor > 0.0 {
        Some(tape.prelogits_norm(&mut enc, out.prelogits, cfg.prelogits_norm_p, 1e-4, cfg.prelogits_norm_loss_factor)?)
    } else {
        None
    };
    backward_and_update(&mut enc, cfg, state, tape, lr)?;
    enc.submit()?;
    let xent = xent.download(ctx)?[0] as f64;
    let center = match center {
        Some(c) => c.download(ctx)?[0] as f64,
        None => 0.0,
    };
    let norm = match norm {
        Some(c) => c.download(ctx)?[0] as f64,
        None => 0.0,
    };
    let prob = prob.download(ctx)?;
    let labels = y.download_u32(ctx)?;
    let prelogits = if cfg.log_histograms { tape.value(out.prelogits).download(ctx)? } else { Vec::new() };
    let c = state.net.classes;
    let hits = prob.chunks(c).zip(&labels).filter(|(p, &l)| (0..c).max_by(|&a, &b| p[a].total_cmp(&p[b])) == Some(l as usize)).count();
    Ok(StepMetrics {
        total: xent + cfg.center_loss_factor as f64 * center + cfg.prelogits_norm_loss_factor as f64 * norm,
        xent,
        center,
        norm,
        accuracy: hits as f64 / labels.len().max(1) as f64,
        prelogits,
    })
}

/// `wd/2 * sum w^2` over the decayed weights.
pub(super) fn regularization_loss(ctx: &GpuContext, state: &State, wd: f32) -> Result<f64, crate::workflows::Error> {
    let n = state.net.store.params().iter().filter(|p| p.decay).count();
    let outs: Vec<GpuTensor> = (0..n).map(|i| GpuTensor::zeros(ctx, &format!("weight decay {i}"), &[1])).collect();
    let mut enc = Encoder::new(ctx);
    state.net.store.weight_decay_loss(&mut enc, wd, &outs)?;
    enc.submit()?;
    let mut total = 0.0;
    for o in &outs {
        total += o.download(ctx)?[0] as f64;
    }
    Ok(total)
}
