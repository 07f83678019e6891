//! `airlock route`: the split-inference gateway, and its demo.

use anyhow::Context as _;

use crate::cli::{RouteArgs, RouteStep};
use crate::exit::VerificationFailed;

/// Route until stopped, check once (`--check`), or run the demo.
pub fn run(a: RouteArgs) -> anyhow::Result<()> {
    if let Some(RouteStep::Demo {
        bundle,
        trust,
        key,
        out,
        requests,
    }) = a.step
    {
        airlock_router::demo::demo(&airlock_router::demo::DemoOptions {
            bundle,
            trust,
            key,
            out,
            requests,
        })?;
        return Ok(());
    }
    let policy = a.policy.context("--policy is required")?;
    let opts = airlock_router::RouteOptions {
        policy: policy.clone(),
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
        return Err(VerificationFailed(format!("an upstream of {}", policy.display())).into());
    }
    airlock_router::route(&opts)?;
    Ok(())
}
