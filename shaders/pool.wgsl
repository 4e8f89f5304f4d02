// 2-D pooling over NHWC.
//
// max_pool:        y[n,oy,ox,c] = max over the window of x (taps outside the image ignored);
//                  argmax[n,oy,ox,c] = flat index into x of the first maximum (saved for backward)
// avg_pool:        y = mean over the window's in-image taps (TF: padding is not counted)
// global_avg_pool: y[n,c] = mean over h, w of x[n,:,:,c]

struct Params {
    n: u32, h: u32, w: u32, c: u32,
    oh: u32, ow: u32, kh: u32, kw: u32,
    sh: u32, sw: u32, pad_top: u32, pad_left: u32,
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
