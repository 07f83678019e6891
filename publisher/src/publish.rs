//! `airlock publish`: a verified, approved bundle into a registry the residency policy
//! allows, every step (refusals included) in the audit log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use airlock_schemas::{
    AuditAction, AuditEntry, AuditPoint, ErrorKind, IoError, KeyRole, ReleaseIndex, ResidencyPolicy,
};
use airlock_trust::keys::{KeyError, Signer};
use airlock_trust::{
    APPROVALS_DIR, Admitted, GateOptions, MODEL_FILE, Refusal, Trust, admit, approvals,
};
use sha2::{Digest, Sha256};

use crate::audit::{AuditError, AuditLog, NewEntry, head_path};
use airlock_trust::shards::sha256_hex;

use crate::aws::{Aws, AwsOptions};
use crate::registry::{Location, Registry, RegistryError, index_key, open};
use crate::sagemaker::{Release, SageMakerError, SageMakerOptions};

/// Why a publish did not happen.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The publisher key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The trust policy.
    #[error(transparent)]
    Trust(#[from] airlock_trust::TrustError),
    /// The residency policy file.
    #[error("invalid residency policy {}: {message}", path.display())]
    Residency {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The key may not publish.
    #[error("key {keyid} is not a publisher key of the trust policy")]
    NotAPublisher {
        /// Key id.
        keyid: String,
    },
    /// The publisher key is revoked or outside its validity window.
    #[error("refusing to publish with key {keyid}: {why}")]
    PublisherKeyUnusable {
        /// Key id.
        keyid: String,
        /// Why it does not count.
        why: String,
    },
    /// The bundle does not verify or lacks approvals (recorded in the audit log).
    #[error("refused to publish {}: {why}", bundle.display())]
    NotApproved {
        /// The bundle.
        bundle: PathBuf,
        /// Why.
        why: String,
    },
    /// The destination is not allowed (recorded in the audit log; nothing was sent).
    #[error("refused to publish to {destination}: {why}")]
    ResidencyRefused {
        /// Destination URI.
        destination: String,
        /// Why.
        why: String,
    },
    /// The version is already published with other content.
    #[error(
        "{destination} already holds {name} {version} with different content; publish a new version"
    )]
    VersionExists {
        /// Destination.
        destination: String,
        /// Model name.
        name: String,
        /// Version.
        version: String,
    },
    /// Registry failure.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// AWS could not be set up.
    #[error(transparent)]
    Aws(#[from] crate::aws::AwsSetupError),
    /// A SageMaker step failed (recorded in the audit log when it was a deploy).
    #[error(transparent)]
    SageMaker(#[from] SageMakerError),
    /// Options that cannot go together.
    #[error("{0}")]
    Usage(String),
    /// Audit log failure: nothing is published without its record.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// The audit log was cut, rewritten or signed without the publisher key, or the
    /// registry's copy of it is ahead of it: nothing is appended to it and nothing is sent.
    #[error("refused to publish: audit log {}: {why}; nothing was sent", log.display())]
    AuditRefused {
        /// The log.
        log: PathBuf,
        /// Why.
        why: String,
    },
    /// The leak scan found PII or training data in what would leave (nothing was sent).
    #[error(
        "refused to publish {}: what would leave holds PII or training data ({}); nothing was sent",
        bundle.display(),
        findings.join("; ")
    )]
    LeakRefused {
        /// The bundle.
        bundle: PathBuf,
        /// Where (never what), at most a few.
        findings: Vec<String>,
    },
    /// The leak scan of what would leave could not run: fail closed (nothing was sent).
    #[error("refused to publish {}: the leak scan of what would leave cannot run: {why}; nothing was sent", bundle.display())]
    ScanUnavailable {
        /// The bundle.
        bundle: PathBuf,
        /// Why.
        why: String,
    },
    /// Bundle files.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl PublishError {
    /// What kind of failure this is (the CLI's exit code follows from it).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Key(e) => e.kind(),
            Self::Trust(e) => e.kind(),
            Self::Residency { .. }
            | Self::NotAPublisher { .. }
            | Self::PublisherKeyUnusable { .. }
            | Self::VersionExists { .. }
            | Self::Usage(_) => ErrorKind::BadInput,
            Self::NotApproved { .. } | Self::AuditRefused { .. } => ErrorKind::VerificationFailed,
            Self::ResidencyRefused { .. } => ErrorKind::ResidencyRefused,
            Self::Registry(e) => e.kind(),
            Self::Aws(e) => e.kind(),
            Self::SageMaker(e) => e.kind(),
            // The log could not take the publish's entries (unreadable, busy, torn): the
            // environment's failure. A log refused by its head or the registry's copy is
            // AuditRefused.
            Self::Audit(e) => e.kind(),
            Self::LeakRefused { .. } | Self::ScanUnavailable { .. } => ErrorKind::LeakRefused,
            Self::Io(e) => e.kind(),
        }
    }
}

/// Options of `airlock publish`.
#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// The bundle.
    pub bundle: PathBuf,
    /// Registry URI.
    pub to: String,
    /// Trust policy.
    pub trust: PathBuf,
    /// Residency policy.
    pub residency: PathBuf,
    /// Audit log file.
    pub audit_log: PathBuf,
    /// Publisher's private key.
    pub key: PathBuf,
    /// Threads for verification.
    pub threads: usize,
    /// AWS settings (used for `s3://` registries and SageMaker).
    pub aws: AwsOptions,
    /// Register in the SageMaker Model Registry (and deploy) as well.
    pub sagemaker: Option<SageMakerOptions>,
    /// Only deploy: the release must already be in the registry with exactly these files
    /// (`airlock run`'s deploy stage, after its publish stage). Nothing is uploaded.
    pub deploy_only: bool,
    /// The run the bundle was packaged from, whose training data the leak scan of what
    /// leaves looks for; `None`: the `BUNDLE_DIR.run.json` the packager wrote beside it.
    pub run_dir: Option<PathBuf>,
}

/// What a publish did.
#[derive(Debug, Clone)]
pub struct PublishSummary {
    /// Blobs uploaded.
    pub uploaded: usize,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Blobs already present with the right digest.
    pub skipped: usize,
    /// The index key.
    pub index: String,
    /// The seq of the last audit entry written (0 when none was).
    pub audit_seq: u64,
    /// Region the registry reported.
    pub region: String,
    /// The SageMaker model package, when registered.
    pub model_package: Option<String>,
    /// The endpoint's ARN, when deployed.
    pub endpoint: Option<String>,
    /// Audit entries written by this publish.
    pub audit_entries: usize,
}

/// A private copy of a verified file's bytes to upload from, so that what leaves is exactly
/// what `verify` read (the bundle on disk may change after it was verified).
fn stage_verified(
    stage: &tempfile::TempDir,
    sha256: &str,
    bytes: &[u8],
) -> Result<PathBuf, RegistryError> {
    let path = stage.path().join(sha256);
    std::fs::write(&path, bytes)
        .map_err(|source| RegistryError::io("stage a verified copy at", &path, source))?;
    Ok(path)
}

/// What a publish needs, loaded and checked without sending a byte: the policies, the
/// publisher key and the destination's client.
pub(crate) struct Setup {
    pub(crate) trust: Trust,
    pub(crate) residency: ResidencyPolicy,
    pub(crate) residency_sha: String,
    pub(crate) signer: Signer,
    pub(crate) aws: Option<Aws>,
    pub(crate) registry: Box<dyn Registry>,
}

/// Load the trust and residency policies and the publisher key, and open the registry.
pub(crate) fn setup(opts: &PublishOptions) -> Result<Setup, PublishError> {
    let trust = Trust::load(&opts.trust)?;
    // The residency policy decides where data may go: held to the trust policy's standard.
    airlock_trust::keys::check_not_writable_by_others(&opts.residency, "residency policy")?;
    let residency_bytes = std::fs::read(&opts.residency)
        .map_err(|source| PublishError::Io(IoError::new("read", &opts.residency, source)))?;
    let residency: ResidencyPolicy = toml::from_str(&String::from_utf8_lossy(&residency_bytes))
        .map_err(|e| PublishError::Residency {
            path: opts.residency.clone(),
            message: e.to_string().trim_end().to_owned(),
        })?;
    let signer = Signer::load(&opts.key)?;
    if !trust
        .keys
        .iter()
        .any(|k| k.role == KeyRole::Publisher && k.key_id == signer.key_id())
    {
        return Err(PublishError::NotAPublisher {
            keyid: signer.key_id().to_owned(),
        });
    }
    // Revoked, not yet valid or expired: nothing it would sign (audit entries, heads) counts.
    let now = time::OffsetDateTime::now_utc();
    if let Err(why) = trust.usable_key(signer.key_id(), KeyRole::Publisher, now, now) {
        return Err(PublishError::PublisherKeyUnusable {
            keyid: signer.key_id().to_owned(),
            why,
        });
    }
    let needs_aws = opts.sagemaker.is_some() || opts.to.starts_with("s3://");
    if opts.sagemaker.is_some() && crate::s3::parse_uri(&opts.to).is_none() {
        return Err(PublishError::Usage(format!(
            "SageMaker reads model data from S3: publish to an s3:// registry, not {}",
            opts.to
        )));
    }
    let aws = if needs_aws {
        Some(Aws::load(opts.aws.clone())?)
    } else {
        None
    };
    let registry = open(&opts.to, || {
        aws.clone().ok_or(crate::aws::AwsSetupError::NoRegion)
    })?;
    Ok(Setup {
        trust,
        residency_sha: hex::encode(Sha256::digest(&residency_bytes)),
        residency,
        signer,
        aws,
        registry,
    })
}

/// Open and lock the audit log before anything else happens, and refuse one that cannot
/// take the publish's entries: unusable, torn, its signed head not naming its last entry,
/// or behind the registry's copy of its head (entries were cut and an older head put back).
pub(crate) fn open_audit_log(
    opts: &PublishOptions,
    trust: &Trust,
    registry: &dyn Registry,
    residency: &ResidencyPolicy,
) -> Result<AuditLog, PublishError> {
    let log = AuditLog::open(&opts.audit_log)?;
    let refused = |why: String| PublishError::AuditRefused {
        log: opts.audit_log.clone(),
        why,
    };
    log.check_head(trust).map_err(|e| match e {
        AuditError::Invalid { problem, .. } => refused(problem),
        e => e.into(),
    })?;
    // An OCI registry on a host the residency policy does not allow is sent no request,
    // not even for its copy of the log (the refusal is recorded once the bundle is judged).
    if let Some(host) = registry.oci_host()
        && crate::oci::region_of(residency, &host).is_err()
    {
        return Ok(log);
    }
    let name = crate::witness::copy_name(&opts.audit_log);
    crate::witness::check_registry_head(log.chain(), &name, registry, trust)
        .and_then(|_| {
            crate::witness::check_registry_checkpoints(log.chain(), &name, registry, trust, true)
        })
        .map_err(|e| match e {
            crate::witness::WitnessError::Registry(e) => e.into(),
            crate::witness::WitnessError::Refused(why) => refused(why),
        })?;
    Ok(log)
}

/// A destination the residency policy does not allow.
struct Disallowed {
    destination: String,
    region: String,
    why: String,
}

/// Where the destinations are, by their own word, before a byte is sent.
pub(crate) struct Located {
    pub(crate) registry: Location,
    /// SageMaker's region, when it is a destination.
    pub(crate) sagemaker_region: Option<String>,
    /// The first destination the residency policy does not allow.
    disallowed: Option<Disallowed>,
}

/// Ask the registry (and SageMaker) where they are and hold them to the residency policy.
fn locate(
    opts: &PublishOptions,
    residency: &ResidencyPolicy,
    aws: Option<&Aws>,
    registry: &dyn Registry,
) -> Result<Located, PublishError> {
    // An OCI registry cannot say where it is: the policy names its host and region.
    let loc = match registry.oci_host() {
        None => registry.location(&residency.registry.accounts)?,
        Some(host) => match crate::oci::region_of(residency, &host) {
            Ok(region) => Location {
                region,
                account: None,
            },
            Err(why) => {
                return Ok(Located {
                    disallowed: Some(Disallowed {
                        destination: registry.uri(),
                        region: "unknown".into(),
                        why,
                    }),
                    registry: Location {
                        region: "unknown".into(),
                        account: None,
                    },
                    sagemaker_region: None,
                });
            }
        },
    };
    let region_ok = residency.registry.regions.contains(&loc.region);
    let account_ok = residency.registry.accounts.is_empty()
        || loc
            .account
            .as_ref()
            .is_some_and(|a| residency.registry.accounts.contains(a));
    if !region_ok || !account_ok {
        let why = format!(
            "the destination is in region {:?}{}, which the residency policy does not allow for registries (allowed: {:?})",
            loc.region,
            loc.account
                .as_ref()
                .map_or_else(String::new, |a| format!(", account {a}")),
            residency.registry.regions
        );
        return Ok(Located {
            disallowed: Some(Disallowed {
                destination: registry.uri(),
                region: loc.region.clone(),
                why,
            }),
            registry: loc,
            sagemaker_region: None,
        });
    }
    // SageMaker: its region (and account) are checked before anything is sent too.
    let (Some(sm), Some(aws)) = (&opts.sagemaker, aws) else {
        return Ok(Located {
            registry: loc,
            sagemaker_region: None,
            disallowed: None,
        });
    };
    let region = aws.region();
    // No [sagemaker] rule in the policy: SageMaker is allowed nowhere.
    let rule = residency
        .sagemaker
        .clone()
        .unwrap_or(airlock_schemas::DestinationRule {
            regions: Vec::new(),
            accounts: Vec::new(),
        });
    let account = if rule.accounts.is_empty() {
        None
    } else {
        Some(crate::sagemaker::account(aws)?)
    };
    let region_ok = rule.regions.contains(&region);
    let account_ok = account.as_ref().is_none_or(|a| rule.accounts.contains(a));
    let disallowed = (!region_ok || !account_ok).then(|| Disallowed {
        destination: sagemaker_destination(&region, sm),
        region: region.clone(),
        why: format!(
            "SageMaker is configured for region {region:?}{}, which the residency policy does not allow for sagemaker (allowed: {:?})",
            account
                .as_ref()
                .map_or_else(String::new, |a| format!(", account {a}")),
            rule.regions
        ),
    });
    Ok(Located {
        registry: loc,
        sagemaker_region: Some(region),
        disallowed,
    })
}

/// The audit log's name for the SageMaker model package group in `region`.
fn sagemaker_destination(region: &str, sm: &SageMakerOptions) -> String {
    format!(
        "sagemaker://{region}/{}",
        sm.group.clone().unwrap_or_default()
    )
}

/// What [`preflight`] found.
#[derive(Debug, Clone)]
pub struct Preflight {
    /// Region the registry reported.
    pub region: String,
    /// Entries already in the audit log.
    pub audit_entries: u64,
}

/// Everything `publish` checks before the bundle, with nothing sent and nothing appended:
/// the trust and residency policies, the publisher key, the audit log (usable, its head
/// intact, not behind the registry's copy), the registry and, with SageMaker, its region.
/// `airlock run` calls it before the approval gate, so officers are never asked to approve
/// a release that cannot be published.
pub fn preflight(opts: &PublishOptions) -> Result<Preflight, PublishError> {
    let s = setup(opts)?;
    let log = open_audit_log(opts, &s.trust, s.registry.as_ref(), &s.residency)?;
    let audit_entries = log.chain().len();
    drop(log);
    let located = locate(opts, &s.residency, s.aws.as_ref(), s.registry.as_ref())?;
    if let Some(d) = located.disallowed {
        return Err(PublishError::ResidencyRefused {
            destination: d.destination,
            why: d.why,
        });
    }
    Ok(Preflight {
        region: located.registry.region,
        audit_entries,
    })
}

/// One publish once its audit log is open: the log, locked until the end, and what every
/// entry it appends shares (the publisher key, the policies' digests, the model's signed
/// digest and the approvals that counted, once the gate has judged them).
pub(crate) struct Publisher<'a> {
    pub(crate) opts: &'a PublishOptions,
    pub(crate) registry: &'a dyn Registry,
    pub(crate) log: AuditLog,
    pub(crate) signer: Signer,
    pub(crate) trust_sha: String,
    pub(crate) residency_sha: String,
    /// The model's digest for the entries: the signed one, once verify matched the file.
    pub(crate) artifacts: BTreeMap<String, String>,
    /// The key ids of the decisions that counted.
    pub(crate) approvals: Vec<String>,
    /// Entries appended so far.
    pub(crate) entries: usize,
}

impl Publisher<'_> {
    /// Append an entry naming `artifacts`.
    fn append(
        &mut self,
        action: AuditAction,
        artifacts: BTreeMap<String, String>,
        destination: String,
        region: Option<String>,
        outcome: String,
    ) -> Result<AuditEntry, PublishError> {
        self.entries += 1;
        Ok(self.log.append(
            NewEntry {
                action,
                artifacts,
                destination,
                verified_region: region,
                approvals: self.approvals.clone(),
                trust_policy_sha256: self.trust_sha.clone(),
                residency_policy_sha256: self.residency_sha.clone(),
                outcome,
            },
            &self.signer,
        )?)
    }

    /// Append an entry naming the model, for `destination`.
    pub(crate) fn record_at(
        &mut self,
        action: AuditAction,
        destination: String,
        region: Option<String>,
        outcome: String,
    ) -> Result<(), PublishError> {
        self.append(action, self.artifacts.clone(), destination, region, outcome)?;
        Ok(())
    }

    /// Append an entry naming the model, for the registry.
    fn record(
        &mut self,
        action: AuditAction,
        region: Option<String>,
        outcome: String,
    ) -> Result<(), PublishError> {
        self.record_at(action, self.registry.uri(), region, outcome)
    }

    /// The `start` entry: what is about to leave (`files`) and where, signed before the
    /// first byte is sent; the release index records where it is in the log.
    pub(crate) fn start(
        &mut self,
        files: &BTreeMap<String, String>,
        destination: String,
        region: &str,
    ) -> Result<AuditPoint, PublishError> {
        let entry = self.append(
            AuditAction::Start,
            files.clone(),
            destination,
            Some(region.to_owned()),
            "started".into(),
        )?;
        Ok(AuditPoint {
            log: crate::witness::copy_name(&self.opts.audit_log),
            seq: entry.seq,
            entry_sha256: self.log.chain().last_sha256().to_owned(),
        })
    }

    /// A failure after a `start` entry: on record, and the registry's witness of the log
    /// brought up to date where it can be (the failure itself is what the caller reports).
    pub(crate) fn fail(
        &mut self,
        action: AuditAction,
        destination: String,
        region: &str,
        why: String,
    ) -> Result<(), PublishError> {
        self.record_at(
            action,
            destination,
            Some(region.to_owned()),
            format!("failed: {why}"),
        )?;
        if let Err(e) = copy_audit(self.registry, &self.log) {
            eprintln!("  warning: the registry's copy of the audit log was not updated: {e}");
        }
        Ok(())
    }

    /// A refusal before anything was sent: on record, then the error.
    pub(crate) fn refuse(
        &mut self,
        region: Option<String>,
        outcome: String,
        error: PublishError,
    ) -> PublishError {
        match self.record(AuditAction::Refuse, region, outcome) {
            Ok(()) => error,
            Err(e) => e,
        }
    }
}

/// The key ids of the decisions that count.
fn counted(approvals: &approvals::ApprovalSummary) -> Vec<String> {
    approvals
        .decisions
        .iter()
        .filter(|d| d.counts)
        .filter_map(|d| d.keyid.clone())
        .collect()
}

/// The gate: exactly what `airlock verify --require-approvals` demands, through
/// [`airlock_trust::admit`]. It runs first, so that nothing of the bundle is read but
/// through verify's closed-set reader (no link followed, no FIFO opened), and it keeps the
/// model: what is uploaded (and leak-scanned) is exactly the bytes verify read and checked.
/// A refusal is recorded (its reasons in words, the failed checks' details only in the
/// error: they name bundle entries, and the log is copied to the registry).
fn gate(p: &mut Publisher<'_>, trust: &Trust) -> Result<Admitted, PublishError> {
    let refusal = match admit(&p.opts.bundle, trust, &GateOptions::keep(p.opts.threads)) {
        Ok(admitted) => {
            p.log.name_release(admitted.verification());
            p.artifacts =
                BTreeMap::from([(MODEL_FILE.to_owned(), admitted.model_sha256().to_owned())]);
            p.approvals = counted(admitted.approvals());
            return Ok(admitted);
        }
        Err(refusal) => {
            p.log.name_release(refusal.verification());
            refusal
        }
    };
    let why = match &refusal {
        Refusal::NotApproved {
            verification,
            approvals,
            ..
        }
        | Refusal::Rejected {
            verification,
            approvals,
        } => {
            p.approvals = counted(approvals);
            // It verified: the entries name the signed model.
            if let Some(sha) = signed_model_sha256(verification) {
                p.artifacts.insert(MODEL_FILE.to_owned(), sha);
            }
            refusal.to_string()
        }
        Refusal::DoesNotVerify(v) => {
            p.approvals = counted(&approvals::evaluate(
                trust,
                v,
                time::OffsetDateTime::now_utc(),
            ));
            let failed: Vec<&str> = v.checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
            format!("it does not verify ({})", failed.join(", "))
        }
    };
    let details = refusal.failed_checks();
    let error = PublishError::NotApproved {
        bundle: p.opts.bundle.clone(),
        why: if details.is_empty() {
            why.clone()
        } else {
            format!("{why}; {}", details.join("; "))
        },
    };
    Err(p.refuse(None, format!("refused: {why}"), error))
}

/// The model's digest in a verified statement.
fn signed_model_sha256(v: &airlock_trust::Verification) -> Option<String> {
    v.statement.as_ref().and_then(|st| {
        st.subject
            .iter()
            .find(|s| s.name == MODEL_FILE)
            .and_then(|s| s.digest.get("sha256").cloned())
    })
}

/// Before anything is sent: the verified model's bytes are held (an error, never a
/// release without its model), and L1 and L2 find nothing in what would leave.
fn check_outgoing(p: &mut Publisher<'_>, admitted: &Admitted) -> Result<(), PublishError> {
    if let Err(why) = admitted.model() {
        let error = PublishError::NotApproved {
            bundle: p.opts.bundle.clone(),
            why,
        };
        return Err(p.refuse(
            None,
            "refused: the verified model's bytes were not kept".into(),
            error,
        ));
    }
    let destination = p.registry.uri();
    if let Err(r) = crate::outgoing::scan_before_send(
        p.opts,
        admitted.verification(),
        admitted.model_sha256(),
        &destination,
        p.signer.key_id(),
    ) {
        return Err(p.refuse(None, r.outcome, r.error));
    }
    Ok(())
}

/// Residency: where the destinations are, by their own word, before a byte is sent; a
/// destination the policy does not allow is recorded and refused.
pub(crate) fn check_residency(
    p: &mut Publisher<'_>,
    residency: &ResidencyPolicy,
    aws: Option<&Aws>,
) -> Result<Located, PublishError> {
    let mut located = locate(p.opts, residency, aws, p.registry)?;
    if let Some(d) = located.disallowed.take() {
        p.record_at(
            AuditAction::Refuse,
            d.destination.clone(),
            Some(d.region),
            format!("refused: {}", d.why),
        )?;
        return Err(PublishError::ResidencyRefused {
            destination: d.destination,
            why: d.why,
        });
    }
    Ok(located)
}

/// A file that leaves: its name, the verified bytes and their SHA-256.
pub(crate) struct Blob<'a> {
    pub(crate) rel: &'a str,
    pub(crate) bytes: &'a [u8],
    pub(crate) sha256: String,
}

/// What leaves: only the files verify accounted for (its closed set), as the bytes it
/// verified; of the decision files, only the approvals that count. Any other file under
/// approvals/ (superseded, expired, by a key the policy does not list, or not a decision
/// at all, whatever its envelope carries) stays on the premises.
struct Leaving<'a> {
    /// Name → SHA-256: the release index's files.
    files: BTreeMap<String, String>,
    /// In upload order.
    blobs: Vec<Blob<'a>>,
}

/// Digest every file that leaves: the version check must come before any upload.
fn leaving<'a>(bundle: &Path, admitted: &'a Admitted) -> Result<Leaving<'a>, PublishError> {
    let counting: BTreeSet<String> = admitted
        .approvals()
        .decisions
        .iter()
        .filter(|d| d.counts)
        .map(|d| format!("{APPROVALS_DIR}/{}", d.file))
        .collect();
    let mut out = Leaving {
        files: BTreeMap::new(),
        blobs: Vec::new(),
    };
    for (rel, bytes) in admitted.files().iter() {
        // A pulled bundle's evidence of an earlier publish is not part of the release.
        if rel == airlock_trust::bundle::TRANSPARENCY_FILE
            || (rel.starts_with(&format!("{APPROVALS_DIR}/")) && !counting.contains(rel))
        {
            continue;
        }
        let sha256 = sha256_hex(bytes);
        out.files.insert(rel.to_owned(), sha256.clone());
        out.blobs.push(Blob { rel, bytes, sha256 });
    }
    // What is sent must be what was verified (the bundle could change in between).
    if out.files.get(MODEL_FILE).map(String::as_str) != Some(admitted.model_sha256()) {
        return Err(PublishError::NotApproved {
            bundle: bundle.to_owned(),
            why: format!("{MODEL_FILE} changed after it was verified"),
        });
    }
    Ok(out)
}

/// The release's name, version and index key, as signed.
pub(crate) struct Target {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) key: String,
}

/// The version check: an index already at `t.key` must be for the same files (approvals
/// may be added later), else the version is taken (recorded and refused). Returns the
/// index found.
fn check_version(
    p: &mut Publisher<'_>,
    t: &Target,
    files: &BTreeMap<String, String>,
    region: &str,
) -> Result<Option<ReleaseIndex>, PublishError> {
    let Some(existing) = p.registry.get_object(&t.key)? else {
        return Ok(None);
    };
    let parsed = airlock_schemas::strict_json::from_slice::<ReleaseIndex>(&existing).ok();
    let same = parsed.as_ref().is_some_and(|i| {
        // Approvals may be added later; the release's own files must be identical.
        i.files
            .iter()
            .filter(|(k, _)| !k.starts_with(APPROVALS_DIR))
            .eq(files.iter().filter(|(k, _)| !k.starts_with(APPROVALS_DIR)))
    }) || pre_witness_index_of(&existing, files);
    if !same {
        let error = PublishError::VersionExists {
            destination: p.registry.uri(),
            name: t.name.clone(),
            version: t.version.clone(),
        };
        return Err(p.refuse(
            Some(region.to_owned()),
            "refused: version already published with other content".into(),
            error,
        ));
    }
    Ok(parsed)
}

/// A deploy sends nothing to the registry: the release must already be there with exactly
/// these files, and there must be an endpoint to deploy to.
fn check_deploy_only(
    opts: &PublishOptions,
    registry: &dyn Registry,
    t: &Target,
    files: &BTreeMap<String, String>,
    existing: Option<&ReleaseIndex>,
) -> Result<(), PublishError> {
    if opts.sagemaker.as_ref().is_none_or(|sm| sm.deploy.is_none()) {
        return Err(PublishError::Usage(
            "deploying needs a SageMaker endpoint to deploy to".into(),
        ));
    }
    if existing.is_none_or(|i| &i.files != files) {
        return Err(PublishError::Usage(format!(
            "{} does not hold {} {} with these files and approvals: publish it before deploying",
            registry.uri(),
            t.name,
            t.version
        )));
    }
    Ok(())
}

/// What the uploads did.
#[derive(Default)]
pub(crate) struct Uploads {
    pub(crate) uploaded: usize,
    pub(crate) uploaded_bytes: u64,
    pub(crate) skipped: usize,
}

/// Upload the blobs the registry lacks, each from a private copy of its verified bytes.
pub(crate) fn upload(
    registry: &dyn Registry,
    blobs: &[Blob<'_>],
) -> Result<Uploads, RegistryError> {
    let stage = tempfile::tempdir().map_err(|source| {
        RegistryError::io(
            "create a staging directory in",
            &std::env::temp_dir(),
            source,
        )
    })?;
    let mut done = Uploads::default();
    for b in blobs {
        let len = b.bytes.len() as u64;
        if registry.has_blob(&b.sha256, len)? {
            done.skipped += 1;
        } else {
            if len >= 64 << 20 {
                eprintln!("  uploading {} ({} MiB)", b.rel, len >> 20);
            }
            let path = stage_verified(&stage, &b.sha256, b.bytes)?;
            done.uploaded_bytes += registry.put_blob(&b.sha256, &path)?;
            done.uploaded += 1;
        }
    }
    Ok(done)
}

/// The release index for `files`, naming the `start` entry of this publish.
pub(crate) fn new_index(
    t: &Target,
    files: BTreeMap<String, String>,
    publisher: &str,
    audit: AuditPoint,
    transparency: Option<airlock_schemas::InclusionProof>,
) -> ReleaseIndex {
    let now = time::OffsetDateTime::now_utc();
    ReleaseIndex {
        name: t.name.clone(),
        version: t.version.clone(),
        files,
        published_at: now
            .replace_nanosecond(0)
            .unwrap_or(now)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        publisher: publisher.to_owned(),
        audit,
        transparency,
    }
}

/// Write the index (unless the registry already holds one for exactly these files): the
/// log's copy (with the `start` entry the index names) first, and the index last: until it
/// exists the release is not visible, and once it is, its entry is in the registry's copy
/// of the log. A failure is recorded.
fn write_index(
    p: &mut Publisher<'_>,
    t: &Target,
    files: BTreeMap<String, String>,
    existing: Option<ReleaseIndex>,
    started: Option<AuditPoint>,
    region: &str,
) -> Result<ReleaseIndex, PublishError> {
    if let Some(i) = existing.filter(|i| i.files == files) {
        // Published before with exactly these files: nothing to write.
        return Ok(i);
    }
    let Some(started) = started else {
        return Err(PublishError::Usage(format!(
            "{} does not hold {} {}: publish it before deploying",
            p.registry.uri(),
            t.name,
            t.version
        )));
    };
    let proof = p.log.prove(started.seq);
    let index = new_index(t, files, p.signer.key_id(), started, proof);
    let mut index_bytes = serde_json::to_vec_pretty(&index)
        .map_err(|e| PublishError::Io(IoError::new("read", &PathBuf::from(&t.key), e.into())))?;
    index_bytes.push(b'\n');
    let written = copy_audit(p.registry, &p.log)
        .and_then(|()| Ok(p.registry.put_object(&t.key, &index_bytes)?));
    if let Err(e) = written {
        p.fail(
            AuditAction::Publish,
            p.registry.uri(),
            region,
            format!("{e} (no release index written)"),
        )?;
        return Err(e);
    }
    Ok(index)
}

/// Where SageMaker is, when it is a destination.
struct SageMakerTarget<'a> {
    sm: &'a SageMakerOptions,
    aws: &'a Aws,
    region: String,
}

/// Register the release in the SageMaker Model Registry from a named copy of its files,
/// and deploy it when asked (with `autoscaling`, registered once the endpoint is InService),
/// each step announced by its own `start` entry and its outcome (failures included)
/// recorded. Returns the model package's and the endpoint's ARNs.
fn to_sagemaker(
    p: &mut Publisher<'_>,
    target: &SageMakerTarget<'_>,
    index: &ReleaseIndex,
    admitted: &Admitted,
    registry_region: &str,
    autoscaling: Option<&airlock_schemas::AutoscalingSpec>,
) -> Result<(String, Option<String>), PublishError> {
    let SageMakerTarget { sm, aws, region } = target;
    let sm_dest = sagemaker_destination(region, sm);
    p.start(&index.files, sm_dest.clone(), region)?;
    let bundle_prefix = format!("models/{}/{}/bundle/", index.name, index.version);
    let model_data = match p.registry.named_copy(&bundle_prefix, &index.files) {
        Ok(m) => m,
        Err(e) => {
            let dest = format!("{}/{bundle_prefix}", p.registry.uri());
            p.fail(AuditAction::Publish, dest, registry_region, e.to_string())?;
            return Err(e.into());
        }
    };
    let statement_sha256 = hex::encode(Sha256::digest(admitted.statement_bytes()));
    let approvals = p.approvals.clone();
    let rel = Release {
        name: &index.name,
        version: &index.version,
        model_data: &model_data,
        statement_sha256: &statement_sha256,
        model_sha256: index.files.get(MODEL_FILE).map_or("", String::as_str),
        approvals: &approvals,
        approved: admitted.approvals().approved(),
    };
    let (arn, created) = match crate::sagemaker::register(aws, sm, &rel) {
        Ok(r) => r,
        Err(e) => {
            p.fail(AuditAction::Publish, sm_dest, region, e.to_string())?;
            return Err(e.into());
        }
    };
    eprintln!("  model package {arn}");
    let outcome = if created {
        "ok"
    } else {
        "ok: already registered"
    };
    p.record_at(
        AuditAction::Publish,
        arn.clone(),
        Some(region.clone()),
        outcome.into(),
    )?;
    let Some(d) = &sm.deploy else {
        return Ok((arn, None));
    };
    let dest = format!("sagemaker://{region}/endpoint/{}", d.endpoint);
    p.start(&index.files, dest.clone(), region)?;
    let ep = match crate::sagemaker::deploy(aws, sm, d, &rel, &arn) {
        Ok(ep) => ep,
        Err(e) => {
            p.fail(AuditAction::Deploy, dest, region, e.to_string())?;
            return Err(e.into());
        }
    };
    let mut outcome = "ok: InService".to_owned();
    if let Some(a) = autoscaling {
        eprintln!(
            "  registering autoscaling for endpoint {}: {}..{} instances, target {} invocations/instance a minute (policy {})",
            d.endpoint,
            a.min_instances,
            a.max_instances,
            a.target_invocations_per_instance,
            crate::sagemaker::scaling_policy_name(&d.endpoint)
        );
        if let Err(e) = crate::sagemaker::autoscale(aws, &d.endpoint, a) {
            let why = format!(
                "{e} (the endpoint is InService on this release, without the autoscaling asked for)"
            );
            p.fail(AuditAction::Deploy, dest, region, why)?;
            return Err(e.into());
        }
        outcome = format!("{outcome}, {}", a.summary());
    }
    p.record_at(
        AuditAction::Deploy,
        ep.clone(),
        Some(region.clone()),
        outcome,
    )?;
    Ok((arn, Some(ep)))
}

/// Publish `opts.bundle`.
///
/// Phases: `setup`; `open_audit_log` (locked until the end); `gate`;
/// `check_outgoing`; `check_residency`; `leaving` and `check_version`; a `start`
/// entry naming the destination and every digest, written and signed before the first byte
/// is sent; `upload`; `write_index` (the log's copy, then the index that records the
/// `start` entry); the outcome entries; `to_sagemaker` (its own `start` entries first).
/// After a `start` entry, every failure is recorded too.
pub fn publish(opts: &PublishOptions) -> Result<PublishSummary, PublishError> {
    publish_with_autoscaling(opts, None)
}

/// [`publish`], and with `autoscaling` (`[deploy.autoscaling]`), the endpoint that
/// `opts.sagemaker`'s deploy brings InService is then registered with Application Auto
/// Scaling ([`crate::sagemaker::autoscale`]) before the deploy's outcome is recorded: the
/// audit entry says `ok: InService, autoscaling 1..4 at 70 invocations/instance`, or why it
/// failed. Without it, whatever scaling is registered for the endpoint is left as it is.
/// `autoscaling` without a deploy, or with settings [`airlock_schemas::AutoscalingSpec::validate`] refuses
/// (against the deploy's instance count), is refused before anything is read or sent.
pub fn publish_with_autoscaling(
    opts: &PublishOptions,
    autoscaling: Option<&airlock_schemas::AutoscalingSpec>,
) -> Result<PublishSummary, PublishError> {
    if let Some(a) = autoscaling {
        let Some(d) = opts.sagemaker.as_ref().and_then(|sm| sm.deploy.as_ref()) else {
            return Err(PublishError::Usage(
                "autoscaling needs a SageMaker endpoint to deploy to".into(),
            ));
        };
        a.validate(u32::try_from(d.instance_count).unwrap_or(0))
            .map_err(PublishError::Usage)?;
    }
    let Setup {
        trust,
        residency,
        residency_sha,
        signer,
        aws,
        registry,
    } = setup(opts)?;
    let registry = registry.as_ref();
    let mut p = Publisher {
        opts,
        registry,
        log: open_audit_log(opts, &trust, registry, &residency)?,
        signer,
        trust_sha: trust.sha256.clone(),
        residency_sha,
        artifacts: BTreeMap::new(),
        approvals: Vec::new(),
        entries: 0,
    };
    let admitted = gate(&mut p, &trust)?;
    check_outgoing(&mut p, &admitted)?;
    let located = check_residency(&mut p, &residency, aws.as_ref())?;
    let region = located.registry.region;
    let sm_target = match (&opts.sagemaker, &aws, located.sagemaker_region) {
        (Some(sm), Some(aws), Some(region)) => Some(SageMakerTarget { sm, aws, region }),
        _ => None,
    };
    let Leaving { files, blobs } = leaving(&opts.bundle, &admitted)?;
    let st = &admitted.statement().predicate;
    let target = Target {
        key: index_key(&st.model_name, &st.model_version)?,
        name: st.model_name.clone(),
        version: st.model_version.clone(),
    };
    let existing = check_version(&mut p, &target, &files, &region)?;
    if opts.deploy_only {
        check_deploy_only(opts, registry, &target, &files, existing.as_ref())?;
    }
    // Nothing has been sent yet. From here on the log says first what is about to leave and
    // where (a `start` entry, signed), and then how it went, failures included. (A deploy
    // sends nothing to the registry but SageMaker's named copy, announced with it.)
    let (started, uploads) = if opts.deploy_only {
        (None, Uploads::default())
    } else {
        let started = p.start(&files, registry.uri(), &region)?;
        match upload(registry, &blobs) {
            Ok(u) => (Some(started), u),
            Err(e) => {
                // Bytes may have left: the attempt is on record, though no release is visible.
                let why = format!("{e} (no release index written)");
                p.fail(AuditAction::Publish, registry.uri(), &region, why)?;
                return Err(e.into());
            }
        }
    };
    let index = write_index(&mut p, &target, files, existing, started, &region)?;
    if !opts.deploy_only {
        p.record(AuditAction::Publish, Some(region.clone()), "ok".into())?;
    }
    let (model_package, endpoint) = match &sm_target {
        Some(t) => {
            let (arn, endpoint) = to_sagemaker(&mut p, t, &index, &admitted, &region, autoscaling)?;
            (Some(arn), endpoint)
        }
        None => (None, None),
    };
    if let Err(e) = copy_audit(registry, &p.log) {
        let why = format!("failed: {e} (the registry's copy of the audit log is behind the log)");
        p.record(AuditAction::Publish, Some(region), why)?;
        return Err(e);
    }
    Ok(PublishSummary {
        uploaded: uploads.uploaded,
        uploaded_bytes: uploads.uploaded_bytes,
        skipped: uploads.skipped,
        index: target.key,
        audit_seq: if p.entries == 0 {
            0
        } else {
            p.log.chain().len()
        },
        region,
        model_package,
        endpoint,
        audit_entries: p.entries,
    })
}

/// Whether `bytes` is an index written before indexes recorded their audit entry (no
/// `audit` field), for exactly `files`: publishing the same files again writes it anew,
/// with the audit entry of this publish, instead of refusing the version as taken.
fn pre_witness_index_of(bytes: &[u8], files: &BTreeMap<String, String>) -> bool {
    let Ok(serde_json::Value::Object(index)) = airlock_schemas::strict_json::from_slice(bytes)
    else {
        return false;
    };
    !index.contains_key("audit")
        && index
            .get("files")
            .and_then(|f| serde_json::from_value::<BTreeMap<String, String>>(f.clone()).ok())
            .is_some_and(|f| &f == files)
}

/// The log and its signed head, copied into the registry under `audit/` (the log first: a
/// reader between the two writes finds the old head, a point of the new log).
pub(crate) fn copy_audit(registry: &dyn Registry, audit: &AuditLog) -> Result<(), PublishError> {
    let log = audit.path();
    let log_name = crate::witness::copy_name(log);
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| PublishError::Io(IoError::new("read", p, source)))
    };
    registry.put_object(&crate::witness::log_key(&log_name), &read(log)?)?;
    registry.put_object(
        &crate::witness::head_key(&log_name),
        &read(&head_path(log))?,
    )?;
    if let Some(note) = audit.checkpoint() {
        crate::witness::record_checkpoint(registry, &log_name, audit.chain(), note).map_err(
            |e| match e {
                crate::witness::WitnessError::Registry(e) => e.into(),
                crate::witness::WitnessError::Refused(why) => PublishError::AuditRefused {
                    log: log.to_owned(),
                    why,
                },
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use airlock_schemas::AutoscalingSpec;

    use super::*;
    use crate::sagemaker::DeployOptions;

    /// Options whose every file is missing: a publish that read any of them would fail
    /// with an I/O error, not a usage error.
    fn nothing_there(deploy: Option<DeployOptions>) -> PublishOptions {
        let missing = PathBuf::from("/nonexistent/airlock-test");
        PublishOptions {
            bundle: missing.join("bundle"),
            to: "s3://airlock-releases/prod".into(),
            trust: missing.join("trust.toml"),
            residency: missing.join("residency.toml"),
            audit_log: missing.join("audit.log"),
            key: missing.join("publisher.key"),
            threads: 1,
            aws: AwsOptions::default(),
            sagemaker: Some(SageMakerOptions {
                group: None,
                image: "image".into(),
                deploy,
            }),
            deploy_only: true,
            run_dir: None,
        }
    }

    fn usage(opts: &PublishOptions, scaling: &AutoscalingSpec) -> String {
        match publish_with_autoscaling(opts, Some(scaling)) {
            Err(PublishError::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn autoscaling_that_does_not_fit_is_refused_before_anything_is_read() {
        let deploy = DeployOptions {
            endpoint: "fraud-scoring".into(),
            role: "role".into(),
            instance_type: "ml.m5.large".into(),
            instance_count: 1,
            timeout: std::time::Duration::from_secs(1),
            poll: std::time::Duration::from_secs(1),
        };
        let fits = AutoscalingSpec {
            min_instances: 1,
            max_instances: 4,
            target_invocations_per_instance: 70.0,
            scale_in_cooldown_seconds: 300,
            scale_out_cooldown_seconds: 60,
        };
        let inverted = AutoscalingSpec {
            min_instances: 3,
            max_instances: 2,
            ..fits.clone()
        };
        assert_eq!(
            usage(&nothing_there(Some(deploy.clone())), &inverted),
            "deploy.autoscaling.max_instances (2) must be at least deploy.autoscaling.min_instances (3)"
        );
        let above = AutoscalingSpec {
            min_instances: 2,
            ..fits.clone()
        };
        assert!(
            usage(&nothing_there(Some(deploy)), &above)
                .starts_with("deploy.instance_count (1) must lie between"),
        );
        assert_eq!(
            usage(&nothing_there(None), &fits),
            "autoscaling needs a SageMaker endpoint to deploy to"
        );
    }
}
