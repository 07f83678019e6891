//! The residency audit log: append-only, hash-chained JSON lines with a signed head.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use airlock_schemas::{AuditAction, AuditEntry, AuditHead, Envelope, ErrorKind, IoError, KeyRole};
use airlock_trust::keys::Signer;
use airlock_trust::shards::sha256_hex;
use airlock_trust::{Trust, dsse};
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
    #[error(transparent)]
    Io(#[from] IoError),
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

impl AuditError {
    /// What kind of failure this is (the CLI's exit code follows from it).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Io(e) => e.kind(),
            Self::Busy { .. } => ErrorKind::Environment,
            Self::Invalid { .. } => ErrorKind::VerificationFailed,
        }
    }
}

/// The head file beside a log.
pub fn head_path(log: &Path) -> PathBuf {
    PathBuf::from(format!("{}.head.dsse.json", log.display()))
}

/// The entries of a log's text, checked for structure and chaining (not for signatures).
/// Returns the entries and the hash of the last line. Errors name the entry.
pub fn parse_chain(text: &str) -> Result<(Vec<AuditEntry>, String), String> {
    let chain = Chain::parse(text)?;
    let last = chain.last_sha256().to_owned();
    Ok((chain.entries, last))
}

/// A log's entries with the SHA-256 of each one's line, chaining checked.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// The entries, `seq` 1 first.
    pub entries: Vec<AuditEntry>,
    /// SHA-256 of each entry's line, in the same order.
    pub hashes: Vec<String>,
}

impl Chain {
    /// Parse a log's text: structure and chaining (not signatures). Errors name the entry.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.is_empty() && !text.ends_with('\n') {
            let n = text.lines().count();
            return Err(format!(
                "entry {n} (line {n}) is torn: the log does not end with a complete line"
            ));
        }
        let mut chain = Self::default();
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
            chain.entries.push(e);
            chain.hashes.push(prev.clone());
        }
        Ok(chain)
    }

    /// Entries in the log.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Whether the log has no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// SHA-256 of the last entry's line ([`GENESIS`] for an empty log).
    pub fn last_sha256(&self) -> &str {
        self.hashes.last().map_or(GENESIS, String::as_str)
    }

    /// The entry at `seq` and its line's SHA-256.
    pub fn at(&self, seq: u64) -> Option<(&AuditEntry, &str)> {
        let i = usize::try_from(seq.checked_sub(1)?).ok()?;
        Some((self.entries.get(i)?, self.hashes.get(i)?.as_str()))
    }

    /// Why the entry at `seq` with line hash `sha256` is not a point of this chain, if it
    /// is not. `what` names the point (e.g. "the registry's copy of the signed head").
    pub fn missing_point(&self, seq: u64, sha256: &str, what: &str) -> Option<String> {
        match self.at(seq) {
            Some((_, h)) if h == sha256 => None,
            Some(_) => Some(format!(
                "{what} names entry {seq} with SHA-256 {sha256}, but entry {seq} of the log differs: the log was replaced or rewritten after it"
            )),
            None => Some(format!(
                "{what} names entry {seq}, but the log has only {} entries: entries were deleted (an older signed head does not hide that)",
                self.len()
            )),
        }
    }
}

/// The head in a signed-head envelope, if its signature is a publisher key's of `trust`.
pub fn open_signed_head(bytes: &[u8], trust: &Trust) -> Result<AuditHead, String> {
    let env: Envelope = airlock_schemas::strict_json::from_slice(bytes)
        .map_err(|e| format!("signed head is not a DSSE envelope ({e})"))?;
    let publishers = trust.keys_with_role(KeyRole::Publisher);
    let verified = dsse::verify(&env, HEAD_PAYLOAD_TYPE, &publishers)
        .map_err(|e| format!("signed head: {e}"))?;
    let head: AuditHead = airlock_schemas::strict_json::from_slice(&verified.payload)
        .map_err(|e| format!("signed head is not a head ({e})"))?;
    // The head counts only if its key was usable (unrevoked, inside its window) when it
    // signed.
    usable_publisher(trust, &verified.keyid, &head.time)
        .map_err(|why| format!("signed head: {why}"))?;
    Ok(head)
}

/// Check that the signed head at `head_file` is a publisher key's and names exactly the
/// last entry of `chain`. `fresh`: an empty chain without a head is a new log.
fn check_signed_head(
    chain: &Chain,
    head_file: &Path,
    trust: &Trust,
    fresh: bool,
) -> Result<(), String> {
    let head_bytes = match std::fs::read(head_file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && fresh && chain.is_empty() => {
            return Ok(());
        }
        Err(e) => {
            return Err(format!(
                "cannot read the signed head {} ({e}){}",
                head_file.display(),
                if e.kind() == std::io::ErrorKind::NotFound {
                    ": the log has no signed head; its entries were written without the publisher key, or the head was deleted"
                } else {
                    ""
                }
            ));
        }
    };
    let head = open_signed_head(&head_bytes, trust)?;
    if head.seq != chain.len() {
        return Err(format!(
            "the signed head covers {} entries but the log has {}: entries were deleted or appended without the publisher key",
            head.seq,
            chain.len()
        ));
    }
    if head.entry_sha256 != chain.last_sha256() {
        return Err(format!(
            "entry {} (the last) differs from the one the head signed: it was edited or replaced",
            chain.len()
        ));
    }
    Ok(())
}

/// What to record; `seq`, `prev` and `time` are filled in by [`AuditLog::append`].
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// `start`, `publish`, `deploy` or `refuse`.
    pub action: AuditAction,
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
    /// `started`, `ok` or why not.
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

/// A log opened for appending, its chain read and checked, and locked against every other
/// airlock process for as long as it lives (a publish holds it from its first check to its
/// last entry). A log that does not exist yet is created by the first append, so no empty
/// log is ever left behind.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    /// `None` until the log exists.
    file: Option<std::fs::File>,
    chain: Chain,
}

impl AuditLog {
    /// Open (and lock) the log at `path`. An absent log is fine (its folder is created, as
    /// a new user expects, and must accept files); a log that is not a regular file, is
    /// locked by another process or does not chain (a torn last line included) is refused.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let io = |action: &'static str, p: &Path| {
            let p = p.to_owned();
            move |source| AuditError::Io(IoError::new(action, &p, source))
        };
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => {
                return Err(io("use as an audit log", path)(std::io::Error::other(
                    "it is not a regular file",
                )));
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let dir = path
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                std::fs::create_dir_all(dir).map_err(io("create the audit log's folder", dir))?;
                // The first append must be able to create the log and its head here.
                tempfile::NamedTempFile::new_in(dir)
                    .map_err(io("create files in the audit log's folder", dir))?;
                if head_path(path).exists() {
                    return Err(AuditError::Invalid {
                        path: path.to_owned(),
                        problem: format!(
                            "the log is missing but its signed head {} exists: the log was deleted or moved",
                            head_path(path).display()
                        ),
                    });
                }
                return Ok(Self {
                    path: path.to_owned(),
                    file: None,
                    chain: Chain::default(),
                });
            }
            Err(e) => return Err(io("open", path)(e)),
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .open(path)
            .map_err(io("open", path))?;
        lock(&file, path)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(io("read", path))?;
        let chain = Chain::parse(&text).map_err(|problem| AuditError::Invalid {
            path: path.to_owned(),
            problem,
        })?;
        Ok(Self {
            path: path.to_owned(),
            file: Some(file),
            chain,
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The entries so far, with their hashes.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// Check that the log's signed head is a publisher key's of `trust` and names exactly
    /// its last entry (an absent log must have no head): nothing is appended to a log whose
    /// entries were cut or added without the publisher key.
    pub fn check_head(&self, trust: &Trust) -> Result<(), AuditError> {
        check_signed_head(&self.chain, &head_path(&self.path), trust, true).map_err(|problem| {
            AuditError::Invalid {
                path: self.path.clone(),
                problem,
            }
        })
    }

    /// Append one entry and re-sign the head; the entry is synced before the head.
    pub fn append(&mut self, entry: NewEntry, signer: &Signer) -> Result<AuditEntry, AuditError> {
        let path = self.path.clone();
        let io = |action: &'static str| {
            let path = path.clone();
            move |source| AuditError::Io(IoError::new(action, &path, source))
        };
        let _appending = quiesce();
        if self.file.is_none() {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .append(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        AuditError::Busy { path: path.clone() }
                    } else {
                        io("create")(e)
                    }
                })?;
            lock(&file, &path)?;
            self.file = Some(file);
        }
        let Some(file) = self.file.as_mut() else {
            return Err(AuditError::Busy { path });
        };
        let now = OffsetDateTime::now_utc();
        let time = now
            .replace_nanosecond(0)
            .unwrap_or(now)
            .format(&Rfc3339)
            .unwrap_or_default();
        let e = AuditEntry {
            seq: self.chain.len() + 1,
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
            prev: self.chain.last_sha256().to_owned(),
        };
        let line = serde_json::to_string(&e).map_err(|e| io("serialize an entry for")(e.into()))?;
        file.write_all(format!("{line}\n").as_bytes())
            .map_err(io("append to"))?;
        file.sync_all().map_err(io("sync"))?;
        let entry_sha256 = sha256_hex(line.as_bytes());
        self.chain.entries.push(e.clone());
        self.chain.hashes.push(entry_sha256.clone());

        let head = AuditHead {
            seq: e.seq,
            entry_sha256,
            time,
        };
        let env = dsse::sign(
            HEAD_PAYLOAD_TYPE,
            &serde_json::to_vec(&head).map_err(|e| io("serialize the head of")(e.into()))?,
            signer,
        );
        let head_file = head_path(&path);
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
}

/// Take the log's exclusive lock without waiting.
fn lock(file: &std::fs::File, path: &Path) -> Result<(), AuditError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(AuditError::Busy {
            path: path.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => {
            Err(AuditError::Io(IoError::new("lock", path, source)))
        }
    }
}

/// Append one entry to the log at `path` (created if absent) and re-sign its head.
///
/// Holds an exclusive lock on the log for the whole append, refuses a log whose existing
/// lines do not chain (a torn last line included), and syncs the entry before the head.
pub fn append(path: &Path, entry: NewEntry, signer: &Signer) -> Result<AuditEntry, AuditError> {
    AuditLog::open(path)?.append(entry, signer)
}

/// Verify a log offline: chaining, and the head's signature by a publisher key of `trust`
/// naming the last entry. Returns the entries.
pub fn verify(path: &Path, trust: &Trust) -> Result<Vec<AuditEntry>, AuditError> {
    verify_chain(path, trust).map(|c| c.entries)
}

/// [`verify`], returning the entries with their hashes.
pub fn verify_chain(path: &Path, trust: &Trust) -> Result<Chain, AuditError> {
    let invalid = |problem: String| AuditError::Invalid {
        path: path.to_owned(),
        problem,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|source| AuditError::Io(IoError::new("read", path, source)))?;
    let chain = Chain::parse(&text).map_err(invalid)?;
    check_signed_head(&chain, &head_path(path), trust, false).map_err(invalid)?;
    let publishers = trust.keys_with_role(KeyRole::Publisher);
    let mut previous: Option<(u64, OffsetDateTime)> = None;
    for e in &chain.entries {
        // Entries are appended in time order: an entry dated before the one it follows was
        // backdated (for example by a key signing after its window closed).
        if let Ok(t) = OffsetDateTime::parse(&e.time, &Rfc3339) {
            if let Some((seq, before)) = previous
                && t < before - time::Duration::minutes(5)
            {
                return Err(invalid(format!(
                    "entry {} is dated {} but follows entry {seq}, dated later: it was backdated",
                    e.seq, e.time
                )));
            }
            previous = Some((e.seq, t));
        }
        if !publishers.iter().any(|(id, _)| *id == e.actor) {
            return Err(invalid(format!(
                "entry {} names actor {}, not a publisher key of the trust policy",
                e.seq, e.actor
            )));
        }
        usable_publisher(trust, &e.actor, &e.time)
            .map_err(|why| invalid(format!("entry {}: {why}", e.seq)))?;
    }
    Ok(chain)
}

/// The publisher key `keyid` counts for something it signed at `time` (RFC 3339): listed as
/// publisher, not revoked, `time` inside its window. A log is judged at the times it was
/// written, so a key that expired since still vouches for what it signed before.
///
/// The signer chooses the time it writes, so a time later than now (beyond a little clock
/// skew) is refused: otherwise a key whose window has not begun could sign with a date
/// inside it. An expired key backdating is caught by [`verify_chain`]'s order check.
fn usable_publisher(trust: &Trust, keyid: &str, time: &str) -> Result<(), String> {
    let t = OffsetDateTime::parse(time, &Rfc3339)
        .map_err(|_| format!("time {time:?} is not an RFC 3339 time"))?;
    if t > OffsetDateTime::now_utc() + time::Duration::minutes(5) {
        return Err(format!("dated in the future ({time})"));
    }
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
            e.action.as_str(),
            e.outcome.chars().take(10).collect::<String>(),
            e.destination,
            e.verified_region.as_deref().unwrap_or("-"),
            model
        ));
    }
    out
}
