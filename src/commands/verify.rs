//! `airlock verify`: every check of a bundle, and with --require-approvals its k-of-n.

use airlock_trust::approvals::ApprovalSummary;

use crate::cli::VerifyArgs;
use crate::exit;

/// Print every check; fail (exit 4) unless all hold (and the approvals count).
pub fn run(a: &VerifyArgs) -> anyhow::Result<()> {
    let trust = airlock_trust::Trust::load(&a.trust)?;
    if !a.bundle.is_dir() {
        anyhow::bail!(exit::BadInputError(format!(
            "{} is not a bundle directory",
            a.bundle.display()
        )));
    }
    // A report: nothing here uses the model's bytes, so they are streamed through
    // the digests and not kept (the same checks, at the hardware limit).
    let v = airlock_trust::verify_bundle_streamed(
        &a.bundle,
        &trust,
        a.threads.unwrap_or_else(super::cores),
        a.full_digest,
    );
    for c in &v.checks {
        eprintln!(
            "  {} {}: {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    let mut approved = true;
    if a.require_approvals {
        let s = airlock_trust::approvals::evaluate(&trust, &v, time::OffsetDateTime::now_utc());
        print_approvals(&s);
        approved = s.approved();
    }
    if v.ok() && approved {
        println!("verified: {}", a.bundle.display());
        Ok(())
    } else {
        Err(exit::VerificationFailed(a.bundle.display().to_string()).into())
    }
}

/// The approvals line and one line per decision.
fn print_approvals(s: &ApprovalSummary) {
    eprintln!(
        "  {} approvals: {} of {} required{}",
        if s.approved() { "ok  " } else { "FAIL" },
        s.approvals,
        s.required,
        if s.rejected {
            ", and a valid rejection blocks the release"
        } else {
            ""
        }
    );
    for d in &s.decisions {
        eprintln!(
            "       {} {} by {} ({}): {}",
            if d.counts { "counts " } else { "ignored" },
            d.decision.map_or("?", |d| match d {
                airlock_schemas::Decision::Approve => "approve",
                airlock_schemas::Decision::Reject => "reject",
            }),
            d.officer.as_deref().unwrap_or("?"),
            d.file,
            d.why
        );
    }
}
