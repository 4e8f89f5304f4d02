use super::{GpuContext, GpuTensor};

/// Activation buffers handed out in call order and reused by the next pass, so memory after many batches
/// equals memory after the first (no per-batch growth). A buffer is reused for any shape that fits in it
/// (a smaller last batch, a smaller pyramid scale); only a larger one replaces it.
#[derive(Default)]
pub struct Arena {
    buffers: Vec<GpuTensor>,
    next: usize,
}

impl Arena {
    /// Starts a new pass: buffers are handed out again from the first.
    pub fn reset(&mut self) {
        self.next = 0;
    }

    fn take_with(&mut self, ctx: &GpuContext, label: &str, shape: &[usize], u32s: bool) -> GpuTensor {
        let i = self.next;
        self.next += 1;
        if let Some(t) = self.buffers.get(i) {
            if t.len() >= shape.iter().product::<usize>() && (t.dtype == crate::gpu::DType::U32) == u32s {
                return GpuTensor { shape: shape.to_vec(), ..t.clone() };
            }
        }
        let t = if u32s { GpuTensor::zeros_u32(ctx, label, shape) } else { GpuTensor::zeros(ctx, label, shape) };
        if i < self.buffers.len() {
            self.buffers[i] = t.clone();
        } else {
            self.buffers.push(t.clone());
        }
        t
    }

    /// The next f32 buffer of `shape`.
    pub fn take(&mut self, ctx: &GpuContext, label: &str, shape: &[usize]) -> GpuTensor {
        self.take_with(ctx, label, shape, false)
    }

    /// The next u32 buffer of `shape`.
    pub fn take_u32(&mut self, ctx: &GpuContext, label: &str, shape: &[usize]) -> GpuTensor {
        self.take_with(ctx, label, shape, true)
    }

    /// Bytes held by all buffers (their capacity).
    pub fn bytes(&self) -> usize {
        self.buffers.iter().map(|t| t.len() * 4).sum()
    }
}
