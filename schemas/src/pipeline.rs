//! `pipelines/*.toml`: what to train, on which data, and how.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{DataFormat, ModelSpec, TaskSpec};

/// A declarative pipeline file (`pipelines/<model>.toml`).
///
/// Paths inside it are relative to the file itself, so a pipeline means the same
/// thing whatever directory airlock is started from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    /// The model being released: its name and version name the release bundle.
    pub release: ReleaseSpec,
    /// The on-prem data: where it is, which columns are identifiers, features and label.
    pub data: DataSpec,
    /// How rows are divided into train, validation and holdout sets.
    pub splits: SplitSpec,
    /// What the label is: `binary` (default), `multiclass` or `regression`.
    #[serde(default, skip_serializing_if = "TaskSpec::is_binary")]
    pub task: TaskSpec,
    /// The model architecture.
    pub model: ModelSpec,
    /// The optimizer.
    pub optimizer: OptimizerSpec,
    /// The training loop: epochs, batch size, seed, device.
    pub training: TrainingSpec,
    /// Leak-check thresholds for the packager (defaults when absent).
    #[serde(default)]
    pub leak: crate::LeakSpec,
    /// How the holdout is evaluated for the model card and the review (defaults when
    /// absent).
    #[serde(default)]
    pub evaluation: crate::EvaluationSpec,
    /// Differentially private training (DP-SGD): with this section the run trains with
    /// per-example clipping and Gaussian noise calibrated to `target_epsilon`, and the
    /// release carries the spent budget in its signed statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacySpec>,
    /// Real signing keys. Without this section `airlock run` is a DEMO: it makes local demo
    /// keys and approves with demo officers. With it, releases wait for real officers.
    #[serde(default)]
    pub signing: Option<SigningSpec>,
    /// Where an approved release goes (`airlock run`'s publish stage). Without it a DEMO
    /// run publishes to the local file registry `registry/`; with it, `[signing]` is required.
    #[serde(default)]
    pub publish: Option<PublishSpec>,
    /// A SageMaker real-time endpoint to serve the release from (`airlock run`'s deploy
    /// stage). Needs `[publish.sagemaker]` and an `s3://` registry.
    #[serde(default)]
    pub deploy: Option<DeploySpec>,
    /// Cloud burst (`airlock burst`): SageMaker training jobs on an approved export of
    /// de-identified training rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<crate::BurstSpec>,
}

/// The publish stage's destinations and the publisher's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishSpec {
    /// Registry URI: `s3://bucket[/prefix]` or `file:///absolute/path`.
    pub registry: String,
    /// Residency policy (which regions and accounts may receive the release), relative to
    /// the pipeline file.
    pub residency: PathBuf,
    /// The publisher's private key, relative to the pipeline file. Its public key must be a
    /// `publisher` key of the trust policy.
    pub key: PathBuf,
    /// The residency audit log, relative to the pipeline file.
    #[serde(default = "default_audit_log")]
    pub audit_log: PathBuf,
    /// AWS region of the S3 client and SageMaker (default: the AWS configuration's).
    #[serde(default)]
    pub region: Option<String>,
    /// Register the release in the SageMaker Model Registry as well.
    #[serde(default)]
    pub sagemaker: Option<SageMakerSpec>,
    /// While `airlock run` waits for approvals, stage the bundle for the officers in this
    /// registry under `review/<name>/<version>/` (residency-checked, leak-scanned and
    /// audited as a publish is; never under `models/`). `false` keeps the bundle on the
    /// premises until it is approved: the officers then need it by other means.
    #[serde(default = "default_true")]
    pub stage_for_review: bool,
}

fn default_true() -> bool {
    true
}

fn default_audit_log() -> PathBuf {
    PathBuf::from("residency-audit.log")
}

/// SageMaker Model Registry settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SageMakerSpec {
    /// The serving image (an ECR URI of an image that runs `airlock serve`).
    pub image: String,
    /// Model package group (default: the model's name).
    #[serde(default)]
    pub model_package_group: Option<String>,
}

/// A SageMaker real-time endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    /// Endpoint name: created, or updated to this release.
    pub endpoint: String,
    /// IAM role SageMaker assumes to pull the image and the model data.
    pub role: String,
    /// Instance type.
    #[serde(default = "default_instance_type")]
    pub instance_type: String,
    /// Instance count.
    #[serde(default = "default_instance_count")]
    pub instance_count: u32,
    /// Seconds to wait for the endpoint to be InService.
    #[serde(default = "default_deploy_timeout")]
    pub timeout_seconds: u64,
    /// Seconds between two looks at the endpoint's status while waiting.
    #[serde(default = "default_deploy_poll")]
    pub poll_seconds: u64,
    /// Capacity that follows demand: once the endpoint is InService, its variant
    /// (`AllTraffic`) is registered with Application Auto Scaling between `min_instances`
    /// and `max_instances`, with a target-tracking policy on invocations per instance.
    /// Without this section a deploy leaves whatever scaling is registered for the endpoint
    /// as it is (it neither registers nor removes any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,
}

/// `[deploy.autoscaling]`: Application Auto Scaling of the endpoint's production variant,
/// a scalable target (`sagemaker:variant:DesiredInstanceCount`) and one target-tracking
/// policy on the predefined metric `SageMakerVariantInvocationsPerInstance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoscalingSpec {
    /// Fewest instances the variant is scaled in to (at least 1: a real-time endpoint
    /// variant cannot run on none).
    pub min_instances: u32,
    /// Most instances the variant is scaled out to (at least `min_instances`, at most
    /// 1000). `deploy.instance_count`, what the endpoint starts with, must lie between the
    /// two.
    pub max_instances: u32,
    /// The value the policy keeps the metric `SageMakerVariantInvocationsPerInstance` at:
    /// the average number of requests per minute each instance of the variant receives.
    /// Above it the variant scales out, below it in. Finite and above 0.
    pub target_invocations_per_instance: f64,
    /// Seconds after a scale-in before another scale-in may start (default 300; at most
    /// 86400, a day).
    #[serde(default = "default_scale_in_cooldown")]
    pub scale_in_cooldown_seconds: u32,
    /// Seconds after a scale-out before another scale-out may start (default 60; at most
    /// 86400, a day).
    #[serde(default = "default_scale_out_cooldown")]
    pub scale_out_cooldown_seconds: u32,
}

fn default_scale_in_cooldown() -> u32 {
    300
}

fn default_scale_out_cooldown() -> u32 {
    60
}

impl AutoscalingSpec {
    /// Most instances `max_instances` may name. Not a service limit (Application Auto
    /// Scaling takes any 32-bit count): a guard against a slipped digit, since every
    /// instance up to the maximum may be started, and billed, by the policy alone.
    /// SageMaker's default per-account quotas of endpoint instances are in the tens per
    /// instance type, so a maximum beyond 1000 could never be reached anyway without a
    /// quota raise, and one that large is almost certainly a typo.
    pub const MAX_INSTANCES: u32 = 1000;
    /// Longest cooldown, in seconds: a day. A longer one would leave the variant unable to
    /// follow demand for days after one scaling step.
    pub const MAX_COOLDOWN_SECONDS: u32 = 86_400;

    /// Check the settings against each other and against `instance_count`, the instances
    /// the endpoint starts with. Returns the first problem found.
    pub fn validate(&self, instance_count: u32) -> Result<(), String> {
        let (min, max) = (self.min_instances, self.max_instances);
        if min == 0 {
            return Err(
                "deploy.autoscaling.min_instances must be at least 1: a SageMaker \
                 real-time endpoint variant cannot be scaled in to no instances"
                    .into(),
            );
        }
        if max < min {
            return Err(format!(
                "deploy.autoscaling.max_instances ({max}) must be at least \
                 deploy.autoscaling.min_instances ({min})"
            ));
        }
        if max > Self::MAX_INSTANCES {
            return Err(format!(
                "deploy.autoscaling.max_instances ({max}) must be at most {}: a maximum \
                 that large is almost certainly a typo, and the policy alone may start (and \
                 bill) every instance up to it",
                Self::MAX_INSTANCES
            ));
        }
        if !(min..=max).contains(&instance_count) {
            return Err(format!(
                "deploy.instance_count ({instance_count}) must lie between \
                 deploy.autoscaling.min_instances ({min}) and max_instances ({max}): the \
                 endpoint starts with instance_count instances"
            ));
        }
        let target = self.target_invocations_per_instance;
        if !(target.is_finite() && target > 0.0) {
            return Err(format!(
                "deploy.autoscaling.target_invocations_per_instance ({target}) must be a \
                 finite number above 0 (requests per minute per instance)"
            ));
        }
        for (name, secs) in [
            ("scale_in_cooldown_seconds", self.scale_in_cooldown_seconds),
            (
                "scale_out_cooldown_seconds",
                self.scale_out_cooldown_seconds,
            ),
        ] {
            if secs > Self::MAX_COOLDOWN_SECONDS {
                return Err(format!(
                    "deploy.autoscaling.{name} ({secs}) must be at most {} (a day)",
                    Self::MAX_COOLDOWN_SECONDS
                ));
            }
        }
        Ok(())
    }

    /// What is registered, in words: `autoscaling 1..4 at 70 invocations/instance`.
    pub fn summary(&self) -> String {
        format!(
            "autoscaling {}..{} at {} invocations/instance",
            self.min_instances, self.max_instances, self.target_invocations_per_instance
        )
    }
}

fn default_deploy_poll() -> u64 {
    15
}

fn default_instance_type() -> String {
    "ml.m5.large".to_owned()
}

fn default_instance_count() -> u32 {
    1
}

fn default_deploy_timeout() -> u64 {
    1800
}

/// The keys a real release is signed and approved with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SigningSpec {
    /// Trust policy (builder and officer keys, k of n), relative to the pipeline file.
    pub trust: PathBuf,
    /// The CI builder's private key, relative to the pipeline file.
    pub builder_key: PathBuf,
    /// Base of the predicate and build types the packager writes (see
    /// [`crate::UriBase`]); default `https://airlock.dev`. Point it at a domain you
    /// control; the trust policy that verifies these releases names the same base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_base: Option<String>,
}

/// Name and version of the model a pipeline releases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSpec {
    /// Model name: `[a-z0-9][a-z0-9-]{0,63}`.
    pub name: String,
    /// Version, SemVer 2.0 (`1.2.0`, `1.3.0-rc.1`; no `v` prefix).
    pub version: String,
    /// What the model is for, shown on the model card.
    #[serde(default)]
    pub intended_use: Option<String>,
    /// Allow a real (non-DEMO) release from a run with no git commit recorded or with
    /// uncommitted changes. Off by default: the packager refuses such a run.
    #[serde(default)]
    pub allow_uncommitted: bool,
    /// The model is served on the premises only: its card says so, `airlock route` sends
    /// none of its requests to the cloud, and `airlock publish` refuses a cloud registry.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub onprem_only: bool,
}

/// The training data, which never leaves the premises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// The data file, relative to the pipeline file: a CSV with a header row, a Parquet
    /// file, or (`format = "images"`) the manifest CSV of an image folder.
    pub source: PathBuf,
    /// `csv` (default), `parquet` or `images`.
    #[serde(default, skip_serializing_if = "DataFormat::is_csv")]
    pub format: DataFormat,
    /// With `format = "images"`: the manifest column holding each image's file name,
    /// relative to the manifest's folder (default `file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_column: Option<String>,
    /// Columns that identify a person (directly or in combination). They are never
    /// features, and the packager's leak checks hunt for their values.
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// Numeric feature columns, in the order the model sees them (empty for images: the
    /// pixels are the input).
    #[serde(default)]
    pub features: Vec<String>,
    /// Label column: 0 or 1 (binary), a class name (multi-class) or a number (regression).
    pub label: String,
    /// Columns the holdout metrics are also reported per group of (age band, sex, site):
    /// `"sex"` or `{ column = "age", bands = [30, 45, 60] }`. Groups smaller than
    /// `evaluation.min_group_rows` are suppressed.
    #[serde(default)]
    pub subgroups: Vec<crate::SubgroupSpec>,
}

/// Fractions of the rows in each split; they must add up to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitSpec {
    /// Rows the model is fitted on (and the standardization statistics computed from).
    pub train: f64,
    /// Rows used to report validation loss and accuracy after every epoch.
    pub validation: f64,
    /// Rows never seen in training: final metrics, and the non-member set of the
    /// membership-inference check.
    pub holdout: f64,
}

/// Optimizer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSpec {
    /// Optimizer family.
    pub kind: OptimizerKind,
    /// Learning rate.
    pub learning_rate: f64,
    /// L2 weight decay added to the gradient (0 for none).
    #[serde(default)]
    pub weight_decay: f64,
}

/// Supported optimizers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OptimizerKind {
    /// Adam (Kingma & Ba, 2015).
    Adam,
}

/// The training loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingSpec {
    /// Passes over the training split.
    pub epochs: usize,
    /// Rows per optimizer step.
    pub batch_size: usize,
    /// Seed for the split, the initial weights, shuffling and dropout.
    pub seed: u64,
    /// `cpu` (the default), `cuda` or `cuda:N`; the command line's `--device` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Data-parallel training over several devices of this machine (`["cpu", "cpu"]`,
    /// `["cuda:0", "cuda:1"]`): each holds a replica of the model, trains on its share of
    /// every batch, and the gradients are summed across devices (burn-collective's
    /// all-reduce) before each step. At most [`MAX_TRAINING_DEVICES`], all of one kind;
    /// not with `device`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Vec<String>>,
}

/// `[privacy]`: DP-SGD (Abadi et al. 2016) with Poisson sampling, accounted with Rényi
/// differential privacy. The privacy unit is one row of the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacySpec {
    /// The mechanism: `"dp-sgd"` (the only one so far).
    pub mode: crate::PrivacyMechanism,
    /// The ε to spend over all of training; the noise multiplier is the smallest that
    /// stays within it.
    pub target_epsilon: f64,
    /// δ; it must be below one over the training rows. Default: the largest power of ten
    /// below `1 / (10 · training rows)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
    /// Each example's gradient is clipped to this L2 norm before noise is added.
    #[serde(default = "default_max_grad_norm")]
    pub max_grad_norm: f64,
    /// The one-run privacy audit (Steinke, Nasr, Jagielski 2023): canaries trained on at
    /// random, then guessed from the model; the release is refused when the audit's lower
    /// bound on ε exceeds the claimed ε.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<PrivacyAuditSpec>,
}

/// `[privacy.audit]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyAuditSpec {
    /// Canary examples; each is trained on with probability ½ (1 to 100 000).
    pub canaries: usize,
}

fn default_max_grad_norm() -> f64 {
    1.0
}

impl PrivacySpec {
    /// δ for `train_rows` training rows: the pipeline's, else the default.
    pub fn delta_for(&self, train_rows: usize) -> f64 {
        self.delta.unwrap_or_else(|| {
            let bound = 1.0 / (10.0 * train_rows.max(1) as f64);
            10f64.powf(bound.log10().floor())
        })
    }

    fn validate(&self, model: &ModelSpec, training: &TrainingSpec) -> Result<(), String> {
        if !(self.target_epsilon.is_finite()
            && self.target_epsilon > 0.0
            && self.target_epsilon <= 100.0)
        {
            return Err(format!(
                "privacy.target_epsilon = {} must be above 0 and at most 100",
                self.target_epsilon
            ));
        }
        if let Some(d) = self.delta
            && !(d > 0.0 && d < 1.0)
        {
            return Err(format!(
                "privacy.delta = {d} must be strictly between 0 and 1"
            ));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm > 0.0) {
            return Err(format!(
                "privacy.max_grad_norm = {} must be above 0",
                self.max_grad_norm
            ));
        }
        if let Some(a) = &self.audit
            && !(1..=100_000).contains(&a.canaries)
        {
            return Err(format!(
                "privacy.audit.canaries = {} must be between 1 and 100000",
                a.canaries
            ));
        }
        if !matches!(model, ModelSpec::Mlp(_)) {
            return Err(
                "[privacy] (DP-SGD) trains MLP models; per-example clipping of convolution layers is not supported yet"
                    .into(),
            );
        }
        if training.device_list().len() > 1 {
            return Err("[privacy] (DP-SGD) trains on one device: remove training.devices".into());
        }
        Ok(())
    }
}

/// The most devices `training.devices` may list.
pub const MAX_TRAINING_DEVICES: usize = 16;

impl TrainingSpec {
    /// The devices training runs on, as the pipeline names them: `training.devices`, or
    /// `training.device` alone, or `cpu`.
    pub fn device_list(&self) -> Vec<String> {
        match (&self.devices, &self.device) {
            (Some(list), _) => list.clone(),
            (None, Some(d)) => vec![d.clone()],
            (None, None) => vec!["cpu".to_owned()],
        }
    }

    /// `device` and `devices` follow their grammars and do not contradict each other.
    fn validate_devices(&self) -> Result<(), String> {
        if let Some(d) = &self.device {
            crate::grammar::pipeline_device(d)?;
        }
        let Some(list) = &self.devices else {
            return Ok(());
        };
        if self.device.is_some() {
            return Err("set training.device or training.devices, not both".to_owned());
        }
        if list.is_empty() || list.len() > MAX_TRAINING_DEVICES {
            return Err(format!(
                "training.devices lists {} devices; between 1 and {MAX_TRAINING_DEVICES} are allowed",
                list.len()
            ));
        }
        for (i, d) in list.iter().enumerate() {
            crate::grammar::recorded_device(d)
                .map_err(|e| format!("training.devices[{i}]: {e}"))?;
        }
        if list.iter().any(|d| d == "cpu") && list.iter().any(|d| d != "cpu") {
            return Err("training.devices mixes cpu and cuda devices; list one kind".to_owned());
        }
        let mut cuda: Vec<&String> = list.iter().filter(|d| *d != "cpu").collect();
        cuda.sort();
        if cuda.windows(2).any(|w| w[0] == w[1]) {
            return Err("training.devices lists a CUDA device twice".to_owned());
        }
        Ok(())
    }
}

/// Why a pipeline file was refused.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The file could not be read.
    #[error("cannot read pipeline file {}", path.display())]
    Read {
        /// The pipeline file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema (unknown key, wrong type...).
    #[error("invalid pipeline file {}: {message}", path.display())]
    Parse {
        /// The pipeline file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parses but says something impossible.
    #[error("invalid pipeline file {}: {message}", path.display())]
    Invalid {
        /// The pipeline file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl PipelineError {
    /// What kind of failure this is: always [`crate::ErrorKind::BadInput`] (a pipeline
    /// file that cannot be read is the operator's to fix, like one that does not parse).
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            Self::Read { .. } | Self::Parse { .. } | Self::Invalid { .. } => {
                crate::ErrorKind::BadInput
            }
        }
    }
}

impl PipelineSpec {
    /// Parse and validate a pipeline from TOML text; `path` is only used in messages.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<Self, PipelineError> {
        let spec: PipelineSpec = toml::from_str(text).map_err(|e| PipelineError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        spec.validate().map_err(|message| PipelineError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(spec)
    }

    /// Read, parse and validate a pipeline file.
    pub fn load(path: &Path) -> Result<Self, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|source| PipelineError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml_str(&text, path)
    }

    /// Check what the types cannot express. Returns the first problem found.
    pub fn validate(&self) -> Result<(), String> {
        self.validate_leak_patterns()?;
        self.validate_grammars()?;
        self.model.validate()?;
        self.task.validate()?;
        self.validate_family()?;
        self.validate_columns()?;
        self.validate_splits()?;
        self.validate_training()?;
        self.validate_evaluation()?;
        if let Some(p) = &self.privacy {
            p.validate(&self.model, &self.training)?;
        }
        if let Some(b) = &self.burst {
            b.validate()?;
        }
        self.validate_publishing()
    }

    /// `[evaluation]` and `[data] subgroups`: the settings within bounds (see
    /// [`crate::EvaluationSpec::validate`]), at most [`crate::evaluation::MAX_SUBGROUP_TABLES`]
    /// subgroup entries, each on a plain column named once that is not the label, bands
    /// finite and strictly increasing, and no unbanded subgroup on an identifier column
    /// (its values would be copied into the model card as group labels). That the
    /// columns are in the data's header, and that a column has at most
    /// [`crate::evaluation::MAX_GROUPS`] distinct values in the holdout, is checked when the
    /// data is loaded.
    pub fn validate_evaluation(&self) -> Result<(), String> {
        use crate::evaluation::MAX_SUBGROUP_TABLES;
        self.evaluation.validate()?;
        let d = &self.data;
        if d.subgroups.len() > MAX_SUBGROUP_TABLES {
            return Err(format!(
                "data.subgroups has {} entries, at most {MAX_SUBGROUP_TABLES} are allowed",
                d.subgroups.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for g in &d.subgroups {
            let c = g.column();
            crate::grammar::column_name(c).map_err(|e| format!("data.subgroups: {e}"))?;
            if !seen.insert(c) {
                return Err(format!("data.subgroups lists column {c:?} twice"));
            }
            if c == d.label {
                return Err(format!(
                    "data.subgroups: {c:?} is the label: each of its groups would hold one class"
                ));
            }
            if matches!(g, crate::SubgroupSpec::Column(_)) && d.identifiers.iter().any(|i| i == c) {
                return Err(format!(
                    "data.subgroups: {c:?} is listed in data.identifiers, and its values would leave in the model card as group labels: band it ({{ column = {c:?}, bands = [...] }}) or pick another column"
                ));
            }
            g.validate_bands()
                .map_err(|e| format!("data.subgroups: {e}"))?;
        }
        Ok(())
    }

    /// `leak.mrn_patterns`: see [`PipelineSpec::mrn_regex`].
    fn validate_leak_patterns(&self) -> Result<(), String> {
        mrn_regex(&self.leak.mrn_patterns).map(|_| ())
    }

    /// Everything copied into signed documents matches its strict grammar.
    fn validate_grammars(&self) -> Result<(), String> {
        let r = &self.release;
        // Name and version are signed into every release document and name registry
        // paths: strict grammars, nothing free-form.
        crate::grammar::model_name(&r.name).map_err(|e| format!("release.name: {e}"))?;
        crate::grammar::version(&r.version).map_err(|e| format!("release.version: {e}"))?;
        if let Some(b) = self.signing.as_ref().and_then(|s| s.uri_base.as_deref()) {
            crate::grammar::uri_base(b).map_err(|e| format!("signing.uri_base: {e}"))?;
        }
        if let Some(u) = &r.intended_use {
            crate::grammar::free_text(u).map_err(|e| format!("release.intended_use: {e}"))?;
        }
        self.training.validate_devices()?;
        // Column names are copied into the model card.
        for (what, cols) in [
            ("data.features", &self.data.features),
            ("data.identifiers", &self.data.identifiers),
        ] {
            for c in cols {
                crate::grammar::column_name(c).map_err(|e| format!("{what}: {e}"))?;
            }
        }
        crate::grammar::column_name(&self.data.label).map_err(|e| format!("data.label: {e}"))?;
        Ok(())
    }

    /// Features, identifiers and the label: at least one feature, no column twice, no
    /// column in two roles.
    fn validate_columns(&self) -> Result<(), String> {
        let d = &self.data;
        if d.features.is_empty() && d.format != DataFormat::Images {
            return Err("data.features is empty: the model needs at least one feature".into());
        }
        let mut seen = BTreeSet::new();
        for f in &d.features {
            if !seen.insert(f.as_str()) {
                return Err(format!("data.features lists column {f:?} twice"));
            }
        }
        let mut ids = BTreeSet::new();
        for id in &d.identifiers {
            if !ids.insert(id.as_str()) {
                return Err(format!("data.identifiers lists column {id:?} twice"));
            }
        }
        if let Some(both) = d.features.iter().find(|f| ids.contains(f.as_str())) {
            return Err(format!(
                "column {both:?} is listed both in data.identifiers and in data.features: \
                 identifiers are never features"
            ));
        }
        if seen.contains(d.label.as_str()) {
            return Err(format!(
                "data.label {:?} is also listed in data.features",
                d.label
            ));
        }
        if ids.contains(d.label.as_str()) {
            return Err(format!(
                "data.label {:?} is also listed in data.identifiers",
                d.label
            ));
        }
        Ok(())
    }

    /// Each split strictly between 0 and 1, together 1.
    fn validate_splits(&self) -> Result<(), String> {
        let s = &self.splits;
        for (name, v) in [
            ("train", s.train),
            ("validation", s.validation),
            ("holdout", s.holdout),
        ] {
            if !(v > 0.0 && v < 1.0) {
                return Err(format!("splits.{name} = {v} must be between 0 and 1"));
            }
        }
        let sum = s.train + s.validation + s.holdout;
        if (sum - 1.0).abs() > 1e-9 {
            return Err(format!(
                "splits add up to {sum}, not 1 (train {} + validation {} + holdout {})",
                s.train, s.validation, s.holdout
            ));
        }
        Ok(())
    }

    /// The model family fits the data format: a CNN on images (and no feature columns),
    /// an MLP on feature columns; the image column only with images.
    fn validate_family(&self) -> Result<(), String> {
        let d = &self.data;
        match (&self.model, d.format) {
            (ModelSpec::Cnn(_), DataFormat::Images) => {
                if !d.features.is_empty() {
                    return Err(
                        "data.features must be empty with data.format = \"images\": the pixels are the input"
                            .into(),
                    );
                }
                let col = d.image_column.as_deref().unwrap_or("file");
                crate::grammar::column_name(col).map_err(|e| format!("data.image_column: {e}"))?;
                if col == d.label || d.identifiers.iter().any(|i| i == col) {
                    return Err(format!(
                        "data.image_column {col:?} is also the label or an identifier"
                    ));
                }
                Ok(())
            }
            (ModelSpec::Cnn(_), f) => Err(format!(
                "model.kind = \"cnn\" takes images: data.format is {:?}, not \"images\"",
                format!("{f:?}").to_lowercase()
            )),
            (ModelSpec::Mlp(_), DataFormat::Images) => Err(
                "data.format = \"images\" needs model.kind = \"cnn\" (an MLP takes feature columns)"
                    .into(),
            ),
            (ModelSpec::Mlp(_), _) if d.image_column.is_some() => {
                Err("data.image_column is only for data.format = \"images\"".into())
            }
            (ModelSpec::Mlp(_), _) => Ok(()),
        }
    }

    /// The model, the optimizer, the leak thresholds and the training loop.
    fn validate_training(&self) -> Result<(), String> {
        let o = &self.optimizer;
        if !(o.learning_rate.is_finite() && o.learning_rate > 0.0) {
            return Err(format!(
                "optimizer.learning_rate = {} must be above 0",
                o.learning_rate
            ));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return Err(format!(
                "optimizer.weight_decay = {} must be 0 or above",
                o.weight_decay
            ));
        }

        let l = &self.leak;
        for (name, v) in [
            ("leak.max_membership_auc", l.max_membership_auc),
            ("leak.max_membership_advantage", l.max_membership_advantage),
            ("leak.max_rmia_auc", l.max_rmia_auc),
            ("leak.max_rmia_tpr_at_1pct_fpr", l.max_rmia_tpr_at_1pct_fpr),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} = {v} must be between 0 and 1"));
            }
        }
        if !(1..=8).contains(&l.rmia_reference_models) {
            return Err(format!(
                "leak.rmia_reference_models = {} must be between 1 and 8",
                l.rmia_reference_models
            ));
        }
        let t = &self.training;
        if t.epochs == 0 {
            return Err("training.epochs must be at least 1".into());
        }
        if t.batch_size == 0 {
            return Err("training.batch_size must be at least 1".into());
        }
        Ok(())
    }

    /// `[publish]` and `[deploy]`: what each needs, and where they may go.
    fn validate_publishing(&self) -> Result<(), String> {
        if let Some(p) = &self.publish {
            if self.signing.is_none() {
                return Err(
                    "[publish] needs [signing]: a DEMO release (local demo keys) is only ever \
                     published to the local registry/"
                        .into(),
                );
            }
            if !(p.registry.starts_with("s3://") || p.registry.starts_with("file:///")) {
                return Err(format!(
                    "publish.registry {:?} must be s3://bucket[/prefix] or file:///absolute/path",
                    p.registry
                ));
            }
            if p.sagemaker.is_some() && !p.registry.starts_with("s3://") {
                return Err(
                    "[publish.sagemaker] reads model data from S3: publish.registry must be s3://"
                        .into(),
                );
            }
        }
        if let Some(d) = &self.deploy {
            if self.publish.as_ref().is_none_or(|p| p.sagemaker.is_none()) {
                return Err(
                    "[deploy] needs [publish.sagemaker] (the serving image and model package)"
                        .into(),
                );
            }
            if d.endpoint.is_empty() || d.role.is_empty() {
                return Err("deploy.endpoint and deploy.role must not be empty".into());
            }
            if d.instance_count == 0 || d.timeout_seconds == 0 || d.poll_seconds == 0 {
                return Err(
                    "deploy.instance_count, deploy.timeout_seconds and deploy.poll_seconds must be at least 1"
                        .into(),
                );
            }
            if let Some(a) = &d.autoscaling {
                a.validate(d.instance_count)?;
            }
        }
        Ok(())
    }

    /// `path` resolved against the directory of the pipeline file.
    pub fn resolve(&self, pipeline_path: &Path, path: &Path) -> PathBuf {
        match pipeline_path.parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_owned(),
        }
    }

    /// The data source resolved against the directory of the pipeline file.
    pub fn data_source(&self, pipeline_path: &Path) -> PathBuf {
        match pipeline_path.parent() {
            Some(dir) if self.data.source.is_relative() => dir.join(&self.data.source),
            _ => self.data.source.clone(),
        }
    }
}

/// The rules of `leak.mrn_patterns`, the site's medical record number formats.
impl PipelineSpec {
    /// Most patterns in `leak.mrn_patterns`.
    pub const MAX_MRN_PATTERNS: usize = 16;
    /// Longest pattern in `leak.mrn_patterns`, in bytes.
    pub const MAX_MRN_PATTERN_LEN: usize = 256;
    /// Shortest text a pattern of `leak.mrn_patterns` may match, in bytes.
    pub const MIN_MRN_MATCH_LEN: usize = 6;
    /// Ordinary text that every release carries, or that any document may hold, with what
    /// it is: a medical record number pattern that matches any of it would flag every
    /// release (or cry wolf until the check is switched off), so it is refused.
    pub const MRN_PROBES: &[(&str, &str)] = MRN_PROBES;

    /// `leak.mrn_patterns` compiled into one matcher (`None` for no patterns), or why they
    /// are refused.
    ///
    /// Each pattern is a regular expression of the `regex` crate (no backreferences or
    /// look-around, so matching is linear in the text), matched against bytes with Unicode
    /// classes off (`\d` is `[0-9]`). A pattern is refused unless it is printable ASCII of
    /// at most [`Self::MAX_MRN_PATTERN_LEN`] bytes, compiles within small size limits, can
    /// only match at least [`Self::MIN_MRN_MATCH_LEN`] bytes (so never the empty string),
    /// and matches none of [`Self::MRN_PROBES`] (plain numbers, common words, timestamps,
    /// digests). At most [`Self::MAX_MRN_PATTERNS`], each once.
    pub fn mrn_regex(patterns: &[String]) -> Result<Option<regex::bytes::Regex>, String> {
        mrn_regex(patterns)
    }
}

const MAX_MRN_PATTERNS: usize = PipelineSpec::MAX_MRN_PATTERNS;
const MAX_MRN_PATTERN_LEN: usize = PipelineSpec::MAX_MRN_PATTERN_LEN;
const MIN_MRN_MATCH_LEN: usize = PipelineSpec::MIN_MRN_MATCH_LEN;

const MRN_PROBES: &[(&str, &str)] = &[
    ("a plain 4-digit number", "1234"),
    ("a year", "2026"),
    ("a plain 8-digit number", "12345678"),
    ("a 10-digit byte count", "4294967296"),
    ("a millisecond timestamp", "1764745262000"),
    ("a printed float", "0.8123456789012345"),
    ("a negative float in exponent form", "-1.2345678e-05"),
    ("an RFC 3339 timestamp", "2026-12-03T07:01:02Z"),
    ("a date", "2026-12-03"),
    ("a version", "1.13.2-rc.1"),
    (
        "a SHA-256 digest",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    ),
    ("an upper-case digest", "D41D8CD98F00B204E9800998ECF8427E"),
    ("a UUID", "550e8400-e29b-41d4-a716-446655440000"),
    ("base64", "dGhlIHF1aWNrIGJyb3duIGZveCBqdW1wcw=="),
    ("a tensor name", "layers.0.weight"),
    ("a file name", "model-00001-of-00004.safetensors"),
    ("a URI", "https://airlock.dev/attestation/release/v1"),
    (
        "a sentence",
        "The model was trained on 2026 data and approved by Dr Jane Smith.",
    ),
    ("a word", "hospital"),
    ("a word", "patient"),
    ("a word", "release"),
    ("an upper-case word", "APPROVED"),
    ("an identifier", "patient_id"),
];

/// See [`PipelineSpec::mrn_regex`].
fn mrn_regex(patterns: &[String]) -> Result<Option<regex::bytes::Regex>, String> {
    if patterns.len() > MAX_MRN_PATTERNS {
        return Err(format!(
            "leak.mrn_patterns lists {} patterns; at most {MAX_MRN_PATTERNS}",
            patterns.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, p) in patterns.iter().enumerate() {
        if !seen.insert(p.as_str()) {
            return Err(format!("leak.mrn_patterns[{i}] repeats an earlier pattern"));
        }
        check_mrn_pattern(p).map_err(|e| format!("leak.mrn_patterns[{i}] {p:?}: {e}"))?;
    }
    if patterns.is_empty() {
        return Ok(None);
    }
    let joined = patterns
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    mrn_builder(&joined)
        .build()
        .map(Some)
        .map_err(|e| format!("leak.mrn_patterns: together they do not compile: {e}"))
}

fn mrn_builder(pattern: &str) -> regex::bytes::RegexBuilder {
    let mut b = regex::bytes::RegexBuilder::new(pattern);
    b.unicode(false)
        .nest_limit(32)
        .size_limit(1 << 20)
        .dfa_size_limit(4 << 20);
    b
}

/// One pattern of `leak.mrn_patterns`: see [`mrn_regex`].
fn check_mrn_pattern(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("is empty".into());
    }
    if p.len() > MAX_MRN_PATTERN_LEN {
        return Err(format!(
            "is {} bytes long; at most {MAX_MRN_PATTERN_LEN}",
            p.len()
        ));
    }
    if let Some(b) = p.bytes().find(|b| !(b' '..=b'~').contains(b)) {
        return Err(format!(
            "holds the byte 0x{b:02x}: patterns are printable ASCII (write \\xNN for other bytes)"
        ));
    }
    let re = mrn_builder(p)
        .build()
        .map_err(|e| format!("is not a valid regular expression: {e}"))?;
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .nest_limit(32)
        .build()
        .parse(p)
        .map_err(|e| format!("is not a valid regular expression: {e}"))?;
    match hir.properties().minimum_len() {
        None => return Err("can never match anything".into()),
        Some(0) => {
            return Err("matches the empty string: it would match everywhere".into());
        }
        Some(n) if n < MIN_MRN_MATCH_LEN => {
            return Err(format!(
                "matches as few as {n} bytes; a record number pattern must match at least \
                 {MIN_MRN_MATCH_LEN}"
            ));
        }
        Some(_) => {}
    }
    for (what, probe) in MRN_PROBES {
        if re.is_match(probe.as_bytes()) {
            return Err(format!(
                "matches too broadly: it matches {what} ({probe:?}), text that any release \
                 may carry; anchor it on the site's own format (a prefix such as MRN, a \
                 fixed length and separators)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal pipeline with `subgroups` in `[data]` and `extra` appended.
    fn pipeline(subgroups: &str, extra: &str) -> Result<PipelineSpec, String> {
        let text = format!(
            "[release]\nname = \"m\"\nversion = \"1.0.0\"\n\
             [data]\nsource = \"d.csv\"\nidentifiers = [\"age\", \"zip\"]\n\
             features = [\"x\", \"site\"]\nlabel = \"y\"\nsubgroups = {subgroups}\n\
             [splits]\ntrain = 0.7\nvalidation = 0.15\nholdout = 0.15\n\
             [model]\nkind = \"mlp\"\nhidden = [4]\n\
             [optimizer]\nkind = \"adam\"\nlearning_rate = 0.01\n\
             [training]\nepochs = 1\nbatch_size = 8\nseed = 1\n{extra}"
        );
        PipelineSpec::from_toml_str(&text, Path::new("p.toml")).map_err(|e| e.to_string())
    }

    fn refused(subgroups: &str, extra: &str, says: &str) {
        let err = pipeline(subgroups, extra).expect_err("refused");
        assert!(err.contains(says), "{err}");
    }

    #[test]
    fn evaluation_defaults_and_subgroups_are_accepted() {
        let p = pipeline(
            r#"[{ column = "age", bands = [30, 45, 60] }, "site", { column = "zip", bands = [0.5] }]"#,
            "[evaluation]\nthreshold = 0.3\nbootstrap_resamples = 100000\nconfidence = 0.9\n\
             calibration_bins = 100\nmin_group_rows = 5\n",
        )
        .expect("valid");
        assert_eq!(p.data.subgroups.len(), 3);
        assert_eq!(p.evaluation.threshold, 0.3);
        let d = pipeline("[]", "").expect("valid");
        assert_eq!(d.evaluation, crate::EvaluationSpec::default());
    }

    #[test]
    fn evaluation_settings_out_of_bounds_are_refused() {
        for (extra, says) in [
            ("threshold = 0.0", "evaluation.threshold"),
            ("threshold = 1.0", "evaluation.threshold"),
            ("threshold = nan", "evaluation.threshold"),
            ("confidence = 1.0", "evaluation.confidence"),
            ("confidence = -0.5", "evaluation.confidence"),
            ("bootstrap_resamples = 100001", "bootstrap_resamples"),
            ("calibration_bins = 1", "calibration_bins"),
            ("calibration_bins = 101", "calibration_bins"),
            ("min_group_rows = 4", "min_group_rows"),
        ] {
            refused("[]", &format!("[evaluation]\n{extra}\n"), says);
        }
    }

    #[test]
    fn bad_subgroups_are_refused() {
        for (subgroups, says) in [
            (
                r#"["age"]"#,
                "listed in data.identifiers, and its values would leave in the model card",
            ),
            (r#"["y"]"#, "is the label"),
            (r#"["site", "site"]"#, "twice"),
            (r#"["a b"]"#, "column name"),
            (
                r#"[{ column = "age", bands = [45, 30] }]"#,
                "strictly increasing",
            ),
            (
                r#"[{ column = "age", bands = [30, 30] }]"#,
                "strictly increasing",
            ),
            (r#"[{ column = "age", bands = [] }]"#, "edges"),
            (r#"[{ column = "age", bands = [inf] }]"#, "finite"),
            (r#"[{ column = "age", bands = [1e300] }]"#, "band label"),
            (
                r#"["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9"]"#,
                "at most 8",
            ),
        ] {
            refused(subgroups, "", says);
        }
    }

    /// `[signing]`, `[publish]` with SageMaker, and `[deploy]` with `instance_count = 2`
    /// and `autoscaling` (a `[deploy.autoscaling]` body, or nothing for no section).
    fn deployed(autoscaling: Option<&str>) -> String {
        let section =
            autoscaling.map_or_else(String::new, |a| format!("[deploy.autoscaling]\n{a}\n"));
        format!(
            "[signing]\ntrust = \"t.toml\"\nbuilder_key = \"b.key\"\n\
             [publish]\nregistry = \"s3://b/p\"\nresidency = \"r.toml\"\nkey = \"p.key\"\n\
             [publish.sagemaker]\nimage = \"i\"\n\
             [deploy]\nendpoint = \"e\"\nrole = \"r\"\ninstance_count = 2\n{section}"
        )
    }

    #[test]
    fn deploy_autoscaling_is_accepted_with_default_cooldowns() {
        let p = pipeline(
            "[]",
            &deployed(Some(
                "min_instances = 1\nmax_instances = 4\ntarget_invocations_per_instance = 70",
            )),
        )
        .expect("valid");
        let a = p
            .deploy
            .as_ref()
            .and_then(|d| d.autoscaling.clone())
            .expect("autoscaling");
        assert_eq!(
            a,
            AutoscalingSpec {
                min_instances: 1,
                max_instances: 4,
                target_invocations_per_instance: 70.0,
                scale_in_cooldown_seconds: 300,
                scale_out_cooldown_seconds: 60,
            }
        );
        assert_eq!(a.summary(), "autoscaling 1..4 at 70 invocations/instance");
        // Bounds are inclusive: a fixed size (min = count = max) and the largest values.
        for body in [
            "min_instances = 2\nmax_instances = 2\ntarget_invocations_per_instance = 0.5",
            "min_instances = 1\nmax_instances = 1000\ntarget_invocations_per_instance = 1e6\n\
             scale_in_cooldown_seconds = 86400\nscale_out_cooldown_seconds = 0",
        ] {
            pipeline("[]", &deployed(Some(body))).expect(body);
        }
        // Without the section nothing changes, down to the serialized settings (the deploy
        // stage's inputs digest them).
        let p = pipeline("[]", &deployed(None)).expect("valid");
        let d = p.deploy.expect("deploy");
        assert_eq!(d.autoscaling, None);
        let json = serde_json::to_value(&d).expect("json");
        assert!(json.get("autoscaling").is_none(), "{json}");
    }

    #[test]
    fn deploy_autoscaling_out_of_bounds_is_refused() {
        const OK: &str = "target_invocations_per_instance = 70";
        for (body, says) in [
            (
                format!("min_instances = 0\nmax_instances = 4\n{OK}"),
                "deploy.autoscaling.min_instances must be at least 1",
            ),
            (
                format!("min_instances = 3\nmax_instances = 2\n{OK}"),
                "deploy.autoscaling.max_instances (2) must be at least \
                 deploy.autoscaling.min_instances (3)",
            ),
            (
                format!("min_instances = 1\nmax_instances = 1001\n{OK}"),
                "deploy.autoscaling.max_instances (1001) must be at most 1000",
            ),
            (
                format!("min_instances = 3\nmax_instances = 4\n{OK}"),
                "deploy.instance_count (2) must lie between deploy.autoscaling.min_instances (3) \
                 and max_instances (4)",
            ),
            (
                format!("min_instances = 1\nmax_instances = 1\n{OK}"),
                "deploy.instance_count (2) must lie between deploy.autoscaling.min_instances (1) \
                 and max_instances (1)",
            ),
            (
                "min_instances = 1\nmax_instances = 4\ntarget_invocations_per_instance = 0.0"
                    .to_owned(),
                "deploy.autoscaling.target_invocations_per_instance (0) must be a finite number \
                 above 0",
            ),
            (
                "min_instances = 1\nmax_instances = 4\ntarget_invocations_per_instance = -5"
                    .to_owned(),
                "target_invocations_per_instance (-5) must be a finite number above 0",
            ),
            (
                "min_instances = 1\nmax_instances = 4\ntarget_invocations_per_instance = nan"
                    .to_owned(),
                "target_invocations_per_instance (NaN) must be a finite number above 0",
            ),
            (
                "min_instances = 1\nmax_instances = 4\ntarget_invocations_per_instance = inf"
                    .to_owned(),
                "target_invocations_per_instance (inf) must be a finite number above 0",
            ),
            (
                format!(
                    "min_instances = 1\nmax_instances = 4\n{OK}\nscale_in_cooldown_seconds = 86401"
                ),
                "deploy.autoscaling.scale_in_cooldown_seconds (86401) must be at most 86400 (a day)",
            ),
            (
                format!(
                    "min_instances = 1\nmax_instances = 4\n{OK}\nscale_out_cooldown_seconds = 90000"
                ),
                "deploy.autoscaling.scale_out_cooldown_seconds (90000) must be at most 86400 (a day)",
            ),
            (
                format!(
                    "min_instances = 1\nmax_instances = 4\n{OK}\nscale_in_cooldown_seconds = -1"
                ),
                "scale_in_cooldown_seconds",
            ),
            (
                "min_instances = 1\nmax_instances = 4".to_owned(),
                "missing field `target_invocations_per_instance`",
            ),
            (
                format!("min_instances = 1\nmax_instances = 4\n{OK}\ntarget_cpu = 50"),
                "unknown field `target_cpu`",
            ),
        ] {
            refused("[]", &deployed(Some(&body)), says);
        }
    }
}
