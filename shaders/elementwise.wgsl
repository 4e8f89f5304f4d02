// Elementwise ops over n elements; `c` is the channel count (last axis) where a per-channel operand is used.
//
// relu:       y = max(x, 0)
// prelu:      y = max(x, 0) + alpha[i % c] * min(x, 0)
// add_scaled: y = x + a * z
// affine:     y = a * x + b                   (scalar scale and shift)
// dropout:    mask = hash(seed, i) < keep ? 1 : 0;  y = x * mask / keep   (mask saved for backward)
//             hash: PCG (O'Neill) of seed ^ (i * 0x9E3779B9), top 24 bits as a uniform in [0, 1)
// axpy:       y += a * x                      (in place: gradient accumulation)
//
// Backward (x = dy; the gradient dx is written to y, or added to it when flags & 1):
// relu_backward:    dx (+)= dy * (z > 0)                       (z = the forward output)
// prelu_backward:   dx (+)= dy * (u > 0 ? 1 : alpha[i % c]);  out2 = dy * min(u, 0)
//                   (u = the forward input; out2's column sums are d alpha)
// dropout_backward: dx (+)= dy * mask / keep

struct Params { n: u32, c: u32, a: f32, b: f32, seed: u32, flags: u32, _p1: u32, _p2: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [n]
@group(0) @binding(2) var<storage, read> z: array<f32>;            // [n] (add_scaled) | alpha [c] (prelu)
@group(0) @binding(3) var<storage, read_write> y: array<f32>;      // [n]
@group(0) @binding(4) var<storage, read_write> mask: array<u32>;   // [n] (dropout)
@group(0) @binding(5) var<storage, read> u: array<f32>;            // [n] forward input (prelu_backward)
@group(0) @binding(6) var<storage, read_write> out2: array<f32>;   // [n] (prelu_backward)

fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * 64u + gid.x;
}

@compute @workgroup_size(64)
fn relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        y[i] = max(x[i], 0.0);
    }
}

@compute @workgroup_size(64)
fn prelu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        let v = x[i];
        y[i] = max(v, 0.0) + z[i % p.c] * min(v, 0.0);
    }
}

@compute @workgroup_size(64)
fn add_scaled(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        y[i] = x[i] + p.a * z[i];
    }
}

@compute @workgroup_size(64)
fn affine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        y[i] = p.a * x[i] + p.b;
    }
}

@compute @workgroup_size(64)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        let u = f32(pcg(p.seed ^ (i * 0x9E3779B9u)) >> 8u) / 16777216.0;
        let keep = u < p.a;
        mask[i] = select(0u, 1u, keep);
        y[i] = select(0.0, x[i] / p.a, keep);
    }
}

@compute @workgroup_size(64)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        y[i] += p.a * x[i];
    }
}

fn store_grad(i: u32, v: f32) {
    y[i] = select(0.0, y[i], (p.flags & 1u) != 0u) + v;
}

@compute @workgroup_size(64)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        store_grad(i, select(0.0, x[i], z[i] > 0.0));
    }
}

@compute @workgroup_size(64)
fn prelu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        let v = u[i];
        store_grad(i, select(z[i % p.c] * x[i], x[i], v > 0.0));
        out2[i] = x[i] * min(v, 0.0);
    }
}

@compute @workgroup_size(64)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        store_grad(i, select(0.0, x[i] / p.a, mask[i] == 1u));
    }
}
