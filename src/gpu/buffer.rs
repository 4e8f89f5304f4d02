use super::{GpuContext, GpuError};

/// Element type of a [`GpuTensor`]'s buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
    /// IEEE half floats, two per 32-bit word (the low half first): the f16 inference weights.
    F16,
}

impl DType {
    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
        }
    }
}

/// A shape plus a labelled storage buffer. Cloning shares the buffer.
#[derive(Debug, Clone)]
pub struct GpuTensor {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub buffer: wgpu::Buffer,
    pub label: String,
}

impl GpuTensor {
    fn alloc(ctx: &GpuContext, label: &str, shape: &[usize], dtype: DType) -> Self {
        // Padded to 16 bytes: kernels may read a buffer as an array of vec4s.
        let bytes = (shape.iter().product::<usize>() * dtype.bytes()).max(4).div_ceil(16) as u64 * 16;
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self { shape: shape.to_vec(), dtype, buffer, label: label.to_string() }
    }

    /// A zero-filled f32 tensor.
    pub fn zeros(ctx: &GpuContext, label: &str, shape: &[usize]) -> Self {
        Self::alloc(ctx, label, shape, DType::F32)
    }

    /// A zero-filled u32 tensor (labels, argmax indices, masks).
    pub fn zeros_u32(ctx: &GpuContext, label: &str, shape: &[usize]) -> Self {
        Self::alloc(ctx, label, shape, DType::U32)
    }

    pub fn upload(ctx: &GpuContext, label: &str, shape: &[usize], data: &[f32]) -> Result<Self, GpuError> {
        let t = Self::zeros(ctx, label, shape);
        t.write(ctx, data)?;
        Ok(t)
    }

    pub fn upload_u32(ctx: &GpuContext, label: &str, shape: &[usize], data: &[u32]) -> Result<Self, GpuError> {
        let t = Self::zeros_u32(ctx, label, shape);
        t.check_len("upload", data.len())?;
        if !data.is_empty() {
            ctx.queue.write_buffer(&t.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(t)
    }

    /// Uploads `data` rounded to f16 (round to nearest even; the f16 inference weights).
    pub fn upload_f16(ctx: &GpuContext, label: &str, shape: &[usize], data: &[f32]) -> Result<Self, GpuError> {
        let t = Self::alloc(ctx, label, shape, DType::F16);
        t.check_len("upload", data.len())?;
        let mut halves: Vec<u16> = data.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
        halves.resize(halves.len().next_multiple_of(2), 0);
        if !halves.is_empty() {
            ctx.queue.write_buffer(&t.buffer, 0, bytemuck::cast_slice(&halves));
        }
        Ok(t)
    }

    /// Overwrites the contents (same element count), reusing the buffer.
    pub fn write(&self, ctx: &GpuContext, data: &[f32]) -> Result<(), GpuError> {
        self.check_dtype("write", DType::F32)?;
        self.check_len("write", data.len())?;
        if !data.is_empty() {
            ctx.queue.write_buffer(&self.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    /// Overwrites the contents of a u32 tensor (same element count), reusing the buffer.
    pub fn write_u32(&self, ctx: &GpuContext, data: &[u32]) -> Result<(), GpuError> {
        self.check_len("write", data.len())?;
        if !data.is_empty() {
            ctx.queue.write_buffer(&self.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(())
    }

    fn check_dtype(&self, op: &'static str, want: DType) -> Result<(), GpuError> {
        if self.dtype != want {
            return Err(GpuError::Invalid { op, detail: format!("tensor '{}' holds {:?}, not {want:?}", self.label, self.dtype) });
        }
        Ok(())
    }

    fn check_len(&self, op: &'static str, n: usize) -> Result<(), GpuError> {
        if n != self.len() {
            return Err(GpuError::Shape {
                op,
                detail: format!("tensor '{}' of shape {:?} holds {} elements, data has {n}", self.label, self.shape, self.len()),
            });
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The same buffer seen with another shape of equal size.
    pub fn reshaped(&self, shape: &[usize]) -> Result<Self, GpuError> {
        if shape.iter().product::<usize>() != self.len() {
            return Err(GpuError::Shape {
                op: "reshape",
                detail: format!("tensor '{}' {:?} cannot be viewed as {shape:?}", self.label, self.shape),
            });
        }
        Ok(Self { shape: shape.to_vec(), ..self.clone() })
    }

    /// The first elements of the buffer seen with a smaller (or equal) shape: a short last batch in a
    /// buffer sized for a full one.
    pub fn prefix(&self, shape: &[usize]) -> Result<Self, GpuError> {
        let capacity = (self.buffer.size() / 4) as usize;
        if shape.iter().product::<usize>() > capacity {
            return Err(GpuError::Shape {
                op: "prefix",
                detail: format!("tensor '{}' holds {capacity} elements, {shape:?} needs more", self.label),
            });
        }
        Ok(Self { shape: shape.to_vec(), ..self.clone() })
    }

    fn read_bytes(&self, ctx: &GpuContext) -> Result<Vec<u8>, GpuError> {
        let size = (self.len() * 4) as u64;
        if size == 0 {
            return Ok(Vec::new());
        }
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback staging"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        enc.copy_buffer_to_buffer(&self.buffer, 0, &staging, 0, size);
        ctx.queue.submit([enc.finish()]);
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        ctx.sync()?;
        let err = |message: String| GpuError::Readback { label: self.label.clone(), message };
        rx.recv().map_err(|e| err(e.to_string()))?.map_err(|e| err(e.to_string()))?;
        let bytes = staging.get_mapped_range(..).map_err(|e| err(e.to_string()))?.to_vec();
        staging.unmap();
        Ok(bytes)
    }

    /// Copies an f32 tensor back to the host (waits for all submitted work).
    pub fn download(&self, ctx: &GpuContext) -> Result<Vec<f32>, GpuError> {
        self.check_dtype("download", DType::F32)?;
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(ctx)?))
    }

    pub fn download_u32(&self, ctx: &GpuContext) -> Result<Vec<u32>, GpuError> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(ctx)?))
    }
}
