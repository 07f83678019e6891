//! The registry as the audit log's witness.
//!
//! A publisher holds its audit log and the key that signs its head, so on its own it could
//! cut the log's tail and put back an older signed head. The registry, which it does not
//! control alone, keeps two witnesses: a copy of the log and its signed head under
//! `audit/<log file name>`, and in each release index the `start` entry that announced the
//! release (its seq and line hash). A log must hold every such point:
//! `airlock audit verify --registry` checks that, `airlock publish` refuses to append to a
//! log the registry's copy is ahead of, and `airlock pull` refuses a release whose entry is
//! not in the registry's copy.

use std::path::Path;

use airlock_schemas::{AuditAction, AuditHead, ReleaseIndex};
use airlock_trust::Trust;

use crate::audit::{Chain, open_signed_head};
use crate::registry::{Registry, RegistryError};

/// Why a witness check did not pass.
#[derive(Debug, thiserror::Error)]
pub enum WitnessError {
    /// The registry could not be read.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The log and the registry disagree (the message says how).
    #[error("{0}")]
    Refused(String),
}

impl WitnessError {
    /// What kind of failure this is (the CLI's exit code follows from it).
    pub fn kind(&self) -> airlock_schemas::ErrorKind {
        match self {
            Self::Registry(e) => e.kind(),
            Self::Refused(_) => airlock_schemas::ErrorKind::VerificationFailed,
        }
    }
}

/// The name of a log's copy under `audit/` in a registry: the log's file name.
pub fn copy_name(log: &Path) -> String {
    log.file_name().map_or_else(
        || "audit.log".to_owned(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// Registry key of the copy of log `name`.
pub fn log_key(name: &str) -> String {
    format!("audit/{name}")
}

/// Registry key of the copy of log `name`'s signed head.
pub fn head_key(name: &str) -> String {
    format!("audit/{name}.head.dsse.json")
}

/// A copy name an index may point at: one plain file name.
fn plain(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\'])
        && !name.chars().any(char::is_control)
}

/// The registry's copy of log `name`'s signed head, its signature checked against the
/// publisher keys of `trust`; `None` when the registry holds no copy.
pub fn registry_head(
    registry: &dyn Registry,
    name: &str,
    trust: &Trust,
) -> Result<Option<AuditHead>, WitnessError> {
    let key = head_key(name);
    let Some(bytes) = registry.get_object(&key)? else {
        return Ok(None);
    };
    open_signed_head(&bytes, trust)
        .map(Some)
        .map_err(|e| WitnessError::Refused(format!("{}/{key}: {e}", registry.uri())))
}

/// Refuse when the registry's copy of the head is not a point of `chain` (the log lost
/// entries, or was replaced, since the registry last saw it).
pub fn check_registry_head(
    chain: &Chain,
    name: &str,
    registry: &dyn Registry,
    trust: &Trust,
) -> Result<Option<AuditHead>, WitnessError> {
    let head = registry_head(registry, name, trust)?;
    if let Some(h) = &head
        && let Some(why) = chain.missing_point(
            h.seq,
            &h.entry_sha256,
            &format!(
                "the registry's copy of the signed head ({})",
                registry.uri()
            ),
        )
    {
        return Err(WitnessError::Refused(why));
    }
    Ok(head)
}

/// A release index's key and the index, or why it is not one.
type IndexEntry = (String, Result<ReleaseIndex, String>);

/// Every release index in the registry.
fn indexes(registry: &dyn Registry) -> Result<Vec<IndexEntry>, WitnessError> {
    let mut out = Vec::new();
    for key in registry.list("models/")? {
        let parts: Vec<&str> = key.split('/').collect();
        if parts.len() != 4 || parts[3] != "release.json" {
            continue;
        }
        let parsed = match registry.get_object(&key)? {
            Some(b) => airlock_schemas::strict_json::from_slice::<ReleaseIndex>(&b)
                .map_err(|e| format!("not a release index with an audit point ({e})")),
            None => Err("listed but absent".to_owned()),
        };
        out.push((key, parsed));
    }
    Ok(out)
}

/// What [`check_log`] found.
#[derive(Debug, Clone, Default)]
pub struct WitnessReport {
    /// The seq of the registry's copy of the head.
    pub head_seq: u64,
    /// Releases recorded in this log, each found in it: (name, version, seq).
    pub releases: Vec<(String, String, u64)>,
    /// Releases recorded in other logs (other copies under `audit/`), not checked.
    pub other_logs: usize,
}

/// Check a verified log against a registry: the registry's copy of the head is a point of
/// the log, and every release the registry holds that names this log has its `start`
/// entry in it.
pub fn check_log(
    chain: &Chain,
    name: &str,
    registry: &dyn Registry,
    trust: &Trust,
) -> Result<WitnessReport, WitnessError> {
    let mut problems = Vec::new();
    let head = match check_registry_head(chain, name, registry, trust) {
        Ok(h) => h,
        Err(WitnessError::Refused(why)) => {
            problems.push(why);
            registry_head(registry, name, trust).ok().flatten()
        }
        Err(e) => return Err(e),
    };
    let mut report = WitnessReport {
        head_seq: head.as_ref().map_or(0, |h| h.seq),
        ..WitnessReport::default()
    };
    for (key, index) in indexes(registry)? {
        let index = match index {
            Ok(i) => i,
            Err(why) => {
                problems.push(format!("{key}: {why}"));
                continue;
            }
        };
        if index.audit.log != name {
            report.other_logs += 1;
            continue;
        }
        let what = format!(
            "release {} {} ({key}, published {})",
            index.name, index.version, index.published_at
        );
        match chain.missing_point(index.audit.seq, &index.audit.entry_sha256, &what) {
            Some(why) => problems.push(why),
            None => {
                report
                    .releases
                    .push((index.name, index.version, index.audit.seq));
            }
        }
    }
    if head.is_none() && !report.releases.is_empty() {
        problems.push(format!(
            "{} holds {} release(s) recorded in audit log {name:?} but no copy of its signed head {}: the copy was removed",
            registry.uri(),
            report.releases.len(),
            head_key(name)
        ));
    }
    if head.is_none() && report.releases.is_empty() && problems.is_empty() {
        let copies: Vec<String> = registry
            .list("audit/")?
            .into_iter()
            .filter_map(|k| {
                k.strip_prefix("audit/")?
                    .strip_suffix(".head.dsse.json")
                    .map(str::to_owned)
            })
            .collect();
        problems.push(format!(
            "{} holds no copy of audit log {name:?} and no release recorded in it (copies it holds: {}): check the registry and the log's file name",
            registry.uri(),
            if copies.is_empty() {
                "none".to_owned()
            } else {
                copies.join(", ")
            }
        ));
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(WitnessError::Refused(problems.join("; ")))
    }
}

/// Refuse a release whose `start` entry is not in the registry's copy of its audit log, up
/// to the copy's signed head, naming exactly the files the index lists.
pub fn check_release(
    registry: &dyn Registry,
    index: &ReleaseIndex,
    trust: &Trust,
) -> Result<(), WitnessError> {
    let refused = |why: String| WitnessError::Refused(why);
    let point = &index.audit;
    if !plain(&point.log) {
        return Err(refused(format!(
            "its index names the audit log copy {:?}, which is not a file name",
            point.log
        )));
    }
    let head = registry_head(registry, &point.log, trust)?.ok_or_else(|| {
        refused(format!(
            "the registry holds no signed audit head {}: its publish was not recorded there",
            head_key(&point.log)
        ))
    })?;
    let text = registry
        .get_object(&log_key(&point.log))?
        .ok_or_else(|| refused(format!("the registry holds no {}", log_key(&point.log))))?;
    let text = String::from_utf8(text)
        .map_err(|_| refused(format!("{} is not UTF-8", log_key(&point.log))))?;
    let chain = Chain::parse(&text)
        .map_err(|e| refused(format!("the registry's {}: {e}", log_key(&point.log))))?;
    if let Some(why) = chain.missing_point(
        head.seq,
        &head.entry_sha256,
        &format!("the signed head {}", head_key(&point.log)),
    ) {
        return Err(refused(format!("the registry's audit copy: {why}")));
    }
    let what = format!(
        "its index's audit entry (seq {}, {})",
        point.seq,
        log_key(&point.log)
    );
    if point.seq > head.seq {
        return Err(refused(format!(
            "{what} is past the copy's signed head (seq {}): the publish was not recorded",
            head.seq
        )));
    }
    if let Some(why) = chain.missing_point(point.seq, &point.entry_sha256, &what) {
        return Err(refused(format!(
            "the publish is not in the audit log: {why}"
        )));
    }
    let Some((entry, _)) = chain.at(point.seq) else {
        return Err(refused(format!("{what} is missing")));
    };
    if entry.action != AuditAction::Start
        || entry.artifacts != index.files
        || entry.actor != index.publisher
    {
        return Err(refused(format!(
            "{what} is a {} entry by {} for other files, not the start of this release's publish",
            entry.action, entry.actor
        )));
    }
    Ok(())
}
