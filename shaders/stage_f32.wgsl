// The GPU-shaped kernels' staging precision (gemm_tiles.wgsl): f32, the default.
alias Stage = f32;
