//! `airlock predict`: rebuild the model from a run directory alone and score rows.

use std::path::{Path, PathBuf};

use airlock_schemas::TrainingRecord;
use burn::backend::Flex;

use airlock_model::{
    CHECKPOINT_FILE, Checkpoint, CheckpointError, DataError, Description, PREPROCESS_FILE, Params,
    Preprocess, RECORD_FILE, load_table,
};
use airlock_schemas::TaskSpec;
use burn::tensor::{Tensor, TensorData};

use crate::module::{Net, tensor_to_vec, to_net};
use crate::{DeviceError, DeviceSpec};

/// Why prediction failed.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// A run-directory file could not be read or parsed.
    #[error("cannot use run directory {}: {what}", dir.display())]
    Run {
        /// The run directory.
        dir: PathBuf,
        /// Which file and why.
        what: String,
    },
    /// The checkpoint is unreadable or does not match the recorded architecture.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The input rows were refused.
    #[error(transparent)]
    Data(#[from] DataError),
}

impl PredictError {
    /// What kind of failure this is (the CLI's exit code follows from it).
    pub fn kind(&self) -> airlock_schemas::ErrorKind {
        match self {
            Self::Run { .. } => airlock_schemas::ErrorKind::BadInput,
            // The run directory given holds a checkpoint that cannot be read or used: the
            // run is bad input, whatever the checkpoint error says.
            Self::Checkpoint(_) => airlock_schemas::ErrorKind::BadInput,
            Self::Data(e) => e.kind(),
        }
    }
}

fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<T, PredictError> {
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).map_err(|e| PredictError::Run {
        dir: dir.to_owned(),
        what: format!("{name}: {e}"),
    })?;
    serde_json::from_str(&text).map_err(|e| PredictError::Run {
        dir: dir.to_owned(),
        what: format!("{name}: {e}"),
    })
}

/// The model's answers for every row of `input` (a CSV holding at least the run's feature
/// columns), using only what the run directory holds: per row, the probability of the
/// positive class (binary), one probability per class (multi-class) or the value
/// (regression); row-major, [`Description::outputs`] per row.
pub fn predict_csv(run_dir: &Path, input: &Path) -> Result<Predictions, PredictError> {
    let record: TrainingRecord = read_json(run_dir, RECORD_FILE)?;
    let pre: Preprocess = read_json(run_dir, PREPROCESS_FILE)?;
    let h = &record.hyperparameters;
    let features = &h.features;
    let names: Vec<&String> = pre.features.iter().map(|f| &f.name).collect();
    if names != features.iter().collect::<Vec<_>>() {
        return Err(PredictError::Run {
            dir: run_dir.to_owned(),
            what: format!("{PREPROCESS_FILE} does not list the features of {RECORD_FILE}"),
        });
    }
    let description =
        Description::new(&h.model, &h.task, features.len()).map_err(|what| PredictError::Run {
            dir: run_dir.to_owned(),
            what: format!("{RECORD_FILE}: {what}"),
        })?;
    if !matches!(description.input, airlock_model::InputKind::Features(_)) {
        return Err(PredictError::Run {
            dir: run_dir.to_owned(),
            what: "predict reads feature columns from a CSV; this run's model takes images".into(),
        });
    }
    let ckpt = Checkpoint::read(&run_dir.join(CHECKPOINT_FILE), &description)?;
    let released = description
        .fold(&ckpt.params, &pre)
        .map_err(|e| PredictError::Run {
            dir: run_dir.to_owned(),
            what: e.to_string(),
        })?;
    let table = load_table(input, features, None)?;
    let scorer = Scorer::new(&description, &released);
    Ok(Predictions {
        columns: answer_columns(&description.task),
        values: scorer.answers(&table.features),
    })
}

/// What [`predict_csv`] answers: named columns, and their values row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictions {
    /// `probability` (binary), the class names (multi-class), or `value` (regression).
    pub columns: Vec<String>,
    /// `columns.len()` values per row.
    pub values: Vec<f32>,
}

/// The names of a task's answers per row.
pub fn answer_columns(task: &TaskSpec) -> Vec<String> {
    match task {
        TaskSpec::Binary => vec!["probability".into()],
        TaskSpec::Multiclass { classes } => classes.clone(),
        TaskSpec::Regression => vec!["value".into()],
    }
}

/// A released model ready to answer rows of raw inputs (a bundle's folded model): what
/// `airlock serve` batches requests through, on the CPU or (with the `cuda` feature) a GPU.
#[derive(Debug)]
pub struct Scorer {
    inner: ScorerOn,
    width: usize,
    outputs: usize,
    task: TaskSpec,
}

#[derive(Debug)]
enum ScorerOn {
    Flex(Net<Flex>, burn::tensor::Device<Flex>),
    #[cfg(feature = "cuda")]
    Cuda(
        Net<burn::backend::Cuda>,
        burn::tensor::Device<burn::backend::Cuda>,
    ),
}

impl Scorer {
    /// Build the burn module for released `params` on the CPU.
    pub fn new(description: &Description, params: &Params) -> Self {
        let device = Default::default();
        Self {
            inner: ScorerOn::Flex(to_net::<Flex>(description, params, true, &device), device),
            width: description.input_len(),
            outputs: description.outputs(),
            task: description.task.clone(),
        }
    }

    /// Build it on `device` (`cpu`, or `cuda:N` with the `cuda` feature), after checking
    /// the device can be used.
    pub fn on(
        description: &Description,
        params: &Params,
        device: DeviceSpec,
    ) -> Result<Self, DeviceError> {
        match (device.resolve()?, device) {
            #[cfg(feature = "cuda")]
            (crate::Backend::Cuda, DeviceSpec::Cuda(i)) => {
                let d = burn::backend::cuda::CudaDevice::new(i);
                Ok(Self {
                    inner: ScorerOn::Cuda(
                        to_net::<burn::backend::Cuda>(description, params, true, &d),
                        d,
                    ),
                    width: description.input_len(),
                    outputs: description.outputs(),
                    task: description.task.clone(),
                })
            }
            _ => Ok(Self::new(description, params)),
        }
    }

    /// Input values per row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Answers per row.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// Raw outputs (logits, or values) for row-major `x` (`rows × width`), row-major.
    pub fn raw(&self, x: &[f32]) -> Vec<f32> {
        match &self.inner {
            ScorerOn::Flex(m, d) => predict_outputs(m, x, self.width, d),
            #[cfg(feature = "cuda")]
            ScorerOn::Cuda(m, d) => predict_outputs(m, x, self.width, d),
        }
    }

    /// Answers for row-major `x`: see [`transform`].
    pub fn answers(&self, x: &[f32]) -> Vec<f32> {
        transform(&self.task, self.raw(x))
    }

    /// Probabilities of the positive class (a binary model's answers).
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        self.answers(x)
    }
}

/// From raw outputs (row-major) to answers: a sigmoid (binary), a softmax per row
/// (multi-class), the value itself (regression).
pub fn transform(task: &TaskSpec, mut raw: Vec<f32>) -> Vec<f32> {
    match task {
        TaskSpec::Binary => raw.iter_mut().for_each(|z| *z = 1.0 / (1.0 + (-*z).exp())),
        TaskSpec::Multiclass { classes } => {
            for row in raw.chunks_mut(classes.len().max(1)) {
                let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0.0f64;
                for z in row.iter_mut() {
                    *z = (*z - max).exp();
                    sum += f64::from(*z);
                }
                row.iter_mut()
                    .for_each(|z| *z = (f64::from(*z) / sum) as f32);
            }
        }
        TaskSpec::Regression => {}
    }
    raw
}

/// Rows per forward pass when evaluating.
const EVAL_CHUNK: usize = 8192;
/// Most input values per forward pass (images are wide).
const EVAL_VALUES: usize = 1 << 24;

/// Raw outputs of a model (without autodiff) for row-major rows `x`, row-major.
pub fn predict_outputs<B: burn::prelude::Backend>(
    model: &Net<B>,
    x: &[f32],
    width: usize,
    device: &B::Device,
) -> Vec<f32> {
    let width = width.max(1);
    let rows_per = EVAL_CHUNK.min((EVAL_VALUES / width).max(1));
    let mut out = Vec::new();
    for chunk in x.chunks(rows_per * width) {
        let rows = chunk.len() / width;
        let t = Tensor::<B, 2>::from_data(TensorData::new(chunk.to_vec(), [rows, width]), device);
        out.extend(tensor_to_vec(model.forward(t, None)));
    }
    out
}
