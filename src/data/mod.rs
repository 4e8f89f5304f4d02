//! Input and output files: images and `.npy` arrays.

pub mod dataset;
pub mod images;
pub mod npy;

use std::path::{Path, PathBuf};

use thiserror::Error;

/// Errors of the data layer; each names the file.
#[derive(Debug, Error)]
pub enum DataError {
    /// Reading, writing or listing `path` failed.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// `path` is not an image the decoders accept.
    #[error("{}: cannot read image: {detail}", path.display())]
    Image { path: PathBuf, detail: String },
    /// `path` exists but is not what was expected (an empty dataset, a file where a folder should be).
    #[error("{}: {detail}", path.display())]
    Invalid { path: PathBuf, detail: String },
}

/// `map_err` for an I/O result: the error names `path`.
pub fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io { path: path.to_path_buf(), source }
}

/// Writes `bytes` to `path` through `<path>.partial` renamed into place: a crash never leaves half a
/// file, and a failed write (no space, a file-size limit) removes the partial one and leaves the previous
/// file as it was. The error names the file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let tmp = path.with_file_name(format!("{}.partial", path.file_name().unwrap_or_default().to_string_lossy()));
    let written = std::fs::write(&tmp, bytes).map_err(io_at(&tmp)).and_then(|_| std::fs::rename(&tmp, path).map_err(io_at(path)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// One of `n` deterministic parts of a dataset's identity folders (`--shard K/N`, K from 1 to N): the
/// folders at sorted positions `K-1, K-1+N, K-1+2N, ...`, so N machines (a Slurm array, a Kubernetes
/// indexed Job) each take a part and together cover every folder once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub k: usize,
    pub n: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("shard '{s}': expected K/N with 1 <= K <= N, e.g. 3/8");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (k, n): (usize, usize) = (k.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if k == 0 || n == 0 || k > n {
            return Err(bad());
        }
        Ok(Self { k, n })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.k, self.n)
    }
}

impl Shard {
    /// This shard's items of a sorted list.
    pub fn select<T>(&self, items: Vec<T>) -> Vec<T> {
        items.into_iter().enumerate().filter(|(i, _)| i % self.n == self.k - 1).map(|(_, t)| t).collect()
    }
}
