//! JPEGs decoded as facenet's PIL decodes them (libjpeg: the integer "islow" IDCT and fancy chroma
//! upsampling), checked pixel for pixel against PIL's own decode of every JPEG fixture.

mod common;

use std::path::Path;

/// The checksum `tests/data/pil_decodes.json` holds for PIL's decode (`np.asarray(Image.open(p)
/// .convert('RGB'))`, Pillow 13.0.0 with libjpeg-turbo): `sum(byte[i] * (i % 65521 + 1))` mod 2^64
/// over the RGB bytes in row order.
fn checksum(rgb: &[u8]) -> u64 {
    rgb.iter().enumerate().fold(0u64, |s, (i, &b)| s.wrapping_add(u64::from(b).wrapping_mul((i % 65521) as u64 + 1)))
}

#[test]
fn every_jpeg_fixture_decodes_to_pils_pixels() {
    let root = common::fixtures_root();
    if common::fixture("mtcnn/images").is_none() {
        return;
    }
    let table: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/pil_decodes.json")).unwrap())
            .unwrap();
    let table = table.as_object().unwrap();
    assert_eq!(table.len(), 123, "every JPEG of the fixtures");
    let mut differ = Vec::new();
    let t = std::time::Instant::now();
    for (rel, want) in table {
        let img = facegpu::data::images::load_image(&root.join(rel)).unwrap();
        assert_eq!(
            [img.width(), img.height()],
            [want["size"][0].as_u64().unwrap() as u32, want["size"][1].as_u64().unwrap() as u32],
            "{rel}"
        );
        if checksum(img.as_raw()) != want["sum"].as_u64().unwrap() {
            differ.push(rel.clone());
        }
    }
    println!("{} JPEGs decoded in {:.2} s", table.len(), t.elapsed().as_secs_f64());
    assert!(differ.is_empty(), "decoded otherwise than PIL: {differ:?}");
}

#[test]
fn a_broken_jpeg_is_refused_by_name_and_a_cmyk_one_still_decodes() {
    let dir = std::env::temp_dir().join(format!("facegpu-jpeg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A JPEG cut short after its header: libjpeg refuses it, and the error names the file.
    let Some(photo) = common::fixture("mtcnn/images/couple.jpg") else { return };
    let bytes = std::fs::read(&photo).unwrap();
    let cut = dir.join("cut.jpg");
    std::fs::write(&cut, &bytes[..600]).unwrap();
    match facegpu::data::images::load_image(&cut) {
        Err(e) => assert!(e.to_string().contains("cut.jpg"), "{e}"),
        // libjpeg pads a truncated scan with grey (a warning, not an error): the photo's size remains.
        Ok(img) => assert_eq!((img.width(), img.height()), (1140, 794)),
    }
    let junk = dir.join("junk.jpg");
    std::fs::write(&junk, [0xff, 0xd8, 0xff, 0xe0, 0, 0, 1, 2, 3]).unwrap();
    let err = facegpu::data::images::load_image(&junk).unwrap_err();
    assert!(matches!(&err, facegpu::data::DataError::Image { path, .. } if path == &junk), "{err:?}");
    let e = err.to_string();
    assert!(e.contains("junk.jpg") && e.contains("cannot read image"), "{e}");
    // A CMYK JPEG (libjpeg gives no RGB for it) falls back to the image crate's decoder.
    let cmyk = dir.join("cmyk.jpg");
    let jpeg = std::panic::catch_unwind(|| {
        let mut comp = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_CMYK);
        comp.set_size(16, 16);
        let mut started = comp.start_compress(Vec::new()).unwrap();
        started.write_scanlines(&[0u8, 255, 255, 0].repeat(16 * 16)).unwrap();
        started.finish().unwrap()
    })
    .unwrap();
    std::fs::write(&cmyk, jpeg).unwrap();
    let img = facegpu::data::images::load_image(&cmyk).unwrap();
    assert_eq!((img.width(), img.height()), (16, 16));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bilinear_resize_gives_pils_pixels() {
    // Checksums of Pillow 13.0.0's `im.crop(box).resize(size, Image.BILINEAR)` on couple.jpg decoded by
    // PIL: facenet's misc.imresize of a face crop (down and up), a whole photo to an odd size, and a
    // 2-row strip (up vertically, down horizontally).
    let Some(photo) = common::fixture("mtcnn/images/couple.jpg") else { return };
    let img = facegpu::data::images::load_image(&photo).unwrap();
    let cases: [([u32; 4], [u32; 2], u64); 4] = [
        ([677, 111, 1012, 572], [160, 160], 286642491302),
        ([880, 480, 930, 520], [160, 160], 395881922633),
        ([0, 0, 1140, 794], [182, 91], 137477552898),
        ([100, 50, 400, 52], [57, 9], 140425595),
    ];
    for (b, size, want) in cases {
        let crop = image::imageops::crop_imm(&img, b[0], b[1], b[2] - b[0], b[3] - b[1]).to_image();
        let got = facegpu::data::images::resize_bilinear_like_pil(&crop, size[0], size[1]);
        assert_eq!((got.width(), got.height()), (size[0], size[1]));
        assert_eq!(checksum(got.as_raw()), want, "crop {b:?} to {size:?}");
    }
}
