// Batch normalization over the last (channel) axis of a [rows, c] view of NHWC data.
//
// bn_inference:  y = (x - moving_mean[c]) / sqrt(moving_var[c] + eps) * gamma[c] + beta[c]
// bn_stats:      mean[c] = sum_r x[r,c] / rows;  var[c] = sum_r (x[r,c] - mean[c])^2 / rows (biased);
//                invstd[c] = 1 / sqrt(var[c] + eps)   (both saved for backward)
//                moving_mean -= (1 - decay) * (moving_mean - mean)
//                moving_var  -= (1 - decay) * (moving_var - var * rows / (rows - 1))   (Bessel, as TF's fused BN)
// bn_normalize:  y = (x - mean[c]) * invstd[c] * gamma[c] + beta[c]
// gamma is 1 when flags & 1 == 0 (facenet's scale=False); flags & 8: bn_normalize applies a ReLU after
// (fused; the backward then masks dy with the output, see batch_norm_backward.wgsl).

struct Params {
    rows: u32, c: u32, flags: u32, eps: f32,
    decay: f32, blocks: u32, block_rows: u32, tshift: u32,
}

// FLAGS is the params' `flags`, compiled into each pipeline (src/gpu/encoder.rs `flags`): CPU drivers run
// both sides of every branch under a lane mask, so a branch on the uniform would cost the paths not taken.
override FLAGS: u32;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;    // [rows, c] (padded to 16 bytes)
@group(0) @binding(2) var<storage, read> stat_a: array<vec4<f32>>; // [c] moving_mean (inference) | mean (normalize)
@group(0) @binding(3) var<storage, read> stat_b: array<vec4<f32>>; // [c] moving_var (inference) | invstd (normalize)
@group(0) @binding(4) var<storage, read> gamma: array<vec4<f32>>;  // [c] (flags & 1)
@group(0) @binding(5) var<storage, read> beta: array<vec4<f32>>;   // [c]
@group(0) @binding(6) var<storage, read_write> y: array<vec4<f32>>; // [rows, c]

// Each invocation takes elements 4*i4 .. 4*i4+3 and stores those below rows*c: as vec4s of 4 channels
// when c is a multiple of 4, else one by one. mode 0: inference, 1: normalize.
fn apply(i4: u32, mode: u32) {
    let n = p.rows * p.c;
    var a: vec4<f32>;
    var b: vec4<f32>;
    var g = vec4<f32>(1.0);
    var t: vec4<f32>;
    if ((p.c & 3u) == 0u) {
        let q = ((i4 * 4u) % p.c) / 4u;
        a = stat_a[q];
        b = stat_b[q];
        t = beta[q];
        if ((FLAGS & 1u) != 0u) {
            g = gamma[q];
        }
    } else {
        for (var j = 0u; j < 4u; j++) {
            let ch = (i4 * 4u + j) % p.c;
            a[j] = stat_a[ch >> 2u][ch & 3u];
            b[j] = stat_b[ch >> 2u][ch & 3u];
            t[j] = beta[ch >> 2u][ch & 3u];
            if ((FLAGS & 1u) != 0u) {
                g[j] = gamma[ch >> 2u][ch & 3u];
            }
        }
    }
    if (mode == 0u) {
        b = inverseSqrt(b + p.eps);
    }
    var v = (x[i4] - a) * b * g + t;
    if ((FLAGS & 8u) != 0u) {
        v = max(v, vec4<f32>());
    }
    if (i4 * 4u + 4u <= n) {
        y[i4] = v;
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (i4 * 4u + j < n) {
            y[i4][j] = v[j];
        }
    }
}

@compute @workgroup_size(64)
fn bn_inference(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i4 = gid.y * nwg.x * 64u + gid.x;
    if (i4 * 4u < p.rows * p.c) {
        apply(i4, 0u);
    }
}

@compute @workgroup_size(64)
fn bn_normalize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i4 = gid.y * nwg.x * 64u + gid.x;
    if (i4 * 4u < p.rows * p.c) {
        apply(i4, 1u);
    }
}

// bn_normalize with c a multiple of 4: invocation (block b, channel group g) normalizes rows
// [b * block_rows, (b + 1) * block_rows) of channels 4g..4g+3, loading their mean, invstd, gamma and beta
// once instead of once per element (neighbouring invocations take neighbouring vec4s of a row).
@compute @workgroup_size(64)
fn bn_normalize_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let rb = row_block(gid, nwg);
    if (!rb.valid) {
        return;
    }
    let g = rb.g;
    let c4 = rb.c4;
    var gm = vec4<f32>(1.0);
    if ((FLAGS & 1u) != 0u) {
        gm = gamma[g];
    }
    let a = stat_a[g];
    let k = stat_b[g];
    let t = beta[g];
    for (var r = rb.first; r < rb.end; r++) {
        // The same order of operations as apply().
        var v = (xv(r * c4 + g) - a) * k * gm + t;
        if ((FLAGS & 8u) != 0u) {
            v = max(v, vec4<f32>());
        }
        y[r * c4 + g] = v;
    }
}
