//! The routing policy, loaded and checked: the release verified, the classifier built, the
//! upstreams parsed. One [`Routing`] per load; a reload builds a new one beside the old.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use airlock_schemas::{HealthSpec, IoError, RoutePolicy};
use airlock_trust::{GateOptions, MODEL_CARD_FILE, Refusal, Trust, admit};

use crate::classify::Classifier;
use crate::error::RouteError;
use crate::upstream::{Side, SideName, Upstream};

/// The release both sides must serve, as the router verified it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// SHA-256 of the verified release statement: what `/ping` must report.
    pub statement_sha256: String,
    /// Model name, as signed.
    pub name: String,
    /// Version, as signed.
    pub version: String,
    /// The card keeps the model on the premises.
    pub onprem_only: bool,
    /// The model's feature columns (`None`: an image model).
    pub features: Option<Vec<String>>,
}

/// One load of the policy.
#[derive(Debug)]
pub(crate) struct Routing {
    pub policy: RoutePolicy,
    pub policy_sha256: String,
    pub trust_sha256: String,
    pub release: Release,
    pub classifier: Classifier,
    pub onprem: Side,
    pub cloud: Side,
    pub fallback_to_onprem: bool,
    pub health: HealthSpec,
    /// Where the audit log and key are (resolved against the policy's folder).
    pub audit_log: PathBuf,
    pub audit_key: PathBuf,
}

fn invalid(path: &Path, message: impl Into<String>) -> RouteError {
    RouteError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Read and check `route.toml` (strict TOML, then [`RoutePolicy::validate`]); returns the
/// policy and the file's SHA-256.
pub fn load_policy(path: &Path) -> Result<(RoutePolicy, String), RouteError> {
    let bytes = std::fs::read(path).map_err(IoError::at("read", path))?;
    let text = std::str::from_utf8(&bytes).map_err(|_| invalid(path, "not UTF-8"))?;
    let policy: RoutePolicy =
        toml::from_str(text).map_err(|e| invalid(path, format!("not a routing policy: {e}")))?;
    policy.validate().map_err(|m| invalid(path, m))?;
    Ok((policy, airlock_trust::shards::sha256_hex(&bytes)))
}

/// Verify the release bundle (signatures, digests, approvals) and read what the router
/// needs of it.
pub fn verify_release(bundle: &Path, trust: &Trust) -> Result<Release, RouteError> {
    let refuse = |reason: String| RouteError::Unverified {
        dir: bundle.to_owned(),
        reason,
    };
    let admitted = admit(bundle, trust, &GateOptions::digest_only(2)).map_err(|r| {
        for check in r.failed_checks() {
            eprintln!("  FAIL {check}");
        }
        refuse(match &r {
            Refusal::DoesNotVerify(_) => r.to_string(),
            Refusal::NotApproved { approvals: s, .. } | Refusal::Rejected { approvals: s, .. } => {
                format!(
                    "{} of {} required officer approvals",
                    s.approvals, s.required
                )
            }
        })
    })?;
    let card: airlock_schemas::ModelCard = admitted
        .file(MODEL_CARD_FILE)
        .ok_or_else(|| {
            refuse(format!(
                "{MODEL_CARD_FILE} was not among the verified files"
            ))
        })
        .and_then(|b| {
            airlock_schemas::strict_json::from_slice(b)
                .map_err(|e| refuse(format!("{MODEL_CARD_FILE}: {e}")))
        })?;
    Ok(Release {
        statement_sha256: airlock_trust::shards::sha256_hex(admitted.statement_bytes()),
        name: card.name,
        version: card.version,
        onprem_only: card.onprem_only,
        features: card
            .architecture
            .cnn
            .is_none()
            .then(|| card.inputs.into_iter().map(|i| i.name).collect()),
    })
}

/// Load the policy at `path` and everything it names.
pub(crate) fn load(
    path: &Path,
    aws: Option<&crate::upstream::AwsClients>,
) -> Result<Routing, RouteError> {
    let (policy, policy_sha256) = load_policy(path)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let trust = Trust::load(&dir.join(&policy.release.trust))?;
    let release = verify_release(&dir.join(&policy.release.bundle), &trust)?;
    let classifier = Classifier::new(
        &policy.classify,
        release.onprem_only,
        release.features.clone(),
    )
    .map_err(|m| invalid(path, m))?;
    let onprem = Side::new(
        SideName::Onprem,
        policy
            .onprem
            .members
            .iter()
            .map(|m| Upstream::url(m).map(Arc::new))
            .collect::<Result<_, _>>()
            .map_err(|m| invalid(path, m))?,
        Duration::from_millis(policy.onprem.timeout_ms),
        policy.onprem.retries,
    );
    let cloud_members = policy
        .cloud
        .endpoints
        .iter()
        .map(|e| match (&e.url, &e.sagemaker) {
            (Some(url), _) => Upstream::url(url).map(Arc::new),
            (None, Some(name)) => match aws {
                Some(aws) => Ok(Arc::new(Upstream::sagemaker(
                    name,
                    e.region.as_deref(),
                    aws,
                ))),
                None => Err(format!(
                    "SageMaker endpoint {name}: no AWS configuration could be loaded"
                )),
            },
            (None, None) => Err("an endpoint without url or sagemaker".to_owned()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|m| invalid(path, m))?;
    let cloud = Side::new(
        SideName::Cloud,
        cloud_members,
        Duration::from_millis(policy.cloud.timeout_ms),
        policy.cloud.retries,
    );
    Ok(Routing {
        policy_sha256,
        trust_sha256: trust.sha256.clone(),
        release,
        classifier,
        onprem,
        cloud,
        fallback_to_onprem: policy.cloud.fallback_to_onprem,
        health: policy.health,
        audit_log: dir.join(&policy.audit.log),
        audit_key: dir.join(&policy.audit.key),
        policy,
    })
}
