//! Inception-ResNet-v1 as a training graph on the tape, with facenet's variable names and shapes
//! (`InceptionResnetV1/Repeat/block35_1/Branch_1/Conv2d_0b_3x3/weights`, `.../BatchNorm/beta`, ...), so
//! that its weights load from and save to the same checkpoints as the inference model.
//!
//! Parameters are created on first use: from `pretrained` weights when they hold the name, else with
//! slim's defaults (Xavier-uniform weights, zero biases and betas, moving mean 0 and variance 1).

use crate::arch::inception_resnet_v1::{self as arch, Stage, FEATURES, ROOT};
use crate::arch::{Branch, ConvLayer};
use crate::checkpoint::Weights;
use crate::gpu::{Encoder, GpuContext, GpuError};
use crate::kernels::conv2d::Padding;
use crate::tape::{Act, BatchNormSpec, ConvSpec, ParamId, ParamStore, Tape, Var};

/// facenet's batch-norm settings.
pub const BN: BatchNormSpec = BatchNormSpec { eps: arch::BN_EPS, decay: arch::BN_DECAY, relu: false };

/// xorshift64* for weight initialisation (seeded, so a run is reproducible).
pub struct InitRng(u64);

impl InitRng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    }
    /// slim's `xavier_initializer()`: uniform in `+-sqrt(6 / (fan_in + fan_out))`.
    pub fn xavier(&mut self, n: usize, fan_in: usize, fan_out: usize) -> Vec<f32> {
        let limit = (6.0 / (fan_in + fan_out) as f32).sqrt();
        (0..n).map(|_| (2.0 * self.uniform() - 1.0) * limit).collect()
    }
}

/// The network's parameters and how to build its forward pass on a tape.
pub struct TrainNet<'w> {
    pub store: ParamStore,
    pub embedding_size: usize,
    pub classes: usize,
    pretrained: Option<&'w Weights>,
    rng: InitRng,
    /// Names of the parameters created from `pretrained` and from the initialiser.
    pub loaded: Vec<String>,
    pub initialised: Vec<String>,
    /// Batch norms use the moving statistics and no gradient flows ([`TrainNet::forward_inference`]).
    frozen: bool,
}

/// What one forward pass produces.
pub struct Outputs {
    pub prelogits: Var,
    pub logits: Option<Var>,
}

impl<'w> TrainNet<'w> {
    pub fn new(embedding_size: usize, classes: usize, pretrained: Option<&'w Weights>, seed: u64) -> Self {
        Self {
            store: ParamStore::new(),
            embedding_size,
            classes,
            pretrained,
            rng: InitRng::new(seed),
            loaded: Vec::new(),
            initialised: Vec::new(),
            frozen: false,
        }
    }

    /// The parameter `name` of `shape`, created on first use.
    fn param(
        &mut self,
        ctx: &GpuContext,
        name: &str,
        shape: &[usize],
        fans: (usize, usize),
        decay: bool,
        zero: bool,
    ) -> Result<ParamId, GpuError> {
        if let Some(id) = self.store.find(name) {
            return Ok(id);
        }
        let n: usize = shape.iter().product();
        let found = self.pretrained.and_then(|w| w.tensors.get(name));
        if let (Some(t), Some(w)) = (found, self.pretrained) {
            // A mismatched variable is refused by name; only the Logits layer may differ (another dataset).
            let same = t.shape == shape || (t.data.len() == n && name.ends_with("Bottleneck/weights"));
            if !same && !name.starts_with("Logits/") {
                return Err(GpuError::Shape {
                    op: "pretrained weights",
                    detail: format!("{}: variable '{name}' has shape {:?}, this network needs {shape:?}", w.source.display(), t.shape),
                });
            }
        }
        let from = found.filter(|t| t.data.len() == n);
        let data = match from {
            Some(t) => {
                self.loaded.push(name.to_string());
                t.data.clone()
            }
            None => {
                self.initialised.push(name.to_string());
                if zero {
                    vec![0.0; n]
                } else {
                    self.rng.xavier(n, fans.0, fans.1)
                }
            }
        };
        self.store.add(ctx, name, shape, &data, decay)
    }

    fn state(&mut self, ctx: &GpuContext, name: &str, c: usize, init: f32) -> Result<crate::tape::StateId, GpuError> {
        if let Some(id) = self.store.find_state(name) {
            return Ok(id);
        }
        let data = match self.pretrained.and_then(|w| w.tensors.get(name)).filter(|t| t.data.len() == c) {
            Some(t) => t.data.clone(),
            None => vec![init; c],
        };
        self.store.add_state(ctx, name, &[c], &data)
    }

    /// conv (no bias) -> training batch norm (beta, no gamma) -> ReLU, slim's `conv2d` under facenet's
    /// arg_scope. `scope` is the full TF scope of the layer.
    #[allow(clippy::too_many_arguments)]
    fn conv_bn(
        &mut self,
        tape: &mut Tape,
        enc: &mut Encoder,
        x: Var,
        scope: &str,
        k: (usize, usize),
        cout: usize,
        stride: usize,
        padding: Padding,
    ) -> Result<Var, GpuError> {
        let ctx = enc.ctx();
        let cin = *tape.shape(x).last().unwrap_or(&0);
        let w = self.param(ctx, &format!("{scope}/weights"), &[k.0, k.1, cin, cout], (k.0 * k.1 * cin, k.0 * k.1 * cout), true, false)?;
        let beta = self.param(ctx, &format!("{scope}/BatchNorm/beta"), &[cout], (0, 0), false, true)?;
        let mm = self.state(ctx, &format!("{scope}/BatchNorm/moving_mean"), cout, 0.0)?;
        let mv = self.state(ctx, &format!("{scope}/BatchNorm/moving_variance"), cout, 1.0)?;
        let (wv, bv) = (tape.param(&self.store, w), tape.param(&self.store, beta));
        let y = tape.conv2d(enc, x, wv, ConvSpec::new((stride, stride), padding))?;
        // Batch norm and ReLU in one pass each way (BatchNormSpec::relu).
        self.batch_norm(tape, enc, y, bv, (mm, mv), BatchNormSpec { relu: true, ..BN })
    }

    /// Training batch norm, or with the moving statistics when the net is frozen.
    fn batch_norm(
        &self,
        tape: &mut Tape,
        enc: &mut Encoder,
        x: Var,
        beta: Var,
        (mm, mv): (crate::tape::StateId, crate::tape::StateId),
        spec: BatchNormSpec,
    ) -> Result<Var, GpuError> {
        let moving = (self.store.state(mm), self.store.state(mv));
        if self.frozen {
            tape.batch_norm_frozen(enc, x, beta, moving, spec)
        } else {
            tape.batch_norm(enc, x, None, beta, moving, spec)
        }
    }

    fn chain(&mut self, tape: &mut Tape, enc: &mut Encoder, x: Var, scope: &str, layers: &[ConvLayer]) -> Result<Var, GpuError> {
        let mut h = x;
        for l in layers {
            h = self.conv_bn(tape, enc, h, &format!("{scope}/{}", l.name), l.k, l.cout, l.stride, l.padding)?;
        }
        Ok(h)
    }

    /// The conv chains of a block's branches, each under `scope/Branch_i`.
    fn branches(&mut self, tape: &mut Tape, enc: &mut Encoder, x: Var, scope: &str, branches: &[Branch]) -> Result<Vec<Var>, GpuError> {
        branches.iter().map(|b| self.chain(tape, enc, x, &format!("{scope}/{}", b.scope), b.convs)).collect()
    }

    /// A residual block: branches, concat, 1x1 up-projection with bias, `x + scale * up`, ReLU if `relu`.
    #[allow(clippy::too_many_arguments)]
    fn block(
        &mut self,
        tape: &mut Tape,
        enc: &mut Encoder,
        x: Var,
        scope: &str,
        branches: &[Branch],
        scale: f32,
        relu: bool,
    ) -> Result<Var, GpuError> {
        let outs = self.branches(tape, enc, x, scope, branches)?;
        let mixed = tape.concat(enc, &outs)?;
        let (cin, cout) = (*tape.shape(mixed).last().unwrap_or(&0), *tape.shape(x).last().unwrap_or(&0));
        let ctx = enc.ctx();
        let w = self.param(ctx, &format!("{scope}/Conv2d_1x1/weights"), &[1, 1, cin, cout], (cin, cout), true, false)?;
        let b = self.param(ctx, &format!("{scope}/Conv2d_1x1/biases"), &[cout], (0, 0), false, true)?;
        let (wv, bv) = (tape.param(&self.store, w), tape.param(&self.store, b));
        let spec = ConvSpec {
            bias: Some(bv),
            residual: Some((x, scale)),
            act: if relu { Act::Relu } else { Act::None },
            ..ConvSpec::new((1, 1), Padding::Same)
        };
        tape.conv2d(enc, mixed, wv, spec)
    }

    fn reduction(&mut self, tape: &mut Tape, enc: &mut Encoder, x: Var, scope: &str, branches: &[Branch]) -> Result<Var, GpuError> {
        let mut outs = self.branches(tape, enc, x, scope, branches)?;
        let (k, stride, padding) = arch::POOL;
        outs.push(tape.max_pool(enc, x, k, (stride.0, stride.1), padding)?);
        tape.concat(enc, &outs)
    }

    /// Records the training forward pass of standardized images `x` `[n, s, s, 3]` (s >= 75): facenet's
    /// `inference()` up to the prelogits (with dropout at `keep`), and the Logits layer when the net has
    /// classes.
    pub fn forward(&mut self, tape: &mut Tape, enc: &mut Encoder, x: Var, keep: f32, dropout_seed: u32) -> Result<Outputs, GpuError> {
        self.frozen = false;
        self.build(tape, enc, x, keep, dropout_seed)
    }

    /// The same network in inference mode: batch norms with the moving statistics, no dropout, no
    /// gradient; what the GPU inference model computes from the same weights.
    pub fn forward_inference(&mut self, tape: &mut Tape, enc: &mut Encoder, x: Var) -> Result<Outputs, GpuError> {
        self.frozen = true;
        let out = self.build(tape, enc, x, 1.0, 0);
        self.frozen = false;
        out
    }

    fn build(&mut self, tape: &mut Tape, enc: &mut Encoder, x: Var, keep: f32, dropout_seed: u32) -> Result<Outputs, GpuError> {
        let mut h = x;
        for stage in arch::stages() {
            h = self.stage(tape, enc, h, &stage)?;
        }
        let prelogits = self.bottleneck(tape, enc, h, keep, dropout_seed)?;
        let logits = self.logits(tape, enc, prelogits)?;
        Ok(Outputs { prelogits, logits })
    }

    fn stage(&mut self, tape: &mut Tape, enc: &mut Encoder, x: Var, stage: &Stage) -> Result<Var, GpuError> {
        match stage {
            Stage::Conv(l) => self.chain(tape, enc, x, ROOT, std::slice::from_ref(l)),
            Stage::MaxPool(_) => {
                let (k, stride, padding) = arch::POOL;
                tape.max_pool(enc, x, k, stride, padding)
            }
            Stage::Residual { scope, branches, scale, relu } => {
                self.block(tape, enc, x, &format!("{ROOT}/{scope}"), branches, *scale, *relu)
            }
            Stage::Reduction { scope, branches } => self.reduction(tape, enc, x, &format!("{ROOT}/{scope}"), branches),
        }
    }

    /// Logits/AvgPool_1a_8x8 over the whole map, flatten, dropout, Bottleneck (fully connected + BN).
    fn bottleneck(&mut self, tape: &mut Tape, enc: &mut Encoder, h: Var, keep: f32, dropout_seed: u32) -> Result<Var, GpuError> {
        let pooled = tape.global_avg_pool(enc, h)?;
        let pooled = if self.frozen { pooled } else { tape.dropout(enc, pooled, keep, dropout_seed)? };
        let n = tape.shape(pooled)[0];
        let flat = tape.reshape(pooled, &[n, 1, 1, FEATURES])?;
        let e = self.embedding_size;
        let ctx = enc.ctx();
        let scope = format!("{ROOT}/{}", arch::BOTTLENECK);
        // Stored as [FEATURES, e] (a fully-connected layer), used as a 1x1 conv.
        let w = self.param(ctx, &format!("{scope}/weights"), &[FEATURES, e], (FEATURES, e), true, false)?;
        let beta = self.param(ctx, &format!("{scope}/BatchNorm/beta"), &[e], (0, 0), false, true)?;
        let mm = self.state(ctx, &format!("{scope}/BatchNorm/moving_mean"), e, 0.0)?;
        let mv = self.state(ctx, &format!("{scope}/BatchNorm/moving_variance"), e, 1.0)?;
        let wv = tape.param(&self.store, w);
        let wv = tape.reshape(wv, &[1, 1, FEATURES, e])?;
        let bv = tape.param(&self.store, beta);
        let y = tape.conv2d(enc, flat, wv, ConvSpec::new((1, 1), Padding::Valid))?;
        let y = self.batch_norm(tape, enc, y, bv, (mm, mv), BN)?;
        tape.reshape(y, &[n, e])
    }

    /// The Logits layer (fully connected with bias) when the net has classes.
    fn logits(&mut self, tape: &mut Tape, enc: &mut Encoder, prelogits: Var) -> Result<Option<Var>, GpuError> {
        if self.classes == 0 {
            return Ok(None);
        }
        let (e, c) = (self.embedding_size, self.classes);
        let ctx = enc.ctx();
        let w = self.param(ctx, "Logits/weights", &[e, c], (e, c), true, false)?;
        let b = self.param(ctx, "Logits/biases", &[c], (0, 0), false, true)?;
        let (wv, bv) = (tape.param(&self.store, w), tape.param(&self.store, b));
        Ok(Some(tape.linear(enc, prelogits, wv, Some(bv))?))
    }
}
