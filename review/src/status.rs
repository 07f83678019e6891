//! Where a release stands: the page's banner and the summary's status line.

use airlock_schemas::Verdict;

use crate::ReviewInput;
use crate::format::{capitalize, verdict_word};

/// Where a release stands, as the page's banner says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewStatus {
    /// A check failed (or nothing was checked): no decision should be taken on it.
    DoesNotVerify,
    /// A valid officer rejection blocks the release.
    Rejected,
    /// Enough valid approvals and no rejection.
    Approved,
    /// Verifies, waiting for approvals.
    ReadyToApprove,
}

impl ReviewStatus {
    /// The banner's CSS class.
    pub(crate) fn class(self) -> &'static str {
        match self {
            ReviewStatus::DoesNotVerify => "status-broken",
            ReviewStatus::Rejected => "status-rejected",
            ReviewStatus::Approved => "status-approved",
            ReviewStatus::ReadyToApprove => "status-pending",
        }
    }

    /// The banner's `data-status`, for scripts and tests that read the page.
    pub(crate) fn data(self) -> &'static str {
        match self {
            ReviewStatus::DoesNotVerify => "does-not-verify",
            ReviewStatus::Rejected => "rejected",
            ReviewStatus::Approved => "approved",
            ReviewStatus::ReadyToApprove => "ready",
        }
    }
}

/// The banner state of `input`. Verification comes first: approvals of bytes that do not
/// verify mean nothing, so a failed check outranks every decision.
pub fn review_status(input: &ReviewInput<'_>) -> ReviewStatus {
    if !verifies(input) {
        ReviewStatus::DoesNotVerify
    } else if input.approvals.rejected {
        ReviewStatus::Rejected
    } else if input.approvals.approved() {
        ReviewStatus::Approved
    } else {
        ReviewStatus::ReadyToApprove
    }
}

/// Fail closed: no checks, a failed check, a missing signed statement or a leak report
/// that did not pass all count as "does not verify".
fn verifies(input: &ReviewInput<'_>) -> bool {
    !input.checks.is_empty()
        && input.checks.iter().all(|c| c.ok)
        && input.statement.is_some()
        && input.report.verdict == Verdict::Pass
}

/// The banner's headline.
pub(crate) fn status_headline(input: &ReviewInput<'_>) -> String {
    let a = input.approvals;
    match review_status(input) {
        ReviewStatus::DoesNotVerify => "DOES NOT VERIFY".to_owned(),
        ReviewStatus::Rejected => "Blocked: rejected".to_owned(),
        ReviewStatus::Approved => format!("Approved ({} of {})", a.approvals, a.required),
        ReviewStatus::ReadyToApprove => "Ready to approve".to_owned(),
    }
}

/// The banner's sentence under the headline.
pub(crate) fn status_explanation(input: &ReviewInput<'_>) -> String {
    let a = input.approvals;
    match review_status(input) {
        ReviewStatus::DoesNotVerify => format!(
            "Do not approve: this bundle is not the one that was built and checked, or it \
             failed a check. {}.",
            capitalize(&why_not(input).join("; "))
        ),
        ReviewStatus::Rejected => {
            "An officer rejected this release; it cannot be published while that rejection \
             stands."
                .to_owned()
        }
        ReviewStatus::Approved if a.required == 0 => {
            "Every check passed. The trust policy requires no officer approval.".to_owned()
        }
        ReviewStatus::Approved => format!(
            "Every check passed and {} of {} required officer approvals are in place.",
            a.approvals, a.required
        ),
        ReviewStatus::ReadyToApprove => format!(
            "Every check passed. {} of {} required approvals so far: review the sections below, \
             then approve or reject.",
            a.approvals, a.required
        ),
    }
}

/// Why a release does not verify, one clause per reason.
fn why_not(input: &ReviewInput<'_>) -> Vec<String> {
    let failed: Vec<&str> = input
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| c.name)
        .collect();
    let mut why = Vec::new();
    if input.checks.is_empty() {
        why.push("nothing was verified".to_owned());
    }
    if !failed.is_empty() {
        why.push(format!("failed checks: {}", failed.join(", ")));
    }
    if input.statement.is_none() {
        why.push("the builder's signature on the release statement did not verify".into());
    }
    if input.report.verdict != Verdict::Pass {
        why.push(format!(
            "the leak checks did not pass ({})",
            verdict_word(input.report.verdict)
        ));
    }
    why
}
