//! Recognition on real faces with facenet's 20170512 model: enroll, identify with "unknown", cluster;
//! the quality figures README states, asserted at what they reach.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use facegpu::gpu::GpuContext;
use facegpu::models::mtcnn::{DetectOptions, Mtcnn};
use facegpu::workflows::align::AlignMode;
use facegpu::workflows::cluster::{adjusted_rand_index, cluster, purity, Method};
use facegpu::workflows::embed::Embedder;
use facegpu::workflows::recognize::{calibrate, embed_faces, FaceAlign, Gallery, MatchBy, Matcher, Pick};

const ALIGN: FaceAlign = FaceAlign { image_size: 160, margin: 32.0, mode: AlignMode::Crop };

/// The largest face of every photo of a fixture face set, embedded once per test binary: (person index,
/// photo, embedding) in folder order.
fn labelled_faces(ctx: &GpuContext, set: &str) -> Option<Vec<(usize, PathBuf, Vec<f32>)>> {
    type Set = (String, Vec<(usize, PathBuf, Vec<f32>)>);
    static SETS: OnceLock<std::sync::Mutex<Vec<Set>>> = OnceLock::new();
    let sets = SETS.get_or_init(Default::default);
    let mut sets = sets.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, v)) = sets.iter().find(|(s, _)| s == set) {
        return Some(v.clone());
    }
    let ckpt = common::fixture("facenet-20170512-110547")?;
    let dir = common::fixture(&format!("faces/{set}"))?;
    let people = facegpu::workflows::recognize::people(&dir).unwrap();
    let files: Vec<PathBuf> = people.iter().flat_map(|(_, f)| f.iter().cloned()).collect();
    let mut embedder = Embedder::load(ctx, &ckpt, None, 160).unwrap();
    let mut mtcnn = Mtcnn::load_from(ctx, None).unwrap();
    let (faces, skipped) = embed_faces(
        ctx,
        &mut mtcnn,
        &mut embedder,
        &files,
        &DetectOptions::default(),
        &ALIGN,
        Pick::Largest,
        false,
        &mut (),
        |_, _| Ok(()),
    )
    .unwrap();
    assert!(skipped.is_empty(), "{skipped:?}");
    let label = |p: &Path| people.iter().position(|(_, f)| f.iter().any(|x| x == p)).unwrap();
    let v: Vec<_> = faces.into_iter().map(|f| (label(&f.image), f.image, f.embedding)).collect();
    sets.push((set.to_string(), v.clone()));
    Some(v)
}

/// Enrolls the first half (rounded up) of each of the first `enrolled` people's photos; the rest of
/// their photos are queries of known people, every photo of the others a query of unknown people.
/// Returns (accuracy on known people, rate of unknown people answered unknown, threshold).
fn identify_split(ctx: &GpuContext, faces: &[(usize, PathBuf, Vec<f32>)], enrolled: usize, by: MatchBy) -> (f64, f64, f64) {
    let mut gallery = Gallery {
        people: Vec::new(),
        labels: Vec::new(),
        files: Vec::new(),
        embeddings: Vec::new(),
        model: String::new(),
        standardization: facegpu::checkpoint::Standardization::Prewhiten,
        threshold: 0.0,
        align: ALIGN,
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    let people = faces.iter().map(|f| f.0).max().unwrap() + 1;
    for p in 0..people {
        let mine: Vec<&(usize, PathBuf, Vec<f32>)> = faces.iter().filter(|f| f.0 == p).collect();
        if p < enrolled {
            let half = mine.len().div_ceil(2);
            gallery.add(
                &format!("person {p}"),
                mine[..half]
                    .iter()
                    .map(|f| facegpu::workflows::recognize::FaceEmbedding {
                        crop: 0,
                        image: f.1.clone(),
                        bbox: None,
                        score: 1.0,
                        embedding: f.2.clone(),
                    })
                    .collect(),
            );
            known.extend(mine[half..].iter().map(|f| (p, f.2.clone())));
        } else {
            unknown.extend(mine.iter().map(|f| f.2.clone()));
        }
    }
    let threshold =
        calibrate(&gallery.embeddings, &gallery.labels).map_or(facegpu::workflows::recognize::DEFAULT_THRESHOLD, |c| c.threshold);
    let matcher = Matcher::new(ctx, &gallery, by).unwrap();
    let answers = matcher.identify(ctx, &known.iter().map(|k| k.1.clone()).collect::<Vec<_>>(), threshold).unwrap();
    let right = known.iter().zip(&answers).filter(|(k, a)| a.name.as_deref() == Some(&format!("person {}", k.0))).count();
    let rejected = matcher.identify(ctx, &unknown, threshold).unwrap().iter().filter(|a| a.name.is_none()).count();
    (right as f64 / known.len() as f64, rejected as f64 / unknown.len() as f64, threshold)
}

#[test]
fn identify_names_enrolled_people_and_answers_unknown_for_the_others() {
    let ctx = gpu_or_skip!();
    // deepface: 9 people enrolled (half their photos), 4 never enrolled; johns: 3 enrolled, 2 not.
    for (set, enrolled) in [("deepface", 9), ("johns", 3)] {
        let Some(faces) = labelled_faces(ctx, set) else { return };
        for by in [MatchBy::Nearest, MatchBy::Mean] {
            let (acc, rej, t) = identify_split(ctx, &faces, enrolled, by);
            println!("{set}: {by:?}: accuracy on enrolled people {acc:.3}, unknown rejected {rej:.3}, threshold {t:.2}");
            // Measured: every query right with both matchings on both sets (deepface: 24 queries of
            // enrolled people and 9 of unknown ones, so a single miss would read 0.958 or 0.889).
            assert_eq!((acc, rej), (1.0, 1.0), "{set} {by:?}");
        }
    }
}

#[test]
fn clustering_groups_the_fixture_faces_by_person_at_the_default_threshold() {
    let ctx = gpu_or_skip!();
    for set in ["deepface", "johns"] {
        let Some(faces) = labelled_faces(ctx, set) else { return };
        let truth: Vec<usize> = faces.iter().map(|f| f.0).collect();
        let vectors: Vec<Vec<f32>> = faces.iter().map(|f| f.2.clone()).collect();
        for method in [Method::ChineseWhispers, Method::Dbscan] {
            let (clusters, rest) = cluster(ctx, &vectors, method, facegpu::workflows::cluster::DEFAULT_THRESHOLD, 2).unwrap();
            let (p, ari) = (purity(&clusters, &rest, &truth), adjusted_rand_index(&clusters, &rest, &truth));
            println!("{set}: {method:?}: {} clusters, {} left out, purity {p:.3}, ARI {ari:.3}", clusters.len(), rest.len());
            // Measured: every face with its own person (deepface 13 clusters, johns 5) for both methods.
            assert_eq!((p, ari), (1.0, 1.0), "{set} {method:?}");
        }
    }
}

#[test]
fn cluster_metrics_match_scikit_learns_definitions() {
    // sklearn.metrics.adjusted_rand_score([0,0,1,1,2,2], [0,0,1,2,2,2]) = 0.4444..., and a clustering
    // equal to the truth up to renaming scores 1.
    let truth = [0, 0, 1, 1, 2, 2];
    let (clusters, rest) = (vec![vec![0, 1], vec![2], vec![3, 4, 5]], vec![]);
    assert!((adjusted_rand_index(&clusters, &rest, &truth) - 4.0 / 9.0).abs() < 1e-12);
    assert!((purity(&clusters, &rest, &truth) - 5.0 / 6.0).abs() < 1e-12);
    assert_eq!(adjusted_rand_index(&[vec![4, 5], vec![0, 1], vec![2, 3]], &[], &truth), 1.0);
    // DBSCAN on a chain 0-1-2 and a pair 3-4 with min_samples 3: 1 is the only core point; 0 and 2 are
    // its border points; 3 and 4 are noise.
    let graph = vec![vec![(1, 0.1)], vec![(0, 0.1), (2, 0.1)], vec![(1, 0.1)], vec![(4, 0.1)], vec![(3, 0.1)]];
    assert_eq!(facegpu::workflows::cluster::dbscan(&graph, 3), [Some(0), Some(0), Some(0), None, None]);
    assert_eq!(facegpu::workflows::cluster::dbscan(&graph, 2), [Some(0), Some(0), Some(0), Some(1), Some(1)]);
    // Chinese whispers joins each connected pair and leaves the isolated face alone.
    let graph = vec![vec![(1, 0.2)], vec![(0, 0.2)], vec![]];
    let l = facegpu::workflows::cluster::chinese_whispers(&graph, 20, 0);
    assert!(l[0] == l[1] && l[2] != l[0], "{l:?}");
}

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_facegpu"))
}

fn run_ok(c: &mut std::process::Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn enroll_identify_and_cluster_through_the_cli() {
    let _ = gpu_or_skip!();
    let (Some(ckpt), Some(johns), Some(deepface)) =
        (common::fixture("facenet-20170512-110547"), common::fixture("faces/johns"), common::fixture("faces/deepface"))
    else {
        return;
    };
    let root = std::env::temp_dir().join(format!("facegpu-recognize-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    // Three johns enrolled with 6 photos each, plus a folder with no face and an empty person folder.
    let people = root.join("people");
    let mut queries = Vec::new();
    for (p, person) in ["John_Salley", "John_Savage", "John_Schneider"].iter().enumerate() {
        std::fs::create_dir_all(people.join(person)).unwrap();
        let mut photos: Vec<PathBuf> = std::fs::read_dir(johns.join(person)).unwrap().map(|e| e.unwrap().path()).collect();
        photos.sort();
        for f in &photos[..6] {
            std::fs::copy(f, people.join(person).join(f.file_name().unwrap())).unwrap();
        }
        queries.push((p, photos[8].clone()));
    }
    std::fs::create_dir_all(people.join("nobody")).unwrap();
    image::RgbImage::from_pixel(200, 200, image::Rgb([90, 120, 200])).save(people.join("nobody/sky.png")).unwrap();
    std::fs::write(people.join("nobody/broken.jpg"), b"not a jpeg").unwrap();
    let gallery = root.join("gallery.safetensors");
    let m = ckpt.to_str().unwrap();
    let summary = run_ok(bin().args(["enroll", "--json", "--model", m, "--out"]).arg(&gallery).arg(&people));
    let s: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(s["people_added"], serde_json::json!(["John_Salley", "John_Savage", "John_Schneider"]), "{s}");
    assert_eq!(s["empty_people"], serde_json::json!(["nobody"]));
    assert_eq!(s["skipped"].as_array().unwrap().len(), 2, "{s}");
    assert_eq!(s["embeddings"], 18);
    assert!(s["calibration"]["same_pairs"] == 45 && s["calibration"]["different_pairs"] == 108, "{s}");
    // An existing gallery is never overwritten without --update.
    let before = std::fs::read(&gallery).unwrap();
    let again = bin().args(["enroll", "--model", m, "--out"]).arg(&gallery).arg(&people).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("--update"));
    assert!(std::fs::read(&gallery).unwrap() == before);

    // identify: the held-out johns by name, a deepface person as unknown, one JSON line per photo.
    let stranger = deepface.join("person_01").read_dir().unwrap().map(|e| e.unwrap().path()).min().unwrap();
    let draw = root.join("drawn");
    let mut cmd = bin();
    cmd.args(["identify", "--json", "--model", m, "--gallery"]).arg(&gallery).arg("--draw").arg(&draw);
    cmd.args(queries.iter().map(|q| &q.1)).arg(&stranger);
    let lines: Vec<serde_json::Value> = run_ok(&mut cmd).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    let names = ["John_Salley", "John_Savage", "John_Schneider"];
    for ((p, q), line) in queries.iter().zip(&lines) {
        assert_eq!(line["image"], q.to_str().unwrap());
        let faces = line["faces"].as_array().unwrap();
        assert_eq!(faces.len(), 1, "{line}");
        assert_eq!(faces[0]["name"], names[*p], "{line}");
        assert_eq!(faces[0]["box"].as_array().unwrap().len(), 4);
    }
    let faces = lines[3]["faces"].as_array().unwrap();
    assert!(!faces.is_empty() && faces.iter().all(|f| f["name"].is_null()), "{}", lines[3]);
    assert_eq!(std::fs::read_dir(&draw).unwrap().count(), 4);

    // A gallery from another model is refused with both named; a corrupt one by its file name.
    let mut g = Gallery::load(&gallery).unwrap();
    g.model = "20180402-114759.pb crc32c:0badf00d".into();
    let other = root.join("other.safetensors");
    g.save(&other).unwrap();
    let out = bin().args(["identify", "--model", m, "--gallery"]).arg(&other).arg(&queries[0].1).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("20180402-114759.pb") && err.contains("facenet-20170512-110547"), "{err}");
    let corrupt = root.join("corrupt.safetensors");
    std::fs::write(&corrupt, &before[..before.len() / 2]).unwrap();
    let out = bin().args(["identify", "--model", m, "--gallery"]).arg(&corrupt).arg(&queries[0].1).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("corrupt.safetensors") && err.contains("not a facegpu gallery"), "{err}");

    // --update adds a person; an empty folder enrolls nothing and writes nothing.
    let more = root.join("more");
    std::fs::create_dir_all(more.join("John_Simm")).unwrap();
    for f in std::fs::read_dir(johns.join("John_Simm")).unwrap().take(3) {
        let f = f.unwrap().path();
        std::fs::copy(&f, more.join("John_Simm").join(f.file_name().unwrap())).unwrap();
    }
    run_ok(bin().args(["enroll", "--update", "--model", m, "--out"]).arg(&gallery).arg(&more));
    let g = Gallery::load(&gallery).unwrap();
    assert_eq!(g.people, ["John_Salley", "John_Savage", "John_Schneider", "John_Simm"]);
    assert_eq!(g.embeddings.len(), 21);
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let out = bin().args(["enroll", "--model", m, "--out"]).arg(root.join("new.safetensors")).arg(&empty).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no person folders"));
    assert!(!root.join("new.safetensors").exists());

    // cluster: every face of the johns people folders (18 photos, one face each) into 3 clusters.
    let out = root.join("clusters");
    let json = run_ok(bin().args(["cluster", "--json", "--model", m, "--out"]).arg(&out).arg(&people));
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let clusters = report["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 3, "{report}");
    for c in clusters {
        let faces = c["faces"].as_array().unwrap();
        assert_eq!(faces.len(), 6);
        let person = |f: &serde_json::Value| Path::new(f["image"].as_str().unwrap()).parent().unwrap().to_path_buf();
        assert!(faces.iter().all(|f| person(f) == person(&faces[0])), "one person per cluster: {c}");
        for f in faces {
            assert!(out.join(f["crop"].as_str().unwrap()).exists());
        }
    }
    assert!(out.join("clusters.json").exists() && out.join("index.html").exists() && !out.join(".crops").exists());
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert_eq!(html.matches("<img ").count(), 18);
    // An output folder that is not empty is refused.
    let again = bin().args(["cluster", "--model", m, "--out"]).arg(&out).arg(&people).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not empty"));
    let _ = std::fs::remove_dir_all(&root);
}
