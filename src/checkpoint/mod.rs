//! Weights: facenet's TensorFlow V2 checkpoints read natively ([`tf`]) and facegpu's safetensors files
//! ([`safetensors`]). Both give a [`Weights`] map from variable name to f32 tensor.

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

    /// Loads a `.safetensors` file, or a TF checkpoint given as a model folder, a prefix or a `.index` path.
    pub fn load(path: &Path) -> Result<Self, CheckpointError> {
        if path.extension().is_some_and(|e| e == "safetensors") {
            safetensors::load(path)
        } else {
            tf::load(path)
        }
    }
}
