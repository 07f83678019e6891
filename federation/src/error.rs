//! Why a federation step failed.

use std::path::{Path, PathBuf};

use airlock_schemas::{ErrorKind, IoError};

/// Why a site, the aggregator or the finalizing step stopped.
#[derive(Debug, thiserror::Error)]
pub enum FederationError {
    /// A file-system operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The federation file (or what it names) is refused.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The trust policy is refused.
    #[error(transparent)]
    Trust(#[from] airlock_trust::TrustError),
    /// A key could not be loaded.
    #[error(transparent)]
    Key(#[from] airlock_trust::keys::KeyError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] airlock_trainer::TrainError),
    /// The audit log refused the entry.
    #[error(transparent)]
    Audit(#[from] airlock_publisher::audit::AuditError),
    /// What the aggregator sent does not verify: the site does not train on it.
    #[error("the global model of round {round} is refused: {why}")]
    Global {
        /// The round it claims to be.
        round: u32,
        /// Why.
        why: String,
    },
    /// The site's own leak layers refused its update: nothing leaves.
    #[error(
        "site {site}: the update of round {round} is refused by the site's own checks and does not leave: {why}"
    )]
    Refused {
        /// The site.
        site: String,
        /// The round.
        round: u32,
        /// The first failing layer's finding.
        why: String,
    },
    /// Fewer updates verified than the quorum needs: no round is signed.
    #[error(
        "round {round}: {accepted} of the {needed} updates the quorum needs verified ({refused} refused); the round is not signed"
    )]
    Quorum {
        /// The round.
        round: u32,
        /// Updates accepted.
        accepted: usize,
        /// The quorum.
        needed: u32,
        /// Updates refused.
        refused: usize,
    },
    /// A round out of order (say, a round already signed, or beyond the next).
    #[error("round {given} is not the next round ({next})")]
    RoundOrder {
        /// The round asked for.
        given: u32,
        /// The next round.
        next: u32,
    },
    /// Something else failed: Flower, a step of the demo, writing tensors.
    #[error("{0}")]
    Failed(String),
}

impl FederationError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io(IoError::new(action, path, source))
    }

    /// The kind, for the exit code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io(e) => e.kind(),
            Self::Invalid { .. } | Self::RoundOrder { .. } => ErrorKind::BadInput,
            Self::Trust(e) => e.kind(),
            Self::Key(e) => e.kind(),
            Self::Train(e) => e.kind(),
            Self::Audit(e) => e.kind(),
            Self::Global { .. } => ErrorKind::VerificationFailed,
            Self::Refused { .. } => ErrorKind::LeakRefused,
            Self::Quorum { .. } => ErrorKind::VerificationFailed,
            Self::Failed(_) => ErrorKind::Failed,
        }
    }
}
