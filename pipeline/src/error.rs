//! The run's own refusals, for the caller to tell apart (the `airlock` binary maps each to
//! its exit code).

/// Why `airlock run` stopped short of a release, where it is not an error of a library it
/// calls (those come through unchanged: the trainer's, packager's, publisher's, ...).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Stopped at the approval gate: the bundle waits for the officers (its path).
    #[error("release {0} is waiting for officer approvals")]
    AwaitingApproval(String),
    /// An officer's valid rejection blocks the release (the message names the officer, the
    /// reason and how to clear it).
    #[error("{0}")]
    Rejected(String),
    /// The bundle did not verify at the gate (its path; the failed checks were printed).
    #[error("{0} does not verify")]
    VerificationFailed(String),
    /// Input refused by the run itself: the data source, or `--from` with nothing to start
    /// from.
    #[error("{0}")]
    BadInput(String),
}
