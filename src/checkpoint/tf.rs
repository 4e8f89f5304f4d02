//! TensorFlow checkpoint V2 reader (docs/FACENET.md, "TF checkpoint format"), no TensorFlow or protobuf toolchain.
//!
//! `.index` is a LevelDB table: data blocks of prefix-compressed entries, a restart array, a 5-byte block
//! trailer; a 48-byte footer holds the metaindex and index block handles and the magic number. Key "" is the
//! BundleHeaderProto; every other key is a variable name whose value is a BundleEntryProto (dtype, shape,
//! shard, offset, size, masked crc32c) locating raw little-endian bytes in `.data-SSSSS-of-NNNNN`.

use std::fs;
use std::path::{Path, PathBuf};

use super::{CheckpointError, Tensor, Weights};

const MAGIC: u64 = 0xdb47_7524_8b80_fb57;
const DT_FLOAT: u64 = 1;

/// Where one variable lives in the data shards.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BundleEntry {
    pub dtype: u64,
    pub shape: Vec<usize>,
    pub shard_id: u64,
    pub offset: u64,
    pub size: u64,
    pub crc32c: Option<u32>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }
}

/// Resolves a model folder (through its `checkpoint` file), a prefix, or a `.index` path to the prefix.
pub fn resolve_prefix(path: &Path) -> Result<PathBuf, CheckpointError> {
    if path.is_dir() {
        let ckpt = path.join("checkpoint");
        if let Ok(text) = fs::read_to_string(&ckpt) {
            for line in text.lines() {
                if let Some(rest) = line.trim().strip_prefix("model_checkpoint_path:") {
                    let name = rest.trim().trim_matches('"');
                    let p = Path::new(name);
                    return Ok(if p.is_absolute() { p.to_path_buf() } else { path.join(p) });
                }
            }
        }
        // No usable `checkpoint` file: take the only `.index` in the folder.
        let indexes: Vec<PathBuf> = fs::read_dir(path)
            .map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "index"))
            .collect();
        return match indexes.as_slice() {
            [one] => Ok(one.with_extension("")),
            [] => Err(CheckpointError::NotFound {
                path: path.to_path_buf(),
                detail: "the folder has no `checkpoint` file and no .index file".into(),
            }),
            _ => Err(CheckpointError::NotFound {
                path: path.to_path_buf(),
                detail: "several .index files and no `checkpoint` file naming one".into(),
            }),
        };
    }
    let s = path.to_string_lossy();
    Ok(PathBuf::from(s.strip_suffix(".index").unwrap_or(&s).to_string()))
}

fn read(path: &Path) -> Result<Vec<u8>, CheckpointError> {
    fs::read(path).map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })
}

/// Reads the `.index` table: the variable entries in key order.
pub fn read_index(index_path: &Path) -> Result<Vec<(String, BundleEntry)>, CheckpointError> {
    let data = read(index_path)?;
    let bad = |detail: String| CheckpointError::BadIndex { path: index_path.to_path_buf(), detail };
    if data.len() < 48 {
        return Err(bad(format!("{} bytes is shorter than the 48-byte footer", data.len())));
    }
    let footer = &data[data.len() - 48..];
    let magic = u64::from_le_bytes(footer[40..48].try_into().expect("8 bytes"));
    if magic != MAGIC {
        return Err(bad(format!("footer magic {magic:#018x}, expected {MAGIC:#018x}")));
    }
    let mut c = Cursor { buf: footer, pos: 0 };
    let handles = (c.varint(), c.varint(), c.varint(), c.varint());
    let (Some(_meta_off), Some(_meta_size), Some(index_off), Some(index_size)) = handles else {
        return Err(bad("unreadable block handles in the footer".into()));
    };
    let index_block = block(&data, index_off, index_size).map_err(bad)?;
    let mut entries = Vec::new();
    for (_, handle) in block_entries(index_block).map_err(bad)? {
        let mut h = Cursor { buf: &handle, pos: 0 };
        let (Some(off), Some(size)) = (h.varint(), h.varint()) else {
            return Err(bad("unreadable data block handle".into()));
        };
        for (key, value) in block_entries(block(&data, off, size).map_err(bad)?).map_err(bad)? {
            if key.is_empty() {
                continue; // BundleHeaderProto
            }
            let name = String::from_utf8(key).map_err(|_| bad("a variable name is not UTF-8".into()))?;
            let entry = parse_entry(&value).ok_or_else(|| bad(format!("unreadable BundleEntryProto for '{name}'")))?;
            entries.push((name, entry));
        }
    }
    Ok(entries)
}

/// The contents of the block at (offset, size), without its 5-byte trailer, after checking the trailer's crc.
fn block(data: &[u8], off: u64, size: u64) -> Result<&[u8], String> {
    let (off, size) = (off as usize, size as usize);
    let end = off
        .checked_add(size)
        .filter(|&e| e.checked_add(5).is_some_and(|e5| e5 <= data.len()))
        .ok_or_else(|| format!("block at {off}+{size} runs past the end of the file"))?;
    let contents = &data[off..end];
    if data[end] != 0 {
        return Err(format!("block at {off} is compressed (type {}), which facenet's checkpoints never are", data[end]));
    }
    let stored = u32::from_le_bytes(data[end + 1..end + 5].try_into().expect("4 bytes"));
    let crc = mask(crc32c::crc32c_append(crc32c::crc32c(contents), &data[end..end + 1]));
    if crc != stored {
        return Err(format!("block at {off}: crc32c mismatch (stored {stored:#010x}, computed {crc:#010x})"));
    }
    Ok(contents)
}

/// (key, value) pairs of a table block.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Key/value pairs of one block, undoing the prefix compression.
fn block_entries(b: &[u8]) -> Result<Entries, String> {
    if b.len() < 4 {
        return Err("block shorter than its restart count".into());
    }
    let n_restarts = u32::from_le_bytes(b[b.len() - 4..].try_into().expect("4 bytes")) as usize;
    let restarts_at = b.len().checked_sub(4 + 4 * n_restarts).ok_or("restart array larger than the block")?;
    let mut c = Cursor { buf: &b[..restarts_at], pos: 0 };
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut last: Vec<u8> = Vec::new();
    while !c.done() {
        let (Some(shared), Some(non_shared), Some(vlen)) = (c.varint(), c.varint(), c.varint()) else {
            return Err("truncated block entry".into());
        };
        if shared as usize > last.len() {
            return Err("block entry shares more bytes than the previous key has".into());
        }
        let suffix = c.bytes(non_shared as usize).ok_or("truncated key")?;
        let value = c.bytes(vlen as usize).ok_or("truncated value")?;
        let mut key = last[..shared as usize].to_vec();
        key.extend_from_slice(suffix);
        last.clone_from(&key);
        out.push((key, value.to_vec()));
    }
    Ok(out)
}

fn parse_entry(v: &[u8]) -> Option<BundleEntry> {
    let mut c = Cursor { buf: v, pos: 0 };
    let mut e = BundleEntry::default();
    while !c.done() {
        let tag = c.varint()?;
        match (tag >> 3, tag & 7) {
            (1, 0) => e.dtype = c.varint()?,
            (2, 2) => {
                let len = c.varint()? as usize;
                e.shape = parse_shape(c.bytes(len)?)?;
            }
            (3, 0) => e.shard_id = c.varint()?,
            (4, 0) => e.offset = c.varint()?,
            (5, 0) => e.size = c.varint()?,
            (6, 5) => e.crc32c = Some(u32::from_le_bytes(c.bytes(4)?.try_into().ok()?)),
            (_, 0) => {
                c.varint()?;
            }
            (_, 1) => {
                c.bytes(8)?;
            }
            (_, 2) => {
                let len = c.varint()? as usize;
                c.bytes(len)?;
            }
            (_, 5) => {
                c.bytes(4)?;
            }
            _ => return None,
        }
    }
    Some(e)
}

/// TensorShapeProto: repeated `dim` (field 2) messages with `size` (field 1).
fn parse_shape(v: &[u8]) -> Option<Vec<usize>> {
    let mut c = Cursor { buf: v, pos: 0 };
    let mut dims = Vec::new();
    while !c.done() {
        let tag = c.varint()?;
        match (tag >> 3, tag & 7) {
            (2, 2) => {
                let len = c.varint()? as usize;
                let mut d = Cursor { buf: c.bytes(len)?, pos: 0 };
                let mut size = 0u64;
                while !d.done() {
                    let t = d.varint()?;
                    match t & 7 {
                        0 => {
                            let x = d.varint()?;
                            if t >> 3 == 1 {
                                size = x;
                            }
                        }
                        2 => {
                            let l = d.varint()? as usize;
                            d.bytes(l)?;
                        }
                        _ => return None,
                    }
                }
                dims.push(size as usize);
            }
            (_, 0) => {
                c.varint()?;
            }
            (_, 2) => {
                let len = c.varint()? as usize;
                c.bytes(len)?;
            }
            _ => return None,
        }
    }
    Some(dims)
}

/// LevelDB/TF crc masking.
fn mask(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Loads every float32 variable of a checkpoint, checking sizes, shapes and checksums.
pub fn load(path: &Path) -> Result<Weights, CheckpointError> {
    let prefix = resolve_prefix(path)?;
    let index_path = PathBuf::from(format!("{}.index", prefix.display()));
    if !index_path.exists() {
        return Err(CheckpointError::NotFound { path: index_path, detail: "the checkpoint's .index file does not exist".into() });
    }
    let entries = read_index(&index_path)?;
    let n_shards = entries.iter().map(|(_, e)| e.shard_id + 1).max().unwrap_or(1);
    let shards: Vec<(PathBuf, Vec<u8>)> = (0..n_shards)
        .map(|s| {
            let p = PathBuf::from(format!("{}.data-{s:05}-of-{n_shards:05}", prefix.display()));
            read(&p).map(|d| (p, d))
        })
        .collect::<Result<_, _>>()?;
    let mut weights = Weights { source: prefix.clone(), ..Default::default() };
    for (name, e) in entries {
        let (data_path, data) = &shards[e.shard_id as usize];
        let bad = |detail: String| CheckpointError::BadTensor { path: data_path.clone(), tensor: name.clone(), detail };
        if e.dtype != DT_FLOAT {
            // facenet's checkpoints hold only float32 variables besides global_step (int64); skip others.
            continue;
        }
        let elems: usize = e.shape.iter().product();
        if e.size != (elems * 4) as u64 {
            return Err(bad(format!("shape {:?} needs {} bytes but the index says {}", e.shape, elems * 4, e.size)));
        }
        let end = e.offset.checked_add(e.size).filter(|&end| end <= data.len() as u64).ok_or_else(|| {
            bad(format!("bytes {}..{} lie past the end of the data file ({} bytes): truncated?", e.offset, e.offset + e.size, data.len()))
        })?;
        let bytes = &data[e.offset as usize..end as usize];
        if let Some(stored) = e.crc32c {
            let crc = mask(crc32c::crc32c(bytes));
            if crc != stored {
                return Err(bad(format!("crc32c mismatch (stored {stored:#010x}, computed {crc:#010x}): the data file is corrupt")));
            }
        }
        let values: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect();
        weights.tensors.insert(name, Tensor { shape: e.shape, data: values });
    }
    Ok(weights)
}
