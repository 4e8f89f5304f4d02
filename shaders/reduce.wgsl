// Reductions.
//
// sum_scaled: out[0] = scale * sum_i x[i]     (x[i]^2 when flags & 2: weight-decay losses)
//             in one workgroup (used for mean losses: scale = 1/n)
// col_sum:    out[j] (+)= scale * sum_r x[r, j] over a [n / cols, cols] view, one invocation per column
//             (per-channel parameter gradients: d bias, d beta, d alpha; added when flags & 1)

struct Params { n: u32, scale: f32, cols: u32, flags: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // [n]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // [1]

var<workgroup> part: array<f32, 64>;

@compute @workgroup_size(64)
fn sum_scaled(@builtin(local_invocation_index) t: u32) {
    var s = 0.0;
    for (var i = t; i < p.n; i += 64u) {
        let v = x[i];
        s += select(v, v * v, (p.flags & 2u) != 0u);
    }
    part[t] = s;
    workgroupBarrier();
    for (var k = 32u; k > 0u; k >>= 1u) {
        if (t < k) {
            part[t] += part[t + k];
        }
        workgroupBarrier();
    }
    if (t == 0u) {
        out[0] = part[0] * p.scale;
    }
}

@compute @workgroup_size(64)
fn col_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = gid.y * nwg.x * 64u + gid.x;
    if (j >= p.cols) {
        return;
    }
    var s = 0.0;
    for (var i = j; i < p.n; i += p.cols) {
        s += x[i];
    }
    out[j] = select(0.0, out[j], (p.flags & 1u) != 0u) + p.scale * s;
}
