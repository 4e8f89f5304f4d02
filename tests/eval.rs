//! LFW evaluation: the metrics against facenet's own formulas, the pairs parser on the real LFW pairs
//! file, and the whole `eval` workflow on real photos.
//!
//! `tests/data/metrics_expected.json` holds the output of facenet's `lfw.evaluate` (calculate_roc,
//! calculate_val) plus validate_on_lfw.py's AUC and EER, run with numpy/scikit-learn/scipy on the
//! synthetic embeddings of `tests/data/metrics_embeddings.npy` (400 pairs, 12-d; pairs in blocks of 20 same
//! then 20 different) and on three hand-made cases built identically below.

mod common;

use std::path::{Path, PathBuf};

use facegpu::data::npy;
use facegpu::eval::lfw;
use facegpu::eval::metrics::{self, DistanceMetric, Verification};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(data("metrics_expected.json")).unwrap()).unwrap()
}

/// Compares every number facenet reports. Distances are float64 here and float32 in numpy; no threshold
/// decision flips on these inputs, so counts agree exactly and only float formatting noise remains.
fn check(name: &str, got: &Verification, want: &serde_json::Value) {
    let num = |k: &str| want[k].as_f64().unwrap_or(f64::NAN);
    let close = |what: &str, g: f64, w: f64| {
        assert!((g - w).abs() <= 1e-9 || (g.is_nan() && w.is_nan()), "{name} {what}: facegpu {g}, facenet {w}");
    };
    for (what, g) in [
        ("accuracy_mean", got.accuracy_mean),
        ("accuracy_std", got.accuracy_std),
        ("val", got.val),
        ("val_std", got.val_std),
        ("far", got.far),
        ("auc", got.auc),
        ("eer", got.eer),
    ] {
        close(what, g, num(what));
    }
    let list = |k: &str| want[k].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect::<Vec<_>>();
    for (i, (g, w)) in got.accuracy.iter().zip(list("accuracy")).enumerate() {
        close(&format!("fold {i} accuracy"), *g, w);
    }
    for (i, (g, w)) in got.best_thresholds.iter().zip(list("best_thresholds")).enumerate() {
        close(&format!("fold {i} best threshold"), *g, w);
    }
}

#[test]
fn metrics_match_facenets_formulas_on_synthetic_embeddings() {
    let (shape, emb) = npy::read_f32(&data("metrics_embeddings.npy")).unwrap();
    let (_, same) = npy::read_f32(&data("metrics_issame.npy")).unwrap();
    let rows: Vec<Vec<f32>> = emb.chunks(shape[1]).map(<[f32]>::to_vec).collect();
    let (e1, e2): (Vec<Vec<f32>>, Vec<Vec<f32>>) =
        (rows.iter().step_by(2).cloned().collect(), rows.iter().skip(1).step_by(2).cloned().collect());
    let same: Vec<bool> = same.iter().map(|&v| v == 1.0).collect();
    let want = expected();
    for metric in [DistanceMetric::Euclidean, DistanceMetric::Cosine] {
        for subtract_mean in [false, true] {
            for folds in [10, 7] {
                let key = format!("metric{}_sub{}_folds{folds}", metric as u8, subtract_mean as u8);
                let got = metrics::evaluate(&e1, &e2, &same, folds, metric, subtract_mean);
                check(&key, &got, &want[&key]);
            }
        }
    }
}

/// The hand-made cases of the reference script: 40 pairs (even ones same), 10 folds, Euclidean.
fn hand_case(kind: &str) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, Vec<bool>) {
    let same: Vec<bool> = (0..40).map(|i| i % 2 == 0).collect();
    let (mut e1, mut e2) = (vec![vec![0f32; 3]; 40], vec![vec![0f32; 3]; 40]);
    for i in 0..40 {
        match kind {
            "perfect" => {
                e1[i][0] = 1.0;
                if same[i] {
                    e2[i][0] = 1.0;
                } else {
                    e2[i][1] = 1.0;
                }
            }
            "equal" => {
                e1[i][0] = 0.5;
                e2[i][1] = 0.25;
            }
            _ => e2[i][0] = if same[i] { 0.25 } else { 2.5 },
        }
    }
    (e1, e2, same)
}

#[test]
fn metrics_hand_cases_perfect_separation_equal_distances_and_unreached_far() {
    let want = expected();
    // Perfect separation (distance 0 vs 2): every fold is right at the first threshold above 0; the ROC
    // jumps straight to TPR 1, so AUC 1 and EER 0. facenet's VAL interpolates its threshold just past 2,
    // where every different pair is accepted too: VAL 1 at FAR 1 (a quirk reproduced as is).
    let (e1, e2, same) = hand_case("perfect");
    let got = metrics::evaluate(&e1, &e2, &same, 10, DistanceMetric::Euclidean, false);
    assert_eq!((got.accuracy_mean, got.auc, got.val, got.far), (1.0, 1.0, 1.0, 1.0));
    assert!(got.eer.abs() < 1e-9, "EER {}", got.eer);
    check("perfect", &got, &want["hand_perfect"]);

    // All distances equal (0.3125): no threshold separates anything; the first (0) wins with accuracy
    // 0.5, the ROC is the diagonal (AUC 0.5, EER 0.5), and the FAR-1e-3 threshold lands below 0.3125.
    let (e1, e2, same) = hand_case("equal");
    let got = metrics::evaluate(&e1, &e2, &same, 10, DistanceMetric::Euclidean, false);
    assert_eq!((got.accuracy_mean, got.best_thresholds[0], got.auc, got.val, got.far), (0.5, 0.0, 0.5, 0.0, 0.0));
    check("equal", &got, &want["hand_equal"]);

    // Different pairs at 6.25, beyond every threshold: the FAR never reaches 1e-3, so facenet uses
    // threshold 0 (VAL 0, FAR 0); the FPR is 0 everywhere (AUC 0) and facenet's EER call raises, which
    // facegpu reports as NaN.
    let (e1, e2, same) = hand_case("far_unreached");
    let got = metrics::evaluate(&e1, &e2, &same, 10, DistanceMetric::Euclidean, false);
    assert_eq!((got.accuracy_mean, got.val, got.far, got.auc), (1.0, 0.0, 0.0, 0.0));
    assert!(got.eer.is_nan());
    assert!(want["hand_far_unreached"]["eer"].is_null(), "facenet's EER raised here");
    check("far_unreached", &got, &want["hand_far_unreached"]);
}

#[test]
fn kfold_matches_scikit_learn_fold_sizes() {
    // KFold(7) over 400: 400 = 7*57 + 1, so the first fold has 58 items and the rest 57.
    let f = metrics::kfold(400, 7);
    assert_eq!(f[0], 0..58);
    assert_eq!(f[1], 58..115);
    assert_eq!(f[6].end, 400);
    assert_eq!(metrics::kfold(6000, 10)[3], 1800..2400);
    assert_eq!(metrics::thresholds(0.01).len(), 400);
    assert_eq!(metrics::thresholds(0.001).len(), 4000);
}

#[test]
fn lfw_pairs_parser_reads_the_official_6000_pairs() {
    let Some(path) = common::fixture("lfw/pairs.txt") else { return };
    let pairs = lfw::read_pairs(&path).unwrap();
    assert_eq!((pairs.folds, pairs.per_fold, pairs.pairs.len()), (10, 300, 6000));
    // Each fold: 300 matched lines, then 300 mismatched.
    for f in 0..10 {
        assert!(pairs.pairs[f * 600..f * 600 + 300].iter().all(|p| p.same), "fold {f} matched block");
        assert!(pairs.pairs[f * 600 + 300..f * 600 + 600].iter().all(|p| !p.same), "fold {f} mismatched block");
    }
    assert!(pairs.pairs.iter().filter(|p| p.same).all(|p| p.a.0 == p.b.0));
    // The fixture holds the two Anthony_Hopkins images of one matched pair; every other pair is skipped.
    let dir = path.parent().unwrap();
    let resolved = lfw::resolve(dir, &pairs.pairs);
    assert_eq!(resolved.pairs.len(), 1, "only the Anthony_Hopkins pair has both images");
    assert_eq!(resolved.skipped.len(), 5999);
    assert_eq!(resolved.images.len(), 2);
    assert!(resolved.images[0].ends_with("Anthony_Hopkins/Anthony_Hopkins_0001.jpg"), "{:?}", resolved.images);
}

#[test]
fn lfw_pairs_parser_names_the_file_and_line_of_a_bad_line() {
    let err = lfw::parse_pairs("10\t300\nAaron\t1\t2\nbad line with five tokens\n", Path::new("p.txt")).unwrap_err().to_string();
    assert!(err.starts_with("p.txt:3:"), "{err}");
    let err = lfw::parse_pairs("Aaron 1 2\n", Path::new("p.txt")).unwrap_err().to_string();
    assert!(err.contains("header"), "{err}");
    let err = lfw::parse_pairs("1 1\nAaron one 2\n", Path::new("p.txt")).unwrap_err().to_string();
    assert!(err.contains("'one' is not an image number"), "{err}");
}

#[test]
fn eval_on_deepface_photos_gives_the_same_metrics_from_tf_checkpoint_and_safetensors() {
    use facegpu::checkpoint::safetensors::StorageDtype;
    use facegpu::checkpoint::Standardization;
    use facegpu::models::mtcnn::{DetectOptions, Mtcnn};
    use facegpu::workflows::align::{align, AlignMode, AlignOptions};
    use facegpu::workflows::embed::{convert, Embedder};
    use facegpu::workflows::eval::{eval_lfw, EvalOptions, OnTheFlyAlign};

    let ctx = gpu_or_skip!();
    let (Some(ckpt), Some(photos)) = (common::fixture("facenet-20170512-110547"), common::fixture("faces/deepface")) else { return };
    let root = std::env::temp_dir().join(format!("facegpu-eval-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (raw, aligned) = (root.join("raw"), root.join("aligned"));
    // The 13 people's 61 photos in LFW's layout, and pairs built from the folders.
    let people = lfw::make_layout(&photos, &raw).unwrap();
    assert_eq!(people.len(), 13);
    let per_fold = lfw::write_pairs(&raw, &root.join("pairs.txt"), 10).unwrap();
    assert_eq!(per_fold, 14, "140 of the 144 same-person pairs fill 10 folds");

    // 1. The TF checkpoint, aligning the raw photos on the fly (160 px, margin 32).
    let mut mtcnn = Mtcnn::load_from(ctx, None).unwrap();
    let det = DetectOptions::default();
    let opts = EvalOptions::default();
    let mut tf = Embedder::load(ctx, &ckpt, None, 160).unwrap();
    let on_the_fly = OnTheFlyAlign { mtcnn: &mut mtcnn, detect: det, margin: 32.0 };
    let a = eval_lfw(ctx, &mut tf, &raw, &root.join("pairs.txt"), &opts, Some(on_the_fly), &mut ()).unwrap();

    // 2. The converted safetensors on photos aligned beforehand by `align` with the same settings.
    let align_opts = AlignOptions {
        image_size: 160,
        margin: 32.0,
        detect_multiple_faces: false,
        random_order: false,
        batch: 4,
        mode: AlignMode::Crop,
        retry_failed: false,
        shard: None,
    };
    let summary = align(ctx, &mut mtcnn, &det, &raw, &aligned, &align_opts, &mut ()).unwrap();
    assert_eq!(summary.faces_written, 61, "every photo holds a face");
    let st = root.join("model.safetensors");
    convert(&ckpt, &st, Standardization::Prewhiten, StorageDtype::F32).unwrap();
    let mut converted = Embedder::load(ctx, &st, None, 160).unwrap();
    let b = eval_lfw(ctx, &mut converted, &aligned, &root.join("pairs.txt"), &opts, None, &mut ()).unwrap();

    println!("TF checkpoint, aligned on the fly:\n{}\nsafetensors, aligned beforehand:\n{}", a.human(), b.human());
    assert_eq!((a.pairs, a.skipped, a.images), (280, 0, 61));
    assert_eq!((b.pairs, b.skipped, b.images), (280, 0, 61));
    assert_eq!(a.metrics.accuracy, b.metrics.accuracy, "per-fold accuracies");
    assert_eq!(a.metrics.best_thresholds, b.metrics.best_thresholds);
    assert!((a.metrics.auc - b.metrics.auc).abs() < 1e-6 && (a.metrics.val - b.metrics.val).abs() < 1e-9);
    // facenet's 20170512 model on real (if few) photos of 13 people.
    assert!(a.metrics.accuracy_mean >= 0.95, "accuracy {}", a.metrics.accuracy_mean);
    let png = root.join("roc.png");
    a.save_roc(&png).unwrap();
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (640, 480));
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn classifier_trained_on_johns_embeddings_predicts_the_held_out_photos() {
    use facegpu::models::mtcnn::{DetectOptions, Mtcnn};
    use facegpu::workflows::align::{align, AlignMode, AlignOptions};
    use facegpu::workflows::classify::{classify_dataset, embed_dataset, predict_dir, Classifier};
    use facegpu::workflows::embed::Embedder;

    let ctx = gpu_or_skip!();
    let (Some(ckpt), Some(photos)) = (common::fixture("facenet-20170512-110547"), common::fixture("faces/johns")) else { return };
    let root = std::env::temp_dir().join(format!("facegpu-classify-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let aligned = root.join("aligned");
    let mut mtcnn = Mtcnn::load_from(ctx, None).unwrap();
    let opts = AlignOptions {
        image_size: 160,
        margin: 32.0,
        detect_multiple_faces: false,
        random_order: false,
        batch: 4,
        mode: AlignMode::Crop,
        retry_failed: false,
        shard: None,
    };
    align(ctx, &mut mtcnn, &DetectOptions::default(), &photos, &aligned, &opts, &mut ()).unwrap();
    // classifier.py's split: 6 training images per person, the other 5 predicted.
    let train = classify_dataset(&aligned, Some((10, 6)), 666, true).unwrap();
    let test = classify_dataset(&aligned, Some((10, 6)), 666, false).unwrap();
    assert_eq!((train.len(), train[0].paths.len(), test[0].paths.len()), (5, 6, 5));
    let mut model = Embedder::load(ctx, &ckpt, None, 160).unwrap();
    let items = embed_dataset(ctx, &mut model, &train, 32, &mut ()).unwrap();
    let (emb, labels): (Vec<Vec<f32>>, Vec<u32>) = items.into_iter().map(|(_, l, e)| (e, l as u32)).unzip();
    let names: Vec<String> = train.iter().map(|c| c.name.clone()).collect();
    let clf = Classifier::fit(ctx, &emb, &labels, names.clone(), 300).unwrap();
    let path = root.join("classifier.safetensors");
    clf.save(&path).unwrap();
    assert!(clf.save(&path).unwrap_err().to_string().contains("already exists"), "never overwrites");
    let loaded = Classifier::load(&path).unwrap();
    assert_eq!(loaded.class_names, names);
    let preds = predict_dir(ctx, &mut model, &loaded, &test, 32).unwrap();
    assert_eq!(preds.len(), 25);
    let right = preds.iter().filter(|p| p.truth.as_deref() == Some(p.class.as_str())).count();
    println!("held-out accuracy {right}/25");
    // facenet's model tells these five people apart almost perfectly.
    assert!(right >= 23, "{right}/25 held-out photos classified correctly");
    assert!(preds.iter().all(|p| p.probability > 0.2 && p.probability <= 1.0));
    let err = Classifier::load(&ckpt.join("model-20170512-110547.ckpt-250000.index")).unwrap_err().to_string();
    assert!(!err.is_empty());
    let _ = std::fs::remove_dir_all(&root);
}
