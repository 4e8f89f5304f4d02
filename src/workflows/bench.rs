//! `facegpu bench kernels`: conv2d at Inception-ResNet-v1's real layer shapes and a 1024^3 matmul;
//! `facegpu bench block35`: a training step of one block35 next to its forward. Each figure is the median of `reps` timed runs after one warm-up, with a GPU sync inside the timing.

use std::time::Instant;

use crate::gpu::{Encoder, GpuContext, GpuError, GpuTensor};
use crate::kernels::conv2d::{conv2d, Activation, Conv2dParams, Epilogue, Padding};
use crate::kernels::matmul::matmul;
use crate::kernels::optimizer::OptimizerKind;
use crate::tape::{Act, BatchNormSpec, ConvSpec, ParamId, ParamStore, StateId, Tape, Var};
use crate::train::Optimizer;

#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelBench {
    pub name: String,
    pub shape: String,
    pub ms: f64,
    pub gflops: f64,
}

impl KernelBench {
    fn conv(name: &str, xs: [usize; 4], w: &[usize; 4], stride: usize, flops: f64, ms: f64) -> Self {
        Self { name: format!("conv2d {name}"), shape: format!("{xs:?} * {w:?} s{stride}"), ms, gflops: flops / ms / 1e6 }
    }

    /// An `n x n x n` matmul.
    fn matmul(n: usize, ms: f64) -> Self {
        Self { name: "matmul".into(), shape: format!("{n}x{n} * {n}x{n}"), ms, gflops: 2.0 * (n as f64).powi(3) / ms / 1e6 }
    }
}

/// (name, input NHWC without batch, HWIO weights, stride, padding) of a benchmarked layer.
pub type ConvLayer = (&'static str, [usize; 3], [usize; 4], usize, Padding);

/// The benchmarked layers.
pub const CONV_LAYERS: &[ConvLayer] = &[
    ("Conv2d_2b_3x3", [77, 77, 32], [3, 3, 32, 64], 1, Padding::Same),
    ("Conv2d_4a_3x3", [38, 38, 80], [3, 3, 80, 192], 1, Padding::Valid),
    ("block35/Branch_1/Conv2d_0b_3x3", [17, 17, 32], [3, 3, 32, 32], 1, Padding::Same),
    ("block17/Branch_1/Conv2d_0b_1x7", [8, 8, 128], [1, 7, 128, 128], 1, Padding::Same),
    ("Mixed_7a/Branch_0/Conv2d_1a_3x3", [8, 8, 256], [3, 3, 256, 384], 2, Padding::Valid),
];

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect()
}

/// Median milliseconds of `reps` runs of `record` (one submission each, synced), after one warm-up.
pub fn time_ms(ctx: &GpuContext, reps: usize, mut record: impl FnMut(&mut Encoder) -> Result<(), GpuError>) -> Result<f64, GpuError> {
    let mut run = || -> Result<f64, GpuError> {
        let start = Instant::now();
        let mut enc = Encoder::new(ctx);
        record(&mut enc)?;
        enc.submit()?;
        ctx.sync()?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    };
    run()?;
    let mut times = (0..reps.max(1)).map(|_| run()).collect::<Result<Vec<_>, _>>()?;
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(times[times.len() / 2])
}

pub fn kernels(ctx: &GpuContext, batch: usize, reps: usize) -> Result<Vec<KernelBench>, GpuError> {
    let mut rows = Vec::new();
    for (i, (name, hwc, wshape, stride, padding)) in CONV_LAYERS.iter().enumerate() {
        let xs = [batch, hwc[0], hwc[1], hwc[2]];
        let p = Conv2dParams::new(&xs, wshape, (*stride, *stride), *padding)?;
        let x = GpuTensor::upload(ctx, "bench x", &xs, &seeded(xs.iter().product(), i as u64))?;
        let w = GpuTensor::upload(ctx, "bench w", wshape, &seeded(wshape.iter().product(), 100 + i as u64))?;
        let shift = GpuTensor::upload(ctx, "bench shift", &[wshape[3]], &seeded(wshape[3], 200 + i as u64))?;
        let scale = GpuTensor::upload(ctx, "bench scale", &[wshape[3]], &vec![1.0; wshape[3]])?;
        let y = GpuTensor::zeros(ctx, "bench y", &p.out_shape());
        let epi = Epilogue { affine: Some((&scale, &shift)), act: Activation::Relu, ..Default::default() };
        let ms = time_ms(ctx, reps, |enc| conv2d(enc, &x, &w, &epi, &y, (*stride, *stride), *padding).map(|_| ()))?;
        rows.push(KernelBench::conv(name, xs, wshape, *stride, p.flops(), ms));
    }
    let n = 1024;
    let a = GpuTensor::upload(ctx, "bench a", &[n, n], &seeded(n * n, 7))?;
    let b = GpuTensor::upload(ctx, "bench b", &[n, n], &seeded(n * n, 8))?;
    let c = GpuTensor::zeros(ctx, "bench c", &[n, n]);
    let ms = time_ms(ctx, reps, |enc| matmul(enc, &a, &b, None, &c, false, false, false).map(|_| ()))?;
    rows.push(KernelBench::matmul(n, ms));
    Ok(rows)
}

/// [`kernels`] on the CPU backend: the same convs (bias and ReLU fused into the stores) and matmul
/// through [`crate::simd`], with the fastest micro-kernel and every worker thread.
pub fn kernels_cpu(batch: usize, reps: usize) -> Result<Vec<KernelBench>, crate::ops::OpError> {
    use crate::simd::gemm::{gemm, Epilogue as SimdEpilogue, Isa, Output, PackedB, Rows};
    let median = |f: &mut dyn FnMut() -> Result<(), crate::ops::OpError>| -> Result<f64, crate::ops::OpError> {
        f()?;
        let mut t = Vec::new();
        for _ in 0..reps.max(1) {
            let start = Instant::now();
            f()?;
            t.push(start.elapsed().as_secs_f64() * 1e3);
        }
        t.sort_by(f64::total_cmp);
        Ok(t[t.len() / 2])
    };
    let mut rows = Vec::new();
    for (i, (name, hwc, wshape, stride, padding)) in CONV_LAYERS.iter().enumerate() {
        let xs = [batch, hwc[0], hwc[1], hwc[2]];
        let x = seeded(xs.iter().product(), i as u64);
        let w = crate::simd::ConvWeights::new(
            &seeded(wshape.iter().product(), 100 + i as u64),
            (wshape[0], wshape[1]),
            wshape[2],
            wshape[3],
            *stride,
            *padding,
        );
        let bias = seeded(wshape[3], 200 + i as u64);
        let out = w.out_shape(xs)?;
        let mut y = vec![0f32; out.iter().product()];
        let epi = SimdEpilogue { bias: Some(&bias), residual: None, relu: true, prelu: None };
        let ms = median(&mut || crate::simd::conv2d_into(&x, xs, &w, &epi, &mut y, out[3], 0).map(|_| ()))?;
        let flops = 2.0 * y.len() as f64 * (wshape[0] * wshape[1] * wshape[2]) as f64;
        rows.push(KernelBench::conv(name, xs, wshape, *stride, flops, ms));
    }
    let n = 1024;
    let (a, b) = (seeded(n * n, 7), PackedB::new(&seeded(n * n, 8), n, n));
    let mut c = vec![0f32; n * n];
    let epi = SimdEpilogue { bias: None, residual: None, relu: false, prelu: None };
    let ms = median(&mut || {
        gemm(Isa::detect(), &Rows { a: &a, m: n, k: n }, n, &b, &epi, &mut Output { c: &mut c, ldc: n, off: 0 }, crate::simd::threads());
        Ok(())
    })?;
    rows.push(KernelBench::matmul(n, ms));
    Ok(rows)
}

/// `facegpu bench block35`: one block35 of Inception-ResNet-v1 (17x17x256 at 160x160 input) as a training
/// sub-network: six conv + batch norm (training statistics, no gamma) + ReLU layers in three branches,
/// concat, the 1x1 up-projection with bias, `x + 0.17 * up` and ReLU fused into its epilogue.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Block35Bench {
    pub adapter: String,
    pub batch_size: usize,
    /// Training-mode forward (batch statistics), recorded on the tape.
    pub forward_ms: f64,
    /// Forward plus backward (all weight gradients and the input's gradient).
    pub forward_backward_ms: f64,
    /// Forward, backward and an ADAM update of every parameter.
    pub step_ms: f64,
    /// `forward_backward_ms - forward_ms`.
    pub backward_ms: f64,
    pub backward_over_forward: f64,
    /// Multiply-adds x 2 of the forward convolutions.
    pub forward_gflop: f64,
}

struct Block35 {
    /// (weights, beta, moving mean, moving variance, stride 1, SAME) of the six BN convs, branch by branch.
    layers: Vec<(ParamId, ParamId, StateId, StateId)>,
    up_w: ParamId,
    up_b: ParamId,
}

const BLOCK35_LAYERS: &[(&str, usize, usize, usize)] = &[
    ("Branch_0/Conv2d_1x1", 1, 256, 32),
    ("Branch_1/Conv2d_0a_1x1", 1, 256, 32),
    ("Branch_1/Conv2d_0b_3x3", 3, 32, 32),
    ("Branch_2/Conv2d_0a_1x1", 1, 256, 32),
    ("Branch_2/Conv2d_0b_3x3", 3, 32, 32),
    ("Branch_2/Conv2d_0c_3x3", 3, 32, 32),
];

impl Block35 {
    fn new(ctx: &GpuContext, store: &mut ParamStore) -> Result<Self, GpuError> {
        let mut layers = Vec::new();
        for (i, (name, k, cin, cout)) in BLOCK35_LAYERS.iter().enumerate() {
            let scope = format!("Repeat/block35_1/{name}");
            let fan = (k * k * cin) as f32;
            let w: Vec<f32> = seeded(k * k * cin * cout, 300 + i as u64).iter().map(|v| v * (6.0 / fan).sqrt()).collect();
            layers.push((
                store.add(ctx, &format!("{scope}/weights"), &[*k, *k, *cin, *cout], &w, true)?,
                store.add(ctx, &format!("{scope}/BatchNorm/beta"), &[*cout], &vec![0.0; *cout], false)?,
                store.add_state(ctx, &format!("{scope}/BatchNorm/moving_mean"), &[*cout], &vec![0.0; *cout])?,
                store.add_state(ctx, &format!("{scope}/BatchNorm/moving_variance"), &[*cout], &vec![1.0; *cout])?,
            ));
        }
        let w: Vec<f32> = seeded(96 * 256, 400).iter().map(|v| v * (6.0f32 / 96.0).sqrt()).collect();
        let up_w = store.add(ctx, "Repeat/block35_1/Conv2d_1x1/weights", &[1, 1, 96, 256], &w, true)?;
        let up_b = store.add(ctx, "Repeat/block35_1/Conv2d_1x1/biases", &[256], &[0.0; 256], false)?;
        Ok(Self { layers, up_w, up_b })
    }

    fn forward(&self, tape: &mut Tape, enc: &mut Encoder, store: &ParamStore, x: Var) -> Result<Var, GpuError> {
        let bn = BatchNormSpec { eps: 1e-3, decay: 0.995, relu: true };
        let conv_bn = |tape: &mut Tape, enc: &mut Encoder, i: usize, input: Var| -> Result<Var, GpuError> {
            let (w, beta, mm, mv) = self.layers[i];
            let (w, beta) = (tape.param(store, w), tape.param(store, beta));
            let y = tape.conv2d(enc, input, w, ConvSpec::new((1, 1), Padding::Same))?;
            tape.batch_norm(enc, y, None, beta, (store.state(mm), store.state(mv)), bn)
        };
        let b0 = conv_bn(tape, enc, 0, x)?;
        let b1 = conv_bn(tape, enc, 1, x)?;
        let b1 = conv_bn(tape, enc, 2, b1)?;
        let b2 = conv_bn(tape, enc, 3, x)?;
        let b2 = conv_bn(tape, enc, 4, b2)?;
        let b2 = conv_bn(tape, enc, 5, b2)?;
        let mixed = tape.concat(enc, &[b0, b1, b2])?;
        let (w, b) = (tape.param(store, self.up_w), tape.param(store, self.up_b));
        tape.conv2d(
            enc,
            mixed,
            w,
            ConvSpec { bias: Some(b), residual: Some((x, 0.17)), act: Act::Relu, ..ConvSpec::new((1, 1), Padding::Same) },
        )
    }
}

pub fn block35(ctx: &GpuContext, batch: usize, reps: usize) -> Result<Block35Bench, GpuError> {
    let mut store = ParamStore::new();
    let net = Block35::new(ctx, &mut store)?;
    // The block's input is an activation of the layers before it, so it needs a gradient too.
    let mut inputs = ParamStore::new();
    let xin = inputs.add(ctx, "input", &[batch, 17, 17, 256], &seeded(batch * 17 * 17 * 256, 500), false)?;
    let mut opt = Optimizer::new(ctx, OptimizerKind::Adam, &store)?;
    let mut tape = Tape::new();
    let mut run = |mode: u32, reps: usize| -> Result<f64, GpuError> {
        time_ms(ctx, reps, |enc| {
            tape.reset();
            let x = tape.param(&inputs, xin);
            let y = net.forward(&mut tape, enc, &store, x)?;
            if mode >= 1 {
                // Seed d loss / d y = 1/n (the gradient of a mean) through a tiny terminal op.
                let n = tape.shape(y).iter().product::<usize>();
                let y2 = tape.reshape(y, &[n / 256, 256])?;
                let _ = tape.prelogits_norm(enc, y2, 2.0, 1e-4, 1.0)?;
                tape.backward(enc)?;
            }
            if mode >= 2 {
                opt.step(enc, &store, 1e-3)?;
            }
            Ok(())
        })
    };
    let forward_ms = run(0, reps)?;
    let forward_backward_ms = run(1, reps)?;
    let step_ms = run(2, reps)?;
    let mut flops = 0.0;
    for (_, k, cin, cout) in BLOCK35_LAYERS {
        flops += Conv2dParams::new(&[batch, 17, 17, *cin], &[*k, *k, *cin, *cout], (1, 1), Padding::Same)?.flops();
    }
    flops += Conv2dParams::new(&[batch, 17, 17, 96], &[1, 1, 96, 256], (1, 1), Padding::Same)?.flops();
    let backward_ms = forward_backward_ms - forward_ms;
    Ok(Block35Bench {
        adapter: ctx.adapter_name(),
        batch_size: batch,
        forward_ms,
        forward_backward_ms,
        step_ms,
        backward_ms,
        backward_over_forward: backward_ms / forward_ms,
        forward_gflop: flops / 1e9,
    })
}

/// `facegpu bench train`: full Inception-ResNet-v1 training steps (forward, softmax cross-entropy over
/// `classes` identities, backward, ADAM update, moving average) on random images already on the GPU.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TrainBench {
    pub adapter: String,
    pub batch_size: usize,
    pub image_size: usize,
    pub train_images_per_s: f64,
    pub ms_per_step: f64,
    /// Tape, parameters, gradients and optimizer slots after the first timed step and after the last.
    pub memory_bytes_first: usize,
    pub memory_bytes_last: usize,
}

pub fn train(
    ctx: &GpuContext,
    batch: usize,
    image_size: usize,
    reps: usize,
    classes: usize,
) -> Result<TrainBench, crate::workflows::Error> {
    use crate::train::net::TrainNet;
    let s = image_size;
    let images = GpuTensor::upload(ctx, "bench images", &[batch, s, s, 3], &seeded(batch * s * s * 3, 900))?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i * 7919 % classes as u32).collect();
    let labels = GpuTensor::upload_u32(ctx, "bench labels", &[batch], &labels)?;
    let mut net = TrainNet::new(128, classes, None, 1);
    let mut tape = Tape::new();
    // Create the parameters (recorded, not run), then the optimizer and moving average.
    {
        let mut enc = Encoder::new(ctx);
        let x = tape.input(&images);
        net.forward(&mut tape, &mut enc, x, 1.0, 0)?;
    }
    let mut opt = Optimizer::new(ctx, OptimizerKind::Adam, &net.store)?;
    let ema = crate::train::Ema::new(ctx, &net.store, 0.9999)?;
    let mut memory = Vec::new();
    let mut times = Vec::new();
    for i in 0..=reps.max(1) {
        let t = Instant::now();
        tape.reset();
        let mut enc = Encoder::new(ctx);
        let x = tape.input(&images);
        let out = net.forward(&mut tape, &mut enc, x, 1.0, i as u32)?;
        let logits = out.logits.ok_or("no Logits layer")?;
        let (loss, _) = tape.softmax_xent(&mut enc, logits, &labels, 1.0)?;
        tape.backward(&mut enc)?;
        opt.step(&mut enc, &net.store, 1e-4)?;
        ema.update(&mut enc, &net.store, opt.step)?;
        enc.submit()?;
        loss.download(ctx)?;
        if i > 0 {
            times.push(t.elapsed().as_secs_f64());
            memory.push(tape.bytes() + net.store.bytes() + opt.bytes() + ctx.scratch_bytes());
        } else {
            ctx.reset_profile();
        }
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    Ok(TrainBench {
        adapter: ctx.adapter_name(),
        batch_size: batch,
        image_size,
        train_images_per_s: batch as f64 / med,
        ms_per_step: med * 1e3,
        memory_bytes_first: memory[0],
        memory_bytes_last: *memory.last().unwrap_or(&0),
    })
}
