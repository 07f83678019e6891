//! `airlock train`: from a pipeline file to a complete run directory, or to nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use airlock_schemas::{
    BackendInfo, DatasetFingerprint, EpochMetrics, Evaluation, FileDigest, Holdout, HoldoutMetrics,
    Hyperparameters, PipelineSpec, PrivacyGuarantee, PrivacyMechanism, SplitSizes,
    TRAINING_RECORD_VERSION, TaskSpec, TrainingRecord,
};
use burn::backend::{Autodiff, Flex, NdArray};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use airlock_infer::{Backend, DeviceSpec, predict_outputs, to_net};
use airlock_model::{
    CHECKPOINT_FILE, Checkpoint, DP_SECRET_FILE, Dataset, Description, LOG_FILE,
    PIPELINE_SNAPSHOT_FILE, PREPROCESS_FILE, Preprocess, RECORD_FILE, SubgroupInput, Table,
    accuracy, check_subgroups, evaluate, load_dataset, log_loss, multiclass_metrics,
    regression_metrics, roc_auc, roc_curve, split_rows,
};

use crate::dp::Canaries;
use crate::training::{FitInput, FitOutput, Progress, fit};
use crate::{DpSgd, TrainError};

/// Options of `airlock train`.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    /// The pipeline file.
    pub pipeline: PathBuf,
    /// Run directory to create; default `runs/<name>-<version>-<UTC time>`.
    pub out: Option<PathBuf>,
    /// Overrides the pipeline's `training.device`.
    pub device: Option<String>,
    /// Overrides the CPU backend (benchmarks compare them); `None` uses the default.
    pub cpu_backend: Option<Backend>,
    /// Draw progress bars on a terminal.
    pub progress: bool,
    /// Train across these hosts (a multi-host training job, one device per host, no
    /// DP-SGD): every host reads the same data, trains on its share of every batch and
    /// writes the same run (the same weights, metrics and validation) to its own `out`;
    /// the first host's (rank 0) is the run to keep, the others' may be discarded. `None`,
    /// or a group of one host, trains alone. Federated and burst runs
    /// ([`write_federated_run`], [`write_burst_run`]) do not train and ignore it.
    pub hosts: Option<crate::HostGroup>,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// What was recorded in it.
    pub record: TrainingRecord,
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|_| OffsetDateTime::now_utc())
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Train the pipeline at `opts.pipeline` and write its run directory.
///
/// Everything is written to a hidden staging directory beside the target and renamed
/// into place at the end, so a failed run leaves nothing that looks complete.
pub fn train_pipeline(opts: &TrainOptions) -> Result<RunSummary, TrainError> {
    write_run(opts, None)
}

/// The global model of a federation, to be written as a run directory by
/// [`write_federated_run`].
#[derive(Debug, Clone)]
pub struct FederatedRun {
    /// The releasing site's data file (in the pipeline's format): the run's splits,
    /// holdout metrics and evaluation come from it, and the packager checks against it.
    pub data: PathBuf,
    /// The federation's pooled standardization (every site trained with it).
    pub preprocess: Preprocess,
    /// The last round's global weights.
    pub params: airlock_model::Params,
    /// One entry per round: the accepted sites' metrics, averaged by samples.
    pub epochs: Vec<EpochMetrics>,
    /// What the record says of the federation.
    pub record: airlock_schemas::FederationRecord,
}

/// Write a federation's global model as a run directory at `opts.out` (as `airlock train`
/// writes one, staged and renamed into place), with a record that names the federation.
/// The pipeline must set `[leak] reproduce = false`: no one site can replay a federation.
pub fn write_federated_run(
    opts: &TrainOptions,
    fed: FederatedRun,
) -> Result<RunSummary, TrainError> {
    write_run(opts, Some((fed, None)))
}

/// A model trained by a cloud burst on an approved export, to be written as an on-prem run
/// directory by [`write_burst_run`].
#[derive(Debug, Clone)]
pub struct BurstRun {
    /// The on-prem data file (the full data the export was made from): the run's splits,
    /// holdout metrics and evaluation come from it, and the packager checks against it.
    pub data: PathBuf,
    /// The standardization the job trained with (of the export's training split).
    pub preprocess: Preprocess,
    /// The job's trained weights.
    pub params: airlock_model::Params,
    /// The job's epochs, as its run recorded them.
    pub epochs: Vec<EpochMetrics>,
    /// What the record says of the burst.
    pub record: airlock_schemas::BurstRecord,
}

/// Write a burst's model as a run directory at `opts.out` (staged and renamed into place),
/// with a record that names the burst. Like a federation's, it is not replayed on-prem
/// (it trained on the export, with the job's standardization): the pipeline must set
/// `[leak] reproduce = false`.
pub fn write_burst_run(opts: &TrainOptions, burst: BurstRun) -> Result<RunSummary, TrainError> {
    let record = burst.record;
    let fed = FederatedRun {
        data: burst.data,
        preprocess: burst.preprocess,
        params: burst.params,
        epochs: burst.epochs,
        record: airlock_schemas::FederationRecord {
            name: String::new(),
            federation_sha256: String::new(),
            rounds: 0,
            strategy: String::new(),
            final_round_sha256: String::new(),
            sites: Vec::new(),
        },
    };
    write_run(opts, Some((fed, Some(record))))
}

/// `airlock train`, or (with `fed`) the run directory of a federation's global model (or,
/// with a burst record, of a burst's model).
fn write_run(
    opts: &TrainOptions,
    fed: Option<(FederatedRun, Option<airlock_schemas::BurstRecord>)>,
) -> Result<RunSummary, TrainError> {
    let (fed, burst) = match fed {
        Some((f, b)) => (Some(f), b),
        None => (None, None),
    };
    let plan = Plan::read(opts, fed.is_none())?;
    let spec = &plan.spec;
    let (source, secret) = match &fed {
        Some(f) => (federated_source(spec, f, &opts.pipeline)?, None),
        None => (
            data_source(spec, &opts.pipeline)?,
            draw_secret(spec, &opts.pipeline)?,
        ),
    };
    let Setup {
        data,
        splits,
        description,
        prepared,
        mut input,
        canaries,
    } = Setup::new(
        spec,
        &source,
        &opts.pipeline,
        secret,
        fed.as_ref().map(|f| &f.preprocess),
    )?;
    input.hosts.clone_from(&plan.hosts);

    let staging = Staging::create(&plan.out, opts.progress)?;
    let mut reporter = staging.reporter;
    reporter.line(&start_line(&plan));
    reporter.line(&data_line(&data, &source, &splits));
    let privacy = privacy_guarantee(spec, &input)?;
    if let Some(p) = &privacy {
        reporter.line(&format!(
            "DP-SGD: noise multiplier {:.4}, clipping norm {}, sampling rate {:.5}, {} steps: ε = {:.3} at δ = {:.1e}",
            p.noise_multiplier, p.max_grad_norm, p.sampling_rate, p.steps, p.epsilon, p.delta
        ));
    }
    let (fitted, federation) = fit_or_take(&plan, &input, fed, burst.is_some(), &mut reporter)?;
    if let (Some(c), Some(p)) = (&canaries, &privacy) {
        reporter.line(&audit_line(&description, &fitted, c, p));
    }
    let (holdout, hold_out) = holdout_metrics(&description, &fitted, &prepared);
    reporter.line(&holdout_line(&holdout, prepared.y_hold.len()));
    let evaluation = match &holdout {
        Holdout::Binary(_) => {
            let e = holdout_evaluation(
                spec,
                &source,
                &data.table,
                &splits,
                &hold_out,
                &prepared.y_hold,
            )?;
            reporter.line(&evaluation_line(&e));
            Some(e)
        }
        _ => None,
    };
    let rows_per_second = fitted.rows_per_second(splits.train.len());
    reporter.line(&format!("throughput: {rows_per_second:.0} training rows/s"));
    let record = training_record(
        opts,
        &plan,
        &data,
        &splits,
        &fitted,
        holdout,
        rows_per_second,
    )?;
    let mut record = TrainingRecord {
        evaluation,
        privacy,
        ..record
    };
    name_origin(&mut record, federation, burst);
    record
        .validate()
        .map_err(|message| airlock_schemas::PipelineError::Invalid {
            path: opts.pipeline.clone(),
            message: format!("the training record would be invalid: {message}"),
        })?;

    let dir = staging.dir.path();
    write_run_files(dir, &plan, fitted, &prepared.pre, &record)?;
    if let Some(secret) = secret {
        write_secret(&dir.join(DP_SECRET_FILE), &secret)?;
    }
    reporter.line(&format!("run directory: {}", plan.out.display()));
    reporter
        .finish()
        .map_err(|e| TrainError::io("write", &staging.log_path, e))?;
    publish_run(staging.dir, &plan.out)?;
    Ok(RunSummary {
        run_dir: plan.out,
        record,
    })
}

/// A model trained elsewhere: its record names where (one entry per federation round, or
/// per epoch of the burst's job).
fn name_origin(
    record: &mut TrainingRecord,
    federation: Option<airlock_schemas::FederationRecord>,
    burst: Option<airlock_schemas::BurstRecord>,
) {
    if let Some(b) = burst {
        record.hyperparameters.epochs = record.epochs.len();
        record.burst = Some(b);
    } else if let Some(f) = federation {
        record.hyperparameters.epochs = record.epochs.len();
        record.federation = Some(f);
    }
}

/// Train (`airlock train`), or take a federation's global model as the fit.
fn fit_or_take(
    plan: &Plan,
    input: &FitInput,
    fed: Option<FederatedRun>,
    burst: bool,
    reporter: &mut Reporter,
) -> Result<(FitOutput, Option<airlock_schemas::FederationRecord>), TrainError> {
    let Some(f) = fed else {
        return Ok((fit_on(plan.backend, &plan.devices, input, reporter)?, None));
    };
    if burst {
        reporter.line("cloud burst: the weights of the job kept, trained on the approved export");
    } else {
        reporter.line(&format!(
            "federation {}: the global model of round {} ({} sites)",
            f.record.name,
            f.record.rounds,
            f.record.sites.len()
        ));
    }
    let fitted = FitOutput {
        params: f.params,
        optimizer_step: 0,
        optimizer: Vec::new(),
        train_seconds: f.epochs.iter().map(|e| e.seconds).sum::<f64>().max(1e-3),
        epochs: f.epochs,
    };
    Ok((fitted, Some(f.record)))
}

/// The log's line on the data and its splits.
fn data_line(data: &Dataset, source: &Path, splits: &Splits) -> String {
    format!(
        "data: {} rows from {} (sha256 {}); splits train {} / validation {} / holdout {}",
        data.rows(),
        source.display(),
        data.table.fingerprint.sha256,
        splits.train.len(),
        splits.val.len(),
        splits.hold.len()
    )
}

/// The log's first line: what trains where.
fn start_line(plan: &Plan) -> String {
    let spec = &plan.spec;
    let hosts = plan.hosts.as_ref().map_or(String::new(), |g| {
        format!(", host {} of {}", g.rank + 1, g.addresses.len())
    });
    format!(
        "airlock {} training {} {} ({} {}) on {} ({}, {} threads{hosts})",
        env!("CARGO_PKG_VERSION"),
        spec.release.name,
        spec.release.version,
        spec.task.name(),
        spec.model.kind(),
        device_names(&plan.devices).join(" + "),
        plan.backend,
        threads()
    )
}

/// The releasing site's data file for a federated run: a pipeline that is replayed or
/// trains with DP-SGD cannot describe a federation's model.
fn federated_source(
    spec: &PipelineSpec,
    f: &FederatedRun,
    pipeline: &Path,
) -> Result<PathBuf, TrainError> {
    let invalid = |message: &str| airlock_schemas::PipelineError::Invalid {
        path: pipeline.to_owned(),
        message: message.to_owned(),
    };
    if spec.leak.reproduce {
        return Err(invalid(
            "a federated run cannot be replayed by one site: set [leak] reproduce = false",
        )
        .into());
    }
    if spec.privacy.is_some() {
        return Err(invalid("[privacy] is not supported in a federation yet").into());
    }
    checked_data_file(&f.data, pipeline)
}

/// Everything a run trains from, derived from the pipeline and its data alone.
struct Setup {
    data: Dataset,
    splits: Splits,
    description: Description,
    prepared: Prepared,
    input: FitInput,
    canaries: Option<Canaries>,
}

impl Setup {
    /// Loads the data, draws the splits and prepares the rows as `airlock train` does.
    fn new(
        spec: &PipelineSpec,
        source: &Path,
        pipeline: &Path,
        secret: Option<[u8; 32]>,
        preprocess: Option<&Preprocess>,
    ) -> Result<Self, TrainError> {
        let data = load_dataset(spec, source, true)?;
        let labels = data.table.labels.clone().unwrap_or_default();
        let splits = Splits::draw(spec, source, data.rows(), &labels)?;
        check_subgroups(&splits.hold, &subgroup_inputs(spec, &data.table)).map_err(|message| {
            TrainError::Split {
                path: source.to_owned(),
                message,
            }
        })?;
        let description = Description::new(&spec.model, &spec.task, spec.data.features.len())
            .map_err(|message| airlock_schemas::PipelineError::Invalid {
                path: pipeline.to_owned(),
                message,
            })?;
        let prepared = Prepared::new(&description, &data, &labels, &splits, preprocess);
        let canaries = match (
            spec.privacy.as_ref().and_then(|p| p.audit.as_ref()),
            &secret,
        ) {
            (Some(a), Some(secret)) => Some(Canaries::draw(&description, a.canaries, secret)),
            _ => None,
        };
        let input = fit_input(spec, &description, &prepared, secret, canaries.as_ref())?;
        Ok(Self {
            data,
            splits,
            description,
            prepared,
            input,
            canaries,
        })
    }
}

/// A run's training, set up again from its pipeline and data (for the packager's replay,
/// reference models and audit): the fit's input, the preprocessing fitted on the training
/// split, and the rows that were never trained on.
#[derive(Debug, Clone)]
pub struct TrainingSetup {
    /// What `fit` trains on, exactly as the run did.
    pub input: FitInput,
    /// The preprocessing fitted on the training split (what the run wrote).
    pub preprocess: Preprocess,
    /// The holdout rows, prepared as the training rows are (standardized inputs; labels
    /// as the loss reads them, a regression's scaled like the training labels).
    pub x_hold: Vec<f32>,
    /// Their labels.
    pub y_hold: Vec<f32>,
    /// The data rows of the training, validation and holdout splits, in the fit's order.
    pub rows: [Vec<usize>; 3],
    /// The one-run audit's canaries (the included ones are at the end of the fit's
    /// training rows).
    pub canaries: Option<Canaries>,
}

/// Set up a run's training again from its pipeline `spec` and the data file `source`:
/// the same splits, preprocessing and fit input, derived from nothing the run directory
/// holds but a DP-SGD run's noise secret `dp_secret` (so nothing edited there can steer
/// it: a different secret replays to different weights).
pub fn training_setup(
    spec: &PipelineSpec,
    source: &Path,
    pipeline: &Path,
    dp_secret: Option<[u8; 32]>,
) -> Result<TrainingSetup, TrainError> {
    training_setup_with(spec, source, pipeline, dp_secret, None)
}

/// [`training_setup`] with the data standardized by `preprocess` (a federation's pooled
/// statistics) instead of statistics of the training split.
pub fn training_setup_with(
    spec: &PipelineSpec,
    source: &Path,
    pipeline: &Path,
    dp_secret: Option<[u8; 32]>,
    preprocess: Option<&Preprocess>,
) -> Result<TrainingSetup, TrainError> {
    let s = Setup::new(spec, source, pipeline, dp_secret, preprocess)?;
    let mut y_hold = s.prepared.y_hold;
    if let Some(t) = &s.prepared.pre.target {
        y_hold
            .iter_mut()
            .for_each(|v| *v = ((f64::from(*v) - t.mean) / t.std) as f32);
    }
    Ok(TrainingSetup {
        input: s.input,
        preprocess: s.prepared.pre,
        x_hold: s.prepared.x_hold,
        y_hold,
        rows: [s.splits.train, s.splits.val, s.splits.hold],
        canaries: s.canaries,
    })
}

/// A federation site's statistics round: the standardization of its training split (as
/// `airlock train` would fit it) and how many rows it is over.
pub fn site_statistics(
    spec: &PipelineSpec,
    pipeline: &Path,
    data: &Path,
) -> Result<(Preprocess, usize), TrainError> {
    let s = Setup::new(spec, data, pipeline, None, None)?;
    Ok((s.prepared.pre, s.splits.train.len()))
}

/// What a federation site's round trains: the pipeline, the site's data, the federation's
/// standardization and the round's global weights.
#[derive(Debug, Clone)]
pub struct SiteTraining<'a> {
    /// The federation's pipeline.
    pub spec: &'a PipelineSpec,
    /// Its file.
    pub pipeline: &'a Path,
    /// The site's data file.
    pub data: &'a Path,
    /// The federation's pooled standardization.
    pub preprocess: &'a Preprocess,
    /// The round's global weights, where training starts.
    pub global: airlock_model::Params,
    /// Local epochs.
    pub epochs: usize,
    /// The seed of the round's shuffling and dropout.
    pub seed: u64,
    /// FedProx's μ (none: plain FedAvg's local training).
    pub proximal_mu: Option<f64>,
}

/// A federation site's round: its data standardized by the federation's standardization,
/// trained from the round's global weights on the pipeline's device. Returns the fit and
/// the training rows it used.
pub fn site_round(
    t: SiteTraining<'_>,
    progress: &mut dyn Progress,
) -> Result<(FitOutput, usize), TrainError> {
    let SiteTraining {
        spec,
        pipeline,
        data,
        preprocess,
        global,
        epochs,
        seed,
        proximal_mu,
    } = t;
    if spec.privacy.is_some() {
        return Err(TrainError::Privacy(
            "[privacy] is not supported in a federation yet".to_owned(),
        ));
    }
    let s = Setup::new(spec, data, pipeline, None, Some(preprocess))?;
    let input = FitInput {
        epochs,
        seed,
        initial: Some(global),
        proximal_mu,
        ..s.input
    };
    let devices = spec
        .training
        .device_list()
        .iter()
        .map(|d| d.parse())
        .collect::<Result<Vec<DeviceSpec>, _>>()?;
    for d in &devices[1..] {
        d.resolve()?;
    }
    let backend = devices[0].resolve()?;
    let rows = input.y_train.len();
    Ok((fit_on(backend, &devices, &input, progress)?, rows))
}

/// Train `input` on `backend` over `devices`, as `airlock train` does (the packager's
/// replay and reference models run through here).
pub fn fit_with(
    backend: Backend,
    devices: &[DeviceSpec],
    input: &FitInput,
    progress: &mut dyn Progress,
) -> Result<FitOutput, TrainError> {
    fit_on(backend, devices, input, progress)
}

/// The checkpoint a run writes for `fitted`, with `metadata` (a replay takes the run's own,
/// so that only what training computed can differ).
pub fn checkpoint_of(
    fitted: FitOutput,
    metadata: std::collections::HashMap<String, String>,
) -> Checkpoint {
    Checkpoint {
        params: fitted.params,
        optimizer_step: fitted.optimizer_step,
        optimizer: fitted.optimizer,
        metadata,
    }
}

/// The model's inputs and targets per split, normalized with statistics of the training
/// split only; the holdout labels stay raw (metrics are in the label's units).
struct Prepared {
    pre: Preprocess,
    x_train: Vec<f32>,
    y_train: Vec<f32>,
    x_val: Vec<f32>,
    y_val: Vec<f32>,
    x_hold: Vec<f32>,
    y_hold: Vec<f32>,
}

impl Prepared {
    fn new(
        description: &Description,
        data: &Dataset,
        labels: &[f32],
        splits: &Splits,
        given: Option<&Preprocess>,
    ) -> Self {
        let mut pre;
        let (x_train, x_val, x_hold) = match &data.images {
            Some(im) => {
                let plane = im.shape.height * im.shape.width;
                pre = given.cloned().unwrap_or_else(|| {
                    Preprocess::fit_channels(&im.pixels, im.shape.channels, plane, &splits.train)
                });
                (
                    pre.apply_channels(&im.pixels, plane, rows(&splits.train)),
                    pre.apply_channels(&im.pixels, plane, rows(&splits.val)),
                    pre.apply_channels(&im.pixels, plane, rows(&splits.hold)),
                )
            }
            None => {
                let t = &data.table;
                pre = given.cloned().unwrap_or_else(|| {
                    Preprocess::fit(&t.feature_names, &t.features, &splits.train)
                });
                (
                    pre.apply(&t.features, rows(&splits.train)),
                    pre.apply(&t.features, rows(&splits.val)),
                    pre.apply(&t.features, rows(&splits.hold)),
                )
            }
        };
        let (mut y_train, mut y_val) = (pick(labels, &splits.train), pick(labels, &splits.val));
        if matches!(description.task, TaskSpec::Regression) {
            let t = given
                .and_then(|g| g.target.clone())
                .unwrap_or_else(|| Preprocess::fit_target(labels, &splits.train));
            let scale = |y: &mut Vec<f32>| {
                y.iter_mut()
                    .for_each(|v| *v = ((f64::from(*v) - t.mean) / t.std) as f32);
            };
            scale(&mut y_train);
            scale(&mut y_val);
            pre.target = Some(t);
        }
        Self {
            pre,
            x_train,
            y_train,
            x_val,
            y_val,
            x_hold,
            y_hold: pick(labels, &splits.hold),
        }
    }
}

/// What the pipeline file asks for (and when the run started): its bytes, the spec, where it trains, where it writes.
struct Plan {
    started_at: String,
    pipeline_bytes: Vec<u8>,
    spec: PipelineSpec,
    /// One device, or several for data-parallel training; all of one kind.
    devices: Vec<DeviceSpec>,
    backend: Backend,
    out: PathBuf,
    /// The hosts it trains across, when several.
    hosts: Option<crate::HostGroup>,
}

impl Plan {
    /// Reads and checks the pipeline, resolves the device, checks the hosts (when it
    /// `trains`) and that the output directory is free.
    fn read(opts: &TrainOptions, trains: bool) -> Result<Self, TrainError> {
        let started_at = now();
        let pipeline_bytes = std::fs::read(&opts.pipeline).map_err(|source| {
            airlock_schemas::PipelineError::Read {
                path: opts.pipeline.clone(),
                source,
            }
        })?;
        let text = String::from_utf8_lossy(&pipeline_bytes);
        let spec = PipelineSpec::from_toml_str(&text, &opts.pipeline)?;
        let names = match &opts.device {
            Some(d) => vec![d.clone()],
            None => spec.training.device_list(),
        };
        let devices = names
            .iter()
            .map(|d| d.parse())
            .collect::<Result<Vec<DeviceSpec>, _>>()?;
        let backend = match (devices[0], opts.cpu_backend) {
            (DeviceSpec::Cpu, Some(b)) => b,
            _ => {
                for d in &devices[1..] {
                    d.resolve()?;
                }
                devices[0].resolve()?
            }
        };
        let out = match &opts.out {
            Some(o) => o.clone(),
            None => {
                let stamp = OffsetDateTime::now_utc().unix_timestamp();
                PathBuf::from("runs").join(format!(
                    "{}-{}-{stamp}",
                    spec.release.name, spec.release.version
                ))
            }
        };
        let hosts = match opts.hosts.as_ref().filter(|_| trains) {
            Some(g) => checked_hosts(g, &spec, devices.len(), &opts.pipeline)?,
            None => None,
        };
        check_out_dir(&out)?;
        Ok(Self {
            started_at,
            pipeline_bytes,
            spec,
            devices,
            backend,
            out,
            hosts,
        })
    }
}

/// The hosts a pipeline trains across (`None` for a group of one): one device each, and
/// no DP-SGD (its accounting assumes one sampler over the whole data).
fn checked_hosts(
    g: &crate::HostGroup,
    spec: &PipelineSpec,
    devices: usize,
    pipeline: &Path,
) -> Result<Option<crate::HostGroup>, TrainError> {
    g.check()?;
    if !g.is_several() {
        return Ok(None);
    }
    let refuse = |message: String| -> TrainError {
        airlock_schemas::PipelineError::Invalid {
            path: pipeline.to_owned(),
            message,
        }
        .into()
    };
    let hosts = g.addresses.len();
    if spec.privacy.is_some() {
        return Err(refuse(format!(
            "[privacy] (DP-SGD) trains on one host, not across {hosts}: its privacy accounting assumes one sampler"
        )));
    }
    if devices > 1 {
        return Err(refuse(format!(
            "training across {hosts} hosts uses one device per host; [training] names {devices} devices"
        )));
    }
    Ok(Some(g.clone()))
}

/// The data file, as an absolute path: the packager finds the data again from the
/// training record.
fn data_source(spec: &PipelineSpec, pipeline: &Path) -> Result<PathBuf, TrainError> {
    checked_data_file(&spec.data_source(pipeline), pipeline)
}

/// `source` as an absolute path, its name and the pipeline's checked.
fn checked_data_file(source: &Path, pipeline: &Path) -> Result<PathBuf, TrainError> {
    let source = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_owned());
    // Only these files' names leave the premises (in the signed provenance): check them
    // before spending time on training.
    for p in [&source, pipeline] {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        airlock_schemas::grammar::file_name(&name).map_err(|message| {
            airlock_schemas::PipelineError::Invalid {
                path: p.to_owned(),
                message,
            }
        })?;
    }
    Ok(source)
}

/// The rows of each split.
struct Splits {
    train: Vec<usize>,
    val: Vec<usize>,
    hold: Vec<usize>,
}

impl Splits {
    /// Draws the splits; none may be empty, and the train and holdout splits must hold
    /// both classes.
    fn draw(
        spec: &PipelineSpec,
        source: &Path,
        n: usize,
        labels: &[f32],
    ) -> Result<Self, TrainError> {
        let n_train = (n as f64 * spec.splits.train).round() as usize;
        let n_val = (n as f64 * spec.splits.validation).round() as usize;
        let (train, val, hold) = split_rows(n, n_train, n_val, spec.training.seed);
        let split_err = |message: String| TrainError::Split {
            path: source.to_owned(),
            message,
        };
        for (name, rows) in [("train", &train), ("validation", &val), ("holdout", &hold)] {
            if rows.is_empty() {
                return Err(split_err(format!("{n} rows leave the {name} split empty")));
            }
            if name != "validation" && !matches!(spec.task, TaskSpec::Regression) {
                let first = labels[rows[0]];
                if rows.iter().all(|&r| labels[r] == first) {
                    return Err(split_err(format!(
                        "the {name} split ({} rows) holds only one class of label {:?}",
                        rows.len(),
                        spec.data.label
                    )));
                }
            }
        }
        Ok(Self { train, val, hold })
    }
}

/// The row indices of a split, as an iterator.
fn rows(r: &[usize]) -> impl Iterator<Item = usize> + '_ {
    r.iter().copied()
}

/// The labels of `rows`.
fn pick(labels: &[f32], rows: &[usize]) -> Vec<f32> {
    rows.iter().map(|&r| labels[r]).collect()
}

/// What `fit` trains on: the prepared rows and the hyperparameters (and, with
/// `[privacy]`, DP-SGD calibrated to its budget, seeded by `secret`).
fn fit_input(
    spec: &PipelineSpec,
    description: &Description,
    p: &Prepared,
    secret: Option<[u8; 32]>,
    canaries: Option<&Canaries>,
) -> Result<FitInput, TrainError> {
    let (mut x_train, mut y_train) = (p.x_train.clone(), p.y_train.clone());
    if let Some(c) = canaries {
        c.add_to(&mut x_train, &mut y_train, description.input_len());
    }
    let dp = match (&spec.privacy, secret) {
        (None, _) => None,
        (Some(_), None) => {
            return Err(TrainError::Privacy(format!(
                "the run's noise secret ({DP_SECRET_FILE}) is missing"
            )));
        }
        (Some(privacy), Some(secret)) => {
            let rows = y_train.len();
            Some(
                DpSgd::calibrate(
                    privacy.target_epsilon,
                    privacy.delta_for(rows),
                    privacy.max_grad_norm,
                    spec.training.batch_size,
                    rows,
                    spec.training.epochs,
                    secret,
                )
                .map_err(TrainError::Privacy)?,
            )
        }
    };
    Ok(FitInput {
        description: description.clone(),
        x_train,
        y_train,
        x_val: p.x_val.clone(),
        y_val: p.y_val.clone(),
        learning_rate: spec.optimizer.learning_rate,
        weight_decay: spec.optimizer.weight_decay,
        epochs: spec.training.epochs,
        batch_size: spec.training.batch_size,
        seed: spec.training.seed,
        dp,
        initial: None,
        proximal_mu: None,
        hosts: None,
    })
}

/// The (ε, δ) guarantee DP-SGD gives `input` under the pipeline's `[privacy]` (none
/// without it).
pub fn privacy_guarantee(
    spec: &PipelineSpec,
    input: &FitInput,
) -> Result<Option<PrivacyGuarantee>, TrainError> {
    let (Some(privacy), Some(dp)) = (&spec.privacy, &input.dp) else {
        return Ok(None);
    };
    let delta = privacy.delta_for(input.y_train.len());
    let per_epoch = dp
        .epsilon_per_epoch(input.epochs, delta)
        .map_err(TrainError::Privacy)?;
    Ok(Some(PrivacyGuarantee {
        mechanism: PrivacyMechanism::DpSgd,
        epsilon: per_epoch.last().copied().unwrap_or(0.0),
        delta,
        epsilon_per_epoch: per_epoch,
        noise_multiplier: dp.noise_multiplier,
        max_grad_norm: dp.max_grad_norm,
        sampling_rate: dp.sampling_rate,
        steps: (dp.steps_per_epoch * input.epochs) as u64,
        noise_secret_sha256: hex::encode(Sha256::digest(dp.secret)),
        audit: None,
    }))
}

/// What the one-run audit proves of the model just trained (the packager audits again,
/// on the weights its replay reproduces, and signs that).
fn audit_line(
    description: &Description,
    fitted: &FitOutput,
    canaries: &Canaries,
    p: &PrivacyGuarantee,
) -> String {
    let a = crate::dp::audit(description, &fitted.params, canaries, p.delta);
    format!(
        "one-run privacy audit: {} of {} guesses about {} canaries right: ε ≥ {:.3} at 95 % confidence (claimed {:.3})",
        a.correct, a.guesses, a.canaries, a.epsilon_lower_bound, p.epsilon
    )
}

/// A DP-SGD run's noise secret, from the operating system (never from the seed).
fn draw_secret(spec: &PipelineSpec, pipeline: &Path) -> Result<Option<[u8; 32]>, TrainError> {
    if spec.privacy.is_none() {
        return Ok(None);
    }
    let mut s = [0u8; 32];
    getrandom::fill(&mut s).map_err(|e| {
        TrainError::io(
            "draw the DP noise secret for",
            pipeline,
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(Some(s))
}

/// Write the DP noise secret, readable by its owner only.
fn write_secret(path: &Path, secret: &[u8; 32]) -> Result<(), TrainError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .map_err(|e| TrainError::io("create", path, e))?;
    f.write_all(format!("{}\n", hex::encode(secret)).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| TrainError::io("write", path, e))
}

/// The hidden staging directory beside the run directory, with the run's log open in it.
struct Staging {
    dir: tempfile::TempDir,
    log_path: PathBuf,
    reporter: Reporter,
}

impl Staging {
    fn create(out: &Path, progress: bool) -> Result<Self, TrainError> {
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .map_err(|e| TrainError::io("create directory", &parent, e))?;
        let dir = tempfile::Builder::new()
            .prefix(".airlock-run-")
            .tempdir_in(&parent)
            .map_err(|e| TrainError::io("create a staging directory in", &parent, e))?;
        let log_path = dir.path().join(LOG_FILE);
        let log =
            std::fs::File::create(&log_path).map_err(|e| TrainError::io("create", &log_path, e))?;
        Ok(Self {
            dir,
            log_path,
            reporter: Reporter::new(log, progress),
        })
    }
}

/// The holdout evaluation of the model card: at the pipeline's threshold, with bootstrap
/// intervals seeded from the training seed, and per `[data] subgroups` entry.
fn holdout_evaluation(
    spec: &PipelineSpec,
    source: &Path,
    table: &Table,
    splits: &Splits,
    hold_logits: &[f32],
    y_hold: &[f32],
) -> Result<Evaluation, TrainError> {
    let probs: Vec<f64> = hold_logits
        .iter()
        .map(|&z| 1.0 / (1.0 + (-f64::from(z)).exp()))
        .collect();
    evaluate(
        &probs,
        y_hold,
        &splits.hold,
        &subgroup_inputs(spec, table),
        &spec.evaluation,
        spec.training.seed,
    )
    .map_err(|message| TrainError::Split {
        path: source.to_owned(),
        message,
    })
}

/// The `[data] subgroups` entries with their columns as loaded.
fn subgroup_inputs<'a>(spec: &'a PipelineSpec, table: &'a Table) -> Vec<SubgroupInput<'a>> {
    spec.data
        .subgroups
        .iter()
        .zip(&table.groups)
        .map(|(spec, column)| SubgroupInput { spec, column })
        .collect()
}

/// One line of the log on the evaluation: the rates at the threshold with their intervals.
fn evaluation_line(e: &Evaluation) -> String {
    let parts: Vec<String> = e
        .metrics
        .iter()
        .filter(|m| {
            matches!(
                m.name.as_str(),
                "sensitivity" | "specificity" | "ppv" | "npv"
            )
        })
        .map(|m| match (m.value, m.low, m.high) {
            (Some(v), Some(l), Some(h)) => format!("{} {v:.3} [{l:.3}, {h:.3}]", m.name),
            (Some(v), _, _) => format!("{} {v:.3}", m.name),
            _ => format!("{} undefined", m.name),
        })
        .collect();
    format!(
        "evaluation at threshold {}: {} ({} resamples, {:.0}% intervals); {} subgroup tables",
        e.threshold,
        parts.join(", "),
        e.bootstrap.resamples,
        e.bootstrap.confidence * 100.0,
        e.subgroups.len()
    )
}

/// Holdout metrics per task (and the holdout's raw outputs), from the host copy of the
/// weights through the CPU backend. A regression's outputs are put back in the label's
/// units first.
fn holdout_metrics(
    description: &Description,
    fitted: &FitOutput,
    p: &Prepared,
) -> (Holdout, Vec<f32>) {
    let d = Default::default();
    let net = to_net::<Flex>(description, &fitted.params, false, &d);
    let mut out = predict_outputs(&net, &p.x_hold, description.input_len(), &d);
    let y = &p.y_hold;
    let metrics = match &description.task {
        TaskSpec::Binary => Holdout::Binary(HoldoutMetrics {
            loss: log_loss(&out, y),
            accuracy: accuracy(&out, y),
            roc_auc: roc_auc(&out, y).unwrap_or(0.5),
            positive_rate: y.iter().filter(|&&v| v > 0.5).count() as f64 / y.len() as f64,
            roc_curve: roc_curve(&out, y, 101),
        }),
        TaskSpec::Multiclass { classes } => {
            Holdout::Multiclass(multiclass_metrics(classes.len(), &out, y))
        }
        TaskSpec::Regression => {
            if let Some(t) = &p.pre.target {
                out.iter_mut()
                    .for_each(|z| *z = (f64::from(*z) * t.std + t.mean) as f32);
            }
            Holdout::Regression(regression_metrics(&out, y))
        }
    };
    (metrics, out)
}

/// The log's line on the holdout metrics.
fn holdout_line(h: &Holdout, rows: usize) -> String {
    match h {
        Holdout::Binary(b) => format!(
            "holdout: ROC AUC {:.4}, accuracy {:.4}, loss {:.4} ({rows} rows)",
            b.roc_auc, b.accuracy, b.loss
        ),
        Holdout::Multiclass(m) => format!(
            "holdout: accuracy {:.4}, macro-F1 {:.4}, loss {:.4} ({rows} rows)",
            m.accuracy, m.macro_f1, m.loss
        ),
        Holdout::Regression(r) => format!(
            "holdout: RMSE {:.4}, MAE {:.4}, R² {:.4} ({rows} rows)",
            r.rmse, r.mae, r.r2
        ),
    }
}

/// The training record; every field the packager signs matches its grammar, or nothing
/// is written.
fn training_record(
    opts: &TrainOptions,
    plan: &Plan,
    data: &Dataset,
    splits: &Splits,
    fitted: &FitOutput,
    holdout: Holdout,
    rows_per_second: f64,
) -> Result<TrainingRecord, TrainError> {
    let spec = &plan.spec;
    let (git_commit, git_dirty) = git_state(opts.pipeline.parent().unwrap_or(Path::new(".")));
    let record = TrainingRecord {
        schema_version: TRAINING_RECORD_VERSION,
        model_name: spec.release.name.clone(),
        model_version: spec.release.version.clone(),
        pipeline: FileDigest {
            path: std::fs::canonicalize(&opts.pipeline)
                .unwrap_or_else(|_| opts.pipeline.clone())
                .display()
                .to_string(),
            sha256: hex::encode(Sha256::digest(&plan.pipeline_bytes)),
        },
        dataset: DatasetFingerprint {
            files: data.files.clone(),
        },
        splits: SplitSizes {
            train: splits.train.len() as u64,
            validation: splits.val.len() as u64,
            holdout: splits.hold.len() as u64,
        },
        hyperparameters: Hyperparameters {
            task: spec.task.clone(),
            model: spec.model.clone(),
            features: spec.data.features.clone(),
            label: spec.data.label.clone(),
            optimizer: spec.optimizer.clone(),
            epochs: spec.training.epochs,
            batch_size: spec.training.batch_size,
        },
        seed: spec.training.seed,
        backend: BackendInfo {
            name: plan.backend.name().to_owned(),
            device: plan.devices[0].to_string(),
            devices: if plan.devices.len() > 1 {
                device_names(&plan.devices)
            } else {
                Vec::new()
            },
            threads: threads(),
            hosts: plan.hosts.as_ref().map(|g| g.addresses.len() as u32),
        },
        epochs: fitted.epochs.clone(),
        holdout,
        train_rows_per_second: rows_per_second,
        git_commit,
        git_dirty,
        airlock_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at: plan.started_at.clone(),
        finished_at: now(),
        evaluation: None,
        privacy: None,
        federation: None,
        burst: None,
    };
    Ok(record)
}

/// Writes the checkpoint, the preprocessing, the record and the pipeline snapshot into `dir`.
/// The fitted tensors move into the checkpoint (a model of a GiB is not copied again).
fn write_run_files(
    dir: &Path,
    plan: &Plan,
    fitted: FitOutput,
    pre: &Preprocess,
    record: &TrainingRecord,
) -> Result<(), TrainError> {
    let spec = &plan.spec;
    let ckpt = checkpoint_of(
        fitted,
        [
            ("epochs".to_owned(), spec.training.epochs.to_string()),
            ("seed".to_owned(), spec.training.seed.to_string()),
            ("backend".to_owned(), plan.backend.name().to_owned()),
            ("features".to_owned(), spec.data.features.join(",")),
            ("model".to_owned(), spec.model.kind().to_owned()),
            ("finished_at".to_owned(), record.finished_at.clone()),
        ]
        .into_iter()
        .collect(),
    );
    ckpt.write(&dir.join(CHECKPOINT_FILE))?;
    write_json(&dir.join(PREPROCESS_FILE), pre)?;
    write_json(&dir.join(RECORD_FILE), record)?;
    // The exact pipeline bytes trained from (their digest is in the record): the packager
    // reads them here, so later edits to the file's destinations or keys do not matter.
    let snapshot = dir.join(PIPELINE_SNAPSHOT_FILE);
    std::fs::write(&snapshot, &plan.pipeline_bytes)
        .map_err(|e| TrainError::io("write", &snapshot, e))
}

/// Makes the staged files durable, then renames the staging directory into place.
fn publish_run(staging: tempfile::TempDir, out: &Path) -> Result<(), TrainError> {
    let dir = staging.path();
    for name in [
        CHECKPOINT_FILE,
        PREPROCESS_FILE,
        RECORD_FILE,
        PIPELINE_SNAPSHOT_FILE,
        LOG_FILE,
    ] {
        let p = dir.join(name);
        std::fs::File::open(&p)
            .and_then(|f| f.sync_all())
            .map_err(|e| TrainError::io("sync", &p, e))?;
    }
    let staged = staging.keep();
    if out.exists() {
        // An empty directory (checked by `Plan::read`) may be replaced.
        std::fs::remove_dir(out).map_err(|e| TrainError::io("replace", out, e))?;
    }
    if let Err(e) = std::fs::rename(&staged, out) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(TrainError::io("move the finished run into", out, e));
    }
    Ok(())
}

fn check_out_dir(out: &Path) -> Result<(), TrainError> {
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                Err(TrainError::OutputExists {
                    path: out.to_owned(),
                })
            } else {
                Ok(())
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(TrainError::OutputExists {
            path: out.to_owned(),
        }),
        Err(e) => Err(TrainError::io("inspect", out, e)),
    }
}

fn device_names(devices: &[DeviceSpec]) -> Vec<String> {
    devices.iter().map(ToString::to_string).collect()
}

fn fit_on(
    backend: Backend,
    devices: &[DeviceSpec],
    input: &FitInput,
    progress: &mut dyn Progress,
) -> Result<FitOutput, TrainError> {
    // The CPU backends have one device: data-parallel replicas on it share its threads.
    let cpus = vec![Default::default(); devices.len()];
    match backend {
        Backend::Flex => fit::<Autodiff<Flex>>(input, &cpus, progress),
        Backend::NdArray => {
            fit::<Autodiff<NdArray>>(input, &vec![Default::default(); devices.len()], progress)
        }
        Backend::Cuda => fit_cuda(devices, input, progress),
    }
}

#[cfg(feature = "cuda")]
fn fit_cuda(
    devices: &[DeviceSpec],
    input: &FitInput,
    progress: &mut dyn Progress,
) -> Result<FitOutput, TrainError> {
    use burn::backend::Cuda;
    use burn::backend::cuda::CudaDevice;
    let devices: Vec<CudaDevice> = devices
        .iter()
        .map(|d| match d {
            DeviceSpec::Cuda(i) => CudaDevice::new(*i),
            DeviceSpec::Cpu => CudaDevice::new(0),
        })
        .collect();
    fit::<Autodiff<Cuda>>(input, &devices, progress)
}

#[cfg(not(feature = "cuda"))]
fn fit_cuda(
    devices: &[DeviceSpec],
    _input: &FitInput,
    _progress: &mut dyn Progress,
) -> Result<FitOutput, TrainError> {
    Err(airlock_infer::DeviceError::CudaNotBuilt { device: devices[0] }.into())
}

fn threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), TrainError> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| TrainError::io("serialize", path, e.into()))?;
    text.push('\n');
    std::fs::write(path, text).map_err(|e| TrainError::io("write", path, e))
}

fn git_state(dir: &Path) -> (Option<String>, Option<bool>) {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    // Only a git object id is recorded (and signed): anything else git printed is dropped.
    let commit =
        git(&["rev-parse", "HEAD"]).filter(|s| airlock_schemas::grammar::git_commit(s).is_ok());
    let dirty = commit
        .as_ref()
        .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    (commit, dirty)
}

/// Shows progress on stderr (a bar per epoch on a terminal, a line per epoch always) and
/// keeps the same lines in the run's log.
struct Reporter {
    log: std::io::BufWriter<std::fs::File>,
    bar: Option<ProgressBar>,
    show_bars: bool,
    epochs: usize,
    error: Option<std::io::Error>,
}

impl Reporter {
    fn new(log: std::fs::File, show_bars: bool) -> Self {
        Self {
            log: std::io::BufWriter::new(log),
            bar: None,
            show_bars,
            epochs: 0,
            error: None,
        }
    }

    fn line(&mut self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
        if let Err(e) = writeln!(self.log, "{} {text}", now()) {
            self.error.get_or_insert(e);
        }
    }

    fn finish(mut self) -> std::io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.log.flush()
    }
}

impl Progress for Reporter {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        self.epochs = epochs;
        if self.show_bars {
            let bar = ProgressBar::new(batches as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "epoch {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("{epoch}/{epochs}"));
            bar.enable_steady_tick(Duration::from_millis(200));
            self.bar = Some(bar);
        }
    }

    fn batch(&mut self, done: usize, loss: f64, accuracy: f64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done as u64);
            bar.set_message(format!("loss {loss:.4} acc {accuracy:.4}"));
        }
    }

    fn epoch_end(&mut self, m: &EpochMetrics) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let acc = |a: Option<f64>| a.map(|a| format!(" acc {a:.4}")).unwrap_or_default();
        self.line(&format!(
            "epoch {:>3}/{}  train loss {:.4}{}  validation loss {:.4}{}  ({:.2}s)",
            m.epoch,
            self.epochs,
            m.train_loss,
            acc(m.train_accuracy),
            m.validation_loss,
            acc(m.validation_accuracy),
            m.seconds
        ));
    }
}
