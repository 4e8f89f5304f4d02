// Scaled sum of a whole array in one workgroup: out[0] = scale * sum_i x[i]
// (used for mean losses: scale = 1/n).

struct Params { n: u32, scale: f32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;          // [n]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;  // [1]

var<workgroup> part: array<f32, 64>;

@compute @workgroup_size(64)
fn sum_scaled(@builtin(local_invocation_index) t: u32) {
    var s = 0.0;
    for (var i = t; i < p.n; i += 64u) {
        s += x[i];
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
