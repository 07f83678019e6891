//! `airlock predict`: rebuild the model from a run directory alone and score rows.

use std::path::{Path, PathBuf};

use airlock_schemas::TrainingRecord;
use burn::backend::Flex;

use airlock_model::{
    CHECKPOINT_FILE, Checkpoint, CheckpointError, DataError, MlpParams, PREPROCESS_FILE,
    Preprocess, RECORD_FILE, load_table,
};
use burn::tensor::{Tensor, TensorData};

use crate::module::{Mlp, tensor_to_vec, to_module};
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

/// Probabilities of the positive class for every row of `input` (a CSV holding at least
/// the run's feature columns), using only what the run directory holds.
pub fn predict_csv(run_dir: &Path, input: &Path) -> Result<Vec<f32>, PredictError> {
    let record: TrainingRecord = read_json(run_dir, RECORD_FILE)?;
    let pre: Preprocess = read_json(run_dir, PREPROCESS_FILE)?;
    let features = &record.hyperparameters.features;
    let names: Vec<&String> = pre.features.iter().map(|f| &f.name).collect();
    if names != features.iter().collect::<Vec<_>>() {
        return Err(PredictError::Run {
            dir: run_dir.to_owned(),
            what: format!("{PREPROCESS_FILE} does not list the features of {RECORD_FILE}"),
        });
    }
    let mut dims = vec![features.len()];
    dims.extend(&record.hyperparameters.model.hidden);
    dims.push(1);
    let ckpt = Checkpoint::read(&run_dir.join(CHECKPOINT_FILE), &dims)?;

    let table = load_table(input, features, None)?;
    let x = pre.apply(&table.features, 0..table.rows());
    let device = Default::default();
    let model = to_module::<Flex>(&ckpt.params, &device);
    let logits = predict_logits(&model, &x, features.len(), &device);
    Ok(logits.iter().map(|&z| 1.0 / (1.0 + (-z).exp())).collect())
}

/// A model ready to score rows of raw features (a bundle's folded model): what
/// `airlock serve` batches requests through, on the CPU or (with the `cuda` feature) a GPU.
#[derive(Debug)]
pub struct Scorer {
    inner: ScorerOn,
    width: usize,
}

#[derive(Debug)]
enum ScorerOn {
    Flex(Mlp<Flex>, burn::tensor::Device<Flex>),
    #[cfg(feature = "cuda")]
    Cuda(
        Mlp<burn::backend::Cuda>,
        burn::tensor::Device<burn::backend::Cuda>,
    ),
}

impl Scorer {
    /// Build the burn module for `params` on the CPU.
    pub fn new(params: &MlpParams) -> Self {
        let device = Default::default();
        Self {
            inner: ScorerOn::Flex(to_module::<Flex>(params, &device), device),
            width: params.d_input(),
        }
    }

    /// Build it on `device` (`cpu`, or `cuda:N` with the `cuda` feature), after checking
    /// the device can be used.
    pub fn on(params: &MlpParams, device: DeviceSpec) -> Result<Self, DeviceError> {
        match (device.resolve()?, device) {
            #[cfg(feature = "cuda")]
            (crate::Backend::Cuda, DeviceSpec::Cuda(i)) => {
                let d = burn::backend::cuda::CudaDevice::new(i);
                Ok(Self {
                    inner: ScorerOn::Cuda(to_module::<burn::backend::Cuda>(params, &d), d),
                    width: params.d_input(),
                })
            }
            _ => Ok(Self::new(params)),
        }
    }

    /// Input width.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Probabilities of the positive class for row-major `x` (`rows × width`).
    pub fn probabilities(&self, x: &[f32]) -> Vec<f32> {
        let logits = match &self.inner {
            ScorerOn::Flex(m, d) => predict_logits(m, x, self.width, d),
            #[cfg(feature = "cuda")]
            ScorerOn::Cuda(m, d) => predict_logits(m, x, self.width, d),
        };
        logits.iter().map(|&z| 1.0 / (1.0 + (-z).exp())).collect()
    }
}

/// Rows per forward pass when evaluating.
const EVAL_CHUNK: usize = 8192;

/// Logits of a model (without autodiff) for row-major rows `x`.
pub fn predict_logits<B: burn::prelude::Backend>(
    model: &Mlp<B>,
    x: &[f32],
    width: usize,
    device: &B::Device,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len() / width.max(1));
    for chunk in x.chunks(EVAL_CHUNK * width) {
        let rows = chunk.len() / width;
        let t = Tensor::<B, 2>::from_data(TensorData::new(chunk.to_vec(), [rows, width]), device);
        out.extend(tensor_to_vec(model.forward(t, None)));
    }
    out
}
