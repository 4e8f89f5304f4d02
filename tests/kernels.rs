//! Every GPU kernel against its CPU twin on seeded inputs of awkward shapes.
//! Tolerances are per op and written next to each test.

mod common;

use common::{assert_close, record, up, Rng};
use facegpu::cpu;
use facegpu::gpu::{GpuTensor, KernelShape};
use facegpu::kernels::center_loss::CenterLossScratch;
use facegpu::kernels::conv2d::{Activation, Epilogue, Padding, TileLayout};
use facegpu::kernels::image::Transform;
use facegpu::kernels::{self as k};

/// Runs conv2d on both paths with bias, affine, residual and activation as asked, and compares.
#[allow(clippy::too_many_arguments)]
fn check_conv(
    ctx: &facegpu::gpu::GpuContext,
    seed: u64,
    xs: [usize; 4],
    ws: [usize; 4],
    stride: (usize, usize),
    padding: Padding,
    bias: bool,
    affine: bool,
    residual: Option<f32>,
    act: u32,
) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(xs.iter().product(), -1.0, 1.0);
    let w = rng.vec(ws.iter().product(), -0.5, 0.5);
    let oc = ws[3];
    let (b, sc, sh, al) = (rng.vec(oc, -1.0, 1.0), rng.vec(oc, 0.5, 1.5), rng.vec(oc, -0.5, 0.5), rng.vec(oc, 0.0, 0.3));
    let p = facegpu::kernels::conv2d::Conv2dParams::new(&xs, &ws, stride, padding).unwrap();
    let res = rng.vec(p.out_shape().iter().product(), -1.0, 1.0);
    let cpu_epi = Epilogue {
        bias: bias.then_some(b.as_slice()),
        affine: affine.then_some((sc.as_slice(), sh.as_slice())),
        residual: residual.map(|s| (res.as_slice(), s)),
        act: match act {
            0 => Activation::None,
            1 => Activation::Relu,
            _ => Activation::Prelu(al.as_slice()),
        },
    };
    let (want, _) = cpu::conv2d::conv2d(&x, &xs, &w, &ws, &cpu_epi, stride, padding).unwrap();
    for ctx in common::both_shapes(ctx) {
        let got = conv_on(ctx, [&x, &w, &b, &sc, &sh, &al, &res], xs, ws, stride, padding, [bias, affine], residual, act);
        // fp32 sums of up to ~500 products of magnitude <= 0.5 in a different order.
        assert_close(&format!("conv2d ({:?} kernels)", ctx.kernel_shape()), &got, &want, 1e-4, 1e-4);
    }
}

/// check_conv's GPU side on `ctx`: x, w, bias, scale, shift, alpha and the residual uploaded, the conv
/// recorded with the epilogue asked for, y downloaded.
#[allow(clippy::too_many_arguments)]
fn conv_on(
    ctx: &facegpu::gpu::GpuContext,
    [x, w, b, sc, sh, al, res]: [&[f32]; 7],
    xs: [usize; 4],
    ws: [usize; 4],
    stride: (usize, usize),
    padding: Padding,
    [bias, affine]: [bool; 2],
    residual: Option<f32>,
    act: u32,
) -> Vec<f32> {
    let oc = ws[3];
    let p = facegpu::kernels::conv2d::Conv2dParams::new(&xs, &ws, stride, padding).unwrap();
    let (gx, gw) = (up(ctx, "x", &xs, x), up(ctx, "w", &ws, w));
    let (gb, gsc, gsh, gal) = (up(ctx, "b", &[oc], b), up(ctx, "sc", &[oc], sc), up(ctx, "sh", &[oc], sh), up(ctx, "al", &[oc], al));
    let gres = up(ctx, "res", &p.out_shape(), res);
    let gpu_epi = Epilogue {
        bias: bias.then_some(&gb),
        affine: affine.then_some((&gsc, &gsh)),
        residual: residual.map(|s| (&gres, s)),
        act: match act {
            0 => Activation::None,
            1 => Activation::Relu,
            _ => Activation::Prelu(&gal),
        },
    };
    let gy = GpuTensor::zeros(ctx, "y", &p.out_shape());
    record(ctx, |enc| k::conv2d::conv2d(enc, &gx, &gw, &gpu_epi, &gy, stride, padding).map(|_| ()));
    gy.download(ctx).unwrap()
}

#[test]
fn conv2d_same_stride2_asymmetric_matches_cpu() {
    let ctx = gpu_or_skip!();
    // 11x13 input, stride 2, 3x3 SAME: pad total 2 in h (1/1) and 2 in w; 4x4 pads unevenly.
    check_conv(ctx, 1, [2, 11, 13, 5], [3, 3, 5, 7], (2, 2), Padding::Same, true, true, None, 2);
    check_conv(ctx, 2, [3, 10, 9, 3], [4, 4, 3, 9], (2, 2), Padding::Same, false, false, None, 1);
}

#[test]
fn conv2d_valid_stride1_and_2_match_cpu() {
    let ctx = gpu_or_skip!();
    check_conv(ctx, 3, [3, 9, 10, 3], [3, 3, 3, 10], (1, 1), Padding::Valid, true, false, None, 1);
    check_conv(ctx, 4, [2, 15, 17, 6], [3, 3, 6, 13], (2, 2), Padding::Valid, false, true, None, 0);
}

#[test]
fn conv2d_1x7_7x1_1x3_3x1_same_match_cpu() {
    let ctx = gpu_or_skip!();
    check_conv(ctx, 5, [2, 8, 8, 17], [1, 7, 17, 9], (1, 1), Padding::Same, false, true, None, 1);
    check_conv(ctx, 6, [2, 8, 8, 17], [7, 1, 17, 9], (1, 1), Padding::Same, false, true, None, 1);
    check_conv(ctx, 7, [1, 3, 5, 11], [1, 3, 11, 12], (1, 1), Padding::Same, false, true, None, 1);
    check_conv(ctx, 8, [1, 3, 5, 11], [3, 1, 11, 12], (1, 1), Padding::Same, false, true, None, 1);
}

#[test]
fn conv2d_bias_residual_relu_epilogue_matches_cpu() {
    let ctx = gpu_or_skip!();
    // block35's up-projection: 1x1 conv with bias, x + 0.17*up, then ReLU.
    check_conv(ctx, 9, [2, 5, 7, 19], [1, 1, 19, 21], (1, 1), Padding::Same, true, false, Some(0.17), 1);
    check_conv(ctx, 10, [2, 5, 7, 19], [1, 1, 19, 21], (1, 1), Padding::Same, true, false, Some(1.0), 0);
}

#[test]
fn conv2d_explicit_padding_matches_cpu() {
    let ctx = gpu_or_skip!();
    check_conv(ctx, 11, [1, 6, 7, 4], [3, 2, 4, 5], (1, 2), Padding::Explicit(2, 0, 1, 3), true, false, None, 0);
}

#[test]
fn conv2d_channel_mismatch_is_an_error_naming_both_shapes() {
    let err = facegpu::kernels::conv2d::Conv2dParams::new(&[1, 5, 5, 3], &[3, 3, 4, 8], (1, 1), Padding::Same).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("conv2d") && msg.contains("[1, 5, 5, 3]") && msg.contains("[3, 3, 4, 8]"), "{msg}");
}

#[test]
fn matmul_with_bias_and_transposes_matches_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(20);
    // 37x29 fits one workgroup block; 131x75 spans several (64x64 outputs per workgroup) with ragged edges;
    // k and n multiples of 4 (untransposed) take the vec4 path, 68x20x36 with a half-empty last column tile.
    for ((m, n, kk), (ta, tb, acc)) in [(37, 29, 53), (131, 75, 33), (68, 20, 36), (131, 72, 64)]
        .into_iter()
        .flat_map(|s| [(false, false, false), (true, false, false), (false, true, true), (true, true, true)].map(|t| (s, t)))
    {
        let a_shape = if ta { [kk, m] } else { [m, kk] };
        let b_shape = if tb { [n, kk] } else { [kk, n] };
        let (a, b, bias, c0) = (rng.vec(m * kk, -1.0, 1.0), rng.vec(kk * n, -1.0, 1.0), rng.vec(n, -1.0, 1.0), rng.vec(m * n, -1.0, 1.0));
        let mut want = c0.clone();
        cpu::matmul::matmul(&a, &a_shape, &b, &b_shape, Some(&bias), &mut want, ta, tb, acc).unwrap();
        let (ga, gb, gbias) = (up(ctx, "a", &a_shape, &a), up(ctx, "b", &b_shape, &b), up(ctx, "bias", &[n], &bias));
        // Both kernel shapes on this adapter: the CPU drivers' register tiles and the GPUs' shared-memory
        // tiles (FACEGPU_KERNELS picks one for the networks).
        for shape in [KernelShape::CpuDriver, KernelShape::Gpu] {
            let gc = up(ctx, "c", &[m, n], &c0);
            record(ctx, |enc| k::matmul::matmul_shaped(enc, &ga, &gb, Some(&gbias), &gc, (ta, tb, acc), shape).map(|_| ()));
            // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's
            // statistics) summed in another order by the GPU's tiles: errors grow to about 1e-5 relative,
            // 1e-4 bounds them.
            assert_close(&format!("matmul {shape:?} ta={ta} tb={tb} acc={acc}"), &gc.download(ctx).unwrap(), &want, 1e-4, 1e-4);
        }
    }
}

#[test]
fn matmul_inner_dimension_mismatch_is_an_error() {
    let msg = facegpu::kernels::matmul::MatmulParams::new(&[3, 4], &[5, 6], false, false).unwrap_err().to_string();
    assert!(msg.contains("matmul") && msg.contains("[3, 4]") && msg.contains("[5, 6]"), "{msg}");
}

#[test]
fn batch_norm_inference_with_and_without_gamma_matches_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(30);
    // 13 channels go element by element, 8 as vec4s of 4 channels.
    for xs in [[3, 5, 7, 13], [2, 3, 5, 8]] {
        let c = xs[3];
        let x = rng.vec(xs.iter().product(), -2.0, 2.0);
        let (mm, mv, g, b) = (rng.vec(c, -1.0, 1.0), rng.vec(c, 0.1, 2.0), rng.vec(c, 0.5, 1.5), rng.vec(c, -1.0, 1.0));
        let (gx, gmm, gmv, gg, gb) =
            (up(ctx, "x", &xs, &x), up(ctx, "mm", &[c], &mm), up(ctx, "mv", &[c], &mv), up(ctx, "g", &[c], &g), up(ctx, "b", &[c], &b));
        for gamma in [false, true] {
            let want = cpu::batch_norm::batch_norm_inference(&x, &xs, &mm, &mv, gamma.then_some(g.as_slice()), &b, 1e-3).unwrap();
            let gy = GpuTensor::zeros(ctx, "y", &xs);
            record(ctx, |enc| k::batch_norm::batch_norm_inference(enc, &gx, &gmm, &gmv, gamma.then_some(&gg), &gb, &gy, 1e-3));
            // Sums of tens to hundreds of fp32 terms in another order (tree vs sequential): about 1e-5.
            assert_close(&format!("batch_norm_inference {xs:?}"), &gy.download(ctx).unwrap(), &want, 1e-5, 1e-5);
        }
    }
}

#[test]
fn batch_norm_train_matches_cpu_including_saved_stats_and_moving_averages() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(31);
    // 11 channels one by one, 12 as vec4s, and 8 channels over 9765 rows: the vec4 path's sums then come
    // in blocks of 10 rows and the normalization in blocks of 2, the last of each partial (bn_stats_parts,
    // bn_normalize_rows).
    for xs in [[4, 9, 5, 11], [3, 7, 5, 12], [9, 31, 35, 8]] {
        let c = xs[3];
        let x = rng.vec(xs.iter().product(), -1.0, 3.0);
        let (mm0, mv0, b) = (rng.vec(c, -1.0, 1.0), rng.vec(c, 0.5, 2.0), rng.vec(c, -1.0, 1.0));
        let (mut mm, mut mv) = (mm0.clone(), mv0.clone());
        let (want_y, want_mean, want_invstd) = cpu::batch_norm::batch_norm_train(&x, &xs, None, &b, &mut mm, &mut mv, 1e-3, 0.995).unwrap();
        let (gx, gb, gmm, gmv) = (up(ctx, "x", &xs, &x), up(ctx, "b", &[c], &b), up(ctx, "mm", &[c], &mm0), up(ctx, "mv", &[c], &mv0));
        let (gy, gmean, ginv) =
            (GpuTensor::zeros(ctx, "y", &xs), GpuTensor::zeros(ctx, "mean", &[c]), GpuTensor::zeros(ctx, "invstd", &[c]));
        record(ctx, |enc| k::batch_norm::batch_norm_train(enc, &gx, None, &gb, &gmm, &gmv, &gy, &gmean, &ginv, 1e-3, 0.995, false));
        // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's statistics)
        // summed in another order by the GPU's tiles: errors grow to about 1e-5 relative, 1e-4 bounds them.
        assert_close(&format!("batch_norm_train y {xs:?}"), &gy.download(ctx).unwrap(), &want_y, 1e-4, 1e-4);
        // Sums of tens to hundreds of fp32 terms in another order (tree vs sequential): about 1e-5.
        assert_close("batch_norm_train mean", &gmean.download(ctx).unwrap(), &want_mean, 1e-5, 1e-5);
        // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's statistics)
        // summed in another order by the GPU's tiles: errors grow to about 1e-5 relative, 1e-4 bounds them.
        assert_close("batch_norm_train invstd", &ginv.download(ctx).unwrap(), &want_invstd, 1e-4, 1e-4);
        // A few fp32 operations or a short sum per value, in another order: about 1e-6.
        assert_close("batch_norm_train moving_mean", &gmm.download(ctx).unwrap(), &mm, 1e-6, 1e-5);
        // A few fp32 operations or a short sum per value, in another order: about 1e-6.
        assert_close("batch_norm_train moving_var", &gmv.download(ctx).unwrap(), &mv, 1e-6, 1e-5);
        // Fused with a ReLU: the twin's output through the ReLU twin.
        let (gmm, gmv) = (up(ctx, "mm", &[c], &mm0), up(ctx, "mv", &[c], &mv0));
        record(ctx, |enc| k::batch_norm::batch_norm_train(enc, &gx, None, &gb, &gmm, &gmv, &gy, &gmean, &ginv, 1e-3, 0.995, true));
        assert_close(&format!("batch_norm_train + relu {xs:?}"), &gy.download(ctx).unwrap(), &cpu::elementwise::relu(&want_y), 1e-4, 1e-4);
    }
}

#[test]
fn max_pool_same_and_valid_match_cpu_including_argmax() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(40);
    for (xs, kk, s, pad) in [
        ([2, 9, 11, 5], (3, 3), (2, 2), Padding::Valid),
        ([2, 7, 10, 3], (2, 2), (2, 2), Padding::Same),
        ([1, 8, 9, 4], (3, 3), (2, 2), Padding::Same),
    ] {
        let x = rng.vec(xs.iter().product(), -1.0, 1.0);
        let (want, want_arg, p) = cpu::pool::max_pool(&x, &xs, kk, s, pad).unwrap();
        let gx = up(ctx, "x", &xs, &x);
        let (gy, garg) = (GpuTensor::zeros(ctx, "y", &p.out_shape()), GpuTensor::zeros_u32(ctx, "argmax", &p.out_shape()));
        record(ctx, |enc| k::pool::max_pool(enc, &gx, &gy, Some(&garg), kk, s, pad).map(|_| ()));
        // Exact: the kernel only moves, compares or selects values.
        assert_close("max_pool", &gy.download(ctx).unwrap(), &want, 0.0, 0.0);
        assert_eq!(garg.download_u32(ctx).unwrap(), want_arg, "max_pool argmax {xs:?}");
        // Inference leaves argmax out: the same maxima.
        let gy2 = GpuTensor::zeros(ctx, "y", &p.out_shape());
        record(ctx, |enc| k::pool::max_pool(enc, &gx, &gy2, None, kk, s, pad).map(|_| ()));
        assert_close("max_pool without argmax", &gy2.download(ctx).unwrap(), &want, 0.0, 0.0);
    }
}

#[test]
fn avg_pool_same_excludes_padding_and_global_avg_pool_match_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(41);
    let xs = [2, 7, 10, 3];
    let x = rng.vec(xs.iter().product(), -1.0, 1.0);
    let gx = up(ctx, "x", &xs, &x);
    for (kk, s, pad) in [((3, 3), (1, 1), Padding::Same), ((3, 3), (2, 2), Padding::Valid), ((2, 2), (2, 2), Padding::Same)] {
        let (want, p) = cpu::pool::avg_pool(&x, &xs, kk, s, pad).unwrap();
        let gy = GpuTensor::zeros(ctx, "y", &p.out_shape());
        record(ctx, |enc| k::pool::avg_pool(enc, &gx, &gy, kk, s, pad).map(|_| ()));
        // A few fp32 operations or a short sum per value, in another order: about 1e-6.
        assert_close("avg_pool", &gy.download(ctx).unwrap(), &want, 1e-6, 1e-5);
    }
    let want = cpu::pool::global_avg_pool(&x, &xs).unwrap();
    let gy = GpuTensor::zeros(ctx, "y", &[2, 3]);
    record(ctx, |enc| k::pool::global_avg_pool(enc, &gx, &gy).map(|_| ()));
    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
    assert_close("global_avg_pool", &gy.download(ctx).unwrap(), &want, 1e-6, 1e-5);
}

#[test]
fn softmax_and_softmax_xent_match_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(50);
    let (rows, cols) = (13, 37);
    let z = rng.vec(rows * cols, -8.0, 8.0);
    let labels = rng.labels(rows, cols as u32);
    let gz = up(ctx, "z", &[rows, cols], &z);
    let glab = GpuTensor::upload_u32(ctx, "labels", &[rows], &labels).unwrap();
    let (gp, grl, gl) =
        (GpuTensor::zeros(ctx, "prob", &[rows, cols]), GpuTensor::zeros(ctx, "row_loss", &[rows]), GpuTensor::zeros(ctx, "loss", &[1]));
    record(ctx, |enc| k::softmax::softmax_xent(enc, &gz, &glab, &gp, &grl, &gl));
    let (want_p, want_rl, want_l) = cpu::softmax::softmax_xent(&z, &[rows, cols], &labels).unwrap();
    // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's statistics)
    // summed in another order by the GPU's tiles: errors grow to about 1e-5 relative, 1e-4 bounds them.
    assert_close("softmax_xent prob", &gp.download(ctx).unwrap(), &want_p, 1e-6, 1e-4);
    // Sums of tens to hundreds of fp32 terms in another order (tree vs sequential): about 1e-5.
    assert_close("softmax_xent row loss", &grl.download(ctx).unwrap(), &want_rl, 1e-5, 1e-5);
    // Sums of tens to hundreds of fp32 terms in another order (tree vs sequential): about 1e-5.
    assert_close("softmax_xent loss", &gl.download(ctx).unwrap(), &[want_l], 1e-5, 1e-5);
    let gp2 = GpuTensor::zeros(ctx, "prob2", &[rows, cols]);
    record(ctx, |enc| k::softmax::softmax(enc, &gz, &gp2));
    // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's statistics)
    // summed in another order by the GPU's tiles: errors grow to about 1e-5 relative, 1e-4 bounds them.
    assert_close("softmax", &gp2.download(ctx).unwrap(), &cpu::softmax::softmax(&z, &[rows, cols]).unwrap(), 1e-6, 1e-4);
}

#[test]
fn center_loss_with_repeated_labels_matches_cpu_loss_and_update() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(60);
    let (b, d, classes) = (17, 9, 5);
    let x = rng.vec(b * d, -1.0, 1.0);
    let labels = rng.labels(b, classes as u32);
    let c0 = rng.vec(classes * d, -0.5, 0.5);
    let mut want_c = c0.clone();
    let (want_l, want_diff) = cpu::center_loss::center_loss(&x, &[b, d], &labels, &mut want_c, &[classes, d], 0.95).unwrap();
    let (gx, gc) = (up(ctx, "x", &[b, d], &x), up(ctx, "centers", &[classes, d], &c0));
    let glab = GpuTensor::upload_u32(ctx, "labels", &[b], &labels).unwrap();
    let scratch = CenterLossScratch { sq: GpuTensor::zeros(ctx, "sq", &[b, d]), diff: GpuTensor::zeros(ctx, "diff", &[b, d]) };
    let gl = GpuTensor::zeros(ctx, "loss", &[1]);
    record(ctx, |enc| k::center_loss::center_loss(enc, &gx, &glab, &gc, &scratch, &gl, 0.95));
    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
    assert_close("center_loss loss", &gl.download(ctx).unwrap(), &[want_l], 1e-6, 1e-5);
    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
    assert_close("center_loss centers", &gc.download(ctx).unwrap(), &want_c, 1e-6, 1e-5);
    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
    assert_close("center_loss diff", &scratch.diff.download(ctx).unwrap(), &want_diff, 1e-6, 1e-5);
}

#[test]
fn elementwise_relu_prelu_add_scaled_affine_match_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(70);
    let shape = [3, 5, 7];
    let n = 105;
    let (x, z, alpha) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0), rng.vec(7, 0.0, 0.5));
    let (gx, gz, ga) = (up(ctx, "x", &shape, &x), up(ctx, "z", &shape, &z), up(ctx, "alpha", &[7], &alpha));
    let ys: Vec<GpuTensor> = (0..4).map(|i| GpuTensor::zeros(ctx, &format!("y{i}"), &shape)).collect();
    record(ctx, |enc| {
        k::elementwise::relu(enc, &gx, &ys[0])?;
        k::elementwise::prelu(enc, &gx, &ga, &ys[1])?;
        k::elementwise::add_scaled(enc, &gx, &gz, 0.17, &ys[2])?;
        k::elementwise::affine(enc, &gx, -1.5, 0.25, &ys[3])
    });
    // Exact: the kernel only moves, compares or selects values.
    assert_close("relu", &ys[0].download(ctx).unwrap(), &cpu::elementwise::relu(&x), 0.0, 0.0);
    // One or two fp32 operations per value on each side: they differ by rounding only.
    assert_close("prelu", &ys[1].download(ctx).unwrap(), &cpu::elementwise::prelu(&x, &alpha), 1e-7, 1e-6);
    // One or two fp32 operations per value on each side: they differ by rounding only.
    assert_close("add_scaled", &ys[2].download(ctx).unwrap(), &cpu::elementwise::add_scaled(&x, &z, 0.17), 1e-7, 1e-6);
    // One or two fp32 operations per value on each side: they differ by rounding only.
    assert_close("affine", &ys[3].download(ctx).unwrap(), &cpu::elementwise::affine(&x, -1.5, 0.25), 1e-7, 1e-6);
    // 105 elements leave a last vec4 of one; 8 channels take prelu's vec4 of alphas.
    let (x8, alpha8) = (rng.vec(48, -1.0, 1.0), rng.vec(8, 0.0, 0.5));
    let (gx8, ga8, gy8) = (up(ctx, "x", &[2, 3, 8], &x8), up(ctx, "alpha", &[8], &alpha8), GpuTensor::zeros(ctx, "y", &[2, 3, 8]));
    record(ctx, |enc| k::elementwise::prelu(enc, &gx8, &ga8, &gy8));
    assert_close("prelu 8 channels", &gy8.download(ctx).unwrap(), &cpu::elementwise::prelu(&x8, &alpha8), 1e-7, 1e-6);
}

#[test]
fn dropout_is_seeded_and_matches_cpu_mask() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(71);
    let n = 4099;
    let x = rng.vec(n, -1.0, 1.0);
    let gx = up(ctx, "x", &[n], &x);
    let (gy, gm) = (GpuTensor::zeros(ctx, "y", &[n]), GpuTensor::zeros_u32(ctx, "mask", &[n]));
    record(ctx, |enc| k::elementwise::dropout(enc, &gx, 0.8, 1234, &gy, &gm));
    let (want_y, want_m) = cpu::elementwise::dropout(&x, 0.8, 1234);
    assert_eq!(gm.download_u32(ctx).unwrap(), want_m, "dropout mask");
    // One or two fp32 operations per value on each side: they differ by rounding only.
    assert_close("dropout", &gy.download(ctx).unwrap(), &want_y, 1e-7, 1e-6);
    let kept = want_m.iter().sum::<u32>() as f32 / n as f32;
    assert!((kept - 0.8).abs() < 0.03, "kept fraction {kept} should be near 0.8");
    let (_, other) = cpu::elementwise::dropout(&x, 0.8, 1235);
    assert_ne!(other, want_m, "another seed gives another mask");
}

/// Channel counts and offsets all multiples of 4: the copies take four channels per invocation
/// (copy_channels4), overwriting and accumulating.
#[test]
fn concat_and_split_of_whole_vec4s_match_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(81);
    let shapes = [[2, 3, 5, 8], [2, 3, 5, 4], [2, 3, 5, 12]];
    let out_shape = [2, 3, 5, 24];
    let parts: Vec<Vec<f32>> = shapes.iter().map(|s| rng.vec(s.iter().product(), -1.0, 1.0)).collect();
    let as_parts = |v: &[Vec<f32>]| -> Vec<f32> {
        cpu::concat::concat_channels(&v.iter().zip(&shapes).map(|(p, s)| (p.as_slice(), s.as_slice())).collect::<Vec<_>>(), &out_shape)
            .unwrap()
    };
    let want = as_parts(&parts);
    let gparts: Vec<GpuTensor> = parts.iter().zip(&shapes).map(|(p, s)| up(ctx, "part", s, p)).collect();
    let gout = GpuTensor::zeros(ctx, "concat", &out_shape);
    record(ctx, |enc| k::concat::concat_channels(enc, &gparts.iter().collect::<Vec<_>>(), &gout));
    // Exact: the kernel only moves, compares or selects values.
    assert_close("concat vec4", &gout.download(ctx).unwrap(), &want, 0.0, 0.0);
    // Accumulating: the whole plus the parts again, then each part plus its slice of the whole.
    record(ctx, |enc| k::concat::concat_channels_into(enc, &gparts.iter().collect::<Vec<_>>(), &gout, true));
    let twice: Vec<f32> = want.iter().map(|v| v + v).collect();
    assert_close("concat vec4 accumulate", &gout.download(ctx).unwrap(), &twice, 0.0, 0.0);
    record(ctx, |enc| k::concat::split_channels_into(enc, &gout, &gparts.iter().collect::<Vec<_>>(), &[true, false, true]));
    for (i, (g, p)) in gparts.iter().zip(&parts).enumerate() {
        let want: Vec<f32> = p.iter().map(|v| if i == 1 { v + v } else { v + v + v }).collect();
        // Exact: the kernel only moves, compares or selects values.
        assert_close(&format!("split vec4 part {i}"), &g.download(ctx).unwrap(), &want, 0.0, 0.0);
    }
}

#[test]
fn concat_and_split_channels_match_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(80);
    let shapes = [[2, 3, 5, 7], [2, 3, 5, 1], [2, 3, 5, 12]];
    let parts: Vec<Vec<f32>> = shapes.iter().map(|s| rng.vec(s.iter().product(), -1.0, 1.0)).collect();
    let out_shape = [2, 3, 5, 20];
    let want =
        cpu::concat::concat_channels(&parts.iter().zip(&shapes).map(|(p, s)| (p.as_slice(), s.as_slice())).collect::<Vec<_>>(), &out_shape)
            .unwrap();
    let gparts: Vec<GpuTensor> = parts.iter().zip(&shapes).map(|(p, s)| up(ctx, "part", s, p)).collect();
    let gout = GpuTensor::zeros(ctx, "concat", &out_shape);
    record(ctx, |enc| k::concat::concat_channels(enc, &gparts.iter().collect::<Vec<_>>(), &gout));
    // Exact: the kernel only moves, compares or selects values.
    assert_close("concat", &gout.download(ctx).unwrap(), &want, 0.0, 0.0);
    let splits: Vec<GpuTensor> = shapes.iter().map(|s| GpuTensor::zeros(ctx, "split", s)).collect();
    record(ctx, |enc| k::concat::split_channels(enc, &gout, &splits.iter().collect::<Vec<_>>()));
    let want_split = cpu::concat::split_channels(&want, &out_shape, &shapes.iter().map(|s| s.as_slice()).collect::<Vec<_>>()).unwrap();
    for ((g, w), p) in splits.iter().zip(&want_split).zip(&parts) {
        // Exact: the kernel only moves, compares or selects values.
        assert_close("split", &g.download(ctx).unwrap(), w, 0.0, 0.0);
        // Exact: the kernel only moves, compares or selects values.
        assert_close("split round trip", w, p, 0.0, 0.0);
    }
    let err = k::concat::channel_offsets("concat", &[&[2, 3, 5, 7], &[2, 4, 5, 1]], &[2, 3, 5, 8]).unwrap_err().to_string();
    assert!(err.contains("[2, 4, 5, 1]"), "{err}");
}

#[test]
fn l2_normalize_matches_cpu_including_inverse_norm() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(90);
    let (rows, cols) = (11, 128);
    let mut x = rng.vec(rows * cols, -1.0, 1.0);
    x[cols..2 * cols].iter_mut().for_each(|v| *v = 0.0); // an all-zero row hits eps
    let (want_y, want_inv) = cpu::l2_normalize::l2_normalize(&x, &[rows, cols], 1e-10).unwrap();
    let gx = up(ctx, "x", &[rows, cols], &x);
    let (gy, ginv) = (GpuTensor::zeros(ctx, "y", &[rows, cols]), GpuTensor::zeros(ctx, "inv", &[rows]));
    record(ctx, |enc| k::l2_normalize::l2_normalize(enc, &gx, &gy, &ginv, 1e-10));
    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
    assert_close("l2_normalize", &gy.download(ctx).unwrap(), &want_y, 1e-6, 1e-5);
    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
    assert_close("l2_normalize inv", &ginv.download(ctx).unwrap(), &want_inv, 1e-6, 1e-5);
}

/// Random RGB8 images `[n, h, w]`: their shape and values as 4 float channels (R, G, B, 0), the layout the
/// `*_rgb8` resizes produce, and the packed pixels on the GPU.
fn rgb8_image(ctx: &facegpu::gpu::GpuContext, rng: &mut Rng, [n, h, w]: [usize; 3]) -> ([usize; 4], Vec<f32>, k::image::PackedImages) {
    let px: Vec<[u8; 3]> = (0..n * h * w).map(|_| [0, 1, 2].map(|_| rng.vec(1, 0.0, 256.0)[0].min(255.0) as u8)).collect();
    let floats = px.iter().flat_map(|p| [f32::from(p[0]), f32::from(p[1]), f32::from(p[2]), 0.0]).collect();
    let packed: Vec<u32> = px.iter().map(|&p| k::image::pack_rgb8(p)).collect();
    let mut images = k::image::PackedImages::default();
    images.upload(ctx, [n, h, w], &packed).unwrap();
    ([n, h, w, 4], floats, images)
}

#[test]
fn resize_bilinear_and_area_up_and_down_match_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(100);
    let xs = [2, 23, 17, 3];
    let x = rng.vec(xs.iter().product(), 0.0, 255.0);
    let gx = up(ctx, "x", &xs, &x);
    let (xs4, x4, gx4) = rgb8_image(ctx, &mut rng, [2, 23, 17]);
    // Shrink, shrink, grow, grow, identity, and mixed (one axis grows: OpenCV's enlarging rule on both).
    for out in [(12, 9), (7, 5), (40, 31), (24, 24), (23, 17), (30, 10)] {
        let gy = GpuTensor::zeros(ctx, "y", &[2, out.0, out.1, 3]);
        record(ctx, |enc| k::image::resize_bilinear(enc, &gx, &gy));
        // Pixel values up to 255 interpolated in another order: 1e-3 absolute is 4e-6 of the range.
        assert_close(
            &format!("resize_bilinear {out:?}"),
            &gy.download(ctx).unwrap(),
            &cpu::image::resize_bilinear(&x, &xs, out).unwrap(),
            1e-3,
            1e-5,
        );
        record(ctx, |enc| k::image::resize_area(enc, &gx, &gy, Transform::IDENTITY));
        // Pixel values up to 255 weighted and summed over a window in another order: 1e-3 absolute is
        // 4e-6 of the range.
        assert_close(
            &format!("resize_area {out:?}"),
            &gy.download(ctx).unwrap(),
            &cpu::image::resize_area(&x, &xs, out, Transform::IDENTITY).unwrap(),
            1e-3,
            1e-5,
        );
        // Packed RGB8 into 4 channels (R, G, B, 0), a pixel per invocation.
        let gy4 = GpuTensor::zeros(ctx, "y", &[2, out.0, out.1, 4]);
        record(ctx, |enc| k::image::resize_area_rgb8(enc, &gx4, &gy4, Transform::IDENTITY));
        assert_close(
            &format!("resize_area_rgb8 {out:?}"),
            &gy4.download(ctx).unwrap(),
            &cpu::image::resize_area(&x4, &xs4, out, Transform::IDENTITY).unwrap(),
            1e-3,
            1e-5,
        );
    }
}

#[test]
fn resize_area_rounds_and_normalizes_like_mtcnn_pyramid() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(101);
    let xs = [1, 31, 26, 3];
    let x = rng.vec(xs.iter().product(), 0.0, 255.0);
    let t = Transform { round: true, add: -127.5, mul: 0.0078125 };
    let gx = up(ctx, "x", &xs, &x);
    let gy = GpuTensor::zeros(ctx, "y", &[1, 19, 16, 3]);
    record(ctx, |enc| k::image::resize_area(enc, &gx, &gy, t));
    let want = cpu::image::resize_area(&x, &xs, (19, 16), t).unwrap();
    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
    assert_close("resize_area rounded", &gy.download(ctx).unwrap(), &want, 1e-6, 0.0);
    let (xs4, x4, gx4) = rgb8_image(ctx, &mut rng, [1, 31, 26]);
    let gy4 = GpuTensor::zeros(ctx, "y", &[1, 19, 16, 4]);
    record(ctx, |enc| k::image::resize_area_rgb8(enc, &gx4, &gy4, t));
    // As above, on integer pixel values summed exactly: the scaling alone rounds.
    assert_close(
        "resize_area_rgb8 rounded",
        &gy4.download(ctx).unwrap(),
        &cpu::image::resize_area(&x4, &xs4, (19, 16), t).unwrap(),
        1e-6,
        0.0,
    );
    // Rounded to whole pixel values before normalizing.
    assert!(want.iter().all(|&v| ((v / 0.0078125 + 127.5) - (v / 0.0078125 + 127.5).round()).abs() < 1e-3));
}

/// Windows many texels wide: the packed resizes sum a window's inner columns 4 pixels to a texel, with
/// partial texels at either end, rows whose width is not a multiple of 4, and boxes over every border.
#[test]
fn rgb8_resizes_over_wide_windows_match_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(103);
    let (xs4, x4, gx4) = rgb8_image(ctx, &mut rng, [2, 61, 93]);
    for out in [(5, 3), (4, 7), (13, 29), (1, 1)] {
        let gy4 = GpuTensor::zeros(ctx, "y", &[2, out.0, out.1, 4]);
        let t = Transform { round: true, add: -127.5, mul: 0.0078125 };
        record(ctx, |enc| k::image::resize_area_rgb8(enc, &gx4, &gy4, t));
        let want = cpu::image::resize_area(&x4, &xs4, out, t).unwrap();
        // A few fp32 operations or a short sum per value, in another order: about 1e-6.
        assert_close(&format!("resize_area_rgb8 {out:?}"), &gy4.download(ctx).unwrap(), &want, 1e-6, 0.0);
    }
    // (image, x0, y0, cw, ch): inside, over the left/top, right/bottom and all four borders, wholly outside.
    #[rustfmt::skip]
    let boxes: Vec<i32> = vec![0, 5, 7, 70, 50,  1, -13, -9, 60, 41,  0, 50, 30, 61, 47,  1, -20, -20, 140, 110,  0, 100, 5, 30, 30];
    let n = boxes.len() / 5;
    let gb = GpuTensor::upload_u32(ctx, "boxes", &[n, 5], &boxes.iter().map(|&v| v as u32).collect::<Vec<_>>()).unwrap();
    let t = Transform { round: false, add: -127.5, mul: 0.0078125 };
    for size in [6, 24] {
        let gy4 = GpuTensor::zeros(ctx, "y", &[n, size, size, 4]);
        record(ctx, |enc| k::image::crop_resize_area_rgb8(enc, &gx4, &gb, &gy4, t));
        let want = cpu::image::crop_resize_area(&x4, &xs4, &boxes, (size, size), t).unwrap();
        // Sums of tens to hundreds of fp32 terms in another order (tree vs sequential): about 1e-5.
        assert_close(&format!("crop_resize_area_rgb8 {size}"), &gy4.download(ctx).unwrap(), &want, 1e-5, 1e-5);
    }
}

#[test]
fn crop_resize_area_pads_with_zeros_and_matches_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(102);
    let xs = [2, 20, 27, 3];
    let x = rng.vec(xs.iter().product(), 0.0, 255.0);
    let gx = up(ctx, "x", &xs, &x);
    // (image, x0, y0, cw, ch): inside, across the top-left and bottom-right borders, smaller than the
    // output, non-square (one axis grows), wholly outside.
    #[rustfmt::skip]
    let boxes: Vec<i32> = vec![0, 2, 3, 12, 12,  1, -5, -4, 30, 30,  0, 20, 10, 15, 15,  1, 4, 4, 7, 7,  0, 3, 2, 25, 9,  1, 40, 40, 5, 5];
    let n = boxes.len() / 5;
    let gb = GpuTensor::upload_u32(ctx, "boxes", &[n, 5], &boxes.iter().map(|&v| v as u32).collect::<Vec<_>>()).unwrap();
    let t = Transform { round: false, add: -127.5, mul: 0.0078125 };
    let gy = GpuTensor::zeros(ctx, "y", &[n, 24, 24, 3]);
    record(ctx, |enc| k::image::crop_resize_area(enc, &gx, &gb, &gy, t));
    let want = cpu::image::crop_resize_area(&x, &xs, &boxes, (24, 24), t).unwrap();
    // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's statistics)
    // summed in another order by the GPU's tiles: errors grow to about 1e-5 relative, 1e-4 bounds them.
    assert_close("crop_resize_area", &gy.download(ctx).unwrap(), &want, 1e-4, 1e-5);
    // The same boxes on packed RGB8 images (MTCNN's input), a pixel per invocation.
    let (xs4, x4, gx4) = rgb8_image(ctx, &mut rng, [2, 20, 27]);
    let gy4 = GpuTensor::zeros(ctx, "y", &[n, 24, 24, 4]);
    record(ctx, |enc| k::image::crop_resize_area_rgb8(enc, &gx4, &gb, &gy4, t));
    let want4 = cpu::image::crop_resize_area(&x4, &xs4, &boxes, (24, 24), t).unwrap();
    // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's statistics)
    // summed in another order by the GPU's tiles: errors grow to about 1e-5 relative, 1e-4 bounds them.
    assert_close("crop_resize_area_rgb8", &gy4.download(ctx).unwrap(), &want4, 1e-4, 1e-5);
    // A box wholly outside the image is the normalized zero everywhere.
    let last = &want[(n - 1) * 24 * 24 * 3..];
    assert!(last.iter().all(|&v| v == -127.5 * 0.0078125));
    // A 12x12 box resized to 24x24 equals resize_area of the same crop taken on the CPU.
    let crop: Vec<f32> = (0..12)
        .flat_map(|r| (0..12).flat_map(move |c| (0..3).map(move |ch| (r, c, ch))))
        .map(|(r, c, ch)| x[((3 + r) * 27 + 2 + c) * 3 + ch])
        .collect();
    // The same arithmetic on both sides of the equality, up to where the window sums start: 1e-6.
    assert_close(
        "crop == resize of crop",
        &want[..24 * 24 * 3],
        &cpu::image::resize_area(&crop, &[1, 12, 12, 3], (24, 24), t).unwrap(),
        1e-6,
        0.0,
    );
}

#[test]
fn resize_area_integer_shrink_is_the_block_mean() {
    // A 2x shrink of a known image: every output is the mean of its 2x2 block.
    let xs = [1, 4, 4, 1];
    let x: Vec<f32> = (0..16).map(|v| v as f32).collect();
    let y = cpu::image::resize_area(&x, &xs, (2, 2), Transform::IDENTITY).unwrap();
    assert_close("area 2x", &y, &[2.5, 4.5, 10.5, 12.5], 1e-6, 0.0);
}

#[test]
fn crop_pad_flip_and_standardizations_match_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(110);
    let xs = [2, 9, 11, 3];
    let n: usize = xs.iter().product();
    let x = rng.vec(n, 0.0, 255.0);
    let gx = up(ctx, "x", &xs, &x);
    let gc = GpuTensor::zeros(ctx, "crop", &[2, 8, 14, 3]);
    let (gf, gs, gp, gst) = (
        GpuTensor::zeros(ctx, "flip", &xs),
        GpuTensor::zeros(ctx, "fixed", &xs),
        GpuTensor::zeros(ctx, "prewhiten", &xs),
        GpuTensor::zeros(ctx, "stats", &[2, 2]),
    );
    record(ctx, |enc| {
        k::image::crop_pad(enc, &gx, &gc, -2, 3)?;
        k::image::flip_h(enc, &gx, &gf)?;
        k::image::fixed_standardize(enc, &gx, &gs)?;
        k::image::prewhiten(enc, &gx, &gp, &gst)
    });
    // Exact: the kernel only moves, compares or selects values.
    assert_close("crop_pad", &gc.download(ctx).unwrap(), &cpu::image::crop_pad(&x, &xs, (8, 14), -2, 3).unwrap(), 0.0, 0.0);
    // Exact: the kernel only moves, compares or selects values.
    assert_close("flip_h", &gf.download(ctx).unwrap(), &cpu::image::flip_h(&x, &xs).unwrap(), 0.0, 0.0);
    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
    assert_close("fixed_standardize", &gs.download(ctx).unwrap(), &cpu::image::fixed_standardize(&x), 1e-6, 1e-6);
    let (want, want_stats) = cpu::image::prewhiten(&x, &xs).unwrap();
    // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's statistics)
    // summed in another order by the GPU's tiles: errors grow to about 1e-5 relative, 1e-4 bounds them.
    assert_close("prewhiten", &gp.download(ctx).unwrap(), &want, 1e-4, 1e-4);
    // Sums of thousands of values of order 100 (mean and standard deviation of an image): 1e-3 absolute.
    assert_close("prewhiten stats", &gst.download(ctx).unwrap(), &want_stats, 1e-3, 1e-5);
}

#[test]
fn pipelines_are_compiled_once_per_shader_and_entry() {
    let ctx = gpu_or_skip!();
    let first = ctx.pipeline(facegpu::gpu::Shader::Elementwise, "relu").unwrap();
    let x = up(ctx, "x", &[4], &[1.0, -2.0, 3.0, -4.0]);
    let y = GpuTensor::zeros(ctx, "y", &[4]);
    record(ctx, |enc| k::elementwise::relu(enc, &x, &y));
    let again = ctx.pipeline(facegpu::gpu::Shader::Elementwise, "relu").unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &again), "relu must come from the cache, not be recompiled");
    assert_eq!(y.download(ctx).unwrap(), vec![1.0, 0.0, 3.0, 0.0]);
}

#[test]
fn missing_entry_point_is_an_error_naming_shader_and_entry() {
    let ctx = gpu_or_skip!();
    let msg = ctx.pipeline(facegpu::gpu::Shader::Elementwise, "no_such_entry").unwrap_err().to_string();
    assert!(msg.contains("elementwise.wgsl") && msg.contains("no_such_entry"), "{msg}");
}

#[test]
fn conv2d_vectorized_path_channels_multiple_of_4_matches_cpu() {
    let ctx = gpu_or_skip!();
    // c and oc multiples of 4 take the vec4 loads; oc 20 and 4 leave a mostly empty last 16-wide tile whose
    // second weight vec4 lies past the row (and, for the last row, past the buffer).
    check_conv(ctx, 12, [2, 9, 11, 12], [3, 3, 12, 20], (2, 2), Padding::Same, true, true, None, 1);
    check_conv(ctx, 13, [1, 7, 6, 8], [1, 7, 8, 4], (1, 1), Padding::Same, false, false, None, 2);
    check_conv(ctx, 14, [2, 5, 7, 16], [1, 1, 16, 24], (1, 1), Padding::Same, true, false, Some(0.2), 1);
    check_conv(ctx, 15, [1, 6, 7, 4], [3, 2, 4, 8], (1, 2), Padding::Explicit(2, 0, 1, 3), false, true, None, 0);
}

#[test]
fn conv2d_wide_tiles_of_32_channels_match_cpu() {
    // Output channels that round up to 32 with at most 1/8 more take tiles of 32 channels (two 16-channel
    // tiles fed by the same x loads): 64 exactly; 152, whose last tile's second half is ragged; 144, whose
    // last tile's second half lies past the end (it repeats the first and is not stored); split-K, the
    // solo entry, padding and a residual epilogue. 48 (a quarter wasted) keeps tiles of 16.
    let ctx = gpu_or_skip!();
    let plan = |xs: [usize; 4], ws: [usize; 4]| {
        let p = facegpu::kernels::conv2d::Conv2dParams::new(&xs, &ws, (1, 1), Padding::Same).unwrap();
        facegpu::kernels::conv2d::Conv2dDispatch::plan(ctx, p)
    };
    let wide = |xs: [usize; 4], ws: [usize; 4]| {
        let (d, _) = plan(xs, ws);
        d.constants(ctx).iter().any(|&(name, v)| name == "WIDE" && v == 1.0)
    };
    assert!(wide([2, 9, 11, 12], [3, 3, 12, 64]));
    assert!(wide([2, 9, 11, 12], [3, 3, 12, 152]));
    assert!(!wide([2, 9, 11, 12], [3, 3, 12, 48]));
    assert!(plan([1, 3, 3, 256], [1, 1, 256, 144]).0.ksplits > 1);
    check_conv(ctx, 60, [2, 9, 11, 12], [3, 3, 12, 64], (1, 1), Padding::Same, true, true, None, 1);
    check_conv(ctx, 61, [2, 5, 7, 16], [1, 1, 16, 152], (1, 1), Padding::Same, true, false, Some(0.2), 1);
    check_conv(ctx, 62, [3, 6, 5, 8], [3, 3, 8, 144], (2, 2), Padding::Same, false, true, None, 2);
    check_conv(ctx, 63, [1, 3, 3, 256], [1, 1, 256, 144], (1, 1), Padding::Same, true, false, Some(0.5), 1);
    check_conv(ctx, 64, [2, 17, 17, 32], [3, 3, 32, 48], (1, 1), Padding::Same, true, true, None, 0);
}

#[test]
fn conv2d_many_row_tiles_and_column_tiles_match_cpu() {
    let ctx = gpu_or_skip!();
    // More 8-row tiles than one subgroup holds, several column tiles and a ragged last subgroup: the lanes
    // of a subgroup share a column tile and its weights (vec4 path, then the scalar path at PNet's 3->10).
    check_conv(ctx, 16, [2, 20, 21, 8], [3, 3, 8, 20], (1, 1), Padding::Same, true, false, None, 1);
    check_conv(ctx, 17, [1, 30, 31, 3], [3, 3, 3, 10], (1, 1), Padding::Valid, true, false, None, 2);
}

#[test]
fn conv2d_small_layers_split_the_reduction_and_match_cpu() {
    // Few tiles and many input channels: the channels are split (split-K) and the parts' sums meet in
    // conv2d_splitk_finish, which applies the epilogue (bias, affine, residual, ReLU/PReLU).
    let ctx = gpu_or_skip!();
    for (xs, ws) in [([1, 3, 3, 256], [1, 1, 256, 36]), ([2, 5, 5, 128], [3, 3, 128, 20])] {
        let p = facegpu::kernels::conv2d::Conv2dParams::new(&xs, &ws, (1, 1), Padding::Same).unwrap();
        assert!(facegpu::kernels::conv2d::Conv2dDispatch::plan(ctx, p).0.ksplits > 1, "{xs:?} * {ws:?} is split");
    }
    // With fewer pixel tiles than a subgroup has lanes (9 pixels: 2 tiles), each lane takes its own tile
    // and loads its own weights (conv2d_solo); a layer with enough tiles shares them.
    if ctx.subgroup_lanes().is_some() {
        let tiny = facegpu::kernels::conv2d::Conv2dParams::new(&[1, 3, 3, 256], &[1, 1, 256, 36], (1, 1), Padding::Same).unwrap();
        assert_eq!(facegpu::kernels::conv2d::Conv2dDispatch::plan(ctx, tiny).0.entry(), "conv2d_solo");
        let big = facegpu::kernels::conv2d::Conv2dParams::new(&[2, 20, 21, 8], &[3, 3, 8, 20], (1, 1), Padding::Same).unwrap();
        assert_eq!(facegpu::kernels::conv2d::Conv2dDispatch::plan(ctx, big).0.entry(), "conv2d");
    }
    check_conv(ctx, 18, [1, 3, 3, 256], [1, 1, 256, 36], (1, 1), Padding::Same, true, true, Some(0.17), 2);
    check_conv(ctx, 19, [2, 5, 5, 128], [3, 3, 128, 20], (1, 1), Padding::Same, true, false, None, 1);
    check_conv(ctx, 20, [1, 8, 8, 384], [1, 1, 384, 64], (1, 1), Padding::Valid, false, true, Some(1.0), 0);
    // Few tiles without a split (c below 64 per part), vec4 and scalar channels: each lane on its own.
    check_conv(ctx, 21, [1, 3, 3, 32], [1, 3, 32, 40], (1, 1), Padding::Same, true, false, None, 2);
    check_conv(ctx, 22, [1, 4, 5, 7], [3, 3, 7, 9], (1, 1), Padding::Same, false, true, Some(0.5), 1);
}

#[test]
fn conv2d_tiled_small_layers_split_the_reduction_and_match_cpu() {
    // The GPU shape splits k where the output has few 64 x 64 blocks (block8's 3x3 maps, block17's 8x8 at
    // batch 1); the splits' sums meet in conv2d_splitk_finish, which applies the epilogue. Not where the
    // output's channels are not multiples of 4 (the finish stores vec4s) or the layer fills the GPU.
    let ctx = gpu_or_skip!();
    let splits = |xs: [usize; 4], ws: [usize; 4], y: (u32, u32)| {
        let p = facegpu::kernels::conv2d::Conv2dParams::new(&xs, &ws, (1, 1), Padding::Same).unwrap();
        facegpu::kernels::conv2d::tiled_splits(&p, y)
    };
    assert_eq!(splits([1, 3, 3, 1792], [1, 1, 1792, 192], (0, 192)), 14);
    assert_eq!(splits([1, 8, 8, 128], [1, 7, 128, 128], (0, 128)), 7);
    assert_eq!(splits([1, 3, 3, 256], [1, 1, 256, 36], (0, 36)), 2);
    assert_eq!(splits([1, 3, 3, 256], [1, 1, 256, 35], (0, 35)), 1);
    assert_eq!(splits([1, 3, 3, 256], [1, 1, 256, 32], (2, 34)), 1);
    assert_eq!(splits([32, 17, 17, 256], [1, 1, 256, 32], (0, 32)), 1);
    check_conv(ctx, 80, [1, 3, 3, 1792], [1, 1, 1792, 192], (1, 1), Padding::Same, true, false, Some(0.2), 1);
    check_conv(ctx, 81, [1, 8, 8, 128], [1, 7, 128, 128], (1, 1), Padding::Same, false, true, None, 1);
    check_conv(ctx, 82, [2, 5, 5, 128], [3, 3, 128, 20], (1, 1), Padding::Same, true, true, Some(0.5), 2);
}

#[test]
fn conv2d_row_tiles_slide_across_taps_and_match_cpu() {
    // Stride-1 convs at least 5 taps wide, or with 4 input channels, take 8-column tiles of one output
    // row and slide the loaded input columns across the taps: padding on either side, ragged row ends,
    // several images, explicit padding, and a split reduction. At 3 taps and 8 channels or more the same
    // layers take flat tiles.
    let ctx = gpu_or_skip!();
    let cases: [([usize; 4], [usize; 4], Padding, bool); 8] = [
        ([2, 9, 40, 8], [3, 5, 8, 16], Padding::Valid, true),
        ([3, 6, 31, 4], [3, 3, 4, 12], Padding::Same, true),
        ([1, 5, 16, 12], [1, 7, 12, 20], Padding::Same, true),
        ([1, 6, 23, 8], [3, 5, 8, 8], Padding::Explicit(2, 0, 1, 3), true),
        ([2, 7, 47, 16], [3, 5, 16, 32], Padding::Valid, true),
        ([1, 2, 8, 256], [3, 7, 256, 16], Padding::Same, true),
        ([2, 9, 40, 8], [3, 3, 8, 16], Padding::Valid, false),
        ([3, 6, 31, 12], [3, 3, 12, 12], Padding::Same, false),
    ];
    for (i, (xs, ws, pad, rows)) in cases.into_iter().enumerate() {
        let p = facegpu::kernels::conv2d::Conv2dParams::new(&xs, &ws, (1, 1), pad).unwrap();
        let (d, _) = facegpu::kernels::conv2d::Conv2dDispatch::plan(ctx, p);
        assert_eq!(d.tile_layout == TileLayout::Rows as u32, rows, "{xs:?} * {ws:?}: layout {}", d.tile_layout);
        assert_eq!(d.ksplits > 1, i == 5, "{xs:?} * {ws:?}: split {}", d.ksplits);
        let (bias, affine, residual, act) = [(true, false, None, 2), (false, true, Some(0.3), 1)][i % 2];
        check_conv(ctx, 30 + i as u64, xs, ws, (1, 1), pad, bias, affine, residual, act);
    }
}

/// conv2d_max_pool2 against the CPU twins of conv2d and then max_pool (2x2, stride 2, SAME).
fn check_conv_pool(ctx: &facegpu::gpu::GpuContext, seed: u64, xs: [usize; 4], ws: [usize; 4], padding: Padding, prelu: bool) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(xs.iter().product(), -1.0, 1.0);
    let w = rng.vec(ws.iter().product(), -0.5, 0.5);
    let oc = ws[3];
    let (b, al, sc, sh) = (rng.vec(oc, -1.0, 1.0), rng.vec(oc, 0.0, 0.3), rng.vec(oc, 0.5, 1.5), rng.vec(oc, -0.5, 0.5));
    let cpu_epi = if prelu {
        Epilogue { bias: Some(b.as_slice()), act: Activation::Prelu(al.as_slice()), ..Default::default() }
    } else {
        Epilogue { affine: Some((sc.as_slice(), sh.as_slice())), act: Activation::Relu, ..Default::default() }
    };
    let (conv, p) = cpu::conv2d::conv2d(&x, &xs, &w, &ws, &cpu_epi, (1, 1), padding).unwrap();
    let (want, _, pp) = cpu::pool::max_pool(&conv, &p.out_shape(), (2, 2), (2, 2), Padding::Same).unwrap();
    let (gx, gw) = (up(ctx, "x", &xs, &x), up(ctx, "w", &ws, &w));
    let (gb, gal, gsc, gsh) = (up(ctx, "b", &[oc], &b), up(ctx, "al", &[oc], &al), up(ctx, "sc", &[oc], &sc), up(ctx, "sh", &[oc], &sh));
    let gpu_epi = if prelu {
        Epilogue { bias: Some(&gb), act: Activation::Prelu(&gal), ..Default::default() }
    } else {
        Epilogue { affine: Some((&gsc, &gsh)), act: Activation::Relu, ..Default::default() }
    };
    let gy = GpuTensor::zeros(ctx, "y", &pp.out_shape());
    record(ctx, |enc| k::conv2d::conv2d_max_pool2(enc, &gx, &gw, &gpu_epi, &gy, padding).map(|_| ()));
    // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's statistics)
    // summed in another order by the GPU's tiles: errors grow to about 1e-5 relative, 1e-4 bounds them.
    assert_close(&format!("conv2d_max_pool2 {xs:?} * {ws:?}"), &gy.download(ctx).unwrap(), &want, 1e-4, 1e-4);
}

#[test]
fn conv2d_max_pool2_matches_conv_then_pool_on_cpu() {
    // The conv's output pooled 2x2 in registers: odd heights and widths (windows cut by the edge),
    // several images, PNet's conv1 (4 -> 12) and ONet's conv3 (64 -> 64), a ragged column tile (20).
    let ctx = gpu_or_skip!();
    check_conv_pool(ctx, 50, [2, 13, 17, 4], [3, 3, 4, 12], Padding::Valid, true);
    check_conv_pool(ctx, 51, [1, 10, 10, 64], [3, 3, 64, 64], Padding::Valid, true);
    check_conv_pool(ctx, 52, [1, 9, 12, 8], [3, 3, 8, 20], Padding::Same, false);
    check_conv_pool(ctx, 53, [3, 6, 7, 4], [3, 3, 4, 16], Padding::Same, true);
    check_conv_pool(ctx, 54, [1, 40, 37, 12], [3, 3, 12, 16], Padding::Valid, true);
    // A residual is refused by name.
    let g = GpuTensor::zeros(ctx, "g", &[1, 6, 6, 4]);
    let gw = GpuTensor::zeros(ctx, "w", &[3, 3, 4, 4]);
    let (res, y) = (GpuTensor::zeros(ctx, "res", &[1, 4, 4, 4]), GpuTensor::zeros(ctx, "y", &[1, 2, 2, 4]));
    let epi = Epilogue { residual: Some((&res, 1.0)), ..Default::default() };
    let mut enc = facegpu::gpu::Encoder::new(ctx);
    let err = k::conv2d::conv2d_max_pool2(&mut enc, &g, &gw, &epi, &y, Padding::Valid).unwrap_err().to_string();
    assert!(err.contains("conv2d_max_pool2") && err.contains("residual"), "{err}");
}

/// conv2d_head8 against the CPU twins of conv2d (bias, PReLU) and then the 1x1 head (bias).
fn check_conv_head(ctx: &facegpu::gpu::GpuContext, seed: u64, xs: [usize; 4], ws: [usize; 4], padding: Padding) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(xs.iter().product(), -1.0, 1.0);
    let w = rng.vec(ws.iter().product(), -0.5, 0.5);
    let oc = ws[3];
    let (b, al) = (rng.vec(oc, -1.0, 1.0), rng.vec(oc, 0.0, 0.3));
    let (hw, hb) = (rng.vec(oc * 8, -0.5, 0.5), rng.vec(8, -1.0, 1.0));
    let epi = Epilogue { bias: Some(b.as_slice()), act: Activation::Prelu(al.as_slice()), ..Default::default() };
    let (conv, p) = cpu::conv2d::conv2d(&x, &xs, &w, &ws, &epi, (1, 1), padding).unwrap();
    let head = Epilogue { bias: Some(hb.as_slice()), ..Default::default() };
    let (want, hp) = cpu::conv2d::conv2d(&conv, &p.out_shape(), &hw, &[1, 1, oc, 8], &head, (1, 1), Padding::Valid).unwrap();
    assert!(facegpu::kernels::conv2d::Conv2dDispatch::head8_fits(&p), "{xs:?} * {ws:?}");
    let (gx, gw, gb, gal) = (up(ctx, "x", &xs, &x), up(ctx, "w", &ws, &w), up(ctx, "b", &[oc], &b), up(ctx, "al", &[oc], &al));
    let (ghw, ghb) = (up(ctx, "hw", &[1, 1, oc, 8], &hw), up(ctx, "hb", &[8], &hb));
    let gepi = Epilogue { bias: Some(&gb), act: Activation::Prelu(&gal), ..Default::default() };
    let gy = GpuTensor::zeros(ctx, "y", &hp.out_shape());
    record(ctx, |enc| k::conv2d::conv2d_head8(enc, &gx, &gw, &gepi, &ghw, &ghb, &gy, padding).map(|_| ()));
    // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's statistics)
    // summed in another order by the GPU's tiles: errors grow to about 1e-5 relative, 1e-4 bounds them.
    assert_close(&format!("conv2d_head8 {xs:?} * {ws:?}"), &gy.download(ctx).unwrap(), &want, 1e-4, 1e-4);
}

#[test]
fn conv2d_head8_matches_conv_then_head_on_cpu() {
    // The conv's 16-channel tiles each multiply by their rows of an 8-output 1x1 head; the parts meet in
    // conv2d_splitk_finish with the head's bias (MTCNN's PNet conv3 + heads): 2 and 3 parts, padding.
    let ctx = gpu_or_skip!();
    check_conv_head(ctx, 60, [2, 9, 25, 16], [3, 3, 16, 32], Padding::Valid);
    check_conv_head(ctx, 61, [1, 6, 16, 12], [3, 3, 12, 48], Padding::Same);
    check_conv_head(ctx, 62, [3, 5, 33, 4], [3, 3, 4, 16], Padding::Valid);
    // 44 columns round up to 48 (PNet on a 120x97 pyramid level): enough row tiles that dispatching one
    // per 8 real pixels instead of per 8 rounded ones leaves whole subgroups of the last rows undone.
    check_conv_head(ctx, 63, [2, 57, 46, 16], [3, 3, 16, 32], Padding::Valid);
    // A conv without row tiles (17 columns round up to 24) is refused by name.
    let p = facegpu::kernels::conv2d::Conv2dParams::new(&[1, 5, 19, 16], &[3, 3, 16, 32], (1, 1), Padding::Valid).unwrap();
    assert!(!facegpu::kernels::conv2d::Conv2dDispatch::head8_fits(&p));
    let (gx, gw) = (GpuTensor::zeros(ctx, "x", &[1, 5, 19, 16]), GpuTensor::zeros(ctx, "w", &[3, 3, 16, 32]));
    let (ghw, ghb, gy) =
        (GpuTensor::zeros(ctx, "hw", &[1, 1, 32, 8]), GpuTensor::zeros(ctx, "hb", &[8]), GpuTensor::zeros(ctx, "y", &[1, 3, 17, 8]));
    let mut enc = facegpu::gpu::Encoder::new(ctx);
    let err = k::conv2d::conv2d_head8(&mut enc, &gx, &gw, &Epilogue::default(), &ghw, &ghb, &gy, Padding::Valid).unwrap_err().to_string();
    assert!(err.contains("conv2d_head8") && err.contains("[1, 5, 19, 16]"), "{err}");
}

#[test]
fn conv2d_into_writes_its_channel_slice_and_nothing_else() {
    // A branch's last conv writes its part of a concatenation in place: flat tiles (stride 2), row tiles,
    // a split reduction (its finish pass writes the slice) and the scalar path (odd channel counts).
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(70);
    let cases = [
        ([2, 9, 11, 8], [3, 3, 8, 16], (2, 2), 40, 8),
        ([1, 6, 24, 8], [3, 3, 8, 20], (1, 1), 36, 12),
        ([1, 3, 3, 256], [1, 1, 256, 32], (1, 1), 96, 64),
        ([1, 5, 6, 3], [3, 3, 3, 5], (1, 1), 11, 3),
    ];
    for (xs, ws, stride, total, off) in cases {
        let x = rng.vec(xs.iter().product(), -1.0, 1.0);
        let w = rng.vec(ws.iter().product(), -0.5, 0.5);
        let b = rng.vec(ws[3], -1.0, 1.0);
        let cpu_epi = Epilogue { bias: Some(b.as_slice()), act: Activation::Relu, ..Default::default() };
        let (want, p) = cpu::conv2d::conv2d(&x, &xs, &w, &ws, &cpu_epi, stride, Padding::Same).unwrap();
        let [n, oh, ow, oc] = p.out_shape();
        for ctx in common::both_shapes(ctx) {
            let (gx, gw, gb) = (up(ctx, "x", &xs, &x), up(ctx, "w", &ws, &w), up(ctx, "b", &[oc], &b));
            let gy = up(ctx, "y", &[n, oh, ow, total], &vec![7.0; n * oh * ow * total]);
            let epi = Epilogue { bias: Some(&gb), act: Activation::Relu, ..Default::default() };
            record(ctx, |enc| k::conv2d::conv2d_into(enc, &gx, &gw, &epi, &gy, off, stride, Padding::Same).map(|_| ()));
            let got = gy.download(ctx).unwrap();
            let slice: Vec<f32> = got.chunks_exact(total).flat_map(|px| px[off..off + oc].to_vec()).collect();
            let name = format!("conv2d_into {xs:?} * {ws:?} at {off} of {total} ({:?} kernels)", ctx.kernel_shape());
            // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's statistics)
            // summed in another order by the GPU's tiles: errors grow to about 1e-5 relative, 1e-4 bounds them.
            assert_close(&name, &slice, &want, 1e-4, 1e-4);
            let others = got.chunks_exact(total).flat_map(|px| px[..off].iter().chain(&px[off + oc..]).copied().collect::<Vec<_>>());
            assert!(others.into_iter().all(|v| v == 7.0), "{name} touched channels outside {off}..{}", off + oc);
        }
    }
    // A slice past the end is refused by name.
    let (gx, gw, gy) =
        (GpuTensor::zeros(ctx, "x", &[1, 4, 4, 4]), GpuTensor::zeros(ctx, "w", &[1, 1, 4, 8]), GpuTensor::zeros(ctx, "y", &[1, 4, 4, 12]));
    let mut enc = facegpu::gpu::Encoder::new(ctx);
    let err = k::conv2d::conv2d_into(&mut enc, &gx, &gw, &Epilogue::default(), &gy, 8, (1, 1), Padding::Same).unwrap_err().to_string();
    assert!(err.contains("[1, 4, 4, 12]") && err.contains("8..16"), "{err}");
}

#[test]
fn conv2d_without_subgroups_matches_cpu() {
    // Adapters without subgroup operations compile conv2d.wgsl's other lines: every lane loads its weights.
    gpu_or_skip!();
    let ctx = facegpu::gpu::GpuContext::with_subgroups(false).expect("a second context on the same adapter");
    assert_eq!(ctx.subgroup_lanes(), None);
    check_conv(&ctx, 1, [2, 11, 13, 5], [3, 3, 5, 7], (2, 2), Padding::Same, true, true, None, 2);
    check_conv(&ctx, 12, [2, 9, 11, 12], [3, 3, 12, 20], (2, 2), Padding::Same, true, true, None, 1);
    check_conv(&ctx, 16, [2, 20, 21, 8], [3, 3, 8, 20], (1, 1), Padding::Same, true, false, None, 1);
    check_conv(&ctx, 17, [1, 30, 31, 3], [3, 3, 3, 10], (1, 1), Padding::Valid, true, false, None, 2);
    check_conv(&ctx, 18, [1, 3, 3, 256], [1, 1, 256, 36], (1, 1), Padding::Same, true, true, Some(0.17), 2);
    check_conv(&ctx, 31, [3, 6, 31, 4], [3, 3, 4, 12], (1, 1), Padding::Same, true, false, None, 2);
    check_conv_pool(&ctx, 50, [2, 13, 17, 4], [3, 3, 4, 12], Padding::Valid, true);
    check_conv_head(&ctx, 60, [2, 9, 25, 16], [3, 3, 16, 32], Padding::Valid);
}

#[test]
fn conv2d_inputs_read_through_several_rows_of_the_staging_texture_match_cpu() {
    // conv2d reads x through a texture of 2^14 texels (4 floats each) a row: these inputs fill 1 to 4 rows,
    // the last one partly (flat tiles at stride 2, row tiles, the pooled entry).
    let ctx = gpu_or_skip!();
    check_conv(ctx, 60, [1, 48, 48, 32], [3, 3, 32, 16], (2, 2), Padding::Same, true, false, Some(0.5), 1);
    check_conv(ctx, 61, [2, 65, 67, 32], [3, 3, 32, 16], (1, 1), Padding::Valid, false, true, None, 2);
    check_conv_pool(ctx, 62, [1, 130, 131, 4], [3, 3, 4, 12], Padding::Valid, true);
}

#[test]
fn convs_of_one_submission_each_read_their_own_input_while_the_staging_texture_grows() {
    // Each conv copies its input into the shared staging texture right before it runs; a later, larger
    // input replaces the texture by a bigger one while the first conv still has to read the old one.
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(63);
    let shapes = [([1, 9, 10, 8], [3, 3, 8, 16]), ([2, 90, 91, 8], [3, 3, 8, 16]), ([1, 12, 11, 16], [1, 1, 16, 8])];
    let mut cases = Vec::new();
    for (xs, ws) in shapes {
        let x = rng.vec(xs.iter().product(), -1.0, 1.0);
        let w = rng.vec(ws.iter().product(), -0.5, 0.5);
        let p = facegpu::kernels::conv2d::Conv2dParams::new(&xs, &ws, (1, 1), Padding::Same).unwrap();
        let (want, _) = cpu::conv2d::conv2d(&x, &xs, &w, &ws, &Epilogue::default(), (1, 1), Padding::Same).unwrap();
        cases.push((up(ctx, "x", &xs, &x), up(ctx, "w", &ws, &w), GpuTensor::zeros(ctx, "y", &p.out_shape()), want));
    }
    record(ctx, |enc| {
        for (x, w, y, _) in &cases {
            k::conv2d::conv2d(enc, x, w, &Epilogue::default(), y, (1, 1), Padding::Same)?;
        }
        Ok(())
    });
    for (_, _, y, want) in &cases {
        // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's statistics)
        // summed in another order by the GPU's tiles: errors grow to about 1e-5 relative, 1e-4 bounds them.
        assert_close("conv2d", &y.download(ctx).unwrap(), want, 1e-4, 1e-4);
    }
}

#[test]
fn conv2d_f16_weights_match_cpu_within_f16_rounding() {
    // f16 inference: weights stored as half floats (two per word: odd counts leave a half word), operands
    // staged and each 16 products summed in f16, then added in f32. The twin runs on the same inputs
    // rounded to f16, so only the arithmetic's rounding is left. The CPU-driver shape refuses f16
    // weights by name.
    let Some(ctx16) = common::f16_context() else { return };
    let round = |v: &[f32]| v.iter().map(|&x| half::f16::from_f32(x).to_f32()).collect::<Vec<f32>>();
    let mut rng = Rng::new(90);
    // (input, weights, stride)
    type Case = ([usize; 4], [usize; 4], (usize, usize));
    let cases: [Case; 4] = [
        ([2, 9, 11, 5], [3, 3, 5, 7], (2, 2)),
        ([1, 7, 6, 32], [1, 1, 32, 96], (1, 1)),
        ([2, 5, 7, 64], [3, 3, 64, 33], (1, 1)),
        ([1, 3, 3, 256], [1, 1, 256, 36], (1, 1)),
    ];
    let mut worst = 0f32;
    for (xs, ws, stride) in cases {
        let x = round(&rng.vec(xs.iter().product(), -1.0, 1.0));
        let w = round(&rng.vec(ws.iter().product(), -0.5, 0.5));
        let b = rng.vec(ws[3], -1.0, 1.0);
        let cpu_epi = Epilogue { bias: Some(b.as_slice()), act: Activation::Relu, ..Default::default() };
        let (want, p) = cpu::conv2d::conv2d(&x, &xs, &w, &ws, &cpu_epi, stride, Padding::Same).unwrap();
        let gx = up(&ctx16, "x", &xs, &x);
        let gw = GpuTensor::upload_f16(&ctx16, "w16", &ws, &w).unwrap();
        let gb = up(&ctx16, "b", &[ws[3]], &b);
        let gy = GpuTensor::zeros(&ctx16, "y", &p.out_shape());
        let epi = Epilogue { bias: Some(&gb), act: Activation::Relu, ..Default::default() };
        record(&ctx16, |enc| k::conv2d::conv2d(enc, &gx, &gw, &epi, &gy, stride, Padding::Same).map(|_| ()));
        let got = gy.download(&ctx16).unwrap();
        worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(worst, f32::max);
        // Each step's 16 products (|x| <= 1, |w| <= 0.5) are summed in f16, every addition rounded at up
        // to 2^-11 of a partial sum of magnitude about 1; over up to 36 steps (3x3x64) that measured
        // 1.04e-2 at most, on outputs up to about 5. 2e-2 + 1e-2 relative bounds f16's rounding; a wrong
        // tap or channel moves outputs by 0.1 or more.
        assert_close(&format!("conv2d f16 {xs:?} * {ws:?}"), &got, &want, 2e-2, 1e-2);
    }
    eprintln!("conv2d with f16 weights and arithmetic: max abs error vs the f32 twin {worst:e}");
    // The CPU-driver shape has no f16 path: f16 weights are refused, naming them.
    let ctx32 = common::gpu().unwrap();
    if ctx32.kernel_shape() == KernelShape::CpuDriver {
        let gx = GpuTensor::zeros(ctx32, "x", &[1, 4, 4, 4]);
        let gw = GpuTensor::upload_f16(ctx32, "half weights", &[1, 1, 4, 8], &[0.5; 32]).unwrap();
        let gy = GpuTensor::zeros(ctx32, "y", &[1, 4, 4, 8]);
        let mut enc = facegpu::gpu::Encoder::new(ctx32);
        let err = k::conv2d::conv2d(&mut enc, &gx, &gw, &Epilogue::default(), &gy, (1, 1), Padding::Same).unwrap_err().to_string();
        assert!(err.contains("half weights") && err.contains("F16"), "{err}");
    }
}
