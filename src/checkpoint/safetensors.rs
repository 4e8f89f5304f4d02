//! facegpu's own weight format: safetensors with metadata (`format`, `architecture`, `embedding_size`,
//! `standardization`). f16 files are widened to f32 on load; compute stays f32.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;

use super::{CheckpointError, Standardization, Tensor, Weights};

/// Storage precision of a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StorageDtype {
    F32,
    F16,
}

pub fn load(path: &Path) -> Result<Weights, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })?;
    load_bytes(&bytes, path)
}

/// The tensors and the string metadata of a file.
pub fn load_with_metadata(path: &Path) -> Result<(Weights, HashMap<String, String>), CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })?;
    let (_, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| CheckpointError::Safetensors { path: path.to_path_buf(), detail: e.to_string() })?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    Ok((load_bytes(&bytes, path)?, metadata))
}

/// Parses safetensors `bytes`; `path` names them in errors (a file, or e.g. the embedded MTCNN weights).
pub fn load_bytes(bytes: &[u8], path: &Path) -> Result<Weights, CheckpointError> {
    let err = |detail: String| CheckpointError::Safetensors { path: path.to_path_buf(), detail };
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| err(e.to_string()))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| err(e.to_string()))?;
    let standardization = meta.metadata().as_ref().and_then(|m| m.get("standardization")).and_then(|s| match s.as_str() {
        "prewhiten" => Some(Standardization::Prewhiten),
        "fixed" => Some(Standardization::Fixed),
        _ => None,
    });
    let mut weights = Weights { standardization, source: path.to_path_buf(), ..Default::default() };
    for (name, view) in st.tensors() {
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect(),
            Dtype::F16 => view.data().chunks_exact(2).map(|b| half::f16::from_le_bytes(b.try_into().expect("2 bytes")).to_f32()).collect(),
            other => return Err(err(format!("tensor '{name}' has dtype {other:?}; facegpu reads F32 and F16"))),
        };
        weights.tensors.insert(name, Tensor { shape: view.shape().to_vec(), data });
    }
    Ok(weights)
}

/// Writes `weights` with the given metadata, through a temporary file renamed into place.
pub fn save(weights: &Weights, path: &Path, metadata: HashMap<String, String>, dtype: StorageDtype) -> Result<(), CheckpointError> {
    let err = |detail: String| CheckpointError::Safetensors { path: path.to_path_buf(), detail };
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = weights
        .tensors
        .iter()
        .map(|(name, t)| {
            let bytes = match dtype {
                StorageDtype::F32 => t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                StorageDtype::F16 => t.data.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
            };
            (name.clone(), t.shape.clone(), bytes)
        })
        .collect();
    let st_dtype = match dtype {
        StorageDtype::F32 => Dtype::F32,
        StorageDtype::F16 => Dtype::F16,
    };
    let views = buffers
        .iter()
        .map(|(name, shape, bytes)| {
            TensorView::new(st_dtype, shape.clone(), bytes).map(|v| (name.clone(), v)).map_err(|e| err(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tmp = path.with_extension("safetensors.partial");
    // A failed write (no space, a file-size limit) leaves the previous file as it was and no partial one.
    let written = safetensors::serialize_to_file(views, Some(metadata), &tmp)
        .map_err(|e| err(format!("writing {}: {e}", tmp.display())))
        .and_then(|_| std::fs::rename(&tmp, path).map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source }));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}
