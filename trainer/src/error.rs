use std::path::{Path, PathBuf};

use airlock_infer::DeviceError;
use airlock_model::{CheckpointError, DataError};
use airlock_schemas::{ErrorKind, IoError};

/// Why a training run failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The pipeline file was refused.
    #[error(transparent)]
    Pipeline(#[from] airlock_schemas::PipelineError),
    /// The training data was refused.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The requested device cannot be used.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The checkpoint could not be written or read.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The output directory already holds something; airlock never overwrites a run.
    #[error("run directory {} already exists and is not empty; choose another --out", path.display())]
    OutputExists {
        /// The directory.
        path: PathBuf,
    },
    /// A split is too small or lacks a class, so training or its metrics would mean nothing.
    #[error("cannot train on {}: {message}", path.display())]
    Split {
        /// The data file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss became NaN or infinite.
    #[error("training diverged in epoch {epoch} (loss is {loss}); lower optimizer.learning_rate")]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// The loss value.
        loss: f64,
    },
    /// A data-parallel run's devices could not exchange gradients (burn-collective's
    /// all-reduce failed, or a device's worker stopped).
    #[error("data-parallel training across {devices} devices failed: {reason}")]
    Collective {
        /// Devices in the run.
        devices: usize,
        /// What the collective reported.
        reason: String,
    },
    /// The hosts of a multi-host run could not train together: a host did not join in
    /// time, was refused (another run, airlock version or number of hosts), stopped
    /// answering, or sent what this host did not expect.
    #[error("training across {hosts} hosts failed: {reason}")]
    Hosts {
        /// Hosts in the run.
        hosts: usize,
        /// What went wrong, naming the host.
        reason: String,
    },
    /// DP-SGD could not be set up as the pipeline asks (a δ too large for the data, a
    /// budget no noise can meet, a model it cannot clip).
    #[error("differentially private training: {0}")]
    Privacy(String),
}

impl TrainError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io(IoError::new(action, path, source))
    }

    /// What kind of failure this is (the CLI's exit code follows from it).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Pipeline(e) => e.kind(),
            Self::Data(e) => e.kind(),
            Self::Device(e) => e.kind(),
            // The checkpoint the trainer itself writes and reads back: a failure is the
            // machine's, whatever the checkpoint error says.
            Self::Checkpoint(_) => ErrorKind::Environment,
            Self::Io(e) => e.kind(),
            Self::OutputExists { .. } | Self::Split { .. } | Self::Privacy(_) => {
                ErrorKind::BadInput
            }
            Self::Diverged { .. } => ErrorKind::Failed,
            Self::Collective { .. } | Self::Hosts { .. } => ErrorKind::Environment,
        }
    }

    /// Whether the failure is the input's fault (pipeline, data, device choice) rather
    /// than the environment's: [`ErrorKind::BadInput`].
    pub fn is_bad_input(&self) -> bool {
        self.kind() == ErrorKind::BadInput
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bad input is the pipeline's, the data's, the device choice's, the output
    /// directory's or the split's; the checkpoint, the file system and a diverged run are
    /// not (the CLI's exit codes 3 and 1).
    #[test]
    fn bad_input_is_the_inputs_fault_only() {
        let p = Path::new("/x");
        let bad = [
            TrainError::OutputExists { path: p.into() },
            TrainError::Split {
                path: p.into(),
                message: "m".into(),
            },
            TrainError::Pipeline(airlock_schemas::PipelineError::Parse {
                path: p.into(),
                message: "m".into(),
            }),
            TrainError::Data(DataError::NoRows { path: p.into() }),
        ];
        for e in bad {
            assert!(e.is_bad_input(), "{e}");
        }
        let not_bad = [
            (
                TrainError::io("write", p, std::io::Error::other("e")),
                ErrorKind::Io,
            ),
            (
                TrainError::Checkpoint(CheckpointError::Mismatch {
                    path: p.into(),
                    message: "m".into(),
                }),
                ErrorKind::Environment,
            ),
            (
                TrainError::Diverged {
                    epoch: 1,
                    loss: f64::NAN,
                },
                ErrorKind::Failed,
            ),
            (
                TrainError::Hosts {
                    hosts: 2,
                    reason: "host 2 did not join".into(),
                },
                ErrorKind::Environment,
            ),
        ];
        for (e, kind) in not_bad {
            assert!(!e.is_bad_input(), "{e}");
            assert_eq!(e.kind(), kind, "{e}");
        }
        assert_eq!(
            TrainError::io("write", p, std::io::Error::other("e")).to_string(),
            "cannot write /x"
        );
    }
}
