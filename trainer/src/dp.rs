//! DP-SGD (Abadi et al., "Deep Learning with Differential Privacy", CCS 2016), as Opacus
//! runs it: every row joins a step's batch independently with probability `q` (Poisson
//! sampling, which the accountant's amplification assumes), each example's gradient is
//! clipped to `max_grad_norm`, Gaussian noise of `σ · max_grad_norm` is added to the sum,
//! and the sum is divided by the expected batch size `q · n` before the optimizer step
//! (Adam here; what it does to the noisy gradient is post-processing).
//!
//! Per-example gradient norms without per-example gradients ("ghost clipping", Goodfellow
//! 2015; Li et al. 2022): a dense layer's gradient for example `i` is `aᵢ δᵢᵀ` (its input
//! times the loss's gradient at its output), so its squared norm is
//! `‖aᵢ‖² · ‖δᵢ‖²`, plus `‖δᵢ‖²` for the bias. One backward pass with a zero "probe" added
//! to each layer's output gives every `δᵢ`; the clipped sum is then `Σᵢ cᵢ aᵢ δᵢᵀ`, one
//! matrix product per layer. MLPs only: a convolution's per-example norm does not factor so.
//!
//! The sampling and the noise come from a ChaCha20 stream seeded by a 256-bit secret drawn
//! from the operating system for each run and kept in the run directory: DP holds only if
//! the noise is unknown to whoever sees the model, and the run's seed is in the signed
//! provenance; the secret stays on the premises, where the packager's replay reads it to
//! prove the weights.

use airlock_infer::Net;
use airlock_model::privacy;
use airlock_schemas::EpochMetrics;
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::backend::AutodiffBackend;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};
use std::time::Instant;

use crate::TrainError;
use crate::adam::TrainBackend;
use crate::training::{
    FitInput, FitOutput, Progress, STREAM_DROPOUT, adam, adam_moments, dropout_mask, gather,
    scalar, task_loss_and_correct,
};
use airlock_model::rng;

/// DP-SGD's settings for one fit.
#[derive(Clone, PartialEq)]
pub struct DpSgd {
    /// Noise standard deviation over the clipping norm (σ).
    pub noise_multiplier: f64,
    /// Per-example gradient clipping norm (C).
    pub max_grad_norm: f64,
    /// Probability that a row joins a step's batch (q).
    pub sampling_rate: f64,
    /// Steps per epoch (`round(1 / q)`).
    pub steps_per_epoch: usize,
    /// The secret that seeds the sampling and the noise.
    pub secret: [u8; 32],
}

impl std::fmt::Debug for DpSgd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.debug_struct("DpSgd")
            .field("noise_multiplier", &self.noise_multiplier)
            .field("max_grad_norm", &self.max_grad_norm)
            .field("sampling_rate", &self.sampling_rate)
            .field("steps_per_epoch", &self.steps_per_epoch)
            .finish_non_exhaustive()
    }
}

impl DpSgd {
    /// Calibrate for `rows` training rows, batches of `batch_size` expected rows and
    /// `epochs` epochs: the smallest noise multiplier that spends at most
    /// `target_epsilon` at `delta`.
    pub fn calibrate(
        target_epsilon: f64,
        delta: f64,
        max_grad_norm: f64,
        batch_size: usize,
        rows: usize,
        epochs: usize,
        secret: [u8; 32],
    ) -> Result<Self, String> {
        if rows == 0 {
            return Err("DP-SGD needs training rows".into());
        }
        if delta >= 1.0 / rows as f64 {
            return Err(format!(
                "privacy.delta = {delta} must be below 1 / training rows = {:.3e}: a larger δ allows releasing a whole row",
                1.0 / rows as f64
            ));
        }
        let q = (batch_size as f64 / rows as f64).min(1.0);
        let steps_per_epoch = ((1.0 / q).round() as usize).max(1);
        let steps = (steps_per_epoch * epochs) as u64;
        let sigma = privacy::noise_multiplier(target_epsilon, delta, q, steps)
            .map_err(|e| e.to_string())?;
        Ok(Self {
            noise_multiplier: sigma,
            max_grad_norm,
            sampling_rate: q,
            steps_per_epoch,
            secret,
        })
    }

    /// ε spent after each of `epochs` epochs, at `delta`.
    pub fn epsilon_per_epoch(&self, epochs: usize, delta: f64) -> Result<Vec<f64>, String> {
        (1..=epochs)
            .map(|e| {
                privacy::epsilon(
                    self.sampling_rate,
                    self.noise_multiplier,
                    (e * self.steps_per_epoch) as u64,
                    delta,
                )
                .map(|(eps, _)| eps)
                .map_err(|e| e.to_string())
            })
            .collect()
    }

    /// A stream of its own for `purpose`, from the secret.
    fn stream(&self, purpose: &[u8]) -> ChaCha20Rng {
        let mut h = Sha256::new();
        h.update(b"airlock dp-sgd ");
        h.update(purpose);
        h.update(self.secret);
        ChaCha20Rng::from_seed(h.finalize().into())
    }
}

/// Standard normal samples (Box–Muller on the stream's 53-bit uniforms).
fn gaussian(rng: &mut ChaCha20Rng, n: usize, sd: f64) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        // u1 in (0, 1]: never the log of zero.
        let u1 = 1.0 - rng.random::<f64>();
        let u2 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt() * sd;
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// The MLP's forward pass with a zero probe added to each dense layer's output: returns
/// the outputs, each layer's input and the probes (whose gradients are the `δᵢ`).
fn forward_probed<B: AutodiffBackend>(
    model: &Net<B>,
    x: Tensor<B, 2>,
    masks: Option<Vec<Tensor<B, 2>>>,
    device: &B::Device,
) -> (Tensor<B, 2>, Vec<Tensor<B, 2>>, Vec<Tensor<B, 2>>) {
    let [batch, _] = x.dims();
    let last = model.dense.len() - 1;
    let mut masks = masks.map(Vec::into_iter);
    let (mut inputs, mut probes) = (Vec::new(), Vec::new());
    let mut h = x;
    for (i, layer) in model.dense.iter().enumerate() {
        inputs.push(h.clone());
        let [_, out] = layer.weight.dims();
        let probe = Tensor::<B, 2>::zeros([batch, out], device).require_grad();
        h = layer.forward(h) + probe.clone();
        probes.push(probe);
        if i != last {
            h = relu(h);
            if let Some(m) = masks.as_mut().and_then(Iterator::next) {
                h = h * m;
            }
        }
    }
    (h, inputs, probes)
}

/// Per-layer sums of the clipped per-example gradients of one Poisson batch (weights
/// `[in, out]`, biases `[out]`), with the batch's mean loss and its count of right answers.
type LayerSums<B> = Vec<(Tensor<B, 2>, Tensor<B, 1>)>;

fn clipped_sums<B: TrainBackend>(
    model: &Net<B>,
    x: Tensor<B, 2>,
    masks: Option<Vec<Tensor<B, 2>>>,
    yb: &[f32],
    task: &airlock_schemas::TaskSpec,
    clip: f64,
    device: &B::Device,
) -> (LayerSums<B::InnerBackend>, f64, f64) {
    let bs = yb.len();
    let (out, inputs, probes) = forward_probed(model, x, masks, device);
    let (loss, correct) = task_loss_and_correct::<B>(task, out, yb, device);
    let (mean_loss, right) = (scalar(&loss.clone().inner()), scalar(&correct));
    // The mean loss's gradients are the per-example ones over bs.
    let grads = loss.mul_scalar(bs as f64).backward();
    let deltas: Vec<Tensor<B::InnerBackend, 2>> = probes
        .iter()
        .map(|p| p.grad(&grads).expect("every probe is on the loss's path"))
        .collect();
    let inputs: Vec<Tensor<B::InnerBackend, 2>> = inputs.into_iter().map(|a| a.inner()).collect();
    // ‖gᵢ‖² = Σ_layers ‖δᵢ‖² (‖aᵢ‖² + 1): the weight's a δᵀ and the bias's δ.
    let mut norm2 = Tensor::<B::InnerBackend, 1>::zeros([bs], device);
    for (delta, a) in deltas.iter().zip(&inputs) {
        let dd = delta.clone().powf_scalar(2.0).sum_dim(1).reshape([bs]);
        let aa = a.clone().powf_scalar(2.0).sum_dim(1).reshape([bs]);
        norm2 = norm2 + dd * aa.add_scalar(1.0);
    }
    // cᵢ = min(1, C / ‖gᵢ‖).
    let factor = norm2
        .sqrt()
        .add_scalar(1e-6)
        .recip()
        .mul_scalar(clip)
        .clamp_max(1.0)
        .reshape([bs, 1]);
    let sums = deltas
        .into_iter()
        .zip(inputs)
        .map(|(delta, a)| {
            let scaled = delta * factor.clone();
            let out = scaled.dims()[1];
            let gb = scaled.clone().sum_dim(0).reshape([out]);
            (a.transpose().matmul(scaled), gb)
        })
        .collect();
    (sums, mean_loss, right)
}

/// The noisy mean gradient of every parameter: the clipped sum plus `N(0, sd²)` per
/// element, over the expected batch size.
fn noisy_gradients<B: TrainBackend>(
    model: &Net<B>,
    sums: LayerSums<B::InnerBackend>,
    noise: &mut ChaCha20Rng,
    sd: f64,
    expected: f64,
    device: &B::Device,
) -> GradientsParams {
    let mut grads = GradientsParams::new();
    for (layer, (gw, gb)) in model.dense.iter().zip(sums) {
        let [i, o] = layer.weight.dims();
        let nw = Tensor::<B::InnerBackend, 2>::from_data(
            TensorData::new(gaussian(noise, i * o, sd), [i, o]),
            device,
        );
        grads.register(layer.weight.id, (gw + nw).div_scalar(expected));
        if let Some(bias) = &layer.bias {
            let nb = Tensor::<B::InnerBackend, 1>::from_data(
                TensorData::new(gaussian(noise, o, sd), [o]),
                device,
            );
            grads.register(bias.id, (gb + nb).div_scalar(expected));
        }
    }
    grads
}

/// Train `model` with DP-SGD on one device; returns the lead's output.
pub(crate) fn train_dp<B: TrainBackend>(
    input: &FitInput,
    dp: &DpSgd,
    mut model: Net<B>,
    device: &B::Device,
    progress: &mut dyn Progress,
) -> Result<FitOutput, TrainError> {
    let d = &input.description;
    if !model.convs.is_empty() {
        return Err(TrainError::Privacy(
            "DP-SGD clips per example in dense layers only; this model has convolutions".into(),
        ));
    }
    let n = input.y_train.len();
    let width = d.input_len();
    let dropout = d.model.dropout();
    let hidden = d.model.hidden().to_vec();
    let mut optim = adam::<B>(input);
    let mut sampler = dp.stream(b"sampling");
    let mut noise = dp.stream(b"noise");
    let mut dropout_rng = rng(input.seed, STREAM_DROPOUT);
    let q = dp.sampling_rate;
    let expected = q * n as f64;
    let clip = dp.max_grad_norm;
    let sd = dp.noise_multiplier * clip;
    let mut xb = Vec::new();
    let mut yb = Vec::new();
    let mut epochs = Vec::with_capacity(input.epochs);
    let mut train_seconds = 0.0;
    let mut steps = 0usize;

    for epoch in 1..=input.epochs {
        progress.epoch_start(epoch, input.epochs, dp.steps_per_epoch);
        let started = Instant::now();
        let (mut loss_sum, mut correct_sum, mut seen) = (0.0f64, 0.0f64, 0usize);
        for b in 0..dp.steps_per_epoch {
            let rows: Vec<usize> = (0..n).filter(|_| sampler.random::<f64>() < q).collect();
            let bs = rows.len();
            let sums = if bs == 0 {
                // An empty batch: the step is noise alone.
                model
                    .dense
                    .iter()
                    .map(|layer| {
                        let [i, o] = layer.weight.dims();
                        (Tensor::zeros([i, o], device), Tensor::zeros([o], device))
                    })
                    .collect()
            } else {
                let x = gather::<B>(input, &rows, &mut xb, &mut yb, device);
                let masks = (dropout > 0.0).then(|| {
                    hidden
                        .iter()
                        .map(|&w| {
                            dropout_mask::<B>(&mut dropout_rng, bs, 0..bs, w, dropout, device)
                        })
                        .collect()
                });
                let (sums, loss, correct) =
                    clipped_sums(&model, x, masks, &yb, &d.task, clip, device);
                loss_sum += loss * bs as f64;
                correct_sum += correct;
                seen += bs;
                sums
            };
            let grads = noisy_gradients(&model, sums, &mut noise, sd, expected, device);
            model = optim.step(input.learning_rate, model, grads);
            steps += 1;
            if (b + 1) % 16 == 0 || b + 1 == dp.steps_per_epoch {
                let s = seen.max(1) as f64;
                progress.batch(b + 1, loss_sum / s, correct_sum / s);
            }
        }
        B::sync(device).ok();
        let seconds = started.elapsed().as_secs_f64();
        train_seconds += seconds;
        let train_loss = loss_sum / seen.max(1) as f64;
        if !train_loss.is_finite() {
            return Err(TrainError::Diverged {
                epoch,
                loss: train_loss,
            });
        }
        let val = airlock_infer::predict_outputs(&model.valid(), &input.x_val, width, device);
        let metrics = EpochMetrics {
            epoch,
            train_loss,
            train_accuracy: (!matches!(d.task, airlock_schemas::TaskSpec::Regression))
                .then(|| correct_sum / seen.max(1) as f64),
            validation_loss: airlock_model::task_loss(&d.task, &val, &input.y_val),
            validation_accuracy: airlock_model::task_accuracy(&d.task, &val, &input.y_val),
            seconds,
        };
        progress.epoch_end(&metrics);
        epochs.push(metrics);
    }
    let record = optim.to_record();
    drop(optim);
    let optimizer = adam_moments(record, &model, d);
    let params = model.valid().to_params(d);
    Ok(FitOutput {
        params,
        optimizer_step: steps,
        optimizer,
        epochs,
        train_seconds,
    })
}

/// The one-run audit's canaries: inputs outside the data (every standardized feature
/// drawn with a standard deviation of [`CANARY_SCALE`], so that no two canaries are alike
/// and none looks like a row) with random labels, each trained on with probability ½. Drawn
/// from the run's secret, so that neither the model's users nor its trainers choose
/// which are in.
#[derive(Clone)]
pub struct Canaries {
    /// Inputs, row-major, standardized.
    pub x: Vec<f32>,
    /// Labels as the loss reads them.
    pub y: Vec<f32>,
    /// Whether each was trained on.
    pub included: Vec<bool>,
}

impl std::fmt::Debug for Canaries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Which canaries are in is the audit's secret.
        f.debug_struct("Canaries")
            .field("count", &self.y.len())
            .finish_non_exhaustive()
    }
}

/// The spread of a canary's standardized features.
pub const CANARY_SCALE: f32 = 4.0;

impl Canaries {
    /// `m` canaries for `description`'s inputs and task, from `secret`.
    pub fn draw(description: &airlock_model::Description, m: usize, secret: &[u8; 32]) -> Self {
        let dp = DpSgd {
            noise_multiplier: 0.0,
            max_grad_norm: 0.0,
            sampling_rate: 0.0,
            steps_per_epoch: 0,
            secret: *secret,
        };
        let mut r = dp.stream(b"canaries");
        let width = description.input_len();
        let x = gaussian(&mut r, m * width, f64::from(CANARY_SCALE));
        let y = (0..m)
            .map(|_| match &description.task {
                airlock_schemas::TaskSpec::Binary => f32::from(u8::from(r.random::<bool>())),
                airlock_schemas::TaskSpec::Multiclass { classes } => {
                    r.random_range(0..classes.len()) as f32
                }
                airlock_schemas::TaskSpec::Regression => {
                    if r.random::<bool>() {
                        2.0
                    } else {
                        -2.0
                    }
                }
            })
            .collect();
        let included = (0..m).map(|_| r.random::<bool>()).collect();
        Self { x, y, included }
    }

    /// Append the included canaries to training rows `x`, `y` (`width` values a row).
    pub fn add_to(&self, x: &mut Vec<f32>, y: &mut Vec<f32>, width: usize) {
        for (i, _) in self.included.iter().enumerate().filter(|(_, inc)| **inc) {
            x.extend_from_slice(&self.x[i * width..(i + 1) * width]);
            y.push(self.y[i]);
        }
    }
}

/// The audit of a trained model's `params` with its `canaries`: the auditor scores each
/// canary by the model's loss on it (lower: more likely trained on), guesses "in" for the
/// share it is surest of and "out" for the share it is least sure of
/// ([`AUDIT_GUESS_FRACTIONS`]), and the guesses give a lower bound on ε at 95 %
/// confidence (see [`airlock_model::privacy_audit`]).
pub fn audit(
    description: &airlock_model::Description,
    params: &airlock_model::Params,
    canaries: &Canaries,
    delta: f64,
) -> airlock_schemas::PrivacyAudit {
    use airlock_model::privacy_audit::{epsilon_lower_bound, guess};
    let device = Default::default();
    let net = airlock_infer::to_net::<burn::backend::Flex>(description, params, false, &device);
    let out = airlock_infer::predict_outputs(&net, &canaries.x, description.input_len(), &device);
    let scores: Vec<f64> = airlock_model::row_losses(&description.task, &out, &canaries.y)
        .into_iter()
        .map(|l| -l)
        .collect();
    let m = canaries.y.len();
    // Three numbers of guesses, fixed in advance, each at 1 − 0.05/3 confidence (a union
    // bound keeps the best of them valid at 95 %).
    let mut best: Option<airlock_schemas::PrivacyAudit> = None;
    for k in AUDIT_GUESS_FRACTIONS.map(|f| ((m as f64 * f).ceil() as usize).max(1)) {
        let (guesses, correct) = guess(&scores, &canaries.included, k);
        let bound = epsilon_lower_bound(
            m,
            guesses,
            correct,
            delta,
            1.0 - 0.05 / AUDIT_GUESS_FRACTIONS.len() as f64,
        );
        if best.as_ref().is_none_or(|b| bound > b.epsilon_lower_bound) {
            best = Some(airlock_schemas::PrivacyAudit {
                canaries: m as u64,
                guesses: guesses as u64,
                correct: correct as u64,
                epsilon_lower_bound: bound,
            });
        }
    }
    best.expect("three numbers of guesses were tried")
}

/// The share of the canaries the auditor guesses about at each end (in, out).
pub const AUDIT_GUESS_FRACTIONS: [f64; 3] = [0.025, 0.05, 0.1];
