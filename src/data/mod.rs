//! Input and output files: images and `.npy` arrays.

pub mod dataset;
pub mod images;
pub mod npy;
