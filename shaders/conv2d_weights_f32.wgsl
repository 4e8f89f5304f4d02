// conv2d_tiled.wgsl's weights in f32: the HWIO tensor at binding 2.
fn weight(i: u32) -> f32 {
    return ws(i);
}
