// Backward of conv2d (NHWC x HWIO) and of its fused epilogue; the forward is in conv2d.wgsl.
//
// Forward, per output element (m = flattened n,oy,ox; o = output channel):
//   v = conv(x, w)[m,o] + bias[o];  t = v*scale[o] + shift[o];  u = residual[m,o] + res_scale*t;  y = act(u)
//
// epilogue_backward (four output elements per invocation):
//   du   = dy * act'(u)            relu: y > 0;  prelu: u > 0 ? 1 : alpha[o]  (u read from `preact`)
//   prod = dy * min(u, 0)          (act 2: summed per channel by reduce.wgsl col_sum into d alpha)
//   dres = du                      (flags & 4: written, or added when flags & 8)
//   g    = du * res_scale (flags & 4) * scale[o] (flags & 2)   (gradient of the raw conv output;
//                                    its column sums are d bias; the affine is a frozen batch norm)
// conv2d_grad_input:  dx[n,iy,ix,c] (+)= sum_{ky,kx,o} g[n,oy,ox,o] * w[ky,kx,c,o]
//                     over the taps with oy*sh - pad_top + ky = iy and ox*sw - pad_left + kx = ix;
//                     one dispatch per stride class (iy mod sh, ix mod sw) = (cls_y, cls_x), whose pixels
//                     all take the same taps
// conv2d_grad_weight: part[s, (ky,kx,c), o] = sum_{m in split s} x[tap(m, ky, kx), c] * g[m, o]
//                     (split-K over the output pixels; with one split it writes dw directly, (+)= when flags & 1)
// grad_weight_reduce: dw[i] (+)= sum_s part[s, i]
//
// grad_input and grad_weight keep an 8x16 tile of outputs in registers and share weight (or g) loads
// across a subgroup by shuffles, like conv2d.wgsl (barriers are slow on lavapipe).

struct Params {
    n: u32, h: u32, w: u32, c: u32,
    oh: u32, ow: u32, oc: u32, kh: u32,
    kw: u32, sh: u32, sw: u32, pad_top: u32,
    pad_left: u32, flags: u32, act: u32, res_scale: f32,
    splits: u32, chunk: u32, cls_y: u32, cls_x: u32,
    tshift: u32, _p0: u32, _p1: u32, _p2: u32,
}

// What a dispatch uses, compiled in or out per pipeline (set by Conv2dBackwardParams::constants): CPU
// drivers run both sides of every branch under a lane mask, so a branch on the uniform costs every
// dispatch the paths it does not take.
override VEC: bool = true;        // the entry's vec4 path: grad_input and grad_weight, c and oc multiples
                                  // of 4; epilogue_backward, oc; grad_weight_reduce, the weight count
override ACC: bool = false;       // flags & 1: grad_input, grad_weight and the reduce add into `out`
override AFFINE: bool = false;    // flags & 2
override RESIDUAL: bool = false;  // flags & 4
override RES_ACC: bool = false;   // flags & 8: the residual's gradient is added into `dres`
override ACT: u32 = 0u;           // 0 none, 1 ReLU, 2 PReLU
// Tiles of 32 channels: grad_input's of 32 input channels, two Tiles fed by the same g loads;
// conv2d_grad_weight's of 32 output channels, two Tiles fed by the same x loads (see conv2d.wgsl's WIDE).
override WIDE: bool = false;
// Subgroups of at least 16 lanes: grad_input's lane j loads input channel c0 + j's weight vec4, one load
// for all 16 channels where 8 lanes need two (see conv2d.wgsl).
override LANES16: bool = false;
// grad_weight of a 1x1 conv with stride 1 and no padding: output pixel m reads input pixel m.
override FLAT: bool = false;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;   // dy | g (grad_input) | x (grad_weight) | part (reduce)
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;   // y | w (grad_input) | g (grad_weight)
// a and b are read as vec4s where grad_input's channel counts are multiples of 4, else element by
// element (as_, bs); buffers are padded to 16 bytes.
@group(0) @binding(3) var<storage, read> preact: array<vec4<f32>>; // u [m, oc] (epilogue, act 2)
@group(0) @binding(4) var<storage, read> alpha: array<vec4<f32>>;  // [oc] (epilogue, act 2)
@group(0) @binding(5) var<storage, read> scale: array<vec4<f32>>;  // [oc] (epilogue, flags & 2)
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>; // g | dx | part or dw | dw
@group(0) @binding(7) var<storage, read_write> dres: array<vec4<f32>>; // [m, oc] (epilogue, flags & 4)
@group(0) @binding(8) var<storage, read_write> prod: array<vec4<f32>>; // [m, oc] (epilogue, act 2)
// a again, as rgba32f texels (a's vec4 q at (q & (2^tshift - 1), q >> tshift)), for grad_input and
// grad_weight's vec4 paths; b (g) instead for conv2d_grad_weight_narrow. A texture load costs about
// half a buffer load on llvmpipe (see GpuContext::staging_texture).
@group(0) @binding(9) var at: texture_storage_2d<rgba32float, read>;

// Vec4 q of the texture's tensor: a (grad_input, grad_weight; channel counts multiples of 4) or b
// (conv2d_grad_weight_narrow).
fn av(q: u32) -> vec4<f32> {
    return textureLoad(at, vec2<u32>(q & ((1u << p.tshift) - 1u), q >> p.tshift));
}

fn as_(i: u32) -> f32 {
    return a[i >> 2u][i & 3u];
}

fn bs(i: u32) -> f32 {
    return b[i >> 2u][i & 3u];
}

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * 64u + gid.x;
}

fn put(at: u32, v: f32, acc: bool) {
    var x = v;
    if (acc) {
        x += out[at >> 2u][at & 3u];
    }
    out[at >> 2u][at & 3u] = x;
}

fn put4(at: u32, v: vec4<f32>, acc: bool) {
    var x = v;
    if (acc) {
        x += out[at / 4u];
    }
    out[at / 4u] = x;
}

// grad_input's weights are loaded once per subgroup: lane `src` loaded the vec4 at `at` and the others
// read it by shuffle (see conv2d.wgsl). Without subgroups each lane loads it itself.
fn share4(v: vec4<f32>, src: u32, at: u32) -> vec4<f32> {
    return subgroupShuffle(v, src); // subgroups
    return b[at]; // no subgroups
}

fn share1(v: f32, src: u32, at: u32) -> f32 {
    return subgroupShuffle(v, src); // subgroups
    return bs(at); // no subgroups
}

// grad_weight's g: quarter h of pixel i's 16 columns, from the lane that loaded it (lane 4i + h of g0
// with 16 lanes; with 8, lane 4i + h of g0 for pixels 0-1 and of g1 for 2-3). Without subgroups, from b.
fn gshare(g0: vec4<f32>, g1: vec4<f32>, i: u32, h: u32, at: u32) -> vec4<f32> {
    if (LANES16 || i < 2u) { return subgroupShuffle(g0, 4u * i + h); } // subgroups
    return subgroupShuffle(g1, 4u * (i - 2u) + h); // subgroups
    return b[at]; // no subgroups
}

// Writes (or adds, when acc) 8 values at `at` (column col0 of a row with `cols` columns; a: col0..col0+3,
// b: col0+4..col0+7), skipping columns past the edge, or nothing when not valid.
fn put_cols(valid: bool, at: u32, col0: u32, cols: u32, a: vec4<f32>, b: vec4<f32>, acc: bool) {
    if (!valid) {
        return;
    }
    if (VEC) {
        // at, cols and col0 are multiples of 4 (col0 of 8): each half is whole or past the edge.
        if (col0 < cols) { put4(at, a, acc); }
        if (col0 + 4u < cols) { put4(at + 4u, b, acc); }
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (col0 + j < cols) {
            put(at + j, a[j], acc);
        }
        if (col0 + 4u + j < cols) {
            put(at + 4u + j, b[j], acc);
        }
    }
}

// Four elements per invocation: as vec4s when oc is a multiple of 4, else one by one.
@compute @workgroup_size(64)
fn epilogue_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i4 = index(gid, nwg);
    let total = p.n * p.oh * p.ow * p.oc;
    if (i4 * 4u >= total) {
        return;
    }
    if (VEC) {
        let o4 = ((i4 * 4u) % p.oc) / 4u;
        let dy = a[i4];
        var du = dy;
        if (ACT == 1u) {
            du = select(vec4<f32>(), dy, b[i4] > vec4<f32>());
        } else if (ACT == 2u) {
            let u = preact[i4];
            du = select(alpha[o4] * dy, dy, u > vec4<f32>());
            prod[i4] = dy * min(u, vec4<f32>());
        }
        var g = du;
        if (RESIDUAL) {
            var r = du;
            if (RES_ACC) { r += dres[i4]; }
            dres[i4] = r;
            g = g * p.res_scale;
        }
        if (AFFINE) {
            g = g * scale[o4];
        }
        out[i4] = g;
        return;
    }
    for (var i = i4 * 4u; i < min(i4 * 4u + 4u, total); i++) {
        let q = i >> 2u;
        let r = i & 3u;
        let o = i % p.oc;
        let dy = as_(i);
        var du = dy;
        if (ACT == 1u) {
            du = select(0.0, dy, bs(i) > 0.0);
        } else if (ACT == 2u) {
            let u = preact[q][r];
            du = select(alpha[o >> 2u][o & 3u] * dy, dy, u > 0.0);
            prod[q][r] = dy * min(u, 0.0);
        }
        var g = du;
        if (RESIDUAL) {
            var d = du;
            if (RES_ACC) { d += dres[q][r]; }
            dres[q][r] = d;
            g = g * p.res_scale;
        }
        if (AFFINE) {
            g = g * scale[o >> 2u][o & 3u];
        }
        out[q][r] = g;
    }
}

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
