use crate::gpu::{Encoder, GpuContext, GpuError, GpuTensor};
use crate::kernels::optimizer::{self as kopt, OptimizerKind};
use crate::tape::ParamStore;

/// An optimizer's slots for every parameter of a store, on the GPU, and its step count.
pub struct Optimizer {
    pub kind: OptimizerKind,
    /// `slots[param]` holds `kind.slots()` tensors of the parameter's shape.
    pub slots: Vec<Vec<GpuTensor>>,
    /// Updates applied so far (TF's global step).
    pub step: u64,
}

impl Optimizer {
    /// Slots start at TF's initial values (Adagrad 0.1, RMSProp's mean square 1, others 0).
    pub fn new(ctx: &GpuContext, kind: OptimizerKind, store: &ParamStore) -> Result<Self, GpuError> {
        let (a, b) = kind.slot_init();
        let slots = store
            .params()
            .iter()
            .map(|p| {
                (0..kind.slots())
                    .map(|s| {
                        let init = if s == 0 { a } else { b };
                        GpuTensor::upload(ctx, &format!("{}/{}_{s}", p.name, kind.name()), &p.value.shape, &vec![init; p.value.len()])
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { kind, slots, step: 0 })
    }

    /// Records one update of every parameter with learning rate `lr`; zeroes the gradients.
    pub fn step(&mut self, enc: &mut Encoder, store: &ParamStore, lr: f32) -> Result<(), GpuError> {
        if self.slots.len() != store.params().len() {
            return Err(GpuError::Invalid {
                op: "optimizer",
                detail: format!("optimizer has slots for {} parameters, the store holds {}", self.slots.len(), store.params().len()),
            });
        }
        self.step += 1;
        for (p, slots) in store.params().iter().zip(&self.slots) {
            kopt::update(enc, self.kind, &p.value, &p.grad, slots, lr, self.step)?;
        }
        Ok(())
    }

    /// Bytes held by the slots.
    pub fn bytes(&self) -> usize {
        self.slots.iter().flatten().map(|t| t.len() * 4).sum()
    }
}

/// TF's ExponentialMovingAverage of the trainable weights (facenet: decay 0.9999, `num_updates` = the
/// global step), used for evaluation and saving.
pub struct Ema {
    pub decay: f32,
    pub shadows: Vec<GpuTensor>,
}

impl Ema {
    /// Shadows start as copies of the current weights.
    pub fn new(ctx: &GpuContext, store: &ParamStore, decay: f32) -> Result<Self, GpuError> {
        let mut enc = Encoder::new(ctx);
        let shadows = store
            .params()
            .iter()
            .map(|p| {
                let s = GpuTensor::zeros(ctx, &format!("{}/ExponentialMovingAverage", p.name), &p.value.shape);
                enc.copy(&p.value.buffer, &s.buffer, (p.value.len() * 4) as u64);
                s
            })
            .collect();
        enc.submit()?;
        Ok(Self { decay, shadows })
    }

    /// Records the update after `num_updates` optimizer steps (TF runs it after the step that made the
    /// global step `num_updates`).
    pub fn update(&self, enc: &mut Encoder, store: &ParamStore, num_updates: u64) -> Result<(), GpuError> {
        let d = kopt::ema_decay(self.decay, num_updates);
        for (p, s) in store.params().iter().zip(&self.shadows) {
            kopt::ema(enc, s, &p.value, d)?;
        }
        Ok(())
    }
}
