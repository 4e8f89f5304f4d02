//! The commands: each file is one workflow built from the layers below (models, training net, data,
//! evaluation), and reports progress through [`crate::progress`] rather than printing.

mod error;

pub mod align;
pub mod bench;
pub mod classify;
pub mod cluster;
pub mod demo;
pub mod detect;
pub mod embed;
pub mod eval;
pub mod filter;
pub mod recognize;
pub mod train;

pub(crate) use error::invalid;
pub use error::Error;
