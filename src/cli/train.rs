//! `facegpu train` and `facegpu demo`.

use std::path::PathBuf;

use super::common::*;
use super::BoxError;

/// `facegpu train`: a run's settings, or --resume.
#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    /// Continue the run in RUN_DIR exactly where it stopped (its args.json is used; other flags ignored).
    #[arg(long, value_name = "RUN_DIR")]
    pub(crate) resume: Option<PathBuf>,
    /// The network (facenet's module name); only models.inception_resnet_v1 exists here.
    #[arg(long, default_value = "models.inception_resnet_v1", value_parser = model_def)]
    pub(crate) model_def: String,
    #[command(flatten)]
    pub(crate) config: facegpu::workflows::train::TrainConfig,
}

#[derive(clap::Args)]
pub(crate) struct DemoCmd {
    /// Output folder (replaced if it holds an earlier demo; any other existing folder is refused).
    #[arg(long, default_value = "facegpu-demo")]
    pub(crate) out: PathBuf,
    /// Training epochs (4 batches of 12 each).
    #[arg(long, default_value_t = 4)]
    pub(crate) epochs: usize,
    /// Print the final metrics as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) fn demo(args: DemoCmd) -> Result<(), BoxError> {
    let DemoCmd { out, epochs, json } = args;
    let ctx = gpu()?;
    let r = {
        let (mut quiet, mut bar) = ((), Bar::new());
        let progress: &mut dyn facegpu::progress::Progress = if json { &mut quiet } else { &mut bar };
        facegpu::workflows::demo::demo(&ctx, &out, epochs, progress)?
    };
    if json {
        println!("{}", serde_json::to_string(&r.eval)?);
    } else {
        println!("adapter: {}", ctx.adapter_name());
        for l in &r.train.epochs {
            println!("epoch {}: loss {:.4}, accuracy {:.3}, {:.1} images/s", l.epoch, l.loss, l.accuracy, l.images_per_s);
        }
        println!("{} pairs ({} skipped), {} images", r.eval.pairs, r.eval.skipped, r.eval.images);
        println!("{}", r.eval.human());
        println!(
            "training curves: {}\nROC curve: {}\nmodel: {}",
            r.curves.display(),
            r.roc.display(),
            r.train.run_dir.join("model.safetensors").display()
        );
        println!("done in {:.0} s", r.seconds);
    }
    Ok(())
}

pub(crate) fn train(args: TrainArgs) -> Result<(), BoxError> {
    if args.resume.is_none() && args.config.data_dir.as_os_str().is_empty() {
        return Err("train needs --data-dir (or --resume RUN_DIR)".into());
    }
    let ctx = gpu()?;
    let cfg = match &args.resume {
        Some(dir) => {
            let path = dir.join("args.json");
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        }
        None => args.config.clone(),
    };
    let stop = ctrl_c_flag();
    let summary = facegpu::workflows::train::train(&ctx, &cfg, args.resume.as_deref(), stop, &mut Bar::new())?;
    println!("run: {}\nstopped: {}", summary.run_dir.display(), summary.stopped);
    if let Some(last) = summary.epochs.last() {
        println!("last epoch {}: loss {:.4}, accuracy {:.4}", last.epoch, last.loss, last.accuracy);
    }
    Ok(())
}
