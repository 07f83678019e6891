//! `airlock verify`: recompute every digest, check the builder's signatures against the
//! trust policy, the statement's subjects against the files, and the leak verdict.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use airlock_schemas::{
    Envelope, IN_TOTO_PAYLOAD_TYPE, KeyRole, LeakReport, ModelCard, RELEASE_PREDICATE_TYPE,
    ReleasePredicate, SLSA_PROVENANCE_TYPE, STATEMENT_TYPE, Statement, TrustPolicy, Verdict,
};
use ed25519_dalek::VerifyingKey;

use crate::keys::{KeyError, key_id, load_public_key};
use crate::package::{
    APPROVALS_DIR, LEAK_REPORT_FILE, MODEL_CARD_FILE, MODEL_FILE, MODEL_METADATA,
    PROVENANCE_DSSE_FILE, STATEMENT_DSSE_FILE, STATEMENT_FILE,
};
use crate::shards::sha256_hex;
use crate::shards::{read_safetensors_prefix, stream_digest, stream_shard_digests};
use crate::{dsse, safetensors as st};

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
}

impl Trust {
    /// Load `trust.toml` and the public keys it names (relative to the file).
    pub fn load(path: &Path) -> Result<Self, TrustError> {
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
                let key = load_public_key(&dir.join(&k.public_key)).map_err(|source| {
                    TrustError::Key {
                        path: path.to_owned(),
                        name: k.name.clone(),
                        source,
                    }
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
        Ok(Self {
            policy,
            sha256: sha256_hex(&bytes),
            keys,
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

    /// Name of the key with id `id`.
    pub fn name_of(&self, id: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|k| k.key_id == id)
            .map(|k| k.name.as_str())
    }
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
                let t =
                    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                        .map_err(|_| {
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
}

impl Verification {
    /// True when every check held.
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
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

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    std::fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"))
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], name: &str) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("{name} is not a valid document: {e}"))
}

/// Verify the bundle at `dir` against `trust`. `full_digest` also recomputes the
/// whole-file SHA-256 of a model larger than one shard (the signed shard digests already
/// pin every byte; the whole-file digest is there for `sha256sum` users).
pub fn verify_bundle(dir: &Path, trust: &Trust, threads: usize, full_digest: bool) -> Verification {
    let mut v = Verification::default();
    let expected: BTreeSet<&str> = [
        MODEL_FILE,
        MODEL_CARD_FILE,
        LEAK_REPORT_FILE,
        STATEMENT_FILE,
        STATEMENT_DSSE_FILE,
        PROVENANCE_DSSE_FILE,
        APPROVALS_DIR,
    ]
    .into_iter()
    .collect();
    v.push(
        "bundle files",
        std::fs::read_dir(dir)
            .map_err(|e| format!("{}: {e}", dir.display()))
            .and_then(|entries| {
                let names: BTreeSet<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                let extra: Vec<&String> = names
                    .iter()
                    .filter(|n| !expected.contains(n.as_str()))
                    .collect();
                let missing: Vec<&&str> = expected
                    .iter()
                    .filter(|e| **e != APPROVALS_DIR && !names.contains(**e))
                    .collect();
                if !extra.is_empty() {
                    Err(format!("unexpected files: {extra:?}"))
                } else if !missing.is_empty() {
                    Err(format!("missing files: {missing:?}"))
                } else {
                    Ok("exactly the expected files".into())
                }
            }),
    );

    let builders = trust.keys_with_role(KeyRole::Builder);
    // The release statement and its signature.
    let signed = read(dir, STATEMENT_DSSE_FILE)
        .and_then(|b| parse_json::<Envelope>(&b, STATEMENT_DSSE_FILE))
        .and_then(|env| {
            dsse::verify(&env, IN_TOTO_PAYLOAD_TYPE, &builders)
                .map_err(|e| format!("{STATEMENT_DSSE_FILE}: {e}"))
        });
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
    if statement_ok {
        let signed = signed
            .as_ref()
            .map(|s| s.payload.clone())
            .unwrap_or_default();
        v.push(
            "statement.json matches the signed payload",
            read(dir, STATEMENT_FILE).and_then(|b| {
                if b == signed {
                    Ok("identical".into())
                } else {
                    Err("statement.json differs from the signed statement".into())
                }
            }),
        );
        match parse_json::<Statement<ReleasePredicate>>(&signed, "the signed statement") {
            Ok(s) if s.type_ == STATEMENT_TYPE && s.predicate_type == RELEASE_PREDICATE_TYPE => {
                v.statement_bytes = signed;
                v.statement = Some(s);
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

    if let Some(stmt) = v.statement.clone() {
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
                let shards = &stmt.predicate.model_shards;
                if shards.shard_size < 4096 || shards.sha256.is_empty() {
                    v.push(
                        "model shard digests",
                        Err(format!(
                            "implausible shard layout ({} bytes per shard)",
                            shards.shard_size
                        )),
                    );
                    continue;
                }
                let path = dir.join(MODEL_FILE);
                let got = match stream_shard_digests(&path, shards.shard_size, threads) {
                    Ok(r) => r,
                    Err(e) => {
                        v.push("model shard digests", Err(format!("{MODEL_FILE}: {e}")));
                        continue;
                    }
                };
                let bad: Vec<usize> =
                    if got.length != shards.length || got.sha256.len() != shards.sha256.len() {
                        vec![usize::MAX]
                    } else {
                        got.sha256
                            .iter()
                            .zip(&shards.sha256)
                            .enumerate()
                            .filter(|(_, (a, b))| a != b)
                            .map(|(i, _)| i)
                            .collect()
                    };
                v.push(
                    "model shard digests",
                    if bad.is_empty() {
                        Ok(format!("{} shards", shards.sha256.len()))
                    } else if bad == [usize::MAX] {
                        Err(format!(
                            "{MODEL_FILE} is {} bytes, the statement says {}",
                            got.length, shards.length
                        ))
                    } else {
                        Err(format!(
                            "{MODEL_FILE} differs from the signed shard digests (shards {bad:?})"
                        ))
                    },
                );
                let single = shards.sha256.len() == 1;
                if single || full_digest {
                    let whole = if single {
                        Ok(got.sha256[0].clone())
                    } else {
                        stream_digest(&path).map_err(|e| e.to_string())
                    };
                    v.push(
                        "model digest",
                        whole.and_then(|g| {
                            if g == *want {
                                Ok(want.clone())
                            } else {
                                Err(format!(
                                    "{MODEL_FILE}: SHA-256 is {g}, the statement says {want}"
                                ))
                            }
                        }),
                    );
                }
                v.push("model format", check_model(&path, dir));
            } else {
                let bytes = match read(dir, &s.name) {
                    Ok(b) => b,
                    Err(e) => {
                        v.push("subject digest", Err(e));
                        continue;
                    }
                };
                let got = sha256_hex(&bytes);
                v.push(
                    "subject digest",
                    if got == *want {
                        Ok(format!("{} {want}", s.name))
                    } else {
                        Err(format!(
                            "{}: SHA-256 is {got}, the statement says {want}",
                            s.name
                        ))
                    },
                );
            }
        }
        v.push(
            "leak verdict",
            read(dir, LEAK_REPORT_FILE)
                .and_then(|b| parse_json::<LeakReport>(&b, LEAK_REPORT_FILE))
                .and_then(|r| {
                    let failed: Vec<String> = r
                        .layers
                        .iter()
                        .filter(|l| l.verdict != Verdict::Pass)
                        .map(|l| l.id.clone())
                        .collect();
                    if r.verdict == Verdict::Pass
                        && failed.is_empty()
                        && r.layers.len() == 4
                        && stmt.predicate.leak_verdict == Verdict::Pass
                    {
                        Ok("L0–L3 pass".into())
                    } else {
                        Err(format!(
                            "leak report verdict {:?}, failed layers {failed:?}",
                            r.verdict
                        ))
                    }
                }),
        );
        let model_sha = stmt
            .subject
            .iter()
            .find(|s| s.name == MODEL_FILE)
            .and_then(|s| s.digest.get("sha256"))
            .cloned();
        v.push(
            "provenance",
            read(dir, PROVENANCE_DSSE_FILE)
                .and_then(|b| parse_json::<Envelope>(&b, PROVENANCE_DSSE_FILE))
                .and_then(|env| {
                    dsse::verify(&env, IN_TOTO_PAYLOAD_TYPE, &builders)
                        .map_err(|e| format!("{PROVENANCE_DSSE_FILE}: {e}"))
                })
                .and_then(|s| {
                    parse_json::<Statement<serde_json::Value>>(
                        &s.payload,
                        "the provenance statement",
                    )
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
    v
}

/// The model parses strictly, is canonical, and holds exactly what the model card declares.
fn check_model(path: &Path, dir: &Path) -> Result<String, String> {
    let (prefix, len) = read_safetensors_prefix(path).map_err(|e| format!("{MODEL_FILE}: {e}"))?;
    let m = st::parse_header(&prefix, len).map_err(|e| format!("{MODEL_FILE}: {e}"))?;
    if !st::is_canonical_len(&m, len) {
        return Err(format!("{MODEL_FILE} is not in canonical form"));
    }
    for (k, val) in &m.metadata {
        if !MODEL_METADATA.iter().any(|(ak, av)| ak == k && av == val) {
            return Err(format!("{MODEL_FILE}: metadata key {k:?} is not allowed"));
        }
    }
    let card: ModelCard =
        read(dir, MODEL_CARD_FILE).and_then(|b| parse_json(&b, MODEL_CARD_FILE))?;
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
