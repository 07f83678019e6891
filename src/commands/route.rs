//! `airlock route`: the split-inference gateway.

use crate::cli::RouteArgs;
use crate::exit::VerificationFailed;

/// Route until stopped, or (`--check`) check once.
pub fn run(a: &RouteArgs) -> anyhow::Result<()> {
    let opts = airlock_router::RouteOptions {
        policy: a.policy.clone(),
        aws: a.aws.options(),
        workers: None,
        header_timeout: a.header_timeout,
        body_timeout: a.body_timeout,
        max_connections: a.max_connections as usize,
    };
    if a.check {
        if airlock_router::check(&opts)? {
            return Ok(());
        }
        return Err(VerificationFailed(format!("an upstream of {}", a.policy.display())).into());
    }
    airlock_router::route(&opts)?;
    Ok(())
}
