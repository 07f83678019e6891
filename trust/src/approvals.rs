//! Officer decisions: `airlock approve` / `airlock reject`, and counting them against the
//! trust policy's k-of-n threshold.

use airlock_schemas::Decision;

/// How one decision file was judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionStatus {
    /// File name under `approvals/`.
    pub file: String,
    /// Key id that signed it (when the envelope could be read).
    pub keyid: Option<String>,
    /// The trust policy's name for that key, if listed.
    pub key_name: Option<String>,
    /// The officer's name as written in the decision.
    pub officer: Option<String>,
    /// Approve or reject.
    pub decision: Option<Decision>,
    /// The officer's reason.
    pub reason: Option<String>,
    /// When it was made (RFC 3339).
    pub time: Option<String>,
    /// When it expires (RFC 3339), if ever.
    pub expires: Option<String>,
    /// Whether it counts toward (or, for a rejection, against) the release.
    pub counts: bool,
    /// Why it counts or why not, in words for the review page and `verify`.
    pub why: String,
}

/// All decisions on a bundle, judged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ApprovalSummary {
    /// k: distinct officer approvals needed.
    pub required: u32,
    /// Distinct officers whose approval counts.
    pub approvals: usize,
    /// Whether a valid rejection exists.
    pub rejected: bool,
    /// Every decision file, in file-name order.
    pub decisions: Vec<DecisionStatus>,
}

impl ApprovalSummary {
    /// Approved: k distinct valid approvals and no valid rejection.
    pub fn approved(&self) -> bool {
        !self.rejected && self.approvals >= self.required as usize
    }

    /// The valid rejections that block the release.
    pub fn rejections(&self) -> Vec<&DecisionStatus> {
        self.decisions
            .iter()
            .filter(|d| d.counts && d.decision == Some(Decision::Reject))
            .collect()
    }

    /// The valid approvals that count.
    pub fn counted_approvals(&self) -> Vec<&DecisionStatus> {
        self.decisions
            .iter()
            .filter(|d| d.counts && d.decision == Some(Decision::Approve))
            .collect()
    }

    /// The trust policy's officer keys (usable now) with no decision that counts:
    /// `(key name, key id)`, in the policy's order.
    pub fn undecided(&self, trust: &Trust) -> Vec<(String, String)> {
        let at = OffsetDateTime::now_utc();
        let mut seen = std::collections::BTreeSet::new();
        trust
            .keys
            .iter()
            .filter(|k| k.role == KeyRole::Officer)
            .filter(|k| {
                trust
                    .usable_key(&k.key_id, KeyRole::Officer, at, at)
                    .is_ok()
            })
            .filter(|k| {
                !self
                    .decisions
                    .iter()
                    .any(|d| d.counts && d.keyid.as_deref() == Some(k.key_id.as_str()))
            })
            .filter(|k| seen.insert(k.key_id.clone()))
            .map(|k| (k.name.clone(), k.key_id.clone()))
            .collect()
    }

    /// `k of n now`: the approvals that count of the required, and whether a rejection
    /// blocks the release.
    pub fn progress(&self) -> String {
        let blocks = self.rejections();
        let mut s = format!("{} of {} now", self.approvals, self.required);
        if blocks.is_empty() {
            if self.approved() {
                s.push_str(": approved");
            }
        } else {
            s.push_str(&format!(
                ", and {} blocks the release",
                blocks
                    .iter()
                    .map(|d| format!("the rejection by {}", who(d)))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
        }
        s
    }
}

/// An officer as a message names them: the name in the decision and the trust policy's
/// name for the key, with a short key id.
pub fn who(d: &DecisionStatus) -> String {
    let keyid = d.keyid.as_deref().unwrap_or("?");
    format!(
        "{} (key {} {})",
        d.officer.as_deref().unwrap_or("?"),
        d.key_name.as_deref().unwrap_or("not in the trust policy"),
        short_id(keyid)
    )
}

/// The first 12 hex digits of a key id.
pub fn short_id(keyid: &str) -> &str {
    keyid.get(..12).unwrap_or(keyid)
}

/// Where decisions that do not come from the bundle's `approvals/` are reported from: the
/// `file` of such a decision is `inbox/<key id>.dsse.json`.
pub const INBOX_PREFIX: &str = "inbox/";

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use airlock_schemas::IoError;
use airlock_schemas::{
    ApprovalPredicate, Envelope, IN_TOTO_PAYLOAD_TYPE, KeyRole, STATEMENT_TYPE, Statement, Subject,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::bundle::{APPROVALS_DIR, MODEL_FILE, STATEMENT_FILE};
use crate::dsse;
use crate::keys::{KeyError, Signer};
use crate::shards::sha256_hex;
use crate::verify::{Trust, Verification, verify_bundle_streamed};

/// Why a decision could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    /// The officer's key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The bundle does not verify: nobody may approve it.
    #[error("refusing to record a decision on {}: it does not verify ({failed})", bundle.display())]
    BundleInvalid {
        /// The bundle.
        bundle: PathBuf,
        /// The failed checks.
        failed: String,
    },
    /// The key may not decide.
    #[error("refusing to record a decision with key {keyid}: {why}")]
    NotAnOfficer {
        /// The key id.
        keyid: String,
        /// Why.
        why: String,
    },
    /// A bad `--expires`.
    #[error(
        "invalid --expires {given:?}: expected a duration like 30d, 12h, 90m or an RFC 3339 time in the future"
    )]
    Expires {
        /// What was given.
        given: String,
    },
    /// A rejection cannot expire.
    #[error(
        "--expires applies to approvals only: a rejection blocks the release until the officer replaces it with an approval"
    )]
    RejectionExpires,
    /// File system.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl ApprovalError {
    /// What kind of failure this is (the CLI's exit code follows from it).
    pub fn kind(&self) -> airlock_schemas::ErrorKind {
        use airlock_schemas::ErrorKind;
        match self {
            Self::Key(e) => e.kind(),
            Self::BundleInvalid { .. } => ErrorKind::VerificationFailed,
            Self::NotAnOfficer { .. } | Self::Expires { .. } | Self::RejectionExpires => {
                ErrorKind::BadInput
            }
            Self::Io(e) => e.kind(),
        }
    }
}

fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// Parse `30d`, `12h`, `90m`, `3600s` or an RFC 3339 time into an absolute expiry.
pub fn parse_expiry(given: &str, from: OffsetDateTime) -> Option<OffsetDateTime> {
    if let Ok(t) = OffsetDateTime::parse(given, &Rfc3339) {
        return (t > from).then_some(t);
    }
    let (num, unit) = given.split_at(given.len().checked_sub(1)?);
    let n: i64 = num.parse().ok().filter(|n| *n > 0)?;
    let secs = match unit {
        "d" => n.checked_mul(86_400)?,
        "h" => n.checked_mul(3_600)?,
        "m" => n.checked_mul(60)?,
        "s" => n,
        _ => return None,
    };
    from.checked_add(time::Duration::seconds(secs))
}

/// What the officer decides.
#[derive(Debug, Clone)]
pub struct DecisionRequest {
    /// The bundle.
    pub bundle: PathBuf,
    /// The officer's private key.
    pub key: PathBuf,
    /// The officer's name.
    pub name: String,
    /// Why.
    pub reason: String,
    /// Approve or reject.
    pub decision: Decision,
    /// `--expires`, for approvals only (a rejection with one is refused).
    pub expires: Option<String>,
}

/// Record a decision: `approvals/<key id>.dsse.json`, replacing an earlier decision by the
/// same key. Refuses a bundle that does not verify, and keys that are not officers'.
pub fn decide(
    req: &DecisionRequest,
    trust: &Trust,
    threads: usize,
) -> Result<PathBuf, ApprovalError> {
    record(req, trust, threads).map(|r| r.path)
}

/// A decision recorded by [`record`].
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `approvals/<key id>.dsse.json` in the bundle.
    pub path: PathBuf,
    /// The officer's key id.
    pub keyid: String,
    /// The envelope's bytes as written.
    pub bytes: Vec<u8>,
    /// The release decided on, from its verified statement.
    pub model_name: String,
    /// Its version, from the verified statement.
    pub model_version: String,
}

/// [`decide`], returning what was written and the release's verified name and version
/// (where `approve --to` files the decision in the approvals inbox).
pub fn record(
    req: &DecisionRequest,
    trust: &Trust,
    threads: usize,
) -> Result<Recorded, ApprovalError> {
    let signer = Signer::load(&req.key)?;
    let keyid = signer.key_id().to_owned();
    let roles: Vec<KeyRole> = trust
        .keys
        .iter()
        .filter(|k| k.key_id == keyid)
        .map(|k| k.role)
        .collect();
    if roles.contains(&KeyRole::Builder) {
        return Err(ApprovalError::NotAnOfficer {
            keyid,
            why: "the trust policy lists it as a builder key, and a builder can never approve its own release".into(),
        });
    }
    if !roles.contains(&KeyRole::Officer) {
        return Err(ApprovalError::NotAnOfficer {
            keyid,
            why: "the trust policy does not list it as an officer key".into(),
        });
    }
    let at = now();
    // Revoked, not yet valid or expired: a decision it signed now would not count.
    if let Err(why) = trust.usable_key(&keyid, KeyRole::Officer, at, at) {
        return Err(ApprovalError::NotAnOfficer { keyid, why });
    }
    if req.decision == Decision::Reject && req.expires.is_some() {
        return Err(ApprovalError::RejectionExpires);
    }
    // A decision signs the statement's and the model's digests, not the model's bytes:
    // the model is streamed through its digests and not kept.
    let v = verify_bundle_streamed(&req.bundle, trust, threads, false);
    if !v.ok() {
        return Err(ApprovalError::BundleInvalid {
            bundle: req.bundle.clone(),
            failed: v
                .checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| format!("{}: {}", c.name, c.detail))
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    let (Some(stmt), model_sha) = (v.statement.as_ref(), release_model_digest(&v)) else {
        return Err(ApprovalError::BundleInvalid {
            bundle: req.bundle.clone(),
            failed: "no verified statement".into(),
        });
    };
    let expires = match &req.expires {
        Some(e) => {
            Some(parse_expiry(e, at).ok_or_else(|| ApprovalError::Expires { given: e.clone() })?)
        }
        None => None,
    };
    let statement = Statement {
        type_: STATEMENT_TYPE.into(),
        subject: vec![
            Subject {
                name: STATEMENT_FILE.into(),
                digest: [("sha256".to_owned(), sha256_hex(&v.statement_bytes))]
                    .into_iter()
                    .collect(),
            },
            Subject {
                name: MODEL_FILE.into(),
                digest: [("sha256".to_owned(), model_sha.unwrap_or_default())]
                    .into_iter()
                    .collect(),
            },
        ],
        predicate_type: trust.uri_base.approval_predicate(),
        predicate: ApprovalPredicate {
            decision: req.decision,
            officer: req.name.clone(),
            reason: req.reason.clone(),
            time: rfc3339(at),
            expires: expires.map(rfc3339),
            model_name: stmt.predicate.model_name.clone(),
            model_version: stmt.predicate.model_version.clone(),
        },
    };
    let env = dsse::sign(IN_TOTO_PAYLOAD_TYPE, &crate::pretty(&statement), &signer);
    let dir = req.bundle.join(APPROVALS_DIR);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ApprovalError::Io(IoError::new("write", &path, source))
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let path = dir.join(format!("{keyid}.dsse.json"));
    let bytes = crate::pretty(&env);
    let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io(&dir))?;
    std::io::Write::write_all(&mut tmp, &bytes).map_err(io(&path))?;
    tmp.as_file().sync_all().map_err(io(&path))?;
    tmp.persist(&path)
        .map_err(|e| ApprovalError::Io(IoError::new("write", &path, e.error)))?;
    Ok(Recorded {
        path,
        keyid,
        bytes,
        model_name: stmt.predicate.model_name.clone(),
        model_version: stmt.predicate.model_version.clone(),
    })
}

/// Write decisions (`(file name <key id>.dsse.json, bytes)`, judged elsewhere) into the
/// bundle's `approvals/`, each atomically, replacing that key's earlier file. A name that
/// is not a decision file's is refused.
pub fn write_decisions(bundle: &Path, decisions: &[(String, Vec<u8>)]) -> Result<(), IoError> {
    let dir = bundle.join(APPROVALS_DIR);
    let err = |path: &Path, e: std::io::Error| IoError::new("write", path, e);
    std::fs::create_dir_all(&dir).map_err(|e| err(&dir, e))?;
    for (name, bytes) in decisions {
        if crate::bundle::decision_key_id(name).is_none() || name.contains('/') {
            return Err(err(
                &dir.join(name),
                std::io::Error::other("not a decision file name (<key id>.dsse.json)"),
            ));
        }
        let path = dir.join(name);
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(|e| err(&dir, e))?;
        std::io::Write::write_all(&mut tmp, bytes).map_err(|e| err(&path, e))?;
        tmp.as_file().sync_all().map_err(|e| err(&path, e))?;
        tmp.persist(&path).map_err(|e| err(&path, e.error))?;
    }
    Ok(())
}

fn release_model_digest(v: &Verification) -> Option<String> {
    v.statement
        .as_ref()?
        .subject
        .iter()
        .find(|s| s.name == MODEL_FILE)?
        .digest
        .get("sha256")
        .cloned()
}

/// Judge every decision file of a bundle that verified as `v`, from the bytes verify read
/// ([`Verification::files`]): the directory is not read again.
pub fn evaluate(trust: &Trust, v: &Verification, at: OffsetDateTime) -> ApprovalSummary {
    evaluate_with(trust, v, &[], at)
}

/// [`evaluate`], with decisions from elsewhere (an approvals inbox in a registry) judged
/// together with the bundle's by the same rules: `extra` is `(file name, bytes)`, the file
/// name `<key id>.dsse.json` as in `approvals/`. Per officer key the later decision wins,
/// wherever it came from; an extra decision is reported as `inbox/<file name>`.
pub fn evaluate_with(
    trust: &Trust,
    v: &Verification,
    extra: &[(String, Vec<u8>)],
    at: OffsetDateTime,
) -> ApprovalSummary {
    let mut summary = ApprovalSummary {
        required: trust.policy.approvals_required,
        ..ApprovalSummary::default()
    };
    let statement_sha = sha256_hex(&v.statement_bytes);
    let model_sha = release_model_digest(v);
    // key id → (time, decision index) of its latest valid decision.
    // Times are compared as instants (not as strings); on a tie a rejection wins, so the
    // order decisions are read in (bundle first, then the inbox) never decides.
    let mut latest: BTreeMap<String, ((OffsetDateTime, bool), usize)> = BTreeMap::new();
    let bundle = v.files.decisions().map(|(name, bytes)| {
        let file = name
            .strip_prefix(APPROVALS_DIR)
            .and_then(|n| n.strip_prefix('/'))
            .unwrap_or(name);
        (file.to_owned(), false, bytes)
    });
    // A decision already in the bundle (gathered from the inbox before) is judged once.
    let inbox = extra
        .iter()
        .filter(|(name, bytes)| {
            v.files.get(&format!("{APPROVALS_DIR}/{name}")) != Some(bytes.as_slice())
        })
        .map(|(name, bytes)| (name.clone(), true, bytes.as_slice()));
    for (file, from_inbox, bytes) in bundle.chain(inbox) {
        let mut st = DecisionStatus {
            file,
            keyid: None,
            key_name: None,
            officer: None,
            decision: None,
            reason: None,
            time: None,
            expires: None,
            counts: false,
            why: String::new(),
        };
        st.why = judge(
            bytes,
            trust,
            &statement_sha,
            model_sha.as_deref(),
            v.statement.is_some(),
            at,
            &mut st,
        )
        .err()
        .unwrap_or_default();
        if from_inbox {
            st.file = format!("{INBOX_PREFIX}{}", st.file);
        }
        if st.why.is_empty() {
            let keyid = st.keyid.clone().unwrap_or_default();
            let when = st
                .time
                .as_deref()
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .unwrap_or(OffsetDateTime::UNIX_EPOCH);
            let time = (when, st.decision == Some(Decision::Reject));
            let idx = summary.decisions.len();
            match latest.get(&keyid) {
                Some((t, prev)) if *t >= time => {
                    st.why = format!(
                        "superseded by this officer's later decision in {}",
                        summary.decisions[*prev].file
                    );
                }
                Some((_, prev)) => {
                    let prev = *prev;
                    summary.decisions[prev].counts = false;
                    summary.decisions[prev].why =
                        format!("superseded by this officer's later decision in {}", st.file);
                    latest.insert(keyid, (time, idx));
                    st.counts = true;
                }
                None => {
                    latest.insert(keyid, (time, idx));
                    st.counts = true;
                }
            }
        }
        summary.decisions.push(st);
    }
    for d in &mut summary.decisions {
        if d.counts {
            match d.decision {
                Some(Decision::Approve) => {
                    summary.approvals += 1;
                    d.why = "valid approval by an officer key".into();
                }
                Some(Decision::Reject) => {
                    summary.rejected = true;
                    d.why = "valid rejection: blocks the release".into();
                }
                None => d.counts = false,
            }
        }
    }
    summary
}

fn judge(
    bytes: &[u8],
    trust: &Trust,
    statement_sha: &str,
    model_sha: Option<&str>,
    release_verified: bool,
    at: OffsetDateTime,
    st: &mut DecisionStatus,
) -> Result<(), String> {
    if !release_verified {
        return Err("the release itself does not verify".into());
    }
    let Some(named) = crate::bundle::decision_key_id(&st.file).map(str::to_owned) else {
        return Err("not a decision file (<key id>.dsse.json)".into());
    };
    let env: Envelope = airlock_schemas::strict_json::from_slice(bytes).map_err(|e| {
        // The parser's message may quote the attacker's bytes: escaped for terminals.
        format!(
            "tampered or corrupt: not a DSSE envelope ({})",
            e.to_string().escape_debug()
        )
    })?;
    let keyid = match env.signatures.as_slice() {
        [s] => s.keyid.clone(),
        [] => return Err("no signature".into()),
        _ => return Err("more than one signature: a decision is one officer's".into()),
    };
    // The envelope's key id is unauthenticated until it matches the file's name (64 hex):
    // only then is it recorded, and before that it is only ever shown escaped.
    if keyid != named {
        return Err(format!(
            "signed by key {:?}, not the key the file is named after",
            keyid.escape_debug().to_string()
        ));
    }
    st.keyid = Some(keyid.clone());
    let listed: Vec<&crate::LoadedKey> = trust.keys.iter().filter(|k| k.key_id == keyid).collect();
    st.key_name = listed.first().map(|k| k.name.clone());
    let Some(officer) = listed.iter().find(|k| k.role == KeyRole::Officer) else {
        return Err(if listed.is_empty() {
            "signed by a key that is not in the trust policy".into()
        } else {
            format!(
                "signed by a {} key: only officer keys count",
                role_word(listed[0].role)
            )
        });
    };
    if listed.iter().any(|k| k.role == KeyRole::Builder) {
        return Err("signed by a key the policy also lists as builder: a builder never counts as an officer".into());
    }
    // A revoked key's signatures count nowhere, whatever they say: checked before reading
    // what it signed.
    if trust
        .policy
        .revoked
        .iter()
        .any(|r| r.eq_ignore_ascii_case(&keyid))
    {
        return Err("the officer's key is revoked".into());
    }
    let verified = dsse::verify(&env, IN_TOTO_PAYLOAD_TYPE, &[(keyid.clone(), officer.key)])
        .map_err(|e| format!("tampered: {e}"))?;
    let stmt: Statement<ApprovalPredicate> =
        airlock_schemas::strict_json::from_slice(&verified.payload)
            .map_err(|e| format!("not an approval statement: {e}"))?;
    if stmt.type_ != STATEMENT_TYPE || stmt.predicate_type != trust.uri_base.approval_predicate() {
        return Err("not an approval statement".into());
    }
    let p = &stmt.predicate;
    st.officer = Some(p.officer.clone());
    st.decision = Some(p.decision);
    st.reason = Some(p.reason.clone());
    st.time = Some(p.time.clone());
    st.expires = p.expires.clone();
    let subject = |name: &str| {
        stmt.subject
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.digest.get("sha256"))
            .map(String::as_str)
    };
    if subject(STATEMENT_FILE) != Some(statement_sha)
        || subject(MODEL_FILE) != model_sha
        || model_sha.is_none()
    {
        return Err("decides on a different release (copied from another bundle?)".into());
    }
    let parse =
        |s: &str| OffsetDateTime::parse(s, &Rfc3339).map_err(|_| format!("invalid time {s:?}"));
    let made = parse(&p.time)?;
    if made > at + time::Duration::minutes(5) {
        return Err("dated in the future".into());
    }
    // Revocation and the key's window, as for every role.
    trust
        .usable_key(&keyid, KeyRole::Officer, made, at)
        .map_err(|e| format!("does not count: {e}"))?;
    // An approval may expire; a rejection blocks for good, whatever it carries.
    if p.decision == Decision::Approve
        && let Some(exp) = &p.expires
        && at > parse(exp)?
    {
        return Err(format!("expired at {exp}"));
    }
    Ok(())
}

fn role_word(r: KeyRole) -> &'static str {
    match r {
        KeyRole::Builder => "builder",
        KeyRole::Officer => "officer",
        KeyRole::Publisher => "publisher",
        KeyRole::Site => "site",
        KeyRole::Aggregator => "aggregator",
    }
}
