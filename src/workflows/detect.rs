//! The `detect` workflow and `bench detect`: decode photos, run MTCNN in batches, print or draw faces.

use std::path::PathBuf;
use std::time::Instant;

use image::{Rgb, RgbImage};

use crate::data::images::load_image;
use crate::gpu::GpuContext;
use crate::models::mtcnn::{DetectOptions, Face, Mtcnn};
use crate::models::ModelError;

/// One image's detections, in the JSON form of `facegpu detect --json` (and golden.json).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Detection {
    pub image: PathBuf,
    pub width: u32,
    pub height: u32,
    pub faces: Vec<Face>,
}

/// What became of one input file.
pub enum Outcome<'a> {
    Detected(&'a Detection, &'a RgbImage),
    /// The file could not be decoded; the message names it.
    Unreadable(String),
    /// Detection failed on this image alone (a GPU error, or a photo too large for the adapter); the
    /// message names the file.
    Failed(String),
}

/// Detects faces in `files`, `batch` images at a time, calling `each(index into files, outcome)` for every
/// file in input order. One bad file never ends the run: an unreadable file is passed on as such; when a
/// batch fails on the GPU, its images are detected one by one and those that fail alone are passed on as
/// [`Outcome::Failed`]. A lost device is replaced by a new one once (the weights loaded again on it);
/// a second loss ends the run.
pub fn detect_files(
    ctx: &GpuContext,
    mtcnn: &mut Mtcnn,
    files: &[PathBuf],
    opts: &DetectOptions,
    batch: usize,
    mut each: impl FnMut(usize, Outcome) -> Result<(), crate::workflows::Error>,
) -> Result<(), crate::workflows::Error> {
    let batch = batch.max(1);
    // The replacement context and detector after a device loss.
    let mut fresh: Option<(GpuContext, Mtcnn)> = None;
    let chunks: Vec<&[PathBuf]> = files.chunks(batch).collect();
    let decode = |c: usize| chunks[c].iter().enumerate().map(|(j, f)| (c * batch + j, f, load_image(f))).collect::<Vec<_>>();
    // The next batch is decoded on its own thread while this one is detected.
    std::thread::scope(|scope| {
        let mut next = (!chunks.is_empty()).then(|| scope.spawn(move || decode(0)));
        for c in 0..chunks.len() {
            let decoded = match next.take().map(|h| h.join()) {
                Some(Ok(d)) => d,
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => Vec::new(),
            };
            next = (c + 1 < chunks.len()).then(|| scope.spawn(move || decode(c + 1)));
            let mut imgs = Vec::new();
            for (i, f, img) in decoded {
                match img {
                    Ok(img) => imgs.push((i, f, img)),
                    Err(e) => each(i, Outcome::Unreadable(e.to_string()))?,
                }
            }
            let refs: Vec<&RgbImage> = imgs.iter().map(|(_, _, i)| i).collect();
            let found = loop {
                let recovered = fresh.is_some();
                let (ctx, mtcnn) = match &mut fresh {
                    Some((c, m)) => (&*c, m),
                    None => (ctx, &mut *mtcnn),
                };
                match detect_each(ctx, mtcnn, &refs, opts) {
                    Err(e) if e.is_device_lost() && !recovered => {
                        let ctx = GpuContext::new()?;
                        let m = mtcnn.reload(&ctx)?;
                        fresh = Some((ctx, m));
                    }
                    result => break result?,
                }
            };
            for ((i, path, img), faces) in imgs.iter().zip(found) {
                match faces {
                    Ok(faces) => {
                        let d = Detection { image: path.to_path_buf(), width: img.width(), height: img.height(), faces };
                        each(*i, Outcome::Detected(&d, img))?
                    }
                    Err(e) => each(*i, Outcome::Failed(format!("{}: {e}", path.display())))?,
                }
            }
        }
        Ok(())
    })
}

/// The faces of each image: the batch at once, or where it fails, image by image, with the error of each
/// image that fails alone. A lost device is returned as the error of the whole call.
fn detect_each(
    ctx: &GpuContext,
    mtcnn: &mut Mtcnn,
    images: &[&RgbImage],
    opts: &DetectOptions,
) -> Result<Vec<Result<Vec<Face>, ModelError>>, ModelError> {
    match mtcnn.detect(ctx, images, opts) {
        Ok(found) => return Ok(found.into_iter().map(Ok).collect()),
        Err(e) if e.is_device_lost() || images.len() == 1 => {
            return if e.is_device_lost() { Err(e) } else { Ok(vec![Err(e)]) };
        }
        Err(_) => {}
    }
    images
        .iter()
        .map(|img| match mtcnn.detect(ctx, &[img], opts) {
            Ok(mut faces) => Ok(Ok(faces.remove(0))),
            Err(e) if e.is_device_lost() => Err(e),
            Err(e) => Ok(Err(e)),
        })
        .collect()
}

/// The image with each face's box (green, 2 px) and landmarks (red, 5x5 dots).
pub fn draw(img: &RgbImage, faces: &[Face]) -> RgbImage {
    let mut out = img.clone();
    let (w, h) = (out.width() as i64, out.height() as i64);
    let mut put = |x: i64, y: i64, c: Rgb<u8>| {
        if x >= 0 && y >= 0 && x < w && y < h {
            out.put_pixel(x as u32, y as u32, c);
        }
    };
    let green = Rgb([0, 255, 0]);
    for f in faces {
        let [x1, y1, x2, y2] = f.bbox.map(|v| v.round() as i64);
        for t in 0..2 {
            for x in x1..=x2 {
                put(x, y1 + t, green);
                put(x, y2 - t, green);
            }
            for y in y1..=y2 {
                put(x1 + t, y, green);
                put(x2 - t, y, green);
            }
        }
        for [lx, ly] in f.landmarks {
            for dy in -2..=2 {
                for dx in -2..=2 {
                    put(lx.round() as i64 + dx, ly.round() as i64 + dy, Rgb([255, 0, 0]));
                }
            }
        }
    }
    out
}

/// `bench detect` figures: ms per photo and where the time went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DetectBench {
    pub adapter: String,
    pub photos: usize,
    pub faces: usize,
    pub ms_per_image: f64,
    pub pnet_ms_per_image: f64,
    pub rnet_ms_per_image: f64,
    pub onet_ms_per_image: f64,
    pub cpu_ms_per_image: f64,
    pub activation_bytes: usize,
}

/// Detects in all `images` (decoded beforehand, not timed) `reps` times after one warm-up; reports the
/// median run per photo and the stage split averaged over the timed runs.
pub fn bench_detect(
    ctx: &GpuContext,
    mtcnn: &mut Mtcnn,
    images: &[RgbImage],
    opts: &DetectOptions,
    reps: usize,
) -> Result<DetectBench, ModelError> {
    let refs: Vec<&RgbImage> = images.iter().collect();
    let faces = mtcnn.detect(ctx, &refs, opts)?.iter().map(Vec::len).sum();
    mtcnn.times = Default::default();
    ctx.reset_profile();
    let mut runs = Vec::new();
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        mtcnn.detect(ctx, &refs, opts)?;
        runs.push(t.elapsed().as_secs_f64() * 1e3);
    }
    runs.sort_by(f64::total_cmp);
    let n = (images.len() * runs.len()).max(1) as f64;
    let t = mtcnn.times;
    let per = |d: std::time::Duration| d.as_secs_f64() * 1e3 / n;
    Ok(DetectBench {
        adapter: ctx.adapter_name(),
        photos: images.len(),
        faces,
        ms_per_image: runs[runs.len() / 2] / images.len().max(1) as f64,
        pnet_ms_per_image: per(t.pnet),
        rnet_ms_per_image: per(t.rnet),
        onet_ms_per_image: per(t.onet),
        cpu_ms_per_image: per(t.cpu),
        activation_bytes: mtcnn.activation_bytes() + ctx.scratch_bytes(),
    })
}
