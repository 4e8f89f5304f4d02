//! facenet's compare.py: the first face of each photo, detected and aligned (160 pixels, margin 44),
//! embedded, and the matrix of Euclidean distances between them.
//!
//! cargo run --release --example compare -- MODEL PHOTO PHOTO [PHOTO ...]

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: compare MODEL PHOTO PHOTO...")?;
    let photos: Vec<String> = args.collect();
    let ctx = facegpu::open_gpu()?;
    let mut detector = facegpu::FaceDetector::on(ctx.clone())?;
    let mut facenet = facegpu::FaceNet::load_on(ctx, &model)?;
    let mut names = Vec::new();
    let mut faces = Vec::new();
    for photo in &photos {
        let image = facegpu::open_image(photo)?;
        match detector.detect(&image)?.first() {
            Some(face) => {
                faces.push(facegpu::FaceDetector::align(&image, face, 160, 44.0));
                names.push(photo.as_str());
            }
            None => eprintln!("{photo}: no face found, left out"),
        }
    }
    let embeddings = facenet.embed(&faces)?;
    for (i, name) in names.iter().enumerate() {
        let row: Vec<String> = embeddings.iter().map(|e| format!("{:.4}", facegpu::distance(&embeddings[i], e))).collect();
        println!("{i}: {name}\n   {}", row.join("  "));
    }
    Ok(())
}
