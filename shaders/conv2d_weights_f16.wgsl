// conv2d_tiled.wgsl's weights in f16 (f16 inference): the HWIO tensor as half floats, two per word,
// the low half first, at binding 11 (binding 2 is unused).
@group(0) @binding(11) var<storage, read> wh: array<u32>;

fn weight(i: u32) -> f32 {
    return unpack2x16float(wh[i >> 1u])[i & 1u];
}
