//! Training: optimizers over a [`ParamStore`](crate::tape::ParamStore) and the weights' moving average.

mod optimizer;

pub use optimizer::{Ema, Optimizer};
