//! Inception-ResNet-v1 exactly as facenet's `models/inception_resnet_v1.py` (FACENET_REFERENCE.md
//! section 1), inference mode (moving statistics), loaded by TF variable name.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::checkpoint::{CheckpointError, Standardization, Weights};
use crate::gpu::Arena;
use crate::gpu::{Encoder, GpuContext, GpuError, GpuTensor};
use crate::kernels::concat::copy_channels_into;
use crate::kernels::conv2d::Padding;
use crate::kernels::image::{fixed_standardize, prewhiten};
use crate::kernels::l2_normalize::l2_normalize;
use crate::kernels::pool::{global_avg_pool, max_pool};
use crate::nn::{Conv, ConvKind, LayerSpec, Scope};

#[derive(Debug, Error)]
pub enum ModelError {
    #[error(transparent)]
    Weights(#[from] CheckpointError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error("input batch has shape {got:?}, expected [n, {size}, {size}, 3]")]
    Input { got: Vec<usize>, size: usize },
    /// Even the smallest pass over the input needs a buffer above the adapter's limit.
    #[error("{what} needs a {need}-byte buffer even in the smallest pass, above the adapter's limit of {limit} bytes")]
    TooLarge { what: String, need: u64, limit: u64 },
}

impl ModelError {
    /// The GPU device stopped working: a new context may succeed where retrying on this one cannot.
    pub fn is_device_lost(&self) -> bool {
        matches!(self, ModelError::Gpu(e) if e.is_device_lost())
    }
}

const SAME: Padding = Padding::Same;
const VALID: Padding = Padding::Valid;
use ConvKind::{Bias, BnRelu};

/// A residual Inception block: parallel branches, concat, 1x1 up-projection with bias,
/// `x + scale * up`, then ReLU unless `relu` is false (the final Block8).
struct Block {
    branches: Vec<Vec<Conv>>,
    up: Conv,
    scale: f32,
    relu: bool,
}

/// A reduction block (Mixed_6a, Mixed_7a): conv branches plus a 3x3/2 VALID max pool, concatenated.
struct Reduction {
    branches: Vec<Vec<Conv>>,
}

pub struct InceptionResnetV1 {
    stem_a: Vec<Conv>,
    stem_b: Vec<Conv>,
    block35: Vec<Block>,
    mixed_6a: Reduction,
    block17: Vec<Block>,
    mixed_7a: Reduction,
    block8: Vec<Block>,
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

/// Loads a chain of convs under one scope: (name, kernel, out channels, stride, padding).
fn chain(s: &Scope, cin: usize, layers: &[LayerSpec]) -> Result<Vec<Conv>, CheckpointError> {
    let mut c = cin;
    layers
        .iter()
        .map(|&(name, k, cout, stride, pad)| {
            let conv = s.conv(name, k, c, cout, stride, pad, BnRelu)?;
            c = cout;
            Ok(conv)
        })
        .collect()
}

impl InceptionResnetV1 {
    /// Builds the network from facenet's variables; the embedding size is read from `Bottleneck/weights`.
    pub fn load(ctx: &GpuContext, weights: &Weights) -> Result<Self, CheckpointError> {
        let root = Scope { ctx, weights, prefix: "InceptionResnetV1".into() };
        let bottleneck_w = weights.get_any("InceptionResnetV1/Bottleneck/weights")?;
        let embedding_size = match bottleneck_w.shape.as_slice() {
            [1792, e] => *e,
            other => {
                return Err(CheckpointError::WrongShape {
                    name: "InceptionResnetV1/Bottleneck/weights".into(),
                    got: other.to_vec(),
                    want: vec![1792, 128],
                })
            }
        };
        let stem_a = chain(
            &root,
            3,
            &[("Conv2d_1a_3x3", (3, 3), 32, 2, VALID), ("Conv2d_2a_3x3", (3, 3), 32, 1, VALID), ("Conv2d_2b_3x3", (3, 3), 64, 1, SAME)],
        )?;
        let stem_b = chain(
            &root,
            64,
            &[("Conv2d_3b_1x1", (1, 1), 80, 1, VALID), ("Conv2d_4a_3x3", (3, 3), 192, 1, VALID), ("Conv2d_4b_3x3", (3, 3), 256, 2, VALID)],
        )?;
        let block35 = (1..=5)
            .map(|i| {
                let s = root.sub(&format!("Repeat/block35_{i}"));
                Ok(Block {
                    branches: vec![
                        chain(&s.sub("Branch_0"), 256, &[("Conv2d_1x1", (1, 1), 32, 1, SAME)])?,
                        chain(&s.sub("Branch_1"), 256, &[("Conv2d_0a_1x1", (1, 1), 32, 1, SAME), ("Conv2d_0b_3x3", (3, 3), 32, 1, SAME)])?,
                        chain(
                            &s.sub("Branch_2"),
                            256,
                            &[
                                ("Conv2d_0a_1x1", (1, 1), 32, 1, SAME),
                                ("Conv2d_0b_3x3", (3, 3), 32, 1, SAME),
                                ("Conv2d_0c_3x3", (3, 3), 32, 1, SAME),
                            ],
                        )?,
                    ],
                    up: s.conv("Conv2d_1x1", (1, 1), 96, 256, 1, SAME, Bias)?,
                    scale: 0.17,
                    relu: true,
                })
            })
            .collect::<Result<_, CheckpointError>>()?;
        let s = root.sub("Mixed_6a");
        let mixed_6a = Reduction {
            branches: vec![
                chain(&s.sub("Branch_0"), 256, &[("Conv2d_1a_3x3", (3, 3), 384, 2, VALID)])?,
                chain(
                    &s.sub("Branch_1"),
                    256,
                    &[
                        ("Conv2d_0a_1x1", (1, 1), 192, 1, SAME),
                        ("Conv2d_0b_3x3", (3, 3), 192, 1, SAME),
                        ("Conv2d_1a_3x3", (3, 3), 256, 2, VALID),
                    ],
                )?,
            ],
        };
        let block17 = (1..=10)
            .map(|i| {
                let s = root.sub(&format!("Repeat_1/block17_{i}"));
                Ok(Block {
                    branches: vec![
                        chain(&s.sub("Branch_0"), 896, &[("Conv2d_1x1", (1, 1), 128, 1, SAME)])?,
                        chain(
                            &s.sub("Branch_1"),
                            896,
                            &[
                                ("Conv2d_0a_1x1", (1, 1), 128, 1, SAME),
                                ("Conv2d_0b_1x7", (1, 7), 128, 1, SAME),
                                ("Conv2d_0c_7x1", (7, 1), 128, 1, SAME),
                            ],
                        )?,
                    ],
                    up: s.conv("Conv2d_1x1", (1, 1), 256, 896, 1, SAME, Bias)?,
                    scale: 0.10,
                    relu: true,
                })
            })
            .collect::<Result<_, CheckpointError>>()?;
        let s = root.sub("Mixed_7a");
        let mixed_7a = Reduction {
            branches: vec![
                chain(&s.sub("Branch_0"), 896, &[("Conv2d_0a_1x1", (1, 1), 256, 1, SAME), ("Conv2d_1a_3x3", (3, 3), 384, 2, VALID)])?,
                chain(&s.sub("Branch_1"), 896, &[("Conv2d_0a_1x1", (1, 1), 256, 1, SAME), ("Conv2d_1a_3x3", (3, 3), 256, 2, VALID)])?,
                chain(
                    &s.sub("Branch_2"),
                    896,
                    &[
                        ("Conv2d_0a_1x1", (1, 1), 256, 1, SAME),
                        ("Conv2d_0b_3x3", (3, 3), 256, 1, SAME),
                        ("Conv2d_1a_3x3", (3, 3), 256, 2, VALID),
                    ],
                )?,
            ],
        };
        let block8_at = |s: Scope, scale: f32, relu: bool| -> Result<Block, CheckpointError> {
            Ok(Block {
                branches: vec![
                    chain(&s.sub("Branch_0"), 1792, &[("Conv2d_1x1", (1, 1), 192, 1, SAME)])?,
                    chain(
                        &s.sub("Branch_1"),
                        1792,
                        &[
                            ("Conv2d_0a_1x1", (1, 1), 192, 1, SAME),
                            ("Conv2d_0b_1x3", (1, 3), 192, 1, SAME),
                            ("Conv2d_0c_3x1", (3, 1), 192, 1, SAME),
                        ],
                    )?,
                ],
                up: s.conv("Conv2d_1x1", (1, 1), 384, 1792, 1, SAME, Bias)?,
                scale,
                relu,
            })
        };
        let mut block8 =
            (1..=5).map(|i| block8_at(root.sub(&format!("Repeat_2/block8_{i}")), 0.20, true)).collect::<Result<Vec<_>, _>>()?;
        block8.push(block8_at(root.sub("Block8"), 1.0, false)?);
        let bottleneck = root.conv("Bottleneck", (1, 1), 1792, embedding_size, 1, VALID, ConvKind::BnLinear)?;
        Ok(Self {
            stem_a,
            stem_b,
            block35,
            mixed_6a,
            block17,
            mixed_7a,
            block8,
            bottleneck,
            embedding_size,
            standardization: weights.standardization,
            arena: Arena::default(),
        })
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
        for (i, conv) in self.stem_a.iter().enumerate() {
            h = conv.forward(enc, arena, &h, None, false)?;
            if i == 0 {
                tap("Conv2d_1a_3x3", &h);
            }
        }
        h = pool(enc, arena, &h, "MaxPool_3a_3x3")?;
        for conv in &self.stem_b {
            h = conv.forward(enc, arena, &h, None, false)?;
        }
        tap("Conv2d_4b_3x3", &h);
        for (i, b) in self.block35.iter().enumerate() {
            h = block(enc, arena, b, &h)?;
            if i == 4 {
                tap("Repeat/block35_5", &h);
            }
        }
        h = reduction(enc, arena, &self.mixed_6a, &h, "Mixed_6a")?;
        tap("Mixed_6a", &h);
        for b in &self.block17 {
            h = block(enc, arena, b, &h)?;
        }
        h = reduction(enc, arena, &self.mixed_7a, &h, "Mixed_7a")?;
        tap("Mixed_7a", &h);
        for b in &self.block8 {
            h = block(enc, arena, b, &h)?;
        }
        tap("Block8", &h);
        let n = h.shape[0];
        let pooled = arena.take(ctx, "Logits/AvgPool_1a_8x8", &[n, h.shape[3]]);
        global_avg_pool(enc, &h, &pooled)?;
        let prelogits = self
            .bottleneck
            .forward(enc, arena, &pooled.reshaped(&[n, 1, 1, h.shape[3]])?, None, false)?
            .reshaped(&[n, self.embedding_size])?;
        tap("prelogits", &prelogits);
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
    let p = crate::kernels::pool::PoolParams::new(&x.shape, (3, 3), (2, 2), VALID)?;
    let y = arena.take(enc.ctx(), name, &p.out_shape());
    max_pool(enc, x, &y, None, (3, 3), (2, 2), VALID)?;
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

fn reduction(enc: &mut Encoder, arena: &mut Arena, r: &Reduction, x: &GpuTensor, name: &str) -> Result<GpuTensor, GpuError> {
    let (y, off) = branches_into(enc, arena, &r.branches, x, x.shape[3], name)?;
    let pooled = pool(enc, arena, x, &format!("{name}/MaxPool_1a_3x3"))?;
    copy_channels_into(enc, &pooled, &y, off)?;
    Ok(y)
}
