// conv2d, NHWC input, HWIO weights, implicit GEMM with an 8x16 register tile and no shared memory.
//
//   y[n,oy,ox,o] = sum_{ky,kx,c} x[n, oy*sh - pad_top + ky, ox*sw - pad_left + kx, c] * w[ky,kx,c,o]
//                  (taps outside the image read as 0: TF SAME/VALID or any explicit padding)
//   fused epilogue, in this order:
//     y += bias[o]                       (flags & 1)
//     y  = y * scale[o] + shift[o]       (flags & 2; inference batch norm folded to an affine)
//     y  = residual[n,oy,ox,o] + res_scale * y   (flags & 4)
//     y  = relu(y) (act 1) | max(y,0) + alpha[o]*min(y,0) (act 2, PReLU)
//   stored at channels [y_off, y_off + oc) of a y with y_c channels (y_c = oc, y_off = 0 but for a conv
//   writing its slice of a concatenation in place).
// Two more entries fuse what follows the conv, for MTCNN (separate entries: a branch for them in conv2d's
// body slowed every conv by 7%):
//   conv2d_max_pool2 (and _12 for 12 channels; p.rows == 2, stride 1, no residual): then a 2x2 stride-2
//     SAME max pool; y is [n, ceil(oh/2), ceil(ow/2), oc] and the conv's own output is never stored
//     (PNet conv1 + pool1, ONet conv3 + pool3).
//   conv2d_head (row tiles, oc a multiple of 16, no split-K): then a 1x1 conv with 8 outputs, weights
//     [oc, 8] bound as `residual` and bias [8] as `part`; y is [n, oh, ow, 8]. Each invocation walks all
//     the column tiles of its row tile, adding each one's 16 channels times their rows of the head (PNet
//     conv3 + its two heads; conv3's output is never stored).
//
// Each invocation computes 8 output pixels x 16 consecutive channels in tile.wgsl's Tile (16 rather than
// 8: each x load then feeds twice the FMAs). The pixels are 8 consecutive flattened
// (n, oy, ox), or with row tiles (p.rows == 1: stride 1, at least 5 taps wide) 8 columns of one output row,
// whose input columns are loaded once per kernel row and slid across the taps (conv_rows).
// x and w are read as vec4s when c and oc are multiples of 4 (16-byte loads instead of scalar gathers:
// 10-20% faster on llvmpipe), else element by element through xs()/ws(). The lanes of a subgroup share
// their channels and their weight loads (share4/share1). The epilogue's per-channel operands are loaded
// once per tile, and y is stored as vec4s where oc is a multiple of 4.

struct Params {
    n: u32, h: u32, w: u32, c: u32,
    oh: u32, ow: u32, oc: u32, kh: u32,
    kw: u32, sh: u32, sw: u32, pad_top: u32,
    pad_left: u32, flags: u32, act: u32, res_scale: f32,
    ksplits: u32, kchunk: u32, rows: u32, y_off: u32,
    y_c: u32, _p0: u32, tshift: u32, _p2: u32,
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
override ROWS: bool = false;      // p.rows == 1: row tiles (conv2d, conv2d_solo)
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

// The reduction of a row tile (p.rows; stride 1, c and oc multiples of 4): output pixels (b, oy, ox0..ox0+7)
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

// The reduction of a pooled tile (p.rows == 2; stride 1, c and oc multiples of 4): output pixels
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

@compute @workgroup_size(64)
fn conv2d(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32, // subgroups
) {
    conv_tiles(gid, nwg, sid, sgs, false); // subgroups
    conv_tiles(gid, nwg, 0u, 1u, false); // no subgroups
}

// conv2d for layers with fewer pixel tiles than a subgroup has lanes (the 3x3-pixel layers at batch 1):
// each lane takes its own tile and loads its own weights, instead of most lanes repeating the last pixel
// tile to share weights.
@compute @workgroup_size(64)
fn conv2d_solo(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32, // subgroups
) {
    conv_tiles(gid, nwg, sid, sgs, true); // subgroups
    conv_tiles(gid, nwg, 0u, 1u, true); // no subgroups
}

fn conv_tiles(gid: vec3<u32>, nwg: vec3<u32>, sid: u32, sgs: u32, solo: bool) {
    let idx = gid.y * nwg.x * 64u + gid.x;
    let m_total = p.n * p.oh * p.ow;
    let tiles_n = (p.oc + cols() - 1u) / cols();
    // Pixel tiles: 8 consecutive flattened (n, oy, ox), or with p.rows (stride-1 convs wider than one tap)
    // 8 consecutive columns of one output row, the last of a row ragged: the tile's taps along a row then
    // read overlapping input columns, which are loaded once (see below).
    let tiles_row = (p.ow + 7u) / 8u;
    let tiles_m = select((m_total + 7u) / 8u, p.n * p.oh * tiles_row, ROWS);
    // The lanes of one subgroup (`unit` invocations) share the column tile n0, so that they can share its
    // weights, and take consecutive row tiles. Lanes past the last row tile repeat it and store nothing:
    // every lane stays active for the shuffles.
    let unit = select(sgs, 1u, solo);
    let lane = sid & select(7u, 15u, LANES16);
    // Split-K (ksplits > 1, for layers with too few tiles to fill the machine): split `ks` takes input
    // channels [cbeg, cend) of every tap and leaves its sums in `part` for conv2d_splitk_finish.
    let per_split = tiles_n * ((tiles_m + unit - 1u) / unit);
    let ut = idx / unit;
    if (ut >= per_split * p.ksplits) {
        return;
    }
    let ks = ut / per_split;
    let u = ut % per_split;
    let cbeg = ks * p.kchunk;
    let cend = min(cbeg + p.kchunk, p.c);
    let mt = (u / tiles_n) * unit + idx % unit;
    let n0 = (u % tiles_n) * cols();
    var t: Tile;
    var t2: Tile;
    // Pixel r of the tile is output pixel m_store + r, stored if below `lim`.
    var m_store = mt * 8u;
    var lim = min(m_store + 8u, m_total);
    if (ROWS) {
        let rt = row_tile(mt, tiles_m, tiles_row);
        m_store = rt.m_store;
        lim = rt.lim;
        conv_rows(&t, rt.row / p.oh, rt.row % p.oh, rt.ox0, n0, cbeg, cend, lane, solo);
    } else {
        conv_flat(&t, &t2, mt, tiles_m, m_total, n0, cbeg, cend, lane, solo);
    }
    store_tile(&t, ks, m_store, lim, m_total, n0, lane, solo);
    if (WIDE && n0 + 16u < p.oc) {
        store_tile(&t2, ks, m_store, lim, m_total, n0 + 16u, lane, solo);
    }
}

// Column tiles of 16 channels, or with WIDE two of them (32 channels).
fn cols() -> u32 {
    return select(16u, 32u, WIDE);
}

// The second tile's first channel: n0 + 16, or n0 where that is past the last channel (the tile then
// repeats the first and is not stored).
fn wide_n1(n0: u32) -> u32 {
    return select(n0, n0 + 16u, n0 + 16u < p.oc);
}

// Stores a tile of conv_tiles: output pixels m_store.. (below lim) x channels n0..n0+15, through the
// epilogue, or with split-K its raw sums of split ks into `part`.
fn store_tile(t: ptr<function, Tile>, ks: u32, m_store: u32, lim: u32, m_total: u32, n0: u32, lane: u32, solo: bool) {
    let col0 = min(n0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.oc - 1u));
    let col1 = min(n0 + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(p.oc - 1u));
    let col2 = min(n0 + vec4<u32>(8u, 9u, 10u, 11u), vec4<u32>(p.oc - 1u));
    let col3 = min(n0 + vec4<u32>(12u, 13u, 14u, 15u), vec4<u32>(p.oc - 1u));
    // Stores unrolled by hand: a dynamically indexed accumulator array spills on CPU drivers. The
    // per-channel operands are the same for the 8 rows and loaded once.
    if (SPLITK) {
        // Raw sums of this split; conv2d_splitk_finish adds the splits and applies the epilogue.
        let base = ks * m_total * p.oc;
        store_part(base, m_store, lim, n0, (*t).c0_0, (*t).c0_1, (*t).c0_2, (*t).c0_3);
        store_part(base, m_store + 1u, lim, n0, (*t).c1_0, (*t).c1_1, (*t).c1_2, (*t).c1_3);
        store_part(base, m_store + 2u, lim, n0, (*t).c2_0, (*t).c2_1, (*t).c2_2, (*t).c2_3);
        store_part(base, m_store + 3u, lim, n0, (*t).c3_0, (*t).c3_1, (*t).c3_2, (*t).c3_3);
        store_part(base, m_store + 4u, lim, n0, (*t).c4_0, (*t).c4_1, (*t).c4_2, (*t).c4_3);
        store_part(base, m_store + 5u, lim, n0, (*t).c5_0, (*t).c5_1, (*t).c5_2, (*t).c5_3);
        store_part(base, m_store + 6u, lim, n0, (*t).c6_0, (*t).c6_1, (*t).c6_2, (*t).c6_3);
        store_part(base, m_store + 7u, lim, n0, (*t).c7_0, (*t).c7_1, (*t).c7_2, (*t).c7_3);
        return;
    }
    let es = chans(n0, lane, solo);
    let e0 = es.e0;
    let e1 = es.e1;
    let e2 = es.e2;
    let e3 = es.e3;
    store_row(m_store, lim, n0, finish(m_store, m_total, col0, e0, (*t).c0_0), finish(m_store, m_total, col1, e1, (*t).c0_1), finish(m_store, m_total, col2, e2, (*t).c0_2), finish(m_store, m_total, col3, e3, (*t).c0_3));
    store_row(m_store + 1u, lim, n0, finish(m_store + 1u, m_total, col0, e0, (*t).c1_0), finish(m_store + 1u, m_total, col1, e1, (*t).c1_1), finish(m_store + 1u, m_total, col2, e2, (*t).c1_2), finish(m_store + 1u, m_total, col3, e3, (*t).c1_3));
    store_row(m_store + 2u, lim, n0, finish(m_store + 2u, m_total, col0, e0, (*t).c2_0), finish(m_store + 2u, m_total, col1, e1, (*t).c2_1), finish(m_store + 2u, m_total, col2, e2, (*t).c2_2), finish(m_store + 2u, m_total, col3, e3, (*t).c2_3));
    store_row(m_store + 3u, lim, n0, finish(m_store + 3u, m_total, col0, e0, (*t).c3_0), finish(m_store + 3u, m_total, col1, e1, (*t).c3_1), finish(m_store + 3u, m_total, col2, e2, (*t).c3_2), finish(m_store + 3u, m_total, col3, e3, (*t).c3_3));
    store_row(m_store + 4u, lim, n0, finish(m_store + 4u, m_total, col0, e0, (*t).c4_0), finish(m_store + 4u, m_total, col1, e1, (*t).c4_1), finish(m_store + 4u, m_total, col2, e2, (*t).c4_2), finish(m_store + 4u, m_total, col3, e3, (*t).c4_3));
    store_row(m_store + 5u, lim, n0, finish(m_store + 5u, m_total, col0, e0, (*t).c5_0), finish(m_store + 5u, m_total, col1, e1, (*t).c5_1), finish(m_store + 5u, m_total, col2, e2, (*t).c5_2), finish(m_store + 5u, m_total, col3, e3, (*t).c5_3));
    store_row(m_store + 6u, lim, n0, finish(m_store + 6u, m_total, col0, e0, (*t).c6_0), finish(m_store + 6u, m_total, col1, e1, (*t).c6_1), finish(m_store + 6u, m_total, col2, e2, (*t).c6_2), finish(m_store + 6u, m_total, col3, e3, (*t).c6_3));
    store_row(m_store + 7u, lim, n0, finish(m_store + 7u, m_total, col0, e0, (*t).c7_0), finish(m_store + 7u, m_total, col1, e1, (*t).c7_1), finish(m_store + 7u, m_total, col2, e2, (*t).c7_2), finish(m_store + 7u, m_total, col3, e3, (*t).c7_3));
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

// After a split-K conv2d: y = epilogue(sum of the splits' partial sums), four channels per invocation.
@compute @workgroup_size(64)
fn conv2d_splitk_finish(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i4 = gid.y * nwg.x * 64u + gid.x;
    let m_total = p.n * p.oh * p.ow;
    let total4 = m_total * p.oc / 4u;
    if (i4 >= total4) {
        return;
    }
    var acc = vec4<f32>();
    for (var s = 0u; s < p.ksplits; s++) {
        acc += part[s * total4 + i4];
    }
    let m = (i4 * 4u) / p.oc;
    let n = (i4 * 4u) % p.oc;
    let cols = n + vec4<u32>(0u, 1u, 2u, 3u);
    y[(m * p.y_c + p.y_off + n) / 4u] = finish(m, m_total, cols, chan(cols), acc);
}
