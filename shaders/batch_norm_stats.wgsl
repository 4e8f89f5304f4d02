// Training batch-norm statistics (see batch_norm.wgsl for the formulas):
//   mean[c], invstd[c] = 1/sqrt(var_biased[c] + eps), and the moving-average update with Bessel's correction.
// bn_stats: one workgroup per channel (c not a multiple of 4). With c a multiple of 4, four passes that
// read x row by row, contiguously: bn_stats_parts sums blocks of rows per channel group (invocation
// (block b, group g)), bn_stats_mean adds the blocks into mean, bn_stats_parts again (flags & 16) sums
// the squared deviations from it, and bn_stats_finish adds those and writes invstd and the moving
// statistics. Rows are read contiguously because lanes reading rows c floats apart are several times
// slower on CPU drivers (see batch_norm_backward.wgsl).

struct Params {
    rows: u32, c: u32, flags: u32, eps: f32,
    decay: f32, blocks: u32, block_rows: u32, tshift: u32,
}

// FLAGS is the params' `flags`, compiled into each pipeline (src/gpu/encoder.rs `flags`): CPU drivers run
// both sides of every branch under a lane mask, so a branch on the uniform would cost the paths not taken.
override FLAGS: u32;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;           // [rows, c] (padded to 16 bytes)
@group(0) @binding(2) var<storage, read_write> mean: array<f32>;        // [c] saved for backward
@group(0) @binding(3) var<storage, read_write> invstd: array<f32>;      // [c] saved for backward
@group(0) @binding(4) var<storage, read_write> moving_mean: array<f32>; // [c] updated in place
@group(0) @binding(5) var<storage, read_write> moving_var: array<f32>;  // [c] updated in place
@group(0) @binding(6) var<storage, read_write> parts: array<vec4<f32>>; // [blocks, c/4] (bn_stats_parts)


// Channel ch of row r (in .x; reduce() adds vec4s).
fn row(r: u32, ch: u32) -> vec4<f32> {
    let e = r * p.c + ch;
    return vec4<f32>(x[e >> 2u][e & 3u], 0.0, 0.0, 0.0);
}

@compute @workgroup_size(64)
fn bn_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let ch = wg.x;
    var s = vec4<f32>();
    for (var r = t; r < p.rows; r += 64u) {
        s += row(r, ch);
    }
    let m = reduce(t, s).x / f32(p.rows);
    var q = vec4<f32>();
    for (var r = t; r < p.rows; r += 64u) {
        let d = row(r, ch).x - m;
        q.x += d * d;
    }
    let var_b = reduce(t, q).x / f32(p.rows);
    if (t == 0u) {
        mean[ch] = m;
        invstd[ch] = inverseSqrt(var_b + p.eps);
        let unbiased = var_b * f32(p.rows) / f32(max(p.rows, 2u) - 1u);
        moving_mean[ch] -= (1.0 - p.decay) * (moving_mean[ch] - m);
        moving_var[ch] -= (1.0 - p.decay) * (moving_var[ch] - unbiased);
    }
}

@compute @workgroup_size(64)
fn bn_stats_parts(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let rb = row_block(gid, nwg);
    if (!rb.valid) {
        return;
    }
    let g = rb.g;
    let c4 = rb.c4;
    // Second pass (flags & 16): squared deviations from the mean the first pass made.
    let square = (FLAGS & 16u) != 0u;
    var m = vec4<f32>();
    if (square) {
        m = vec4<f32>(mean[4u * g], mean[4u * g + 1u], mean[4u * g + 2u], mean[4u * g + 3u]);
    }
    var s = vec4<f32>();
    for (var r = rb.first; r < rb.end; r++) {
        let v = xv(r * c4 + g);
        if (square) {
            let d = v - m;
            s += d * d;
        } else {
            s += v;
        }
    }
    parts[rb.b * c4 + g] = s;
}

// The blocks' sums of channel group g.
fn block_sum(g: u32) -> vec4<f32> {
    let c4 = p.c / 4u;
    var s = vec4<f32>();
    for (var b = 0u; b < p.blocks; b++) {
        s += parts[b * c4 + g];
    }
    return s;
}

@compute @workgroup_size(64)
fn bn_stats_mean(@builtin(global_invocation_id) gid: vec3<u32>) {
    let g = gid.x;
    if (g >= p.c / 4u) {
        return;
    }
    let m = block_sum(g) / f32(p.rows);
    for (var j = 0u; j < 4u; j++) {
        mean[4u * g + j] = m[j];
    }
}

@compute @workgroup_size(64)
fn bn_stats_finish(@builtin(global_invocation_id) gid: vec3<u32>) {
    let g = gid.x;
    if (g >= p.c / 4u) {
        return;
    }
    let var_b = block_sum(g) / f32(p.rows);
    for (var j = 0u; j < 4u; j++) {
        let ch = 4u * g + j;
        invstd[ch] = inverseSqrt(var_b[j] + p.eps);
        let unbiased = var_b[j] * f32(p.rows) / f32(max(p.rows, 2u) - 1u);
        moving_mean[ch] -= (1.0 - p.decay) * (moving_mean[ch] - mean[ch]);
        moving_var[ch] -= (1.0 - p.decay) * (moving_var[ch] - unbiased);
    }
}
