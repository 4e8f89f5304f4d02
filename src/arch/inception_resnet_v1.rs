//! Inception-ResNet-v1 as facenet's `models/inception_resnet_v1.py` defines it (docs/FACENET.md,
//! "Inception-ResNet-v1"): a stem, 5 x block35, Mixed_6a, 10 x block17, Mixed_7a, 5 x block8 and a final
//! Block8 without ReLU, then average pooling, dropout and the Bottleneck (fully connected + batch norm).
//!
//! [`stages`] lists everything up to the average pool in order; the head is described by the constants
//! below. Every scope is relative to [`ROOT`].

use super::{Branch, ConvLayer};
use crate::ops::conv2d::Padding::{self, Same, Valid};

/// The TF scope every variable of the network lives under.
pub const ROOT: &str = "InceptionResnetV1";
/// Channels after the last block (the average pool's output, the Bottleneck's input).
pub const FEATURES: usize = 1792;
/// Scope of the average pool over the final 3x3 map (8x8 at 299x299 input, hence the name).
pub const AVG_POOL: &str = "Logits/AvgPool_1a_8x8";
/// Scope of the fully-connected Bottleneck (weights stored `[FEATURES, embedding]`), followed by batch
/// norm without ReLU.
pub const BOTTLENECK: &str = "Bottleneck";
/// Every facenet batch norm: epsilon and moving-average decay.
pub const BN_EPS: f32 = 0.001;
pub const BN_DECAY: f32 = 0.995;
/// Kernel and stride of every max pool in the network (VALID padding).
pub const POOL: ((usize, usize), (usize, usize), Padding) = ((3, 3), (2, 2), Valid);

/// One step of the network.
#[derive(Debug, Clone)]
pub enum Stage {
    /// A conv of the stem, at `ROOT/<name>`.
    Conv(ConvLayer),
    /// A 3x3/2 VALID max pool at `ROOT/<name>`.
    MaxPool(&'static str),
    /// A residual block at `ROOT/<scope>`: its branches, concatenated, go through a 1x1 conv with bias at
    /// `<scope>/Conv2d_1x1` back to the input's channels; the output is `x + scale * up`, then ReLU
    /// where `relu`.
    Residual { scope: String, branches: &'static [Branch], scale: f32, relu: bool },
    /// A reduction block at `ROOT/<scope>`: its branches and a 3x3/2 VALID max pool of the input
    /// (`<scope>/MaxPool_1a_3x3`), concatenated in that order.
    Reduction { scope: &'static str, branches: &'static [Branch] },
}

impl Stage {
    /// The scope naming this stage's output (facenet's end-point name).
    pub fn name(&self) -> &str {
        match self {
            Stage::Conv(c) => c.name,
            Stage::MaxPool(name) => name,
            Stage::Residual { scope, .. } => scope,
            Stage::Reduction { scope, .. } => scope,
        }
    }

    /// Output channels for `cin` input channels.
    pub fn out_channels(&self, cin: usize) -> usize {
        match self {
            Stage::Conv(c) => c.cout,
            Stage::MaxPool(_) | Stage::Residual { .. } => cin,
            Stage::Reduction { branches, .. } => branches.iter().map(Branch::out_channels).sum::<usize>() + cin,
        }
    }

    /// Whether this stage's output is one of the activations facenet's tests tap ([`TAPS`]).
    pub fn tapped(&self) -> bool {
        TAPS.contains(&self.name())
    }
}

/// The end points `--dump-activations` writes and the parity tests compare with TensorFlow's, in order;
/// the last, `prelogits`, is the Bottleneck's output before L2 normalization.
pub const TAPS: [&str; 7] = ["Conv2d_1a_3x3", "Conv2d_4b_3x3", "Repeat/block35_5", "Mixed_6a", "Mixed_7a", "Block8", "prelogits"];

const fn conv(name: &'static str, k: (usize, usize), cout: usize, stride: usize, padding: Padding) -> ConvLayer {
    ConvLayer { name, k, cout, stride, padding }
}

const STEM_A: [ConvLayer; 3] =
    [conv("Conv2d_1a_3x3", (3, 3), 32, 2, Valid), conv("Conv2d_2a_3x3", (3, 3), 32, 1, Valid), conv("Conv2d_2b_3x3", (3, 3), 64, 1, Same)];
const STEM_B: [ConvLayer; 3] = [
    conv("Conv2d_3b_1x1", (1, 1), 80, 1, Valid),
    conv("Conv2d_4a_3x3", (3, 3), 192, 1, Valid),
    conv("Conv2d_4b_3x3", (3, 3), 256, 2, Valid),
];

/// block35 (35x35 at 299 input): 256 channels, scale 0.17.
const BLOCK35: &[Branch] = &[
    Branch { scope: "Branch_0", convs: &[conv("Conv2d_1x1", (1, 1), 32, 1, Same)] },
    Branch { scope: "Branch_1", convs: &[conv("Conv2d_0a_1x1", (1, 1), 32, 1, Same), conv("Conv2d_0b_3x3", (3, 3), 32, 1, Same)] },
    Branch {
        scope: "Branch_2",
        convs: &[
            conv("Conv2d_0a_1x1", (1, 1), 32, 1, Same),
            conv("Conv2d_0b_3x3", (3, 3), 32, 1, Same),
            conv("Conv2d_0c_3x3", (3, 3), 32, 1, Same),
        ],
    },
];

/// Mixed_6a: 256 -> 384 + 256 + 256 (pool) = 896 channels.
const MIXED_6A: &[Branch] = &[
    Branch { scope: "Branch_0", convs: &[conv("Conv2d_1a_3x3", (3, 3), 384, 2, Valid)] },
    Branch {
        scope: "Branch_1",
        convs: &[
            conv("Conv2d_0a_1x1", (1, 1), 192, 1, Same),
            conv("Conv2d_0b_3x3", (3, 3), 192, 1, Same),
            conv("Conv2d_1a_3x3", (3, 3), 256, 2, Valid),
        ],
    },
];

/// block17 (17x17 at 299 input): 896 channels, scale 0.10.
const BLOCK17: &[Branch] = &[
    Branch { scope: "Branch_0", convs: &[conv("Conv2d_1x1", (1, 1), 128, 1, Same)] },
    Branch {
        scope: "Branch_1",
        convs: &[
            conv("Conv2d_0a_1x1", (1, 1), 128, 1, Same),
            conv("Conv2d_0b_1x7", (1, 7), 128, 1, Same),
            conv("Conv2d_0c_7x1", (7, 1), 128, 1, Same),
        ],
    },
];

/// Mixed_7a: 896 -> 384 + 256 + 256 + 896 (pool) = 1792 channels.
const MIXED_7A: &[Branch] = &[
    Branch { scope: "Branch_0", convs: &[conv("Conv2d_0a_1x1", (1, 1), 256, 1, Same), conv("Conv2d_1a_3x3", (3, 3), 384, 2, Valid)] },
    Branch { scope: "Branch_1", convs: &[conv("Conv2d_0a_1x1", (1, 1), 256, 1, Same), conv("Conv2d_1a_3x3", (3, 3), 256, 2, Valid)] },
    Branch {
        scope: "Branch_2",
        convs: &[
            conv("Conv2d_0a_1x1", (1, 1), 256, 1, Same),
            conv("Conv2d_0b_3x3", (3, 3), 256, 1, Same),
            conv("Conv2d_1a_3x3", (3, 3), 256, 2, Valid),
        ],
    },
];

/// block8 (8x8 at 299 input): 1792 channels, scale 0.20; the final Block8 has scale 1 and no ReLU.
const BLOCK8: &[Branch] = &[
    Branch { scope: "Branch_0", convs: &[conv("Conv2d_1x1", (1, 1), 192, 1, Same)] },
    Branch {
        scope: "Branch_1",
        convs: &[
            conv("Conv2d_0a_1x1", (1, 1), 192, 1, Same),
            conv("Conv2d_0b_1x3", (1, 3), 192, 1, Same),
            conv("Conv2d_0c_3x1", (3, 1), 192, 1, Same),
        ],
    },
];

/// The network from the RGB input to the last block, in order.
pub fn stages() -> Vec<Stage> {
    let residual = |scope: String, branches, scale, relu| Stage::Residual { scope, branches, scale, relu };
    let mut s: Vec<Stage> = STEM_A.iter().map(|&c| Stage::Conv(c)).collect();
    s.push(Stage::MaxPool("MaxPool_3a_3x3"));
    s.extend(STEM_B.iter().map(|&c| Stage::Conv(c)));
    s.extend((1..=5).map(|i| residual(format!("Repeat/block35_{i}"), BLOCK35, 0.17, true)));
    s.push(Stage::Reduction { scope: "Mixed_6a", branches: MIXED_6A });
    s.extend((1..=10).map(|i| residual(format!("Repeat_1/block17_{i}"), BLOCK17, 0.10, true)));
    s.push(Stage::Reduction { scope: "Mixed_7a", branches: MIXED_7A });
    s.extend((1..=5).map(|i| residual(format!("Repeat_2/block8_{i}"), BLOCK8, 0.20, true)));
    s.push(residual("Block8".into(), BLOCK8, 1.0, false));
    s
}
