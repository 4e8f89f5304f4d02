// 2-D pooling over NHWC.
//
// max_pool:        y[n,oy,ox,c] = max over the window of x (taps outside the image ignored);
//                  argmax[n,oy,ox,c] = flat index into x of the first maximum (flags & 2: saved for backward);
//                  flags & 4 (here and in the backward): c is a multiple of 4, four channels per
//                  invocation as vec4s
// avg_pool:        y = mean over the window's in-image taps (TF: padding is not counted)
// global_avg_pool: y[n,c] = mean over h, w of x[n,:,:,c]
//
// Backward, gathered per input element (no two invocations write one element; x = dy, y = dx; dx is
// added to when flags & 1; max and average take 4 elements per invocation):
// max_pool_backward:        dx[i] (+)= sum of dy[o] over the windows o containing i with argmax[o] == i
// avg_pool_backward:        dx[i] (+)= sum of dy[o] / count(o) over the windows o containing i
// global_avg_pool_backward: dx[n,y,x,c] (+)= dy[n,c] / (h*w)

struct Params {
    n: u32, h: u32, w: u32, c: u32,
    oh: u32, ow: u32, kh: u32, kw: u32,
    sh: u32, sw: u32, pad_top: u32, pad_left: u32,
    flags: u32, tshift: u32, _p1: u32, _p2: u32,
}

// FLAGS is the params' `flags`, compiled into each pipeline (src/gpu/encoder.rs `flags`): CPU drivers run
// both sides of every branch under a lane mask, so a branch on the uniform would cost the paths not taken.
override FLAGS: u32;

@group(0) @binding(0) var<uniform> p: Params;
// Buffers are vec4 arrays (padded to 16 bytes) so that the backward can take 4 channels at once.
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;            // [n, h, w, c]
@group(0) @binding(2) var<storage, read_write> y: array<vec4<f32>>;      // [n, oh, ow, c]
@group(0) @binding(3) var<storage, read_write> argmax: array<vec4<u32>>; // [n, oh, ow, c] (max_pool)
// x again, as rgba32f texels (vec4 q at (q & (2^tshift - 1), q >> tshift)), for max_pool where c is a
// multiple of 4: a texture load costs about half a buffer load on llvmpipe (GpuContext::staging_texture).
@group(0) @binding(4) var xt: texture_storage_2d<rgba32float, read>;

fn xs(i: u32) -> f32 {
    return x[i >> 2u][i & 3u];
}

fn put_y(i: u32, v: f32) {
    y[i >> 2u][i & 3u] = v;
}

struct Window { base: u32, y0: i32, x0: i32, ch: u32 }

fn window(i: u32) -> Window {
    let ch = i % p.c;
    let pix = i / p.c;
    let ox = pix % p.ow;
    let oy = (pix / p.ow) % p.oh;
    let b = pix / (p.ow * p.oh);
    return Window(b * p.h * p.w * p.c, i32(oy * p.sh) - i32(p.pad_top), i32(ox * p.sw) - i32(p.pad_left), ch);
}

@compute @workgroup_size(64)
fn max_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if ((FLAGS & 4u) != 0u) {
        // c a multiple of 4: four channels per invocation, as vec4s.
        if (i * 4u < p.n * p.oh * p.ow * p.c) {
            max_pool4(i);
        }
        return;
    }
    if (i >= p.n * p.oh * p.ow * p.c) {
        return;
    }
    let win = window(i);
    var best = -3.402823e38;
    var best_at = 0u;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = win.y0 + i32(ky);
        if (iy < 0 || iy >= i32(p.h)) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = win.x0 + i32(kx);
            if (ix < 0 || ix >= i32(p.w)) {
                continue;
            }
            let at = win.base + (u32(iy) * p.w + u32(ix)) * p.c + win.ch;
            let v = xs(at);
            if (v > best) {
                best = v;
                best_at = at;
            }
        }
    }
    put_y(i, best);
    if ((FLAGS & 2u) != 0u) {
        argmax[i >> 2u][i & 3u] = best_at;
    }
}

// max_pool of output elements 4*i4 .. 4*i4+3 (four channels of one window; c is a multiple of 4).
fn max_pool4(i4: u32) {
    let win = window(i4 * 4u);
    var best = vec4<f32>(-3.402823e38);
    var best_at = vec4<u32>();
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = win.y0 + i32(ky);
        if (iy < 0 || iy >= i32(p.h)) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = win.x0 + i32(kx);
            if (ix < 0 || ix >= i32(p.w)) {
                continue;
            }
            let at = win.base + (u32(iy) * p.w + u32(ix)) * p.c + win.ch;
            let q = at / 4u;
            let v = textureLoad(xt, vec2<u32>(q & ((1u << p.tshift) - 1u), q >> p.tshift));
            let better = v > best;
            best = select(best, v, better);
            best_at = select(best_at, at + vec4<u32>(0u, 1u, 2u, 3u), better);
        }
    }
    y[i4] = best;
    if ((FLAGS & 2u) != 0u) {
        argmax[i4] = best_at;
    }
}

@compute @workgroup_size(64)
fn avg_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= p.n * p.oh * p.ow * p.c) {
        return;
    }
    let win = window(i);
    var s = 0.0;
    var count = 0u;
    for (var ky = 0u; ky < p.kh; ky++) {
        let iy = win.y0 + i32(ky);
        if (iy < 0 || iy >= i32(p.h)) {
            continue;
        }
        for (var kx = 0u; kx < p.kw; kx++) {
            let ix = win.x0 + i32(kx);
            if (ix < 0 || ix >= i32(p.w)) {
                continue;
            }
            s += xs(win.base + (u32(iy) * p.w + u32(ix)) * p.c + win.ch);
            count += 1u;
        }
    }
    put_y(i, s / f32(max(count, 1u)));
}

@compute @workgroup_size(64)
fn global_avg_pool(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= p.n * p.c) {
        return;
    }
    let ch = i % p.c;
    let base = (i / p.c) * p.h * p.w * p.c;
    var s = 0.0;
    for (var q = 0u; q < p.h * p.w; q++) {
        s += xs(base + q * p.c + ch);
    }
    put_y(i, s / f32(p.h * p.w));
}

fn store_grad(i: u32, v: f32) {
    put_y(i, select(0.0, y[i >> 2u][i & 3u], (FLAGS & 1u) != 0u) + v);
}

// In-image taps of output window (oy, ox) along one axis: [lo, hi).
fn taps(o: u32, stride: u32, pad: u32, k: u32, extent: u32) -> u32 {
    let lo = max(i32(o * stride) - i32(pad), 0);
    let hi = min(i32(o * stride) - i32(pad) + i32(k), i32(extent));
    return u32(max(hi - lo, 0));
}

// The gradients of input elements 4*i4 .. 4*i4+3 (4 channels of one pixel when c is a multiple of 4,
// else 4 consecutive elements one by one): mode 0 max (argmax match), mode 1 average. The windows
// containing a pixel are the output rows oy with oy*sh - pad_top <= iy < oy*sh - pad_top + kh (and
// likewise columns), found with two divisions per axis (integer division is scalarized on CPU drivers).
fn pool_backward(i4: u32, mode: u32) {
    let total = p.n * p.h * p.w * p.c;
    if ((FLAGS & 4u) == 0u) {
        for (var e = i4 * 4u; e < min(i4 * 4u + 4u, total); e++) {
            store_grad(e, pool_grad(e, e % p.c, e / p.c, mode).x);
        }
        return;
    }
    let e = i4 * 4u;
    let v = pool_grad(e, e % p.c, e / p.c, mode);
    y[i4] = select(vec4<f32>(), y[i4], (FLAGS & 1u) != 0u) + v;
}

// Sum over the windows containing pixel `pix` of dy at channels ch.. (4 of them when c % 4 == 0, else
// component x only) of element e.
fn pool_grad(e: u32, ch: u32, pix: u32, mode: u32) -> vec4<f32> {
    let ix = pix % p.w;
    let iy = (pix / p.w) % p.h;
    let b = pix / (p.w * p.h);
    let ty = i32(iy + p.pad_top);
    let tx = i32(ix + p.pad_left);
    let oy_lo = u32(max(ty - i32(p.kh) + i32(p.sh), 0)) / p.sh;
    let ox_lo = u32(max(tx - i32(p.kw) + i32(p.sw), 0)) / p.sw;
    let oy_hi = min(u32(ty) / p.sh + 1u, p.oh);
    let ox_hi = min(u32(tx) / p.sw + 1u, p.ow);
    // The vec4 path (FLAGS & 4: c a multiple of 4), compiled in or out with the flags.
    let wide = (FLAGS & 4u) != 0u;
    let want = select(vec4<u32>(e, e, e, e), e + vec4<u32>(0u, 1u, 2u, 3u), wide);
    var s = vec4<f32>();
    for (var oy = oy_lo; oy < oy_hi; oy++) {
        for (var ox = ox_lo; ox < ox_hi; ox++) {
            let o = ((b * p.oh + oy) * p.ow + ox) * p.c + ch;
            var g: vec4<f32>;
            var am: vec4<u32>;
            if (wide) {
                g = x[o / 4u];
                am = argmax[o / 4u];
            } else {
                g = vec4<f32>(xs(o));
                am = vec4<u32>(argmax[o >> 2u][o & 3u]);
            }
            if (mode == 0u) {
                s += select(vec4<f32>(), g, am == want);
            } else {
                let count = taps(oy, p.sh, p.pad_top, p.kh, p.h) * taps(ox, p.sw, p.pad_left, p.kw, p.w);
                s += g / f32(max(count, 1u));
            }
        }
    }
    return s;
}

@compute @workgroup_size(64)
fn max_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i * 4u < p.n * p.h * p.w * p.c) {
        pool_backward(i, 0u);
    }
}

@compute @workgroup_size(64)
fn avg_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i * 4u < p.n * p.h * p.w * p.c) {
        pool_backward(i, 1u);
    }
}

@compute @workgroup_size(64)
fn global_avg_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i < p.n * p.h * p.w * p.c) {
        let o = (i / (p.h * p.w * p.c)) * p.c + i % p.c;
        store_grad(i, xs(o) / f32(p.h * p.w));
    }
}
