//! MTCNN: detections match facenet's own detect_face output (golden.json), the GPU networks match their
//! CPU twins, and the box arithmetic handles borders and tiny images as facenet does.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use common::{assert_close, Rng};
use facegpu::data::images::load_image;
use facegpu::gpu::Arena;
use facegpu::gpu::{Encoder, GpuTensor};
use facegpu::models::mtcnn::boxes::{self, nms, pad, rerec, scales, Overlap};
use facegpu::models::mtcnn::{DetectOptions, Face, Mtcnn, LANES};
use facegpu::models::Device;

fn fixtures() -> PathBuf {
    common::fixtures_root().join("mtcnn")
}

#[derive(serde::Deserialize)]
struct Golden {
    width: u32,
    height: u32,
    faces: Vec<Face>,
}

fn iou(a: &[f64; 4], b: &[f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

#[test]
fn detections_match_facenet_golden() {
    let ctx = gpu_or_skip!();
    let text = std::fs::read_to_string(fixtures().join("golden.json")).expect("golden.json");
    let golden: BTreeMap<String, Golden> = serde_json::from_str(&text).unwrap();
    let images: Vec<image::RgbImage> = golden.keys().map(|name| load_image(&fixtures().join("images").join(name)).unwrap()).collect();
    let refs: Vec<&image::RgbImage> = images.iter().collect();
    // The GPU path in both kernel shapes (the GPU shape's tiled convs with the pools and heads on their
    // own), and the CPU backend.
    let shaped = common::gpu_shaped().unwrap();
    for (ctx, device) in [(ctx, Device::Gpu), (shaped, Device::Gpu), (ctx, Device::Cpu)] {
        let mut mtcnn = Mtcnn::load_from(ctx, None).unwrap();
        mtcnn.device = device;
        let found = mtcnn.detect(ctx, &refs, &DetectOptions::default()).unwrap();
        println!("{device:?} ({:?} kernels):", ctx.kernel_shape());
        check_against_golden(&golden, &images, &found);
    }
}

fn check_against_golden(golden: &BTreeMap<String, Golden>, images: &[image::RgbImage], found: &[Vec<facegpu::models::mtcnn::Face>]) {
    let mut worst_iou = 1f64;
    let mut worst_landmark = 0f64;
    let mut worst_box = 0f64;
    for (((name, want), got), img) in golden.iter().zip(found).zip(images) {
        assert_eq!((img.width(), img.height()), (want.width, want.height), "{name}: size");
        println!("{name}: {} faces (facenet {})", got.len(), want.faces.len());
        assert_eq!(got.len(), want.faces.len(), "{name}: face count");
        for w in &want.faces {
            // Match each facenet face with the detection that overlaps it most.
            let g = got.iter().max_by(|a, b| iou(&a.bbox, &w.bbox).total_cmp(&iou(&b.bbox, &w.bbox))).unwrap();
            let o = iou(&g.bbox, &w.bbox);
            let lm = (0..5)
                .map(|k| ((g.landmarks[k][0] - w.landmarks[k][0]).powi(2) + (g.landmarks[k][1] - w.landmarks[k][1]).powi(2)).sqrt())
                .sum::<f64>()
                / 5.0;
            println!(
                "  box {:?} vs {:?}: IoU {o:.4}, mean landmark error {lm:.3} px, score {:.5} vs {:.5}",
                g.bbox, w.bbox, g.score, w.score
            );
            worst_iou = worst_iou.min(o);
            worst_landmark = worst_landmark.max(lm);
            worst_box = (0..4).map(|k| (g.bbox[k] - w.bbox[k]).abs()).fold(worst_box, f64::max);
        }
    }
    println!("worst IoU {worst_iou:.6}, worst mean landmark error {worst_landmark:.6} px, worst box coordinate error {worst_box:.6} px");
    // facegpu decodes the JPEGs to PIL's exact pixels (tests/images.rs), so MTCNN sees what facenet saw:
    // what is left is f32 rounding in another summation order, scaled up by the pyramid (measured:
    // at most 2e-4 px), far inside 1e-2 px.
    assert!(worst_iou >= 0.9999, "worst IoU {worst_iou}");
    assert!(worst_landmark <= 1e-2 && worst_box <= 1e-2, "worst landmark error {worst_landmark}, box error {worst_box}");
}

/// Runs `net` on random `[n, size, size, 3]` inputs on the GPU (given as RGB plus a zero channel, with
/// channels padded to 4 throughout) and with the CPU twin (the checkpoint's shapes).
fn net_matches_cpu(ctx: &facegpu::gpu::GpuContext, net: &facegpu::models::mtcnn::Net, shape: [usize; 4], seed: u64) {
    let x = Rng::new(seed).vec(shape.iter().product(), -1.0, 1.0);
    let x4: Vec<f32> = x.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 0.0]).collect();
    let gx = GpuTensor::upload(ctx, "x", &[shape[0], shape[1], shape[2], LANES], &x4).unwrap();
    let mut arena = Arena::default();
    let mut enc = Encoder::new(ctx);
    let y = net.forward(&mut enc, &mut arena, &gx).unwrap();
    enc.submit().unwrap();
    let (want, want_shape) = net.forward_cpu(&x, &shape).unwrap();
    assert_eq!(y.shape[..3], want_shape[..3], "{} output shape", net.name);
    assert_eq!((y.shape[3], want_shape[3]), (net.padded_outputs, net.outputs));
    let got = y.download(ctx).unwrap();
    let rows: Vec<&[f32]> = got.chunks_exact(net.padded_outputs).collect();
    assert!(rows.iter().all(|r| r[net.outputs..].iter().all(|&v| v == 0.0)), "{}: padding channels must stay 0", net.name);
    let got: Vec<f32> = rows.iter().flat_map(|r| r[..net.outputs].iter().copied()).collect();
    // Reductions of hundreds to thousands of fp32 products (a conv's or matmul's, a row's statistics)
    // summed in another order by the GPU's tiles: errors grow to about 1e-5 relative, 1e-4 bounds them.
    assert_close(net.name, &got, &want, 1e-4, 1e-4);
}

#[test]
fn pnet_rnet_onet_match_cpu_twins() {
    let ctx = gpu_or_skip!();
    // Both kernel shapes: the fused conv + pool and conv + heads of the CPU-driver shape, the GPU shape's
    // tiled convs.
    for ctx in common::both_shapes(ctx) {
        let mtcnn = Mtcnn::load_from(ctx, None).unwrap();
        // PNet on an odd-sized pyramid level (SAME pooling pads one side), RNet/ONet on crop batches.
        net_matches_cpu(ctx, &mtcnn.pnet, [2, 37, 29, 3], 1);
        // A larger level: conv3 + heads on 44-column rows (rounded up to 48 in its row tiles).
        net_matches_cpu(ctx, &mtcnn.pnet, [2, 120, 97, 3], 4);
        net_matches_cpu(ctx, &mtcnn.rnet, [7, 24, 24, 3], 2);
        net_matches_cpu(ctx, &mtcnn.onet, [5, 48, 48, 3], 3);
    }
    let mtcnn = Mtcnn::load_from(ctx, None).unwrap();
    assert_eq!((mtcnn.pnet.outputs, mtcnn.rnet.outputs, mtcnn.onet.outputs), (6, 6, 16));
    assert_eq!((mtcnn.pnet.padded_outputs, mtcnn.rnet.padded_outputs, mtcnn.onet.padded_outputs), (8, 8, 16));
}

#[test]
fn nms_union_and_min() {
    let b = [[0.0, 0.0, 9.0, 9.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 29.0, 29.0], [2.0, 2.0, 7.0, 7.0]];
    let s = [0.9, 0.95, 0.5, 0.8];
    // Box 1 wins; box 0 overlaps it by IoU 81/119 = 0.68 > 0.5; box 3 (6x6 inside both) by 36/100.
    assert_eq!(nms(&b, &s, 0.5, Overlap::Union), vec![1, 3, 2]);
    // With 'Min' box 3 lies wholly inside box 1: overlap 36/36 = 1.
    assert_eq!(nms(&b, &s, 0.7, Overlap::Min), vec![1, 2]);
    // A threshold of exactly the overlap keeps the box (suppress only when greater).
    assert_eq!(nms(&b[..2], &s[..2], 81.0 / 119.0, Overlap::Union), vec![1, 0]);
    assert!(nms(&[], &[], 0.5, Overlap::Union).is_empty());
}

#[test]
fn rerec_bbreg_and_stage_one_regression() {
    assert_eq!(rerec(&[10.0, 20.0, 30.0, 60.0]), [0.0, 20.0, 40.0, 60.0]);
    assert_eq!(rerec(&[0.0, 0.0, 50.0, 10.0]), [0.0, -20.0, 50.0, 30.0]);
    // bbreg scales offsets by the inclusive size (x2 - x1 + 1), stage 1 by x2 - x1.
    assert_eq!(boxes::bbreg(&[10.0, 10.0, 19.0, 29.0], &[0.1, -0.1, 0.2, 0.5]), [11.0, 8.0, 21.0, 39.0]);
    assert_eq!(boxes::regress_exclusive(&[10.0, 10.0, 20.0, 30.0], &[0.1, -0.1, 0.2, 0.5]), [11.0, 8.0, 22.0, 40.0]);
    assert_eq!(boxes::fix(&[-1.7, 2.7, -0.2, 3.0]), [-1.0, 2.0, 0.0, 3.0]);
}

#[test]
fn pad_windows_at_every_border() {
    // Inside: no padding, the window starts one pixel up-left of the box (facenet's 1-based crop).
    let p = pad(&[10.0, 20.0, 33.0, 43.0], 100, 80);
    assert_eq!((p.dx, p.edx, p.x, p.ex, p.tmpw), (1, 24, 10, 33, 24));
    assert_eq!(p.window(), [9, 19, 24, 24]);
    // Past the right and bottom edges: the buffer keeps the full box size, the copy stops at the image.
    let p = pad(&[90.0, 70.0, 109.0, 89.0], 100, 80);
    assert_eq!((p.edx, p.ex, p.edy, p.ey), (11, 100, 11, 80));
    assert_eq!(p.window(), [89, 69, 20, 20]);
    // Before the left and top edges: dx = 2 - x, copy starts at image pixel 1.
    let p = pad(&[-5.0, -2.0, 14.0, 17.0], 100, 80);
    assert_eq!((p.dx, p.x, p.dy, p.y), (7, 1, 4, 1));
    assert_eq!(p.window(), [-6, -3, 20, 20]);
    // Every case: the window is (x1 - 1, y1 - 1, x2 - x1 + 1, y2 - y1 + 1).
    for b in [[0.0, 0.0, 5.0, 5.0], [-30.0, 60.0, 130.0, 220.0], [99.0, 79.0, 99.0, 79.0]] {
        let w = pad(&b, 100, 80).window();
        assert_eq!(w, [b[0] as i32 - 1, b[1] as i32 - 1, (b[2] - b[0]) as i32 + 1, (b[3] - b[1]) as i32 + 1]);
    }
}

#[test]
fn generate_maps_cells_to_windows_and_keeps_facenets_single_cell_flip() {
    // A 2x3 probability map; cells (row 1, col 0) and (row 0, col 2) pass 0.6.
    let prob = [0.1, 0.2, 0.7, 0.9, 0.3, 0.5];
    let reg = |y: usize, x: usize, k: usize| (y * 100 + x * 10 + k) as f32;
    let c = boxes::generate(&prob, 2, 3, reg, 0.5, 0.6);
    // Column-major order: (0, 1) first, then (2, 0).
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].bbox, [2.0, 6.0, 24.0, 28.0]);
    assert_eq!(c[0].reg, [100.0, 101.0, 102.0, 103.0]);
    assert_eq!(c[1].bbox, [10.0, 2.0, 32.0, 24.0]);
    assert_eq!(c[1].reg, [20.0, 21.0, 22.0, 23.0]);
    // One passing cell: facenet reads its regression at the mirrored column (ow - 1 - x).
    let c = boxes::generate(&prob, 2, 3, reg, 1.0, 0.8);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].bbox, [1.0, 3.0, 12.0, 14.0]);
    assert_eq!(c[0].reg, [120.0, 121.0, 122.0, 123.0]);
}

#[test]
fn pyramid_scales_and_tiny_images() {
    // 250x250, minsize 20: m = 0.6, min side 150 -> scales while 150*0.709^k >= 12.
    let s = boxes::scales(250, 250, 20.0, 0.709);
    assert_eq!(s.len(), 8);
    assert!((s[0] - 0.6).abs() < 1e-12 && (s[7] - 0.6 * 0.709f64.powi(7)).abs() < 1e-12);
    // Smaller than the minimum face: no scale, so no detection (and no GPU work).
    assert!(boxes::scales(19, 300, 20.0, 0.709).is_empty());
    let ctx = gpu_or_skip!();
    let mut mtcnn = Mtcnn::load_from(ctx, None).unwrap();
    let tiny = image::RgbImage::from_pixel(15, 15, image::Rgb([128, 100, 90]));
    let blank = image::RgbImage::from_pixel(64, 48, image::Rgb([0, 0, 0]));
    let found = mtcnn.detect(ctx, &[&tiny, &blank], &DetectOptions::default()).unwrap();
    assert_eq!(found, vec![vec![], vec![]]);
}

#[test]
fn align_writes_every_good_face_reports_bad_files_and_resumes() {
    let ctx = gpu_or_skip!();
    let root = std::env::temp_dir().join(format!("facegpu-align-test-{}", std::process::id()));
    let (input, output) = (root.join("in"), root.join("out"));
    let _ = std::fs::remove_dir_all(&root);
    let Some(deepface) = common::fixture("faces/deepface/person_01") else { return };
    std::fs::create_dir_all(input.join("person_01")).unwrap();
    let mut good = 0;
    for f in std::fs::read_dir(&deepface).unwrap().map(|e| e.unwrap().path()) {
        std::fs::copy(&f, input.join("person_01").join(f.file_name().unwrap())).unwrap();
        good += 1;
    }
    std::fs::write(input.join("person_01/broken.jpg"), b"not a jpeg").unwrap();
    std::fs::write(input.join("person_01/notes.txt"), b"hello").unwrap();
    let mut mtcnn = Mtcnn::load_from(ctx, None).unwrap();
    let opts = facegpu::workflows::align::AlignOptions {
        image_size: 160,
        margin: 32.0,
        detect_multiple_faces: false,
        random_order: false,
        batch: 4,
        mode: facegpu::workflows::align::AlignMode::Crop,
        retry_failed: false,
        shard: None,
    };
    let s = facegpu::workflows::align::align(ctx, &mut mtcnn, &DetectOptions::default(), &input, &output, &opts, &mut ()).unwrap();
    assert_eq!(s.images, good + 2);
    assert_eq!(s.unreadable.len(), 2, "{:?}", s.unreadable);
    assert_eq!(s.aligned + s.no_face.len(), good);
    assert!(s.aligned >= good - 1, "aligned {} of {good}", s.aligned);
    for e in std::fs::read_dir(output.join("person_01")).unwrap() {
        let img = image::open(e.unwrap().path()).unwrap();
        assert_eq!((img.width(), img.height()), (160, 160));
    }
    let lines = std::fs::read_to_string(&s.bounding_boxes).unwrap();
    assert_eq!(lines.lines().count(), good);
    let report = facegpu::workflows::align::read_error_report(&s.error_report);
    assert_eq!(report.len(), 2, "{report:?}");
    assert!(report.values().all(|(kind, _)| kind == "unreadable"), "{report:?}");
    // Resumed: nothing is redone, nothing is lost; the reported files are skipped.
    let again = facegpu::workflows::align::align(ctx, &mut mtcnn, &DetectOptions::default(), &input, &output, &opts, &mut ()).unwrap();
    assert_eq!(again.already_done, s.aligned);
    assert_eq!((again.aligned, again.previously_failed, again.unreadable.len()), (0, 2, 0));
    // --retry-failed tries them again (still unreadable, still reported once each).
    let retry = facegpu::workflows::align::AlignOptions { retry_failed: true, ..opts };
    let third = facegpu::workflows::align::align(ctx, &mut mtcnn, &DetectOptions::default(), &input, &output, &retry, &mut ()).unwrap();
    assert_eq!((third.previously_failed, third.unreadable.len()), (0, 2));
    assert_eq!(facegpu::workflows::align::read_error_report(&s.error_report).len(), 2);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn central_face_and_crop_box_follow_facenet() {
    let face = |b: [f64; 4]| Face { bbox: b, score: 1.0, landmarks: [[0.0; 2]; 5] };
    // A big face off to the side loses to a slightly smaller one at the centre: 2 * offset^2 counts.
    let faces = [face([0.0, 0.0, 60.0, 60.0]), face([70.0, 70.0, 125.0, 125.0])];
    assert_eq!(facegpu::workflows::align::central_face(&faces, 200, 200), Some(1));
    assert_eq!(facegpu::workflows::align::central_face(&[], 200, 200), None);
    assert_eq!(facegpu::workflows::align::crop_box(&[5.5, 30.2, 190.7, 120.9], 32.0, 200, 130), [0, 14, 200, 130]);
}

#[test]
fn similarity_recovers_a_known_transform_and_warp_puts_landmarks_on_the_template() {
    use facegpu::workflows::align::{similarity, warp_similarity, TEMPLATE_112};
    // dst = s*R(theta)*src + t with s = 1.7, theta = 0.3: the fit recovers a = s cos, b = s sin, t exactly.
    let (a, b, tx, ty) = (1.7 * 0.3f64.cos(), 1.7 * 0.3f64.sin(), 12.5, -4.0);
    let dst: Vec<[f64; 2]> = TEMPLATE_112.iter().map(|p| [a * p[0] - b * p[1] + tx, b * p[0] + a * p[1] + ty]).collect();
    let got = similarity(&TEMPLATE_112, &dst);
    for (g, w) in got.iter().zip([a, b, tx, ty]) {
        assert!((g - w).abs() < 1e-9, "{got:?}");
    }
    // An image with a bright dot at each landmark: after the warp the dots sit at the scaled template.
    let mut img = image::RgbImage::new(300, 260);
    let lm: [[f64; 2]; 5] = std::array::from_fn(|i| dst[i]);
    for p in lm {
        for dy in -1..=1 {
            for dx in -1..=1 {
                img.put_pixel((p[0].round() as i64 + dx) as u32, (p[1].round() as i64 + dy) as u32, image::Rgb([255, 255, 255]));
            }
        }
    }
    let out = warp_similarity(&img, &lm, 160);
    for t in TEMPLATE_112 {
        let (x, y) = ((t[0] * 160.0 / 112.0).round() as u32, (t[1] * 160.0 / 112.0).round() as u32);
        assert!(out.get_pixel(x, y)[0] > 100, "template point ({x}, {y}) is dark: {:?}", out.get_pixel(x, y));
    }
}

/// The fixture photos, decoded.
fn golden_photos() -> Vec<image::RgbImage> {
    let text = std::fs::read_to_string(fixtures().join("golden.json")).expect("golden.json");
    let golden: BTreeMap<String, Golden> = serde_json::from_str(&text).unwrap();
    golden.keys().map(|name| load_image(&fixtures().join("images").join(name)).unwrap()).collect()
}

/// Asserts two detections of the same photo agree face for face within `px` pixels (boxes and
/// landmarks) and `1e-4` in score.
fn assert_same_faces(what: &str, got: &[Face], want: &[Face], px: f64) {
    assert_eq!(got.len(), want.len(), "{what}: face count");
    for (g, w) in got.iter().zip(want) {
        let box_err = (0..4).map(|k| (g.bbox[k] - w.bbox[k]).abs()).fold(0.0, f64::max);
        let lm_err = (0..5)
            .flat_map(|k| (0..2).map(move |j| (k, j)))
            .map(|(k, j)| (g.landmarks[k][j] - w.landmarks[k][j]).abs())
            .fold(0.0, f64::max);
        assert!(box_err <= px && lm_err <= px, "{what}: box {:?} vs {:?}, landmarks off by {lm_err}", g.bbox, w.bbox);
        assert!((g.score - w.score).abs() <= 1e-4, "{what}: score {} vs {}", g.score, w.score);
    }
}

#[test]
fn detection_in_row_bands_and_small_crop_chunks_equals_whole_passes() {
    let ctx = gpu_or_skip!();
    let photos = golden_photos();
    let refs: Vec<&image::RgbImage> = photos.iter().collect();
    let opts = DetectOptions::default();
    let mut whole = gpu_mtcnn(ctx);
    let want = whole.detect(ctx, &refs, &opts).unwrap();
    // A 1 MiB binding limit cuts the larger photos' first pyramid levels into bands of a few PNet rows
    // and ONet's chunks to 3 crops.
    let mut banded = gpu_mtcnn(ctx);
    banded.binding_limit = 1 << 20;
    let got = banded.detect(ctx, &refs, &opts).unwrap();
    println!("PNet passes: whole {}, banded {}", whole.times.pnet_passes, banded.times.pnet_passes);
    assert!(banded.times.pnet_passes > whole.times.pnet_passes + 20, "the small limit must cut levels into bands");
    // Every band computes the same windows as the whole level; only the conv kernels' summation order
    // may differ (smaller passes can take other tile shapes), a few f32 ulps that the box arithmetic
    // scales by at most 1/scale: far below 1e-3 px.
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_same_faces(&format!("photo {i}"), g, w, 1e-3);
    }
    // Below what one band of one PNet row needs, the photo is refused by name, not crashed on.
    let mut tiny = gpu_mtcnn(ctx);
    tiny.binding_limit = 4096;
    let err = tiny.detect(ctx, &refs[..1], &opts).unwrap_err().to_string();
    assert!(err.contains("above the adapter's limit of 4096 bytes"), "{err}");
}

/// `photo` scaled up `k` times, each pixel a `k x k` block: an area resize of it to any size equals the
/// same resize of the original, so the detector sees the original's pyramid.
fn scaled_up(photo: &image::RgbImage, k: u32) -> image::RgbImage {
    image::imageops::resize(photo, photo.width() * k, photo.height() * k, image::imageops::FilterType::Nearest)
}

/// The face of `found` that overlaps `want` most, and that overlap.
fn best_match<'a>(found: &'a [Face], want: &[f64; 4]) -> (&'a Face, f64) {
    let g = found.iter().max_by(|a, b| iou(&a.bbox, want).total_cmp(&iou(&b.bbox, want))).expect("a face");
    (g, iou(&g.bbox, want))
}

#[test]
fn camera_size_photos_of_33_and_73_megapixels_find_the_scaled_up_faces() {
    let ctx = gpu_or_skip!();
    let photo = load_image(&fixtures().join("images/couple.jpg")).unwrap();
    let mut mtcnn = gpu_mtcnn(ctx);
    let small = mtcnn.detect(ctx, &[&photo], &DetectOptions::default()).unwrap().remove(0);
    // couple.jpg (1140x794) 6 and 9 times: 6840x4764 and 10260x7146.
    for times in [6, 9] {
        let big = scaled_up(&photo, times);
        let k = times as f64;
        let mp = (big.width() * big.height()) as f64 / 1e6;
        println!("{}x{} ({mp:.1} MP), binding limit {} bytes", big.width(), big.height(), mtcnn.binding_limit);
        // facenet's defaults: the first pyramid level (0.6 of the photo) is far above the adapter's
        // binding limit, so PNet runs it in bands. The larger photo is searched at other scales, so
        // boxes move by part of a PNet cell: checked by overlap.
        let (levels, passes) = (scales(big.height() as usize, big.width() as usize, 20.0, 0.709).len(), mtcnn.times.pnet_passes);
        let found = mtcnn.detect(ctx, &[&big], &DetectOptions::default()).unwrap().remove(0);
        println!("  defaults: {} faces, {} PNet passes for {levels} levels", found.len(), mtcnn.times.pnet_passes - passes);
        assert!(mtcnn.times.pnet_passes - passes > levels, "{mp:.0} MP: the first levels must run in bands");
        assert_eq!(found.len(), small.len(), "{mp:.0} MP: faces found with the defaults");
        for s in &small {
            let (g, o) = best_match(&found, &s.bbox.map(|v| v * k));
            println!("  box {:?}: IoU {o:.3} with the scaled-up box", g.bbox);
            assert!(o >= 0.9, "{mp:.0} MP: IoU {o}");
        }
        // The same search as on the original (the smallest face scaled too, so the pyramid levels are the
        // original's): each box coordinate is the scaled-up one within 1% of the photo's size, and the
        // boxes overlap by 0.95 or more. What is left is facenet's box arithmetic, whose +1s and
        // truncations to whole pixels are in pixels of the photo, not scaled (measured: 1.1-1.7% of the face's
        // width, 0.4-0.7% of the photo, IoU 0.98).
        let opts = DetectOptions { min_size: 20.0 * k, ..Default::default() };
        let found = mtcnn.detect(ctx, &[&big], &opts).unwrap().remove(0);
        assert_eq!(found.len(), small.len(), "{mp:.0} MP: faces found with the scaled min size");
        let dims = [big.width(), big.height(), big.width(), big.height()].map(f64::from);
        for s in &small {
            let want = s.bbox.map(|v| v * k);
            let (g, o) = best_match(&found, &want);
            let err = (0..4).map(|j| (g.bbox[j] - want[j]).abs() / dims[j]).fold(0.0, f64::max);
            let face = 100.0 * (0..4).map(|j| (g.bbox[j] - want[j]).abs()).fold(0.0, f64::max) / (want[2] - want[0]);
            println!(
                "  scaled min size: box {:?} vs {want:?}: {:.2}% of the photo, {face:.2}% of the face, IoU {o:.3}",
                g.bbox,
                100.0 * err
            );
            assert!(err <= 0.01 && o >= 0.95, "{mp:.0} MP: box {:?} vs scaled-up {want:?}", g.bbox);
        }
    }
}

/// An input folder `person/` with `photos` (name, image) saved as PNG.
fn photo_folder(name: &str, photos: &[(&str, &image::RgbImage)]) -> (PathBuf, PathBuf, PathBuf) {
    let root = std::env::temp_dir().join(format!("facegpu-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (input, output) = (root.join("in"), root.join("out"));
    std::fs::create_dir_all(input.join("person")).unwrap();
    for (file, img) in photos {
        img.save(input.join("person").join(file)).unwrap();
    }
    (root, input, output)
}

#[test]
fn one_photo_that_fails_alone_is_reported_skipped_on_resume_and_retried_on_request() {
    let ctx = gpu_or_skip!();
    let photos = golden_photos();
    let wide = scaled_up(&photos[2], 3);
    let mut list: Vec<(String, &image::RgbImage)> = photos.iter().enumerate().map(|(i, p)| (format!("p{i}.png"), p)).collect();
    list.push(("wide.png".into(), &wide));
    let named: Vec<(&str, &image::RgbImage)> = list.iter().map(|(n, p)| (n.as_str(), *p)).collect();
    let (root, input, output) = photo_folder("align-fail", &named);
    let opts = facegpu::workflows::align::AlignOptions {
        image_size: 160,
        margin: 32.0,
        detect_multiple_faces: false,
        random_order: false,
        batch: 8,
        mode: facegpu::workflows::align::AlignMode::Crop,
        retry_failed: false,
        shard: None,
    };
    // A limit that one PNet row of the wide photo (3420 columns: 984 KB for the first level's conv1)
    // exceeds but the others fit (at most 345 KB): its batch fails, the photos are retried one by one,
    // and only the wide one fails.
    let mut mtcnn = gpu_mtcnn(ctx);
    mtcnn.binding_limit = 1 << 19;
    let s = facegpu::workflows::align::align(ctx, &mut mtcnn, &DetectOptions::default(), &input, &output, &opts, &mut ()).unwrap();
    assert_eq!(s.failed, [input.join("person/wide.png")], "{:?}", s.failed);
    assert_eq!(s.aligned, photos.len());
    let report = facegpu::workflows::align::read_error_report(&s.error_report);
    let (kind, message) = &report[&input.join("person/wide.png")];
    assert_eq!(kind, "failed");
    assert!(message.contains("wide.png") && message.contains("limit"), "{message}");
    // Resumed: the failed photo is skipped, not hit again.
    let again = facegpu::workflows::align::align(ctx, &mut mtcnn, &DetectOptions::default(), &input, &output, &opts, &mut ()).unwrap();
    assert_eq!((again.previously_failed, again.failed.len(), again.aligned), (1, 0, 0));
    // On an adapter with room (the real limit), --retry-failed aligns it and clears the report.
    let mut roomy = gpu_mtcnn(ctx);
    let retry = facegpu::workflows::align::AlignOptions { retry_failed: true, ..opts };
    let third = facegpu::workflows::align::align(ctx, &mut roomy, &DetectOptions::default(), &input, &output, &retry, &mut ()).unwrap();
    assert_eq!((third.aligned, third.failed.len()), (1, 0));
    assert!(output.join("person/wide.png").exists());
    assert!(facegpu::workflows::align::read_error_report(&s.error_report).is_empty());
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_lost_device_is_replaced_once_and_detection_goes_on() {
    let _ = gpu_or_skip!();
    // A context of its own: this test destroys its device.
    let ctx = facegpu::gpu::GpuContext::new().unwrap();
    let photos = golden_photos();
    let (root, input, _) = photo_folder("device-lost", &[("a.png", &photos[0]), ("b.png", &photos[1])]);
    let files = vec![input.join("person/a.png"), input.join("person/b.png")];
    let mut mtcnn = gpu_mtcnn(&ctx);
    let want = mtcnn.detect(&ctx, &[&photos[0], &photos[1]], &DetectOptions::default()).unwrap();
    ctx.simulate_device_loss();
    assert!(mtcnn.detect(&ctx, &[&photos[0]], &DetectOptions::default()).unwrap_err().is_device_lost());
    let mut got = Vec::new();
    facegpu::workflows::detect::detect_files(&ctx, &mut mtcnn, &files, &DetectOptions::default(), 1, |_, outcome| {
        match outcome {
            facegpu::workflows::detect::Outcome::Detected(d, _) => got.push(d.faces.clone()),
            _ => panic!("every photo must be detected on the new device"),
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(got.len(), 2);
    for (g, w) in got.iter().zip(&want) {
        assert_same_faces("after the device was replaced", g, w, 1e-3);
    }
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn an_align_run_killed_midway_resumes_with_every_face_aligned_once() {
    let _ = gpu_or_skip!();
    let Some(deepface) = common::fixture("faces/deepface") else { return };
    let root = std::env::temp_dir().join(format!("facegpu-align-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let output = root.join("out");
    let align = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_facegpu"));
        c.arg("align").arg(&deepface).arg(&output).args(["--batch-size", "1"]);
        c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
        c
    };
    let pngs = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&output)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
            .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten().map(|e| e.path()))
            .collect();
        v.sort();
        v
    };
    // Killed (SIGKILL) once some faces are written, mid-run.
    let mut child = align().spawn().unwrap();
    while pngs().iter().filter(|p| p.extension().is_some_and(|e| e == "png")).count() < 10 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let written_before = pngs().len();
    assert!(align().status().unwrap().success());
    let files = pngs();
    assert!(files.iter().all(|p| p.extension().is_some_and(|e| e == "png")), "only whole PNGs are left: {files:?}");
    for p in &files {
        let img = image::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!((img.width(), img.height()), (182, 182));
    }
    // Every photo with a face has exactly one PNG of its own name: as many as one uninterrupted run writes.
    let once = root.join("once");
    let s = std::process::Command::new(env!("CARGO_BIN_EXE_facegpu")).arg("align").arg(&deepface).arg(&once).output().unwrap();
    assert!(s.status.success());
    let want: Vec<String> = std::fs::read_dir(&once)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten().map(|e| e.path()))
        .map(|p| p.strip_prefix(&once).unwrap().display().to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let got: Vec<String> = files.iter().map(|p| p.strip_prefix(&output).unwrap().display().to_string()).collect();
    println!("{written_before} files before the kill, {} after resuming, {} in one run", got.len(), want.len());
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_folder_with_a_camera_size_photo_and_ordinary_ones_aligns_every_face() {
    let ctx = gpu_or_skip!();
    let photos = golden_photos();
    // couple.jpg 6 times larger (6840x4764, 33 MP) among the four other fixture photos.
    let big = scaled_up(&photos[2], 6);
    let named = [("p0.png", &photos[0]), ("p1.png", &photos[1]), ("big.png", &big), ("p3.png", &photos[3]), ("p4.png", &photos[4])];
    let (root, input, output) = photo_folder("align-camera", &named);
    let opts = facegpu::workflows::align::AlignOptions {
        image_size: 160,
        margin: 32.0,
        detect_multiple_faces: false,
        random_order: false,
        batch: 8,
        mode: facegpu::workflows::align::AlignMode::Crop,
        retry_failed: false,
        shard: None,
    };
    let mut mtcnn = Mtcnn::load_from(ctx, None).unwrap();
    let s = facegpu::workflows::align::align(ctx, &mut mtcnn, &DetectOptions::default(), &input, &output, &opts, &mut ()).unwrap();
    assert_eq!((s.aligned, s.failed.len(), s.no_face.len()), (5, 0, 0), "{s:?}");
    for (name, _) in named {
        assert!(output.join("person").join(name).exists(), "{name}");
    }
    let _ = std::fs::remove_dir_all(&root);
}

/// The detector on the wgpu kernels, for the tests of what only that path has (passes cut to the
/// binding limit, GPU failures, device loss).
fn gpu_mtcnn(ctx: &facegpu::gpu::GpuContext) -> Mtcnn {
    let mut m = Mtcnn::load_from(ctx, None).unwrap();
    m.device = Device::Gpu;
    m
}
