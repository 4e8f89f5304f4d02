// Parameter updates with TensorFlow 1's formulas and facenet's constants (docs/FACENET.md, "Training").
// Every update reads the gradient g and then zeroes it, so the next backward accumulates from zero.
//
// adagrad:  s1 += g^2;  w -= lr * g / sqrt(s1)                       (s1 starts at 0.1, TF's default)
// adadelta: s1 = rho*s1 + (1-rho)*g^2;  d = sqrt(s2 + eps) / sqrt(s1 + eps) * g;
//           s2 = rho*s2 + (1-rho)*d^2;  w -= lr * d                  (rho 0.9, eps 1e-6)
// adam:     s1 += (g - s1)*(1-b1);  s2 += (g^2 - s2)*(1-b2);
//           w -= lr_t * s1 / (sqrt(s2) + eps),  lr_t = lr*sqrt(1-b2^t)/(1-b1^t) computed on the host
//                                                                   (b1 0.9, b2 0.999, eps 0.1)
// rmsprop:  s1 += (g^2 - s1)*(1-decay);  s2 = mom*s2 + lr*g/sqrt(s1 + eps);  w -= s2
//                                                                   (decay 0.9, mom 0.9, eps 1.0; s1 starts at 1)
// momentum: s1 = mom*s1 + g;  w -= lr*(g + mom*s1)                   (Nesterov, mom 0.9)
// sgd:      w -= lr * g
// ema:      s1 -= (1 - decay) * (s1 - w)   (s1 = the shadow; decay = min(decay, (1+t)/(10+t)) on the host)
//
// Parameter names: a = rho | b1 | decay | mom, b = b2 | mom. Each slot is read once into a local: the
// buffers may alias as far as the compiler knows, so a slot read back after its store is another load
// (a loop over the lanes on CPU drivers).

struct Params { n: u32, lr: f32, a: f32, b: f32, eps: f32, _p0: u32, _p1: u32, _p2: u32 }

// Four elements per invocation, as vec4s (buffers are padded to 16 bytes); the elements past n keep
// their values (`keep`), except the gradient's, which are zero anyway.
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<vec4<f32>>;   // [n] the parameter
@group(0) @binding(2) var<storage, read_write> g: array<vec4<f32>>;   // [n] its gradient, zeroed after use
@group(0) @binding(3) var<storage, read_write> s1: array<vec4<f32>>;  // [n] first slot
@group(0) @binding(4) var<storage, read_write> s2: array<vec4<f32>>;  // [n] second slot


// Which of the 4 elements of vec4 i4 are below n.
fn live(i4: u32) -> vec4<bool> {
    return vec4<u32>(i4 * 4u) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.n);
}

fn take_grad(i4: u32) -> vec4<f32> {
    let v = g[i4];
    g[i4] = vec4<f32>();
    return v;
}

@compute @workgroup_size(64)
fn adagrad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i * 4u < p.n) {
        let keep = live(i);
        let d = take_grad(i);
        let a0 = s1[i];
        let a = a0 + d * d;
        s1[i] = select(a0, a, keep);
        let w0 = w[i];
        w[i] = select(w0, w0 - p.lr * d * inverseSqrt(a), keep);
    }
}

@compute @workgroup_size(64)
fn adadelta(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i * 4u < p.n) {
        let keep = live(i);
        let d = take_grad(i);
        let a0 = s1[i];
        let a = p.a * a0 + (1.0 - p.a) * d * d;
        s1[i] = select(a0, a, keep);
        let b = s2[i];
        let u = sqrt(b + p.eps) * inverseSqrt(a + p.eps) * d;
        s2[i] = select(b, p.a * b + (1.0 - p.a) * u * u, keep);
        let w0 = w[i];
        w[i] = select(w0, w0 - p.lr * u, keep);
    }
}

@compute @workgroup_size(64)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i * 4u < p.n) {
        let keep = live(i);
        let d = take_grad(i);
        let m0 = s1[i];
        let m = m0 + (d - m0) * (1.0 - p.a);
        let v0 = s2[i];
        let v = v0 + (d * d - v0) * (1.0 - p.b);
        s1[i] = select(m0, m, keep);
        s2[i] = select(v0, v, keep);
        let w0 = w[i];
        w[i] = select(w0, w0 - p.lr * m / (sqrt(v) + p.eps), keep);
    }
}

@compute @workgroup_size(64)
fn rmsprop(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i * 4u < p.n) {
        let keep = live(i);
        let d = take_grad(i);
        let a0 = s1[i];
        let a = a0 + (d * d - a0) * (1.0 - p.a);
        s1[i] = select(a0, a, keep);
        let b0 = s2[i];
        let b = p.b * b0 + p.lr * d * inverseSqrt(a + p.eps);
        s2[i] = select(b0, b, keep);
        let w0 = w[i];
        w[i] = select(w0, w0 - b, keep);
    }
}

@compute @workgroup_size(64)
fn momentum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i * 4u < p.n) {
        let keep = live(i);
        let d = take_grad(i);
        let a0 = s1[i];
        let a = p.a * a0 + d;
        s1[i] = select(a0, a, keep);
        let w0 = w[i];
        w[i] = select(w0, w0 - p.lr * (d + p.a * a), keep);
    }
}

@compute @workgroup_size(64)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i * 4u < p.n) {
        let keep = live(i);
        let w0 = w[i];
        w[i] = select(w0, w0 - p.lr * take_grad(i), keep);
    }
}

@compute @workgroup_size(64)
fn ema(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i * 4u < p.n) {
        let keep = live(i);
        let a = s1[i];
        s1[i] = select(a, a - (1.0 - p.a) * (a - w[i]), keep);
    }
}
