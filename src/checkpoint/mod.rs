//! Weights: facenet's TensorFlow V2 checkpoints read natively ([`tf`]) and facegpu's safetensors files
//! ([`safetensors`]). Both give a [`Weights`] map from variable name to f32 tensor.

pub mod graphdef;
pub mod safetensors;
pub mod tf;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid TensorFlow checkpoint index: {detail}")]
    BadIndex { path: PathBuf, detail: String },
    #[error("{path}: tensor '{tensor}': {detail}")]
    BadTensor { path: PathBuf, tensor: String, detail: String },
    #[error("{path}: not a readable frozen graph: {detail}")]
    BadGraph { path: PathBuf, detail: String },
    #[error("{path}: no checkpoint found: {detail}")]
    NotFound { path: PathBuf, detail: String },
    #[error("{path}: {detail}")]
    Safetensors { path: PathBuf, detail: String },
    #[error("model weights: variable '{name}' is missing")]
    Missing { name: String },
    #[error("model weights: variable '{name}' has shape {got:?}, expected {want:?}")]
    WrongShape { name: String, got: Vec<usize>, want: Vec<usize> },
}

/// A named f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// The run id `YYYYMMDD-HHMMSS` in a model's path (its folder or file name; the last one found).
pub fn run_id(path: &Path) -> Option<String> {
    let s = path.to_string_lossy();
    let b = s.as_bytes();
    (0..b.len().saturating_sub(14)).rev().find_map(|i| {
        let id = &b[i..i + 15];
        let ok = id.iter().enumerate().all(|(j, c)| if j == 8 { *c == b'-' } else { c.is_ascii_digit() });
        let edge = |k: Option<&u8>| k.is_none_or(|c| !c.is_ascii_digit());
        (ok && edge(i.checked_sub(1).and_then(|k| b.get(k))) && edge(b.get(i + 15))).then(|| s[i..i + 15].to_string())
    })
}

/// The standardization a facenet model without a record of it was trained with, and why: fixed from
/// run id 20180401-000000 on (facenet added `--use_fixed_image_standardization` on 2018-04-01 and the
/// 2018 models use it), prewhiten before, and prewhiten where the path holds no run id.
pub fn standardization_for(path: &Path) -> (Standardization, String) {
    match run_id(path) {
        Some(id) if id.as_str() >= "20180401-000000" => {
            (Standardization::Fixed, format!("run id {id} is 2018-04-01 or later, when facenet's models switched to fixed standardization"))
        }
        Some(id) => (Standardization::Prewhiten, format!("run id {id} is before 2018-04-01")),
        None => (Standardization::Prewhiten, "no run id (YYYYMMDD-HHMMSS) in the model's path; facenet's default".into()),
    }
}

/// Image standardization a model expects (facenet section 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Standardization {
    /// `(x - mean) / max(std, 1/sqrt(size))` per image (20170512-110547 and older).
    Prewhiten,
    /// `(x - 127.5) / 128` (2018 models).
    Fixed,
}

/// All variables of a model plus what its file says about it.
#[derive(Debug, Clone, Default)]
pub struct Weights {
    pub tensors: BTreeMap<String, Tensor>,
    /// Standardization recorded in the file, if any (TF checkpoints record none).
    pub standardization: Option<Standardization>,
    pub source: PathBuf,
}

impl Weights {
    /// The tensor `name` with exactly `shape`, or an error naming the variable.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&Tensor, CheckpointError> {
        let t = self.tensors.get(name).ok_or_else(|| CheckpointError::Missing { name: name.to_string() })?;
        if t.shape != shape {
            return Err(CheckpointError::WrongShape { name: name.to_string(), got: t.shape.clone(), want: shape.to_vec() });
        }
        Ok(t)
    }

    /// The tensor `name` whatever its shape.
    pub fn get_any(&self, name: &str) -> Result<&Tensor, CheckpointError> {
        self.tensors.get(name).ok_or_else(|| CheckpointError::Missing { name: name.to_string() })
    }

    /// Loads a `.safetensors` file, a frozen graph `.pb`, or a TF checkpoint given as a model folder, a
    /// prefix or a `.index` path,
    /// with facenet's pre-May-2017 names brought to today's ([`Weights::modern_layout`]).
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        let mut w = match path.extension().and_then(|e| e.to_str()) {
            Some("safetensors") => safetensors::load(path)?,
            Some("pb") => graphdef::load(path)?,
            _ => tf::load(path)?,
        };
        w.modern_layout();
        Ok(w)
    }

    /// facenet's models before commit cb5c750 (2017-05-09; the released 20170214-092102 and
    /// 20170216-091149) built the 128-d bottleneck in train_softmax.py, outside the network's scope:
    /// `Bottleneck/weights` and `Bottleneck/BatchNorm/{beta,moving_mean,moving_variance}` instead of
    /// `InceptionResnetV1/Bottleneck/...`. The layer is the same (a fully connected layer with batch norm,
    /// epsilon 0.001, no gamma; the rest of the network did not change since February 2017), so the
    /// tensors are renamed. Returns whether any was.
    pub fn modern_layout(&mut self) -> bool {
        const NEW: &str = "InceptionResnetV1/";
        let old: Vec<String> = self.tensors.keys().filter(|k| k.starts_with("Bottleneck/")).cloned().collect();
        if old.is_empty() || self.tensors.keys().any(|k| k.starts_with("InceptionResnetV1/Bottleneck/")) {
            return false;
        }
        for k in old {
            if let Some(t) = self.tensors.remove(&k) {
                self.tensors.insert(format!("{NEW}{k}"), t);
            }
        }
        true
    }
}
