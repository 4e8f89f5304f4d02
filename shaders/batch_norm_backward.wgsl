// Backward of training batch norm (batch_norm.wgsl / batch_norm_stats.wgsl), over a [rows, c] view.
// With xhat = (x - mean[c]) * invstd[c] and y = gamma[c] * xhat + beta[c]:
//
// bn_backward_stats (one workgroup per channel, for c not a multiple of 4; with c a multiple of 4 the same
// sums come from bn_backward_parts + bn_backward_sums, below):
//   sum_dy[c]   = sum_r dy[r,c]             -> d beta  (added to dbeta when flags & 4)
//   sum_dyxh[c] = sum_r dy[r,c] * xhat[r,c] -> d gamma (added to dgamma when flags & 1, gamma present)
//   both saved in sums[0..c] and sums[c..2c] for bn_backward_input
// bn_backward_input (4 elements per invocation, for c not a multiple of 4; bn_backward_input_rows below
// otherwise):
//   dx[r,c] (+)= gamma[c] * invstd[c] * (dy[r,c] - sum_dy[c] / rows - xhat[r,c] * sum_dyxh[c] / rows)
//   (added when flags & 2; gamma is 1 when flags & 1 == 0, facenet's scale=False)
// flags & 8: the forward was fused with a ReLU; dy is taken as dy * (y > 0) with y its output (relu_y).

struct Params {
    rows: u32, c: u32, flags: u32, eps: f32,
    decay: f32, blocks: u32, block_rows: u32, tshift: u32,
}

// FLAGS is the params' `flags`, compiled into each pipeline (src/gpu/encoder.rs `flags`): CPU drivers run
// both sides of every branch under a lane mask, so a branch on the uniform would cost the paths not taken.
override FLAGS: u32;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;            // [rows, c] forward input
@group(0) @binding(2) var<storage, read> dy: array<vec4<f32>>;           // [rows, c]
// The per-channel operands are vec4 arrays (buffers are padded to 16 bytes): with c a multiple of 4 the
// four channels of an invocation are one vec4 load instead of four scalar ones (on llvmpipe each storage
// load is a loop over the lanes, and the scalar loads were most of bn_backward_input's time).
@group(0) @binding(3) var<storage, read> mean: array<vec4<f32>>;         // [c] saved by bn_stats
@group(0) @binding(4) var<storage, read> invstd: array<vec4<f32>>;       // [c] saved by bn_stats
@group(0) @binding(5) var<storage, read> gamma: array<vec4<f32>>;        // [c] (flags & 1)
@group(0) @binding(6) var<storage, read_write> sums: array<vec4<f32>>;   // [2c] sum_dy, sum_dyxh
@group(0) @binding(7) var<storage, read_write> dgamma: array<vec4<f32>>; // [c] (flags & 1) | dx [rows, c] (input)
@group(0) @binding(8) var<storage, read_write> dbeta: array<f32>;        // [c] (flags & 4)
@group(0) @binding(9) var<storage, read> relu_y: array<vec4<f32>>;       // [rows, c] (flags & 8)
@group(0) @binding(10) var<storage, read_write> parts: array<vec4<f32>>; // [blocks, c/4, 2] (bn_backward_parts)


// dy, masked by the fused ReLU's output (flags & 8): dy * (y > 0).
fn relu_mask4(q: u32, d: vec4<f32>) -> vec4<f32> {
    if ((FLAGS & 8u) == 0u) {
        return d;
    }
    return select(vec4<f32>(), d, relu_y[q] > vec4<f32>());
}

fn relu_mask1(e: u32, d: f32) -> f32 {
    if ((FLAGS & 8u) == 0u) {
        return d;
    }
    return select(0.0, d, relu_y[e >> 2u][e & 3u] > 0.0);
}

// Element i of a per-channel operand.
fn mean1(i: u32) -> f32 {
    return mean[i >> 2u][i & 3u];
}

fn invstd1(i: u32) -> f32 {
    return invstd[i >> 2u][i & 3u];
}

fn gamma1(i: u32) -> f32 {
    return gamma[i >> 2u][i & 3u];
}

fn sums1(i: u32) -> f32 {
    return sums[i >> 2u][i & 3u];
}

@compute @workgroup_size(64)
fn bn_backward_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    // One channel (the .x of the vec4 sums; reduce() adds vec4s).
    let ch = wg.x;
    let m = mean1(ch);
    let k = invstd1(ch);
    var s = vec4<f32>();
    var q = vec4<f32>();
    for (var r = t; r < p.rows; r += 64u) {
        let e = r * p.c + ch;
        let d = relu_mask1(e, dy[e >> 2u][e & 3u]);
        s.x += d;
        q.x += d * (x[e >> 2u][e & 3u] - m) * k;
    }
    let sum_dy = reduce(t, s).x;
    let sum_dyxh = reduce(t, q).x;
    if (t == 0u) {
        sums[ch >> 2u][ch & 3u] = sum_dy;
        sums[(p.c + ch) >> 2u][(p.c + ch) & 3u] = sum_dyxh;
        if ((FLAGS & 1u) != 0u) {
            dgamma[ch >> 2u][ch & 3u] += sum_dyxh;
        }
        if ((FLAGS & 4u) != 0u) {
            dbeta[ch] += sum_dy;
        }
    }
}

// With c a multiple of 4, the sums in two passes that read x and dy row by row, contiguously: invocation
// (block b, channel group g) sums rows [b * block_rows, (b + 1) * block_rows) of channels 4g..4g+3 into
// parts[b, g], then bn_backward_sums adds the blocks. Lanes that each read their own row of one channel
// group, c floats apart, take about three times as long on CPU drivers (docs/KERNELS.md).
@compute @workgroup_size(64)
fn bn_backward_parts(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let rb = row_block(gid, nwg);
    if (!rb.valid) {
        return;
    }
    let g = rb.g;
    let c4 = rb.c4;
    let m = mean[g];
    let k = invstd[g];
    var s = vec4<f32>();
    var q = vec4<f32>();
    for (var r = rb.first; r < rb.end; r++) {
        let at = r * c4 + g;
        let d = relu_mask4(at, dy[at]);
        s += d;
        q += d * (xv(at) - m) * k;
    }
    parts[(rb.b * c4 + g) * 2u] = s;
    parts[(rb.b * c4 + g) * 2u + 1u] = q;
}

@compute @workgroup_size(64)
fn bn_backward_sums(@builtin(global_invocation_id) gid: vec3<u32>) {
    let g = gid.x;
    let c4 = p.c / 4u;
    if (g >= c4) {
        return;
    }
    var s = vec4<f32>();
    var q = vec4<f32>();
    for (var b = 0u; b < p.blocks; b++) {
        s += parts[(b * c4 + g) * 2u];
        q += parts[(b * c4 + g) * 2u + 1u];
    }
    sums[g] = s;
    sums[c4 + g] = q;
    if ((FLAGS & 1u) != 0u) {
        dgamma[g] += q;
    }
    if ((FLAGS & 4u) != 0u) {
        for (var j = 0u; j < 4u; j++) {
            dbeta[g * 4u + j] += s[j];
        }
    }
}

@compute @workgroup_size(64)
fn bn_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i4 = gid.y * nwg.x * 64u + gid.x;
    let total = p.rows * p.c;
    if (i4 * 4u >= total) {
        return;
    }
    let n = f32(p.rows);
    for (var e = i4 * 4u; e < min(i4 * 4u + 4u, total); e++) {
        let ch = e % p.c;
        let k = invstd1(ch);
        let xh = (x[e >> 2u][e & 3u] - mean1(ch)) * k;
        var g = 1.0;
        if ((FLAGS & 1u) != 0u) {
            g = gamma1(ch);
        }
        let v = g * k * (relu_mask1(e, dy[e >> 2u][e & 3u]) - sums1(ch) / n - xh * sums1(p.c + ch) / n);
        dgamma[e >> 2u][e & 3u] = select(0.0, dgamma[e >> 2u][e & 3u], (FLAGS & 2u) != 0u) + v;
    }
}

// bn_backward_input with c a multiple of 4: invocation (block b, channel group g) takes rows
// [b * block_rows, (b + 1) * block_rows) of channels 4g..4g+3, loading their mean, invstd, gamma and sums
// once instead of once per element (neighbouring invocations take neighbouring vec4s of a row).
@compute @workgroup_size(64)
fn bn_backward_input_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let rb = row_block(gid, nwg);
    if (!rb.valid) {
        return;
    }
    let g = rb.g;
    let c4 = rb.c4;
    let n = f32(p.rows);
    let k = invstd[g];
    let m = mean[g];
    var gm = vec4<f32>(1.0);
    if ((FLAGS & 1u) != 0u) {
        gm = gamma[g];
    }
    // The same order of operations as bn_backward_input.
    let gk = gm * k;
    let s0 = sums[g] / n;
    let s1 = sums[c4 + g] / n;
    let acc = (FLAGS & 2u) != 0u;
    for (var r = rb.first; r < rb.end; r++) {
        let at = r * c4 + g;
        let xh = (xv(at) - m) * k;
        let v = gk * (relu_mask4(at, dy[at]) - s0 - xh * s1);
        dgamma[at] = select(vec4<f32>(), dgamma[at], acc) + v;
    }
}
