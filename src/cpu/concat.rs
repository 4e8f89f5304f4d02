//! CPU twin of `kernels::concat`.

use crate::ops::concat::channel_offsets;
use crate::ops::OpError;

pub fn concat_channels(parts: &[(&[f32], &[usize])], out_shape: &[usize]) -> Result<Vec<f32>, OpError> {
    let shapes: Vec<&[usize]> = parts.iter().map(|p| p.1).collect();
    let offsets = channel_offsets("concat", &shapes, out_shape)?;
    let total = *out_shape.last().unwrap_or(&0);
    let mut out = vec![0f32; out_shape.iter().product()];
    for ((data, shape), off) in parts.iter().zip(offsets) {
        let c = *shape.last().unwrap_or(&0);
        for (r, row) in data.chunks(c.max(1)).enumerate() {
            out[r * total + off..r * total + off + c].copy_from_slice(row);
        }
    }
    Ok(out)
}

pub fn split_channels(x: &[f32], x_shape: &[usize], part_shapes: &[&[usize]]) -> Result<Vec<Vec<f32>>, OpError> {
    let offsets = channel_offsets("split", part_shapes, x_shape)?;
    let total = *x_shape.last().unwrap_or(&0);
    Ok(part_shapes
        .iter()
        .zip(offsets)
        .map(|(shape, off)| {
            let c = *shape.last().unwrap_or(&0);
            x.chunks(total).flat_map(|row| row[off..off + c].to_vec()).collect()
        })
        .collect())
}
