//! `checkpoint.safetensors`: everything a trainer needs to resume, as real trainers keep
//! it: the model parameters, the optimizer's moment estimates, and free-form metadata.
//! It stays on-prem; the packager takes only the parameters out of it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use airlock_schemas::{ErrorKind, IoError};
use safetensors::{Dtype, SafeTensors};

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

/// An f32 tensor of the checkpoint, as safetensors writes it: its little-endian bytes are
/// made only when the writer asks for them, one tensor at a time.
struct F32View<'a> {
    shape: &'a [usize],
    values: &'a [f32],
}

impl safetensors::View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.values.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.values.len() * 4
    }
}

impl Checkpoint {
    /// The tensors (parameters, then each parameter's two moments) and the metadata, as
    /// borrowed views for the safetensors writer.
    fn views(&self) -> (Vec<(String, F32View<'_>)>, HashMap<String, String>) {
        let mut views = Vec::new();
        for (d, v) in &self.params.tensors {
            views.push((
                d.name.clone(),
                F32View {
                    shape: &d.shape,
                    values: v,
                },
            ));
        }
        for (name, m) in &self.optimizer {
            let Some((d, _)) = self.params.tensors.iter().find(|(d, _)| &d.name == name) else {
                continue;
            };
            for (moment, values) in [("exp_avg", &m.exp_avg), ("exp_avg_sq", &m.exp_avg_sq)] {
                views.push((
                    format!("optimizer.{name}.{moment}"),
                    F32View {
                        shape: &d.shape,
                        values,
                    },
                ));
            }
        }
        let mut metadata = self.metadata.clone();
        metadata.insert("format".into(), FORMAT.into());
        metadata.insert("optimizer".into(), "adam".into());
        metadata.insert("optimizer.step".into(), self.optimizer_step.to_string());
        (views, metadata)
    }

    /// A tensor whose values do not fill its shape is refused before anything is written.
    fn check_lengths(views: &[(String, F32View<'_>)]) -> Result<(), safetensors::SafeTensorError> {
        for (_, v) in views {
            if v.shape.iter().product::<usize>() != v.values.len() {
                return Err(safetensors::SafeTensorError::InvalidTensorView(
                    Dtype::F32,
                    v.shape.to_vec(),
                    v.values.len() * 4,
                ));
            }
        }
        Ok(())
    }

    /// Serialize to safetensors bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, safetensors::SafeTensorError> {
        let (views, metadata) = self.views();
        Self::check_lengths(&views)?;
        safetensors::serialize(views, Some(metadata))
    }

    /// Write to `path`: the same bytes as [`Self::to_bytes`], streamed tensor by tensor, so
    /// that a checkpoint of several GiB is never held in memory whole.
    pub fn write(&self, path: &Path) -> Result<(), CheckpointError> {
        let (views, metadata) = self.views();
        Self::check_lengths(&views)
            .and_then(|()| safetensors::serialize_to_file(views, Some(metadata), path))
            .map_err(|e| match e {
                safetensors::SafeTensorError::IoError(source) => {
                    CheckpointError::Io(IoError::new("write checkpoint", path, source))
                }
                source => CheckpointError::Format {
                    path: path.to_owned(),
                    source,
                },
            })
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

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_schemas::{MlpSpec, ModelSpec, TaskSpec};
    use safetensors::tensor::TensorView;

    fn checkpoint() -> (Checkpoint, Description) {
        let model = ModelSpec::Mlp(MlpSpec {
            hidden: vec![5, 3],
            dropout: 0.0,
        });
        let d = Description::new(&model, &TaskSpec::Binary, 4).expect("description");
        let params = d.init(&mut crate::rng(7, 1));
        let optimizer = params
            .tensors
            .iter()
            .map(|(t, v)| {
                let m = AdamMoments {
                    exp_avg: v.iter().map(|x| x * 0.5).collect(),
                    exp_avg_sq: v.iter().map(|x| x * x).collect(),
                };
                (t.name.clone(), m)
            })
            .collect();
        let metadata = [("seed".to_owned(), "7".to_owned())].into_iter().collect();
        let c = Checkpoint {
            params,
            optimizer_step: 3,
            optimizer,
            metadata,
        };
        (c, d)
    }

    /// The checkpoint as it was written before the writer streamed: every tensor's bytes
    /// owned, then one buffer from the safetensors crate.
    fn reference_bytes(c: &Checkpoint) -> Vec<u8> {
        let le = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (d, v) in &c.params.tensors {
            owned.push((d.name.clone(), d.shape.clone(), le(v)));
        }
        for (name, m) in &c.optimizer {
            let shape = c
                .params
                .tensors
                .iter()
                .find(|(d, _)| &d.name == name)
                .expect("param")
                .0
                .shape
                .clone();
            owned.push((
                format!("optimizer.{name}.exp_avg"),
                shape.clone(),
                le(&m.exp_avg),
            ));
            owned.push((
                format!("optimizer.{name}.exp_avg_sq"),
                shape,
                le(&m.exp_avg_sq),
            ));
        }
        let views = owned.iter().map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("view"),
            )
        });
        let mut metadata = c.metadata.clone();
        metadata.insert("format".into(), FORMAT.into());
        metadata.insert("optimizer".into(), "adam".into());
        metadata.insert("optimizer.step".into(), c.optimizer_step.to_string());
        safetensors::serialize(views, Some(metadata)).expect("serialize")
    }

    #[test]
    fn streamed_file_is_byte_identical_to_the_buffer_and_reads_back() {
        let (c, d) = checkpoint();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(CHECKPOINT_FILE);
        c.write(&path).expect("write");
        let file = std::fs::read(&path).expect("read");
        assert_eq!(file, c.to_bytes().expect("bytes"));
        assert_eq!(file, reference_bytes(&c));
        let back = Checkpoint::read(&path, &d).expect("read back");
        assert_eq!(back.params, c.params);
        assert_eq!(back.optimizer, c.optimizer);
        assert_eq!(back.optimizer_step, 3);
    }

    #[test]
    fn a_tensor_shorter_than_its_shape_is_refused_and_nothing_is_written() {
        let (mut c, _) = checkpoint();
        c.optimizer[0].1.exp_avg.pop();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(CHECKPOINT_FILE);
        assert!(matches!(
            c.write(&path),
            Err(CheckpointError::Format { .. })
        ));
        assert!(!path.exists());
        assert!(c.to_bytes().is_err());
    }
}
