use crate::ops::OpError;

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ImageParams {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    pub oh: u32,
    pub ow: u32,
    pub y0: i32,
    pub x0: i32,
    /// Output transform of the resizes: `v -> (round(v) if round else v + add) * mul`.
    pub add: f32,
    pub mul: f32,
    pub round: u32,
    /// The `*_rgb8` entries: log2 of the texels in a row of the packed images' texture.
    pub tshift: u32,
    /// `resize_area_rgb8` writes output rows `row0 .. row0 + rows` of the `oh`-row resize (a band of a
    /// pyramid level); elsewhere `0` and `oh`.
    pub row0: u32,
    pub rows: u32,
    /// Padding to a multiple of 16 bytes.
    pub pad: [u32; 2],
}

/// What the area resizes do to each output value: `(round_half_even(v) if round else v, + add) * mul`.
/// MTCNN's pyramid rounds like OpenCV on uint8 and then normalizes with `(v - 127.5) * 0.0078125`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transform {
    pub round: bool,
    pub add: f32,
    pub mul: f32,
}

impl Transform {
    pub const IDENTITY: Self = Self { round: false, add: 0.0, mul: 1.0 };

    pub fn apply(&self, v: f32) -> f32 {
        let v = if self.round { v.round_ties_even() } else { v };
        (v + self.add) * self.mul
    }
}

impl ImageParams {
    /// From an NHWC input shape and an output size.
    pub fn new(op: &'static str, x: &[usize], out_hw: (usize, usize)) -> Result<Self, OpError> {
        if x.len() != 4 || x[1] == 0 || x[2] == 0 || out_hw.0 == 0 || out_hw.1 == 0 {
            return Err(OpError::Shape {
                op,
                detail: format!("input {x:?} must be a non-empty NHWC image and the output {out_hw:?} non-empty"),
            });
        }
        Ok(Self {
            n: x[0] as u32,
            h: x[1] as u32,
            w: x[2] as u32,
            c: x[3] as u32,
            oh: out_hw.0 as u32,
            ow: out_hw.1 as u32,
            y0: 0,
            x0: 0,
            add: 0.0,
            mul: 1.0,
            round: 0,
            tshift: 0,
            row0: 0,
            rows: out_hw.0 as u32,
            pad: [0; 2],
        })
    }

    pub fn out_shape(&self) -> [usize; 4] {
        [self.n as usize, self.oh as usize, self.ow as usize, self.c as usize]
    }

    pub fn with_transform(mut self, t: Transform) -> Self {
        (self.add, self.mul, self.round) = (t.add, t.mul, t.round as u32);
        self
    }
}

/// `(height, width)` of an NHWC shape (0 where absent; `ImageParams::new` then refuses it).
pub fn hw(shape: &[usize]) -> (usize, usize) {
    (shape.get(1).copied().unwrap_or(0), shape.get(2).copied().unwrap_or(0))
}

/// `(input index, weight)` taps of output `o` along one axis of OpenCV INTER_AREA; `shrink` is true when
/// neither axis of the image grows (otherwise OpenCV uses its enlarging rule on both axes).
pub fn area_taps(o: usize, n_in: usize, n_out: usize, shrink: bool) -> Vec<(usize, f32)> {
    let s = n_in as f32 / n_out as f32;
    if shrink {
        // OpenCV's computeResizeAreaTab: whole pixels weigh 1/cell, the partial ends their covered
        // fraction / cell (dropped below 1e-3), cell = min(s, n_in - lo).
        let lo = o as f32 * s;
        let hi = lo + s;
        let cell = s.min(n_in as f32 - lo);
        let last = (hi.floor() as usize).min(n_in - 1);
        let inner = (lo.ceil() as usize).min(last);
        let mut taps = Vec::new();
        if inner as f32 - lo > 1e-3 {
            taps.push((inner - 1, (inner as f32 - lo) / cell));
        }
        taps.extend((inner..last).map(|i| (i, 1.0 / cell)));
        if hi - last as f32 > 1e-3 {
            taps.push((last, (hi - last as f32).min(1.0).min(cell) / cell));
        }
        taps
    } else {
        let mut sx = (o as f32 * s).floor() as usize;
        let mut f = (o + 1) as f32 - (sx + 1) as f32 / s;
        f = if f <= 0.0 { 0.0 } else { f - f.floor() };
        if sx >= n_in - 1 {
            sx = n_in - 1;
            f = 0.0;
        }
        if sx + 1 < n_in {
            vec![(sx, 1.0 - f), (sx + 1, f)]
        } else {
            vec![(sx, 1.0 - f)]
        }
    }
}
