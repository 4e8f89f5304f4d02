//! TensorBoard event files (`events.out.tfevents.<time>.<host>`), written by hand, so `tensorboard
//! --logdir` shows a facegpu run like a facenet run.
//!
//! The file is a TFRecord stream: per record a little-endian u64 length, its masked crc32c, the bytes
//! and their masked crc32c. Each record is an `Event` protobuf: `wall_time` (1, double), `step` (2),
//! `file_version` (3, the first record's "brain.Event:2") or `summary` (5): `Summary.value` (1) with `tag`
//! (1) and either `simple_value` (2, float) or `histo` (5, a `HistogramProto`: min 1, max 2, num 3,
//! sum 4, sum_squares 5, packed bucket_limit 6 and bucket 7).

use crate::data::{io_at, DataError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The masked crc32c TFRecord and TF checkpoints use.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let c = crc32c::crc32c(bytes);
    (c.rotate_right(15)).wrapping_add(0xa282_ead8)
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(n: u64, payload: &[u8], out: &mut Vec<u8>) {
    varint(n << 3 | 2, out);
    varint(payload.len() as u64, out);
    out.extend(payload);
}

fn double_field(n: u64, v: f64, out: &mut Vec<u8>) {
    varint(n << 3 | 1, out);
    out.extend(v.to_le_bytes());
}

fn packed_doubles(n: u64, v: &[f64], out: &mut Vec<u8>) {
    let payload: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    bytes_field(n, &payload, out);
}

/// A histogram of values: bucket `i` counts values in `(limits[i-1], limits[i]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub min: f64,
    pub max: f64,
    pub num: f64,
    pub sum: f64,
    pub sum_squares: f64,
    pub limits: Vec<f64>,
    pub counts: Vec<f64>,
}

/// Writes one run's event file.
pub struct EventWriter {
    file: std::fs::File,
    pub path: PathBuf,
}

impl EventWriter {
    /// Creates `dir/events.out.tfevents.<seconds>.<host>` with its `file_version` record.
    pub fn create(dir: &Path) -> Result<Self, DataError> {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "facegpu".into());
        let path = dir.join(format!("events.out.tfevents.{now}.{host}"));
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&path).map_err(io_at(&path))?;
        let mut w = Self { file, path };
        let mut event = Vec::new();
        double_field(1, wall_time(), &mut event);
        bytes_field(3, b"brain.Event:2", &mut event);
        w.record(&event)?;
        Ok(w)
    }

    fn record(&mut self, data: &[u8]) -> Result<(), DataError> {
        let len = (data.len() as u64).to_le_bytes();
        let mut out = Vec::with_capacity(data.len() + 16);
        out.extend(len);
        out.extend(masked_crc(&len).to_le_bytes());
        out.extend(data);
        out.extend(masked_crc(data).to_le_bytes());
        self.file.write_all(&out).and_then(|_| self.file.flush()).map_err(io_at(&self.path))
    }

    fn summary(&mut self, step: u64, value: &[u8]) -> Result<(), DataError> {
        let mut summary = Vec::new();
        bytes_field(1, value, &mut summary);
        let mut event = Vec::new();
        double_field(1, wall_time(), &mut event);
        varint(2 << 3, &mut event);
        varint(step, &mut event);
        bytes_field(5, &summary, &mut event);
        self.record(&event)
    }

    /// A scalar `tag` at `step`.
    pub fn scalar(&mut self, step: u64, tag: &str, v: f64) -> Result<(), DataError> {
        let mut value = Vec::new();
        bytes_field(1, tag.as_bytes(), &mut value);
        varint(2 << 3 | 5, &mut value);
        value.extend((v as f32).to_le_bytes());
        self.summary(step, &value)
    }

    /// A histogram `tag` at `step`.
    pub fn histogram(&mut self, step: u64, tag: &str, h: &Histogram) -> Result<(), DataError> {
        let mut histo = Vec::new();
        for (n, v) in [(1, h.min), (2, h.max), (3, h.num), (4, h.sum), (5, h.sum_squares)] {
            double_field(n, v, &mut histo);
        }
        packed_doubles(6, &h.limits, &mut histo);
        packed_doubles(7, &h.counts, &mut histo);
        let mut value = Vec::new();
        bytes_field(1, tag.as_bytes(), &mut value);
        bytes_field(5, &histo, &mut value);
        self.summary(step, &value)
    }
}

fn wall_time() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// facenet's prelogits histogram: `np.histogram(np.minimum(np.abs(prelogits), max), bins=1000,
/// range=(0, max))`, accumulated over an epoch's batches.
#[derive(Debug, Clone)]
pub struct PrelogitsHistogram {
    pub max: f32,
    pub counts: Vec<u64>,
    pub sum: f64,
    pub sum_squares: f64,
    pub lo: f64,
    pub hi: f64,
}

impl PrelogitsHistogram {
    pub const BINS: usize = 1000;

    pub fn new(max: f32) -> Self {
        Self { max, counts: vec![0; Self::BINS], sum: 0.0, sum_squares: 0.0, lo: f64::INFINITY, hi: f64::NEG_INFINITY }
    }

    pub fn add(&mut self, prelogits: &[f32]) {
        let width = self.max / Self::BINS as f32;
        for &p in prelogits {
            let v = p.abs().min(self.max);
            self.counts[((v / width) as usize).min(Self::BINS - 1)] += 1;
            let v = f64::from(v);
            (self.sum, self.sum_squares, self.lo, self.hi) = (self.sum + v, self.sum_squares + v * v, self.lo.min(v), self.hi.max(v));
        }
    }

    /// As a TensorBoard histogram (bucket limits at the bins' right edges).
    pub fn to_histogram(&self) -> Histogram {
        let width = f64::from(self.max) / Self::BINS as f64;
        Histogram {
            min: if self.lo.is_finite() { self.lo } else { 0.0 },
            max: if self.hi.is_finite() { self.hi } else { 0.0 },
            num: self.counts.iter().sum::<u64>() as f64,
            sum: self.sum,
            sum_squares: self.sum_squares,
            limits: (1..=Self::BINS).map(|i| i as f64 * width).collect(),
            counts: self.counts.iter().map(|&c| c as f64).collect(),
        }
    }
}
