//! Building blocks of the GPU inference models: conv layers loaded by TF scope name, with their
//! batch norms folded.

mod conv;

pub use conv::{Conv, ConvKind, HostConv, Scope};
