use std::sync::Arc;

use super::pipeline::Constants;
use super::{GpuContext, GpuError, GpuTensor, Shader};

/// Invocations per workgroup of every 1-D kernel (`@workgroup_size(64)` in the shaders).
pub const WORKGROUP_1D: u32 = 64;

enum Op {
    Dispatch {
        tag: String,
        kernel: (Shader, &'static str),
        pipeline: Arc<wgpu::ComputePipeline>,
        buffers: Vec<Option<wgpu::Buffer>>,
        textures: Vec<(u32, wgpu::TextureView)>,
        params_offset: u64,
        params_size: u64,
        groups: [u32; 3],
    },
    Copy {
        src: wgpu::Buffer,
        dst: wgpu::Buffer,
        bytes: u64,
    },
    Clear {
        dst: wgpu::Buffer,
        bytes: u64,
    },
    /// `texels` rgba32f texels of `src` into the rows of `dst` (`1 << shift` texels each).
    ToTexture {
        src: wgpu::Buffer,
        dst: wgpu::Texture,
        texels: u64,
        shift: u32,
    },
}

/// Records many dispatches and submits them as one command buffer.
///
/// Binding 0 of every kernel is its uniform `Params`; `buffers[i]` is bound at binding `i + 1`, and `None`
/// marks a binding that this entry point does not use (auto layouts only hold the bindings an entry uses). All `Params` of one submission share one uniform buffer owned by the context and reused.
pub struct Encoder<'a> {
    ctx: &'a GpuContext,
    ops: Vec<Op>,
    params: Vec<u8>,
    /// Label of the next dispatch in the `FACEGPU_PROFILE=1` table (see [`Encoder::tag_with`]).
    tag: String,
}

impl<'a> Encoder<'a> {
    pub fn new(ctx: &'a GpuContext) -> Self {
        Self { ctx, ops: Vec::new(), params: Vec::new(), tag: String::new() }
    }

    /// With `FACEGPU_PROFILE=1`, the next dispatch is listed under its entry point and `tag()` (a shape,
    /// say), so that the table splits one kernel by its uses; otherwise `tag` is not called.
    pub fn tag_with(&mut self, tag: impl FnOnce() -> String) {
        if self.ctx.profile.is_some() {
            self.tag = tag();
        }
    }

    pub fn ctx(&self) -> &'a GpuContext {
        self.ctx
    }

    /// Records one dispatch of `shader::entry` over `groups` workgroups.
    pub fn dispatch<P: bytemuck::Pod>(
        &mut self,
        shader: Shader,
        entry: &'static str,
        params: &P,
        buffers: &[Option<&wgpu::Buffer>],
        groups: [u32; 3],
    ) -> Result<(), GpuError> {
        self.dispatch_textured(shader, entry, params, buffers, &[], groups)
    }

    /// `dispatch` with texture views bound too, each at its binding (see [`Encoder::texture_of`]).
    pub fn dispatch_textured<P: bytemuck::Pod>(
        &mut self,
        shader: Shader,
        entry: &'static str,
        params: &P,
        buffers: &[Option<&wgpu::Buffer>],
        textures: &[(u32, &wgpu::TextureView)],
        groups: [u32; 3],
    ) -> Result<(), GpuError> {
        self.dispatch_with(shader, entry, &[], params, buffers, textures, groups)
    }

    /// `dispatch_textured` of the pipeline specialized by `constants` (see [`GpuContext::pipeline_with`]).
    #[allow(clippy::too_many_arguments)]
    pub fn dispatch_with<P: bytemuck::Pod>(
        &mut self,
        shader: Shader,
        entry: &'static str,
        constants: Constants,
        params: &P,
        buffers: &[Option<&wgpu::Buffer>],
        textures: &[(u32, &wgpu::TextureView)],
        groups: [u32; 3],
    ) -> Result<(), GpuError> {
        let max = self.ctx.device.limits().max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > max) {
            return Err(GpuError::Invalid {
                op: entry,
                detail: format!("dispatch {groups:?} exceeds the adapter's {max} workgroups per dimension"),
            });
        }
        let pipeline = self.ctx.pipeline_with(shader, entry, constants)?;
        if groups.contains(&0) {
            self.tag.clear();
            return Ok(());
        }
        let align = self.ctx.uniform_align as usize;
        let offset = self.params.len().div_ceil(align) * align;
        self.params.resize(offset, 0);
        self.params.extend_from_slice(bytemuck::bytes_of(params));
        self.ops.push(Op::Dispatch {
            tag: std::mem::take(&mut self.tag),
            kernel: (shader, entry),
            pipeline,
            buffers: buffers.iter().map(|b| b.cloned()).collect(),
            textures: textures.iter().map(|&(i, v)| (i, v.clone())).collect(),
            params_offset: offset as u64,
            params_size: std::mem::size_of::<P>() as u64,
            groups,
        });
        Ok(())
    }

    /// Records a buffer-to-buffer copy of `bytes` bytes.
    pub fn copy(&mut self, src: &wgpu::Buffer, dst: &wgpu::Buffer, bytes: u64) {
        if bytes > 0 {
            self.ops.push(Op::Copy { src: src.clone(), dst: dst.clone(), bytes });
        }
    }

    /// Records copying `t` (whose length is a multiple of 4) into the context's staging texture, and
    /// returns its view and row shift (texel `i` at `(i & ((1 << shift) - 1), i >> shift)`), for a kernel
    /// recorded next to read `t` through. The next call may reuse the texture: read it before that.
    pub fn texture_of(&mut self, t: &GpuTensor) -> Result<(wgpu::TextureView, u32), GpuError> {
        let texels = (t.len() / 4) as u64;
        let (texture, view, shift) = self.ctx.staging_texture(texels)?;
        self.ops.push(Op::ToTexture { src: t.buffer.clone(), dst: texture, texels, shift });
        Ok((view, shift))
    }

    /// `texture_of(t)` where `read_through` (a kernel's vec4 path reads `t` through the texture), else the
    /// absent texture and shift 0 (its scalar path reads the buffer).
    pub fn texture_of_if(&mut self, t: &GpuTensor, read_through: bool) -> Result<(wgpu::TextureView, u32), GpuError> {
        if read_through {
            self.texture_of(t)
        } else {
            Ok((self.absent_texture().clone(), 0))
        }
    }

    /// The 1x1 texture bound where a texture operand is absent.
    pub fn absent_texture(&self) -> &'a wgpu::TextureView {
        &self.ctx.dummy_texture
    }

    /// Records zeroing the first `bytes` bytes of `dst` (a multiple of 4).
    pub fn clear(&mut self, dst: &wgpu::Buffer, bytes: u64) {
        if bytes > 0 {
            self.ops.push(Op::Clear { dst: dst.clone(), bytes: bytes.div_ceil(4) * 4 });
        }
    }

    /// The dummy buffer bound where an optional operand is absent.
    pub fn absent(&self) -> &'a wgpu::Buffer {
        &self.ctx.dummy
    }

    /// The dummy buffer bound where an optional writable operand is absent.
    pub fn absent_rw(&self) -> &'a wgpu::Buffer {
        &self.ctx.dummy_rw
    }

    /// Submits everything recorded, in order, as one command buffer. Does not wait.
    pub fn submit(self) -> Result<(), GpuError> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let ctx = self.ctx;
        let mut guard = ctx.params.lock().map_err(|_| GpuError::Submit("params buffer lock poisoned".into()))?;
        let needed = (self.params.len().max(16) as u64).next_power_of_two();
        if guard.as_ref().is_none_or(|b| b.size() < needed) {
            *guard = Some(ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("kernel params"),
                size: needed,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        // The lock is held until the submission is queued: another encoder's params write must not
        // land between this write and this submit (queue order makes the pair atomic).
        let params_buf = guard.as_ref().expect("just created").clone();
        if !self.params.is_empty() {
            let mut bytes = self.params;
            bytes.resize(bytes.len().div_ceil(4) * 4, 0);
            ctx.queue.write_buffer(&params_buf, 0, &bytes);
        }
        ctx.check()?;
        let oom = ctx.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("facegpu step") });
        let mut pass: Option<wgpu::ComputePass<'static>> = None;
        for op in &self.ops {
            if let (Some(profile), Op::Dispatch { kernel, tag, .. }) = (&ctx.profile, op) {
                // Profiling: everything recorded so far runs first, then this op alone, timed.
                drop(pass.take());
                ctx.queue.submit([std::mem::replace(&mut enc, ctx.device.create_command_encoder(&Default::default())).finish()]);
                ctx.sync()?;
                let t = std::time::Instant::now();
                record_op(ctx, op, &params_buf, &mut enc, &mut pass);
                drop(pass.take());
                ctx.queue.submit([std::mem::replace(&mut enc, ctx.device.create_command_encoder(&Default::default())).finish()]);
                ctx.sync()?;
                let mut p = profile.lock().map_err(|_| GpuError::Submit("profile lock poisoned".into()))?;
                let e = p.entry(format!("{}::{} {tag}", kernel.0.file(), kernel.1).trim_end().to_string()).or_default();
                e.0 += t.elapsed().as_secs_f64() * 1e3;
                e.1 += 1;
                continue;
            }
            record_op(ctx, op, &params_buf, &mut enc, &mut pass);
        }
        drop(pass);
        ctx.queue.submit([enc.finish()]);
        drop(guard);
        let validation = pollster::block_on(scope.pop());
        if let Some(err) = validation.or(pollster::block_on(oom.pop())) {
            return Err(GpuError::Submit(err.to_string()));
        }
        ctx.check()
    }
}

/// Records one op into `enc`, opening a compute pass for dispatches and closing it for copies and clears.
fn record_op(
    ctx: &GpuContext,
    op: &Op,
    params_buf: &wgpu::Buffer,
    enc: &mut wgpu::CommandEncoder,
    pass: &mut Option<wgpu::ComputePass<'static>>,
) {
    match op {
        Op::Dispatch { pipeline, buffers, textures, params_offset, params_size, groups, .. } => {
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: params_buf,
                    offset: *params_offset,
                    size: wgpu::BufferSize::new(*params_size),
                }),
            }];
            for (i, b) in buffers.iter().enumerate() {
                if let Some(b) = b {
                    entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
                }
            }
            for (binding, view) in textures {
                entries.push(wgpu::BindGroupEntry { binding: *binding, resource: wgpu::BindingResource::TextureView(view) });
            }
            let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            let p = pass.get_or_insert_with(|| {
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("kernels"), timestamp_writes: None }).forget_lifetime()
            });
            p.set_pipeline(pipeline);
            p.set_bind_group(0, &bind, &[]);
            p.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        Op::Copy { src, dst, bytes } => {
            drop(pass.take());
            enc.copy_buffer_to_buffer(src, 0, dst, 0, *bytes);
        }
        Op::Clear { dst, bytes } => {
            drop(pass.take());
            enc.clear_buffer(dst, 0, Some(*bytes));
        }
        Op::ToTexture { src, dst, texels, shift } => {
            drop(pass.take());
            let width = 1u64 << shift;
            let (rows, rest) = (texels / width, texels % width);
            let copy = |enc: &mut wgpu::CommandEncoder, offset: u64, y: u64, w: u64, h: u64| {
                enc.copy_buffer_to_texture(
                    wgpu::TexelCopyBufferInfo {
                        buffer: src,
                        layout: wgpu::TexelCopyBufferLayout { offset, bytes_per_row: Some((width * 16) as u32), rows_per_image: None },
                    },
                    wgpu::TexelCopyTextureInfo {
                        texture: dst,
                        mip_level: 0,
                        origin: wgpu::Origin3d { x: 0, y: y as u32, z: 0 },
                        aspect: wgpu::TextureAspect::All,
                    },
                    wgpu::Extent3d { width: w as u32, height: h as u32, depth_or_array_layers: 1 },
                );
            };
            if rows > 0 {
                copy(enc, 0, 0, width, rows);
            }
            if rest > 0 {
                copy(enc, rows * width * 16, rows, rest, 1);
            }
        }
    }
}

/// The constants of a kernel whose shader declares `override FLAGS: u32;` for its params' `flags`: its
/// branches on them are compiled in or out per pipeline (see [`GpuContext::pipeline_with`]).
pub fn flags(flags: u32) -> [(&'static str, f64); 1] {
    [("FLAGS", f64::from(flags))]
}

/// Workgroup counts covering `n` invocations of a 1-D kernel, folded into y past the per-dimension limit.
/// Shaders recover the index as `(wg.y * nwg.x + wg.x) * 64 + local`.
pub fn groups_1d(n: usize) -> [u32; 3] {
    let groups = n.div_ceil(WORKGROUP_1D as usize).max(if n == 0 { 0 } else { 1 });
    let x = groups.min(32768);
    let y = if x == 0 { 0 } else { groups.div_ceil(x) };
    [x as u32, y as u32, 1]
}
