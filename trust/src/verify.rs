//! `airlock verify`: recompute every digest, check the builder's signatures against the
//! trust policy, the statement's subjects against the files, and the leak verdict.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use airlock_schemas::{
    Envelope, IN_TOTO_PAYLOAD_TYPE, KeyRole, LEAK_LAYERS, LeakReport, ModelCard, ReleasePredicate,
    SLSA_PROVENANCE_TYPE, STATEMENT_TYPE, ShardDigests, Statement, TrustPolicy, UriBase, Verdict,
};
use ed25519_dalek::VerifyingKey;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::bundle::BundleFiles;
use crate::bundle::{
    APPROVALS_DIR, LEAK_REPORT_FILE, MODEL_CARD_FILE, MODEL_FILE, MODEL_METADATA,
    PROVENANCE_DSSE_FILE, STATEMENT_DSSE_FILE, STATEMENT_FILE,
};
use crate::dsse;
use crate::keys::{KeyError, key_id, load_public_key};
use crate::shards::sha256_hex;
use crate::shards::{read_with_shard_digests, safetensors_prefix, stream_safetensors_digests};
use airlock_safetensors as st;

/// Why a trust policy could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Unreadable.
    #[error("cannot read trust policy {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML or not the schema.
    #[error("invalid trust policy {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Parser message with line and column.
        message: String,
    },
    /// The policy file or its folder may be rewritten by others.
    #[error(transparent)]
    Permissions(KeyError),
    /// A listed key cannot be loaded.
    #[error("trust policy {}: key {name:?}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Key name.
        name: String,
        /// Cause.
        #[source]
        source: KeyError,
    },
}

impl TrustError {
    /// What kind of failure this is: always [`airlock_schemas::ErrorKind::BadInput`] (the
    /// trust policy given cannot be used).
    pub fn kind(&self) -> airlock_schemas::ErrorKind {
        match self {
            Self::Read { .. } | Self::Parse { .. } | Self::Key { .. } => {
                airlock_schemas::ErrorKind::BadInput
            }
            Self::Permissions(e) => e.kind(),
        }
    }
}

/// A trusted key, loaded.
#[derive(Debug, Clone)]
pub struct LoadedKey {
    /// Holder's name.
    pub name: String,
    /// Role.
    pub role: KeyRole,
    /// Key id.
    pub key_id: String,
    /// The key.
    pub key: VerifyingKey,
    /// Valid from (RFC 3339).
    pub not_before: Option<String>,
    /// Valid until (RFC 3339).
    pub not_after: Option<String>,
}

/// A trust policy with its keys loaded.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The policy as written.
    pub policy: TrustPolicy,
    /// SHA-256 of the policy file.
    pub sha256: String,
    /// Its keys.
    pub keys: Vec<LoadedKey>,
    /// The base of the predicate types it expects (its `uri_base`, checked).
    pub uri_base: UriBase,
}

impl Trust {
    /// Load `trust.toml` and the public keys it names (relative to the file).
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        // Whoever can rewrite the policy or a key it names decides whose signatures count.
        crate::keys::check_not_writable_by_others(path, "trust policy")
            .map_err(TrustError::Permissions)?;
        let bytes = std::fs::read(path).map_err(|source| TrustError::Read {
            path: path.to_owned(),
            source,
        })?;
        let policy: TrustPolicy =
            toml::from_str(&String::from_utf8_lossy(&bytes)).map_err(|e| TrustError::Parse {
                path: path.to_owned(),
                message: e.to_string().trim_end().to_owned(),
            })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let keys = policy
            .keys
            .iter()
            .map(|k| {
                let key_path = dir.join(&k.public_key);
                crate::keys::check_not_writable_by_others(&key_path, "public key").map_err(
                    |source| TrustError::Key {
                        path: path.to_owned(),
                        name: k.name.clone(),
                        source,
                    },
                )?;
                let key = load_public_key(&key_path).map_err(|source| TrustError::Key {
                    path: path.to_owned(),
                    name: k.name.clone(),
                    source,
                })?;
                Ok(LoadedKey {
                    name: k.name.clone(),
                    role: k.role,
                    key_id: key_id(&key),
                    key,
                    not_before: k.not_before.clone(),
                    not_after: k.not_after.clone(),
                })
            })
            .collect::<Result<Vec<_>, TrustError>>()?;
        validate(&policy, &keys, &String::from_utf8_lossy(&bytes)).map_err(|message| {
            TrustError::Parse {
                path: path.to_owned(),
                message,
            }
        })?;
        let uri_base =
            UriBase::new(policy.uri_base.as_deref()).map_err(|message| TrustError::Parse {
                path: path.to_owned(),
                message: format!("uri_base: {message}"),
            })?;
        Ok(Self {
            policy,
            sha256: sha256_hex(&bytes),
            keys,
            uri_base,
        })
    }

    /// (key id, key) of every key with `role`.
    pub fn keys_with_role(&self, role: KeyRole) -> Vec<(String, VerifyingKey)> {
        self.keys
            .iter()
            .filter(|k| k.role == role)
            .map(|k| (k.key_id.clone(), k.key))
            .collect()
    }

    /// The key `key_id` if its signatures count for `role`: the policy lists it with that
    /// role, does not revoke it, and both `signed_at` (when the signature says it was made)
    /// and `now` fall inside its validity window. Every role check of every command goes
    /// through here; the error says, in words, why the key does not count.
    pub fn usable_key(
        &self,
        key_id: &str,
        role: KeyRole,
        signed_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<&LoadedKey, String> {
        let listed: Vec<&LoadedKey> = self.keys.iter().filter(|k| k.key_id == key_id).collect();
        let Some(k) = listed.iter().find(|k| k.role == role) else {
            return Err(match listed.first() {
                None => format!("key {key_id} is not in the trust policy"),
                Some(k) => format!(
                    "key {key_id} ({:?}) is a {} key, not a {} key",
                    k.name,
                    role_name(k.role),
                    role_name(role)
                ),
            });
        };
        let who = format!("the {} key {:?} ({key_id})", role_name(role), k.name);
        if self
            .policy
            .revoked
            .iter()
            .any(|r| r.eq_ignore_ascii_case(key_id))
        {
            return Err(format!("{who} is revoked by the trust policy"));
        }
        let parse = |s: &str| OffsetDateTime::parse(s, &Rfc3339).ok();
        if let Some(nb) = &k.not_before {
            let Some(t) = parse(nb) else {
                return Err(format!("{who} has an invalid not_before {nb:?}"));
            };
            if now < t || signed_at < t {
                return Err(format!(
                    "{who} is not valid before {nb} (signed at {}, now {})",
                    rfc3339(signed_at),
                    rfc3339(now)
                ));
            }
        }
        if let Some(na) = &k.not_after {
            let Some(t) = parse(na) else {
                return Err(format!("{who} has an invalid not_after {na:?}"));
            };
            if now > t || signed_at > t {
                return Err(format!(
                    "{who} expired at {na} (signed at {}, now {})",
                    rfc3339(signed_at),
                    rfc3339(now)
                ));
            }
        }
        Ok(k)
    }

    /// (key id, key) of every key whose signatures count for `role` at `signed_at` and
    /// `now` (see [`Trust::usable_key`]): what [`dsse::verify`] is given.
    pub fn usable_keys(
        &self,
        role: KeyRole,
        signed_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Vec<(String, VerifyingKey)> {
        self.keys
            .iter()
            .filter(|k| k.role == role)
            .filter(|k| self.usable_key(&k.key_id, role, signed_at, now).is_ok())
            .map(|k| (k.key_id.clone(), k.key))
            .collect()
    }

    /// Name of the key with id `id`.
    pub fn name_of(&self, id: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.key_id == id)
            .map(|k| k.name.as_str())
    }
}

/// The role's word in messages.
pub fn role_name(r: KeyRole) -> &'static str {
    match r {
        KeyRole::Builder => "builder",
        KeyRole::Officer => "officer",
        KeyRole::Publisher => "publisher",
        KeyRole::Site => "site",
        KeyRole::Aggregator => "aggregator",
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

/// What TOML cannot check. Messages name the line of the offending value.
fn validate(policy: &TrustPolicy, keys: &[LoadedKey], text: &str) -> Result<(), String> {
    let line_of = |needle: &str| {
        text.lines()
            .position(|l| l.contains(needle))
            .map_or_else(String::new, |i| format!("line {}: ", i + 1))
    };
    let mut names = BTreeSet::new();
    for k in &policy.keys {
        if !names.insert(k.name.as_str()) {
            return Err(format!(
                "{}key name {:?} is listed twice",
                line_of(&format!("{:?}", k.name)),
                k.name
            ));
        }
        let mut window = Vec::new();
        for (what, v) in [("not_before", &k.not_before), ("not_after", &k.not_after)] {
            if let Some(v) = v {
                let t = OffsetDateTime::parse(v, &Rfc3339).map_err(|_| {
                    format!(
                        "{}{what} {v:?} of key {:?} is not an RFC 3339 time",
                        line_of(v),
                        k.name
                    )
                })?;
                window.push(t);
            }
        }
        if let [a, b] = window[..]
            && a >= b
        {
            return Err(format!(
                "{}key {:?}: not_before is not before not_after",
                line_of(&format!("{:?}", k.name)),
                k.name
            ));
        }
    }
    for r in &policy.revoked {
        if r.len() != 64 || !r.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!(
                "{}revoked entry {r:?} is not a key id (64 hex digits)",
                line_of(r)
            ));
        }
    }
    // A federation's policy (site and aggregator keys only) releases nothing, so it needs
    // no officers; any policy with a release role does.
    let releases = keys.iter().any(|k| {
        matches!(
            k.role,
            KeyRole::Builder | KeyRole::Officer | KeyRole::Publisher
        )
    });
    if policy.approvals_required == 0 && (releases || keys.is_empty()) {
        return Err(format!(
            "{}approvals_required is 0 (or missing): every release needs at least one officer approval (the DEMO policy of `airlock run` asks for 2)",
            line_of("approvals_required")
        ));
    }
    let officers: BTreeSet<&str> = keys
        .iter()
        .filter(|k| k.role == KeyRole::Officer)
        .map(|k| k.key_id.as_str())
        .collect();
    if policy.approvals_required as usize > officers.len() {
        return Err(format!(
            "{}approvals_required = {} but the policy lists only {} distinct officer keys",
            line_of("approvals_required"),
            policy.approvals_required,
            officers.len()
        ));
    }
    Ok(())
}

/// One verification check and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// Whether it held.
    pub ok: bool,
    /// Details (why not, or what held).
    pub detail: String,
}

/// The outcome of verifying a bundle.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The verified release statement, when its signature held.
    pub statement: Option<Statement<ReleasePredicate>>,
    /// Raw bytes of the verified statement.
    pub statement_bytes: Vec<u8>,
    /// The bundle's closed set of files as they were read, once, and verified: every check
    /// above ran on these bytes. Files outside the closed set are never read (they fail the
    /// "bundle files" check); the model is read only once the statement's signature held.
    ///
    /// With [`ModelBytes::DigestOnly`] the model is streamed through its digests and not
    /// kept: `files.get(MODEL_FILE)` is `None` then. Use [`Verification::model`] to get the
    /// verified model: it is an error, never a silent absence, when the bytes were not kept.
    pub files: BundleFiles,
    /// Whether the model's bytes were kept in `files` (what the caller asked for).
    pub model_bytes: ModelBytes,
}

/// What `verify` does with the model's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelBytes {
    /// Read the model once into memory, run every check on those bytes and keep them in
    /// [`Verification::files`]: for callers that go on to use the model (`serve` builds it,
    /// `publish` uploads it), so that what they use is exactly what was verified. The
    /// default: no caller loses the verified bytes without asking.
    #[default]
    Keep,
    /// Stream the model through its shard digests (in parallel, nothing like the whole file
    /// in memory: about twice as fast on a large model, no page faults on a fresh buffer)
    /// and check its header strictly on the digested prefix; the bytes are not kept
    /// (`files.get(MODEL_FILE)` is `None`). For callers that only report or sign digests
    /// (`airlock verify`, `review`, `approve`/`reject`, the gate of `airlock run`, `pull`'s
    /// checks of its private download). The other, small, files are still read once and
    /// kept.
    DigestOnly,
}

/// How to verify a bundle: see [`verify_bundle_with`].
#[derive(Debug, Clone, Copy)]
pub struct VerifyOptions {
    /// Threads for the model's shard digests.
    pub threads: usize,
    /// Also recompute the whole-file SHA-256 of a model larger than one shard (the signed
    /// shard digests already pin every byte; the whole-file digest is there for
    /// `sha256sum` users).
    pub full_digest: bool,
    /// Keep the model's verified bytes, or only digest them.
    pub model: ModelBytes,
    /// When the builder key's validity is judged; `None`: now.
    pub now: Option<OffsetDateTime>,
}

impl Verification {
    /// True when every check held.
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// The verified model's bytes: an error when the bundle did not verify, or when it was
    /// verified with [`ModelBytes::DigestOnly`] (streamed, not kept). A caller that uses the
    /// model goes through here, so that a verification that did not keep it cannot be
    /// mistaken for one without a model.
    pub fn model(&self) -> Result<&[u8], String> {
        if !self.ok() {
            return Err("the bundle does not verify".into());
        }
        if self.model_bytes == ModelBytes::DigestOnly {
            return Err(format!(
                "{MODEL_FILE} was verified by streaming (ModelBytes::DigestOnly) and its bytes were not kept"
            ));
        }
        self.files
            .get(MODEL_FILE)
            .ok_or_else(|| format!("{MODEL_FILE} is not among the verified files"))
    }

    fn push(&mut self, name: &'static str, result: Result<String, String>) -> bool {
        let ok = result.is_ok();
        self.checks.push(Check {
            name,
            ok,
            detail: result.unwrap_or_else(|e| e),
        });
        ok
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], name: &str) -> Result<T, String> {
    airlock_schemas::strict_json::from_slice(bytes)
        .map_err(|e| format!("{name} is not a valid document: {e}"))
}

/// The bytes of `name` as read by the closed-set walk.
fn held<'a>(files: &'a BundleFiles, name: &str) -> Result<&'a [u8], String> {
    files
        .get(name)
        .ok_or_else(|| format!("{name}: not in the bundle"))
}

/// The closed-set check on decision files that needs their bytes: each is one DSSE
/// envelope, read strictly, with one signature whose key id is the file's name. Whether the
/// decision counts is for [`crate::approvals::evaluate`] to judge.
fn check_decision_files(files: &BundleFiles) -> Result<usize, String> {
    let mut n = 0;
    for (name, bytes) in files.decisions() {
        let id = crate::bundle::decision_key_id(name).unwrap_or_default();
        let env: Envelope = airlock_schemas::strict_json::from_slice(bytes)
            .map_err(|e| format!("{name} is not a DSSE envelope: {e}"))?;
        match env.signatures.as_slice() {
            [s] if s.keyid == id => n += 1,
            [s] => {
                return Err(format!(
                    "{name} is signed by key {}, not the key it is named after",
                    s.keyid
                ));
            }
            _ => {
                return Err(format!(
                    "{name} carries {} signatures; a decision carries exactly one",
                    env.signatures.len()
                ));
            }
        }
    }
    Ok(n)
}

/// Verify the bundle at `dir` against `trust`, keeping the model's verified bytes
/// ([`ModelBytes::Keep`]). `full_digest` also recomputes the whole-file SHA-256 of a model
/// larger than one shard (the signed shard digests already pin every byte; the whole-file
/// digest is there for `sha256sum` users).
///
/// The bundle must be exactly its closed set of files (see [`crate::bundle`]); each file is
/// read once, and every check runs on the bytes kept in [`Verification::files`].
pub fn verify_bundle(dir: &Path, trust: &Trust, threads: usize, full_digest: bool) -> Verification {
    verify_bundle_with(
        dir,
        trust,
        &VerifyOptions {
            threads,
            full_digest,
            model: ModelBytes::Keep,
            now: None,
        },
    )
}

/// [`verify_bundle`] for callers that do not use the model's bytes
/// ([`ModelBytes::DigestOnly`]): the same checks at streaming speed; the model is not in
/// [`Verification::files`].
pub fn verify_bundle_streamed(
    dir: &Path,
    trust: &Trust,
    threads: usize,
    full_digest: bool,
) -> Verification {
    verify_bundle_with(
        dir,
        trust,
        &VerifyOptions {
            threads,
            full_digest,
            model: ModelBytes::DigestOnly,
            now: None,
        },
    )
}

/// What was computed of the model, kept or streamed.
struct ModelSeen {
    shards: ShardDigests,
    /// Whole-file digest, when streamed with `full_digest`.
    whole: Option<String>,
    /// The digested prefix, when streamed (kept: taken from the kept bytes).
    prefix: Option<Vec<u8>>,
}

/// Verify the bundle at `dir` against `trust` as `opts` says (see [`verify_bundle`]).
/// Both [`ModelBytes`] run the same checks.
pub fn verify_bundle_with(dir: &Path, trust: &Trust, opts: &VerifyOptions) -> Verification {
    let now = opts.now.unwrap_or_else(OffsetDateTime::now_utc);
    let mut v = Verification {
        model_bytes: opts.model,
        ..Verification::default()
    };
    let (mut files, model_present) = check_closed_set(dir, &mut v);
    check_statement(&files, trust, now, &mut v);
    if let Some(stmt) = v.statement.clone() {
        let mut model = ModelSource {
            dir,
            opts: *opts,
            present: model_present,
            read: false,
            seen: None,
        };
        check_subjects(&stmt, &mut files, &mut model, &mut v);
        check_leak_verdict(&stmt, &files, &mut v);
        check_privacy(&stmt, &files, &mut v);
        check_provenance(&stmt, &files, trust, now, &mut v);
        if files.contains(crate::bundle::TRANSPARENCY_FILE) {
            let on_record = check_transparency(&stmt, &files, trust);
            v.push("publish on record", on_record);
        }
    }
    v.files = files;
    v
}

/// "publish on record": `transparency.json` proves that the publisher's log recorded the
/// start of this release's publish: an inclusion proof, checked offline against a
/// checkpoint signed by a publisher key of `trust`, of a `start` entry naming this
/// release's signed statement and model.
fn check_transparency(
    stmt: &Statement<ReleasePredicate>,
    files: &BundleFiles,
    trust: &Trust,
) -> Result<String, String> {
    let name = crate::bundle::TRANSPARENCY_FILE;
    let p: airlock_schemas::InclusionProof = parse_json(held(files, name)?, name)?;
    let (entry, signed) = crate::merkle::verify_entry_proof(&p, trust, KeyRole::Publisher)
        .map_err(|e| format!("{name}: {e}"))?;
    let statement_sha = held(files, STATEMENT_DSSE_FILE).map(sha256_hex)?;
    let model_sha = stmt
        .subject
        .iter()
        .find(|s| s.name == MODEL_FILE)
        .and_then(|s| s.digest.get("sha256"));
    let names_release = entry.action == airlock_schemas::AuditAction::Start
        && entry.artifacts.get(STATEMENT_DSSE_FILE) == Some(&statement_sha)
        && model_sha.is_some()
        && entry.artifacts.get(MODEL_FILE) == model_sha
        && entry
            .model
            .as_ref()
            .is_none_or(|m| *m == stmt.predicate.model_name)
        && entry
            .version
            .as_ref()
            .is_none_or(|ver| *ver == stmt.predicate.model_version);
    if !names_release {
        return Err(format!(
            "{name}: entry {} of {} is a {} entry for another release, not the start of this release's publish",
            entry.seq, signed.checkpoint.origin, entry.action
        ));
    }
    Ok(format!(
        "entry {} of {} (checkpoint of {} entries signed by publisher {:?})",
        entry.seq,
        signed.checkpoint.origin,
        signed.checkpoint.size,
        trust.name_of(&signed.keyid).unwrap_or("?")
    ))
}

/// "bundle files": the bundle is exactly its closed set. Returns the files read (all but
/// the model) and whether the walk saw the model as a regular file.
fn check_closed_set(dir: &Path, v: &mut Verification) -> (BundleFiles, bool) {
    let mut files = BundleFiles::default();
    let mut model_present = false;
    v.push(
        "bundle files",
        crate::bundle::read_closed_set(dir).and_then(|(f, walk, missing)| {
            files = f;
            model_present = walk.present.iter().any(|p| p == MODEL_FILE);
            if !walk.refused.is_empty() {
                Err(format!(
                    "not part of a bundle (only the signed files and {APPROVALS_DIR}/<key id>.dsse.json decisions are): {}",
                    walk.refused.join(", ")
                ))
            } else if !missing.is_empty() {
                Err(format!("missing files: {missing:?}"))
            } else {
                check_decision_files(&files).map(|n| {
                    format!("exactly the expected files and {n} decision files")
                })
            }
        }),
    );
    (files, model_present)
}

/// The release statement and its signature, by a builder key usable now and valid when it
/// signed; sets [`Verification::statement`] when all of that holds.
fn check_statement(files: &BundleFiles, trust: &Trust, now: OffsetDateTime, v: &mut Verification) {
    let signed = held(files, STATEMENT_DSSE_FILE)
        .and_then(|b| parse_json::<Envelope>(b, STATEMENT_DSSE_FILE))
        .and_then(|env| verify_by_builder(&env, trust, now, STATEMENT_DSSE_FILE));
    let statement_ok = v.push(
        "statement signature",
        signed
            .as_ref()
            .map(|s| {
                format!(
                    "signed by builder {:?} ({})",
                    trust.name_of(&s.keyid).unwrap_or("?"),
                    s.keyid
                )
            })
            .map_err(Clone::clone),
    );
    if !statement_ok {
        return;
    }
    let signed_by = signed.as_ref().map(|s| s.keyid.clone()).unwrap_or_default();
    let signed = signed.map(|s| s.payload).unwrap_or_default();
    v.push(
        "statement.json matches the signed payload",
        held(files, STATEMENT_FILE).and_then(|b| {
            if b == signed.as_slice() {
                Ok("identical".into())
            } else {
                Err("statement.json differs from the signed statement".into())
            }
        }),
    );
    match parse_json::<Statement<ReleasePredicate>>(&signed, "the signed statement") {
        Ok(s)
            if s.type_ == STATEMENT_TYPE
                && s.predicate_type == trust.uri_base.release_predicate() =>
        {
            // The builder key must have been valid when it signed: the signed build
            // time is the provenance's `runDetails.metadata.finishedOn`.
            let when = build_time(files, trust, now).and_then(|t| {
                trust
                    .usable_key(&signed_by, KeyRole::Builder, t, now)
                    .map(|_| format!("built at {}", rfc3339(t)))
            });
            if v.push("statement signer valid when it signed", when) {
                v.statement_bytes = signed;
                v.statement = Some(s);
            }
        }
        Ok(s) => {
            v.push(
                "statement type",
                Err(format!(
                    "unexpected _type {:?} / predicateType {:?}",
                    s.type_, s.predicate_type
                )),
            );
        }
        Err(e) => {
            v.push("statement type", Err(e));
        }
    }
}

/// The statement's subjects: exactly the model, the card and the report, each with the
/// digest of the file in the bundle.
fn check_subjects(
    stmt: &Statement<ReleasePredicate>,
    files: &mut BundleFiles,
    model: &mut ModelSource<'_>,
    v: &mut Verification,
) {
    let names: BTreeSet<&str> = stmt.subject.iter().map(|s| s.name.as_str()).collect();
    let want: BTreeSet<&str> = [MODEL_FILE, MODEL_CARD_FILE, LEAK_REPORT_FILE]
        .into_iter()
        .collect();
    v.push(
        "statement subjects",
        if names == want && stmt.subject.len() == 3 {
            Ok("model, model card, leak report".into())
        } else {
            Err(format!("subjects are {names:?}"))
        },
    );
    for s in &stmt.subject {
        let Some(want) = s.digest.get("sha256") else {
            v.push(
                "subject digest",
                Err(format!("{}: no sha256 digest", s.name)),
            );
            continue;
        };
        if s.name == MODEL_FILE {
            check_model_subject(&stmt.predicate.model_shards, want, files, model, v);
        } else {
            v.push("subject digest", subject_digest(&s.name, want, files));
        }
    }
}

/// A subject other than the model: the SHA-256 of the file held.
fn subject_digest(name: &str, want: &str, files: &BundleFiles) -> Result<String, String> {
    let got = sha256_hex(held(files, name)?);
    if got == want {
        Ok(format!("{name} {want}"))
    } else {
        Err(format!(
            "{name}: SHA-256 is {got}, the statement says {want}"
        ))
    }
}

/// The model file as the subjects reach it: read at most once, and only when the walk saw
/// it as a regular file.
struct ModelSource<'a> {
    dir: &'a Path,
    opts: VerifyOptions,
    present: bool,
    read: bool,
    seen: Option<ModelSeen>,
}

impl ModelSource<'_> {
    /// The model's digests, read with the statement's shard size (kept in `files` under
    /// [`ModelBytes::Keep`]); an error when it cannot be read, or was already taken.
    fn take(
        &mut self,
        shards: &ShardDigests,
        files: &mut BundleFiles,
    ) -> Result<ModelSeen, String> {
        if self.present && !self.read {
            self.read = true;
            self.seen = Some(self.read_model(shards, files)?);
        }
        self.seen
            .take()
            .ok_or_else(|| format!("{MODEL_FILE}: not in the bundle"))
    }

    fn read_model(
        &self,
        shards: &ShardDigests,
        files: &mut BundleFiles,
    ) -> Result<ModelSeen, String> {
        let single = shards.sha256.len() == 1;
        let f = crate::bundle::open_regular(&self.dir.join(MODEL_FILE))?;
        let threads = self.opts.threads;
        match self.opts.model {
            ModelBytes::Keep => {
                let (bytes, got) = read_with_shard_digests(&f, shards.shard_size, threads)
                    .map_err(|e| format!("{MODEL_FILE}: {e}"))?;
                files.insert(MODEL_FILE, bytes);
                Ok(ModelSeen {
                    shards: got,
                    whole: None,
                    prefix: None,
                })
            }
            ModelBytes::DigestOnly => {
                let s = stream_safetensors_digests(
                    &f,
                    shards.shard_size,
                    threads,
                    self.opts.full_digest && !single,
                )
                .map_err(|e| format!("{MODEL_FILE}: {e}"))?;
                Ok(ModelSeen {
                    shards: s.shards,
                    whole: s.whole,
                    prefix: Some(s.prefix),
                })
            }
        }
    }
}

/// The model subject: its shard digests, its whole digest (one shard, or `full_digest`),
/// and its header against the model card.
fn check_model_subject(
    shards: &ShardDigests,
    want: &str,
    files: &mut BundleFiles,
    model: &mut ModelSource<'_>,
    v: &mut Verification,
) {
    if shards.shard_size < 4096 || shards.sha256.is_empty() {
        v.push(
            "model shard digests",
            Err(format!(
                "implausible shard layout ({} bytes per shard)",
                shards.shard_size
            )),
        );
        return;
    }
    let single = shards.sha256.len() == 1;
    let seen = match model.take(shards, files) {
        Ok(seen) => seen,
        Err(e) => {
            v.push("model shard digests", Err(e));
            return;
        }
    };
    v.push("model shard digests", compare_shards(&seen.shards, shards));
    let kept = files.get(MODEL_FILE).unwrap_or_default();
    if single || model.opts.full_digest {
        let whole = if single {
            seen.shards.sha256[0].clone()
        } else if let Some(w) = seen.whole {
            w
        } else {
            sha256_hex(kept)
        };
        v.push(
            "model digest",
            if whole == want {
                Ok(want.to_owned())
            } else {
                Err(format!(
                    "{MODEL_FILE}: SHA-256 is {whole}, the statement says {want}"
                ))
            },
        );
    }
    // The header is checked on bytes that were digested: the kept model, or
    // the prefix copied from the streamed shard buffers.
    let (prefix, len) = match &seen.prefix {
        Some(p) => (
            safetensors_prefix(p),
            usize::try_from(seen.shards.length).unwrap_or(usize::MAX),
        ),
        None => (safetensors_prefix(kept), kept.len()),
    };
    v.push("model format", check_model(prefix, len, files));
}

/// The shard digests computed (`got`) against the signed ones.
fn compare_shards(got: &ShardDigests, shards: &ShardDigests) -> Result<String, String> {
    if got.length != shards.length || got.sha256.len() != shards.sha256.len() {
        return Err(format!(
            "{MODEL_FILE} is {} bytes, the statement says {}",
            got.length, shards.length
        ));
    }
    let bad: Vec<usize> = got
        .sha256
        .iter()
        .zip(&shards.sha256)
        .enumerate()
        .filter(|(_, (a, b))| a != b)
        .map(|(i, _)| i)
        .collect();
    if bad.is_empty() {
        Ok(format!("{} shards", shards.sha256.len()))
    } else {
        Err(format!(
            "{MODEL_FILE} differs from the signed shard digests (shards {bad:?})"
        ))
    }
}

/// "leak verdict": the report holds the layers of [`LEAK_LAYERS`] and it and the statement
/// both say that they passed.
fn check_leak_verdict(
    stmt: &Statement<ReleasePredicate>,
    files: &BundleFiles,
    v: &mut Verification,
) {
    v.push(
        "leak verdict",
        held(files, LEAK_REPORT_FILE)
            .and_then(|b| parse_json::<LeakReport>(b, LEAK_REPORT_FILE))
            .and_then(|r| {
                let failed: Vec<String> = r
                    .layers
                    .iter()
                    .filter(|l| l.verdict != Verdict::Pass)
                    .map(|l| l.id.clone())
                    .collect();
                let ids: Vec<&str> = r.layers.iter().map(|l| l.id.as_str()).collect();
                let expected: Vec<&str> = LEAK_LAYERS.iter().map(|(id, _)| *id).collect();
                if ids != expected {
                    return Err(format!(
                        "the leak report's layers are {ids:?}, not {expected:?}"
                    ));
                }
                if r.verdict == Verdict::Pass
                    && failed.is_empty()
                    && stmt.predicate.leak_verdict == Verdict::Pass
                {
                    let replayed = r.layers.last().and_then(|l| l.counts.get("reproduced"));
                    Ok(if replayed == Some(&serde_json::Value::Bool(true)) {
                        "L0–L4 pass (the weights are what a replay of training gives)".into()
                    } else {
                        "L0–L4 pass (training was not replayed)".into()
                    })
                } else {
                    Err(format!(
                        "leak report verdict {:?}, failed layers {failed:?}",
                        r.verdict
                    ))
                }
            }),
    );
}

/// "differential privacy" (DP-SGD releases only): the statement's guarantee is the one
/// the leak report's L4 recomputed, for weights the replay reproduced.
fn check_privacy(stmt: &Statement<ReleasePredicate>, files: &BundleFiles, v: &mut Verification) {
    let Some(p) = &stmt.predicate.privacy else {
        return;
    };
    v.push(
        "differential privacy",
        held(files, LEAK_REPORT_FILE)
            .and_then(|b| parse_json::<LeakReport>(b, LEAK_REPORT_FILE))
            .and_then(|r| {
                let l4 = r.layers.iter().find(|l| l.id == "L4");
                let count = |k: &str| l4.and_then(|l| l.counts.get(k));
                let reproduced = count("reproduced") == Some(&serde_json::Value::Bool(true));
                let same_epsilon =
                    count("epsilon").and_then(serde_json::Value::as_f64) == Some(p.epsilon);
                let same_delta = count("delta").and_then(serde_json::Value::as_f64) == Some(p.delta);
                if !(reproduced && same_epsilon && same_delta && p.epsilon.is_finite()) {
                    return Err(
                        "the statement's privacy guarantee is not the one L4 proved by replaying training"
                            .to_owned(),
                    );
                }
                Ok(match &p.audit {
                    Some(a) => format!(
                        "ε = {:.3} at δ = {:.1e} per row (DP-SGD); one-run audit ε ≥ {:.3}",
                        p.epsilon, p.delta, a.epsilon_lower_bound
                    ),
                    None => format!("ε = {:.3} at δ = {:.1e} per row (DP-SGD)", p.epsilon, p.delta),
                })
            }),
    );
}

/// "provenance": signed by a usable builder key, SLSA provenance about the statement's model.
fn check_provenance(
    stmt: &Statement<ReleasePredicate>,
    files: &BundleFiles,
    trust: &Trust,
    now: OffsetDateTime,
    v: &mut Verification,
) {
    let model_sha = stmt
        .subject
        .iter()
        .find(|s| s.name == MODEL_FILE)
        .and_then(|s| s.digest.get("sha256"))
        .cloned();
    v.push(
        "provenance",
        held(files, PROVENANCE_DSSE_FILE)
            .and_then(|b| parse_json::<Envelope>(b, PROVENANCE_DSSE_FILE))
            .and_then(|env| verify_by_builder(&env, trust, now, PROVENANCE_DSSE_FILE))
            .and_then(|s| {
                parse_json::<Statement<serde_json::Value>>(&s.payload, "the provenance statement")
            })
            .and_then(|p| {
                let subj = p
                    .subject
                    .iter()
                    .find(|s| s.name == MODEL_FILE)
                    .and_then(|s| s.digest.get("sha256"));
                if p.predicate_type != SLSA_PROVENANCE_TYPE {
                    Err(format!("predicateType {:?}", p.predicate_type))
                } else if subj.is_none() || subj != model_sha.as_ref() {
                    Err("provenance is about a different model".into())
                } else {
                    Ok("SLSA provenance v1 for the model".into())
                }
            }),
    );
}

/// Verify a builder's envelope with only the builder keys usable at `now` (listed as
/// builder, not revoked, inside their validity window).
fn verify_by_builder(
    env: &Envelope,
    trust: &Trust,
    now: OffsetDateTime,
    name: &str,
) -> Result<dsse::Verified, String> {
    let usable = trust.usable_keys(KeyRole::Builder, now, now);
    dsse::verify(env, IN_TOTO_PAYLOAD_TYPE, &usable).map_err(|e| {
        // Name the key that was refused, when a listed key signed it.
        let refused: Vec<String> = env
            .signatures
            .iter()
            .filter_map(|s| {
                trust
                    .usable_key(&s.keyid, KeyRole::Builder, now, now)
                    .err()
                    .filter(|_| trust.keys.iter().any(|k| k.key_id == s.keyid))
            })
            .collect();
        if refused.is_empty() {
            format!("{name}: {e}")
        } else {
            format!("{name}: {}", refused.join("; "))
        }
    })
}

/// The time the builder signed for: the provenance's `runDetails.metadata.finishedOn`
/// (the end of the build the statement is about), from the provenance envelope verified by
/// a builder key usable at `now` whose window also holds that time.
fn build_time(
    files: &BundleFiles,
    trust: &Trust,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, String> {
    let env = held(files, PROVENANCE_DSSE_FILE)
        .and_then(|b| parse_json::<Envelope>(b, PROVENANCE_DSSE_FILE))?;
    let signed = verify_by_builder(&env, trust, now, PROVENANCE_DSSE_FILE)?;
    let p: Statement<serde_json::Value> = parse_json(&signed.payload, "the provenance statement")?;
    let finished = p.predicate["runDetails"]["metadata"]["finishedOn"]
        .as_str()
        .ok_or("the provenance carries no runDetails.metadata.finishedOn time")?;
    let t = OffsetDateTime::parse(finished, &Rfc3339)
        .map_err(|_| format!("the provenance's finishedOn {finished:?} is not an RFC 3339 time"))?;
    trust.usable_key(&signed.keyid, KeyRole::Builder, t, now)?;
    Ok(t)
}

/// The model (`prefix`: its length prefix and header; `len`: its length) parses strictly, is
/// canonical, and holds exactly what the model card declares.
fn check_model(prefix: &[u8], len: usize, files: &BundleFiles) -> Result<String, String> {
    let m = st::parse_header(prefix, len).map_err(|e| format!("{MODEL_FILE}: {e}"))?;
    if !st::is_canonical_len(&m, len) {
        return Err(format!("{MODEL_FILE} is not in canonical form"));
    }
    for (k, val) in &m.metadata {
        if !MODEL_METADATA.iter().any(|(ak, av)| ak == k && av == val) {
            return Err(format!("{MODEL_FILE}: metadata key {k:?} is not allowed"));
        }
    }
    let card: ModelCard =
        held(files, MODEL_CARD_FILE).and_then(|b| parse_json(b, MODEL_CARD_FILE))?;
    let declared: Vec<(String, String, Vec<usize>)> = card
        .architecture
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.dtype.clone(), t.shape.clone()))
        .collect();
    let mut have: Vec<(String, String, Vec<usize>)> = m
        .tensors
        .iter()
        .map(|t| (t.name.clone(), t.dtype.name().to_owned(), t.shape.clone()))
        .collect();
    have.sort();
    let mut declared = declared;
    declared.sort();
    if have != declared {
        return Err(format!(
            "{MODEL_FILE} tensors differ from the model card's architecture"
        ));
    }
    Ok(format!("{} tensors, canonical", m.tensors.len()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use airlock_schemas::{LeakLayer, Subject};
    use serde_json::json;

    use super::*;
    use crate::keys::{Signer, generate};
    use crate::pretty;
    use crate::shards::{sha256_hex, shard_digests};
    use airlock_safetensors::{Dtype, OwnedTensor, write_canonical};

    /// A model of `n` f32 weights with `metadata`, and its card's tensor list.
    fn model(n: usize, metadata: &[(&str, &str)]) -> (Vec<u8>, serde_json::Value) {
        let data: Vec<u8> = (0..n)
            .flat_map(|i| (i as f32 * 0.001).to_le_bytes())
            .collect();
        let t = OwnedTensor {
            name: "layers.0.weight".into(),
            dtype: Dtype::F32,
            shape: vec![n],
            data,
        };
        let meta: BTreeMap<String, String> = metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let bytes = write_canonical(&[t], &meta).expect("canonical");
        (
            bytes,
            json!([{"name": "layers.0.weight", "dtype": "F32", "shape": [n]}]),
        )
    }

    /// A builder-signed bundle of `model` at `dir`, in `shard` byte shards.
    fn bundle(dir: &Path, builder: &Signer, model: &[u8], tensors: serde_json::Value, shard: u64) {
        let default = UriBase::default().release_predicate();
        bundle_typed(dir, builder, model, tensors, shard, &default);
    }

    /// [`bundle`] with the release statement's `predicateType`.
    fn bundle_typed(
        dir: &Path,
        builder: &Signer,
        model: &[u8],
        tensors: serde_json::Value,
        shard: u64,
        predicate_type: &str,
    ) {
        let subject = |name: &str, bytes: &[u8]| Subject {
            name: name.into(),
            digest: [("sha256".to_owned(), sha256_hex(bytes))]
                .into_iter()
                .collect(),
        };
        let card = pretty(&json!({
            "schema_version": 1, "name": "m", "version": "1.0.0", "intended_use": null,
            "architecture": {"kind": "mlp", "layer_widths": [1], "activation": "relu", "tensors": tensors},
            "inputs": [], "output": {"label": "y", "classes": ["0", "1"], "transform": "sigmoid"},
            "metrics": {"roc_auc": 0.9, "accuracy": 0.9, "loss": 0.1, "holdout_rows": 1, "positive_rate": 0.5},
            "training": {"epochs": [], "roc_curve": [], "split_rows": [1, 1, 1]},
        }));
        let layer = |id: &str| LeakLayer {
            id: id.into(),
            name: id.into(),
            verdict: Verdict::Pass,
            parameters: BTreeMap::new(),
            counts: BTreeMap::new(),
            findings: Vec::new(),
            error: None,
        };
        let report = pretty(&LeakReport {
            schema_version: 1,
            verdict: Verdict::Pass,
            inputs: Vec::new(),
            layers: LEAK_LAYERS.map(|(id, _)| layer(id)).to_vec(),
        });
        let statement = pretty(&Statement {
            type_: STATEMENT_TYPE.into(),
            subject: vec![
                subject(MODEL_FILE, model),
                subject(MODEL_CARD_FILE, &card),
                subject(LEAK_REPORT_FILE, &report),
            ],
            predicate_type: predicate_type.into(),
            predicate: ReleasePredicate {
                model_name: "m".into(),
                model_version: "1.0.0".into(),
                pipeline_sha256: "0".repeat(64),
                training_record_sha256: "0".repeat(64),
                leak_verdict: Verdict::Pass,
                git_commit: None,
                model_shards: shard_digests(model, shard, 1),
                privacy: None,
            },
        });
        let provenance = pretty(&Statement {
            type_: STATEMENT_TYPE.into(),
            subject: vec![subject(MODEL_FILE, model)],
            predicate_type: SLSA_PROVENANCE_TYPE.into(),
            predicate: json!({"runDetails": {"metadata": {"finishedOn": "2026-01-01T00:00:00Z"}}}),
        });
        let sign = |b: &[u8]| pretty(&dsse::sign(IN_TOTO_PAYLOAD_TYPE, b, builder));
        std::fs::create_dir_all(dir.join(APPROVALS_DIR)).expect("mkdir");
        for (name, bytes) in [
            (STATEMENT_DSSE_FILE, sign(&statement)),
            (STATEMENT_FILE, statement),
            (PROVENANCE_DSSE_FILE, sign(&provenance)),
            (MODEL_CARD_FILE, card),
            (LEAK_REPORT_FILE, report),
            (MODEL_FILE, model.to_vec()),
        ] {
            std::fs::write(dir.join(name), bytes).expect("write");
        }
    }

    fn verify(
        dir: &Path,
        trust: &Trust,
        threads: usize,
        full: bool,
        m: ModelBytes,
    ) -> Verification {
        verify_bundle_with(
            dir,
            trust,
            &VerifyOptions {
                threads,
                full_digest: full,
                model: m,
                now: None,
            },
        )
    }

    #[test]
    fn digest_only_runs_the_same_checks_as_keep_and_leaves_the_model_out() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let keys = tmp.path().join("keys");
        std::fs::create_dir(&keys).expect("mkdir");
        let builder = generate(&keys.join("builder")).expect("builder key");
        generate(&keys.join("officer")).expect("officer key");
        let policy = tmp.path().join("trust.toml");
        std::fs::write(
            &policy,
            "approvals_required = 1\n\
             [[keys]]\nname = \"b\"\nrole = \"builder\"\npublic_key = \"keys/builder.pub\"\n\
             [[keys]]\nname = \"o\"\nrole = \"officer\"\npublic_key = \"keys/officer.pub\"\n",
        )
        .expect("policy");
        let trust = Trust::load(&policy).expect("trust");
        let signer = Signer::load(&builder.private_key).expect("signer");

        let (good, tensors) = model(3000, &MODEL_METADATA);
        let (not_allowed, not_allowed_tensors) = model(3000, &[("format", "pt"), ("rows", "x")]);
        let mut flipped = good.clone();
        *flipped.last_mut().expect("bytes") ^= 1;
        let mut cases: Vec<(&str, tempfile::TempDir, bool)> = Vec::new();
        for (what, bytes, t, shard, tamper) in [
            ("one shard", &good, &tensors, 1 << 20, None),
            ("three shards", &good, &tensors, 4096, None),
            ("last byte changed", &good, &tensors, 4096, Some(&flipped)),
            (
                "metadata not allowed",
                &not_allowed,
                &not_allowed_tensors,
                4096,
                None,
            ),
        ] {
            let d = tempfile::tempdir_in(tmp.path()).expect("bundle dir");
            bundle(d.path(), &signer, bytes, t.clone(), shard);
            if let Some(t) = tamper {
                std::fs::write(d.path().join(MODEL_FILE), t).expect("tamper");
            }
            cases.push((what, d, tamper.is_none() && what != "metadata not allowed"));
        }
        for (what, dir, should_pass) in &cases {
            let on_disk = std::fs::read(dir.path().join(MODEL_FILE)).expect("model");
            for threads in [1, 2, 3] {
                for full in [false, true] {
                    let kept = verify(dir.path(), &trust, threads, full, ModelBytes::Keep);
                    let streamed =
                        verify(dir.path(), &trust, threads, full, ModelBytes::DigestOnly);
                    let at = format!("{what}, {threads} threads, full digest {full}");
                    assert_eq!(kept.checks, streamed.checks, "{at}");
                    assert_eq!(kept.ok(), *should_pass, "{at}: {:#?}", kept.checks);
                    assert!(kept.checks.iter().any(|c| c.name == "model format"), "{at}");
                    assert_eq!(kept.statement_bytes, streamed.statement_bytes, "{at}");
                    assert_eq!(kept.model_bytes, ModelBytes::Keep);
                    assert_eq!(streamed.model_bytes, ModelBytes::DigestOnly);
                    // Keep holds the model; DigestOnly holds every other file, not the model.
                    assert_eq!(kept.files.get(MODEL_FILE), Some(on_disk.as_slice()), "{at}");
                    assert_eq!(streamed.files.get(MODEL_FILE), None, "{at}");
                    let others: Vec<&str> =
                        kept.files.names().filter(|n| *n != MODEL_FILE).collect();
                    assert_eq!(streamed.files.names().collect::<Vec<_>>(), others, "{at}");
                    for n in others {
                        assert_eq!(kept.files.get(n), streamed.files.get(n), "{at}: {n}");
                    }
                    // Only a kept, verified model can be had, and asking never gives nothing.
                    assert_eq!(kept.model().ok(), should_pass.then_some(on_disk.as_slice()));
                    assert!(streamed.model().is_err(), "{at}");
                }
            }
        }
        // The failing cases fail on the check they are about.
        let failed = |i: usize| {
            let (_, dir, _) = &cases[i];
            let v = verify(dir.path(), &trust, 2, true, ModelBytes::DigestOnly);
            v.checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        assert_eq!(failed(2), ["model shard digests", "model digest"]);
        assert_eq!(failed(3), ["model format"]);
    }

    #[test]
    fn the_predicate_type_must_be_under_the_policys_uri_base() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let keys = tmp.path().join("keys");
        std::fs::create_dir(&keys).expect("mkdir");
        let builder = generate(&keys.join("builder")).expect("builder key");
        generate(&keys.join("officer")).expect("officer key");
        let policy_with = |name: &str, base: Option<&str>| {
            let p = tmp.path().join(name);
            let line = base.map_or_else(String::new, |b| format!("uri_base = \"{b}\"\n"));
            std::fs::write(
                &p,
                format!(
                    "approvals_required = 1\n{line}\
                     [[keys]]\nname = \"b\"\nrole = \"builder\"\npublic_key = \"keys/builder.pub\"\n\
                     [[keys]]\nname = \"o\"\nrole = \"officer\"\npublic_key = \"keys/officer.pub\"\n"
                ),
            )
            .expect("policy");
            p
        };
        let ours = "https://ml.example-hospital.org";
        let default_trust = Trust::load(&policy_with("default.toml", None)).expect("trust");
        let our_trust = Trust::load(&policy_with("ours.toml", Some(ours))).expect("trust");
        assert_eq!(default_trust.uri_base, UriBase::default());
        assert_eq!(our_trust.uri_base.as_str(), ours);
        let signer = Signer::load(&builder.private_key).expect("signer");
        let (m, tensors) = model(100, &MODEL_METADATA);
        let default_bundle = tempfile::tempdir_in(tmp.path()).expect("dir");
        bundle(default_bundle.path(), &signer, &m, tensors.clone(), 1 << 20);
        let our_bundle = tempfile::tempdir_in(tmp.path()).expect("dir");
        let typed = format!("{ours}/attestation/release/v1");
        bundle_typed(our_bundle.path(), &signer, &m, tensors, 1 << 20, &typed);
        let ok = |d: &Path, t: &Trust| verify(d, t, 1, false, ModelBytes::DigestOnly).ok();
        // A release verifies only under a policy expecting its base; the default is stable.
        assert!(ok(default_bundle.path(), &default_trust));
        assert!(ok(our_bundle.path(), &our_trust));
        assert!(!ok(default_bundle.path(), &our_trust));
        assert!(!ok(our_bundle.path(), &default_trust));
        // A base that is not a URI the producer could control is refused when loading.
        let bad = policy_with("bad.toml", Some("http://airlock.dev"));
        let e = Trust::load(&bad).expect_err("http base");
        assert!(e.to_string().contains("uri_base"), "{e}");
    }
}
