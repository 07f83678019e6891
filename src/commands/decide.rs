//! `airlock approve` and `airlock reject`: an officer's signed decision.

use crate::cli::DecideArgs;

/// Sign and record `decision` in the bundle's approvals/.
pub fn run(a: DecideArgs, decision: airlock_schemas::Decision) -> anyhow::Result<()> {
    let trust = airlock_trust::Trust::load(&a.trust)?;
    let path = airlock_trust::approvals::decide(
        &airlock_trust::approvals::DecisionRequest {
            bundle: a.bundle,
            key: a.key,
            name: a.name,
            reason: a.reason,
            decision,
            expires: a.expires,
        },
        &trust,
        super::cores(),
    )?;
    eprintln!("recorded: {}", path.display());
    Ok(())
}
