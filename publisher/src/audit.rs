//! The residency audit log: append-only, hash-chained JSON lines with a signed head.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use airlock_schemas::{
    AuditAction, AuditEntry, AuditHead, ConsistencyProof, Envelope, ErrorKind, InclusionProof,
    IoError, KeyRole,
};
use airlock_trust::keys::Signer;
use airlock_trust::merkle::{self, Checkpoint, Tree};
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

/// The signed checkpoint beside a log (C2SP `tlog-checkpoint`), rewritten on every append.
pub fn checkpoint_path(log: &Path) -> PathBuf {
    PathBuf::from(format!("{}.checkpoint", log.display()))
}

/// The origin line of the checkpoints of the log named `name` (its file name, which is
/// also the name of its copy in a registry): `airlock.audit/<name>`, every byte but ASCII
/// letters, digits, `.` and `-` written as `_` and two hex digits, so that two names never
/// share an origin (and so each other's checkpoints).
pub fn origin_of(name: &str) -> String {
    let mut safe = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-') {
            safe.push(char::from(b));
        } else {
            safe.push_str(&format!("_{b:02x}"));
        }
    }
    format!("airlock.audit/{safe}")
}

/// The origin of the checkpoints of the log at `log`.
pub fn origin_of_log(log: &Path) -> String {
    origin_of(&crate::witness::copy_name(log))
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
    /// The RFC 9162 Merkle tree over the lines (leaf `i` is entry `i + 1`).
    pub tree: Tree,
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
            chain.tree.push(merkle::leaf_hash(line.as_bytes()));
        }
        Ok(chain)
    }

    /// The line of entry `seq`, as it is in the log (re-serialized, and checked against
    /// the line's hash).
    pub fn line(&self, seq: u64) -> Option<String> {
        let (entry, sha) = self.at(seq)?;
        let line = serde_json::to_string(entry).ok()?;
        (sha256_hex(line.as_bytes()) == sha).then_some(line)
    }

    /// The checkpoint of the first `size` entries (`None` past the end), dated `time`.
    pub fn checkpoint(&self, origin: &str, size: u64, time: &str) -> Option<Checkpoint> {
        Some(Checkpoint {
            origin: origin.to_owned(),
            size,
            root: self.tree.root_at(size)?,
            extensions: vec![format!("{}{time}", merkle::TIME_EXTENSION)],
        })
    }

    /// Entry `seq`'s inclusion proof in the tree that `checkpoint` (a signed note, of a
    /// size this chain reaches) is of. `None` if the entry or the size is out of range.
    pub fn prove(&self, seq: u64, checkpoint: &str, size: u64) -> Option<InclusionProof> {
        let hashes = self.tree.inclusion_proof(seq.checked_sub(1)?, size)?;
        Some(InclusionProof {
            seq,
            entry: self.line(seq)?,
            tree_size: size,
            hashes: hashes.iter().map(merkle::to_hex).collect(),
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// The consistency proof from the first `from` entries to the first `size`, for the
    /// signed checkpoint of size `size`.
    pub fn consistency(&self, from: u64, checkpoint: &str, size: u64) -> Option<ConsistencyProof> {
        let hashes = self.tree.consistency_proof(from, size)?;
        Some(ConsistencyProof {
            from_size: from,
            from_root: merkle::to_hex(&self.tree.root_at(from)?),
            tree_size: size,
            hashes: hashes.iter().map(merkle::to_hex).collect(),
            checkpoint: checkpoint.to_owned(),
        })
    }

    /// Why the signed checkpoint `c` (of this log's origin) is not a point of this chain,
    /// if it is not: a larger size than the log (truncated) or another root at its size
    /// (forked or rewritten). `what` names the checkpoint.
    pub fn missing_checkpoint(&self, c: &Checkpoint, what: &str) -> Option<String> {
        match self.tree.root_at(c.size) {
            None => Some(format!(
                "{what} covers {} entries, but the log has only {}: entries were deleted (the log was truncated)",
                c.size,
                self.len()
            )),
            Some(root) if root != c.root => Some(format!(
                "{what} has another root for the first {} entries than the log: the log was forked or rewritten after it",
                c.size
            )),
            Some(_) => None,
        }
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
    open_signed_head_by(bytes, trust).map(|(head, _)| head)
}

/// [`open_signed_head`], with the key id of the publisher key whose signature held. A
/// refusal names the publisher keys that were expected.
pub fn open_signed_head_by(bytes: &[u8], trust: &Trust) -> Result<(AuditHead, String), String> {
    open_signed_head_as(bytes, trust, KeyRole::Publisher)
}

/// [`open_signed_head_by`] for a log kept by keys of `role`: `publisher` for releases,
/// `aggregator` for a federation's log. A head signed by a key of the other role is
/// refused, so neither can sign the other's log.
pub fn open_signed_head_as(
    bytes: &[u8],
    trust: &Trust,
    role: KeyRole,
) -> Result<(AuditHead, String), String> {
    let env: Envelope = airlock_schemas::strict_json::from_slice(bytes)
        .map_err(|e| format!("signed head is not a DSSE envelope ({e})"))?;
    let signers = trust.keys_with_role(role);
    let expected = if role == KeyRole::Publisher {
        expected_publishers(trust)
    } else {
        format!("a signature by a {} key", airlock_trust::role_name(role))
    };
    let verified = dsse::verify(&env, HEAD_PAYLOAD_TYPE, &signers)
        .map_err(|e| format!("signed head: {e}; expected {expected}"))?;
    let head: AuditHead = airlock_schemas::strict_json::from_slice(&verified.payload)
        .map_err(|e| format!("signed head is not a head ({e})"))?;
    // The head counts only if its key was usable (unrevoked, inside its window) when it
    // signed.
    usable_signer(trust, &verified.keyid, &head.time, role)
        .map_err(|why| format!("signed head: {why}"))?;
    Ok((head, verified.keyid))
}

/// The publisher keys of `trust`, by name and key id, for a message saying which key was
/// expected.
pub fn expected_publishers(trust: &Trust) -> String {
    let keys: Vec<String> = trust
        .keys
        .iter()
        .filter(|k| k.role == KeyRole::Publisher)
        .map(|k| format!("{:?} ({})", k.name, k.key_id))
        .collect();
    match keys.len() {
        0 => "a publisher key, but the trust policy lists none".to_owned(),
        1 => format!("a signature by the publisher key {}", keys[0]),
        _ => format!(
            "a signature by one of the publisher keys {}",
            keys.join(", ")
        ),
    }
}

/// Check that the signed head at `head_file` is a publisher key's and names exactly the
/// last entry of `chain`. `fresh`: an empty chain without a head is a new log.
/// Returns the key id of the key that signed the head (`None`: a new log, no head).
fn check_signed_head(
    chain: &Chain,
    head_file: &Path,
    trust: &Trust,
    fresh: bool,
    role: KeyRole,
) -> Result<Option<String>, String> {
    let head_bytes = match std::fs::read(head_file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && fresh && chain.is_empty() => {
            return Ok(None);
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
    let (head, keyid) = open_signed_head_as(&head_bytes, trust, role)?;
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
    Ok(Some(keyid))
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
    /// Model name and version the entries are about, once named ([`AuditLog::name_release`]).
    release: Option<(String, String)>,
    /// The signed checkpoint note written by the last append of this process.
    checkpoint: Option<String>,
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
                    release: None,
                    checkpoint: None,
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
            release: None,
            checkpoint: None,
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

    /// The signed checkpoint note of the whole log, once this process appended to it.
    pub fn checkpoint(&self) -> Option<&str> {
        self.checkpoint.as_deref()
    }

    /// Entry `seq`'s inclusion proof against the checkpoint this process last signed.
    pub fn prove(&self, seq: u64) -> Option<InclusionProof> {
        self.chain
            .prove(seq, self.checkpoint.as_deref()?, self.chain.len())
    }

    /// Check that the log's signed head is a publisher key's of `trust` and names exactly
    /// its last entry (an absent log must have no head): nothing is appended to a log whose
    /// entries were cut or added without the publisher key.
    pub fn check_head(&self, trust: &Trust) -> Result<(), AuditError> {
        self.check_head_as(trust, KeyRole::Publisher)
    }

    /// [`AuditLog::check_head`] for a log kept by keys of `role` (`aggregator`: a
    /// federation's log, every entry of which must be a federated one).
    pub fn check_head_as(&self, trust: &Trust, role: KeyRole) -> Result<(), AuditError> {
        let federated = self.chain.entries.iter().all(|e| e.action.is_federated());
        if (role == KeyRole::Aggregator) != federated && !self.chain.is_empty() {
            return Err(AuditError::Invalid {
                path: self.path.clone(),
                problem: "a log holds either a federation's entries or releases', never both"
                    .to_owned(),
            });
        }
        check_signed_head(&self.chain, &head_path(&self.path), trust, true, role)
            .map(|_| ())
            .map_err(|problem| AuditError::Invalid {
                path: self.path.clone(),
                problem,
            })
    }

    /// Name the release the next entries are about (model name and version), from a
    /// verification whose release statement's signature held; without one, nothing is
    /// named (an unverified bundle's names are the bundle writer's word).
    pub fn name_release(&mut self, v: &airlock_trust::Verification) {
        if let Some(st) = &v.statement {
            self.release = Some((
                st.predicate.model_name.clone(),
                st.predicate.model_version.clone(),
            ));
        }
    }

    /// Name the model the next entries are about from another verified statement (a
    /// burst's export, whose builder signature held).
    pub fn name_model(&mut self, name: &str, version: &str) {
        self.release = Some((name.to_owned(), version.to_owned()));
    }

    /// Append one entry and re-sign the head; the entry is synced before the head.
    pub fn append(&mut self, entry: NewEntry, signer: &Signer) -> Result<AuditEntry, AuditError> {
        let mut written = self.append_batch(vec![(entry, None)], signer)?;
        written.pop().ok_or_else(|| AuditError::Busy {
            path: self.path.clone(),
        })
    }

    /// Append entries (each with what the router records, if anything) with one write,
    /// one sync and one signed head: what a router writes many of.
    pub fn append_batch(
        &mut self,
        entries: Vec<(NewEntry, Option<airlock_schemas::RoutingRecord>)>,
        signer: &Signer,
    ) -> Result<Vec<AuditEntry>, AuditError> {
        let path = self.path.clone();
        let io = |action: &'static str| {
            let path = path.clone();
            move |source| AuditError::Io(IoError::new(action, &path, source))
        };
        if entries.is_empty() {
            return Ok(Vec::new());
        }
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
        let mut text = String::new();
        let mut written = Vec::with_capacity(entries.len());
        let mut hashes = Vec::with_capacity(entries.len());
        let mut prev = self.chain.last_sha256().to_owned();
        for (entry, routing) in entries {
            let e = AuditEntry {
                seq: self.chain.len() + written.len() as u64 + 1,
                time: time.clone(),
                actor: signer.key_id().to_owned(),
                action: entry.action,
                model: self.release.as_ref().map(|(m, _)| m.clone()),
                version: self.release.as_ref().map(|(_, v)| v.clone()),
                artifacts: entry.artifacts,
                destination: entry.destination,
                verified_region: entry.verified_region,
                approvals: entry.approvals,
                trust_policy_sha256: entry.trust_policy_sha256,
                residency_policy_sha256: entry.residency_policy_sha256,
                outcome: entry.outcome,
                routing,
                prev: prev.clone(),
            };
            let line =
                serde_json::to_string(&e).map_err(|e| io("serialize an entry for")(e.into()))?;
            prev = sha256_hex(line.as_bytes());
            text.push_str(&line);
            text.push('\n');
            hashes.push(prev.clone());
            written.push(e);
        }
        file.write_all(text.as_bytes()).map_err(io("append to"))?;
        file.sync_all().map_err(io("sync"))?;
        self.chain.entries.extend(written.iter().cloned());
        self.chain.hashes.extend(hashes);
        for line in text.lines() {
            self.chain.tree.push(merkle::leaf_hash(line.as_bytes()));
        }
        let last = written.last().map_or(0, |e| e.seq);

        let head = AuditHead {
            seq: last,
            entry_sha256: prev,
            time,
        };
        let env = dsse::sign(
            HEAD_PAYLOAD_TYPE,
            &serde_json::to_vec(&head).map_err(|e| io("serialize the head of")(e.into()))?,
            signer,
        );
        let head_bytes =
            serde_json::to_vec_pretty(&env).map_err(|e| io("serialize the head of")(e.into()))?;
        write_atomically(&head_path(&path), &head_bytes).map_err(io("write the head of"))?;
        // The checkpoint of the whole tree, signed by the same key, after the head.
        let note = self
            .chain
            .checkpoint(&origin_of_log(&path), last, &head.time)
            .map(|c| c.sign(signer))
            .ok_or_else(|| AuditError::Busy { path: path.clone() })?;
        write_atomically(&checkpoint_path(&path), note.as_bytes())
            .map_err(io("write the checkpoint of"))?;
        self.checkpoint = Some(note);
        Ok(written)
    }
}

/// Write `bytes` to `dest` through a synced temporary file in its folder and a rename.
fn write_atomically(dest: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(dest).map_err(|e| e.error)?;
    Ok(())
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
    verify_log(path, trust).map(|v| v.chain)
}

/// A log that verified, and the publisher key that signed its head.
#[derive(Debug, Clone)]
pub struct VerifiedLog {
    /// The entries with their hashes.
    pub chain: Chain,
    /// Key id of the publisher key whose signature on the head held.
    pub head_keyid: String,
    /// That key's name in the trust policy.
    pub head_key_name: String,
    /// The log's signed checkpoint, checked against the whole log (`None`: a log written
    /// before logs had checkpoints; the next append writes one).
    pub checkpoint: Option<merkle::SignedCheckpoint>,
}

/// Check the signed checkpoint `note` of the log at `path`: signed by a usable key of
/// `role`, of this log's origin, and of exactly the whole `chain`.
pub fn check_checkpoint(
    chain: &Chain,
    note: &str,
    path: &Path,
    trust: &Trust,
    role: KeyRole,
) -> Result<merkle::SignedCheckpoint, String> {
    let signed = merkle::open_trusted(note, trust, role)
        .map_err(|e| format!("its checkpoint {}: {e}", checkpoint_path(path).display()))?;
    let c = &signed.checkpoint;
    let origin = origin_of_log(path);
    if c.origin != origin {
        return Err(format!(
            "its checkpoint is of log {:?}, not {origin:?}: it belongs to another log (or the log was renamed)",
            c.origin
        ));
    }
    if c.size != chain.len() {
        return Err(format!(
            "its checkpoint covers {} entries but the log has {}: entries were deleted or appended without the publisher key",
            c.size,
            chain.len()
        ));
    }
    if c.root != chain.tree.root() {
        return Err(
            "its checkpoint's root is not the Merkle root of the log's entries: an entry was edited or replaced"
                .into(),
        );
    }
    Ok(signed)
}

/// The log's checkpoint note, `None` if it has none.
pub fn read_checkpoint(path: &Path) -> Result<Option<String>, AuditError> {
    let cp = checkpoint_path(path);
    match std::fs::metadata(&cp) {
        Ok(m) if m.len() > merkle::MAX_CHECKPOINT_BYTES as u64 => Err(AuditError::Invalid {
            path: path.to_owned(),
            problem: format!("its checkpoint {} is too large", cp.display()),
        }),
        Ok(_) => std::fs::read_to_string(&cp)
            .map(Some)
            .map_err(|source| AuditError::Io(IoError::new("read", &cp, source))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuditError::Io(IoError::new("read", &cp, source))),
    }
}

/// [`verify`], returning the entries with their hashes and the key that signed the head.
pub fn verify_log(path: &Path, trust: &Trust) -> Result<VerifiedLog, AuditError> {
    let invalid = |problem: String| AuditError::Invalid {
        path: path.to_owned(),
        problem,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|source| AuditError::Io(IoError::new("read", path, source)))?;
    let chain = Chain::parse(&text).map_err(invalid)?;
    // A log is a release log (publisher keys) or a federation's (aggregator keys), all of
    // it: its entries say which, and only a key of that role may sign its head.
    let role = if !chain.is_empty() && chain.entries.iter().all(|e| e.action.is_federated()) {
        KeyRole::Aggregator
    } else {
        KeyRole::Publisher
    };
    let head_keyid = check_signed_head(&chain, &head_path(path), trust, false, role)
        .map_err(invalid)?
        .unwrap_or_default();
    let signers = trust.keys_with_role(role);
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
        if e.action.is_federated() != (role == KeyRole::Aggregator) {
            return Err(invalid(format!(
                "entry {} ({}) is in a release log: a log holds either a federation's entries or releases', never both",
                e.seq, e.action
            )));
        }
        if !signers.iter().any(|(id, _)| *id == e.actor) {
            return Err(invalid(format!(
                "entry {} names actor {}, not a {} key of the trust policy (expected {})",
                e.seq,
                e.actor,
                airlock_trust::role_name(role),
                if role == KeyRole::Publisher {
                    expected_publishers(trust)
                } else {
                    "an aggregator key".to_owned()
                }
            )));
        }
        usable_signer(trust, &e.actor, &e.time, role)
            .map_err(|why| invalid(format!("entry {}: {why}", e.seq)))?;
    }
    let head_key_name = trust.name_of(&head_keyid).unwrap_or_default().to_owned();
    let checkpoint = match read_checkpoint(path)? {
        Some(note) => Some(check_checkpoint(&chain, &note, path, trust, role).map_err(invalid)?),
        None => None,
    };
    Ok(VerifiedLog {
        chain,
        head_keyid,
        head_key_name,
        checkpoint,
    })
}

/// The key `keyid` of `role` counts for something it signed at `time` (RFC 3339): listed
/// with that role, not revoked, `time` inside its window. A log is judged at the times it
/// was written, so a key that expired since still vouches for what it signed before.
///
/// The signer chooses the time it writes, so a time later than now (beyond a little clock
/// skew) is refused: otherwise a key whose window has not begun could sign with a date
/// inside it. An expired key backdating is caught by [`verify_chain`]'s order check.
fn usable_signer(trust: &Trust, keyid: &str, time: &str, role: KeyRole) -> Result<(), String> {
    let t = OffsetDateTime::parse(time, &Rfc3339)
        .map_err(|_| format!("time {time:?} is not an RFC 3339 time"))?;
    if t > OffsetDateTime::now_utc() + time::Duration::minutes(5) {
        return Err(format!("dated in the future ({time})"));
    }
    trust.usable_key(keyid, role, t, t).map(|_| ())
}

/// Where the model name and version shown for an entry come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseSource {
    /// The entry records them (entries written since they are recorded).
    Recorded,
    /// The entry's destination names them (`.../models/<name>/<version>/...`).
    Destination,
    /// Another entry, with this `seq`, names the same model digest with one release only.
    SameModel(u64),
}

impl std::fmt::Display for ReleaseSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Recorded => f.write_str("recorded"),
            Self::Destination => f.write_str("destination"),
            Self::SameModel(seq) => write!(f, "entry {seq} (same model digest)"),
        }
    }
}

/// A model name and version, and where they were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseOf {
    /// Model name.
    pub model: String,
    /// Model version.
    pub version: String,
    /// Where they come from.
    pub source: ReleaseSource,
}

/// The release named in a destination such as `file:///r/models/<name>/<version>/bundle/`,
/// when both parts are well-formed.
fn release_in_destination(destination: &str) -> Option<(String, String)> {
    let mut parts = destination.split('/');
    while let Some(p) = parts.next() {
        if p == "models" {
            let (name, version) = (parts.next()?, parts.next()?);
            if airlock_schemas::grammar::model_name(name).is_ok()
                && airlock_schemas::grammar::version(version).is_ok()
            {
                return Some((name.to_owned(), version.to_owned()));
            }
        }
    }
    None
}

/// The model name and version each entry is about: as recorded; else as its destination
/// names them; else as another entry names them that carries the same model digest, when
/// every such entry agrees (the same weights released under two versions name neither).
/// `None` where nothing says.
pub fn releases_of(entries: &[AuditEntry]) -> Vec<Option<ReleaseOf>> {
    let direct: Vec<Option<ReleaseOf>> = entries
        .iter()
        .map(|e| match (&e.model, &e.version) {
            (Some(m), Some(v)) => Some(ReleaseOf {
                model: m.clone(),
                version: v.clone(),
                source: ReleaseSource::Recorded,
            }),
            _ => release_in_destination(&e.destination).map(|(model, version)| ReleaseOf {
                model,
                version,
                source: ReleaseSource::Destination,
            }),
        })
        .collect();
    let model_of = |e: &AuditEntry| e.artifacts.get("model.safetensors").cloned();
    // Model digest → the one release entries name for it (None: they disagree), and the
    // first entry that names it.
    let mut by_digest: std::collections::BTreeMap<String, Option<(String, String, u64)>> =
        std::collections::BTreeMap::new();
    for (e, r) in entries.iter().zip(&direct) {
        let (Some(d), Some(r)) = (model_of(e), r) else {
            continue;
        };
        let slot = by_digest
            .entry(d)
            .or_insert_with(|| Some((r.model.clone(), r.version.clone(), e.seq)));
        if slot
            .as_ref()
            .is_some_and(|(m, v, _)| (m, v) != (&r.model, &r.version))
        {
            *slot = None;
        }
    }
    entries
        .iter()
        .zip(direct)
        .map(|(e, r)| {
            r.or_else(|| {
                let (model, version, seq) = by_digest.get(&model_of(e)?)?.clone()?;
                Some(ReleaseOf {
                    model,
                    version,
                    source: ReleaseSource::SameModel(seq),
                })
            })
        })
        .collect()
}

/// `s` safe to print to a terminal: control characters (C0, DEL, C1) and the Unicode
/// bidirectional and invisible formatting characters are escaped (`\n`, `\u{1b}`, ...), so
/// a log written by an attacker cannot move the cursor, recolour, hide or reorder what an
/// auditor reads. Until `audit verify` passes, every string of a log is the writer's word.
pub fn printable(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}') =>
            {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_one_per_log_name() {
        assert_eq!(origin_of("audit.log"), "airlock.audit/audit.log");
        assert_eq!(origin_of("a b"), "airlock.audit/a_20b");
        assert_ne!(origin_of("a b"), origin_of("a_b"));
        assert_ne!(origin_of("a_20b"), origin_of("a b"));
        assert!(merkle::valid_name(&origin_of("x+y \u{2014}.log")));
    }

    #[test]
    fn printable_escapes_terminal_controls_and_keeps_text() {
        assert_eq!(printable("ok: InService"), "ok: InService");
        assert_eq!(printable("é ü 中"), "é ü 中");
        assert_eq!(
            printable("failed\u{1b}[2K\rok\n\u{7f}\u{9b}\u{202e}x"),
            "failed\\u{1b}[2K\\rok\\n\\u{7f}\\u{9b}\\u{202e}x"
        );
    }

    fn old_entry(seq: u64, model_sha: &str, destination: &str) -> AuditEntry {
        AuditEntry {
            seq,
            time: "2026-01-01T00:00:00Z".into(),
            actor: "a".repeat(64),
            action: AuditAction::Publish,
            model: None,
            version: None,
            artifacts: [("model.safetensors".to_owned(), model_sha.to_owned())].into(),
            destination: destination.into(),
            verified_region: None,
            approvals: Vec::new(),
            trust_policy_sha256: String::new(),
            residency_policy_sha256: String::new(),
            outcome: "ok".into(),
            routing: None,
            prev: GENESIS.into(),
        }
    }

    #[test]
    fn older_entries_get_their_release_from_the_destination_or_the_same_model_digest() {
        let mut recorded = old_entry(5, "c", "s3://b/prod");
        recorded.model = Some("m".into());
        recorded.version = Some("3.0.0".into());
        let entries = [
            old_entry(1, "a", "s3://b/prod"),
            old_entry(2, "a", "file:///r/models/fraud/1.0.0/bundle/"),
            old_entry(3, "b", "s3://b/prod"),
            // The same weights as two releases: neither is shown for an entry that does
            // not say which.
            old_entry(4, "d", "file:///r/models/fraud/2.0.0/bundle/"),
            recorded,
            old_entry(6, "d", "file:///r/models/fraud/2.0.1/bundle/"),
            old_entry(7, "d", "s3://b/prod"),
            old_entry(8, "c", "s3://b/prod"),
        ];
        let got: Vec<Option<(String, String, ReleaseSource)>> = releases_of(&entries)
            .into_iter()
            .map(|r| r.map(|r| (r.model, r.version, r.source)))
            .collect();
        let some = |m: &str, v: &str, s| Some((m.to_owned(), v.to_owned(), s));
        assert_eq!(
            got,
            [
                some("fraud", "1.0.0", ReleaseSource::SameModel(2)),
                some("fraud", "1.0.0", ReleaseSource::Destination),
                None,
                some("fraud", "2.0.0", ReleaseSource::Destination),
                some("m", "3.0.0", ReleaseSource::Recorded),
                some("fraud", "2.0.1", ReleaseSource::Destination),
                None,
                some("m", "3.0.0", ReleaseSource::SameModel(5)),
            ]
        );
    }

    #[test]
    fn a_release_is_read_from_a_destination_only_when_well_formed() {
        assert_eq!(
            release_in_destination("file:///r/models/fraud-detector/1.2.0/bundle/"),
            Some(("fraud-detector".into(), "1.2.0".into()))
        );
        assert_eq!(release_in_destination("s3://b/prod"), None);
        assert_eq!(release_in_destination("file:///r/models/../1.2.0/"), None);
        assert_eq!(
            release_in_destination("file:///r/models/x/not-a-version"),
            None
        );
    }
}
