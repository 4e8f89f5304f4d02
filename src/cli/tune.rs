//! `facegpu tune`: lavapipe's vector width measured on this CPU.

use std::collections::BTreeMap;

use facegpu::gpu::lavapipe::{self, Tuned};

use super::BoxError;

#[derive(clap::Args)]
pub(crate) struct TuneCmd {
    /// Batch size of the training steps measured.
    #[arg(long, default_value_t = 8)]
    pub(crate) batch_size: usize,
    /// Input size of the training steps measured.
    #[arg(long, default_value_t = 160)]
    pub(crate) image_size: usize,
    /// Timed training steps per width (after one warm-up).
    #[arg(long, default_value_t = 2)]
    pub(crate) reps: usize,
    /// Print the saved measurement as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Runs `bench train` once per candidate width, each in a child process (the driver reads the width
/// when it loads), and saves the fastest where [`lavapipe::cache_path`] says; later runs use it.
pub(crate) fn tune(args: TuneCmd) -> Result<(), BoxError> {
    let TuneCmd { batch_size, image_size, reps, json } = args;
    let path = lavapipe::cache_path().ok_or("no cache folder: set FACEGPU_CACHE_DIR, XDG_CACHE_HOME or HOME")?;
    let exe = std::env::current_exe()?;
    let bench_args = [
        "--batch-size".to_string(),
        batch_size.to_string(),
        "--image-size".into(),
        image_size.to_string(),
        "--reps".into(),
        reps.max(1).to_string(),
    ];
    let mut figures = BTreeMap::new();
    for width in lavapipe::candidate_widths() {
        if !json {
            eprintln!("measuring {width} bits ...");
        }
        let out = std::process::Command::new(&exe)
            .args(["bench", "train", "--json"])
            .args(&bench_args)
            .env("LP_NATIVE_VECTOR_WIDTH", width.to_string())
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let report = stdout.lines().rev().find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok());
        let Some(report) = report.filter(|_| out.status.success()) else {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("bench train at {width} bits failed ({}): {}", out.status, err.trim()).into());
        };
        let adapter = report["adapter"].as_str().unwrap_or_default();
        if !adapter.contains("llvmpipe") {
            return Err(format!("the adapter is {adapter}, not llvmpipe: there is no vector width to tune").into());
        }
        let speed = report["train_images_per_s"].as_f64().ok_or("bench train printed no train_images_per_s")?;
        figures.insert(width, speed);
    }
    let workload = format!("bench train {}", bench_args.join(" "));
    let tuned = Tuned::new(lavapipe::cpu_model(), figures, workload).ok_or("no width was measured")?;
    lavapipe::write_tuned(&path, &tuned).map_err(|e| format!("{}: {e}", path.display()))?;
    if json {
        println!("{}", serde_json::to_string(&tuned)?);
    } else {
        for (w, v) in &tuned.images_per_s {
            println!("{w} bits: {v:.2} training images/s");
        }
        println!("{} bits saved for {} in {}", tuned.width, tuned.cpu, path.display());
    }
    Ok(())
}
