//! Shared test helpers: the one GPU context, seeded inputs and `assert_close`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use facegpu::gpu::{Encoder, GpuContext, GpuError, GpuTensor, KernelShape};

/// The shared context, or `None` (with a printed reason) when no adapter exists and
/// `FACEGPU_REQUIRE_GPU` is not set. With `FACEGPU_REQUIRE_GPU=1` a missing adapter fails the test.
pub fn gpu() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    match CTX.get_or_init(|| GpuContext::new().map_err(|e| e.to_string())) {
        Ok(ctx) => Some(ctx),
        Err(e) if std::env::var("FACEGPU_REQUIRE_GPU").is_ok_and(|v| v == "1") => {
            panic!("FACEGPU_REQUIRE_GPU=1 but no GPU adapter: {e}")
        }
        Err(e) => {
            eprintln!("skipping GPU test: {e}");
            None
        }
    }
}

/// A second context on the same adapter recording the GPU-shaped kernels (`KernelShape::Gpu`: shared-
/// memory tiles), so that the twin tests check them on any adapter, CPU drivers included. `None` as
/// [`gpu`].
pub fn gpu_shaped() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    gpu()?;
    CTX.get_or_init(|| Some(GpuContext::new().expect("a second context on the same adapter").with_kernel_shape(KernelShape::Gpu))).as_ref()
}

/// A context on the same adapter with the GPU-shaped kernels and f16 inference, or `None` (with a printed
/// reason) on a GPU without `SHADER_F16`. lavapipe, CI's adapter, has it: there its absence fails.
pub fn f16_context() -> Option<GpuContext> {
    gpu()?;
    let ctx = GpuContext::new().expect("a second context on the same adapter").with_kernel_shape(KernelShape::Gpu).with_f16(true);
    if !ctx.f16() {
        let info = ctx.adapter.get_info();
        assert_ne!(info.device_type, wgpu::DeviceType::Cpu, "the CPU driver {} has no SHADER_F16", info.name);
        eprintln!("skipping: the adapter {} has no SHADER_F16", info.name);
        return None;
    }
    Some(ctx)
}

/// `ctx`, then the GPU-shaped context where `ctx` records the other shape: the contexts a twin test of a
/// kernel with two shapes runs on.
pub fn both_shapes(ctx: &GpuContext) -> Vec<&GpuContext> {
    let mut out = vec![ctx];
    if ctx.kernel_shape() != KernelShape::Gpu {
        out.extend(gpu_shaped());
    }
    out
}

/// The fixtures folder: `FACEGPU_FIXTURES`, else `../shared/fixtures` beside the checkout.
pub fn fixtures_root() -> PathBuf {
    std::env::var_os("FACEGPU_FIXTURES")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"))
}

/// `rel` under the fixtures folder when it exists. Otherwise the test skips (`None`, with a printed
/// reason), or with `FACEGPU_REQUIRE_FIXTURES=1` (set by `./run test` and CI) fails.
pub fn fixture(rel: &str) -> Option<PathBuf> {
    let path = fixtures_root().join(rel);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("FACEGPU_REQUIRE_FIXTURES").is_ok_and(|v| v == "1") {
        panic!("FACEGPU_REQUIRE_FIXTURES=1 but the fixture {} is absent (set FACEGPU_FIXTURES to the fixtures folder)", path.display());
    }
    eprintln!("skipping: the fixture {} is absent", path.display());
    None
}

/// Returns the context or skips the test (returns early) when there is none.
#[macro_export]
macro_rules! gpu_or_skip {
    () => {
        match common::gpu() {
            Some(ctx) => ctx,
            None => return,
        }
    };
}

/// Deterministic uniform values in [lo, hi) (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40) as f32 / (1u64 << 24) as f32
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| lo + (hi - lo) * self.next_f32()).collect()
    }
    pub fn labels(&mut self, n: usize, classes: u32) -> Vec<u32> {
        (0..n).map(|_| ((self.next_f32() * classes as f32) as u32).min(classes - 1)).collect()
    }
}

/// Asserts `|got - want| <= atol + rtol * |want|` elementwise, printing the first mismatches with
/// their index, the op name and both values.
pub fn assert_close(name: &str, got: &[f32], want: &[f32], atol: f32, rtol: f32) {
    assert_eq!(got.len(), want.len(), "{name}: length {} vs expected {}", got.len(), want.len());
    let bad: Vec<usize> = (0..got.len())
        .filter(|&i| {
            // NaN errors count as mismatches, as `!(err <= tol)` would.
            let within = matches!(
                (got[i] - want[i]).abs().partial_cmp(&(atol + rtol * want[i].abs())),
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            );
            !within || got[i].is_nan() != want[i].is_nan()
        })
        .collect();
    if !bad.is_empty() {
        let max_err = (0..got.len()).map(|i| (got[i] - want[i]).abs()).fold(0f32, f32::max);
        let first: Vec<String> = bad.iter().take(8).map(|&i| format!("[{i}] got {} want {}", got[i], want[i])).collect();
        panic!(
            "{name}: {} of {} elements differ (atol {atol}, rtol {rtol}, max abs err {max_err}); first: {}",
            bad.len(),
            got.len(),
            first.join(", ")
        );
    }
}

/// Records with `f` into one encoder and submits it.
pub fn record(ctx: &GpuContext, f: impl FnOnce(&mut Encoder) -> Result<(), GpuError>) {
    let mut enc = Encoder::new(ctx);
    f(&mut enc).expect("record");
    enc.submit().expect("submit");
}

/// Uploads `data` as a tensor of `shape`.
pub fn up(ctx: &GpuContext, name: &str, shape: &[usize], data: &[f32]) -> GpuTensor {
    GpuTensor::upload(ctx, name, shape, data).expect("upload")
}

/// A protobuf length-delimited field (`number`, `payload`), for tests that write GraphDefs by hand.
pub fn pb_field(number: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = pb_varint(number << 3 | 2);
    out.extend(pb_varint(payload.len() as u64));
    out.extend(payload);
    out
}

/// A protobuf varint.
pub fn pb_varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

/// The five irv1-golden faces in the order of `order.json` (the order of TensorFlow's embeddings).
pub fn golden_faces(golden: &Path) -> Vec<PathBuf> {
    let order: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(golden.join("order.json")).unwrap()).unwrap();
    order["images"].as_array().unwrap().iter().map(|p| golden.join(p.as_str().unwrap())).collect()
}
