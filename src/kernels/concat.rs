//! Concatenation and split along the channel (last) axis.

use super::rows_last;
use crate::gpu::{flags, groups_1d, Encoder, GpuError, GpuTensor, Shader};
pub use crate::ops::concat::{channel_offsets, CopyChannelsParams};

#[allow(clippy::too_many_arguments)]
fn copy(
    enc: &mut Encoder,
    src: &GpuTensor,
    dst: &GpuTensor,
    src_off: usize,
    dst_off: usize,
    count: usize,
    accumulate: bool,
) -> Result<(), GpuError> {
    let (rows, src_c) = rows_last("copy_channels", &src.shape)?;
    let (_, dst_c) = rows_last("copy_channels", &dst.shape)?;
    let p = CopyChannelsParams {
        rows: rows as u32,
        src_c: src_c as u32,
        dst_c: dst_c as u32,
        src_off: src_off as u32,
        dst_off: dst_off as u32,
        count: count as u32,
        flags: accumulate as u32,
        _pad: 0,
    };
    if [src_c, dst_c, src_off, dst_off, count].iter().all(|v| v.is_multiple_of(4)) {
        return enc.dispatch_with(
            Shader::Concat,
            "copy_channels4",
            &flags(p.flags),
            &p,
            &[None, None, Some(&src.buffer), Some(&dst.buffer)],
            &[],
            groups_1d(rows * count / 4),
        );
    }
    enc.dispatch_with(
        Shader::Concat,
        "copy_channels",
        &flags(p.flags),
        &p,
        &[Some(&src.buffer), Some(&dst.buffer)],
        &[],
        groups_1d(rows * count),
    )
}

/// Copies all of `src`'s channels into channels `[dst_off, dst_off + c)` of `dst` (same shape outside the
/// channel axis): one part of a concatenation whose other parts were written in place.
pub fn copy_channels_into(enc: &mut Encoder, src: &GpuTensor, dst: &GpuTensor, dst_off: usize) -> Result<(), GpuError> {
    let c = *src.shape.last().unwrap_or(&0);
    let fits = src.shape.len() == dst.shape.len() && src.shape[..src.shape.len() - 1] == dst.shape[..dst.shape.len() - 1];
    if !fits || dst_off + c > *dst.shape.last().unwrap_or(&0) {
        return Err(GpuError::Shape {
            op: "copy_channels",
            detail: format!("{:?} does not fit channels {dst_off}..{} of {:?}", src.shape, dst_off + c, dst.shape),
        });
    }
    copy(enc, src, dst, 0, dst_off, c, false)
}

pub fn concat_channels(enc: &mut Encoder, parts: &[&GpuTensor], out: &GpuTensor) -> Result<(), GpuError> {
    concat_channels_into(enc, parts, out, false)
}

pub fn split_channels(enc: &mut Encoder, x: &GpuTensor, parts: &[&GpuTensor]) -> Result<(), GpuError> {
    split_channels_into(enc, x, parts, &vec![false; parts.len()])
}

/// Concatenation that adds to `out` when `accumulate` (the backward of split).
pub fn concat_channels_into(enc: &mut Encoder, parts: &[&GpuTensor], out: &GpuTensor, accumulate: bool) -> Result<(), GpuError> {
    let shapes: Vec<&[usize]> = parts.iter().map(|t| t.shape.as_slice()).collect();
    let offsets = channel_offsets("concat", &shapes, &out.shape)?;
    for (part, off) in parts.iter().zip(offsets) {
        copy(enc, part, out, 0, off, *part.shape.last().unwrap_or(&0), accumulate)?;
    }
    Ok(())
}

/// Split whose part `i` is added to when `accumulate[i]` (the backward of concat).
pub fn split_channels_into(enc: &mut Encoder, x: &GpuTensor, parts: &[&GpuTensor], accumulate: &[bool]) -> Result<(), GpuError> {
    let shapes: Vec<&[usize]> = parts.iter().map(|t| t.shape.as_slice()).collect();
    let offsets = channel_offsets("split", &shapes, &x.shape)?;
    for ((part, off), &acc) in parts.iter().zip(offsets).zip(accumulate) {
        copy(enc, x, part, off, 0, *part.shape.last().unwrap_or(&0), acc)?;
    }
    Ok(())
}
