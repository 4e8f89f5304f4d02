//! The library's front door: embed faces with a facenet model, detect and align faces with MTCNN, and
//! score verification pairs with facenet's metrics, without touching the GPU layer.
//!
//! ```no_run
//! # fn main() -> Result<(), facegpu::Error> {
//! let photo = facegpu::open_image("party.jpg")?;
//! let mut detector = facegpu::FaceDetector::new()?;
//! let mut facenet = facegpu::FaceNet::load("20180402-114759")?;
//! let faces: Vec<_> = detector.detect(&photo)?.iter().map(|f| facegpu::FaceDetector::align(&photo, f, 160, 44.0)).collect();
//! let embeddings = facenet.embed(&faces)?;
//! println!("{} faces, distance of the first two {:.3}", faces.len(), facegpu::distance(&embeddings[0], &embeddings[1]));
//! # Ok(())
//! # }
//! ```

use std::path::Path;
use std::sync::Arc;

use image::RgbImage;
use thiserror::Error;

use crate::checkpoint::CheckpointError;
use crate::data::images::{load_image, resize_bilinear_like_pil};
use crate::gpu::{GpuContext, GpuError};
use crate::models::mtcnn::Mtcnn;
use crate::models::ModelError;
use crate::workflows::align::{face_image, AlignMode};
use crate::workflows::embed::Embedder;

pub use crate::checkpoint::Standardization;
pub use crate::eval::lfw::{read_pairs, Pair, Pairs};
pub use crate::eval::metrics::{evaluate, DistanceMetric, Verification};
pub use crate::models::mtcnn::{DetectOptions, Face};

/// What the library API can fail with; each names the file, tensor or op involved.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error(transparent)]
    Weights(#[from] CheckpointError),
    #[error(transparent)]
    Model(#[from] ModelError),
    /// An image that could not be read or decoded: the message names the file.
    #[error("{0}")]
    Image(String),
}

/// Opens the best adapter (a discrete GPU, else an integrated one, else a CPU driver such as lavapipe),
/// to share between a [`FaceNet`] and a [`FaceDetector`].
///
/// ```
/// let ctx = facegpu::open_gpu().expect("a GPU adapter or lavapipe");
/// assert!(ctx.binding_limit() >= 128 << 20);
/// ```
pub fn open_gpu() -> Result<Arc<GpuContext>, Error> {
    Ok(Arc::new(GpuContext::new()?))
}

/// Decodes an image file as RGB (JPEG the way facenet's PIL decodes it); the error names the file.
///
/// ```
/// let img = facegpu::open_image("weights/demo-faces/John_Simm/000288_00470387.jpg").unwrap();
/// assert!(img.width() > 0 && img.height() > 0);
/// assert!(facegpu::open_image("no/such/photo.jpg").unwrap_err().to_string().contains("no/such/photo.jpg"));
/// ```
pub fn open_image(path: impl AsRef<Path>) -> Result<RgbImage, Error> {
    load_image(path.as_ref()).map_err(|e| Error::Image(e.to_string()))
}

/// facenet's distance between two embeddings, as compare.py prints it: Euclidean.
///
/// ```
/// assert_eq!(facegpu::distance(&[1.0, 0.0], &[0.0, 1.0]), 2f32.sqrt());
/// ```
pub fn distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
}

/// A facenet Inception-ResNet-v1 model ready to embed aligned faces.
///
/// ```
/// # fn main() -> Result<(), facegpu::Error> {
/// let fixtures = std::env::var("FACEGPU_FIXTURES").unwrap_or_else(|_| "../shared/fixtures".into());
/// let mut facenet = facegpu::FaceNet::load(format!("{fixtures}/facenet-20170512-110547"))?;
/// assert_eq!((facenet.embedding_size(), facenet.image_size()), (128, 160));
/// let face = facegpu::open_image(format!("{fixtures}/irv1-golden/images/angelina_jolie.png"))?;
/// let e = facenet.embed(&[face.clone(), face])?;
/// // Unit-length embeddings; the same face twice gives the same embedding.
/// assert!((e[0].iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
/// assert!(facegpu::distance(&e[0], &e[1]) < 1e-5);
/// # Ok(())
/// # }
/// ```
pub struct FaceNet {
    ctx: Arc<GpuContext>,
    embedder: Embedder,
}

impl FaceNet {
    /// Loads a model on its own GPU context: a facenet model folder or checkpoint prefix, a frozen
    /// graph `.pb`, or a `.safetensors` written by `facegpu convert`. The standardization is what the
    /// file records, else what its run id implies (fixed from 2018-04-01 on), else prewhiten.
    pub fn load(model: impl AsRef<Path>) -> Result<Self, Error> {
        Self::load_on(open_gpu()?, model)
    }

    /// Loads a model on a shared context (see [`open_gpu`]).
    pub fn load_on(ctx: Arc<GpuContext>, model: impl AsRef<Path>) -> Result<Self, Error> {
        let embedder = Embedder::load(&ctx, model.as_ref(), None, 160)?;
        Ok(Self { ctx, embedder })
    }

    /// The length of an embedding (128 or 512 for facenet's released models).
    pub fn embedding_size(&self) -> usize {
        self.embedder.model.embedding_size()
    }

    /// The side of the square input faces are resized to.
    pub fn image_size(&self) -> u32 {
        self.embedder.image_size
    }

    /// The input standardization the model is used with.
    pub fn standardization(&self) -> Standardization {
        self.embedder.standardization
    }

    /// L2-normalized embeddings of aligned faces (e.g. [`FaceDetector::align`]'s), one per face, in
    /// order; faces of another size are resized bilinearly as facenet's `misc.imresize` does.
    pub fn embed(&mut self, faces: &[RgbImage]) -> Result<Vec<Vec<f32>>, Error> {
        let size = self.image_size();
        let mut out = Vec::with_capacity(faces.len());
        for chunk in faces.chunks(32) {
            let mut pixels = Vec::with_capacity(chunk.len() * (size * size * 3) as usize);
            for face in chunk {
                let resized;
                let face = if face.dimensions() == (size, size) {
                    face
                } else {
                    resized = resize_bilinear_like_pil(face, size, size);
                    &resized
                };
                pixels.extend(face.as_raw().iter().map(|&v| f32::from(v)));
            }
            for row in self.embedder.embed_batch(&self.ctx, &pixels, chunk.len())? {
                out.push(row?);
            }
        }
        Ok(out)
    }
}

/// MTCNN face detection with facenet's weights (embedded in the binary) and defaults.
///
/// ```
/// # fn main() -> Result<(), facegpu::Error> {
/// let photo = facegpu::open_image("weights/demo-faces/John_Simm/000288_00470387.jpg")?;
/// let mut detector = facegpu::FaceDetector::new()?;
/// let faces = detector.detect(&photo)?;
/// assert_eq!(faces.len(), 1);
/// assert!(faces[0].score > 0.9);
/// let face = facegpu::FaceDetector::align(&photo, &faces[0], 160, 32.0);
/// assert_eq!(face.dimensions(), (160, 160));
/// # Ok(())
/// # }
/// ```
pub struct FaceDetector {
    ctx: Arc<GpuContext>,
    mtcnn: Mtcnn,
    /// Minimum face size, the three stages' thresholds and the pyramid factor (facenet's 20, 0.6/0.7/0.7,
    /// 0.709).
    pub options: DetectOptions,
}

impl FaceDetector {
    /// The detector on its own GPU context.
    pub fn new() -> Result<Self, Error> {
        Self::on(open_gpu()?)
    }

    /// The detector on a shared context (see [`open_gpu`]).
    pub fn on(ctx: Arc<GpuContext>) -> Result<Self, Error> {
        let mtcnn = Mtcnn::load_from(&ctx, None)?;
        Ok(Self { ctx, mtcnn, options: DetectOptions::default() })
    }

    /// The faces of one photo, in facenet's order: box `[x1, y1, x2, y2]` in pixels, score, and five
    /// landmarks (eyes, nose, mouth corners) as `[x, y]`.
    pub fn detect(&mut self, image: &RgbImage) -> Result<Vec<Face>, Error> {
        Ok(self.mtcnn.detect(&self.ctx, &[image], &self.options)?.pop().unwrap_or_default())
    }

    /// facenet's aligned face: the box grown by `margin` pixels in all (clipped to the photo), resized to
    /// `size x size` (align_dataset_mtcnn.py uses 182 and 44 for training data, compare.py 160 and 44).
    pub fn align(image: &RgbImage, face: &Face, size: u32, margin: f64) -> RgbImage {
        face_image(image, face, margin, size, AlignMode::Crop).0
    }
}
