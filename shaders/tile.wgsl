// The 8 pixels x 16 channels register tile shared by the conv2d shaders (forward and backward) (appended to
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
// Four input channels at once: t += x<r> (pixel r's 4 channels) times w<j>_<h> (channel j's weights for
// output channels 4h..4h+3), each accumulator taking its 4 products in a row.
fn fma8x4(t: ptr<function, Tile>, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>, x4: vec4<f32>, x5: vec4<f32>, x6: vec4<f32>, x7: vec4<f32>, w: W16) {
    (*t).c0_0 = fma(vec4<f32>(x0.w), w.w3_0, fma(vec4<f32>(x0.z), w.w2_0, fma(vec4<f32>(x0.y), w.w1_0, fma(vec4<f32>(x0.x), w.w0_0, (*t).c0_0))));
    (*t).c0_1 = fma(vec4<f32>(x0.w), w.w3_1, fma(vec4<f32>(x0.z), w.w2_1, fma(vec4<f32>(x0.y), w.w1_1, fma(vec4<f32>(x0.x), w.w0_1, (*t).c0_1))));
    (*t).c0_2 = fma(vec4<f32>(x0.w), w.w3_2, fma(vec4<f32>(x0.z), w.w2_2, fma(vec4<f32>(x0.y), w.w1_2, fma(vec4<f32>(x0.x), w.w0_2, (*t).c0_2))));
    (*t).c0_3 = fma(vec4<f32>(x0.w), w.w3_3, fma(vec4<f32>(x0.z), w.w2_3, fma(vec4<f32>(x0.y), w.w1_3, fma(vec4<f32>(x0.x), w.w0_3, (*t).c0_3))));
    (*t).c1_0 = fma(vec4<f32>(x1.w), w.w3_0, fma(vec4<f32>(x1.z), w.w2_0, fma(vec4<f32>(x1.y), w.w1_0, fma(vec4<f32>(x1.x), w.w0_0, (*t).c1_0))));
    (*t).c1_1 = fma(vec4<f32>(x1.w), w.w3_1, fma(vec4<f32>(x1.z), w.w2_1, fma(vec4<f32>(x1.y), w.w1_1, fma(vec4<f32>(x1.x), w.w0_1, (*t).c1_1))));
    (*t).c1_2 = fma(vec4<f32>(x1.w), w.w3_2, fma(vec4<f32>(x1.z), w.w2_2, fma(vec4<f32>(x1.y), w.w1_2, fma(vec4<f32>(x1.x), w.w0_2, (*t).c1_2))));
    (*t).c1_3 = fma(vec4<f32>(x1.w), w.w3_3, fma(vec4<f32>(x1.z), w.w2_3, fma(vec4<f32>(x1.y), w.w1_3, fma(vec4<f32>(x1.x), w.w0_3, (*t).c1_3))));
    (*t).c2_0 = fma(vec4<f32>(x2.w), w.w3_0, fma(vec4<f32>(x2.z), w.w2_0, fma(vec4<f32>(x2.y), w.w1_0, fma(vec4<f32>(x2.x), w.w0_0, (*t).c2_0))));
    (*t).c2_1 = fma(vec4<f32>(x2.w), w.w3_1, fma(vec4<f32>(x2.z), w.w2_1, fma(vec4<f32>(x2.y), w.w1_1, fma(vec4<f32>(x2.x), w.w0_1, (*t).c2_1))));
    (*t).c2_2 = fma(vec4<f32>(x2.w), w.w3_2, fma(vec4<f32>(x2.z), w.w2_2, fma(vec4<f32>(x2.y), w.w1_2, fma(vec4<f32>(x2.x), w.w0_2, (*t).c2_2))));
    (*t).c2_3 = fma(vec4<f32>(x2.w), w.w3_3, fma(vec4<f32>(x2.z), w.w2_3, fma(vec4<f32>(x2.y), w.w1_3, fma(vec4<f32>(x2.x), w.w0_3, (*t).c2_3))));
    (*t).c3_0 = fma(vec4<f32>(x3.w), w.w3_0, fma(vec4<f32>(x3.z), w.w2_0, fma(vec4<f32>(x3.y), w.w1_0, fma(vec4<f32>(x3.x), w.w0_0, (*t).c3_0))));
    (*t).c3_1 = fma(vec4<f32>(x3.w), w.w3_1, fma(vec4<f32>(x3.z), w.w2_1, fma(vec4<f32>(x3.y), w.w1_1, fma(vec4<f32>(x3.x), w.w0_1, (*t).c3_1))));
    (*t).c3_2 = fma(vec4<f32>(x3.w), w.w3_2, fma(vec4<f32>(x3.z), w.w2_2, fma(vec4<f32>(x3.y), w.w1_2, fma(vec4<f32>(x3.x), w.w0_2, (*t).c3_2))));
    (*t).c3_3 = fma(vec4<f32>(x3.w), w.w3_3, fma(vec4<f32>(x3.z), w.w2_3, fma(vec4<f32>(x3.y), w.w1_3, fma(vec4<f32>(x3.x), w.w0_3, (*t).c3_3))));
    (*t).c4_0 = fma(vec4<f32>(x4.w), w.w3_0, fma(vec4<f32>(x4.z), w.w2_0, fma(vec4<f32>(x4.y), w.w1_0, fma(vec4<f32>(x4.x), w.w0_0, (*t).c4_0))));
    (*t).c4_1 = fma(vec4<f32>(x4.w), w.w3_1, fma(vec4<f32>(x4.z), w.w2_1, fma(vec4<f32>(x4.y), w.w1_1, fma(vec4<f32>(x4.x), w.w0_1, (*t).c4_1))));
    (*t).c4_2 = fma(vec4<f32>(x4.w), w.w3_2, fma(vec4<f32>(x4.z), w.w2_2, fma(vec4<f32>(x4.y), w.w1_2, fma(vec4<f32>(x4.x), w.w0_2, (*t).c4_2))));
    (*t).c4_3 = fma(vec4<f32>(x4.w), w.w3_3, fma(vec4<f32>(x4.z), w.w2_3, fma(vec4<f32>(x4.y), w.w1_3, fma(vec4<f32>(x4.x), w.w0_3, (*t).c4_3))));
    (*t).c5_0 = fma(vec4<f32>(x5.w), w.w3_0, fma(vec4<f32>(x5.z), w.w2_0, fma(vec4<f32>(x5.y), w.w1_0, fma(vec4<f32>(x5.x), w.w0_0, (*t).c5_0))));
    (*t).c5_1 = fma(vec4<f32>(x5.w), w.w3_1, fma(vec4<f32>(x5.z), w.w2_1, fma(vec4<f32>(x5.y), w.w1_1, fma(vec4<f32>(x5.x), w.w0_1, (*t).c5_1))));
    (*t).c5_2 = fma(vec4<f32>(x5.w), w.w3_2, fma(vec4<f32>(x5.z), w.w2_2, fma(vec4<f32>(x5.y), w.w1_2, fma(vec4<f32>(x5.x), w.w0_2, (*t).c5_2))));
    (*t).c5_3 = fma(vec4<f32>(x5.w), w.w3_3, fma(vec4<f32>(x5.z), w.w2_3, fma(vec4<f32>(x5.y), w.w1_3, fma(vec4<f32>(x5.x), w.w0_3, (*t).c5_3))));
    (*t).c6_0 = fma(vec4<f32>(x6.w), w.w3_0, fma(vec4<f32>(x6.z), w.w2_0, fma(vec4<f32>(x6.y), w.w1_0, fma(vec4<f32>(x6.x), w.w0_0, (*t).c6_0))));
    (*t).c6_1 = fma(vec4<f32>(x6.w), w.w3_1, fma(vec4<f32>(x6.z), w.w2_1, fma(vec4<f32>(x6.y), w.w1_1, fma(vec4<f32>(x6.x), w.w0_1, (*t).c6_1))));
    (*t).c6_2 = fma(vec4<f32>(x6.w), w.w3_2, fma(vec4<f32>(x6.z), w.w2_2, fma(vec4<f32>(x6.y), w.w1_2, fma(vec4<f32>(x6.x), w.w0_2, (*t).c6_2))));
    (*t).c6_3 = fma(vec4<f32>(x6.w), w.w3_3, fma(vec4<f32>(x6.z), w.w2_3, fma(vec4<f32>(x6.y), w.w1_3, fma(vec4<f32>(x6.x), w.w0_3, (*t).c6_3))));
    (*t).c7_0 = fma(vec4<f32>(x7.w), w.w3_0, fma(vec4<f32>(x7.z), w.w2_0, fma(vec4<f32>(x7.y), w.w1_0, fma(vec4<f32>(x7.x), w.w0_0, (*t).c7_0))));
    (*t).c7_1 = fma(vec4<f32>(x7.w), w.w3_1, fma(vec4<f32>(x7.z), w.w2_1, fma(vec4<f32>(x7.y), w.w1_1, fma(vec4<f32>(x7.x), w.w0_1, (*t).c7_1))));
    (*t).c7_2 = fma(vec4<f32>(x7.w), w.w3_2, fma(vec4<f32>(x7.z), w.w2_2, fma(vec4<f32>(x7.y), w.w1_2, fma(vec4<f32>(x7.x), w.w0_2, (*t).c7_2))));
    (*t).c7_3 = fma(vec4<f32>(x7.w), w.w3_3, fma(vec4<f32>(x7.z), w.w2_3, fma(vec4<f32>(x7.y), w.w1_3, fma(vec4<f32>(x7.x), w.w0_3, (*t).c7_3))));
}

// The weights of 4 input channels x 16 output channels: w<j>_<h> is channel j's, outputs 4h..4h+3.
struct W16 {
    w0_0: vec4<f32>, w0_1: vec4<f32>, w0_2: vec4<f32>, w0_3: vec4<f32>,
    w1_0: vec4<f32>, w1_1: vec4<f32>, w1_2: vec4<f32>, w1_3: vec4<f32>,
    w2_0: vec4<f32>, w2_1: vec4<f32>, w2_2: vec4<f32>, w2_3: vec4<f32>,
    w3_0: vec4<f32>, w3_1: vec4<f32>, w3_2: vec4<f32>, w3_3: vec4<f32>,
}
