//! What facegpu keeps per host between runs: llvmpipe's vector width (`facegpu tune` measures the
//! candidate widths and saves the fastest; later runs load llvmpipe at that width, only on the CPU it
//! was measured on, and the environment variable still wins), and the driver's compiled pipelines.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use facegpu::gpu::lavapipe::{self, candidate_widths, cpu_model, Tuned};

fn bin(cache: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_facegpu"));
    c.env("FACEGPU_CACHE_DIR", cache).env_remove("LP_NATIVE_VECTOR_WIDTH");
    c
}

fn info(cache: &std::path::Path, width_env: Option<&str>) -> serde_json::Value {
    let mut c = bin(cache);
    if let Some(w) = width_env {
        c.env("LP_NATIVE_VECTOR_WIDTH", w);
    }
    let out = c.args(["info", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A scratch cache folder, and whether the adapter is llvmpipe (the only driver with a width).
fn setup(name: &str) -> Option<std::path::PathBuf> {
    let ctx = common::gpu()?;
    if !ctx.adapter_name().contains("llvmpipe") {
        eprintln!("the adapter is {}, not llvmpipe: nothing to tune", ctx.adapter_name());
        return None;
    }
    let dir = std::env::temp_dir().join(format!("facegpu-lavapipe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Some(dir)
}

#[test]
fn the_fastest_measured_width_is_chosen() {
    let t = Tuned::new("cpu".into(), BTreeMap::from([(128, 2.0), (256, 3.5), (512, 3.1)]), "w".into()).unwrap();
    assert_eq!(t.width, 256);
    assert!(Tuned::new("cpu".into(), BTreeMap::new(), "w".into()).is_none());
}

#[test]
fn a_saved_width_loads_llvmpipe_at_that_width_only_on_its_cpu_and_the_variable_wins() {
    let Some(dir) = setup("saved") else { return };
    let path = dir.join("lavapipe.json");
    // The narrower candidate: on AVX-512 hosts not the built-in default (512), so the adapter's name
    // (which llvmpipe writes with its width) shows the file was used.
    let width = candidate_widths()[0];
    let figures = BTreeMap::from([(width, 9.0), (width * 2, 1.0)]);
    lavapipe::write_tuned(&path, &Tuned::new(cpu_model(), figures.clone(), "test".into()).unwrap()).unwrap();
    let v = info(&dir, None);
    assert!(v["name"].as_str().unwrap().contains(&format!("{width} bits")), "{v}");
    assert!(v["llvmpipe_width"].as_str().unwrap().contains("measured by `facegpu tune`"), "{v}");

    // The variable set by the user wins over the file.
    let v = info(&dir, Some(&(width * 2).to_string()));
    assert!(v["name"].as_str().unwrap().contains(&format!("{} bits", width * 2)), "{v}");
    assert!(v["llvmpipe_width"].as_str().unwrap().contains("from the environment"), "{v}");

    // Another CPU's measurement is ignored.
    lavapipe::write_tuned(&path, &Tuned::new("another CPU".into(), figures, "test".into()).unwrap()).unwrap();
    let v = info(&dir, None);
    assert!(!v["llvmpipe_width"].as_str().unwrap().contains("measured"), "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tune_measures_every_candidate_width_and_saves_the_fastest() {
    let Some(dir) = setup("tune") else { return };
    // Tiny training steps: the point is the mechanism, not the figures.
    let out = bin(&dir).args(["tune", "--batch-size", "2", "--image-size", "96", "--reps", "1", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed: Tuned = serde_json::from_slice(&out.stdout).unwrap();
    let saved = lavapipe::read_tuned(&dir.join("lavapipe.json")).expect("a file for this CPU");
    assert_eq!(printed, saved);
    assert_eq!(saved.images_per_s.keys().copied().collect::<Vec<_>>(), candidate_widths());
    assert!(saved.images_per_s.values().all(|&v| v > 0.0), "{saved:?}");
    let best = saved.images_per_s.iter().max_by(|a, b| a.1.total_cmp(b.1)).unwrap();
    assert_eq!(saved.width, *best.0);
    assert_eq!(saved.cpu, cpu_model());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compiled_pipelines_are_kept_on_disk_unless_turned_off_and_reading_them_changes_nothing() {
    let Some(ctx) = common::gpu() else { return };
    let dir = std::env::temp_dir().join(format!("facegpu-pipelines-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let photo = common::fixtures_root().join("mtcnn/images");
    let Some(photo) = std::fs::read_dir(&photo).ok().and_then(|mut d| d.next()).and_then(|e| e.ok()).map(|e| e.path()) else {
        return;
    };
    let detect = |off: bool| {
        let mut c = bin(&dir);
        if off {
            c.env("FACEGPU_PIPELINE_CACHE", "0");
        }
        let out = c.args(["detect", "--detect-device", "gpu", "--json"]).arg(&photo).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    };
    let without = detect(true);
    assert!(!dir.join("pipelines").exists(), "FACEGPU_PIPELINE_CACHE=0 writes nothing");
    let first = detect(false);
    let files: Vec<_> = std::fs::read_dir(dir.join("pipelines")).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    // wgpu keeps pipeline caches on Vulkan (wgpu::util::pipeline_cache_key); other backends may have none.
    if ctx.summary().backend == "Vulkan" || !files.is_empty() {
        assert_eq!(files.len(), 1, "one file per adapter key: {files:?}");
        assert!(std::fs::metadata(&files[0]).unwrap().len() > 0);
        assert!(!files[0].to_string_lossy().contains(".tmp"), "no temporary file left: {files:?}");
    }
    // A run that reads the cache detects the same faces.
    assert_eq!(detect(false), first);
    assert_eq!(first, without);
    let _ = std::fs::remove_dir_all(&dir);
}
