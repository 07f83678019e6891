//! The federation's global model as a run directory (`airlock federate finalize`): after
//! the last signed round, the releasing site writes a run whose record names the
//! federation, its rounds and what each site contributed; `airlock package` then checks it
//! against that site's data like any other run.

use std::path::PathBuf;

use airlock_schemas::{EpochMetrics, FederationRecord, SiteContribution};
use airlock_trainer::{FederatedRun, RunSummary, TrainOptions, write_federated_run};

use crate::rounds::{read_round, verify_chain};
use crate::{Federation, FederationError};

/// What `airlock federate finalize` is given.
#[derive(Debug, Clone)]
pub struct FinalizeOptions {
    /// The federation file.
    pub federation: PathBuf,
    /// The aggregator's state folder (or a copy of its signed rounds).
    pub state: PathBuf,
    /// The releasing site's data: the run's splits and metrics, and what the packager
    /// checks against.
    pub data: PathBuf,
    /// The run directory to write.
    pub out: PathBuf,
    /// Draw progress on a terminal.
    pub progress: bool,
}

/// Write the global model of the federation's last round as a run directory.
pub fn finalize(o: &FinalizeOptions) -> Result<RunSummary, FederationError> {
    let fed = Federation::load(&o.federation)?;
    let last = verify_chain(&fed, &o.state)?.ok_or_else(|| FederationError::Invalid {
        path: o.state.clone(),
        message: "no round is signed yet".to_owned(),
    })?;
    if last.round != fed.spec.rounds {
        return Err(FederationError::Invalid {
            path: o.state.clone(),
            message: format!(
                "the federation has signed {} of its {} rounds",
                last.round, fed.spec.rounds
            ),
        });
    }
    let mut epochs = Vec::new();
    let mut sites: Vec<SiteContribution> = fed
        .spec
        .sites
        .iter()
        .map(|s| SiteContribution {
            site: s.name.clone(),
            key_id: s.key_id.clone(),
            region: s.region.clone(),
            rounds_accepted: 0,
            rounds_missing: 0,
            samples: 0,
        })
        .collect();
    for round in 1..=last.round {
        let dir = o.state.join("rounds").join(format!("{round:06}"));
        let r = read_round(&fed, &dir, round).map_err(|why| FederationError::Invalid {
            path: dir.clone(),
            message: why,
        })?;
        let accepted = &r.predicate.accepted;
        let total: f64 = accepted.iter().map(|c| c.samples as f64).sum();
        let mean = |f: &dyn Fn(&airlock_schemas::Contribution) -> Option<f64>| -> Option<f64> {
            accepted
                .iter()
                .map(|c| f(c).map(|v| v * c.samples as f64 / total))
                .sum::<Option<f64>>()
        };
        epochs.push(EpochMetrics {
            epoch: round as usize,
            train_loss: mean(&|c| c.train_loss).unwrap_or(f64::NAN),
            train_accuracy: mean(&|c| c.train_accuracy),
            validation_loss: mean(&|c| c.validation_loss).unwrap_or(f64::NAN),
            validation_accuracy: mean(&|c| c.validation_accuracy),
            seconds: 0.0,
        });
        for s in &mut sites {
            match accepted.iter().find(|c| c.site == s.site) {
                Some(c) => {
                    s.rounds_accepted += 1;
                    s.samples = c.samples;
                }
                None => s.rounds_missing += 1,
            }
        }
    }
    let record = FederationRecord {
        name: fed.spec.name.clone(),
        federation_sha256: fed.sha256.clone(),
        rounds: last.round,
        strategy: fed.spec.strategy.name().to_owned(),
        final_round_sha256: last.envelope_sha256.clone(),
        sites,
    };
    let opts = TrainOptions {
        pipeline: fed.pipeline_path.clone(),
        out: Some(o.out.clone()),
        device: None,
        cpu_backend: None,
        progress: o.progress,
        hosts: None,
    };
    Ok(write_federated_run(
        &opts,
        FederatedRun {
            data: o.data.clone(),
            preprocess: last.preprocess,
            params: last.params,
            epochs,
            record,
        },
    )?)
}
