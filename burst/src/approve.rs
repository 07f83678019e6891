//! Officers' decisions on an export, and the verification a burst runs before any byte of
//! it leaves: the builder's statement, the files it names (and nothing else), and k of n
//! officers' approvals of that statement, under the trust policy. A decision on an export
//! has its own predicate type, so no release approval can count for an export or the
//! other way round.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_schemas::{
    ApprovalPredicate, Decision, Envelope, ExportPredicate, IN_TOTO_PAYLOAD_TYPE, IoError, KeyRole,
    STATEMENT_TYPE, Statement, Subject,
};
use airlock_trust::keys::Signer;
use airlock_trust::{Trust, dsse};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{
    APPROVALS_DIR, BurstError, DATA_FILE, PIPELINE_FILE, STATEMENT_FILE, rfc3339, sha256_hex,
};

/// Largest file of an export read whole (the data file is hashed streaming).
const MAX_DOCUMENT: u64 = 4 << 20;
/// Most decision files an export may hold.
const MAX_DECISIONS: usize = 256;

/// An export whose statement and files verified, with its officers' decisions judged.
#[derive(Debug, Clone)]
pub struct VerifiedExport {
    /// The export directory.
    pub dir: PathBuf,
    /// What the builder signed.
    pub predicate: ExportPredicate,
    /// SHA-256 of the statement's payload (what officers approve).
    pub statement_sha256: String,
    /// The builder key that signed it.
    pub builder: String,
    /// The statement file's bytes as verified (what is uploaded: never read again).
    pub statement_file: Vec<u8>,
    /// SHA-256 of `data.parquet`.
    pub data_sha256: String,
    /// SHA-256 of `pipeline.toml`.
    pub pipeline_sha256: String,
    /// Key ids of the officers whose latest valid decision approves.
    pub approvals: Vec<String>,
    /// Key ids of the officers whose latest valid decision rejects.
    pub rejections: Vec<String>,
    /// Decision files that do not count, with why.
    pub ignored: Vec<(String, String)>,
    /// Approvals the trust policy requires.
    pub required: u32,
}

impl VerifiedExport {
    /// k of n approvals and no rejection.
    pub fn approved(&self) -> bool {
        self.rejections.is_empty() && self.approvals.len() >= self.required.max(1) as usize
    }

    /// Why it may not leave (none when [`Self::approved`]).
    pub fn why_not(&self) -> Option<String> {
        if !self.rejections.is_empty() {
            return Some(format!(
                "rejected by officer key(s) {}",
                self.rejections.join(", ")
            ));
        }
        let need = self.required.max(1) as usize;
        (self.approvals.len() < need).then(|| {
            format!(
                "{} of the {need} officer approvals it needs",
                self.approvals.len()
            )
        })
    }
}

fn unverified(dir: &Path, why: impl Into<String>) -> BurstError {
    BurstError::Unverified {
        dir: dir.to_owned(),
        why: why.into(),
    }
}

fn read_small(path: &Path) -> Result<Vec<u8>, BurstError> {
    let meta = std::fs::symlink_metadata(path).map_err(IoError::at("read", path))?;
    if !meta.file_type().is_file() || meta.len() > MAX_DOCUMENT {
        return Err(BurstError::Invalid {
            path: path.to_owned(),
            message: format!("not a regular file of at most {MAX_DOCUMENT} bytes"),
        });
    }
    std::fs::read(path).map_err(|e| IoError::new("read", path, e).into())
}

fn hash_file(path: &Path) -> Result<String, BurstError> {
    use sha2::Digest;
    let meta = std::fs::symlink_metadata(path).map_err(IoError::at("read", path))?;
    if !meta.file_type().is_file() {
        return Err(BurstError::Invalid {
            path: path.to_owned(),
            message: "not a regular file".to_owned(),
        });
    }
    let mut f = std::fs::File::open(path).map_err(IoError::at("read", path))?;
    let mut h = sha2::Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(IoError::at("read", path))?;
    Ok(hex::encode(h.finalize()))
}

/// Open a DSSE envelope signed by a usable `role` key, with an in-toto statement of
/// `predicate_type` dated by `time_of`.
fn open<P: serde::de::DeserializeOwned>(
    trust: &Trust,
    bytes: &[u8],
    predicate_type: &str,
    role: KeyRole,
    time_of: impl Fn(&P) -> &str,
) -> Result<(Statement<P>, Vec<u8>, String, OffsetDateTime), String> {
    let env: Envelope = airlock_schemas::strict_json::from_slice(bytes)
        .map_err(|e| format!("not a DSSE envelope ({e})"))?;
    let verified = dsse::verify(&env, IN_TOTO_PAYLOAD_TYPE, &trust.keys_with_role(role))
        .map_err(|e| e.to_string())?;
    let statement: Statement<P> = airlock_schemas::strict_json::from_slice(&verified.payload)
        .map_err(|e| format!("the signed statement is not one ({e})"))?;
    if statement.type_ != STATEMENT_TYPE || statement.predicate_type != predicate_type {
        return Err(format!(
            "the statement's type is {:?}, not {predicate_type:?}",
            statement.predicate_type
        ));
    }
    let now = OffsetDateTime::now_utc();
    let time = time_of(&statement.predicate);
    let at = OffsetDateTime::parse(time, &Rfc3339)
        .map_err(|_| format!("its time {time:?} is not RFC 3339"))?;
    if at > now + time::Duration::minutes(5) {
        return Err(format!("it is dated in the future ({time})"));
    }
    trust.usable_key(&verified.keyid, role, at, now)?;
    Ok((statement, verified.payload, verified.keyid, at))
}

fn digest_of<'a>(subjects: &'a [Subject], name: &str) -> Option<&'a str> {
    let s = subjects.iter().find(|s| s.name == name)?;
    (s.digest.len() == 1)
        .then(|| s.digest.get("sha256").map(String::as_str))
        .flatten()
}

/// Verify the export in `dir` under `trust` and judge its officers' decisions. Refuses a
/// directory holding anything but the export's files and `approvals/<key id>.dsse.json`,
/// a statement not signed by a usable builder key, and files whose digests differ from
/// the statement's. Whether it is approved is [`VerifiedExport::approved`].
pub fn verify_export(dir: &Path, trust: &Trust) -> Result<VerifiedExport, BurstError> {
    let mut decisions = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(IoError::at("read", dir))? {
        let entry = entry.map_err(IoError::at("read", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ty = entry
            .file_type()
            .map_err(IoError::at("read", &entry.path()))?;
        match name.as_str() {
            DATA_FILE | PIPELINE_FILE | STATEMENT_FILE if ty.is_file() => {}
            APPROVALS_DIR if ty.is_dir() => decisions = decision_files(&entry.path())?,
            _ => {
                return Err(unverified(
                    dir,
                    format!(
                        "{name:?} is not part of an export (data.parquet, pipeline.toml, export.dsse.json, approvals/)"
                    ),
                ));
            }
        }
    }
    let bytes = read_small(&dir.join(STATEMENT_FILE))?;
    let (statement, payload, builder, _) = open::<ExportPredicate>(
        trust,
        &bytes,
        &trust.uri_base.export_predicate(),
        KeyRole::Builder,
        |p| &p.time,
    )
    .map_err(|why| unverified(dir, format!("{STATEMENT_FILE}: {why}")))?;
    if statement.subject.len() != 2 {
        return Err(unverified(
            dir,
            "the statement must name exactly data.parquet and pipeline.toml",
        ));
    }
    let mut digests = BTreeMap::new();
    for name in [DATA_FILE, PIPELINE_FILE] {
        let want = digest_of(&statement.subject, name).ok_or_else(|| {
            unverified(
                dir,
                format!("the statement does not name {name} by one SHA-256"),
            )
        })?;
        let got = hash_file(&dir.join(name))?;
        if got != want {
            return Err(unverified(
                dir,
                format!("{name} is not the file the builder signed (SHA-256 {got}, signed {want})"),
            ));
        }
        digests.insert(name, got);
    }
    let statement_sha256 = sha256_hex(&payload);
    let mut v = VerifiedExport {
        dir: dir.to_owned(),
        predicate: statement.predicate,
        statement_sha256,
        builder,
        statement_file: bytes.clone(),
        data_sha256: digests[DATA_FILE].clone(),
        pipeline_sha256: digests[PIPELINE_FILE].clone(),
        approvals: Vec::new(),
        rejections: Vec::new(),
        ignored: Vec::new(),
        required: trust.policy.approvals_required,
    };
    judge(&mut v, trust, &decisions);
    Ok(v)
}

fn decision_files(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, BurstError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(IoError::at("read", dir))? {
        let entry = entry.map_err(IoError::at("read", dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if airlock_trust::bundle::decision_key_id(&name).is_none() {
            return Err(BurstError::Unverified {
                dir: dir.to_owned(),
                why: format!("{name:?} is not a decision file (<key id>.dsse.json)"),
            });
        }
        if out.len() >= MAX_DECISIONS {
            return Err(BurstError::Unverified {
                dir: dir.to_owned(),
                why: format!("more than {MAX_DECISIONS} decision files"),
            });
        }
        out.push((name, read_small(&entry.path())?));
    }
    out.sort();
    Ok(out)
}

/// Each officer's latest valid decision on this statement counts (a rejection wins a tie).
fn judge(v: &mut VerifiedExport, trust: &Trust, decisions: &[(String, Vec<u8>)]) {
    let now = OffsetDateTime::now_utc();
    let mut latest: BTreeMap<String, (OffsetDateTime, bool)> = BTreeMap::new();
    for (name, bytes) in decisions {
        let opened = open::<ApprovalPredicate>(
            trust,
            bytes,
            &trust.uri_base.export_approval_predicate(),
            KeyRole::Officer,
            |p| &p.time,
        );
        let (st, _, keyid, at) = match opened {
            Ok(o) => o,
            Err(why) => {
                v.ignored.push((name.clone(), why));
                continue;
            }
        };
        let why = if airlock_trust::bundle::decision_key_id(name) != Some(keyid.as_str()) {
            Some("the file is named for another key".to_owned())
        } else if digest_of(&st.subject, STATEMENT_FILE) != Some(v.statement_sha256.as_str())
            || st.subject.len() != 1
        {
            Some("it decides on another export".to_owned())
        } else if trust.usable_key(&keyid, KeyRole::Builder, at, now).is_ok() {
            Some("the key is also a builder key".to_owned())
        } else {
            st.predicate
                .expires
                .as_deref()
                .and_then(|e| match OffsetDateTime::parse(e, &Rfc3339) {
                    Ok(t) if t > now => None,
                    Ok(_) => Some(format!("the approval expired at {e}")),
                    Err(_) => Some("its expiry is not RFC 3339".to_owned()),
                })
        };
        if let Some(why) = why {
            v.ignored.push((name.clone(), why));
            continue;
        }
        let reject = st.predicate.decision == Decision::Reject;
        let e = latest.entry(keyid).or_insert((at, reject));
        if (at, reject) > *e {
            *e = (at, reject);
        }
    }
    for (keyid, (_, reject)) in latest {
        if reject {
            v.rejections.push(keyid);
        } else {
            v.approvals.push(keyid);
        }
    }
}

/// An officer's decision on an export.
#[derive(Debug, Clone)]
pub struct ExportDecision {
    /// The export directory.
    pub dir: PathBuf,
    /// The officer's private key.
    pub key: PathBuf,
    /// The officer's name.
    pub name: String,
    /// Why.
    pub reason: String,
    /// Approve or reject.
    pub decision: Decision,
    /// `--expires` (approvals only): `30d`, `12h`, or an RFC 3339 time.
    pub expires: Option<String>,
}

/// Record `d` as `approvals/<key id>.dsse.json` in the export (replacing that officer's
/// earlier decision). The export must verify; the key must be a usable officer key and
/// not a builder key.
pub fn decide(d: &ExportDecision, trust: &Trust) -> Result<PathBuf, BurstError> {
    let signer = Signer::load(&d.key)?;
    let keyid = signer.key_id().to_owned();
    let at = OffsetDateTime::now_utc();
    if trust.usable_key(&keyid, KeyRole::Builder, at, at).is_ok() {
        return Err(BurstError::Decision(format!(
            "key {keyid} is a builder key: a builder never approves its own export"
        )));
    }
    trust
        .usable_key(&keyid, KeyRole::Officer, at, at)
        .map_err(BurstError::Decision)?;
    if d.decision == Decision::Reject && d.expires.is_some() {
        return Err(BurstError::Decision(
            "a rejection does not expire".to_owned(),
        ));
    }
    let expires = match &d.expires {
        Some(e) => Some(rfc3339(
            airlock_trust::approvals::parse_expiry(e, at).ok_or_else(|| {
                BurstError::Decision(format!(
                    "--expires {e:?}: give 30d, 12h, 90m or an RFC 3339 time"
                ))
            })?,
        )),
        None => None,
    };
    let v = verify_export(&d.dir, trust)?;
    let statement = Statement {
        type_: STATEMENT_TYPE.to_owned(),
        subject: vec![Subject {
            name: STATEMENT_FILE.to_owned(),
            digest: [("sha256".to_owned(), v.statement_sha256.clone())]
                .into_iter()
                .collect(),
        }],
        predicate_type: trust.uri_base.export_approval_predicate(),
        predicate: ApprovalPredicate {
            decision: d.decision,
            officer: d.name.clone(),
            reason: d.reason.clone(),
            time: rfc3339(at),
            expires,
            model_name: v.predicate.model_name.clone(),
            model_version: v.predicate.model_version.clone(),
        },
    };
    let env = dsse::sign(
        IN_TOTO_PAYLOAD_TYPE,
        &airlock_trust::pretty(&statement),
        &signer,
    );
    let dir = d.dir.join(APPROVALS_DIR);
    std::fs::create_dir_all(&dir).map_err(IoError::at("create", &dir))?;
    let path = dir.join(format!("{keyid}.dsse.json"));
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(IoError::at("write", &dir))?;
    std::io::Write::write_all(&mut tmp, &airlock_trust::pretty(&env))
        .map_err(IoError::at("write", &path))?;
    tmp.persist(&path)
        .map_err(|e| IoError::new("write", &path, e.error))?;
    Ok(path)
}
