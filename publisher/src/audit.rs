//! The residency audit log: append-only, hash-chained JSON lines with a signed head.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use airlock_packager::keys::Signer;
use airlock_packager::shards::sha256_hex;
use airlock_packager::{Trust, dsse};
use airlock_schemas::{AuditEntry, AuditHead, Envelope, KeyRole};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// DSSE payload type of a signed head.
pub const HEAD_PAYLOAD_TYPE: &str = "application/vnd.airlock.audit-head+json";
/// `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Why the log cannot be appended to or does not verify.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// File-system failure.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the log.
    #[error("audit log {} is in use by another airlock process", path.display())]
    Busy {
        /// The log.
        path: PathBuf,
    },
    /// The log is damaged: nothing is appended to it.
    #[error("audit log {}: {problem}", path.display())]
    Invalid {
        /// The log.
        path: PathBuf,
        /// The first problem, naming the entry.
        problem: String,
    },
}

/// The head file beside a log.
pub fn head_path(log: &Path) -> PathBuf {
    PathBuf::from(format!("{}.head.dsse.json", log.display()))
}

/// The entries of a log's text, checked for structure and chaining (not for signatures).
/// Returns the entries and the hash of the last line. Errors name the entry.
pub fn parse_chain(text: &str) -> Result<(Vec<AuditEntry>, String), String> {
    if !text.is_empty() && !text.ends_with('\n') {
        let n = text.lines().count();
        return Err(format!(
            "entry {n} (line {n}) is torn: the log does not end with a complete line"
        ));
    }
    let mut entries = Vec::new();
    let mut prev = GENESIS.to_owned();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let e: AuditEntry = airlock_schemas::strict_json::from_str(line)
            .map_err(|e| format!("entry at line {n} is not a valid audit entry ({e})"))?;
        if e.seq != n as u64 {
            return Err(format!(
                "entry at line {n} has seq {}, expected {n}: entries were deleted, inserted or reordered",
                e.seq
            ));
        }
        if e.prev != prev {
            return Err(format!(
                "entry {n} (line {n}) does not chain to entry {}: it or an earlier entry was edited, deleted or reordered",
                n - 1
            ));
        }
        prev = sha256_hex(line.as_bytes());
        entries.push(e);
    }
    Ok((entries, prev))
}

/// What to record; `seq`, `prev` and `time` are filled in by [`append`].
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// `publish`, `deploy` or `refuse`.
    pub action: String,
    /// Artifact name → SHA-256.
    pub artifacts: std::collections::BTreeMap<String, String>,
    /// Destination URI.
    pub destination: String,
    /// Region the destination reported.
    pub verified_region: Option<String>,
    /// Approvals that counted (key ids).
    pub approvals: Vec<String>,
    /// SHA-256 of the trust policy.
    pub trust_policy_sha256: String,
    /// SHA-256 of the residency policy.
    pub residency_policy_sha256: String,
    /// `ok` or why not.
    pub outcome: String,
}

/// Held by every append in this process, from the entry's write to its signed head.
static APPENDING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Wait for an append in progress to finish and block new ones while the guard lives: a
/// process that exits on a signal holds it, so it never leaves an entry without its head.
pub fn quiesce() -> std::sync::MutexGuard<'static, ()> {
    APPENDING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Append one entry to the log at `path` (created if absent) and re-sign its head.
///
/// Holds an exclusive lock on the log for the whole append, refuses a log whose existing
/// lines do not chain (a torn last line included), and syncs the entry before the head.
pub fn append(path: &Path, entry: NewEntry, signer: &Signer) -> Result<AuditEntry, AuditError> {
    let io = |action: &'static str| {
        let path = path.to_owned();
        move |source| AuditError::Io {
            action,
            path,
            source,
        }
    };
    let _appending = quiesce();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io("open"))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(AuditError::Busy {
                path: path.to_owned(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io("lock")(e)),
    }
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).map_err(io("read"))?;
    file.read_to_string(&mut text).map_err(io("read"))?;
    let (entries, prev) = parse_chain(&text).map_err(|problem| AuditError::Invalid {
        path: path.to_owned(),
        problem,
    })?;
    let now = OffsetDateTime::now_utc();
    let time = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&Rfc3339)
        .unwrap_or_default();
    let e = AuditEntry {
        seq: entries.len() as u64 + 1,
        time: time.clone(),
        actor: signer.key_id().to_owned(),
        action: entry.action,
        artifacts: entry.artifacts,
        destination: entry.destination,
        verified_region: entry.verified_region,
        approvals: entry.approvals,
        trust_policy_sha256: entry.trust_policy_sha256,
        residency_policy_sha256: entry.residency_policy_sha256,
        outcome: entry.outcome,
        prev,
    };
    let line = serde_json::to_string(&e).map_err(|e| io("serialize an entry for")(e.into()))?;
    file.write_all(format!("{line}\n").as_bytes())
        .map_err(io("append to"))?;
    file.sync_all().map_err(io("sync"))?;

    let head = AuditHead {
        seq: e.seq,
        entry_sha256: sha256_hex(line.as_bytes()),
        time,
    };
    let env = dsse::sign(
        HEAD_PAYLOAD_TYPE,
        &serde_json::to_vec(&head).map_err(|e| io("serialize the head of")(e.into()))?,
        signer,
    );
    let head_file = head_path(path);
    let dir = head_file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io("write the head of"))?;
    tmp.write_all(
        &serde_json::to_vec_pretty(&env).map_err(|e| io("serialize the head of")(e.into()))?,
    )
    .map_err(io("write the head of"))?;
    tmp.as_file().sync_all().map_err(io("sync the head of"))?;
    tmp.persist(&head_file)
        .map_err(|e| io("write the head of")(e.error))?;
    Ok(e)
}

/// Verify a log offline: chaining, and the head's signature by a publisher key of `trust`
/// naming the last entry. Returns the entries.
pub fn verify(path: &Path, trust: &Trust) -> Result<Vec<AuditEntry>, AuditError> {
    let invalid = |problem: String| AuditError::Invalid {
        path: path.to_owned(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|source| AuditError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })?;
    let (entries, last) = parse_chain(&text).map_err(invalid)?;
    let head_file = head_path(path);
    let head_bytes = std::fs::read(&head_file).map_err(|source| AuditError::Io {
        action: "read the signed head",
        path: head_file.clone(),
        source,
    })?;
    let env: Envelope = airlock_schemas::strict_json::from_slice(&head_bytes)
        .map_err(|e| invalid(format!("signed head is not a DSSE envelope ({e})")))?;
    let publishers = trust.keys_with_role(KeyRole::Publisher);
    let verified = dsse::verify(&env, HEAD_PAYLOAD_TYPE, &publishers)
        .map_err(|e| invalid(format!("signed head: {e}")))?;
    let head: AuditHead = airlock_schemas::strict_json::from_slice(&verified.payload)
        .map_err(|e| invalid(format!("signed head is not a head ({e})")))?;
    // The head counts only if its key was usable (unrevoked, inside its window) when it
    // signed; so does every entry, at its own time.
    usable_publisher(trust, &verified.keyid, &head.time)
        .map_err(|why| invalid(format!("signed head: {why}")))?;
    if head.seq != entries.len() as u64 {
        return Err(invalid(format!(
            "the signed head covers {} entries but the log has {}: entries were deleted or appended without the publisher key",
            head.seq,
            entries.len()
        )));
    }
    if head.entry_sha256 != last {
        return Err(invalid(format!(
            "entry {} (the last) differs from the one the head signed: it was edited or replaced",
            entries.len()
        )));
    }
    for e in &entries {
        if !publishers.iter().any(|(id, _)| *id == e.actor) {
            return Err(invalid(format!(
                "entry {} names actor {}, not a publisher key of the trust policy",
                e.seq, e.actor
            )));
        }
        usable_publisher(trust, &e.actor, &e.time)
            .map_err(|why| invalid(format!("entry {}: {why}", e.seq)))?;
    }
    Ok(entries)
}

/// The publisher key `keyid` counts for something it signed at `time` (RFC 3339): listed as
/// publisher, not revoked, `time` inside its window. A log is judged at the times it was
/// written, so a key that expired since still vouches for what it signed before.
fn usable_publisher(trust: &Trust, keyid: &str, time: &str) -> Result<(), String> {
    let t = OffsetDateTime::parse(time, &Rfc3339)
        .map_err(|_| format!("time {time:?} is not an RFC 3339 time"))?;
    trust
        .usable_key(keyid, KeyRole::Publisher, t, t)
        .map(|_| ())
}

/// A plain table of the entries, for `airlock audit show`.
pub fn table(entries: &[AuditEntry]) -> String {
    let mut out = format!(
        "{:>4}  {:<20}  {:<8}  {:<10}  {:<22}  {:<12}  {}\n",
        "seq", "time", "action", "outcome", "destination", "region", "model sha256"
    );
    for e in entries {
        let model = e
            .artifacts
            .get("model.safetensors")
            .map_or("-", |s| &s[..s.len().min(12)]);
        out.push_str(&format!(
            "{:>4}  {:<20}  {:<8}  {:<10}  {:<22}  {:<12}  {}\n",
            e.seq,
            e.time,
            e.action,
            e.outcome.chars().take(10).collect::<String>(),
            e.destination,
            e.verified_region.as_deref().unwrap_or("-"),
            model
        ));
    }
    out
}
