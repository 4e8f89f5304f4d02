//! Building blocks shared by the networks: an activation arena reused across forward passes, and
//! conv layers loaded by TF scope name.

mod arena;
mod conv;

pub use arena::Arena;
pub use conv::{Conv, ConvKind, Scope};
