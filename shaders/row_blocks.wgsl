// The row blocks of the batch-norm kernels' vec4 paths (appended to batch_norm.wgsl,
// batch_norm_backward.wgsl and batch_norm_stats.wgsl by src/gpu/pipeline.rs; each declares a Params `p`
// with rows, c, blocks and block_rows). With c a multiple of 4, invocation i takes channel group
// g = i % (c/4) of rows [first, end), block b = i / (c/4) of p.blocks blocks of p.block_rows rows (set by
// set_blocks in src/kernels/batch_norm.rs): neighbouring invocations take neighbouring vec4s of a row.
// They read x through the staging texture (xv; p.tshift is its row shift): a texture load is a gather on
// CPU drivers where a storage load is a loop over the lanes per component.
struct RowBlock { valid: bool, g: u32, b: u32, c4: u32, first: u32, end: u32 }

fn row_block(gid: vec3<u32>, nwg: vec3<u32>) -> RowBlock {
    let i = gid.y * nwg.x * 64u + gid.x;
    let c4 = p.c / 4u;
    let b = i / c4;
    return RowBlock(i < p.blocks * c4, i % c4, b, c4, b * p.block_rows, min((b + 1u) * p.block_rows, p.rows));
}

@group(0) @binding(12) var xt: texture_storage_2d<rgba32float, read>;

// Vec4 q of x (x's [rows, c] as vec4s).
fn xv(q: u32) -> vec4<f32> {
    return textureLoad(xt, vec2<u32>(q & ((1u << p.tshift) - 1u), q >> p.tshift));
}
