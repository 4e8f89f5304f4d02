// Declarations and helpers shared by the backward of conv2d (NHWC x HWIO) and of its fused epilogue:
// conv2d_epilogue_backward.wgsl, conv2d_grad_input.wgsl (the data gradient) and conv2d_grad_weight.wgsl
// (the weight gradient). The forward is conv2d.wgsl.
//
// Forward, per output element (m = flattened n,oy,ox; o = output channel):
//   v = conv(x, w)[m,o] + bias[o];  t = v*scale[o] + shift[o];  u = residual[m,o] + res_scale*t;  y = act(u)
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
