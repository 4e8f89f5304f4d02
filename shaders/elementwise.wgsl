// Elementwise ops over n elements; `c` is the channel count (last axis) where a per-channel operand is used.
// Each invocation takes 4 consecutive elements as vec4s (on llvmpipe every storage access is a loop over
// the lanes, so one vec4 access costs about what one scalar does); the last invocation stores only the
// elements below n. Buffers are padded to 16 bytes, so whole-vec4 reads stay inside them.
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

// FLAGS is the params' `flags`, compiled into each pipeline (src/gpu/encoder.rs `flags`): CPU drivers run
// both sides of every branch under a lane mask, so a branch on the uniform would cost the paths not taken.
override FLAGS: u32;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;            // [n]
@group(0) @binding(2) var<storage, read> z: array<vec4<f32>>;            // [n] (add_scaled) | alpha [c] (prelu)
@group(0) @binding(3) var<storage, read_write> y: array<vec4<f32>>;      // [n]
@group(0) @binding(4) var<storage, read_write> mask: array<vec4<u32>>;   // [n] (dropout)
@group(0) @binding(5) var<storage, read> u: array<vec4<f32>>;            // [n] forward input (prelu_backward)
@group(0) @binding(6) var<storage, read_write> out2: array<vec4<f32>>;   // [n] (prelu_backward)

fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// The index of this invocation's vec4 (elements 4*i4 .. 4*i4+3), or none past the end.
fn index4(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * 64u + gid.x;
}

// Writes the existing elements of vec4 i4 of y.
fn put(i4: u32, v: vec4<f32>) {
    if (i4 * 4u + 4u <= p.n) {
        y[i4] = v;
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (i4 * 4u + j < p.n) {
            y[i4][j] = v[j];
        }
    }
}

fn put2(i4: u32, v: vec4<f32>) {
    if (i4 * 4u + 4u <= p.n) {
        out2[i4] = v;
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (i4 * 4u + j < p.n) {
            out2[i4][j] = v[j];
        }
    }
}

// The per-channel operand z[e % c] of elements e..e+3.
fn per_channel(i4: u32) -> vec4<f32> {
    let e = i4 * 4u;
    if ((p.c & 3u) == 0u) {
        return z[(e % p.c) / 4u];
    }
    let ch = (e + vec4<u32>(0u, 1u, 2u, 3u)) % p.c;
    return vec4<f32>(z[ch.x >> 2u][ch.x & 3u], z[ch.y >> 2u][ch.y & 3u], z[ch.z >> 2u][ch.z & 3u], z[ch.w >> 2u][ch.w & 3u]);
}

@compute @workgroup_size(64)
fn relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index4(gid, nwg);
    if (i * 4u < p.n) {
        put(i, max(x[i], vec4<f32>()));
    }
}

@compute @workgroup_size(64)
fn prelu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index4(gid, nwg);
    if (i * 4u < p.n) {
        let v = x[i];
        put(i, max(v, vec4<f32>()) + per_channel(i) * min(v, vec4<f32>()));
    }
}

@compute @workgroup_size(64)
fn add_scaled(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index4(gid, nwg);
    if (i * 4u < p.n) {
        put(i, x[i] + p.a * z[i]);
    }
}

@compute @workgroup_size(64)
fn affine(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index4(gid, nwg);
    if (i * 4u < p.n) {
        put(i, p.a * x[i] + p.b);
    }
}

@compute @workgroup_size(64)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index4(gid, nwg);
    if (i * 4u < p.n) {
        let e = i * 4u + vec4<u32>(0u, 1u, 2u, 3u);
        let h = vec4<u32>(pcg(p.seed ^ (e.x * 0x9E3779B9u)), pcg(p.seed ^ (e.y * 0x9E3779B9u)),
                          pcg(p.seed ^ (e.z * 0x9E3779B9u)), pcg(p.seed ^ (e.w * 0x9E3779B9u)));
        let keep = vec4<f32>(h >> vec4<u32>(8u)) / 16777216.0 < vec4<f32>(p.a);
        let m = select(vec4<u32>(), vec4<u32>(1u), keep);
        if (i * 4u + 4u <= p.n) {
            mask[i] = m;
        } else {
            for (var j = 0u; j < 4u; j++) {
                if (i * 4u + j < p.n) {
                    mask[i][j] = m[j];
                }
            }
        }
        put(i, select(vec4<f32>(), x[i] / p.a, keep));
    }
}

@compute @workgroup_size(64)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index4(gid, nwg);
    if (i * 4u < p.n) {
        put(i, y[i] + p.a * x[i]);
    }
}

// Writes a gradient, or adds it when flags & 1.
fn store_grad(i4: u32, v: vec4<f32>) {
    put(i4, select(vec4<f32>(), y[i4], (FLAGS & 1u) != 0u) + v);
}

@compute @workgroup_size(64)
fn relu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index4(gid, nwg);
    if (i * 4u < p.n) {
        store_grad(i, select(vec4<f32>(), x[i], z[i] > vec4<f32>()));
    }
}

@compute @workgroup_size(64)
fn prelu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index4(gid, nwg);
    if (i * 4u < p.n) {
        let v = u[i];
        let dy = x[i];
        store_grad(i, select(per_channel(i) * dy, dy, v > vec4<f32>()));
        put2(i, dy * min(v, vec4<f32>()));
    }
}

@compute @workgroup_size(64)
fn dropout_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index4(gid, nwg);
    if (i * 4u < p.n) {
        store_grad(i, select(vec4<f32>(), x[i] / p.a, mask[i] == vec4<u32>(1u)));
    }
}
