// Training batch-norm statistics, one workgroup per channel (see batch_norm.wgsl for the formulas):
//   mean[c], invstd[c] = 1/sqrt(var_biased[c] + eps), and the moving-average update with Bessel's correction.

struct Params {
    rows: u32, c: u32, flags: u32, eps: f32,
    decay: f32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;                 // [rows, c]
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;        // [c] saved for backward
@group(0) @binding(3) var<storage, read_write> invstd: array<f32>;      // [c] saved for backward
@group(0) @binding(4) var<storage, read_write> moving_mean: array<f32>; // [c] updated in place
@group(0) @binding(5) var<storage, read_write> moving_var: array<f32>;  // [c] updated in place

var<workgroup> part: array<f32, 64>;

fn reduce(t: u32) -> f32 {
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

@compute @workgroup_size(64)
fn bn_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let ch = wg.x;
    var s = 0.0;
    for (var r = t; r < p.rows; r += 64u) {
        s += x[r * p.c + ch];
    }
    part[t] = s;
    let m = reduce(t) / f32(p.rows);
    var q = 0.0;
    for (var r = t; r < p.rows; r += 64u) {
        let d = x[r * p.c + ch] - m;
        q += d * d;
    }
    part[t] = q;
    let var_b = reduce(t) / f32(p.rows);
    if (t == 0u) {
        mean[ch] = m;
        invstd[ch] = inverseSqrt(var_b + p.eps);
        let unbiased = var_b * f32(p.rows) / f32(max(p.rows, 2u) - 1u);
        moving_mean[ch] -= (1.0 - p.decay) * (moving_mean[ch] - m);
        moving_var[ch] -= (1.0 - p.decay) * (moving_var[ch] - unbiased);
    }
}
