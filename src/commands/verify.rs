//! `airlock verify`: every check of a bundle, and with --require-approvals its k-of-n.

use airlock_publisher::pull::PullError;
use airlock_trust::approvals::{ApprovalSummary, evaluate_with};
use airlock_trust::gate::admit_with;
use airlock_trust::{GateOptions, Refusal, Trust, Verification};

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
    if a.require_approvals {
        return gate(a, &trust, threads);
    }
    // A report: nothing here uses the model's bytes, so they are streamed through the
    // digests and not kept (the same checks, at the hardware limit).
    let v = airlock_trust::verify_bundle_streamed(&a.bundle, &trust, threads, a.full_digest);
    if report(&v, None) {
        println!("verified: {}", a.bundle.display());
        Ok(())
    } else {
        Err(exit::VerificationFailed(a.bundle.display().to_string()).into())
    }
}

/// The decisions in `--inbox` for the release the bundle's statement names (read
/// strictly; what was skipped is reported).
fn inbox(a: &VerifyArgs, trust: &Trust, threads: usize) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let Some(uri) = &a.inbox else {
        return Ok(Vec::new());
    };
    let v = airlock_trust::verify_bundle_streamed(&a.bundle, trust, threads, false);
    let Some(st) = v.statement.as_ref() else {
        // The gate reports why it does not verify.
        return Ok(Vec::new());
    };
    let registry = airlock_publisher::registry::open(uri, || {
        airlock_publisher::aws::Aws::load(a.aws.options())
    })
    .map_err(PullError::from)?;
    let read = airlock_publisher::inbox::read_inbox(
        registry.as_ref(),
        &st.predicate.model_name,
        &st.predicate.model_version,
    )
    .map_err(PullError::from)?;
    for why in &read.skipped {
        eprintln!("  inbox: skipped {why}");
    }
    Ok(read.decisions)
}

/// --require-approvals: the gate every command that acts on a release goes through
/// ([`admit_with`], with the inbox's decisions), its checks and decisions printed. Exit 4
/// when it does not verify, 6 while pending, 8 when a valid rejection blocks it.
fn gate(a: &VerifyArgs, trust: &Trust, threads: usize) -> anyhow::Result<()> {
    let now = time::OffsetDateTime::now_utc();
    let opts = GateOptions {
        full_digest: a.full_digest,
        now: Some(now),
        ..GateOptions::digest_only(threads)
    };
    let extra = inbox(a, trust, threads)?;
    // The verdict is admit's; the report lists what it judged.
    let refusal = match admit_with(&a.bundle, trust, &opts, &extra) {
        Ok(admitted) => {
            report(admitted.verification(), Some(admitted.approvals()));
            println!("verified: {}", a.bundle.display());
            return Ok(());
        }
        Err(r) => r,
    };
    match &refusal {
        Refusal::DoesNotVerify(v) => {
            // The decisions are still listed, judged against what was read.
            report(v, Some(&evaluate_with(trust, v, &extra, now)));
            Err(exit::VerificationFailed(a.bundle.display().to_string()).into())
        }
        Refusal::NotApproved {
            verification,
            approvals,
            ..
        } => {
            report(verification, Some(approvals));
            eprintln!("  waiting: {refusal}");
            Err(exit::AwaitingApproval(a.bundle.display().to_string()).into())
        }
        Refusal::Rejected {
            verification,
            approvals,
        } => {
            report(verification, Some(approvals));
            Err(exit::Rejected(format!("{}: {refusal}", a.bundle.display())).into())
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
            airlock_publisher::audit::printable(d.officer.as_deref().unwrap_or("?")),
            airlock_publisher::audit::printable(&d.file),
            airlock_publisher::audit::printable(&d.why)
        );
    }
}
