//! The gate: the bundle must verify, and its approvals reach the trust policy's k with no
//! valid rejection. Judged on every run, through [`airlock_trust::admit`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use airlock_publisher::inbox::{Inbox, read_inbox, stage};
use airlock_schemas::Decision;
use airlock_trust::approvals::{
    ApprovalSummary, DecisionRequest, INBOX_PREFIX, decide, who, write_decisions,
};
use airlock_trust::gate::admit_with;
use airlock_trust::{GateOptions, Refusal, Verification};
use anyhow::Context as _;

use crate::demo::DEMO_OFFICERS;
use crate::pipeline::{Destination, Pipeline};
use crate::runner::{Line, Runner};
use crate::state::approval_digests;
use crate::{RunError, Stage};

/// The gate's verdict on a bundle that verified.
enum Verdict {
    Approved(ApprovalSummary),
    Pending(ApprovalSummary, Refusal),
    Rejected(ApprovalSummary, Refusal),
}

impl Verdict {
    fn summary(&self) -> &ApprovalSummary {
        match self {
            Self::Approved(s) | Self::Pending(s, _) | Self::Rejected(s, _) => s,
        }
    }
}

impl Pipeline<'_> {
    /// Verify the bundle and count approvals, the bundle's and (for a pipeline with
    /// `[publish]`) those in the registry's approvals inbox, gathering the inbox's that count
    /// into the bundle (DEMO: approve with the demo officers). Returns the approval files by
    /// digest, or stops the run at the gate: pending (exit 6), the bundle staged for review
    /// and the officers' commands printed; rejected (exit 8), naming the officer and reason.
    pub fn gate(
        &self,
        r: &mut Runner<'_>,
        bundle: &Path,
    ) -> anyhow::Result<BTreeMap<String, String>> {
        r.begin(Stage::Gate);
        tracing::info!("== gate (verify the bundle, count approvals)");
        let t = Instant::now();
        let dest = if self.demo { None } else { self.destination()? };
        let inbox = match &dest {
            Some(d) => self.read_inbox(d)?,
            None => Inbox::default(),
        };
        let mut verdict = self.judge_or_fail(bundle, &inbox.decisions)?;
        if self.gather(bundle, &inbox, verdict.summary())? {
            // The gathered decisions are now the bundle's: judged again from the disk.
            verdict = self.judge_or_fail(bundle, &inbox.decisions)?;
        }
        if self.demo && !verdict.summary().approved() {
            self.demo_approve(bundle)?;
            verdict = self.judge_or_fail(bundle, &[])?;
        }
        let s = verdict.summary();
        let count = format!("{} of {} officer approvals", s.approvals, s.required);
        tracing::info!("  {}", s.progress());
        match verdict {
            Verdict::Approved(_) => {}
            Verdict::Pending(_, refusal) => {
                let staged = match &dest {
                    Some(d) => self.stage_for_review(r, d, bundle)?,
                    None => None,
                };
                return Err(self.waiting(r, bundle, count, &refusal, staged.as_deref()));
            }
            Verdict::Rejected(_, refusal) => {
                r.lines.push(Line {
                    stage: Stage::Gate,
                    what: "rejected".into(),
                    secs: None,
                    detail: count,
                });
                let msg = refusal.to_string();
                r.summary(&self.title, &[format!("release {}: {msg}", self.name)]);
                println!("{}", bundle.display());
                return Err(RunError::Rejected(msg).into());
            }
        }
        r.lines.push(Line {
            stage: Stage::Gate,
            what: "passed".into(),
            secs: Some(t.elapsed().as_secs_f64()),
            detail: count,
        });
        approval_digests(bundle)
    }

    /// The judged bundle (with the inbox's decisions), or the run stops: it does not verify.
    fn judge_or_fail(&self, bundle: &Path, inbox: &[(String, Vec<u8>)]) -> anyhow::Result<Verdict> {
        self.judge(bundle, inbox).map_err(|v| {
            for c in v.checks.iter().filter(|c| !c.ok) {
                eprintln!("  FAIL {}: {}", c.name, c.detail);
            }
            RunError::VerificationFailed(bundle.display().to_string()).into()
        })
    }

    /// The bundle's approvals as the gate judges them, or the verification that failed.
    /// The gate only counts: the model's bytes are digested, not kept (publish verifies
    /// again and keeps the bytes it uploads).
    fn judge(
        &self,
        bundle: &Path,
        inbox: &[(String, Vec<u8>)],
    ) -> Result<Verdict, Box<Verification>> {
        match admit_with(
            bundle,
            &self.trust,
            &GateOptions::digest_only(self.opts.threads),
            inbox,
        ) {
            Ok(admitted) => Ok(Verdict::Approved(admitted.approvals().clone())),
            Err(Refusal::DoesNotVerify(v)) => Err(v),
            Err(r @ Refusal::Rejected { .. }) => Ok(Verdict::Rejected(
                r.approvals().cloned().unwrap_or_default(),
                r,
            )),
            Err(r @ Refusal::NotApproved { .. }) => Ok(Verdict::Pending(
                r.approvals().cloned().unwrap_or_default(),
                r,
            )),
        }
    }

    /// The approvals inbox of this release in the publish registry, read strictly; what
    /// was skipped is reported.
    fn read_inbox(&self, dest: &Destination) -> anyhow::Result<Inbox> {
        let aws = airlock_publisher::aws::AwsOptions {
            region: dest.region.clone(),
            ..Default::default()
        };
        let registry = airlock_publisher::registry::open(&dest.registry, || {
            airlock_publisher::aws::Aws::load(aws)
        })
        .with_context(|| format!("cannot open {} to read the approvals inbox", dest.registry))?;
        let (name, version) = (&self.spec.release.name, &self.spec.release.version);
        let inbox = read_inbox(registry.as_ref(), name, version).with_context(|| {
            format!(
                "cannot read the approvals inbox of {name} {version} in {}",
                dest.registry
            )
        })?;
        for why in &inbox.skipped {
            eprintln!("  inbox: skipped {why}");
        }
        Ok(inbox)
    }

    /// Write the inbox's decisions that count into the bundle's approvals/ (so the
    /// published bundle carries them); report those that do not. Whether any was written.
    fn gather(&self, bundle: &Path, inbox: &Inbox, s: &ApprovalSummary) -> anyhow::Result<bool> {
        let mut take = Vec::new();
        for d in s.decisions.iter() {
            let Some(file) = d.file.strip_prefix(INBOX_PREFIX) else {
                continue;
            };
            if !d.counts {
                eprintln!(
                    "  inbox: {file} does not count: {}",
                    airlock_publisher::audit::printable(&d.why)
                );
                continue;
            }
            if let Some((name, bytes)) = inbox.decisions.iter().find(|(n, _)| n == file) {
                tracing::info!("  inbox: gathered the decision of {}", who(d));
                take.push((name.clone(), bytes.clone()));
            }
        }
        if take.is_empty() {
            return Ok(false);
        }
        write_decisions(bundle, &take).with_context(|| {
            format!(
                "cannot gather the inbox's decisions into {}",
                bundle.display()
            )
        })?;
        Ok(true)
    }

    /// Stage the bundle for review in the publish registry (unless `stage_for_review` is
    /// off). Returns the review URI officers fetch it from.
    fn stage_for_review(
        &self,
        r: &mut Runner<'_>,
        dest: &Destination,
        bundle: &Path,
    ) -> anyhow::Result<Option<String>> {
        if !dest.stage_for_review {
            tracing::info!("  not staged for review ([publish] stage_for_review = false)");
            return Ok(None);
        }
        let s = stage(&self.publish_options(dest, bundle, None)).with_context(|| {
            format!("the bundle was not staged for review in {}", dest.registry)
        })?;
        let (name, version) = (&self.spec.release.name, &self.spec.release.version);
        let uri = format!(
            "{}/review/{name}@{version}",
            dest.registry.trim_end_matches('/')
        );
        if s.already {
            tracing::info!("  staged for review: {uri} (already there)");
        } else {
            tracing::info!(
                "  staged for review: {uri} ({} files, {} bytes, region {})",
                s.uploaded,
                s.uploaded_bytes,
                s.region
            );
            r.crossed.push(format!(
                "{} files, {} bytes → {} for review (region {}; not released)",
                s.uploaded, s.uploaded_bytes, uri, s.region
            ));
        }
        Ok(Some(uri))
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

    /// The run stops at the gate: the summary with who has and has not decided and the
    /// officers' commands, the bundle on stdout, and the error that says so.
    fn waiting(
        &self,
        r: &mut Runner<'_>,
        bundle: &Path,
        count: String,
        refusal: &Refusal,
        staged: Option<&str>,
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
        let commands = match (staged, self.destination().ok().flatten()) {
            (Some(uri), Some(dest)) => {
                let local = format!("{}-{}", self.spec.release.name, self.spec.release.version);
                format!(
                    "staged for review at {uri}. Each officer, on their own machine:\n\n    \
                     airlock review {uri} --trust {tp} --out review.html\n    \
                     airlock approve {local} --trust {tp} --key <officer.key> --name \"<your name>\" --reason \"<why>\" --to {}\n\n  \
                     or, on this machine:\n\n    \
                     airlock approve {b} --trust {tp} --key <officer.key> --name \"<your name>\" --reason \"<why>\"\n",
                    dest.registry
                )
            }
            _ => format!(
                "Each officer reviews and decides with:\n\n    \
                 airlock review {b} --trust {tp} --out review.html\n    \
                 airlock approve {b} --trust {tp} --key <officer.key> --name \"<your name>\" --reason \"<why>\"\n"
            ),
        };
        r.summary(
            &self.title,
            &[format!(
                "release {} is packaged, signed and waiting for approval: {refusal}.\n  \
                 {commands}\n  then run `airlock run {p}` again: it resumes at the gate.",
                self.name
            )],
        );
        println!("{b}");
        RunError::AwaitingApproval(b.to_string()).into()
    }
}
