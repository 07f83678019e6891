//! L3's second attack: RMIA (Zarifzadeh et al., ICML 2024) with reference models the
//! packager trains itself, offline (no reference model sees a target record).
//!
//! The rows the run never trained on are split in two: half A, with the validation split,
//! trains the reference models (the run's own pipeline, seeds varied); half B holds the
//! non-member targets and the population the scores are taken against. The members are as
//! many training rows, evenly spaced. Every model is asked the same question of every
//! record: the probability of its true label (`exp(−loss)`, a regression's loss on the
//! standardized scale).

use airlock_infer::{Backend, DeviceSpec, predict_outputs, to_net};
use airlock_leak::membership::{RMIA_OFFLINE_A, RmiaRecord, rmia_attack};
use airlock_model::{Description, Run};
use airlock_schemas::TaskSpec;
use airlock_trainer::{DpSgd, FitInput, TrainingSetup, fit_with};
use burn::backend::Flex;
use serde_json::json;

use crate::evaluate::Nets;
use crate::package::{Data, LayerBuilder};

/// The rows RMIA reads, as data row indices.
struct Rows {
    /// Trained the reference models (validation and half the holdout).
    reference_train: Vec<usize>,
    /// Sampled training rows.
    members: Vec<usize>,
    /// The other half of the holdout: non-member targets and the population.
    non_members: Vec<usize>,
}

impl Rows {
    fn new(setup: &TrainingSetup) -> Self {
        let [train, val, hold] = &setup.rows;
        let non_members: Vec<usize> = hold.iter().copied().skip(1).step_by(2).collect();
        let k = non_members.len().min(train.len());
        Self {
            reference_train: val.iter().chain(hold.iter().step_by(2)).copied().collect(),
            members: (0..k).map(|i| train[i * train.len() / k]).collect(),
            non_members,
        }
    }

    fn targets(&self) -> Vec<usize> {
        self.members
            .iter()
            .chain(&self.non_members)
            .copied()
            .collect()
    }
}

/// Gather rows `rows` of a row-major matrix of `width` columns.
fn gather(x: &[f32], width: usize, rows: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows.len() * width);
    for &r in rows {
        out.extend_from_slice(&x[r * width..(r + 1) * width]);
    }
    out
}

/// The labels of `rows` as the loss reads them: a regression's standardized.
fn labels(d: &Data, run: &Run, rows: &[usize]) -> Vec<f32> {
    let target = run.pre.target.as_ref();
    rows.iter()
        .map(|&r| match target {
            Some(t) => ((f64::from(d.labels[r]) - t.mean) / t.std) as f32,
            None => d.labels[r],
        })
        .collect()
}

/// RMIA on the released model, added to L3: its parameters, counts and findings.
#[allow(clippy::too_many_arguments)]
pub(crate) fn rmia(
    l3: &mut LayerBuilder,
    run: &Run,
    description: &Description,
    setup: &TrainingSetup,
    d: &Data,
    nets: &Nets,
    backend: (Backend, &[DeviceSpec]),
    step: &dyn Fn(&str),
) {
    let leak = &run.spec.leak;
    l3.param("rmia_reference_models", json!(leak.rmia_reference_models));
    l3.param("rmia_offline_a", json!(RMIA_OFFLINE_A));
    l3.param("max_rmia_auc", json!(leak.max_rmia_auc));
    l3.param(
        "max_rmia_tpr_at_1pct_fpr",
        json!(leak.max_rmia_tpr_at_1pct_fpr),
    );
    let rows = Rows::new(setup);
    if rows.members.is_empty() || rows.non_members.is_empty() || rows.reference_train.is_empty() {
        l3.error("RMIA needs training, validation and holdout rows".into());
        return;
    }
    let targets = rows.targets();
    let Some(target_p) = target_probabilities(run, description, d, nets, &targets) else {
        l3.error("the released model's outputs are missing rows".into());
        return;
    };
    let started = std::time::Instant::now();
    let reference_p =
        match reference_probabilities(run, description, setup, d, &rows, backend, step) {
            Ok(p) => p,
            Err(e) => {
                l3.error(format!("RMIA's reference model could not train: {e}"));
                return;
            }
        };
    step(&format!(
        "L3 RMIA: {} reference models trained in {:.1} s",
        leak.rmia_reference_models,
        started.elapsed().as_secs_f64()
    ));
    let records: Vec<RmiaRecord> = target_p
        .iter()
        .zip(&reference_p)
        .map(|(&target, &reference)| RmiaRecord { target, reference })
        .collect();
    let (members, non_members) = records.split_at(rows.members.len());
    match rmia_attack(members, non_members, RMIA_OFFLINE_A) {
        Some(r) => judge(l3, run, &r),
        None => l3.error("RMIA had no members or non-members to score".into()),
    }
}

/// `Pr(x | θ)` of the released model (raw inputs) for each of `targets`.
fn target_probabilities(
    run: &Run,
    description: &Description,
    d: &Data,
    nets: &Nets,
    targets: &[usize],
) -> Option<Vec<f64>> {
    let out = nets.released_outputs(&d.features, targets);
    let out = out.gather(targets.iter().copied())?;
    let raw_labels: Vec<f32> = targets.iter().map(|&r| d.labels[r]).collect();
    // A regression's loss on the standardized scale, as the references' is.
    let scale = match (&description.task, &run.pre.target) {
        (TaskSpec::Regression, Some(t)) => t.std * t.std,
        _ => 1.0,
    };
    Some(
        nets.losses(&out, &raw_labels)
            .into_iter()
            .map(|l| (-l / scale).exp())
            .collect(),
    )
}

/// The mean `Pr(x | θ_ref)` over the reference models, for each target.
fn reference_probabilities(
    run: &Run,
    description: &Description,
    setup: &TrainingSetup,
    d: &Data,
    rows: &Rows,
    backend: (Backend, &[DeviceSpec]),
    step: &dyn Fn(&str),
) -> Result<Vec<f64>, airlock_trainer::TrainError> {
    let n_refs = run.spec.leak.rmia_reference_models;
    let width = description.input_len();
    let targets = rows.targets();
    let x_ref = gather(&d.standardized, width, &rows.reference_train);
    let y_ref = labels(d, run, &rows.reference_train);
    let x_targets = gather(&d.standardized, width, &targets);
    let y_targets = labels(d, run, &targets);
    let device = Default::default();
    let mut reference_p = vec![0.0f64; targets.len()];
    for k in 0..n_refs {
        step(&format!(
            "L3 RMIA: reference model {} of {n_refs} on {} rows the run never trained on",
            k + 1,
            rows.reference_train.len()
        ));
        let input = FitInput {
            description: description.clone(),
            x_train: x_ref.clone(),
            y_train: y_ref.clone(),
            x_val: gather(&d.standardized, width, &rows.non_members),
            y_val: labels(d, run, &rows.non_members),
            learning_rate: setup.input.learning_rate,
            weight_decay: setup.input.weight_decay,
            epochs: setup.input.epochs,
            batch_size: setup.input.batch_size,
            seed: setup
                .input
                .seed
                .wrapping_add(0x5eed_0000 + u64::from(k) + 1),
            dp: reference_dp(setup, y_ref.len(), k),
            initial: None,
            proximal_mu: None,
            hosts: None,
        };
        let fitted = fit_with(backend.0, backend.1, &input, &mut ())?;
        let net = to_net::<Flex>(description, &fitted.params, false, &device);
        let out = predict_outputs(&net, &x_targets, width, &device);
        for (acc, l) in reference_p.iter_mut().zip(airlock_model::row_losses(
            &description.task,
            &out,
            &y_targets,
        )) {
            *acc += (-l).exp() / f64::from(n_refs);
        }
    }
    Ok(reference_p)
}

/// A DP run's references train as it did (its noise multiplier and clipping, its batch
/// size over their `rows`), on noise of their own.
fn reference_dp(setup: &TrainingSetup, rows: usize, k: u32) -> Option<DpSgd> {
    setup.input.dp.as_ref().map(|dp| {
        let q = (setup.input.batch_size as f64 / rows as f64).min(1.0);
        let mut secret = dp.secret;
        secret[0] ^= 0x80 | (k as u8);
        DpSgd {
            noise_multiplier: dp.noise_multiplier,
            max_grad_norm: dp.max_grad_norm,
            sampling_rate: q,
            steps_per_epoch: ((1.0 / q).round() as usize).max(1),
            secret,
        }
    })
}

/// RMIA's counts, and a finding for each limit it exceeds.
fn judge(l3: &mut LayerBuilder, run: &Run, r: &airlock_leak::membership::RmiaResult) {
    let leak = &run.spec.leak;
    l3.count("rmia_members", r.members as u64);
    l3.count("rmia_non_members", r.non_members as u64);
    l3.count("rmia_auc", r.auc);
    l3.count("rmia_tpr_at_1pct_fpr", r.tpr_at_1pct_fpr);
    l3.count("rmia_tpr_at_0_1pct_fpr", r.tpr_at_0_1pct_fpr);
    l3.count("rmia_advantage", r.advantage);
    if r.auc > leak.max_rmia_auc {
        l3.find(
            "rmia-auc-above-threshold",
            format!("RMIA AUC {:.4} > {}", r.auc, leak.max_rmia_auc),
            None,
            None,
        );
    }
    if r.tpr_at_1pct_fpr > leak.max_rmia_tpr_at_1pct_fpr {
        l3.find(
            "rmia-tpr-above-threshold",
            format!(
                "RMIA finds {:.1} % of members at 1 % false positives > {:.1} %",
                100.0 * r.tpr_at_1pct_fpr,
                100.0 * leak.max_rmia_tpr_at_1pct_fpr
            ),
            None,
            None,
        );
    }
}
