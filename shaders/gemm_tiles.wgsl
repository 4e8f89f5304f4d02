// The shared-memory block product of the GPU-shaped kernels (matmul_tiled.wgsl, conv2d_tiled.wgsl,
// conv2d_backward_tiled.wgsl): each is a GEMM c[i,j] = sum_k a[i,k] * b[k,j] whose a and b are read
// from its tensors by its own loaders (an im2col of x, a strided view of the weights...).
//
// A workgroup of 16 x 16 invocations owns a 64 x 64 block of c; invocation (lid.x, lid.y) owns rows
// 4*lid.y..4*lid.y+3 and columns 4*lid.x..4*lid.x+3 of it: 16 accumulators, no spills and the same code
// for any subgroup size. k advances 16 at a time: the workgroup stages a 64 x 16 tile of a and a 16 x 64
// tile of b in shared memory (8 KiB in f32), each invocation storing 4 values of each, then every
// invocation reads 4 + 4 values per k for 16 FMAs (arithmetic intensity 2 FMAs per shared-memory load).
//
// `Stage` (stage_f32.wgsl or stage_f16.wgsl, one per module) is the precision of the staged tiles and of
// the products: a step's 16 products are summed in it, then added to the f32 outputs. With f16 the tiles
// take 4 KiB and the products run at the f16 rate (twice f32's on most GPUs); the kernels load and store
// f32 either way.

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> sa: array<Stage, 1024>;   // [BK][BM]: the k-th column of the a tile is contiguous
var<workgroup> sb: array<Stage, 1024>;   // [BK][BN]

// The 4 x 4 outputs of one invocation: row r in c<r>, its 4 columns in the vec4.
struct Acc {
    c0: vec4<f32>,
    c1: vec4<f32>,
    c2: vec4<f32>,
    c3: vec4<f32>,
}

// Stages a's value for block row `i` and step column `k` (both local: i < BM, k < BK).
fn stage_a(i: u32, k: u32, v: f32) {
    sa[k * BM + i] = Stage(v);
}

// Stages b's value for step row `k` and block column `j` (k < BK, j < BN).
fn stage_b(k: u32, j: u32, v: f32) {
    sb[k * BN + j] = Stage(v);
}

// Adds the staged step's products to the invocation's outputs. Call between two workgroupBarrier()s:
// after the staging, before the next one.
fn multiply_staged(acc: ptr<function, Acc>, lid: vec3<u32>) {
    var p0 = vec4<Stage>();
    var p1 = vec4<Stage>();
    var p2 = vec4<Stage>();
    var p3 = vec4<Stage>();
    for (var kk = 0u; kk < BK; kk++) {
        let ra = kk * BM + lid.y * 4u;
        let rb = kk * BN + lid.x * 4u;
        let bv = vec4<Stage>(sb[rb], sb[rb + 1u], sb[rb + 2u], sb[rb + 3u]);
        p0 = fma(vec4<Stage>(sa[ra]), bv, p0);
        p1 = fma(vec4<Stage>(sa[ra + 1u]), bv, p1);
        p2 = fma(vec4<Stage>(sa[ra + 2u]), bv, p2);
        p3 = fma(vec4<Stage>(sa[ra + 3u]), bv, p3);
    }
    (*acc).c0 += vec4<f32>(p0);
    (*acc).c1 += vec4<f32>(p1);
    (*acc).c2 += vec4<f32>(p2);
    (*acc).c3 += vec4<f32>(p3);
}

// Row r (0..3) of the invocation's outputs.
fn acc_row(acc: ptr<function, Acc>, r: u32) -> vec4<f32> {
    switch r {
        case 0u: { return (*acc).c0; }
        case 1u: { return (*acc).c1; }
        case 2u: { return (*acc).c2; }
        default: { return (*acc).c3; }
    }
}
