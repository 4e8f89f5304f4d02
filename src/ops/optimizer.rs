use std::fmt;
use std::str::FromStr;

/// facenet's `--optimizer` choices (plus plain SGD, TF's GradientDescentOptimizer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum OptimizerKind {
    Adagrad,
    Adadelta,
    Adam,
    RmsProp,
    Momentum,
    Sgd,
}

impl OptimizerKind {
    pub const ALL: [OptimizerKind; 6] = [Self::Adagrad, Self::Adadelta, Self::Adam, Self::RmsProp, Self::Momentum, Self::Sgd];

    /// facenet's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Self::Adagrad => "ADAGRAD",
            Self::Adadelta => "ADADELTA",
            Self::Adam => "ADAM",
            Self::RmsProp => "RMSPROP",
            Self::Momentum => "MOM",
            Self::Sgd => "SGD",
        }
    }

    pub fn entry(self) -> &'static str {
        match self {
            Self::Adagrad => "adagrad",
            Self::Adadelta => "adadelta",
            Self::Adam => "adam",
            Self::RmsProp => "rmsprop",
            Self::Momentum => "momentum",
            Self::Sgd => "sgd",
        }
    }

    /// Initial values of the two slots (TF: Adagrad's accumulator 0.1, RMSProp's mean square 1).
    pub fn slot_init(self) -> (f32, f32) {
        match self {
            Self::Adagrad => (0.1, 0.0),
            Self::RmsProp => (1.0, 0.0),
            _ => (0.0, 0.0),
        }
    }

    /// How many slots the update reads (0, 1 or 2).
    pub fn slots(self) -> usize {
        match self {
            Self::Sgd => 0,
            Self::Adagrad | Self::Momentum => 1,
            Self::Adadelta | Self::Adam | Self::RmsProp => 2,
        }
    }

    /// The uniform of step `step` (1-based, for Adam's bias correction).
    pub fn params(self, n: usize, lr: f32, step: u64) -> OptimizerParams {
        let (lr, a, b, eps) = match self {
            Self::Adagrad | Self::Sgd => (lr, 0.0, 0.0, 0.0),
            Self::Adadelta => (lr, 0.9, 0.0, 1e-6),
            Self::Adam => {
                let t = step.max(1) as i32;
                let lr_t = lr as f64 * (1.0 - 0.999f64.powi(t)).sqrt() / (1.0 - 0.9f64.powi(t));
                (lr_t as f32, 0.9, 0.999, 0.1)
            }
            Self::RmsProp => (lr, 0.9, 0.9, 1.0),
            Self::Momentum => (lr, 0.9, 0.0, 0.0),
        };
        OptimizerParams { n: n as u32, lr, a, b, eps, _pad: [0; 3] }
    }
}

impl fmt::Display for OptimizerKind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for OptimizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown optimizer '{s}': expected ADAGRAD, ADADELTA, ADAM, RMSPROP, MOM or SGD"))
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct OptimizerParams {
    pub n: u32,
    pub lr: f32,
    pub a: f32,
    pub b: f32,
    pub eps: f32,
    pub _pad: [u32; 3],
}
