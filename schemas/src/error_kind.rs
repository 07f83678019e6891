//! The one classification of failures shared by airlock's libraries: every library error
//! says which kind it is ([`ErrorKind`], through its `kind()`), and the CLI turns the kind
//! into its exit code. Each `kind()` is an exhaustive match, so a new variant must be
//! placed.

/// What kind of failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A file-system operation failed.
    Io,
    /// A remote service (an S3 registry, SageMaker) failed, refused a request or returned
    /// something other than what was sent.
    Remote,
    /// The machine or its configuration failed: a runtime that cannot start, no AWS
    /// region, an audit log another process holds.
    Environment,
    /// The work itself failed on good input in a working environment (training diverged).
    Failed,
    /// The input was refused: a pipeline file, data, a device choice, an output directory,
    /// a key, a trust or residency policy, a flag's value. The operator fixes the input.
    BadInput,
    /// A bundle, a release or an audit log does not verify, or a release lacks its
    /// approvals: the release is refused.
    VerificationFailed,
    /// A leak check refused the release, or could not run (fail closed).
    LeakRefused,
    /// The residency policy refused a destination (nothing was sent).
    ResidencyRefused,
    /// The release verified but an officer's valid rejection blocks it: it is not pending,
    /// it was decided against (the officer decides again, or a new version is released).
    Rejected,
}
