use std::collections::HashMap;

use crate::gpu::{Encoder, GpuContext, GpuError, GpuTensor};
use crate::kernels::{elementwise, reduce};

/// Index of a trainable parameter in a [`ParamStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ParamId(pub usize);

/// Index of a non-trainable state tensor (batch-norm moving statistics, center-loss centers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateId(pub usize);

/// A trainable tensor and its gradient, both on the GPU for the whole run. The gradient accumulates
/// (`+=`) over backward passes until an optimizer update uses it and zeroes it.
pub struct Param {
    /// The TF scope path (`Repeat/block35_1/Conv2d_1x1/weights`): errors and checkpoints use it.
    pub name: String,
    pub value: GpuTensor,
    pub grad: GpuTensor,
    /// Whether L2 weight decay applies (conv and fully-connected weights, as slim's `weights_regularizer`).
    pub decay: bool,
}

/// The parameters of a network plus its non-trainable state.
#[derive(Default)]
pub struct ParamStore {
    params: Vec<Param>,
    state: Vec<(String, GpuTensor)>,
    index: HashMap<String, ParamId>,
    state_index: HashMap<String, StateId>,
}

impl ParamStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a parameter with initial values `data` and a zero gradient.
    pub fn add(&mut self, ctx: &GpuContext, name: &str, shape: &[usize], data: &[f32], decay: bool) -> Result<ParamId, GpuError> {
        if self.index.contains_key(name) {
            return Err(GpuError::Invalid { op: "ParamStore::add", detail: format!("parameter '{name}' already exists") });
        }
        let value = GpuTensor::upload(ctx, name, shape, data)?;
        let grad = GpuTensor::zeros(ctx, &format!("{name}/grad"), shape);
        self.params.push(Param { name: name.to_string(), value, grad, decay });
        let id = ParamId(self.params.len() - 1);
        self.index.insert(name.to_string(), id);
        Ok(id)
    }

    /// Adds a non-trainable state tensor.
    pub fn add_state(&mut self, ctx: &GpuContext, name: &str, shape: &[usize], data: &[f32]) -> Result<StateId, GpuError> {
        if self.state_index.contains_key(name) {
            return Err(GpuError::Invalid { op: "ParamStore::add_state", detail: format!("state '{name}' already exists") });
        }
        self.state.push((name.to_string(), GpuTensor::upload(ctx, name, shape, data)?));
        let id = StateId(self.state.len() - 1);
        self.state_index.insert(name.to_string(), id);
        Ok(id)
    }

    pub fn get(&self, id: ParamId) -> &Param {
        &self.params[id.0]
    }

    pub fn state(&self, id: StateId) -> &GpuTensor {
        &self.state[id.0].1
    }

    pub fn params(&self) -> &[Param] {
        &self.params
    }

    pub fn state_tensors(&self) -> impl Iterator<Item = (&str, &GpuTensor)> {
        self.state.iter().map(|(n, t)| (n.as_str(), t))
    }

    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.index.get(name).copied()
    }

    pub fn find_state(&self, name: &str) -> Option<StateId> {
        self.state_index.get(name).copied()
    }

    /// Total number of trainable values.
    pub fn count(&self) -> usize {
        self.params.iter().map(|p| p.value.len()).sum()
    }

    /// Bytes of values, gradients and state.
    pub fn bytes(&self) -> usize {
        self.params.iter().map(|p| p.value.len() * 8).sum::<usize>() + self.state.iter().map(|(_, t)| t.len() * 4).sum::<usize>()
    }

    /// Adds L2 weight decay's gradient, `wd * w`, to every decayed parameter's gradient. The loss it
    /// belongs to is `wd/2 * sum w^2` (slim's `l2_regularizer`); see [`ParamStore::weight_decay_loss`].
    pub fn weight_decay(&self, enc: &mut Encoder, wd: f32) -> Result<(), GpuError> {
        if wd == 0.0 {
            return Ok(());
        }
        for p in self.params.iter().filter(|p| p.decay) {
            elementwise::axpy(enc, wd, &p.value, &p.grad)?;
        }
        Ok(())
    }

    /// Writes `wd/2 * sum w^2` of each decayed parameter into `out[i]` (`out` holds one `[1]` tensor per
    /// decayed parameter); their sum is the weight-decay loss.
    pub fn weight_decay_loss(&self, enc: &mut Encoder, wd: f32, out: &[GpuTensor]) -> Result<(), GpuError> {
        let decayed: Vec<&Param> = self.params.iter().filter(|p| p.decay).collect();
        if decayed.len() != out.len() {
            return Err(GpuError::Invalid {
                op: "weight_decay_loss",
                detail: format!("{} decayed parameters, {} outputs", decayed.len(), out.len()),
            });
        }
        for (p, o) in decayed.iter().zip(out) {
            reduce::sum_squares(enc, &p.value, o, wd / 2.0)?;
        }
        Ok(())
    }
}
