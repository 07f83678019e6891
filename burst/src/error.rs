//! Why a burst step stopped.

use std::path::PathBuf;

use airlock_schemas::{ErrorKind, IoError};

/// Why an export, an approval, a burst or a sync-back stopped.
#[derive(Debug, thiserror::Error)]
pub enum BurstError {
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A file given (pipeline, policy, export, artifact) is refused as input.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The data could not be read.
    #[error(transparent)]
    Data(#[from] airlock_model::DataError),
    /// The trust policy is refused.
    #[error(transparent)]
    Trust(#[from] airlock_trust::TrustError),
    /// A key could not be loaded.
    #[error(transparent)]
    Key(#[from] airlock_trust::keys::KeyError),
    /// The export's own checks refused it: nothing is written.
    #[error("the export is refused: {0}")]
    Refused(String),
    /// The export does not verify, or lacks the approvals it needs.
    #[error("{}: the export does not verify: {why}", dir.display())]
    Unverified {
        /// The export directory.
        dir: PathBuf,
        /// Why.
        why: String,
    },
    /// The residency policy does not allow the destination: nothing was sent.
    #[error("residency refused {destination}: {why}")]
    ResidencyRefused {
        /// The destination.
        destination: String,
        /// Why.
        why: String,
    },
    /// An officer's decision could not be recorded.
    #[error("{0}")]
    Decision(String),
    /// Something else failed.
    #[error("{0}")]
    Failed(String),
}

impl BurstError {
    /// The exit-code class.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io(_) => ErrorKind::Io,
            Self::Failed(_) => ErrorKind::Failed,
            Self::Data(e) => e.kind(),
            Self::Trust(e) => e.kind(),
            Self::Key(e) => e.kind(),
            Self::Invalid { .. } | Self::Decision(_) => ErrorKind::BadInput,
            Self::Refused(_) => ErrorKind::LeakRefused,
            Self::Unverified { .. } => ErrorKind::VerificationFailed,
            Self::ResidencyRefused { .. } => ErrorKind::ResidencyRefused,
        }
    }
}
