//! `checkpoint.safetensors`: everything a trainer needs to resume, as real trainers keep
//! it: the model parameters, the optimizer's moment estimates, and free-form metadata.
//! It stays on-prem; the packager takes only the parameters out of it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use airlock_schemas::{ErrorKind, IoError};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

use crate::{DenseLayer, MlpParams};

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
    /// Model parameters.
    pub params: MlpParams,
    /// Optimizer steps taken.
    pub optimizer_step: usize,
    /// Adam moments per layer: (weight, bias).
    pub optimizer: Vec<(AdamMoments, AdamMoments)>,
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
    /// Tensor name of layer `i`'s `part` (`weight` or `bias`).
    pub fn param_name(i: usize, part: &str) -> String {
        format!("layers.{i}.{part}")
    }

    /// Serialize to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, safetensors::SafeTensorError> {
        let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (i, l) in self.params.layers.iter().enumerate() {
            owned.push((
                Self::param_name(i, "weight"),
                vec![l.d_out, l.d_in],
                to_le(&l.weight),
            ));
            owned.push((Self::param_name(i, "bias"), vec![l.d_out], to_le(&l.bias)));
            if let Some((w, b)) = self.optimizer.get(i) {
                for (part, m, shape) in [
                    ("weight", w, vec![l.d_out, l.d_in]),
                    ("bias", b, vec![l.d_out]),
                ] {
                    owned.push((
                        format!("optimizer.layers.{i}.{part}.exp_avg"),
                        shape.clone(),
                        to_le(&m.exp_avg),
                    ));
                    owned.push((
                        format!("optimizer.layers.{i}.{part}.exp_avg_sq"),
                        shape,
                        to_le(&m.exp_avg_sq),
                    ));
                }
            }
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

    /// Read the model parameters of an MLP with the given layer widths
    /// (`[d_input, hidden..., 1]`) from `path`. Optimizer state is read too, when present.
    pub fn read(path: &Path, dims: &[usize]) -> Result<Self, CheckpointError> {
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
        let mut layers = Vec::new();
        let mut optimizer = Vec::new();
        for (i, w) in dims.windows(2).enumerate() {
            let (d_in, d_out) = (w[0], w[1]);
            layers.push(DenseLayer {
                d_in,
                d_out,
                weight: get(&Self::param_name(i, "weight"), &[d_out, d_in])?,
                bias: get(&Self::param_name(i, "bias"), &[d_out])?,
            });
            let moments = |part: &str, shape: &[usize]| -> Option<AdamMoments> {
                Some(AdamMoments {
                    exp_avg: get(&format!("optimizer.layers.{i}.{part}.exp_avg"), shape).ok()?,
                    exp_avg_sq: get(&format!("optimizer.layers.{i}.{part}.exp_avg_sq"), shape)
                        .ok()?,
                })
            };
            if let (Some(w), Some(b)) =
                (moments("weight", &[d_out, d_in]), moments("bias", &[d_out]))
            {
                optimizer.push((w, b));
            }
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
            params: MlpParams { layers },
            optimizer_step,
            optimizer,
            metadata,
        })
    }
}
