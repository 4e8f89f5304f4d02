// matmul for GPUs: workgroup-tiled through shared memory (the operation and operands in
// matmul_common.wgsl; matmul.wgsl is the shape for CPU drivers).
//
// A workgroup of 16 x 16 invocations owns a 64 x 64 block of c, each invocation 4 x 4 outputs (16
// accumulators: no spills, and the same code for any subgroup size). k advances 16 at a time: the
// workgroup stages a 64 x 16 tile of a and a 16 x 64 tile of b in shared memory (8 KiB), each invocation
// loading 4 values of each (consecutive invocations read consecutive k of a and consecutive j of b,
// contiguous for untransposed operands), then every invocation reads 4 + 4 values per k for 16 FMAs.

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> sa: array<f32, 1024>;   // [BK][BM]: the k-th column of the a tile is contiguous
var<workgroup> sb: array<f32, 1024>;   // [BK][BN]

fn load_a(i: u32, k: u32) -> f32 {
    if (i >= p.m || k >= p.k) {
        return 0.0;
    }
    return as_(i * p.a_rs + k * p.a_cs);
}

fn load_b(k: u32, j: u32) -> f32 {
    if (k >= p.k || j >= p.n) {
        return 0.0;
    }
    return bs(k * p.b_rs + j * p.b_cs);
}

fn store(i: u32, j0: u32, v: vec4<f32>) {
    if (i >= p.m) {
        return;
    }
    for (var q = 0u; q < 4u; q++) {
        let j = j0 + q;
        if (j < p.n) {
            var y = v[q];
            if ((FLAGS & 1u) != 0u) {
                y += bias[j];
            }
            if ((FLAGS & 2u) != 0u) {
                y += c[i * p.n + j];
            }
            c[i * p.n + j] = y;
        }
    }
}

@compute @workgroup_size(16, 16)
fn matmul_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i0 = wg.y * BM;
    let j0 = wg.x * BN;
    var c0 = vec4<f32>(); var c1 = vec4<f32>(); var c2 = vec4<f32>(); var c3 = vec4<f32>();
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var q = 0u; q < 4u; q++) {
            let e = li + 256u * q;
            // a: row e / BK, column k0 + e % BK; b: row k0 + e / BN, column e % BN.
            sa[(e % BK) * BM + e / BK] = load_a(i0 + e / BK, k0 + e % BK);
            sb[(e / BN) * BN + e % BN] = load_b(k0 + e / BN, j0 + e % BN);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            let ra = kk * BM + lid.y * 4u;
            let rb = kk * BN + lid.x * 4u;
            let bv = vec4<f32>(sb[rb], sb[rb + 1u], sb[rb + 2u], sb[rb + 3u]);
            c0 = fma(vec4<f32>(sa[ra]), bv, c0);
            c1 = fma(vec4<f32>(sa[ra + 1u]), bv, c1);
            c2 = fma(vec4<f32>(sa[ra + 2u]), bv, c2);
            c3 = fma(vec4<f32>(sa[ra + 3u]), bv, c3);
        }
        workgroupBarrier();
    }
    let i = i0 + lid.y * 4u;
    let j = j0 + lid.x * 4u;
    store(i, j, c0);
    store(i + 1u, j, c1);
    store(i + 2u, j, c2);
    store(i + 3u, j, c3);
}
