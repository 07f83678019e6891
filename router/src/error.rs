//! Why the router did not start, or stopped with an error.

use std::path::PathBuf;

use airlock_schemas::ErrorKind;

/// Why [`crate::route`] did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The routing policy cannot be used.
    #[error("{}: {message}", path.display())]
    Invalid {
        /// The policy file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The release named by the policy does not verify or lacks its approvals.
    #[error("{}: {reason}, refusing to route", dir.display())]
    Unverified {
        /// The bundle.
        dir: PathBuf,
        /// Why.
        reason: String,
    },
    /// The trust policy or the router's key cannot be used.
    #[error(transparent)]
    Trust(#[from] airlock_trust::TrustError),
    /// The router's key cannot be used.
    #[error(transparent)]
    Key(#[from] airlock_trust::keys::KeyError),
    /// The audit log cannot be opened or written.
    #[error(transparent)]
    Audit(#[from] airlock_publisher::audit::AuditError),
    /// A file could not be read.
    #[error(transparent)]
    Io(#[from] airlock_schemas::IoError),
    /// The system failed: the runtime, a socket, signal handling.
    #[error("{context}: {source}")]
    System {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl RouteError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Invalid { .. } => ErrorKind::BadInput,
            Self::Unverified { .. } => ErrorKind::VerificationFailed,
            Self::Trust(e) => e.kind(),
            Self::Key(e) => e.kind(),
            Self::Audit(e) => e.kind(),
            Self::Io(e) => e.kind(),
            Self::System { .. } => ErrorKind::Environment,
        }
    }

    pub(crate) fn system(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::System {
            context: context.into(),
            source,
        }
    }
}
