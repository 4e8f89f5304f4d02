//! Parameter updates (ADAGRAD, ADADELTA, ADAM, RMSPROP, MOM, SGD) and the weights' exponential moving
//! average, with TensorFlow 1's formulas and facenet's constants. Each update zeroes the gradient it used.

pub use crate::ops::optimizer::{OptimizerKind, OptimizerParams};

use crate::gpu::{groups_1d, Encoder, GpuError, GpuTensor, Shader};

fn check(op: &'static str, w: &GpuTensor, others: &[(&str, &GpuTensor)]) -> Result<(), GpuError> {
    for (what, t) in others {
        if t.len() != w.len() {
            return Err(GpuError::Shape {
                op,
                detail: format!("{what} '{}' {:?} differs from parameter '{}' {:?}", t.label, t.shape, w.label, w.shape),
            });
        }
    }
    Ok(())
}

/// Records one update of `w` from its gradient `g` (zeroed afterwards). `slots` holds `kind.slots()`
/// tensors of `w`'s size; `step` is the 1-based step number.
pub fn update(
    enc: &mut Encoder,
    kind: OptimizerKind,
    w: &GpuTensor,
    g: &GpuTensor,
    slots: &[GpuTensor],
    lr: f32,
    step: u64,
) -> Result<(), GpuError> {
    if slots.len() != kind.slots() {
        return Err(GpuError::Invalid { op: "optimizer", detail: format!("{kind} needs {} slots, got {}", kind.slots(), slots.len()) });
    }
    check("optimizer", w, &[("gradient", g)])?;
    for s in slots {
        check("optimizer", w, &[("slot", s)])?;
    }
    let p = kind.params(w.len(), lr, step);
    let absent = enc.absent_rw();
    let s1 = slots.first().map(|t| &t.buffer).unwrap_or(absent);
    let s2 = slots.get(1).map(|t| &t.buffer).unwrap_or(absent);
    let bind = |used: bool, b| if used { Some(b) } else { None };
    enc.dispatch(
        Shader::Optimizer,
        kind.entry(),
        &p,
        &[Some(&w.buffer), Some(&g.buffer), bind(kind.slots() > 0, s1), bind(kind.slots() > 1, s2)],
        groups_1d(w.len().div_ceil(4)),
    )
}

/// TF's ExponentialMovingAverage decay after `num_updates` updates: `min(decay, (1+t)/(10+t))`.
pub fn ema_decay(decay: f32, num_updates: u64) -> f32 {
    decay.min(((1 + num_updates) as f64 / (10 + num_updates) as f64) as f32)
}

/// `shadow -= (1 - decay) * (shadow - w)`.
pub fn ema(enc: &mut Encoder, shadow: &GpuTensor, w: &GpuTensor, decay: f32) -> Result<(), GpuError> {
    check("ema", w, &[("shadow", shadow)])?;
    let p = OptimizerParams { n: w.len() as u32, lr: 0.0, a: decay, b: 0.0, eps: 0.0, _pad: [0; 3] };
    enc.dispatch(Shader::Optimizer, "ema", &p, &[Some(&w.buffer), None, Some(&shadow.buffer), None], groups_1d(w.len().div_ceil(4)))
}
