// The 1-D index of an invocation of a `@workgroup_size(64)` dispatch, which folds into y past 65535
// workgroups (src/gpu/encoder.rs groups_1d). Appended by src/gpu/pipeline.rs to the shaders that use it.
fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * 64u + gid.x;
}
