use crate::ops::{rows_last, OpError};

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CopyChannelsParams {
    pub rows: u32,
    pub src_c: u32,
    pub dst_c: u32,
    pub src_off: u32,
    pub dst_off: u32,
    pub count: u32,
    /// bit 0: add to `dst` instead of overwriting it.
    pub flags: u32,
    pub _pad: u32,
}

/// Checks that `parts` stack along the last axis into `whole`; returns each part's channel offset.
pub fn channel_offsets(op: &'static str, parts: &[&[usize]], whole: &[usize]) -> Result<Vec<usize>, OpError> {
    let (rows, total) = rows_last(op, whole)?;
    let mut offsets = Vec::with_capacity(parts.len());
    let mut off = 0;
    for part in parts {
        let (r, c) = rows_last(op, part)?;
        if r != rows || part[..part.len() - 1] != whole[..whole.len() - 1] {
            return Err(OpError::Shape { op, detail: format!("part {part:?} does not match {whole:?} outside the channel axis") });
        }
        offsets.push(off);
        off += c;
    }
    if off != total {
        return Err(OpError::Shape { op, detail: format!("parts hold {off} channels, the whole {whole:?} has {total}") });
    }
    Ok(offsets)
}
