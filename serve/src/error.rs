//! Why the server did not start or stopped with an error, and what kind of failure that is
//! (callers map [`ErrorKind`] to their exit codes).

use std::path::PathBuf;

use airlock_infer::DeviceError;
use airlock_trust::TrustError;

use crate::sagemaker::ConfigError;

/// Why [`crate::serve`] did not start, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The bundle was refused: missing, does not verify (the failed checks were printed),
    /// lacks its approvals, or describes a model the server cannot run as written.
    #[error("{}: {reason}, refusing to start", dir.display())]
    Refused {
        /// The bundle directory.
        dir: PathBuf,
        /// Why, for the operator.
        reason: String,
    },
    /// The trust policy cannot be used.
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The device cannot run the model.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// `airlock-serve`'s settings (flags and environment) are not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The system failed: the runtime, the listening socket, signal handling.
    #[error("{context}")]
    System {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The operating system failed where there is nothing to add to its message.
    #[error(transparent)]
    Os(std::io::Error),
}

/// How a [`ServeError`] failed, for exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The bundle was refused (verification, approvals, or a model that cannot run).
    Refused,
    /// The input was refused: trust policy, device, settings.
    BadInput,
    /// The environment failed.
    Environment,
}

impl ServeError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Refused { .. } => ErrorKind::Refused,
            Self::Trust(_) | Self::Device(_) | Self::Config(_) => ErrorKind::BadInput,
            Self::System { .. } | Self::Os(_) => ErrorKind::Environment,
        }
    }

    /// A system failure while doing `context`.
    pub(crate) fn system(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::System {
            context: context.into(),
            source: Box::new(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_messages() {
        let refused = ServeError::Refused {
            dir: "/opt/ml/model".into(),
            reason: "the bundle does not verify".into(),
        };
        assert_eq!(refused.kind(), ErrorKind::Refused);
        assert_eq!(
            refused.to_string(),
            "/opt/ml/model: the bundle does not verify, refusing to start"
        );
        let e = ServeError::system(
            "cannot listen on 0.0.0.0:8080",
            std::io::Error::from(std::io::ErrorKind::AddrInUse),
        );
        assert_eq!(e.kind(), ErrorKind::Environment);
        assert_eq!(e.to_string(), "cannot listen on 0.0.0.0:8080");
        assert!(std::error::Error::source(&e).is_some());
        let e = ServeError::from(DeviceError::Parse {
            given: "tpu".into(),
        });
        assert_eq!(e.kind(), ErrorKind::BadInput);
        assert!(e.to_string().contains("unknown device \"tpu\""), "{e}");
    }
}
