// Batch normalization over the last (channel) axis of a [rows, c] view of NHWC data.
//
// bn_inference:  y = (x - moving_mean[c]) / sqrt(moving_var[c] + eps) * gamma[c] + beta[c]
// bn_stats:      mean[c] = sum_r x[r,c] / rows;  var[c] = sum_r (x[r,c] - mean[c])^2 / rows (biased);
//                invstd[c] = 1 / sqrt(var[c] + eps)   (both saved for backward)
//                moving_mean -= (1 - decay) * (moving_mean - mean)
//                moving_var  -= (1 - decay) * (moving_var - var * rows / (rows - 1))   (Bessel, as TF's fused BN)
// bn_normalize:  y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c]
// gamma is 1 when flags & 1 == 0 (facenet's scale=False).

struct Params {
    rows: u32, c: u32, flags: u32, eps: f32,
    decay: f32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // [rows, c]
@group(0) @binding(2) var<storage, read> stat_a: array<f32>;     // [c] moving_mean (inference) | mean (normalize)
@group(0) @binding(3) var<storage, read> stat_b: array<f32>;     // [c] moving_var (inference) | invstd (normalize)
@group(0) @binding(4) var<storage, read> gamma: array<f32>;      // [c] (flags & 1)
@group(0) @binding(5) var<storage, read> beta: array<f32>;       // [c]
@group(0) @binding(6) var<storage, read_write> y: array<f32>;    // [rows, c]

fn gamma_of(ch: u32) -> f32 {
    return select(1.0, gamma[ch], (p.flags & 1u) != 0u);
}

@compute @workgroup_size(64)
fn bn_inference(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= p.rows * p.c) {
        return;
    }
    let ch = i % p.c;
    y[i] = (x[i] - stat_a[ch]) * inverseSqrt(stat_b[ch] + p.eps) * gamma_of(ch) + beta[ch];
}

@compute @workgroup_size(64)
fn bn_normalize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= p.rows * p.c) {
        return;
    }
    let ch = i % p.c;
    y[i] = (x[i] - stat_a[ch]) * stat_b[ch] * gamma_of(ch) + beta[ch];
}
