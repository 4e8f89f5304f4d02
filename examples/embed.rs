//! Embeds aligned face images with a facenet model and prints one JSON line per image.
//!
//! cargo run --release --example embed -- MODEL FACE.png [FACE.png ...]
//! (MODEL: a facenet model folder, a frozen graph .pb, or a .safetensors from `facegpu convert`)

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let model = args.next().ok_or("usage: embed MODEL FACE...")?;
    let files: Vec<String> = args.collect();
    let mut facenet = facegpu::FaceNet::load(&model)?;
    let faces = files.iter().map(facegpu::open_image).collect::<Result<Vec<_>, _>>()?;
    for (file, e) in files.iter().zip(facenet.embed(&faces)?) {
        let head: Vec<String> = e.iter().take(4).map(|v| format!("{v:.4}")).collect();
        println!("{{\"image\": {file:?}, \"size\": {}, \"first\": [{}]}}", e.len(), head.join(", "));
    }
    Ok(())
}
