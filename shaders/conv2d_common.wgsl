// Declarations and helpers shared by conv2d.wgsl (the general conv) and conv2d_mtcnn.wgsl (its fused
// forms for MTCNN): the parameters, the pipeline constants, the bindings, operand loads, the tile
// steps, the epilogue (finish) and the stores.

struct Params {
    n: u32, h: u32, w: u32, c: u32,
    oh: u32, ow: u32, oc: u32, kh: u32,
    kw: u32, sh: u32, sw: u32, pad_top: u32,
    pad_left: u32, flags: u32, act: u32, res_scale: f32,
    ksplits: u32, kchunk: u32, tile_layout: u32, y_off: u32,   // a TileLayout (kernels/conv2d.rs)
    y_c: u32, solo: u32, tshift: u32, _pad: u32,
}

// What a dispatch uses, compiled in or out per pipeline (set by Conv2dDispatch::constants): CPU drivers
// run both sides of every branch under a lane mask, so a branch on the uniform would cost every conv the
// features it does not use.
override BIAS: bool = false;      // y += bias[o]
override AFFINE: bool = false;    // y = y * scale[o] + shift[o]
override RESIDUAL: bool = false;  // y = residual + res_scale * y
override ACT: u32 = 0u;           // 0 none, 1 ReLU, 2 PReLU
override VEC: bool = true;        // c and oc multiples of 4: x and w read as vec4s
override VEC_STORE: bool = true;  // oc, y_c and y_off multiples of 4: y stored as vec4s
override ROWS: bool = false;      // layout Rows: row tiles (conv2d, conv2d_solo)
override SPLITK: bool = false;    // p.ksplits > 1: raw sums into `part`

// Subgroups of at least 16 lanes: one vec4 load per lane brings a step's 16 weight vec4s (4 input
// channels x 16 output channels), where 8 lanes need two (a storage load is a loop over all the lanes on
// CPU drivers, so each load instruction costs the same however few distinct values it brings).
override LANES16: bool = false;

// Flat tiles of 8 pixels x 32 channels: two Tiles, the second for channels n0+16..n0+31, fed by the same
// x loads (a texel load of x is 16 loads and a transpose on CPU drivers; sharing it cost 1.56-1.67x the
// time for twice the products).
override WIDE: bool = false;
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;  // [n, h, w, c] (buffers are padded to 16 bytes)
@group(0) @binding(2) var<storage, read> wt: array<vec4<f32>>; // [kh, kw, c, oc]
@group(0) @binding(3) var<storage, read> bias: array<f32>;     // [oc] (flags & 1)
@group(0) @binding(4) var<storage, read> scale: array<f32>;    // [oc] (flags & 2)
@group(0) @binding(5) var<storage, read> shift: array<f32>;    // [oc] (flags & 2)
@group(0) @binding(6) var<storage, read> alpha: array<f32>;    // [oc] (act 2)
@group(0) @binding(7) var<storage, read> residual: array<vec4<f32>>; // [n, oh, ow, oc] (flags & 4)
@group(0) @binding(8) var<storage, read_write> y: array<vec4<f32>>;  // [n, oh, ow, oc]
@group(0) @binding(9) var<storage, read_write> part: array<vec4<f32>>; // [ksplits, n*oh*ow, oc] (ksplits > 1)

// x again, as rgba32f texels (x's vec4 q at (q & (2^tshift - 1), q >> tshift)), where c is a multiple of 4:
// a texture load costs about half a buffer load on llvmpipe (see GpuContext::staging_texture).
@group(0) @binding(10) var xt: texture_storage_2d<rgba32float, read>;

// Vec4 q of x (c a multiple of 4).
fn xv(q: u32) -> vec4<f32> {
    return textureLoad(xt, vec2<u32>(q & ((1u << p.tshift) - 1u), q >> p.tshift));
}

fn xs(i: u32) -> f32 {
    return x[i >> 2u][i & 3u];
}

fn ws(i: u32) -> f32 {
    return wt[i >> 2u][i & 3u];
}

fn rs(i: u32) -> f32 {
    return residual[i >> 2u][i & 3u];
}

// One reduction step's weights are loaded once per subgroup: lane `src` loaded the vec4 at `at` and the
// others read it by shuffle (a storage load costs a loop over the lanes on CPU drivers; see
// GpuContext::subgroup_lanes). Without subgroups each lane loads it itself.
// With `solo` (a constant of the entry, conv2d_solo) the lanes do not share: each loads its own.
// The first lane of the rows step4 takes from `wb`: with LANES16, wb is wa and rows ci+2, ci+3 are lanes 8-15.
fn wb_lane() -> u32 {
    return select(0u, 8u, LANES16);
}

fn share4(v: vec4<f32>, src: u32, at: u32, solo: bool) -> vec4<f32> {
    if (solo) { return wt[at]; } // subgroups
    return subgroupShuffle(v, src); // subgroups
    return wt[at]; // no subgroups
}

fn share1(v: f32, src: u32, at: u32, solo: bool) -> f32 {
    if (solo) { return ws(at); } // subgroups
    return subgroupShuffle(v, src); // subgroups
    return ws(at); // no subgroups
}

// Lane j's share of a step's weights at vec4 wrow (see step4): quarter j%4 of weight rows ci + j/4 (a) and,
// with 8 lanes, ci + 2 + j/4 (b). Nothing with `solo` (each lane loads its own in share4) or without
// subgroups.
struct WPair { a: vec4<f32>, b: vec4<f32> }

fn weights_at(wrow: u32, oc4: u32, wq: vec4<u32>, lane: u32, solo: bool) -> WPair {
    var w = WPair(vec4<f32>(), vec4<f32>());
    if (!solo) { w.a = wt[wrow + (lane >> 2u) * oc4 + wq[lane & 3u]]; } // subgroups
    if (!solo && !LANES16) { w.b = wt[wrow + (2u + (lane >> 2u)) * oc4 + wq[lane & 3u]]; } // subgroups
    return w;
}

// Four input channels ci..ci+3 (x0..x7: the 8 pixels' vec4 of them) against weight rows wrow + j*oc4.
// Lane j loaded quarter j%4 of weight rows ci + j/4 (wa) and ci + 2 + j/4 (wb); the others read them by
// shuffle. wq clamps the vec4s of a ragged column tile to the row (their outputs are not stored).
// Each accumulator takes its four channels' products in a row (fma8x4): the 32 accumulators do not fit
// in a CPU's vector registers, and one channel at a time spilled and reloaded each of them four times
// a step.
fn step4(t: ptr<function, Tile>, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>,
         x4: vec4<f32>, x5: vec4<f32>, x6: vec4<f32>, x7: vec4<f32>,
         wa: vec4<f32>, wb: vec4<f32>, wrow: u32, oc4: u32, wq: vec4<u32>, solo: bool) {
    let wc = select(wb, wa, LANES16);
    let w = W16(
        share4(wa, 0u, wrow + wq.x, solo), share4(wa, 1u, wrow + wq.y, solo), share4(wa, 2u, wrow + wq.z, solo), share4(wa, 3u, wrow + wq.w, solo),
        share4(wa, 4u, wrow + oc4 + wq.x, solo), share4(wa, 5u, wrow + oc4 + wq.y, solo), share4(wa, 6u, wrow + oc4 + wq.z, solo), share4(wa, 7u, wrow + oc4 + wq.w, solo),
        share4(wc, 0u + wb_lane(), wrow + 2u * oc4 + wq.x, solo), share4(wc, 1u + wb_lane(), wrow + 2u * oc4 + wq.y, solo), share4(wc, 2u + wb_lane(), wrow + 2u * oc4 + wq.z, solo), share4(wc, 3u + wb_lane(), wrow + 2u * oc4 + wq.w, solo),
        share4(wc, 4u + wb_lane(), wrow + 3u * oc4 + wq.x, solo), share4(wc, 5u + wb_lane(), wrow + 3u * oc4 + wq.y, solo), share4(wc, 6u + wb_lane(), wrow + 3u * oc4 + wq.z, solo), share4(wc, 7u + wb_lane(), wrow + 3u * oc4 + wq.w, solo));
    fma8x4(t, x0, x1, x2, x3, x4, x5, x6, x7, w);
}

// The reduction of a flat tile: output pixels m0..m0+7 (flattened n, oy, ox; any stride) x channels
// n0..n0+15.
fn conv_flat(t: ptr<function, Tile>, t2: ptr<function, Tile>, mt: u32, tiles_m: u32, m_total: u32, n0: u32, cbeg: u32, cend: u32, lane: u32, solo: bool) {
    let m0 = min(mt, tiles_m - 1u) * 8u;
    let col0 = min(n0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.oc - 1u));
    let col1 = min(n0 + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(p.oc - 1u));
    let col2 = min(n0 + vec4<u32>(8u, 9u, 10u, 11u), vec4<u32>(p.oc - 1u));
    let col3 = min(n0 + vec4<u32>(12u, 13u, 14u, 15u), vec4<u32>(p.oc - 1u));

    var iy0: array<i32, 8>;
    var ix0: array<i32, 8>;
    var xb: array<u32, 8>;
    // The 8 pixels' (image, row, column), stepped from the first instead of divided out for each: integer
    // division is scalarized on CPU drivers and dominated convs with a short reduction (3-channel input).
    // Pixels past the end repeat the last one (valid addresses; their outputs are not stored).
    var b = m0 / (p.oh * p.ow);
    var oy = (m0 / p.ow) % p.oh;
    var ox = m0 % p.ow;
    for (var r = 0u; r < 8u; r++) {
        iy0[r] = i32(oy * p.sh) - i32(p.pad_top);
        ix0[r] = i32(ox * p.sw) - i32(p.pad_left);
        xb[r] = b * p.h * p.w * p.c;
        if (m0 + r + 1u < m_total) {
            ox++;
            if (ox == p.ow) {
                ox = 0u;
                oy++;
                if (oy == p.oh) {
                    oy = 0u;
                    b++;
                }
            }
        }
    }
    for (var ky = 0u; ky < p.kh; ky++) {
        for (var kx = 0u; kx < p.kw; kx++) {
            // Input offsets of the 8 pixels for this tap; a pixel in the padding reads 0 (mask k).
            var off0 = vec4<u32>();
            var off1 = vec4<u32>();
            var k0 = vec4<f32>();
            var k1 = vec4<f32>();
            for (var r = 0u; r < 4u; r++) {
                let iy = iy0[r] + i32(ky);
                let ix = ix0[r] + i32(kx);
                let ok = iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w);
                off0[r] = select(0u, xb[r] + (u32(iy) * p.w + u32(ix)) * p.c, ok);
                k0[r] = select(0.0, 1.0, ok);
                let iy1 = iy0[r + 4u] + i32(ky);
                let ix1 = ix0[r + 4u] + i32(kx);
                let ok1 = iy1 >= 0 && iy1 < i32(p.h) && ix1 >= 0 && ix1 < i32(p.w);
                off1[r] = select(0u, xb[r + 4u] + (u32(iy1) * p.w + u32(ix1)) * p.c, ok1);
                k1[r] = select(0.0, 1.0, ok1);
            }
            let kbase = (ky * p.kw + kx) * p.c;
            if (VEC) {
                // Four input channels per step: one vec4 of x per pixel, one row of 4 vec4s of w per channel.
                let q0 = off0 / 4u;
                let q1 = off1 / 4u;
                let oc4 = p.oc / 4u;
                // The weights' last vec4 of a ragged tile is clamped to the row (its outputs are not stored).
                let wq = min(vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(oc4 - n0 / 4u - 1u));
                // WIDE: the second tile's channels (n0 again where they are past the end: not stored).
                let n1 = wide_n1(n0);
                let wq1 = min(vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(oc4 - n1 / 4u - 1u));
                for (var ci = cbeg; ci < cend; ci += 4u) {
                    let q = ci / 4u;
                    let x0 = xv(q0.x + q) * k0.x; let x1 = xv(q0.y + q) * k0.y;
                    let x2 = xv(q0.z + q) * k0.z; let x3 = xv(q0.w + q) * k0.w;
                    let x4 = xv(q1.x + q) * k1.x; let x5 = xv(q1.y + q) * k1.y;
                    let x6 = xv(q1.z + q) * k1.z; let x7 = xv(q1.w + q) * k1.w;
                    let wrow = ((kbase + ci) * p.oc + n0) / 4u;
                    let w = weights_at(wrow, oc4, wq, lane, solo);
                    step4(t, x0, x1, x2, x3, x4, x5, x6, x7, w.a, w.b, wrow, oc4, wq, solo);
                    if (WIDE) {
                        // The same x against the next 16 channels' weights.
                        let wrow1 = ((kbase + ci) * p.oc + n1) / 4u;
                        let w1 = weights_at(wrow1, oc4, wq1, lane, solo);
                        step4(t2, x0, x1, x2, x3, x4, x5, x6, x7, w1.a, w1.b, wrow1, oc4, wq1, solo);
                    }
                }
                continue;
            }
            for (var ci = cbeg; ci < cend; ci++) {
                let a0 = k0 * vec4<f32>(xs(off0.x + ci), xs(off0.y + ci), xs(off0.z + ci), xs(off0.w + ci));
                let a1 = k1 * vec4<f32>(xs(off1.x + ci), xs(off1.y + ci), xs(off1.z + ci), xs(off1.w + ci));
                let wrow = (kbase + ci) * p.oc;
                var wl = 0.0; // subgroups
                var wh = 0.0; // subgroups
                if (!solo) { wl = ws(wrow + min(n0 + lane, p.oc - 1u)); wh = ws(wrow + min(n0 + 8u + lane, p.oc - 1u)); } // subgroups
                let wl = 0.0; // no subgroups
                let wh = 0.0; // no subgroups
                let b0 = vec4<f32>(share1(wl, 0u, wrow + col0.x, solo), share1(wl, 1u, wrow + col0.y, solo), share1(wl, 2u, wrow + col0.z, solo), share1(wl, 3u, wrow + col0.w, solo));
                let b1 = vec4<f32>(share1(wl, 4u, wrow + col1.x, solo), share1(wl, 5u, wrow + col1.y, solo), share1(wl, 6u, wrow + col1.z, solo), share1(wl, 7u, wrow + col1.w, solo));
                let b2 = vec4<f32>(share1(wh, 0u, wrow + col2.x, solo), share1(wh, 1u, wrow + col2.y, solo), share1(wh, 2u, wrow + col2.z, solo), share1(wh, 3u, wrow + col2.w, solo));
                let b3 = vec4<f32>(share1(wh, 4u, wrow + col3.x, solo), share1(wh, 5u, wrow + col3.y, solo), share1(wh, 6u, wrow + col3.z, solo), share1(wh, 7u, wrow + col3.w, solo));
                fma8(t, a0, a1, b0, b1, b2, b3);
            }
        }
    }
}

// The reduction of a row tile (layout Rows; stride 1, c and oc multiples of 4): output pixels (b, oy, ox0..ox0+7)
// x channels n0..n0+15. For each kernel row and 4 input channels the tile's 8 + kw - 1 input columns are
// loaded once and slid across the kw taps (a 3x3 conv loads 10 x vec4s where the flat tile loads 24).
// Columns and rows in the padding read 0; columns past the row's end belong to pixels that are not stored.
fn conv_rows(t: ptr<function, Tile>, b: u32, oy: u32, ox0: u32, n0: u32, cbeg: u32, cend: u32, lane: u32, solo: bool) {
    let c4 = p.c / 4u;
    let oc4 = p.oc / 4u;
    let wq = min(vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(oc4 - n0 / 4u - 1u));
    let ix0 = i32(ox0) - i32(p.pad_left);
    // Offsets (vec4s, within a row) and masks of the first 8 input columns.
    var cq0 = vec4<u32>();
    var cq1 = vec4<u32>();
    var ck0 = vec4<f32>();
    var ck1 = vec4<f32>();
    for (var r = 0u; r < 4u; r++) {
        let ix = ix0 + i32(r);
        let ok = ix >= 0 && ix < i32(p.w);
        cq0[r] = select(0u, u32(ix) * c4, ok);
        ck0[r] = select(0.0, 1.0, ok);
        let ix1 = ix + 4;
        let ok1 = ix1 >= 0 && ix1 < i32(p.w);
        cq1[r] = select(0u, u32(ix1) * c4, ok1);
        ck1[r] = select(0.0, 1.0, ok1);
    }
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = i32(oy) - i32(p.pad_top) + i32(ky);
        let rok = iy >= 0 && iy < i32(p.h);
        let rq = select(0u, ((b * p.h + u32(iy)) * p.w) * c4, rok);
        let rk = select(0.0, 1.0, rok);
        let q0 = cq0 + vec4<u32>(rq);
        let q1 = cq1 + vec4<u32>(rq);
        let k0 = ck0 * rk;
        let k1 = ck1 * rk;
        for (var ci = cbeg; ci < cend; ci += 4u) {
            let q = ci / 4u;
            var x0 = xv(q0.x + q) * k0.x; var x1 = xv(q0.y + q) * k0.y;
            var x2 = xv(q0.z + q) * k0.z; var x3 = xv(q0.w + q) * k0.w;
            var x4 = xv(q1.x + q) * k1.x; var x5 = xv(q1.y + q) * k1.y;
            var x6 = xv(q1.z + q) * k1.z; var x7 = xv(q1.w + q) * k1.w;
            for (var kx = 0u; kx < p.kw; kx++) {
                if (kx > 0u) {
                    // Slide one column: pixel r's tap kx reads the column pixel r + 1's tap kx - 1 read.
                    let ix = ix0 + 7 + i32(kx);
                    let ok = rok && ix >= 0 && ix < i32(p.w);
                    x0 = x1; x1 = x2; x2 = x3; x3 = x4; x4 = x5; x5 = x6; x6 = x7;
                    x7 = xv(select(0u, rq + u32(ix) * c4, ok) + q) * select(0.0, 1.0, ok);
                }
                let wrow = (((ky * p.kw + kx) * p.c + ci) * p.oc + n0) / 4u;
                let w = weights_at(wrow, oc4, wq, lane, solo);
                step4(t, x0, x1, x2, x3, x4, x5, x6, x7, w.a, w.b, wrow, oc4, wq, solo);
            }
        }
    }
}

// Row tile mt (of tiles_m, tiles_row per output row): its output row (n*oh + oy) and first column, and
// its pixels m_store.. stored below lim (none for a lane past the last tile, which repeats it).
struct RowTile { row: u32, ox0: u32, m_store: u32, lim: u32 }

fn row_tile(mt: u32, tiles_m: u32, tiles_row: u32) -> RowTile {
    let mtc = min(mt, tiles_m - 1u);
    let row = mtc / tiles_row;
    let ox0 = (mtc % tiles_row) * 8u;
    let m_store = row * p.ow + ox0;
    return RowTile(row, ox0, m_store, select(m_store, m_store + min(8u, p.ow - ox0), mt < tiles_m));
}

// Epilogue operands of four output channels; the defaults leave a value unchanged.
struct Chan {
    bias: vec4<f32>,
    scale: vec4<f32>,
    shift: vec4<f32>,
    alpha: vec4<f32>,
}

// The epilogue operands of 16 channels, four groups of 4.
struct Chans { e0: Chan, e1: Chan, e2: Chan, e3: Chan }

// (bias, scale, shift, alpha) of channel `col`, the defaults where absent.
fn chan1(col: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0, 1.0, 0.0, 0.0);
    if (BIAS) { v.x = bias[col]; }
    if (AFFINE) { v.y = scale[col]; v.z = shift[col]; }
    if (ACT == 2u) { v.w = alpha[col]; }
    return v;
}

// Channel n0 + k's chan1, from the lane that loaded it (see chans).
fn chan_lane(lo: vec4<f32>, hi: vec4<f32>, k: u32) -> vec4<f32> {
    if (LANES16 || k < 8u) { return subgroupShuffle(lo, k); } // subgroups
    return subgroupShuffle(hi, k - 8u); // subgroups
    return lo; // no subgroups
}

// Channels n0 + k .. n0 + k + 3 as a Chan, from the lanes that loaded them.
fn chan_group(lo: vec4<f32>, hi: vec4<f32>, k: u32) -> Chan {
    let a = chan_lane(lo, hi, k);
    let b = chan_lane(lo, hi, k + 1u);
    let c = chan_lane(lo, hi, k + 2u);
    let d = chan_lane(lo, hi, k + 3u);
    return Chan(vec4<f32>(a.x, b.x, c.x, d.x), vec4<f32>(a.y, b.y, c.y, d.y), vec4<f32>(a.z, b.z, c.z, d.z), vec4<f32>(a.w, b.w, c.w, d.w));
}

// The epilogue operands of channels n0..n0+15 (clamped to oc - 1). Where the lanes of a subgroup share
// n0 (not solo), lane j loads channel n0 + j's (and n0 + 8 + j's with 8 lanes) and hands them round by
// shuffles: a storage load costs a loop over all the lanes per component on CPU drivers, so the 16 lanes'
// scalar loads cost what one lane's 16 would. Else each lane loads its own.
fn chans(n0: u32, lane: u32, solo: bool) -> Chans {
    if (solo) { // subgroups
        return chans_own(n0); // subgroups
    } // subgroups
    let lo = chan1(min(n0 + lane, p.oc - 1u)); // subgroups
    var hi = lo; // subgroups
    if (!LANES16) { hi = chan1(min(n0 + 8u + lane, p.oc - 1u)); } // subgroups
    return Chans(chan_group(lo, hi, 0u), chan_group(lo, hi, 4u), chan_group(lo, hi, 8u), chan_group(lo, hi, 12u)); // subgroups
    return chans_own(n0); // no subgroups
}

fn chans_own(n0: u32) -> Chans {
    let last = vec4<u32>(p.oc - 1u);
    let c = n0 + vec4<u32>(0u, 1u, 2u, 3u);
    return Chans(chan(min(c, last)), chan(min(c + 4u, last)), chan(min(c + 8u, last)), chan(min(c + 12u, last)));
}

fn chan(c: vec4<u32>) -> Chan {
    var e = Chan(vec4<f32>(), vec4<f32>(1.0), vec4<f32>(), vec4<f32>());
    if (BIAS) {
        e.bias = vec4<f32>(bias[c.x], bias[c.y], bias[c.z], bias[c.w]);
    }
    if (AFFINE) {
        e.scale = vec4<f32>(scale[c.x], scale[c.y], scale[c.z], scale[c.w]);
        e.shift = vec4<f32>(shift[c.x], shift[c.y], shift[c.z], shift[c.w]);
    }
    if (ACT == 2u) {
        e.alpha = vec4<f32>(alpha[c.x], alpha[c.y], alpha[c.z], alpha[c.w]);
    }
    return e;
}

// The epilogue of channels c of output pixel m (a pixel past the end reads the last one's residual).
fn finish(m: u32, m_total: u32, c: vec4<u32>, e: Chan, acc: vec4<f32>) -> vec4<f32> {
    var v = (acc + e.bias) * e.scale + e.shift;
    if (RESIDUAL) {
        let at = min(m, m_total - 1u) * p.oc;
        var res: vec4<f32>;
        if (VEC_STORE) {
            // oc a multiple of 4: the 4 channels are one vec4 (or, past the last channel, all clamped to
            // it: a valid vec4 whose values are not stored). A choice at run time ran both loads.
            res = residual[(at + c.x) / 4u];
        } else {
            res = vec4<f32>(rs(at + c.x), rs(at + c.y), rs(at + c.z), rs(at + c.w));
        }
        v = res + p.res_scale * v;
    }
    if (ACT == 1u) {
        v = max(v, vec4<f32>());
    } else if (ACT == 2u) {
        v = max(v, vec4<f32>()) + e.alpha * min(v, vec4<f32>());
    }
    return v;
}

// Stores channels n0..n0+15 of output pixel m (v<h>: n0+4h..n0+4h+3), skipping those past the edges.
fn store_row(m: u32, lim: u32, n0: u32, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) {
    if (m >= lim) {
        return;
    }
    let at = m * p.y_c + p.y_off + n0;
    if (VEC_STORE) {
        let q = at / 4u;
        y[q] = v0;
        if (n0 + 4u < p.oc) { y[q + 1u] = v1; }
        if (n0 + 8u < p.oc) { y[q + 2u] = v2; }
        if (n0 + 12u < p.oc) { y[q + 3u] = v3; }
        return;
    }
    let v = array<vec4<f32>, 4>(v0, v1, v2, v3);
    for (var j = 0u; j < 16u; j++) {
        if (n0 + j < p.oc) {
            y[(at + j) >> 2u][(at + j) & 3u] = v[j >> 2u][j & 3u];
        }
    }
}

// Split-K: channels n0..n0+15 of output pixel m of one split into `part` (oc is a multiple of 4).
fn store_part(base: u32, m: u32, lim: u32, n0: u32, v0: vec4<f32>, v1: vec4<f32>, v2: vec4<f32>, v3: vec4<f32>) {
    if (m >= lim) {
        return;
    }
    let q = (base + m * p.oc + n0) / 4u;
    part[q] = v0;
    if (n0 + 4u < p.oc) { part[q + 1u] = v1; }
    if (n0 + 8u < p.oc) { part[q + 2u] = v2; }
    if (n0 + 12u < p.oc) { part[q + 3u] = v3; }
}

// The second tile's first channel: n0 + 16, or n0 where that is past the last channel (the tile then
// repeats the first and is not stored).
fn wide_n1(n0: u32) -> u32 {
    return select(n0, n0 + 16u, n0 + 16u < p.oc);
}
