//! `training-record.json`: what a training run did, written by the trainer into its run
//! directory and read by the packager. It holds aggregate figures only, never a raw value.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ModelSpec, OptimizerSpec, TaskSpec};

/// Version of the `TrainingRecord` format; bumped on any incompatible change.
pub const TRAINING_RECORD_VERSION: u32 = 1;

/// Everything the packager and a reviewer need to know about a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingRecord {
    /// Format version, [`TRAINING_RECORD_VERSION`].
    pub schema_version: u32,
    /// Model name from the pipeline.
    pub model_name: String,
    /// Model version from the pipeline.
    pub model_version: String,
    /// The pipeline file and the SHA-256 of its bytes.
    pub pipeline: FileDigest,
    /// Which data the model was trained on, by digest (never by content).
    pub dataset: DatasetFingerprint,
    /// Rows in each split.
    pub splits: SplitSizes,
    /// Everything that shaped training.
    pub hyperparameters: Hyperparameters,
    /// The seed for the split, initial weights, shuffling and dropout.
    pub seed: u64,
    /// Where it ran.
    pub backend: BackendInfo,
    /// Metrics after every epoch.
    pub epochs: Vec<EpochMetrics>,
    /// Metrics on the holdout split, after the last epoch.
    pub holdout: Holdout,
    /// Training throughput: training rows processed per second, over all epochs.
    pub train_rows_per_second: f64,
    /// `git rev-parse HEAD` of the repository holding the pipeline, if any.
    pub git_commit: Option<String>,
    /// Whether that work tree had uncommitted changes.
    pub git_dirty: Option<bool>,
    /// airlock version that trained.
    pub airlock_version: String,
    /// Start time, RFC 3339 UTC.
    pub started_at: String,
    /// End time, RFC 3339 UTC.
    pub finished_at: String,
    /// The holdout evaluation: intervals, clinical metrics, calibration, subgroups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<crate::Evaluation>,
    /// The DP-SGD guarantee, for a run with `[privacy]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<crate::PrivacyGuarantee>,
    /// The federation that trained the model, for a federated run (`airlock federate`):
    /// its rounds, sites and what each contributed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<crate::FederationRecord>,
    /// The cloud burst that trained the model (`airlock burst`): the approved export, the
    /// job kept and every job of its sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<crate::BurstRecord>,
}

/// A file and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// Path as given to airlock.
    pub path: String,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
}

/// Identifies the training data without containing any of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetFingerprint {
    /// Each input file.
    pub files: Vec<DatasetFile>,
}

/// One input file of the dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatasetFile {
    /// Path as given to airlock.
    pub path: String,
    /// Lowercase hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Data rows (the header not counted).
    pub rows: u64,
    /// Column names from the header, in file order.
    pub columns: Vec<String>,
}

/// Rows in each split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitSizes {
    /// Training rows.
    pub train: u64,
    /// Validation rows.
    pub validation: u64,
    /// Holdout rows.
    pub holdout: u64,
}

/// What shaped the model: enough to rebuild it from its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Hyperparameters {
    /// The task (absent: binary, as in records written before tasks).
    #[serde(default, skip_serializing_if = "TaskSpec::is_binary")]
    pub task: TaskSpec,
    /// Architecture.
    pub model: ModelSpec,
    /// Feature columns in input order.
    pub features: Vec<String>,
    /// Label column.
    pub label: String,
    /// Optimizer.
    pub optimizer: OptimizerSpec,
    /// Passes over the training split.
    pub epochs: usize,
    /// Rows per optimizer step.
    pub batch_size: usize,
}

/// Most hosts a multi-host run records ([`BackendInfo::hosts`]).
const MAX_TRAINING_HOSTS: u32 = 64;

/// The backend and device a run used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendInfo {
    /// burn backend: `flex`, `ndarray` or `cuda`.
    pub name: String,
    /// Device: `cpu` or `cuda:N` (the first device of a data-parallel run).
    pub device: String,
    /// Every device of a data-parallel run, in peer order; absent when one device trained.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// Worker threads available to the CPU backend.
    pub threads: usize,
    /// Hosts that trained the model together (data-parallel across the hosts of a
    /// multi-host training job, each its share of every batch); absent when one host
    /// trained. `device` and `devices` are each host's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<u32>,
}

impl BackendInfo {
    /// A data-parallel run's device list: 2 to [`crate::MAX_TRAINING_DEVICES`] recorded
    /// devices, the first being `device`, all of the backend's kind; a multi-host run's
    /// 2 to 64 hosts, one device each.
    fn validate_devices(&self) -> Result<(), String> {
        if let Some(h) = self.hosts {
            if !(2..=MAX_TRAINING_HOSTS).contains(&h) {
                return Err(format!(
                    "backend.hosts is {h}; a multi-host run has 2 to {MAX_TRAINING_HOSTS} hosts"
                ));
            }
            if !self.devices.is_empty() {
                return Err("backend.hosts goes with one device per host".to_owned());
            }
        }
        if self.devices.is_empty() {
            return Ok(());
        }
        if !(2..=crate::MAX_TRAINING_DEVICES).contains(&self.devices.len()) {
            return Err(format!(
                "backend.devices lists {} devices; a data-parallel run has 2 to {}",
                self.devices.len(),
                crate::MAX_TRAINING_DEVICES
            ));
        }
        for (i, d) in self.devices.iter().enumerate() {
            crate::grammar::recorded_device(d).map_err(|e| format!("backend.devices[{i}]: {e}"))?;
            if (self.name == "cuda") != d.starts_with("cuda:") {
                return Err(format!(
                    "backend.devices[{i}] does not go with backend.name"
                ));
            }
        }
        if self.devices[0] != self.device {
            return Err("backend.devices does not start with backend.device".to_owned());
        }
        Ok(())
    }
}

/// Metrics after one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean loss over the epoch's training batches (the task's: binary or categorical
    /// cross-entropy, or mean squared error on the standardized target).
    pub train_loss: f64,
    /// Accuracy on the training batches, with dropout active (absent for regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train_accuracy: Option<f64>,
    /// Loss on the validation split.
    pub validation_loss: f64,
    /// Accuracy on the validation split (absent for regression).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
    /// Wall time of the epoch, seconds.
    pub seconds: f64,
}

/// Final metrics on rows never used in training, per task. Told apart by their members
/// (each variant has fields the others lack), so binary records written before tasks read
/// as [`Holdout::Binary`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Holdout {
    /// Binary classification.
    Binary(HoldoutMetrics),
    /// Multi-class classification.
    Multiclass(MulticlassMetrics),
    /// Regression.
    Regression(RegressionMetrics),
}

impl Holdout {
    /// The binary metrics, when the task is binary.
    pub fn binary(&self) -> Option<&HoldoutMetrics> {
        match self {
            Self::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// The task's loss on the holdout.
    pub fn loss(&self) -> f64 {
        match self {
            Self::Binary(b) => b.loss,
            Self::Multiclass(m) => m.loss,
            Self::Regression(r) => r.loss,
        }
    }

    /// Accuracy, for classifiers.
    pub fn accuracy(&self) -> Option<f64> {
        match self {
            Self::Binary(b) => Some(b.accuracy),
            Self::Multiclass(m) => Some(m.accuracy),
            Self::Regression(_) => None,
        }
    }

    /// `binary`, `multiclass` or `regression`.
    pub fn task_name(&self) -> &'static str {
        match self {
            Self::Binary(_) => "binary",
            Self::Multiclass(_) => "multiclass",
            Self::Regression(_) => "regression",
        }
    }

    /// Checks the figures against the task and the holdout size.
    pub fn validate(&self, task: &TaskSpec, holdout_rows: u64) -> Result<(), String> {
        match (self, task) {
            (Self::Binary(b), TaskSpec::Binary) => b.validate(),
            (Self::Multiclass(m), TaskSpec::Multiclass { classes }) => {
                m.validate(classes.len(), holdout_rows)
            }
            (Self::Regression(r), TaskSpec::Regression) => r.validate(holdout_rows),
            (h, t) => Err(format!(
                "holdout holds {} metrics but the task is {}",
                h.task_name(),
                t.name()
            )),
        }
    }
}

/// Holdout metrics of a multi-class classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MulticlassMetrics {
    /// Categorical cross-entropy.
    pub loss: f64,
    /// Fraction of rows whose most probable class is the label.
    pub accuracy: f64,
    /// Unweighted mean over classes of F1 (a class never predicted nor present counts 0).
    pub macro_f1: f64,
    /// Counts: `confusion[true][predicted]`, classes in the task's order.
    pub confusion: Vec<Vec<u64>>,
}

impl MulticlassMetrics {
    fn validate(&self, classes: usize, holdout_rows: u64) -> Result<(), String> {
        finite_nonneg("holdout.loss", self.loss)?;
        unit("holdout.accuracy", self.accuracy)?;
        unit("holdout.macro_f1", self.macro_f1)?;
        if self.confusion.len() != classes || self.confusion.iter().any(|r| r.len() != classes) {
            return Err(format!(
                "holdout.confusion is not {classes}×{classes} (one row and column per class)"
            ));
        }
        let total: u64 = self.confusion.iter().flatten().sum();
        if total != holdout_rows {
            return Err(format!(
                "holdout.confusion counts {total} rows, the holdout has {holdout_rows}"
            ));
        }
        Ok(())
    }
}

/// Most bins of a residual plot.
pub const MAX_RESIDUAL_BINS: usize = 20;

/// Holdout metrics of a regression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegressionMetrics {
    /// Mean squared error, in the label's units squared.
    pub loss: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination (can be negative: worse than predicting the mean).
    pub r2: f64,
    /// The residual plot, aggregated: holdout rows sorted by prediction into equal-count
    /// bins (at most [`MAX_RESIDUAL_BINS`], each of at least 10 rows), never a single row.
    pub residuals: Vec<ResidualBin>,
}

/// One bin of a residual plot.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResidualBin {
    /// Rows in the bin.
    pub rows: u64,
    /// Mean prediction of those rows.
    pub predicted: f64,
    /// Mean residual (label − prediction) of those rows.
    pub mean_residual: f64,
    /// Root mean square of their residuals.
    pub rms_residual: f64,
}

/// Fewest rows in a residual bin.
pub const MIN_RESIDUAL_BIN_ROWS: u64 = 10;

impl RegressionMetrics {
    fn validate(&self, holdout_rows: u64) -> Result<(), String> {
        for (name, v) in [
            ("holdout.loss", self.loss),
            ("holdout.rmse", self.rmse),
            ("holdout.mae", self.mae),
        ] {
            finite_nonneg(name, v)?;
        }
        if !self.r2.is_finite() || self.r2 > 1.0 {
            return Err("holdout.r2 is not a finite number at most 1".into());
        }
        if self.residuals.len() > MAX_RESIDUAL_BINS {
            return Err(format!(
                "holdout.residuals has {} bins, at most {MAX_RESIDUAL_BINS}",
                self.residuals.len()
            ));
        }
        let mut rows = 0u64;
        for (i, b) in self.residuals.iter().enumerate() {
            if b.rows < MIN_RESIDUAL_BIN_ROWS {
                return Err(format!(
                    "holdout.residuals[{i}] holds {} rows, fewer than {MIN_RESIDUAL_BIN_ROWS}",
                    b.rows
                ));
            }
            if !(b.predicted.is_finite() && b.mean_residual.is_finite()) {
                return Err(format!("holdout.residuals[{i}] is not finite"));
            }
            finite_nonneg(
                &format!("holdout.residuals[{i}].rms_residual"),
                b.rms_residual,
            )?;
            rows += b.rows;
        }
        if !self.residuals.is_empty() && rows != holdout_rows {
            return Err(format!(
                "holdout.residuals count {rows} rows, the holdout has {holdout_rows}"
            ));
        }
        Ok(())
    }
}

fn finite_nonneg(name: &str, x: f64) -> Result<(), String> {
    if x.is_finite() && x >= 0.0 {
        Ok(())
    } else {
        Err(format!("{name} is not a finite, non-negative number"))
    }
}

fn unit(name: &str, x: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&x) {
        Ok(())
    } else {
        Err(format!("{name} is not a rate in [0, 1]"))
    }
}

/// Holdout metrics of a binary classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldoutMetrics {
    /// Binary cross-entropy.
    pub loss: f64,
    /// Accuracy at threshold 0.5.
    pub accuracy: f64,
    /// Area under the ROC curve.
    pub roc_auc: f64,
    /// Fraction of positive labels.
    pub positive_rate: f64,
    /// The ROC curve, subsampled to at most 101 points (aggregate: no row is recoverable).
    pub roc_curve: Vec<RocPoint>,
}

/// One point of a ROC curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RocPoint {
    /// False positive rate.
    pub fpr: f64,
    /// True positive rate.
    pub tpr: f64,
}

impl TrainingRecord {
    /// Check every string field the packager copies into signed documents against its
    /// grammar (see [`crate::grammar`]): model name, SemVer versions, digests, git commit,
    /// RFC 3339 times, backend and device, file and column names. A run directory is an
    /// attacker input: a record that does not match is refused, naming the field.
    pub fn validate(&self) -> Result<(), String> {
        use crate::grammar as g;
        let field = |name: &str| {
            let name = name.to_owned();
            move |e: String| format!("{name}: {e}")
        };
        if self.schema_version != TRAINING_RECORD_VERSION {
            return Err(format!(
                "schema_version {} is not {TRAINING_RECORD_VERSION}",
                self.schema_version
            ));
        }
        g::model_name(&self.model_name).map_err(field("model_name"))?;
        g::version(&self.model_version).map_err(field("model_version"))?;
        g::version(&self.airlock_version).map_err(field("airlock_version"))?;
        g::sha256_hex(&self.pipeline.sha256).map_err(field("pipeline.sha256"))?;
        g::file_name(&path_file_name(&self.pipeline.path)).map_err(field("pipeline.path"))?;
        for (i, f) in self.dataset.files.iter().enumerate() {
            g::sha256_hex(&f.sha256).map_err(field(&format!("dataset.files[{i}].sha256")))?;
            g::file_name(&path_file_name(&f.path))
                .map_err(field(&format!("dataset.files[{i}].path")))?;
        }
        let h = &self.hyperparameters;
        for c in &h.features {
            g::column_name(c).map_err(field("hyperparameters.features"))?;
        }
        g::column_name(&h.label).map_err(field("hyperparameters.label"))?;
        g::backend(&self.backend.name).map_err(field("backend.name"))?;
        g::recorded_device(&self.backend.device).map_err(field("backend.device"))?;
        if (self.backend.name == "cuda") != self.backend.device.starts_with("cuda:") {
            return Err(format!(
                "backend.name {:?} does not go with backend.device {:?}",
                self.backend.name, self.backend.device
            ));
        }
        self.backend.validate_devices()?;
        if let Some(c) = &self.git_commit {
            g::git_commit(c).map_err(field("git_commit"))?;
        }
        g::rfc3339(&self.started_at).map_err(field("started_at"))?;
        g::rfc3339(&self.finished_at).map_err(field("finished_at"))?;
        self.validate_metrics()?;
        if let Some(p) = &self.privacy {
            // Its numbers are never copied: the packager recomputes the guarantee from
            // the pipeline and refuses a record that disagrees.
            g::sha256_hex(&p.noise_secret_sha256).map_err(field("privacy.noise_secret_sha256"))?;
        }
        if let Some(e) = &self.evaluation {
            e.validate(self.splits.holdout)?;
        }
        if let Some(f) = &self.federation {
            f.validate()?;
        }
        if let Some(b) = &self.burst {
            b.validate()?;
        }
        Ok(())
    }

    /// The numbers that the model card copies: as free a channel as a string unless they
    /// are bounded. One entry per configured epoch, numbered in order; every value finite,
    /// rates in [0, 1]; the ROC curve a monotone walk of at most [`MAX_ROC_POINTS`] points
    /// from (0, 0) to (1, 1).
    fn validate_metrics(&self) -> Result<(), String> {
        if self.epochs.len() != self.hyperparameters.epochs {
            return Err(format!(
                "epochs: {} entries, but the run trained {} epochs",
                self.epochs.len(),
                self.hyperparameters.epochs
            ));
        }
        let regression = matches!(self.hyperparameters.task, TaskSpec::Regression);
        for (i, e) in self.epochs.iter().enumerate() {
            let at = |f: &str| format!("epochs[{i}].{f}");
            if e.epoch != i + 1 {
                return Err(format!("{} is not {}", at("epoch"), i + 1));
            }
            finite_nonneg(&at("train_loss"), e.train_loss)?;
            finite_nonneg(&at("validation_loss"), e.validation_loss)?;
            finite_nonneg(&at("seconds"), e.seconds)?;
            for (name, v) in [
                ("train_accuracy", e.train_accuracy),
                ("validation_accuracy", e.validation_accuracy),
            ] {
                match (v, regression) {
                    (Some(v), false) => unit(&at(name), v)?,
                    (None, true) => {}
                    (Some(_), true) => {
                        return Err(format!("{} is recorded for a regression", at(name)));
                    }
                    (None, false) => return Err(format!("{} is missing", at(name))),
                }
            }
        }
        self.holdout
            .validate(&self.hyperparameters.task, self.splits.holdout)?;
        finite_nonneg("train_rows_per_second", self.train_rows_per_second)?;
        Ok(())
    }
}

impl HoldoutMetrics {
    fn validate(&self) -> Result<(), String> {
        finite_nonneg("holdout.loss", self.loss)?;
        unit("holdout.accuracy", self.accuracy)?;
        unit("holdout.roc_auc", self.roc_auc)?;
        unit("holdout.positive_rate", self.positive_rate)?;
        let curve = &self.roc_curve;
        if curve.len() > MAX_ROC_POINTS {
            return Err(format!(
                "holdout.roc_curve has {} points, at most {MAX_ROC_POINTS} are recorded",
                curve.len()
            ));
        }
        let mut prev = RocPoint { fpr: 0.0, tpr: 0.0 };
        for (i, p) in curve.iter().enumerate() {
            unit(&format!("holdout.roc_curve[{i}].fpr"), p.fpr)?;
            unit(&format!("holdout.roc_curve[{i}].tpr"), p.tpr)?;
            if p.fpr < prev.fpr || p.tpr < prev.tpr {
                return Err(format!(
                    "holdout.roc_curve[{i}] goes back: a ROC curve only rises"
                ));
            }
            prev = *p;
        }
        if let (Some(first), Some(last)) = (curve.first(), curve.last())
            && (*first != RocPoint { fpr: 0.0, tpr: 0.0 }
                || *last != RocPoint { fpr: 1.0, tpr: 1.0 })
        {
            return Err("holdout.roc_curve does not run from (0, 0) to (1, 1)".into());
        }
        Ok(())
    }
}

/// The most ROC points a training record may carry (the trainer keeps 101).
pub const MAX_ROC_POINTS: usize = 128;

/// The last component of a recorded path (`/`-separated), which is all that is shipped.
fn path_file_name(p: &str) -> String {
    p.rsplit('/').next().unwrap_or(p).to_owned()
}

#[cfg(test)]
mod tests {
    use super::BackendInfo;

    fn backend(hosts: Option<u32>, devices: &[&str]) -> BackendInfo {
        BackendInfo {
            name: "flex".into(),
            device: "cpu".into(),
            devices: devices.iter().map(|d| (*d).to_owned()).collect(),
            threads: 2,
            hosts,
        }
    }

    #[test]
    fn a_multi_host_run_records_2_to_64_hosts_of_one_device_each() {
        assert!(backend(None, &[]).validate_devices().is_ok());
        assert!(backend(Some(2), &[]).validate_devices().is_ok());
        assert!(backend(Some(64), &[]).validate_devices().is_ok());
        for (b, says) in [
            (backend(Some(1), &[]), "2 to 64"),
            (backend(Some(65), &[]), "2 to 64"),
            (backend(Some(2), &["cpu", "cpu"]), "one device per host"),
        ] {
            let e = b.validate_devices().expect_err(says);
            assert!(e.contains(says), "{e}");
        }
        // Records without the field (every record before it) read as one host, and one
        // host writes none.
        let old = r#"{"name":"flex","device":"cpu","threads":2}"#;
        let b: BackendInfo = serde_json::from_str(old).expect("an old record");
        assert_eq!(b.hosts, None);
        assert_eq!(serde_json::to_string(&b).expect("json"), old);
    }
}
