//! Inception-ResNet-v1 on facenet's real 20170512-110547 weights against TensorFlow's outputs.

mod common;

use std::path::{Path, PathBuf};

use common::assert_close;
use facegpu::checkpoint::{Standardization, Weights};
use facegpu::data::{images::load_rgb, npy};
use facegpu::models::inception_resnet_v1::InceptionResnetV1;

fn fixtures() -> Option<(PathBuf, PathBuf)> {
    let ckpt = common::fixture("facenet-20170512-110547/checkpoint")?;
    let golden = common::fixture("irv1-golden/order.json")?;
    Some((ckpt.with_file_name(""), golden.with_file_name("")))
}

fn golden_images(golden: &Path) -> Vec<f32> {
    common::golden_faces(golden).iter().flat_map(|p| load_rgb(p, 160).unwrap()).collect()
}

#[test]
fn embeddings_match_tensorflow_within_1e5_for_both_standardizations_and_taps_localize() {
    let ctx = gpu_or_skip!();
    let Some((ckpt, golden)) = fixtures() else { return };
    let weights = Weights::load(&ckpt).unwrap();
    let mut model = InceptionResnetV1::load(ctx, &weights).unwrap();
    assert_eq!(model.embedding_size, 128);
    let images = golden_images(&golden);
    for (std, file) in
        [(Standardization::Prewhiten, "embeddings_prewhiten.npy"), (Standardization::Fixed, "embeddings_fixed_standardization.npy")]
    {
        let (emb, taps) = model.embed_with_taps(ctx, &images, [5, 160, 160, 3], std, std == Standardization::Prewhiten).unwrap();
        if std == Standardization::Prewhiten {
            // Taps of image 0: relative tolerance grows with depth (fp32 sums in another order).
            for (tap, atol) in [
                ("Conv2d_1a_3x3", 1e-4),
                ("Conv2d_4b_3x3", 2e-4),
                ("Repeat/block35_5", 5e-4),
                ("Mixed_6a", 5e-4),
                ("Mixed_7a", 1e-3),
                ("Block8", 1e-3),
                ("prelogits", 1e-3),
            ] {
                let (want_shape, want) =
                    npy::read_f32(&golden.join(format!("activation_{}_image0_prewhiten.npy", tap.replace('/', "_")))).unwrap();
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
        // Measured 3.6e-7: TensorFlow's fp32 sums in another order. 1e-5 leaves room for another driver's
        // summation order and nothing for a wrong layer (that moves unit-norm components by 1e-2 or more).
        assert_close(&format!("embeddings {std:?}"), &emb, &want, 1e-5, 0.0);
    }
}

#[test]
fn convert_then_load_safetensors_gives_identical_embeddings_and_records_standardization() {
    let ctx = gpu_or_skip!();
    let Some((ckpt, golden)) = fixtures() else { return };
    let dir = std::env::temp_dir().join(format!("facegpu-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("model.safetensors");
    let n = facegpu::workflows::embed::convert(&ckpt, &out, Standardization::Fixed, facegpu::checkpoint::safetensors::StorageDtype::F32)
        .unwrap();
    assert_eq!(n, 490);
    let again =
        facegpu::workflows::embed::convert(&ckpt, &out, Standardization::Fixed, facegpu::checkpoint::safetensors::StorageDtype::F32)
            .unwrap_err()
            .to_string();
    assert!(again.contains("already exists"), "{again}");
    let tf = Weights::load(&ckpt).unwrap();
    let st = Weights::load(&out).unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(st.standardization, Some(Standardization::Fixed));
    assert_eq!(st.tensors, tf.tensors, "safetensors round trip keeps every tensor bit for bit");
    let images = golden_images(&golden);
    let a = InceptionResnetV1::load(ctx, &tf).unwrap().embed(ctx, &images, [5, 160, 160, 3], Standardization::Prewhiten).unwrap();
    let b = InceptionResnetV1::load(ctx, &st).unwrap().embed(ctx, &images, [5, 160, 160, 3], Standardization::Prewhiten).unwrap();
    assert_eq!(a, b, "embeddings from the converted file are identical");
}

#[test]
fn missing_or_misshapen_variable_is_refused_by_name() {
    let ctx = gpu_or_skip!();
    let Some((ckpt, _)) = fixtures() else { return };
    let full = Weights::load(&ckpt).unwrap();
    let name = "InceptionResnetV1/Repeat_1/block17_4/Branch_1/Conv2d_0c_7x1/weights";
    let mut missing = full.clone();
    missing.tensors.remove(name);
    let msg = InceptionResnetV1::load(ctx, &missing).err().expect("missing variable must fail").to_string();
    assert!(msg.contains(name) && msg.contains("missing"), "{msg}");
    let mut wrong = full;
    wrong.tensors.get_mut(name).unwrap().shape = vec![1, 7, 128, 128];
    let msg = InceptionResnetV1::load(ctx, &wrong).err().expect("wrong shape must fail").to_string();
    assert!(msg.contains(name) && msg.contains("[1, 7, 128, 128]") && msg.contains("[7, 1, 128, 128]"), "{msg}");
}

#[test]
fn embed_json_prints_one_object_per_line_and_skips_unreadable_files() {
    if common::gpu().is_none() {
        return;
    }
    let Some((ckpt, golden)) = fixtures() else { return };
    let img = golden.join("images/paul_rudd.png");
    let bad = std::env::temp_dir().join(format!("facegpu-not-an-image-{}.png", std::process::id()));
    std::fs::write(&bad, b"not a png").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_facegpu"))
        .args(["embed", "--json", "--model"])
        .arg(&ckpt)
        .arg(&img)
        .arg(&bad)
        .output()
        .unwrap();
    std::fs::remove_file(&bad).ok();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(v["image"].as_str().unwrap(), img.to_str().unwrap());
    let e: Vec<f32> = v["embedding"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    let (_, want) = npy::read_f32(&golden.join("embeddings_prewhiten.npy")).unwrap();
    // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's statistics)
    // summed in another order by the GPU's tiles: errors grow to about 1e-5 relative, 1e-4 bounds them.
    assert_close("embed --json paul_rudd", &e, &want[3 * 128..4 * 128], 1e-4, 0.0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("facegpu-not-an-image") && stderr.contains("skipping"), "{stderr}");
}

#[test]
fn a_batch_above_the_adapters_binding_limit_is_embedded_in_halves_with_the_same_embeddings() {
    let ctx = gpu_or_skip!();
    let Some((ckpt, golden)) = fixtures() else { return };
    let five = common::golden_faces(&golden);
    // 100 images in one batch: Conv2d_2b_3x3's output alone is 100 x 77 x 77 x 64 floats (152 MB),
    // above llvmpipe's 128 MiB binding limit; the batch is embedded in halves instead.
    let files: Vec<PathBuf> = (0..20).flat_map(|_| five.iter().cloned()).collect();
    let gpu = Some(facegpu::models::Device::Gpu);
    let mut embedder = facegpu::workflows::embed::Embedder::load_on(ctx, &ckpt, None, 160, gpu).unwrap();
    let limit = ctx.summary().max_storage_buffer_binding_size;
    println!("binding limit {limit} bytes; 100 images need {} bytes in one buffer", 100u64 * 77 * 77 * 64 * 4);
    let big = embedder.embed_files(ctx, &files, 100, &mut ()).unwrap();
    let small = embedder.embed_files(ctx, &five, 5, &mut ()).unwrap();
    assert_eq!(big.len(), 100);
    if limit < 100 * 77 * 77 * 64 * 4 {
        assert!(embedder.split_batches > 0, "the batch of 100 must have been split");
    }
    for (i, (path, e)) in big.iter().enumerate() {
        assert_eq!(path, &five[i % 5]);
        // The same images through batches of other sizes: the convs may split their sums in other
        // places (split-K depends on the batch), a few f32 ulps on unit vectors.
        common::assert_close(&format!("image {i}"), e, &small[i % 5].1, 1e-5, 0.0);
    }
}

/// Both paths are built from `arch::inception_resnet_v1`: the inference model (batch norms folded into
/// the convs) and the training net in inference mode (moving-statistics batch norm on the tape) must give
/// the same embeddings from the same weights.
#[test]
fn training_net_in_inference_mode_gives_the_inference_models_embeddings() {
    use facegpu::gpu::{Encoder, GpuTensor};
    use facegpu::tape::Tape;
    use facegpu::train::net::TrainNet;
    let ctx = gpu_or_skip!();
    let Some((ckpt, golden)) = fixtures() else { return };
    let weights = Weights::load(&ckpt).unwrap();
    let images = golden_images(&golden);
    let want = InceptionResnetV1::load(ctx, &weights).unwrap().embed(ctx, &images, [5, 160, 160, 3], Standardization::Fixed).unwrap();

    let mut net = TrainNet::new(128, 0, Some(&weights), 0);
    let mut tape = Tape::new();
    let standardized: Vec<f32> = images.iter().map(|v| (v - 127.5) / 128.0).collect();
    let x = GpuTensor::upload(ctx, "images", &[5, 160, 160, 3], &standardized).unwrap();
    let mut enc = Encoder::new(ctx);
    let xv = tape.input(&x);
    let out = net.forward_inference(&mut tape, &mut enc, xv).unwrap();
    enc.submit().unwrap();
    assert!(net.initialised.is_empty(), "every variable comes from the checkpoint: {:?}", net.initialised);
    let prelogits = tape.value(out.prelogits).download(ctx).unwrap();
    let got: Vec<f32> = prelogits
        .chunks(128)
        .flat_map(|row| {
            let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
            row.iter().map(move |v| v / norm).collect::<Vec<_>>()
        })
        .collect();
    let max_err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("training net (inference mode) vs inference model: max abs embedding error {max_err:e}");
    // The same fp32 arithmetic in another order (batch norm folded into the conv's epilogue on one path,
    // a separate pass on the other) across 100+ layers: differences of a few 1e-7 per unit-norm component.
    assert_close("embeddings", &got, &want, 1e-5, 0.0);
}

/// The GPU-shaped kernels (shared-memory tiles: conv2d_tiled.wgsl, matmul_tiled.wgsl) through the whole
/// network on the real weights, on whatever adapter runs the tests: TensorFlow's embeddings within the
/// same 1e-5 as the default kernels.
#[test]
fn gpu_shaped_kernels_give_tensorflows_embeddings() {
    gpu_or_skip!();
    let ctx = common::gpu_shaped().expect("a GPU-shaped context beside the shared one");
    let Some((emb, want)) = golden_embeddings(ctx) else { return };
    let max_err = emb.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    eprintln!("GPU-shaped kernels: max abs embedding error vs TensorFlow {max_err:e}");
    // fp32 sums in a third order (k in steps of 16 through shared memory): as the default kernels, a few
    // 1e-7 per unit-norm component; 1e-5 leaves nothing for a wrong layer.
    assert_close("embeddings (GPU-shaped kernels)", &emb, &want, 1e-5, 0.0);
}

/// The 5 golden faces' prewhitened embeddings on `ctx`, and TensorFlow's.
fn golden_embeddings(ctx: &facegpu::gpu::GpuContext) -> Option<(Vec<f32>, Vec<f32>)> {
    let (ckpt, golden) = fixtures()?;
    let weights = Weights::load(&ckpt).unwrap();
    let mut model = InceptionResnetV1::load(ctx, &weights).unwrap();
    let emb = model.embed(ctx, &golden_images(&golden), [5, 160, 160, 3], Standardization::Prewhiten).unwrap();
    let (_, want) = npy::read_f32(&golden.join("embeddings_prewhiten.npy")).unwrap();
    Some((emb, want))
}

/// f16 inference (GPU kernel shape, adapters with SHADER_F16: lavapipe has it): the convs' weights are
/// f16, their operands staged and each step's 16 products summed in f16, then added in f32. The
/// embedding error against TensorFlow's f32 is measured and bounded, and the same faces stay the same
/// people.
#[test]
fn f16_inference_stays_close_to_tensorflows_embeddings() {
    let Some(ctx) = common::f16_context() else { return };
    let Some((emb, want)) = golden_embeddings(&ctx) else { return };
    let max_err = emb.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    let cos: Vec<f32> = emb.chunks(128).zip(want.chunks(128)).map(|(a, b)| a.iter().zip(b).map(|(x, y)| x * y).sum()).collect();
    eprintln!("f16 inference: max abs embedding error vs TensorFlow {max_err:e}, cosine per face {cos:?}");
    // f16 keeps 11 significant bits (rounding 4.9e-4 relative per value); the staged operands and each
    // step's 16 products are rounded, and the errors partly cancel across ~100 layers: measured 6.4e-4 on
    // lavapipe (cosine >= 0.999998). A wrong layer moves unit-norm components by 1e-2 or more, so 3e-3
    // bounds f16's rounding and nothing else; below 1e-5 the f32 kernels ran instead.
    assert!(max_err > 1e-5, "f16 gave f32's embeddings (max error {max_err:e}): the f16 kernels did not run");
    assert_close("embeddings (f16)", &emb, &want, 3e-3, 0.0);
    assert!(cos.iter().all(|&c| c > 0.9999), "cosine to TensorFlow's embedding {cos:?}");
}
