//! Training's building blocks: Inception-ResNet-v1 on the tape ([`net`]), optimizers over a
//! [`ParamStore`](crate::tape::ParamStore) and the weights' moving average, TensorBoard events. The
//! `train` workflow is [`crate::workflows::train`].

pub mod events;
pub mod net;
mod optimizer;

pub use optimizer::{Ema, Optimizer};
