// The weight gradient of conv2d (see conv2d_backward_common.wgsl):
// conv2d_grad_weight: part[s, (ky,kx,c), o] = sum_{m in split s} x[tap(m, ky, kx), c] * g[m, o]
//                     (split-K over the output pixels; with one split it writes dw directly, (+)= when flags & 1)
// grad_weight_reduce: dw[i] (+)= sum_s part[s, i]

// grad_weight's g: quarter h of pixel i's 16 columns, from the lane that loaded it (lane 4i + h of g0
// with 16 lanes; with 8, lane 4i + h of g0 for pixels 0-1 and of g1 for 2-3). Without subgroups, from b.
fn gshare(g0: vec4<f32>, g1: vec4<f32>, i: u32, h: u32, at: u32) -> vec4<f32> {
    if (LANES16 || i < 2u) { return subgroupShuffle(g0, 4u * i + h); } // subgroups
    return subgroupShuffle(g1, 4u * (i - 2u) + h); // subgroups
    return b[at]; // no subgroups
}

@compute @workgroup_size(64)
fn conv2d_grad_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32, // subgroups
) {
    // Tile: 8 consecutive input channels of one tap (ky,kx) x 16 consecutive output channels, summed over
    // the output pixels of one split. The lanes of a subgroup share the split and the output channels (so
    // they share g's loads) and take consecutive (tap, channel) rows; lanes past the last repeat it and
    // store nothing.
    let idx = index(gid, nwg);
    let tiles_c = (p.c + 7u) / 8u;
    let ow = select(16u, 32u, WIDE);
    let tiles_o = (p.oc + ow - 1u) / ow;
    let rcs = p.kh * p.kw * tiles_c;
    let unit = sgs; // subgroups
    let lane = sid & select(7u, 15u, LANES16); // subgroups
    let unit = 1u; // no subgroups
    let lane = 0u; // no subgroups
    let u = idx / unit;
    let groups_rc = (rcs + unit - 1u) / unit;
    if (u >= p.splits * tiles_o * groups_rc) {
        return;
    }
    let split = u / (tiles_o * groups_rc);
    let o0 = ((u / groups_rc) % tiles_o) * ow;
    let rc_store = (u % groups_rc) * unit + idx % unit;
    let rc = min(rc_store, rcs - 1u);
    let c0 = (rc % tiles_c) * 8u;
    let tap = rc / tiles_c;
    let ky = tap / p.kw;
    let kx = tap % p.kw;
    let m_total = p.n * p.oh * p.ow;
    let m_begin = split * p.chunk;
    let m_end = min(m_begin + p.chunk, m_total);
    let cc0 = min(c0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.c - 1u));
    let cc1 = min(c0 + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(p.c - 1u));
    let oo0 = min(o0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.oc - 1u));
    let oo1 = min(o0 + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(p.oc - 1u));
    let oo2 = min(o0 + vec4<u32>(8u, 9u, 10u, 11u), vec4<u32>(p.oc - 1u));
    let oo3 = min(o0 + vec4<u32>(12u, 13u, 14u, 15u), vec4<u32>(p.oc - 1u));
    // t.c<r>_<h>: input channel c0+r of the tap, output channels o0+4h..o0+4h+3 (t2: o0+16+4h..).
    var t: Tile;
    var t2: Tile;
    // With vec4 channels, walk the split's pixels four per step (gw_step4): every lane steps through the
    // same pixels, each masking those whose tap falls outside the image. The pixels' rows and columns are
    // stepped, not divided out per output row: a division per row cost the 8- and 3-pixel rows of the
    // late layers a third of their time.
    if (VEC) {
        let oc4 = p.oc / 4u;
        // g's last vec4s of a ragged tile are clamped to the row (their outputs are not stored).
        let gq = min(vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(oc4 - o0 / 4u - 1u));
        // WIDE: the second tile's columns o1.. (o0 again where o0 + 16 is past the end: not stored).
        let o1 = select(o0, o0 + 16u, o0 + 16u < p.oc);
        let gq1 = min(vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(oc4 - o1 / 4u - 1u));
        let last = m_end - 1u;
        if (FLAT) {
            // 1x1, stride 1, no padding: output pixel m reads input pixel m.
            for (var m = m_begin; m <= last; m += 4u) {
                let ms = vec4<u32>(m) + vec4<u32>(0u, 1u, 2u, 3u);
                let ok = ms <= vec4<u32>(last);
                let xa = select(vec4<u32>(), (ms * p.c + c0) / 4u, ok);
                let gi = (min(ms, vec4<u32>(last)) * p.oc + o0) / 4u;
                gw_step4(&t, &t2, xa, select(vec4<f32>(), vec4<f32>(1.0), ok), gi, gq, gi + (o1 - o0) / 4u, gq1, lane);
            }
        }
        if (!FLAT) {
            var px = pixels4(m_begin);
            for (var m = m_begin; m <= last; m += 4u) {
                let ms = vec4<u32>(m) + vec4<u32>(0u, 1u, 2u, 3u);
                let iy = vec4<i32>(px.oy * p.sh + ky) - i32(p.pad_top);
                let ix = vec4<i32>(px.ox * p.sw + kx) - i32(p.pad_left);
                let ok = (ms <= vec4<u32>(last)) & (iy >= vec4<i32>()) & (iy < vec4<i32>(i32(p.h))) & (ix >= vec4<i32>()) & (ix < vec4<i32>(i32(p.w)));
                let xa = select(vec4<u32>(), (((px.bn * p.h + vec4<u32>(iy)) * p.w + vec4<u32>(ix)) * p.c + c0) / 4u, ok);
                let gi = (min(ms, vec4<u32>(last)) * p.oc + o0) / 4u;
                gw_step4(&t, &t2, xa, select(vec4<f32>(), vec4<f32>(1.0), ok), gi, gq, gi + (o1 - o0) / 4u, gq1, lane);
                pixels4_step(&px);
            }
        }
    }
    // Element by element (channel counts not multiples of 4).
    if (!VEC) {
        var ox = m_begin % p.ow;
        var oy = (m_begin / p.ow) % p.oh;
        var bn = m_begin / (p.ow * p.oh);
        for (var m = m_begin; m < m_end; m++) {
            let iy = i32(oy * p.sh + ky) - i32(p.pad_top);
            let ix = i32(ox * p.sw + kx) - i32(p.pad_left);
            if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
                let xo = ((bn * p.h + u32(iy)) * p.w + u32(ix)) * p.c;
                let go = m * p.oc;
                fma8(&t, vec4<f32>(as_(xo + cc0.x), as_(xo + cc0.y), as_(xo + cc0.z), as_(xo + cc0.w)),
                     vec4<f32>(as_(xo + cc1.x), as_(xo + cc1.y), as_(xo + cc1.z), as_(xo + cc1.w)),
                     vec4<f32>(bs(go + oo0.x), bs(go + oo0.y), bs(go + oo0.z), bs(go + oo0.w)),
                     vec4<f32>(bs(go + oo1.x), bs(go + oo1.y), bs(go + oo1.z), bs(go + oo1.w)),
                     vec4<f32>(bs(go + oo2.x), bs(go + oo2.y), bs(go + oo2.z), bs(go + oo2.w)),
                     vec4<f32>(bs(go + oo3.x), bs(go + oo3.y), bs(go + oo3.z), bs(go + oo3.w)));
            }
            ox++;
            if (ox == p.ow) {
                ox = 0u;
                oy++;
                if (oy == p.oh) {
                    oy = 0u;
                    bn++;
                }
            }
        }
    }
    if (rc_store >= rcs) {
        return;
    }
    // Row r of the tile is input channel c0 + r of tap (ky, kx): weight row tap * c + c0 + r.
    store_wtile(&t, tap * p.c + c0, tap * p.c + p.c, o0, split * p.kh * p.kw * p.c * p.oc);
    if (WIDE && o0 + 16u < p.oc) {
        store_wtile(&t2, tap * p.c + c0, tap * p.c + p.c, o0 + 16u, split * p.kh * p.kw * p.c * p.oc);
    }
}

// The pixel stepping of grad_weight's vec4 and narrow paths: four consecutive output pixels' (image,
// row, column), divided out once and then stepped four pixels at a time (integer division is
// scalarized on CPU drivers), running on across output rows and images.
struct Pixels4 { ox: vec4<u32>, oy: vec4<u32>, bn: vec4<u32> }

fn pixels4(m0: u32) -> Pixels4 {
    let m4 = vec4<u32>(m0) + vec4<u32>(0u, 1u, 2u, 3u);
    return Pixels4(m4 % p.ow, (m4 / p.ow) % p.oh, m4 / (p.ow * p.oh));
}

fn pixels4_step(px: ptr<function, Pixels4>) {
    (*px).ox += 4u;
    // Rows narrower than 4 pixels wrap more than once.
    loop {
        let wrap = (*px).ox >= vec4<u32>(p.ow);
        if (!any(wrap)) {
            break;
        }
        (*px).ox = select((*px).ox, (*px).ox - p.ow, wrap);
        (*px).oy = select((*px).oy, (*px).oy + 1u, wrap);
        let wrap_y = (*px).oy == vec4<u32>(p.oh);
        (*px).oy = select((*px).oy, vec4<u32>(), wrap_y);
        (*px).bn = select((*px).bn, (*px).bn + 1u, wrap_y);
    }
}

// Columns o0..o0+15 of weight-gradient row `row` (below row_end) at `base`.
fn put_row16(row: u32, row_end: u32, o0: u32, base: u32, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) {
    put_cols(row < row_end, base + row * p.oc + o0, o0, p.oc, v0, v1, ACC);
    put_cols(row < row_end, base + row * p.oc + o0 + 8u, o0 + 8u, p.oc, v2, v3, ACC);
}

// Stores (or adds, with ACC) a weight-gradient tile at `base`: row r is weight row row0 + r (those below
// row_end), columns o0..o0+15.
fn store_wtile(t: ptr<function, Tile>, row0: u32, row_end: u32, o0: u32, base: u32) {
    put_row16(row0, row_end, o0, base, (*t).c0_0, (*t).c0_1, (*t).c0_2, (*t).c0_3);
    put_row16(row0 + 1u, row_end, o0, base, (*t).c1_0, (*t).c1_1, (*t).c1_2, (*t).c1_3);
    put_row16(row0 + 2u, row_end, o0, base, (*t).c2_0, (*t).c2_1, (*t).c2_2, (*t).c2_3);
    put_row16(row0 + 3u, row_end, o0, base, (*t).c3_0, (*t).c3_1, (*t).c3_2, (*t).c3_3);
    put_row16(row0 + 4u, row_end, o0, base, (*t).c4_0, (*t).c4_1, (*t).c4_2, (*t).c4_3);
    put_row16(row0 + 5u, row_end, o0, base, (*t).c5_0, (*t).c5_1, (*t).c5_2, (*t).c5_3);
    put_row16(row0 + 6u, row_end, o0, base, (*t).c6_0, (*t).c6_1, (*t).c6_2, (*t).c6_3);
    put_row16(row0 + 7u, row_end, o0, base, (*t).c7_0, (*t).c7_1, (*t).c7_2, (*t).c7_3);
}

// conv2d_grad_weight for inputs whose channel count is not a multiple of 4 (the stem's RGB), where every
// tap of every output pixel falls inside the image (no padding, VALID extents) and oc is a multiple of
// 4. A tile's 8 rows are 8 consecutive weight rows of the flattened (tap, channel), so a 3x3 RGB conv's
// 27 rows take 4 tiles, where the general path gives each tap a tile of 8 channels with 3 in use. The
// tiles are too few to share loads across a subgroup: the lanes take consecutive splits and each loads
// its own x (from its buffer) and g (through the texture at binding 9, bound to g here: a texel load is
// a gather where a storage load is a loop over the lanes); the training stem's weight gradient is about
// three times faster than through the general path (docs/KERNELS.md).
@compute @workgroup_size(64)
fn conv2d_grad_weight_narrow(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = index(gid, nwg);
    let rows = p.kh * p.kw * p.c;
    let tiles_o = (p.oc + 15u) / 16u;
    if (idx >= p.splits * tiles_o * ((rows + 7u) / 8u)) {
        return;
    }
    let split = idx % p.splits;
    let o0 = ((idx / p.splits) % tiles_o) * 16u;
    let row0 = (idx / (p.splits * tiles_o)) * 8u;
    // Row r's offset from a pixel's first tap: channel (row0 + r) % c of tap (row0 + r) / c.
    var off0 = vec4<u32>();
    var off1 = vec4<u32>();
    for (var r = 0u; r < 4u; r++) {
        let ra = min(row0 + r, rows - 1u);
        let ta = ra / p.c;
        off0[r] = ((ta / p.kw) * p.w + ta % p.kw) * p.c + ra % p.c;
        let rb = min(row0 + 4u + r, rows - 1u);
        let tb = rb / p.c;
        off1[r] = ((tb / p.kw) * p.w + tb % p.kw) * p.c + rb % p.c;
    }
    let m_begin = split * p.chunk;
    let m_end = min(m_begin + p.chunk, p.n * p.oh * p.ow);
    let last = m_end - 1u;
    let oc4 = p.oc / 4u;
    let gq = min(vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(oc4 - o0 / 4u - 1u));
    var t: Tile;
    var px = pixels4(m_begin);
    for (var m = m_begin; m <= last; m += 4u) {
        let ms = vec4<u32>(m) + vec4<u32>(0u, 1u, 2u, 3u);
        let ok = ms <= vec4<u32>(last);
        let k = select(vec4<f32>(), vec4<f32>(1.0), ok);
        // The four pixels' first taps (pixels past the split read pixel 0's and are masked by k).
        let x0 = select(vec4<u32>(), ((px.bn * p.h + px.oy * p.sh) * p.w + px.ox * p.sw) * p.c, ok);
        let gi = (min(ms, vec4<u32>(last)) * p.oc + o0) / 4u;
        fma8x4(&t, k * xrow(x0, off0.x), k * xrow(x0, off0.y), k * xrow(x0, off0.z), k * xrow(x0, off0.w),
               k * xrow(x0, off1.x), k * xrow(x0, off1.y), k * xrow(x0, off1.z), k * xrow(x0, off1.w),
               W16(av(gi.x + gq.x), av(gi.x + gq.y), av(gi.x + gq.z), av(gi.x + gq.w),
                   av(gi.y + gq.x), av(gi.y + gq.y), av(gi.y + gq.z), av(gi.y + gq.w),
                   av(gi.z + gq.x), av(gi.z + gq.y), av(gi.z + gq.z), av(gi.z + gq.w),
                   av(gi.w + gq.x), av(gi.w + gq.y), av(gi.w + gq.z), av(gi.w + gq.w)));
        pixels4_step(&px);
    }
    store_wtile(&t, row0, rows, o0, split * rows * p.oc);
}

// x at offset `off` from each of four pixels' first taps.
fn xrow(x0: vec4<u32>, off: u32) -> vec4<f32> {
    return vec4<f32>(as_(x0.x + off), as_(x0.y + off), as_(x0.z + off), as_(x0.w + off));
}

// One step of grad_weight's vec4 path: four pixels, whose x vec4s (channels c0..c0+7) are at xa and
// xa + 1 (times mask k) and whose g rows (this tile's 16 columns) start at vec4 gi; gq clamps a ragged
// tile's columns. With WIDE, the same x also meets the next 16 columns (g at gi1, clamped by gq1) in t2.
fn gw_step4(t: ptr<function, Tile>, t2: ptr<function, Tile>, xa: vec4<u32>, k: vec4<f32>, gi: vec4<u32>, gq: vec4<u32>,
            gi1: vec4<u32>, gq1: vec4<u32>, lane: u32) {
    let a0 = av(xa.x) * k.x; let b0 = av(xa.x + 1u) * k.x;
    let a1 = av(xa.y) * k.y; let b1 = av(xa.y + 1u) * k.y;
    let a2 = av(xa.z) * k.z; let b2 = av(xa.z + 1u) * k.z;
    let a3 = av(xa.w) * k.w; let b3 = av(xa.w + 1u) * k.w;
    // Row r of the tile (input channel c0 + r) for the four pixels.
    let x = X8(vec4<f32>(a0.x, a1.x, a2.x, a3.x), vec4<f32>(a0.y, a1.y, a2.y, a3.y),
               vec4<f32>(a0.z, a1.z, a2.z, a3.z), vec4<f32>(a0.w, a1.w, a2.w, a3.w),
               vec4<f32>(b0.x, b1.x, b2.x, b3.x), vec4<f32>(b0.y, b1.y, b2.y, b3.y),
               vec4<f32>(b0.z, b1.z, b2.z, b3.z), vec4<f32>(b0.w, b1.w, b2.w, b3.w));
    gw_columns(t, x, gi, gq, lane);
    if (WIDE) {
        gw_columns(t2, x, gi1, gq1, lane);
    }
}

// The tile's 8 rows for four pixels (component j: pixel j).
struct X8 { r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>, r4: vec4<f32>, r5: vec4<f32>, r6: vec4<f32>, r7: vec4<f32> }

// t += x times the four pixels' g at 16 columns (rows start at vec4 gi, clamped by gq). Lane j loads
// quarter j%4 of pixel j/4's g (with 8 lanes, two loads: pixels 0-1, then 2-3), handed round by
// shuffles; each accumulator takes the four pixels' products in a row.
fn gw_columns(t: ptr<function, Tile>, x: X8, gi: vec4<u32>, gq: vec4<u32>, lane: u32) {
    var g0 = vec4<f32>(); // subgroups
    var g1 = vec4<f32>(); // subgroups
    if (LANES16) { // subgroups
        g0 = b[gi[lane >> 2u] + gq[lane & 3u]]; // subgroups
    } else { // subgroups
        g0 = b[select(gi.x, gi.y, lane >= 4u) + gq[lane & 3u]]; // subgroups
        g1 = b[select(gi.z, gi.w, lane >= 4u) + gq[lane & 3u]]; // subgroups
    } // subgroups
    let g0 = vec4<f32>(); // no subgroups
    let g1 = vec4<f32>(); // no subgroups
    fma8x4(t, x.r0, x.r1, x.r2, x.r3, x.r4, x.r5, x.r6, x.r7,
           W16(gshare(g0, g1, 0u, 0u, gi.x + gq.x), gshare(g0, g1, 0u, 1u, gi.x + gq.y), gshare(g0, g1, 0u, 2u, gi.x + gq.z), gshare(g0, g1, 0u, 3u, gi.x + gq.w),
               gshare(g0, g1, 1u, 0u, gi.y + gq.x), gshare(g0, g1, 1u, 1u, gi.y + gq.y), gshare(g0, g1, 1u, 2u, gi.y + gq.z), gshare(g0, g1, 1u, 3u, gi.y + gq.w),
               gshare(g0, g1, 2u, 0u, gi.z + gq.x), gshare(g0, g1, 2u, 1u, gi.z + gq.y), gshare(g0, g1, 2u, 2u, gi.z + gq.z), gshare(g0, g1, 2u, 3u, gi.z + gq.w),
               gshare(g0, g1, 3u, 0u, gi.w + gq.x), gshare(g0, g1, 3u, 1u, gi.w + gq.y), gshare(g0, g1, 3u, 2u, gi.w + gq.z), gshare(g0, g1, 3u, 3u, gi.w + gq.w)));
}

// Four elements per invocation: as vec4s when the weight count is a multiple of 4 (so every split's
// slice is aligned), else one by one.
@compute @workgroup_size(64)
fn grad_weight_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i4 = index(gid, nwg);
    let total = p.kh * p.kw * p.c * p.oc;
    if (i4 * 4u >= total) {
        return;
    }
    if (VEC) {
        var s = vec4<f32>();
        for (var k = 0u; k < p.splits; k++) {
            s += a[(k * total) / 4u + i4];
        }
        if (ACC) { s += out[i4]; }
        out[i4] = s;
        return;
    }
    for (var i = i4 * 4u; i < min(i4 * 4u + 4u, total); i++) {
        var s = 0.0;
        for (var k = 0u; k < p.splits; k++) {
            s += as_(k * total + i);
        }
        if (ACC) { s += out[i >> 2u][i & 3u]; }
        out[i >> 2u][i & 3u] = s;
    }
}
