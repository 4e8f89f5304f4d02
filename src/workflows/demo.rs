//! `facegpu demo`: the whole job on faces embedded in the binary, with no files to fetch. It writes the
//! sample photos out, detects and aligns them with MTCNN, trains Inception-ResNet-v1 briefly at 80
//! pixels, evaluates the result on pairs built from the same people with facenet's LFW protocol, and
//! writes the training curves and the ROC curve.

use crate::data::io_at;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::eval::lfw;
use crate::gpu::GpuContext;
use crate::kernels::optimizer::OptimizerKind;
use crate::models::mtcnn::{DetectOptions, Mtcnn};
use crate::progress::{Event, Progress};
use crate::workflows::align::{align, AlignMode, AlignOptions};
use crate::workflows::embed::Embedder;
use crate::workflows::eval::{eval_lfw, EvalOptions, EvalReport};
use crate::workflows::train::{train, TrainConfig, TrainSummary};

/// (person, file, JPEG bytes): eight photos of each of five people from dlib's examples (Boost licence,
/// see weights/demo-faces/README.md).
pub const SAMPLES: &[(&str, &str, &[u8])] = &[
    ("John_Salley", "000179_02159509.jpg", include_bytes!("../../weights/demo-faces/John_Salley/000179_02159509.jpg")),
    ("John_Salley", "000183_02159543.jpg", include_bytes!("../../weights/demo-faces/John_Salley/000183_02159543.jpg")),
    ("John_Salley", "000186_02159346.jpg", include_bytes!("../../weights/demo-faces/John_Salley/000186_02159346.jpg")),
    ("John_Salley", "000189_02159361.jpg", include_bytes!("../../weights/demo-faces/John_Salley/000189_02159361.jpg")),
    ("John_Salley", "000190_02159501.jpg", include_bytes!("../../weights/demo-faces/John_Salley/000190_02159501.jpg")),
    ("John_Salley", "000192_02159531.jpg", include_bytes!("../../weights/demo-faces/John_Salley/000192_02159531.jpg")),
    ("John_Salley", "000194_02159572.jpg", include_bytes!("../../weights/demo-faces/John_Salley/000194_02159572.jpg")),
    ("John_Salley", "000197_02159322.jpg", include_bytes!("../../weights/demo-faces/John_Salley/000197_02159322.jpg")),
    ("John_Savage", "000264_01099001.jpg", include_bytes!("../../weights/demo-faces/John_Savage/000264_01099001.jpg")),
    ("John_Savage", "000274_01099061.jpg", include_bytes!("../../weights/demo-faces/John_Savage/000274_01099061.jpg")),
    ("John_Savage", "000277_01099000.jpg", include_bytes!("../../weights/demo-faces/John_Savage/000277_01099000.jpg")),
    ("John_Savage", "000289_01099139.jpg", include_bytes!("../../weights/demo-faces/John_Savage/000289_01099139.jpg")),
    ("John_Savage", "000290_01099067.jpg", include_bytes!("../../weights/demo-faces/John_Savage/000290_01099067.jpg")),
    ("John_Savage", "000290_01099090.jpg", include_bytes!("../../weights/demo-faces/John_Savage/000290_01099090.jpg")),
    ("John_Savage", "000291_01099023.jpg", include_bytes!("../../weights/demo-faces/John_Savage/000291_01099023.jpg")),
    ("John_Savage", "000291_01099214.jpg", include_bytes!("../../weights/demo-faces/John_Savage/000291_01099214.jpg")),
    ("John_Schneider", "000288_00925786.jpg", include_bytes!("../../weights/demo-faces/John_Schneider/000288_00925786.jpg")),
    ("John_Schneider", "000302_00925785.jpg", include_bytes!("../../weights/demo-faces/John_Schneider/000302_00925785.jpg")),
    ("John_Schneider", "000307_00925823.jpg", include_bytes!("../../weights/demo-faces/John_Schneider/000307_00925823.jpg")),
    ("John_Schneider", "000325_00925954.jpg", include_bytes!("../../weights/demo-faces/John_Schneider/000325_00925954.jpg")),
    ("John_Schneider", "000326_00925765.jpg", include_bytes!("../../weights/demo-faces/John_Schneider/000326_00925765.jpg")),
    ("John_Schneider", "000326_00926089.jpg", include_bytes!("../../weights/demo-faces/John_Schneider/000326_00926089.jpg")),
    ("John_Schneider", "000326_00926128.jpg", include_bytes!("../../weights/demo-faces/John_Schneider/000326_00926128.jpg")),
    ("John_Schneider", "000326_00926139.jpg", include_bytes!("../../weights/demo-faces/John_Schneider/000326_00926139.jpg")),
    ("John_Shimkus", "000373_03228153.jpg", include_bytes!("../../weights/demo-faces/John_Shimkus/000373_03228153.jpg")),
    ("John_Shimkus", "000375_03227651.jpg", include_bytes!("../../weights/demo-faces/John_Shimkus/000375_03227651.jpg")),
    ("John_Shimkus", "000376_02340068.jpg", include_bytes!("../../weights/demo-faces/John_Shimkus/000376_02340068.jpg")),
    ("John_Shimkus", "000378_02340151.jpg", include_bytes!("../../weights/demo-faces/John_Shimkus/000378_02340151.jpg")),
    ("John_Shimkus", "000378_03227610.jpg", include_bytes!("../../weights/demo-faces/John_Shimkus/000378_03227610.jpg")),
    ("John_Shimkus", "000383_03227939.jpg", include_bytes!("../../weights/demo-faces/John_Shimkus/000383_03227939.jpg")),
    ("John_Shimkus", "000385_03227766.jpg", include_bytes!("../../weights/demo-faces/John_Shimkus/000385_03227766.jpg")),
    ("John_Shimkus", "000388_03227773.jpg", include_bytes!("../../weights/demo-faces/John_Shimkus/000388_03227773.jpg")),
    ("John_Simm", "000288_00470387.jpg", include_bytes!("../../weights/demo-faces/John_Simm/000288_00470387.jpg")),
    ("John_Simm", "000297_00470170.jpg", include_bytes!("../../weights/demo-faces/John_Simm/000297_00470170.jpg")),
    ("John_Simm", "000300_00470148.jpg", include_bytes!("../../weights/demo-faces/John_Simm/000300_00470148.jpg")),
    ("John_Simm", "000304_00470122.jpg", include_bytes!("../../weights/demo-faces/John_Simm/000304_00470122.jpg")),
    ("John_Simm", "000305_00470162.jpg", include_bytes!("../../weights/demo-faces/John_Simm/000305_00470162.jpg")),
    ("John_Simm", "000305_00470717.jpg", include_bytes!("../../weights/demo-faces/John_Simm/000305_00470717.jpg")),
    ("John_Simm", "000306_00470222.jpg", include_bytes!("../../weights/demo-faces/John_Simm/000306_00470222.jpg")),
    ("John_Simm", "000306_00470223.jpg", include_bytes!("../../weights/demo-faces/John_Simm/000306_00470223.jpg")),
];

pub struct DemoReport {
    pub out: PathBuf,
    pub train: TrainSummary,
    pub eval: EvalReport,
    pub roc: PathBuf,
    pub curves: PathBuf,
    pub seconds: f64,
}

/// Runs the demo in `out` (created; an existing demo there is replaced, nothing else is touched).
pub fn demo(ctx: &GpuContext, out: &Path, epochs: usize, progress: &mut dyn Progress) -> Result<DemoReport, crate::workflows::Error> {
    let t0 = Instant::now();
    let marker = out.join(".facegpu-demo");
    if out.exists() {
        if !marker.exists() {
            return Err(crate::workflows::invalid!("{}: exists and is not a facegpu demo folder; choose another --out", out.display()));
        }
        std::fs::remove_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(&marker, "written by facegpu demo\n").map_err(io_at(&marker))?;
    // 1. The sample photos.
    let raw = out.join("photos");
    for (person, file, bytes) in SAMPLES {
        let dir = raw.join(person);
        std::fs::create_dir_all(&dir).map_err(io_at(&dir))?;
        let path = dir.join(file);
        std::fs::write(&path, bytes).map_err(io_at(&path))?;
    }
    progress.report(Event::Notice(format!("1/4 wrote {} sample photos of 5 people to {}", SAMPLES.len(), raw.display())));
    // 2. Detect and align (facenet's crop, scaled for an 80-pixel model: 92 pixels, margin 22).
    let aligned = out.join("aligned");
    let mut mtcnn = Mtcnn::load_from(ctx, None)?;
    let opts = AlignOptions {
        image_size: 92,
        margin: 22.0,
        detect_multiple_faces: false,
        random_order: false,
        batch: 8,
        mode: AlignMode::Crop,
        retry_failed: false,
        shard: None,
    };
    let a = align(ctx, &mut mtcnn, &DetectOptions::default(), &raw, &aligned, &opts, progress)?;
    progress.report(Event::Notice(format!("2/4 aligned {} faces with MTCNN into {}", a.faces_written, aligned.display())));
    // 3. Train briefly: softmax + center loss, ADAM, random crops and flips.
    let mut cfg = TrainConfig::new(aligned.clone(), out.join("models"));
    cfg.image_size = 80;
    cfg.batch_size = 12;
    cfg.epoch_size = 4;
    cfg.max_nrof_epochs = epochs;
    cfg.optimizer = OptimizerKind::Adam;
    cfg.learning_rate = 0.01;
    cfg.random_crop = true;
    cfg.random_flip = true;
    cfg.center_loss_factor = 0.01;
    cfg.moving_average_decay = 0.99;
    let summary = train(ctx, &cfg, None, Arc::new(AtomicBool::new(false)), progress)?;
    progress.report(Event::Notice(format!(
        "3/4 trained Inception-ResNet-v1 for {} epochs: {}",
        summary.epochs.len(),
        summary.run_dir.display()
    )));
    // 4. Evaluate on pairs of the same people (the training photos: a demo of the protocol, not a benchmark).
    let pairs_dir = out.join("pairs");
    lfw::make_layout(&aligned, &pairs_dir)?;
    let pairs = pairs_dir.join("pairs.txt");
    lfw::write_pairs(&pairs_dir, &pairs, 10)?;
    let mut model = Embedder::load(ctx, &summary.run_dir.join("model.safetensors"), None, 80)?;
    let eval = eval_lfw(ctx, &mut model, &pairs_dir, &pairs, &EvalOptions::default(), None, progress)?;
    let roc = out.join("roc.png");
    eval.save_roc(&roc)?;
    let curves = summary.run_dir.join("curves.png");
    progress.report(Event::Notice(format!("4/4 evaluated {} pairs with facenet's 10-fold protocol", eval.pairs)));
    Ok(DemoReport { out: out.to_path_buf(), train: summary, eval, roc, curves, seconds: t0.elapsed().as_secs_f64() })
}
