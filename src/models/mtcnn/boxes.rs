//! MTCNN's box arithmetic on the CPU, as facenet's `align/detect_face.py` does it, in f64 like numpy:
//! candidate generation from PNet's maps, NMS, regression, `rerec`, and `pad` (the crop windows).

/// `[x1, y1, x2, y2]` in pixels.
pub type BBox = [f64; 4];

/// A box with its score and the regression the network predicted for it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub bbox: BBox,
    pub score: f64,
    pub reg: [f64; 4],
}

/// How NMS measures overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Intersection over union.
    Union,
    /// Intersection over the smaller area (the last stage).
    Min,
}

/// facenet's `nms`: visit boxes from the highest score down, keep one, drop every later box that overlaps
/// it by more than `threshold`. Areas and intersections count pixels inclusively (`x2 - x1 + 1`). Returns
/// the kept indices, best first. Ties in score keep the later box first (numpy's argsort, taken from the
/// end; numpy's order of equal scores is unspecified).
pub fn nms(boxes: &[BBox], scores: &[f64], threshold: f64, overlap: Overlap) -> Vec<usize> {
    let area = |b: &BBox| (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0);
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let mut pick = Vec::new();
    while let Some(i) = order.pop() {
        pick.push(i);
        let bi = &boxes[i];
        order.retain(|&j| {
            let bj = &boxes[j];
            let w = (bi[2].min(bj[2]) - bi[0].max(bj[0]) + 1.0).max(0.0);
            let h = (bi[3].min(bj[3]) - bi[1].max(bj[1]) + 1.0).max(0.0);
            let inter = w * h;
            let o = match overlap {
                Overlap::Union => inter / (area(bi) + area(bj) - inter),
                Overlap::Min => inter / area(bi).min(area(bj)),
            };
            o <= threshold
        });
    }
    pick
}

/// facenet's `generateBoundingBox`: every cell of PNet's `oh x ow` face-probability map with
/// `prob >= threshold` becomes the 12x12 window it saw, mapped back to the image at `scale`:
/// `x1 = fix((2x + 1)/scale)`, `x2 = fix((2x + 12)/scale)`, same for y. `reg(y, x, k)` reads the
/// regression map. Candidates come in facenet's order (column-major over the map).
///
/// facenet flips its transposed regression maps upside down when exactly one cell passes, so that cell's
/// regression is read at column `ow - 1 - x`. facegpu keeps this quirk so its boxes match facenet's.
pub fn generate(
    prob: &[f32],
    oh: usize,
    ow: usize,
    reg: impl Fn(usize, usize, usize) -> f32,
    scale: f64,
    threshold: f64,
) -> Vec<Candidate> {
    const STRIDE: f64 = 2.0;
    const CELL: f64 = 12.0;
    let mut cells = Vec::new();
    for x in 0..ow {
        for y in 0..oh {
            if prob[y * ow + x] as f64 >= threshold {
                cells.push((y, x));
            }
        }
    }
    let flipped = cells.len() == 1;
    cells
        .into_iter()
        .map(|(y, x)| {
            let rx = if flipped { ow - 1 - x } else { x };
            let (fx, fy) = (x as f64, y as f64);
            Candidate {
                bbox: [
                    ((STRIDE * fx + 1.0) / scale).trunc(),
                    ((STRIDE * fy + 1.0) / scale).trunc(),
                    ((STRIDE * fx + CELL) / scale).trunc(),
                    ((STRIDE * fy + CELL) / scale).trunc(),
                ],
                score: prob[y * ow + x] as f64,
                reg: std::array::from_fn(|k| reg(y, rx, k) as f64),
            }
        })
        .collect()
}

/// Stage 1's regression: offsets scale with `x2 - x1` (no +1).
pub fn regress_exclusive(b: &BBox, reg: &[f64; 4]) -> BBox {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    [b[0] + reg[0] * w, b[1] + reg[1] * h, b[2] + reg[2] * w, b[3] + reg[3] * h]
}

/// facenet's `bbreg` (stages 2 and 3): offsets scale with `x2 - x1 + 1`.
pub fn bbreg(b: &BBox, reg: &[f64; 4]) -> BBox {
    let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
    [b[0] + reg[0] * w, b[1] + reg[1] * h, b[2] + reg[2] * w, b[3] + reg[3] * h]
}

/// facenet's `rerec`: the square with side `max(w, h)` (no +1) around the box's centre.
pub fn rerec(b: &BBox) -> BBox {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let l = w.max(h);
    let (x1, y1) = (b[0] + w * 0.5 - l * 0.5, b[1] + h * 0.5 - l * 0.5);
    [x1, y1, x1 + l, y1 + l]
}

/// numpy's `fix` of the four coordinates (towards zero).
pub fn fix(b: &BBox) -> BBox {
    b.map(f64::trunc)
}

/// facenet's `pad` for one (integer) box in an image `w x h`, 1-based like the MATLAB original: the crop
/// buffer is `tmph x tmpw`, and `tmp[dy-1..edy, dx-1..edx] = img[y-1..ey, x-1..ex]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pad {
    pub dy: i64,
    pub edy: i64,
    pub dx: i64,
    pub edx: i64,
    pub y: i64,
    pub ey: i64,
    pub x: i64,
    pub ex: i64,
    pub tmpw: i64,
    pub tmph: i64,
}

pub fn pad(b: &BBox, w: usize, h: usize) -> Pad {
    let (w, h) = (w as i64, h as i64);
    let tmpw = (b[2] - b[0] + 1.0) as i64;
    let tmph = (b[3] - b[1] + 1.0) as i64;
    let mut p = Pad { dy: 1, edy: tmph, dx: 1, edx: tmpw, y: b[1] as i64, ey: b[3] as i64, x: b[0] as i64, ex: b[2] as i64, tmpw, tmph };
    if p.ex > w {
        p.edx = -p.ex + w + tmpw;
        p.ex = w;
    }
    if p.ey > h {
        p.edy = -p.ey + h + tmph;
        p.ey = h;
    }
    if p.x < 1 {
        p.dx = 2 - p.x;
        p.x = 1;
    }
    if p.y < 1 {
        p.dy = 2 - p.y;
        p.y = 1;
    }
    p
}

impl Pad {
    /// The crop as a window of the zero-padded image: `(x0, y0, width, height)`, 0-based. Image pixel
    /// `x - 1` lands at buffer column `dx - 1`, so the window starts at `x - dx` (= box `x1 - 1`).
    pub fn window(&self) -> [i32; 4] {
        [(self.x - self.dx) as i32, (self.y - self.dy) as i32, self.tmpw as i32, self.tmph as i32]
    }
}

/// Face probability from the two logits of a softmax head, computed as TF's softmax does in f32.
pub fn face_prob(l0: f32, l1: f32) -> f64 {
    let m = l0.max(l1);
    let (e0, e1) = ((l0 - m).exp(), (l1 - m).exp());
    (e1 / (e0 + e1)) as f64
}

/// The pyramid scales for an image of `h x w`: `m * factor^k` with `m = 12 / min_size`, while the
/// shorter side scaled stays at least 12 pixels.
pub fn scales(h: usize, w: usize, min_size: f64, factor: f64) -> Vec<f64> {
    let m = 12.0 / min_size;
    let mut minl = h.min(w) as f64 * m;
    let mut out = Vec::new();
    let mut k = 0;
    while minl >= 12.0 {
        out.push(m * factor.powf(k as f64));
        minl *= factor;
        k += 1;
    }
    out
}
