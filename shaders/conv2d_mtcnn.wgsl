// conv2d with what follows it fused in, for MTCNN (separate entries: a branch for them in conv2d's
// body slowed every conv by 7%). The conv itself, its constants and bindings are conv2d_common.wgsl's.
//
//   conv2d_max_pool2 (and _12 for 12 channels; layout RowPairs, stride 1, no residual): then a 2x2 stride-2
//     SAME max pool; y is [n, ceil(oh/2), ceil(ow/2), oc] and the conv's own output is never stored
//     (PNet conv1 + pool1, ONet conv3 + pool3).
//   conv2d_head (row tiles, oc a multiple of 16, no split-K): then a 1x1 conv with 8 outputs, weights
//     [oc, 8] bound as `residual` and bias [8] as `part`; y is [n, oh, ow, 8]. Each invocation walks all
//     the column tiles of its row tile, adding each one's 16 channels times their rows of the head (PNet
//     conv3 + its two heads; conv3's output is never stored).

// fma8 for a column tile of 12 channels (the c<r>_3 are left alone): PNet's conv1 has 12 (10 padded).
fn fma8_12(t: ptr<function, Tile>, a0: vec4<f32>, a1: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>) {
    (*t).c0_0 = fma(vec4<f32>(a0.x), b0, (*t).c0_0); (*t).c0_1 = fma(vec4<f32>(a0.x), b1, (*t).c0_1); (*t).c0_2 = fma(vec4<f32>(a0.x), b2, (*t).c0_2);
    (*t).c1_0 = fma(vec4<f32>(a0.y), b0, (*t).c1_0); (*t).c1_1 = fma(vec4<f32>(a0.y), b1, (*t).c1_1); (*t).c1_2 = fma(vec4<f32>(a0.y), b2, (*t).c1_2);
    (*t).c2_0 = fma(vec4<f32>(a0.z), b0, (*t).c2_0); (*t).c2_1 = fma(vec4<f32>(a0.z), b1, (*t).c2_1); (*t).c2_2 = fma(vec4<f32>(a0.z), b2, (*t).c2_2);
    (*t).c3_0 = fma(vec4<f32>(a0.w), b0, (*t).c3_0); (*t).c3_1 = fma(vec4<f32>(a0.w), b1, (*t).c3_1); (*t).c3_2 = fma(vec4<f32>(a0.w), b2, (*t).c3_2);
    (*t).c4_0 = fma(vec4<f32>(a1.x), b0, (*t).c4_0); (*t).c4_1 = fma(vec4<f32>(a1.x), b1, (*t).c4_1); (*t).c4_2 = fma(vec4<f32>(a1.x), b2, (*t).c4_2);
    (*t).c5_0 = fma(vec4<f32>(a1.y), b0, (*t).c5_0); (*t).c5_1 = fma(vec4<f32>(a1.y), b1, (*t).c5_1); (*t).c5_2 = fma(vec4<f32>(a1.y), b2, (*t).c5_2);
    (*t).c6_0 = fma(vec4<f32>(a1.z), b0, (*t).c6_0); (*t).c6_1 = fma(vec4<f32>(a1.z), b1, (*t).c6_1); (*t).c6_2 = fma(vec4<f32>(a1.z), b2, (*t).c6_2);
    (*t).c7_0 = fma(vec4<f32>(a1.w), b0, (*t).c7_0); (*t).c7_1 = fma(vec4<f32>(a1.w), b1, (*t).c7_1); (*t).c7_2 = fma(vec4<f32>(a1.w), b2, (*t).c7_2);
}

// step4 for a column tile of 12 channels.
fn step4_12(t: ptr<function, Tile>, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>,
            x4: vec4<f32>, x5: vec4<f32>, x6: vec4<f32>, x7: vec4<f32>,
            wa: vec4<f32>, wb: vec4<f32>, wrow: u32, oc4: u32, wq: vec4<u32>) {
    let solo = false;
    fma8_12(t, vec4<f32>(x0.x, x1.x, x2.x, x3.x), vec4<f32>(x4.x, x5.x, x6.x, x7.x),
            share4(wa, 0u, wrow + wq.x, solo), share4(wa, 1u, wrow + wq.y, solo), share4(wa, 2u, wrow + wq.z, solo));
    fma8_12(t, vec4<f32>(x0.y, x1.y, x2.y, x3.y), vec4<f32>(x4.y, x5.y, x6.y, x7.y),
            share4(wa, 4u, wrow + oc4 + wq.x, solo), share4(wa, 5u, wrow + oc4 + wq.y, solo), share4(wa, 6u, wrow + oc4 + wq.z, solo));
    fma8_12(t, vec4<f32>(x0.z, x1.z, x2.z, x3.z), vec4<f32>(x4.z, x5.z, x6.z, x7.z),
            share4(select(wb, wa, LANES16), 0u + wb_lane(), wrow + 2u * oc4 + wq.x, solo), share4(select(wb, wa, LANES16), 1u + wb_lane(), wrow + 2u * oc4 + wq.y, solo), share4(select(wb, wa, LANES16), 2u + wb_lane(), wrow + 2u * oc4 + wq.z, solo));
    fma8_12(t, vec4<f32>(x0.w, x1.w, x2.w, x3.w), vec4<f32>(x4.w, x5.w, x6.w, x7.w),
            share4(select(wb, wa, LANES16), 4u + wb_lane(), wrow + 3u * oc4 + wq.x, solo), share4(select(wb, wa, LANES16), 5u + wb_lane(), wrow + 3u * oc4 + wq.y, solo), share4(select(wb, wa, LANES16), 6u + wb_lane(), wrow + 3u * oc4 + wq.z, solo));
}

// The reduction of a pooled tile (layout RowPairs; stride 1, c and oc multiples of 4): output pixels
// (b, oy, ox0..ox0+3) as pixels 0-3 and (b, oy+1, ox0..ox0+3) as 4-7, x channels n0..n0+15. As conv_rows,
// each row's 4 + kw - 1 input columns are loaded once per kernel row and slid across the taps.
// With `narrow` (a constant of the entry: oc is 12, PNet's conv1) the fourth channel group is skipped.
fn conv_rows2(t: ptr<function, Tile>, b: u32, oy: u32, ox0: u32, n0: u32, cbeg: u32, cend: u32, lane: u32, narrow: bool) {
    let solo = false;
    let c4 = p.c / 4u;
    let oc4 = p.oc / 4u;
    let wq = min(vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(oc4 - n0 / 4u - 1u));
    let ix0 = i32(ox0) - i32(p.pad_left);
    var cq = vec4<u32>();
    var ck = vec4<f32>();
    for (var r = 0u; r < 4u; r++) {
        let ix = ix0 + i32(r);
        let ok = ix >= 0 && ix < i32(p.w);
        cq[r] = select(0u, u32(ix) * c4, ok);
        ck[r] = select(0.0, 1.0, ok);
    }
    for (var ky = 0u; ky < p.kh; ky++) {
        let iya = i32(oy) - i32(p.pad_top) + i32(ky);
        let iyb = iya + 1;
        let oka = iya >= 0 && iya < i32(p.h);
        let okb = iyb >= 0 && iyb < i32(p.h);
        let ra = select(0u, ((b * p.h + u32(iya)) * p.w) * c4, oka);
        let rb = select(0u, ((b * p.h + u32(iyb)) * p.w) * c4, okb);
        let qa = cq + vec4<u32>(ra);
        let qb = cq + vec4<u32>(rb);
        let ka = ck * select(0.0, 1.0, oka);
        let kb = ck * select(0.0, 1.0, okb);
        for (var ci = cbeg; ci < cend; ci += 4u) {
            let q = ci / 4u;
            var x0 = xv(qa.x + q) * ka.x; var x1 = xv(qa.y + q) * ka.y;
            var x2 = xv(qa.z + q) * ka.z; var x3 = xv(qa.w + q) * ka.w;
            var x4 = xv(qb.x + q) * kb.x; var x5 = xv(qb.y + q) * kb.y;
            var x6 = xv(qb.z + q) * kb.z; var x7 = xv(qb.w + q) * kb.w;
            for (var kx = 0u; kx < p.kw; kx++) {
                if (kx > 0u) {
                    let ix = ix0 + 3 + i32(kx);
                    let okx = ix >= 0 && ix < i32(p.w);
                    let oa = oka && okx;
                    let ob = okb && okx;
                    x0 = x1; x1 = x2; x2 = x3;
                    x3 = xv(select(0u, ra + u32(ix) * c4, oa) + q) * select(0.0, 1.0, oa);
                    x4 = x5; x5 = x6; x6 = x7;
                    x7 = xv(select(0u, rb + u32(ix) * c4, ob) + q) * select(0.0, 1.0, ob);
                }
                let wrow = (((ky * p.kw + kx) * p.c + ci) * p.oc + n0) / 4u;
                let w = weights_at(wrow, oc4, wq, lane, solo);
                if (narrow) {
                    step4_12(t, x0, x1, x2, x3, x4, x5, x6, x7, w.a, w.b, wrow, oc4, wq);
                } else {
                    step4(t, x0, x1, x2, x3, x4, x5, x6, x7, w.a, w.b, wrow, oc4, wq, solo);
                }
            }
        }
    }
}

// conv2d then a 2x2 stride-2 SAME max pool (see the header): tiles of 2 rows x 4 columns (conv_rows2),
// pooled into 2 outputs. No split-K. conv2d_max_pool2_12 is the same for 12 output channels (one column
// tile, its fourth channel group skipped: a runtime branch there cost more than it saved).
@compute @workgroup_size(64)
fn conv2d_max_pool2(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32, // subgroups
) {
    pool_tiles(gid, nwg, sid, sgs, false); // subgroups
    pool_tiles(gid, nwg, 0u, 1u, false); // no subgroups
}

@compute @workgroup_size(64)
fn conv2d_max_pool2_12(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32, // subgroups
) {
    pool_tiles(gid, nwg, sid, sgs, true); // subgroups
    pool_tiles(gid, nwg, 0u, 1u, true); // no subgroups
}

fn pool_tiles(gid: vec3<u32>, nwg: vec3<u32>, sid: u32, sgs: u32, narrow: bool) {
    let idx = gid.y * nwg.x * 64u + gid.x;
    let tiles_n = (p.oc + 15u) / 16u;
    let tiles_row = (p.ow + 3u) / 4u;
    let tiles_m = p.n * ((p.oh + 1u) / 2u) * tiles_row;
    let unit = sgs;
    let lane = sid & select(7u, 15u, LANES16);
    let per_split = tiles_n * ((tiles_m + unit - 1u) / unit);
    let u = idx / unit;
    if (u >= per_split) {
        return;
    }
    let cbeg = 0u;
    let cend = p.c;
    let mt = (u / tiles_n) * unit + idx % unit;
    let n0 = (u % tiles_n) * 16u;
    let col0 = min(n0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.oc - 1u));
    let col1 = min(n0 + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(p.oc - 1u));
    let col2 = min(n0 + vec4<u32>(8u, 9u, 10u, 11u), vec4<u32>(p.oc - 1u));
    let col3 = min(n0 + vec4<u32>(12u, 13u, 14u, 15u), vec4<u32>(p.oc - 1u));
    var t: Tile;
    let mtc = min(mt, tiles_m - 1u);
    let row2 = mtc / tiles_row;
    let ohp = (p.oh + 1u) / 2u;
    let ox0 = (mtc % tiles_row) * 4u;
    let oy = (row2 % ohp) * 2u;
    conv_rows2(&t, row2 / ohp, oy, ox0, n0, cbeg, cend, lane, narrow);
    // Pooled pixels (b, oy/2, ox0/2) and, where the row has it, the next.
    let mp = row2 * ((p.ow + 1u) / 2u) + ox0 / 2u;
    let limp = select(mp, mp + select(1u, 2u, ox0 + 2u < p.ow), mt < tiles_m);
    let dy = oy + 1u < p.oh;
    let es = chans(n0, lane, false);
    let e0 = es.e0;
    let e1 = es.e1;
    let e2 = es.e2;
    let e3 = es.e3;
    let r0 = ox0 + 1u < p.ow;
    store_row(mp, limp, n0, pool4(col0, e0, t.c0_0, t.c1_0, t.c4_0, t.c5_0, r0, dy), pool4(col1, e1, t.c0_1, t.c1_1, t.c4_1, t.c5_1, r0, dy),
              pool4(col2, e2, t.c0_2, t.c1_2, t.c4_2, t.c5_2, r0, dy), pool4(col3, e3, t.c0_3, t.c1_3, t.c4_3, t.c5_3, r0, dy));
    let r1 = ox0 + 3u < p.ow;
    store_row(mp + 1u, limp, n0, pool4(col0, e0, t.c2_0, t.c3_0, t.c6_0, t.c7_0, r1, dy), pool4(col1, e1, t.c2_1, t.c3_1, t.c6_1, t.c7_1, r1, dy),
              pool4(col2, e2, t.c2_2, t.c3_2, t.c6_2, t.c7_2, r1, dy), pool4(col3, e3, t.c2_3, t.c3_3, t.c6_3, t.c7_3, r1, dy));
}

// conv2d then a 1x1 head with 8 outputs (see the header): row tiles, every column tile in turn.
@compute @workgroup_size(64)
fn conv2d_head(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32, // subgroups
) {
    let idx = gid.y * nwg.x * 64u + gid.x;
    let tiles_row = (p.ow + 7u) / 8u;
    let tiles_m = p.n * p.oh * tiles_row;
    let unit = sgs; // subgroups
    let lane = sid & select(7u, 15u, LANES16); // subgroups
    let unit = 1u; // no subgroups
    let lane = 0u; // no subgroups
    let u = idx / unit;
    if (u >= (tiles_m + unit - 1u) / unit) {
        return;
    }
    let mt = u * unit + idx % unit;
    let rt = row_tile(mt, tiles_m, tiles_row);
    let row = rt.row;
    let ox0 = rt.ox0;
    let m_store = rt.m_store;
    let lim = rt.lim;
    // lo<r>, hi<r>: pixel r's head outputs 0-3 and 4-7, starting from the head's bias.
    let bias_lo = part[0];
    let bias_hi = part[1];
    var lo0 = bias_lo; var hi0 = bias_hi;
    var lo1 = bias_lo; var hi1 = bias_hi;
    var lo2 = bias_lo; var hi2 = bias_hi;
    var lo3 = bias_lo; var hi3 = bias_hi;
    var lo4 = bias_lo; var hi4 = bias_hi;
    var lo5 = bias_lo; var hi5 = bias_hi;
    var lo6 = bias_lo; var hi6 = bias_hi;
    var lo7 = bias_lo; var hi7 = bias_hi;
    for (var n0 = 0u; n0 < p.oc; n0 += 16u) {
        var t: Tile;
        conv_rows(&t, row / p.oh, row % p.oh, ox0, n0, 0u, p.c, lane, false);
        // The head's rows n0..n0+15, as (outputs 0-3, outputs 4-7) vec4 pairs: lane j loads rows n0+2j
        // and n0+2j+1 and hands them round.
        let hq = (n0 + 2u * (lane & 7u)) * 2u; // subgroups
        let h = Head8(residual[hq], residual[hq + 1u], residual[hq + 2u], residual[hq + 3u]); // subgroups
        let h = Head8(vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>()); // no subgroups
        let hr = head_rows(h, n0 * 2u);
        let col0 = n0 + vec4<u32>(0u, 1u, 2u, 3u);
        let es = chans(n0, lane, false);
        let e0 = es.e0;
        let e1 = es.e1;
        let e2 = es.e2;
        let e3 = es.e3;
        head_add(&lo0, &hi0, hr, finish(0u, 1u, col0, e0, t.c0_0), finish(0u, 1u, col0 + 4u, e1, t.c0_1), finish(0u, 1u, col0 + 8u, e2, t.c0_2), finish(0u, 1u, col0 + 12u, e3, t.c0_3));
        head_add(&lo1, &hi1, hr, finish(0u, 1u, col0, e0, t.c1_0), finish(0u, 1u, col0 + 4u, e1, t.c1_1), finish(0u, 1u, col0 + 8u, e2, t.c1_2), finish(0u, 1u, col0 + 12u, e3, t.c1_3));
        head_add(&lo2, &hi2, hr, finish(0u, 1u, col0, e0, t.c2_0), finish(0u, 1u, col0 + 4u, e1, t.c2_1), finish(0u, 1u, col0 + 8u, e2, t.c2_2), finish(0u, 1u, col0 + 12u, e3, t.c2_3));
        head_add(&lo3, &hi3, hr, finish(0u, 1u, col0, e0, t.c3_0), finish(0u, 1u, col0 + 4u, e1, t.c3_1), finish(0u, 1u, col0 + 8u, e2, t.c3_2), finish(0u, 1u, col0 + 12u, e3, t.c3_3));
        head_add(&lo4, &hi4, hr, finish(0u, 1u, col0, e0, t.c4_0), finish(0u, 1u, col0 + 4u, e1, t.c4_1), finish(0u, 1u, col0 + 8u, e2, t.c4_2), finish(0u, 1u, col0 + 12u, e3, t.c4_3));
        head_add(&lo5, &hi5, hr, finish(0u, 1u, col0, e0, t.c5_0), finish(0u, 1u, col0 + 4u, e1, t.c5_1), finish(0u, 1u, col0 + 8u, e2, t.c5_2), finish(0u, 1u, col0 + 12u, e3, t.c5_3));
        head_add(&lo6, &hi6, hr, finish(0u, 1u, col0, e0, t.c6_0), finish(0u, 1u, col0 + 4u, e1, t.c6_1), finish(0u, 1u, col0 + 8u, e2, t.c6_2), finish(0u, 1u, col0 + 12u, e3, t.c6_3));
        head_add(&lo7, &hi7, hr, finish(0u, 1u, col0, e0, t.c7_0), finish(0u, 1u, col0 + 4u, e1, t.c7_1), finish(0u, 1u, col0 + 8u, e2, t.c7_2), finish(0u, 1u, col0 + 12u, e3, t.c7_3));
    }
    head_store(m_store + 0u, lim, lo0, hi0);
    head_store(m_store + 1u, lim, lo1, hi1);
    head_store(m_store + 2u, lim, lo2, hi2);
    head_store(m_store + 3u, lim, lo3, hi3);
    head_store(m_store + 4u, lim, lo4, hi4);
    head_store(m_store + 5u, lim, lo5, hi5);
    head_store(m_store + 6u, lim, lo6, hi6);
    head_store(m_store + 7u, lim, lo7, hi7);
}

// Two rows of the head as loaded by one lane: (row 2j outputs 0-3, 4-7, row 2j+1 outputs 0-3, 4-7).
struct Head8 { a: vec4<f32>, b: vec4<f32>, c: vec4<f32>, d: vec4<f32> }

// 16 head rows: lo<k>/hi<k> are row n0+k's outputs 0-3 and 4-7.
struct HeadRows {
    lo0: vec4<f32>, lo1: vec4<f32>, lo2: vec4<f32>, lo3: vec4<f32>, lo4: vec4<f32>, lo5: vec4<f32>, lo6: vec4<f32>, lo7: vec4<f32>,
    lo8: vec4<f32>, lo9: vec4<f32>, lo10: vec4<f32>, lo11: vec4<f32>, lo12: vec4<f32>, lo13: vec4<f32>, lo14: vec4<f32>, lo15: vec4<f32>,
    hi0: vec4<f32>, hi1: vec4<f32>, hi2: vec4<f32>, hi3: vec4<f32>, hi4: vec4<f32>, hi5: vec4<f32>, hi6: vec4<f32>, hi7: vec4<f32>,
    hi8: vec4<f32>, hi9: vec4<f32>, hi10: vec4<f32>, hi11: vec4<f32>, hi12: vec4<f32>, hi13: vec4<f32>, hi14: vec4<f32>, hi15: vec4<f32>,
}

fn head_share(v: vec4<f32>, src: u32, at: u32) -> vec4<f32> {
    return subgroupShuffle(v, src); // subgroups
    return residual[at]; // no subgroups
}

// The rows from the lanes that loaded them (without subgroups, from the buffer; q0 = n0 * 2).
fn head_rows(h: Head8, q0: u32) -> HeadRows {
    return HeadRows(
        head_share(h.a, 0u, q0 + 0u),
        head_share(h.c, 0u, q0 + 2u),
        head_share(h.a, 1u, q0 + 4u),
        head_share(h.c, 1u, q0 + 6u),
        head_share(h.a, 2u, q0 + 8u),
        head_share(h.c, 2u, q0 + 10u),
        head_share(h.a, 3u, q0 + 12u),
        head_share(h.c, 3u, q0 + 14u),
        head_share(h.a, 4u, q0 + 16u),
        head_share(h.c, 4u, q0 + 18u),
        head_share(h.a, 5u, q0 + 20u),
        head_share(h.c, 5u, q0 + 22u),
        head_share(h.a, 6u, q0 + 24u),
        head_share(h.c, 6u, q0 + 26u),
        head_share(h.a, 7u, q0 + 28u),
        head_share(h.c, 7u, q0 + 30u),
        head_share(h.b, 0u, q0 + 1u),
        head_share(h.d, 0u, q0 + 3u),
        head_share(h.b, 1u, q0 + 5u),
        head_share(h.d, 1u, q0 + 7u),
        head_share(h.b, 2u, q0 + 9u),
        head_share(h.d, 2u, q0 + 11u),
        head_share(h.b, 3u, q0 + 13u),
        head_share(h.d, 3u, q0 + 15u),
        head_share(h.b, 4u, q0 + 17u),
        head_share(h.d, 4u, q0 + 19u),
        head_share(h.b, 5u, q0 + 21u),
        head_share(h.d, 5u, q0 + 23u),
        head_share(h.b, 6u, q0 + 25u),
        head_share(h.d, 6u, q0 + 27u),
        head_share(h.b, 7u, q0 + 29u),
        head_share(h.d, 7u, q0 + 31u),
    );
}

// Adds 16 channels' share of one pixel's head outputs: v0..v3 (after the conv's epilogue) times rows r.
fn head_add(lo: ptr<function, vec4<f32>>, hi: ptr<function, vec4<f32>>, r: HeadRows, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) {
    *lo += v0.x * r.lo0 + v0.y * r.lo1 + v0.z * r.lo2 + v0.w * r.lo3 + v1.x * r.lo4 + v1.y * r.lo5 + v1.z * r.lo6 + v1.w * r.lo7 + v2.x * r.lo8 + v2.y * r.lo9 + v2.z * r.lo10 + v2.w * r.lo11 + v3.x * r.lo12 + v3.y * r.lo13 + v3.z * r.lo14 + v3.w * r.lo15;
    *hi += v0.x * r.hi0 + v0.y * r.hi1 + v0.z * r.hi2 + v0.w * r.hi3 + v1.x * r.hi4 + v1.y * r.hi5 + v1.z * r.hi6 + v1.w * r.hi7 + v2.x * r.hi8 + v2.y * r.hi9 + v2.z * r.hi10 + v2.w * r.hi11 + v3.x * r.hi12 + v3.y * r.hi13 + v3.z * r.hi14 + v3.w * r.hi15;
}

// Output pixel m's head outputs, if m < lim.
fn head_store(m: u32, lim: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (m < lim) {
        y[m * 2u] = lo;
        y[m * 2u + 1u] = hi;
    }
}

// The 2x2 max pool of one 4-channel group after the epilogue: v00 at (oy, ox), v01 at (oy, ox+1), v10 and
// v11 the row below; `right`/`down` say whether those exist (else the window holds only the others).
fn pool4(c: vec4<u32>, e: Chan, v00: vec4<f32>, v01: vec4<f32>, v10: vec4<f32>, v11: vec4<f32>, right: bool, down: bool) -> vec4<f32> {
    let a = finish(0u, 1u, c, e, v00);
    let b = select(a, finish(0u, 1u, c, e, v01), right);
    let d = select(a, finish(0u, 1u, c, e, v10), down);
    let f = select(d, finish(0u, 1u, c, e, v11), right && down);
    return max(max(a, b), max(d, f));
}
