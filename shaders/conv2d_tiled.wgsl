// conv2d for GPUs (conv2d.wgsl is the shape for CPU drivers): the same operation, operands and fused
// epilogue (conv2d_common.wgsl), as an implicit GEMM through gemm_tiles.wgsl's shared-memory blocks:
//
//   c[m, o] = sum_k a[m, k] * b[k, o]     m = flattened (n, oy, ox), k = flattened (ky, kx, ci)
//   a[m, k] = x[n, oy*sh - pad_top + ky, ox*sw - pad_left + kx, ci]  (0 outside the image: an im2col
//             read on the fly, never stored)
//   b[k, o] = w[ky, kx, ci, o]            (HWIO is already this matrix, row-major)
//
// then y[m, y_off + o] = epilogue(c[m, o]) as in conv2d.wgsl. Staging: invocation li loads rows
// li/16 + 16q (q = 0..3) of a at step column li%16, so 16 consecutive invocations read 16 consecutive
// input channels of one tap (contiguous in NHWC); and rows li/64 + 4q of b at column li%64, contiguous
// output channels. Each invocation's 4 pixels of a are decomposed once, before the reduction.
// The weights are f32 (conv2d_weights_f32.wgsl) or, for f16 inference, f16 (conv2d_weights_f16.wgsl,
// with stage_f16.wgsl).
//
// Split-K (SPLITK, layers with few output blocks: the 3x3 and 8x8 maps at batch 1): workgroup z takes
// k in [z * kchunk, (z + 1) * kchunk) and stores its raw sums in `part`; conv2d.wgsl's
// conv2d_splitk_finish adds the splits and applies the epilogue.

// The top-left input tap of output pixel m (iy0, ix0) and its image's offset in x (base); `valid` is
// false past the last pixel.
struct Pixel {
    iy0: i32,
    ix0: i32,
    base: u32,
    valid: bool,
}

fn pixel(m: u32) -> Pixel {
    let m_total = p.n * p.oh * p.ow;
    let mm = min(m, m_total - 1u);
    let b = mm / (p.oh * p.ow);
    let oy = (mm / p.ow) % p.oh;
    let ox = mm % p.ow;
    return Pixel(i32(oy * p.sh) - i32(p.pad_top), i32(ox * p.sw) - i32(p.pad_left), b * p.h * p.w * p.c, m < m_total);
}

// a[m, k] for the pixel `px` and the tap (ky, kx) and channel ci of k.
fn load_x(px: Pixel, ky: u32, kx: u32, ci: u32, k_ok: bool) -> f32 {
    let iy = px.iy0 + i32(ky);
    let ix = px.ix0 + i32(kx);
    if (!px.valid || !k_ok || iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
        return 0.0;
    }
    return xs(px.base + (u32(iy) * p.w + u32(ix)) * p.c + ci);
}

@compute @workgroup_size(16, 16)
fn conv2d_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let m_total = p.n * p.oh * p.ow;
    let k_total = p.kh * p.kw * p.c;
    let i0 = wg.y * BM;
    let j0 = wg.x * BN;
    let kbeg = wg.z * p.kchunk;
    let kend = min(kbeg + p.kchunk, k_total);
    // This invocation's staging rows of a: pixels i0 + li/16 + 16q.
    let px0 = pixel(i0 + li / 16u);
    let px1 = pixel(i0 + li / 16u + 16u);
    let px2 = pixel(i0 + li / 16u + 32u);
    let px3 = pixel(i0 + li / 16u + 48u);
    var acc = Acc(vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>());
    for (var k0 = kbeg; k0 < kend; k0 += BK) {
        // a: column li%16 of the step, one (tap, channel) for the 4 rows.
        let k = k0 + li % 16u;
        let ci = k % p.c;
        let tap = k / p.c;
        let ky = tap / p.kw;
        let kx = tap % p.kw;
        let k_ok = k < kend;
        stage_a(li / 16u, li % 16u, load_x(px0, ky, kx, ci, k_ok));
        stage_a(li / 16u + 16u, li % 16u, load_x(px1, ky, kx, ci, k_ok));
        stage_a(li / 16u + 32u, li % 16u, load_x(px2, ky, kx, ci, k_ok));
        stage_a(li / 16u + 48u, li % 16u, load_x(px3, ky, kx, ci, k_ok));
        // b: column li%64, rows li/64 + 4q.
        let j = j0 + li % 64u;
        for (var q = 0u; q < 4u; q++) {
            let kb = k0 + li / 64u + 4u * q;
            var v = 0.0;
            if (kb < kend && j < p.oc) {
                v = weight(kb * p.oc + j);
            }
            stage_b(li / 64u + 4u * q, li % 64u, v);
        }
        workgroupBarrier();
        multiply_staged(&acc, lid);
        workgroupBarrier();
    }
    // The epilogue of 4 pixels x 4 consecutive channels (clamped to the last channel; not stored past it).
    let j = j0 + lid.x * 4u;
    if (j >= p.oc) {
        return;
    }
    if (SPLITK) {
        // Raw sums of this split (oc is a multiple of 4).
        for (var r = 0u; r < 4u; r++) {
            let m = i0 + lid.y * 4u + r;
            if (m < m_total) {
                part[((wg.z * m_total + m) * p.oc + j) / 4u] = acc_row(&acc, r);
            }
        }
        return;
    }
    let cols = min(j + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.oc - 1u));
    let e = chan(cols);
    for (var r = 0u; r < 4u; r++) {
        let m = i0 + lid.y * 4u + r;
        if (m < m_total) {
            let v = finish(m, m_total, cols, e, acc_row(&acc, r));
            let at = m * p.y_c + p.y_off + j;
            if (VEC_STORE) {
                y[at / 4u] = v;
            } else {
                for (var q = 0u; q < 4u; q++) {
                    if (j + q < p.oc) {
                        y[(at + q) >> 2u][(at + q) & 3u] = v[q];
                    }
                }
            }
        }
    }
}
