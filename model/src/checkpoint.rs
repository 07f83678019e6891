//! `checkpoint.safetensors`: everything a trainer needs to resume, as real trainers keep
//! it: the model parameters, the optimizer's moment estimates, and free-form metadata.
//! It stays on-prem; the packager takes only the parameters out of it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use airlock_schemas::{ErrorKind, IoError};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::{Description, Params, Role};

/// File name of the checkpoint in a run directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";

/// Format tag stored in the checkpoint's metadata.
const FORMAT: &str = "airlock-checkpoint/1";

/// Adam's state for one parameter tensor, in the parameter's layout.
#[derive(Debug, Clone, PartialEq)]
pub struct AdamMoments {
    /// First moment (PyTorch's `exp_avg`).
    pub exp_avg: Vec<f32>,
    /// Second moment (PyTorch's `exp_avg_sq`).
    pub exp_avg_sq: Vec<f32>,
}

/// A training checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// Model tensors, as the description declares them ([`Description::trained`]).
    pub params: Params,
    /// Optimizer steps taken.
    pub optimizer_step: usize,
    /// Adam moments, per parameter tensor (by name; aggregates have none).
    pub optimizer: Vec<(String, AdamMoments)>,
    /// Free-form metadata (epochs, seed, backend...), as trainers commonly write.
    pub metadata: HashMap<String, String>,
}

/// Why a checkpoint could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// File-system failure (its action names the checkpoint: `write checkpoint`).
    #[error(transparent)]
    Io(#[from] IoError),
    /// The safetensors container is malformed.
    #[error("checkpoint {} is not valid safetensors", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// The tensors do not describe the expected model.
    #[error("checkpoint {} does not match the model: {message}", path.display())]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What does not match.
        message: String,
    },
}

impl CheckpointError {
    /// What kind of failure this is (the CLI's exit code follows from it).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io(e) => e.kind(),
            Self::Format { .. } | Self::Mismatch { .. } => ErrorKind::BadInput,
        }
    }
}

fn to_le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Checkpoint {
    /// Serialize to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, safetensors::SafeTensorError> {
        let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (d, v) in &self.params.tensors {
            owned.push((d.name.clone(), d.shape.clone(), to_le(v)));
        }
        for (name, m) in &self.optimizer {
            let Some((d, _)) = self.params.tensors.iter().find(|(d, _)| &d.name == name) else {
                continue;
            };
            owned.push((
                format!("optimizer.{name}.exp_avg"),
                d.shape.clone(),
                to_le(&m.exp_avg),
            ));
            owned.push((
                format!("optimizer.{name}.exp_avg_sq"),
                d.shape.clone(),
                to_le(&m.exp_avg_sq),
            ));
        }
        let views = owned
            .iter()
            .map(|(name, shape, data)| {
                Ok((
                    name.clone(),
                    TensorView::new(Dtype::F32, shape.clone(), data)?,
                ))
            })
            .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
        let mut metadata = self.metadata.clone();
        metadata.insert("format".into(), FORMAT.into());
        metadata.insert("optimizer".into(), "adam".into());
        metadata.insert("optimizer.step".into(), self.optimizer_step.to_string());
        safetensors::serialize(views, Some(metadata))
    }

    /// Write to `path`.
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        let bytes = self.to_bytes().map_err(|source| CheckpointError::Format {
            path: path.to_owned(),
            source,
        })?;
        std::fs::write(path, bytes)
            .map_err(|source| CheckpointError::Io(IoError::new("write checkpoint", path, source)))
    }

    /// Read the tensors `description` declares for training from `path`. Optimizer state
    /// is read too, when present.
    pub fn read(path: &Path, description: &Description) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path)
            .map_err(|source| CheckpointError::Io(IoError::new("read checkpoint", path, source)))?;
        let st = SafeTensors::deserialize(&bytes).map_err(|source| CheckpointError::Format {
            path: path.to_owned(),
            source,
        })?;
        let mismatch = |message: String| CheckpointError::Mismatch {
            path: path.to_owned(),
            message,
        };
        let get = |name: &str, shape: &[usize]| -> Result<Vec<f32>, CheckpointError> {
            let t = st
                .tensor(name)
                .map_err(|_| mismatch(format!("tensor {name:?} is missing")))?;
            if t.dtype() != Dtype::F32 || t.shape() != shape {
                return Err(mismatch(format!(
                    "tensor {name:?} is {:?} {:?}, expected F32 {shape:?}",
                    t.dtype(),
                    t.shape()
                )));
            }
            Ok(t.data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect())
        };
        let mut tensors = Vec::new();
        let mut optimizer = Vec::new();
        for d in description.trained() {
            let values = get(&d.name, &d.shape)?;
            if d.role == Role::Parameter
                && let (Ok(exp_avg), Ok(exp_avg_sq)) = (
                    get(&format!("optimizer.{}.exp_avg", d.name), &d.shape),
                    get(&format!("optimizer.{}.exp_avg_sq", d.name), &d.shape),
                )
            {
                optimizer.push((
                    d.name.clone(),
                    AdamMoments {
                        exp_avg,
                        exp_avg_sq,
                    },
                ));
            }
            tensors.push((d, values));
        }
        let (_, meta) =
            SafeTensors::read_metadata(&bytes).map_err(|source| CheckpointError::Format {
                path: path.to_owned(),
                source,
            })?;
        let metadata = meta.metadata().clone().unwrap_or_default();
        let optimizer_step = metadata
            .get("optimizer.step")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(Self {
            params: Params { tensors },
            optimizer_step,
            optimizer,
            metadata,
        })
    }
}
