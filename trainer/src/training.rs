//! The training loop: mini-batch Adam on the task's loss, with per-epoch validation.

use std::time::Instant;

use airlock_schemas::EpochMetrics;
use burn::module::AutodiffModule;
use burn::optim::{GradientsParams, Optimizer};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{ElementConversion, Tensor, TensorData};
use rand::RngCore;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use airlock_infer::{Net, predict_outputs, tensor_to_vec, to_net};
use airlock_model::{AdamMoments, Description, Params, rng, task_accuracy, task_loss};
use airlock_schemas::TaskSpec;

use crate::TrainError;
use crate::adam::{AdamSettings, TrainBackend, TrainerAdam};
use crate::hosts::HostLink;

/// Standardized data and settings for [`fit`].
#[derive(Debug, Clone)]
pub struct FitInput {
    /// The model and task.
    pub description: Description,
    /// Training rows, row-major, standardized ([`Description::input_len`] values each).
    pub x_train: Vec<f32>,
    /// Training labels: 0/1, class indices, or standardized values.
    pub y_train: Vec<f32>,
    /// Validation rows.
    pub x_val: Vec<f32>,
    /// Validation labels.
    pub y_val: Vec<f32>,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Passes over the training rows.
    pub epochs: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// Seed for initial weights, shuffling and dropout.
    pub seed: u64,
    /// DP-SGD instead of plain minibatches (one device, MLPs).
    pub dp: Option<crate::DpSgd>,
    /// Start from these weights instead of the seed's initial ones (a federated round
    /// starts from the round's global model).
    pub initial: Option<Params>,
    /// FedProx's μ: add μ/2 ‖w − initial‖² over every trained parameter to each step's loss
    /// (needs `initial`).
    pub proximal_mu: Option<f64>,
    /// Train across these hosts (data-parallel over the network: each host its share of
    /// every batch, gradients summed before each step); one device per host, no DP-SGD.
    /// A group of one host trains alone.
    pub hosts: Option<crate::HostGroup>,
}

/// What [`fit`] returns: everything on the host, independent of the backend.
#[derive(Debug, Clone)]
pub struct FitOutput {
    /// Trained tensors, as the description declares them.
    pub params: Params,
    /// Adam steps taken.
    pub optimizer_step: usize,
    /// Adam moments per parameter tensor, PyTorch layout.
    pub optimizer: Vec<(String, AdamMoments)>,
    /// Metrics per epoch.
    pub epochs: Vec<EpochMetrics>,
    /// Seconds spent in training steps (validation excluded).
    pub train_seconds: f64,
}

impl FitOutput {
    /// Training rows processed per second of training steps.
    pub fn rows_per_second(&self, train_rows: usize) -> f64 {
        (train_rows * self.epochs.len()) as f64 / self.train_seconds.max(1e-9)
    }
}

/// Receives progress while [`fit`] runs.
pub trait Progress {
    /// An epoch with `batches` steps begins.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    /// `done` steps of the epoch are finished; running mean loss and accuracy so far.
    fn batch(&mut self, _done: usize, _loss: f64, _accuracy: f64) {}
    /// An epoch ended.
    fn epoch_end(&mut self, _metrics: &EpochMetrics) {}
}

/// A [`Progress`] that shows nothing.
impl Progress for () {}

// Independent random streams derived from the one seed, so that changing, say, the
// dropout rate does not change the initial weights.
const STREAM_INIT: u64 = 1;
const STREAM_SHUFFLE: u64 = 2;
pub(crate) const STREAM_DROPOUT: u64 = 3;
/// How often (in steps) running metrics are read back for the progress display.
const PROGRESS_EVERY: usize = 16;

/// Train the described model on backend `B`, on one device or data-parallel over several.
///
/// With several devices, each trains a replica of the model (the same initial weights,
/// parameter ids and random streams) on its contiguous share of every batch; the
/// gradients are summed across devices with burn-collective's all-reduce before every
/// optimizer step, each share's loss weighted by its fraction of the batch, so that the
/// step is the one-device step up to the order of floating-point sums. Batch norm
/// normalizes each share by its own statistics, and the running statistics kept are
/// the first device's (as PyTorch's DistributedDataParallel does by default).
///
/// With `input.hosts` naming several hosts, this host trains on its share of every
/// batch on its one device, the same way, the gradients and running metrics summed over
/// TCP with the other hosts (see [`crate::HostGroup`]); every host ends with the same
/// weights, and the batch-norm statistics of the first host. DP-SGD and several devices
/// per host are refused.
pub fn fit<B: TrainBackend>(
    input: &FitInput,
    devices: &[B::Device],
    progress: &mut dyn Progress,
) -> Result<FitOutput, TrainError> {
    let d = &input.description;
    // The host copy of the initial weights is dropped as soon as the model holds them.
    let init = |device| -> Net<B> {
        match &input.initial {
            Some(p) => to_net(d, p, false, device),
            None => to_net(d, &d.init(&mut rng(input.seed, STREAM_INIT)), false, device),
        }
    };
    if let Some(g) = &input.hosts {
        g.check()?;
    }
    let hosts = input.hosts.as_ref().filter(|g| g.is_several());
    match devices {
        [] => Err(TrainError::Collective {
            devices: 0,
            reason: "no device to train on".to_owned(),
        }),
        _ if hosts.is_some() && input.dp.is_some() => Err(TrainError::Privacy(
            "DP-SGD trains on one host: its accounting assumes one sampler".to_owned(),
        )),
        [device] => {
            let model = init(device);
            if let Some(dp) = &input.dp {
                return crate::dp::train_dp(input, dp, model, device, progress);
            }
            if let Some(g) = hosts {
                let mut link = HostLink::connect(g, &crate::hosts::run_fingerprint(input))?;
                return train_replica_on(input, model, device, Reduce::Hosts(&mut link), progress)
                    .map(|out| out.expect("every host keeps its output"));
            }
            train_replica(input, model, device, None, progress)
                .map(|out| out.expect("the only replica leads"))
        }
        _ if hosts.is_some() => Err(TrainError::Hosts {
            hosts: hosts.map_or(0, |g| g.addresses.len()),
            reason: format!(
                "training across hosts uses one device per host, not {}",
                devices.len()
            ),
        }),
        _ if input.dp.is_some() => Err(TrainError::Privacy(
            "DP-SGD trains on one device".to_owned(),
        )),
        _ => {
            let model = init(&devices[0]);
            crate::parallel::data_parallel(input, model, devices, progress)
        }
    }
}

/// One replica's place in a data-parallel run.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    /// 0-based; peer 0 leads (validation, progress, the output).
    pub(crate) index: usize,
    /// Replicas in the run.
    pub(crate) count: usize,
}

impl Peer {
    /// This peer's rows of a batch of `rows`: contiguous shares whose sizes differ by at
    /// most one, the larger first.
    pub(crate) fn share(self, rows: usize) -> std::ops::Range<usize> {
        let (base, extra) = (rows / self.count, rows % self.count);
        let start = self.index * base + self.index.min(extra);
        let len = base + usize::from(self.index < extra);
        start..start + len
    }

    fn id(self) -> burn::collective::PeerId {
        burn::collective::PeerId::from(self.index)
    }
}

/// Where a replica's sums go: nowhere (one replica), the other devices of this process
/// (burn-collective), or the other hosts of the run.
pub(crate) enum Reduce<'a> {
    /// A replica of its own.
    Alone,
    /// A device of a data-parallel run in this process.
    Devices(Peer),
    /// A host of a multi-host run.
    Hosts(&'a mut HostLink),
}

impl Reduce<'_> {
    /// The replica's place, for its share of each batch.
    fn peer(&self) -> Option<Peer> {
        match self {
            Self::Alone => None,
            Self::Devices(p) => Some(*p),
            Self::Hosts(l) => Some(Peer {
                index: l.rank(),
                count: l.world(),
            }),
        }
    }

    /// Sum a running metric across the run's replicas.
    fn sum<B: burn::prelude::Backend>(
        &mut self,
        t: Tensor<B, 1>,
    ) -> Result<Tensor<B, 1>, TrainError> {
        match self {
            Self::Alone => Ok(t),
            Self::Devices(p) => sum_across(t, Some(*p)),
            Self::Hosts(link) => {
                let device = t.device();
                let mut v = t
                    .into_data()
                    .to_vec::<f32>()
                    .map_err(|e| TrainError::Hosts {
                        hosts: link.world(),
                        reason: format!("{e:?}"),
                    })?;
                link.all_reduce_sum(&mut v)?;
                Ok(Tensor::from_data(TensorData::new(v, [1]), &device))
            }
        }
    }

    /// Before validating: every host takes the first host's batch-norm statistics.
    fn share_running_stats<B: burn::prelude::Backend>(
        &mut self,
        model: &Net<B>,
    ) -> Result<(), TrainError> {
        match self {
            Self::Hosts(link) => crate::hosts::share_running_stats(model, link),
            Self::Alone | Self::Devices(_) => Ok(()),
        }
    }
}

/// Sum a running metric across the run's replicas (itself alone without a peer).
fn sum_across<B: burn::prelude::Backend>(
    t: Tensor<B, 1>,
    peer: Option<Peer>,
) -> Result<Tensor<B, 1>, TrainError> {
    let Some(p) = peer else { return Ok(t) };
    let summed = burn::collective::all_reduce::<B>(
        p.id(),
        t.into_primitive().tensor(),
        burn::collective::ReduceOperation::Sum,
    )
    .map_err(|e| collective_error(p, e))?;
    Ok(Tensor::from_primitive(
        burn::tensor::TensorPrimitive::Float(summed),
    ))
}

pub(crate) fn collective_error(p: Peer, e: burn::collective::CollectiveError) -> TrainError {
    TrainError::Collective {
        devices: p.count,
        reason: format!("{e:?}"),
    }
}

/// Train one replica for every epoch. With a `peer`, it trains on its share of each
/// batch and sums gradients and metrics with the other replicas; the lead (peer 0, or the
/// only replica) validates, reports progress and returns the output, the others `None`.
pub(crate) fn train_replica<B: TrainBackend>(
    input: &FitInput,
    model: Net<B>,
    device: &B::Device,
    peer: Option<Peer>,
    progress: &mut dyn Progress,
) -> Result<Option<FitOutput>, TrainError> {
    let reduce = match peer {
        Some(p) => Reduce::Devices(p),
        None => Reduce::Alone,
    };
    train_replica_on(input, model, device, reduce, progress)
}

/// [`train_replica`] with its sums going to `reduce`. Every host of a multi-host run
/// validates and returns its output (their weights are the same).
fn train_replica_on<B: TrainBackend>(
    input: &FitInput,
    mut model: Net<B>,
    device: &B::Device,
    mut reduce: Reduce<'_>,
    progress: &mut dyn Progress,
) -> Result<Option<FitOutput>, TrainError> {
    let d = &input.description;
    let width = d.input_len();
    let n_train = input.y_train.len();
    let peer = reduce.peer();
    let lead = peer.is_none_or(|p| p.index == 0) || matches!(reduce, Reduce::Hosts(_));
    let mut optim = adam::<B>(input);

    let mut shuffle = rng(input.seed, STREAM_SHUFFLE);
    let mut dropout_rng = rng(input.seed, STREAM_DROPOUT);
    let dropout = d.model.dropout();
    let hidden = d.model.hidden().to_vec();
    let mut order: Vec<usize> = (0..n_train).collect();
    let batches = n_train.div_ceil(input.batch_size);
    let mut xb = Vec::with_capacity(input.batch_size * width);
    let mut yb = Vec::with_capacity(input.batch_size);
    let mut epochs = Vec::with_capacity(input.epochs);
    let mut train_seconds = 0.0;
    let mut steps = 0usize;
    let anchor = proximal_anchor::<B>(input, device);

    for epoch in 1..=input.epochs {
        if lead {
            progress.epoch_start(epoch, input.epochs, batches);
        }
        order.shuffle(&mut shuffle);
        let started = Instant::now();
        let zero = || Tensor::<B::InnerBackend, 1>::zeros([1], device);
        let (mut loss_sum, mut correct_sum) = (zero(), zero());
        let mut seen = 0usize;
        for (b, chunk) in order.chunks(input.batch_size).enumerate() {
            let bs = chunk.len();
            let (rows, weight) = share_rows(peer, bs);
            let x = gather::<B>(input, &chunk[rows.clone()], &mut xb, &mut yb, device);
            let masks = (dropout > 0.0).then(|| {
                let mut mask =
                    |w| dropout_mask::<B>(&mut dropout_rng, bs, rows.clone(), w, dropout, device);
                hidden.iter().map(|&w| mask(w)).collect()
            });
            let out = model.forward(x, masks);
            let (mut loss, mut correct) = task_loss_and_correct::<B>(&d.task, out, &yb, device);
            if peer.is_some() {
                loss = loss.mul_scalar(weight);
                correct = correct.mul_scalar(if weight > 0.0 { 1.0 } else { 0.0 });
            }
            loss_sum = loss_sum + loss.clone().inner().mul_scalar(bs as f64);
            correct_sum = correct_sum + correct;
            seen += bs;
            let loss = with_proximal(loss, &model, anchor.as_ref(), peer.map_or(1.0, |_| weight));
            let grads = gradients(loss, &model, &mut reduce)?;
            model = optim.step(input.learning_rate, model, grads);
            steps += 1;

            if (b + 1) % PROGRESS_EVERY == 0 || b + 1 == batches {
                let l = scalar(&reduce.sum(loss_sum.clone())?) / seen as f64;
                let a = scalar(&reduce.sum(correct_sum.clone())?) / seen as f64;
                if lead {
                    progress.batch(b + 1, l, a);
                }
            }
        }
        let train_loss = scalar(&reduce.sum(loss_sum)?) / n_train as f64;
        let correct = scalar(&reduce.sum(correct_sum)?);
        let train_accuracy =
            (!matches!(d.task, TaskSpec::Regression)).then(|| correct / n_train as f64);
        B::sync(device).ok();
        let seconds = started.elapsed().as_secs_f64();
        train_seconds += seconds;
        if !train_loss.is_finite() {
            return Err(TrainError::Diverged {
                epoch,
                loss: train_loss,
            });
        }
        if !lead {
            continue;
        }
        reduce.share_running_stats(&model)?;
        let val = predict_outputs(&model.valid(), &input.x_val, width, device);
        let metrics = EpochMetrics {
            epoch,
            train_loss,
            train_accuracy,
            validation_loss: task_loss(&d.task, &val, &input.y_val),
            validation_accuracy: task_accuracy(&d.task, &val, &input.y_val),
            seconds,
        };
        progress.epoch_end(&metrics);
        epochs.push(metrics);
    }
    if !lead {
        return Ok(None);
    }

    let (params, optimizer) = take_state(optim, model, d);
    Ok(Some(FitOutput {
        params,
        optimizer_step: steps,
        optimizer,
        epochs,
        train_seconds,
    }))
}

/// The trained parameters and Adam's moments on the host. The moments first, each burn
/// tensor dropped once its host copy exists, then the parameters: the host copies never
/// sit beside a second full copy of the burn state.
fn take_state<B: TrainBackend>(
    optim: AdamOptimizer<B>,
    model: Net<B>,
    d: &Description,
) -> (Params, Vec<(String, AdamMoments)>) {
    let record = optim.to_record();
    drop(optim);
    let optimizer = adam_moments(record, &model, d);
    let params = model.valid().to_params(d);
    drop(model);
    (params, optimizer)
}

/// `loss` plus FedProx's term (its `share`: each replica adds its share, so the replicas'
/// sum is the whole term), or `loss` alone without an anchor.
fn with_proximal<B: TrainBackend>(
    loss: Tensor<B, 1>,
    model: &Net<B>,
    anchor: Option<&(Net<B::InnerBackend>, f64)>,
    share: f64,
) -> Tensor<B, 1> {
    match anchor {
        Some((g, mu)) => loss + proximal(model, g, mu * share),
        None => loss,
    }
}

/// FedProx's anchor: the global weights (off the autodiff graph) and μ, when the input has
/// both.
fn proximal_anchor<B: TrainBackend>(
    input: &FitInput,
    device: &B::Device,
) -> Option<(Net<B::InnerBackend>, f64)> {
    match (&input.initial, input.proximal_mu) {
        (Some(p), Some(mu)) => Some((to_net(&input.description, p, false, device), mu)),
        _ => None,
    }
}

/// FedProx's proximal term, μ/2 ‖w − w_global‖², over every trained parameter of `model`
/// (dense and convolution weights and biases, batch norm's scale and shift).
fn proximal<B: AutodiffBackend>(
    model: &Net<B>,
    global: &Net<B::InnerBackend>,
    mu: f64,
) -> Tensor<B, 1> {
    fn sq<B: AutodiffBackend, const D: usize>(
        p: Tensor<B, D>,
        g: Tensor<B::InnerBackend, D>,
    ) -> Tensor<B, 1> {
        (p - Tensor::from_inner(g)).powi_scalar(2).sum()
    }
    let mut terms: Vec<Tensor<B, 1>> = Vec::new();
    for (l, g) in model.dense.iter().zip(&global.dense) {
        terms.push(sq(l.weight.val(), g.weight.val()));
        if let (Some(b), Some(gb)) = (&l.bias, &g.bias) {
            terms.push(sq(b.val(), gb.val()));
        }
    }
    for (c, g) in model.convs.iter().zip(&global.convs) {
        terms.push(sq(c.conv.weight.val(), g.conv.weight.val()));
        if let (Some(b), Some(gb)) = (&c.conv.bias, &g.conv.bias) {
            terms.push(sq(b.val(), gb.val()));
        }
        if let (Some(n), Some(gn)) = (&c.norm, &g.norm) {
            terms.push(sq(n.gamma.val(), gn.gamma.val()));
            terms.push(sq(n.beta.val(), gn.beta.val()));
        }
    }
    Tensor::cat(terms, 0).sum().mul_scalar(mu / 2.0)
}

/// The training rows `rows` as a tensor (through the reused buffer `xb`), their labels
/// into `yb`.
pub(crate) fn gather<B: AutodiffBackend>(
    input: &FitInput,
    rows: &[usize],
    xb: &mut Vec<f32>,
    yb: &mut Vec<f32>,
    device: &B::Device,
) -> Tensor<B, 2> {
    let width = input.description.input_len();
    xb.clear();
    yb.clear();
    for &r in rows {
        xb.extend_from_slice(&input.x_train[r * width..(r + 1) * width]);
        yb.push(input.y_train[r]);
    }
    Tensor::<B, 2>::from_data(TensorData::new(xb.clone(), [rows.len(), width]), device)
}

/// The gradients of `loss`, summed across the run's replicas when there are several.
fn gradients<B: AutodiffBackend>(
    loss: Tensor<B, 1>,
    model: &Net<B>,
    reduce: &mut Reduce<'_>,
) -> Result<GradientsParams, TrainError> {
    let grads = GradientsParams::from_grads(loss.backward(), model);
    match reduce {
        Reduce::Devices(p) => grads
            .all_reduce::<B::InnerBackend>(p.id(), burn::collective::ReduceOperation::Sum)
            .map_err(|e| collective_error(*p, e)),
        Reduce::Hosts(link) => crate::hosts::sum_gradients(grads, model, link),
        Reduce::Alone => Ok(grads),
    }
}

/// Adam as the trainer configures it: PyTorch's defaults (so that learning rates and
/// weight decay mean the same in both), in place on host-memory backends.
pub(crate) fn adam_settings(input: &FitInput) -> AdamSettings {
    AdamSettings {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        weight_decay: (input.weight_decay > 0.0).then_some(input.weight_decay as f32),
    }
}

pub(crate) fn adam<B: TrainBackend>(input: &FitInput) -> AdamOptimizer<B> {
    TrainerAdam::init::<B, Net<B>>(adam_settings(input))
}

/// The rows of a batch of `bs` a replica trains on, and its loss's weight: all of them
/// (weight 1) without a peer, else the peer's share (its fraction of the batch). A share
/// can be empty when a last batch has fewer rows than devices: the replica then steps
/// with a zero-weighted row, so that every replica takes part in every all-reduce.
fn share_rows(peer: Option<Peer>, bs: usize) -> (std::ops::Range<usize>, f64) {
    let share = peer.map_or(0..bs, |p| p.share(bs));
    if share.is_empty() {
        (0..1, 0.0)
    } else {
        let weight = share.len() as f64 / bs as f64;
        (share, weight)
    }
}

/// The batch's mean loss (with gradients) and its count of right answers (0 for a
/// regression): binary cross-entropy on one logit, categorical cross-entropy on logits,
/// or squared error on the standardized target.
pub(crate) fn task_loss_and_correct<B: AutodiffBackend>(
    task: &TaskSpec,
    out: Tensor<B, 2>,
    labels: &[f32],
    device: &B::Device,
) -> (Tensor<B, 1>, Tensor<B::InnerBackend, 1>) {
    let bs = labels.len();
    let y = Tensor::<B::InnerBackend, 1>::from_data(TensorData::new(labels.to_vec(), [bs]), device);
    match task {
        TaskSpec::Binary => {
            let z = out.reshape([bs]);
            let loss = bce_with_logits(z.clone(), Tensor::from_inner(y.clone()));
            // (2y - 1)·z > 0 exactly when the prediction is right.
            let correct = (y.mul_scalar(2.0).sub_scalar(1.0) * z.inner())
                .sign()
                .add_scalar(1.0)
                .sum()
                .div_scalar(2.0);
            (loss, correct)
        }
        TaskSpec::Multiclass { classes } => {
            let k = classes.len();
            let mut onehot = vec![0.0f32; bs * k];
            for (r, &c) in labels.iter().enumerate() {
                onehot[r * k + c as usize] = 1.0;
            }
            let onehot = Tensor::<B, 2>::from_data(TensorData::new(onehot, [bs, k]), device);
            let logp = log_softmax(out.clone(), 1);
            let loss = (logp * onehot.clone()).sum().neg().div_scalar(bs as f64);
            let predicted = out.inner().argmax(1).reshape([bs]);
            let truth = y.int();
            let correct = predicted.equal(truth).int().float().sum();
            (loss, correct)
        }
        TaskSpec::Regression => {
            let z = out.reshape([bs]);
            let diff = z - Tensor::from_inner(y);
            let loss = (diff.clone() * diff).mean();
            (loss, Tensor::<B::InnerBackend, 1>::zeros([1], device))
        }
    }
}

pub(crate) fn scalar<B: burn::prelude::Backend>(t: &Tensor<B, 1>) -> f64 {
    t.clone().into_scalar().elem::<f64>()
}

/// Mean binary cross-entropy of logits `z` against labels `y`, in the stable form
/// `max(z, 0) − z·y + ln(1 + e^−|z|)`.
fn bce_with_logits<B: burn::prelude::Backend>(z: Tensor<B, 1>, y: Tensor<B, 1>) -> Tensor<B, 1> {
    (relu(z.clone()) - z.clone() * y + z.abs().neg().exp().log1p()).mean()
}

/// An inverted-dropout mask `[rows, width]`: 0 with probability `p`, else `1 / (1 − p)`.
///
/// Drawn from a SplitMix64 stream seeded from the run's ChaCha dropout stream: one
/// ChaCha draw per mask keeps runs reproducible, and SplitMix keeps the cost per element
/// at a few instructions.
///
/// The mask is drawn for the whole batch of `rows` and `keep_rows` of it are kept, so
/// that a data-parallel replica's share sees the masks a single device would.
pub(crate) fn dropout_mask<B: AutodiffBackend>(
    rng: &mut ChaCha8Rng,
    rows: usize,
    keep_rows: std::ops::Range<usize>,
    width: usize,
    p: f64,
    device: &B::Device,
) -> Tensor<B, 2> {
    let mut state = rng.next_u64();
    let keep = (1.0 / (1.0 - p)) as f32;
    // Compare 32-bit halves against p scaled to 2^32.
    let threshold = (p * 4_294_967_296.0) as u64;
    let n = rows * width;
    let mut mask = Vec::with_capacity(n);
    while mask.len() < n {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        for half in [z & 0xFFFF_FFFF, z >> 32] {
            if mask.len() < n {
                mask.push(if half < threshold { 0.0 } else { keep });
            }
        }
    }
    let kept = keep_rows.len();
    if kept != rows {
        mask = mask[keep_rows.start * width..keep_rows.end * width].to_vec();
    }
    Tensor::from_data(TensorData::new(mask, [kept, width]), device)
}

pub(crate) type AdamOptimizer<B> = burn::optim::adaptor::OptimizerAdaptor<TrainerAdam, Net<B>, B>;

/// Adam's moments per parameter, in the description's (PyTorch) layouts. The record is
/// consumed: each moment's burn tensor is freed as soon as its host copy is made.
pub(crate) fn adam_moments<B: TrainBackend>(
    mut record: <AdamOptimizer<B> as Optimizer<Net<B>, B>>::Record,
    model: &Net<B>,
    description: &Description,
) -> Vec<(String, AdamMoments)> {
    let ranks: std::collections::HashMap<String, usize> = description
        .trained()
        .into_iter()
        .map(|d| (d.name, d.shape.len()))
        .collect();
    model
        .param_ids(description)
        .into_iter()
        .filter_map(|(name, id)| {
            let state = record.remove(&id)?;
            let (m1, m2) = match ranks.get(&name).copied() {
                Some(4) => {
                    let m = state.into_state::<4>().momentum;
                    (tensor_to_vec(m.moment_1), tensor_to_vec(m.moment_2))
                }
                // burn keeps linear weights as [in, out]; the checkpoint as [out, in].
                Some(2) => {
                    let m = state.into_state::<2>().momentum;
                    (
                        tensor_to_vec(m.moment_1.transpose()),
                        tensor_to_vec(m.moment_2.transpose()),
                    )
                }
                _ => {
                    let m = state.into_state::<1>().momentum;
                    (tensor_to_vec(m.moment_1), tensor_to_vec(m.moment_2))
                }
            };
            Some((
                name,
                AdamMoments {
                    exp_avg: m1,
                    exp_avg_sq: m2,
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::Peer;

    #[test]
    fn shares_cover_a_batch_once_in_order_and_differ_by_at_most_one_row() {
        for count in 1..=5 {
            for rows in 0..=40 {
                let shares: Vec<_> = (0..count)
                    .map(|index| Peer { index, count }.share(rows))
                    .collect();
                let mut next = 0;
                for s in &shares {
                    assert_eq!(s.start, next, "{rows} rows on {count}");
                    next = s.end;
                }
                assert_eq!(next, rows);
                let (min, max) = shares
                    .iter()
                    .map(|s| s.len())
                    .fold((usize::MAX, 0), |(a, b), l| (a.min(l), b.max(l)));
                assert!(max - min <= 1, "{rows} rows on {count}: {shares:?}");
            }
        }
    }
}
