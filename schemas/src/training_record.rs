//! `training-record.json`: what a training run did, written by the trainer into its run
//! directory and read by the packager. It holds aggregate figures only, never a raw value.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{ModelSpec, OptimizerSpec};

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
    pub holdout: HoldoutMetrics,
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

/// The backend and device a run used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackendInfo {
    /// burn backend: `flex`, `ndarray` or `cuda`.
    pub name: String,
    /// Device: `cpu` or `cuda:N`.
    pub device: String,
    /// Worker threads available to the CPU backend.
    pub threads: usize,
}

/// Metrics after one epoch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EpochMetrics {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean binary cross-entropy over the epoch's training batches.
    pub train_loss: f64,
    /// Accuracy on the training batches (threshold 0.5), with dropout active.
    pub train_accuracy: f64,
    /// Binary cross-entropy on the validation split.
    pub validation_loss: f64,
    /// Accuracy on the validation split.
    pub validation_accuracy: f64,
    /// Wall time of the epoch, seconds.
    pub seconds: f64,
}

/// Final metrics on rows never used in training.
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
        if let Some(c) = &self.git_commit {
            g::git_commit(c).map_err(field("git_commit"))?;
        }
        g::rfc3339(&self.started_at).map_err(field("started_at"))?;
        g::rfc3339(&self.finished_at).map_err(field("finished_at"))?;
        self.validate_metrics()?;
        if let Some(e) = &self.evaluation {
            e.validate(self.splits.holdout)?;
        }
        Ok(())
    }

    /// The numbers that the model card copies: as free a channel as a string unless they
    /// are bounded. One entry per configured epoch, numbered in order; every value finite,
    /// rates in [0, 1]; the ROC curve a monotone walk of at most [`MAX_ROC_POINTS`] points
    /// from (0, 0) to (1, 1).
    fn validate_metrics(&self) -> Result<(), String> {
        let finite = |name: &str, x: f64| {
            if x.is_finite() && x >= 0.0 {
                Ok(())
            } else {
                Err(format!("{name} is not a finite, non-negative number"))
            }
        };
        let rate = |name: &str, x: f64| {
            if (0.0..=1.0).contains(&x) {
                Ok(())
            } else {
                Err(format!("{name} is not a rate in [0, 1]"))
            }
        };
        if self.epochs.len() != self.hyperparameters.epochs {
            return Err(format!(
                "epochs: {} entries, but the run trained {} epochs",
                self.epochs.len(),
                self.hyperparameters.epochs
            ));
        }
        for (i, e) in self.epochs.iter().enumerate() {
            let at = |f: &str| format!("epochs[{i}].{f}");
            if e.epoch != i + 1 {
                return Err(format!("{} is not {}", at("epoch"), i + 1));
            }
            finite(&at("train_loss"), e.train_loss)?;
            finite(&at("validation_loss"), e.validation_loss)?;
            finite(&at("seconds"), e.seconds)?;
            rate(&at("train_accuracy"), e.train_accuracy)?;
            rate(&at("validation_accuracy"), e.validation_accuracy)?;
        }
        let h = &self.holdout;
        finite("holdout.loss", h.loss)?;
        rate("holdout.accuracy", h.accuracy)?;
        rate("holdout.roc_auc", h.roc_auc)?;
        rate("holdout.positive_rate", h.positive_rate)?;
        finite("train_rows_per_second", self.train_rows_per_second)?;
        let curve = &h.roc_curve;
        if curve.len() > MAX_ROC_POINTS {
            return Err(format!(
                "holdout.roc_curve has {} points, at most {MAX_ROC_POINTS} are recorded",
                curve.len()
            ));
        }
        let mut prev = RocPoint { fpr: 0.0, tpr: 0.0 };
        for (i, p) in curve.iter().enumerate() {
            rate(&format!("holdout.roc_curve[{i}].fpr"), p.fpr)?;
            rate(&format!("holdout.roc_curve[{i}].tpr"), p.tpr)?;
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
