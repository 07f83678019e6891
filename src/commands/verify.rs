//! `airlock verify`: every check of a bundle, and with --require-approvals its k-of-n.

use airlock_trust::approvals::{ApprovalSummary, evaluate};
use airlock_trust::{GateOptions, Refusal, Trust, Verification, admit};

use crate::cli::VerifyArgs;
use crate::exit;

/// Print every check; fail (exit 4) unless all hold (and the approvals count).
pub fn run(a: &VerifyArgs) -> anyhow::Result<()> {
    let trust = Trust::load(&a.trust)?;
    if !a.bundle.is_dir() {
        anyhow::bail!(exit::BadInputError(format!(
            "{} is not a bundle directory",
            a.bundle.display()
        )));
    }
    let threads = a.threads.unwrap_or_else(super::cores);
    let verified = if a.require_approvals {
        gate(a, &trust, threads)
    } else {
        // A report: nothing here uses the model's bytes, so they are streamed through
        // the digests and not kept (the same checks, at the hardware limit).
        let v = airlock_trust::verify_bundle_streamed(&a.bundle, &trust, threads, a.full_digest);
        report(&v, None)
    };
    if verified {
        println!("verified: {}", a.bundle.display());
        Ok(())
    } else {
        Err(exit::VerificationFailed(a.bundle.display().to_string()).into())
    }
}

/// --require-approvals: the gate every command that acts on a release goes through
/// ([`admit`]), its checks and decisions printed. Whether it admitted the bundle.
fn gate(a: &VerifyArgs, trust: &Trust, threads: usize) -> bool {
    let now = time::OffsetDateTime::now_utc();
    let opts = GateOptions {
        full_digest: a.full_digest,
        now: Some(now),
        ..GateOptions::digest_only(threads)
    };
    // The verdict is admit's; the report lists what it judged.
    match admit(&a.bundle, trust, &opts) {
        Ok(admitted) => {
            report(admitted.verification(), Some(admitted.approvals()));
            true
        }
        Err(Refusal::NotApproved {
            verification,
            approvals,
        }) => {
            report(&verification, Some(&approvals));
            false
        }
        Err(Refusal::DoesNotVerify(v)) => {
            // The decisions are still listed, judged against what was read.
            report(&v, Some(&evaluate(trust, &v, now)));
            false
        }
    }
}

/// Print every check, then the approvals when judged. Whether all held (and counted).
fn report(v: &Verification, approvals: Option<&ApprovalSummary>) -> bool {
    for c in &v.checks {
        eprintln!(
            "  {} {}: {}",
            if c.ok { "ok  " } else { "FAIL" },
            c.name,
            c.detail
        );
    }
    if let Some(s) = approvals {
        print_approvals(s);
    }
    v.ok() && approvals.is_none_or(ApprovalSummary::approved)
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
