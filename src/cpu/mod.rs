//! Plain-loop CPU twins of every GPU kernel, same file names and argument order as `crate::kernels`.
//! They are the reference the GPU tests compare against, and the fallback for tiny work.

pub mod batch_norm;
pub mod center_loss;
pub mod concat;
pub mod conv2d;
pub mod conv2d_backward;
pub mod elementwise;
pub mod image;
pub mod l2_normalize;
pub mod matmul;
pub mod optimizer;
pub mod pool;
pub mod reduce;
pub mod softmax;
pub mod triplet;
