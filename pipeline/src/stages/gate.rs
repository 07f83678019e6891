//! The gate: the bundle must verify, and its approvals reach the trust policy's k with no
//! valid rejection. Judged on every run, through [`airlock_trust::admit`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use airlock_schemas::Decision;
use airlock_trust::approvals::{ApprovalSummary, DecisionRequest, decide, evaluate};
use airlock_trust::{GateOptions, Refusal, Verification, admit};

use crate::demo::DEMO_OFFICERS;
use crate::pipeline::Pipeline;
use crate::runner::{Line, Runner};
use crate::state::approval_digests;
use crate::{RunError, Stage};

impl Pipeline<'_> {
    /// Verify the bundle and count approvals (DEMO: approve with the demo officers). Returns
    /// the approval files by digest, or stops the run at the gate with the officers' commands.
    pub fn gate(
        &self,
        r: &mut Runner<'_>,
        bundle: &Path,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        r.begin(Stage::Gate);
        tracing::info!("== gate (verify the bundle, count approvals)");
        let t = Instant::now();
        let mut s = match self.judge(bundle) {
            Ok(s) => s,
            Err(v) => {
                for c in v.checks.iter().filter(|c| !c.ok) {
                    eprintln!("  FAIL {}: {}", c.name, c.detail);
                }
                anyhow::bail!(RunError::VerificationFailed(bundle.display().to_string()));
            }
        };
        if self.demo && !s.approved() {
            self.demo_approve(bundle)?;
            // Decisions are judged from the bytes verify read: read the bundle again.
            s = self
                .judge(bundle)
                .unwrap_or_else(|v| evaluate(&self.trust, &v, time::OffsetDateTime::now_utc()));
        }
        let count = format!("{} of {} officer approvals", s.approvals, s.required);
        let rejected = if s.rejected {
            " (a valid rejection blocks it)"
        } else {
            ""
        };
        tracing::info!(
            "  {} of {} required officer approvals{rejected}",
            s.approvals,
            s.required
        );
        if !s.approved() {
            return Err(self.waiting(r, bundle, count, rejected));
        }
        r.lines.push(Line {
            stage: Stage::Gate,
            what: "passed".into(),
            secs: Some(t.elapsed().as_secs_f64()),
            detail: count,
        });
        approval_digests(bundle)
    }

    /// The bundle's approvals as the gate judges them, or the verification that failed.
    /// The gate only counts: the model's bytes are digested, not kept (publish verifies
    /// again and keeps the bytes it uploads).
    fn judge(&self, bundle: &Path) -> Result<ApprovalSummary, Box<Verification>> {
        match admit(
            bundle,
            &self.trust,
            &GateOptions::digest_only(self.opts.threads),
        ) {
            Ok(admitted) => Ok(admitted.approvals().clone()),
            Err(Refusal::NotApproved { approvals, .. }) => Ok(approvals),
            Err(Refusal::DoesNotVerify(v)) => Err(v),
        }
    }

    /// DEMO: the local demo officers approve.
    fn demo_approve(&self, bundle: &Path) -> anyhow::Result<()> {
        tracing::warn!("  DEMO: automatic approval by local demo officers; not a real review");
        for officer in DEMO_OFFICERS {
            decide(
                &DecisionRequest {
                    bundle: bundle.to_owned(),
                    key: self.under("demo/keys").join(format!("{officer}.key")),
                    name: format!("{officer} (DEMO)"),
                    reason: "DEMO auto-approval by airlock's local demo officer; nobody reviewed this release".into(),
                    decision: Decision::Approve,
                    expires: Some("30d".into()),
                },
                &self.trust,
                self.opts.threads,
            )?;
        }
        Ok(())
    }

    /// The run stops at the gate: the summary with the officers' commands, the bundle on
    /// stdout, and the error that says so.
    fn waiting(
        &self,
        r: &mut Runner<'_>,
        bundle: &Path,
        count: String,
        rejected: &str,
    ) -> anyhow::Error {
        r.lines.push(Line {
            stage: Stage::Gate,
            what: "waiting".into(),
            secs: None,
            detail: count,
        });
        let b = bundle.display();
        let tp = self.trust_path.display();
        let p = self.opts.pipeline.display();
        r.summary(
            &self.title,
            &[format!(
                "release {} is packaged, signed and waiting for approval{rejected}. Each \
                 officer reviews and decides with:\n\n    \
                 airlock review {b} --trust {tp} --out review.html\n    \
                 airlock approve {b} --trust {tp} --key <officer.key> --name \"<your name>\" --reason \"<why>\"\n\n  \
                 then run `airlock run {p}` again: it resumes at the gate.",
                self.name
            )],
        );
        println!("{b}");
        RunError::AwaitingApproval(b.to_string()).into()
    }
}
