//! Exit codes: scripts and CI tell failure kinds apart by them.

use std::process::ExitCode;

use airlock_schemas::ErrorKind;

/// Shown at the end of `airlock --help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  failure of the environment (I/O, a bug)
  2  usage error (bad flags)
  3  invalid input (pipeline file, data, device, output directory, key, trust policy)
  4  verification failed (the bundle does not verify against the trust policy, or lacks
     the required approvals)
  5  release refused by a leak check (the leak report names the layer)
  6  release packaged and signed, waiting for officer approvals (airlock run)
  7  publish refused by the residency policy (nothing was sent)
  8  release rejected by an officer (a valid rejection blocks it until that officer
     approves with the same key, or a new version is released)
  130  interrupted (SIGINT or SIGTERM); `airlock run` resumes where it stopped";

/// How a command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The environment failed: I/O errors, bugs.
    Environment,
    /// The input was refused: pipeline, data, device choice, output directory.
    BadInput,
    /// A bundle did not verify.
    Verification,
    /// A leak check refused the release.
    LeakRefused,
    /// The release waits at the approval gate.
    AwaitingApproval,
    /// The residency policy refused the destination.
    ResidencyRefused,
    /// An officer's valid rejection blocks the release.
    Rejected,
}

/// `airlock run` stopped at the approval gate.
#[derive(Debug, thiserror::Error)]
#[error("release {0} is waiting for officer approvals")]
pub struct AwaitingApproval(pub String);

/// A valid rejection blocks the release (the message names the officer and reason).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

/// A bundle failed verification (the checks were printed).
#[derive(Debug, thiserror::Error)]
#[error("{0} does not verify")]
pub struct VerificationFailed(pub String);

/// Input refused by the CLI itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInputError(pub String);

impl Failure {
    /// Classify an error chain by the typed errors in it: the first error in the chain
    /// that airlock knows says which failure it is (the CLI's own, or a library error's
    /// [`ErrorKind`]); a chain without one is the environment's.
    pub fn classify(err: &anyhow::Error) -> Self {
        for cause in err.chain() {
            if cause.downcast_ref::<AwaitingApproval>().is_some() {
                return Self::AwaitingApproval;
            }
            if cause.downcast_ref::<Rejected>().is_some() {
                return Self::Rejected;
            }
            if cause.downcast_ref::<VerificationFailed>().is_some() {
                return Self::Verification;
            }
            if cause.downcast_ref::<BadInputError>().is_some() {
                return Self::BadInput;
            }
            if let Some(kind) = library_kind(cause) {
                return Self::of_kind(kind);
            }
        }
        Self::Environment
    }

    /// The failure of a library error of kind `kind`.
    pub fn of_kind(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::Io | ErrorKind::Remote | ErrorKind::Environment | ErrorKind::Failed => {
                Self::Environment
            }
            ErrorKind::BadInput => Self::BadInput,
            ErrorKind::VerificationFailed => Self::Verification,
            ErrorKind::LeakRefused => Self::LeakRefused,
            ErrorKind::ResidencyRefused => Self::ResidencyRefused,
            ErrorKind::Rejected => Self::Rejected,
        }
    }

    /// The process exit code.
    pub fn code(self) -> ExitCode {
        ExitCode::from(match self {
            Self::Environment => 1,
            Self::BadInput => 3,
            Self::Verification => 4,
            Self::LeakRefused => 5,
            Self::AwaitingApproval => 6,
            Self::ResidencyRefused => 7,
            Self::Rejected => 8,
        })
    }
}

/// The kind of `cause` when it is one of the library errors that decide a command's
/// failure. The errors these wrap (checkpoint, registry, audit, AWS errors...) are judged
/// by their wrapper's `kind()`; met alone in a chain they are looked through, to their
/// cause.
fn library_kind(cause: &(dyn std::error::Error + 'static)) -> Option<ErrorKind> {
    use airlock_publisher::{publish::PublishError, pull::PullError};
    use airlock_trust::{TrustError, approvals::ApprovalError, keys::KeyError};
    if let Some(e) = cause.downcast_ref::<KeyError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<TrustError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<ApprovalError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<PublishError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<PullError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<airlock_packager::PackageError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<airlock_trainer::TrainError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<airlock_model::DataError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<airlock_schemas::PipelineError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<airlock_infer::DeviceError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<airlock_infer::PredictError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<airlock_federation::FederationError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<airlock_burst::BurstError>() {
        return Some(e.kind());
    }
    if let Some(e) = cause.downcast_ref::<airlock_router::RouteError>() {
        return Some(e.kind());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: impl Into<anyhow::Error>) -> ExitCode {
        Failure::classify(&e.into()).code()
    }

    /// The kinds keep the exit codes of the failures they name, and the first known error
    /// in a chain decides.
    #[test]
    fn kinds_keep_their_exit_codes() {
        use airlock_publisher::registry::RegistryError;
        let unsupported = || RegistryError::Unsupported {
            uri: "ftp://x".into(),
        };
        let publish = airlock_publisher::publish::PublishError::from(unsupported());
        assert_eq!(code(publish), ExitCode::from(3));
        let pull = airlock_publisher::pull::PullError::from(unsupported());
        assert_eq!(code(pull), ExitCode::from(1));
        let refused = airlock_publisher::publish::PublishError::ResidencyRefused {
            destination: "s3://b".into(),
            why: "w".into(),
        };
        assert_eq!(
            code(anyhow::Error::from(refused).context("publishing")),
            ExitCode::from(7)
        );
        let leak = airlock_packager::PackageError::LeakRefused {
            layers: vec!["L1 pii".into()],
            report: "r".into(),
        };
        assert_eq!(code(leak), ExitCode::from(5));
        // A registry error alone is looked through: no kind of its own decides.
        assert_eq!(code(unsupported()), ExitCode::from(1));
        assert_eq!(
            Failure::of_kind(ErrorKind::VerificationFailed).code(),
            ExitCode::from(4)
        );
        assert_eq!(
            Failure::of_kind(ErrorKind::Failed).code(),
            ExitCode::from(1)
        );
        assert_eq!(
            Failure::of_kind(ErrorKind::Rejected).code(),
            ExitCode::from(8)
        );
        assert_eq!(code(Rejected("r".into())), ExitCode::from(8));
        assert_eq!(code(AwaitingApproval("b".into())), ExitCode::from(6));
    }
}
