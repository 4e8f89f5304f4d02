//! `facegpu eval`, `classify` and `filter-metrics`.

use std::path::PathBuf;

use facegpu::checkpoint::Standardization;

use super::common::*;
use super::BoxError;

/// What `classify train` and `classify predict` share.
#[derive(clap::Args)]
pub(crate) struct ClassifyArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Aligned faces, one folder per identity.
    #[arg(long)]
    pub(crate) data_dir: PathBuf,
    /// The classifier file (.safetensors with the class names).
    #[arg(long)]
    pub(crate) classifier: PathBuf,
    /// Split each class: train on the first --nrof-train-images-per-class (shuffled with --seed),
    /// predict on the rest.
    #[arg(long)]
    pub(crate) use_split_dataset: bool,
    /// With --use-split-dataset: classes with fewer images are left out.
    #[arg(long, default_value_t = 20)]
    pub(crate) min_nrof_images_per_class: usize,
    #[arg(long, default_value_t = 10)]
    pub(crate) nrof_train_images_per_class: usize,
    #[arg(long, default_value_t = 666)]
    pub(crate) seed: u64,
    /// Images per GPU batch.
    #[arg(long, default_value_t = 90)]
    pub(crate) batch_size: usize,
}

#[derive(clap::Subcommand)]
pub(crate) enum ClassifyCommand {
    /// Embed the dataset and fit the classifier (never overwrites --classifier).
    Train {
        #[command(flatten)]
        args: ClassifyArgs,
    },
    /// Print each image's most likely class and its probability, then the accuracy.
    Predict {
        #[command(flatten)]
        args: ClassifyArgs,
        /// One JSON object per image: {"image", "class", "probability", "truth"}.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub(crate) struct FilterMetricsCmd {
    /// Model (as for embed).
    #[arg(long, required_unless_present = "merge")]
    pub(crate) model: Option<PathBuf>,
    #[arg(long, value_enum)]
    pub(crate) standardization: Option<Standardization>,
    #[arg(long, default_value_t = 160)]
    pub(crate) image_size: u32,
    /// Aligned faces, one folder per identity.
    #[arg(long, required_unless_present = "merge")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The filter file to write (JSON).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Only part K of N of the identity folders.
    #[arg(long)]
    pub(crate) shard: Option<facegpu::data::Shard>,
    /// Images per GPU batch.
    #[arg(long, default_value_t = 32)]
    pub(crate) batch_size: usize,
    /// Join these shard files (same dataset) into --out.
    #[arg(long, num_args = 1.., conflicts_with = "data_dir")]
    pub(crate) merge: Vec<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct EvalCmd {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Images in LFW's layout: NAME/NAME_0001.png (any image extension).
    #[arg(long)]
    pub(crate) lfw_dir: PathBuf,
    /// Pairs in LFW's format (header "folds n", then "name i j" and "name1 i name2 j" lines).
    #[arg(long)]
    pub(crate) lfw_pairs: PathBuf,
    /// Cross-validation folds.
    #[arg(long, default_value_t = 10)]
    pub(crate) lfw_nrof_folds: usize,
    /// euclidean: squared L2 (facenet's 0); cosine: arccos(similarity)/pi (facenet's 1).
    #[arg(long, default_value = "euclidean")]
    pub(crate) distance_metric: facegpu::eval::metrics::DistanceMetric,
    /// Subtract the training folds' mean embedding before computing distances.
    #[arg(long)]
    pub(crate) subtract_mean: bool,
    /// Concatenate each embedding with the embedding of the mirrored image.
    #[arg(long)]
    pub(crate) use_flipped_images: bool,
    /// Images per GPU batch.
    #[arg(long, default_value_t = 32)]
    pub(crate) batch_size: usize,
    /// Align raw photos on the fly with MTCNN (facenet's evaluation settings: the model's image size,
    /// margin 32, the largest central face).
    #[arg(long)]
    pub(crate) align: bool,
    /// Margin used with --align.
    #[arg(long, default_value_t = 32.0)]
    pub(crate) margin: f64,
    #[command(flatten)]
    pub(crate) mtcnn: MtcnnArgs,
    /// Print one JSON object: accuracy_mean, accuracy_std, val, val_std, far, auc, eer, pairs, skipped.
    #[arg(long)]
    pub(crate) json: bool,
    /// Also draw the ROC curve to this PNG.
    #[arg(long, value_name = "PNG")]
    pub(crate) roc: Option<PathBuf>,
}

pub(crate) fn eval(args: EvalCmd) -> Result<(), BoxError> {
    let EvalCmd {
        model,
        lfw_dir,
        lfw_pairs,
        lfw_nrof_folds,
        distance_metric,
        subtract_mean,
        use_flipped_images,
        batch_size,
        align,
        margin,
        mtcnn,
        json,
        roc,
    } = args;
    let ctx = gpu()?;
    let mut embedder = model.load(&ctx)?;
    let mut detector = if align { Some(mtcnn.load(&ctx)?) } else { None };
    let on_the_fly = detector.as_mut().map(|(m, d)| facegpu::workflows::eval::OnTheFlyAlign { mtcnn: m, detect: *d, margin });
    let opts = facegpu::workflows::eval::EvalOptions {
        folds: lfw_nrof_folds,
        metric: distance_metric,
        subtract_mean,
        use_flipped_images,
        batch_size,
    };
    let report = facegpu::workflows::eval::eval_lfw(&ctx, &mut embedder, &lfw_dir, &lfw_pairs, &opts, on_the_fly, &mut Bar::new())?;
    if let Some(path) = &roc {
        report.save_roc(path)?;
    }
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!("{} pairs ({} skipped), {} images", report.pairs, report.skipped, report.images);
        println!("{}", report.human());
        if let Some(path) = &roc {
            println!("ROC curve: {}", path.display());
        }
    }
    Ok(())
}

pub(crate) fn classify(cmd: ClassifyCommand) -> Result<(), BoxError> {
    use facegpu::workflows::classify::{classify_dataset, embed_dataset, predict_dir, Classifier};
    let ctx = gpu()?;
    match cmd {
        ClassifyCommand::Train { args } => {
            let split = args.use_split_dataset.then_some((args.min_nrof_images_per_class, args.nrof_train_images_per_class));
            let classes = classify_dataset(&args.data_dir, split, args.seed, true)?;
            if args.classifier.exists() {
                return Err(format!("{}: already exists; facegpu never overwrites a classifier", args.classifier.display()).into());
            }
            let mut embedder = args.model.load(&ctx)?;
            let items = embed_dataset(&ctx, &mut embedder, &classes, args.batch_size, &mut Bar::new())?;
            let names: Vec<String> = classes.iter().map(|c| c.name.clone()).collect();
            let (emb, labels): (Vec<Vec<f32>>, Vec<u32>) = items.into_iter().map(|(_, l, e)| (e, l as u32)).unzip();
            println!("Number of classes: {}\nNumber of images: {}", names.len(), emb.len());
            let clf = Classifier::fit(&ctx, &emb, &labels, names, 300)?;
            clf.save(&args.classifier)?;
            println!("Saved classifier model to file \"{}\"", args.classifier.display());
        }
        ClassifyCommand::Predict { args, json } => {
            let split = args.use_split_dataset.then_some((args.min_nrof_images_per_class, args.nrof_train_images_per_class));
            let classes = classify_dataset(&args.data_dir, split, args.seed, false)?;
            let clf = Classifier::load(&args.classifier)?;
            let mut embedder = args.model.load(&ctx)?;
            let preds = predict_dir(&ctx, &mut embedder, &clf, &classes, args.batch_size)?;
            let mut known = 0;
            let mut right = 0;
            for (i, p) in preds.iter().enumerate() {
                if json {
                    println!("{}", serde_json::to_string(p)?);
                } else {
                    println!("{i:4}  {}: {:.3}  ({})", p.class, p.probability, p.image.display());
                }
                if let Some(t) = &p.truth {
                    known += 1;
                    right += usize::from(*t == p.class);
                }
            }
            if !json && known > 0 {
                println!("Accuracy: {:.3}", right as f64 / known as f64);
            }
        }
    }
    Ok(())
}

pub(crate) fn filter_merge(args: FilterMetricsCmd) -> Result<(), BoxError> {
    let FilterMetricsCmd { merge, out, .. } = args;
    let files = merge.iter().map(|f| facegpu::workflows::filter::FilterMetrics::load(f)).collect::<Result<Vec<_>, _>>()?;
    let mut all = files[0].clone();
    for (f, m) in merge.iter().zip(&files).skip(1) {
        if m.class_names != all.class_names {
            return Err(format!("{}: its classes are not {}'s: shards of one dataset only", f.display(), merge[0].display()).into());
        }
        all.image_list.extend(m.image_list.iter().cloned());
        all.label_list.extend(&m.label_list);
        all.distance_to_center.extend(&m.distance_to_center);
    }
    all.save(&out)?;
    println!("{} images of {} classes from {} files: {}", all.image_list.len(), all.class_names.len(), files.len(), out.display());
    Ok(())
}

pub(crate) fn filter_metrics(args: FilterMetricsCmd) -> Result<(), BoxError> {
    let FilterMetricsCmd { model, standardization, image_size, data_dir, out, shard, batch_size, .. } = args;
    let ctx = gpu()?;
    let model = ModelArgs { model: model.ok_or("--model is needed")?, standardization, image_size, device: None };
    let mut embedder = model.load(&ctx)?;
    let classes = facegpu::data::dataset::get_dataset(&data_dir.ok_or("--data-dir is needed")?)?;
    let mine = match shard {
        Some(s) => s.select(classes.clone()),
        None => classes.clone(),
    };
    let files: Vec<PathBuf> = mine.iter().flat_map(|c| c.paths.iter().cloned()).collect();
    let rows: std::collections::HashMap<PathBuf, Vec<f32>> =
        embedder.embed_files(&ctx, &files, batch_size, &mut Bar::new())?.into_iter().collect();
    // Every class is named (so shards merge); only this shard's images are measured.
    let mut m = facegpu::workflows::filter::FilterMetrics::compute(&mine, |p| rows.get(p).cloned());
    let names = m.class_names.clone();
    m.class_names = classes.iter().map(|c| c.name.clone()).collect();
    for l in &mut m.label_list {
        *l = m.class_names.iter().position(|n| *n == names[*l]).expect("a class of the dataset");
    }
    m.save(&out)?;
    println!("{} images of {} classes: {}", m.image_list.len(), mine.len(), out.display());
    Ok(())
}
