//! The gate: verify a bundle, judge its approvals, and either hand back an [`Admitted`]
//! release or say why not ([`Refusal`]).
//!
//! Every command that acts on a release (serve, publish, pull, the gate of `airlock run`)
//! goes through [`admit`]. An [`Admitted`] can only be made here: it holds the bytes that
//! were verified, so a caller never reads the bundle's files a second time (a file swapped
//! between the check and the use is not what is used).

use std::fmt;
use std::path::{Path, PathBuf};

use airlock_schemas::{ErrorKind, ReleasePredicate, Statement};
use time::OffsetDateTime;

use crate::approvals::{ApprovalSummary, evaluate_with, short_id, who};
use crate::bundle::{BundleFiles, MODEL_FILE};
use crate::verify::{ModelBytes, Trust, Verification, VerifyOptions, verify_bundle_with};

/// How [`admit`] reads the bundle.
#[derive(Debug, Clone, Copy)]
pub struct GateOptions {
    /// Threads for the model's shard digests.
    pub threads: usize,
    /// Also recompute the whole-file SHA-256 of a large model.
    pub full_digest: bool,
    /// Keep the model's verified bytes (serve, publish) or only digest them (pull's checks,
    /// the gate of `airlock run`): see [`ModelBytes`].
    pub model: ModelBytes,
    /// When keys and decisions are judged; `None`: now.
    pub now: Option<OffsetDateTime>,
}

impl GateOptions {
    /// Keep the model's bytes: for callers that use the model.
    pub fn keep(threads: usize) -> Self {
        Self {
            threads,
            full_digest: false,
            model: ModelBytes::Keep,
            now: None,
        }
    }

    /// Only digest the model: for callers that count and report.
    pub fn digest_only(threads: usize) -> Self {
        Self {
            model: ModelBytes::DigestOnly,
            ..Self::keep(threads)
        }
    }
}

/// A release that verified against the trust policy and has its k approvals and no valid
/// rejection. Only [`admit`] makes one.
#[derive(Debug)]
pub struct Admitted {
    dir: PathBuf,
    verification: Verification,
    approvals: ApprovalSummary,
    model_sha256: String,
}

impl Admitted {
    /// Where the bundle was read from (for messages; never read it again).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The verified release statement.
    pub fn statement(&self) -> &Statement<ReleasePredicate> {
        // admit() only builds an Admitted from a verification whose statement held.
        self.verification
            .statement
            .as_ref()
            .unwrap_or_else(|| unreachable!("an admitted release has a verified statement"))
    }

    /// The statement's bytes as signed.
    pub fn statement_bytes(&self) -> &[u8] {
        &self.verification.statement_bytes
    }

    /// The bundle's closed set of files, as verified.
    pub fn files(&self) -> &BundleFiles {
        &self.verification.files
    }

    /// One verified file.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.verification.files.get(name)
    }

    /// The verified model's bytes: an error when the gate only digested them
    /// ([`ModelBytes::DigestOnly`]).
    pub fn model(&self) -> Result<&[u8], String> {
        self.verification.model()
    }

    /// The model's SHA-256, as signed (and matched against its bytes).
    pub fn model_sha256(&self) -> &str {
        &self.model_sha256
    }

    /// The judged decisions.
    pub fn approvals(&self) -> &ApprovalSummary {
        &self.approvals
    }

    /// Every check that held.
    pub fn verification(&self) -> &Verification {
        &self.verification
    }
}

/// Why [`admit`] refused a bundle.
#[derive(Debug)]
pub enum Refusal {
    /// A check failed: the verification, with every check, for the caller to list.
    DoesNotVerify(Box<Verification>),
    /// It verified, no valid rejection blocks it, but its approvals do not count to k yet:
    /// pending.
    NotApproved {
        /// The (passing) verification.
        verification: Box<Verification>,
        /// The judged decisions.
        approvals: ApprovalSummary,
        /// The trust policy's officer keys with no decision that counts: `(key name, key
        /// id)`.
        undecided: Vec<(String, String)>,
    },
    /// It verified, and an officer's valid rejection blocks it (whatever the approvals):
    /// decided against, not pending. Cleared only by that officer deciding again or by a
    /// new version.
    Rejected {
        /// The (passing) verification.
        verification: Box<Verification>,
        /// The judged decisions ([`ApprovalSummary::rejections`] names who rejected).
        approvals: ApprovalSummary,
    },
}

impl Refusal {
    /// The verification, whichever the refusal.
    pub fn verification(&self) -> &Verification {
        match self {
            Self::DoesNotVerify(v)
            | Self::NotApproved {
                verification: v, ..
            }
            | Self::Rejected {
                verification: v, ..
            } => v,
        }
    }

    /// The judged decisions, when the bundle verified.
    pub fn approvals(&self) -> Option<&ApprovalSummary> {
        match self {
            Self::DoesNotVerify(_) => None,
            Self::NotApproved { approvals, .. } | Self::Rejected { approvals, .. } => {
                Some(approvals)
            }
        }
    }

    /// What kind of refusal: [`ErrorKind::Rejected`] for a valid rejection,
    /// [`ErrorKind::VerificationFailed`] otherwise (pending is a caller's own code).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Rejected { .. } => ErrorKind::Rejected,
            Self::DoesNotVerify(_) | Self::NotApproved { .. } => ErrorKind::VerificationFailed,
        }
    }

    /// The failed checks, one `name: detail` per line.
    pub fn failed_checks(&self) -> Vec<String> {
        self.verification()
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DoesNotVerify(_) => f.write_str("the bundle does not verify"),
            Self::NotApproved {
                approvals: s,
                undecided,
                ..
            } => f.write_str(&pending_message(s, undecided)),
            Self::Rejected { approvals: s, .. } => f.write_str(&rejected_message(s)),
        }
    }
}

/// Pending: how many approvals count of k, who approved, and which officer keys have not
/// decided.
pub fn pending_message(s: &ApprovalSummary, undecided: &[(String, String)]) -> String {
    let approved: Vec<String> = s.counted_approvals().into_iter().map(who).collect();
    let waiting: Vec<String> = undecided
        .iter()
        .map(|(name, id)| format!("{name} (key {})", short_id(id)))
        .collect();
    format!(
        "{} of {} required officer approvals; approved by: {}; not decided: {}",
        s.approvals,
        s.required,
        if approved.is_empty() {
            "nobody yet".to_owned()
        } else {
            approved.join(", ")
        },
        if waiting.is_empty() {
            "no other officer key of the trust policy".to_owned()
        } else {
            waiting.join(", ")
        }
    )
}

/// Rejected: each rejecting officer (their name and the trust policy's key name) and
/// reason, and how to clear it.
pub fn rejected_message(s: &ApprovalSummary) -> String {
    let by: Vec<String> = s
        .rejections()
        .into_iter()
        .map(|d| {
            format!(
                "{} rejected it: {:?}",
                who(d),
                d.reason.as_deref().unwrap_or("")
            )
        })
        .collect();
    format!(
        "rejected by an officer: {} ({} of {} approvals count, but a valid rejection blocks          the release whatever the approvals). To clear it, the officer decides again          (`airlock approve` with the same key replaces the rejection), or a new version is          released",
        by.join("; "),
        s.approvals,
        s.required
    )
}

impl std::error::Error for Refusal {}

/// Verify the bundle at `dir` against `trust` and count its approvals: an [`Admitted`]
/// release when every check held and the approvals reach the policy's k with no valid
/// rejection, else the [`Refusal`] that says which.
pub fn admit(dir: &Path, trust: &Trust, opts: &GateOptions) -> Result<Admitted, Refusal> {
    admit_with(dir, trust, opts, &[])
}

/// [`admit`], judging decisions from an approvals inbox (`(file name, bytes)`, see
/// [`crate::approvals::evaluate_with`]) together with the bundle's. Nothing is written:
/// the admitted release's [`Admitted::files`] are the bundle's.
pub fn admit_with(
    dir: &Path,
    trust: &Trust,
    opts: &GateOptions,
    inbox: &[(String, Vec<u8>)],
) -> Result<Admitted, Refusal> {
    let now = opts.now.unwrap_or_else(OffsetDateTime::now_utc);
    let verification = verify_bundle_with(
        dir,
        trust,
        &VerifyOptions {
            threads: opts.threads,
            full_digest: opts.full_digest,
            model: opts.model,
            now: Some(now),
        },
    );
    if !verification.ok() {
        return Err(Refusal::DoesNotVerify(Box::new(verification)));
    }
    let approvals = evaluate_with(trust, &verification, inbox, now);
    if approvals.rejected {
        return Err(Refusal::Rejected {
            verification: Box::new(verification),
            approvals,
        });
    }
    if !approvals.approved() {
        let undecided = approvals.undecided(trust);
        return Err(Refusal::NotApproved {
            verification: Box::new(verification),
            approvals,
            undecided,
        });
    }
    let model_sha256 = verification
        .statement
        .as_ref()
        .and_then(|st| st.subject.iter().find(|s| s.name == MODEL_FILE))
        .and_then(|s| s.digest.get("sha256").cloned());
    let Some(model_sha256) = model_sha256 else {
        // verify() already requires the model among the subjects; keep the gate closed
        // should that ever change.
        let mut verification = verification;
        verification.checks.push(crate::verify::Check {
            name: "model subject",
            ok: false,
            detail: format!("the statement names no {MODEL_FILE} digest"),
        });
        return Err(Refusal::DoesNotVerify(Box::new(verification)));
    };
    Ok(Admitted {
        dir: dir.to_owned(),
        verification,
        approvals,
        model_sha256,
    })
}
