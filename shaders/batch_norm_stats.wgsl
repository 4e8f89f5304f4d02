// Training batch-norm statistics, one workgroup per 4 channels (vec4 loads) when c is a multiple of 4,
// else per channel (see batch_norm.wgsl for the formulas):
//   mean[c], invstd[c] = 1/sqrt(var_biased[c] + eps), and the moving-average update with Bessel's correction.

struct Params {
    rows: u32, c: u32, flags: u32, eps: f32,
    decay: f32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;           // [rows, c] (padded to 16 bytes)
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;        // [c] saved for backward
@group(0) @binding(3) var<storage, read_write> invstd: array<f32>;      // [c] saved for backward
@group(0) @binding(4) var<storage, read_write> moving_mean: array<f32>; // [c] updated in place
@group(0) @binding(5) var<storage, read_write> moving_var: array<f32>;  // [c] updated in place

var<workgroup> part: array<vec4<f32>, 64>;

fn reduce(t: u32, v: vec4<f32>) -> vec4<f32> {
    part[t] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (t < s) {
            part[t] += part[t + s];
        }
        workgroupBarrier();
    }
    let total = part[0];
    workgroupBarrier();
    return total;
}

// Channels ch0.. of row r: 4 of them when c is a multiple of 4, else one (in x).
fn row(r: u32, ch0: u32) -> vec4<f32> {
    let e = r * p.c + ch0;
    if ((p.c & 3u) == 0u) {
        return x[e / 4u];
    }
    return vec4<f32>(x[e >> 2u][e & 3u], 0.0, 0.0, 0.0);
}

@compute @workgroup_size(64)
fn bn_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let lanes = select(1u, 4u, (p.c & 3u) == 0u);
    let ch0 = wg.x * lanes;
    var s = vec4<f32>();
    for (var r = t; r < p.rows; r += 64u) {
        s += row(r, ch0);
    }
    let m = reduce(t, s) / f32(p.rows);
    var q = vec4<f32>();
    for (var r = t; r < p.rows; r += 64u) {
        let d = row(r, ch0) - m;
        q += d * d;
    }
    let var_b = reduce(t, q) / f32(p.rows);
    if (t == 0u) {
        for (var j = 0u; j < lanes; j++) {
            let ch = ch0 + j;
            mean[ch] = m[j];
            invstd[ch] = inverseSqrt(var_b[j] + p.eps);
            let unbiased = var_b[j] * f32(p.rows) / f32(max(p.rows, 2u) - 1u);
            moving_mean[ch] -= (1.0 - p.decay) * (moving_mean[ch] - m[j]);
            moving_var[ch] -= (1.0 - p.decay) * (moving_var[ch] - unbiased);
        }
    }
}
