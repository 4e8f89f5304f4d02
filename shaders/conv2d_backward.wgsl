// Backward of conv2d (NHWC x HWIO) and of its fused epilogue; the forward is in conv2d.wgsl.
//
// Forward, per output element (m = flattened n,oy,ox; o = output channel):
//   v = conv(x, w)[m,o] + bias[o];  t = v*scale[o] + shift[o];  u = residual[m,o] + res_scale*t;  y = act(u)
//
// epilogue_backward (one invocation per output element):
//   du   = dy * act'(u)            relu: y > 0;  prelu: u > 0 ? 1 : alpha[o]  (u read from `preact`)
//   prod = dy * min(u, 0)          (act 2: summed per channel by reduce.wgsl col_sum into d alpha)
//   dres = du                      (flags & 4: written, or added when flags & 8)
//   g    = du * res_scale (flags & 4) * scale[o] (flags & 2)   (gradient of the raw conv output;
//                                    its column sums are d bias; the affine is a frozen batch norm)
// conv2d_grad_input:  dx[n,iy,ix,c] (+)= sum_{ky,kx,o} g[n,oy,ox,o] * w[ky,kx,c,o]
//                     over the taps with oy*sh - pad_top + ky = iy and ox*sw - pad_left + kx = ix
// conv2d_grad_weight: part[s, (ky,kx,c), o] = sum_{m in split s} x[tap(m, ky, kx), c] * g[m, o]
//                     (split-K over the output pixels; with one split it writes dw directly, (+)= when flags & 1)
// grad_weight_reduce: dw[i] (+)= sum_s part[s, i]
//
// Every kernel keeps an 8x8 tile of outputs in registers, like conv2d.wgsl (barriers are slow on lavapipe).

struct Params {
    n: u32, h: u32, w: u32, c: u32,
    oh: u32, ow: u32, oc: u32, kh: u32,
    kw: u32, sh: u32, sw: u32, pad_top: u32,
    pad_left: u32, flags: u32, act: u32, res_scale: f32,
    splits: u32, chunk: u32, _p0: u32, _p1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;   // dy | g (grad_input) | x (grad_weight) | part (reduce)
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;   // y | w (grad_input) | g (grad_weight)
// a and b are read as vec4s where grad_input's channel counts are multiples of 4, else element by
// element (as_, bs); buffers are padded to 16 bytes.
@group(0) @binding(3) var<storage, read> preact: array<f32>;    // u [m, oc] (epilogue, act 2)
@group(0) @binding(4) var<storage, read> alpha: array<f32>;     // [oc] (epilogue, act 2)
@group(0) @binding(5) var<storage, read> scale: array<f32>;     // [oc] (epilogue, flags & 2)
@group(0) @binding(6) var<storage, read_write> out: array<vec4<f32>>; // g | dx | part or dw | dw
@group(0) @binding(7) var<storage, read_write> dres: array<f32>;  // [m, oc] (epilogue, flags & 4)
@group(0) @binding(8) var<storage, read_write> prod: array<f32>;  // [m, oc] (epilogue, act 2)

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

// Writes (or adds, when acc) columns col0..col0+7 of row `row` (rows below row_end only) of a matrix with
// `cols` columns starting at `base`: a holds columns col0..col0+3, b col0+4..col0+7.
fn put_row(row: u32, row_end: u32, col0: u32, cols: u32, base: u32, a: vec4<f32>, b: vec4<f32>, acc: bool) {
    if (row >= row_end) {
        return;
    }
    let at = base + row * cols + col0;
    if ((at & 3u) == 0u && (cols & 3u) == 0u && col0 + 8u <= cols) {
        put4(at, a, acc);
        put4(at + 4u, b, acc);
        return;
    }
    if (col0 + 8u <= cols) {
        put(at, a.x, acc); put(at + 1u, a.y, acc); put(at + 2u, a.z, acc); put(at + 3u, a.w, acc);
        put(at + 4u, b.x, acc); put(at + 5u, b.y, acc); put(at + 6u, b.z, acc); put(at + 7u, b.w, acc);
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

@compute @workgroup_size(64)
fn epilogue_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n * p.oh * p.ow * p.oc) {
        return;
    }
    let o = i % p.oc;
    let dy = as_(i);
    var du = dy;
    if (p.act == 1u) {
        du = select(0.0, dy, bs(i) > 0.0);
    } else if (p.act == 2u) {
        let u = preact[i];
        du = select(alpha[o] * dy, dy, u > 0.0);
        prod[i] = dy * min(u, 0.0);
    }
    var g = du;
    if ((p.flags & 4u) != 0u) {
        dres[i] = select(0.0, dres[i], (p.flags & 8u) != 0u) + du;
        g = g * p.res_scale;
    }
    if ((p.flags & 2u) != 0u) {
        g = g * scale[o];
    }
    out[i >> 2u][i & 3u] = g;
}

@compute @workgroup_size(64)
fn conv2d_grad_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(subgroup_invocation_id) sid: u32, @builtin(subgroup_size) sgs: u32, // subgroups
) {
    // Tile: 8 consecutive input pixels (flattened n,iy,ix) x 8 consecutive input channels, for up to 4
    // channel tiles in turn: the pixel setup (integer divisions, scalarized on CPU drivers) is shared, which
    // matters when the reduction over output channels is short (a 1x1 conv down to 32 channels).
    // The lanes of a subgroup share the channel group (and so the weights) and take consecutive pixel
    // tiles, as in conv2d.wgsl; lanes past the last tile repeat it and store nothing.
    let idx = index(gid, nwg);
    let m_total = p.n * p.h * p.w;
    let groups_c = (p.c + 31u) / 32u;
    let tiles_m = (m_total + 7u) / 8u;
    let unit = sgs; // subgroups
    let lane = sid & 7u; // subgroups
    let unit = 1u; // no subgroups
    let u = idx / unit;
    if (u >= groups_c * ((tiles_m + unit - 1u) / unit)) {
        return;
    }
    let mt = (u / groups_c) * unit + idx % unit;
    let m_store = mt * 8u;
    let m0 = min(mt, tiles_m - 1u) * 8u;
    let group = u % groups_c;
    let vectorized = (p.c & 3u) == 0u && (p.oc & 3u) == 0u;
    var py: array<i32, 8>;
    var px: array<i32, 8>;
    var gb: array<u32, 8>;
    // The 8 pixels' (image, row, column), stepped from the first rather than divided out for each
    // (integer division is scalarized on CPU drivers); pixels past the end repeat the last one.
    var bn = m0 / (p.h * p.w);
    var iy = (m0 / p.w) % p.h;
    var ix = m0 % p.w;
    for (var r = 0u; r < 8u; r++) {
        py[r] = i32(iy) + i32(p.pad_top);
        px[r] = i32(ix) + i32(p.pad_left);
        gb[r] = bn * p.oh * p.ow * p.oc;
        if (m0 + r + 1u < m_total) {
            ix++;
            if (ix == p.w) {
                ix = 0u;
                iy++;
                if (iy == p.h) {
                    iy = 0u;
                    bn++;
                }
            }
        }
    }
    for (var ct = 0u; ct < 4u; ct++) {
    let c0 = (group * 4u + ct) * 8u;
    if (c0 >= p.c) {
        break;
    }
        let ch0 = min(c0 + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.c - 1u));
        let ch1 = min(c0 + vec4<u32>(4u, 5u, 6u, 7u), vec4<u32>(p.c - 1u));
        var c0_0 = vec4<f32>(); var c0_1 = vec4<f32>();
        var c1_0 = vec4<f32>(); var c1_1 = vec4<f32>();
        var c2_0 = vec4<f32>(); var c2_1 = vec4<f32>();
        var c3_0 = vec4<f32>(); var c3_1 = vec4<f32>();
        var c4_0 = vec4<f32>(); var c4_1 = vec4<f32>();
        var c5_0 = vec4<f32>(); var c5_1 = vec4<f32>();
        var c6_0 = vec4<f32>(); var c6_1 = vec4<f32>();
        var c7_0 = vec4<f32>(); var c7_1 = vec4<f32>();
        for (var ky = 0u; ky < p.kh; ky++) {
            for (var kx = 0u; kx < p.kw; kx++) {
                // The output pixel each input pixel feeds through this tap, or none (mask 0).
                var off0 = vec4<u32>();
                var off1 = vec4<u32>();
                var k0 = vec4<f32>();
                var k1 = vec4<f32>();
                var hit = false;
                for (var r = 0u; r < 8u; r++) {
                    let ny = py[r] - i32(ky);
                    let nx = px[r] - i32(kx);
                    // Integer division is scalarized on CPU drivers: stride 1 skips it.
                    var oy = ny;
                    var ox = nx;
                    var on_grid = true;
                    if (p.sh != 1u || p.sw != 1u) {
                        oy = ny / i32(p.sh);
                        ox = nx / i32(p.sw);
                        on_grid = ny % i32(p.sh) == 0 && nx % i32(p.sw) == 0;
                    }
                    let ok = ny >= 0 && nx >= 0 && on_grid && oy < i32(p.oh) && ox < i32(p.ow);
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
                if (vectorized) {
                    // Four output channels per step: a vec4 of g per pixel and of w per input channel,
                    // the four unrolled by hand (no dynamically indexed vector components).
                    let g0 = off0 / 4u;
                    let g1 = off1 / 4u;
                    let v0 = w0 / 4u;
                    let v1 = w1 / 4u;
                    for (var q = 0u; q < p.oc / 4u; q++) {
                        let ga = a[g0.x + q] * k0.x; let gb_ = a[g0.y + q] * k0.y; let gc = a[g0.z + q] * k0.z; let gd = a[g0.w + q] * k0.w;
                        let ge = a[g1.x + q] * k1.x; let gf = a[g1.y + q] * k1.y; let gg = a[g1.z + q] * k1.z; let gh = a[g1.w + q] * k1.w;
                        // Lane j loads the row of input channel c0 + j.
                        let wv = b[select(v0, v1, lane >= 4u)[lane & 3u] + q]; // subgroups
                        let wv = vec4<f32>(); // no subgroups
                        let wa = share4(wv, 0u, v0.x + q); let wb = share4(wv, 1u, v0.y + q);
                        let wc = share4(wv, 2u, v0.z + q); let wd = share4(wv, 3u, v0.w + q);
                        let we = share4(wv, 4u, v1.x + q); let wf = share4(wv, 5u, v1.y + q);
                        let wg = share4(wv, 6u, v1.z + q); let wh = share4(wv, 7u, v1.w + q);
                        {
                            let a0 = vec4<f32>(ga.x, gb_.x, gc.x, gd.x);
                            let a1 = vec4<f32>(ge.x, gf.x, gg.x, gh.x);
                            let b0 = vec4<f32>(wa.x, wb.x, wc.x, wd.x);
                            let b1 = vec4<f32>(we.x, wf.x, wg.x, wh.x);
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
                            let a0 = vec4<f32>(ga.y, gb_.y, gc.y, gd.y);
                            let a1 = vec4<f32>(ge.y, gf.y, gg.y, gh.y);
                            let b0 = vec4<f32>(wa.y, wb.y, wc.y, wd.y);
                            let b1 = vec4<f32>(we.y, wf.y, wg.y, wh.y);
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
                            let a0 = vec4<f32>(ga.z, gb_.z, gc.z, gd.z);
                            let a1 = vec4<f32>(ge.z, gf.z, gg.z, gh.z);
                            let b0 = vec4<f32>(wa.z, wb.z, wc.z, wd.z);
                            let b1 = vec4<f32>(we.z, wf.z, wg.z, wh.z);
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
                            let a0 = vec4<f32>(ga.w, gb_.w, gc.w, gd.w);
                            let a1 = vec4<f32>(ge.w, gf.w, gg.w, gh.w);
                            let b0 = vec4<f32>(wa.w, wb.w, wc.w, wd.w);
                            let b1 = vec4<f32>(we.w, wf.w, wg.w, wh.w);
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
                    continue;
                }
                for (var o = 0u; o < p.oc; o++) {
                    let a0 = k0 * vec4<f32>(as_(off0.x + o), as_(off0.y + o), as_(off0.z + o), as_(off0.w + o));
                    let a1 = k1 * vec4<f32>(as_(off1.x + o), as_(off1.y + o), as_(off1.z + o), as_(off1.w + o));
                    let b0 = vec4<f32>(bs(w0.x + o), bs(w0.y + o), bs(w0.z + o), bs(w0.w + o));
                    let b1 = vec4<f32>(bs(w1.x + o), bs(w1.y + o), bs(w1.z + o), bs(w1.w + o));
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
        }
        // Stores unrolled by hand: a dynamically indexed accumulator array spills on CPU drivers.
        let acc = (p.flags & 1u) != 0u;
        put_row(m_store, m_total, c0, p.c, 0u, c0_0, c0_1, acc);
        put_row(m_store + 1u, m_total, c0, p.c, 0u, c1_0, c1_1, acc);
        put_row(m_store + 2u, m_total, c0, p.c, 0u, c2_0, c2_1, acc);
        put_row(m_store + 3u, m_total, c0, p.c, 0u, c3_0, c3_1, acc);
        put_row(m_store + 4u, m_total, c0, p.c, 0u, c4_0, c4_1, acc);
        put_row(m_store + 5u, m_total, c0, p.c, 0u, c5_0, c5_1, acc);
        put_row(m_store + 6u, m_total, c0, p.c, 0u, c6_0, c6_1, acc);
        put_row(m_store + 7u, m_total, c0, p.c, 0u, c7_0, c7_1, acc);
    }
}

@compute @workgroup_size(64)
fn conv2d_grad_weight(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // Tile: 8 consecutive input channels of one tap (ky,kx) x 8 consecutive output channels, summed over
    // the output pixels of one split.
    let idx = index(gid, nwg);
    let tiles_c = (p.c + 7u) / 8u;
    let tiles_o = (p.oc + 7u) / 8u;
    let tiles = p.kh * p.kw * tiles_c * tiles_o;
    if (idx >= tiles * p.splits) {
        return;
    }
    let split = idx / tiles;
    let t = idx % tiles;
    let o0 = (t % tiles_o) * 8u;
    let rc = t / tiles_o;
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
    let vectorized = (p.c & 3u) == 0u && (p.oc & 3u) == 0u;
    var c0_0 = vec4<f32>(); var c0_1 = vec4<f32>();
    var c1_0 = vec4<f32>(); var c1_1 = vec4<f32>();
    var c2_0 = vec4<f32>(); var c2_1 = vec4<f32>();
    var c3_0 = vec4<f32>(); var c3_1 = vec4<f32>();
    var c4_0 = vec4<f32>(); var c4_1 = vec4<f32>();
    var c5_0 = vec4<f32>(); var c5_1 = vec4<f32>();
    var c6_0 = vec4<f32>(); var c6_1 = vec4<f32>();
    var c7_0 = vec4<f32>(); var c7_1 = vec4<f32>();
    var ox = m_begin % p.ow;
    var oy = (m_begin / p.ow) % p.oh;
    var bn = m_begin / (p.ow * p.oh);
    // With vec4 channels, walk the split's pixels one output row at a time: the row's in-image columns
    // for this tap are worked out once, so the inner loop only steps two addresses (no position
    // counters or bounds tests per pixel).
    if (vectorized) {
        let xstep = p.sw * p.c / 4u;
        let gstep = p.oc / 4u;
        // Columns with 0 <= ox*sw + kx - pad_left < w.
        let lo_num = i32(p.pad_left) - i32(kx);
        let ox_lo = select(0u, u32((lo_num + i32(p.sw) - 1) / i32(p.sw)), lo_num > 0);
        let hi_num = i32(p.w) - 1 + i32(p.pad_left) - i32(kx);
        let ox_hi = select(0u, min(u32(hi_num / i32(p.sw)) + 1u, p.ow), hi_num >= 0);
        var m = m_begin;
        loop {
            if (m >= m_end) {
                break;
            }
            let row = m / p.ow;
            let row_m0 = row * p.ow;
            let seg_end = min(m_end, row_m0 + p.ow);
            let iy = i32((row % p.oh) * p.sh + ky) - i32(p.pad_top);
            let c_lo = max(m - row_m0, ox_lo);
            let c_hi = min(seg_end - row_m0, ox_hi);
            if (iy >= 0 && iy < i32(p.h) && c_lo < c_hi) {
                let ix0 = c_lo * p.sw + kx - p.pad_left;
                var xa = ((((row / p.oh) * p.h + u32(iy)) * p.w + ix0) * p.c + c0) / 4u;
                var gi = ((row_m0 + c_lo) * p.oc + o0) / 4u;
                for (var ox = c_lo; ox < c_hi; ox++) {
                    let a0 = a[xa];
                    let a1 = a[xa + 1u];
                    let b0 = b[gi];
                    let b1 = b[gi + 1u];
                    c0_0 = fma(vec4<f32>(a0.x), b0, c0_0); c0_1 = fma(vec4<f32>(a0.x), b1, c0_1);
                    c1_0 = fma(vec4<f32>(a0.y), b0, c1_0); c1_1 = fma(vec4<f32>(a0.y), b1, c1_1);
                    c2_0 = fma(vec4<f32>(a0.z), b0, c2_0); c2_1 = fma(vec4<f32>(a0.z), b1, c2_1);
                    c3_0 = fma(vec4<f32>(a0.w), b0, c3_0); c3_1 = fma(vec4<f32>(a0.w), b1, c3_1);
                    c4_0 = fma(vec4<f32>(a1.x), b0, c4_0); c4_1 = fma(vec4<f32>(a1.x), b1, c4_1);
                    c5_0 = fma(vec4<f32>(a1.y), b0, c5_0); c5_1 = fma(vec4<f32>(a1.y), b1, c5_1);
                    c6_0 = fma(vec4<f32>(a1.z), b0, c6_0); c6_1 = fma(vec4<f32>(a1.z), b1, c6_1);
                    c7_0 = fma(vec4<f32>(a1.w), b0, c7_0); c7_1 = fma(vec4<f32>(a1.w), b1, c7_1);
                    xa += xstep;
                    gi += gstep;
                }
            }
            m = seg_end;
        }
    }
    for (var m = select(m_begin, m_end, vectorized); m < m_end; m++) {
        let iy = i32(oy * p.sh + ky) - i32(p.pad_top);
        let ix = i32(ox * p.sw + kx) - i32(p.pad_left);
        if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
            let xo = ((bn * p.h + u32(iy)) * p.w + u32(ix)) * p.c;
            let go = m * p.oc;
            let a0 = vec4<f32>(as_(xo + cc0.x), as_(xo + cc0.y), as_(xo + cc0.z), as_(xo + cc0.w));
            let a1 = vec4<f32>(as_(xo + cc1.x), as_(xo + cc1.y), as_(xo + cc1.z), as_(xo + cc1.w));
            let b0 = vec4<f32>(bs(go + oo0.x), bs(go + oo0.y), bs(go + oo0.z), bs(go + oo0.w));
            let b1 = vec4<f32>(bs(go + oo1.x), bs(go + oo1.y), bs(go + oo1.z), bs(go + oo1.w));
            c0_0 = fma(vec4<f32>(a0.x), b0, c0_0); c0_1 = fma(vec4<f32>(a0.x), b1, c0_1);
            c1_0 = fma(vec4<f32>(a0.y), b0, c1_0); c1_1 = fma(vec4<f32>(a0.y), b1, c1_1);
            c2_0 = fma(vec4<f32>(a0.z), b0, c2_0); c2_1 = fma(vec4<f32>(a0.z), b1, c2_1);
            c3_0 = fma(vec4<f32>(a0.w), b0, c3_0); c3_1 = fma(vec4<f32>(a0.w), b1, c3_1);
            c4_0 = fma(vec4<f32>(a1.x), b0, c4_0); c4_1 = fma(vec4<f32>(a1.x), b1, c4_1);
            c5_0 = fma(vec4<f32>(a1.y), b0, c5_0); c5_1 = fma(vec4<f32>(a1.y), b1, c5_1);
            c6_0 = fma(vec4<f32>(a1.z), b0, c6_0); c6_1 = fma(vec4<f32>(a1.z), b1, c6_1);
            c7_0 = fma(vec4<f32>(a1.w), b0, c7_0); c7_1 = fma(vec4<f32>(a1.w), b1, c7_1);
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
    // Row r of the tile is input channel c0 + r of tap (ky, kx): weight row tap * c + c0 + r.
    let acc = (p.flags & 1u) != 0u;
    let rows = p.kh * p.kw * p.c;
    let base = split * rows * p.oc;
    let row0 = tap * p.c + c0;
    let row_end = tap * p.c + p.c;
    put_row(row0, row_end, o0, p.oc, base, c0_0, c0_1, acc);
    put_row(row0 + 1u, row_end, o0, p.oc, base, c1_0, c1_1, acc);
    put_row(row0 + 2u, row_end, o0, p.oc, base, c2_0, c2_1, acc);
    put_row(row0 + 3u, row_end, o0, p.oc, base, c3_0, c3_1, acc);
    put_row(row0 + 4u, row_end, o0, p.oc, base, c4_0, c4_1, acc);
    put_row(row0 + 5u, row_end, o0, p.oc, base, c5_0, c5_1, acc);
    put_row(row0 + 6u, row_end, o0, p.oc, base, c6_0, c6_1, acc);
    put_row(row0 + 7u, row_end, o0, p.oc, base, c7_0, c7_1, acc);
}

@compute @workgroup_size(64)
fn grad_weight_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let total = p.kh * p.kw * p.c * p.oc;
    if (i >= total) {
        return;
    }
    var s = 0.0;
    for (var k = 0u; k < p.splits; k++) {
        s += as_(k * total + i);
    }
    out[i >> 2u][i & 3u] = select(0.0, out[i >> 2u][i & 3u], (p.flags & 1u) != 0u) + s;
}
