//! Building blocks shared by the networks: an activation arena reused across forward passes, and
//! conv layers loaded by TF scope name.

mod conv;

pub use conv::{Conv, ConvKind, Scope};

use crate::kernels::conv2d::Padding;

/// One conv of a chain as facenet's network definition names it: (scope name, kernel, output channels,
/// stride, padding).
pub type LayerSpec<'a> = (&'a str, (usize, usize), usize, usize, Padding);

/// The branches of an Inception block: (branch scope, its chain of convs).
pub type BranchSpec<'a> = (&'a str, &'a [LayerSpec<'a>]);
