//! The `facegpu` command line: parses arguments, calls the library's workflows, renders their progress
//! and prints their results. The only code that prints.

mod bench;
mod common;
mod detect;
mod embed;
mod eval;
mod info;
mod recognize;
mod train;
mod tune;

use clap::{Parser, Subcommand};

use bench::BenchCommand;

pub(crate) type BoxError = Box<dyn std::error::Error>;

#[derive(Parser)]
#[command(name = "facegpu", version, about = "FaceNet face recognition on hand-written WGSL kernels (wgpu)")]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// facenet's calculate_filtering_metrics.py: each image's distance to its class's mean embedding,
    /// written as JSON (class_names, image_list, label_list, distance_to_center) for train
    /// --filter-filename. With --merge, joins the files of several --shard runs instead.
    FilterMetrics(eval::FilterMetricsCmd),
    /// Enroll people into a gallery: DIR holds one folder of photos per person; the largest face of each
    /// photo is detected, aligned and embedded, and a threshold is calibrated on the gallery's own pairs.
    Enroll(recognize::EnrollCmd),
    /// Who is in these photos: every face's nearest enrolled person, or unknown above the threshold.
    Identify(recognize::IdentifyCmd),
    /// Group every face of the photos by identity, without labels: OUT/clusters.json, a folder of
    /// aligned faces per cluster and OUT/index.html (a contact sheet).
    Cluster(recognize::ClusterCmd),
    /// Align a dataset (one folder per identity) with MTCNN, as facenet's align_dataset_mtcnn.py.
    Align(detect::AlignCmd),
    /// Detect faces and their 5 landmarks with MTCNN (facenet's detect_face).
    Detect(detect::DetectCmd),
    /// Verify on LFW-style pairs with facenet's protocol (validate_on_lfw.py): 10-fold accuracy, VAL@FAR,
    /// AUC and EER.
    Eval(eval::EvalCmd),
    /// Run the whole job on faces embedded in the binary: align with MTCNN, train briefly, evaluate with
    /// the LFW protocol, write the plots.
    Demo(train::DemoCmd),
    /// Classify faces with a linear classifier on the embeddings (facenet's classifier.py).
    #[command(subcommand)]
    Classify(eval::ClassifyCommand),
    /// Train Inception-ResNet-v1 with softmax + center loss (facenet's train_softmax.py).
    Train(Box<train::TrainArgs>),
    /// Print the chosen GPU adapter, backend, driver and limits.
    Info(info::InfoCmd),
    /// Measure lavapipe's vector widths on this CPU (a short training benchmark at each) and save the
    /// fastest for later runs (LP_NATIVE_VECTOR_WIDTH, when set, still wins).
    Tune(tune::TuneCmd),
    /// Embed aligned face images with Inception-ResNet-v1 (L2-normalized embeddings).
    Embed(embed::EmbedCmd),
    /// facenet's compare.py: detect and align the first face of each photo (--image-size 160 --margin
    /// 44), embed, and print the matrix of Euclidean distances.
    Compare(embed::CompareCmd),
    /// Convert a facenet TF checkpoint or frozen graph (.pb) into facegpu's safetensors format (never
    /// overwrites).
    Convert(embed::ConvertCmd),
    /// Benchmarks with medians over repeated runs (GPU sync included).
    #[command(subcommand)]
    Bench(BenchCommand),
}

/// Runs one command.
pub(crate) fn run(cli: Cli) -> Result<(), BoxError> {
    match cli.command {
        Command::Align(args) => detect::align(args),
        Command::Detect(args) => detect::detect(args),
        Command::Bench(BenchCommand::Detect(args)) => bench::bench_detect(args),
        Command::Embed(args) if args.data_dir.is_some() => embed::embed_dataset(args),
        Command::Embed(args) => embed::embed(args),
        Command::Compare(args) => embed::compare(args),
        Command::Convert(args) => embed::convert_model(args),
        Command::Bench(BenchCommand::Embed(args)) => bench::bench_model(args),
        Command::Eval(args) => eval::eval(args),
        Command::Demo(args) => train::demo(args),
        Command::Classify(args) => eval::classify(args),
        Command::Train(args) => train::train(*args),
        Command::FilterMetrics(args) if !args.merge.is_empty() => eval::filter_merge(args),
        Command::FilterMetrics(args) => eval::filter_metrics(args),
        Command::Enroll(args) => recognize::enroll(args),
        Command::Identify(args) => recognize::identify(args),
        Command::Cluster(args) => recognize::cluster(args),
        Command::Bench(BenchCommand::Decode(args)) => bench::bench_decode(args),
        Command::Bench(BenchCommand::Identify(args)) => bench::bench_identify(args),
        Command::Bench(BenchCommand::Cluster(args)) => bench::bench_cluster(args),
        Command::Info(args) => info::info(args),
        Command::Tune(args) => tune::tune(args),
        Command::Bench(BenchCommand::Block35(args)) => bench::bench_block35(args),
        Command::Bench(BenchCommand::Train(args)) => bench::bench_train(args),
        Command::Bench(BenchCommand::Kernels(args)) => bench::bench_kernels(args),
    }
}
