//! llvmpipe's vector width per host. Mesa's CPU Vulkan driver compiles every kernel for
//! `LP_NATIVE_VECTOR_WIDTH` bits (4 to 32 lanes), which it reads once, when the driver loads; the best
//! width depends on the CPU (on one AMD host 512 bits is fastest for training, on an Intel host with
//! AVX-512, 256). `facegpu tune` measures the candidates in child processes and saves the fastest
//! here; every later run sets it before the first [`super::GpuContext`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A measurement saved by `facegpu tune`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tuned {
    /// The CPU it was measured on ([`cpu_model`]); another CPU ignores it.
    pub cpu: String,
    /// The fastest width, in bits.
    pub width: u32,
    /// Training images/s at each width measured (bits as the key).
    pub images_per_s: BTreeMap<u32, f64>,
    /// What was measured (the `bench train` arguments).
    pub workload: String,
}

impl Tuned {
    /// The fastest of `images_per_s` (the first of equals).
    pub fn new(cpu: String, images_per_s: BTreeMap<u32, f64>, workload: String) -> Option<Self> {
        let width = images_per_s.iter().fold(None::<(u32, f64)>, |best, (&w, &v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((w, v)),
        })?;
        Some(Self { cpu, width: width.0, images_per_s, workload })
    }
}

/// The CPU's model name and whether it has AVX-512 (`/proc/cpuinfo`), the key of a [`Tuned`].
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| info.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string());
    let model = field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let avx512 = field("flags").is_some_and(|f| f.split_whitespace().any(|x| x == "avx512f"));
    format!("{model}{}", if avx512 { " (avx512f)" } else { "" })
}

/// The widths worth measuring on this CPU: its native SIMD width and the next narrower one.
pub fn candidate_widths() -> Vec<u32> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return vec![256, 512];
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return vec![128, 256];
    }
    vec![128]
}

/// `lavapipe.json` in [`super::cache_dir`].
pub fn cache_path() -> Option<PathBuf> {
    Some(super::cache_dir()?.join("lavapipe.json"))
}

/// The saved measurement at `path`, if it is readable and for this CPU.
pub fn read_tuned(path: &Path) -> Option<Tuned> {
    let t: Tuned = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    (t.cpu == cpu_model()).then_some(t)
}

/// Saves `t` at `path` (a new file renamed over the old one, so a failed write leaves the old one whole).
pub fn write_tuned(path: &Path, t: &Tuned) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(t).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

static CHOICE: OnceLock<String> = OnceLock::new();

/// Sets `LP_NATIVE_VECTOR_WIDTH` for this process unless it is set already: to the width `facegpu tune`
/// saved for this CPU, else 512 bits on x86 CPUs with AVX-512 (16 lanes per instruction instead of 8:
/// faster for training and batch-32 embedding on the hosts measured, see docs/PERFORMANCE.md). Other
/// drivers ignore the variable. Returns the width set, if any; [`width_reason`] says why.
///
/// Results agree within the tests' tolerances at any width (CI runs the kernel tests at four), but not
/// bit for bit: subgroups of 16 sum some reductions in another order, so a training run's losses part
/// in the later digits after a few steps.
///
/// It sets an environment variable, so it must run while the process has a single thread and before the
/// first [`super::GpuContext`]: the `facegpu` binary calls it first thing in `main`.
pub fn choose_width() -> Option<u32> {
    if let Some(v) = std::env::var_os("LP_NATIVE_VECTOR_WIDTH") {
        let _ = CHOICE.set(format!("LP_NATIVE_VECTOR_WIDTH={} from the environment", v.to_string_lossy()));
        return None;
    }
    if let Some(t) = cache_path().and_then(|p| read_tuned(&p)) {
        let figures: Vec<String> = t.images_per_s.iter().map(|(w, v)| format!("{w} bits {v:.2}")).collect();
        std::env::set_var("LP_NATIVE_VECTOR_WIDTH", t.width.to_string());
        let _ = CHOICE.set(format!("{} bits, measured by `facegpu tune` on this CPU (training images/s: {})", t.width, figures.join(", ")));
        return Some(t.width);
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        std::env::set_var("LP_NATIVE_VECTOR_WIDTH", "512");
        let _ = CHOICE.set("512 bits, the default on AVX-512 CPUs (`facegpu tune` measures this CPU)".into());
        return Some(512);
    }
    let _ = CHOICE.set("llvmpipe's own default (`facegpu tune` measures this CPU)".into());
    None
}

/// Why llvmpipe runs at its width in this process, once [`choose_width`] has run.
pub fn width_reason() -> Option<&'static str> {
    CHOICE.get().map(String::as_str)
}
