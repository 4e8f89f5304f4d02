//! Inception-ResNet-v1 inference on the CPU backend ([`crate::simd`]), built from
//! [`crate::arch::inception_resnet_v1`] like the GPU model: batch norms folded into the weights, bias,
//! residual and ReLU fused into each conv's stores, each block's branches writing their channels of the
//! concatenation in place.

use super::ModelError;
use crate::arch::inception_resnet_v1::{self as arch, Stage};
use crate::arch::{Branch, ConvLayer};
use crate::checkpoint::{CheckpointError, Standardization, Weights};
use crate::nn::{ConvKind, HostConv};
use crate::ops::conv2d::Padding;
use crate::simd::gemm::Epilogue;
use crate::simd::{self, Buffers, ConvWeights};

/// One conv with its batch norm folded: packed weights and the bias its stores add.
struct Conv {
    w: ConvWeights,
    bias: Vec<f32>,
}

impl Conv {
    #[allow(clippy::too_many_arguments)]
    fn load(
        weights: &Weights,
        full: &str,
        k: (usize, usize),
        cin: usize,
        cout: usize,
        stride: usize,
        padding: Padding,
        kind: ConvKind,
    ) -> Result<Self, CheckpointError> {
        let (w, bias) = HostConv::read(weights, full, k, cin, cout, kind)?.folded();
        Ok(Self { w: ConvWeights::new(&w, k, cin, cout, stride, padding), bias })
    }

    /// `relu?(residual + scale * (conv(x) + bias))` into channels `[off, off + cout)` of `y`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        x: &[f32],
        shape: [usize; 4],
        y: &mut [f32],
        y_c: usize,
        off: usize,
        residual: Option<(&[f32], f32)>,
        relu: bool,
    ) -> Result<[usize; 4], ModelError> {
        let epi = Epilogue { bias: Some(&self.bias), residual, relu, prelu: None };
        Ok(simd::conv2d_into(x, shape, &self.w, &epi, y, y_c, off).map_err(crate::gpu::GpuError::from)?)
    }

    /// The conv into a new tensor from `pool`.
    fn apply(&self, x: &[f32], shape: [usize; 4], relu: bool, pool: &Buffers) -> Result<(Vec<f32>, [usize; 4]), ModelError> {
        let out = self.w.out_shape(shape).map_err(crate::gpu::GpuError::from)?;
        let mut y = pool.take(out.iter().product());
        self.run(x, shape, &mut y, out[3], 0, None, relu)?;
        Ok((y, out))
    }
}

/// A block's branches: chains of convs.
type Branches = Vec<Vec<Conv>>;

enum Layer {
    Conv(Conv),
    MaxPool,
    Residual { branches: Branches, up: Conv, scale: f32, relu: bool },
    Reduction(Branches),
}

/// Inception-ResNet-v1 on the CPU.
pub struct InceptionResnetV1Cpu {
    layers: Vec<Layer>,
    bottleneck: Conv,
    pub embedding_size: usize,
    /// The standardization recorded in the weights file, if any.
    pub standardization: Option<Standardization>,
    pool: Buffers,
}

fn chain(weights: &Weights, scope: &str, cin: usize, convs: &[ConvLayer]) -> Result<Vec<Conv>, CheckpointError> {
    let mut c = cin;
    convs
        .iter()
        .map(|l| {
            let conv = Conv::load(weights, &format!("{scope}/{}", l.name), l.k, c, l.cout, l.stride, l.padding, ConvKind::BnRelu)?;
            c = l.cout;
            Ok(conv)
        })
        .collect()
}

fn branches(weights: &Weights, scope: &str, cin: usize, list: &[Branch]) -> Result<Branches, CheckpointError> {
    list.iter().map(|b| chain(weights, &format!("{scope}/{}", b.scope), cin, b.convs)).collect()
}

fn load_stage(weights: &Weights, stage: &Stage, cin: usize) -> Result<Layer, CheckpointError> {
    let root = arch::ROOT;
    Ok(match stage {
        Stage::Conv(l) => {
            Layer::Conv(Conv::load(weights, &format!("{root}/{}", l.name), l.k, cin, l.cout, l.stride, l.padding, ConvKind::BnRelu)?)
        }
        Stage::MaxPool(_) => Layer::MaxPool,
        Stage::Residual { scope, branches: list, scale, relu } => {
            let s = format!("{root}/{scope}");
            let mixed = list.iter().map(Branch::out_channels).sum();
            let up = Conv::load(weights, &format!("{s}/Conv2d_1x1"), (1, 1), mixed, cin, 1, Padding::Same, ConvKind::Bias)?;
            Layer::Residual { branches: branches(weights, &s, cin, list)?, up, scale: *scale, relu: *relu }
        }
        Stage::Reduction { scope, branches: list } => Layer::Reduction(branches(weights, &format!("{root}/{scope}"), cin, list)?),
    })
}

impl InceptionResnetV1Cpu {
    /// Builds the network from facenet's variables (checkpoint, frozen graph or safetensors).
    pub fn load(weights: &Weights) -> Result<Self, CheckpointError> {
        let name = format!("{}/{}/weights", arch::ROOT, arch::BOTTLENECK);
        let embedding_size = match weights.get_any(&name)?.shape.as_slice() {
            [arch::FEATURES, e] => *e,
            other => return Err(CheckpointError::WrongShape { name, got: other.to_vec(), want: vec![arch::FEATURES, 128] }),
        };
        let mut cin = 3;
        let mut layers = Vec::new();
        for stage in arch::stages() {
            layers.push(load_stage(weights, &stage, cin)?);
            cin = stage.out_channels(cin);
        }
        let full = format!("{}/{}", arch::ROOT, arch::BOTTLENECK);
        let bottleneck = Conv::load(weights, &full, (1, 1), cin, embedding_size, 1, Padding::Valid, ConvKind::BnLinear)?;
        Ok(Self { layers, bottleneck, embedding_size, standardization: weights.standardization, pool: Buffers::default() })
    }

    /// Embeddings of raw RGB images `[n, size, size, 3]` (values 0..255), `n x embedding_size` values.
    pub fn embed(&self, images: &[f32], shape: [usize; 4], standardization: Standardization) -> Result<Vec<f32>, ModelError> {
        let mut e = self.prelogits(images, shape, standardization)?;
        simd::l2_normalize(&mut e, self.embedding_size, 1e-10);
        Ok(e)
    }

    /// The Bottleneck's output before L2 normalization.
    pub fn prelogits(&self, images: &[f32], shape: [usize; 4], standardization: Standardization) -> Result<Vec<f32>, ModelError> {
        if shape[3] != 3 || shape[1] != shape[2] || shape[1] < 75 || images.len() != shape.iter().product::<usize>() {
            return Err(ModelError::Input { got: shape.to_vec(), size: 160 });
        }
        let op = |e: crate::ops::OpError| ModelError::Gpu(e.into());
        let mut h = match standardization {
            Standardization::Prewhiten => crate::cpu::image::prewhiten(images, &shape).map_err(op)?.0,
            Standardization::Fixed => crate::cpu::image::fixed_standardize(images),
        };
        let mut s = shape;
        for layer in &self.layers {
            let (y, ys) = self.layer(layer, &h, s)?;
            self.pool.give(std::mem::replace(&mut h, y));
            s = ys;
        }
        let pooled = simd::global_avg_pool(&h, s);
        self.pool.give(h);
        let (y, _) = self.bottleneck.apply(&pooled, [s[0], 1, 1, s[3]], false, &self.pool)?;
        Ok(y)
    }

    fn layer(&self, layer: &Layer, x: &[f32], s: [usize; 4]) -> Result<(Vec<f32>, [usize; 4]), ModelError> {
        let op = |e: crate::ops::OpError| ModelError::Gpu(e.into());
        match layer {
            Layer::Conv(c) => c.apply(x, s, true, &self.pool),
            Layer::MaxPool => {
                let (k, stride, _) = arch::POOL;
                let (oh, ow) = ((s[1] - k.0) / stride.0 + 1, (s[2] - k.1) / stride.1 + 1);
                let mut y = self.pool.take(s[0] * oh * ow * s[3]);
                let out = simd::max_pool_into(x, s, k.0, stride.0, Padding::Valid, &mut y, s[3], 0).map_err(op)?;
                Ok((y, out))
            }
            Layer::Residual { branches, up, scale, relu } => {
                let (mixed, ms) = run_branches(branches, x, s, 0, &self.pool)?;
                let mut y = self.pool.take(x.len());
                up.run(&mixed, ms, &mut y, s[3], 0, Some((x, *scale)), *relu)?;
                self.pool.give(mixed);
                Ok((y, s))
            }
            Layer::Reduction(branches) => {
                let (mut y, ys) = run_branches(branches, x, s, s[3], &self.pool)?;
                let (k, stride, _) = arch::POOL;
                let width = ys[3];
                simd::max_pool_into(x, s, k.0, stride.0, Padding::Valid, &mut y, width, width - s[3]).map_err(op)?;
                Ok((y, ys))
            }
        }
    }
}

/// Runs each branch on `x`, its last conv writing its channels of one concatenated output; `extra`
/// channels are left at the end for the caller (a reduction's max pool). Returns the output and its
/// shape (extra channels included).
fn run_branches(branches: &Branches, x: &[f32], s: [usize; 4], extra: usize, pool: &Buffers) -> Result<(Vec<f32>, [usize; 4]), ModelError> {
    let op = |e: crate::ops::OpError| ModelError::Gpu(e.into());
    let mut shape = [0; 4];
    for br in branches {
        let mut t = s;
        for c in br {
            t = c.w.out_shape(t).map_err(op)?;
        }
        shape = [t[0], t[1], t[2], shape[3] + t[3]];
    }
    shape[3] += extra;
    let mut y = pool.take(shape.iter().product());
    let mut off = 0;
    for br in branches {
        let (last, rest) = br.split_last().expect("a branch has a conv");
        // The branch's intermediate activations; the first conv reads x itself.
        let mut h: Option<(Vec<f32>, [usize; 4])> = None;
        for c in rest {
            let (input, is) = h.as_ref().map_or((x, s), |(v, hs)| (&v[..], *hs));
            let next = c.apply(input, is, true, pool)?;
            if let Some((old, _)) = h.replace(next) {
                pool.give(old);
            }
        }
        let (input, is) = h.as_ref().map_or((x, s), |(v, hs)| (&v[..], *hs));
        last.run(input, is, &mut y, shape[3], off, None, true)?;
        if let Some((old, _)) = h {
            pool.give(old);
        }
        off += last.w.cout;
    }
    Ok((y, shape))
}
