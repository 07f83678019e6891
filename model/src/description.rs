//! The model description: for any family and task, which tensors training keeps, which
//! ship, and the exact transformations between the two (folding). Stripping, L0, the model
//! card, serving and the packager's checks all work from it, never from one family's code.

use airlock_schemas::{ConvBlock, ImageInput, ModelSpec, TaskSpec};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::Preprocess;

/// What a declared tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A trained parameter.
    Parameter,
    /// An aggregate statistic of the training data (batch-norm running moments, a CNN's
    /// per-channel input normalization): declared, named in the leak report, never a row.
    Aggregate,
}

/// A declared tensor: name, shape (PyTorch layouts) and role. Every tensor is F32.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorDecl {
    /// Name in the checkpoint or the released model.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Parameter or aggregate.
    pub role: Role,
}

impl TensorDecl {
    fn new(name: String, shape: Vec<usize>, role: Role) -> Self {
        Self { name, shape, role }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A model's tensors on the host, in the order of a description's declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// `(declaration, row-major values)`.
    pub tensors: Vec<(TensorDecl, Vec<f32>)>,
}

impl Params {
    /// The values of tensor `name`.
    pub fn get(&self, name: &str) -> Option<&[f32]> {
        self.tensors
            .iter()
            .find(|(d, _)| d.name == name)
            .map(|(_, v)| v.as_slice())
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Vec<f32>> {
        self.tensors
            .iter_mut()
            .find(|(d, _)| d.name == name)
            .map(|(_, v)| v)
    }

    /// The tensors as borrowed F32 tensors, for [`airlock_safetensors::write_canonical_refs`]
    /// (a file written without a second copy of the values).
    pub fn to_tensor_refs(&self) -> Vec<airlock_safetensors::TensorRef<'_>> {
        self.tensors
            .iter()
            .map(|(d, v)| airlock_safetensors::TensorRef {
                name: &d.name,
                dtype: airlock_safetensors::Dtype::F32,
                shape: &d.shape,
                data: airlock_safetensors::TensorBytes::F32(v),
            })
            .collect()
    }

    /// Values count.
    pub fn values(&self) -> usize {
        self.tensors.iter().map(|(_, v)| v.len()).sum()
    }
}

/// What the model takes per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// Feature columns.
    Features(usize),
    /// Images.
    Image(ImageInput),
}

/// Why trained tensors cannot be turned into released ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    /// The statistics do not fit the model's input.
    #[error("preprocess.json has {stats} input statistics but the model takes {inputs}")]
    Width {
        /// Statistics present.
        stats: usize,
        /// Inputs of the model.
        inputs: usize,
    },
    /// A standard deviation or variance is zero, negative or not finite.
    #[error("{what} has an unusable standard deviation or variance at {index}")]
    BadStd {
        /// Which statistics.
        what: String,
        /// 0-based index.
        index: usize,
    },
    /// A regression run lacks its target's statistics.
    #[error("preprocess.json has no target statistics, which a regression needs")]
    NoTarget,
    /// A declared tensor is missing.
    #[error("tensor {0:?} is missing")]
    Missing(String),
}

impl FoldError {
    /// What kind of failure this is: always bad input (the run's files do not fit).
    pub fn kind(&self) -> airlock_schemas::ErrorKind {
        airlock_schemas::ErrorKind::BadInput
    }
}

/// Batch normalization's epsilon (burn's and PyTorch's default).
pub const BATCH_NORM_EPSILON: f64 = 1e-5;

/// A model of any family for a task: see the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Description {
    /// The declared architecture.
    pub model: ModelSpec,
    /// The task.
    pub task: TaskSpec,
    /// What one row is.
    pub input: InputKind,
}

impl Description {
    /// The description of `model` for `task` on `features` feature columns (ignored for
    /// images). Fails when the declaration does not fit (see [`ModelSpec::validate`]).
    pub fn new(model: &ModelSpec, task: &TaskSpec, features: usize) -> Result<Self, String> {
        model.validate()?;
        task.validate()?;
        let input = match model {
            ModelSpec::Mlp(_) => {
                if features == 0 {
                    return Err("an MLP needs at least one feature".into());
                }
                InputKind::Features(features)
            }
            ModelSpec::Cnn(c) => InputKind::Image(c.input),
        };
        Ok(Self {
            model: model.clone(),
            task: task.clone(),
            input,
        })
    }

    /// Values per row: features, or channels × height × width.
    pub fn input_len(&self) -> usize {
        match self.input {
            InputKind::Features(n) => n,
            InputKind::Image(i) => i.channels * i.height * i.width,
        }
    }

    /// Outputs of the last layer.
    pub fn outputs(&self) -> usize {
        self.task.outputs()
    }

    /// The convolution blocks (empty for an MLP).
    pub fn conv(&self) -> &[ConvBlock] {
        match &self.model {
            ModelSpec::Mlp(_) => &[],
            ModelSpec::Cnn(c) => &c.conv,
        }
    }

    /// Widths of the dense layers, from their input (features, or the flattened last
    /// block) to the output.
    pub fn dense_widths(&self) -> Vec<usize> {
        let first = match &self.model {
            ModelSpec::Mlp(_) => self.input_len(),
            // Validated in `new`.
            ModelSpec::Cnn(c) => c.flat_width().unwrap_or(0),
        };
        let mut w = vec![first];
        w.extend(self.model.hidden());
        w.push(self.outputs());
        w
    }

    /// Zeroes, in a fold's released tensors, the incoming weights and bias of every hidden unit
    /// (dense) and channel (convolution) whose outgoing weights are all zero, and returns
    /// how many each layer had, by the name of the layer's weight.
    ///
    /// Such a unit cannot change any output, so whatever its incoming weights hold would
    /// ship for nothing, out of reach of the fold check and of membership inference (an
    /// edited checkpoint can hide a whole record there, XORed). Zeroing it leaves every
    /// output as it was. Layers are visited from the output back, so a unit whose only
    /// consumers were zeroed is caught too. The trained values of a tensor it changes are
    /// kept in `trained_rest` first, so the fold check still compares against the model as
    /// trained.
    pub fn zero_dead_units(&self, folded: &mut Folded) -> Vec<(String, usize)> {
        let Folded {
            released,
            trained_rest,
        } = folded;
        let widths = self.dense_widths();
        let dense = widths.len() - 1;
        let mut counts = Vec::new();
        // Hidden dense units: unit j of layer i feeds column j of layer i + 1.
        for i in (0..dense.saturating_sub(1)).rev() {
            let next = format!("layers.{}.weight", i + 1);
            let dead = dead_columns(released.get(&next), widths[i + 1], 1);
            let prefix = format!("layers.{i}");
            let n = zero_rows(released, trained_rest, &prefix, widths[i], &dead);
            counts.push((format!("{prefix}.weight"), n));
        }
        // Convolution channels: channel c of the last block feeds its H·W columns of the
        // first dense layer; channel c of block k feeds input channel c of block k + 1.
        let blocks = self.conv();
        let inputs = self.conv_inputs();
        for k in (0..blocks.len()).rev() {
            let b = &blocks[k];
            let dead = match blocks.get(k + 1) {
                None => {
                    let plane = widths[0] / b.channels.max(1);
                    dead_columns(released.get("layers.0.weight"), widths[0], plane)
                }
                Some(next) => dead_input_channels(
                    released.get(&format!("conv.{}.weight", k + 1)),
                    b.channels,
                    next.kernel * next.kernel,
                ),
            };
            let fan_in = inputs[k] * b.kernel * b.kernel;
            let prefix = format!("conv.{k}");
            let n = zero_rows(released, trained_rest, &prefix, fan_in, &dead);
            counts.push((format!("{prefix}.weight"), n));
        }
        counts
    }

    /// Input channels of each convolution block.
    fn conv_inputs(&self) -> Vec<usize> {
        let InputKind::Image(i) = self.input else {
            return Vec::new();
        };
        let mut c = i.channels;
        self.conv()
            .iter()
            .map(|b| std::mem::replace(&mut c, b.channels))
            .collect()
    }

    /// Whether the input normalization can be folded into the first layer exactly: always
    /// for an MLP; for a CNN only without zero padding in the first block (a padded border
    /// would be "normalized zero" in training but raw zero after folding).
    pub fn folds_input(&self) -> bool {
        self.conv().first().is_none_or(|b| b.padding == 0)
    }

    /// Every tensor training keeps (the checkpoint's model tensors), in order.
    pub fn trained(&self) -> Vec<TensorDecl> {
        let mut out = Vec::new();
        for (k, (b, c_in)) in self.conv().iter().zip(self.conv_inputs()).enumerate() {
            out.push(TensorDecl::new(
                format!("conv.{k}.weight"),
                vec![b.channels, c_in, b.kernel, b.kernel],
                Role::Parameter,
            ));
            out.push(TensorDecl::new(
                format!("conv.{k}.bias"),
                vec![b.channels],
                Role::Parameter,
            ));
            if b.batch_norm {
                for (part, role) in [
                    ("gamma", Role::Parameter),
                    ("beta", Role::Parameter),
                    ("running_mean", Role::Aggregate),
                    ("running_var", Role::Aggregate),
                ] {
                    out.push(TensorDecl::new(
                        format!("conv.{k}.norm.{part}"),
                        vec![b.channels],
                        role,
                    ));
                }
            }
        }
        out.extend(self.dense_decls());
        out
    }

    fn dense_decls(&self) -> Vec<TensorDecl> {
        self.dense_widths()
            .windows(2)
            .enumerate()
            .flat_map(|(i, w)| {
                [
                    TensorDecl::new(
                        format!("layers.{i}.weight"),
                        vec![w[1], w[0]],
                        Role::Parameter,
                    ),
                    TensorDecl::new(format!("layers.{i}.bias"), vec![w[1]], Role::Parameter),
                ]
            })
            .collect()
    }

    /// Every tensor a release ships, in order: batch normalization is folded into its
    /// convolution, the input normalization into the first layer where that is exact
    /// (else `input.mean` and `input.std` ship as declared aggregates), a regression's
    /// target scale into the last layer.
    pub fn released(&self) -> Vec<TensorDecl> {
        let mut out = Vec::new();
        if let InputKind::Image(i) = self.input
            && !self.folds_input()
        {
            for part in ["mean", "std"] {
                out.push(TensorDecl::new(
                    format!("input.{part}"),
                    vec![i.channels],
                    Role::Aggregate,
                ));
            }
        }
        out.extend(
            self.trained()
                .into_iter()
                .filter(|d| !d.name.contains(".norm.")),
        );
        out
    }

    /// Whether the released model normalizes its input itself (`input.mean`, `input.std`).
    pub fn releases_input_normalization(&self) -> bool {
        matches!(self.input, InputKind::Image(_)) && !self.folds_input()
    }

    /// Initial parameters drawn from `rng` (PyTorch's defaults: `U(-1/√fan_in,
    /// 1/√fan_in)` for convolution and linear weights and biases; batch norm γ = 1, β = 0,
    /// running mean 0 and variance 1), so a run depends on its seed alone.
    pub fn init(&self, rng: &mut ChaCha8Rng) -> Params {
        let tensors = self
            .trained()
            .into_iter()
            .map(|d| {
                let n = d.len();
                let values = if d.name.ends_with(".norm.gamma") || d.name.ends_with("running_var") {
                    vec![1.0; n]
                } else if d.name.contains(".norm.") {
                    vec![0.0; n]
                } else {
                    let fan_in = self.fan_in(&d.name);
                    let k = 1.0 / (fan_in as f32).sqrt();
                    (0..n).map(|_| rng.random_range(-k..k)).collect()
                };
                (d, values)
            })
            .collect();
        Params { tensors }
    }

    /// Inputs feeding one output unit of the layer that tensor `name` belongs to.
    fn fan_in(&self, name: &str) -> usize {
        let decls = self.trained();
        let weight = name.replace(".bias", ".weight");
        decls
            .iter()
            .find(|d| d.name == weight)
            .map_or(1, |d| d.shape[1..].iter().product::<usize>().max(1))
    }

    /// The released tensors from trained ones and the run's statistics (see
    /// [`Description::released`]). Computed in f64, stored as f32.
    pub fn fold(&self, trained: &Params, pre: &Preprocess) -> Result<Params, FoldError> {
        self.fold_owned(trained.clone(), pre).map(|f| f.released)
    }

    /// [`Self::fold`] without copying the trained tensors: the released ones are moved out
    /// of them, and what differs of the trained model is kept beside (see [`Folded`]). A
    /// gigabyte model folds without a second gigabyte.
    pub fn fold_owned(&self, trained: Params, pre: &Preprocess) -> Result<Folded, FoldError> {
        let mut p = Folding {
            p: trained,
            originals: Vec::new(),
        };
        self.fold_batch_norm(&mut p)?;
        let released = self.released();
        let mut extra = Vec::new();
        match self.input {
            InputKind::Features(n) => {
                check_stats(pre, n)?;
                fold_input(&mut p, "layers.0", pre, 1)?;
            }
            InputKind::Image(i) => {
                check_stats(pre, i.channels)?;
                if self.folds_input() {
                    let k = self.conv().first().map_or(1, |b| b.kernel * b.kernel);
                    fold_input(&mut p, "conv.0", pre, k)?;
                } else {
                    let mean = pre.features.iter().map(|f| f.mean as f32).collect();
                    let std = pre.features.iter().map(|f| f.std as f32).collect();
                    extra = vec![mean, std];
                }
            }
        }
        if matches!(self.task, TaskSpec::Regression) {
            let t = pre.target.as_ref().ok_or(FoldError::NoTarget)?;
            if !(t.std.is_finite() && t.std > 0.0 && t.mean.is_finite()) {
                return Err(FoldError::BadStd {
                    what: "the regression target".into(),
                    index: 0,
                });
            }
            let last = self.dense_widths().len() - 2;
            for (part, shift) in [("weight", 0.0), ("bias", t.mean)] {
                let name = format!("layers.{last}.{part}");
                let v = p.get_mut(&name).ok_or(FoldError::Missing(name))?;
                for x in v.iter_mut() {
                    *x = (f64::from(*x) * t.std + shift) as f32;
                }
            }
        }
        let mut extra = extra.into_iter();
        let Folding { p, originals } = p;
        let mut left: Vec<(TensorDecl, Option<Vec<f32>>)> =
            p.tensors.into_iter().map(|(d, v)| (d, Some(v))).collect();
        let tensors = released
            .into_iter()
            .map(|d| {
                let v = match d.role {
                    Role::Aggregate => extra.next(),
                    // Moved out of the trained tensors, not copied.
                    Role::Parameter => left
                        .iter_mut()
                        .find(|(t, _)| t.name == d.name)
                        .and_then(|(_, v)| v.take()),
                };
                v.map(|v| (d.clone(), v)).ok_or(FoldError::Missing(d.name))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The trained tensors that differ from the released ones: those folding changed
        // (their values before), and those that are not released at all.
        let mut trained_rest = originals;
        trained_rest.extend(left.into_iter().filter_map(|(d, v)| v.map(|v| (d, v))));
        Ok(Folded {
            released: Params { tensors },
            trained_rest: Params {
                tensors: trained_rest,
            },
        })
    }

    /// Batch norm (inference form: `γ (x − μ) / √(σ² + ε) + β`, per channel) folded into
    /// the convolution before it.
    fn fold_batch_norm(&self, p: &mut Folding) -> Result<(), FoldError> {
        for (k, b) in self.conv().iter().enumerate() {
            if !b.batch_norm {
                continue;
            }
            let get = |part: &str| {
                let name = format!("conv.{k}.norm.{part}");
                p.get(&name)
                    .map(<[f32]>::to_vec)
                    .ok_or(FoldError::Missing(name))
            };
            let (gamma, beta, mean, var) = (
                get("gamma")?,
                get("beta")?,
                get("running_mean")?,
                get("running_var")?,
            );
            let scale: Vec<f64> = gamma
                .iter()
                .zip(&var)
                .enumerate()
                .map(|(c, (&g, &v))| {
                    let v = f64::from(v);
                    if v.is_finite() && v >= 0.0 {
                        Ok(f64::from(g) / (v + BATCH_NORM_EPSILON).sqrt())
                    } else {
                        Err(FoldError::BadStd {
                            what: format!("conv.{k}.norm.running_var"),
                            index: c,
                        })
                    }
                })
                .collect::<Result<_, _>>()?;
            let wname = format!("conv.{k}.weight");
            let w = p.get_mut(&wname).ok_or(FoldError::Missing(wname))?;
            let per = w.len() / scale.len().max(1);
            for (c, chunk) in w.chunks_mut(per.max(1)).enumerate() {
                for x in chunk {
                    *x = (f64::from(*x) * scale[c]) as f32;
                }
            }
            let bname = format!("conv.{k}.bias");
            let bias = p.get_mut(&bname).ok_or(FoldError::Missing(bname))?;
            for (c, x) in bias.iter_mut().enumerate() {
                *x = ((f64::from(*x) - f64::from(mean[c])) * scale[c] + f64::from(beta[c])) as f32;
            }
        }
        Ok(())
    }
}

fn check_stats(pre: &Preprocess, inputs: usize) -> Result<(), FoldError> {
    if pre.features.len() != inputs {
        return Err(FoldError::Width {
            stats: pre.features.len(),
            inputs,
        });
    }
    if let Some(index) = pre
        .features
        .iter()
        .position(|f| !(f.std.is_finite() && f.std > 0.0 && f.mean.is_finite()))
    {
        return Err(FoldError::BadStd {
            what: "preprocess.json".into(),
            index,
        });
    }
    Ok(())
}

/// The trained tensors being folded in place: the only way to change one is
/// [`Folding::get_mut`], which first keeps its trained values, so that what the trained
/// model was stays known without a copy of the unchanged tensors.
struct Folding {
    p: Params,
    originals: Vec<(TensorDecl, Vec<f32>)>,
}

impl Folding {
    fn get(&self, name: &str) -> Option<&[f32]> {
        self.p.get(name)
    }

    fn get_mut(&mut self, name: &str) -> Option<&mut Vec<f32>> {
        if !self.originals.iter().any(|(d, _)| d.name == name)
            && let Some((d, v)) = self.p.tensors.iter().find(|(d, _)| d.name == name)
        {
            self.originals.push((d.clone(), v.clone()));
        }
        self.p.get_mut(name)
    }
}

/// The groups of `group` consecutive columns of the row-major `[_, width]` matrix
/// `weight` that are zero in every row: with `group` 1, the dead units feeding it; with a
/// channel's plane, the dead channels of a flattened image.
fn dead_columns(weight: Option<&[f32]>, width: usize, group: usize) -> Vec<usize> {
    let Some(w) = weight.filter(|_| width > 0 && group > 0) else {
        return Vec::new();
    };
    let mut live = vec![false; width.div_ceil(group)];
    for row in w.chunks_exact(width) {
        for (c, x) in row.iter().enumerate() {
            if *x != 0.0 {
                live[c / group] = true;
            }
        }
    }
    (0..live.len()).filter(|&g| !live[g]).collect()
}

/// The input channels of a `[out, channels, k, k]` convolution weight (`k²` = `plane`)
/// that every output ignores.
fn dead_input_channels(weight: Option<&[f32]>, channels: usize, plane: usize) -> Vec<usize> {
    let Some(w) = weight.filter(|_| channels > 0 && plane > 0) else {
        return Vec::new();
    };
    let mut live = vec![false; channels];
    for out in w.chunks_exact(channels * plane) {
        for (c, kernel) in out.chunks_exact(plane).enumerate() {
            if kernel.iter().any(|x| *x != 0.0) {
                live[c] = true;
            }
        }
    }
    (0..channels).filter(|&c| !live[c]).collect()
}

/// Zeroes rows `dead` (each `fan_in` values) of `{prefix}.weight` and their entries of
/// `{prefix}.bias` in `p`, first keeping in `keep` the values of a tensor it changes (when
/// `keep` does not hold that tensor yet); how many rows held anything but zeros.
fn zero_rows(
    p: &mut Params,
    keep: &mut Params,
    prefix: &str,
    fan_in: usize,
    dead: &[usize],
) -> usize {
    let mut changed = vec![false; dead.len()];
    for (part, width) in [("weight", fan_in), ("bias", 1)] {
        let name = format!("{prefix}.{part}");
        let Some((decl, v)) = p.tensors.iter_mut().find(|(d, _)| d.name == name) else {
            continue;
        };
        let rows = |r: usize| r * width..(r + 1) * width;
        let hit: Vec<bool> = dead
            .iter()
            .map(|&r| v.get(rows(r)).is_some_and(|x| x.iter().any(|x| *x != 0.0)))
            .collect();
        if !hit.iter().any(|h| *h) {
            continue;
        }
        if keep.get(&name).is_none() {
            keep.tensors.push((decl.clone(), v.clone()));
        }
        for (k, &r) in dead.iter().enumerate() {
            if let Some(row) = v.get_mut(rows(r)) {
                row.fill(0.0);
            }
            changed[k] |= hit[k];
        }
    }
    changed.iter().filter(|c| **c).count()
}

/// A fold's result, from [`Description::fold_owned`].
#[derive(Debug, Clone, PartialEq)]
pub struct Folded {
    /// The released tensors.
    pub released: Params,
    /// Every trained tensor that is not bit for bit the released tensor of its name: the
    /// ones folding changed, with their trained values, and the ones not released (batch
    /// norm). The trained model is `trained_rest` over `released`.
    pub trained_rest: Params,
}

/// `x' = (x − μ) / σ` folded into the layer `prefix` whose weight is `[out, in, (k)]` with
/// `block` weights per input (1 for a linear layer, kernel² for a convolution):
/// `W' = W / σ_in`, `b' = b − Σ W' μ_in`.
fn fold_input(
    p: &mut Folding,
    prefix: &str,
    pre: &Preprocess,
    block: usize,
) -> Result<(), FoldError> {
    let inputs = pre.features.len();
    let wname = format!("{prefix}.weight");
    let w = p.get_mut(&wname).ok_or(FoldError::Missing(wname))?;
    let per_out = inputs * block;
    let mut shifts = Vec::with_capacity(w.len() / per_out.max(1));
    for row in w.chunks_mut(per_out.max(1)) {
        let mut shift = 0.0f64;
        for (i, chunk) in row.chunks_mut(block).enumerate() {
            let f = &pre.features[i];
            for x in chunk {
                let folded = f64::from(*x) / f.std;
                shift += folded * f.mean;
                *x = folded as f32;
            }
        }
        shifts.push(shift);
    }
    let bname = format!("{prefix}.bias");
    let b = p.get_mut(&bname).ok_or(FoldError::Missing(bname))?;
    for (x, s) in b.iter_mut().zip(shifts) {
        *x = (f64::from(*x) - s) as f32;
    }
    Ok(())
}

impl Description {
    /// The description of a released model from its card: the family and task the card's
    /// architecture and output declare, checked against each other (dense widths, the
    /// released tensors' names and shapes, the input normalization).
    pub fn from_card(card: &airlock_schemas::ModelCard) -> Result<Self, String> {
        let a = &card.architecture;
        let w = &a.layer_widths;
        if a.activation != "relu" {
            return Err(format!(
                "the model card's activation is {:?}; airlock runs \"relu\"",
                a.activation
            ));
        }
        if w.len() < 2 || w.contains(&0) {
            return Err(format!(
                "the model card's layer widths {w:?} are not dense layers"
            ));
        }
        let hidden = w[1..w.len() - 1].to_vec();
        let task = match (card.output.transform.as_str(), card.output.classes.len()) {
            ("sigmoid", 0 | 2) => TaskSpec::Binary,
            ("softmax", _) => TaskSpec::Multiclass {
                classes: card.output.classes.clone(),
            },
            ("identity", 0) => TaskSpec::Regression,
            (t, n) => {
                return Err(format!(
                    "the model card's output transform {t:?} with {n} classes is not a task airlock runs"
                ));
            }
        };
        let model = match (a.kind.as_str(), &a.cnn) {
            ("mlp", None) => ModelSpec::Mlp(airlock_schemas::MlpSpec {
                hidden,
                dropout: 0.0,
            }),
            ("cnn", Some(c)) => {
                if c.conv.iter().any(|b| b.batch_norm) {
                    return Err(
                        "the model card declares batch normalization, which releases fold into the convolution"
                            .into(),
                    );
                }
                ModelSpec::Cnn(airlock_schemas::CnnSpec {
                    input: c.input,
                    conv: c.conv.clone(),
                    hidden,
                    dropout: 0.0,
                })
            }
            (k, _) => {
                return Err(format!(
                    "the model card describes a {k:?} airlock does not run"
                ));
            }
        };
        let d = Self::new(&model, &task, card.inputs.len())?;
        if &d.dense_widths() != w {
            return Err(format!(
                "the model card's layer widths {w:?} do not fit its model ({:?})",
                d.dense_widths()
            ));
        }
        if let Some(c) = &a.cnn
            && c.input_normalization != d.releases_input_normalization()
        {
            return Err("the model card's input normalization does not fit its first block".into());
        }
        let want: Vec<(String, Vec<usize>)> = d
            .released()
            .into_iter()
            .map(|t| (t.name, t.shape))
            .collect();
        let have: Vec<(String, Vec<usize>)> = a
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone()))
            .collect();
        if want != have || a.tensors.iter().any(|t| t.dtype != "F32") {
            return Err(
                "the model card's tensors are not the ones its architecture declares".into(),
            );
        }
        Ok(d)
    }

    /// The released tensors in `model.safetensors` bytes, read by the strict reader: the
    /// file must hold exactly [`Description::released`] (F32, declared shapes), nothing else.
    pub fn read_released(&self, bytes: &[u8]) -> Result<Params, String> {
        let file =
            airlock_safetensors::parse(bytes).map_err(|e| format!("model.safetensors: {e}"))?;
        let decls = self.released();
        if file.tensors.len() != decls.len() {
            return Err(format!(
                "model.safetensors holds {} tensors; the model declares {}",
                file.tensors.len(),
                decls.len()
            ));
        }
        let tensors = decls
            .into_iter()
            .map(|d| {
                let t = file
                    .tensor(&d.name)
                    .ok_or_else(|| format!("model.safetensors: tensor {:?} is missing", d.name))?;
                if t.dtype != airlock_safetensors::Dtype::F32 || t.shape != d.shape {
                    return Err(format!(
                        "model.safetensors: tensor {:?} is {} {:?}, expected F32 {:?}",
                        d.name,
                        t.dtype.name(),
                        t.shape,
                        d.shape
                    ));
                }
                let v = file
                    .data(t)
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                Ok((d, v))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Params { tensors })
    }
}
