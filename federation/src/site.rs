//! A site's round (`airlock federate site`): verify the global model the aggregator sent,
//! train on the site's own data from it, run L0 to L2 on the update against that data,
//! and only then sign it. A refused update is never written.

use std::path::{Path, PathBuf};
use std::time::Instant;

use airlock_model::{Params, Preprocess, TensorDecl};
use airlock_packager::{STATISTICS_FILE, UPDATE_FILE, check_update, statistics_decls};
use airlock_schemas::{
    IN_TOTO_PAYLOAD_TYPE, LayerOutcome, STATEMENT_TYPE, Statement, UpdateKind, UpdatePredicate,
    Verdict,
};
use airlock_trust::dsse;
use airlock_trust::keys::Signer;
use airlock_trust::shards::sha256_hex;
use serde::Serialize;

use crate::rounds::{params_bytes, read_round, subject};
use crate::{Federation, FederationError, UPDATE_STATEMENT_FILE, now, write_synced};

/// What `airlock federate site` is given.
#[derive(Debug, Clone)]
pub struct SiteOptions {
    /// The federation file.
    pub federation: PathBuf,
    /// This site's name in it.
    pub site: String,
    /// This site's data (the pipeline's format).
    pub data: PathBuf,
    /// This site's private key.
    pub key: PathBuf,
    /// The round.
    pub round: u32,
    /// The previous round's folder as the aggregator sent it (rounds 1 and on).
    pub global: Option<PathBuf>,
    /// Where to write the update and its statement (created; must not exist).
    pub out: PathBuf,
    /// Threads for the leak layers.
    pub threads: usize,
}

/// What a site let out, and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct SiteOutcome {
    /// The site.
    pub site: String,
    /// The round.
    pub round: u32,
    /// The update's file name.
    pub file: String,
    /// Its SHA-256.
    pub sha256: String,
    /// Training rows used.
    pub samples: u64,
    /// Seconds of local training (statistics for round 0).
    pub train_seconds: f64,
    /// Seconds of L0 to L2.
    pub check_seconds: f64,
    /// Seconds to sign and write.
    pub sign_seconds: f64,
    /// Validation loss after the local epochs.
    pub validation_loss: Option<f64>,
    /// Validation accuracy after them.
    pub validation_accuracy: Option<f64>,
}

/// An update before its checks: its bytes, declarations and the standardization that
/// L2's standardized forms use.
struct Draft {
    kind: UpdateKind,
    file: &'static str,
    bytes: Vec<u8>,
    decls: Vec<TensorDecl>,
    pre: Preprocess,
    based_on: String,
    samples: u64,
    epochs: u32,
    metrics: [Option<f64>; 4],
    train_seconds: f64,
}

/// Run this site's round `o.round` and write its signed update to `o.out`.
pub fn site_round(o: &SiteOptions) -> Result<SiteOutcome, FederationError> {
    let (fed, site, signer) = open_site(o)?;
    let draft = if o.round == 0 {
        statistics(&fed, o)?
    } else {
        weights(&fed, o)?
    };
    check_and_sign(&fed, o, &site, &signer, draft)
}

/// Check and sign an update this site trained by other means (`airlock federate seal`):
/// the weights in `update`, computed from the round's global model in `o.global`. The
/// same L0 to L2 run against the site's data; a refused update is never signed.
pub fn seal(o: &SiteOptions, update: &Path) -> Result<SiteOutcome, FederationError> {
    let (fed, site, signer) = open_site(o)?;
    if o.round == 0 {
        return Err(FederationError::Invalid {
            path: update.to_owned(),
            message: "round 0's statistics are computed by `airlock federate site`, not sealed"
                .into(),
        });
    }
    let global = received_global(&fed, o)?;
    let bytes = std::fs::read(update).map_err(|e| FederationError::io("read", update, e))?;
    let (_, rows) = airlock_trainer::site_statistics(&fed.pipeline, &fed.pipeline_path, &o.data)?;
    enough_rows(&fed, o, rows)?;
    let draft = Draft {
        kind: UpdateKind::Weights,
        file: UPDATE_FILE,
        bytes,
        decls: fed.description.trained(),
        pre: global.preprocess,
        based_on: global.envelope_sha256,
        samples: rows as u64,
        epochs: fed.spec.epochs_per_round,
        metrics: [None; 4],
        train_seconds: 0.0,
    };
    check_and_sign(&fed, o, &site, &signer, draft)
}

/// The federation, this site's entry and its key (which must be the one the federation
/// names); the output folder must not exist.
fn open_site(
    o: &SiteOptions,
) -> Result<(Federation, airlock_schemas::Site, Signer), FederationError> {
    let fed = Federation::load(&o.federation)?;
    let bad = |message: String| FederationError::Invalid {
        path: o.federation.clone(),
        message,
    };
    let site = fed
        .spec
        .site(&o.site)
        .ok_or_else(|| bad(format!("{:?} is not a site of the federation", o.site)))?
        .clone();
    let signer = Signer::load(&o.key)?;
    if signer.key_id() != site.key_id {
        return Err(bad(format!(
            "the key {} is {}, not site {:?}'s key {}",
            o.key.display(),
            signer.key_id(),
            site.name,
            site.key_id
        )));
    }
    if o.out.exists() {
        return Err(FederationError::io(
            "write the update into",
            &o.out,
            std::io::Error::new(std::io::ErrorKind::AlreadyExists, "it already exists"),
        ));
    }
    Ok((fed, site, signer))
}

/// L0 to L2 on the draft against the site's data; only a passing update is signed and
/// written.
fn check_and_sign(
    fed: &Federation,
    o: &SiteOptions,
    site: &airlock_schemas::Site,
    signer: &Signer,
    draft: Draft,
) -> Result<SiteOutcome, FederationError> {
    let started = Instant::now();
    let dataset = airlock_model::load_dataset(&fed.pipeline, &o.data, true)
        .map_err(airlock_trainer::TrainError::from)?;
    let check = check_update(
        &fed.pipeline,
        &draft.decls,
        &dataset,
        &draft.pre,
        &draft.bytes,
        o.threads.max(1),
    );
    let check_seconds = started.elapsed().as_secs_f64();
    if !check.passed() {
        return Err(FederationError::Refused {
            site: site.name.clone(),
            round: o.round,
            why: check.why().unwrap_or_default(),
        });
    }
    let started = Instant::now();
    let predicate = UpdatePredicate {
        federation: fed.spec.name.clone(),
        round: o.round,
        site: site.name.clone(),
        kind: draft.kind,
        based_on: draft.based_on.clone(),
        pipeline_sha256: fed.pipeline_sha256.clone(),
        samples: draft.samples,
        epochs: draft.epochs,
        leak_layers: check
            .layers
            .iter()
            .map(|l| LayerOutcome {
                id: l.id.clone(),
                verdict: l.verdict,
                findings: l.findings.len() as u64,
            })
            .collect(),
        verdict: Verdict::Pass,
        train_loss: draft.metrics[0],
        train_accuracy: draft.metrics[3],
        validation_loss: draft.metrics[1],
        validation_accuracy: draft.metrics[2],
        epsilon: None,
        time: now(),
    };
    let statement = Statement {
        type_: STATEMENT_TYPE.to_owned(),
        subject: vec![subject(draft.file, &draft.bytes)],
        predicate_type: fed.update_predicate_type(),
        predicate,
    };
    let env = dsse::sign(
        IN_TOTO_PAYLOAD_TYPE,
        &airlock_trust::pretty(&statement),
        signer,
    );
    write_update(
        &o.out,
        draft.file,
        &draft.bytes,
        &airlock_trust::pretty(&env),
    )?;
    Ok(SiteOutcome {
        site: site.name.clone(),
        round: o.round,
        file: draft.file.to_owned(),
        sha256: sha256_hex(&draft.bytes),
        samples: draft.samples,
        train_seconds: draft.train_seconds,
        check_seconds,
        sign_seconds: started.elapsed().as_secs_f64(),
        validation_loss: draft.metrics[1],
        validation_accuracy: draft.metrics[2],
    })
}

/// The previous round as the aggregator sent it, verified.
fn received_global(
    fed: &Federation,
    o: &SiteOptions,
) -> Result<crate::RoundState, FederationError> {
    let previous = o.round - 1;
    let dir = o.global.as_deref().ok_or_else(|| FederationError::Global {
        round: previous,
        why: "no global model was given (--global)".to_owned(),
    })?;
    read_round(fed, dir, previous).map_err(|why| FederationError::Global {
        round: previous,
        why,
    })
}

/// Round 0: the standardization of the site's training split and its row count.
fn statistics(fed: &Federation, o: &SiteOptions) -> Result<Draft, FederationError> {
    let started = Instant::now();
    let (pre, rows) = airlock_trainer::site_statistics(&fed.pipeline, &fed.pipeline_path, &o.data)?;
    enough_rows(fed, o, rows)?;
    let mut tensors = vec![
        pre.features
            .iter()
            .map(|f| f.mean as f32)
            .collect::<Vec<f32>>(),
        pre.features.iter().map(|f| f.std as f32).collect(),
    ];
    if let Some(t) = &pre.target {
        tensors.push(vec![t.mean as f32, t.std as f32]);
    }
    let decls = statistics_decls(&pre);
    let params = Params {
        tensors: decls.iter().cloned().zip(tensors).collect(),
    };
    let bytes = params_bytes(&params).map_err(FederationError::Failed)?;
    Ok(Draft {
        kind: UpdateKind::Statistics,
        file: STATISTICS_FILE,
        bytes,
        decls,
        pre,
        based_on: fed.sha256.clone(),
        samples: rows as u64,
        epochs: 0,
        metrics: [None; 4],
        train_seconds: started.elapsed().as_secs_f64(),
    })
}

/// Rounds 1 and on: train from the verified global model.
fn weights(fed: &Federation, o: &SiteOptions) -> Result<Draft, FederationError> {
    let global = received_global(fed, o)?;
    let started = Instant::now();
    let (fit, rows) = airlock_trainer::site_round(
        airlock_trainer::SiteTraining {
            spec: &fed.pipeline,
            pipeline: &fed.pipeline_path,
            data: &o.data,
            preprocess: &global.preprocess,
            global: global.params.clone(),
            epochs: fed.spec.epochs_per_round as usize,
            seed: fed.site_seed(&o.site, o.round),
            proximal_mu: fed.proximal_mu(),
        },
        &mut (),
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    enough_rows(fed, o, rows)?;
    let last = fit.epochs.last().copied();
    let bytes = params_bytes(&fit.params).map_err(FederationError::Failed)?;
    Ok(Draft {
        kind: UpdateKind::Weights,
        file: UPDATE_FILE,
        bytes,
        decls: fed.description.trained(),
        pre: global.preprocess,
        based_on: global.envelope_sha256,
        samples: rows as u64,
        epochs: fed.spec.epochs_per_round,
        metrics: [
            last.map(|e| e.train_loss),
            last.map(|e| e.validation_loss),
            last.and_then(|e| e.validation_accuracy),
            last.and_then(|e| e.train_accuracy),
        ],
        train_seconds,
    })
}

fn enough_rows(fed: &Federation, o: &SiteOptions, rows: usize) -> Result<(), FederationError> {
    if rows < fed.spec.min_site_rows as usize {
        return Err(FederationError::Refused {
            site: o.site.clone(),
            round: o.round,
            why: format!(
                "{rows} training rows; the federation needs at least {} (min_site_rows) before a site's statistics or weights may leave",
                fed.spec.min_site_rows
            ),
        });
    }
    Ok(())
}

/// Write the update and its statement into a new folder `out`, staged and renamed.
fn write_update(
    out: &Path,
    file: &str,
    bytes: &[u8],
    envelope: &[u8],
) -> Result<(), FederationError> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| FederationError::io("create", &parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(".airlock-update-")
        .tempdir_in(&parent)
        .map_err(|e| FederationError::io("create a staging folder in", &parent, e))?;
    write_synced(&staging.path().join(file), bytes)?;
    write_synced(&staging.path().join(UPDATE_STATEMENT_FILE), envelope)?;
    let staged = staging.keep();
    std::fs::rename(&staged, out).map_err(|e| FederationError::io("rename into", out, e))
}

/// The plain-FedAvg baseline of `make bench` (`airlock federate train-plain`): the same
/// local training as [`site_round`], from a global model and standardization given as
/// files that nothing verifies, with no leak layers and no signature. What it writes is
/// never accepted by the aggregator (it has no statement); it exists to measure what
/// airlock's checks cost.
pub fn train_plain(
    o: &SiteOptions,
    global: &Path,
    preprocess: &Path,
) -> Result<SiteOutcome, FederationError> {
    let fed = Federation::load(&o.federation)?;
    let read = |p: &Path| std::fs::read(p).map_err(|e| FederationError::io("read", p, e));
    let params = crate::rounds::read_params(
        &fed.description.trained(),
        &read(global)?,
        "the global model",
    )
    .map_err(FederationError::Failed)?;
    let pre: Preprocess = airlock_schemas::strict_json::from_slice(&read(preprocess)?)
        .map_err(|e| FederationError::Failed(e.to_string()))?;
    let started = Instant::now();
    let (fit, rows) = airlock_trainer::site_round(
        airlock_trainer::SiteTraining {
            spec: &fed.pipeline,
            pipeline: &fed.pipeline_path,
            data: &o.data,
            preprocess: &pre,
            global: params,
            epochs: fed.spec.epochs_per_round as usize,
            seed: fed.site_seed(&o.site, o.round),
            proximal_mu: fed.proximal_mu(),
        },
        &mut (),
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    let bytes = params_bytes(&fit.params).map_err(FederationError::Failed)?;
    write_synced(&o.out, &bytes)?;
    let last = fit.epochs.last().copied();
    Ok(SiteOutcome {
        site: o.site.clone(),
        round: o.round,
        file: UPDATE_FILE.to_owned(),
        sha256: sha256_hex(&bytes),
        samples: rows as u64,
        train_seconds,
        check_seconds: 0.0,
        sign_seconds: 0.0,
        validation_loss: last.map(|e| e.validation_loss),
        validation_accuracy: last.and_then(|e| e.validation_accuracy),
    })
}
