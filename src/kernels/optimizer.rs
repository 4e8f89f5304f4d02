//! Parameter updates (ADAGRAD, ADADELTA, ADAM, RMSPROP, MOM, SGD) and the weights' exponential moving
//! average, with TensorFlow 1's formulas and facenet's constants. Each update zeroes the gradient it used.

use std::fmt;
use std::str::FromStr;

use crate::gpu::{groups_1d, Encoder, GpuError, GpuTensor, Shader};

/// facenet's `--optimizer` choices (plus plain SGD, TF's GradientDescentOptimizer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OptimizerKind {
    Adagrad,
    Adadelta,
    Adam,
    RmsProp,
    Momentum,
    Sgd,
}

impl OptimizerKind {
    pub const ALL: [OptimizerKind; 6] = [Self::Adagrad, Self::Adadelta, Self::Adam, Self::RmsProp, Self::Momentum, Self::Sgd];

    /// facenet's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Adagrad => "ADAGRAD",
            Self::Adadelta => "ADADELTA",
            Self::Adam => "ADAM",
            Self::RmsProp => "RMSPROP",
            Self::Momentum => "MOM",
            Self::Sgd => "SGD",
        }
    }

    fn entry(self) -> &'static str {
        match self {
            Self::Adagrad => "adagrad",
            Self::Adadelta => "adadelta",
            Self::Adam => "adam",
            Self::RmsProp => "rmsprop",
            Self::Momentum => "momentum",
            Self::Sgd => "sgd",
        }
    }

    /// Initial values of the two slots (TF: Adagrad's accumulator 0.1, RMSProp's mean square 1).
    pub fn slot_init(self) -> (f32, f32) {
        match self {
            Self::Adagrad => (0.1, 0.0),
            Self::RmsProp => (1.0, 0.0),
            _ => (0.0, 0.0),
        }
    }

    /// How many slots the update reads (0, 1 or 2).
    pub fn slots(self) -> usize {
        match self {
            Self::Sgd => 0,
            Self::Adagrad | Self::Momentum => 1,
            Self::Adadelta | Self::Adam | Self::RmsProp => 2,
        }
    }

    /// The uniform of step `step` (1-based, for Adam's bias correction).
    pub fn params(self, n: usize, lr: f32, step: u64) -> OptimizerParams {
        let (lr, a, b, eps) = match self {
            Self::Adagrad | Self::Sgd => (lr, 0.0, 0.0, 0.0),
            Self::Adadelta => (lr, 0.9, 0.0, 1e-6),
            Self::Adam => {
                let t = step.max(1) as i32;
                let lr_t = lr as f64 * (1.0 - 0.999f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t));
                (lr_t as f32, 0.9, 0.999, 0.1)
            }
            Self::RmsProp => (lr, 0.9, 0.9, 1.0),
            Self::Momentum => (lr, 0.9, 0.0, 0.0),
        };
        OptimizerParams { n: n as u32, lr, a, b, eps, _pad: [0; 3] }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown optimizer '{s}': expected ADAGRAD, ADADELTA, ADAM, RMSPROP, MOM or SGD"))
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct OptimizerParams {
    pub n: u32,
    pub lr: f32,
    pub a: f32,
    pub b: f32,
    pub eps: f32,
    pub _pad: [u32; 3],
}

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
