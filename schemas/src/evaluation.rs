//! The holdout evaluation an officer reads: metrics with bootstrap intervals, the clinical
//! and risk metrics at the operating threshold, calibration, and performance per subgroup.
//!
//! Computed on-prem by the trainer from the holdout split, recorded in the training record
//! and copied into the model card by the packager. It holds aggregate figures only: counts,
//! rates and intervals, with subgroups smaller than `min_group_rows` suppressed (neither
//! their label nor their figures are recorded), so that no row can be singled out.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `[evaluation]` in a pipeline: how the holdout is evaluated (all optional).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EvaluationSpec {
    /// The operating threshold on the positive-class probability: sensitivity,
    /// specificity, PPV and NPV are reported at it. Default 0.5.
    #[serde(default = "default_threshold")]
    pub threshold: f64,
    /// Bootstrap resamples of the holdout for the intervals (0: no intervals). Default 1000.
    #[serde(default = "default_resamples")]
    pub bootstrap_resamples: u32,
    /// Confidence level of the intervals, in (0, 1). Default 0.95.
    #[serde(default = "default_confidence")]
    pub confidence: f64,
    /// Equal-width probability bins of the calibration curve. Default 10.
    #[serde(default = "default_calibration_bins")]
    pub calibration_bins: u32,
    /// Subgroups with fewer holdout rows than this are suppressed. Default 20.
    #[serde(default = "default_min_group_rows")]
    pub min_group_rows: u64,
}

fn default_threshold() -> f64 {
    0.5
}
fn default_resamples() -> u32 {
    1000
}
fn default_confidence() -> f64 {
    0.95
}
fn default_calibration_bins() -> u32 {
    10
}
fn default_min_group_rows() -> u64 {
    20
}

impl Default for EvaluationSpec {
    fn default() -> Self {
        Self {
            threshold: default_threshold(),
            bootstrap_resamples: default_resamples(),
            confidence: default_confidence(),
            calibration_bins: default_calibration_bins(),
            min_group_rows: default_min_group_rows(),
        }
    }
}

/// One `[data] subgroups` entry: a column whose values define groups (`"sex"`), or a
/// numeric column cut into bands (`{ column = "age", bands = [30, 45, 60] }`: under 30,
/// 30 to 44.99.., 45 to 59.99.., 60 and over).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SubgroupSpec {
    /// Each distinct value is a group.
    Column(String),
    /// A numeric column cut at the given (strictly increasing) edges.
    Banded(BandedSubgroup),
}

/// A numeric subgroup column cut into bands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BandedSubgroup {
    /// The column.
    pub column: String,
    /// Band edges, strictly increasing.
    pub bands: Vec<f64>,
}

impl SubgroupSpec {
    /// The column the groups come from.
    pub fn column(&self) -> &str {
        match self {
            Self::Column(c) => c,
            Self::Banded(b) => &b.column,
        }
    }
}

/// The holdout evaluation (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Evaluation {
    /// The operating threshold the confusion counts and rates are taken at.
    pub threshold: f64,
    /// How the intervals were computed.
    pub bootstrap: BootstrapInfo,
    /// Confusion counts on the holdout at the threshold.
    pub confusion: Confusion,
    /// Point estimates and intervals, in this order: `roc_auc`, `accuracy`,
    /// `sensitivity`, `specificity`, `ppv`, `npv`, `brier`.
    pub metrics: Vec<EstimatedMetric>,
    /// Predicted probability against observed positive rate.
    pub calibration: Calibration,
    /// One table per `[data] subgroups` entry.
    pub subgroups: Vec<SubgroupTable>,
}

/// How the intervals were computed: percentile bootstrap over holdout rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BootstrapInfo {
    /// Resamples (0: no intervals).
    pub resamples: u32,
    /// Confidence level, e.g. 0.95.
    pub confidence: f64,
    /// Seed of the resampling (derived from the training seed).
    pub seed: u64,
}

/// Confusion counts at the operating threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Confusion {
    /// Positives predicted positive.
    pub true_positives: u64,
    /// Negatives predicted positive.
    pub false_positives: u64,
    /// Negatives predicted negative.
    pub true_negatives: u64,
    /// Positives predicted negative.
    pub false_negatives: u64,
}

/// A metric with its bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EstimatedMetric {
    /// `roc_auc`, `accuracy`, `sensitivity`, `specificity`, `ppv`, `npv` or `brier`.
    pub name: String,
    /// The estimate on the whole holdout; `None` when undefined (e.g. PPV with no
    /// positive prediction).
    pub value: Option<f64>,
    /// Lower end of the interval (`None`: no interval).
    pub low: Option<f64>,
    /// Upper end of the interval.
    pub high: Option<f64>,
}

/// A calibration (reliability) curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Equal-width bins over [0, 1], lowest first; empty bins are listed with 0 rows.
    pub bins: Vec<CalibrationBin>,
    /// Expected calibration error: the row-weighted mean |observed − predicted| over bins.
    pub expected_calibration_error: f64,
}

/// One bin of a calibration curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalibrationBin {
    /// Lower edge (inclusive).
    pub lower: f64,
    /// Upper edge (exclusive; the last bin includes 1).
    pub upper: f64,
    /// Holdout rows whose predicted probability falls in the bin.
    pub rows: u64,
    /// Mean predicted probability in the bin (`None` when empty).
    pub mean_predicted: Option<f64>,
    /// Observed positive rate in the bin (`None` when empty).
    pub observed_rate: Option<f64>,
}

/// Performance per group of one subgroup column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubgroupTable {
    /// The column.
    pub column: String,
    /// Band edges, when the column was banded.
    pub bands: Option<Vec<f64>>,
    /// Groups smaller than this were suppressed.
    pub min_group_rows: u64,
    /// Groups with at least `min_group_rows` rows, in label order.
    pub groups: Vec<SubgroupRow>,
    /// How many groups were suppressed (their labels and figures are not recorded).
    pub suppressed_groups: u64,
}

/// One subgroup's figures on the holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SubgroupRow {
    /// The group: a value of the column, or a band such as `30–44` or `≥ 60`.
    pub group: String,
    /// Holdout rows in the group.
    pub rows: u64,
    /// Positive labels among them.
    pub positives: u64,
    /// ROC AUC within the group (`None` when it has only one class).
    pub roc_auc: Option<f64>,
    /// Accuracy at the threshold.
    pub accuracy: f64,
    /// Sensitivity at the threshold (`None` without positives).
    pub sensitivity: Option<f64>,
    /// Specificity at the threshold (`None` without negatives).
    pub specificity: Option<f64>,
}

/// The training configuration, in the model card so that a review can say what changed
/// between two releases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardConfiguration {
    /// Architecture, features, label, optimizer, epochs and batch size.
    pub hyperparameters: crate::Hyperparameters,
    /// Seed of the split, initial weights, shuffling and dropout.
    pub seed: u64,
    /// Fractions of the rows in train, validation and holdout.
    pub split_fractions: [f64; 3],
    /// Each training-data file: its name (not its path), digest and row count.
    pub data: Vec<CardDataFile>,
    /// The source the run was built from.
    pub source: CardSource,
}

/// One training-data file, by digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardDataFile {
    /// File name.
    pub name: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// Data rows.
    pub rows: u64,
}

/// Where the code and pipeline of a run came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CardSource {
    /// `git rev-parse HEAD` of the repository holding the pipeline, if any.
    pub git_commit: Option<String>,
    /// Whether that work tree had uncommitted changes.
    pub git_dirty: Option<bool>,
    /// The pipeline allowed a release without a recorded, clean commit
    /// (`[release] allow_uncommitted = true`), or the run was a DEMO.
    pub uncommitted_allowed: bool,
}
