//! The autograd tape: forward ops record themselves with their inputs and what their backward needs
//! (batch-norm mean/invstd, max-pool argmax, dropout mask, softmax probabilities, pre-activations);
//! [`Tape::backward`] walks the record once in reverse through one `match`.
//!
//! Gradients accumulate (`+=`) into parameters and are written (`=`) into activations: the first
//! consumer's backward writes an activation's gradient, later ones add to it. Every buffer comes from two
//! [`Arena`]s handed out in call order, so a step with the same graph reuses the previous step's buffers
//! and memory does not grow from step to step. Call [`Tape::reset`] at the start of every step.

mod params;

pub use params::{Param, ParamId, ParamStore, StateId};

use crate::gpu::{Arena, Encoder, GpuError, GpuTensor};
use crate::kernels::conv2d::{self as kconv, Activation, Epilogue, Padding};
use crate::kernels::conv2d_backward::{self as kconvb, Conv2dBackwardParams, EpilogueGrads, EpilogueSaved};
use crate::kernels::{batch_norm, center_loss, concat, elementwise, l2_normalize, matmul, pool, reduce, softmax};

/// A value on the tape: an input, a parameter or the output of an op.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Var(usize);

/// The activation of a conv's fused epilogue.
#[derive(Debug, Clone, Copy)]
pub enum Act {
    None,
    Relu,
    /// PReLU with a per-channel alpha parameter.
    Prelu(Var),
}

/// A conv2d and its fused epilogue: `act(residual + res_scale * affine(conv(x, w) + bias))`.
#[derive(Debug, Clone)]
pub struct ConvSpec {
    pub stride: (usize, usize),
    pub padding: Padding,
    pub bias: Option<Var>,
    /// A frozen per-channel `(scale, shift)` (inference batch norm); it receives no gradient.
    pub affine: Option<(GpuTensor, GpuTensor)>,
    pub residual: Option<(Var, f32)>,
    pub act: Act,
}

impl ConvSpec {
    pub fn new(stride: (usize, usize), padding: Padding) -> Self {
        Self { stride, padding, bias: None, affine: None, residual: None, act: Act::None }
    }
}

/// Batch-norm settings (facenet: decay 0.995, epsilon 0.001, no gamma).
#[derive(Debug, Clone, Copy)]
pub struct BatchNormSpec {
    pub eps: f32,
    pub decay: f32,
    /// A ReLU follows, fused into the batch norm's passes (the same values as `relu` after it, with one
    /// activation and two passes fewer).
    pub relu: bool,
}

struct Value {
    t: GpuTensor,
    /// The value whose gradient buffer this one shares: itself, or the base of a reshape.
    root: usize,
    requires_grad: bool,
    /// A parameter's gradient (accumulated); `None` for activations.
    param_grad: Option<GpuTensor>,
}

enum Op {
    Conv {
        x: Var,
        w: Var,
        spec: ConvSpec,
        preact: Option<GpuTensor>,
        y: Var,
    },
    Linear {
        x: Var,
        w: Var,
        bias: Option<Var>,
        y: Var,
    },
    BatchNorm {
        x: Var,
        gamma: Option<Var>,
        beta: Var,
        mean: GpuTensor,
        invstd: GpuTensor,
        y: Var,
        relu: bool,
    },
    Relu {
        x: Var,
        y: Var,
    },
    Prelu {
        x: Var,
        alpha: Var,
        y: Var,
    },
    MaxPool {
        x: Var,
        argmax: GpuTensor,
        k: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
        y: Var,
    },
    AvgPool {
        x: Var,
        k: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
        y: Var,
    },
    GlobalAvgPool {
        x: Var,
        y: Var,
    },
    AddScaled {
        x: Var,
        z: Var,
        s: f32,
        y: Var,
    },
    Concat {
        parts: Vec<Var>,
        y: Var,
    },
    Split {
        x: Var,
        parts: Vec<Var>,
    },
    L2Normalize {
        x: Var,
        inv: GpuTensor,
        eps: f32,
        y: Var,
    },
    Dropout {
        x: Var,
        mask: GpuTensor,
        keep: f32,
        y: Var,
    },
    SoftmaxXent {
        logits: Var,
        labels: GpuTensor,
        prob: GpuTensor,
        weight: f32,
    },
    /// A terminal loss whose gradient the forward already computed: `dx (+)= scale * grad`.
    Seed {
        x: Var,
        grad: GpuTensor,
        scale: f32,
    },
}

#[derive(Default)]
pub struct Tape {
    values: Vec<Value>,
    ops: Vec<Op>,
    /// Activations and what backward needs.
    arena: Arena,
    /// Gradients of activations and backward scratch.
    grad_arena: Arena,
    /// Per value: its gradient buffer once a backward has written it.
    grads: Vec<Option<GpuTensor>>,
}

fn label(op: &str, i: usize) -> String {
    format!("tape/{op}#{i}")
}

impl Tape {
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a new step: forgets the record; the buffers are handed out again in the same order.
    pub fn reset(&mut self) {
        self.values.clear();
        self.ops.clear();
        self.grads.clear();
        self.arena.reset();
        self.grad_arena.reset();
    }

    /// Bytes held by the tape's buffers (activations, saved state, gradients, scratch).
    pub fn bytes(&self) -> usize {
        self.arena.bytes() + self.grad_arena.bytes()
    }

    fn push(&mut self, t: GpuTensor, requires_grad: bool, param_grad: Option<GpuTensor>) -> Var {
        let i = self.values.len();
        self.values.push(Value { t, root: i, requires_grad, param_grad });
        Var(i)
    }

    fn new_value(&mut self, enc: &Encoder, op: &str, shape: &[usize], inputs: &[Var]) -> Var {
        let t = self.arena.take(enc.ctx(), &label(op, self.values.len()), shape);
        let rg = inputs.iter().any(|v| self.values[v.0].requires_grad);
        self.push(t, rg, None)
    }

    fn scratch(&mut self, enc: &Encoder, op: &str, shape: &[usize]) -> GpuTensor {
        self.arena.take(enc.ctx(), &label(op, self.values.len()), shape)
    }

    /// A tensor that needs no gradient (images, targets).
    pub fn input(&mut self, t: &GpuTensor) -> Var {
        self.push(t.clone(), false, None)
    }

    /// A trainable parameter: its value is used in place, its gradient accumulates into `Param::grad`.
    pub fn param(&mut self, store: &ParamStore, id: ParamId) -> Var {
        let p = store.get(id);
        self.push(p.value.clone(), true, Some(p.grad.clone()))
    }

    pub fn value(&self, v: Var) -> &GpuTensor {
        &self.values[v.0].t
    }

    pub fn shape(&self, v: Var) -> &[usize] {
        &self.values[v.0].t.shape
    }

    /// The gradient of an activation after [`Tape::backward`] (`None` if nothing reached it).
    pub fn grad(&self, v: Var) -> Option<GpuTensor> {
        let val = &self.values[v.0];
        if let Some(g) = &val.param_grad {
            return Some(g.clone());
        }
        self.grads.get(val.root)?.as_ref().and_then(|g| g.reshaped(&val.t.shape).ok())
    }

    /// The same values seen with another shape; gradients flow through unchanged.
    pub fn reshape(&mut self, x: Var, shape: &[usize]) -> Result<Var, GpuError> {
        let t = self.values[x.0].t.reshaped(shape)?;
        let (root, rg, pg) = (self.values[x.0].root, self.values[x.0].requires_grad, self.values[x.0].param_grad.clone());
        let v = self.push(t, rg, pg.map(|g| g.reshaped(shape)).transpose()?);
        self.values[v.0].root = root;
        Ok(v)
    }

    /// `act(residual + s * affine(conv2d(x, w) + bias))`.
    pub fn conv2d(&mut self, enc: &mut Encoder, x: Var, w: Var, spec: ConvSpec) -> Result<Var, GpuError> {
        let p = kconv::Conv2dParams::new(self.shape(x), self.shape(w), spec.stride, spec.padding)?;
        let mut inputs = vec![x, w];
        inputs.extend(spec.bias);
        inputs.extend(spec.residual.map(|r| r.0));
        if let Act::Prelu(a) = spec.act {
            inputs.push(a);
        }
        let y = self.new_value(enc, "conv2d", &p.out_shape(), &inputs);
        // PReLU's backward needs the pre-activation: the conv writes it and an elementwise PReLU follows.
        let preact = matches!(spec.act, Act::Prelu(_)).then(|| self.scratch(enc, "conv2d/preact", &p.out_shape()));
        {
            let v = |var: Var| &self.values[var.0].t;
            let epi = Epilogue {
                bias: spec.bias.map(v),
                affine: spec.affine.as_ref().map(|(s, t)| (s, t)),
                residual: spec.residual.map(|(r, s)| (v(r), s)),
                act: match (spec.act, &preact) {
                    (Act::Relu, _) => Activation::Relu,
                    _ => Activation::None,
                },
            };
            kconv::conv2d(enc, v(x), v(w), &epi, preact.as_ref().unwrap_or(v(y)), spec.stride, spec.padding)?;
            if let (Act::Prelu(a), Some(u)) = (spec.act, &preact) {
                elementwise::prelu(enc, u, v(a), v(y))?;
            }
        }
        self.ops.push(Op::Conv { x, w, spec, preact, y });
        Ok(y)
    }

    /// `x·w + bias` with `x` `[b, in]` and `w` `[in, out]`.
    pub fn linear(&mut self, enc: &mut Encoder, x: Var, w: Var, bias: Option<Var>) -> Result<Var, GpuError> {
        let p = matmul::MatmulParams::new(self.shape(x), self.shape(w), false, false)?;
        let mut inputs = vec![x, w];
        inputs.extend(bias);
        let y = self.new_value(enc, "linear", &[p.m as usize, p.n as usize], &inputs);
        let v = |var: Var| &self.values[var.0].t;
        matmul::matmul(enc, v(x), v(w), bias.map(v), v(y), false, false, false)?;
        self.ops.push(Op::Linear { x, w, bias, y });
        Ok(y)
    }

    /// Training batch norm over the last axis with batch statistics; updates the moving statistics.
    #[allow(clippy::too_many_arguments)]
    pub fn batch_norm(
        &mut self,
        enc: &mut Encoder,
        x: Var,
        gamma: Option<Var>,
        beta: Var,
        moving: (&GpuTensor, &GpuTensor),
        spec: BatchNormSpec,
    ) -> Result<Var, GpuError> {
        let shape = self.shape(x).to_vec();
        let c = *shape.last().unwrap_or(&0);
        let mut inputs = vec![x, beta];
        inputs.extend(gamma);
        let y = self.new_value(enc, "batch_norm", &shape, &inputs);
        let mean = self.scratch(enc, "batch_norm/mean", &[c]);
        let invstd = self.scratch(enc, "batch_norm/invstd", &[c]);
        let v = |var: Var| &self.values[var.0].t;
        batch_norm::batch_norm_train(
            enc,
            v(x),
            gamma.map(v),
            v(beta),
            moving.0,
            moving.1,
            v(y),
            &mean,
            &invstd,
            spec.eps,
            spec.decay,
            spec.relu,
        )?;
        self.ops.push(Op::BatchNorm { x, gamma, beta, mean, invstd, y, relu: spec.relu });
        Ok(y)
    }

    /// Inference batch norm over the last axis with the moving statistics, then ReLU where `spec.relu`.
    /// Its output carries no gradient: a net in inference mode is evaluated, not trained.
    pub fn batch_norm_frozen(
        &mut self,
        enc: &mut Encoder,
        x: Var,
        beta: Var,
        moving: (&GpuTensor, &GpuTensor),
        spec: BatchNormSpec,
    ) -> Result<Var, GpuError> {
        let shape = self.shape(x).to_vec();
        let t = self.scratch(enc, "batch_norm_frozen", &shape);
        let v = |var: Var| &self.values[var.0].t;
        batch_norm::batch_norm_inference(enc, v(x), moving.0, moving.1, None, v(beta), &t, spec.eps)?;
        let y = self.push(t, false, None);
        if spec.relu {
            self.relu(enc, y)
        } else {
            Ok(y)
        }
    }

    pub fn relu(&mut self, enc: &mut Encoder, x: Var) -> Result<Var, GpuError> {
        let shape = self.shape(x).to_vec();
        let y = self.new_value(enc, "relu", &shape, &[x]);
        elementwise::relu(enc, self.value(x), self.value(y))?;
        self.ops.push(Op::Relu { x, y });
        Ok(y)
    }

    pub fn prelu(&mut self, enc: &mut Encoder, x: Var, alpha: Var) -> Result<Var, GpuError> {
        let shape = self.shape(x).to_vec();
        let y = self.new_value(enc, "prelu", &shape, &[x, alpha]);
        elementwise::prelu(enc, self.value(x), self.value(alpha), self.value(y))?;
        self.ops.push(Op::Prelu { x, alpha, y });
        Ok(y)
    }

    pub fn max_pool(
        &mut self,
        enc: &mut Encoder,
        x: Var,
        k: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
    ) -> Result<Var, GpuError> {
        let p = pool::PoolParams::new(self.shape(x), k, stride, padding)?;
        let y = self.new_value(enc, "max_pool", &p.out_shape(), &[x]);
        let argmax = self.arena.take_u32(enc.ctx(), &label("max_pool/argmax", y.0), &p.out_shape());
        pool::max_pool(enc, self.value(x), self.value(y), Some(&argmax), k, stride, padding)?;
        self.ops.push(Op::MaxPool { x, argmax, k, stride, padding, y });
        Ok(y)
    }

    pub fn avg_pool(
        &mut self,
        enc: &mut Encoder,
        x: Var,
        k: (usize, usize),
        stride: (usize, usize),
        padding: Padding,
    ) -> Result<Var, GpuError> {
        let p = pool::PoolParams::new(self.shape(x), k, stride, padding)?;
        let y = self.new_value(enc, "avg_pool", &p.out_shape(), &[x]);
        pool::avg_pool(enc, self.value(x), self.value(y), k, stride, padding)?;
        self.ops.push(Op::AvgPool { x, k, stride, padding, y });
        Ok(y)
    }

    /// `[n, h, w, c] -> [n, c]`.
    pub fn global_avg_pool(&mut self, enc: &mut Encoder, x: Var) -> Result<Var, GpuError> {
        let p = pool::PoolParams::global(self.shape(x))?;
        let y = self.new_value(enc, "global_avg_pool", &[p.n as usize, p.c as usize], &[x]);
        pool::global_avg_pool(enc, self.value(x), self.value(y))?;
        self.ops.push(Op::GlobalAvgPool { x, y });
        Ok(y)
    }

    /// `x + s * z`.
    pub fn add_scaled(&mut self, enc: &mut Encoder, x: Var, z: Var, s: f32) -> Result<Var, GpuError> {
        let shape = self.shape(x).to_vec();
        let y = self.new_value(enc, "add_scaled", &shape, &[x, z]);
        elementwise::add_scaled(enc, self.value(x), self.value(z), s, self.value(y))?;
        self.ops.push(Op::AddScaled { x, z, s, y });
        Ok(y)
    }

    /// Concatenation along the last axis.
    pub fn concat(&mut self, enc: &mut Encoder, parts: &[Var]) -> Result<Var, GpuError> {
        let first = parts.first().ok_or(GpuError::Invalid { op: "concat", detail: "no parts".into() })?;
        let mut shape = self.shape(*first).to_vec();
        let last = shape.len() - 1;
        shape[last] = parts.iter().map(|p| *self.shape(*p).last().unwrap_or(&0)).sum();
        let y = self.new_value(enc, "concat", &shape, parts);
        let ts: Vec<&GpuTensor> = parts.iter().map(|p| self.value(*p)).collect();
        concat::concat_channels(enc, &ts, self.value(y))?;
        self.ops.push(Op::Concat { parts: parts.to_vec(), y });
        Ok(y)
    }

    /// Split along the last axis into parts of `sizes` channels.
    pub fn split(&mut self, enc: &mut Encoder, x: Var, sizes: &[usize]) -> Result<Vec<Var>, GpuError> {
        let shape = self.shape(x).to_vec();
        let last = shape.len() - 1;
        let parts: Vec<Var> = sizes
            .iter()
            .map(|&c| {
                let mut s = shape.clone();
                s[last] = c;
                self.new_value(enc, "split", &s, &[x])
            })
            .collect();
        let ts: Vec<&GpuTensor> = parts.iter().map(|p| self.value(*p)).collect();
        concat::split_channels(enc, self.value(x), &ts)?;
        self.ops.push(Op::Split { x, parts: parts.clone() });
        Ok(parts)
    }

    /// Row-wise L2 normalization (`tf.nn.l2_normalize(x, 1, eps)`).
    pub fn l2_normalize(&mut self, enc: &mut Encoder, x: Var, eps: f32) -> Result<Var, GpuError> {
        let shape = self.shape(x).to_vec();
        let rows = shape.iter().product::<usize>() / shape.last().copied().unwrap_or(1).max(1);
        let y = self.new_value(enc, "l2_normalize", &shape, &[x]);
        let inv = self.scratch(enc, "l2_normalize/inv", &[rows]);
        l2_normalize::l2_normalize(enc, self.value(x), self.value(y), &inv, eps)?;
        self.ops.push(Op::L2Normalize { x, inv, eps, y });
        Ok(y)
    }

    /// Inverted dropout keeping each element with probability `keep`; the same `seed` gives the same mask.
    pub fn dropout(&mut self, enc: &mut Encoder, x: Var, keep: f32, seed: u32) -> Result<Var, GpuError> {
        if keep >= 1.0 {
            return Ok(x);
        }
        let shape = self.shape(x).to_vec();
        let y = self.new_value(enc, "dropout", &shape, &[x]);
        let mask = self.arena.take_u32(enc.ctx(), &label("dropout/mask", y.0), &shape);
        elementwise::dropout(enc, self.value(x), keep, seed, self.value(y), &mask)?;
        self.ops.push(Op::Dropout { x, mask, keep, y });
        Ok(y)
    }

    /// `weight * mean softmax cross-entropy` of `logits` `[b, classes]` against u32 `labels` `[b]`.
    /// Returns the unweighted mean loss `[1]` and the probabilities.
    pub fn softmax_xent(
        &mut self,
        enc: &mut Encoder,
        logits: Var,
        labels: &GpuTensor,
        weight: f32,
    ) -> Result<(GpuTensor, GpuTensor), GpuError> {
        let shape = self.shape(logits).to_vec();
        let prob = self.scratch(enc, "softmax_xent/prob", &shape);
        let row_loss = self.scratch(enc, "softmax_xent/row_loss", &[shape[0]]);
        let loss = self.scratch(enc, "softmax_xent/loss", &[1]);
        softmax::softmax_xent(enc, self.value(logits), labels, &prob, &row_loss, &loss)?;
        self.ops.push(Op::SoftmaxXent { logits, labels: labels.clone(), prob: prob.clone(), weight });
        Ok((loss, prob))
    }

    /// `weight * mean((x - centers[label])^2)`, and facenet's center update with `alfa` (the centers get
    /// no gradient). Returns the unweighted loss `[1]`.
    pub fn center_loss(
        &mut self,
        enc: &mut Encoder,
        x: Var,
        labels: &GpuTensor,
        centers: &GpuTensor,
        alfa: f32,
        weight: f32,
    ) -> Result<GpuTensor, GpuError> {
        let shape = self.shape(x).to_vec();
        let scratch = center_loss::CenterLossScratch {
            sq: self.scratch(enc, "center_loss/sq", &shape),
            diff: self.scratch(enc, "center_loss/diff", &shape),
        };
        let loss = self.scratch(enc, "center_loss/loss", &[1]);
        center_loss::center_loss(enc, self.value(x), labels, centers, &scratch, &loss, alfa)?;
        let scale = weight * 2.0 / shape.iter().product::<usize>().max(1) as f32;
        self.ops.push(Op::Seed { x, grad: scratch.diff, scale });
        Ok(loss)
    }

    /// facenet's prelogits norm loss `weight * mean_r ||(|x_r| + eps)||_p`. Returns the unweighted loss.
    pub fn prelogits_norm(&mut self, enc: &mut Encoder, x: Var, p: f32, eps: f32, weight: f32) -> Result<GpuTensor, GpuError> {
        let shape = self.shape(x).to_vec();
        let rows = shape.iter().product::<usize>() / shape.last().copied().unwrap_or(1).max(1);
        let norms = self.scratch(enc, "prelogits_norm/norms", &[rows]);
        let grad = self.scratch(enc, "prelogits_norm/grad", &shape);
        let loss = self.scratch(enc, "prelogits_norm/loss", &[1]);
        l2_normalize::pnorm_rows(enc, self.value(x), &norms, &grad, p, eps, weight)?;
        reduce::sum_scaled(enc, &norms, &loss, 1.0 / rows.max(1) as f32)?;
        self.ops.push(Op::Seed { x, grad, scale: 1.0 });
        Ok(loss)
    }

    /// facenet's triplet loss `weight * mean(max(|a-p|^2 - |a-n|^2 + alpha, 0))` over consecutive
    /// (anchor, positive, negative) rows of `e` `[3k, d]`. Returns the unweighted loss `[1]`.
    pub fn triplet_loss(&mut self, enc: &mut Encoder, e: Var, alpha: f32, weight: f32) -> Result<GpuTensor, GpuError> {
        let shape = self.shape(e).to_vec();
        let rows = crate::kernels::triplet::TripletParams::new(&shape, alpha, weight)?.k as usize;
        let row_loss = self.scratch(enc, "triplet/row_loss", &[rows]);
        let grad = self.scratch(enc, "triplet/grad", &shape);
        let loss = self.scratch(enc, "triplet/loss", &[1]);
        crate::kernels::triplet::triplet_loss(enc, self.value(e), &row_loss, &loss, &grad, alpha, weight)?;
        self.ops.push(Op::Seed { x: e, grad, scale: 1.0 });
        Ok(loss)
    }

    /// The gradient `dy` of an op's output, if any consumer produced one.
    fn dy(&self, y: Var) -> Option<GpuTensor> {
        self.grad(y)
    }

    /// Where an input's gradient goes and whether to add to it: a parameter's gradient always
    /// accumulates; an activation's is written by its first consumer (in backward order) and added to by
    /// the rest. `None` when the input needs no gradient.
    fn target(&mut self, enc: &Encoder, x: Var) -> Option<(GpuTensor, bool)> {
        let val = &self.values[x.0];
        if !val.requires_grad {
            return None;
        }
        if let Some(g) = &val.param_grad {
            return Some((g.clone(), true));
        }
        let (root, shape) = (val.root, val.t.shape.clone());
        if self.grads.len() <= root {
            self.grads.resize(root + 1, None);
        }
        match &self.grads[root] {
            Some(g) => Some((g.reshaped(&shape).ok()?, true)),
            None => {
                let base_shape = self.values[root].t.shape.clone();
                let g = self.grad_arena.take(enc.ctx(), &label("grad", root), &base_shape);
                self.grads[root] = Some(g.clone());
                Some((g.reshaped(&shape).ok()?, false))
            }
        }
    }

    fn grad_scratch(&mut self, enc: &Encoder, op: &str, shape: &[usize]) -> GpuTensor {
        self.grad_arena.take(enc.ctx(), &label(op, 0), shape)
    }

    /// Records the backward of every op, in reverse, into `enc`. Loss ops seed the gradients with their
    /// weights; parameter gradients accumulate until an optimizer update zeroes them.
    pub fn backward(&mut self, enc: &mut Encoder) -> Result<(), GpuError> {
        let ops = std::mem::take(&mut self.ops);
        let result = ops.iter().rev().try_for_each(|op| self.backward_op(enc, op));
        self.ops = ops;
        result
    }

    fn backward_op(&mut self, enc: &mut Encoder, op: &Op) -> Result<(), GpuError> {
        match op {
            Op::SoftmaxXent { logits, labels, prob, weight } => {
                if let Some((dz, acc)) = self.target(enc, *logits) {
                    softmax::softmax_xent_backward(enc, prob, labels, *weight, &dz, acc)?;
                }
            }
            Op::Seed { x, grad, scale } => {
                if let Some((dx, acc)) = self.target(enc, *x) {
                    elementwise::scale_into(enc, grad, *scale, &dx, acc)?;
                }
            }
            Op::Conv { x, w, spec, preact, y } => {
                let Some(dy) = self.dy(*y) else { return Ok(()) };
                self.conv_backward(enc, *x, *w, spec, preact.as_ref(), *y, &dy)?;
            }
            Op::Linear { x, w, bias, y } => {
                let Some(dy) = self.dy(*y) else { return Ok(()) };
                if let Some(b) = bias {
                    if let Some((db, acc)) = self.target(enc, *b) {
                        reduce::col_sum(enc, &dy, &db, 1.0, acc)?;
                    }
                }
                if let Some((dw, acc)) = self.target(enc, *w) {
                    matmul::matmul(enc, &self.values[x.0].t, &dy, None, &dw, true, false, acc)?;
                }
                if let Some((dx, acc)) = self.target(enc, *x) {
                    matmul::matmul(enc, &dy, &self.values[w.0].t, None, &dx, false, true, acc)?;
                }
            }
            Op::BatchNorm { x, gamma, beta, mean, invstd, y, relu } => {
                let Some(dy) = self.dy(*y) else { return Ok(()) };
                let c = mean.len();
                let sums = self.grad_scratch(enc, "batch_norm/sums", &[2 * c]);
                let dgamma = gamma.and_then(|g| self.target(enc, g)).map(|t| t.0);
                let dbeta = self.target(enc, *beta).map(|t| t.0);
                // The input's gradient is always computed: the statistics' terms need the full pass anyway.
                let (dx, acc) = match self.target(enc, *x) {
                    Some(t) => t,
                    None => (self.grad_scratch(enc, "batch_norm/dx", &dy.shape.clone()), false),
                };
                let relu_output = relu.then(|| self.values[y.0].t.clone());
                let grads = batch_norm::BatchNormGrads {
                    dx: &dx,
                    relu_output: relu_output.as_ref(),
                    dgamma: dgamma.as_ref(),
                    dbeta: dbeta.as_ref(),
                    sums: &sums,
                    accumulate: acc,
                };
                let gamma_t = gamma.map(|g| self.values[g.0].t.clone());
                batch_norm::batch_norm_backward(enc, &self.values[x.0].t, &dy, gamma_t.as_ref(), mean, invstd, &grads)?;
            }
            Op::Relu { x, y } => {
                let Some(dy) = self.dy(*y) else { return Ok(()) };
                if let Some((dx, acc)) = self.target(enc, *x) {
                    elementwise::relu_backward(enc, &dy, &self.values[y.0].t, &dx, acc)?;
                }
            }
            Op::Prelu { x, alpha, y } => {
                let Some(dy) = self.dy(*y) else { return Ok(()) };
                let prod = self.grad_scratch(enc, "prelu/prod", &dy.shape);
                let (dx, acc) = match self.target(enc, *x) {
                    Some(t) => t,
                    None => (self.grad_scratch(enc, "prelu/dx", &dy.shape), false),
                };
                elementwise::prelu_backward(enc, &dy, &self.values[x.0].t, &self.values[alpha.0].t, &dx, &prod, acc)?;
                if let Some((da, acc)) = self.target(enc, *alpha) {
                    reduce::col_sum(enc, &prod, &da, 1.0, acc)?;
                }
            }
            Op::MaxPool { x, argmax, k, stride, padding, y } => {
                let Some(dy) = self.dy(*y) else { return Ok(()) };
                if let Some((dx, acc)) = self.target(enc, *x) {
                    pool::max_pool_backward(enc, &dy, argmax, &dx, *k, *stride, *padding, acc)?;
                }
            }
            Op::AvgPool { x, k, stride, padding, y } => {
                let Some(dy) = self.dy(*y) else { return Ok(()) };
                if let Some((dx, acc)) = self.target(enc, *x) {
                    pool::avg_pool_backward(enc, &dy, &dx, *k, *stride, *padding, acc)?;
                }
            }
            Op::GlobalAvgPool { x, y } => {
                let Some(dy) = self.dy(*y) else { return Ok(()) };
                if let Some((dx, acc)) = self.target(enc, *x) {
                    pool::global_avg_pool_backward(enc, &dy, &dx, acc)?;
                }
            }
            Op::AddScaled { x, z, s, y } => {
                let Some(dy) = self.dy(*y) else { return Ok(()) };
                if let Some((dx, acc)) = self.target(enc, *x) {
                    elementwise::scale_into(enc, &dy, 1.0, &dx, acc)?;
                }
                if let Some((dz, acc)) = self.target(enc, *z) {
                    elementwise::scale_into(enc, &dy, *s, &dz, acc)?;
                }
            }
            Op::Concat { parts, y } => {
                let Some(dy) = self.dy(*y) else { return Ok(()) };
                // Parts that need no gradient still take a slice: they receive it in scratch.
                let mut targets = Vec::with_capacity(parts.len());
                for p in parts {
                    let t = match self.target(enc, *p) {
                        Some(t) => t,
                        None => {
                            let shape = self.shape(*p).to_vec();
                            (self.grad_scratch(enc, "concat/unused", &shape), false)
                        }
                    };
                    targets.push(t);
                }
                let ts: Vec<&GpuTensor> = targets.iter().map(|t| &t.0).collect();
                let acc: Vec<bool> = targets.iter().map(|t| t.1).collect();
                concat::split_channels_into(enc, &dy, &ts, &acc)?;
            }
            Op::Split { x, parts } => {
                let Some((dx, acc)) = self.target(enc, *x) else { return Ok(()) };
                // A part no consumer used contributes zeros: give it a zeroed gradient first.
                let mut dys = Vec::with_capacity(parts.len());
                for p in parts {
                    match self.dy(*p) {
                        Some(g) => dys.push(g),
                        None => {
                            let shape = self.shape(*p).to_vec();
                            let g = self.grad_scratch(enc, "split/zero", &shape);
                            enc.clear(&g.buffer, (g.len() * 4) as u64);
                            dys.push(g);
                        }
                    }
                }
                let ts: Vec<&GpuTensor> = dys.iter().collect();
                concat::concat_channels_into(enc, &ts, &dx, acc)?;
            }
            Op::L2Normalize { x, inv, eps, y } => {
                let Some(dy) = self.dy(*y) else { return Ok(()) };
                if let Some((dx, acc)) = self.target(enc, *x) {
                    l2_normalize::l2_normalize_backward(enc, &dy, &self.values[y.0].t, inv, &dx, *eps, acc)?;
                }
            }
            Op::Dropout { x, mask, keep, y } => {
                let Some(dy) = self.dy(*y) else { return Ok(()) };
                if let Some((dx, acc)) = self.target(enc, *x) {
                    elementwise::dropout_backward(enc, &dy, mask, *keep, &dx, acc)?;
                }
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn conv_backward(
        &mut self,
        enc: &mut Encoder,
        x: Var,
        w: Var,
        spec: &ConvSpec,
        preact: Option<&GpuTensor>,
        y: Var,
        dy: &GpuTensor,
    ) -> Result<(), GpuError> {
        let xt = self.values[x.0].t.clone();
        let wt = self.values[w.0].t.clone();
        let p = kconv::Conv2dParams::new(&xt.shape, &wt.shape, spec.stride, spec.padding)?;
        let plain = spec.affine.is_none() && spec.residual.is_none() && matches!(spec.act, Act::None);
        // g: the gradient of the raw conv output (dy itself when the epilogue is only a bias).
        let g = if plain {
            dy.clone()
        } else {
            let g = self.grad_scratch(enc, "conv2d/g", &dy.shape);
            let residual = spec.residual.map(|(r, _)| match self.target(enc, r) {
                Some(t) => t,
                None => (self.grad_scratch(enc, "conv2d/dres_unused", &dy.shape), false),
            });
            let prod = matches!(spec.act, Act::Prelu(_)).then(|| self.grad_scratch(enc, "conv2d/prelu_prod", &dy.shape));
            let v = |var: Var| &self.values[var.0].t;
            let epi = Epilogue {
                bias: spec.bias.map(v),
                affine: spec.affine.as_ref().map(|(s, t)| (s, t)),
                residual: spec.residual.map(|(r, s)| (v(r), s)),
                act: match spec.act {
                    Act::None => Activation::None,
                    Act::Relu => Activation::Relu,
                    Act::Prelu(a) => Activation::Prelu(v(a)),
                },
            };
            let saved = EpilogueSaved { y: v(y), preact };
            let grads = EpilogueGrads { g: &g, residual: residual.as_ref().map(|(t, acc)| (t, *acc)), prelu_prod: prod.as_ref() };
            kconvb::epilogue_backward(enc, &p, &epi, dy, &saved, &grads)?;
            if let (Act::Prelu(a), Some(prod)) = (spec.act, &prod) {
                if let Some((da, acc)) = self.target(enc, a) {
                    reduce::col_sum(enc, prod, &da, 1.0, acc)?;
                }
            }
            g
        };
        if let Some(b) = spec.bias {
            if let Some((db, acc)) = self.target(enc, b) {
                reduce::col_sum(enc, &g, &db, 1.0, acc)?;
            }
        }
        if let Some((dw, acc)) = self.target(enc, w) {
            let q = Conv2dBackwardParams::new(&xt.shape, &wt.shape, spec.stride, spec.padding)?;
            let scratch = (q.scratch_len() > 0).then(|| self.grad_scratch(enc, "conv2d/dw_split", &[q.scratch_len()]));
            kconvb::grad_weight(enc, &xt, &g, &dw, scratch.as_ref(), spec.stride, spec.padding, acc)?;
        }
        if let Some((dx, acc)) = self.target(enc, x) {
            kconvb::grad_input(enc, &g, &wt, &dx, spec.stride, spec.padding, acc)?;
        }
        Ok(())
    }
}
