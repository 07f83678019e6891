//! `[model]`, `[task]` and `[data] format`: which family of model is trained, for which
//! kind of target, on which kind of data.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Most classes a multi-class task may declare (each is an output unit, a row and a
/// column of the confusion matrix in the card).
pub const MAX_CLASSES: usize = 64;

/// Largest image side accepted (pixels).
pub const MAX_IMAGE_SIDE: usize = 4096;

/// The model architecture, by family. Every family ends in dense layers whose last one has
/// the task's output width ([`TaskSpec::outputs`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelSpec {
    /// A multi-layer perceptron on feature columns: `Linear → ReLU → dropout` per hidden
    /// layer, then a linear output layer.
    Mlp(MlpSpec),
    /// A convolutional network on fixed-size images: conv blocks (`Conv2d → batch norm →
    /// ReLU → max-pool`), flattened, then dense layers as an MLP.
    Cnn(CnnSpec),
}

/// `[model] kind = "mlp"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MlpSpec {
    /// Hidden layer widths, input side first.
    pub hidden: Vec<usize>,
    /// Dropout probability after each hidden layer during training (0 = none).
    #[serde(default)]
    pub dropout: f64,
}

/// `[model] kind = "cnn"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CnnSpec {
    /// The input images: every image must have exactly this size.
    pub input: ImageInput,
    /// Convolution blocks, input side first.
    pub conv: Vec<ConvBlock>,
    /// Hidden dense widths after the flattened last block (may be empty).
    #[serde(default)]
    pub hidden: Vec<usize>,
    /// Dropout probability after each hidden dense layer during training (0 = none).
    #[serde(default)]
    pub dropout: f64,
}

/// Size of the images a CNN takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageInput {
    /// 1 (grayscale) or 3 (RGB).
    pub channels: usize,
    /// Pixels.
    pub height: usize,
    /// Pixels.
    pub width: usize,
}

/// One convolution block: `Conv2d(kernel, stride, padding) → [batch norm] → ReLU →
/// [max-pool(pool)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConvBlock {
    /// Output channels.
    pub channels: usize,
    /// Square kernel side.
    pub kernel: usize,
    /// Stride (default 1).
    #[serde(default = "one")]
    pub stride: usize,
    /// Zero padding on each side (default 0). Without padding the input normalization is
    /// folded into the first convolution; with it, the per-channel statistics ship as
    /// declared aggregate tensors.
    #[serde(default)]
    pub padding: usize,
    /// Max-pool window and stride after the activation (absent or 1 = none).
    #[serde(default)]
    pub pool: Option<usize>,
    /// Batch normalization after the convolution.
    #[serde(default)]
    pub batch_norm: bool,
}

fn one() -> usize {
    1
}

impl ConvBlock {
    /// Output side for an input side `n`, or `None` when the block does not fit.
    pub fn out_side(&self, n: usize) -> Option<usize> {
        let padded = n + 2 * self.padding;
        if padded < self.kernel || self.stride == 0 {
            return None;
        }
        let conv = (padded - self.kernel) / self.stride + 1;
        match self.pool {
            Some(p) if p > 1 => (conv >= p).then(|| conv / p),
            _ => Some(conv),
        }
    }
}

impl CnnSpec {
    /// `(channels, height, width)` after each block, or the error naming the block that
    /// does not fit.
    pub fn shapes(&self) -> Result<Vec<(usize, usize, usize)>, String> {
        let i = &self.input;
        let mut cur = (i.channels, i.height, i.width);
        let mut out = Vec::with_capacity(self.conv.len());
        for (k, b) in self.conv.iter().enumerate() {
            let (Some(h), Some(w)) = (b.out_side(cur.1), b.out_side(cur.2)) else {
                return Err(format!(
                    "model.conv[{k}] (kernel {}, stride {}, padding {}, pool {:?}) does not fit its {}×{} input",
                    b.kernel, b.stride, b.padding, b.pool, cur.1, cur.2
                ));
            };
            if h == 0 || w == 0 {
                return Err(format!("model.conv[{k}] leaves no pixels"));
            }
            cur = (b.channels, h, w);
            out.push(cur);
        }
        Ok(out)
    }

    /// Width of the flattened last block: the first dense layer's input.
    pub fn flat_width(&self) -> Result<usize, String> {
        let (c, h, w) = self.shapes()?.last().copied().unwrap_or((
            self.input.channels,
            self.input.height,
            self.input.width,
        ));
        Ok(c * h * w)
    }
}

impl ModelSpec {
    /// The family's name, as in the pipeline and the card: `mlp` or `cnn`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Mlp(_) => "mlp",
            Self::Cnn(_) => "cnn",
        }
    }

    /// Hidden dense widths.
    pub fn hidden(&self) -> &[usize] {
        match self {
            Self::Mlp(m) => &m.hidden,
            Self::Cnn(c) => &c.hidden,
        }
    }

    /// Dropout after hidden dense layers.
    pub fn dropout(&self) -> f64 {
        match self {
            Self::Mlp(m) => m.dropout,
            Self::Cnn(c) => c.dropout,
        }
    }

    /// Checks the declaration on its own (sizes, counts, ranges).
    pub fn validate(&self) -> Result<(), String> {
        let dropout = self.dropout();
        if !(0.0..1.0).contains(&dropout) {
            return Err(format!("model.dropout = {dropout} must be in [0, 1)"));
        }
        if self.hidden().contains(&0) {
            return Err("model.hidden: every layer width must be above 0".into());
        }
        match self {
            Self::Mlp(m) => {
                if m.hidden.is_empty() {
                    return Err(
                        "model.hidden must list at least one layer width, each above 0".into(),
                    );
                }
            }
            Self::Cnn(c) => {
                let i = &c.input;
                if !matches!(i.channels, 1 | 3) {
                    return Err(format!(
                        "model.input.channels = {} must be 1 (grayscale) or 3 (RGB)",
                        i.channels
                    ));
                }
                if i.height == 0
                    || i.width == 0
                    || i.height > MAX_IMAGE_SIDE
                    || i.width > MAX_IMAGE_SIDE
                {
                    return Err(format!(
                        "model.input is {}×{}: each side must be 1 to {MAX_IMAGE_SIDE} pixels",
                        i.height, i.width
                    ));
                }
                if c.conv.is_empty() {
                    return Err("model.conv must list at least one convolution block".into());
                }
                for (k, b) in c.conv.iter().enumerate() {
                    if b.channels == 0 || b.kernel == 0 || b.stride == 0 {
                        return Err(format!(
                            "model.conv[{k}]: channels, kernel and stride must be at least 1"
                        ));
                    }
                    if b.channels > 4096 || b.kernel > 31 || b.padding >= b.kernel.max(1) {
                        return Err(format!(
                            "model.conv[{k}]: at most 4096 channels and a kernel of 31, and padding below the kernel"
                        ));
                    }
                }
                c.shapes()?;
            }
        }
        Ok(())
    }
}

/// `[task]`: what the label is and what the model predicts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum TaskSpec {
    /// Labels 0 and 1; one logit, a sigmoid gives the probability of 1.
    #[default]
    Binary,
    /// One of the listed classes per row (the label holds the class's name); one logit per
    /// class, a softmax gives the probabilities.
    Multiclass {
        /// Class names, in output order.
        classes: Vec<String>,
    },
    /// A real number; one output, the value itself.
    Regression,
}

impl TaskSpec {
    /// Outputs of the last layer.
    pub fn outputs(&self) -> usize {
        match self {
            Self::Binary | Self::Regression => 1,
            Self::Multiclass { classes } => classes.len(),
        }
    }

    /// `binary`, `multiclass` or `regression`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::Multiclass { .. } => "multiclass",
            Self::Regression => "regression",
        }
    }

    /// Whether this is the default task (kept out of serialized records, so that binary
    /// records read as they always did).
    pub fn is_binary(&self) -> bool {
        matches!(self, Self::Binary)
    }

    /// Checks the declaration: 2 to [`MAX_CLASSES`] distinct, well-formed class names.
    pub fn validate(&self) -> Result<(), String> {
        if let Self::Multiclass { classes } = self {
            if !(2..=MAX_CLASSES).contains(&classes.len()) {
                return Err(format!(
                    "task.classes lists {} classes: a multi-class task has 2 to {MAX_CLASSES}",
                    classes.len()
                ));
            }
            for (i, c) in classes.iter().enumerate() {
                crate::grammar::column_name(c).map_err(|e| format!("task.classes[{i}]: {e}"))?;
                if classes[..i].contains(c) {
                    return Err(format!("task.classes lists {c:?} twice"));
                }
            }
        }
        Ok(())
    }
}

/// `[data] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DataFormat {
    /// A CSV file with a header row.
    #[default]
    Csv,
    /// An Apache Parquet file (columns read by name; row groups streamed).
    Parquet,
    /// A manifest CSV (one row per image: the image's file, the label and identifier
    /// columns) beside a folder of PNG or JPEG images.
    Images,
}

impl DataFormat {
    /// Whether this is CSV (kept out of serialized records).
    pub fn is_csv(&self) -> bool {
        matches!(self, Self::Csv)
    }
}
