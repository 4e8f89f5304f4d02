//! Concatenation and split along the channel (last) axis.

use super::rows_last;
use crate::gpu::{groups_1d, Encoder, GpuError, GpuTensor, Shader};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CopyChannelsParams {
    pub rows: u32,
    pub src_c: u32,
    pub dst_c: u32,
    pub src_off: u32,
    pub dst_off: u32,
    pub count: u32,
    pub _pad: [u32; 2],
}

/// Checks that `parts` stack along the last axis into `whole`; returns each part's channel offset.
pub fn channel_offsets(op: &'static str, parts: &[&[usize]], whole: &[usize]) -> Result<Vec<usize>, GpuError> {
    let (rows, total) = rows_last(op, whole)?;
    let mut offsets = Vec::with_capacity(parts.len());
    let mut off = 0;
    for part in parts {
        let (r, c) = rows_last(op, part)?;
        if r != rows || part[..part.len() - 1] != whole[..whole.len() - 1] {
            return Err(GpuError::Shape { op, detail: format!("part {part:?} does not match {whole:?} outside the channel axis") });
        }
        offsets.push(off);
        off += c;
    }
    if off != total {
        return Err(GpuError::Shape { op, detail: format!("parts hold {off} channels, the whole {whole:?} has {total}") });
    }
    Ok(offsets)
}

fn copy(enc: &mut Encoder, src: &GpuTensor, dst: &GpuTensor, src_off: usize, dst_off: usize, count: usize) -> Result<(), GpuError> {
    let (rows, src_c) = rows_last("copy_channels", &src.shape)?;
    let (_, dst_c) = rows_last("copy_channels", &dst.shape)?;
    let p = CopyChannelsParams {
        rows: rows as u32,
        src_c: src_c as u32,
        dst_c: dst_c as u32,
        src_off: src_off as u32,
        dst_off: dst_off as u32,
        count: count as u32,
        _pad: [0; 2],
    };
    enc.dispatch(Shader::Concat, "copy_channels", &p, &[Some(&src.buffer), Some(&dst.buffer)], groups_1d(rows * count))
}

pub fn concat_channels(enc: &mut Encoder, parts: &[&GpuTensor], out: &GpuTensor) -> Result<(), GpuError> {
    let shapes: Vec<&[usize]> = parts.iter().map(|t| t.shape.as_slice()).collect();
    let offsets = channel_offsets("concat", &shapes, &out.shape)?;
    for (part, off) in parts.iter().zip(offsets) {
        copy(enc, part, out, 0, off, *part.shape.last().unwrap_or(&0))?;
    }
    Ok(())
}

pub fn split_channels(enc: &mut Encoder, x: &GpuTensor, parts: &[&GpuTensor]) -> Result<(), GpuError> {
    let shapes: Vec<&[usize]> = parts.iter().map(|t| t.shape.as_slice()).collect();
    let offsets = channel_offsets("split", &shapes, &x.shape)?;
    for (part, off) in parts.iter().zip(offsets) {
        copy(enc, x, part, off, 0, *part.shape.last().unwrap_or(&0))?;
    }
    Ok(())
}
