// The sum of one vec4 per invocation over a workgroup of 64 (appended to batch_norm_stats.wgsl and
// batch_norm_backward.wgsl by src/gpu/pipeline.rs): a tree in workgroup memory; every invocation gets
// the total.
var<workgroup> part: array<vec4<f32>, 64>;

fn reduce(t: u32, v: vec4<f32>) -> vec4<f32> {
    part[t] = v;
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
