//! The TF checkpoint reader against facenet's real 20170512-110547 checkpoint, and its errors on
//! truncated, mis-shaped and incomplete input.

mod common;

use std::path::{Path, PathBuf};

use facegpu::checkpoint::{tf, CheckpointError, Weights};

fn fixture_dir() -> Option<PathBuf> {
    common::fixture("facenet-20170512-110547/checkpoint").map(|f| f.with_file_name(""))
}

#[test]
fn reads_facenet_checkpoint_with_490_variables_and_22808144_parameters() {
    let Some(dir) = fixture_dir() else { return };
    let w = Weights::load(&dir).unwrap();
    assert_eq!(w.tensors.len(), 490);
    let params: usize = w.tensors.values().map(|t| t.data.len()).sum();
    assert_eq!(params, 22_808_144);
    let t = w.get("InceptionResnetV1/Conv2d_1a_3x3/weights", &[3, 3, 3, 32]).unwrap();
    assert!(t.data.iter().all(|v| v.is_finite()) && t.data.iter().any(|&v| v != 0.0));
    w.get("InceptionResnetV1/Bottleneck/weights", &[1792, 128]).unwrap();
    w.get("InceptionResnetV1/Repeat/block35_3/Branch_2/Conv2d_0c_3x3/BatchNorm/moving_variance", &[32]).unwrap();
}

#[test]
fn folder_prefix_and_index_path_resolve_to_the_same_checkpoint() {
    let Some(dir) = fixture_dir() else { return };
    let prefix = dir.join("model-20170512-110547.ckpt-250000");
    let index = dir.join("model-20170512-110547.ckpt-250000.index");
    assert_eq!(tf::resolve_prefix(&dir).unwrap(), prefix);
    assert_eq!(tf::resolve_prefix(&prefix).unwrap(), prefix);
    assert_eq!(tf::resolve_prefix(&index).unwrap(), prefix);
    let a = tf::read_index(&index).unwrap();
    assert_eq!(a.len(), 490, "the index lists the 490 float variables");
    assert!(a.iter().all(|(_, e)| e.dtype == 1 && e.crc32c.is_some()));
}

fn copy_checkpoint(dir: &Path, tmp: &Path) -> PathBuf {
    std::fs::create_dir_all(tmp).unwrap();
    for f in ["model-20170512-110547.ckpt-250000.index", "model-20170512-110547.ckpt-250000.data-00000-of-00001", "checkpoint"] {
        std::fs::copy(dir.join(f), tmp.join(f)).unwrap();
        let mut perm = std::fs::metadata(tmp.join(f)).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        perm.set_readonly(false);
        std::fs::set_permissions(tmp.join(f), perm).unwrap();
    }
    tmp.join("model-20170512-110547.ckpt-250000")
}

#[test]
fn truncated_data_file_is_refused_naming_file_and_tensor() {
    let Some(dir) = fixture_dir() else { return };
    let tmp = std::env::temp_dir().join(format!("facegpu-trunc-{}", std::process::id()));
    let prefix = copy_checkpoint(&dir, &tmp);
    let data = PathBuf::from(format!("{}.data-00000-of-00001", prefix.display()));
    let f = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
    f.set_len(1_000_000).unwrap();
    let err = Weights::load(&tmp).unwrap_err();
    let msg = err.to_string();
    std::fs::remove_dir_all(&tmp).ok();
    assert!(matches!(err, CheckpointError::BadTensor { .. }), "{msg}");
    assert!(msg.contains("data-00000-of-00001") && msg.contains("InceptionResnetV1/") && msg.contains("truncated"), "{msg}");
}

#[test]
fn corrupted_tensor_bytes_fail_the_checksum_naming_the_tensor() {
    let Some(dir) = fixture_dir() else { return };
    let tmp = std::env::temp_dir().join(format!("facegpu-crc-{}", std::process::id()));
    let prefix = copy_checkpoint(&dir, &tmp);
    let data = PathBuf::from(format!("{}.data-00000-of-00001", prefix.display()));
    let mut bytes = std::fs::read(&data).unwrap();
    bytes[4096] ^= 0x55;
    std::fs::write(&data, bytes).unwrap();
    let msg = Weights::load(&tmp).unwrap_err().to_string();
    std::fs::remove_dir_all(&tmp).ok();
    assert!(msg.contains("crc32c") && msg.contains("tensor '"), "{msg}");
}

#[test]
fn missing_folder_and_garbage_index_give_clear_errors() {
    let tmp = std::env::temp_dir().join(format!("facegpu-garbage-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let msg = Weights::load(&tmp).unwrap_err().to_string();
    assert!(msg.contains("no checkpoint found"), "{msg}");
    std::fs::write(tmp.join("m.index"), vec![7u8; 100]).unwrap();
    let msg = Weights::load(&tmp.join("m.index")).unwrap_err().to_string();
    std::fs::remove_dir_all(&tmp).ok();
    assert!(msg.contains("m.index") && msg.contains("magic"), "{msg}");
}

#[test]
fn f16_safetensors_store_each_weight_rounded_to_half_and_load_back_as_f32() {
    let Some(dir) = fixture_dir() else { return };
    let tmp = std::env::temp_dir().join(format!("facegpu-f16-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let out = tmp.join("m16.safetensors");
    let n = facegpu::workflows::embed::convert(
        &dir,
        &out,
        facegpu::checkpoint::Standardization::Prewhiten,
        facegpu::checkpoint::safetensors::StorageDtype::F16,
    )
    .unwrap();
    let f16 = Weights::load(&out).unwrap();
    let size = std::fs::metadata(&out).unwrap().len();
    std::fs::remove_dir_all(&tmp).ok();
    let f32w = Weights::load(&dir).unwrap();
    assert_eq!(n, 490);
    assert!(size < 22_808_144 * 2 + 200_000, "f16 file is {size} bytes, about 2 bytes per parameter");
    for (name, t) in &f32w.tensors {
        let h = &f16.tensors[name];
        assert_eq!(h.shape, t.shape, "{name}");
        assert!(h.data.iter().zip(&t.data).all(|(a, b)| *a == half::f16::from_f32(*b).to_f32()), "{name}: values are not the f16 rounding");
    }
}
