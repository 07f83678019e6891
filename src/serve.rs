//! `airlock serve`: the `airlock-serve` crate (SageMaker's container contract for a bundle
//! that verifies and is approved), with its errors told apart as the CLI always has.

use airlock_serve::ServeError;
pub use airlock_serve::{Limits, ServeOptions, parse_seconds};

use crate::exit::VerificationFailed;

/// Verify, load, serve until SIGTERM or SIGINT (see [`airlock_serve::serve`]). A refused
/// bundle is a [`VerificationFailed`]; trust policy and device errors keep their own types,
/// so that `Failure::classify` gives each its exit code.
pub fn serve(opts: &ServeOptions) -> anyhow::Result<()> {
    airlock_serve::serve(opts).map_err(|e| match e {
        ServeError::Refused { .. } => VerificationFailed(e.to_string()).into(),
        ServeError::Trust(e) => e.into(),
        ServeError::Device(e) => e.into(),
        e @ (ServeError::Config(_) | ServeError::System { .. } | ServeError::Os(_)) => e.into(),
    })
}
