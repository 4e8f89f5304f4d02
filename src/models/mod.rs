//! The networks, built from the GPU kernels with the checkpoint's scope names.

pub mod inception_resnet_v1;
pub mod mtcnn;
