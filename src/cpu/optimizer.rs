//! CPU twin of `kernels::optimizer`: the same updates element by element.

use crate::ops::optimizer::OptimizerKind;

/// One update of `w` from `g` (zeroed afterwards); `s1`, `s2` are the slots (ignored when unused).
pub fn update(kind: OptimizerKind, w: &mut [f32], g: &mut [f32], s1: &mut [f32], s2: &mut [f32], lr: f32, step: u64) {
    let p = kind.params(w.len(), lr, step);
    for i in 0..w.len() {
        let d = g[i];
        g[i] = 0.0;
        match kind {
            OptimizerKind::Adagrad => {
                s1[i] += d * d;
                w[i] -= p.lr * d / s1[i].sqrt();
            }
            OptimizerKind::Adadelta => {
                s1[i] = p.a * s1[i] + (1.0 - p.a) * d * d;
                let u = (s2[i] + p.eps).sqrt() / (s1[i] + p.eps).sqrt() * d;
                s2[i] = p.a * s2[i] + (1.0 - p.a) * u * u;
                w[i] -= p.lr * u;
            }
            OptimizerKind::Adam => {
                s1[i] += (d - s1[i]) * (1.0 - p.a);
                s2[i] += (d * d - s2[i]) * (1.0 - p.b);
                w[i] -= p.lr * s1[i] / (s2[i].sqrt() + p.eps);
            }
            OptimizerKind::RmsProp => {
                s1[i] += (d * d - s1[i]) * (1.0 - p.a);
                s2[i] = p.b * s2[i] + p.lr * d / (s1[i] + p.eps).sqrt();
                w[i] -= s2[i];
            }
            OptimizerKind::Momentum => {
                s1[i] = p.a * s1[i] + d;
                w[i] -= p.lr * (d + p.a * s1[i]);
            }
            OptimizerKind::Sgd => w[i] -= p.lr * d,
        }
    }
}

/// `shadow -= (1 - decay) * (shadow - w)`.
pub fn ema(shadow: &mut [f32], w: &[f32], decay: f32) {
    shadow.iter_mut().zip(w).for_each(|(s, &v)| *s -= (1.0 - decay) * (*s - v));
}
