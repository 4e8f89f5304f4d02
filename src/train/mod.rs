//! Training: Inception-ResNet-v1 on the tape ([`net`]), the `train` workflow ([`run`]), optimizers over a
//! [`ParamStore`](crate::tape::ParamStore) and the weights' moving average.

pub mod events;
pub mod net;
mod optimizer;

pub use optimizer::{Ema, Optimizer};
