//! Small line plots written as PNG (the ROC curve of `eval --roc`, training curves): axes, a light grid,
//! tick labels and a title in a built-in 3x5 pixel font, one coloured polyline per series.

use std::path::Path;

use image::{Rgb, RgbImage};

/// One curve: points in data coordinates and a colour.
pub struct Series<'a> {
    pub points: &'a [(f64, f64)],
    pub color: [u8; 3],
}

pub struct Plot<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub x_range: (f64, f64),
    pub y_range: (f64, f64),
    pub series: Vec<Series<'a>>,
    /// Draw the diagonal y = x (chance on a ROC plot).
    pub diagonal: bool,
}

const W: u32 = 560;
const H: u32 = 480;
const LEFT: i64 = 60;
const RIGHT: i64 = 20;
const TOP: i64 = 40;
const BOTTOM: i64 = 50;

/// Glyphs of the built-in font: 3 columns x 5 rows, one bit per pixel, row-major from the top left.
fn glyph(c: char) -> Option<u16> {
    Some(match c.to_ascii_uppercase() {
        '0' => 0b111_101_101_101_111,
        '1' => 0b010_110_010_010_111,
        '2' => 0b111_001_111_100_111,
        '3' => 0b111_001_111_001_111,
        '4' => 0b101_101_111_001_001,
        '5' => 0b111_100_111_001_111,
        '6' => 0b111_100_111_101_111,
        '7' => 0b111_001_010_010_010,
        '8' => 0b111_101_111_101_111,
        '9' => 0b111_101_111_001_111,
        '.' => 0b000_000_000_000_010,
        '-' => 0b000_000_111_000_000,
        '+' => 0b000_010_111_010_000,
        '=' => 0b000_111_000_111_000,
        ':' => 0b000_010_000_010_000,
        '(' => 0b010_100_100_100_010,
        ')' => 0b010_001_001_001_010,
        '/' => 0b001_001_010_100_100,
        ' ' => 0,
        '_' => 0b000_000_000_000_111,
        'A' => 0b010_101_111_101_101,
        'B' => 0b110_101_110_101_110,
        'C' => 0b111_100_100_100_111,
        'D' => 0b110_101_101_101_110,
        'E' => 0b111_100_110_100_111,
        'F' => 0b111_100_110_100_100,
        'G' => 0b111_100_101_101_111,
        'H' => 0b101_101_111_101_101,
        'I' => 0b111_010_010_010_111,
        'J' => 0b001_001_001_101_111,
        'K' => 0b101_101_110_101_101,
        'L' => 0b100_100_100_100_111,
        'M' => 0b101_111_111_101_101,
        'N' => 0b110_101_101_101_101,
        'O' => 0b111_101_101_101_111,
        'P' => 0b111_101_111_100_100,
        'Q' => 0b111_101_101_111_001,
        'R' => 0b110_101_110_101_101,
        'S' => 0b111_100_111_001_111,
        'T' => 0b111_010_010_010_010,
        'U' => 0b101_101_101_101_111,
        'V' => 0b101_101_101_101_010,
        'W' => 0b101_101_111_111_101,
        'X' => 0b101_101_010_101_101,
        'Y' => 0b101_101_010_010_010,
        'Z' => 0b111_001_010_100_111,
        _ => return None,
    })
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, Rgb(c));
    }
}

/// Text at (x, y) (top left), each font pixel drawn as a `scale` x `scale` square.
pub(crate) fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, scale: i64, c: [u8; 3]) {
    for (k, ch) in s.chars().enumerate() {
        let bits = glyph(ch).unwrap_or(0b111_111_111_111_111);
        for row in 0..5 {
            for col in 0..3 {
                if bits >> (14 - (row * 3 + col)) & 1 == 1 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(img, x + k as i64 * 4 * scale + col * scale + dx, y + row * scale + dy, c);
                        }
                    }
                }
            }
        }
    }
}

pub(crate) fn text_width(s: &str, scale: i64) -> i64 {
    s.chars().count() as i64 * 4 * scale - scale
}

/// A line from (x0, y0) to (x1, y1), `thick` pixels wide (Bresenham).
fn line(img: &mut RgbImage, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: [u8; 3], thick: i64) {
    let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
    let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
    let (mut x, mut y, mut err) = (x0, y0, dx + dy);
    loop {
        for ox in 0..thick {
            for oy in 0..thick {
                put(img, x + ox - thick / 2, y + oy - thick / 2, c);
            }
        }
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

fn label(v: f64) -> String {
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

impl Plot<'_> {
    pub fn render(&self) -> RgbImage {
        let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
        let (pw, ph) = (W as i64 - LEFT - RIGHT, H as i64 - TOP - BOTTOM);
        let (x0, x1) = self.x_range;
        let (y0, y1) = self.y_range;
        let sx = |x: f64| LEFT + (((x - x0) / (x1 - x0).max(1e-300)) * pw as f64).round() as i64;
        let sy = |y: f64| TOP + ph - (((y - y0) / (y1 - y0).max(1e-300)) * ph as f64).round() as i64;
        let grey = [225, 225, 225];
        let dark = [40, 40, 40];
        for i in 0..=10 {
            let fx = x0 + (x1 - x0) * i as f64 / 10.0;
            let fy = y0 + (y1 - y0) * i as f64 / 10.0;
            line(&mut img, (sx(fx), TOP), (sx(fx), TOP + ph), grey, 1);
            line(&mut img, (LEFT, sy(fy)), (LEFT + pw, sy(fy)), grey, 1);
            if i % 2 == 0 {
                let (lx, ly) = (label(fx), label(fy));
                text(&mut img, sx(fx) - text_width(&lx, 2) / 2, TOP + ph + 8, &lx, 2, dark);
                text(&mut img, LEFT - 8 - text_width(&ly, 2), sy(fy) - 5, &ly, 2, dark);
            }
        }
        if self.diagonal {
            line(&mut img, (sx(x0), sy(y0)), (sx(x1), sy(y1)), [170, 170, 170], 1);
        }
        line(&mut img, (LEFT, TOP), (LEFT, TOP + ph), dark, 2);
        line(&mut img, (LEFT, TOP + ph), (LEFT + pw, TOP + ph), dark, 2);
        for s in &self.series {
            let clamp = |(x, y): (f64, f64)| (sx(x.clamp(x0, x1)), sy(y.clamp(y0, y1)));
            for w in s.points.windows(2) {
                line(&mut img, clamp(w[0]), clamp(w[1]), s.color, 2);
            }
        }
        text(&mut img, (W as i64 - text_width(self.title, 3)) / 2, 10, self.title, 3, dark);
        text(&mut img, LEFT + (pw - text_width(self.x_label, 2)) / 2, H as i64 - 20, self.x_label, 2, dark);
        text(&mut img, 6, TOP - 16, self.y_label, 2, dark);
        img
    }

    /// Renders and writes a PNG (to a temporary name, then renamed).
    pub fn save(&self, path: &Path) -> Result<(), crate::data::DataError> {
        let tmp = path.with_extension("png.partial");
        let encode = |e: image::ImageError| crate::data::DataError::Image { path: tmp.clone(), detail: e.to_string() };
        self.render().save_with_format(&tmp, image::ImageFormat::Png).map_err(encode)?;
        std::fs::rename(&tmp, path).map_err(crate::data::io_at(path))
    }
}
