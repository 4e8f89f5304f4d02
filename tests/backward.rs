//! Backward kernels: each CPU twin against finite differences, and each GPU kernel against its CPU twin.
//!
//! Finite differences use the CPU forward twins where the op is linear in the perturbed input (conv,
//! matmul, pools, dropout, and ReLU/PReLU away from their kink), so a large step is exact up to f32
//! rounding; the nonlinear row ops (batch norm, softmax cross-entropy, L2 normalize, p-norm, center loss)
//! are differenced through float64 re-statements of their forward formulas.

mod common;

use common::{assert_close, record, up, Rng};
use facegpu::cpu;
use facegpu::gpu::GpuTensor;
use facegpu::kernels::conv2d::{Activation, Conv2dParams, Epilogue, Padding};
use facegpu::kernels::conv2d_backward::{Conv2dBackwardParams, EpilogueGrads, EpilogueSaved};
use facegpu::kernels::{self as k};

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Compares `analytic[i]` with the central difference `(f(x + h e_i) - f(x - h e_i)) / 2h` on up to 40
/// coordinates spread over `x`, skipping those `skip` rejects (a kink inside the step). Passes when
/// `|numeric - analytic| <= tol * (1 + |analytic|)`.
fn fd_check(name: &str, x: &[f32], analytic: &[f32], h: f32, tol: f64, skip: impl Fn(usize) -> bool, f: impl Fn(&[f32]) -> f64) {
    assert_eq!(x.len(), analytic.len(), "{name}: gradient length");
    let step = (x.len() / 40).max(1);
    let mut checked = 0;
    for i in (0..x.len()).step_by(step).chain([x.len() - 1]) {
        if skip(i) {
            continue;
        }
        let mut xp = x.to_vec();
        xp[i] = x[i] + h;
        let lp = f(&xp);
        xp[i] = x[i] - h;
        let lm = f(&xp);
        // The step actually taken in f32.
        let numeric = (lp - lm) / ((x[i] + h) as f64 - (x[i] - h) as f64);
        let a = analytic[i] as f64;
        assert!((numeric - a).abs() <= tol * (1.0 + a.abs()), "{name}[{i}]: finite difference {numeric}, analytic {a}");
        checked += 1;
    }
    assert!(checked >= x.len().min(10) / 2, "{name}: only {checked} coordinates could be checked");
}

fn never(_: usize) -> bool {
    false
}

/// (input NHWC, weights HWIO, stride, padding) of a conv gradient case.
type ConvCase = ([usize; 4], [usize; 4], (usize, usize), Padding);

const CONV_CASES: [ConvCase; 5] = [
    ([2, 11, 13, 3], [3, 3, 3, 5], (2, 2), Padding::Same),
    ([1, 9, 8, 4], [1, 7, 4, 6], (1, 1), Padding::Same),
    ([2, 8, 7, 3], [7, 1, 3, 9], (1, 2), Padding::Valid),
    ([1, 6, 5, 10], [3, 1, 10, 3], (2, 1), Padding::Explicit(1, 0, 0, 1)),
    ([2, 7, 7, 9], [1, 3, 9, 4], (1, 1), Padding::Same),
];

#[test]
fn conv2d_backward_data_and_weights_match_finite_differences() {
    let mut rng = Rng::new(300);
    for (xs, ws, stride, padding) in CONV_CASES {
        let x = rng.vec(xs.iter().product(), -1.0, 1.0);
        let w = rng.vec(ws.iter().product(), -0.5, 0.5);
        let p = Conv2dParams::new(&xs, &ws, stride, padding).unwrap();
        let r = rng.vec(p.out_shape().iter().product(), -1.0, 1.0);
        let loss = |x: &[f32], w: &[f32]| dot(&cpu::conv2d::conv2d(x, &xs, w, &ws, &Epilogue::default(), stride, padding).unwrap().0, &r);
        let mut dx = vec![0f32; x.len()];
        let mut dw = vec![0f32; w.len()];
        cpu::conv2d_backward::grad_input(&r, &w, &ws, &mut dx, &xs, stride, padding, false).unwrap();
        cpu::conv2d_backward::grad_weight(&x, &xs, &r, &mut dw, &ws, stride, padding, false).unwrap();
        // The loss is linear in x and in w, so a large step is exact up to rounding.
        let name = format!("conv2d {xs:?}x{ws:?} s{stride:?} {padding:?}");
        fd_check(&format!("{name} dx"), &x, &dx, 0.5, 1e-4, never, |xp| loss(xp, &w));
        fd_check(&format!("{name} dw"), &w, &dw, 0.5, 1e-4, never, |wp| loss(&x, wp));
    }
}

/// The epilogue as a function of the raw conv output `v`.
fn epilogue_forward(v: &[f32], epi: &Epilogue<&[f32]>, oc: usize) -> Vec<f32> {
    v.iter().enumerate().map(|(i, &x)| cpu::conv2d::epilogue(x, i % oc, i, epi)).collect()
}

/// Case 0: bias + ReLU; 1: bias + affine + residual (0.17) + ReLU; 2: bias + residual (0.5) + PReLU.
fn epilogue_case<'a>(
    case: usize,
    bias: &'a [f32],
    affine: (&'a [f32], &'a [f32]),
    res: &'a [f32],
    alpha: &'a [f32],
) -> Epilogue<&'a [f32]> {
    match case {
        0 => Epilogue { bias: Some(bias), act: Activation::Relu, ..Default::default() },
        1 => Epilogue { bias: Some(bias), affine: Some(affine), residual: Some((res, 0.17)), act: Activation::Relu },
        _ => Epilogue { bias: Some(bias), residual: Some((res, 0.5)), act: Activation::Prelu(alpha), ..Default::default() },
    }
}

#[test]
fn conv2d_epilogue_backward_matches_finite_differences() {
    let mut rng = Rng::new(301);
    let (xs, ws) = ([2, 5, 6, 3], [3, 3, 3, 7]);
    let p = Conv2dParams::new(&xs, &ws, (1, 1), Padding::Same).unwrap();
    let n: usize = p.out_shape().iter().product();
    let oc = 7;
    let (v, res, r) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
    let (bias, sc, sh, alpha) = (rng.vec(oc, -0.5, 0.5), rng.vec(oc, 0.5, 1.5), rng.vec(oc, -0.5, 0.5), rng.vec(oc, 0.05, 0.3));
    let aff = (sc.as_slice(), sh.as_slice());
    for case in 0..3 {
        let e = epilogue_case(case, &bias, aff, &res, &alpha);
        let y = epilogue_forward(&v, &e, oc);
        let u = epilogue_forward(&v, &Epilogue { act: Activation::None, ..e }, oc);
        let mut dres = vec![0f32; n];
        let (g, prod) = cpu::conv2d_backward::epilogue_backward(&p, &e, &r, &y, Some(&u), Some((&mut dres, false))).unwrap();
        // The activation's kink must not fall inside the step (h = 1e-3 moves u by at most 1.5e-3).
        let h = 1e-3;
        let near = |i: usize| u[i].abs() < 0.01;
        let near_channel = |ch: usize| u.iter().skip(ch).step_by(oc).any(|x| x.abs() < 0.01);
        let loss = |e: &Epilogue<&[f32]>| dot(&epilogue_forward(&v, e, oc), &r);
        fd_check(&format!("epilogue {case} d conv"), &v, &g, h, 1e-3, near, |vp| dot(&epilogue_forward(vp, &e, oc), &r));
        fd_check(&format!("epilogue {case} d residual"), &res, &dres, h, 1e-3, near, |rp| {
            loss(&epilogue_case(case, &bias, aff, rp, &alpha))
        });
        let mut db = vec![0f32; oc];
        cpu::reduce::col_sum(&g, &mut db, 1.0, false);
        fd_check(&format!("epilogue {case} d bias"), &bias, &db, h, 1e-3, near_channel, |bp| {
            loss(&epilogue_case(case, bp, aff, &res, &alpha))
        });
        if case == 2 {
            let mut da = vec![0f32; oc];
            cpu::reduce::col_sum(&prod, &mut da, 1.0, false);
            fd_check("epilogue prelu d alpha", &alpha, &da, 0.05, 1e-4, never, |ap| loss(&epilogue_case(case, &bias, aff, &res, ap)));
        }
    }
}

#[test]
fn linear_backward_matches_finite_differences() {
    let mut rng = Rng::new(302);
    let (b, i, o) = (5, 13, 7);
    let (x, w, bias, r) = (rng.vec(b * i, -1.0, 1.0), rng.vec(i * o, -1.0, 1.0), rng.vec(o, -1.0, 1.0), rng.vec(b * o, -1.0, 1.0));
    let loss = |x: &[f32], w: &[f32], bias: &[f32]| {
        let mut y = vec![0f32; b * o];
        cpu::matmul::matmul(x, &[b, i], w, &[i, o], Some(bias), &mut y, false, false, false).unwrap();
        dot(&y, &r)
    };
    let (mut dx, mut dw, mut db) = (vec![0f32; b * i], vec![0f32; i * o], vec![0f32; o]);
    cpu::matmul::matmul(&r, &[b, o], &w, &[i, o], None, &mut dx, false, true, false).unwrap();
    cpu::matmul::matmul(&x, &[b, i], &r, &[b, o], None, &mut dw, true, false, false).unwrap();
    cpu::reduce::col_sum(&r, &mut db, 1.0, false);
    fd_check("linear dx", &x, &dx, 0.5, 1e-4, never, |p| loss(p, &w, &bias));
    fd_check("linear dw", &w, &dw, 0.5, 1e-4, never, |p| loss(&x, p, &bias));
    fd_check("linear dbias", &bias, &db, 0.5, 1e-4, never, |p| loss(&x, &w, p));
}

/// Training batch norm in float64: `gamma * (x - mean) / sqrt(var + eps) + beta` per channel.
fn bn64(x: &[f32], c: usize, gamma: Option<&[f32]>, beta: &[f32], eps: f64) -> Vec<f64> {
    let rows = x.len() / c;
    let mut y = vec![0f64; x.len()];
    for ch in 0..c {
        let m = (0..rows).map(|r| x[r * c + ch] as f64).sum::<f64>() / rows as f64;
        let var = (0..rows).map(|r| (x[r * c + ch] as f64 - m).powi(2)).sum::<f64>() / rows as f64;
        for r in 0..rows {
            let g = gamma.map_or(1.0, |g| g[ch] as f64);
            y[r * c + ch] = g * (x[r * c + ch] as f64 - m) / (var + eps).sqrt() + beta[ch] as f64;
        }
    }
    y
}

fn dot64(a: &[f64], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x * y as f64).sum()
}

#[test]
fn batch_norm_backward_with_and_without_gamma_matches_finite_differences() {
    let mut rng = Rng::new(303);
    let (shape, c) = ([3, 4, 2, 5], 5);
    let n = 120;
    let (x, r) = (rng.vec(n, -2.0, 2.0), rng.vec(n, -1.0, 1.0));
    let (gamma, beta) = (rng.vec(c, 0.5, 1.5), rng.vec(c, -0.5, 0.5));
    for with_gamma in [false, true] {
        let g = with_gamma.then_some(gamma.as_slice());
        let (mut mm, mut mv) = (vec![0f32; c], vec![1f32; c]);
        let (_, mean, invstd) = cpu::batch_norm::batch_norm_train(&x, &shape, g, &beta, &mut mm, &mut mv, 1e-3, 0.995).unwrap();
        let (mut dx, mut dg, mut db) = (vec![0f32; n], vec![0f32; c], vec![0f32; c]);
        cpu::batch_norm::batch_norm_backward(
            &x,
            &r,
            g,
            &mean,
            &invstd,
            &mut dx,
            with_gamma.then_some(dg.as_mut_slice()),
            Some(&mut db),
            false,
        );
        let name = if with_gamma { "bn with gamma" } else { "bn without gamma" };
        fd_check(&format!("{name} dx"), &x, &dx, 1e-3, 1e-3, never, |p| dot64(&bn64(p, c, g, &beta, 1e-3), &r));
        fd_check(&format!("{name} dbeta"), &beta, &db, 1e-3, 1e-3, never, |p| dot64(&bn64(&x, c, g, p, 1e-3), &r));
        if with_gamma {
            fd_check("bn dgamma", &gamma, &dg, 1e-3, 1e-3, never, |p| dot64(&bn64(&x, c, Some(p), &beta, 1e-3), &r));
        }
    }
}

#[test]
fn relu_prelu_dropout_backward_match_finite_differences() {
    let mut rng = Rng::new(304);
    let n = 210;
    let c = 7;
    // Inputs kept at least 0.05 away from the kink at 0.
    let x: Vec<f32> = rng.vec(n, -1.0, 1.0).into_iter().map(|v| if v.abs() < 0.05 { v + 0.1f32.copysign(v) } else { v }).collect();
    let (r, alpha) = (rng.vec(n, -1.0, 1.0), rng.vec(c, 0.0, 0.4));
    let y = cpu::elementwise::relu(&x);
    let mut dx = vec![0f32; n];
    cpu::elementwise::relu_backward(&r, &y, &mut dx, false);
    fd_check("relu dx", &x, &dx, 0.01, 1e-4, never, |p| dot(&cpu::elementwise::relu(p), &r));
    let prod = cpu::elementwise::prelu_backward(&r, &x, &alpha, &mut dx, false);
    fd_check("prelu dx", &x, &dx, 0.01, 1e-4, never, |p| dot(&cpu::elementwise::prelu(p, &alpha), &r));
    let mut da = vec![0f32; c];
    cpu::reduce::col_sum(&prod, &mut da, 1.0, false);
    fd_check("prelu dalpha", &alpha, &da, 0.05, 1e-4, never, |p| dot(&cpu::elementwise::prelu(&x, p), &r));
    let (_, mask) = cpu::elementwise::dropout(&x, 0.7, 99);
    cpu::elementwise::dropout_backward(&r, &mask, 0.7, &mut dx, false);
    fd_check("dropout dx", &x, &dx, 0.5, 1e-4, never, |p| dot(&cpu::elementwise::dropout(p, 0.7, 99).0, &r));
}

#[test]
fn pool_backward_matches_finite_differences() {
    let mut rng = Rng::new(305);
    let xs = [2, 7, 9, 3];
    let n: usize = xs.iter().product();
    // Distinct values 0.01 apart, shuffled: the argmax cannot change within a 1e-3 step.
    let mut x: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 1.5).collect();
    for i in (1..n).rev() {
        let j = (rng.next_f32() * (i + 1) as f32) as usize % (i + 1);
        x.swap(i, j);
    }
    for (k, stride, padding) in [((3, 3), (2, 2), Padding::Same), ((2, 2), (2, 2), Padding::Valid), ((3, 2), (1, 2), Padding::Same)] {
        let (y, arg, p) = cpu::pool::max_pool(&x, &xs, k, stride, padding).unwrap();
        let r = rng.vec(y.len(), -1.0, 1.0);
        let mut dx = vec![0f32; n];
        cpu::pool::max_pool_backward(&r, &arg, &mut dx, false);
        fd_check(&format!("max_pool {k:?} {stride:?} {padding:?}"), &x, &dx, 1e-3, 1e-3, never, |q| {
            dot(&cpu::pool::max_pool(q, &xs, k, stride, padding).unwrap().0, &r)
        });
        let r = rng.vec(p.out_shape().iter().product(), -1.0, 1.0);
        cpu::pool::avg_pool_backward(&r, &mut dx, &xs, k, stride, padding, false).unwrap();
        fd_check(&format!("avg_pool {k:?} {stride:?} {padding:?}"), &x, &dx, 0.5, 1e-4, never, |q| {
            dot(&cpu::pool::avg_pool(q, &xs, k, stride, padding).unwrap().0, &r)
        });
    }
    let r = rng.vec(2 * 3, -1.0, 1.0);
    let mut dx = vec![0f32; n];
    cpu::pool::global_avg_pool_backward(&r, &mut dx, &xs, false).unwrap();
    fd_check("global_avg_pool", &x, &dx, 0.5, 1e-4, never, |q| dot(&cpu::pool::global_avg_pool(q, &xs).unwrap(), &r));
}

/// Inputs of the loss gradient checks, drawn in one seeded sequence: logits and labels for softmax
/// cross-entropy, x and a projection r (6 x 9), 4 centers and labels for center loss, 50 weights.
struct LossInputs {
    rows: usize,
    cols: usize,
    z: Vec<f32>,
    labels: Vec<u32>,
    x: Vec<f32>,
    r: Vec<f32>,
    centers: Vec<f32>,
    center_labels: Vec<u32>,
    w: Vec<f32>,
}

fn loss_inputs() -> LossInputs {
    let mut rng = Rng::new(306);
    let (rows, cols) = (6, 9);
    let z = rng.vec(rows * cols, -3.0, 3.0);
    let labels = rng.labels(rows, cols as u32);
    let x = rng.vec(rows * cols, -1.0, 1.0);
    let r = rng.vec(rows * cols, -1.0, 1.0);
    let centers = rng.vec(4 * cols, -1.0, 1.0);
    let center_labels = rng.labels(rows, 4);
    let w = rng.vec(50, -1.0, 1.0);
    LossInputs { rows, cols, z, labels, x, r, centers, center_labels, w }
}

// Each check below compares the CPU twin's gradient with central differences (step 1e-3) of a float64
// reference of the loss: 1e-4 covers the differences' truncation error at these curvatures.

#[test]
fn softmax_xent_gradient_matches_finite_differences() {
    let LossInputs { rows, cols, z, labels, .. } = loss_inputs();
    // Softmax cross-entropy, weight 0.7, mean over rows, in float64.
    let xent64 = |z: &[f32]| {
        (0..rows)
            .map(|r| {
                let row: Vec<f64> = z[r * cols..(r + 1) * cols].iter().map(|&v| v as f64).collect();
                let mx = row.iter().cloned().fold(f64::MIN, f64::max);
                let lse = row.iter().map(|v| (v - mx).exp()).sum::<f64>().ln() + mx;
                lse - row[labels[r] as usize]
            })
            .sum::<f64>()
            * 0.7
            / rows as f64
    };
    let (prob, _, _) = cpu::softmax::softmax_xent(&z, &[rows, cols], &labels).unwrap();
    let mut dz = vec![0f32; z.len()];
    cpu::softmax::softmax_xent_backward(&prob, &labels, 0.7, &mut dz, false);
    fd_check("softmax_xent", &z, &dz, 1e-3, 1e-4, never, xent64);
}

#[test]
fn l2_normalize_gradient_matches_finite_differences() {
    let LossInputs { rows, cols, x, r, .. } = loss_inputs();
    // L2 normalize, through a random projection.
    let l2n64 = |x: &[f32]| {
        (0..rows)
            .map(|q| {
                let row = &x[q * cols..(q + 1) * cols];
                let inv = 1.0 / row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().max(1e-10).sqrt();
                row.iter().zip(&r[q * cols..]).map(|(&v, &w)| v as f64 * inv * w as f64).sum::<f64>()
            })
            .sum::<f64>()
    };
    let (y, inv) = cpu::l2_normalize::l2_normalize(&x, &[rows, cols], 1e-10).unwrap();
    let mut dx = vec![0f32; x.len()];
    cpu::l2_normalize::l2_normalize_backward(&r, &y, &inv, &mut dx, 1e-10, false);
    fd_check("l2_normalize", &x, &dx, 1e-3, 1e-4, never, l2n64);
}

/// Inputs moved away from 0, where |x| has its kink.
fn away_from_zero(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| if v.abs() < 0.05 { 0.1f32.copysign(v) } else { v }).collect()
}

#[test]
fn prelogits_pnorm_gradient_matches_finite_differences() {
    let LossInputs { rows, cols, x, .. } = loss_inputs();
    let x = away_from_zero(&x);
    // Prelogits p-norm loss (p = 1.0 and 1.5, eps 1e-4, weight 0.3).
    for pw in [1.0f32, 1.5] {
        let pn64 = |x: &[f32]| {
            (0..rows)
                .map(|q| {
                    x[q * cols..(q + 1) * cols].iter().map(|&v| (v.abs() as f64 + 1e-4).powf(pw as f64)).sum::<f64>().powf(1.0 / pw as f64)
                })
                .sum::<f64>()
                * 0.3
                / rows as f64
        };
        let (_, grad) = cpu::l2_normalize::pnorm_rows(&x, &[rows, cols], pw, 1e-4, 0.3).unwrap();
        fd_check(&format!("prelogits norm p={pw}"), &x, &grad, 1e-3, 1e-4, never, pn64);
    }
}

#[test]
fn center_loss_gradient_matches_finite_differences() {
    let LossInputs { rows, cols, x, centers, center_labels: lab, .. } = loss_inputs();
    let x = away_from_zero(&x);
    let classes = 4;
    // Center loss: weight * mean((x - c[label])^2), the centers held fixed (they get no gradient).
    let cl64 = |x: &[f32]| {
        (0..rows * cols).map(|i| (x[i] as f64 - centers[lab[i / cols] as usize * cols + i % cols] as f64).powi(2)).sum::<f64>() * 0.01
            / (rows * cols) as f64
    };
    let mut cc = centers.clone();
    let (_, diff) = cpu::center_loss::center_loss(&x, &[rows, cols], &lab, &mut cc, &[classes, cols], 0.9).unwrap();
    let grad: Vec<f32> = diff.iter().map(|d| d * 0.01 * 2.0 / (rows * cols) as f32).collect();
    fd_check("center loss", &x, &grad, 1e-3, 1e-4, never, cl64);
}

#[test]
fn weight_decay_gradient_matches_finite_differences() {
    let LossInputs { w, .. } = loss_inputs();
    // L2 weight decay: wd/2 * sum w^2 has gradient wd * w (added by axpy); the loss is quadratic, so a
    // step of 1e-2 is exact up to rounding: 1e-6.
    let mut g = vec![0f32; 50];
    cpu::elementwise::axpy(5e-4, &w, &mut g);
    fd_check("weight decay", &w, &g, 1e-2, 1e-6, never, |p| cpu::reduce::sum_squares(p, 5e-4 / 2.0) as f64);
}

// ---- GPU kernels against their CPU twins ----

#[test]
fn conv2d_backward_kernels_match_cpu_including_split_k_and_accumulate() {
    let ctx = gpu_or_skip!();
    conv2d_backward_cases(ctx);
    assert!(
        Conv2dBackwardParams::new(&[4, 17, 17, 32], &[3, 3, 32, 32], (1, 1), Padding::Same).unwrap().splits > 1,
        "split-K was exercised"
    );
}

#[test]
fn conv2d_backward_kernels_without_subgroups_match_cpu() {
    // Adapters without subgroup operations compile the shader's other lines (see kernels.rs).
    gpu_or_skip!();
    let ctx = facegpu::gpu::GpuContext::with_subgroups(false).expect("a second context on the same adapter");
    assert_eq!(ctx.subgroup_lanes(), None);
    conv2d_backward_cases(&ctx);
}

/// grad_input and grad_weight against their twins, overwriting and accumulating, on awkward shapes.
fn conv2d_backward_cases(ctx: &facegpu::gpu::GpuContext) {
    let mut rng = Rng::new(310);
    let mut cases = CONV_CASES.to_vec();
    // A block35-like 1x1 and 3x3 with enough pixels to split the weight gradient.
    cases.push(([4, 17, 17, 32], [3, 3, 32, 32], (1, 1), Padding::Same));
    // 1x1 stride 1 with channels in multiples of 4: the weight gradient's pointwise vec4 loop, split in 3,
    // with a half-empty last channel tile on each side.
    cases.push(([3, 9, 11, 20], [1, 1, 20, 12], (1, 1), Padding::Same));
    cases.push(([2, 16, 16, 64], [1, 1, 64, 36], (1, 1), Padding::Valid));
    // vec4 channels with padding and strides: the weight gradient's per-tap masks as its four-pixel steps
    // run across rows and images.
    cases.push(([2, 9, 10, 8], [3, 3, 8, 12], (2, 2), Padding::Same));
    cases.push(([1, 7, 9, 4], [3, 2, 4, 8], (1, 2), Padding::Explicit(2, 0, 1, 3)));
    cases.push(([3, 17, 17, 40], [1, 1, 40, 24], (2, 2), Padding::Valid));
    // Input channels that take grad_input's tiles of 32: a ragged second half (60), a second half past the
    // end (144), stride 2.
    cases.push(([2, 7, 9, 60], [3, 3, 60, 8], (1, 1), Padding::Same));
    cases.push(([1, 5, 6, 144], [1, 1, 144, 12], (1, 1), Padding::Same));
    cases.push(([2, 9, 9, 60], [3, 3, 60, 16], (2, 2), Padding::Valid));
    // Output channels that take grad_weight's tiles of 32: ragged second half (60), past the end (144).
    cases.push(([2, 9, 9, 8], [3, 3, 8, 60], (1, 1), Padding::Same));
    cases.push(([2, 6, 6, 16], [1, 1, 16, 144], (1, 1), Padding::Same));
    // Input channels not a multiple of 4, every tap inside the image: the weight gradient's narrow entry
    // (tiles of 8 consecutive weight rows, across taps), split; then with padding, the general path.
    cases.push(([2, 23, 23, 3], [3, 3, 3, 32], (2, 2), Padding::Valid));
    cases.push(([3, 9, 10, 5], [2, 3, 5, 20], (1, 1), Padding::Valid));
    cases.push(([2, 9, 9, 3], [3, 3, 3, 8], (2, 2), Padding::Same));
    // Rows narrower than a four-pixel step (block8's 3x3 maps and smaller): a step wraps several rows.
    cases.push(([4, 3, 3, 8], [1, 3, 8, 12], (1, 1), Padding::Same));
    cases.push(([3, 2, 2, 4], [3, 3, 4, 8], (1, 1), Padding::Same));
    cases.push(([7, 1, 1, 8], [3, 3, 8, 4], (1, 1), Padding::Same));
    // Stride 1 with rows of 16-40 columns: padding on either side, ragged row ends and channel tiles,
    // 5 and 7 taps.
    cases.push(([2, 6, 23, 8], [3, 3, 8, 20], (1, 1), Padding::Same));
    cases.push(([1, 5, 16, 12], [1, 7, 12, 8], (1, 1), Padding::Same));
    cases.push(([2, 7, 31, 4], [3, 3, 4, 16], (1, 1), Padding::Valid));
    cases.push(([1, 6, 40, 8], [3, 5, 8, 8], (1, 1), Padding::Explicit(2, 0, 1, 3)));
    // g (grad_input) and x (grad_weight) are read through the staging texture, 2^14 texels a row: these
    // fill several rows, the last partly, and (x at stride 2) exactly one row.
    cases.push(([2, 48, 48, 32], [3, 3, 32, 16], (1, 1), Padding::Same));
    cases.push(([1, 64, 64, 16], [3, 3, 16, 8], (2, 2), Padding::Same));
    for (xs, ws, stride, padding) in cases {
        let x = rng.vec(xs.iter().product(), -1.0, 1.0);
        let w = rng.vec(ws.iter().product(), -0.5, 0.5);
        let q = Conv2dBackwardParams::new(&xs, &ws, stride, padding).unwrap();
        let g = rng.vec(q.conv.out_shape().iter().product(), -1.0, 1.0);
        let (dx0, dw0) = (rng.vec(x.len(), -1.0, 1.0), rng.vec(w.len(), -1.0, 1.0));
        for accumulate in [false, true] {
            let (mut dx, mut dw) = (dx0.clone(), dw0.clone());
            cpu::conv2d_backward::grad_input(&g, &w, &ws, &mut dx, &xs, stride, padding, accumulate).unwrap();
            cpu::conv2d_backward::grad_weight(&x, &xs, &g, &mut dw, &ws, stride, padding, accumulate).unwrap();
            for ctx in common::both_shapes(ctx) {
                let (gx, gw, gg) = (up(ctx, "x", &xs, &x), up(ctx, "w", &ws, &w), up(ctx, "g", &q.conv.out_shape(), &g));
                let (gdx, gdw) = (up(ctx, "dx", &xs, &dx0), up(ctx, "dw", &ws, &dw0));
                let scratch = GpuTensor::zeros(ctx, "split-k", &[q.scratch_len().max(1)]);
                record(ctx, |enc| {
                    k::conv2d_backward::grad_input(enc, &gg, &gw, &gdx, stride, padding, accumulate)?;
                    k::conv2d_backward::grad_weight(enc, &gx, &gg, &gdw, Some(&scratch), stride, padding, accumulate)
                });
                let name = format!(
                    "{xs:?}x{ws:?} s{stride:?} {padding:?} splits {} acc {accumulate} ({:?} kernels)",
                    q.splits,
                    ctx.kernel_shape()
                );
                // fp32 sums of up to ~5000 products of magnitude <= 1 in another order.
                assert_close(&format!("grad_input {name}"), &gdx.download(ctx).unwrap(), &dx, 2e-4, 1e-4);
                assert_close(&format!("grad_weight {name}"), &gdw.download(ctx).unwrap(), &dw, 1e-3, 1e-4);
            }
        }
    }
}

#[test]
fn conv2d_epilogue_backward_matches_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(311);
    // 11 output channels element by element, 12 as vec4s.
    for oc in [11, 12] {
        let (xs, ws) = ([2, 5, 6, 3], [3, 3, 3, oc]);
        let p = Conv2dParams::new(&xs, &ws, (1, 1), Padding::Same).unwrap();
        let n: usize = p.out_shape().iter().product();
        let (dy, y, u, res, dres0) =
            (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
        let (bias, sc, sh, alpha) = (rng.vec(oc, -0.5, 0.5), rng.vec(oc, 0.5, 1.5), rng.vec(oc, -0.5, 0.5), rng.vec(oc, 0.05, 0.3));
        let shape = p.out_shape();
        let (gdy, gy, gu, gres) =
            (up(ctx, "dy", &shape, &dy), up(ctx, "y", &shape, &y), up(ctx, "u", &shape, &u), up(ctx, "res", &shape, &res));
        let (gb, gsc, gsh, gal) =
            (up(ctx, "b", &[oc], &bias), up(ctx, "sc", &[oc], &sc), up(ctx, "sh", &[oc], &sh), up(ctx, "al", &[oc], &alpha));
        for case in 0..4 {
            let (affine, residual, act) = [(false, false, 1), (true, true, 1), (false, true, 2), (true, false, 0)][case];
            let cpu_epi = Epilogue {
                bias: Some(bias.as_slice()),
                affine: affine.then_some((sc.as_slice(), sh.as_slice())),
                residual: residual.then_some((res.as_slice(), 0.17)),
                act: [Activation::None, Activation::Relu, Activation::Prelu(alpha.as_slice())][act],
            };
            let gpu_epi = Epilogue {
                bias: Some(&gb),
                affine: affine.then_some((&gsc, &gsh)),
                residual: residual.then_some((&gres, 0.17)),
                act: [Activation::None, Activation::Relu, Activation::Prelu(&gal)][act],
            };
            for accumulate in [false, true] {
                let mut dres = dres0.clone();
                let (g, prod) =
                    cpu::conv2d_backward::epilogue_backward(&p, &cpu_epi, &dy, &y, Some(&u), residual.then_some((&mut dres, accumulate)))
                        .unwrap();
                let (gg, gdres, gprod) =
                    (GpuTensor::zeros(ctx, "g", &shape), up(ctx, "dres", &shape, &dres0), GpuTensor::zeros(ctx, "prod", &shape));
                record(ctx, |enc| {
                    let saved = EpilogueSaved { y: &gy, preact: Some(&gu) };
                    let grads = EpilogueGrads {
                        g: &gg,
                        residual: residual.then_some((&gdres, accumulate)),
                        prelu_prod: (act == 2).then_some(&gprod),
                    };
                    k::conv2d_backward::epilogue_backward(enc, &p, &gpu_epi, &gdy, &saved, &grads)
                });
                let name = format!("epilogue oc {oc} case {case} acc {accumulate}");
                // A few fp32 operations or a short sum per value, in another order: about 1e-6.
                assert_close(&format!("{name} g"), &gg.download(ctx).unwrap(), &g, 1e-6, 1e-6);
                if residual {
                    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
                    assert_close(&format!("{name} dres"), &gdres.download(ctx).unwrap(), &dres, 1e-6, 1e-6);
                }
                if act == 2 {
                    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
                    assert_close(&format!("{name} prelu product"), &gprod.download(ctx).unwrap(), &prod, 1e-6, 1e-6);
                }
            }
        }
    }
}

#[test]
fn batch_norm_backward_matches_cpu_with_and_without_gamma() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(312);
    // 13 channels one by one, 12 as vec4s of 4 channels, and 8 channels over 9765 rows: the vec4 path's
    // per-channel sums then come in blocks of 10 rows and dx in blocks of 2, the last of each partial
    // (bn_backward_parts, bn_backward_input_rows).
    for (shape, c) in [([5, 9, 7, 13], 13), ([5, 9, 7, 12], 12), ([9, 31, 35, 8], 8)] {
        let n: usize = shape.iter().product();
        let (x, dy, dx0) = (rng.vec(n, -2.0, 2.0), rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
        let (gamma, beta, dg0, db0) = (rng.vec(c, 0.5, 1.5), rng.vec(c, -0.5, 0.5), rng.vec(c, -1.0, 1.0), rng.vec(c, -1.0, 1.0));
        let (mut mm, mut mv) = (vec![0f32; c], vec![1f32; c]);
        let (_, mean, invstd) = cpu::batch_norm::batch_norm_train(&x, &shape, None, &beta, &mut mm, &mut mv, 1e-3, 0.995).unwrap();
        // With `relu`, the forward was fused with a ReLU: the twin takes dy through the ReLU twin first.
        for (with_gamma, accumulate, relu) in
            [(false, false, false), (true, true, false), (true, false, false), (false, false, true), (true, true, true)]
        {
            let g = with_gamma.then_some(gamma.as_slice());
            let (mut dx, mut dg, mut db) = (dx0.clone(), dg0.clone(), db0.clone());
            let y_out: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(i, &v)| ((v - mean[i % c]) * invstd[i % c] * g.map_or(1.0, |g| g[i % c]) + beta[i % c]).max(0.0))
                .collect();
            let mut dy_in = dy.clone();
            if relu {
                cpu::elementwise::relu_backward(&dy, &y_out, &mut dy_in, false);
            }
            cpu::batch_norm::batch_norm_backward(
                &x,
                &dy_in,
                g,
                &mean,
                &invstd,
                &mut dx,
                with_gamma.then_some(dg.as_mut_slice()),
                Some(&mut db),
                accumulate,
            );
            let (gx, gdy, gmean, ginv) =
                (up(ctx, "x", &shape, &x), up(ctx, "dy", &shape, &dy), up(ctx, "mean", &[c], &mean), up(ctx, "invstd", &[c], &invstd));
            let (ggamma, gdx, gdg, gdb, sums) = (
                up(ctx, "gamma", &[c], &gamma),
                up(ctx, "dx", &shape, &dx0),
                up(ctx, "dg", &[c], &dg0),
                up(ctx, "db", &[c], &db0),
                GpuTensor::zeros(ctx, "sums", &[2 * c]),
            );
            let gy_out = up(ctx, "y", &shape, &y_out);
            record(ctx, |enc| {
                let grads = k::batch_norm::BatchNormGrads {
                    relu_output: relu.then_some(&gy_out),
                    dx: &gdx,
                    dgamma: with_gamma.then_some(&gdg),
                    dbeta: Some(&gdb),
                    sums: &sums,
                    accumulate,
                };
                k::batch_norm::batch_norm_backward(enc, &gx, &gdy, with_gamma.then_some(&ggamma), &gmean, &ginv, &grads)
            });
            let name = format!("bn backward c {c} gamma {with_gamma} acc {accumulate} relu {relu}");
            // Sums over 315 rows in another order.
            assert_close(&format!("{name} dx"), &gdx.download(ctx).unwrap(), &dx, 1e-4, 1e-4);
            assert_close(&format!("{name} dbeta"), &gdb.download(ctx).unwrap(), &db, 1e-4, 1e-4);
            assert_close(&format!("{name} dgamma"), &gdg.download(ctx).unwrap(), &dg, 1e-4, 1e-4);
        }
    }
}

/// The activations' backward cases: x, dy, a prior gradient to accumulate into, and PReLU's alphas
/// over a [3, 7, 6, 5] tensor (5 channels: no vec4 path).
struct ActCase {
    shape: [usize; 4],
    x: Vec<f32>,
    dy: Vec<f32>,
    dx0: Vec<f32>,
    alpha: Vec<f32>,
}

fn act_case() -> ActCase {
    let mut rng = Rng::new(313);
    let shape = [3, 7, 6, 5];
    let n: usize = shape.iter().product();
    ActCase { shape, x: rng.vec(n, -1.0, 1.0), dy: rng.vec(n, -1.0, 1.0), dx0: rng.vec(n, -1.0, 1.0), alpha: rng.vec(5, 0.0, 0.4) }
}

// Elementwise gradients are one or two fp32 operations per value on both sides: they agree to rounding
// (1e-7 absolute, 1e-6 relative).
#[test]
fn relu_backward_matches_cpu_writing_and_accumulating() {
    let ctx = gpu_or_skip!();
    let c = act_case();
    let y = cpu::elementwise::relu(&c.x);
    let (gdy, gy) = (up(ctx, "dy", &c.shape, &c.dy), up(ctx, "y", &c.shape, &y));
    for accumulate in [false, true] {
        let mut want = c.dx0.clone();
        cpu::elementwise::relu_backward(&c.dy, &y, &mut want, accumulate);
        let out = up(ctx, "dx", &c.shape, &c.dx0);
        record(ctx, |enc| k::elementwise::relu_backward(enc, &gdy, &gy, &out, accumulate));
        // One or two fp32 operations per value on each side: they differ by rounding only.
        assert_close(&format!("relu_backward accumulate={accumulate}"), &out.download(ctx).unwrap(), &want, 1e-7, 1e-6);
    }
}

#[test]
fn prelu_backward_matches_cpu_with_its_alpha_products() {
    let ctx = gpu_or_skip!();
    let c = act_case();
    let (gx, gdy, ga) = (up(ctx, "x", &c.shape, &c.x), up(ctx, "dy", &c.shape, &c.dy), up(ctx, "alpha", &[5], &c.alpha));
    for accumulate in [false, true] {
        let mut want = c.dx0.clone();
        let prod = cpu::elementwise::prelu_backward(&c.dy, &c.x, &c.alpha, &mut want, accumulate);
        let (out, gprod) = (up(ctx, "dx", &c.shape, &c.dx0), GpuTensor::zeros(ctx, "prod", &c.shape));
        record(ctx, |enc| k::elementwise::prelu_backward(enc, &gdy, &gx, &ga, &out, &gprod, accumulate));
        // One or two fp32 operations per value on each side: they differ by rounding only.
        assert_close(&format!("prelu_backward accumulate={accumulate}"), &out.download(ctx).unwrap(), &want, 1e-7, 1e-6);
        // One or two fp32 operations per value on each side: they differ by rounding only.
        assert_close("prelu product", &gprod.download(ctx).unwrap(), &prod, 1e-7, 1e-6);
    }
}

#[test]
fn dropout_backward_matches_cpu_with_the_same_mask() {
    let ctx = gpu_or_skip!();
    let c = act_case();
    let (_, mask) = cpu::elementwise::dropout(&c.x, 0.6, 7);
    let (gdy, gmask) = (up(ctx, "dy", &c.shape, &c.dy), GpuTensor::upload_u32(ctx, "mask", &c.shape, &mask).unwrap());
    for accumulate in [false, true] {
        let mut want = c.dx0.clone();
        cpu::elementwise::dropout_backward(&c.dy, &mask, 0.6, &mut want, accumulate);
        let out = up(ctx, "dx", &c.shape, &c.dx0);
        record(ctx, |enc| k::elementwise::dropout_backward(enc, &gdy, &gmask, 0.6, &out, accumulate));
        // A division by keep on each side: one more rounding than the others.
        assert_close(&format!("dropout_backward accumulate={accumulate}"), &out.download(ctx).unwrap(), &want, 1e-6, 1e-6);
    }
}

#[test]
fn col_sum_of_a_gradient_accumulates_like_cpu() {
    let ctx = gpu_or_skip!();
    let c = act_case();
    let mut want = Rng::new(5).vec(5, -1.0, 1.0);
    let (gdy, gout) = (up(ctx, "dy", &c.shape, &c.dy), up(ctx, "colsum", &[5], &want));
    cpu::reduce::col_sum(&c.dy, &mut want, 0.5, true);
    record(ctx, |enc| k::reduce::col_sum(enc, &gdy, &gout, 0.5, true));
    // 252 terms per column summed in another order: 1e-5.
    assert_close("col_sum", &gout.download(ctx).unwrap(), &want, 1e-5, 1e-5);
}

/// Max and average pool backward at 5 channels (one element per step) and 8 (vec4s), SAME and VALID.
#[test]
fn max_and_avg_pool_backward_match_cpu_at_scalar_and_vec4_channels() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(314);
    let pools = [((3, 3), (2, 2), Padding::Same), ((2, 3), (1, 2), Padding::Valid)];
    for shape in [[3, 7, 6, 5], [2, 9, 11, 8]] {
        let n: usize = shape.iter().product();
        let (x, dx0) = (rng.vec(n, -1.0, 1.0), rng.vec(n, -1.0, 1.0));
        for (kk, stride, padding) in pools {
            let (yv, arg, p) = cpu::pool::max_pool(&x, &shape, kk, stride, padding).unwrap();
            let r = rng.vec(yv.len(), -1.0, 1.0);
            let (mut dmax, mut davg) = (dx0.clone(), dx0.clone());
            cpu::pool::max_pool_backward(&r, &arg, &mut dmax, true);
            cpu::pool::avg_pool_backward(&r, &mut davg, &shape, kk, stride, padding, false).unwrap();
            let (gr, garg) = (up(ctx, "dy", &p.out_shape(), &r), GpuTensor::upload_u32(ctx, "argmax", &p.out_shape(), &arg).unwrap());
            let (gmax, gavg) = (up(ctx, "dmax", &shape, &dx0), up(ctx, "davg", &shape, &dx0));
            record(ctx, |enc| {
                k::pool::max_pool_backward(enc, &gr, &garg, &gmax, kk, stride, padding, true)?;
                k::pool::avg_pool_backward(enc, &gr, &gavg, kk, stride, padding, false)
            });
            // A handful of window contributions per input: 1e-6.
            assert_close(&format!("max_pool_backward {shape:?} {kk:?}"), &gmax.download(ctx).unwrap(), &dmax, 1e-6, 1e-6);
            assert_close(&format!("avg_pool_backward {shape:?} {kk:?}"), &gavg.download(ctx).unwrap(), &davg, 1e-6, 1e-6);
        }
    }
}

#[test]
fn global_avg_pool_backward_matches_cpu() {
    let ctx = gpu_or_skip!();
    let shape = [3, 7, 6, 5];
    let r = Rng::new(315).vec(3 * 5, -1.0, 1.0);
    let mut want = vec![0f32; shape.iter().product()];
    cpu::pool::global_avg_pool_backward(&r, &mut want, &shape, false).unwrap();
    let (gr, gdg) = (up(ctx, "dy", &[3, 5], &r), GpuTensor::zeros(ctx, "dx", &shape));
    record(ctx, |enc| k::pool::global_avg_pool_backward(enc, &gr, &gdg, false));
    // One division per value.
    assert_close("global_avg_pool_backward", &gdg.download(ctx).unwrap(), &want, 1e-7, 1e-6);
}

#[test]
fn softmax_xent_backward_matches_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(316);
    let (rows, cols) = (9, 13);
    let z = rng.vec(rows * cols, -3.0, 3.0);
    let labels = rng.labels(rows, cols as u32);
    let (prob, _, _) = cpu::softmax::softmax_xent(&z, &[rows, cols], &labels).unwrap();
    let mut dz = vec![0f32; z.len()];
    cpu::softmax::softmax_xent_backward(&prob, &labels, 0.7, &mut dz, false);
    let (gp, gl, gdz) = (
        up(ctx, "prob", &[rows, cols], &prob),
        GpuTensor::upload_u32(ctx, "labels", &[rows], &labels).unwrap(),
        GpuTensor::zeros(ctx, "dz", &[rows, cols]),
    );
    record(ctx, |enc| k::softmax::softmax_xent_backward(enc, &gp, &gl, 0.7, &gdz, false));
    // (prob - onehot) * weight / rows: two roundings.
    assert_close("softmax_xent_backward", &gdz.download(ctx).unwrap(), &dz, 1e-7, 1e-6);
}

/// Rows of [9, 13] with the first row all zeros (the norm clamped at eps).
fn rows_with_a_zero_row(rng: &mut Rng) -> Vec<f32> {
    let mut x = rng.vec(9 * 13, -1.0, 1.0);
    x[..13].iter_mut().for_each(|v| *v = 0.0);
    x
}

#[test]
fn l2_normalize_backward_matches_cpu_with_a_clamped_row() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(317);
    let (rows, cols) = (9, 13);
    let xz = rows_with_a_zero_row(&mut rng);
    let (yz, inv) = cpu::l2_normalize::l2_normalize(&xz, &[rows, cols], 1e-10).unwrap();
    let r = rng.vec(rows * cols, -1.0, 1.0);
    let mut dxz = vec![0f32; xz.len()];
    cpu::l2_normalize::l2_normalize_backward(&r, &yz, &inv, &mut dxz, 1e-10, false);
    let (gyz, ginv, gr, gdxz) = (
        up(ctx, "y", &[rows, cols], &yz),
        up(ctx, "inv", &[rows], &inv),
        up(ctx, "dy", &[rows, cols], &r),
        GpuTensor::zeros(ctx, "dx", &[rows, cols]),
    );
    record(ctx, |enc| k::l2_normalize::l2_normalize_backward(enc, &gr, &gyz, &ginv, &gdxz, 1e-10, false));
    // A 13-term dot product per row, summed in another order: 1e-5.
    assert_close("l2_normalize_backward", &gdxz.download(ctx).unwrap(), &dxz, 1e-5, 1e-5);
}

#[test]
fn pnorm_rows_norms_and_gradient_match_cpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(318);
    let (rows, cols) = (9, 13);
    let xz = rows_with_a_zero_row(&mut rng);
    let (norms, grad) = cpu::l2_normalize::pnorm_rows(&xz, &[rows, cols], 1.5, 1e-4, 0.3).unwrap();
    let (gxz, gn, gg) =
        (up(ctx, "x", &[rows, cols], &xz), GpuTensor::zeros(ctx, "norms", &[rows]), GpuTensor::zeros(ctx, "grad", &[rows, cols]));
    record(ctx, |enc| k::l2_normalize::pnorm_rows(enc, &gxz, &gn, &gg, 1.5, 1e-4, 0.3));
    // powf on each side (the GPU's pow is exp2(log2) with its own rounding): 1e-5 on the norms, and the
    // gradient's |x|^(p-1) near zero is relative-error dominated, hence 1e-4 relative.
    assert_close("pnorm_rows norms", &gn.download(ctx).unwrap(), &norms, 1e-5, 1e-5);
    assert_close("pnorm_rows grad", &gg.download(ctx).unwrap(), &grad, 1e-6, 1e-4);
}

#[test]
fn concat_and_split_accumulate_into_existing_gradients() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(314);
    let shapes = [[2, 3, 4], [2, 3, 1], [2, 3, 6]];
    let whole = [2, 3, 11];
    let dy = rng.vec(66, -1.0, 1.0);
    let prior: Vec<Vec<f32>> = shapes.iter().map(|s| rng.vec(s.iter().product(), -1.0, 1.0)).collect();
    let parts = cpu::concat::split_channels(&dy, &whole, &shapes.iter().map(|s| s.as_slice()).collect::<Vec<_>>()).unwrap();
    let gdy = up(ctx, "dy", &whole, &dy);
    let gparts: Vec<GpuTensor> = prior.iter().zip(&shapes).map(|(p, s)| up(ctx, "part", s, p)).collect();
    let acc = [true, false, true];
    record(ctx, |enc| k::concat::split_channels_into(enc, &gdy, &gparts.iter().collect::<Vec<_>>(), &acc));
    for i in 0..3 {
        let want: Vec<f32> = if acc[i] { parts[i].iter().zip(&prior[i]).map(|(a, b)| a + b).collect() } else { parts[i].clone() };
        // One or two fp32 operations per value on each side: they differ by rounding only.
        assert_close(&format!("split part {i} accumulate {}", acc[i]), &gparts[i].download(ctx).unwrap(), &want, 1e-7, 1e-6);
    }
    let base = rng.vec(66, -1.0, 1.0);
    let gbase = up(ctx, "whole", &whole, &base);
    record(ctx, |enc| k::concat::concat_channels_into(enc, &gparts.iter().collect::<Vec<_>>(), &gbase, true));
    let now: Vec<Vec<f32>> = gparts.iter().map(|g| g.download(ctx).unwrap()).collect();
    let cat = cpu::concat::concat_channels(&now.iter().zip(&shapes).map(|(p, s)| (p.as_slice(), s.as_slice())).collect::<Vec<_>>(), &whole)
        .unwrap();
    let want: Vec<f32> = cat.iter().zip(&base).map(|(a, b)| a + b).collect();
    // One or two fp32 operations per value on each side: they differ by rounding only.
    assert_close("concat accumulate", &gbase.download(ctx).unwrap(), &want, 1e-7, 1e-6);
}

#[test]
fn triplet_loss_gradient_matches_finite_differences_and_gpu_matches_cpu() {
    let mut rng = Rng::new(320);
    let (k, d) = (7, 6);
    // Normalized rows; some triplets already satisfy the margin (zero loss, zero gradient).
    let mut e = rng.vec(3 * k * d, -1.0, 1.0);
    for r in e.chunks_mut(d) {
        let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        r.iter_mut().for_each(|v| *v /= n);
    }
    let (alpha, weight) = (0.2, 0.7);
    let (losses, _, grad) = cpu::triplet::triplet_loss(&e, &[3 * k, d], alpha, weight).unwrap();
    assert!(losses.contains(&0.0) && losses.iter().any(|&l| l > 0.0), "both active and inactive triplets: {losses:?}");
    let trip64 = |e: &[f32]| {
        (0..k)
            .map(|t| {
                let row = |r: usize| &e[(3 * t + r) * d..(3 * t + r + 1) * d];
                let dist = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum::<f64>();
                (dist(row(0), row(1)) - dist(row(0), row(2)) + alpha as f64).max(0.0)
            })
            .sum::<f64>()
            * weight as f64
            / k as f64
    };
    // Skip coordinates of triplets at the hinge (within the step of loss 0).
    let at_hinge = |i: usize| {
        let t = i / (3 * d);
        let l = losses[t];
        l == 0.0 && {
            let row = |r: usize| &e[(3 * t + r) * d..(3 * t + r + 1) * d];
            let dist = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(a, b)| (a - b).powi(2)).sum::<f32>();
            (dist(row(0), row(1)) - dist(row(0), row(2)) + alpha).abs() < 0.01
        }
    };
    fd_check("triplet loss", &e, &grad, 1e-3, 1e-4, at_hinge, trip64);

    let ctx = gpu_or_skip!();
    let ge = up(ctx, "e", &[3 * k, d], &e);
    let (gl, gloss, gg) =
        (GpuTensor::zeros(ctx, "row loss", &[k]), GpuTensor::zeros(ctx, "loss", &[1]), GpuTensor::zeros(ctx, "grad", &[3 * k, d]));
    record(ctx, |enc| k::triplet::triplet_loss(enc, &ge, &gl, &gloss, &gg, alpha, weight));
    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
    assert_close("triplet row losses", &gl.download(ctx).unwrap(), &losses, 1e-6, 1e-5);
    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
    assert_close("triplet gradient", &gg.download(ctx).unwrap(), &grad, 1e-6, 1e-5);
    let err = facegpu::kernels::triplet::TripletParams::new(&[10, 4], 0.2, 1.0).unwrap_err().to_string();
    assert!(err.contains("[3k, d]"), "{err}");
}
