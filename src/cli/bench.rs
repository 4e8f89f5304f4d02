//! `facegpu bench ...`: speed and memory figures.

use std::path::PathBuf;

use facegpu::workflows::embed::{bench_embed, Embedder};

use super::common::*;
use super::BoxError;

/// Batch size, repetitions and output form shared by every benchmark.
#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// Batch size (images per forward pass; the conv2d shapes' batch).
    #[arg(long, default_value_t = 32)]
    pub(crate) batch_size: usize,
    /// Timed repetitions after one warm-up; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub(crate) reps: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(clap::Subcommand)]
pub(crate) enum BenchCommand {
    /// conv2d at Inception-ResNet-v1 layer shapes and a 1024^3 matmul: ms and GFLOP/s.
    Kernels(BenchKernelsCmd),
    /// A training step (forward, backward, ADAM update) of one block35 (batch x 17x17x256) next to its
    /// training-mode forward.
    Block35(BenchBlock35Cmd),
    /// Full Inception-ResNet-v1 training steps (forward, backward, ADAM, moving average): images/s.
    Train(BenchTrainCmd),
    /// Image decoding: facegpu's (libjpeg's arithmetic for JPEGs) against the `image` crate's, ms per
    /// photo (median of --reps passes over all the photos).
    Decode(BenchDecodeCmd),
    /// Nearest-neighbour search of `identify` over a synthetic gallery of random unit vectors.
    Identify(BenchIdentifyCmd),
    /// `cluster`'s neighbour search and clustering over synthetic identities (10 noisy faces each).
    Cluster(BenchClusterCmd),
    /// MTCNN detection: ms per photo, split into stages (decoding not timed).
    Detect(BenchDetectCmd),
    /// Inception-ResNet-v1 forward passes: images/s at a batch size (input upload and readback included).
    Embed(BenchEmbedCmd),
}

#[derive(clap::Args)]
pub(crate) struct BenchKernelsCmd {
    #[command(flatten)]
    pub(crate) run: BenchArgs,
    /// The WGSL kernels (gpu) or the CPU backend's SIMD kernels, with the micro-kernel's in-cache peak.
    #[arg(long, value_enum, default_value = "gpu")]
    pub(crate) device: facegpu::models::Device,
}

#[derive(clap::Args)]
pub(crate) struct BenchBlock35Cmd {
    #[command(flatten)]
    pub(crate) run: BenchArgs,
}

#[derive(clap::Args)]
pub(crate) struct BenchTrainCmd {
    #[command(flatten)]
    pub(crate) run: BenchArgs,
    /// Input size.
    #[arg(long, default_value_t = 160)]
    pub(crate) image_size: usize,
    /// Identities of the Logits layer.
    #[arg(long, default_value_t = 1000)]
    pub(crate) classes: usize,
}

#[derive(clap::Args)]
pub(crate) struct BenchDecodeCmd {
    #[command(flatten)]
    pub(crate) run: BenchArgs,
    #[arg(required = true)]
    pub(crate) images: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct BenchIdentifyCmd {
    /// Embeddings in the gallery.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) gallery_size: usize,
    /// Faces per query photo.
    #[arg(long, default_value_t = 5)]
    pub(crate) faces: usize,
    #[command(flatten)]
    pub(crate) run: BenchArgs,
}

#[derive(clap::Args)]
pub(crate) struct BenchClusterCmd {
    /// Faces to cluster.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) faces: usize,
    #[arg(long, value_enum, default_value = "chinese-whispers")]
    pub(crate) method: facegpu::workflows::cluster::Method,
    #[command(flatten)]
    pub(crate) run: BenchArgs,
}

#[derive(clap::Args)]
pub(crate) struct BenchDetectCmd {
    #[command(flatten)]
    pub(crate) mtcnn: MtcnnArgs,
    #[command(flatten)]
    pub(crate) run: BenchArgs,
    /// Photos.
    #[arg(required = true)]
    pub(crate) images: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct BenchEmbedCmd {
    /// Model weights (TF model folder or .safetensors).
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// cpu (SIMD kernels) or gpu (WGSL kernels); default as for embed.
    #[arg(long, value_enum)]
    pub(crate) device: Option<facegpu::models::Device>,
    #[command(flatten)]
    pub(crate) run: BenchArgs,
}

pub(crate) fn bench_detect(args: BenchDetectCmd) -> Result<(), BoxError> {
    let BenchDetectCmd { mtcnn, run: BenchArgs { reps, json, .. }, images } = args;
    let ctx = gpu()?;
    let (mut mtcnn, opts) = mtcnn.load(&ctx)?;
    let imgs = images.iter().map(|p| facegpu::data::images::load_image(p)).collect::<Result<Vec<_>, _>>()?;
    let b = facegpu::workflows::detect::bench_detect(&ctx, &mut mtcnn, &imgs, &opts, reps)?;
    if json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        println!(
            "adapter: {}
{} photos, {} faces: {:.1} ms per photo (median of {reps})",
            b.adapter, b.photos, b.faces, b.ms_per_image
        );
        println!(
            "  pyramid+PNet {:.1} ms, RNet {:.1} ms, ONet {:.1} ms, NMS and CPU work {:.1} ms per photo",
            b.pnet_ms_per_image, b.rnet_ms_per_image, b.onet_ms_per_image, b.cpu_ms_per_image
        );
        println!("GPU working memory: {} bytes", b.activation_bytes);
    }
    print_profile(&ctx);
    Ok(())
}

pub(crate) fn bench_model(args: BenchEmbedCmd) -> Result<(), BoxError> {
    let BenchEmbedCmd { model, device, run: BenchArgs { batch_size, reps, json } } = args;
    let ctx = gpu()?;
    let mut embedder = Embedder::load_on(&ctx, &model, None, 160, device)?;
    let b = bench_embed(&ctx, &mut embedder, batch_size, reps)?;
    if json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        println!(
            "device: {:?} {}{}\nbatch {}: {:.2} images/s ({:.1} ms per batch, median of {reps})",
            b.device,
            b.adapter,
            if b.simd.is_empty() { String::new() } else { format!(" ({})", b.simd) },
            b.batch_size,
            b.images_per_s,
            b.ms_per_batch
        );
        println!("activation memory: {} bytes after the first pass, {} after the last", b.activation_bytes_first, b.activation_bytes_last);
    }
    print_profile(&ctx);
    Ok(())
}

pub(crate) fn bench_decode(args: BenchDecodeCmd) -> Result<(), BoxError> {
    let BenchDecodeCmd { run: BenchArgs { reps, json, .. }, images } = args;
    let time = |f: &dyn Fn(&PathBuf) -> bool| {
        let mut runs: Vec<f64> = (0..reps.max(1))
            .map(|_| {
                let t = std::time::Instant::now();
                for p in &images {
                    std::hint::black_box(f(p));
                }
                t.elapsed().as_secs_f64() * 1e3 / images.len() as f64
            })
            .collect();
        runs.sort_by(f64::total_cmp);
        runs[runs.len() / 2]
    };
    let ours = time(&|p| facegpu::data::images::load_image(p).is_ok());
    let crate_ms = time(&|p| image::open(p).map(|i| i.to_rgb8()).is_ok());
    if json {
        println!("{}", serde_json::json!({ "photos": images.len(), "facegpu_ms_per_photo": ours, "image_crate_ms_per_photo": crate_ms }));
    } else {
        println!("{} photos: facegpu {ours:.3} ms per photo, image crate {crate_ms:.3} ms ({:.2}x)", images.len(), ours / crate_ms);
    }
    Ok(())
}

pub(crate) fn bench_identify(args: BenchIdentifyCmd) -> Result<(), BoxError> {
    let BenchIdentifyCmd { gallery_size, faces, run: BenchArgs { reps, json, .. } } = args;
    let ctx = gpu()?;
    let b = facegpu::workflows::recognize::bench_identify(&ctx, gallery_size, faces, reps)?;
    if json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        println!(
                "adapter: {}\ngallery: {} embeddings ({} bytes), indexed in {:.1} ms\nidentify: {:.2} ms per photo of {} faces\npeak RSS: {:?} bytes",
                b.adapter, b.gallery_size, b.gallery_bytes, b.index_ms, b.ms_per_photo, b.faces_per_photo, b.peak_rss_bytes
            );
    }
    Ok(())
}

pub(crate) fn bench_cluster(args: BenchClusterCmd) -> Result<(), BoxError> {
    let BenchClusterCmd { faces, method, run: BenchArgs { json, .. } } = args;
    let ctx = gpu()?;
    let b = facegpu::workflows::cluster::bench_cluster(&ctx, faces, method)?;
    if json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        println!(
                "adapter: {}\n{} faces of {} identities: neighbours {:.0} ms ({} edges), {:?} {:.0} ms: {} clusters, ARI {:.4}\npeak RSS: {:?} bytes",
                b.adapter, b.faces, b.identities, b.neighbour_ms, b.edges, b.method, b.cluster_ms, b.clusters, b.adjusted_rand_index, b.peak_rss_bytes
            );
    }
    Ok(())
}

pub(crate) fn bench_block35(args: BenchBlock35Cmd) -> Result<(), BoxError> {
    let BenchBlock35Cmd { run: BenchArgs { batch_size, reps, json } } = args;
    let ctx = gpu()?;
    let b = facegpu::workflows::bench::block35(&ctx, batch_size, reps)?;
    if json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        println!("adapter: {}  (block35, batch {} x 17x17x256, median of {reps})", b.adapter, b.batch_size);
        println!("forward (training mode)   {:>9.1} ms  {:>6.2} GFLOP/s", b.forward_ms, b.forward_gflop / b.forward_ms * 1e3);
        println!("forward + backward        {:>9.1} ms", b.forward_backward_ms);
        println!("training step (+ ADAM)    {:>9.1} ms", b.step_ms);
        println!("backward / forward        {:>9.2}", b.backward_over_forward);
    }
    print_profile(&ctx);
    Ok(())
}

pub(crate) fn bench_train(args: BenchTrainCmd) -> Result<(), BoxError> {
    let BenchTrainCmd { run: BenchArgs { batch_size, reps, json }, image_size, classes } = args;
    let ctx = gpu()?;
    let b = facegpu::workflows::bench::train(&ctx, batch_size, image_size, reps, classes)?;
    if json {
        println!("{}", serde_json::to_string(&b)?);
    } else {
        println!(
            "adapter: {}  (Inception-ResNet-v1, batch {} x {}x{}, ADAM, median of {reps})",
            b.adapter, b.batch_size, b.image_size, b.image_size
        );
        println!("{:.2} training images/s ({:.0} ms per step)", b.train_images_per_s, b.ms_per_step);
        println!("memory held: {} bytes after the first timed step, {} after the last", b.memory_bytes_first, b.memory_bytes_last);
    }
    print_profile(&ctx);
    Ok(())
}

/// `bench kernels --device cpu`: each kernel's GFLOP/s beside the micro-kernel's in-cache throughput on
/// every thread (the host's practical peak).
fn bench_kernels_cpu(batch_size: usize, reps: usize, json: bool) -> Result<(), BoxError> {
    use facegpu::simd::gemm::{peak_gflops, Isa};
    let (isa, threads) = (Isa::detect(), facegpu::simd::threads());
    let rows = facegpu::workflows::bench::kernels_cpu(batch_size, reps)?;
    let peak = peak_gflops(isa, threads, 300);
    if json {
        println!(
            "{}",
            serde_json::json!({ "device": "cpu", "simd": format!("{isa:?}"), "threads": threads, "batch_size": batch_size, "peak_gflops": peak, "kernels": rows })
        );
        return Ok(());
    }
    println!("CPU backend: {isa:?} x {threads} threads (batch {batch_size}, median of {reps}); micro-kernel in L1: {peak:.1} GFLOP/s");
    println!("{:<42} {:>10} {:>10} {:>7}  shape", "kernel", "ms", "GFLOP/s", "of peak");
    for r in &rows {
        println!("{:<42} {:>10.2} {:>10.2} {:>6.0}%  {}", r.name, r.ms, r.gflops, 100.0 * r.gflops / peak, r.shape);
    }
    Ok(())
}

pub(crate) fn bench_kernels(args: BenchKernelsCmd) -> Result<(), BoxError> {
    let BenchKernelsCmd { run: BenchArgs { batch_size, reps, json }, device } = args;
    if device == facegpu::models::Device::Cpu {
        return bench_kernels_cpu(batch_size, reps, json);
    }
    let ctx = gpu()?;
    let rows = facegpu::workflows::bench::kernels(&ctx, batch_size, reps)?;
    let adapter = ctx.adapter_name();
    if json {
        println!("{}", serde_json::json!({ "adapter": adapter, "batch_size": batch_size, "kernels": rows }));
    } else {
        println!("adapter: {adapter}  (batch {batch_size}, median of {reps})");
        println!("{:<42} {:>10} {:>10}  shape", "kernel", "ms", "GFLOP/s");
        for r in &rows {
            println!("{:<42} {:>10.2} {:>10.2}  {}", r.name, r.ms, r.gflops, r.shape);
        }
        let convs: Vec<f64> = rows.iter().filter(|r| r.name.starts_with("conv2d")).map(|r| r.gflops).collect();
        println!("conv2d mean GFLOP/s: {:.2}", convs.iter().sum::<f64>() / convs.len().max(1) as f64);
    }
    print_profile(&ctx);
    Ok(())
}
