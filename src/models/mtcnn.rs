//! MTCNN face detection as facenet's `align/detect_face.py` (docs/FACENET.md, "MTCNN"): PNet over
//! an area-resized image pyramid, then RNet and ONet over the candidate crops, with facenet's box
//! arithmetic ([`boxes`]) between the stages.
//!
//! The weights are `weights/mtcnn.safetensors` (converted once by `weights/convert_mtcnn.py`, which folds
//! facenet's H/W transposition into them), embedded in the binary. Images of the same size are detected
//! together: one pyramid and PNet pass per scale for the whole batch, and the crops of all images share the
//! RNet and ONet batches, which are cut into chunks so memory stays bounded whatever the number of
//! candidates.
//!
//! On the GPU every layer's channels are padded to a multiple of 4 ([`LANES`]): the image is uploaded as
//! packed RGB8 and the pyramid and crops add a zero channel (a pixel is one vec4), and PNet's 10 channels
//! are 12. conv2d then reads whole vec4s, which on llvmpipe made the first convs (3 input channels) several
//! times faster. The padded input channels have zero weights, and the padded outputs zero weights,
//! biases and alphas, so the results are unchanged.

pub mod boxes;

use crate::simd;
use std::path::Path;
use std::time::{Duration, Instant};

use image::RgbImage;

use self::boxes::{bbreg, face_prob, fix, generate, nms, pad, regress_exclusive, rerec, scales, BBox, Candidate, Overlap};
use super::ModelError;
use crate::checkpoint::{safetensors, CheckpointError, Weights};
use crate::cpu;
use crate::gpu::Arena;
use crate::gpu::{Encoder, GpuContext, GpuError, GpuTensor, KernelShape};
use crate::kernels::conv2d::{conv2d, conv2d_head8, conv2d_max_pool2, Activation, Conv2dDispatch, Conv2dParams, Epilogue, Padding};
use crate::kernels::image::{crop_resize_area_rgb8, pack_rgb8, resize_area_rgb8_rows, PackedImages, Transform};
use crate::kernels::pool::{max_pool, PoolParams};

/// facegpu's converted MTCNN weights (MIT, from facenet's det1-3.npy).
pub const EMBEDDED_WEIGHTS: &[u8] = include_bytes!("../../weights/mtcnn.safetensors");

/// MTCNN's input scaling `(x - 127.5) * 0.0078125`.
const NORMALIZE: Transform = Transform { round: false, add: -127.5, mul: 0.0078125 };
/// The pyramid: facenet resizes the uint8 image with OpenCV, which rounds, then normalizes.
const NORMALIZE_ROUNDED: Transform = Transform { round: true, ..NORMALIZE };

/// Detection settings; the defaults are facenet's.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectOptions {
    /// Smallest face searched for, in pixels.
    pub min_size: f64,
    /// Score thresholds of PNet, RNet and ONet.
    pub thresholds: [f64; 3],
    /// Pyramid scale step.
    pub factor: f64,
}

impl Default for DetectOptions {
    fn default() -> Self {
        Self { min_size: 20.0, thresholds: [0.6, 0.7, 0.7], factor: 0.709 }
    }
}

/// One detected face: box `[x1, y1, x2, y2]`, ONet's score, and five landmarks (left eye, right eye, nose,
/// left and right mouth corners) as `[x, y]`, all in pixels of the input image.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Face {
    #[serde(rename = "box")]
    pub bbox: BBox,
    pub score: f64,
    pub landmarks: [[f64; 2]; 5],
}

/// Where detection time went, summed over calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    pub images: usize,
    /// Upload, pyramid and PNet, with the readback of its maps.
    pub pnet: Duration,
    /// Crops and RNet, with readback.
    pub rnet: Duration,
    /// Crops and ONet, with readback.
    pub onet: Duration,
    /// Box generation, NMS, regression and the rest of the CPU work.
    pub cpu: Duration,
    /// PNet passes: one per pyramid level, more where a level runs in bands.
    pub pnet_passes: usize,
}

#[derive(Debug, Clone, Copy)]
enum Spec {
    /// A 3x3-or-other VALID conv with bias, then PReLU with the named alpha.
    Conv(&'static str, &'static str),
    /// Max pool `k x k`, stride `s`.
    Pool(usize, usize, Padding),
    /// The output heads: 1x1 convs with bias, concatenated along channels into one output.
    Heads(&'static [&'static str]),
}

use Padding::{Same, Valid};
use Spec::{Conv, Heads, Pool};

const PNET: &[Spec] =
    &[Conv("conv1", "PReLU1"), Pool(2, 2, Same), Conv("conv2", "PReLU2"), Conv("conv3", "PReLU3"), Heads(&["conv4-1", "conv4-2"])];
const RNET: &[Spec] = &[
    Conv("conv1", "prelu1"),
    Pool(3, 2, Same),
    Conv("conv2", "prelu2"),
    Pool(3, 2, Valid),
    Conv("conv3", "prelu3"),
    Conv("conv4", "prelu4"),
    Heads(&["conv5-1", "conv5-2"]),
];
const ONET: &[Spec] = &[
    Conv("conv1", "prelu1"),
    Pool(3, 2, Same),
    Conv("conv2", "prelu2"),
    Pool(3, 2, Valid),
    Conv("conv3", "prelu3"),
    Pool(2, 2, Same),
    Conv("conv4", "prelu4"),
    Conv("conv5", "prelu5"),
    Heads(&["conv6-1", "conv6-2", "conv6-3"]),
];

/// Channels of the GPU tensors are padded to a multiple of this (see the module doc).
pub const LANES: usize = 4;

/// A conv layer's weights, kept on the GPU (channels padded to [`LANES`]) and, as read, on the CPU for the
/// twin forward.
struct ConvWeights {
    w_shape: Vec<usize>,
    /// `w_shape` with both channel counts padded: the shape of `gw`.
    gw_shape: Vec<usize>,
    w: Vec<f32>,
    b: Vec<f32>,
    alpha: Option<Vec<f32>>,
    gw: GpuTensor,
    gb: GpuTensor,
    galpha: Option<GpuTensor>,
    /// The weights packed for the CPU backend (stride 1, VALID, as every MTCNN conv).
    packed: simd::ConvWeights,
}

enum Layer {
    Conv(Box<ConvWeights>),
    Pool(usize, usize, Padding),
}

/// PNet, RNet or ONet: a chain of VALID convs with PReLU and max pools, ending in concatenated heads.
pub struct Net {
    pub name: &'static str,
    layers: Vec<Layer>,
    /// Channels of the output: 2 face logits, 4 box offsets, then (ONet) 10 landmark coordinates.
    pub outputs: usize,
    /// Channels of the GPU output, `outputs` padded to [`LANES`] (the rest are 0).
    pub padded_outputs: usize,
}

impl Net {
    fn load(ctx: &GpuContext, weights: &Weights, name: &'static str, spec: &[Spec]) -> Result<Self, CheckpointError> {
        let mut layers = Vec::new();
        let mut channels = 3;
        let mut padded = LANES;
        for s in spec {
            match *s {
                Pool(k, stride, padding) => layers.push(Layer::Pool(k, stride, padding)),
                Conv(conv, act) => {
                    let (w_shape, w, b) = conv_weights(weights, &format!("{name}/{conv}"), channels, None)?;
                    let cout = w_shape[3];
                    let alpha = weights.get(&format!("{name}/{act}/alpha"), &[cout])?.data.clone();
                    layers.push(Layer::Conv(Box::new(ConvWeights::upload(
                        ctx,
                        weights,
                        format!("{name}/{conv}"),
                        w_shape,
                        padded,
                        w,
                        b,
                        Some(alpha),
                    )?)));
                    channels = cout;
                    padded = cout.next_multiple_of(LANES);
                }
                Heads(heads) => {
                    let parts = heads
                        .iter()
                        .map(|h| conv_weights(weights, &format!("{name}/{h}"), channels, Some((1, 1))))
                        .collect::<Result<Vec<_>, _>>()?;
                    let cout: usize = parts.iter().map(|(s, _, _)| s[3]).sum();
                    let mut w = Vec::with_capacity(channels * cout);
                    for ci in 0..channels {
                        for (s, pw, _) in &parts {
                            w.extend_from_slice(&pw[ci * s[3]..(ci + 1) * s[3]]);
                        }
                    }
                    let b = parts.iter().flat_map(|(_, _, pb)| pb.iter().copied()).collect();
                    layers.push(Layer::Conv(Box::new(ConvWeights::upload(
                        ctx,
                        weights,
                        format!("{name}/{}", heads.join("+")),
                        vec![1, 1, channels, cout],
                        padded,
                        w,
                        b,
                        None,
                    )?)));
                    channels = cout;
                    padded = cout.next_multiple_of(LANES);
                }
            }
        }
        Ok(Self { name, layers, outputs: channels, padded_outputs: padded })
    }

    /// Records the forward pass of `x` (`[n, h, w, LANES]`: normalized RGB and a padding channel) and returns
    /// the output `[n, oh, ow, padded_outputs]`, whose first `outputs` channels are the net's.
    pub fn forward(&self, enc: &mut Encoder, arena: &mut Arena, x: &GpuTensor) -> Result<GpuTensor, GpuError> {
        let ctx = enc.ctx();
        let mut x = x.clone();
        let mut layers = self.layers.iter().peekable();
        while let Some(layer) = layers.next() {
            x = match layer {
                Layer::Conv(c) => {
                    let conv = Conv2dParams::new(&x.shape, &c.gw_shape, (1, 1), Valid)?;
                    let shape = conv.out_shape();
                    let act = c.galpha.as_ref().map_or(Activation::None, Activation::Prelu);
                    let epi = Epilogue { bias: Some(&c.gb), act, ..Default::default() };
                    // The fused forms are register-tiled for CPU drivers; the GPU shape runs the tiled conv
                    // and then the next layer on its own.
                    let fuse = ctx.kernel_shape() == KernelShape::CpuDriver;
                    match layers.peek() {
                        Some(Layer::Pool(2, 2, Same)) if fuse => {
                            // A 2x2 stride-2 pool right after: pooled in the conv's registers.
                            layers.next();
                            let y = arena.take(ctx, self.name, &[shape[0], shape[1].div_ceil(2), shape[2].div_ceil(2), shape[3]]);
                            conv2d_max_pool2(enc, &x, &c.gw, &epi, &y, Valid)?;
                            y
                        }
                        Some(Layer::Conv(h))
                            if h.gw_shape[..2] == [1, 1]
                                && h.gw_shape[3] == 8
                                && h.galpha.is_none()
                                && Conv2dDispatch::head8_fits(&conv)
                                && fuse =>
                        {
                            // PNet's 1x1 heads (8 padded outputs) right after: applied in the conv's epilogue.
                            layers.next();
                            let y = arena.take(ctx, self.name, &[shape[0], shape[1], shape[2], 8]);
                            conv2d_head8(enc, &x, &c.gw, &epi, &h.gw, &h.gb, &y, Valid)?;
                            y
                        }
                        _ => {
                            let y = arena.take(ctx, self.name, &shape);
                            conv2d(enc, &x, &c.gw, &epi, &y, (1, 1), Valid)?;
                            y
                        }
                    }
                }
                &Layer::Pool(k, s, padding) => {
                    let shape = PoolParams::new(&x.shape, (k, k), (s, s), padding)?.out_shape();
                    let y = arena.take(ctx, self.name, &shape);
                    max_pool(enc, &x, &y, None, (k, k), (s, s), padding)?;
                    y
                }
            };
        }
        Ok(x)
    }

    /// Rows of the output of a pass over `rows` input rows (the same rule for columns).
    pub fn output_rows(&self, rows: usize) -> usize {
        self.layers.iter().fold(rows, |r, layer| match *layer {
            Layer::Conv(ref c) => (r + 1).saturating_sub(c.gw_shape[0]),
            Layer::Pool(k, s, padding) => pool_out(k, s, padding, r, r).0,
        })
    }

    /// Input rows that give `out_rows` output rows with no padding: each output row's window whole.
    pub fn input_rows(&self, out_rows: usize) -> usize {
        self.layers.iter().rev().fold(out_rows, |r, layer| match *layer {
            Layer::Conv(ref c) => r + c.gw_shape[0] - 1,
            Layer::Pool(k, s, _) => (r.max(1) - 1) * s + k,
        })
    }

    /// Input rows between the windows of two neighbouring output rows: the product of the strides.
    pub fn row_stride(&self) -> usize {
        self.layers.iter().map(|l| if let Layer::Pool(_, s, _) = *l { s } else { 1 }).product()
    }

    /// Bytes of the largest tensor a pass over `n` inputs of `rows x cols` ([`LANES`] channels) holds:
    /// the input or a layer's output (fused layers counted as if stored, an upper bound).
    pub fn largest_tensor(&self, n: usize, rows: usize, cols: usize) -> u64 {
        let (mut h, mut w, mut c) = (rows, cols, LANES);
        let mut most = (n * h * w * c * 4) as u64;
        for layer in &self.layers {
            (h, w, c) = match *layer {
                Layer::Conv(ref cw) => ((h + 1).saturating_sub(cw.gw_shape[0]), (w + 1).saturating_sub(cw.gw_shape[1]), cw.gw_shape[3]),
                Layer::Pool(k, s, padding) => {
                    let (h, w) = pool_out(k, s, padding, h, w);
                    (h, w, c)
                }
            };
            most = most.max((n * h * w * c * 4) as u64);
        }
        most
    }

    /// The net on the CPU backend: SIMD convs with bias and PReLU fused, and max pools; unpadded
    /// NHWC in and out, like [`Net::forward_cpu`].
    /// Activations come from `buffers` and go back to it; so does the output, once the caller is done.
    pub fn forward_simd(&self, x: &[f32], shape: [usize; 4], buffers: &simd::Buffers) -> Result<(Vec<f32>, [usize; 4]), GpuError> {
        let mut h: Option<(Vec<f32>, [usize; 4])> = None;
        for layer in &self.layers {
            let (input, s) = h.as_ref().map_or((x, shape), |(v, s)| (&v[..], *s));
            let next = match layer {
                Layer::Conv(c) => {
                    let out = c.packed.out_shape(s)?;
                    let mut y = buffers.take_overwritten(out.iter().product());
                    let epi = simd::gemm::Epilogue { bias: Some(&c.b), residual: None, relu: false, prelu: c.alpha.as_deref() };
                    simd::conv2d_into(input, s, &c.packed, &epi, &mut y, out[3], 0)?;
                    (y, out)
                }
                &Layer::Pool(k, st, padding) => {
                    let (oh, ow) = pool_out(k, st, padding, s[1], s[2]);
                    let mut y = buffers.take_overwritten(s[0] * oh * ow * s[3]);
                    let out = simd::max_pool_into(input, s, k, st, padding, &mut y, s[3], 0)?;
                    (y, out)
                }
            };
            if let Some((old, _)) = h.replace(next) {
                buffers.give(old);
            }
        }
        Ok(h.unwrap_or_else(|| (x.to_vec(), shape)))
    }

    /// The same forward pass with the CPU twins; returns the output and its shape.
    pub fn forward_cpu(&self, x: &[f32], shape: &[usize]) -> Result<(Vec<f32>, Vec<usize>), GpuError> {
        let (mut x, mut shape) = (x.to_vec(), shape.to_vec());
        for layer in &self.layers {
            (x, shape) = match layer {
                Layer::Conv(c) => {
                    let act = c.alpha.as_deref().map_or(Activation::None, Activation::Prelu);
                    let epi = Epilogue { bias: Some(c.b.as_slice()), act, ..Default::default() };
                    let (y, p) = cpu::conv2d::conv2d(&x, &shape, &c.w, &c.w_shape, &epi, (1, 1), Valid)?;
                    (y, p.out_shape().to_vec())
                }
                &Layer::Pool(k, s, padding) => {
                    let (y, _, p) = cpu::pool::max_pool(&x, &shape, (k, k), (s, s), padding)?;
                    (y, p.out_shape().to_vec())
                }
            };
        }
        Ok((x, shape))
    }
}

/// Rows and columns after a `k x k` stride-`s` max pool of `h x w` (0 where the input is too small).
fn pool_out(k: usize, s: usize, padding: Padding, h: usize, w: usize) -> (usize, usize) {
    PoolParams::new(&[1, h, w, 1], (k, k), (s, s), padding).map_or((0, 0), |p| {
        let o = p.out_shape();
        (o[1], o[2])
    })
}

/// A conv's weight shape, weights and biases as read.
type ConvArrays = (Vec<usize>, Vec<f32>, Vec<f32>);

/// Reads `<scope>/weights` (HWIO with `cin` inputs, and `k` as its kernel size when given) and `<scope>/biases`.
fn conv_weights(weights: &Weights, scope: &str, cin: usize, k: Option<(usize, usize)>) -> Result<ConvArrays, CheckpointError> {
    let name = format!("{scope}/weights");
    let w = weights.get_any(&name)?;
    let fits = w.shape.len() == 4 && w.shape[2] == cin && k.is_none_or(|(kh, kw)| w.shape[0] == kh && w.shape[1] == kw);
    if !fits {
        let (kh, kw) = k.unwrap_or((w.shape.first().copied().unwrap_or(0), w.shape.get(1).copied().unwrap_or(0)));
        return Err(CheckpointError::WrongShape {
            name,
            got: w.shape.clone(),
            want: vec![kh, kw, cin, w.shape.last().copied().unwrap_or(0)],
        });
    }
    let b = weights.get(&format!("{scope}/biases"), &[w.shape[3]])?;
    Ok((w.shape.clone(), w.data.clone(), b.data.clone()))
}

impl ConvWeights {
    /// Uploads HWIO `w` as `[kh, kw, cin_padded, cout padded to LANES]`, zeros in the padding, and the
    /// bias and PReLU alpha padded with zeros.
    #[allow(clippy::too_many_arguments)]
    fn upload(
        ctx: &GpuContext,
        weights: &Weights,
        name: String,
        w_shape: Vec<usize>,
        cin_padded: usize,
        w: Vec<f32>,
        b: Vec<f32>,
        alpha: Option<Vec<f32>>,
    ) -> Result<Self, CheckpointError> {
        let bad = |e: GpuError| CheckpointError::BadTensor { path: weights.source.clone(), tensor: name.clone(), detail: e.to_string() };
        let (taps, cin, cout) = (w_shape[0] * w_shape[1], w_shape[2], w_shape[3]);
        let cout_padded = cout.next_multiple_of(LANES);
        let gw_shape = vec![w_shape[0], w_shape[1], cin_padded, cout_padded];
        let mut pw = vec![0.0; taps * cin_padded * cout_padded];
        for t in 0..taps {
            for ci in 0..cin {
                let (from, to) = ((t * cin + ci) * cout, (t * cin_padded + ci) * cout_padded);
                pw[to..to + cout].copy_from_slice(&w[from..from + cout]);
            }
        }
        let padded = |v: &[f32]| v.iter().copied().chain(std::iter::repeat(0.0)).take(cout_padded).collect::<Vec<f32>>();
        let gw = GpuTensor::upload(ctx, &name, &gw_shape, &pw).map_err(bad)?;
        let gb = GpuTensor::upload(ctx, &name, &[cout_padded], &padded(&b)).map_err(bad)?;
        let galpha = alpha.as_ref().map(|a| GpuTensor::upload(ctx, &name, &[cout_padded], &padded(a))).transpose().map_err(bad)?;
        let packed = simd::ConvWeights::new(&w, (w_shape[0], w_shape[1]), cin, cout, 1, Valid);
        Ok(Self { w_shape, gw_shape, w, b, alpha, gw, gb, galpha, packed })
    }
}

/// The three networks with their working buffers.
pub struct Mtcnn {
    pub pnet: Net,
    pub rnet: Net,
    pub onet: Net,
    /// Most crops per RNet/ONet pass; bounds memory whatever the number of candidates.
    pub chunk: usize,
    /// Most pixel values (n*h*w*3) of same-size images detected together.
    pub max_batch_values: usize,
    /// Largest buffer a pass may bind, in bytes: the adapter's storage-binding and buffer-size limits.
    /// Pyramid levels whose PNet pass would need more are cut into bands of rows, and RNet/ONet chunks
    /// shrink, so photos of any size run on any adapter; tests lower it to exercise those paths.
    pub binding_limit: u64,
    pub times: StageTimes,
    /// The weights file loaded (`None`: the embedded weights), to load them again on a new device.
    pub source: Option<std::path::PathBuf>,
    /// Where the nets run: the wgpu kernels, or the CPU backend (`simd`'s area resizes, convs and pools).
    pub device: super::Device,
    input: PackedImages,
    /// The same images' RGB bytes for the CPU backend, `[n, h, w, 3]`.
    host_input: (Vec<u8>, [usize; 4]),
    /// The CPU backend's activations, kept between passes.
    buffers: simd::Buffers,
    arena: Arena,
}

impl Mtcnn {
    pub fn load(ctx: &GpuContext, weights: &Weights) -> Result<Self, CheckpointError> {
        Ok(Self {
            pnet: Net::load(ctx, weights, "pnet", PNET)?,
            rnet: Net::load(ctx, weights, "rnet", RNET)?,
            onet: Net::load(ctx, weights, "onet", ONET)?,
            chunk: 256,
            max_batch_values: 32 << 20,
            binding_limit: ctx.binding_limit(),
            times: StageTimes::default(),
            source: None,
            device: super::Device::choose(None, ctx).0,
            input: PackedImages::default(),
            host_input: (Vec::new(), [0; 4]),
            buffers: simd::Buffers::default(),
            arena: Arena::default(),
        })
    }

    /// Loads `path` (a safetensors file in facegpu's MTCNN layout), or the embedded weights.
    pub fn load_from(ctx: &GpuContext, path: Option<&Path>) -> Result<Self, CheckpointError> {
        let weights = match path {
            Some(p) => Weights::load(p)?,
            None => safetensors::load_bytes(EMBEDDED_WEIGHTS, Path::new("<embedded weights/mtcnn.safetensors>"))?,
        };
        Ok(Self { source: path.map(Path::to_path_buf), ..Self::load(ctx, &weights)? })
    }

    /// The same detector on another context (a new device after the old one was lost), with the same
    /// settings.
    pub fn reload(&self, ctx: &GpuContext) -> Result<Self, CheckpointError> {
        let fresh = Self::load_from(ctx, self.source.as_deref())?;
        Ok(Self { chunk: self.chunk, max_batch_values: self.max_batch_values, times: self.times, device: self.device, ..fresh })
    }

    /// Bytes of GPU working memory held (input and activation buffers).
    pub fn activation_bytes(&self) -> usize {
        self.input.bytes() + self.arena.bytes()
    }

    /// Detects faces in each image. Images of the same size are batched through the pyramid and PNet; all
    /// candidates share the RNet and ONet batches. Returns the faces of each image, in facenet's order.
    pub fn detect(&mut self, ctx: &GpuContext, images: &[&RgbImage], opts: &DetectOptions) -> Result<Vec<Vec<Face>>, ModelError> {
        let mut out = vec![Vec::new(); images.len()];
        let mut order: Vec<usize> = (0..images.len()).filter(|&i| images[i].width() > 0 && images[i].height() > 0).collect();
        order.sort_by_key(|&i| (images[i].height(), images[i].width()));
        let mut start = 0;
        while start < order.len() {
            let size = images[order[start]].dimensions();
            let per_image = (size.0 * size.1 * 3) as usize;
            let most = (self.max_batch_values / per_image).max(1);
            let mut end = start;
            while end < order.len() && end - start < most && images[order[end]].dimensions() == size {
                end += 1;
            }
            let group: Vec<&RgbImage> = order[start..end].iter().map(|&i| images[i]).collect();
            for (faces, &i) in self.detect_same_size(ctx, &group, opts)?.into_iter().zip(&order[start..end]) {
                out[i] = faces;
            }
            start = end;
        }
        self.times.images += images.len();
        Ok(out)
    }

    fn detect_same_size(&mut self, ctx: &GpuContext, images: &[&RgbImage], opts: &DetectOptions) -> Result<Vec<Vec<Face>>, ModelError> {
        let n = images.len();
        let size = (images[0].width() as usize, images[0].height() as usize);
        // Packed RGB8, a pixel per u32; the resizes add a padding channel (see the module doc).
        if self.device == super::Device::Cpu {
            let mut rgb = std::mem::take(&mut self.host_input.0);
            rgb.clear();
            images.iter().for_each(|im| rgb.extend_from_slice(im.as_raw()));
            self.host_input = (rgb, [n, size.1, size.0, 3]);
        } else {
            let pixels: Vec<u32> = images.iter().flat_map(|im| im.pixels().map(|px| pack_rgb8(px.0))).collect();
            self.input.upload(ctx, [n, size.1, size.0], &pixels)?;
        }
        let stage1 = self.stage1(ctx, n, size, opts)?;
        let stage2 = self.stage2(ctx, &stage1, size, opts)?;
        self.stage3(ctx, &stage2, size, opts)
    }

    /// PNet on every scale of the uploaded images, NMS 0.5 per scale, then NMS 0.7 over all scales;
    /// the survivors regressed, squared and truncated.
    fn stage1(&mut self, ctx: &GpuContext, n: usize, (w, h): (usize, usize), opts: &DetectOptions) -> Result<Vec<Vec<BBox>>, ModelError> {
        let t = Instant::now();
        let mut cands: Vec<Vec<Candidate>> = vec![Vec::new(); n];
        let mut cpu_time = Duration::ZERO;
        for scale in scales(h, w, opts.min_size, opts.factor) {
            let (hs, ws) = ((h as f64 * scale).ceil() as usize, (w as f64 * scale).ceil() as usize);
            let (data, [oh, ow, k]) = self.pnet_maps(ctx, n, (hs, ws))?;
            let c0 = Instant::now();
            for (i, map) in data.chunks_exact(oh * ow * k).enumerate() {
                let prob: Vec<f32> = map.chunks_exact(k).map(|v| face_prob(v[0], v[1]) as f32).collect();
                let found = generate(&prob, oh, ow, |y, x, r| map[(y * ow + x) * k + 2 + r], scale, opts.thresholds[0]);
                let (bbs, scores) = split(&found);
                cands[i].extend(nms(&bbs, &scores, 0.5, Overlap::Union).into_iter().map(|j| found[j]));
            }
            cpu_time += c0.elapsed();
        }
        let c0 = Instant::now();
        let regressed = |c: &Vec<Candidate>| -> Vec<BBox> {
            let (bbs, scores) = split(c);
            nms(&bbs, &scores, 0.7, Overlap::Union).into_iter().map(|j| fix(&rerec(&regress_exclusive(&c[j].bbox, &c[j].reg)))).collect()
        };
        let stage1 = cands.iter().map(regressed).collect();
        cpu_time += c0.elapsed();
        self.times.pnet += t.elapsed() - cpu_time;
        self.times.cpu += cpu_time;
        Ok(stage1)
    }

    /// RNet on 24x24 crops of the stage-1 boxes: keep scores above the second threshold, NMS 0.7,
    /// regression, squared and truncated.
    fn stage2(
        &mut self,
        ctx: &GpuContext,
        stage1: &[Vec<BBox>],
        size: (usize, usize),
        opts: &DetectOptions,
    ) -> Result<Vec<Vec<BBox>>, ModelError> {
        let t = Instant::now();
        let rows = self.run_crops(ctx, Which::R, stage1, size, 24)?;
        self.times.rnet += t.elapsed();
        let c0 = Instant::now();
        let mut rows = rows.chunks_exact(self.rnet.padded_outputs);
        let stage2 = stage1
            .iter()
            .map(|bbs| {
                let kept: Vec<Candidate> = bbs
                    .iter()
                    .zip(rows.by_ref())
                    .map(|(b, r)| Candidate { bbox: *b, score: face_prob(r[0], r[1]), reg: std::array::from_fn(|j| r[2 + j] as f64) })
                    .filter(|c| c.score > opts.thresholds[1])
                    .collect();
                let (bbs, scores) = split(&kept);
                nms(&bbs, &scores, 0.7, Overlap::Union).into_iter().map(|j| fix(&rerec(&bbreg(&kept[j].bbox, &kept[j].reg)))).collect()
            })
            .collect();
        self.times.cpu += c0.elapsed();
        Ok(stage2)
    }

    /// ONet on 48x48 crops of the stage-2 boxes: keep scores above the third threshold, place the
    /// landmarks, regress, NMS 0.7 by the smaller area.
    fn stage3(
        &mut self,
        ctx: &GpuContext,
        stage2: &[Vec<BBox>],
        size: (usize, usize),
        opts: &DetectOptions,
    ) -> Result<Vec<Vec<Face>>, ModelError> {
        let t = Instant::now();
        let rows = self.run_crops(ctx, Which::O, stage2, size, 48)?;
        self.times.onet += t.elapsed();
        let c0 = Instant::now();
        let mut rows = rows.chunks_exact(self.onet.padded_outputs);
        let face = |b: &BBox, r: &[f32]| {
            let score = face_prob(r[0], r[1]);
            (score > opts.thresholds[2]).then(|| {
                let (bw, bh) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
                let landmarks = std::array::from_fn(|j| [bw * r[6 + j] as f64 + b[0] - 1.0, bh * r[11 + j] as f64 + b[1] - 1.0]);
                Face { bbox: bbreg(b, &std::array::from_fn(|j| r[2 + j] as f64)), score, landmarks }
            })
        };
        let faces = stage2
            .iter()
            .map(|bbs| {
                let kept: Vec<Face> = bbs.iter().zip(rows.by_ref()).filter_map(|(b, r)| face(b, r)).collect();
                let bbs: Vec<BBox> = kept.iter().map(|f| f.bbox).collect();
                let scores: Vec<f64> = kept.iter().map(|f| f.score).collect();
                nms(&bbs, &scores, 0.7, Overlap::Min).into_iter().map(|j| kept[j].clone()).collect()
            })
            .collect();
        self.times.cpu += c0.elapsed();
        Ok(faces)
    }

    /// PNet's output maps `[n, oh, ow, k]` over the pyramid level of `hs x ws` of the uploaded images, and
    /// `[oh, ow, k]`. A level whose pass would bind more than `binding_limit` bytes runs in bands of output
    /// rows: band `[r0, r1)` reads level rows from `r0 * stride`, just the rows its windows cover (the last
    /// band to the level's end, so the pool's padding is the whole level's), which gives the same maps.
    fn pnet_maps(&mut self, ctx: &GpuContext, n: usize, (hs, ws): (usize, usize)) -> Result<(Vec<f32>, [usize; 3]), ModelError> {
        if self.device == super::Device::Cpu {
            return self.pnet_maps_cpu((hs, ws));
        }
        let (oh, ow, k) = (self.pnet.output_rows(hs), self.pnet.output_rows(ws), self.pnet.padded_outputs);
        let fits = |rows: usize| self.pnet.largest_tensor(n, self.pnet.input_rows(rows).min(hs), ws) <= self.binding_limit;
        if !fits(1) {
            return Err(ModelError::TooLarge {
                what: format!("PNet over {n} pyramid level(s) of {hs}x{ws}"),
                need: self.pnet.largest_tensor(n, self.pnet.input_rows(1), ws),
                limit: self.binding_limit,
            });
        }
        // The most output rows per band (all of them where the level fits whole).
        let (mut lo, mut hi) = (1, oh);
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if fits(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let band = if self.pnet.largest_tensor(n, hs, ws) <= self.binding_limit { oh } else { lo };
        let mut maps = if band < oh { vec![0.0; n * oh * ow * k] } else { Vec::new() };
        for r0 in (0..oh).step_by(band) {
            let r1 = (r0 + band).min(oh);
            let first = r0 * self.pnet.row_stride();
            let rows = if r1 == oh { hs - first } else { self.pnet.input_rows(r1 - r0) };
            self.arena.reset();
            self.times.pnet_passes += 1;
            let mut enc = Encoder::new(ctx);
            let level = self.arena.take(ctx, "pyramid level", &[n, rows, ws, LANES]);
            resize_area_rgb8_rows(&mut enc, &self.input, hs, first, &level, NORMALIZE_ROUNDED)?;
            let y = self.pnet.forward(&mut enc, &mut self.arena, &level)?;
            enc.submit()?;
            crate::gpu::check_shape("PNet band", "maps", &y.shape, &[n, r1 - r0, ow, k])?;
            let data = y.download(ctx)?;
            if band == oh {
                return Ok((data, [oh, ow, k]));
            }
            let row = ow * k;
            for (i, part) in data.chunks_exact((r1 - r0) * row).enumerate() {
                maps[(i * oh + r0) * row..(i * oh + r1) * row].copy_from_slice(part);
            }
        }
        Ok((maps, [oh, ow, k]))
    }

    /// Crops every box of every image (facenet's `pad` windows), resizes them to `size x size`, runs RNet or
    /// ONet in chunks of `self.chunk`, and returns the output rows (`padded_outputs` values each) in box order.
    fn run_crops(
        &mut self,
        ctx: &GpuContext,
        which: Which,
        boxes: &[Vec<BBox>],
        (w, h): (usize, usize),
        size: usize,
    ) -> Result<Vec<f32>, ModelError> {
        if self.device == super::Device::Cpu {
            return self.run_crops_cpu(which, boxes, (w, h), size);
        }
        let windows = crop_windows(boxes, (w, h));
        let net = match which {
            Which::R => &self.rnet,
            Which::O => &self.onet,
        };
        let mut out = Vec::with_capacity(windows.len() / 5 * net.outputs);
        let per_crop = net.largest_tensor(1, size, size);
        let chunk = self.chunk.min((self.binding_limit / per_crop) as usize);
        if chunk == 0 {
            return Err(ModelError::TooLarge { what: format!("{} over one crop", net.name), need: per_crop, limit: self.binding_limit });
        }
        for chunk in windows.chunks(chunk * 5) {
            let m = chunk.len() / 5;
            self.arena.reset();
            let gboxes = self.arena.take_u32(ctx, "crop windows", &[m, 5]);
            gboxes.write_u32(ctx, &chunk.iter().map(|&v| v as u32).collect::<Vec<_>>())?;
            let crops = self.arena.take(ctx, "crops", &[m, size, size, LANES]);
            let mut enc = Encoder::new(ctx);
            crop_resize_area_rgb8(&mut enc, &self.input, &gboxes, &crops, NORMALIZE)?;
            let y = net.forward(&mut enc, &mut self.arena, &crops)?;
            enc.submit()?;
            out.extend(y.download(ctx)?);
        }
        Ok(out)
    }
}

impl Mtcnn {
    /// [`Mtcnn::pnet_maps`] on the CPU backend: the whole level at once (no binding limit).
    fn pnet_maps_cpu(&mut self, (hs, ws): (usize, usize)) -> Result<(Vec<f32>, [usize; 3]), ModelError> {
        let op = |e: crate::ops::OpError| ModelError::Gpu(e.into());
        self.times.pnet_passes += 1;
        let (x, shape) = (&self.host_input.0, self.host_input.1);
        let mut level = self.buffers.take_overwritten(shape[0] * hs * ws * 3);
        let mut rows = self.buffers.take_overwritten(shape[1] * ws * 3);
        simd::image::resize_area_into(x, shape, (hs, ws), NORMALIZE_ROUNDED, &mut level, &mut rows).map_err(op)?;
        let (y, s) = self.pnet.forward_simd(&level, [shape[0], hs, ws, 3], &self.buffers)?;
        let maps = pad_rows(&y, self.pnet.outputs, self.pnet.padded_outputs);
        [level, rows, y].into_iter().for_each(|v| self.buffers.give(v));
        Ok((maps, [s[1], s[2], self.pnet.padded_outputs]))
    }

    /// [`Mtcnn::run_crops`] on the CPU backend.
    fn run_crops_cpu(&mut self, which: Which, boxes: &[Vec<BBox>], (w, h): (usize, usize), size: usize) -> Result<Vec<f32>, ModelError> {
        let op = |e: crate::ops::OpError| ModelError::Gpu(e.into());
        let windows = crop_windows(boxes, (w, h));
        let net = match which {
            Which::R => &self.rnet,
            Which::O => &self.onet,
        };
        let mut out = Vec::with_capacity(windows.len() / 5 * net.padded_outputs);
        let (x, shape) = (&self.host_input.0, self.host_input.1);
        for chunk in windows.chunks(self.chunk.max(1) * 5) {
            let mut crops = self.buffers.take_overwritten(chunk.len() / 5 * size * size * 3);
            simd::image::crop_resize_area_into(x, shape, chunk, (size, size), NORMALIZE, &mut crops).map_err(op)?;
            let (y, _) = net.forward_simd(&crops, [chunk.len() / 5, size, size, 3], &self.buffers)?;
            out.extend(pad_rows(&y, net.outputs, net.padded_outputs));
            self.buffers.give(crops);
            self.buffers.give(y);
        }
        Ok(out)
    }
}

/// facenet's `pad` window of every box, as the crop kernels take them: the image index, then `(x0, y0,
/// width, height)` ([`Pad::window`](boxes::Pad::window)).
fn crop_windows(boxes: &[Vec<BBox>], (w, h): (usize, usize)) -> Vec<i32> {
    boxes
        .iter()
        .enumerate()
        .flat_map(|(i, bbs)| bbs.iter().flat_map(move |b| std::iter::once(i as i32).chain(pad(b, w, h).window())))
        .collect()
}

/// Rows of `from` values each widened to `to` with zeros (the GPU nets' padded output layout).
fn pad_rows(y: &[f32], from: usize, to: usize) -> Vec<f32> {
    y.chunks(from).flat_map(|r| r.iter().copied().chain(std::iter::repeat_n(0.0, to - from))).collect()
}

#[derive(Clone, Copy)]
enum Which {
    R,
    O,
}

fn split(c: &[Candidate]) -> (Vec<BBox>, Vec<f64>) {
    (c.iter().map(|c| c.bbox).collect(), c.iter().map(|c| c.score).collect())
}
