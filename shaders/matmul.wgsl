// matmul / linear with an 8x8 register tile and no shared memory (the operation and operands in
// matmul_common.wgsl). Untransposed operands with k and n multiples of 4 are read as vec4s (four k per
// step), like conv2d (flags & 4, set by src/kernels/matmul.rs).

@compute @workgroup_size(64)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(num_workgroups) nwg: vec3<u32>) {
    // Each workgroup owns an 8x8 block of 8x8 tiles (64x64 outputs), so its invocations share rows of a
    // and columns of b in cache; consecutive workgroups walk down m, sharing the same columns of b
    // (faster than walking along n on llvmpipe).
    let tiles_n = (p.n + 7u) / 8u;
    let tiles_m = (p.m + 7u) / 8u;
    let blocks_n = (tiles_n + 7u) / 8u;
    let block = wg.y * nwg.x + wg.x;
    let blocks_m = (tiles_m + 7u) / 8u;
    let tm = (block % blocks_m) * 8u + lid / 8u;
    let tn = (block / blocks_m) * 8u + lid % 8u;
    if (tm >= tiles_m || tn >= tiles_n) {
        return;
    }
    let i0 = tm * 8u;
    let j0 = tn * 8u;
    let ar0 = vec4<u32>(min(i0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.m - 1u))) * p.a_rs;
    let ar1 = vec4<u32>(min(i0 + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(p.m - 1u))) * p.a_rs;
    let bc0 = vec4<u32>(min(j0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.n - 1u))) * p.b_cs;
    let bc1 = vec4<u32>(min(j0 + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(p.n - 1u))) * p.b_cs;
    var c0_0 = vec4<f32>(); var c0_1 = vec4<f32>();
    var c1_0 = vec4<f32>(); var c1_1 = vec4<f32>();
    var c2_0 = vec4<f32>(); var c2_1 = vec4<f32>();
    var c3_0 = vec4<f32>(); var c3_1 = vec4<f32>();
    var c4_0 = vec4<f32>(); var c4_1 = vec4<f32>();
    var c5_0 = vec4<f32>(); var c5_1 = vec4<f32>();
    var c6_0 = vec4<f32>(); var c6_1 = vec4<f32>();
    var c7_0 = vec4<f32>(); var c7_1 = vec4<f32>();
    if ((FLAGS & 4u) != 0u) {
        // Rows of a as vec4s along k; for each of the four k, columns j0..j0+7 of b as two vec4s.
        let r0 = ar0 / 4u;
        let r1 = ar1 / 4u;
        let step = p.b_rs / 4u;
        for (var k4 = 0u; k4 < p.k / 4u; k4++) {
            let x0 = a[r0.x + k4]; let x1 = a[r0.y + k4]; let x2 = a[r0.z + k4]; let x3 = a[r0.w + k4];
            let x4 = a[r1.x + k4]; let x5 = a[r1.y + k4]; let x6 = a[r1.z + k4]; let x7 = a[r1.w + k4];
            let rb = (k4 * 4u * p.b_rs + j0) / 4u;
            // The four k of this step unrolled by hand: no dynamically indexed vector components.
            {
                // k = 4 * k4 + 0
                let b0 = b[rb + 0u];
                let b1 = b[rb + 0u + 1u];
                let a0 = vec4<f32>(x0.x, x1.x, x2.x, x3.x);
                let a1 = vec4<f32>(x4.x, x5.x, x6.x, x7.x);
                c0_0 = fma(vec4<f32>(a0.x), b0, c0_0); c0_1 = fma(vec4<f32>(a0.x), b1, c0_1);
                c1_0 = fma(vec4<f32>(a0.y), b0, c1_0); c1_1 = fma(vec4<f32>(a0.y), b1, c1_1);
                c2_0 = fma(vec4<f32>(a0.z), b0, c2_0); c2_1 = fma(vec4<f32>(a0.z), b1, c2_1);
                c3_0 = fma(vec4<f32>(a0.w), b0, c3_0); c3_1 = fma(vec4<f32>(a0.w), b1, c3_1);
                c4_0 = fma(vec4<f32>(a1.x), b0, c4_0); c4_1 = fma(vec4<f32>(a1.x), b1, c4_1);
                c5_0 = fma(vec4<f32>(a1.y), b0, c5_0); c5_1 = fma(vec4<f32>(a1.y), b1, c5_1);
                c6_0 = fma(vec4<f32>(a1.z), b0, c6_0); c6_1 = fma(vec4<f32>(a1.z), b1, c6_1);
                c7_0 = fma(vec4<f32>(a1.w), b0, c7_0); c7_1 = fma(vec4<f32>(a1.w), b1, c7_1);
            }
            {
                // k = 4 * k4 + 1
                let b0 = b[rb + 1u * step];
                let b1 = b[rb + 1u * step + 1u];
                let a0 = vec4<f32>(x0.y, x1.y, x2.y, x3.y);
                let a1 = vec4<f32>(x4.y, x5.y, x6.y, x7.y);
                c0_0 = fma(vec4<f32>(a0.x), b0, c0_0); c0_1 = fma(vec4<f32>(a0.x), b1, c0_1);
                c1_0 = fma(vec4<f32>(a0.y), b0, c1_0); c1_1 = fma(vec4<f32>(a0.y), b1, c1_1);
                c2_0 = fma(vec4<f32>(a0.z), b0, c2_0); c2_1 = fma(vec4<f32>(a0.z), b1, c2_1);
                c3_0 = fma(vec4<f32>(a0.w), b0, c3_0); c3_1 = fma(vec4<f32>(a0.w), b1, c3_1);
                c4_0 = fma(vec4<f32>(a1.x), b0, c4_0); c4_1 = fma(vec4<f32>(a1.x), b1, c4_1);
                c5_0 = fma(vec4<f32>(a1.y), b0, c5_0); c5_1 = fma(vec4<f32>(a1.y), b1, c5_1);
                c6_0 = fma(vec4<f32>(a1.z), b0, c6_0); c6_1 = fma(vec4<f32>(a1.z), b1, c6_1);
                c7_0 = fma(vec4<f32>(a1.w), b0, c7_0); c7_1 = fma(vec4<f32>(a1.w), b1, c7_1);
            }
            {
                // k = 4 * k4 + 2
                let b0 = b[rb + 2u * step];
                let b1 = b[rb + 2u * step + 1u];
                let a0 = vec4<f32>(x0.z, x1.z, x2.z, x3.z);
                let a1 = vec4<f32>(x4.z, x5.z, x6.z, x7.z);
                c0_0 = fma(vec4<f32>(a0.x), b0, c0_0); c0_1 = fma(vec4<f32>(a0.x), b1, c0_1);
                c1_0 = fma(vec4<f32>(a0.y), b0, c1_0); c1_1 = fma(vec4<f32>(a0.y), b1, c1_1);
                c2_0 = fma(vec4<f32>(a0.z), b0, c2_0); c2_1 = fma(vec4<f32>(a0.z), b1, c2_1);
                c3_0 = fma(vec4<f32>(a0.w), b0, c3_0); c3_1 = fma(vec4<f32>(a0.w), b1, c3_1);
                c4_0 = fma(vec4<f32>(a1.x), b0, c4_0); c4_1 = fma(vec4<f32>(a1.x), b1, c4_1);
                c5_0 = fma(vec4<f32>(a1.y), b0, c5_0); c5_1 = fma(vec4<f32>(a1.y), b1, c5_1);
                c6_0 = fma(vec4<f32>(a1.z), b0, c6_0); c6_1 = fma(vec4<f32>(a1.z), b1, c6_1);
                c7_0 = fma(vec4<f32>(a1.w), b0, c7_0); c7_1 = fma(vec4<f32>(a1.w), b1, c7_1);
            }
            {
                // k = 4 * k4 + 3
                let b0 = b[rb + 3u * step];
                let b1 = b[rb + 3u * step + 1u];
                let a0 = vec4<f32>(x0.w, x1.w, x2.w, x3.w);
                let a1 = vec4<f32>(x4.w, x5.w, x6.w, x7.w);
                c0_0 = fma(vec4<f32>(a0.x), b0, c0_0); c0_1 = fma(vec4<f32>(a0.x), b1, c0_1);
                c1_0 = fma(vec4<f32>(a0.y), b0, c1_0); c1_1 = fma(vec4<f32>(a0.y), b1, c1_1);
                c2_0 = fma(vec4<f32>(a0.z), b0, c2_0); c2_1 = fma(vec4<f32>(a0.z), b1, c2_1);
                c3_0 = fma(vec4<f32>(a0.w), b0, c3_0); c3_1 = fma(vec4<f32>(a0.w), b1, c3_1);
                c4_0 = fma(vec4<f32>(a1.x), b0, c4_0); c4_1 = fma(vec4<f32>(a1.x), b1, c4_1);
                c5_0 = fma(vec4<f32>(a1.y), b0, c5_0); c5_1 = fma(vec4<f32>(a1.y), b1, c5_1);
                c6_0 = fma(vec4<f32>(a1.z), b0, c6_0); c6_1 = fma(vec4<f32>(a1.z), b1, c6_1);
                c7_0 = fma(vec4<f32>(a1.w), b0, c7_0); c7_1 = fma(vec4<f32>(a1.w), b1, c7_1);
            }
        }
    } else {
        for (var kk = 0u; kk < p.k; kk++) {
            let ak = kk * p.a_cs;
            let bk = kk * p.b_rs;
            let a0 = vec4<f32>(as_(ar0.x + ak), as_(ar0.y + ak), as_(ar0.z + ak), as_(ar0.w + ak));
            let a1 = vec4<f32>(as_(ar1.x + ak), as_(ar1.y + ak), as_(ar1.z + ak), as_(ar1.w + ak));
            let b0 = vec4<f32>(bs(bk + bc0.x), bs(bk + bc0.y), bs(bk + bc0.z), bs(bk + bc0.w));
            let b1 = vec4<f32>(bs(bk + bc1.x), bs(bk + bc1.y), bs(bk + bc1.z), bs(bk + bc1.w));
            c0_0 = fma(vec4<f32>(a0.x), b0, c0_0); c0_1 = fma(vec4<f32>(a0.x), b1, c0_1);
            c1_0 = fma(vec4<f32>(a0.y), b0, c1_0); c1_1 = fma(vec4<f32>(a0.y), b1, c1_1);
            c2_0 = fma(vec4<f32>(a0.z), b0, c2_0); c2_1 = fma(vec4<f32>(a0.z), b1, c2_1);
            c3_0 = fma(vec4<f32>(a0.w), b0, c3_0); c3_1 = fma(vec4<f32>(a0.w), b1, c3_1);
            c4_0 = fma(vec4<f32>(a1.x), b0, c4_0); c4_1 = fma(vec4<f32>(a1.x), b1, c4_1);
            c5_0 = fma(vec4<f32>(a1.y), b0, c5_0); c5_1 = fma(vec4<f32>(a1.y), b1, c5_1);
            c6_0 = fma(vec4<f32>(a1.z), b0, c6_0); c6_1 = fma(vec4<f32>(a1.z), b1, c6_1);
            c7_0 = fma(vec4<f32>(a1.w), b0, c7_0); c7_1 = fma(vec4<f32>(a1.w), b1, c7_1);
        }
    }
    // Stores unrolled by hand: a dynamically indexed accumulator array spills on CPU drivers.
    put_row(i0, j0, c0_0, c0_1);
    put_row(i0 + 1u, j0, c1_0, c1_1);
    put_row(i0 + 2u, j0, c2_0, c2_1);
    put_row(i0 + 3u, j0, c3_0, c3_1);
    put_row(i0 + 4u, j0, c4_0, c4_1);
    put_row(i0 + 5u, j0, c5_0, c5_1);
    put_row(i0 + 6u, j0, c6_0, c6_1);
    put_row(i0 + 7u, j0, c7_0, c7_1);
}

fn put(i: u32, j: u32, acc: f32) {
    var v = acc;
    if ((FLAGS & 1u) != 0u) {
        v += bias[j];
    }
    let at = i * p.n + j;
    if ((FLAGS & 2u) != 0u) {
        v += c[at];
    }
    c[at] = v;
}

// Columns j0..j0+7 of row i (a: j0..j0+3, b: j0+4..j0+7), skipping those past the edges.
fn put_row(i: u32, j0: u32, a: vec4<f32>, b: vec4<f32>) {
    if (i >= p.m) {
        return;
    }
    if (j0 + 8u <= p.n) {
        put(i, j0, a.x); put(i, j0 + 1u, a.y); put(i, j0 + 2u, a.z); put(i, j0 + 3u, a.w);
        put(i, j0 + 4u, b.x); put(i, j0 + 5u, b.y); put(i, j0 + 6u, b.z); put(i, j0 + 7u, b.w);
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (j0 + j < p.n) {
            put(i, j0 + j, a[j]);
        }
        if (j0 + 4u + j < p.n) {
            put(i, j0 + 4u + j, b[j]);
        }
    }
}
