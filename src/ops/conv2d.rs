use crate::ops::OpError;

/// Spatial padding of a conv or pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// TF SAME: output `ceil(in/stride)`, total pad `max((out-1)*stride + k - in, 0)`, smaller half first.
    Same,
    /// No padding: output `(in - k)/stride + 1`.
    Valid,
    /// Explicit `(top, bottom, left, right)`.
    Explicit(u32, u32, u32, u32),
}

/// Output size and (before, after) padding along one axis.
pub fn out_size(
    op: &'static str,
    input: usize,
    k: usize,
    stride: usize,
    padding: Padding,
    axis: usize,
) -> Result<(usize, u32, u32), OpError> {
    if stride == 0 || k == 0 {
        return Err(OpError::Invalid { op, detail: format!("kernel {k} and stride {stride} must be positive") });
    }
    let (before, after) = match padding {
        Padding::Valid => (0, 0),
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out.max(1) - 1) * stride + k).saturating_sub(input);
            ((total / 2) as u32, (total - total / 2) as u32)
        }
        Padding::Explicit(t, b, l, r) => {
            if axis == 0 {
                (t, b)
            } else {
                (l, r)
            }
        }
    };
    let padded = input + (before + after) as usize;
    if padded < k {
        return Err(OpError::Shape { op, detail: format!("input extent {input} (padded {padded}) is smaller than the kernel extent {k}") });
    }
    Ok(((padded - k) / stride + 1, before, after))
}

/// Activation applied last in a fused epilogue.
#[derive(Debug, Clone, Copy)]
pub enum Activation<T> {
    None,
    Relu,
    /// `max(0,x) + alpha[c]*min(0,x)`.
    Prelu(T),
}

/// Optional fused epilogue; `T` is `&GpuTensor` on the GPU and `&[f32]` on the CPU twin.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<T> {
    pub bias: Option<T>,
    /// `(scale, shift)`: `y = y * scale[c] + shift[c]`.
    pub affine: Option<(T, T)>,
    /// `(residual, s)`: y = residual + s*y.
    pub residual: Option<(T, f32)>,
    pub act: Activation<T>,
}

impl<T> Default for Epilogue<T> {
    fn default() -> Self {
        Self { bias: None, affine: None, residual: None, act: Activation::None }
    }
}

/// Shapes of one conv2d, shared by the CPU twin and the shader's uniform.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Conv2dParams {
    pub n: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    pub oh: u32,
    pub ow: u32,
    pub oc: u32,
    pub kh: u32,
    pub kw: u32,
    pub sh: u32,
    pub sw: u32,
    pub pad_top: u32,
    pub pad_left: u32,
    pub flags: u32,
    pub act: u32,
    pub res_scale: f32,
}

impl Conv2dParams {
    /// Geometry from an NHWC input shape and an HWIO weight shape.
    pub fn new(x: &[usize], w: &[usize], stride: (usize, usize), padding: Padding) -> Result<Self, OpError> {
        const OP: &str = "conv2d";
        if x.len() != 4 || w.len() != 4 {
            return Err(OpError::Shape { op: OP, detail: format!("input {x:?} must be NHWC and weights {w:?} HWIO") });
        }
        if x[3] != w[2] {
            return Err(OpError::Shape { op: OP, detail: format!("input {x:?} has {} channels but weights {w:?} expect {}", x[3], w[2]) });
        }
        let (oh, pad_top, _) = out_size(OP, x[1], w[0], stride.0, padding, 0)?;
        let (ow, pad_left, _) = out_size(OP, x[2], w[1], stride.1, padding, 1)?;
        Ok(Self {
            n: x[0] as u32,
            h: x[1] as u32,
            w: x[2] as u32,
            c: x[3] as u32,
            oh: oh as u32,
            ow: ow as u32,
            oc: w[3] as u32,
            kh: w[0] as u32,
            kw: w[1] as u32,
            sh: stride.0 as u32,
            sw: stride.1 as u32,
            pad_top,
            pad_left,
            flags: 0,
            act: 0,
            res_scale: 1.0,
        })
    }

    pub fn out_shape(&self) -> [usize; 4] {
        [self.n as usize, self.oh as usize, self.ow as usize, self.oc as usize]
    }

    /// Multiply-adds x 2.
    pub fn flops(&self) -> f64 {
        2.0 * (self.n * self.oh * self.ow * self.oc) as f64 * (self.kh * self.kw * self.c) as f64
    }

    /// Fills `flags`, `act` and `res_scale` from an epilogue, checking operand lengths.
    pub fn with_epilogue<T>(mut self, epi: &Epilogue<T>, len: impl Fn(&T) -> usize) -> Result<Self, OpError> {
        let oc = self.oc as usize;
        let out = self.out_shape().iter().product::<usize>();
        let check = |what: &str, t: &T, want: usize| {
            if len(t) == want {
                Ok(())
            } else {
                Err(OpError::Shape { op: "conv2d", detail: format!("{what}: expected {want} elements, got {}", len(t)) })
            }
        };
        self.flags = 0;
        if let Some(b) = &epi.bias {
            check("bias", b, oc)?;
            self.flags |= flag::BIAS;
        }
        if let Some((s, t)) = &epi.affine {
            check("affine scale", s, oc)?;
            check("affine shift", t, oc)?;
            self.flags |= flag::AFFINE;
        }
        if let Some((r, s)) = &epi.residual {
            check("residual", r, out)?;
            self.flags |= flag::RESIDUAL;
            self.res_scale = *s;
        }
        self.act = match &epi.act {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Prelu(a) => {
                check("prelu alpha", a, oc)?;
                2
            }
        };
        Ok(self)
    }
}

/// `Conv2dParams::flags` bits: the epilogue's parts (conv2d.wgsl's BIAS, AFFINE and RESIDUAL constants).
pub mod flag {
    pub const BIAS: u32 = 1;
    pub const AFFINE: u32 = 2;
    pub const RESIDUAL: u32 = 4;
}
