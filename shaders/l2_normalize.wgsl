// Row-wise L2 normalization as tf.nn.l2_normalize:
//   inv[r] = 1 / sqrt(max(sum_j x[r,j]^2, eps));  y[r,j] = x[r,j] * inv[r]   (inv saved for backward)

struct Params { rows: u32, cols: u32, eps: f32, _p0: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [rows, cols]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;      // [rows, cols]
@group(0) @binding(3) var<storage, read_write> inv: array<f32>;    // [rows]

@compute @workgroup_size(64)
fn l2_normalize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.y * nwg.x * 64u + gid.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    var s = 0.0;
    for (var j = 0u; j < p.cols; j++) {
        s += x[base + j] * x[base + j];
    }
    let k = inverseSqrt(max(s, p.eps));
    inv[r] = k;
    for (var j = 0u; j < p.cols; j++) {
        y[base + j] = x[base + j] * k;
    }
}
