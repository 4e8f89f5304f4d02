//! Inception-ResNet-v1 for inference on the GPU (moving statistics folded into the convs), built from
//! [`crate::arch::inception_resnet_v1`] and loaded by TF variable name.

use std::collections::BTreeMap;

use super::ModelError;
use crate::arch::inception_resnet_v1::{self as arch, Stage};
use crate::arch::{Branch, ConvLayer};
use crate::checkpoint::{CheckpointError, Standardization, Weights};
use crate::gpu::Arena;
use crate::gpu::{Encoder, GpuContext, GpuError, GpuTensor};
use crate::kernels::concat::copy_channels_into;
use crate::kernels::conv2d::Padding;
use crate::kernels::image::{fixed_standardize, prewhiten};
use crate::kernels::l2_normalize::l2_normalize;
use crate::kernels::pool::{global_avg_pool, max_pool};
use crate::nn::{Conv, ConvKind, Scope};

use ConvKind::{Bias, BnRelu};

/// A residual Inception block: parallel branches, concat, 1x1 up-projection with bias,
/// `x + scale * up`, then ReLU unless `relu` is false (the final Block8).
struct Block {
    branches: Vec<Vec<Conv>>,
    up: Conv,
    scale: f32,
    relu: bool,
}

/// One loaded [`Stage`].
enum LayerOp {
    Conv(Conv),
    MaxPool,
    Residual(Block),
    /// A reduction block's conv branches; its max pool needs no weights.
    Reduction(Vec<Vec<Conv>>),
}

struct Layer {
    /// The stage's scope, its end-point name.
    name: String,
    tapped: bool,
    op: LayerOp,
}

pub struct InceptionResnetV1 {
    layers: Vec<Layer>,
    bottleneck: Conv,
    pub embedding_size: usize,
    /// The standardization recorded in the weights file, if any.
    pub standardization: Option<Standardization>,
    arena: Arena,
}

/// Named activations of one forward pass (`--dump-activations`); the names of facenet's TF taps.
pub type Taps = BTreeMap<String, GpuTensor>;

/// [`Taps`] downloaded: name -> (shape, values).
pub type TapValues = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// Loads a chain of convs under one scope.
fn chain(s: &Scope, cin: usize, layers: &[ConvLayer]) -> Result<Vec<Conv>, CheckpointError> {
    let mut c = cin;
    layers
        .iter()
        .map(|l| {
            let conv = s.conv(l.name, l.k, c, l.cout, l.stride, l.padding, BnRelu)?;
            c = l.cout;
            Ok(conv)
        })
        .collect()
}

fn load_branches(s: &Scope, cin: usize, branches: &[Branch]) -> Result<Vec<Vec<Conv>>, CheckpointError> {
    branches.iter().map(|b| chain(&s.sub(b.scope), cin, b.convs)).collect()
}

/// Loads the weights of `stage`, whose input has `cin` channels.
fn load_stage(root: &Scope, stage: &Stage, cin: usize) -> Result<LayerOp, CheckpointError> {
    Ok(match stage {
        Stage::Conv(l) => LayerOp::Conv(root.conv(l.name, l.k, cin, l.cout, l.stride, l.padding, BnRelu)?),
        Stage::MaxPool(_) => LayerOp::MaxPool,
        Stage::Residual { scope, branches, scale, relu } => {
            let s = root.sub(scope);
            let mixed = branches.iter().map(Branch::out_channels).sum();
            LayerOp::Residual(Block {
                branches: load_branches(&s, cin, branches)?,
                up: s.conv("Conv2d_1x1", (1, 1), mixed, cin, 1, Padding::Same, Bias)?,
                scale: *scale,
                relu: *relu,
            })
        }
        Stage::Reduction { scope, branches } => LayerOp::Reduction(load_branches(&root.sub(scope), cin, branches)?),
    })
}

impl InceptionResnetV1 {
    /// Builds the network from facenet's variables; the embedding size is read from `Bottleneck/weights`.
    pub fn load(ctx: &GpuContext, weights: &Weights) -> Result<Self, CheckpointError> {
        let root = Scope { ctx, weights, prefix: arch::ROOT.into() };
        let bottleneck_name = format!("{}/{}/weights", arch::ROOT, arch::BOTTLENECK);
        let embedding_size = match weights.get_any(&bottleneck_name)?.shape.as_slice() {
            [arch::FEATURES, e] => *e,
            other => {
                return Err(CheckpointError::WrongShape { name: bottleneck_name, got: other.to_vec(), want: vec![arch::FEATURES, 128] })
            }
        };
        let mut cin = 3;
        let mut layers = Vec::new();
        for stage in arch::stages() {
            let op = load_stage(&root, &stage, cin)?;
            cin = stage.out_channels(cin);
            layers.push(Layer { name: stage.name().to_string(), tapped: stage.tapped(), op });
        }
        let bottleneck = root.conv(arch::BOTTLENECK, (1, 1), cin, embedding_size, 1, Padding::Valid, ConvKind::BnLinear)?;
        Ok(Self { layers, bottleneck, embedding_size, standardization: weights.standardization, arena: Arena::default() })
    }

    /// Drops the activation buffers (the next pass makes them anew): after a pass that failed, a buffer
    /// sized for it may be too large to bind again.
    pub fn release_buffers(&mut self) {
        self.arena = Arena::default();
    }

    /// Records the forward pass of standardized images `x` `[n, h, w, 3]`; returns (embeddings, prelogits)
    /// and, when `taps` is given, fills it with facenet's named activations.
    fn forward(&mut self, enc: &mut Encoder, x: &GpuTensor, mut taps: Option<&mut Taps>) -> Result<(GpuTensor, GpuTensor), GpuError> {
        let ctx = enc.ctx();
        let arena = &mut self.arena;
        let mut tap = |name: &str, t: &GpuTensor| {
            if let Some(taps) = taps.as_deref_mut() {
                taps.insert(name.to_string(), t.clone());
            }
        };
        let mut h = x.clone();
        for layer in &self.layers {
            h = match &layer.op {
                LayerOp::Conv(conv) => conv.forward(enc, arena, &h, None, false)?,
                LayerOp::MaxPool => pool(enc, arena, &h, &layer.name)?,
                LayerOp::Residual(b) => block(enc, arena, b, &h)?,
                LayerOp::Reduction(branches) => reduction(enc, arena, branches, &h, &layer.name)?,
            };
            if layer.tapped {
                tap(&layer.name, &h);
            }
        }
        let n = h.shape[0];
        let pooled = arena.take(ctx, arch::AVG_POOL, &[n, h.shape[3]]);
        global_avg_pool(enc, &h, &pooled)?;
        let prelogits = self
            .bottleneck
            .forward(enc, arena, &pooled.reshaped(&[n, 1, 1, h.shape[3]])?, None, false)?
            .reshaped(&[n, self.embedding_size])?;
        tap(arch::TAPS[arch::TAPS.len() - 1], &prelogits);
        let emb = arena.take(ctx, "embeddings", &[n, self.embedding_size]);
        let inv = arena.take(ctx, "embeddings inv norm", &[n]);
        l2_normalize(enc, &prelogits, &emb, &inv, 1e-10)?;
        Ok((emb, prelogits))
    }

    /// Embeds raw RGB images `[n, size, size, 3]` (pixel values 0..255): standardization on the GPU, the
    /// network, L2 normalization. Returns `n x embedding_size` values, row-major.
    pub fn embed(
        &mut self,
        ctx: &GpuContext,
        images: &[f32],
        shape: [usize; 4],
        standardization: Standardization,
    ) -> Result<Vec<f32>, ModelError> {
        Ok(self.embed_with_taps(ctx, images, shape, standardization, false)?.0)
    }

    /// Like [`embed`](Self::embed); with `want_taps` also downloads facenet's named activations.
    pub fn embed_with_taps(
        &mut self,
        ctx: &GpuContext,
        images: &[f32],
        shape: [usize; 4],
        standardization: Standardization,
        want_taps: bool,
    ) -> Result<(Vec<f32>, TapValues), ModelError> {
        let mut enc = Encoder::new(ctx);
        let x = self.standardized_input(&mut enc, images, shape, standardization)?;
        let mut taps = Taps::new();
        let (emb, _) = self.forward(&mut enc, &x, want_taps.then_some(&mut taps))?;
        enc.submit()?;
        let mut out = BTreeMap::new();
        for (name, t) in taps {
            out.insert(name, (t.shape.clone(), t.download(ctx)?));
        }
        Ok((emb.download(ctx)?, out))
    }

    /// Checks the input shape, uploads raw RGB images and records their standardization; returns the
    /// network's input.
    fn standardized_input(
        &mut self,
        enc: &mut Encoder,
        images: &[f32],
        shape: [usize; 4],
        standardization: Standardization,
    ) -> Result<GpuTensor, ModelError> {
        if shape[3] != 3 || shape[1] != shape[2] || shape[1] < 75 {
            return Err(ModelError::Input { got: shape.to_vec(), size: 160 });
        }
        let ctx = enc.ctx();
        self.arena.reset();
        let raw = self.arena.take(ctx, "input images", &shape);
        raw.write(ctx, images)?;
        let x = self.arena.take(ctx, "standardized input", &shape);
        match standardization {
            Standardization::Prewhiten => {
                let stats = self.arena.take(ctx, "prewhiten stats", &[shape[0], 2]);
                prewhiten(enc, &raw, &x, &stats)?;
            }
            Standardization::Fixed => fixed_standardize(enc, &raw, &x)?,
        }
        Ok(x)
    }

    /// The prelogits (the Bottleneck's output before L2 normalization) of raw RGB images
    /// `[n, size, size, 3]`, `n x embedding_size` values: what a Logits layer or a classifier reads.
    pub fn prelogits(
        &mut self,
        ctx: &GpuContext,
        images: &[f32],
        shape: [usize; 4],
        standardization: Standardization,
    ) -> Result<Vec<f32>, ModelError> {
        let mut enc = Encoder::new(ctx);
        let x = self.standardized_input(&mut enc, images, shape, standardization)?;
        let (_, prelogits) = self.forward(&mut enc, &x, None)?;
        enc.submit()?;
        Ok(prelogits.download(ctx)?)
    }

    /// Bytes of activation buffers currently held (flat across batches of one size).
    pub fn activation_bytes(&self) -> usize {
        self.arena.bytes()
    }
}

fn pool(enc: &mut Encoder, arena: &mut Arena, x: &GpuTensor, name: &str) -> Result<GpuTensor, GpuError> {
    let (k, stride, padding) = arch::POOL;
    let p = crate::kernels::pool::PoolParams::new(&x.shape, k, stride, padding)?;
    let y = arena.take(enc.ctx(), name, &p.out_shape());
    max_pool(enc, x, &y, None, k, stride, padding)?;
    Ok(y)
}

/// Runs the branches on `x`, each branch's last conv writing its channels of one concatenated output in
/// place (no copies); `extra` more channels are left for the caller (a reduction's max pool). Returns the
/// output and the branches' channel count.
fn branches_into(
    enc: &mut Encoder,
    arena: &mut Arena,
    branches: &[Vec<Conv>],
    x: &GpuTensor,
    extra: usize,
    name: &str,
) -> Result<(GpuTensor, usize), GpuError> {
    let mut shape = [0; 4];
    for br in branches {
        let mut s = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
        for conv in br {
            s = conv.out_shape(&s)?;
        }
        shape = [s[0], s[1], s[2], shape[3] + s[3]];
    }
    let width = shape[3];
    shape[3] += extra;
    let y = arena.take(enc.ctx(), name, &shape);
    let mut off = 0;
    for br in branches {
        let (last, rest) = br.split_last().expect("a branch has a conv");
        let mut h = x.clone();
        for conv in rest {
            h = conv.forward(enc, arena, &h, None, false)?;
        }
        last.forward_into(enc, &h, None, false, &y, off)?;
        off += last.out_channels();
    }
    Ok((y, width))
}

fn block(enc: &mut Encoder, arena: &mut Arena, b: &Block, x: &GpuTensor) -> Result<GpuTensor, GpuError> {
    let (mixed, _) = branches_into(enc, arena, &b.branches, x, 0, &format!("{} concat", b.up.name))?;
    b.up.forward(enc, arena, &mixed, Some((x, b.scale)), b.relu)
}

fn reduction(enc: &mut Encoder, arena: &mut Arena, branches: &[Vec<Conv>], x: &GpuTensor, name: &str) -> Result<GpuTensor, GpuError> {
    let (y, off) = branches_into(enc, arena, branches, x, x.shape[3], name)?;
    let pooled = pool(enc, arena, x, &format!("{name}/MaxPool_1a_3x3"))?;
    copy_channels_into(enc, &pooled, &y, off)?;
    Ok(y)
}
