//! The autograd tape and the optimizers end to end: optimizer kernels against their CPU twins, a tape
//! gradient against finite differences through a branching graph, a small conv net trained on the GPU,
//! one training step on GPU and CPU, and memory that stays flat from step to step.

mod common;

use common::{assert_close, Rng};
use facegpu::cpu;
use facegpu::gpu::{Encoder, GpuContext, GpuTensor};
use facegpu::kernels::conv2d::{Epilogue, Padding};
use facegpu::kernels::optimizer::{self as kopt, OptimizerKind};
use facegpu::tape::{Act, BatchNormSpec, ConvSpec, ParamId, ParamStore, StateId, Tape};
use facegpu::train::{Ema, Optimizer};

#[test]
fn optimizers_match_cpu_twins_over_several_steps() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(400);
    let n = 77;
    for kind in OptimizerKind::ALL {
        let mut store = ParamStore::new();
        let w0 = rng.vec(n, -1.0, 1.0);
        let id = store.add(ctx, "w", &[7, 11], &w0, true).unwrap();
        let mut opt = Optimizer::new(ctx, kind, &store).unwrap();
        let ema = Ema::new(ctx, &store, 0.9999).unwrap();
        let (a, b) = kind.slot_init();
        let (mut w, mut s1, mut s2, mut shadow) = (w0.clone(), vec![a; n], vec![b; n], w0.clone());
        for step in 1..=6u64 {
            let mut g = rng.vec(n, -2.0, 2.0);
            store.get(id).grad.write(ctx, &g).unwrap();
            let lr = 0.05 / step as f32;
            let mut enc = Encoder::new(ctx);
            opt.step(&mut enc, &store, lr).unwrap();
            ema.update(&mut enc, &store, opt.step).unwrap();
            enc.submit().unwrap();
            cpu::optimizer::update(kind, &mut w, &mut g, &mut s1, &mut s2, lr, step);
            cpu::optimizer::ema(&mut shadow, &w, kopt::ema_decay(0.9999, step));
        }
        let name = kind.name();
        // A few fp32 operations or a short sum per value, in another order: about 1e-6.
        assert_close(&format!("{name} weights"), &store.get(id).value.download(ctx).unwrap(), &w, 1e-6, 1e-5);
        // Exact: the kernel only moves, compares or selects values.
        assert_close(&format!("{name} gradient zeroed"), &store.get(id).grad.download(ctx).unwrap(), &vec![0.0; n], 0.0, 0.0);
        for (i, want) in [s1, s2].iter().enumerate().take(kind.slots()) {
            // A few fp32 operations or a short sum per value, in another order: about 1e-6.
            assert_close(&format!("{name} slot {i}"), &opt.slots[0][i].download(ctx).unwrap(), want, 1e-6, 1e-5);
        }
        // A few fp32 operations or a short sum per value, in another order: about 1e-6.
        assert_close(&format!("{name} moving average"), &ema.shadows[0].download(ctx).unwrap(), &shadow, 1e-6, 1e-5);
        let moved = w.iter().zip(&w0).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        assert!(moved > 1e-5, "{name}: six steps moved the weights by only {moved}");
    }
    assert_eq!("mom".parse::<OptimizerKind>().unwrap(), OptimizerKind::Momentum);
    assert!("LBFGS".parse::<OptimizerKind>().unwrap_err().contains("ADAGRAD"));
    // TF's moving-average decay warm-up: min(decay, (1+t)/(10+t)).
    assert_eq!(kopt::ema_decay(0.9999, 0), 0.1);
    assert_eq!(kopt::ema_decay(0.9999, 1_000_000), 0.9999);
}

/// The three losses of the branching graph, weighted as the tape weighted their gradients.
const LOSS_WEIGHTS: [f64; 3] = [0.8, 0.1, 0.05];

#[test]
fn tape_gradients_through_a_branching_graph_match_finite_differences() {
    // x -> [1x1 conv + bias + ReLU | 3x3 conv + PReLU] -> concat -> 1x1 conv with residual x (scale 0.3)
    //   -> split [1, 2] (part 0 unused) -> avg pool 3x3/2 SAME -> global avg pool -> dropout
    //   -> prelogits norm loss; L2 normalize -> linear -> softmax cross-entropy + center loss on the logits.
    // x itself is a parameter, so the residual, both branches and the concat all feed its gradient.
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(401);
    let mut store = ParamStore::new();
    let mut add = |name: &str, shape: &[usize], lo: f32, hi: f32| {
        store.add(ctx, name, shape, &rng.vec(shape.iter().product(), lo, hi), true).unwrap()
    };
    let ids: Vec<ParamId> = vec![
        add("x", &[2, 5, 6, 3], -1.0, 1.0),
        add("b1/weights", &[1, 1, 3, 4], -0.8, 0.8),
        add("b1/biases", &[4], -0.2, 0.2),
        add("b2/weights", &[3, 3, 3, 2], -0.5, 0.5),
        add("b2/alpha", &[2], 0.1, 0.3),
        add("up/weights", &[1, 1, 6, 3], -0.5, 0.5),
        add("fc/weights", &[2, 5], -1.0, 1.0),
        add("fc/biases", &[5], -0.1, 0.1),
    ];
    let labels = GpuTensor::upload_u32(ctx, "labels", &[2], &[3, 1]).unwrap();
    let centers = GpuTensor::upload(ctx, "centers", &[5, 5], &rng.vec(25, -0.5, 0.5)).unwrap();
    let center_labels = GpuTensor::upload_u32(ctx, "center labels", &[2], &[0, 4]).unwrap();
    let mut tape = Tape::new();
    // Records the forward (and the backward when asked) and returns the weighted total loss.
    let mut run = |store: &ParamStore, backward: bool| -> f64 {
        tape.reset();
        let mut enc = Encoder::new(ctx);
        let v: Vec<_> = ids.iter().map(|&id| tape.param(store, id)).collect();
        let t = &mut tape;
        let e = &mut enc;
        let br1 = t.conv2d(e, v[0], v[1], ConvSpec { bias: Some(v[2]), act: Act::Relu, ..ConvSpec::new((1, 1), Padding::Same) }).unwrap();
        let br2 = t.conv2d(e, v[0], v[3], ConvSpec { act: Act::Prelu(v[4]), ..ConvSpec::new((1, 1), Padding::Same) }).unwrap();
        let cat = t.concat(e, &[br1, br2]).unwrap();
        let up = t.conv2d(e, cat, v[5], ConvSpec { residual: Some((v[0], 0.3)), ..ConvSpec::new((1, 1), Padding::Same) }).unwrap();
        let parts = t.split(e, up, &[1, 2]).unwrap();
        let pooled = t.avg_pool(e, parts[1], (3, 3), (2, 2), Padding::Same).unwrap();
        let g = t.global_avg_pool(e, pooled).unwrap();
        let g = t.dropout(e, g, 0.75, 5).unwrap();
        let norm = t.prelogits_norm(e, g, 1.0, 1e-4, LOSS_WEIGHTS[1] as f32).unwrap();
        let emb = t.l2_normalize(e, g, 1e-10).unwrap();
        let logits = t.linear(e, emb, v[6], Some(v[7])).unwrap();
        let (xent, _) = t.softmax_xent(e, logits, &labels, LOSS_WEIGHTS[0] as f32).unwrap();
        // alfa 1 leaves the centers where they are, so the loss is a fixed function of the parameters.
        let center = t.center_loss(e, logits, &center_labels, &centers, 1.0, LOSS_WEIGHTS[2] as f32).unwrap();
        if backward {
            t.backward(e).unwrap();
        }
        enc.submit().unwrap();
        [xent, norm, center].iter().zip(LOSS_WEIGHTS).map(|(l, w)| l.download(ctx).unwrap()[0] as f64 * w).sum()
    };
    run(&store, true);
    let grads: Vec<Vec<f32>> = ids.iter().map(|&id| store.get(id).grad.download(ctx).unwrap()).collect();
    // A small step keeps the ReLU/PReLU kinks out of it (a 3e-3 step crossed some, off by up to 7%); the
    // cost is f32 rounding of the loss, about 1e-7 / 4e-4, well inside the tolerance.
    let h = 2e-4f32;
    for (k, &id) in ids.iter().enumerate() {
        let p = store.get(id);
        let w0 = p.value.download(ctx).unwrap();
        let step = (w0.len() / 12).max(1);
        for i in (0..w0.len()).step_by(step) {
            let mut w = w0.clone();
            w[i] = w0[i] + h;
            p.value.write(ctx, &w).unwrap();
            let lp = run(&store, false);
            w[i] = w0[i] - h;
            p.value.write(ctx, &w).unwrap();
            let lm = run(&store, false);
            p.value.write(ctx, &w0).unwrap();
            let numeric = (lp - lm) / (2.0 * h as f64);
            let a = grads[k][i] as f64;
            assert!((numeric - a).abs() <= 2e-3 * (1.0 + a.abs()), "d loss / d {}[{i}]: finite difference {numeric}, tape {a}", p.name);
        }
    }
}

/// conv 3x3 (1 -> 8, no bias) -> batch norm (beta, no gamma: facenet's) -> ReLU -> max pool 2x2/2
/// -> linear 128 -> 4 (+ bias) -> softmax cross-entropy, on 8x8 single-channel images.
struct SmallNet {
    conv: ParamId,
    beta: ParamId,
    fc_w: ParamId,
    fc_b: ParamId,
    moving_mean: StateId,
    moving_var: StateId,
}

const BN: BatchNormSpec = BatchNormSpec { eps: 1e-3, decay: 0.995, relu: false };

impl SmallNet {
    fn new(ctx: &GpuContext, store: &mut ParamStore, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let conv = store.add(ctx, "Conv2d_1/weights", &[3, 3, 1, 8], &rng.vec(72, -0.6, 0.6), true).unwrap();
        let beta = store.add(ctx, "Conv2d_1/BatchNorm/beta", &[8], &[0.0; 8], false).unwrap();
        let fc_w = store.add(ctx, "Logits/weights", &[128, 4], &rng.vec(512, -0.15, 0.15), true).unwrap();
        let fc_b = store.add(ctx, "Logits/biases", &[4], &[0.0; 4], false).unwrap();
        let moving_mean = store.add_state(ctx, "Conv2d_1/BatchNorm/moving_mean", &[8], &[0.0; 8]).unwrap();
        let moving_var = store.add_state(ctx, "Conv2d_1/BatchNorm/moving_variance", &[8], &[1.0; 8]).unwrap();
        Self { conv, beta, fc_w, fc_b, moving_mean, moving_var }
    }

    /// Records the forward and the loss; returns (mean loss, probabilities).
    fn forward(
        &self,
        tape: &mut Tape,
        enc: &mut Encoder,
        store: &ParamStore,
        images: &GpuTensor,
        labels: &GpuTensor,
    ) -> (GpuTensor, GpuTensor) {
        let b = images.shape[0];
        let x = tape.input(images);
        let (w, beta, fw, fb) =
            (tape.param(store, self.conv), tape.param(store, self.beta), tape.param(store, self.fc_w), tape.param(store, self.fc_b));
        let y = tape.conv2d(enc, x, w, ConvSpec::new((1, 1), Padding::Same)).unwrap();
        // Batch norm with its ReLU fused (the CPU step below runs them as two twins).
        let bn_relu = BatchNormSpec { relu: true, ..BN };
        let y = tape.batch_norm(enc, y, None, beta, (store.state(self.moving_mean), store.state(self.moving_var)), bn_relu).unwrap();
        let y = tape.max_pool(enc, y, (2, 2), (2, 2), Padding::Valid).unwrap();
        let y = tape.reshape(y, &[b, 128]).unwrap();
        let logits = tape.linear(enc, y, fw, Some(fb)).unwrap();
        tape.softmax_xent(enc, logits, labels, 1.0).unwrap()
    }
}

/// Four classes of 8x8 images: a bright 3x3 blob in one quadrant, on uniform noise.
fn blobs(rng: &mut Rng, n: usize) -> (Vec<f32>, Vec<u32>) {
    let labels = rng.labels(n, 4);
    let mut images = rng.vec(n * 64, -0.5, 0.5);
    for (i, &l) in labels.iter().enumerate() {
        let (cy, cx) = (1 + 4 * (l as usize / 2), 1 + 4 * (l as usize % 2));
        for y in cy..cy + 3 {
            for x in cx..cx + 3 {
                images[i * 64 + y * 8 + x] += 0.8;
            }
        }
    }
    (images, labels)
}

fn accuracy(prob: &[f32], labels: &[u32]) -> f32 {
    let hits = prob.chunks(4).zip(labels).filter(|(p, &l)| (0..4).max_by(|&a, &b| p[a].total_cmp(&p[b])) == Some(l as usize)).count();
    hits as f32 / labels.len() as f32
}

#[test]
fn small_conv_net_trains_to_99_percent_on_the_gpu() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(402);
    let mut store = ParamStore::new();
    let net = SmallNet::new(ctx, &mut store, 403);
    let mut opt = Optimizer::new(ctx, OptimizerKind::Adam, &store).unwrap();
    let batch = 32;
    let (train_x, train_y) = blobs(&mut rng, 512);
    let images = GpuTensor::zeros(ctx, "images", &[batch, 8, 8, 1]);
    let labels = GpuTensor::zeros_u32(ctx, "labels", &[batch]);
    let mut tape = Tape::new();
    let mut curve = Vec::new();
    let steps = 300;
    for step in 0..steps {
        let at = (step * batch) % 512;
        images.write(ctx, &train_x[at * 64..(at + batch) * 64]).unwrap();
        labels.write_u32(ctx, &train_y[at..at + batch]).unwrap();
        tape.reset();
        let mut enc = Encoder::new(ctx);
        let (loss, _) = net.forward(&mut tape, &mut enc, &store, &images, &labels);
        tape.backward(&mut enc).unwrap();
        opt.step(&mut enc, &store, 0.05).unwrap();
        enc.submit().unwrap();
        if step % 25 == 0 || step == steps - 1 {
            curve.push((step, loss.download(ctx).unwrap()[0]));
        }
    }
    println!("loss curve (step, mean cross-entropy):");
    for (step, l) in &curve {
        println!("  {step:4} {l:.4}");
    }
    // Training accuracy over all 512 training images, 32 at a time (batch statistics, as in training).
    let mut hits = 0.0;
    for at in (0..512).step_by(batch) {
        images.write(ctx, &train_x[at * 64..(at + batch) * 64]).unwrap();
        labels.write_u32(ctx, &train_y[at..at + batch]).unwrap();
        tape.reset();
        let mut enc = Encoder::new(ctx);
        let (_, prob) = net.forward(&mut tape, &mut enc, &store, &images, &labels);
        enc.submit().unwrap();
        hits += accuracy(&prob.download(ctx).unwrap(), &train_y[at..at + batch]) * batch as f32;
    }
    let acc = hits / 512.0;
    println!("training accuracy after {steps} steps: {acc:.4}");
    assert!(curve.last().unwrap().1 < curve[0].1 * 0.2, "loss fell from {} to {}", curve[0].1, curve.last().unwrap().1);
    assert!(acc >= 0.99, "training accuracy {acc} is below 0.99");
}

/// One step of the small net on the CPU twins: returns (loss, gradients, updated parameters) in the
/// order conv, beta, fc_w, fc_b.
#[allow(clippy::type_complexity)]
fn cpu_step(
    params: &mut [Vec<f32>],
    moving: &mut [Vec<f32>; 2],
    x: &[f32],
    labels: &[u32],
    lr: f32,
    slots: &mut [[Vec<f32>; 2]],
) -> (f32, Vec<Vec<f32>>) {
    let b = labels.len();
    let (y1, _) = cpu::conv2d::conv2d(x, &[b, 8, 8, 1], &params[0], &[3, 3, 1, 8], &Epilogue::default(), (1, 1), Padding::Same).unwrap();
    let [mm, mv] = moving;
    let (y2, mean, invstd) = cpu::batch_norm::batch_norm_train(&y1, &[b, 8, 8, 8], None, &params[1], mm, mv, BN.eps, BN.decay).unwrap();
    let y3 = cpu::elementwise::relu(&y2);
    let (y4, arg, _) = cpu::pool::max_pool(&y3, &[b, 8, 8, 8], (2, 2), (2, 2), Padding::Valid).unwrap();
    let mut logits = vec![0f32; b * 4];
    cpu::matmul::matmul(&y4, &[b, 128], &params[2], &[128, 4], Some(&params[3]), &mut logits, false, false, false).unwrap();
    let (prob, _, loss) = cpu::softmax::softmax_xent(&logits, &[b, 4], labels).unwrap();
    let mut dz = vec![0f32; b * 4];
    cpu::softmax::softmax_xent_backward(&prob, labels, 1.0, &mut dz, false);
    let (mut dfw, mut dfb, mut dy4) = (vec![0f32; 512], vec![0f32; 4], vec![0f32; b * 128]);
    cpu::matmul::matmul(&y4, &[b, 128], &dz, &[b, 4], None, &mut dfw, true, false, false).unwrap();
    cpu::reduce::col_sum(&dz, &mut dfb, 1.0, false);
    cpu::matmul::matmul(&dz, &[b, 4], &params[2], &[128, 4], None, &mut dy4, false, true, false).unwrap();
    let mut dy3 = vec![0f32; y3.len()];
    cpu::pool::max_pool_backward(&dy4, &arg, &mut dy3, false);
    let mut dy2 = vec![0f32; y2.len()];
    cpu::elementwise::relu_backward(&dy3, &y3, &mut dy2, false);
    let (mut dy1, mut dbeta) = (vec![0f32; y1.len()], vec![0f32; 8]);
    cpu::batch_norm::batch_norm_backward(&y1, &dy2, None, &mean, &invstd, &mut dy1, None, Some(&mut dbeta), false);
    let mut dw = vec![0f32; 72];
    cpu::conv2d_backward::grad_weight(x, &[b, 8, 8, 1], &dy1, &mut dw, &[3, 3, 1, 8], (1, 1), Padding::Same, false).unwrap();
    let grads = vec![dw, dbeta, dfw, dfb];
    for ((p, g), [s1, s2]) in params.iter_mut().zip(grads.clone()).zip(slots.iter_mut()) {
        let mut g = g;
        cpu::optimizer::update(OptimizerKind::Adam, p, &mut g, s1, s2, lr, 1);
    }
    (loss, grads)
}

#[test]
fn one_training_step_gives_the_same_weights_on_gpu_and_cpu() {
    let ctx = gpu_or_skip!();
    // Both kernel shapes: the conv's weight gradient, the linear layer's matmuls.
    for ctx in common::both_shapes(ctx) {
        one_training_step_matches_cpu(ctx);
    }
}

fn one_training_step_matches_cpu(ctx: &GpuContext) {
    let mut rng = Rng::new(404);
    let mut store = ParamStore::new();
    let net = SmallNet::new(ctx, &mut store, 405);
    let ids = [net.conv, net.beta, net.fc_w, net.fc_b];
    let mut params: Vec<Vec<f32>> = ids.iter().map(|&id| store.get(id).value.download(ctx).unwrap()).collect();
    let mut moving = [vec![0f32; 8], vec![1f32; 8]];
    let mut slots: Vec<[Vec<f32>; 2]> = params.iter().map(|p| [vec![0f32; p.len()], vec![0f32; p.len()]]).collect();
    let (x, y) = blobs(&mut rng, 32);
    let (want_loss, want_grads) = cpu_step(&mut params, &mut moving, &x, &y, 0.05, &mut slots);

    let mut opt = Optimizer::new(ctx, OptimizerKind::Adam, &store).unwrap();
    let images = GpuTensor::upload(ctx, "images", &[32, 8, 8, 1], &x).unwrap();
    let labels = GpuTensor::upload_u32(ctx, "labels", &[32], &y).unwrap();
    let mut tape = Tape::new();
    let mut enc = Encoder::new(ctx);
    let (loss, _) = net.forward(&mut tape, &mut enc, &store, &images, &labels);
    tape.backward(&mut enc).unwrap();
    enc.submit().unwrap();
    let names = ["conv weights", "beta", "fc weights", "fc biases"];
    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
    assert_close("loss", &loss.download(ctx).unwrap(), &[want_loss], 1e-6, 1e-5);
    for ((&id, want), name) in ids.iter().zip(&want_grads).zip(names) {
        // Gradients summed over 2048 pixels (conv weights) in another order.
        assert_close(&format!("gradient of {name}"), &store.get(id).grad.download(ctx).unwrap(), want, 1e-5, 1e-4);
    }
    let mut enc = Encoder::new(ctx);
    opt.step(&mut enc, &store, 0.05).unwrap();
    enc.submit().unwrap();
    for ((&id, want), name) in ids.iter().zip(&params).zip(names) {
        // A few fp32 operations or a short sum per value, in another order: about 1e-6.
        assert_close(&format!("{name} after one ADAM step"), &store.get(id).value.download(ctx).unwrap(), want, 1e-6, 1e-5);
    }
    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
    assert_close("moving mean", &store.state(net.moving_mean).download(ctx).unwrap(), &moving[0], 1e-6, 1e-5);
    // A few fp32 operations or a short sum per value, in another order: about 1e-6.
    assert_close("moving variance", &store.state(net.moving_var).download(ctx).unwrap(), &moving[1], 1e-6, 1e-5);
}

#[test]
fn memory_after_step_1000_equals_memory_after_step_2() {
    let ctx = gpu_or_skip!();
    let mut rng = Rng::new(406);
    let mut store = ParamStore::new();
    let net = SmallNet::new(ctx, &mut store, 407);
    let mut opt = Optimizer::new(ctx, OptimizerKind::RmsProp, &store).unwrap();
    let ema = Ema::new(ctx, &store, 0.9999).unwrap();
    let images = GpuTensor::zeros(ctx, "images", &[16, 8, 8, 1]);
    let labels = GpuTensor::zeros_u32(ctx, "labels", &[16]);
    let mut tape = Tape::new();
    let mut held = Vec::new();
    for _ in 1..=1000 {
        let (x, y) = blobs(&mut rng, 16);
        images.write(ctx, &x).unwrap();
        labels.write_u32(ctx, &y).unwrap();
        tape.reset();
        let mut enc = Encoder::new(ctx);
        net.forward(&mut tape, &mut enc, &store, &images, &labels);
        tape.backward(&mut enc).unwrap();
        opt.step(&mut enc, &store, 0.01).unwrap();
        ema.update(&mut enc, &store, opt.step).unwrap();
        enc.submit().unwrap();
        let allocator = ctx.device.generate_allocator_report().map(|r| r.total_reserved_bytes);
        held.push((tape.bytes() + store.bytes() + opt.bytes(), allocator));
    }
    println!("bytes held after step 2: {:?}, after step 1000: {:?}", held[1], held[999]);
    assert!(held[1].0 > 0);
    assert_eq!(
        held[1], held[999],
        "tape + parameters + optimizer (and the allocator's reserve, where reported) grew between step 2 and step 1000"
    );
}
