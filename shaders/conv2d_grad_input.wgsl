// The data gradient of conv2d (see conv2d_backward_common.wgsl):
//   dx[n,iy,ix,c] (+)= sum_{ky,kx,o} g[n,oy,ox,o] * w[ky,kx,c,o]
//                     over the taps with oy*sh - pad_top + ky = iy and ox*sw - pad_left + kx = ix;
//                     one dispatch per stride class (iy mod sh, ix mod sw) = (cls_y, cls_x), whose pixels
//                     all take the same taps

@compute @workgroup_size(64)
fn conv2d_grad_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32, // subgroups
) {
    // Tile: 8 consecutive input pixels of one stride class x 16 consecutive input channels, like conv2d.
    // The lanes of a subgroup share the channel tile (and so the weights) and take consecutive pixel
    // tiles; lanes past the last tile repeat it and store nothing.
    let idx = index(gid, nwg);
    // The pixels of one stride class (iy = cls_y + jy*sh, ix = cls_x + jx*sw): each receives exactly the
    // taps ky = ky0, ky0 + sh, ... (and likewise kx), so strided convs waste no work on off-grid taps.
    let hc = (p.h - p.cls_y + p.sh - 1u) / p.sh;
    let wc = (p.w - p.cls_x + p.sw - 1u) / p.sw;
    let m_total = p.n * hc * wc;
    let cw = select(16u, 32u, WIDE);
    let tiles_c = (p.c + cw - 1u) / cw;
    let tiles_m = (m_total + 7u) / 8u;
    let unit = sgs; // subgroups
    let lane = sid & select(7u, 15u, LANES16); // subgroups
    let unit = 1u; // no subgroups
    let lane = 0u; // no subgroups
    let u = idx / unit;
    if (m_total == 0u || u >= tiles_c * ((tiles_m + unit - 1u) / unit)) {
        return;
    }
    let mt = (u / tiles_c) * unit + idx % unit;
    let m_store = mt * 8u;
    let m0 = min(mt, tiles_m - 1u) * 8u;
    let c0 = (u % tiles_c) * cw;
    var jy: array<i32, 8>;
    var jx: array<i32, 8>;
    var gb: array<u32, 8>;
    var dxa: array<u32, 8>;
    // The 8 pixels' (image, class row, class column), stepped from the first rather than divided out for
    // each (integer division is scalarized on CPU drivers); pixels past the end repeat the last one.
    var bn = m0 / (hc * wc);
    var cy = (m0 / wc) % hc;
    var cx = m0 % wc;
    for (var r = 0u; r < 8u; r++) {
        jy[r] = i32(cy);
        jx[r] = i32(cx);
        gb[r] = bn * p.oh * p.ow * p.oc;
        dxa[r] = ((bn * p.h + p.cls_y + cy * p.sh) * p.w + p.cls_x + cx * p.sw) * p.c;
        if (m0 + r + 1u < m_total) {
            cx++;
            if (cx == wc) {
                cx = 0u;
                cy++;
                if (cy == hc) {
                    cy = 0u;
                    bn++;
                }
            }
        }
    }
    // This class's first taps and the output offset they reach: oy = jy + (cls_y + pad_top - ky) / sh.
    let ky0 = (p.cls_y + p.pad_top) % p.sh;
    let kx0 = (p.cls_x + p.pad_left) % p.sw;
    let base_y = i32((p.cls_y + p.pad_top) / p.sh);
    let base_x = i32((p.cls_x + p.pad_left) / p.sw);

    let ch0 = min(c0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.c - 1u));
    let ch1 = min(c0 + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(p.c - 1u));
    let ch2 = min(c0 + vec4<u32>(8u, 9u, 10u, 11u), vec4<u32>(p.c - 1u));
    let ch3 = min(c0 + vec4<u32>(12u, 13u, 14u, 15u), vec4<u32>(p.c - 1u));
    // WIDE: the second tile's channels c0+16..c0+31 (clamped likewise; those past the end not stored).
    let ch4 = min(c0 + vec4<u32>(16u, 17u, 18u, 19u), vec4<u32>(p.c - 1u));
    let ch5 = min(c0 + vec4<u32>(20u, 21u, 22u, 23u), vec4<u32>(p.c - 1u));
    let ch6 = min(c0 + vec4<u32>(24u, 25u, 26u, 27u), vec4<u32>(p.c - 1u));
    let ch7 = min(c0 + vec4<u32>(28u, 29u, 30u, 31u), vec4<u32>(p.c - 1u));
    // t.c<r>_<h>: input pixel m0+r, channels c0+4h..c0+4h+3 (t2: c0+16+4h..).
    var t: Tile;
    var t2: Tile;
    for (var ky = ky0; ky < p.kh; ky += p.sh) {
        let ty = base_y - i32((ky - ky0) / p.sh);
        for (var kx = kx0; kx < p.kw; kx += p.sw) {
            let tx = base_x - i32((kx - kx0) / p.sw);
            // The output pixel each input pixel feeds through this tap, or none (mask 0).
            var off0 = vec4<u32>();
            var off1 = vec4<u32>();
            var k0 = vec4<f32>();
            var k1 = vec4<f32>();
            var hit = false;
            for (var r = 0u; r < 8u; r++) {
                let oy = jy[r] + ty;
                let ox = jx[r] + tx;
                let ok = oy >= 0 && ox >= 0 && oy < i32(p.oh) && ox < i32(p.ow);
                let off = select(0u, gb[r] + (u32(oy) * p.ow + u32(ox)) * p.oc, ok);
                let k = select(0.0, 1.0, ok);
                hit = hit || ok;
                if (r < 4u) {
                    off0[r] = off;
                    k0[r] = k;
                } else {
                    off1[r - 4u] = off;
                    k1[r - 4u] = k;
                }
            }
            // (With subgroups every lane goes on: its weights are the others' too.)
            if (!hit) { continue; } // no subgroups
            let wbase = (ky * p.kw + kx) * p.c;
            let w0 = (wbase + ch0) * p.oc;
            let w1 = (wbase + ch1) * p.oc;
            let w2 = (wbase + ch2) * p.oc;
            let w3 = (wbase + ch3) * p.oc;
            if (VEC) {
                // Four output channels per step: a vec4 of g per pixel and of w per input channel.
                let g0 = off0 / 4u;
                let g1 = off1 / 4u;
                let v0 = w0 / 4u;
                let v1 = w1 / 4u;
                let v2 = w2 / 4u;
                let v3 = w3 / 4u;
                // WIDE: the second tile's rows (input channels c0 + 16 ..).
                let v4 = (wbase + ch4) * (p.oc / 4u);
                let v5 = (wbase + ch5) * (p.oc / 4u);
                let v6 = (wbase + ch6) * (p.oc / 4u);
                let v7 = (wbase + ch7) * (p.oc / 4u);
                let r0 = lane_rows(v0, v1, v2, v3, lane);
                let r1 = lane_rows(v4, v5, v6, v7, lane);
                for (var q = 0u; q < p.oc / 4u; q++) {
                    let x0 = av(g0.x + q) * k0.x; let x1 = av(g0.y + q) * k0.y;
                    let x2 = av(g0.z + q) * k0.z; let x3 = av(g0.w + q) * k0.w;
                    let x4 = av(g1.x + q) * k1.x; let x5 = av(g1.y + q) * k1.y;
                    let x6 = av(g1.z + q) * k1.z; let x7 = av(g1.w + q) * k1.w;
                    gi_step(&t, x0, x1, x2, x3, x4, x5, x6, x7, r0, v0, v1, v2, v3, q);
                    if (WIDE) {
                        // The same g against the next 16 input channels' weights.
                        gi_step(&t2, x0, x1, x2, x3, x4, x5, x6, x7, r1, v4, v5, v6, v7, q);
                    }
                }
                continue;
            }
            for (var o = 0u; o < p.oc; o++) {
                let a0 = k0 * vec4<f32>(as_(off0.x + o), as_(off0.y + o), as_(off0.z + o), as_(off0.w + o));
                let a1 = k1 * vec4<f32>(as_(off1.x + o), as_(off1.y + o), as_(off1.z + o), as_(off1.w + o));
                let sl = bs(select(w0, w1, lane >= 4u)[lane & 3u] + o); // subgroups
                let sh = bs(select(w2, w3, lane >= 4u)[lane & 3u] + o); // subgroups
                let sl = 0.0; // no subgroups
                let sh = 0.0; // no subgroups
                let b0 = vec4<f32>(share1(sl, 0u, w0.x + o), share1(sl, 1u, w0.y + o), share1(sl, 2u, w0.z + o), share1(sl, 3u, w0.w + o));
                let b1 = vec4<f32>(share1(sl, 4u, w1.x + o), share1(sl, 5u, w1.y + o), share1(sl, 6u, w1.z + o), share1(sl, 7u, w1.w + o));
                let b2 = vec4<f32>(share1(sh, 0u, w2.x + o), share1(sh, 1u, w2.y + o), share1(sh, 2u, w2.z + o), share1(sh, 3u, w2.w + o));
                let b3 = vec4<f32>(share1(sh, 4u, w3.x + o), share1(sh, 5u, w3.y + o), share1(sh, 6u, w3.z + o), share1(sh, 7u, w3.w + o));
                fma8(&t, a0, a1, b0, b1, b2, b3);
            }
        }
    }
    store_dx(&t, dxa, m_store, m_total, c0);
    if (WIDE) {
        store_dx(&t2, dxa, m_store, m_total, c0 + 16u);
    }
}

// grad_input's 16 channels c0.. of one input pixel at `at` (those below c), if valid.
fn put_pixel16(valid: bool, at: u32, c0: u32, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) {
    put_cols(valid, at + c0, c0, p.c, v0, v1, ACC);
    put_cols(valid, at + c0 + 8u, c0 + 8u, p.c, v2, v3, ACC);
}

// Writes (or adds, with ACC) grad_input's tile: input pixels at dxa (those below m_total), channels
// c0..c0+15 (those below c).
fn store_dx(t: ptr<function, Tile>, dxa: array<u32, 8>, m_store: u32, m_total: u32, c0: u32) {
    // Stores unrolled by hand: a dynamically indexed accumulator array spills on CPU drivers.
    put_pixel16(m_store + 0u < m_total, dxa[0u], c0, (*t).c0_0, (*t).c0_1, (*t).c0_2, (*t).c0_3);
    put_pixel16(m_store + 1u < m_total, dxa[1u], c0, (*t).c1_0, (*t).c1_1, (*t).c1_2, (*t).c1_3);
    put_pixel16(m_store + 2u < m_total, dxa[2u], c0, (*t).c2_0, (*t).c2_1, (*t).c2_2, (*t).c2_3);
    put_pixel16(m_store + 3u < m_total, dxa[3u], c0, (*t).c3_0, (*t).c3_1, (*t).c3_2, (*t).c3_3);
    put_pixel16(m_store + 4u < m_total, dxa[4u], c0, (*t).c4_0, (*t).c4_1, (*t).c4_2, (*t).c4_3);
    put_pixel16(m_store + 5u < m_total, dxa[5u], c0, (*t).c5_0, (*t).c5_1, (*t).c5_2, (*t).c5_3);
    put_pixel16(m_store + 6u < m_total, dxa[6u], c0, (*t).c6_0, (*t).c6_1, (*t).c6_2, (*t).c6_3);
    put_pixel16(m_store + 7u < m_total, dxa[7u], c0, (*t).c7_0, (*t).c7_1, (*t).c7_2, (*t).c7_3);
}

// grad_input's accumulators are tile.wgsl's Tile (pixel r: input pixel, channels c0+4h..c0+4h+3).

// The weight rows lane j loads for grad_input's 16 input channels at rows v0..v3 (vec4 indices, 4
// channels each): channel j's (x) and, with 8 lanes, channel 8 + j's (y).
fn lane_rows(v0: vec4<u32>, v1: vec4<u32>, v2: vec4<u32>, v3: vec4<u32>, lane: u32) -> vec2<u32> {
    return vec2<u32>(select(select(v0, v1, lane >= 4u), select(v2, v3, lane >= 12u), lane >= 8u)[lane & 3u],
                     select(v2, v3, lane >= 4u)[lane & 3u]);
}

// Output channels 4q..4q+3 of one tap: x0..x7 the 8 pixels' g, w rows at v0..v3 (vec4 indices of the 16
// input channels' rows); each lane loads its rows `lr` (lane_rows) and hands them round.
fn gi_step(t: ptr<function, Tile>, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>,
           x4: vec4<f32>, x5: vec4<f32>, x6: vec4<f32>, x7: vec4<f32>,
           lr: vec2<u32>, v0: vec4<u32>, v1: vec4<u32>, v2: vec4<u32>, v3: vec4<u32>, q: u32) {
    let wl = b[lr.x + q]; // subgroups
    var wh = vec4<f32>(); // subgroups
    if (!LANES16) { wh = b[lr.y + q]; } // subgroups
    let wl = vec4<f32>(); // no subgroups
    let wh = vec4<f32>(); // no subgroups
    let r0 = share4(wl, 0u, v0.x + q);
    let r1 = share4(wl, 1u, v0.y + q);
    let r2 = share4(wl, 2u, v0.z + q);
    let r3 = share4(wl, 3u, v0.w + q);
    let r4 = share4(wl, 4u, v1.x + q);
    let r5 = share4(wl, 5u, v1.y + q);
    let r6 = share4(wl, 6u, v1.z + q);
    let r7 = share4(wl, 7u, v1.w + q);
    let r8 = share4(select(wh, wl, LANES16), 0u + select(0u, 8u, LANES16), v2.x + q);
    let r9 = share4(select(wh, wl, LANES16), 1u + select(0u, 8u, LANES16), v2.y + q);
    let r10 = share4(select(wh, wl, LANES16), 2u + select(0u, 8u, LANES16), v2.z + q);
    let r11 = share4(select(wh, wl, LANES16), 3u + select(0u, 8u, LANES16), v2.w + q);
    let r12 = share4(select(wh, wl, LANES16), 4u + select(0u, 8u, LANES16), v3.x + q);
    let r13 = share4(select(wh, wl, LANES16), 5u + select(0u, 8u, LANES16), v3.y + q);
    let r14 = share4(select(wh, wl, LANES16), 6u + select(0u, 8u, LANES16), v3.z + q);
    let r15 = share4(select(wh, wl, LANES16), 7u + select(0u, 8u, LANES16), v3.w + q);
    fma8x4(t, x0, x1, x2, x3, x4, x5, x6, x7, W16(
        vec4<f32>(r0.x, r1.x, r2.x, r3.x), vec4<f32>(r4.x, r5.x, r6.x, r7.x), vec4<f32>(r8.x, r9.x, r10.x, r11.x), vec4<f32>(r12.x, r13.x, r14.x, r15.x),
        vec4<f32>(r0.y, r1.y, r2.y, r3.y), vec4<f32>(r4.y, r5.y, r6.y, r7.y), vec4<f32>(r8.y, r9.y, r10.y, r11.y), vec4<f32>(r12.y, r13.y, r14.y, r15.y),
        vec4<f32>(r0.z, r1.z, r2.z, r3.z), vec4<f32>(r4.z, r5.z, r6.z, r7.z), vec4<f32>(r8.z, r9.z, r10.z, r11.z), vec4<f32>(r12.z, r13.z, r14.z, r15.z),
        vec4<f32>(r0.w, r1.w, r2.w, r3.w), vec4<f32>(r4.w, r5.w, r6.w, r7.w), vec4<f32>(r8.w, r9.w, r10.w, r11.w), vec4<f32>(r12.w, r13.w, r14.w, r15.w)));
}
