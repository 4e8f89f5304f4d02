// Row-wise L2 normalization as tf.nn.l2_normalize:
//   inv[r] = 1 / sqrt(max(sum_j x[r,j]^2, eps));  y[r,j] = x[r,j] * inv[r]   (inv saved for backward)

// l2_normalize_backward: dx[r,j] (+)= inv[r] * (dy[r,j] - y[r,j] * sum_k dy[r,k] y[r,k])
//                       (exact where sum x^2 > eps; below it inv is a constant and dx = inv * dy)
// pnorm_rows: norm[r] = (sum_j (|x[r,j]| + eps)^pw)^(1/pw)   (facenet's prelogits norm, eps 1e-4)
//             grad[r,j] = scale * sign(x) * (|x| + eps)^(pw-1) * norm[r]^(1-pw)
//             (the gradient of scale * norm[r]; the loss is the mean of norm, so scale = weight / rows)

struct Params { rows: u32, cols: u32, eps: f32, flags: u32, pw: f32, scale: f32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [rows, cols]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;      // [rows, cols]
@group(0) @binding(3) var<storage, read_write> inv: array<f32>;    // [rows] | norm (pnorm_rows)
@group(0) @binding(4) var<storage, read> dy: array<f32>;           // [rows, cols] (backward)
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;     // [rows, cols] (backward) | grad (pnorm_rows)

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

@compute @workgroup_size(64)
fn l2_normalize_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.y * nwg.x * 64u + gid.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    let k = inv[r];
    // Below eps the norm is clamped and y = x * constant.
    var dot = 0.0;
    if (k * k * p.eps < 0.9999) {
        for (var j = 0u; j < p.cols; j++) {
            dot += dy[base + j] * y[base + j];
        }
    }
    let accumulate = (p.flags & 1u) != 0u;
    for (var j = 0u; j < p.cols; j++) {
        dx[base + j] = select(0.0, dx[base + j], accumulate) + k * (dy[base + j] - y[base + j] * dot);
    }
}

@compute @workgroup_size(64)
fn pnorm_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.y * nwg.x * 64u + gid.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.cols;
    var s = 0.0;
    for (var j = 0u; j < p.cols; j++) {
        s += pow(abs(x[base + j]) + p.eps, p.pw);
    }
    let norm = pow(s, 1.0 / p.pw);
    inv[r] = norm;
    let k = p.scale * pow(norm, 1.0 - p.pw);
    for (var j = 0u; j < p.cols; j++) {
        let v = x[base + j];
        dx[base + j] = k * sign(v) * pow(abs(v) + p.eps, p.pw - 1.0);
    }
}
