//! `facegpu bench kernels`: conv2d at Inception-ResNet-v1's real layer shapes and a 1024^3 matmul.
//! Each figure is the median of `reps` timed runs after one warm-up, with a GPU sync inside the timing.

use std::time::Instant;

use crate::gpu::{Encoder, GpuContext, GpuError, GpuTensor};
use crate::kernels::conv2d::{conv2d, Activation, Conv2dParams, Epilogue, Padding};
use crate::kernels::matmul::matmul;

#[derive(Debug, Clone, serde::Serialize)]
pub struct KernelBench {
    pub name: String,
    pub shape: String,
    pub ms: f64,
    pub gflops: f64,
}

/// (name, input NHWC without batch, HWIO weights, stride, padding) of the benchmarked layers.
pub const CONV_LAYERS: &[(&str, [usize; 3], [usize; 4], usize, Padding)] = &[
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
        rows.push(KernelBench {
            name: format!("conv2d {name}"),
            shape: format!("{xs:?} * {wshape:?} s{stride}"),
            ms,
            gflops: p.flops() / ms / 1e6,
        });
    }
    let n = 1024;
    let a = GpuTensor::upload(ctx, "bench a", &[n, n], &seeded(n * n, 7))?;
    let b = GpuTensor::upload(ctx, "bench b", &[n, n], &seeded(n * n, 8))?;
    let c = GpuTensor::zeros(ctx, "bench c", &[n, n]);
    let ms = time_ms(ctx, reps, |enc| matmul(enc, &a, &b, None, &c, false, false, false).map(|_| ()))?;
    rows.push(KernelBench {
        name: "matmul".into(),
        shape: "1024x1024 * 1024x1024".into(),
        ms,
        gflops: 2.0 * (n as f64).powi(3) / ms / 1e6,
    });
    Ok(rows)
}
