// matmul for GPUs: workgroup-tiled through shared memory (gemm_tiles.wgsl; the operation and operands in
// matmul_common.wgsl; matmul.wgsl is the shape for CPU drivers).
//
// Each of the 256 invocations stages 4 values of a's 64 x 16 tile and 4 of b's 16 x 64 tile per step:
// consecutive invocations read consecutive k of a and consecutive j of b, contiguous for untransposed
// operands.

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
    var acc = Acc(vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>());
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var q = 0u; q < 4u; q++) {
            let e = li + 256u * q;
            // a: row e / BK, column e % BK; b: row e / BN, column e % BN.
            stage_a(e / BK, e % BK, load_a(i0 + e / BK, k0 + e % BK));
            stage_b(e / BN, e % BN, load_b(k0 + e / BN, j0 + e % BN));
        }
        workgroupBarrier();
        multiply_staged(&acc, lid);
        workgroupBarrier();
    }
    let i = i0 + lid.y * 4u;
    let j = j0 + lid.x * 4u;
    for (var r = 0u; r < 4u; r++) {
        store(i + r, j, acc_row(&acc, r));
    }
}
