//! Batch normalization over the channel (last) axis: inference with moving statistics, and training
//! forward with batch statistics (mean and invstd saved for backward, moving averages updated in place).

use crate::gpu::{check_shape, flags, groups_1d, Encoder, GpuError, GpuTensor, Shader};
use crate::ops::batch_norm::flag;
pub use crate::ops::batch_norm::BatchNormParams;

fn check_channels(p: &BatchNormParams, named: &[(&str, Option<&GpuTensor>)]) -> Result<(), GpuError> {
    for (what, t) in named {
        if let Some(t) = t {
            check_shape("batch_norm", what, &t.shape, &[p.c as usize])?;
        }
    }
    Ok(())
}

/// `y = (x - moving_mean) / sqrt(moving_var + eps) * gamma + beta`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_inference(
    enc: &mut Encoder,
    x: &GpuTensor,
    moving_mean: &GpuTensor,
    moving_var: &GpuTensor,
    gamma: Option<&GpuTensor>,
    beta: &GpuTensor,
    y: &GpuTensor,
    eps: f32,
) -> Result<(), GpuError> {
    let p = BatchNormParams::new(&x.shape, gamma.is_some(), eps, 0.0)?;
    check_channels(&p, &[("moving_mean", Some(moving_mean)), ("moving_var", Some(moving_var)), ("gamma", gamma), ("beta", Some(beta))])?;
    check_shape("batch_norm", "output", &y.shape, &x.shape)?;
    let g = gamma.map(|t| &t.buffer).unwrap_or(enc.absent());
    enc.dispatch_with(
        Shader::BatchNorm,
        "bn_inference",
        &flags(p.flags),
        &p,
        &[Some(&x.buffer), Some(&moving_mean.buffer), Some(&moving_var.buffer), Some(g), Some(&beta.buffer), Some(&y.buffer)],
        &[],
        groups_1d(x.len().div_ceil(4)),
    )
}

/// Training forward: writes `y`, the batch `mean` and `invstd` (saved for backward) and updates the
/// moving statistics with `decay`. With `relu`, `y = max(batch_norm(x), 0)` in the same pass (facenet's
/// conv + batch norm + ReLU); its backward then takes `y` as `BatchNormGrads::relu_output`.
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_train(
    enc: &mut Encoder,
    x: &GpuTensor,
    gamma: Option<&GpuTensor>,
    beta: &GpuTensor,
    moving_mean: &GpuTensor,
    moving_var: &GpuTensor,
    y: &GpuTensor,
    mean: &GpuTensor,
    invstd: &GpuTensor,
    eps: f32,
    decay: f32,
    relu: bool,
) -> Result<(), GpuError> {
    let mut p = BatchNormParams::new(&x.shape, gamma.is_some(), eps, decay)?;
    check_channels(
        &p,
        &[
            ("gamma", gamma),
            ("beta", Some(beta)),
            ("moving_mean", Some(moving_mean)),
            ("moving_var", Some(moving_var)),
            ("mean", Some(mean)),
            ("invstd", Some(invstd)),
        ],
    )?;
    check_shape("batch_norm", "output", &y.shape, &x.shape)?;
    // x through the staging texture for the three row-block passes over it (both statistics passes and
    // the normalization below; nothing between them records another texture copy).
    let xtex = row_block_texture(enc, x, &mut p)?;
    let saved = Stats { mean, invstd, moving_mean, moving_var };
    match &xtex {
        Some(xt) => record_stats_rows(enc, xt, p, &saved)?,
        None => enc.dispatch_with(
            Shader::BatchNormStats,
            "bn_stats",
            &flags(p.flags),
            &p,
            &[Some(&x.buffer), Some(&mean.buffer), Some(&invstd.buffer), Some(&moving_mean.buffer), Some(&moving_var.buffer)],
            &[],
            [p.c, 1, 1],
        )?,
    }
    let g = gamma.map(|t| &t.buffer).unwrap_or(enc.absent());
    if relu {
        p.flags |= flag::RELU;
    }
    let buffers = [Some(&x.buffer), Some(&mean.buffer), Some(&invstd.buffer), Some(g), Some(&beta.buffer), Some(&y.buffer)];
    // x from the texture the statistics read.
    elementwise_pass(enc, Shader::BatchNorm, ("bn_normalize", "bn_normalize_rows"), p, &buffers, xtex.as_ref(), x.len())
}

/// The statistics a training forward writes: the batch's mean and invstd, and the moving averages.
struct Stats<'a> {
    mean: &'a GpuTensor,
    invstd: &'a GpuTensor,
    moving_mean: &'a GpuTensor,
    moving_var: &'a GpuTensor,
}

/// The statistics with c a multiple of 4, x read row by row from the staging texture `xt`: row blocks x
/// channel groups sum into the context's scratch (see batch_norm_stats.wgsl), the blocks are added into
/// the mean, a second pass sums the squared deviations from it, and the last adds those into invstd and
/// the moving statistics.
fn record_stats_rows(enc: &mut Encoder, xt: &wgpu::TextureView, p: BatchNormParams, s: &Stats) -> Result<(), GpuError> {
    let c4 = p.c / 4;
    let mut q = p;
    set_blocks(&mut q, SUM_INVOCATIONS);
    let parts = enc.ctx().splitk_scratch(q.blocks as u64 * c4 as u64 * 16);
    let (mb, ib, mmb, mvb) = (&s.mean.buffer, &s.invstd.buffer, &s.moving_mean.buffer, &s.moving_var.buffer);
    let sums = [None, Some(mb), None, None, None, Some(&parts)];
    let (blocks, channels) = (groups_1d((q.blocks * c4) as usize), groups_1d(c4 as usize));
    enc.dispatch_with(Shader::BatchNormStats, "bn_stats_parts", &flags(q.flags), &q, &sums, &[(12, xt)], blocks)?;
    enc.dispatch_with(Shader::BatchNormStats, "bn_stats_mean", &flags(q.flags), &q, &sums, &[], channels)?;
    q.flags |= flag::SQUARED_DEVIATIONS;
    enc.dispatch_with(Shader::BatchNormStats, "bn_stats_parts", &flags(q.flags), &q, &sums, &[(12, xt)], blocks)?;
    let all = [None, Some(mb), Some(ib), Some(mmb), Some(mvb), Some(&parts)];
    enc.dispatch_with(Shader::BatchNormStats, "bn_stats_finish", &flags(q.flags), &q, &all, &[], channels)
}

/// Where c is a multiple of 4 (the row-block kernels), records copying `x` into the staging texture and
/// sets `p`'s texture row shift (`tshift`); the kernels read x there until the next `texture_of`.
fn row_block_texture(enc: &mut Encoder, x: &GpuTensor, p: &mut BatchNormParams) -> Result<Option<wgpu::TextureView>, GpuError> {
    if !p.c.is_multiple_of(4) {
        return Ok(None);
    }
    let (xt, tshift) = enc.texture_of(x)?;
    p.tshift = tshift;
    Ok(Some(xt))
}

/// The last, elementwise pass over x of the training forward or backward: `entries.1` in blocks of rows
/// per channel group where x is in the staging texture `xt` (c a multiple of 4: the channel's operands
/// loaded once per block, x's buffer unbound), else `entries.0`, four elements per invocation.
fn elementwise_pass(
    enc: &mut Encoder,
    shader: Shader,
    entries: (&'static str, &'static str),
    mut p: BatchNormParams,
    buffers: &[Option<&wgpu::Buffer>],
    xt: Option<&wgpu::TextureView>,
    elements: usize,
) -> Result<(), GpuError> {
    let Some(xt) = xt else {
        return enc.dispatch_with(shader, entries.0, &flags(p.flags), &p, buffers, &[], groups_1d(elements.div_ceil(4)));
    };
    set_blocks(&mut p, ROW_BLOCK_INVOCATIONS);
    let mut rows = buffers.to_vec();
    rows[0] = None;
    enc.dispatch_with(shader, entries.1, &flags(p.flags), &p, &rows, &[(12, xt)], groups_1d((p.blocks * p.c / 4) as usize))
}

/// Gradients of a training batch norm. `dgamma`/`dbeta` are parameter gradients (added to); `sums`
/// (`[2c]`) is scratch; `dx` is written, or added to when `accumulate`.
pub struct BatchNormGrads<'a> {
    pub dx: &'a GpuTensor,
    /// The forward's output when it was fused with a ReLU (`batch_norm_train(.., relu: true)`): `dy` is
    /// then taken as `dy * (y > 0)`.
    pub relu_output: Option<&'a GpuTensor>,
    pub dgamma: Option<&'a GpuTensor>,
    pub dbeta: Option<&'a GpuTensor>,
    pub sums: &'a GpuTensor,
    pub accumulate: bool,
}

/// Workgroups of the statistics kernels: one per 4 channels when the count is a multiple of 4, else one
/// per channel.
/// Invocations of the per-channel sums (`set_blocks`): each one's block sum is stored and added up after.
const SUM_INVOCATIONS: u32 = 2048;
/// Invocations of the row-block elementwise kernels (`bn_normalize_rows`).
const ROW_BLOCK_INVOCATIONS: u32 = 16384;

/// The row blocks of the kernels that walk rows per channel group, with c a multiple of 4 (`blocks`
/// blocks of `block_rows` rows): about `invocations` invocations of one block x one channel group each.
fn set_blocks(p: &mut BatchNormParams, invocations: u32) {
    let c4 = p.c / 4;
    let blocks = (invocations / c4).clamp(1, p.rows.max(1));
    p.block_rows = p.rows.div_ceil(blocks).max(1);
    p.blocks = p.rows.div_ceil(p.block_rows).max(1);
}

/// Records the backward of `batch_norm_train` from the saved `mean` and `invstd`.
/// The backward's per-channel sums with c a multiple of 4, x read row by row from the staging texture:
/// row blocks x channel groups (about `SUM_INVOCATIONS` invocations) sum into the context's scratch, and
/// `bn_backward_sums` adds the blocks into `sums` (and d gamma, d beta).
#[allow(clippy::too_many_arguments)]
fn record_backward_sums_rows(
    enc: &mut Encoder,
    xt: &wgpu::TextureView,
    mut p: BatchNormParams,
    dy: &wgpu::Buffer,
    (mean, invstd): (&wgpu::Buffer, &wgpu::Buffer),
    relu_y: &wgpu::Buffer,
    (sums, dgamma, dbeta): (&wgpu::Buffer, &wgpu::Buffer, &wgpu::Buffer),
) -> Result<(), GpuError> {
    let c4 = p.c / 4;
    set_blocks(&mut p, SUM_INVOCATIONS);
    let parts = enc.ctx().splitk_scratch(p.blocks as u64 * c4 as u64 * 32);
    let inputs = [None, Some(dy), Some(mean), Some(invstd), None, None, None, None, Some(relu_y), Some(&parts)];
    enc.dispatch_with(
        Shader::BatchNormBackward,
        "bn_backward_parts",
        &flags(p.flags),
        &p,
        &inputs,
        &[(12, xt)],
        groups_1d((p.blocks * c4) as usize),
    )?;
    let outputs = [None, None, None, None, None, Some(sums), Some(dgamma), Some(dbeta), None, Some(&parts)];
    enc.dispatch_with(Shader::BatchNormBackward, "bn_backward_sums", &flags(p.flags), &p, &outputs, &[], groups_1d(c4 as usize))
}

#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    enc: &mut Encoder,
    x: &GpuTensor,
    dy: &GpuTensor,
    gamma: Option<&GpuTensor>,
    mean: &GpuTensor,
    invstd: &GpuTensor,
    grads: &BatchNormGrads,
) -> Result<(), GpuError> {
    let mut p = BatchNormParams::new(&x.shape, gamma.is_some(), 0.0, 0.0)?;
    check_channels(
        &p,
        &[("gamma", gamma), ("mean", Some(mean)), ("invstd", Some(invstd)), ("dgamma", grads.dgamma), ("dbeta", grads.dbeta)],
    )?;
    check_shape("batch_norm_backward", "dy", &dy.shape, &x.shape)?;
    check_shape("batch_norm_backward", "dx", &grads.dx.shape, &x.shape)?;
    check_shape("batch_norm_backward", "sums", &grads.sums.shape, &[2 * p.c as usize])?;
    if gamma.is_some() != grads.dgamma.is_some() {
        return Err(GpuError::Invalid { op: "batch_norm_backward", detail: "gamma and its gradient go together".into() });
    }
    let absent = enc.absent();
    let absent_rw = enc.absent_rw();
    let g = gamma.map(|t| &t.buffer).unwrap_or(absent);
    if grads.dbeta.is_some() {
        p.flags |= flag::ACCUMULATE_BETA;
    }
    if let Some(r) = grads.relu_output {
        check_shape("batch_norm_backward", "relu output", &r.shape, &x.shape)?;
        p.flags |= flag::RELU;
    }
    let relu_y = grads.relu_output.map(|t| &t.buffer).unwrap_or(absent);
    let dgamma = grads.dgamma.map(|t| &t.buffer).unwrap_or(absent_rw);
    let dbeta = grads.dbeta.map(|t| &t.buffer).unwrap_or(absent_rw);
    // x through the staging texture for both row-block passes over it (the sums and dx below).
    let xtex = row_block_texture(enc, x, &mut p)?;
    let mean_b = (&mean.buffer, &invstd.buffer);
    match &xtex {
        Some(xt) => record_backward_sums_rows(enc, xt, p, &dy.buffer, mean_b, relu_y, (&grads.sums.buffer, dgamma, dbeta))?,
        None => enc.dispatch_with(
            Shader::BatchNormBackward,
            "bn_backward_stats",
            &flags(p.flags),
            &p,
            &[
                Some(&x.buffer),
                Some(&dy.buffer),
                Some(mean_b.0),
                Some(mean_b.1),
                None,
                Some(&grads.sums.buffer),
                Some(dgamma),
                Some(dbeta),
                Some(relu_y),
            ],
            &[],
            [p.c, 1, 1],
        )?,
    }
    p.flags = (p.flags & (flag::GAMMA | flag::RELU)) | if grads.accumulate { flag::ACCUMULATE } else { 0 };
    let buffers = [
        Some(&x.buffer),
        Some(&dy.buffer),
        Some(&mean.buffer),
        Some(&invstd.buffer),
        Some(g),
        Some(&grads.sums.buffer),
        Some(&grads.dx.buffer),
        None,
        Some(relu_y),
    ];
    // x from the texture the sums read.
    elementwise_pass(enc, Shader::BatchNormBackward, ("bn_backward_input", "bn_backward_input_rows"), p, &buffers, xtex.as_ref(), x.len())
}
