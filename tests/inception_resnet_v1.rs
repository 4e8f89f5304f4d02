//! Inception-ResNet-v1 on facenet's real 20170512-110547 weights against TensorFlow's outputs.

mod common;

use std::path::{Path, PathBuf};

use common::assert_close;
use facegpu::checkpoint::{Standardization, Weights};
use facegpu::data::{images::load_rgb, npy};
use facegpu::models::inception_resnet_v1::InceptionResnetV1;

fn fixtures() -> Option<(PathBuf, PathBuf)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures");
    let (ckpt, golden) = (root.join("facenet-20170512-110547"), root.join("irv1-golden"));
    if ckpt.join("checkpoint").exists() && golden.join("order.json").exists() {
        Some((ckpt, golden))
    } else {
        eprintln!("skipping: facenet checkpoint or irv1-golden fixtures not found under {}", root.display());
        None
    }
}

fn golden_images(golden: &Path) -> Vec<f32> {
    let order: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(golden.join("order.json")).unwrap()).unwrap();
    order["images"].as_array().unwrap().iter().flat_map(|p| load_rgb(&golden.join(p.as_str().unwrap()), 160).unwrap()).collect()
}

#[test]
fn embeddings_match_tensorflow_within_1e4_for_both_standardizations_and_taps_localize() {
    let ctx = gpu_or_skip!();
    let Some((ckpt, golden)) = fixtures() else { return };
    let weights = Weights::load(&ckpt).unwrap();
    let mut model = InceptionResnetV1::load(ctx, &weights).unwrap();
    assert_eq!(model.embedding_size, 128);
    let images = golden_images(&golden);
    for (std, file) in [(Standardization::Prewhiten, "embeddings_prewhiten.npy"), (Standardization::Fixed, "embeddings_fixed_standardization.npy")] {
        let (emb, taps) = model.embed_with_taps(ctx, &images, [5, 160, 160, 3], std, std == Standardization::Prewhiten).unwrap();
        if std == Standardization::Prewhiten {
            // Taps of image 0: relative tolerance grows with depth (fp32 sums in another order).
            for (tap, atol) in [("Conv2d_1a_3x3", 1e-4), ("Conv2d_4b_3x3", 2e-4), ("Repeat/block35_5", 5e-4), ("Mixed_6a", 5e-4), ("Mixed_7a", 1e-3), ("Block8", 1e-3), ("prelogits", 1e-3)] {
                let (want_shape, want) = npy::read_f32(&golden.join(format!("activation_{}_image0_prewhiten.npy", tap.replace('/', "_")))).unwrap();
                let (shape, got) = &taps[tap];
                let per_image: usize = shape[1..].iter().product();
                assert_eq!(&shape[1..], &want_shape[want_shape.len() - shape.len() + 1..], "tap {tap}");
                assert_close(&format!("tap {tap}"), &got[..per_image], &want, atol, 1e-3);
            }
        }
        let (shape, want) = npy::read_f32(&golden.join(file)).unwrap();
        assert_eq!(shape, vec![5, 128]);
        let max_err = emb.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
        eprintln!("{std:?}: max abs embedding error vs TensorFlow {max_err:e}");
        assert_close(&format!("embeddings {std:?}"), &emb, &want, 1e-4, 0.0);
    }
}
