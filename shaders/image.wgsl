// Image ops on NHWC float images.
//
// resize_bilinear:  half-pixel centres (OpenCV INTER_LINEAR): sx = (ox + 0.5) * w / ow - 0.5, clamped at 0;
//                   taps floor(sx) and floor(sx)+1 (clamped to the edge), weights 1-f, f; same for y.
// resize_area:      OpenCV INTER_AREA. When neither axis grows, output o averages the input span
//                   [o*s, (o+1)*s) (s = in/out) weighted by coverage; otherwise (OpenCV's rule) both axes
//                   use taps floor(o*s), +1 with f = (o+1) - (floor(o*s)+1)/s, f = 0 if f <= 0 else
//                   frac(f). The 2-D weight is the product. Then the output transform (below).
// crop_resize_area: per box b = (image, x0, y0, cw, ch): resize_area of the ch x cw window at (y0, x0) of
//                   that image (zero outside it) to oh x ow, then the output transform (MTCNN's crops).
// output transform: v -> (round_half_even(v) if p.round else v + p.add) * p.mul (identity by default).
// resize_area_rgb8, crop_resize_area_rgb8: the same from RGB8 images packed one pixel per u32
//                   (r | g << 8 | b << 16), 4 pixels to a texel of an rgba32uint texture, into 4 channels
//                   (R, G, B, 0), a pixel per invocation: MTCNN's input. A window's first and last rows and
//                   columns take their weights; the pixels between all weigh 1/cell, so they are summed as
//                   integers a texel (4 pixels) per load and scaled once (a texture load is a gather on CPU
//                   drivers, a storage load a loop over the lanes).
// crop_pad:         y[n,oy,ox,c] = x[n, oy+y0, ox+x0, c] inside the image, else 0
// flip_h:           y[n,oy,ox,c] = x[n, oy, w-1-ox, c]
// fixed_standardize: y = (x - 127.5) / 128
// prewhiten_stats + prewhiten_apply: per image, y = (x - mean) / max(std, 1/sqrt(h*w*c))  (std biased)

// resize_area_rgb8 writes output rows row0 .. row0 + rows of the oh-row resize (a band of a pyramid level
// too large for one buffer); rows = oh elsewhere. pad0, pad1: padding to 16 bytes.
struct Params {
    n: u32, h: u32, w: u32, c: u32, oh: u32, ow: u32, y0: i32, x0: i32,
    add: f32, mul: f32, round: u32, tshift: u32, row0: u32, rows: u32, pad0: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;       // [n, h, w, c] (padded to 16 bytes)
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>; // [n, oh, ow, c]
@group(0) @binding(3) var<storage, read_write> stats: array<f32>; // [n, 2] mean, divisor (prewhiten)
@group(0) @binding(4) var<storage, read> boxes: array<i32>;       // [n, 5] image, x0, y0, cw, ch (crop_resize_area)
// The *_rgb8 entries' images: a pixel per u32 (r | g << 8 | b << 16), rows padded with zero pixels to
// whole texels of 4 (texel q at (q & (2^tshift - 1), q >> tshift)); see PackedImages.
@group(0) @binding(5) var img: texture_storage_2d<rgba32uint, read>;

fn xs(i: u32) -> f32 {
    return x[i >> 2u][i & 3u];
}

fn put(i: u32, v: f32) {
    y[i >> 2u][i & 3u] = v;
}

struct Out { b: u32, oy: u32, ox: u32, ch: u32 }

fn out_index(i: u32) -> Out {
    let ch = i % p.c;
    let pix = i / p.c;
    return Out(pix / (p.ow * p.oh), (pix / p.ow) % p.oh, pix % p.ow, ch);
}

fn at(b: u32, iy: u32, ix: u32, ch: u32) -> f32 {
    return xs(((b * p.h + iy) * p.w + ix) * p.c + ch);
}


@compute @workgroup_size(64)
fn resize_bilinear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n * p.oh * p.ow * p.c) {
        return;
    }
    let o = out_index(i);
    let sy = max((f32(o.oy) + 0.5) * f32(p.h) / f32(p.oh) - 0.5, 0.0);
    let sx = max((f32(o.ox) + 0.5) * f32(p.w) / f32(p.ow) - 0.5, 0.0);
    let y0 = min(u32(floor(sy)), p.h - 1u);
    let x0 = min(u32(floor(sx)), p.w - 1u);
    let y1 = min(y0 + 1u, p.h - 1u);
    let x1 = min(x0 + 1u, p.w - 1u);
    let fy = sy - f32(y0);
    let fx = sx - f32(x0);
    let top = at(o.b, y0, x0, o.ch) * (1.0 - fx) + at(o.b, y0, x1, o.ch) * fx;
    let bot = at(o.b, y1, x0, o.ch) * (1.0 - fx) + at(o.b, y1, x1, o.ch) * fx;
    put(i, top * (1.0 - fy) + bot * fy);
}

// Input span [first, last] and weight function of one axis of INTER_AREA.
// Shrinking follows OpenCV's computeResizeAreaTab: output o covers [lo, hi) = [o*s, (o+1)*s); whole pixels
// weigh 1/cell, the partial ones at either end their covered fraction / cell (skipped below 1e-3), with
// cell = min(s, n_in - lo) so a span that runs past the last pixel is still normalized to 1.
// The weights are worked out once per span (the first and last pixels' by the rule, the ones between
// all 1/cell): per pixel they cost a quarter of the pyramid's time.
struct Span { first: u32, last: u32, lo: f32, hi: f32, cell: f32, inner: u32, frac: f32, shrink: bool, wf: f32, wl: f32, wi: f32 }

fn span(o: u32, n_in: u32, n_out: u32, shrink: bool) -> Span {
    let s = f32(n_in) / f32(n_out);
    if (shrink) {
        let lo = f32(o) * s;
        let hi = lo + s;
        let last = min(u32(floor(hi)), n_in - 1u);
        let inner = min(u32(ceil(lo)), last);
        return weighted(Span(u32(floor(lo)), last, lo, hi, min(s, f32(n_in) - lo), inner, 0.0, true, 0.0, 0.0, 0.0));
    }
    var sx = u32(floor(f32(o) * s));
    var f = f32(o + 1u) - f32(sx + 1u) / s;
    f = select(f - floor(f), 0.0, f <= 0.0);
    if (sx >= n_in - 1u) {
        sx = n_in - 1u;
        f = 0.0;
    }
    return weighted(Span(sx, min(sx + 1u, n_in - 1u), 0.0, 0.0, 1.0, 0u, f, false, 0.0, 0.0, 0.0));
}

fn weighted(s: Span) -> Span {
    var sp = s;
    sp.wf = weight_at(sp, sp.first);
    sp.wl = weight_at(sp, sp.last);
    sp.wi = 1.0 / sp.cell;
    return sp;
}

// Weight of input pixel i in span sp: the first's, the last's, or 1/cell between (see weight_at).
fn weight(sp: Span, i: u32) -> f32 {
    return select(select(sp.wi, sp.wl, i == sp.last), sp.wf, i == sp.first);
}

fn weight_at(sp: Span, i: u32) -> f32 {
    if (sp.shrink) {
        var w = 0.0;
        if (i + 1u == sp.inner && f32(sp.inner) - sp.lo > 1e-3) {
            w += f32(sp.inner) - sp.lo;
        }
        if (i >= sp.inner && i < sp.last) {
            w += 1.0;
        }
        if (i == sp.last && sp.hi - f32(sp.last) > 1e-3) {
            w += min(min(sp.hi - f32(sp.last), 1.0), sp.cell);
        }
        return w / sp.cell;
    }
    if (i == sp.first) {
        return 1.0 - sp.frac;
    }
    return sp.frac;
}

fn transform(v: f32) -> f32 {
    return (select(v, round(v), p.round != 0u) + p.add) * p.mul;
}

// Pixel (iy, ix) of image b, zero outside it.
fn at_or_zero(b: u32, iy: i32, ix: i32, ch: u32) -> f32 {
    if (iy < 0 || ix < 0 || iy >= i32(p.h) || ix >= i32(p.w)) {
        return 0.0;
    }
    return at(b, u32(iy), u32(ix), ch);
}

// INTER_AREA output (o.oy, o.ox, o.ch) of the ch x cw window at (y0, x0) of image b, transformed.
fn area(o: Out, b: u32, x0: i32, y0: i32, cw: u32, ch: u32) -> f32 {
    let shrink = p.oh <= ch && p.ow <= cw;
    let sy = span(o.oy, ch, p.oh, shrink);
    let sx = span(o.ox, cw, p.ow, shrink);
    var acc = 0.0;
    for (var iy = sy.first; iy <= sy.last; iy++) {
        let wy = weight(sy, iy);
        var row = 0.0;
        for (var ix = sx.first; ix <= sx.last; ix++) {
            row += weight(sx, ix) * at_or_zero(b, y0 + i32(iy), x0 + i32(ix), o.ch);
        }
        acc += wy * row;
    }
    return transform(acc);
}

// A packed pixel as (R, G, B, 0).
fn rgb8(v: u32) -> vec4<f32> {
    return vec4<f32>(f32(v & 0xffu), f32((v >> 8u) & 0xffu), f32((v >> 16u) & 0xffu), 0.0);
}

fn texel(q: u32) -> vec4<u32> {
    return textureLoad(img, vec2<u32>(q & ((1u << p.tshift) - 1u), q >> p.tshift));
}

// Column `col` of the packed row whose first texel is `rq`.
fn packed(rq: u32, col: u32) -> u32 {
    return texel(rq + (col >> 2u))[col & 3u];
}

// One row of a window: sx's weights over image columns x0 + sx.first .. x0 + sx.last of the packed row at
// rq, columns outside [0, w) reading 0. The first and last columns take their weights; those between
// share one (1/cell), so they are summed as integers four to a texel and scaled once.
fn area_row(rq: u32, sx: Span, x0: i32) -> vec4<f32> {
    let first = x0 + i32(sx.first);
    let last = x0 + i32(sx.last);
    let w = i32(p.w);
    var acc = vec4<f32>();
    if (first >= 0 && first < w) {
        acc = sx.wf * rgb8(packed(rq, u32(first)));
    }
    if (last != first && last >= 0 && last < w) {
        acc += sx.wl * rgb8(packed(rq, u32(last)));
    }
    let lo = max(first + 1, 0);
    let hi = min(last - 1, w - 1);
    var s = vec4<u32>();
    for (var t = lo >> 2u; t <= hi >> 2u && lo <= hi; t++) {
        let cols = vec4<i32>(t * 4) + vec4<i32>(0, 1, 2, 3);
        let v = select(vec4<u32>(), texel(rq + u32(t)), cols >= vec4<i32>(lo) & cols <= vec4<i32>(hi));
        let r = v & vec4<u32>(0xffu);
        let g = (v >> vec4<u32>(8u)) & vec4<u32>(0xffu);
        let b = v >> vec4<u32>(16u);
        s += vec4<u32>(r.x + r.y + r.z + r.w, g.x + g.y + g.z + g.w, b.x + b.y + b.z + b.w, 0u);
    }
    return acc + sx.wi * vec4<f32>(s);
}

// area() for all 4 channels of output pixel (oy, ox) from packed image b: the window's first and last
// rows take their weights, those between share one and are added before it is applied.
fn area4(oy: u32, ox: u32, b: u32, x0: i32, y0: i32, cw: u32, chh: u32) -> vec4<f32> {
    let shrink = p.oh <= chh && p.ow <= cw;
    let sy = span(oy, chh, p.oh, shrink);
    let sx = span(ox, cw, p.ow, shrink);
    let first = y0 + i32(sy.first);
    let last = y0 + i32(sy.last);
    let h = i32(p.h);
    // Texel of column 0 of image row r: (b * h + r) * texels per row.
    let row_texels = (p.w + 3u) / 4u;
    var acc = vec4<f32>();
    if (first >= 0 && first < h) {
        acc = sy.wf * area_row((b * p.h + u32(first)) * row_texels, sx, x0);
    }
    if (last != first && last >= 0 && last < h) {
        acc += sy.wl * area_row((b * p.h + u32(last)) * row_texels, sx, x0);
    }
    var inner = vec4<f32>();
    for (var r = max(first + 1, 0); r <= min(last - 1, h - 1); r++) {
        inner += area_row((b * p.h + u32(r)) * row_texels, sx, x0);
    }
    acc += sy.wi * inner;
    return (select(acc, round(acc), p.round != 0u) + p.add) * p.mul;
}

@compute @workgroup_size(64)
fn resize_area(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n * p.oh * p.ow * p.c) {
        let o = out_index(i);
        put(i, area(o, o.b, 0, 0, p.w, p.h));
    }
}

@compute @workgroup_size(64)
fn resize_area_rgb8(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n * p.rows * p.ow) {
        let pix = i % (p.rows * p.ow);
        y[i] = area4(p.row0 + pix / p.ow, pix % p.ow, i / (p.rows * p.ow), 0, 0, p.w, p.h);
    }
}

@compute @workgroup_size(64)
fn crop_resize_area(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n * p.oh * p.ow * p.c) {
        let o = out_index(i);
        let bx = o.b * 5u;
        put(i, area(o, u32(boxes[bx]), boxes[bx + 1u], boxes[bx + 2u], u32(max(boxes[bx + 3u], 1)), u32(max(boxes[bx + 4u], 1))));
    }
}

@compute @workgroup_size(64)
fn crop_resize_area_rgb8(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n * p.oh * p.ow) {
        let bx = (i / (p.oh * p.ow)) * 5u;
        let pix = i % (p.oh * p.ow);
        y[i] = area4(pix / p.ow, pix % p.ow, u32(boxes[bx]), boxes[bx + 1u], boxes[bx + 2u], u32(max(boxes[bx + 3u], 1)), u32(max(boxes[bx + 4u], 1)));
    }
}

@compute @workgroup_size(64)
fn crop_pad(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n * p.oh * p.ow * p.c) {
        return;
    }
    let o = out_index(i);
    let iy = i32(o.oy) + p.y0;
    let ix = i32(o.ox) + p.x0;
    var v = 0.0;
    if (iy >= 0 && iy < i32(p.h) && ix >= 0 && ix < i32(p.w)) {
        v = at(o.b, u32(iy), u32(ix), o.ch);
    }
    put(i, v);
}

@compute @workgroup_size(64)
fn flip_h(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n * p.oh * p.ow * p.c) {
        return;
    }
    let o = out_index(i);
    put(i, at(o.b, o.oy, p.w - 1u - o.ox, o.ch));
}

@compute @workgroup_size(64)
fn fixed_standardize(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n * p.h * p.w * p.c) {
        put(i, (xs(i) - 127.5) / 128.0);
    }
}

var<workgroup> part: array<f32, 64>;

fn reduce(t: u32) -> f32 {
    workgroupBarrier();
    for (var s = 32u; s > 0u; s >>= 1u) {
        if (t < s) {
            part[t] += part[t + s];
        }
        workgroupBarrier();
    }
    let total = part[0];
    workgroupBarrier();
    return total;
}

// One workgroup per image: stats[b] = (mean, max(std, 1/sqrt(size))).
@compute @workgroup_size(64)
fn prewhiten_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let size = p.h * p.w * p.c;
    let base = wg.x * size;
    var s = 0.0;
    for (var k = t; k < size; k += 64u) {
        s += xs(base + k);
    }
    part[t] = s;
    let mean = reduce(t) / f32(size);
    var q = 0.0;
    for (var k = t; k < size; k += 64u) {
        let d = xs(base + k) - mean;
        q += d * d;
    }
    part[t] = q;
    let sd = sqrt(reduce(t) / f32(size));
    if (t == 0u) {
        stats[wg.x * 2u] = mean;
        stats[wg.x * 2u + 1u] = max(sd, 1.0 / sqrt(f32(size)));
    }
}

@compute @workgroup_size(64)
fn prewhiten_apply(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    let size = p.h * p.w * p.c;
    if (i < p.n * size) {
        let b = i / size;
        put(i, (xs(i) - stats[b * 2u]) / stats[b * 2u + 1u]);
    }
}
