//! `airlock publish`: a verified, approved bundle into a registry the residency policy
//! allows, every step (refusals included) in the audit log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use airlock_schemas::{AuditAction, AuditPoint, KeyRole, ReleaseIndex, ResidencyPolicy};
use airlock_trust::keys::{KeyError, Signer};
use airlock_trust::{APPROVALS_DIR, MODEL_FILE, Trust, approvals, verify_bundle};
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
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
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
    std::fs::write(&path, bytes).map_err(|source| RegistryError::Io {
        action: "stage a verified copy at",
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// What a publish needs, loaded and checked without sending a byte: the policies, the
/// publisher key and the destination's client.
struct Setup {
    trust: Trust,
    residency: ResidencyPolicy,
    residency_sha: String,
    signer: Signer,
    aws: Option<Aws>,
    registry: Box<dyn Registry>,
}

/// Load the trust and residency policies and the publisher key, and open the registry.
fn setup(opts: &PublishOptions) -> Result<Setup, PublishError> {
    let trust = Trust::load(&opts.trust)?;
    // The residency policy decides where data may go: held to the trust policy's standard.
    airlock_trust::keys::check_not_writable_by_others(&opts.residency, "residency policy")?;
    let residency_bytes = std::fs::read(&opts.residency).map_err(|source| PublishError::Io {
        path: opts.residency.clone(),
        source,
    })?;
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
fn open_audit_log(
    opts: &PublishOptions,
    trust: &Trust,
    registry: &dyn Registry,
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
    let name = crate::witness::copy_name(&opts.audit_log);
    crate::witness::check_registry_head(log.chain(), &name, registry, trust).map_err(
        |e| match e {
            crate::witness::WitnessError::Registry(e) => e.into(),
            crate::witness::WitnessError::Refused(why) => refused(why),
        },
    )?;
    Ok(log)
}

/// A destination the residency policy does not allow.
struct Disallowed {
    destination: String,
    region: String,
    why: String,
}

/// Where the destinations are, by their own word, before a byte is sent.
struct Located {
    registry: Location,
    /// SageMaker's region, when it is a destination.
    sagemaker_region: Option<String>,
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
    let loc = registry.location(&residency.registry.accounts)?;
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
    let log = open_audit_log(opts, &s.trust, s.registry.as_ref())?;
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

/// Publish `opts.bundle`.
///
/// Phases: [`setup`]; [`open_audit_log`] (locked until the end); the gate; [`locate`];
/// the files and the version check; a `start` entry naming the destination and every
/// digest, written and signed before the first byte is sent; the uploads; the log's copy
/// and the index (which records the `start` entry) in the registry; the outcome entries;
/// SageMaker (its own `start` entries first). After a `start` entry, every failure is
/// recorded too.
pub fn publish(opts: &PublishOptions) -> Result<PublishSummary, PublishError> {
    let Setup {
        trust,
        residency,
        residency_sha,
        signer,
        aws,
        registry,
    } = setup(opts)?;
    let log = std::cell::RefCell::new(open_audit_log(opts, &trust, registry.as_ref())?);
    let trust_sha = trust.sha256.clone();
    // The gate: exactly what `airlock verify --require-approvals` demands. It runs first, so
    // that nothing of the bundle is read but through verify's closed-set reader (no link
    // followed, no FIFO opened).
    // Keep: what is uploaded (and leak-scanned) is exactly the bytes verify read and checked.
    let v = verify_bundle(&opts.bundle, &trust, opts.threads, false);
    let s = approvals::evaluate(&trust, &v, time::OffsetDateTime::now_utc());
    // The model's digest for the entries: the signed one, once verify has matched the file.
    let mut artifacts = BTreeMap::new();
    if v.ok()
        && let Some(sha) = v.statement.as_ref().and_then(|st| {
            st.subject
                .iter()
                .find(|s| s.name == MODEL_FILE)
                .and_then(|s| s.digest.get("sha256").cloned())
        })
    {
        artifacts.insert(MODEL_FILE.to_owned(), sha);
    }
    let entries = std::cell::Cell::new(0usize);
    let record_with = |action: AuditAction,
                       artifacts: BTreeMap<String, String>,
                       destination: String,
                       region: Option<String>,
                       approvals: Vec<String>,
                       outcome: String| {
        entries.set(entries.get() + 1);
        log.borrow_mut().append(
            NewEntry {
                action,
                artifacts,
                destination,
                verified_region: region,
                approvals,
                trust_policy_sha256: trust_sha.clone(),
                residency_policy_sha256: residency_sha.clone(),
                outcome,
            },
            &signer,
        )
    };
    let record_at = |action: AuditAction,
                     destination: String,
                     region: Option<String>,
                     approvals: Vec<String>,
                     outcome: String| {
        record_with(
            action,
            artifacts.clone(),
            destination,
            region,
            approvals,
            outcome,
        )
    };
    let record =
        |action: AuditAction, region: Option<String>, approvals: Vec<String>, outcome: String| {
            record_at(action, registry.uri(), region, approvals, outcome)
        };

    let counted: Vec<String> = s
        .decisions
        .iter()
        .filter(|d| d.counts)
        .filter_map(|d| d.keyid.clone())
        .collect();
    if !v.ok() || !s.approved() {
        let why = if v.ok() {
            format!(
                "{} of {} required officer approvals{}",
                s.approvals,
                s.required,
                if s.rejected {
                    " and a valid rejection"
                } else {
                    ""
                }
            )
        } else {
            format!(
                "it does not verify ({})",
                v.checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| c.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        record(
            AuditAction::Refuse,
            None,
            counted,
            format!("refused: {why}"),
        )?;
        // The details name bundle entries: they go to the operator, not into the log that
        // is copied to the registry.
        let details: Vec<String> = v
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        return Err(PublishError::NotApproved {
            bundle: opts.bundle.clone(),
            why: if details.is_empty() {
                why
            } else {
                format!("{why}; {}", details.join("; "))
            },
        });
    }

    // The verified model's bytes must be held (an error, never a release without its model).
    if let Err(why) = v.model() {
        record(
            AuditAction::Refuse,
            None,
            counted,
            "refused: the verified model's bytes were not kept".into(),
        )?;
        return Err(PublishError::NotApproved {
            bundle: opts.bundle.clone(),
            why,
        });
    }

    // L1 and L2 over everything that would leave, before anything is sent.
    if let Err(r) = crate::outgoing::scan_before_send(opts, &v, &registry.uri(), signer.key_id()) {
        record(AuditAction::Refuse, None, counted, r.outcome)?;
        return Err(r.error);
    }

    // Residency: ask the destinations where they are, before sending a byte.
    let located = locate(opts, &residency, aws.as_ref(), registry.as_ref())?;
    if let Some(d) = located.disallowed {
        record_at(
            AuditAction::Refuse,
            d.destination.clone(),
            Some(d.region),
            counted,
            format!("refused: {}", d.why),
        )?;
        return Err(PublishError::ResidencyRefused {
            destination: d.destination,
            why: d.why,
        });
    }
    let loc = located.registry;
    let sm_target = match (&opts.sagemaker, &aws, located.sagemaker_region) {
        (Some(sm), Some(aws), Some(region)) => Some((sm, aws, region)),
        _ => None,
    };

    let stmt = v.statement.as_ref().map(|s| {
        (
            s.predicate.model_name.clone(),
            s.predicate.model_version.clone(),
        )
    });
    let (name, version) = stmt.unwrap_or_default();
    // Digest every file first: the version check below must come before any upload.
    // Only the files verify accounted for (its closed set) leave, as the bytes it verified.
    let mut files = BTreeMap::new();
    let mut paths = Vec::new();
    // Of the decision files, only the approvals that count leave: any other file under
    // approvals/ (superseded, expired, by a key the policy does not list, or not a decision
    // at all, whatever its envelope carries) stays on the premises.
    let leaving: BTreeSet<String> = s
        .decisions
        .iter()
        .filter(|d| d.counts)
        .map(|d| format!("{APPROVALS_DIR}/{}", d.file))
        .collect();
    for (rel, bytes) in v.files.iter() {
        if rel.starts_with(&format!("{APPROVALS_DIR}/")) && !leaving.contains(rel) {
            continue;
        }
        let sha = sha256_hex(bytes);
        files.insert(rel.to_owned(), sha.clone());
        paths.push((rel.to_owned(), bytes, sha, bytes.len() as u64));
    }
    // What is sent must be what was verified (the bundle could change in between).
    let signed_model = v.statement.as_ref().and_then(|st| {
        st.subject
            .iter()
            .find(|s| s.name == MODEL_FILE)
            .and_then(|s| s.digest.get("sha256").cloned())
    });
    if signed_model.is_none() || files.get(MODEL_FILE) != signed_model.as_ref() {
        return Err(PublishError::NotApproved {
            bundle: opts.bundle.clone(),
            why: format!("{MODEL_FILE} changed after it was verified"),
        });
    }
    let key = index_key(&name, &version)?;
    let mut existing_index = None;
    if let Some(existing) = registry.get_object(&key)? {
        let parsed = airlock_schemas::strict_json::from_slice::<ReleaseIndex>(&existing).ok();
        let same = parsed.as_ref().is_some_and(|i| {
            // Approvals may be added later; the release's own files must be identical.
            i.files
                .iter()
                .filter(|(k, _)| !k.starts_with(APPROVALS_DIR))
                .eq(files.iter().filter(|(k, _)| !k.starts_with(APPROVALS_DIR)))
        }) || pre_witness_index_of(&existing, &files);
        if !same {
            record(
                AuditAction::Refuse,
                Some(loc.region.clone()),
                counted,
                "refused: version already published with other content".into(),
            )?;
            return Err(PublishError::VersionExists {
                destination: registry.uri(),
                name,
                version,
            });
        }
        existing_index = parsed;
    }
    if opts.deploy_only {
        if opts.sagemaker.as_ref().is_none_or(|sm| sm.deploy.is_none()) {
            return Err(PublishError::Usage(
                "deploying needs a SageMaker endpoint to deploy to".into(),
            ));
        }
        if existing_index.as_ref().is_none_or(|i| i.files != files) {
            return Err(PublishError::Usage(format!(
                "{} does not hold {name} {version} with these files and approvals: publish it before deploying",
                registry.uri()
            )));
        }
    }
    // Nothing has been sent yet. From here on the log says first what is about to leave and
    // where (a `start` entry, signed), and then how it went, failures included.
    let log_name = crate::witness::copy_name(&opts.audit_log);
    let start = |files: &BTreeMap<String, String>, destination: String, region: &str| {
        let e = record_with(
            AuditAction::Start,
            files.clone(),
            destination,
            Some(region.to_owned()),
            counted.clone(),
            "started".into(),
        )?;
        Ok::<_, PublishError>(AuditPoint {
            log: log_name.clone(),
            seq: e.seq,
            entry_sha256: log.borrow().chain().last_sha256().to_owned(),
        })
    };
    let fail = |action: AuditAction, destination: String, region: &str, why: String| {
        record_at(
            action,
            destination,
            Some(region.to_owned()),
            counted.clone(),
            format!("failed: {why}"),
        )?;
        // The registry's witness of the log is brought up to date where it can be; the
        // failure itself is what the caller reports.
        if let Err(e) = copy_audit(registry.as_ref(), &opts.audit_log) {
            eprintln!("  warning: the registry's copy of the audit log was not updated: {e}");
        }
        Ok::<_, PublishError>(())
    };
    // (A deploy sends nothing to the registry but SageMaker's named copy, announced with it.)
    let started = if opts.deploy_only {
        None
    } else {
        Some(start(&files, registry.uri(), &loc.region)?)
    };
    let (mut uploaded, mut uploaded_bytes, mut skipped) = (0, 0u64, 0);
    let upload = |uploaded: &mut usize, uploaded_bytes: &mut u64, skipped: &mut usize| {
        let stage = tempfile::tempdir().map_err(|source| RegistryError::Io {
            action: "create a staging directory in",
            path: std::env::temp_dir(),
            source,
        })?;
        for (rel, bytes, sha, len) in &paths {
            if registry.has_blob(sha, *len)? {
                *skipped += 1;
            } else {
                if *len >= 64 << 20 {
                    eprintln!("  uploading {rel} ({} MiB)", len >> 20);
                }
                let path = stage_verified(&stage, sha, bytes)?;
                *uploaded_bytes += registry.put_blob(sha, &path)?;
                *uploaded += 1;
            }
        }
        Ok::<_, RegistryError>(())
    };
    let uploaded_ok = if opts.deploy_only {
        Ok(())
    } else {
        upload(&mut uploaded, &mut uploaded_bytes, &mut skipped)
    };
    if let Err(e) = uploaded_ok {
        // Bytes may have left: the attempt is on record, though no release is visible.
        fail(
            AuditAction::Publish,
            registry.uri(),
            &loc.region,
            format!("{e} (no release index written)"),
        )?;
        return Err(e.into());
    }
    let index = match existing_index {
        // Published before with exactly these files: nothing to write.
        Some(i) if i.files == files => i,
        _ => {
            let Some(started) = started else {
                return Err(PublishError::Usage(format!(
                    "{} does not hold {name} {version}: publish it before deploying",
                    registry.uri()
                )));
            };
            let now = time::OffsetDateTime::now_utc();
            let index = ReleaseIndex {
                name,
                version,
                files,
                published_at: now
                    .replace_nanosecond(0)
                    .unwrap_or(now)
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
                publisher: signer.key_id().to_owned(),
                audit: started,
            };
            let mut index_bytes =
                serde_json::to_vec_pretty(&index).map_err(|e| PublishError::Io {
                    path: PathBuf::from(&key),
                    source: e.into(),
                })?;
            index_bytes.push(b'\n');
            // The log's copy (with the `start` entry the index names) before the index, and
            // the index last: until it exists, the release is not visible, and once it is,
            // its entry is in the registry's copy of the log.
            let written = copy_audit(registry.as_ref(), &opts.audit_log)
                .and_then(|()| Ok(registry.put_object(&key, &index_bytes)?));
            if let Err(e) = written {
                fail(
                    AuditAction::Publish,
                    registry.uri(),
                    &loc.region,
                    format!("{e} (no release index written)"),
                )?;
                return Err(e);
            }
            index
        }
    };
    if !opts.deploy_only {
        record(
            AuditAction::Publish,
            Some(loc.region.clone()),
            counted.clone(),
            "ok".into(),
        )?;
    }
    let (mut model_package, mut endpoint) = (None, None);
    if let Some((sm, aws, region)) = sm_target {
        let sm_dest = sagemaker_destination(&region, sm);
        start(&index.files, sm_dest.clone(), &region)?;
        let bundle_prefix = format!("models/{}/{}/bundle/", index.name, index.version);
        let model_data = match registry.named_copy(&bundle_prefix, &index.files) {
            Ok(m) => m,
            Err(e) => {
                fail(
                    AuditAction::Publish,
                    format!("{}/{bundle_prefix}", registry.uri()),
                    &loc.region,
                    e.to_string(),
                )?;
                return Err(e.into());
            }
        };
        let statement_sha256 = hex::encode(Sha256::digest(&v.statement_bytes));
        let rel = Release {
            name: &index.name,
            version: &index.version,
            model_data: &model_data,
            statement_sha256: &statement_sha256,
            model_sha256: index.files.get(MODEL_FILE).map_or("", String::as_str),
            approvals: &counted,
            approved: s.approved(),
        };
        let (arn, created) = match crate::sagemaker::register(aws, sm, &rel) {
            Ok(r) => r,
            Err(e) => {
                fail(AuditAction::Publish, sm_dest, &region, e.to_string())?;
                return Err(e.into());
            }
        };
        eprintln!("  model package {arn}");
        record_at(
            AuditAction::Publish,
            arn.clone(),
            Some(region.clone()),
            counted.clone(),
            if created {
                "ok".into()
            } else {
                "ok: already registered".into()
            },
        )?;
        if let Some(d) = &sm.deploy {
            let dest = format!("sagemaker://{region}/endpoint/{}", d.endpoint);
            start(&index.files, dest.clone(), &region)?;
            match crate::sagemaker::deploy(aws, sm, d, &rel, &arn) {
                Ok(ep) => {
                    record_at(
                        AuditAction::Deploy,
                        ep.clone(),
                        Some(region.clone()),
                        counted.clone(),
                        "ok: InService".into(),
                    )?;
                    endpoint = Some(ep);
                }
                Err(e) => {
                    fail(AuditAction::Deploy, dest, &region, e.to_string())?;
                    return Err(e.into());
                }
            }
        }
        model_package = Some(arn);
    }
    if let Err(e) = copy_audit(registry.as_ref(), &opts.audit_log) {
        record(
            AuditAction::Publish,
            Some(loc.region.clone()),
            counted.clone(),
            format!("failed: {e} (the registry's copy of the audit log is behind the log)"),
        )?;
        return Err(e);
    }
    let audit_seq = if entries.get() == 0 {
        0
    } else {
        log.borrow().chain().len()
    };
    Ok(PublishSummary {
        uploaded,
        uploaded_bytes,
        skipped,
        index: key,
        audit_seq,
        region: loc.region,
        model_package,
        endpoint,
        audit_entries: entries.get(),
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
fn copy_audit(registry: &dyn Registry, log: &Path) -> Result<(), PublishError> {
    let log_name = crate::witness::copy_name(log);
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| PublishError::Io {
            path: p.to_owned(),
            source,
        })
    };
    registry.put_object(&crate::witness::log_key(&log_name), &read(log)?)?;
    registry.put_object(
        &crate::witness::head_key(&log_name),
        &read(&head_path(log))?,
    )?;
    Ok(())
}
