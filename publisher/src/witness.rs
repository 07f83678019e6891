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
//!
//! Since the log is a Merkle tree, the registry also keeps every signed checkpoint the
//! publisher sent it: the latest under `audit/<name>.checkpoint` and each one under
//! `audit/<name>.checkpoints/<size>`. Before a new checkpoint is stored, its consistency
//! proof from the registry's latest is verified (RFC 9162 §2.1.4.2), so the history only
//! grows along one tree; a log that was cut (its size below a checkpoint's) or forked (another
//! root at a checkpoint's size) is refused by `publish` and by `audit verify --registry`,
//! whichever checkpoint of the history it contradicts.

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

/// Registry key of the latest checkpoint of log `name`.
pub fn checkpoint_key(name: &str) -> String {
    format!("audit/{name}.checkpoint")
}

/// Registry prefix of the checkpoint history of log `name`.
pub fn checkpoints_prefix(name: &str) -> String {
    format!("audit/{name}.checkpoints/")
}

/// Registry key of the checkpoint of log `name` at `size` (zero-padded, so the listing is
/// in size order).
pub fn history_key(name: &str, size: u64) -> String {
    format!("{}{size:020}", checkpoints_prefix(name))
}

/// The checkpoint stored at `key`, signed by a usable publisher key of `trust`, of log
/// `name`'s origin; `None` when absent.
fn stored_checkpoint(
    registry: &dyn Registry,
    key: &str,
    name: &str,
    trust: &Trust,
) -> Result<Option<airlock_trust::merkle::Checkpoint>, WitnessError> {
    let Some(bytes) = registry.get_object_max(key, airlock_trust::merkle::MAX_CHECKPOINT_BYTES)?
    else {
        return Ok(None);
    };
    let refused = |why: String| WitnessError::Refused(format!("{}/{key}: {why}", registry.uri()));
    let bytes = bytes.map_err(|len| refused(format!("{len} bytes, more than a checkpoint")))?;
    let note = String::from_utf8(bytes).map_err(|_| refused("not UTF-8".into()))?;
    let signed =
        airlock_trust::merkle::open_trusted(&note, trust, airlock_schemas::KeyRole::Publisher)
            .map_err(refused)?;
    let origin = crate::audit::origin_of(name);
    if signed.checkpoint.origin != origin {
        return Err(refused(format!(
            "a checkpoint of {:?}, not of {origin:?}",
            signed.checkpoint.origin
        )));
    }
    Ok(Some(signed.checkpoint))
}

/// Refuse when a checkpoint the registry holds for log `name` (its latest and, with
/// `history`, every one it kept) is not a point of `chain`: the log was truncated, forked
/// or rewritten since the registry saw it. Returns the checkpoints checked.
pub fn check_registry_checkpoints(
    chain: &Chain,
    name: &str,
    registry: &dyn Registry,
    trust: &Trust,
    history: bool,
) -> Result<u64, WitnessError> {
    let mut keys = vec![checkpoint_key(name)];
    if history {
        keys.extend(registry.list(&checkpoints_prefix(name))?);
    }
    let mut checked = 0;
    for key in keys {
        if let Some(c) = stored_checkpoint(registry, &key, name, trust)? {
            let what = format!("the registry's checkpoint {}/{key}", registry.uri());
            if let Some(why) = chain.missing_checkpoint(&c, &what) {
                return Err(WitnessError::Refused(why));
            }
            checked += 1;
        }
    }
    Ok(checked)
}

/// Store the log's new checkpoint `note` (just signed by this process) in the registry's
/// history, after checking as a witness would that it extends the registry's latest: the
/// consistency proof from that size, made from `chain`, must verify against both roots.
/// (The latest's signature was checked against the trust policy when the log was opened
/// for this publish; here its size and root are what count.)
pub fn record_checkpoint(
    registry: &dyn Registry,
    name: &str,
    chain: &Chain,
    note: &str,
) -> Result<(), WitnessError> {
    use airlock_trust::merkle::Checkpoint;
    let new = Checkpoint::parse_note(note)
        .map_err(|e| WitnessError::Refused(format!("the log's own checkpoint: {e}")))?;
    let key = checkpoint_key(name);
    let old = match registry.get_object_max(&key, airlock_trust::merkle::MAX_CHECKPOINT_BYTES)? {
        Some(Ok(b)) => Some(
            String::from_utf8(b)
                .map_err(|e| e.to_string())
                .and_then(|n| Checkpoint::parse_note(&n))
                .map_err(|e| WitnessError::Refused(format!("{}/{key}: {e}", registry.uri())))?,
        ),
        Some(Err(len)) => {
            return Err(WitnessError::Refused(format!(
                "{}/{key}: {len} bytes, more than a checkpoint",
                registry.uri()
            )));
        }
        None => None,
    };
    if let Some(old) = old {
        let proof = chain
            .tree
            .consistency_proof(old.size, new.size)
            .ok_or_else(|| {
                WitnessError::Refused(format!(
                    "the registry's latest checkpoint covers {} entries, the log's {}: the log was truncated",
                    old.size, new.size
                ))
            })?;
        airlock_trust::merkle::verify_consistency(old.size, new.size, &proof, &old.root, &new.root)
            .map_err(|e| {
                WitnessError::Refused(format!(
                    "the log's checkpoint does not extend the registry's latest ({e})"
                ))
            })?;
    }
    registry.put_object(&history_key(name, new.size), note.as_bytes())?;
    registry.put_object(&checkpoint_key(name), note.as_bytes())?;
    Ok(())
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
    /// Signed checkpoints of the registry's history found to be points of the log.
    pub checkpoints: u64,
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
    match check_registry_checkpoints(chain, name, registry, trust, true) {
        Ok(n) => report.checkpoints = n,
        Err(WitnessError::Refused(why)) => problems.push(why),
        Err(e) => return Err(e),
    }
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
    // The tree the index's proof was made in must be the one the registry saw (no split
    // view: a proof against a tree the registry never held is refused).
    if let Some(p) = &index.transparency {
        let c = airlock_trust::merkle::Checkpoint::parse_note(&p.checkpoint)
            .map_err(|e| refused(format!("its inclusion proof's checkpoint: {e}")))?;
        if let Some(why) = chain.missing_checkpoint(&c, "its inclusion proof's checkpoint") {
            return Err(refused(format!(
                "the registry's {}: {why}",
                log_key(&point.log)
            )));
        }
    }
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

/// Check a release index's inclusion proof offline: the checkpoint is signed by a usable
/// publisher key of `trust` and is of the log the index names, the proven entry is the
/// index's audit point, and it is the `start` of this publish (these files, this
/// publisher). `Ok(false)` when the index carries no proof (written before proofs).
pub fn check_index_proof(index: &ReleaseIndex, trust: &Trust) -> Result<bool, WitnessError> {
    let Some(p) = &index.transparency else {
        return Ok(false);
    };
    let refused = |why: String| WitnessError::Refused(format!("its inclusion proof: {why}"));
    let (entry, signed) =
        airlock_trust::merkle::verify_entry_proof(p, trust, airlock_schemas::KeyRole::Publisher)
            .map_err(refused)?;
    let origin = crate::audit::origin_of(&index.audit.log);
    if signed.checkpoint.origin != origin {
        return Err(refused(format!(
            "its checkpoint is of {:?}, but the index names log {:?}",
            signed.checkpoint.origin, index.audit.log
        )));
    }
    if p.seq != index.audit.seq
        || airlock_trust::shards::sha256_hex(p.entry.as_bytes()) != index.audit.entry_sha256
    {
        return Err(refused(format!(
            "it proves entry {}, not the index's audit entry {}",
            p.seq, index.audit.seq
        )));
    }
    if entry.action != AuditAction::Start
        || entry.artifacts != index.files
        || entry.actor != index.publisher
    {
        return Err(refused(format!(
            "entry {} is a {} entry by {} for other files, not the start of this release's publish",
            entry.seq, entry.action, entry.actor
        )));
    }
    Ok(true)
}
