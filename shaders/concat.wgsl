// Channel copy between [rows, src_c] and [rows, dst_c] views:
//   dst[r, dst_off + k] = src[r, src_off + k] for k < count.
// concat is one copy per input (src_off 0); split is one copy per output (dst_off 0).
// With flags & 1 the copy adds to dst (gradients of concat and split are split and concat that accumulate).
// copy_channels4 does the same four channels at a time where every channel count and offset allows.

struct Params { rows: u32, src_c: u32, dst_c: u32, src_off: u32, dst_off: u32, count: u32, flags: u32, _p1: u32 }

// FLAGS is the params' `flags`, compiled into each pipeline (src/gpu/encoder.rs `flags`): CPU drivers run
// both sides of every branch under a lane mask, so a branch on the uniform would cost the paths not taken.
override FLAGS: u32;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
// The same buffers as vec4s, for copy_channels4 (every channel count and offset a multiple of 4).
@group(0) @binding(3) var<storage, read> src4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> dst4: array<vec4<f32>>;

@compute @workgroup_size(64)
fn copy_channels(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= p.rows * p.count) {
        return;
    }
    let r = i / p.count;
    let k = i % p.count;
    let at = r * p.dst_c + p.dst_off + k;
    dst[at] = select(0.0, dst[at], (FLAGS & 1u) != 0u) + src[r * p.src_c + p.src_off + k];
}

// copy_channels four channels per invocation, where src_c, dst_c, the offsets and count are multiples of 4.
@compute @workgroup_size(64)
fn copy_channels4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    let count4 = p.count / 4u;
    if (i >= p.rows * count4) {
        return;
    }
    let r = i / count4;
    let k = i % count4;
    let at = (r * p.dst_c + p.dst_off) / 4u + k;
    var v = src4[(r * p.src_c + p.src_off) / 4u + k];
    if ((FLAGS & 1u) != 0u) {
        v += dst4[at];
    }
    dst4[at] = v;
}
