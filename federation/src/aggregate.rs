//! The aggregator's round (`airlock federate aggregate`): every update the round received
//! is verified (the site's signature under the federation's trust policy, the digest of
//! the bytes received, the round, what it was computed from, the site's verdict, L0 again)
//! or left out with its reason; with a quorum, the accepted ones are averaged and the round
//! is signed; every update and the round are entries of the audit log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use airlock_model::{FeatureStats, Params, Preprocess};
use airlock_packager::{STATISTICS_FILE, UPDATE_FILE, statistics_decls};
use airlock_publisher::audit::{AuditLog, NewEntry};
use airlock_schemas::{
    AuditAction, Contribution, KeyRole, Refusal, RoundPredicate, UpdateKind, UpdatePredicate,
    Verdict,
};
use airlock_trust::keys::Signer;
use airlock_trust::shards::sha256_hex;
use serde::Serialize;

use crate::rounds::{
    RoundState, check_preprocess, open_statement, params_bytes, read_params, subject_digests,
    verify_chain, write_round,
};
use crate::{Federation, FederationError, MAX_UPDATE_BYTES, UPDATE_STATEMENT_FILE, now};

/// What `airlock federate aggregate` is given.
#[derive(Debug, Clone)]
pub struct AggregateOptions {
    /// The federation file.
    pub federation: PathBuf,
    /// The aggregator's state folder (its signed rounds).
    pub state: PathBuf,
    /// The aggregator's private key.
    pub key: PathBuf,
    /// The round being closed.
    pub round: u32,
    /// The updates received: one folder per reply (its name is the sender's, as the
    /// transport gave it; nothing in it is trusted).
    pub updates: PathBuf,
    /// Senders that were asked and did not answer, or answered with an error (left out,
    /// logged).
    pub missing: Vec<String>,
    /// The federation's audit log.
    pub audit_log: PathBuf,
}

/// A closed round.
#[derive(Debug, Clone, Serialize)]
pub struct RoundOutcome {
    /// The round.
    pub round: u32,
    /// The updates averaged.
    pub accepted: Vec<Contribution>,
    /// The updates left out.
    pub refused: Vec<Refusal>,
    /// SHA-256 of the new global model.
    pub global_sha256: String,
    /// SHA-256 of the round's statement envelope.
    pub statement_sha256: String,
    /// The round's folder (what the sites are sent next).
    pub dir: PathBuf,
    /// Validation loss of the accepted sites, weighted by samples.
    pub validation_loss: Option<f64>,
    /// Validation accuracy, likewise.
    pub validation_accuracy: Option<f64>,
    /// Seconds verifying the updates.
    pub verify_seconds: f64,
    /// Seconds averaging.
    pub aggregate_seconds: f64,
    /// Seconds signing, writing and logging the round.
    pub sign_seconds: f64,
}

/// An update that verified.
struct Accepted {
    site: String,
    key_id: String,
    params: Params,
    predicate: UpdatePredicate,
    update_sha256: String,
    statement_sha256: String,
}

/// Close round `o.round`: verify, average, sign, log.
pub fn aggregate(o: &AggregateOptions) -> Result<RoundOutcome, FederationError> {
    let (fed, signer, latest) = open(o)?;
    let based_on = latest
        .as_ref()
        .map_or_else(|| fed.sha256.clone(), |r| r.envelope_sha256.clone());
    let mut log = AuditLog::open(&o.audit_log)?;
    log.check_head_as(&fed.trust, KeyRole::Aggregator)?;

    check_log_follows_state(&log, latest.as_ref(), &o.audit_log)?;
    let caps = row_caps(&fed, &o.state, o.round)?;
    let started = Instant::now();
    let (accepted, refused) = verify_updates(&fed, o, &based_on, &caps)?;
    let verify_seconds = started.elapsed().as_secs_f64();
    for a in &accepted {
        let site = fed.spec.site(&a.site).map_or("", |s| s.region.as_str());
        log_update(&fed, &mut log, &signer, a, site)?;
    }
    for r in &refused {
        log_refusal(&fed, &mut log, &signer, o.round, r)?;
    }
    if accepted.len() < fed.spec.min_sites as usize {
        round_entry(
            &fed,
            &mut log,
            &signer,
            o.round,
            BTreeMap::new(),
            format!(
                "refused: {} of the {} updates the quorum needs verified; no round signed",
                accepted.len(),
                fed.spec.min_sites
            ),
        )?;
        return Err(FederationError::Quorum {
            round: o.round,
            accepted: accepted.len(),
            needed: fed.spec.min_sites,
            refused: refused.len(),
        });
    }

    let started = Instant::now();
    let (global, preprocess) = match &latest {
        None => round_zero(&fed, &accepted)?,
        Some(r) => (
            params_bytes(&average(&accepted)).map_err(FederationError::Failed)?,
            r.preprocess_bytes.clone(),
        ),
    };
    let aggregate_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let contributions: Vec<Contribution> = accepted.iter().map(contribution).collect();
    let predicate = RoundPredicate {
        federation: fed.spec.name.clone(),
        federation_sha256: fed.sha256.clone(),
        round: o.round,
        previous: latest.as_ref().map(|r| r.envelope_sha256.clone()),
        strategy: fed.spec.strategy.name().to_owned(),
        accepted: contributions.clone(),
        refused: refused.clone(),
        time: now(),
    };
    let state = write_round(&fed, &o.state, &global, &preprocess, predicate, &signer)?;
    let artifacts = BTreeMap::from([
        ("global.safetensors".to_owned(), sha256_hex(&state.global)),
        ("round.dsse.json".to_owned(), state.envelope_sha256.clone()),
    ]);
    round_entry(
        &fed,
        &mut log,
        &signer,
        o.round,
        artifacts,
        format!(
            "ok: round {} averaged {} updates ({} left out); its global model goes to the sites",
            o.round,
            accepted.len(),
            refused.len()
        ),
    )?;
    Ok(RoundOutcome {
        round: o.round,
        validation_loss: weighted(&accepted, |p| p.validation_loss),
        validation_accuracy: weighted(&accepted, |p| p.validation_accuracy),
        accepted: contributions,
        refused,
        global_sha256: sha256_hex(&state.global),
        statement_sha256: state.envelope_sha256,
        dir: state.dir,
        verify_seconds,
        aggregate_seconds,
        sign_seconds: started.elapsed().as_secs_f64(),
    })
}

/// The federation, the aggregator's key (the one the federation names) and the last
/// signed round; `o.round` must be the next.
fn open(o: &AggregateOptions) -> Result<(Federation, Signer, Option<RoundState>), FederationError> {
    let fed = Federation::load(&o.federation)?;
    let signer = Signer::load(&o.key)?;
    if signer.key_id() != fed.spec.aggregator.key_id {
        return Err(FederationError::Invalid {
            path: o.key.clone(),
            message: format!(
                "key {} is not the federation's aggregator key {}",
                signer.key_id(),
                fed.spec.aggregator.key_id
            ),
        });
    }
    let latest = verify_chain(&fed, &o.state)?;
    let next = latest.as_ref().map_or(0, |r| r.round + 1);
    if o.round != next || o.round > fed.spec.rounds {
        return Err(FederationError::RoundOrder {
            given: o.round,
            next,
        });
    }
    Ok((fed, signer, latest))
}

/// Every reply under `o.updates` verified or refused; the senders that did not answer are
/// refused too.
fn verify_updates(
    fed: &Federation,
    o: &AggregateOptions,
    based_on: &str,
    caps: &BTreeMap<String, u64>,
) -> Result<(Vec<Accepted>, Vec<Refusal>), FederationError> {
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut refused: Vec<Refusal> = o
        .missing
        .iter()
        .map(|m| Refusal {
            from: printable(m),
            reason: "no update arrived (no reply in time, or the site reported an error)".into(),
        })
        .collect();
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(&o.updates) {
        Ok(rd) => rd
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(|e| FederationError::io("read", &o.updates, e))?,
        Err(e) => return Err(FederationError::io("read", &o.updates, e)),
    };
    entries.sort();
    for dir in entries {
        let from = printable(&dir.file_name().unwrap_or_default().to_string_lossy());
        let checked =
            verify_update(fed, &dir, o.round, based_on).and_then(|a| match caps.get(&a.site) {
                _ if o.round == 0 => Ok(a),
                Some(cap) if a.predicate.samples <= *cap => Ok(a),
                Some(cap) => Err(format!(
                    "site {} claims {} training rows; its round-0 statistics were over {cap}",
                    a.site, a.predicate.samples
                )),
                None => Err(format!(
                    "site {} sent no statistics in round 0, so its rows are unbounded",
                    a.site
                )),
            });
        match checked {
            Ok(a) if accepted.iter().any(|b| b.site == a.site) => refused.push(Refusal {
                from: format!("{from} (site {})", a.site),
                reason: format!("a second update from site {} in this round", a.site),
            }),
            Ok(a) => accepted.push(a),
            Err(reason) => refused.push(Refusal {
                from,
                reason: printable(&reason),
            }),
        }
    }
    Ok((accepted, refused))
}

/// Verify one reply folder: its statement, its bytes, its round and base, the verdict,
/// and L0 on the tensors.
fn verify_update(
    fed: &Federation,
    dir: &Path,
    round: u32,
    based_on: &str,
) -> Result<Accepted, String> {
    let (kind, file) = if round == 0 {
        (UpdateKind::Statistics, STATISTICS_FILE)
    } else {
        (UpdateKind::Weights, UPDATE_FILE)
    };
    reply_holds_only(dir, file)?;
    let envelope = read_small(&dir.join(UPDATE_STATEMENT_FILE))
        .map_err(|e| format!("no signed statement: {e}"))?;
    let (statement, key_id) = open_statement::<UpdatePredicate>(
        fed,
        &envelope,
        &fed.update_predicate_type(),
        KeyRole::Site,
        |p| &p.time,
    )
    .map_err(|e| format!("the update statement does not verify: {e}"))?;
    let p = statement.predicate;
    let site = fed
        .spec
        .sites
        .iter()
        .find(|s| s.key_id == key_id)
        .ok_or_else(|| format!("key {key_id} is not a site key of the federation"))?;
    if p.site != site.name {
        return Err(format!(
            "signed by site {}'s key but names site {:?}",
            site.name,
            printable(&p.site)
        ));
    }
    if p.federation != fed.spec.name {
        return Err(format!(
            "it is for federation {:?}",
            printable(&p.federation)
        ));
    }
    if p.round != round || p.kind != kind {
        return Err(format!(
            "it is site {}'s update of round {}, not of round {round}: a replayed or stale update",
            site.name, p.round
        ));
    }
    if p.based_on != based_on {
        return Err(format!(
            "site {} computed it from {}, not from this round's global model {based_on}",
            site.name, p.based_on
        ));
    }
    if p.verdict != Verdict::Pass || p.leak_layers.iter().any(|l| l.verdict != Verdict::Pass) {
        return Err(format!("site {}'s own leak checks did not pass", site.name));
    }
    let layers: Vec<&str> = p.leak_layers.iter().map(|l| l.id.as_str()).collect();
    if layers != ["L0", "L1", "L2"] {
        return Err(format!(
            "site {}'s statement does not record L0, L1 and L2",
            site.name
        ));
    }
    if p.samples < u64::from(fed.spec.min_site_rows) {
        return Err(format!(
            "site {} trained on {} rows; the federation needs at least {}",
            site.name, p.samples, fed.spec.min_site_rows
        ));
    }
    let digest = subject_digests(&statement.subject, &[file])?.remove(0);
    let bytes = read_update(&dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
    let update_sha256 = sha256_hex(&bytes);
    if update_sha256 != digest {
        return Err(format!(
            "{file} is not what site {} signed (SHA-256 {update_sha256}, signed {digest})",
            site.name
        ));
    }
    let params = update_params(fed, kind, &bytes, file)?;
    Ok(Accepted {
        site: site.name.clone(),
        key_id,
        params,
        predicate: p,
        update_sha256,
        statement_sha256: sha256_hex(&envelope),
    })
}

/// A reply folder (not a link) holding nothing but `file` and the statement.
fn reply_holds_only(dir: &Path, file: &str) -> Result<(), String> {
    let meta = std::fs::symlink_metadata(dir).map_err(|e| e.to_string())?;
    if !meta.is_dir() {
        return Err("the reply is not a folder".into());
    }
    for e in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let name = e.map_err(|e| e.to_string())?.file_name();
        if name != file && name != UPDATE_STATEMENT_FILE {
            return Err(format!(
                "the reply holds {:?}; only {file} and {UPDATE_STATEMENT_FILE} may cross",
                printable(&name.to_string_lossy())
            ));
        }
    }
    Ok(())
}

/// L0 at the aggregator: exactly the tensors an update of `kind` declares.
fn update_params(
    fed: &Federation,
    kind: UpdateKind,
    bytes: &[u8],
    file: &str,
) -> Result<Params, String> {
    match kind {
        UpdateKind::Statistics => {
            let unit = FeatureStats {
                name: String::new(),
                mean: 0.0,
                std: 1.0,
            };
            let template = Preprocess {
                features: vec![unit.clone(); input_count(fed)],
                target: matches!(fed.pipeline.task, airlock_schemas::TaskSpec::Regression)
                    .then_some(unit),
            };
            read_params(&statistics_decls(&template), bytes, file)
        }
        UpdateKind::Weights => read_params(&fed.description.trained(), bytes, file),
    }
}

fn input_count(fed: &Federation) -> usize {
    match fed.description.input {
        airlock_model::InputKind::Features(n) => n,
        airlock_model::InputKind::Image(i) => i.channels,
    }
}

fn read_small(path: &Path) -> Result<Vec<u8>, String> {
    read_limited(path, 1 << 20)
}

fn read_update(path: &Path) -> Result<Vec<u8>, String> {
    read_limited(path, MAX_UPDATE_BYTES)
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let m = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !m.is_file() {
        return Err("not a regular file".into());
    }
    if m.len() > limit {
        return Err(format!("larger than {limit} bytes"));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// Round 0: the pooled standardization of the sites' statistics, and the pipeline seed's
/// initial weights (what `airlock train` would start from).
fn round_zero(
    fed: &Federation,
    accepted: &[Accepted],
) -> Result<(Vec<u8>, Vec<u8>), FederationError> {
    let n: f64 = accepted.iter().map(|a| a.predicate.samples as f64).sum();
    let pool = |name: &str, i: usize| -> (f64, f64) {
        let (mut mean, mut square) = (0.0f64, 0.0f64);
        for a in accepted {
            let w = a.predicate.samples as f64 / n;
            let get = |t: &str| f64::from(a.params.get(t).map_or(0.0, |v| v[i]));
            let (m, s) = if name == "target" {
                (
                    get("target.mean_std"),
                    f64::from(a.params.get("target.mean_std").map_or(1.0, |v| v[1])),
                )
            } else {
                (get("input.mean"), get("input.std"))
            };
            mean += w * m;
            square += w * (s * s + m * m);
        }
        let std = (square - mean * mean).max(0.0).sqrt();
        (mean, if std > 1e-12 { std } else { 1.0 })
    };
    let names: Vec<String> = match fed.description.input {
        airlock_model::InputKind::Features(_) => fed.pipeline.data.features.clone(),
        airlock_model::InputKind::Image(i) => {
            (0..i.channels).map(|c| format!("channel.{c}")).collect()
        }
    };
    let features = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (mean, std) = pool("input", i);
            FeatureStats {
                name: name.clone(),
                mean,
                std,
            }
        })
        .collect();
    let target = matches!(fed.pipeline.task, airlock_schemas::TaskSpec::Regression).then(|| {
        let (mean, std) = pool("target", 0);
        FeatureStats {
            name: "target".into(),
            mean,
            std,
        }
    });
    let pre = Preprocess { features, target };
    check_preprocess(fed, &pre).map_err(FederationError::Failed)?;
    let init = fed
        .description
        .init(&mut airlock_model::rng(fed.pipeline.training.seed, 1));
    Ok((
        params_bytes(&init).map_err(FederationError::Failed)?,
        airlock_trust::pretty(&pre),
    ))
}

/// FedAvg: each tensor the mean of the accepted updates' tensors, weighted by samples.
fn average(accepted: &[Accepted]) -> Params {
    let total: f64 = accepted.iter().map(|a| a.predicate.samples as f64).sum();
    let first = &accepted[0].params;
    let tensors = first
        .tensors
        .iter()
        .enumerate()
        .map(|(t, (decl, values))| {
            let mut sum = vec![0.0f64; values.len()];
            for a in accepted {
                let w = a.predicate.samples as f64 / total;
                for (s, v) in sum.iter_mut().zip(&a.params.tensors[t].1) {
                    *s += w * f64::from(*v);
                }
            }
            (decl.clone(), sum.into_iter().map(|v| v as f32).collect())
        })
        .collect();
    Params { tensors }
}

fn weighted(accepted: &[Accepted], f: impl Fn(&UpdatePredicate) -> Option<f64>) -> Option<f64> {
    let mut total = 0.0;
    let mut sum = 0.0;
    for a in accepted {
        let v = f(&a.predicate)?;
        let w = a.predicate.samples as f64;
        sum += w * v;
        total += w;
    }
    (total > 0.0).then(|| sum / total)
}

fn contribution(a: &Accepted) -> Contribution {
    Contribution {
        site: a.site.clone(),
        key_id: a.key_id.clone(),
        update_sha256: a.update_sha256.clone(),
        statement_sha256: a.statement_sha256.clone(),
        samples: a.predicate.samples,
        train_loss: a.predicate.train_loss,
        train_accuracy: a.predicate.train_accuracy,
        validation_loss: a.predicate.validation_loss,
        validation_accuracy: a.predicate.validation_accuracy,
    }
}

/// Printable ASCII, at most 200 characters (senders' names are the transport's word).
fn printable(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(300)
        .collect()
}

fn entry(
    fed: &Federation,
    action: AuditAction,
    artifacts: BTreeMap<String, String>,
    outcome: String,
) -> NewEntry {
    NewEntry {
        action,
        artifacts,
        destination: format!("federation://{}/aggregator", fed.spec.name),
        verified_region: Some(fed.spec.aggregator.region.clone()),
        approvals: Vec::new(),
        trust_policy_sha256: fed.trust.sha256.clone(),
        residency_policy_sha256: fed.sha256.clone(),
        outcome,
    }
}

fn log_update(
    fed: &Federation,
    log: &mut AuditLog,
    signer: &Signer,
    a: &Accepted,
    region: &str,
) -> Result<(), FederationError> {
    let what = match a.predicate.kind {
        UpdateKind::Statistics => "input statistics only",
        UpdateKind::Weights => "model weights only",
    };
    let file = match a.predicate.kind {
        UpdateKind::Statistics => STATISTICS_FILE,
        UpdateKind::Weights => UPDATE_FILE,
    };
    let artifacts = BTreeMap::from([
        (file.to_owned(), a.update_sha256.clone()),
        (UPDATE_STATEMENT_FILE.to_owned(), a.statement_sha256.clone()),
    ]);
    let outcome = format!(
        "ok: round {} update from site {} (region {region}) to the aggregator (region {}): {what}, {} rows' worth",
        a.predicate.round, a.site, fed.spec.aggregator.region, a.predicate.samples
    );
    log.append(
        entry(fed, AuditAction::FederatedUpdate, artifacts, outcome),
        signer,
    )?;
    Ok(())
}

fn log_refusal(
    fed: &Federation,
    log: &mut AuditLog,
    signer: &Signer,
    round: u32,
    r: &Refusal,
) -> Result<(), FederationError> {
    let outcome = format!(
        "refused: round {round} update from {}: {}",
        r.from, r.reason
    );
    log.append(
        entry(fed, AuditAction::FederatedUpdate, BTreeMap::new(), outcome),
        signer,
    )?;
    Ok(())
}

fn round_entry(
    fed: &Federation,
    log: &mut AuditLog,
    signer: &Signer,
    _round: u32,
    artifacts: BTreeMap<String, String>,
    outcome: String,
) -> Result<(), FederationError> {
    log.append(
        entry(fed, AuditAction::FederatedRound, artifacts, outcome),
        signer,
    )?;
    Ok(())
}

/// Where a federation stands (`airlock federate status`).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The round to run next (past `rounds` when every round is signed).
    pub next_round: u32,
    /// Training rounds declared.
    pub rounds: u32,
    /// Sites declared.
    pub sites: usize,
    /// The quorum.
    pub min_sites: u32,
    /// Seconds the aggregator waits for a round's updates.
    pub timeout: u32,
    /// The last signed round's folder.
    pub latest_dir: Option<PathBuf>,
}

/// Each site's training rows in round 0's statistics (what later rounds may claim at most).
fn row_caps(
    fed: &Federation,
    state: &Path,
    round: u32,
) -> Result<BTreeMap<String, u64>, FederationError> {
    if round == 0 {
        return Ok(BTreeMap::new());
    }
    let dir = state.join("rounds").join(format!("{:06}", 0));
    let r0 =
        crate::rounds::read_round(fed, &dir, 0).map_err(|message| FederationError::Invalid {
            path: dir.clone(),
            message,
        })?;
    Ok(r0
        .predicate
        .accepted
        .iter()
        .map(|c| (c.site.clone(), c.samples))
        .collect())
}

/// The state's last round must be the one the audit log recorded last: a round folder
/// deleted (to sign that round again, differently) or replaced is refused.
fn check_log_follows_state(
    log: &AuditLog,
    latest: Option<&RoundState>,
    path: &Path,
) -> Result<(), FederationError> {
    let logged = log
        .chain()
        .entries
        .iter()
        .rev()
        .find(|e| e.action == AuditAction::FederatedRound && e.outcome.starts_with("ok"))
        .and_then(|e| e.artifacts.get("round.dsse.json").cloned());
    if logged.as_deref() != latest.map(|r| r.envelope_sha256.as_str()) {
        return Err(FederationError::Invalid {
            path: path.to_owned(),
            message: format!(
                "the audit log's last signed round ({}) is not the state's last round ({}): a round was deleted or replaced",
                logged.as_deref().unwrap_or("none"),
                latest.map_or("none", |r| r.envelope_sha256.as_str())
            ),
        });
    }
    Ok(())
}

/// The last signed round (verified with the whole chain) and what comes next.
pub fn status(federation: &Path, state: &Path) -> Result<Status, FederationError> {
    let fed = Federation::load(federation)?;
    let latest: Option<RoundState> = verify_chain(&fed, state)?;
    Ok(Status {
        next_round: latest.as_ref().map_or(0, |r| r.round + 1),
        rounds: fed.spec.rounds,
        sites: fed.spec.sites.len(),
        min_sites: fed.spec.min_sites,
        timeout: fed.spec.round_timeout_seconds,
        latest_dir: latest.map(|r| r.dir),
    })
}
