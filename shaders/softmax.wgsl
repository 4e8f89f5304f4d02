// Row-wise softmax and softmax cross-entropy over [rows, cols] logits.
//
// softmax:       prob[r,j] = exp(z[r,j] - max_r) / sum_j exp(z[r,j] - max_r)
// softmax_xent:  prob as above; loss[r] = log(sum_j exp(z[r,j] - max_r)) - (z[r,label[r]] - max_r)
//                (the mean over rows is taken by reduce.wgsl)
// softmax_xent_backward: dz[r,j] (+)= scale * (prob[r,j] - (j == label[r]))
//                (scale = loss weight / rows for the mean loss; added when flags & 1)

struct Params { rows: u32, cols: u32, flags: u32, scale: f32 }

// FLAGS is the params' `flags`, compiled into each pipeline (src/gpu/encoder.rs `flags`): CPU drivers run
// both sides of every branch under a lane mask, so a branch on the uniform would cost the paths not taken.
override FLAGS: u32;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;            // [rows, cols]
@group(0) @binding(2) var<storage, read> label: array<u32>;        // [rows] (softmax_xent)
@group(0) @binding(3) var<storage, read_write> prob: array<f32>;   // [rows, cols] saved for backward
@group(0) @binding(4) var<storage, read_write> loss: array<f32>;   // [rows] (softmax_xent)
@group(0) @binding(5) var<storage, read_write> dz: array<f32>;     // [rows, cols] (backward)

fn softmax_row(r: u32) -> f32 {
    let base = r * p.cols;
    var mx = -3.402823e38;
    for (var j = 0u; j < p.cols; j++) {
        mx = max(mx, z[base + j]);
    }
    var s = 0.0;
    for (var j = 0u; j < p.cols; j++) {
        let e = exp(z[base + j] - mx);
        prob[base + j] = e;
        s += e;
    }
    for (var j = 0u; j < p.cols; j++) {
        prob[base + j] /= s;
    }
    return log(s) + mx;
}

@compute @workgroup_size(64)
fn softmax(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.y * nwg.x * 64u + gid.x;
    if (r >= p.rows) {
        return;
    }
    softmax_row(r);
}

@compute @workgroup_size(64)
fn softmax_xent(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = gid.y * nwg.x * 64u + gid.x;
    if (r >= p.rows) {
        return;
    }
    let lse = softmax_row(r);
    loss[r] = lse - z[r * p.cols + label[r]];
}

@compute @workgroup_size(64)
fn softmax_xent_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= p.rows * p.cols) {
        return;
    }
    let hot = select(0.0, 1.0, i % p.cols == label[i / p.cols]);
    dz[i] = select(0.0, dz[i], (FLAGS & 1u) != 0u) + p.scale * (prob[i] - hot);
}
