//! L4 reproducibility: train again from the run's pipeline snapshot, seed and data, and
//! require the checkpoint the run holds, byte for byte.
//!
//! This is what defeats weights edited after training: an edit that no output depends on
//! (a dead unit's incoming weights) passes the fold check and every attack on the
//! model's answers, but not a replay. burn's CPU backends are deterministic (the same
//! inputs give the same bits), so any difference is an edit, a different program or
//! different data, and the release is refused. CUDA kernels are not deterministic: a
//! CUDA run is replayed on the same device and the largest difference is reported, and
//! the release is marked as not reproducible.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use airlock_infer::{Backend, DeviceSpec};
use airlock_model::Run;
use airlock_safetensors::{self as st, Dtype, SafetensorsFile};
use airlock_schemas::{EpochMetrics, PrivacyAudit, PrivacyGuarantee};
use airlock_trainer::{
    TrainingSetup, checkpoint_of, fit_with, privacy_guarantee, training_setup_with,
};
use serde_json::json;

use crate::package::LayerBuilder;

/// What L4 found, for the report and the other checks that train (the setup is reused).
pub(crate) struct Replay {
    /// The layer.
    pub(crate) layer: LayerBuilder,
    /// The training set up again, when the data could be read.
    pub(crate) setup: Option<TrainingSetup>,
    /// A DP-SGD run's guarantee, recomputed from the pipeline and the data (`None`
    /// without `[privacy]`, or when it could not be: then L4 holds an error).
    pub(crate) privacy: Option<PrivacyGuarantee>,
}

/// The backend and devices the run recorded.
pub(crate) fn recorded_backend(run: &Run) -> Result<(Backend, Vec<DeviceSpec>), String> {
    let b = &run.record.backend;
    let backend = match b.name.as_str() {
        "flex" => Backend::Flex,
        "ndarray" => Backend::NdArray,
        "cuda" => Backend::Cuda,
        other => {
            return Err(format!(
                "the run's backend {other:?} is not one airlock trains on"
            ));
        }
    };
    let names = if b.devices.is_empty() {
        std::slice::from_ref(&b.device)
    } else {
        &b.devices[..]
    };
    let devices = names
        .iter()
        .map(|d| d.parse::<DeviceSpec>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((backend, devices))
}

/// Set the run's training up again from its pipeline and data (never from its
/// preprocessing or checkpoint).
pub(crate) fn setup(run: &Run) -> Result<TrainingSetup, String> {
    let source = airlock_model::check_recorded_files(&run.record.dataset.files)?;
    // A federation's sites all trained with its pooled standardization, which no one
    // site's split gives: the data is set up with the run's, and the run is never replayed.
    // A burst's job trained on the export with the standardization of its sample: the
    // same holds.
    let federated = run.record.federation.is_some() || run.record.burst.is_some();
    if federated && run.spec.leak.reproduce {
        return Err(
            "a federated or burst run cannot be replayed on-prem; its pipeline must set [leak] reproduce = false"
                .to_owned(),
        );
    }
    let setup = training_setup_with(
        &run.spec,
        &source,
        Path::new(&run.record.pipeline.path),
        run.dp_secret,
        federated.then_some(&run.pre),
    )
    .map_err(|e| e.to_string())?;
    if federated {
        return Ok(setup);
    }
    // Compared as the run's file was read: through JSON (the parser's last bit of a
    // float is not always the one written).
    let replayed: Option<airlock_model::Preprocess> = serde_json::to_string(&setup.preprocess)
        .ok()
        .and_then(|t| airlock_schemas::strict_json::from_slice(t.as_bytes()).ok());
    if replayed.as_ref() != Some(&run.pre) {
        return Err(
            "the run's preprocessing is not what its training split gives (preprocess.json was edited, or the data changed)"
                .to_owned(),
        );
    }
    Ok(setup)
}

/// The DP-SGD guarantee the pipeline gives this data, which the record must state
/// exactly (its numbers are what the statement signs).
fn check_privacy(run: &Run, s: &TrainingSetup, l4: &mut LayerBuilder) -> Option<PrivacyGuarantee> {
    let computed = match privacy_guarantee(&run.spec, &s.input) {
        Ok(p) => p?,
        Err(e) => {
            l4.error(e.to_string());
            return None;
        }
    };
    l4.param("privacy", json!("dp-sgd"));
    l4.count("epsilon", computed.epsilon);
    l4.count("delta", computed.delta);
    // Compared as the record was read: through JSON.
    let as_read: Option<PrivacyGuarantee> = serde_json::to_string(&computed)
        .ok()
        .and_then(|t| airlock_schemas::strict_json::from_slice(t.as_bytes()).ok());
    if run.record.privacy.is_none() || run.record.privacy != as_read {
        l4.find(
            "privacy-claim-differs",
            "training-record.json: privacy (not what the pipeline's [privacy] gives this data)"
                .to_owned(),
            None,
            None,
        );
    }
    Some(computed)
}

/// The one-run audit's verdict: its lower bound on ε above the claimed ε is proof that
/// training was not the DP-SGD it claims (noise or clipping off, a budget misreported).
pub(crate) fn audit_verdict(l4: &mut LayerBuilder, p: &mut PrivacyGuarantee, a: PrivacyAudit) {
    l4.count("audit_canaries", a.canaries);
    l4.count("audit_guesses", a.guesses);
    l4.count("audit_correct", a.correct);
    l4.count("audit_epsilon_lower_bound", a.epsilon_lower_bound);
    if a.epsilon_lower_bound > p.epsilon {
        l4.find(
            "privacy-audit-refutes-epsilon",
            format!(
                "one-run audit: {} of {} guesses right proves ε ≥ {:.3}, above the claimed {:.3}",
                a.correct, a.guesses, a.epsilon_lower_bound, p.epsilon
            ),
            None,
            None,
        );
    }
    p.audit = Some(a);
}

/// L4 on `checkpoint` (the run's, parsed; `None` when L0 could not parse it).
pub(crate) fn l4_reproduce(
    run: &Run,
    checkpoint: Option<&SafetensorsFile<'_>>,
    step: &dyn Fn(&str),
) -> Replay {
    let mut l4 = LayerBuilder::new("L4", "reproducibility");
    let reproduce = run.spec.leak.reproduce;
    l4.param("reproduce", json!(reproduce));
    if let Some(f) = &run.record.federation {
        // The run names a federation: its standardization is the federation's pooled one,
        // which no one site's data gives, so it is not recomputed here (and, like its
        // weights, not replayed). The officers see the claim; nothing here vouches for it.
        l4.param("federation", json!(f.name));
        l4.param("federation_final_round_sha256", json!(f.final_round_sha256));
        l4.param("preprocessing_recomputed", json!(false));
    }
    if let Some(b) = &run.record.burst {
        // Trained in the cloud on the approved export, by the job named; its artifact was
        // verified at sync-back against the digest the job recorded. Not replayed here.
        l4.param("burst", json!(b.burst));
        l4.param("burst_job_arn", json!(b.job.arn));
        l4.param(
            "burst_export_statement_sha256",
            json!(b.export_statement_sha256),
        );
        l4.param("preprocessing_recomputed", json!(false));
    }
    let setup = match setup(run) {
        Ok(s) => Some(s),
        Err(e) => {
            l4.error(e);
            None
        }
    };
    let mut privacy = setup.as_ref().and_then(|s| check_privacy(run, s, &mut l4));
    if !reproduce {
        if run.spec.privacy.is_some() {
            // The guarantee holds for what DP-SGD trains; only the replay shows that it
            // trained these weights.
            l4.error(
                "a differentially private release needs the replay: set leak.reproduce = true"
                    .to_owned(),
            );
        }
        l4.count("reproduced", false);
    } else if let (Some(s), Some(ckpt)) = (&setup, checkpoint) {
        if let Err(e) = replay(run, s, ckpt, &mut l4, privacy.as_mut(), step) {
            l4.error(e);
        }
    } else {
        l4.error("the run's checkpoint or data could not be read".to_owned());
    }
    Replay {
        layer: l4,
        setup,
        privacy,
    }
}

/// Train `s` again on the run's backend and compare with `ckpt`: counts and findings into
/// `l4`, the audit into `privacy`; `Err` when the replay could not run.
fn replay(
    run: &Run,
    s: &TrainingSetup,
    ckpt: &SafetensorsFile<'_>,
    l4: &mut LayerBuilder,
    privacy: Option<&mut PrivacyGuarantee>,
    step: &dyn Fn(&str),
) -> Result<(), String> {
    let (backend, devices) = recorded_backend(run)?;
    let deterministic = backend != Backend::Cuda;
    l4.param("backend", json!(backend.name()));
    l4.param("deterministic", json!(deterministic));
    step(&format!(
        "L4 reproducibility: training again from the pipeline snapshot, seed and data on {backend} ({} epochs; the run trained for {:.1} s)",
        s.input.epochs,
        run.record.epochs.iter().map(|e| e.seconds).sum::<f64>()
    ));
    let started = Instant::now();
    let fitted = fit_with(backend, &devices, &s.input, &mut ())
        .map_err(|e| format!("the replay could not train: {e}"))?;
    // Seconds go to the progress output, never into the report: the report is signed and
    // the same run must give the same bundle.
    step(&format!(
        "L4 reproducibility: the replay trained in {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    // The one-run audit, on the weights the replay trained (identical to the run's, or
    // the release is refused below).
    let audit = s
        .canaries
        .as_ref()
        .zip(privacy.as_deref())
        .map(|(c, p)| airlock_trainer::audit(&s.input.description, &fitted.params, c, p.delta));
    let epochs_differ = !same_epochs(&fitted.epochs, &run.record.epochs);
    let bytes = checkpoint_of(fitted, expected_metadata(run))
        .to_bytes()
        .map_err(|e| format!("the replayed checkpoint could not be written: {e}"))?;
    let replayed =
        st::parse(&bytes).map_err(|e| format!("the replayed checkpoint does not parse: {e}"))?;
    // The same tensors, byte for byte, and the same metadata (the header's key order is
    // the writer's hash map's, so the file's bytes are not compared).
    let (largest, differing) = compare(ckpt, &replayed);
    if epochs_differ && deterministic {
        // The model card copies these numbers: they must be what training computed.
        l4.find(
            "record-differs-from-replay",
            "training-record.json: epochs (losses and accuracies are not the replay's)".to_owned(),
            None,
            None,
        );
    }
    let same = differing.is_empty() && ckpt.metadata == replayed.metadata;
    l4.count("identical", same);
    l4.count("reproduced", same);
    if same {
        l4.count("largest_difference", 0.0);
        if let (Some(a), Some(p)) = (audit, privacy) {
            audit_verdict(l4, p, a);
        }
        return Ok(());
    }
    l4.count("largest_difference", finite_or_word(largest));
    l4.count("tensors_differing", differing.len() as u64);
    if !deterministic {
        if run.spec.privacy.is_some() {
            return Err(
                "the replay on CUDA is not bit-exact, and a differentially private release is signed only for weights a replay reproduces: train on the CPU"
                    .to_owned(),
            );
        }
        return Ok(());
    }
    // Byte for byte or refused: different metadata is named as well as a different tensor
    // (added, renamed, reshaped or with other values).
    if differing.is_empty() {
        l4.find(
            "checkpoint-differs-from-replay",
            "checkpoint.safetensors: metadata".to_owned(),
            None,
            None,
        );
    }
    for (name, diff) in differing {
        l4.find(
            "weights-differ-from-replay",
            format!("checkpoint.safetensors: {name} (largest difference {diff:.3e})"),
            None,
            None,
        );
    }
    Ok(())
}

/// The checkpoint metadata `airlock train` writes for this run: its pipeline's epochs,
/// seed, features and model, its record's backend and finish time (the writer adds the
/// format and the optimizer's name and steps).
fn expected_metadata(run: &Run) -> HashMap<String, String> {
    let spec = &run.spec;
    [
        ("epochs", spec.training.epochs.to_string()),
        ("seed", spec.training.seed.to_string()),
        ("backend", run.record.backend.name.clone()),
        ("features", spec.data.features.join(",")),
        ("model", spec.model.kind().to_owned()),
        ("finished_at", run.record.finished_at.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Whether the replay's per-epoch metrics are the record's (all but the seconds), as the
/// record was read: through JSON.
fn same_epochs(replayed: &[EpochMetrics], recorded: &[EpochMetrics]) -> bool {
    let as_read: Option<Vec<EpochMetrics>> = serde_json::to_string(replayed)
        .ok()
        .and_then(|t| airlock_schemas::strict_json::from_slice(t.as_bytes()).ok());
    as_read.is_some_and(|r| {
        r.len() == recorded.len()
            && r.iter().zip(recorded).all(|(a, b)| {
                EpochMetrics {
                    seconds: b.seconds,
                    ..*a
                } == *b
            })
    })
}

/// The largest absolute difference between same-named f32 tensors (infinite where a
/// tensor is missing, reshaped or of another type), and the tensors that differ.
fn compare(run: &SafetensorsFile<'_>, replayed: &SafetensorsFile<'_>) -> (f64, Vec<(String, f64)>) {
    let mut largest = 0.0f64;
    let mut differing = Vec::new();
    let mut note = |name: &str, d: f64| {
        largest = largest.max(d);
        differing.push((name.to_owned(), d));
    };
    for t in &run.tensors {
        let a = run.data(t);
        let Some(r) = replayed.tensor(&t.name) else {
            note(&t.name, f64::INFINITY);
            continue;
        };
        let b = replayed.data(r);
        if a == b && t.shape == r.shape && t.dtype == r.dtype {
            continue;
        }
        if t.shape != r.shape || t.dtype != Dtype::F32 || r.dtype != Dtype::F32 {
            note(&t.name, f64::INFINITY);
            continue;
        }
        let d = a
            .chunks_exact(4)
            .zip(b.chunks_exact(4))
            .map(|(x, y)| {
                let x = f32::from_le_bytes([x[0], x[1], x[2], x[3]]);
                let y = f32::from_le_bytes([y[0], y[1], y[2], y[3]]);
                if x.to_bits() == y.to_bits() {
                    0.0
                } else {
                    (f64::from(x) - f64::from(y)).abs()
                }
            })
            .fold(
                0.0f64,
                |m, d| if d.is_nan() { f64::INFINITY } else { m.max(d) },
            );
        note(&t.name, d);
    }
    for r in &replayed.tensors {
        if run.tensor(&r.name).is_none() {
            note(&r.name, f64::INFINITY);
        }
    }
    (largest, differing)
}

/// A difference for the report: the number, or `"incomparable"` where a tensor is missing,
/// reshaped, of another type or NaN (JSON has no infinity).
fn finite_or_word(d: f64) -> serde_json::Value {
    if d.is_finite() {
        json!(d)
    } else {
        json!("incomparable")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_infer::Backend;
    use airlock_model::Description;
    use airlock_schemas::{MlpSpec, ModelSpec, PrivacyMechanism, TaskSpec, Verdict};
    use airlock_trainer::{Canaries, DpSgd, FitInput, audit};
    use rand::{Rng, SeedableRng};

    /// A binary task on 8 standardized features, with `canaries` appended as the trainer
    /// appends them.
    fn input(dp: DpSgd, canaries: &Canaries) -> FitInput {
        let model = ModelSpec::Mlp(MlpSpec {
            hidden: vec![128, 64],
            dropout: 0.0,
        });
        let description = Description::new(&model, &TaskSpec::Binary, 8).expect("description");
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let rows = 1000;
        let mut x: Vec<f32> = (0..rows * 8)
            .map(|_| r.random_range(-1.5f32..1.5))
            .collect();
        let mut y: Vec<f32> = (0..rows)
            .map(|i| f32::from(u8::from(x[i * 8] + x[i * 8 + 1] > 0.0)))
            .collect();
        let (x_val, y_val) = (x[..200 * 8].to_vec(), y[..200].to_vec());
        canaries.add_to(&mut x, &mut y, 8);
        FitInput {
            description,
            x_train: x,
            y_train: y,
            x_val,
            y_val,
            learning_rate: 0.01,
            weight_decay: 0.0,
            epochs: 100,
            batch_size: 250,
            seed: 3,
            dp: Some(dp),
            initial: None,
            proximal_mu: None,
            hosts: None,
        }
    }

    fn guarantee(epsilon: f64) -> PrivacyGuarantee {
        PrivacyGuarantee {
            mechanism: PrivacyMechanism::DpSgd,
            epsilon,
            delta: 1e-5,
            epsilon_per_epoch: vec![epsilon],
            noise_multiplier: 0.0,
            max_grad_norm: 1.0,
            sampling_rate: 0.1,
            steps: 200,
            noise_secret_sha256: "0".repeat(64),
            audit: None,
        }
    }

    #[test]
    fn broken_dp_is_refused_by_the_one_run_audit_and_real_dp_is_not() {
        let secret = [9u8; 32];
        let canaries = Canaries::draw(
            &Description::new(
                &ModelSpec::Mlp(MlpSpec {
                    hidden: vec![128, 64],
                    dropout: 0.0,
                }),
                &TaskSpec::Binary,
                8,
            )
            .expect("description"),
            1000,
            &secret,
        );
        let n = 1000 + canaries.included.iter().filter(|i| **i).count();
        let claimed = 1.0;
        let honest = DpSgd::calibrate(claimed, 1e-5, 1.0, 250, n, 100, secret).expect("calibrates");
        assert!(honest.noise_multiplier > 0.5, "{honest:?}");
        // Broken: the noise switched off, ε = 1 still claimed.
        let broken = DpSgd {
            noise_multiplier: 0.0,
            ..honest.clone()
        };
        let fit = |dp: DpSgd| {
            let input = input(dp, &canaries);
            let out = fit_with(
                Backend::Flex,
                &["cpu".parse().expect("cpu")],
                &input,
                &mut (),
            )
            .expect("trains");
            audit(&input.description, &out.params, &canaries, 1e-5)
        };
        let a = fit(broken);
        eprintln!("noise off: {a:?}");
        assert!(
            a.epsilon_lower_bound > claimed,
            "the audit sees the missing noise: {a:?}"
        );
        let mut l4 = LayerBuilder::new("L4", "reproducibility");
        let mut p = guarantee(claimed);
        audit_verdict(&mut l4, &mut p, a.clone());
        let layer = l4.finish();
        assert_eq!(layer.verdict, Verdict::Fail);
        assert_eq!(layer.findings[0].kind, "privacy-audit-refutes-epsilon");
        assert_eq!(p.audit, Some(a));

        let a = fit(honest);
        eprintln!("DP-SGD: {a:?}");
        assert!(
            a.epsilon_lower_bound <= claimed,
            "real DP-SGD passes its audit: {a:?}"
        );
        let mut l4 = LayerBuilder::new("L4", "reproducibility");
        audit_verdict(&mut l4, &mut guarantee(claimed), a);
        assert_eq!(l4.finish().verdict, Verdict::Pass);
    }
}
