// The gradients of conv2d for GPUs (conv2d_grad_input.wgsl and conv2d_grad_weight.wgsl are the shape for
// CPU drivers): the same operations and operands (conv2d_backward_common.wgsl), each an implicit GEMM
// through gemm_tiles.wgsl's shared-memory blocks.
//
// grad_input, one dispatch per stride class (cls_y, cls_x): the input pixels with iy % sh == cls_y and
// ix % sw == cls_x receive from the taps ky ≡ (cls_y + pad_top) mod sh, kx likewise, and no others, so
// the reduction runs over those taps only (a quarter of them at stride 2):
//   dx[m, ci] (+)= sum_k g[n, oy, ox, o] * w[ky, kx, ci, o]
//   m = flattened (n, ty, tx) with iy = cls_y + sh*ty, ix = cls_x + sw*tx
//   k = flattened (tky, tkx, o) with ky = ky0 + sh*tky, oy = (iy + pad_top - ky) / sh (0 outside g)
//
// grad_weight, split over output pixels (split s takes pixels [s*chunk, (s+1)*chunk); with more than one
// split the partial sums go to the scratch and grad_weight_reduce adds them):
//   dw[r, o] (+)= sum_m x[n, oy*sh - pad_top + ky, ox*sw - pad_left + kx, ci] * g[m, o]
//   r = flattened (ky, kx, ci), m = flattened (n, oy, ox)

// Writes (or adds, with ACC) the first min(left, 4) values of v at `at`: one vec4 where the row's
// channels are multiples of 4 (VEC), else value by value.
fn put_cols4(at: u32, v: vec4<f32>, left: u32) {
    if (VEC) {
        put4(at, v, ACC);
        return;
    }
    for (var q = 0u; q < min(left, 4u); q++) {
        put(at + q, v[q], ACC);
    }
}

// Taps of stride class `cls` along one axis: the first (k0), how many (count).
struct Taps {
    k0: u32,
    count: u32,
}

fn class_taps(cls: u32, pad: u32, s: u32, k: u32) -> Taps {
    let k0 = (cls + pad) % s;
    return Taps(k0, select(0u, (k - k0 + s - 1u) / s, k0 < k));
}

// Input pixel m of the class: its image, row and column, and whether it exists.
struct ClassPixel {
    b: u32,
    iy: u32,
    ix: u32,
    valid: bool,
}

fn class_pixel(m: u32, hy: u32, wx: u32) -> ClassPixel {
    let m_total = p.n * hy * wx;
    let mm = min(m, m_total - 1u);
    let b = mm / (hy * wx);
    let ty = (mm / wx) % hy;
    let tx = mm % wx;
    return ClassPixel(b, p.cls_y + p.sh * ty, p.cls_x + p.sw * tx, m < m_total);
}

// g[n, oy, ox, o] for the class pixel `px` and the tap (ky, kx), 0 where that tap comes from outside g.
fn load_g(px: ClassPixel, ky: u32, kx: u32, o: u32, k_ok: bool) -> f32 {
    let ty = i32(px.iy + p.pad_top) - i32(ky);
    let tx = i32(px.ix + p.pad_left) - i32(kx);
    if (!px.valid || !k_ok || ty < 0 || tx < 0) {
        return 0.0;
    }
    // The class makes ty and tx multiples of the strides.
    let oy = u32(ty) / p.sh;
    let ox = u32(tx) / p.sw;
    if (oy >= p.oh || ox >= p.ow) {
        return 0.0;
    }
    return as_(((px.b * p.oh + oy) * p.ow + ox) * p.oc + o);
}

@compute @workgroup_size(16, 16)
fn grad_input_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let hy = (p.h - p.cls_y + p.sh - 1u) / p.sh;
    let wx = (p.w - p.cls_x + p.sw - 1u) / p.sw;
    let m_total = p.n * hy * wx;
    let ty = class_taps(p.cls_y, p.pad_top, p.sh, p.kh);
    let tx = class_taps(p.cls_x, p.pad_left, p.sw, p.kw);
    let k_total = ty.count * tx.count * p.oc;
    let i0 = wg.y * BM;
    let j0 = wg.x * BN;
    let px0 = class_pixel(i0 + li / 16u, hy, wx);
    let px1 = class_pixel(i0 + li / 16u + 16u, hy, wx);
    let px2 = class_pixel(i0 + li / 16u + 32u, hy, wx);
    let px3 = class_pixel(i0 + li / 16u + 48u, hy, wx);
    var acc = Acc(vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>());
    for (var k0 = 0u; k0 < k_total; k0 += BK) {
        // a = g: column li%16 of the step, one (tap, output channel) for the 4 rows; 16 consecutive
        // invocations read 16 consecutive output channels of one pixel.
        let k = k0 + li % 16u;
        let o = k % p.oc;
        let t = k / p.oc;
        let ky = ty.k0 + p.sh * (t / max(tx.count, 1u));
        let kx = tx.k0 + p.sw * (t % max(tx.count, 1u));
        let k_ok = k < k_total;
        stage_a(li / 16u, li % 16u, load_g(px0, ky, kx, o, k_ok));
        stage_a(li / 16u + 16u, li % 16u, load_g(px1, ky, kx, o, k_ok));
        stage_a(li / 16u + 32u, li % 16u, load_g(px2, ky, kx, o, k_ok));
        stage_a(li / 16u + 48u, li % 16u, load_g(px3, ky, kx, o, k_ok));
        // b = w[ky, kx, ci, o] as [k, ci]: invocation li takes step row li%16 (o, contiguous in w across
        // consecutive invocations) and columns li/16 + 16q.
        let kb = k0 + li % 16u;
        let ob = kb % p.oc;
        let tb = kb / p.oc;
        let kyb = ty.k0 + p.sh * (tb / max(tx.count, 1u));
        let kxb = tx.k0 + p.sw * (tb % max(tx.count, 1u));
        for (var q = 0u; q < 4u; q++) {
            let ci = j0 + li / 16u + 16u * q;
            var v = 0.0;
            if (kb < k_total && ci < p.c) {
                v = bs(((kyb * p.kw + kxb) * p.c + ci) * p.oc + ob);
            }
            stage_b(li % 16u, li / 16u + 16u * q, v);
        }
        workgroupBarrier();
        multiply_staged(&acc, lid);
        workgroupBarrier();
    }
    let j = j0 + lid.x * 4u;
    if (j >= p.c) {
        return;
    }
    for (var r = 0u; r < 4u; r++) {
        let px = class_pixel(i0 + lid.y * 4u + r, hy, wx);
        if (px.valid) {
            put_cols4(((px.b * p.h + px.iy) * p.w + px.ix) * p.c + j, acc_row(&acc, r), p.c - j);
        }
    }
}

// Weight row r's tap and channel.
struct WeightRow {
    ky: u32,
    kx: u32,
    ci: u32,
    valid: bool,
}

fn weight_row(r: u32) -> WeightRow {
    let rows = p.kh * p.kw * p.c;
    let rr = min(r, rows - 1u);
    let tap = rr / p.c;
    return WeightRow(tap / p.kw, tap % p.kw, rr % p.c, r < rows);
}

// x under weight row `wr` at output pixel m, 0 outside the image or past the split's pixels (`m_ok`).
fn load_x_tap(wr: WeightRow, m: u32, m_ok: bool) -> f32 {
    if (!wr.valid || !m_ok) {
        return 0.0;
    }
    let b = m / (p.oh * p.ow);
    let oy = (m / p.ow) % p.oh;
    let ox = m % p.ow;
    let iy = i32(oy * p.sh + wr.ky) - i32(p.pad_top);
    let ix = i32(ox * p.sw + wr.kx) - i32(p.pad_left);
    if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
        return 0.0;
    }
    return as_(((b * p.h + u32(iy)) * p.w + u32(ix)) * p.c + wr.ci);
}

@compute @workgroup_size(16, 16)
fn grad_weight_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let rows = p.kh * p.kw * p.c;
    let pixels = p.n * p.oh * p.ow;
    let split = wg.z;
    let mbeg = split * p.chunk;
    let mend = min(mbeg + p.chunk, pixels);
    let i0 = wg.y * BM;
    let j0 = wg.x * BN;
    // a = the taps of x as [weight row, pixel]: invocation li takes block row li%64 (consecutive
    // invocations read consecutive input channels of one tap) and step columns li/64 + 4q.
    let wr = weight_row(i0 + li % 64u);
    var acc = Acc(vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>());
    for (var k0 = mbeg; k0 < mend; k0 += BK) {
        for (var q = 0u; q < 4u; q++) {
            let kk = li / 64u + 4u * q;
            let m = k0 + kk;
            stage_a(li % 64u, kk, load_x_tap(wr, m, m < mend));
        }
        // b = g as [pixel, o]: step rows li/64 + 4q, column li%64 (consecutive output channels).
        let o = j0 + li % 64u;
        for (var q = 0u; q < 4u; q++) {
            let kk = li / 64u + 4u * q;
            let m = k0 + kk;
            var v = 0.0;
            if (m < mend && o < p.oc) {
                v = bs(m * p.oc + o);
            }
            stage_b(kk, li % 64u, v);
        }
        workgroupBarrier();
        multiply_staged(&acc, lid);
        workgroupBarrier();
    }
    let j = j0 + lid.x * 4u;
    if (j >= p.oc) {
        return;
    }
    // One split writes dw (adding where ACC); several write their partial sums at split * rows * oc.
    let base = select(0u, split * rows * p.oc, p.splits > 1u);
    for (var r = 0u; r < 4u; r++) {
        let i = i0 + lid.y * 4u + r;
        if (i < rows) {
            put_cols4(base + i * p.oc + j, acc_row(&acc, r), p.oc - j);
        }
    }
}
