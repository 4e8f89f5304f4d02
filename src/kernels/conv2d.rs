//! conv2d (NHWC x HWIO) with a fused epilogue: bias, per-channel affine, scaled residual, ReLU/PReLU.

use crate::gpu::{check_shape, groups_1d, DType, Encoder, GpuContext, GpuError, GpuTensor, KernelShape, Shader};
use crate::ops::conv2d::flag as bits;
pub use crate::ops::conv2d::{out_size, Activation, Conv2dParams, Epilogue, Padding};

/// Invocations covering `m` output rows in 8-row tiles, rounded up to whole subgroups: the lanes of a
/// subgroup share one column tile (see conv2d.wgsl).
pub(crate) fn row_tiles(ctx: &GpuContext, m: u32) -> usize {
    let unit = ctx.subgroup_lanes().unwrap_or(1);
    (m.div_ceil(8).div_ceil(unit) * unit) as usize
}

/// Whether tiles of 8 columns of one row suit rows of `width` pixels: rounding each row up to 8 adds at most
/// 15%, about what the slide across the taps saves at 3 taps (docs/KERNELS.md). Used by conv2d's row
/// tiles.
fn row_tiles_fit(width: u32) -> bool {
    width.next_multiple_of(8) * 100 <= width * 115
}

/// Whether tiles of 32 channels suit a dimension of `n` channels (conv2d's output channels, grad_input's
/// input channels, grad_weight's output channels): `n` rounds up to 32 with at most 1/8 more.
pub(crate) fn wide_channels(n: u32) -> bool {
    n.next_multiple_of(32) - n <= n / 8
}

/// How a conv2d dispatch groups output pixels into its tiles of 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum TileLayout {
    /// 8 consecutive flattened (n, oy, ox).
    Flat = 0,
    /// 8 columns of one output row (stride-1 convs at least 5 taps wide, vec4 path), whose overlapping
    /// input columns are loaded once and slid across the taps.
    Rows = 1,
    /// 4 columns of two rows, max-pooled 2x2 before they are stored (`conv2d_max_pool2`).
    RowPairs = 2,
}

/// What conv2d.wgsl's uniform holds: the geometry and epilogue, and the split of the reduction.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Conv2dDispatch {
    pub conv: Conv2dParams,
    /// Parts the input channels are split into (each tap's channels `[k * kchunk, (k+1) * kchunk)`);
    /// above 1 the parts' sums meet in a scratch buffer and `conv2d_splitk_finish` applies the epilogue.
    pub ksplits: u32,
    pub kchunk: u32,
    /// How output pixels are grouped into tiles: a [`TileLayout`] as u32.
    pub tile_layout: u32,
    /// The output's first channel and channel count: `(0, oc)`, or a slice of a wider tensor
    /// (`conv2d_into`).
    pub y_off: u32,
    pub y_c: u32,
    /// 1: fewer pixel tiles than a subgroup has lanes, so each lane takes its own tile and loads its own
    /// weights (the entry `conv2d_solo`; the shader does not read this field).
    pub solo: u32,
    /// log2 of the texels in a row of the texture x is read through (see `Encoder::texture_of`).
    pub tshift: u32,
    pub _pad: u32,
}

impl Conv2dDispatch {
    /// Invocations to aim for: 4 workgroups, so that both cores of a CPU driver have work; the fastest of
    /// 128 to 2048 at batch 1 on llvmpipe (docs/KERNELS.md).
    const LANES: usize = 256;

    /// Splits the reduction when the layer has fewer than `LANES` tiles (`tiles` invocations; the late,
    /// small layers at batch 1 and MTCNN's), keeping at least 64 channels per part. Only for channel
    /// counts that are multiples of 4 (the vec4 path).
    pub fn new(conv: Conv2dParams, tiles: usize) -> Self {
        let c = conv.c as usize;
        let mut ksplits = 1;
        if c.is_multiple_of(4) && conv.oc.is_multiple_of(4) && tiles > 0 && tiles < Self::LANES {
            ksplits = Self::LANES.div_ceil(tiles).min(c / 64).max(1);
        }
        let kchunk = c.div_ceil(ksplits).next_multiple_of(4).max(4);
        let ksplits = c.div_ceil(kchunk).max(1);
        Self {
            conv,
            ksplits: ksplits as u32,
            kchunk: kchunk as u32,
            tile_layout: if Self::row_layout(&conv) { TileLayout::Rows } else { TileLayout::Flat } as u32,
            y_off: 0,
            y_c: conv.oc,
            solo: 0,
            tshift: 0,
            _pad: 0,
        }
    }

    /// Whether `conv2d_head8` can run `conv`: row tiles, output channels a multiple of 16.
    pub fn head8_fits(conv: &Conv2dParams) -> bool {
        Self::row_tiles_suit(conv) && conv.oc.is_multiple_of(16)
    }

    /// Whether row tiles can run `conv`: stride 1 along the rows, wider than one tap, vec4 channels, and
    /// rows that `row_tiles_fit`.
    fn row_tiles_suit(conv: &Conv2dParams) -> bool {
        conv.sw == 1 && conv.kw > 1 && conv.c.is_multiple_of(4) && conv.oc.is_multiple_of(4) && row_tiles_fit(conv.ow)
    }

    /// Whether `conv2d` takes row tiles (see `rows`): where they can, and the kernel is at least 5 taps
    /// wide or the input has only 4 channels (one step per tap, MTCNN's padded RGB). Sliding the input
    /// columns across the taps loads 14 x vec4s per row tile where flat tiles load 56 at 7 taps, but with
    /// 3 taps and 8 channels or more flat tiles are faster, each accumulator taking four products in a row
    /// (docs/KERNELS.md has the timings).
    fn row_layout(conv: &Conv2dParams) -> bool {
        Self::row_tiles_suit(conv) && (conv.kw >= 5 || conv.c == 4)
    }

    /// Output pixels the pixel tiles cover, `rows` deciding: with row tiles, each output row rounded up
    /// to 8 columns.
    fn tiled_pixels(conv: &Conv2dParams, rows: bool) -> u32 {
        if rows {
            conv.n * conv.oh * conv.ow.next_multiple_of(8)
        } else {
            conv.n * conv.oh * conv.ow
        }
    }

    /// Whether `conv2d` gives `conv`'s flat tiles 32 channels (two Tiles fed by the same x loads, the
    /// shader's WIDE) rather than 16: flat tiles (not `row_layout`), vec4 channels, and output channels
    /// that round up to 32 with at most 1/8 more. A texel load of x is 16 loads and a transpose on
    /// llvmpipe, so twice the products per load pays unless a quarter of the channels would be padding
    /// (docs/KERNELS.md has the timings).
    fn wide_tiles(conv: &Conv2dParams) -> bool {
        !Self::row_layout(conv) && conv.c.is_multiple_of(4) && conv.oc.is_multiple_of(4) && wide_channels(conv.oc)
    }

    /// How `conv2d` dispatches `conv` on `ctx`: the uniform and the invocations of one split (8 output
    /// pixels x 16 or 32 channels each (`wide_tiles`), pixel tiles rounded up to whole subgroups, or with
    /// fewer pixel tiles than a subgroup has lanes one invocation per tile, `solo`, so that the 3x3-pixel
    /// layers at batch 1 do not leave 6 of 8 lanes repeating a tile).
    pub fn plan(ctx: &GpuContext, conv: Conv2dParams) -> (Self, usize) {
        let pixels = Self::tiled_pixels(&conv, Self::row_layout(&conv));
        let pixel_tiles = pixels.div_ceil(8);
        let solo = ctx.subgroup_lanes().is_some_and(|lanes| pixel_tiles < lanes);
        let pixel_invocations = if solo { pixel_tiles as usize } else { row_tiles(ctx, pixels) };
        let cols = if Self::wide_tiles(&conv) { 32 } else { 16 };
        let tiles = pixel_invocations * conv.oc.div_ceil(cols) as usize;
        let mut d = Self::new(conv, tiles);
        d.solo = solo as u32;
        (d, tiles)
    }

    /// The values of conv2d.wgsl's overridable constants for this dispatch on `ctx`: the epilogue's
    /// features, the vec4 paths, the tile layout and split-K, each compiled in or out, and whether
    /// subgroups have 16 lanes or more.
    pub fn constants(&self, ctx: &GpuContext) -> [(&'static str, f64); 10] {
        let c = &self.conv;
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        [
            ("LANES16", flag(ctx.subgroup_min_lanes().is_some_and(|l| l >= 16))),
            ("BIAS", flag(c.flags & bits::BIAS != 0)),
            ("AFFINE", flag(c.flags & bits::AFFINE != 0)),
            ("RESIDUAL", flag(c.flags & bits::RESIDUAL != 0)),
            ("ACT", f64::from(c.act)),
            ("VEC", flag(c.c.is_multiple_of(4) && c.oc.is_multiple_of(4))),
            ("VEC_STORE", flag((c.oc | self.y_c | self.y_off).is_multiple_of(4))),
            ("ROWS", flag(self.tile_layout == TileLayout::Rows as u32)),
            ("SPLITK", flag(self.ksplits > 1)),
            // (conv2d_max_pool2 and conv2d_head take row pairs and rows: never wide.)
            ("WIDE", flag(self.tile_layout == TileLayout::Flat as u32 && Self::wide_tiles(c))),
        ]
    }

    /// The entry of conv2d.wgsl that runs this dispatch.
    pub fn entry(&self) -> &'static str {
        if self.solo != 0 {
            "conv2d_solo"
        } else {
            "conv2d"
        }
    }
}

/// The buffers conv2d.wgsl binds for an epilogue's operands (bindings 3-7: bias, scale, shift, alpha,
/// residual), the encoder's dummy where one is absent.
fn epilogue_buffers<'a>(enc: &Encoder<'a>, epi: &Epilogue<&'a GpuTensor>) -> [&'a wgpu::Buffer; 5] {
    let absent = enc.absent();
    let (scale, shift) = epi.affine.map(|(s, t)| (&s.buffer, &t.buffer)).unwrap_or((absent, absent));
    let alpha = match epi.act {
        Activation::Prelu(a) => &a.buffer,
        _ => absent,
    };
    [epi.bias.map(|t| &t.buffer).unwrap_or(absent), scale, shift, alpha, epi.residual.map(|(r, _)| &r.buffer).unwrap_or(absent)]
}

/// Records `y = max_pool_2x2_stride2_same(epilogue(conv2d(x, w)))` into `enc`, in one pass: the conv's
/// output is pooled in registers and never stored. Stride 1, channel counts multiples of 4, no residual;
/// `y` is `[n, ceil(oh/2), ceil(ow/2), oc]`. MTCNN's PNet conv1 + pool1 and ONet conv3 + pool3.
pub fn conv2d_max_pool2(
    enc: &mut Encoder,
    x: &GpuTensor,
    w: &GpuTensor,
    epi: &Epilogue<&GpuTensor>,
    y: &GpuTensor,
    padding: Padding,
) -> Result<Conv2dParams, GpuError> {
    let p = Conv2dParams::new(&x.shape, &w.shape, (1, 1), padding)?.with_epilogue(epi, |t| t.len())?;
    if !p.c.is_multiple_of(4) || !p.oc.is_multiple_of(4) || epi.residual.is_some() {
        return Err(GpuError::Invalid {
            op: "conv2d_max_pool2",
            detail: format!("input {:?} and weights {:?} need channel counts that are multiples of 4, and no residual", x.shape, w.shape),
        });
    }
    let [n, oh, ow, oc] = p.out_shape();
    check_shape("conv2d_max_pool2", "output", &y.shape, &[n, oh.div_ceil(2), ow.div_ceil(2), oc])?;
    let [bias, scale, shift, alpha, residual] = epilogue_buffers(enc, epi);
    let mut d = Conv2dDispatch {
        conv: p,
        ksplits: 1,
        kchunk: p.c,
        tile_layout: TileLayout::RowPairs as u32,
        y_off: 0,
        y_c: p.oc,
        solo: 0,
        tshift: 0,
        _pad: 0,
    };
    // x through the staging texture (binding 10) where c is a multiple of 4, else from its buffer.
    let (xt, tshift) = enc.texture_of_if(x, p.c.is_multiple_of(4))?;
    d.tshift = tshift;
    let tiles = row_tiles(enc.ctx(), (n * oh.div_ceil(2) * ow.div_ceil(4) * 8) as u32) * oc.div_ceil(16);
    // x is read through the texture only.
    let buffers = [None, Some(&w.buffer), Some(bias), Some(scale), Some(shift), Some(alpha), Some(residual), Some(&y.buffer), None];
    enc.tag_with(|| format!("{:?} * {:?}", x.shape, w.shape));
    // 12 channels (PNet's conv1) have an entry that skips the fourth channel group of the tile.
    let entry = if oc == 12 { "conv2d_max_pool2_12" } else { "conv2d_max_pool2" };
    enc.dispatch_with(Shader::Conv2dMtcnn, entry, &d.constants(enc.ctx()), &d, &buffers, &[(10, &xt)], groups_1d(tiles))?;
    Ok(p)
}

/// Records `y = head(epilogue(conv2d(x, w)))` into `enc`, where `head` is a 1x1 conv with 8 outputs,
/// weights `head_w` `[1, 1, oc, 8]` and bias `head_b` `[8]`: each invocation runs the conv for one row tile
/// and every 16-channel column tile in turn, adding each one's share of the head. The conv's own output
/// is never stored. Needs `Conv2dDispatch::head8_fits` (a stride-1 conv with row tiles, oc a multiple of
/// 16) and no residual; `y` is `[n, oh, ow, 8]`. MTCNN's PNet conv3 and its two heads.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_head8(
    enc: &mut Encoder,
    x: &GpuTensor,
    w: &GpuTensor,
    epi: &Epilogue<&GpuTensor>,
    head_w: &GpuTensor,
    head_b: &GpuTensor,
    y: &GpuTensor,
    padding: Padding,
) -> Result<Conv2dParams, GpuError> {
    let p = Conv2dParams::new(&x.shape, &w.shape, (1, 1), padding)?.with_epilogue(epi, |t| t.len())?;
    if !Conv2dDispatch::head8_fits(&p) || epi.residual.is_some() {
        return Err(GpuError::Invalid {
            op: "conv2d_head8",
            detail: format!(
                "input {:?} and weights {:?} need row tiles (stride 1, channels multiples of 4, output channels of 16) and no residual",
                x.shape, w.shape
            ),
        });
    }
    let [n, oh, ow, oc] = p.out_shape();
    check_shape("conv2d_head8", "head weights", &head_w.shape, &[1, 1, oc, 8])?;
    check_shape("conv2d_head8", "head bias", &head_b.shape, &[8])?;
    check_shape("conv2d_head8", "output", &y.shape, &[n, oh, ow, 8])?;
    let [bias, scale, shift, alpha, _] = epilogue_buffers(enc, epi);
    let mut d = Conv2dDispatch {
        conv: p,
        ksplits: 1,
        kchunk: p.c,
        tile_layout: TileLayout::Rows as u32,
        y_off: 0,
        y_c: 8,
        solo: 0,
        tshift: 0,
        _pad: 0,
    };
    // x through the staging texture (binding 10) where c is a multiple of 4, else from its buffer.
    let (xt, tshift) = enc.texture_of_if(x, p.c.is_multiple_of(4))?;
    d.tshift = tshift;
    // Row tiles always (whatever `row_layout` chooses for a plain conv of this shape).
    let tiles = row_tiles(enc.ctx(), Conv2dDispatch::tiled_pixels(&p, true));
    // x is read through the texture only.
    let buffers = [
        None,
        Some(&w.buffer),
        Some(bias),
        Some(scale),
        Some(shift),
        Some(alpha),
        Some(&head_w.buffer),
        Some(&y.buffer),
        Some(&head_b.buffer),
    ];
    enc.tag_with(|| format!("{:?} * {:?} then {:?}", x.shape, w.shape, head_w.shape));
    enc.dispatch_with(Shader::Conv2dMtcnn, "conv2d_head", &d.constants(enc.ctx()), &d, &buffers, &[(10, &xt)], groups_1d(tiles))?;
    Ok(p)
}

/// Records `y = epilogue(conv2d(x, w))` into `enc`. `y` must have shape `p.out_shape()`.
pub fn conv2d(
    enc: &mut Encoder,
    x: &GpuTensor,
    w: &GpuTensor,
    epi: &Epilogue<&GpuTensor>,
    y: &GpuTensor,
    stride: (usize, usize),
    padding: Padding,
) -> Result<Conv2dParams, GpuError> {
    conv2d_into(enc, x, w, epi, y, 0, stride, padding)
}

/// `conv2d` writing channels `[y_off, y_off + oc)` of `y` `[n, oh, ow, C]` and leaving the others alone:
/// a branch's last conv storing its part of a concatenation in place.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_into(
    enc: &mut Encoder,
    x: &GpuTensor,
    w: &GpuTensor,
    epi: &Epilogue<&GpuTensor>,
    y: &GpuTensor,
    y_off: usize,
    stride: (usize, usize),
    padding: Padding,
) -> Result<Conv2dParams, GpuError> {
    let p = Conv2dParams::new(&x.shape, &w.shape, stride, padding)?.with_epilogue(epi, |t| t.len())?;
    let [n, oh, ow, oc] = p.out_shape();
    let y_c = y.shape.get(3).copied().unwrap_or(0);
    if y.shape.len() != 4 || y.shape[..3] != [n, oh, ow] || y_off + oc > y_c {
        return Err(GpuError::Shape {
            op: "conv2d",
            detail: format!("output {:?} cannot take channels {y_off}..{} of a [{n}, {oh}, {ow}, {oc}] conv", y.shape, y_off + oc),
        });
    }
    if enc.ctx().kernel_shape() == KernelShape::Gpu {
        conv2d_tiled(enc, x, w, epi, y, p, (y_off as u32, y_c as u32))?;
        return Ok(p);
    }
    if w.dtype != DType::F32 {
        return Err(GpuError::Invalid {
            op: "conv2d",
            detail: format!("weights '{}' are {:?}: only the GPU kernel shape takes f16 weights (FACEGPU_KERNELS=gpu)", w.label, w.dtype),
        });
    }
    let [bias, scale, shift, alpha, residual] = epilogue_buffers(enc, epi);
    let (mut d, tiles) = Conv2dDispatch::plan(enc.ctx(), p);
    (d.y_off, d.y_c) = (y_off as u32, y_c as u32);
    // x through the staging texture (binding 10) where c is a multiple of 4, else from its buffer.
    let (xt, tshift) = enc.texture_of_if(x, p.c.is_multiple_of(4))?;
    d.tshift = tshift;
    let part = if d.ksplits > 1 {
        let bytes = (d.ksplits as usize * p.out_shape().iter().product::<usize>() * 4) as u64;
        enc.ctx().splitk_scratch(bytes)
    } else {
        enc.absent_rw().clone()
    };
    let buffers =
        [Some(&x.buffer), Some(&w.buffer), Some(bias), Some(scale), Some(shift), Some(alpha), Some(residual), Some(&y.buffer), Some(&part)];
    enc.tag_with(|| format!("{:?} * {:?} stride {}", x.shape, w.shape, p.sh));
    enc.dispatch_with(
        Shader::Conv2d,
        d.entry(),
        &d.constants(enc.ctx()),
        &d,
        &buffers,
        &[(10, &xt)],
        groups_1d(tiles * d.ksplits as usize),
    )?;
    if d.ksplits > 1 {
        finish_splits(enc, &d, &buffers)?;
    }
    Ok(p)
}

/// Records conv2d.wgsl's `conv2d_splitk_finish` after a split-K conv (either shape): `y = epilogue(the
/// sum of the splits in part)`, four channels per invocation. `buffers` are the conv's bindings 1-9 (x
/// and w are not bound).
fn finish_splits(enc: &mut Encoder, d: &Conv2dDispatch, buffers: &[Option<&wgpu::Buffer>]) -> Result<(), GpuError> {
    let mut finish = buffers[..9].to_vec();
    (finish[0], finish[1]) = (None, None);
    let c = &d.conv;
    let groups = groups_1d((c.n * c.oh * c.ow * c.oc / 4) as usize);
    enc.dispatch_with(Shader::Conv2d, "conv2d_splitk_finish", &d.constants(enc.ctx()), d, &finish, &[], groups)
}

/// Splits of the reduction for `conv2d_into` in the GPU shape: where the output has fewer than
/// [`TILED_BLOCKS`] blocks of 64 x 64 and k is long (the 3x3 and 8x8 maps at batch 1), enough splits of
/// at least 128 of k to reach that many workgroups. 1 where the output's channels, their stride or
/// offset are not multiples of 4 (the finish pass stores vec4s).
pub fn tiled_splits(p: &Conv2dParams, (y_off, y_c): (u32, u32)) -> u32 {
    let blocks = p.oc.div_ceil(64) * (p.n * p.oh * p.ow).div_ceil(64);
    let k = p.kh * p.kw * p.c;
    if !(p.oc | y_c | y_off).is_multiple_of(4) || blocks >= TILED_BLOCKS {
        return 1;
    }
    TILED_BLOCKS.div_ceil(blocks).min(k / 128).max(1)
}

/// Workgroups a tiled conv aims for: a few per compute unit of a large GPU (an H100 has 132 SMs, an M2
/// Max 38 cores), so that a small layer does not leave most of them idle.
pub const TILED_BLOCKS: u32 = 128;

/// `conv2d_into` in the GPU shape (conv2d_tiled.wgsl): an implicit GEMM of (output pixels) x (output
/// channels) x (taps and input channels), one workgroup of 16 x 16 invocations per 64 x 64 block of the
/// output, staged through shared memory; the same fused epilogue, stored at channels `y_off..` of a `y`
/// with `y_c` channels. f16 weights (`DType::F16`) select the f16 module: operands staged and
/// multiplied in f16, summed in f32. Small layers split k ([`tiled_splits`]); the splits' sums meet in
/// conv2d.wgsl's `conv2d_splitk_finish`, which applies the epilogue.
fn conv2d_tiled(
    enc: &mut Encoder,
    x: &GpuTensor,
    w: &GpuTensor,
    epi: &Epilogue<&GpuTensor>,
    y: &GpuTensor,
    p: Conv2dParams,
    (y_off, y_c): (u32, u32),
) -> Result<(), GpuError> {
    let [bias, scale, shift, alpha, residual] = epilogue_buffers(enc, epi);
    let k = p.kh * p.kw * p.c;
    let splits = tiled_splits(&p, (y_off, y_c));
    // Whole steps of 16 per split.
    let kchunk = k.div_ceil(splits).next_multiple_of(16);
    let ksplits = k.div_ceil(kchunk).max(1);
    let d = Conv2dDispatch { conv: p, ksplits, kchunk, tile_layout: TileLayout::Flat as u32, y_off, y_c, solo: 0, tshift: 0, _pad: 0 };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };
    let constants = [
        ("BIAS", flag(p.flags & bits::BIAS != 0)),
        ("AFFINE", flag(p.flags & bits::AFFINE != 0)),
        ("RESIDUAL", flag(p.flags & bits::RESIDUAL != 0)),
        ("ACT", f64::from(p.act)),
        ("VEC_STORE", flag((p.oc | y_c | y_off).is_multiple_of(4))),
        ("SPLITK", flag(ksplits > 1)),
    ];
    let m = p.n * p.oh * p.ow;
    let groups = [p.oc.div_ceil(64), m.div_ceil(64), ksplits];
    let part = if ksplits > 1 {
        enc.ctx().splitk_scratch(u64::from(ksplits) * u64::from(m) * u64::from(p.oc) * 4)
    } else {
        enc.absent_rw().clone()
    };
    // f32 weights at binding 2; f16 weights at binding 11 (conv2d_weights_f16.wgsl).
    let (shader, w32, w16) = match w.dtype {
        DType::F16 => (Shader::Conv2dTiledF16, None, Some(&w.buffer)),
        _ => (Shader::Conv2dTiled, Some(&w.buffer), None),
    };
    let buffers =
        [Some(&x.buffer), w32, Some(bias), Some(scale), Some(shift), Some(alpha), Some(residual), Some(&y.buffer), Some(&part), None, w16];
    enc.tag_with(|| format!("{:?} * {:?} stride {} splits {ksplits} (tiled, {:?})", x.shape, w.shape, p.sh, w.dtype));
    enc.dispatch_with(shader, "conv2d_tiled", &constants, &d, &buffers, &[], groups)?;
    if ksplits > 1 {
        finish_splits(enc, &d, &buffers)?;
    }
    Ok(())
}
