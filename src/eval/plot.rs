//! Line plots written as PNG (the ROC curve of `eval --roc`, training curves) and text drawn onto
//! photos, with the `plotters` crate's bitmap backend and an embedded font (DejaVu Sans,
//! weights/fonts), so they render the same on a headless machine without fonts installed.

use std::path::Path;
use std::sync::Once;

use image::RgbImage;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle, RGBColor};
use thiserror::Error;

use crate::data::{io_at, DataError};

/// A plot that could not be drawn or written.
#[derive(Debug, Error)]
pub enum PlotError {
    #[error("drawing '{title}': {detail}")]
    Draw { title: String, detail: String },
    #[error(transparent)]
    File(#[from] DataError),
}

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

const W: u32 = 640;
const H: u32 = 480;
/// The family name the embedded font is registered under.
const FONT: &str = "sans-serif";

/// Registers the embedded font with plotters once per process.
fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and parses; a failure here would be a broken build.
        let _ = register_font(FONT, FontStyle::Normal, include_bytes!("../../weights/fonts/DejaVuSans.ttf"));
    });
}

impl Plot<'_> {
    /// The plot as an RGB image: title, axis titles, ticks, a light grid, one line per series.
    pub fn render(&self) -> Result<RgbImage, PlotError> {
        register();
        let mut buf = vec![255u8; (W * H * 3) as usize];
        self.draw(&mut buf).map_err(|e| PlotError::Draw { title: self.title.to_string(), detail: e.to_string() })?;
        Ok(RgbImage::from_raw(W, H, buf).expect("the buffer holds W x H RGB pixels"))
    }

    fn draw(&self, buf: &mut [u8]) -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = BitMapBackend::with_buffer(buf, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let (x0, x1) = self.x_range;
        let (y0, y1) = self.y_range;
        let mut chart = ChartBuilder::on(&root)
            .caption(self.title, (FONT, 22))
            .margin(16)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(self.x_label)
            .y_desc(self.y_label)
            .axis_desc_style((FONT, 16))
            .label_style((FONT, 13))
            .light_line_style(RGBColor(236, 236, 236))
            .draw()?;
        if self.diagonal {
            chart.draw_series(LineSeries::new([(x0, y0), (x1, y1)], RGBColor(160, 160, 160).stroke_width(1)))?;
        }
        for s in &self.series {
            let [r, g, b] = s.color;
            chart.draw_series(LineSeries::new(s.points.iter().copied(), RGBColor(r, g, b).stroke_width(2)))?;
        }
        root.present()?;
        Ok(())
    }

    /// Renders and writes a PNG (to a temporary name, then renamed).
    pub fn save(&self, path: &Path) -> Result<(), PlotError> {
        save_png(&self.render()?, path)?;
        Ok(())
    }
}

/// Writes `img` as a PNG through `<path>.partial` renamed into place.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<(), DataError> {
    let tmp = path.with_extension("png.partial");
    img.save_with_format(&tmp, image::ImageFormat::Png).map_err(|e| DataError::Image { path: tmp.clone(), detail: e.to_string() })?;
    std::fs::rename(&tmp, path).map_err(io_at(path))
}

/// Draws `s` onto `img` with its top left at (x, y), `size` pixels high (names on photos).
pub(crate) fn text(img: &mut RgbImage, x: i64, y: i64, s: &str, size: u32, c: [u8; 3]) {
    register();
    let (w, h) = img.dimensions();
    let root = BitMapBackend::with_buffer(img.as_mut(), (w, h)).into_drawing_area();
    let colour = RGBColor(c[0], c[1], c[2]);
    let style = TextStyle::from((FONT, size as f64).into_font()).color(&colour);
    // Text that falls outside the image is clipped by the backend; nothing else can fail on a buffer.
    let _ = root.draw(&Text::new(s, (x as i32, y as i32), style));
    let _ = root.present();
}
