// Backward of training batch norm (batch_norm.wgsl / batch_norm_stats.wgsl), over a [rows, c] view.
// With xhat = (x - mean[c]) * invstd[c] and y = gamma[c] * xhat + beta[c]:
//
// bn_backward_stats (one workgroup per channel):
//   sum_dy[c]   = sum_r dy[r,c]             -> d beta  (added to dbeta when flags & 4)
//   sum_dyxh[c] = sum_r dy[r,c] * xhat[r,c] -> d gamma (added to dgamma when flags & 1, gamma present)
//   both saved in sums[0..c] and sums[c..2c] for bn_backward_input
// bn_backward_input:
//   dx[r,c] (+)= gamma[c] * invstd[c] * (dy[r,c] - sum_dy[c] / rows - xhat[r,c] * sum_dyxh[c] / rows)
//   (added when flags & 2; gamma is 1 when flags & 1 == 0, facenet's scale=False)

struct Params {
    rows: u32, c: u32, flags: u32, eps: f32,
    decay: f32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;                // [rows, c] forward input
@group(0) @binding(2) var<storage, read> dy: array<f32>;               // [rows, c]
@group(0) @binding(3) var<storage, read> mean: array<f32>;             // [c] saved by bn_stats
@group(0) @binding(4) var<storage, read> invstd: array<f32>;           // [c] saved by bn_stats
@group(0) @binding(5) var<storage, read> gamma: array<f32>;            // [c] (flags & 1)
@group(0) @binding(6) var<storage, read_write> sums: array<f32>;       // [2c] sum_dy, sum_dyxh
@group(0) @binding(7) var<storage, read_write> dgamma: array<f32>;     // [c] (flags & 1) | dx [rows, c] (input)
@group(0) @binding(8) var<storage, read_write> dbeta: array<f32>;      // [c] (flags & 4)

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
fn bn_backward_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let ch = wg.x;
    let m = mean[ch];
    let k = invstd[ch];
    var s = 0.0;
    var q = 0.0;
    for (var r = t; r < p.rows; r += 64u) {
        let at = r * p.c + ch;
        s += dy[at];
        q += dy[at] * (x[at] - m) * k;
    }
    part[t] = s;
    let sum_dy = reduce(t);
    part[t] = q;
    let sum_dyxh = reduce(t);
    if (t == 0u) {
        sums[ch] = sum_dy;
        sums[p.c + ch] = sum_dyxh;
        if ((p.flags & 1u) != 0u) {
            dgamma[ch] += sum_dyxh;
        }
        if ((p.flags & 4u) != 0u) {
            dbeta[ch] += sum_dy;
        }
    }
}

@compute @workgroup_size(64)
fn bn_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= p.rows * p.c) {
        return;
    }
    let ch = i % p.c;
    let k = invstd[ch];
    let xh = (x[i] - mean[ch]) * k;
    let g = select(1.0, gamma[ch], (p.flags & 1u) != 0u);
    let n = f32(p.rows);
    let v = g * k * (dy[i] - sums[ch] / n - xh * sums[p.c + ch] / n);
    dgamma[i] = select(0.0, dgamma[i], (p.flags & 2u) != 0u) + v;
}
