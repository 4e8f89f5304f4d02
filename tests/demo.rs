//! `facegpu demo`, the README's first command, end to end through the binary: embedded photos aligned,
//! a model trained and evaluated, plots written; and a folder that is not a demo is never replaced.

mod common;

use std::process::Command;

#[test]
fn demo_command_aligns_trains_and_evaluates_the_embedded_faces() {
    let _ctx = gpu_or_skip!();
    let out = std::env::temp_dir().join(format!("facegpu-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let run = Command::new(env!("CARGO_BIN_EXE_facegpu")).args(["demo", "--epochs", "3", "--json", "--out"]).arg(&out).output().unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "demo failed: {stderr}");
    let report: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&run.stdout).trim()).unwrap();
    println!("{report}");
    for k in ["accuracy_mean", "accuracy_std", "val", "val_std", "far", "auc", "eer", "pairs", "skipped"] {
        assert!(report.get(k).is_some(), "--json lacks {k}");
    }
    assert_eq!(report["pairs"], 280);
    assert_eq!(report["skipped"], 0);
    // Three short epochs: the embeddings already separate the five people better than chance.
    assert!(report["auc"].as_f64().unwrap() > 0.6, "AUC {}", report["auc"]);
    assert!(out.join("roc.png").is_file());
    let runs: Vec<_> = std::fs::read_dir(out.join("models")).unwrap().collect();
    assert_eq!(runs.len(), 1);
    let run_dir = runs[0].as_ref().unwrap().path();
    assert!(run_dir.join("curves.png").is_file() && run_dir.join("model.safetensors").is_file());
    let log = std::fs::read_to_string(run_dir.join("log.jsonl")).unwrap();
    let losses: Vec<f64> = log.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"].as_f64().unwrap()).collect();
    assert_eq!(losses.len(), 3);
    assert!(losses[2] < losses[0], "training loss fell: {losses:?}");
    let _ = std::fs::remove_dir_all(&out);

    // An existing folder that is not a demo is refused, untouched.
    let other = std::env::temp_dir().join(format!("facegpu-demo-other-{}", std::process::id()));
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("keep.txt"), "mine").unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_facegpu")).args(["demo", "--out"]).arg(&other).output().unwrap();
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("not a facegpu demo folder"));
    assert_eq!(std::fs::read_to_string(other.join("keep.txt")).unwrap(), "mine");
    let _ = std::fs::remove_dir_all(&other);
}
