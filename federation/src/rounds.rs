//! The aggregator's signed rounds: `STATE/rounds/NNNNNN/` holds `global.safetensors`,
//! `preprocess.json` and `round.dsse.json`, whose statement names both by digest and the
//! previous round's statement, so the rounds form a chain that a restarted aggregator and
//! every site verify before using.

use std::path::{Path, PathBuf};

use airlock_model::{Params, Preprocess, TensorDecl};
use airlock_safetensors as st;
use airlock_schemas::{
    Envelope, IN_TOTO_PAYLOAD_TYPE, KeyRole, RoundPredicate, STATEMENT_TYPE, Statement, Subject,
};
use airlock_trust::dsse;
use airlock_trust::keys::Signer;
use airlock_trust::shards::sha256_hex;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Federation, FederationError, write_synced};

/// The aggregator's statement of a round.
pub const ROUND_FILE: &str = "round.dsse.json";
/// The round's global model (the declared trained tensors, F32).
pub const GLOBAL_FILE: &str = "global.safetensors";
/// The federation's pooled standardization.
pub const PREPROCESS_FILE: &str = "preprocess.json";
/// Largest file of a round read (bytes).
const MAX_ROUND_FILE: u64 = 1 << 30;

/// A round that verified.
#[derive(Debug, Clone)]
pub struct RoundState {
    /// Its number.
    pub round: u32,
    /// Its folder.
    pub dir: PathBuf,
    /// The global model's bytes.
    pub global: Vec<u8>,
    /// Its tensors.
    pub params: Params,
    /// The pooled standardization's bytes.
    pub preprocess_bytes: Vec<u8>,
    /// It, parsed.
    pub preprocess: Preprocess,
    /// The statement envelope's bytes.
    pub envelope: Vec<u8>,
    /// Their SHA-256 (what the next round and every update name).
    pub envelope_sha256: String,
    /// What the aggregator signed.
    pub predicate: RoundPredicate,
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    let m = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !m.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    if m.len() > MAX_ROUND_FILE {
        return Err(format!(
            "{} is larger than {MAX_ROUND_FILE} bytes",
            path.display()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The tensors of `bytes`, which must hold exactly `decls` (F32, declared shapes, finite
/// values, no metadata).
pub(crate) fn read_params(
    decls: &[TensorDecl],
    bytes: &[u8],
    what: &str,
) -> Result<Params, String> {
    let file = st::parse(bytes).map_err(|e| format!("{what}: {e}"))?;
    if !file.metadata.is_empty() {
        return Err(format!("{what} carries metadata"));
    }
    if file.tensors.len() != decls.len() {
        return Err(format!(
            "{what} holds {} tensors; the model declares {}",
            file.tensors.len(),
            decls.len()
        ));
    }
    let tensors = decls
        .iter()
        .map(|d| {
            let t = file
                .tensor(&d.name)
                .ok_or_else(|| format!("{what}: tensor {:?} is missing", d.name))?;
            if t.dtype != st::Dtype::F32 || t.shape != d.shape {
                return Err(format!(
                    "{what}: tensor {:?} is {} {:?}, the model declares F32 {:?}",
                    d.name,
                    t.dtype.name(),
                    t.shape,
                    d.shape
                ));
            }
            let v: Vec<f32> = file
                .data(t)
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if v.iter().any(|x| !x.is_finite()) {
                return Err(format!(
                    "{what}: tensor {:?} holds a non-finite value",
                    d.name
                ));
            }
            Ok((d.clone(), v))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Params { tensors })
}

/// The canonical bytes of `params`.
pub(crate) fn params_bytes(params: &Params) -> Result<Vec<u8>, String> {
    st::write_canonical_refs(&params.to_tensor_refs(), &Default::default())
        .map_err(|e| format!("cannot write the tensors: {e}"))
}

/// Open a signed statement `bytes` of `predicate_type`, signed by a key with `role` that
/// counts at the statement's own `time` and now. Returns the statement, the key id and
/// the envelope's SHA-256.
pub(crate) fn open_statement<P: serde::de::DeserializeOwned>(
    fed: &Federation,
    bytes: &[u8],
    predicate_type: &str,
    role: KeyRole,
    time_of: impl Fn(&P) -> &str,
) -> Result<(Statement<P>, String), String> {
    let env: Envelope = airlock_schemas::strict_json::from_slice(bytes)
        .map_err(|e| format!("not a DSSE envelope ({e})"))?;
    let now = OffsetDateTime::now_utc();
    let candidates = fed.trust.keys_with_role(role);
    let verified =
        dsse::verify(&env, IN_TOTO_PAYLOAD_TYPE, &candidates).map_err(|e| e.to_string())?;
    let statement: Statement<P> = airlock_schemas::strict_json::from_slice(&verified.payload)
        .map_err(|e| format!("the signed statement is not one ({e})"))?;
    if statement.type_ != STATEMENT_TYPE || statement.predicate_type != predicate_type {
        return Err(format!(
            "the statement's type is {:?}, not {predicate_type:?}",
            statement.predicate_type
        ));
    }
    let time = time_of(&statement.predicate);
    let signed_at = OffsetDateTime::parse(time, &Rfc3339)
        .map_err(|_| format!("the statement's time {time:?} is not RFC 3339"))?;
    if signed_at > now + time::Duration::minutes(5) {
        return Err(format!("the statement is dated in the future ({time})"));
    }
    fed.trust
        .usable_key(&verified.keyid, role, signed_at, now)?;
    Ok((statement, verified.keyid))
}

/// The SHA-256 a statement's subject `name` gives; exactly the subjects `names` may be
/// listed, each once.
pub(crate) fn subject_digests(subjects: &[Subject], names: &[&str]) -> Result<Vec<String>, String> {
    if subjects.len() != names.len() {
        return Err(format!(
            "the statement has {} subjects; {} expected ({})",
            subjects.len(),
            names.len(),
            names.join(", ")
        ));
    }
    names
        .iter()
        .map(|n| {
            let s = subjects
                .iter()
                .find(|s| s.name == *n)
                .ok_or_else(|| format!("the statement does not name {n}"))?;
            match s.digest.get("sha256") {
                Some(d) if s.digest.len() == 1 => Ok(d.clone()),
                _ => Err(format!("the statement's digest of {n} is not one SHA-256")),
            }
        })
        .collect()
}

/// Read and verify the round in `dir` (which must be round `round`): the aggregator's
/// signature, the files' digests, the federation it names, and the tensors it holds.
pub fn read_round(fed: &Federation, dir: &Path, round: u32) -> Result<RoundState, String> {
    let envelope = read_bounded(&dir.join(ROUND_FILE))?;
    let (statement, keyid) = open_statement::<RoundPredicate>(
        fed,
        &envelope,
        &fed.round_predicate_type(),
        KeyRole::Aggregator,
        |p| &p.time,
    )?;
    if keyid != fed.spec.aggregator.key_id {
        return Err(format!(
            "signed by key {keyid}, not the federation's aggregator key {}",
            fed.spec.aggregator.key_id
        ));
    }
    let p = statement.predicate;
    if p.federation != fed.spec.name || p.federation_sha256 != fed.sha256 {
        return Err(format!(
            "it is a round of federation {:?} (file {}), not of {:?} ({})",
            p.federation, p.federation_sha256, fed.spec.name, fed.sha256
        ));
    }
    if p.round != round {
        return Err(format!(
            "it is signed as round {}, not round {round}",
            p.round
        ));
    }
    let digests = subject_digests(&statement.subject, &[GLOBAL_FILE, PREPROCESS_FILE])?;
    let global = read_bounded(&dir.join(GLOBAL_FILE))?;
    let preprocess_bytes = read_bounded(&dir.join(PREPROCESS_FILE))?;
    for ((name, bytes), want) in [(GLOBAL_FILE, &global), (PREPROCESS_FILE, &preprocess_bytes)]
        .iter()
        .zip(&digests)
    {
        if sha256_hex(bytes) != **want {
            return Err(format!("{name} is not the file the aggregator signed"));
        }
    }
    let params = read_params(&fed.description.trained(), &global, GLOBAL_FILE)?;
    let preprocess: Preprocess = airlock_schemas::strict_json::from_slice(&preprocess_bytes)
        .map_err(|e| format!("{PREPROCESS_FILE}: {e}"))?;
    check_preprocess(fed, &preprocess)?;
    Ok(RoundState {
        round,
        dir: dir.to_owned(),
        global,
        params,
        preprocess_bytes,
        preprocess,
        envelope_sha256: sha256_hex(&envelope),
        envelope,
        predicate: p,
    })
}

/// The standardization must fit the model's inputs: one finite mean and positive deviation
/// per input (per channel for images), a target only for regression.
pub(crate) fn check_preprocess(fed: &Federation, pre: &Preprocess) -> Result<(), String> {
    let inputs = match fed.description.input {
        airlock_model::InputKind::Features(n) => n,
        airlock_model::InputKind::Image(i) => i.channels,
    };
    if pre.features.len() != inputs {
        return Err(format!(
            "the standardization has {} inputs; the model has {inputs}",
            pre.features.len()
        ));
    }
    let ok = |m: f64, s: f64| m.is_finite() && s.is_finite() && s > 0.0;
    if pre.features.iter().any(|f| !ok(f.mean, f.std))
        || pre.target.as_ref().is_some_and(|t| !ok(t.mean, t.std))
    {
        return Err("the standardization holds a non-finite mean or a deviation ≤ 0".to_owned());
    }
    if pre.target.is_some() != matches!(fed.pipeline.task, airlock_schemas::TaskSpec::Regression) {
        return Err("the standardization's target does not go with the task".to_owned());
    }
    Ok(())
}

fn round_dir(state: &Path, round: u32) -> PathBuf {
    state.join("rounds").join(format!("{round:06}"))
}

/// Verify every round under `state` from round 0 on: contiguous, each signed, each naming
/// the one before, all with round 0's standardization. Returns the last (none before
/// round 0 is signed).
pub fn verify_chain(fed: &Federation, state: &Path) -> Result<Option<RoundState>, FederationError> {
    let rounds = state.join("rounds");
    let bad = |message: String| FederationError::Invalid {
        path: rounds.clone(),
        message,
    };
    let mut numbers = Vec::new();
    match std::fs::read_dir(&rounds) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FederationError::io("read", &rounds, e)),
        Ok(entries) => {
            for e in entries {
                let e = e.map_err(|e| FederationError::io("read", &rounds, e))?;
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(".staging-") {
                    continue;
                }
                match name.parse::<u32>() {
                    Ok(n) if name.len() == 6 && name.bytes().all(|b| b.is_ascii_digit()) => {
                        numbers.push(n);
                    }
                    _ => return Err(bad(format!("{name:?} is not a round folder"))),
                }
            }
        }
    }
    numbers.sort_unstable();
    let mut last: Option<RoundState> = None;
    for (i, n) in numbers.iter().enumerate() {
        if *n as usize != i {
            return Err(bad(format!("round {i} is missing (found round {n})")));
        }
        let r = read_round(fed, &round_dir(state, *n), *n)
            .map_err(|why| bad(format!("round {n}: {why}")))?;
        match &last {
            None if r.predicate.previous.is_some() => {
                return Err(bad("round 0 names a previous round".to_owned()));
            }
            Some(prev) if r.predicate.previous.as_deref() != Some(&prev.envelope_sha256) => {
                return Err(bad(format!(
                    "round {n} does not name round {}'s statement as its previous: the chain is broken",
                    n - 1
                )));
            }
            Some(prev) if r.preprocess_bytes != prev.preprocess_bytes => {
                return Err(bad(format!(
                    "round {n} changed the federation's standardization"
                )));
            }
            _ => {}
        }
        last = Some(r);
    }
    Ok(last)
}

/// [`verify_chain`]'s last round.
pub fn latest_round(fed: &Federation, state: &Path) -> Result<Option<RoundState>, FederationError> {
    verify_chain(fed, state)
}

/// Sign `predicate` over `global` and `preprocess` and write the round, staged and renamed
/// into place (a round folder is complete or absent).
pub(crate) fn write_round(
    fed: &Federation,
    state: &Path,
    global: &[u8],
    preprocess: &[u8],
    predicate: RoundPredicate,
    signer: &Signer,
) -> Result<RoundState, FederationError> {
    let round = predicate.round;
    let target = round_dir(state, round);
    let parent = state.join("rounds");
    std::fs::create_dir_all(&parent).map_err(|e| FederationError::io("create", &parent, e))?;
    if target.exists() {
        return Err(FederationError::RoundOrder {
            given: round,
            next: round + 1,
        });
    }
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(&parent)
        .map_err(|e| FederationError::io("create a staging folder in", &parent, e))?;
    let statement = Statement {
        type_: STATEMENT_TYPE.to_owned(),
        subject: vec![
            subject(GLOBAL_FILE, global),
            subject(PREPROCESS_FILE, preprocess),
        ],
        predicate_type: fed.round_predicate_type(),
        predicate,
    };
    let env = dsse::sign(
        IN_TOTO_PAYLOAD_TYPE,
        &airlock_trust::pretty(&statement),
        signer,
    );
    let envelope = airlock_trust::pretty(&env);
    write_synced(&staging.path().join(GLOBAL_FILE), global)?;
    write_synced(&staging.path().join(PREPROCESS_FILE), preprocess)?;
    write_synced(&staging.path().join(ROUND_FILE), &envelope)?;
    let staged = staging.keep();
    std::fs::rename(&staged, &target)
        .map_err(|e| FederationError::io("rename into", &target, e))?;
    read_round(fed, &target, round).map_err(|why| FederationError::Invalid {
        path: target,
        message: format!("the round just written does not verify: {why}"),
    })
}

/// A statement subject: `name` by SHA-256.
pub(crate) fn subject(name: &str, bytes: &[u8]) -> Subject {
    Subject {
        name: name.to_owned(),
        digest: [("sha256".to_owned(), sha256_hex(bytes))]
            .into_iter()
            .collect(),
    }
}
