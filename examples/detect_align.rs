//! Detects the faces of a photo with MTCNN and writes each as a 160x160 aligned face (facenet's crop,
//! margin 32) next to a line with its box, score and landmarks.
//!
//! cargo run --release --example detect_align -- PHOTO.jpg OUT_DIR

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (photo, out) = match (args.next(), args.next()) {
        (Some(p), Some(o)) => (p, PathBuf::from(o)),
        _ => return Err("usage: detect_align PHOTO OUT_DIR".into()),
    };
    let image = facegpu::open_image(&photo)?;
    let mut detector = facegpu::FaceDetector::new()?;
    let faces = detector.detect(&image)?;
    std::fs::create_dir_all(&out)?;
    for (i, face) in faces.iter().enumerate() {
        let aligned = facegpu::FaceDetector::align(&image, face, 160, 32.0);
        let file = out.join(format!("face_{i}.png"));
        aligned.save(&file)?;
        println!("{}: box {:?} score {:.4} landmarks {:?}", file.display(), face.bbox, face.score, face.landmarks);
    }
    println!("{} faces in {photo}", faces.len());
    Ok(())
}
