//! `facegpu train` end to end on real faces: a short softmax + center-loss run, exact resume after an
//! interrupt, the learning-rate schedule file, a corrupt image, and fine-tuning facenet's checkpoint.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use facegpu::checkpoint::safetensors;
use facegpu::gpu::GpuContext;
use facegpu::kernels::optimizer::OptimizerKind;
use facegpu::models::mtcnn::{DetectOptions, Mtcnn};
use facegpu::workflows::align::{align, AlignMode, AlignOptions};
use facegpu::workflows::train::train;
use facegpu::workflows::train::{learning_rate_from_file, TrainConfig};

/// A fresh directory under cargo's per-target scratch folder (`target/tmp`): the aligned faces are
/// shared by several tests, so nothing removes them at the end, and the next run starts by removing
/// them instead of leaving one set per run behind.
fn tmp(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("train-test-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// `src` aligned by MTCNN (facenet's crop) at `size` with `margin`, once per test binary per source.
fn aligned(ctx: &GpuContext, src: &Path, size: u32, margin: f64) -> PathBuf {
    static DONE: OnceLock<std::sync::Mutex<Vec<(PathBuf, PathBuf)>>> = OnceLock::new();
    let done = DONE.get_or_init(Default::default);
    let mut done = done.lock().unwrap();
    if let Some((_, out)) = done.iter().find(|(s, _)| s == src) {
        return out.clone();
    }
    let out = tmp(&format!("aligned-{}", src.file_name().unwrap().to_string_lossy()));
    let mut mtcnn = Mtcnn::load_from(ctx, None).unwrap();
    let opts = AlignOptions {
        image_size: size,
        margin,
        detect_multiple_faces: false,
        random_order: false,
        batch: 4,
        mode: AlignMode::Crop,
        retry_failed: false,
        shard: None,
    };
    align(ctx, &mut mtcnn, &DetectOptions::default(), src, &out, &opts, &mut ()).unwrap();
    done.push((src.to_path_buf(), out.clone()));
    out
}

/// A small, fast run on the johns (5 people x 11 photos) at 80 pixels.
fn johns_config(ctx: &GpuContext, name: &str) -> Option<TrainConfig> {
    let src = common::fixture("faces/johns")?;
    let data = aligned(ctx, &src, 92, 22.0);
    let mut c = TrainConfig::new(data, tmp(name));
    c.image_size = 80;
    c.batch_size = 12;
    c.epoch_size = 3;
    c.max_nrof_epochs = 3;
    c.optimizer = OptimizerKind::Adam;
    c.learning_rate = 0.01;
    c.random_crop = true;
    c.random_flip = true;
    c.center_loss_factor = 0.01;
    c.moving_average_decay = 0.999;
    Some(c)
}

fn no_stop() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

#[test]
fn softmax_center_loss_run_on_johns_lowers_the_loss_and_beats_chance() {
    let ctx = gpu_or_skip!();
    let Some(mut cfg) = johns_config(ctx, "short") else { return };
    // facenet's split: 3 of each person's 11 photos held out (floor(11 * 0.8) = 8 train), validated in
    // inference mode every 3 epochs.
    cfg.validation_set_split_ratio = 0.2;
    cfg.validate_every_n_epochs = 3;
    let s = train(ctx, &cfg, None, no_stop(), &mut ()).unwrap();
    for l in &s.epochs {
        println!(
            "epoch {}: loss {:.4} xent {:.4} center {:.4} accuracy {:.3} ({:.1} img/s)",
            l.epoch, l.loss, l.cross_entropy, l.center_loss, l.accuracy, l.images_per_s
        );
    }
    assert_eq!(s.epochs.len(), 3);
    let (first, last) = (&s.epochs[0], &s.epochs[2]);
    assert!(last.loss < 0.75 * first.loss, "loss fell from {} to {}", first.loss, last.loss);
    // Chance is 1/5 over five identities.
    assert!(last.accuracy >= 0.5, "training accuracy {} should be well above chance (0.2)", last.accuracy);
    let (vx, va) = (last.val_cross_entropy.unwrap(), last.val_accuracy.unwrap());
    println!("validation: cross-entropy {vx:.4}, accuracy {va:.3} (3 held-out photos per person)");
    assert!(vx.is_finite() && (0.0..=1.0).contains(&va));
    assert!(first.val_accuracy.is_none(), "validation runs every 3 epochs");
    for f in ["args.json", "log.jsonl", "curves.png", "model.safetensors", "checkpoint.safetensors"] {
        assert!(s.run_dir.join(f).is_file(), "{f} written");
    }
    // The log's field names are an interface.
    let line: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(s.run_dir.join("log.jsonl")).unwrap().lines().next().unwrap()).unwrap();
    for k in ["epoch", "loss", "cross_entropy", "center_loss", "accuracy", "learning_rate", "seconds"] {
        assert!(line.get(k).is_some(), "log.jsonl lacks {k}");
    }
    // model.safetensors is an inference model embed/eval/compare load.
    let mut e = facegpu::workflows::embed::Embedder::load(ctx, &s.run_dir.join("model.safetensors"), None, 80).unwrap();
    let one = std::fs::read_dir(cfg.data_dir.join("John_Simm")).unwrap().next().unwrap().unwrap().path();
    let emb = e.embed_files(ctx, &[one], 1, &mut ()).unwrap();
    assert_eq!(emb[0].1.len(), 128);
    let _ = std::fs::remove_dir_all(&cfg.models_base_dir);
}

#[test]
fn resume_after_an_interrupt_gives_the_same_weights_as_an_uninterrupted_run() {
    let ctx = gpu_or_skip!();
    let Some(mut cfg) = johns_config(ctx, "whole") else { return };
    cfg.batch_size = 6;
    cfg.epoch_size = 2;
    cfg.max_nrof_epochs = 2;
    cfg.keep_probability = 0.8;
    let whole = train(ctx, &cfg, None, no_stop(), &mut ()).unwrap();

    let mut cut = cfg.clone();
    cut.models_base_dir = tmp("cut");
    // Ctrl-C already pressed: the run stops after its first step and saves a mid-epoch checkpoint.
    let first = train(ctx, &cut, None, Arc::new(AtomicBool::new(true)), &mut ()).unwrap();
    assert!(first.stopped.contains("interrupted after batch 1 of epoch 1"), "{}", first.stopped);
    let resumed = train(ctx, &cut, Some(&first.run_dir), no_stop(), &mut ()).unwrap();
    assert_eq!(resumed.run_dir, first.run_dir);
    assert_eq!(resumed.epochs.len(), 2);

    let a = safetensors::load(&whole.run_dir.join("checkpoint.safetensors")).unwrap();
    let b = safetensors::load(&resumed.run_dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!(a.tensors.len(), b.tensors.len());
    let mut max_diff = 0f32;
    for (name, t) in &a.tensors {
        let u = &b.tensors[name];
        assert_eq!(t.shape, u.shape, "{name}");
        max_diff = t.data.iter().zip(&u.data).map(|(x, y)| (x - y).abs()).fold(max_diff, f32::max);
    }
    // Same data order, augmentation, dropout masks and kernels: bit for bit.
    assert_eq!(max_diff, 0.0, "weights, slots, moving averages and centers after resume differ by up to {max_diff}");
    let _ = std::fs::remove_dir_all(&cfg.models_base_dir);
    let _ = std::fs::remove_dir_all(&cut.models_base_dir);
}

#[test]
fn schedule_file_drives_the_learning_rate_and_minus_one_ends_training() {
    let dir = tmp("schedule");
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("lr.txt");
    std::fs::write(&f, "# CASIA-like\n0: 0.05\n2: 0.005 # second\n3: -1\n").unwrap();
    assert_eq!(learning_rate_from_file(&f, 1).unwrap(), 0.05);
    assert_eq!(learning_rate_from_file(&f, 2).unwrap(), 0.005);
    assert_eq!(learning_rate_from_file(&f, 3).unwrap(), -1.0);
    std::fs::write(dir.join("bad.txt"), "0: 0.1\nten: 0.01\n").unwrap();
    let err = learning_rate_from_file(&dir.join("bad.txt"), 5).unwrap_err().to_string();
    assert!(err.contains("bad.txt:2") && err.contains("'ten'"), "{err}");

    let ctx = gpu_or_skip!();
    let Some(mut cfg) = johns_config(ctx, "sched") else { return };
    cfg.learning_rate = -1.0;
    cfg.learning_rate_schedule_file = Some(f);
    cfg.epoch_size = 1;
    cfg.batch_size = 4;
    cfg.max_nrof_epochs = 10;
    let s = train(ctx, &cfg, None, no_stop(), &mut ()).unwrap();
    let lrs: Vec<f64> = s.epochs.iter().map(|l| l.learning_rate).collect();
    assert_eq!(lrs, vec![0.05, 0.005], "epoch learning rates");
    assert!(s.stopped.contains("epoch 3"), "{}", s.stopped);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&cfg.models_base_dir);
}

#[test]
fn a_corrupt_image_is_reported_and_skipped_without_stopping_the_epoch() {
    let ctx = gpu_or_skip!();
    let Some(mut cfg) = johns_config(ctx, "corrupt") else { return };
    // A copy of two identities plus a file that is not an image.
    let data = tmp("corrupt-data");
    for p in ["John_Salley", "John_Simm"] {
        std::fs::create_dir_all(data.join(p)).unwrap();
        for e in std::fs::read_dir(cfg.data_dir.join(p)).unwrap() {
            let e = e.unwrap().path();
            std::fs::copy(&e, data.join(p).join(e.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(data.join("John_Simm/broken.png"), b"not a png").unwrap();
    cfg.data_dir = data.clone();
    cfg.epoch_size = 2;
    cfg.batch_size = 23;
    cfg.max_nrof_epochs = 1;
    let s = train(ctx, &cfg, None, no_stop(), &mut ()).unwrap();
    // 23 images, two batches of 23 drawn from a shuffle: the broken file is drawn exactly twice.
    assert_eq!(s.epochs.len(), 1);
    assert_eq!(s.epochs[0].skipped_images, 2, "the broken image is skipped each time it is drawn");
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&cfg.models_base_dir);
}

#[test]
fn fine_tuning_facenets_checkpoint_on_deepface_lowers_the_loss() {
    let ctx = gpu_or_skip!();
    let (Some(ckpt), Some(src)) = (common::fixture("facenet-20170512-110547"), common::fixture("faces/deepface")) else { return };
    let data = aligned(ctx, &src, 160, 32.0);
    let mut cfg = TrainConfig::new(data, tmp("finetune"));
    cfg.pretrained_model = Some(ckpt);
    cfg.image_size = 160;
    cfg.batch_size = 8;
    cfg.epoch_size = 3;
    cfg.max_nrof_epochs = 2;
    cfg.optimizer = OptimizerKind::Adam;
    cfg.learning_rate = 0.01;
    cfg.moving_average_decay = 0.0;
    let s = train(ctx, &cfg, None, no_stop(), &mut ()).unwrap();
    for l in &s.epochs {
        println!("epoch {}: loss {:.4} accuracy {:.3} ({:.2} img/s)", l.epoch, l.loss, l.accuracy, l.images_per_s);
    }
    assert!(s.epochs[1].loss < s.epochs[0].loss, "fine-tuning loss fell: {} -> {}", s.epochs[0].loss, s.epochs[1].loss);
    let _ = std::fs::remove_dir_all(&cfg.models_base_dir);
}

#[test]
fn triplet_selection_follows_facenets_rule() {
    use facegpu::data::dataset::Rng;
    use facegpu::workflows::train::select_triplets;
    // Person 0: rows 0-2 on the x axis, person 1: rows 3-4 on y; row 5 (person 2) sits near person 0.
    let e = |x: f32, y: f32| vec![x, y];
    let emb = vec![e(1.0, 0.0), e(0.9, 0.1), e(0.7, 0.3), e(0.0, 1.0), e(0.1, 0.9), e(0.95, 0.05)];
    let mut rng = Rng::new(1);
    let t = select_triplets(&emb, &[3, 2, 1], 0.2, &mut rng);
    // Anchor-positive pairs: (0,1), (0,2), (1,2) of person 0 and (3,4) of person 1. A negative must be
    // another person's image with |a-n|^2 - |a-p|^2 < 0.2: only row 5 qualifies for person 0, none for
    // person 1 (every other image is far from row 3), so (3,4) is dropped.
    let mut sorted = t.clone();
    sorted.sort();
    assert_eq!(sorted, vec![[0, 1, 5], [0, 2, 5], [1, 2, 5]]);
}

#[test]
fn triplet_training_on_johns_lowers_the_triplet_loss() {
    let ctx = gpu_or_skip!();
    let Some(mut cfg) = johns_config(ctx, "triplet") else { return };
    cfg.loss = facegpu::workflows::train::LossKind::Triplet;
    cfg.people_per_batch = 5;
    cfg.images_per_person = 6;
    cfg.batch_size = 15;
    cfg.epoch_size = 6;
    cfg.max_nrof_epochs = 6;
    cfg.center_loss_factor = 0.0;
    let s = train(ctx, &cfg, None, no_stop(), &mut ()).unwrap();
    let losses: Vec<f64> = s.epochs.iter().map(|l| l.loss).collect();
    println!("triplet loss per epoch: {losses:?}");
    assert_eq!(losses.len(), 6);
    // Starts near the margin (random embeddings); the last two epochs average clearly below the first
    // two (each epoch is 3 steps of freshly selected triplets, so single epochs are noisy).
    assert!((losses[4] + losses[5]) / 2.0 < 0.8 * (losses[0] + losses[1]) / 2.0, "triplet loss {losses:?}");
    let _ = std::fs::remove_dir_all(&cfg.models_base_dir);
}

#[test]
fn a_mismatched_pretrained_model_is_refused_by_name_and_leaves_no_run_behind() {
    let ctx = gpu_or_skip!();
    let Some(ckpt) = common::fixture("facenet-20170512-110547") else { return };
    let Some(mut cfg) = johns_config(ctx, "refused") else { return };
    // facenet's 128-d checkpoint for a 64-d network: the Bottleneck is named with both shapes.
    cfg.pretrained_model = Some(ckpt);
    cfg.embedding_size = 64;
    let err = train(ctx, &cfg, None, no_stop(), &mut ()).unwrap_err().to_string();
    assert!(err.contains("InceptionResnetV1/Bottleneck/weights") && err.contains("[1792, 128]") && err.contains("[1792, 64]"), "{err}");
    // A file without any of the network's variables.
    let other = tmp("not-a-model");
    std::fs::create_dir_all(&other).unwrap();
    let path = other.join("x.safetensors");
    let mut w = facegpu::checkpoint::Weights::default();
    w.tensors.insert("something/else".into(), facegpu::checkpoint::Tensor { shape: vec![2], data: vec![1.0, 2.0] });
    safetensors::save(&w, &path, Default::default(), facegpu::checkpoint::safetensors::StorageDtype::F32).unwrap();
    cfg.pretrained_model = Some(path);
    cfg.embedding_size = 128;
    let err = train(ctx, &cfg, None, no_stop(), &mut ()).unwrap_err().to_string();
    assert!(err.contains("x.safetensors") && err.contains("none of Inception-ResNet-v1's variables"), "{err}");
    assert!(!cfg.models_base_dir.exists(), "no run directory is created for a refused model");
    let _ = std::fs::remove_dir_all(&other);
}

#[test]
fn triplet_run_interrupted_mid_epoch_saves_and_resumes() {
    let ctx = gpu_or_skip!();
    let Some(mut cfg) = johns_config(ctx, "triplet-cut") else { return };
    cfg.loss = facegpu::workflows::train::LossKind::Triplet;
    cfg.people_per_batch = 3;
    cfg.images_per_person = 3;
    cfg.batch_size = 6;
    cfg.epoch_size = 3;
    cfg.max_nrof_epochs = 1;
    cfg.center_loss_factor = 0.0;
    let first = train(ctx, &cfg, None, Arc::new(AtomicBool::new(true)), &mut ()).unwrap();
    assert!(first.stopped.contains("interrupted after batch 1 of epoch 1"), "{}", first.stopped);
    let (_, meta) = safetensors::load_with_metadata(&first.run_dir.join("checkpoint.safetensors")).unwrap();
    assert_eq!((meta["epoch"].as_str(), meta["batch"].as_str(), meta["step"].as_str()), ("0", "1", "1"));
    let resumed = train(ctx, &cfg, Some(&first.run_dir), no_stop(), &mut ()).unwrap();
    assert_eq!(resumed.epochs.len(), 1);
    // The epoch finished its remaining two batches: three updates in all.
    assert_eq!(resumed.epochs[0].step, 3);
    let _ = std::fs::remove_dir_all(&cfg.models_base_dir);
}

/// A `facegpu train` run of one epoch on the aligned johns, through the binary; returns its run folder.
fn one_epoch_run(ctx: &GpuContext, name: &str) -> Option<PathBuf> {
    let data = aligned(ctx, &common::fixture("faces/johns")?, 92, 22.0);
    let base = tmp(name);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_facegpu"))
        .args(["train", "--image-size", "80", "--batch-size", "12", "--epoch-size", "2", "--max-nrof-epochs", "1"])
        .args(["--optimizer", "ADAM", "--learning-rate", "0.01", "--moving-average-decay", "0.999", "--data-dir"])
        .arg(&data)
        .arg("--models-base-dir")
        .arg(&base)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = std::fs::read_dir(&base).unwrap().next().unwrap().unwrap().path();
    Some(run)
}

/// Sets the run's `max_nrof_epochs` (so `--resume` trains `epochs` in all).
fn set_max_epochs(run: &Path, epochs: usize) {
    let path = run.join("args.json");
    let mut args: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    args["max_nrof_epochs"] = epochs.into();
    std::fs::write(&path, args.to_string()).unwrap();
}

fn resume(run: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_facegpu"));
    c.args(["train", "--resume"]).arg(run);
    c
}

fn epochs_logged(run: &Path) -> usize {
    std::fs::read_to_string(run.join("log.jsonl")).unwrap().lines().count()
}

#[test]
fn a_run_killed_while_writing_its_checkpoint_keeps_the_previous_one_and_resumes() {
    let ctx = gpu_or_skip!();
    let Some(run) = one_epoch_run(ctx, "killed") else { return };
    let before = std::fs::read(run.join("checkpoint.safetensors")).unwrap();
    set_max_epochs(&run, 3);
    let mut child = resume(&run).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    // Killed (SIGKILL) the moment epoch 2's checkpoint starts being written.
    let partial = run.join("checkpoint.safetensors.partial");
    let caught = loop {
        if partial.exists() {
            child.kill().unwrap();
            break true;
        }
        if child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    child.wait().unwrap();
    assert!(caught, "the run ended before its checkpoint write could be interrupted");
    assert!(std::fs::read(run.join("checkpoint.safetensors")).unwrap() == before, "the previous checkpoint must be intact");
    facegpu::checkpoint::safetensors::load(&run.join("checkpoint.safetensors")).unwrap();
    // Resumed from epoch 1's checkpoint, it finishes the run.
    let out = resume(&run).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = std::fs::read_to_string(run.join("log.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(log.lines().last().unwrap()).unwrap();
    assert_eq!(last["epoch"], 3, "{log}");
    assert!(!partial.exists(), "no partial checkpoint is left once a write succeeds");
}

#[test]
fn a_checkpoint_write_over_a_file_size_limit_fails_clearly_and_keeps_the_previous_files() {
    let ctx = gpu_or_skip!();
    let Some(run) = one_epoch_run(ctx, "filesize") else { return };
    let files = ["model.safetensors", "checkpoint.safetensors"];
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(run.join(f)).unwrap()).collect();
    set_max_epochs(&run, 2);
    // 64 MiB per file (bash counts 1024-byte blocks): model.safetensors (about 90 MB) does not fit. SIGXFSZ
    // is ignored, as a shell's `trap` passes on, so the write fails with EFBIG instead of killing.
    let exe = env!("CARGO_BIN_EXE_facegpu");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f 65536; exec '{exe}' train --resume '{}'", run.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run must fail: {stderr}");
    assert!(stderr.contains("model.safetensors") && stderr.contains("File too large"), "a clear error naming the file: {stderr}");
    for (f, was) in files.iter().zip(&before) {
        assert!(std::fs::read(run.join(f)).unwrap() == *was, "{f} must be left as it was");
        facegpu::checkpoint::safetensors::load(&run.join(f)).unwrap();
        assert!(!run.join(format!("{f}.partial")).exists(), "no partial {f} is left");
    }
    assert_eq!(epochs_logged(&run), 1, "the failed epoch is not logged as saved");
}

/// Copies `src`'s identity folders into `dst`.
fn copy_dataset(src: &Path, dst: &Path) {
    for class in std::fs::read_dir(src).unwrap().flatten().filter(|e| e.path().is_dir()) {
        let to = dst.join(class.file_name());
        std::fs::create_dir_all(&to).unwrap();
        for f in std::fs::read_dir(class.path()).unwrap().flatten() {
            std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
        }
    }
}

#[test]
fn filtering_leaves_out_a_planted_outlier_and_refuses_a_file_of_another_dataset() {
    let ctx = gpu_or_skip!();
    let (Some(ckpt), Some(johns), Some(deepface)) =
        (common::fixture("facenet-20170512-110547"), common::fixture("faces/johns"), common::fixture("faces/deepface"))
    else {
        return;
    };
    // The johns aligned at 92 px, with one woman's face (deepface person_01) planted among John_Savage's.
    let data = tmp("filter-data");
    copy_dataset(&aligned(ctx, &johns, 92, 22.0), &data);
    let stranger = aligned(ctx, &deepface, 92, 22.0).join("person_01");
    let face = std::fs::read_dir(&stranger)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .min()
        .unwrap();
    let planted = data.join("John_Savage").join("planted.png");
    std::fs::copy(&face, &planted).unwrap();
    let metrics = tmp("filter-metrics").with_extension("json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_facegpu"))
        .args(["filter-metrics", "--image-size", "92", "--model"])
        .arg(&ckpt)
        .arg("--data-dir")
        .arg(&data)
        .arg("--out")
        .arg(&metrics)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m = facegpu::workflows::filter::FilterMetrics::load(&metrics).unwrap();
    assert_eq!((m.image_list.len(), m.class_names.len()), (56, 5));
    let far = m.image_list.iter().zip(&m.distance_to_center).max_by(|a, b| a.1.unwrap().total_cmp(&b.1.unwrap())).unwrap();
    println!("farthest from its class centre: {} at {:.3}", far.0.display(), far.1.unwrap());
    // Training filtered at facenet's percentile 99 leaves out the planted face, and only it.
    let mut cfg = johns_config(ctx, "filtered").unwrap();
    cfg.data_dir = data.clone();
    cfg.max_nrof_epochs = 1;
    cfg.filter_filename = Some(metrics.clone());
    cfg.filter_percentile = 99.0;
    cfg.filter_min_nrof_images_per_class = 5;
    let s = train(ctx, &cfg, None, no_stop(), &mut ()).unwrap();
    let f = s.filtered.unwrap();
    println!("threshold {:.3}, removed {:?}", f.threshold, f.removed_images);
    assert_eq!(f.removed_images, [planted]);
    assert!(f.removed_classes.is_empty());
    // The file against another dataset (the johns in their own folder): refused, naming an image it
    // lists that is not there.
    let mut classes = facegpu::data::dataset::get_dataset(&aligned(ctx, &johns, 92, 22.0)).unwrap();
    let err = facegpu::workflows::filter::filter_dataset(&mut classes, &m, 99.0, 0).unwrap_err().to_string();
    assert!(err.contains("another dataset") && err.contains("train-test-filter-data"), "{err}");
    // And against a dataset with other classes: refused, naming the first class that differs.
    classes.remove(0);
    let err = facegpu::workflows::filter::filter_dataset(&mut classes, &m, 99.0, 0).unwrap_err().to_string();
    assert!(err.contains("5 classes against 4") && err.contains("John_Salley"), "{err}");
}

#[test]
fn find_threshold_interpolates_the_cumulative_histogram_like_numpy() {
    // 0..99 and one outlier at 1000: np.histogram(v, 100) has bins 10 wide, the 100 small values in the
    // first 10 (cdf[k] = 10 (k + 1) / 101) and the outlier in the last. np.interp(0.5, cdf, centres):
    // cdf[4] = 0.49505 <= 0.5 < cdf[5], so 45 + 10 (0.5 - 50/101) / (10/101) = 45.5 (cdf in float32:
    // within 1e-3).
    let mut v: Vec<f64> = (0..100).map(f64::from).collect();
    v.push(1000.0);
    let t = facegpu::workflows::filter::find_threshold(&v, 50.0);
    assert!((t - 45.5).abs() < 1e-3, "{t}");
    // At or past the last cdf value: the last bin's centre; below the first: the first centre.
    assert!((facegpu::workflows::filter::find_threshold(&v, 100.0) - 995.0).abs() < 1e-9);
    assert!((facegpu::workflows::filter::find_threshold(&v, 1.0) - 5.0).abs() < 1e-9);
}

/// The records of a TFRecord file, each checked against its two masked crc32c.
fn tfrecords(path: &Path) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let len = u64::from_le_bytes(b[i..i + 8].try_into().unwrap()) as usize;
        assert_eq!(u32::from_le_bytes(b[i + 8..i + 12].try_into().unwrap()), facegpu::train::events::masked_crc(&b[i..i + 8]));
        let data = b[i + 12..i + 12 + len].to_vec();
        assert_eq!(u32::from_le_bytes(b[i + 12 + len..i + 16 + len].try_into().unwrap()), facegpu::train::events::masked_crc(&data));
        out.push(data);
        i += 16 + len;
    }
    out
}

/// The (field number, payload) pairs of a protobuf message, payloads as raw bytes (varints as their
/// value's 8 little-endian bytes).
fn proto(b: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    let varint = |i: &mut usize| {
        let (mut v, mut s) = (0u64, 0);
        loop {
            let c = b[*i];
            *i += 1;
            v |= u64::from(c & 0x7f) << s;
            s += 7;
            if c < 0x80 {
                return v;
            }
        }
    };
    while i < b.len() {
        let key = varint(&mut i);
        let payload = match key & 7 {
            0 => varint(&mut i).to_le_bytes().to_vec(),
            1 => {
                i += 8;
                b[i - 8..i].to_vec()
            }
            2 => {
                let n = varint(&mut i) as usize;
                i += n;
                b[i - n..i].to_vec()
            }
            5 => {
                i += 4;
                b[i - 4..i].to_vec()
            }
            t => panic!("wire type {t}"),
        };
        out.push((key >> 3, payload));
    }
    out
}

#[test]
fn logs_base_dir_writes_tensorboard_scalars_and_the_prelogits_histogram() {
    let ctx = gpu_or_skip!();
    let Some(mut cfg) = johns_config(ctx, "tensorboard") else { return };
    let logs = tmp("tensorboard-logs");
    cfg.max_nrof_epochs = 2;
    cfg.logs_base_dir = Some(logs.clone());
    cfg.log_histograms = true;
    let s = train(ctx, &cfg, None, no_stop(), &mut ()).unwrap();
    let dir = logs.join(s.run_dir.file_name().unwrap());
    let files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].file_name().unwrap().to_string_lossy().starts_with("events.out.tfevents."));
    let records = tfrecords(&files[0]);
    // The first event names the file version; the others hold one summary value each.
    assert!(proto(&records[0]).iter().any(|(f, v)| *f == 3 && v == b"brain.Event:2"));
    let mut scalars = std::collections::BTreeMap::new();
    let mut histograms = Vec::new();
    for r in &records[1..] {
        let event = proto(r);
        let step = u64::from_le_bytes(event.iter().find(|(f, _)| *f == 2).unwrap().1[..8].try_into().unwrap());
        let summary = &event.iter().find(|(f, _)| *f == 5).unwrap().1;
        let value = proto(&proto(summary)[0].1);
        let tag = String::from_utf8(value.iter().find(|(f, _)| *f == 1).unwrap().1.clone()).unwrap();
        if let Some((_, v)) = value.iter().find(|(f, _)| *f == 2) {
            scalars.insert((tag, step), f32::from_le_bytes(v[..4].try_into().unwrap()));
        } else {
            histograms.push((step, proto(&value.iter().find(|(f, _)| *f == 5).unwrap().1)));
        }
    }
    // Each epoch's log.jsonl values at its last step, in float32.
    for log in &s.epochs {
        for (tag, want) in [("train/loss", log.loss), ("train/accuracy", log.accuracy), ("learning_rate", log.learning_rate)] {
            assert_eq!(scalars[&(tag.to_string(), log.step)], want as f32, "{tag} at step {}", log.step);
        }
    }
    // One histogram per epoch: 1000 buckets over [0, 10], counting every prelogit of the epoch's steps
    // (3 steps of 12 images x 128).
    assert_eq!(histograms.len(), 2);
    for (step, h) in &histograms {
        let field = |n: u64| h.iter().find(|(f, _)| *f == n).unwrap().1.clone();
        let num = f64::from_le_bytes(field(3)[..8].try_into().unwrap());
        let limits: Vec<f64> = field(6).chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
        let counts: Vec<f64> = field(7).chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect();
        assert_eq!((num, limits.len(), counts.len()), (3.0 * 12.0 * 128.0, 1000, 1000), "step {step}");
        assert!((limits[999] - 10.0).abs() < 1e-9 && counts.iter().sum::<f64>() == num);
    }
}
