//! `facegpu align`: facenet's align_dataset_mtcnn.py. Every identity folder of INPUT_DIR is mirrored in
//! OUTPUT_DIR with one PNG face crop per image (the largest central face, or all with
//! `--detect-multiple-faces`), and `bounding_boxes_NNNNN.txt` lists each output with its crop box.
//! Existing outputs are skipped (resumable); unreadable files and images without a face are reported by
//! name and skipped. Files that could not be read or detected are written to [`ERROR_REPORT`] as they
//! happen and are skipped by later runs unless [`AlignOptions::retry_failed`] is set.

use crate::data::io_at;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::data::Shard;
use crate::gpu::GpuContext;
use crate::models::mtcnn::{DetectOptions, Face, Mtcnn};
use crate::progress::{Event, Progress};
use crate::workflows::detect::{detect_files, Outcome};

#[derive(Debug, Clone)]
pub struct AlignOptions {
    pub image_size: u32,
    pub margin: f64,
    pub detect_multiple_faces: bool,
    pub random_order: bool,
    /// Images detected together.
    pub batch: usize,
    pub mode: AlignMode,
    /// Try again the files that the error report lists (otherwise a resumed run skips them).
    pub retry_failed: bool,
    /// Only this part of the identity folders (see [`Shard`]).
    pub shard: Option<Shard>,
}

/// The error report in OUTPUT_DIR: one line per file that could not be aligned,
/// `<unreadable|failed>\t<source path>\t<message>`. A sharded run writes its own,
/// `align_errors.shard-K-of-N.tsv`, so shards running at once never write one file; a resumed run skips
/// what any of them lists.
pub const ERROR_REPORT: &str = "align_errors.tsv";

/// The error report of a run of `shard` (or of the whole dataset).
pub fn error_report_name(shard: Option<Shard>) -> String {
    match shard {
        Some(s) => format!("align_errors.shard-{}-of-{}.tsv", s.k, s.n),
        None => ERROR_REPORT.to_string(),
    }
}

/// The entries of every error report in `output` (whole runs and shards).
fn read_all_error_reports(output: &Path) -> std::collections::BTreeMap<PathBuf, (String, String)> {
    let mut all = std::collections::BTreeMap::new();
    for entry in fs::read_dir(output).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("align_errors") && name.ends_with(".tsv") {
            all.extend(read_error_report(&entry.path()));
        }
    }
    all
}

/// What an align run did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct AlignSummary {
    pub images: usize,
    pub aligned: usize,
    pub faces_written: usize,
    pub already_done: usize,
    pub no_face: Vec<PathBuf>,
    pub unreadable: Vec<PathBuf>,
    /// Files whose detection failed alone (a GPU error, or a photo too large for the adapter).
    pub failed: Vec<PathBuf>,
    /// Files skipped because an earlier run's error report lists them.
    pub previously_failed: usize,
    pub bounding_boxes: PathBuf,
    pub error_report: PathBuf,
}

/// The entries of an error report: source path -> (kind, message). Lines that do not parse are ignored.
pub fn read_error_report(path: &Path) -> std::collections::BTreeMap<PathBuf, (String, String)> {
    let text = fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, '\t');
            let (kind, src, msg) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
            matches!(kind, "unreadable" | "failed").then(|| (PathBuf::from(src), (kind.to_string(), msg.to_string())))
        })
        .collect()
}

/// One line of the error report (tabs and newlines in the message become spaces).
fn report_line(kind: &str, src: &Path, message: &str) -> String {
    format!("{kind}\t{}\t{}\n", src.display(), message.replace(['\t', '\n', '\r'], " "))
}

/// facenet's choice among several faces: the largest `area - 2 * squared offset from the image centre`.
pub fn central_face(faces: &[Face], width: u32, height: u32) -> Option<usize> {
    let (cx, cy) = (width as f64 / 2.0, height as f64 / 2.0);
    let value = |f: &Face| {
        let b = f.bbox;
        let area = (b[2] - b[0]) * (b[3] - b[1]);
        let (ox, oy) = ((b[0] + b[2]) / 2.0 - cx, (b[1] + b[3]) / 2.0 - cy);
        area - 2.0 * (ox * ox + oy * oy)
    };
    (0..faces.len()).max_by(|&a, &b| value(&faces[a]).total_cmp(&value(&faces[b])))
}

/// facenet's crop: the box grown by `margin / 2` on each side, clipped to the image, truncated to ints.
pub fn crop_box(b: &[f64; 4], margin: f64, width: u32, height: u32) -> [u32; 4] {
    [
        (b[0] - margin / 2.0).max(0.0) as u32,
        (b[1] - margin / 2.0).max(0.0) as u32,
        (b[2] + margin / 2.0).min(width as f64) as u32,
        (b[3] + margin / 2.0).min(height as f64) as u32,
    ]
}

/// The (source, output) pairs of the identity folders of `input` (this shard's), in facenet's order or
/// shuffled with `--random-order`; creates `output` and removes partial files of a killed run.
fn plan_jobs(input: &Path, output: &Path, opts: &AlignOptions) -> Result<Vec<(PathBuf, PathBuf)>, crate::workflows::Error> {
    let classes = crate::data::dataset::identity_folders(input)?;
    let classes = match opts.shard {
        Some(s) => s.select(classes),
        None => classes,
    };
    fs::create_dir_all(output).map_err(|e| format!("{}: {e}", output.display()))?;
    let mut jobs: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (class, files) in &classes {
        let dir = output.join(class);
        remove_partial_files(&dir);
        for f in files {
            let stem = f.file_stem().unwrap_or_default().to_string_lossy().into_owned();
            jobs.push((f.clone(), dir.join(format!("{stem}.png"))));
        }
    }
    if opts.random_order {
        // facenet shuffles so several processes can share the work; a time-seeded shuffle does the same.
        let mut state = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1) | 1;
        for i in (1..jobs.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            jobs.swap(i, (state % (i as u64 + 1)) as usize);
        }
    }
    Ok(jobs)
}

/// Whether `out` (or, with several faces, its first face) was written by an earlier run.
fn already_aligned(out: &Path) -> bool {
    out.exists() || out.with_file_name(format!("{}_0.png", out.file_stem().unwrap_or_default().to_string_lossy())).exists()
}

/// Writes the chosen faces of one photo (the central one, or all) and their lines of the bounding-box
/// file; returns how many were written (0: no face, which the box file records as a bare path).
fn write_faces(
    img: &RgbImage,
    faces: &[Face],
    out: &Path,
    opts: &AlignOptions,
    (boxes, boxes_path): (&mut fs::File, &Path),
) -> Result<usize, crate::workflows::Error> {
    let chosen: Vec<usize> = if opts.detect_multiple_faces {
        (0..faces.len()).collect()
    } else {
        central_face(faces, img.width(), img.height()).into_iter().collect()
    };
    if chosen.is_empty() {
        writeln!(boxes, "{}", out.display()).map_err(io_at(boxes_path))?;
        return Ok(0);
    }
    if let Some(dir) = out.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    for (n, &i) in chosen.iter().enumerate() {
        let (scaled, bb) = face_image(img, &faces[i], opts.margin, opts.image_size, opts.mode);
        let path = if opts.detect_multiple_faces {
            out.with_file_name(format!("{}_{n}.png", out.file_stem().unwrap_or_default().to_string_lossy()))
        } else {
            out.to_path_buf()
        };
        // Write to a temporary name, then rename: an interrupted run never leaves a half PNG that the
        // next (resumed) run would take as done.
        let tmp = path.with_extension("png.partial");
        scaled.save_with_format(&tmp, image::ImageFormat::Png).map_err(|e| format!("{}: {e}", tmp.display()))?;
        fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(boxes, "{} {} {} {} {}", path.display(), bb[0], bb[1], bb[2], bb[3]).map_err(io_at(boxes_path))?;
    }
    Ok(chosen.len())
}

pub fn align(
    ctx: &GpuContext,
    mtcnn: &mut Mtcnn,
    det: &DetectOptions,
    input: &Path,
    output: &Path,
    opts: &AlignOptions,
    progress: &mut dyn Progress,
) -> Result<AlignSummary, crate::workflows::Error> {
    let jobs = plan_jobs(input, output, opts)?;
    let key = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() % 100_000).unwrap_or(0);
    let mut summary =
        AlignSummary { images: jobs.len(), bounding_boxes: output.join(format!("bounding_boxes_{key:05}.txt")), ..Default::default() };
    let mut boxes_file = fs::File::create(&summary.bounding_boxes).map_err(|e| format!("{}: {e}", summary.bounding_boxes.display()))?;
    summary.error_report = output.join(error_report_name(opts.shard));
    let mut errors = read_error_report(&summary.error_report);
    let listed = read_all_error_reports(output);
    let pending: Vec<&(PathBuf, PathBuf)> = jobs.iter().filter(|(_, out)| !already_aligned(out)).collect();
    summary.already_done = jobs.len() - pending.len();
    let todo: Vec<&(PathBuf, PathBuf)> = pending.into_iter().filter(|(src, _)| opts.retry_failed || !listed.contains_key(src)).collect();
    summary.previously_failed = jobs.len() - summary.already_done - todo.len();
    // Each failure is appended as it happens, so a crashed run keeps its report; the report is rewritten
    // whole (deduplicated, without the files that now succeeded) at the end.
    let mut report = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&summary.error_report)
        .map_err(|e| format!("{}: {e}", summary.error_report.display()))?;
    progress.report(Event::Start { what: "images", total: todo.len() });
    let sources: Vec<PathBuf> = todo.iter().map(|(src, _)| src.clone()).collect();
    let mut done = 0;
    detect_files(ctx, mtcnn, &sources, det, opts.batch, |i, outcome| {
        done += 1;
        progress.report(Event::Advance { done, status: None });
        let (src, out) = todo[i];
        let (kind, e) = match outcome {
            Outcome::Detected(d, img) => {
                errors.remove(src);
                match write_faces(img, &d.faces, out, opts, (&mut boxes_file, &summary.bounding_boxes))? {
                    0 => {
                        progress.report(Event::Notice(format!("Unable to align \"{}\": no face found", src.display())));
                        summary.no_face.push(src.clone());
                    }
                    n => (summary.faces_written, summary.aligned) = (summary.faces_written + n, summary.aligned + 1),
                }
                return Ok(());
            }
            Outcome::Unreadable(e) => ("unreadable", e),
            Outcome::Failed(e) => ("failed", e),
        };
        progress.report(Event::Skipped(e.clone()));
        if kind == "unreadable" { &mut summary.unreadable } else { &mut summary.failed }.push(src.clone());
        report.write_all(report_line(kind, src, &e).as_bytes()).map_err(io_at(&summary.error_report))?;
        errors.insert(src.clone(), (kind.to_string(), e));
        Ok(())
    })?;
    progress.report(Event::Finish);
    let text: String = errors.iter().map(|(src, (kind, msg))| report_line(kind, src, msg)).collect();
    crate::data::write_atomic(&summary.error_report, text.as_bytes())?;
    Ok(summary)
}

/// Removes the `*.partial` files a killed run left in `dir` (a face being written when it stopped; its
/// photo is aligned again since its PNG does not exist).
fn remove_partial_files(dir: &Path) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().ends_with(".partial") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The face image of one detection and its crop box: facenet's crop (box plus margin, clipped, resized
/// bilinearly as `misc.imresize` does, through PIL) or the landmark similarity warp.
pub fn face_image(img: &RgbImage, face: &Face, margin: f64, size: u32, mode: AlignMode) -> (RgbImage, [u32; 4]) {
    let bb = crop_box(&face.bbox, margin, img.width(), img.height());
    let out = match mode {
        AlignMode::Crop => {
            let (w, h) = (bb[2].saturating_sub(bb[0]).max(1), bb[3].saturating_sub(bb[1]).max(1));
            let crop = image::imageops::crop_imm(img, bb[0], bb[1], w, h).to_image();
            crate::data::images::resize_bilinear_like_pil(&crop, size, size)
        }
        AlignMode::Similarity => warp_similarity(img, &face.landmarks, size),
    };
    (out, bb)
}

/// How `align` turns a detection into a face image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AlignMode {
    /// facenet: the box plus margin, resized (no landmark warp).
    Crop,
    /// The similarity transform (rotation, uniform scale, shift) that best maps the 5 landmarks onto the
    /// ArcFace 112x112 template scaled to the output size, then a bilinear warp.
    Similarity,
}

/// The 5-point template of a 112x112 face (eyes, nose, mouth corners), from ArcFace/insightface.
pub const TEMPLATE_112: [[f64; 2]; 5] =
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]];

/// Least-squares similarity `dst ~ s*R*src + t` (Umeyama, 2-D). Returns `[a, b, tx, ty]` with the map
/// `x' = a*x - b*y + tx`, `y' = b*x + a*y + ty`.
pub fn similarity(src: &[[f64; 2]], dst: &[[f64; 2]]) -> [f64; 4] {
    let n = src.len() as f64;
    let mean = |p: &[[f64; 2]]| [p.iter().map(|v| v[0]).sum::<f64>() / n, p.iter().map(|v| v[1]).sum::<f64>() / n];
    let (ms, md) = (mean(src), mean(dst));
    let (mut sxx, mut sxy, mut var) = (0.0, 0.0, 0.0);
    for (s, d) in src.iter().zip(dst) {
        let (x, y) = (s[0] - ms[0], s[1] - ms[1]);
        let (u, v) = (d[0] - md[0], d[1] - md[1]);
        sxx += x * u + y * v;
        sxy += x * v - y * u;
        var += x * x + y * y;
    }
    let (a, b) = if var > 0.0 { (sxx / var, sxy / var) } else { (1.0, 0.0) };
    [a, b, md[0] - (a * ms[0] - b * ms[1]), md[1] - (b * ms[0] + a * ms[1])]
}

/// Warps `img` so the face's landmarks land on the template scaled to `size`; bilinear, black outside.
pub fn warp_similarity(img: &RgbImage, landmarks: &[[f64; 2]; 5], size: u32) -> RgbImage {
    let k = size as f64 / 112.0;
    let dst: Vec<[f64; 2]> = TEMPLATE_112.iter().map(|p| [p[0] * k, p[1] * k]).collect();
    // Map output pixels back into the image: the similarity from template to landmarks.
    let [a, b, tx, ty] = similarity(&dst, landmarks);
    let (w, h) = (img.width() as i64, img.height() as i64);
    let px = |x: i64, y: i64, c: usize| if x >= 0 && y >= 0 && x < w && y < h { img.get_pixel(x as u32, y as u32)[c] as f64 } else { 0.0 };
    RgbImage::from_fn(size, size, |ox, oy| {
        let (u, v) = (ox as f64, oy as f64);
        let (x, y) = (a * u - b * v + tx, b * u + a * v + ty);
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        image::Rgb(std::array::from_fn(|c| {
            let top = px(x0, y0, c) * (1.0 - fx) + px(x0 + 1, y0, c) * fx;
            let bot = px(x0, y0 + 1, c) * (1.0 - fx) + px(x0 + 1, y0 + 1, c) * fx;
            (top * (1.0 - fy) + bot * fy).round().clamp(0.0, 255.0) as u8
        }))
    })
}
