//! Exit codes: scripts and CI tell failure kinds apart by them.

use std::process::ExitCode;

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
}

/// `airlock run` stopped at the approval gate.
#[derive(Debug, thiserror::Error)]
#[error("release {0} is waiting for officer approvals")]
pub struct AwaitingApproval(pub String);

/// A bundle failed verification (the checks were printed).
#[derive(Debug, thiserror::Error)]
#[error("{0} does not verify")]
pub struct VerificationFailed(pub String);

/// Input refused by the CLI itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInputError(pub String);

impl Failure {
    /// Classify an error chain by the typed errors in it.
    pub fn classify(err: &anyhow::Error) -> Self {
        for cause in err.chain() {
            if cause.downcast_ref::<AwaitingApproval>().is_some() {
                return Self::AwaitingApproval;
            }
            if cause.downcast_ref::<VerificationFailed>().is_some() {
                return Self::Verification;
            }
            if cause.downcast_ref::<BadInputError>().is_some()
                || cause
                    .downcast_ref::<airlock_trust::keys::KeyError>()
                    .is_some()
                || cause.downcast_ref::<airlock_trust::TrustError>().is_some()
            {
                return Self::BadInput;
            }
            if let Some(e) = cause.downcast_ref::<airlock_trust::approvals::ApprovalError>() {
                return match e {
                    airlock_trust::approvals::ApprovalError::BundleInvalid { .. } => {
                        Self::Verification
                    }
                    airlock_trust::approvals::ApprovalError::Io { .. } => Self::Environment,
                    _ => Self::BadInput,
                };
            }
            if let Some(e) = cause.downcast_ref::<airlock_publisher::publish::PublishError>() {
                use airlock_publisher::publish::PublishError as P;
                return match e {
                    P::NotApproved { .. } | P::AuditRefused { .. } => Self::Verification,
                    P::ResidencyRefused { .. } => Self::ResidencyRefused,
                    P::LeakRefused { .. } | P::ScanUnavailable { .. } => Self::LeakRefused,
                    P::Registry(airlock_publisher::registry::RegistryError::Unsupported {
                        ..
                    })
                    | P::Registry(airlock_publisher::registry::RegistryError::UnsafeKey {
                        ..
                    })
                    | P::Usage(_) => Self::BadInput,
                    P::Registry(_) | P::Audit(_) | P::Io { .. } | P::Aws(_) | P::SageMaker(_) => {
                        Self::Environment
                    }
                    _ => Self::BadInput,
                };
            }
            if let Some(e) = cause.downcast_ref::<airlock_publisher::pull::PullError>() {
                use airlock_publisher::pull::PullError as P;
                return match e {
                    P::Refused { .. } => Self::Verification,
                    P::Registry(_) | P::Io { .. } => Self::Environment,
                    _ => Self::BadInput,
                };
            }
            if let Some(e) = cause.downcast_ref::<airlock_packager::PackageError>() {
                return match e {
                    airlock_packager::PackageError::LeakRefused { .. } => Self::LeakRefused,
                    airlock_packager::PackageError::Io { .. } => Self::Environment,
                    _ => Self::BadInput,
                };
            }
            if let Some(e) = cause.downcast_ref::<airlock_trainer::TrainError>() {
                return if e.is_bad_input() {
                    Self::BadInput
                } else {
                    Self::Environment
                };
            }
            if cause.downcast_ref::<airlock_model::DataError>().is_some()
                || cause
                    .downcast_ref::<airlock_schemas::PipelineError>()
                    .is_some()
                || cause.downcast_ref::<airlock_infer::DeviceError>().is_some()
            {
                return Self::BadInput;
            }
            if let Some(e) = cause.downcast_ref::<airlock_infer::PredictError>() {
                return match e {
                    airlock_infer::PredictError::Data(_)
                    | airlock_infer::PredictError::Run { .. }
                    | airlock_infer::PredictError::Checkpoint(_) => Self::BadInput,
                };
            }
        }
        Self::Environment
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
        })
    }
}
