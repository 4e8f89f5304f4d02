// The 8 pixels x 16 channels register tile shared by conv2d.wgsl and conv2d_backward.wgsl (appended to
// both by src/gpu/pipeline.rs; WGSL declarations may come in any order).
//
// c<r>_<h> is pixel r of the tile, channels 4h..4h+3 of its 16 (separate fields, not an array:
// a dynamically indexed array spills on llvmpipe).
struct Tile {
    c0_0: vec4<f32>, c0_1: vec4<f32>, c0_2: vec4<f32>, c0_3: vec4<f32>,
    c1_0: vec4<f32>, c1_1: vec4<f32>, c1_2: vec4<f32>, c1_3: vec4<f32>,
    c2_0: vec4<f32>, c2_1: vec4<f32>, c2_2: vec4<f32>, c2_3: vec4<f32>,
    c3_0: vec4<f32>, c3_1: vec4<f32>, c3_2: vec4<f32>, c3_3: vec4<f32>,
    c4_0: vec4<f32>, c4_1: vec4<f32>, c4_2: vec4<f32>, c4_3: vec4<f32>,
    c5_0: vec4<f32>, c5_1: vec4<f32>, c5_2: vec4<f32>, c5_3: vec4<f32>,
    c6_0: vec4<f32>, c6_1: vec4<f32>, c6_2: vec4<f32>, c6_3: vec4<f32>,
    c7_0: vec4<f32>, c7_1: vec4<f32>, c7_2: vec4<f32>, c7_3: vec4<f32>,
}

// One input channel: t += a (8 pixels' x, pixels 0-3 in a0 and 4-7 in a1) outer b (16 channels' w).
fn fma8(t: ptr<function, Tile>, a0: vec4<f32>, a1: vec4<f32>, b0: vec4<f32>, b1: vec4<f32>, b2: vec4<f32>, b3: vec4<f32>) {
    (*t).c0_0 = fma(vec4<f32>(a0.x), b0, (*t).c0_0); (*t).c0_1 = fma(vec4<f32>(a0.x), b1, (*t).c0_1); (*t).c0_2 = fma(vec4<f32>(a0.x), b2, (*t).c0_2); (*t).c0_3 = fma(vec4<f32>(a0.x), b3, (*t).c0_3);
    (*t).c1_0 = fma(vec4<f32>(a0.y), b0, (*t).c1_0); (*t).c1_1 = fma(vec4<f32>(a0.y), b1, (*t).c1_1); (*t).c1_2 = fma(vec4<f32>(a0.y), b2, (*t).c1_2); (*t).c1_3 = fma(vec4<f32>(a0.y), b3, (*t).c1_3);
    (*t).c2_0 = fma(vec4<f32>(a0.z), b0, (*t).c2_0); (*t).c2_1 = fma(vec4<f32>(a0.z), b1, (*t).c2_1); (*t).c2_2 = fma(vec4<f32>(a0.z), b2, (*t).c2_2); (*t).c2_3 = fma(vec4<f32>(a0.z), b3, (*t).c2_3);
    (*t).c3_0 = fma(vec4<f32>(a0.w), b0, (*t).c3_0); (*t).c3_1 = fma(vec4<f32>(a0.w), b1, (*t).c3_1); (*t).c3_2 = fma(vec4<f32>(a0.w), b2, (*t).c3_2); (*t).c3_3 = fma(vec4<f32>(a0.w), b3, (*t).c3_3);
    (*t).c4_0 = fma(vec4<f32>(a1.x), b0, (*t).c4_0); (*t).c4_1 = fma(vec4<f32>(a1.x), b1, (*t).c4_1); (*t).c4_2 = fma(vec4<f32>(a1.x), b2, (*t).c4_2); (*t).c4_3 = fma(vec4<f32>(a1.x), b3, (*t).c4_3);
    (*t).c5_0 = fma(vec4<f32>(a1.y), b0, (*t).c5_0); (*t).c5_1 = fma(vec4<f32>(a1.y), b1, (*t).c5_1); (*t).c5_2 = fma(vec4<f32>(a1.y), b2, (*t).c5_2); (*t).c5_3 = fma(vec4<f32>(a1.y), b3, (*t).c5_3);
    (*t).c6_0 = fma(vec4<f32>(a1.z), b0, (*t).c6_0); (*t).c6_1 = fma(vec4<f32>(a1.z), b1, (*t).c6_1); (*t).c6_2 = fma(vec4<f32>(a1.z), b2, (*t).c6_2); (*t).c6_3 = fma(vec4<f32>(a1.z), b3, (*t).c6_3);
    (*t).c7_0 = fma(vec4<f32>(a1.w), b0, (*t).c7_0); (*t).c7_1 = fma(vec4<f32>(a1.w), b1, (*t).c7_1); (*t).c7_2 = fma(vec4<f32>(a1.w), b2, (*t).c7_2); (*t).c7_3 = fma(vec4<f32>(a1.w), b3, (*t).c7_3);
}
