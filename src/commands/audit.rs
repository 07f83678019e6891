//! `airlock audit verify` and `airlock audit show`: a residency audit log.

use std::path::Path;

use anyhow::Context as _;

use crate::cli::AwsArgs;
use crate::exit;

/// Verify the log's chain and signed head; with a registry, also its witnesses.
pub fn verify(
    log: &Path,
    trust: &Path,
    registry: Option<&str>,
    aws: &AwsArgs,
) -> anyhow::Result<()> {
    let trust = airlock_trust::Trust::load(trust)?;
    match airlock_publisher::audit::verify_chain(log, &trust) {
        Ok(chain) => {
            println!(
                "verified: {} entries, head signed by a publisher key",
                chain.len()
            );
            match registry {
                Some(uri) => witness(log, &chain, uri, &trust, aws),
                None => Ok(()),
            }
        }
        Err(e @ airlock_publisher::audit::AuditError::Invalid { .. }) => {
            eprintln!("  FAIL {e}");
            Err(exit::VerificationFailed(log.display().to_string()).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Print the log's entries as a table, unverified.
pub fn show(log: &Path) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(log).with_context(|| format!("cannot read {}", log.display()))?;
    let (entries, _) = airlock_publisher::audit::parse_chain(&text)
        .map_err(|p| exit::BadInputError(format!("{}: {p}", log.display())))?;
    print!("{}", airlock_publisher::audit::table(&entries));
    Ok(())
}

/// `airlock audit verify --registry`: the registry's witnesses against a verified log.
fn witness(
    log: &Path,
    chain: &airlock_publisher::audit::Chain,
    uri: &str,
    trust: &airlock_trust::Trust,
    aws: &AwsArgs,
) -> anyhow::Result<()> {
    use airlock_publisher::witness;
    let registry = airlock_publisher::registry::open(uri, || {
        airlock_publisher::aws::Aws::load(aws.options())
    })?;
    let name = witness::copy_name(log);
    match witness::check_log(chain, &name, registry.as_ref(), trust) {
        Ok(r) => {
            println!(
                "verified against {uri}: its copy of the signed head (entry {}) is a point of the log; {} release(s) recorded in it{}",
                r.head_seq,
                r.releases.len(),
                if r.other_logs > 0 {
                    format!(
                        " ({} recorded in other audit logs, not checked)",
                        r.other_logs
                    )
                } else {
                    String::new()
                }
            );
            for (n, v, seq) in &r.releases {
                println!("  {n} {v}: entry {seq}");
            }
            Ok(())
        }
        Err(witness::WitnessError::Refused(why)) => {
            eprintln!("  FAIL {}: {why}", log.display());
            Err(exit::VerificationFailed(log.display().to_string()).into())
        }
        Err(witness::WitnessError::Registry(e)) => Err(e.into()),
    }
}
