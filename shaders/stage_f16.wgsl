// The GPU-shaped kernels' staging precision (gemm_tiles.wgsl) for f16 inference, on adapters with
// SHADER_F16: this file comes first in the module (an `enable` precedes every declaration).
enable f16;
alias Stage = f16;
