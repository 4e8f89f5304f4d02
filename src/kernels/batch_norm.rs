//! Batch normalization over the channel (last) axis: inference with moving statistics, and training
//! forward with batch statistics (mean and invstd saved for backward, moving averages updated in place).

use crate::gpu::{check_shape, flags, groups_1d, Encoder, GpuError, GpuTensor, Shader};
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

/// Flag bit of the training kernels: a ReLU follows the batch norm (fused; see `batch_norm_train`).
const RELU: u32 = 8;

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
    if let Some(xt) = &xtex {
        // Row blocks x channel groups (see batch_norm_stats.wgsl); the blocks' sums meet in the context's
        // scratch.
        let c4 = p.c / 4;
        let mut q = p;
        set_blocks(&mut q, SUM_INVOCATIONS);
        let parts = enc.ctx().splitk_scratch(q._pad[0] as u64 * c4 as u64 * 16);
        let groups = groups_1d((q._pad[0] * c4) as usize);
        let (mb, ib, mmb, mvb) = (&mean.buffer, &invstd.buffer, &moving_mean.buffer, &moving_var.buffer);
        enc.dispatch_with(
            Shader::BatchNormStats,
            "bn_stats_parts",
            &flags(q.flags),
            &q,
            &[None, Some(mb), None, None, None, Some(&parts)],
            &[(12, xt)],
            groups,
        )?;
        enc.dispatch_with(
            Shader::BatchNormStats,
            "bn_stats_mean",
            &flags(q.flags),
            &q,
            &[None, Some(mb), None, None, None, Some(&parts)],
            &[],
            groups_1d(c4 as usize),
        )?;
        q.flags |= 16;
        enc.dispatch_with(
            Shader::BatchNormStats,
            "bn_stats_parts",
            &flags(q.flags),
            &q,
            &[None, Some(mb), None, None, None, Some(&parts)],
            &[(12, xt)],
            groups,
        )?;
        enc.dispatch_with(
            Shader::BatchNormStats,
            "bn_stats_finish",
            &flags(q.flags),
            &q,
            &[None, Some(mb), Some(ib), Some(mmb), Some(mvb), Some(&parts)],
            &[],
            groups_1d(c4 as usize),
        )?;
    } else {
        enc.dispatch_with(
            Shader::BatchNormStats,
            "bn_stats",
            &flags(p.flags),
            &p,
            &[Some(&x.buffer), Some(&mean.buffer), Some(&invstd.buffer), Some(&moving_mean.buffer), Some(&moving_var.buffer)],
            &[],
            [p.c, 1, 1],
        )?;
    }
    let g = gamma.map(|t| &t.buffer).unwrap_or(enc.absent());
    if relu {
        p.flags |= RELU;
    }
    let buffers = [Some(&x.buffer), Some(&mean.buffer), Some(&invstd.buffer), Some(g), Some(&beta.buffer), Some(&y.buffer)];
    // x from the texture the statistics read.
    elementwise_pass(enc, Shader::BatchNorm, ("bn_normalize", "bn_normalize_rows"), p, &buffers, xtex.as_ref(), x.len())
}

/// Where c is a multiple of 4 (the row-block kernels), records copying `x` into the staging texture and
/// sets `p`'s texture row shift (`_pad[2]`); the kernels read x there until the next `texture_of`.
fn row_block_texture(enc: &mut Encoder, x: &GpuTensor, p: &mut BatchNormParams) -> Result<Option<wgpu::TextureView>, GpuError> {
    if !p.c.is_multiple_of(4) {
        return Ok(None);
    }
    let (xt, tshift) = enc.texture_of(x)?;
    p._pad[2] = tshift;
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
    enc.dispatch_with(shader, entries.1, &flags(p.flags), &p, &rows, &[(12, xt)], groups_1d((p._pad[0] * p.c / 4) as usize))
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

/// The row blocks of the kernels that walk rows per channel group, with c a multiple of 4 (`_pad[0]`
/// blocks of `_pad[1]` rows): about `invocations` invocations of one block x one channel group each.
fn set_blocks(p: &mut BatchNormParams, invocations: u32) {
    let c4 = p.c / 4;
    let blocks = (invocations / c4).clamp(1, p.rows.max(1));
    p._pad[1] = p.rows.div_ceil(blocks).max(1);
    p._pad[0] = p.rows.div_ceil(p._pad[1]).max(1);
}

/// Records the backward of `batch_norm_train` from the saved `mean` and `invstd`.
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
        p.flags |= 4;
    }
    if let Some(r) = grads.relu_output {
        check_shape("batch_norm_backward", "relu output", &r.shape, &x.shape)?;
        p.flags |= RELU;
    }
    let relu_y = grads.relu_output.map(|t| &t.buffer).unwrap_or(absent);
    let dgamma = grads.dgamma.map(|t| &t.buffer).unwrap_or(absent_rw);
    let dbeta = grads.dbeta.map(|t| &t.buffer).unwrap_or(absent_rw);
    // x through the staging texture for both row-block passes over it (the sums and dx below).
    let xtex = row_block_texture(enc, x, &mut p)?;
    if let Some(xt) = &xtex {
        // Row blocks x channel groups, about 2048 invocations; the blocks' sums meet in the context's
        // scratch (see the shader).
        let c4 = p.c / 4;
        set_blocks(&mut p, SUM_INVOCATIONS);
        let parts = enc.ctx().splitk_scratch(p._pad[0] as u64 * c4 as u64 * 32);
        enc.dispatch_with(
            Shader::BatchNormBackward,
            "bn_backward_parts",
            &flags(p.flags),
            &p,
            &[None, Some(&dy.buffer), Some(&mean.buffer), Some(&invstd.buffer), None, None, None, None, Some(relu_y), Some(&parts)],
            &[(12, xt)],
            groups_1d((p._pad[0] * c4) as usize),
        )?;
        enc.dispatch_with(
            Shader::BatchNormBackward,
            "bn_backward_sums",
            &flags(p.flags),
            &p,
            &[None, None, None, None, None, Some(&grads.sums.buffer), Some(dgamma), Some(dbeta), None, Some(&parts)],
            &[],
            groups_1d(c4 as usize),
        )?;
    } else {
        enc.dispatch_with(
            Shader::BatchNormBackward,
            "bn_backward_stats",
            &flags(p.flags),
            &p,
            &[
                Some(&x.buffer),
                Some(&dy.buffer),
                Some(&mean.buffer),
                Some(&invstd.buffer),
                None,
                Some(&grads.sums.buffer),
                Some(dgamma),
                Some(dbeta),
                Some(relu_y),
            ],
            &[],
            [p.c, 1, 1],
        )?;
    }
    p.flags = (p.flags & (1 | RELU)) | if grads.accumulate { 2 } else { 0 };
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
