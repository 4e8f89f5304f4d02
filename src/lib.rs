//! facegpu: FaceNet (Inception-ResNet-v1 embeddings, MTCNN) on hand-written WGSL kernels run through wgpu.
//!
//! Layout: [`gpu`] (context, buffers, pipeline cache, encoder), [`kernels`] (one Rust file per WGSL
//! shader), [`cpu`] (their plain-loop twins), [`bench`] (`facegpu bench`).

mod api;
pub mod arch;
pub mod checkpoint;
pub mod cpu;
pub mod data;
pub mod eval;
pub mod gpu;
pub mod kernels;
pub mod models;
pub mod nn;
pub mod ops;
pub mod progress;
pub mod simd;
pub mod tape;
pub mod train;
pub mod workflows;

pub use api::{
    distance, evaluate, open_gpu, open_image, read_pairs, DetectOptions, DistanceMetric, Error, Face, FaceDetector, FaceNet, Pair, Pairs,
    Standardization, Verification,
};
