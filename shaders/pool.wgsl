// 2-D pooling over NHWC.
//
// max_pool:        y[n,oy,ox,c] = max over the window of x (taps outside the image ignored);
//                  argmax[n,oy,ox,c] = flat index into x of the first maximum (saved for backward)
// avg_pool:        y = mean over the window's in-image taps (TF: padding is not counted)
// global_avg_pool: y[n,c] = mean over h, w of x[n,:,:,c]
//
// Backward, gathered per input element (no two invocations write one element; x = dy, y = dx; dx is
// added to when flags & 1):
// max_pool_backward:        dx[i] (+)= sum of dy[o] over the windows o containing i with argmax[o] == i
// avg_pool_backward:        dx[i] (+)= sum of dy[o] / count(o) over the windows o containing i
// global_avg_pool_backward: dx[n,y,x,c] (+)= dy[n,c] / (h*w)

struct Params {
    n: u32, h: u32, w: u32, c: u32,
    oh: u32, ow: u32, kh: u32, kw: u32,
    sh: u32, sw: u32, pad_top: u32, pad_left: u32,
    flags: u32, _p0: u32, _p1: u32, _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;               // [n, h, w, c]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;         // [n, oh, ow, c]
@group(0) @binding(3) var<storage, read_write> argmax: array<u32>;    // [n, oh, ow, c] (max_pool)

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
            let v = x[at];
            if (v > best) {
                best = v;
                best_at = at;
            }
        }
    }
    y[i] = best;
    argmax[i] = best_at;
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
            s += x[win.base + (u32(iy) * p.w + u32(ix)) * p.c + win.ch];
            count += 1u;
        }
    }
    y[i] = s / f32(max(count, 1u));
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
        s += x[base + q * p.c + ch];
    }
    y[i] = s / f32(p.h * p.w);
}

fn store_grad(i: u32, v: f32) {
    y[i] = select(0.0, y[i], (p.flags & 1u) != 0u) + v;
}

// In-image taps of output window (oy, ox) along one axis: [lo, hi).
fn taps(o: u32, stride: u32, pad: u32, k: u32, extent: u32) -> u32 {
    let lo = max(i32(o * stride) - i32(pad), 0);
    let hi = min(i32(o * stride) - i32(pad) + i32(k), i32(extent));
    return u32(max(hi - lo, 0));
}

// The gradient of input element i: mode 0 max (argmax match), mode 1 average.
fn pool_backward(i: u32, mode: u32) {
    let ch = i % p.c;
    let pix = i / p.c;
    let ix = i32(pix % p.w);
    let iy = i32((pix / p.w) % p.h);
    let b = pix / (p.w * p.h);
    var s = 0.0;
    for (var ky = 0u; ky < p.kh; ky++) {
        let ny = iy + i32(p.pad_top) - i32(ky);
        if (ny < 0 || ny % i32(p.sh) != 0 || ny / i32(p.sh) >= i32(p.oh)) {
            continue;
        }
        let oy = u32(ny) / p.sh;
        for (var kx = 0u; kx < p.kw; kx++) {
            let nx = ix + i32(p.pad_left) - i32(kx);
            if (nx < 0 || nx % i32(p.sw) != 0 || nx / i32(p.sw) >= i32(p.ow)) {
                continue;
            }
            let ox = u32(nx) / p.sw;
            let o = ((b * p.oh + oy) * p.ow + ox) * p.c + ch;
            if (mode == 0u) {
                if (argmax[o] == i) {
                    s += x[o];
                }
            } else {
                let count = taps(oy, p.sh, p.pad_top, p.kh, p.h) * taps(ox, p.sw, p.pad_left, p.kw, p.w);
                s += x[o] / f32(max(count, 1u));
            }
        }
    }
    store_grad(i, s);
}

@compute @workgroup_size(64)
fn max_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i < p.n * p.h * p.w * p.c) {
        pool_backward(i, 0u);
    }
}

@compute @workgroup_size(64)
fn avg_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i < p.n * p.h * p.w * p.c) {
        pool_backward(i, 1u);
    }
}

@compute @workgroup_size(64)
fn global_avg_pool_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i < p.n * p.h * p.w * p.c) {
        let o = (i / (p.h * p.w * p.c)) * p.c + i % p.c;
        store_grad(i, x[o] / f32(p.h * p.w));
    }
}
