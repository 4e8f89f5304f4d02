//! The file readers fed mutated and random bytes: never a panic, never an allocation larger than the
//! file justifies. A fixed number of seeded cases per reader, so CI runs the same cases every time.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::Rng;

/// The system allocator, noting the largest single allocation made on a thread that is measuring.
struct Largest;

static LARGEST: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
}

unsafe impl GlobalAlloc for Largest {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if MEASURING.with(Cell::get) {
            LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if MEASURING.with(Cell::get) {
            LARGEST.fetch_max(new_size, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Largest = Largest;

/// Tests of this file share `LARGEST`: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Mutations of `seed`'s bytes: flipped bytes, a truncation, inserted runs, large varint-like bytes.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    let pick = |rng: &mut Rng, n: usize| ((rng.next_f32() * n as f32) as usize).min(n.saturating_sub(1));
    match pick(rng, 5) {
        0 => {
            for _ in 0..1 + pick(rng, 8) {
                let i = pick(rng, b.len());
                b[i] ^= 1 << pick(rng, 8);
            }
        }
        1 => b.truncate(pick(rng, b.len())),
        2 => {
            let i = pick(rng, b.len());
            let run: Vec<u8> = (0..1 + pick(rng, 64)).map(|_| pick(rng, 256) as u8).collect();
            b.splice(i..i, run);
        }
        3 => {
            let i = pick(rng, b.len());
            for v in b.iter_mut().skip(i).take(1 + pick(rng, 10)) {
                *v = 0xff;
            }
        }
        _ => {
            let i = pick(rng, b.len());
            b[i] = pick(rng, 256) as u8;
        }
    }
    b
}

/// Runs `read` on `cases` mutations of `seed` and on random byte strings, each written to `file`:
/// none may panic, and no single allocation may exceed `factor` times the file's size plus 64 KiB plus
/// `extra`.
fn fuzz(name: &str, seed: &[u8], file: &Path, cases: usize, factor: usize, extra: usize, read: impl Fn(&Path) -> bool) {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng::new(name.len() as u64 * 7919 + seed.len() as u64);
    let (mut accepted, mut worst) = (0, 0f64);
    for case in 0..cases {
        let bytes = if case % 8 == 7 {
            let n = (rng.next_f32() * 4096.0) as usize;
            (0..n).map(|_| (rng.next_f32() * 256.0) as u8).collect()
        } else {
            mutate(&mut rng, seed)
        };
        std::fs::write(file, &bytes).unwrap();
        LARGEST.store(0, Ordering::Relaxed);
        MEASURING.with(|m| m.set(true));
        let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| read(file)));
        MEASURING.with(|m| m.set(false));
        let ok = ok.unwrap_or_else(|_| panic!("{name}: case {case} ({} bytes) panicked", bytes.len()));
        accepted += usize::from(ok);
        let largest = LARGEST.load(Ordering::Relaxed);
        let bound = factor * bytes.len() + (64 << 10) + extra;
        worst = worst.max(largest as f64 / bytes.len().max(1) as f64);
        assert!(largest <= bound, "{name}: case {case} allocated {largest} bytes at once for a {}-byte file", bytes.len());
    }
    println!("{name}: {cases} cases, {accepted} read without error, largest allocation {worst:.2}x the file");
}

fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("facegpu-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn safetensors_reader_survives_mutated_and_random_bytes() {
    let seed = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/mtcnn.safetensors")).unwrap();
    // Each tensor is read into a Vec<f32>: at most the file's bytes (f32) or twice them (f16).
    fuzz("safetensors", &seed, &scratch("w.safetensors"), 400, 2, 0, |p| facegpu::checkpoint::safetensors::load(p).is_ok());
}

#[test]
fn npy_reader_survives_mutated_and_random_bytes() {
    let seed = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/metrics_embeddings.npy")).unwrap();
    fuzz("npy", &seed, &scratch("e.npy"), 800, 2, 0, |p| facegpu::data::npy::read_f32(p).is_ok());
}

#[test]
fn lfw_pairs_reader_survives_mutated_and_random_bytes() {
    let Some(pairs) = common::fixture("lfw/pairs.txt") else { return };
    let text = std::fs::read_to_string(pairs).unwrap();
    let seed: String = text.lines().take(200).map(|l| format!("{l}\n")).collect();
    // Parsed pairs hold a name per line: a few times the text.
    fuzz("pairs", seed.as_bytes(), &scratch("pairs.txt"), 800, 4, 0, |p| facegpu::eval::lfw::read_pairs(p).is_ok());
}

/// A Const node `name` holding a float tensor of `shape`: `content` as tensor_content, or one float_val.
fn const_node(name: &str, shape: &[u64], content: Option<&[f32]>, splat: f32) -> Vec<u8> {
    let dims: Vec<u8> =
        shape.iter().flat_map(|&d| common::pb_field(2, &[common::pb_varint(1 << 3), common::pb_varint(d)].concat())).collect();
    let mut tensor = [common::pb_varint(1 << 3), common::pb_varint(1), common::pb_field(2, &dims)].concat();
    match content {
        Some(c) => tensor.extend(common::pb_field(4, &c.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())),
        None => tensor.extend(common::pb_field(5, &splat.to_le_bytes())),
    }
    let attr = [common::pb_field(1, b"value"), common::pb_field(2, &common::pb_field(8, &tensor))].concat();
    common::pb_field(1, &[common::pb_field(1, name.as_bytes()), common::pb_field(2, b"Const"), common::pb_field(5, &attr)].concat())
}

#[test]
fn frozen_graph_reader_survives_mutated_and_random_bytes() {
    // A small GraphDef: an input placeholder and two float constants (one by tensor_content, one a
    // float_val splat), the forms a .pb holds.
    let seed = [
        common::pb_field(1, &[common::pb_field(1, b"input"), common::pb_field(2, b"Placeholder")].concat()),
        const_node("InceptionResnetV1/w0", &[2], Some(&[1.0, 2.0]), 0.0),
        const_node("InceptionResnetV1/w1", &[3], None, 3.0),
    ]
    .concat();
    let w = facegpu::checkpoint::graphdef::load_bytes(&seed, Path::new("seed.pb")).unwrap();
    assert_eq!(w.tensors["InceptionResnetV1/w0"].data, [1.0, 2.0]);
    assert_eq!(w.tensors["InceptionResnetV1/w1"].data, [3.0, 3.0, 3.0]);
    // A float_val splat fills its shape from 4 bytes (TensorFlow stores all-equal tensors so): the
    // reader caps it at MAX_SPLAT values, the allowance here.
    let splat = facegpu::checkpoint::graphdef::MAX_SPLAT * 4;
    fuzz("pb", &seed, &scratch("g.pb"), 800, 4, splat, |p| facegpu::checkpoint::graphdef::load(p).is_ok());
}

#[test]
fn tf_checkpoint_index_reader_survives_mutated_and_random_bytes() {
    let Some(ckpt) = common::fixture("facenet-20170512-110547") else { return };
    let index = ckpt.join("model-20170512-110547.ckpt-250000.index");
    let seed = std::fs::read(&index).unwrap();
    // The index is parsed into its entries: names and shapes, a few times the file.
    fuzz("tf index", &seed, &scratch("m.index"), 800, 8, 0, |p| facegpu::checkpoint::tf::read_index(p).is_ok());
}

#[test]
fn tf_checkpoint_with_a_mutated_index_or_data_file_is_refused_or_read_whole() {
    let Some(ckpt) = common::fixture("facenet-20170512-110547") else { return };
    let name = "model-20170512-110547.ckpt-250000";
    let (index, data) = (std::fs::read(ckpt.join(format!("{name}.index"))).unwrap(), ckpt.join(format!("{name}.data-00000-of-00001")));
    let dir = scratch("ckpt");
    std::fs::create_dir_all(&dir).unwrap();
    let _ = std::fs::remove_file(dir.join("m.data-00000-of-00001"));
    if std::fs::hard_link(&data, dir.join("m.data-00000-of-00001")).is_err() {
        std::fs::copy(&data, dir.join("m.data-00000-of-00001")).unwrap();
    }
    let data_len = std::fs::metadata(&data).unwrap().len() as usize;
    // The whole load: a mutated index beside the real 91 MB data file. A tensor may be as large as the
    // data file justifies, never more.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut rng = Rng::new(17);
    for case in 0..60 {
        let bytes = mutate(&mut rng, &index);
        std::fs::write(dir.join("m.index"), &bytes).unwrap();
        LARGEST.store(0, Ordering::Relaxed);
        MEASURING.with(|m| m.set(true));
        let r = std::panic::catch_unwind(|| facegpu::checkpoint::tf::load(&dir.join("m")).map(|w| w.tensors.len()));
        MEASURING.with(|m| m.set(false));
        let r = r.unwrap_or_else(|_| panic!("tf load: case {case} panicked"));
        let largest = LARGEST.load(Ordering::Relaxed);
        assert!(largest <= data_len + bytes.len() + (64 << 10), "tf load: case {case} allocated {largest} bytes at once");
        if let Ok(n) = r {
            assert_eq!(n, 490, "case {case}: a load that succeeds has every variable");
        }
    }
}
