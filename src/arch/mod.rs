//! Network descriptions as data: each network's layers with facenet's TF scope names, kernel sizes,
//! channels, strides and block scales, written once. The GPU inference model (`models`), the training
//! net on the tape (`train::net`) and any other backend build their layers by walking these tables, so
//! the variable names a checkpoint holds and the shapes each path expects cannot drift apart.
//!
//! This layer imports only [`crate::ops`].

pub mod inception_resnet_v1;

use crate::ops::conv2d::Padding;

/// One conv of a chain: conv (no bias) -> batch norm (beta, no gamma) -> ReLU, slim's `conv2d` under
/// facenet's arg_scope. `name` is its TF scope below the enclosing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvLayer {
    pub name: &'static str,
    /// (height, width) of the kernel.
    pub k: (usize, usize),
    pub cout: usize,
    pub stride: usize,
    pub padding: Padding,
}

/// One branch of an Inception block: its scope (`Branch_0`, ...) and its chain of convs.
#[derive(Debug, Clone, Copy)]
pub struct Branch {
    pub scope: &'static str,
    pub convs: &'static [ConvLayer],
}

impl Branch {
    /// Channels this branch outputs.
    pub fn out_channels(&self) -> usize {
        self.convs.last().map_or(0, |c| c.cout)
    }
}
