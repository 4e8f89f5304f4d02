//! Minimal `.npy` (version 1/2) reading and writing of little-endian float32 C-order arrays.

use std::path::Path;

use super::DataError;

/// Reads an `<f4` C-order array: (shape, values).
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    let bad = |detail: &str| DataError::Invalid { path: path.to_path_buf(), detail: format!("not a float32 C-order .npy file: {detail}") };
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing the \\x93NUMPY magic"));
    }
    let (hlen, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize, 12),
        _ => return Err(bad("truncated header")),
    };
    let header = std::str::from_utf8(bytes.get(start..start + hlen).ok_or_else(|| bad("truncated header"))?)
        .map_err(|_| bad("header is not text"))?;
    if !header.contains("'descr': '<f4'") || header.contains("'fortran_order': True") {
        return Err(bad(&format!("header {header:?}")));
    }
    let shape_txt = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or_else(|| bad("no shape"))?;
    let shape: Vec<usize> = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_, _>>()?;
    let data = &bytes[start + hlen..];
    let n = shape.iter().try_fold(4usize, |n, &d| n.checked_mul(d)).ok_or_else(|| bad(&format!("shape {shape:?} overflows")))? / 4;
    if data.len() != n * 4 {
        return Err(bad(&format!("shape {shape:?} needs {} data bytes, file has {}", n * 4, data.len())));
    }
    Ok((shape, data.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect()))
}

/// Writes an `<f4` C-order array.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), DataError> {
    write(path, "<f4", shape, &data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
}

/// Writes an `<f8` C-order array (numpy's default float, as facenet's scripts save).
pub fn write_f64(path: &Path, shape: &[usize], data: &[f64]) -> Result<(), DataError> {
    write(path, "<f8", shape, &data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
}

/// Writes an `<i8` (int64) vector.
pub fn write_i64(path: &Path, data: &[i64]) -> Result<(), DataError> {
    write(path, "<i8", &[data.len()], &data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())
}

/// Writes a vector of strings as numpy's fixed-width unicode (`<U{n}`, UTF-32, n the longest in
/// characters), what `np.save(np.array(list_of_str))` writes.
pub fn write_strings(path: &Path, data: &[String]) -> Result<(), DataError> {
    let width = data.iter().map(|s| s.chars().count()).max().unwrap_or(0).max(1);
    let mut bytes = Vec::with_capacity(data.len() * width * 4);
    for s in data {
        let n = s.chars().count();
        bytes.extend(s.chars().flat_map(|c| (c as u32).to_le_bytes()));
        bytes.extend(std::iter::repeat_n(0u8, (width - n) * 4));
    }
    write(path, &format!("<U{width}"), &[data.len()], &bytes)
}

/// Writes a C-order array of `descr` elements (version 1.0 header, padded to 64 bytes).
fn write(path: &Path, descr: &str, shape: &[usize], bytes: &[u8]) -> Result<(), DataError> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_txt}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(bytes);
    std::fs::write(path, out).map_err(|source| DataError::Io { path: path.to_path_buf(), source })
}
