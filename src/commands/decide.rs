//! `airlock approve` and `airlock reject`: an officer's signed decision, recorded in the
//! bundle and, with `--to`, in the approvals inbox of the registry the release will go to.

use airlock_publisher::aws::Aws;
use airlock_publisher::inbox::{put_decision, read_inbox};
use airlock_trust::Trust;
use airlock_trust::approvals::{ApprovalSummary, evaluate_with};

use crate::cli::DecideArgs;

/// Sign and record `decision` in the bundle's approvals/ (and the inbox); print "k of n
/// now".
pub fn run(a: DecideArgs, decision: airlock_schemas::Decision) -> anyhow::Result<()> {
    let trust = Trust::load(&a.trust)?;
    let bundle = a.bundle.clone();
    let rec = airlock_trust::approvals::record(
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
    eprintln!("recorded: {}", rec.path.display());
    let mut inbox = Vec::new();
    if let Some(to) = &a.to {
        let registry = airlock_publisher::registry::open(to, || Aws::load(a.aws.options()))
            .map_err(airlock_publisher::pull::PullError::from)?;
        let key = put_decision(
            registry.as_ref(),
            &rec.model_name,
            &rec.model_version,
            &rec.keyid,
            &rec.bytes,
        )
        .map_err(airlock_publisher::pull::PullError::from)?;
        eprintln!(
            "sent to the approvals inbox: {}/{key}",
            to.trim_end_matches('/')
        );
        let read = read_inbox(registry.as_ref(), &rec.model_name, &rec.model_version)
            .map_err(airlock_publisher::pull::PullError::from)?;
        inbox = read.decisions;
    }
    let s = summary(&bundle, &trust, &inbox);
    println!("{}", s.progress());
    Ok(())
}

/// The bundle's decisions (and the inbox's) judged as the gate judges them.
fn summary(
    bundle: &std::path::Path,
    trust: &Trust,
    inbox: &[(String, Vec<u8>)],
) -> ApprovalSummary {
    let v = airlock_trust::verify_bundle_streamed(bundle, trust, super::cores(), false);
    evaluate_with(trust, &v, inbox, time::OffsetDateTime::now_utc())
}
