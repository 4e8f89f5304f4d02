use crate::checkpoint::{CheckpointError, Weights};
use crate::gpu::Arena;
use crate::gpu::{Encoder, GpuContext, GpuError, GpuTensor};
use crate::kernels::conv2d::{conv2d_into, out_size, Activation, Epilogue, Padding};

/// What follows the convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKind {
    /// Batch norm without gamma (folded into a per-channel affine), then ReLU.
    BnRelu,
    /// Batch norm without gamma, no activation (the Bottleneck).
    BnLinear,
    /// Bias, no batch norm (the residual up-projections).
    Bias,
}

/// One conv layer on the GPU, named by its TF scope.
pub struct Conv {
    pub name: String,
    pub w: GpuTensor,
    /// (scale, shift) of the folded batch norm.
    pub affine: Option<(GpuTensor, GpuTensor)>,
    pub bias: Option<GpuTensor>,
    pub stride: usize,
    pub padding: Padding,
    pub kind: ConvKind,
}

/// A TF variable scope over loaded weights: `scope.sub("Repeat/block35_1").conv(...)` reads
/// `<prefix>/Repeat/block35_1/<name>/weights`, so a missing tensor's error names the exact variable.
pub struct Scope<'a> {
    pub ctx: &'a GpuContext,
    pub weights: &'a Weights,
    pub prefix: String,
}

impl<'a> Scope<'a> {
    pub fn sub(&self, name: &str) -> Scope<'a> {
        Scope { ctx: self.ctx, weights: self.weights, prefix: format!("{}/{name}", self.prefix) }
    }

    fn upload(&self, name: &str, shape: &[usize], data: &[f32]) -> Result<GpuTensor, CheckpointError> {
        GpuTensor::upload(self.ctx, name, shape, data).map_err(|e| CheckpointError::BadTensor {
            path: self.weights.source.clone(),
            tensor: name.into(),
            detail: e.to_string(),
        })
    }

    /// Loads `<prefix>/<name>` as a `kh x kw`, `cin -> cout` conv of the given kind.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(
        &self,
        name: &str,
        k: (usize, usize),
        cin: usize,
        cout: usize,
        stride: usize,
        padding: Padding,
        kind: ConvKind,
    ) -> Result<Conv, CheckpointError> {
        let full = format!("{}/{name}", self.prefix);
        let host = HostConv::read(self.weights, &full, k, cin, cout, kind)?;
        let wname = format!("{full}/weights");
        // f16 inference (GpuContext::f16): the weights in f16 make the conv compute in f16.
        let w = if self.ctx.f16() {
            GpuTensor::upload_f16(self.ctx, &wname, &[k.0, k.1, cin, cout], &host.w).map_err(|e| CheckpointError::BadTensor {
                path: self.weights.source.clone(),
                tensor: wname.clone(),
                detail: e.to_string(),
            })?
        } else {
            self.upload(&wname, &[k.0, k.1, cin, cout], &host.w)?
        };
        let affine = match &host.affine {
            Some((scale, shift)) => Some((
                self.upload(&format!("{full}/BatchNorm scale"), &[cout], scale)?,
                self.upload(&format!("{full}/BatchNorm shift"), &[cout], shift)?,
            )),
            None => None,
        };
        let bias = match &host.bias {
            Some(b) => Some(self.upload(&format!("{full}/biases"), &[cout], b)?),
            None => None,
        };
        Ok(Conv { name: full, w, affine, bias, stride, padding, kind })
    }
}

/// A conv layer's weights as read from a checkpoint, on the host: HWIO weights, the folded batch norm's
/// per-channel `(scale, shift)` applied after the conv, or a bias. Both backends build from it.
#[derive(Debug, Clone)]
pub struct HostConv {
    pub w: Vec<f32>,
    pub affine: Option<(Vec<f32>, Vec<f32>)>,
    pub bias: Option<Vec<f32>>,
}

impl HostConv {
    /// Reads `<full>/weights` and what follows it for `kind`; the error names the missing or mis-shaped
    /// variable.
    pub fn read(
        weights: &Weights,
        full: &str,
        k: (usize, usize),
        cin: usize,
        cout: usize,
        kind: ConvKind,
    ) -> Result<Self, CheckpointError> {
        let wname = format!("{full}/weights");
        // The Bottleneck's weights are stored (in, out); view them as a 1x1 conv.
        let w =
            if kind == ConvKind::BnLinear { weights.get(&wname, &[cin, cout])? } else { weights.get(&wname, &[k.0, k.1, cin, cout])? };
        let w = w.data.clone();
        let offset = format!("{full}/Conv2D_bn_offset");
        Ok(match kind {
            ConvKind::Bias => Self { w, affine: None, bias: Some(weights.get(&format!("{full}/biases"), &[cout])?.data.clone()) },
            // A frozen graph with its batch norms folded: the weights are scaled, the shift is a bias.
            ConvKind::BnRelu if weights.tensors.contains_key(&offset) => {
                let shift = weights.get(&offset, &[cout])?.data.clone();
                Self { w, affine: Some((vec![1.0; cout], shift)), bias: None }
            }
            ConvKind::BnRelu | ConvKind::BnLinear => {
                let beta = weights.get(&format!("{full}/BatchNorm/beta"), &[cout])?;
                let mean = weights.get(&format!("{full}/BatchNorm/moving_mean"), &[cout])?;
                let var = weights.get(&format!("{full}/BatchNorm/moving_variance"), &[cout])?;
                let scale: Vec<f32> = var.data.iter().map(|v| 1.0 / (v + crate::arch::inception_resnet_v1::BN_EPS).sqrt()).collect();
                let shift: Vec<f32> = (0..cout).map(|c| beta.data[c] - mean.data[c] * scale[c]).collect();
                Self { w, affine: Some((scale, shift)), bias: None }
            }
        })
    }

    /// The weights with the affine's scale folded in, and the bias the conv then adds (the affine's
    /// shift, or the conv's own bias): `conv(x, w') + b == conv(x, w) * scale + shift` up to rounding.
    pub fn folded(&self) -> (Vec<f32>, Vec<f32>) {
        match (&self.affine, &self.bias) {
            (Some((scale, shift)), _) => {
                let cout = scale.len();
                let w = self.w.iter().enumerate().map(|(i, v)| v * scale[i % cout]).collect();
                (w, shift.clone())
            }
            (None, Some(b)) => (self.w.clone(), b.clone()),
            (None, None) => (self.w.clone(), Vec::new()),
        }
    }
}

impl Conv {
    pub fn out_channels(&self) -> usize {
        self.w.shape[3]
    }

    /// Output NHWC shape for an input shape.
    pub fn out_shape(&self, x: &[usize]) -> Result<[usize; 4], GpuError> {
        let (oh, _, _) = out_size("conv2d", x[1], self.w.shape[0], self.stride, self.padding, 0)?;
        let (ow, _, _) = out_size("conv2d", x[2], self.w.shape[1], self.stride, self.padding, 1)?;
        Ok([x[0], oh, ow, self.out_channels()])
    }

    /// Records this layer; `residual` = (x, scale) gives `act(x + scale * conv)`, with ReLU when `relu`.
    pub fn forward(
        &self,
        enc: &mut Encoder,
        arena: &mut Arena,
        x: &GpuTensor,
        residual: Option<(&GpuTensor, f32)>,
        relu: bool,
    ) -> Result<GpuTensor, GpuError> {
        let y = arena.take(enc.ctx(), &self.name, &self.out_shape(&x.shape)?);
        self.forward_into(enc, x, residual, relu, &y, 0)?;
        Ok(y)
    }

    /// Like `forward`, writing channels `[y_off, y_off + out_channels)` of `y` (a concatenation's part).
    pub fn forward_into(
        &self,
        enc: &mut Encoder,
        x: &GpuTensor,
        residual: Option<(&GpuTensor, f32)>,
        relu: bool,
        y: &GpuTensor,
        y_off: usize,
    ) -> Result<(), GpuError> {
        let act = if self.kind == ConvKind::BnRelu || relu { Activation::Relu } else { Activation::None };
        let epi = Epilogue { bias: self.bias.as_ref(), affine: self.affine.as_ref().map(|(s, t)| (s, t)), residual, act };
        conv2d_into(enc, x, &self.w, &epi, y, y_off, (self.stride, self.stride), self.padding)?;
        Ok(())
    }
}
