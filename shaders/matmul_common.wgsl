// matmul's operands, shared by matmul.wgsl (CPU-driver shape) and matmul_tiled.wgsl (GPU shape).
//
//   c[i,j] = beta * c[i,j] + sum_k a[i,k] * b[k,j] + bias[j]
//   a[i,k] is read at a[i*a_rs + k*a_cs] and b[k,j] at b[k*b_rs + j*b_cs], so a transposed operand is
//   just swapped strides. beta is 0 (overwrite) or 1 (accumulate, flags & 2); bias when flags & 1.

struct Params {
    m: u32, n: u32, k: u32, flags: u32,
    a_rs: u32, a_cs: u32, b_rs: u32, b_cs: u32,
}

// FLAGS is the params' `flags`, compiled into each pipeline (src/gpu/encoder.rs `flags`): CPU drivers run
// both sides of every branch under a lane mask, so a branch on the uniform would cost the paths not taken.
override FLAGS: u32;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;   // [m, k] (strided; buffers padded to 16 bytes)
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;   // [k, n] (strided)
@group(0) @binding(3) var<storage, read> bias: array<f32>;      // [n] (flags & 1)
@group(0) @binding(4) var<storage, read_write> c: array<f32>;   // [m, n]

// Element i of a and of b.
fn as_(i: u32) -> f32 {
    return a[i >> 2u][i & 3u];
}

fn bs(i: u32) -> f32 {
    return b[i >> 2u][i & 3u];
}
