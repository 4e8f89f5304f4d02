//! Backward of conv2d and its fused epilogue: the epilogue's gradient, the data gradient and the weight
//! gradient (split-K over output pixels).

use super::conv2d::{row_tiles, wide_channels, Activation, Conv2dParams, Epilogue, Padding};
use crate::gpu::{check_shape, groups_1d, Encoder, GpuContext, GpuError, GpuTensor, KernelShape, Shader};
pub use crate::ops::conv2d_backward::{Conv2dBackwardParams, ACCUMULATE, ACCUMULATE_RESIDUAL, AFFINE, RESIDUAL};

impl Conv2dBackwardParams {
    /// The values of conv2d_backward_common.wgsl's overridable constants for a dispatch of these params on `ctx`
    /// whose entry takes its vec4 path where `vec` (see the shader): the flags and activation, compiled in
    /// or out, whether subgroups have 16 lanes or more, and for the entries that read them (else false, so
    /// that the others compile one pipeline whatever the conv's shape) `wide`, tiles of 32 channels
    /// (grad_input's input channels fed by the same g loads, conv2d_grad_weight's output channels by the
    /// same x loads), and `flat`, conv2d_grad_weight's run of pixels for a 1x1 stride-1 unpadded conv.
    pub fn constants(&self, ctx: &GpuContext, vec: bool, wide: bool, flat: bool) -> [(&'static str, f64); 9] {
        let c = &self.conv;
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        [
            ("FLAT", flag(flat)),
            ("WIDE", flag(wide)),
            ("LANES16", flag(ctx.subgroup_min_lanes().is_some_and(|l| l >= 16))),
            ("VEC", flag(vec)),
            ("ACC", flag(c.flags & ACCUMULATE != 0)),
            ("AFFINE", flag(c.flags & AFFINE != 0)),
            ("RESIDUAL", flag(c.flags & RESIDUAL != 0)),
            ("RES_ACC", flag(c.flags & ACCUMULATE_RESIDUAL != 0)),
            ("ACT", f64::from(c.act)),
        ]
    }

    /// Whether grad_input and grad_weight take their vec4 paths: channel counts multiples of 4.
    fn vec4_channels(&self) -> bool {
        self.conv.c.is_multiple_of(4) && self.conv.oc.is_multiple_of(4)
    }

    /// Whether the vec4 path's tiles take 32 channels rather than 16 along a dimension of `n` channels
    /// (grad_input's input channels, grad_weight's output channels; as conv2d's `wide_tiles`, the loads of
    /// a step then feed twice the products).
    fn wide(&self, n: u32) -> bool {
        self.vec4_channels() && wide_channels(n)
    }

    /// A 1x1 conv with stride 1 and no padding: output pixel m reads input pixel m (grad_weight's FLAT).
    fn one_by_one(&self) -> bool {
        let c = &self.conv;
        c.kh == 1 && c.kw == 1 && c.sh == 1 && c.sw == 1 && c.pad_top == 0 && c.pad_left == 0
    }

    /// Whether grad_weight takes its narrow entry: input channels not a multiple of 4 (the stem's RGB),
    /// output channels a multiple of 4, and every tap of every output pixel inside the image (no padding,
    /// VALID extents), so that a tile's rows can be any 8 consecutive weight rows.
    fn narrow_weight_rows(&self) -> bool {
        let c = &self.conv;
        !c.c.is_multiple_of(4)
            && c.oc.is_multiple_of(4)
            && c.pad_top == 0
            && c.pad_left == 0
            && (c.oh - 1) * c.sh + c.kh <= c.h
            && (c.ow - 1) * c.sw + c.kw <= c.w
    }
}

/// What the epilogue backward needs from the forward: the output `y` (ReLU), the pre-activation `u`
/// (PReLU), alpha, the affine scale and the residual scale.
pub struct EpilogueSaved<'a> {
    pub y: &'a GpuTensor,
    pub preact: Option<&'a GpuTensor>,
}

/// Gradients the epilogue backward writes: `g` (of the raw conv output, `[m, oc]`), and where the forward
/// had them, the residual's gradient (`(tensor, accumulate)`) and the PReLU product whose column sums are
/// d alpha.
pub struct EpilogueGrads<'a> {
    pub g: &'a GpuTensor,
    pub residual: Option<(&'a GpuTensor, bool)>,
    pub prelu_prod: Option<&'a GpuTensor>,
}

/// Records the epilogue's backward. The affine (a frozen batch norm) gets no gradient; d bias is the column
/// sum of `g` and d alpha the column sum of `prelu_prod` (both by `reduce::col_sum`).
pub fn epilogue_backward(
    enc: &mut Encoder,
    p: &Conv2dParams,
    epi: &Epilogue<&GpuTensor>,
    dy: &GpuTensor,
    saved: &EpilogueSaved,
    grads: &EpilogueGrads,
) -> Result<(), GpuError> {
    const OP: &str = "conv2d epilogue backward";
    let out = p.out_shape();
    check_shape(OP, "dy", &dy.shape, &out)?;
    check_shape(OP, "y", &saved.y.shape, &out)?;
    check_shape(OP, "g", &grads.g.shape, &out)?;
    let mut q = Conv2dBackwardParams { conv: *p, splits: 1, chunk: 1, cls_y: 0, cls_x: 0, tshift: 0, _pad: [0; 3] };
    q.conv.flags = 0;
    q.conv.act = match epi.act {
        Activation::None => 0,
        Activation::Relu => 1,
        Activation::Prelu(_) => 2,
    };
    q.conv.res_scale = epi.residual.map_or(1.0, |(_, s)| s);
    let absent = enc.absent();
    let absent_rw = enc.absent_rw();
    let scale = match &epi.affine {
        Some((s, _)) => {
            q.conv.flags |= AFFINE;
            &s.buffer
        }
        None => absent,
    };
    let dres = match (&epi.residual, &grads.residual) {
        (Some(_), Some((t, acc))) => {
            check_shape(OP, "residual gradient", &t.shape, &out)?;
            q.conv.flags |= RESIDUAL | if *acc { ACCUMULATE_RESIDUAL } else { 0 };
            &t.buffer
        }
        (Some(_), None) => {
            return Err(GpuError::Invalid { op: OP, detail: "a residual epilogue needs a residual gradient buffer".into() });
        }
        _ => absent_rw,
    };
    let (preact, alpha, prod) = match &epi.act {
        Activation::Prelu(a) => {
            let (Some(u), Some(prod)) = (saved.preact, grads.prelu_prod) else {
                return Err(GpuError::Invalid { op: OP, detail: "PReLU backward needs the pre-activation and a product buffer".into() });
            };
            check_shape(OP, "pre-activation", &u.shape, &out)?;
            check_shape(OP, "prelu product", &prod.shape, &out)?;
            (&u.buffer, &a.buffer, &prod.buffer)
        }
        _ => (absent, absent, absent_rw),
    };
    enc.dispatch_with(
        Shader::Conv2dEpilogueBackward,
        "epilogue_backward",
        &q.constants(enc.ctx(), p.oc.is_multiple_of(4), false, false),
        &q,
        &[Some(&dy.buffer), Some(&saved.y.buffer), Some(preact), Some(alpha), Some(scale), Some(&grads.g.buffer), Some(dres), Some(prod)],
        &[],
        groups_1d(dy.len().div_ceil(4)),
    )
}

/// Records `dx (+)= conv2d_transpose(g, w)`: the gradient of the input.
#[allow(clippy::too_many_arguments)]
pub fn grad_input(
    enc: &mut Encoder,
    g: &GpuTensor,
    w: &GpuTensor,
    dx: &GpuTensor,
    stride: (usize, usize),
    padding: Padding,
    accumulate: bool,
) -> Result<(), GpuError> {
    let mut q = Conv2dBackwardParams::new(&dx.shape, &w.shape, stride, padding)?;
    check_shape("conv2d grad_input", "g", &g.shape, &q.conv.out_shape())?;
    q.conv.flags = if accumulate { ACCUMULATE } else { 0 };
    if enc.ctx().kernel_shape() == KernelShape::Gpu {
        return grad_input_tiled(enc, g, w, dx, q);
    }
    let wide = q.wide(q.conv.c);
    let cols = if wide { 32 } else { 16 };
    // g through the staging texture (binding 9) on the vec4 path, else from its buffer.
    let (gt, tshift) = enc.texture_of_if(g, q.vec4_channels())?;
    q.tshift = tshift;
    let c = q.conv;
    let tag = format!("{:?} * {:?} stride {}", dx.shape, w.shape, c.sh);
    // One dispatch per stride class, each invocation covering 8 of its pixels x 16 channels.
    for (cls_y, cls_x) in (0..c.sh.min(c.h)).flat_map(|y| (0..c.sw.min(c.w)).map(move |x| (y, x))) {
        (q.cls_y, q.cls_x) = (cls_y, cls_x);
        let pixels = c.n * (c.h - cls_y).div_ceil(c.sh) * (c.w - cls_x).div_ceil(c.sw);
        let tiles = row_tiles(enc.ctx(), pixels) * c.c.div_ceil(cols) as usize;
        enc.tag_with(|| tag.clone());
        enc.dispatch_with(
            Shader::Conv2dGradInput,
            "conv2d_grad_input",
            &q.constants(enc.ctx(), q.vec4_channels(), wide, false),
            &q,
            &[Some(&g.buffer), Some(&w.buffer), None, None, None, Some(&dx.buffer), None, None],
            &[(9, &gt)],
            groups_1d(tiles),
        )?;
    }
    Ok(())
}

/// Records `dw (+)= sum over pixels of x-tap ⊗ g`: the gradient of the HWIO weights. `scratch` holds at
/// least `Conv2dBackwardParams::scratch_len()` elements (it may be `None` when that is 0).
#[allow(clippy::too_many_arguments)]
pub fn grad_weight(
    enc: &mut Encoder,
    x: &GpuTensor,
    g: &GpuTensor,
    dw: &GpuTensor,
    scratch: Option<&GpuTensor>,
    stride: (usize, usize),
    padding: Padding,
    accumulate: bool,
) -> Result<(), GpuError> {
    let mut q = Conv2dBackwardParams::new(&x.shape, &dw.shape, stride, padding)?;
    check_shape("conv2d grad_weight", "g", &g.shape, &q.conv.out_shape())?;
    if enc.ctx().kernel_shape() == KernelShape::Gpu {
        return grad_weight_tiled(enc, x, g, dw, scratch, q, accumulate);
    }
    let c = q.conv;
    // Invocations per split: 8 input channels of one tap x 16 output channels each (32 with `wide`), the
    // (tap, channel) rows rounded up to whole subgroups (their lanes share the output channels; see the
    // shader); or on the narrow entry 8 consecutive weight rows x 16 output channels each, one lane each.
    let narrow = q.narrow_weight_rows();
    let wide = !narrow && q.wide(c.oc);
    let tiles = if narrow {
        ((c.kh * c.kw * c.c).div_ceil(8) * c.oc.div_ceil(16)) as usize
    } else {
        let unit = enc.ctx().subgroup_lanes().unwrap_or(1);
        let cols = if wide { 32 } else { 16 };
        ((c.kh * c.kw * c.c.div_ceil(8)).div_ceil(unit) * unit * c.oc.div_ceil(cols)) as usize
    };
    let entry = if narrow { "conv2d_grad_weight_narrow" } else { "conv2d_grad_weight" };
    // FLAT: the main entry's run of pixels for a 1x1 stride-1 unpadded conv.
    let flat = !narrow && q.one_by_one();
    let need = q.scratch_len();
    let acc = if accumulate { ACCUMULATE } else { 0 };
    // x through the staging texture (binding 9) on the vec4 path; the narrow entry reads x from its
    // buffer and g through the texture.
    let (xt, tshift) = if narrow { enc.texture_of(g)? } else { enc.texture_of_if(x, q.vec4_channels())? };
    q.tshift = tshift;
    let g_buffer = (!narrow).then_some(&g.buffer);
    enc.tag_with(|| format!("{:?} * {:?} stride {} splits {}", x.shape, dw.shape, c.sh, q.splits));
    if need == 0 {
        q.conv.flags = acc;
        return enc.dispatch_with(
            Shader::Conv2dGradWeight,
            entry,
            &q.constants(enc.ctx(), q.vec4_channels(), wide, flat),
            &q,
            &[Some(&x.buffer), g_buffer, None, None, None, Some(&dw.buffer), None, None],
            &[(9, &xt)],
            groups_1d(tiles),
        );
    }
    let scratch = scratch_of(scratch, need)?;
    q.conv.flags = 0;
    enc.dispatch_with(
        Shader::Conv2dGradWeight,
        entry,
        &q.constants(enc.ctx(), q.vec4_channels(), wide, flat),
        &q,
        &[Some(&x.buffer), g_buffer, None, None, None, Some(&scratch.buffer), None, None],
        &[(9, &xt)],
        groups_1d(tiles * q.splits as usize),
    )?;
    q.conv.flags = acc;
    reduce_splits(enc, q, scratch, dw)
}

/// `scratch` when it holds at least `need` elements, else an error saying how many it needs.
fn scratch_of(scratch: Option<&GpuTensor>, need: usize) -> Result<&GpuTensor, GpuError> {
    match scratch {
        Some(s) if s.len() >= need => Ok(s),
        _ => Err(GpuError::Shape {
            op: "conv2d grad_weight",
            detail: format!("split-K scratch needs {need} elements, got {}", scratch.map_or(0, |s| s.len())),
        }),
    }
}

/// Records `dw (+)= the sum of the splits' partial weight gradients in scratch` (`q.conv.flags`: whether
/// it adds).
fn reduce_splits(enc: &mut Encoder, q: Conv2dBackwardParams, scratch: &GpuTensor, dw: &GpuTensor) -> Result<(), GpuError> {
    enc.dispatch_with(
        Shader::Conv2dGradWeight,
        "grad_weight_reduce",
        &q.constants(enc.ctx(), dw.len().is_multiple_of(4), false, false),
        &q,
        &[Some(&scratch.buffer), None, None, None, None, Some(&dw.buffer), None, None],
        &[],
        groups_1d(dw.len().div_ceil(4)),
    )
}

/// `grad_input` in the GPU shape (conv2d_backward_tiled.wgsl): per stride class, an implicit GEMM of
/// (the class's input pixels) x (input channels) x (the class's taps and output channels), one workgroup
/// of 16 x 16 per 64 x 64 block of dx.
fn grad_input_tiled(enc: &mut Encoder, g: &GpuTensor, w: &GpuTensor, dx: &GpuTensor, mut q: Conv2dBackwardParams) -> Result<(), GpuError> {
    let c = q.conv;
    let constants = q.constants(enc.ctx(), c.c.is_multiple_of(4), false, false);
    let tag = format!("{:?} * {:?} stride {} (tiled)", dx.shape, w.shape, c.sh);
    for (cls_y, cls_x) in (0..c.sh.min(c.h)).flat_map(|y| (0..c.sw.min(c.w)).map(move |x| (y, x))) {
        (q.cls_y, q.cls_x) = (cls_y, cls_x);
        let pixels = c.n * (c.h - cls_y).div_ceil(c.sh) * (c.w - cls_x).div_ceil(c.sw);
        enc.tag_with(|| tag.clone());
        enc.dispatch_with(
            Shader::Conv2dBackwardTiled,
            "grad_input_tiled",
            &constants,
            &q,
            &[Some(&g.buffer), Some(&w.buffer), None, None, None, Some(&dx.buffer), None, None],
            &[],
            [c.c.div_ceil(64), pixels.div_ceil(64), 1],
        )?;
    }
    Ok(())
}

/// `grad_weight` in the GPU shape: an implicit GEMM of (taps and input channels) x (output channels) x
/// (output pixels), one workgroup of 16 x 16 per 64 x 64 block of dw and split of the pixels; with more
/// than one split, their partial sums meet in `scratch` and `grad_weight_reduce`.
fn grad_weight_tiled(
    enc: &mut Encoder,
    x: &GpuTensor,
    g: &GpuTensor,
    dw: &GpuTensor,
    scratch: Option<&GpuTensor>,
    mut q: Conv2dBackwardParams,
    accumulate: bool,
) -> Result<(), GpuError> {
    let c = q.conv;
    let acc = if accumulate { ACCUMULATE } else { 0 };
    let groups = [c.oc.div_ceil(64), (c.kh * c.kw * c.c).div_ceil(64), q.splits];
    enc.tag_with(|| format!("{:?} * {:?} stride {} splits {} (tiled)", x.shape, dw.shape, c.sh, q.splits));
    let need = q.scratch_len();
    let out = if need == 0 { dw } else { scratch_of(scratch, need)? };
    q.conv.flags = if need == 0 { acc } else { 0 };
    enc.dispatch_with(
        Shader::Conv2dBackwardTiled,
        "grad_weight_tiled",
        &q.constants(enc.ctx(), c.oc.is_multiple_of(4), false, false),
        &q,
        &[Some(&x.buffer), Some(&g.buffer), None, None, None, Some(&out.buffer), None, None],
        &[],
        groups,
    )?;
    if need == 0 {
        return Ok(());
    }
    q.conv.flags = acc;
    reduce_splits(enc, q, out, dw)
}
