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

    /// The band edges, when the column is banded.
    pub fn bands(&self) -> Option<&Vec<f64>> {
        match self {
            Self::Column(_) => None,
            Self::Banded(b) => Some(&b.bands),
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

/// The metric names of [`Evaluation::metrics`], in order.
pub const METRIC_NAMES: [&str; 7] = [
    "roc_auc",
    "accuracy",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "brier",
];
/// The most bootstrap resamples a pipeline may ask for.
pub const MAX_BOOTSTRAP_RESAMPLES: u32 = 100_000;
/// The most calibration bins.
pub const MAX_CALIBRATION_BINS: u32 = 100;
/// The smallest `min_group_rows` accepted.
pub const MIN_GROUP_ROWS_FLOOR: u64 = 5;
/// The most `[data] subgroups` entries.
pub const MAX_SUBGROUP_TABLES: usize = 8;
/// The most groups (distinct values in the holdout, or bands) of one subgroup column.
pub const MAX_GROUPS: usize = 64;
/// The most band edges of a banded subgroup.
pub const MAX_BAND_EDGES: usize = 16;
/// Longest group label, in characters.
pub const MAX_GROUP_LABEL_LEN: usize = 32;

/// A group label as shipped in the model card: 1 to [`MAX_GROUP_LABEL_LEN`] characters of
/// ASCII letters and digits, single spaces and `.-_+/:()%<>=,&`, and `–`, `≤`, `≥` (band
/// labels); no quotes, backslashes or control characters, no space at either end. The
/// refusal names the label's length, never its content (it is a data value).
pub fn group_label(s: &str) -> Result<(), String> {
    let n = s.chars().count();
    let ok = (1..=MAX_GROUP_LABEL_LEN).contains(&n)
        && !s.starts_with(' ')
        && !s.ends_with(' ')
        && !s.contains("  ")
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric() || " .-_+/:()%<>=,&".contains(c) || "–≤≥".contains(c)
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "group label ({n} characters) must be 1 to {MAX_GROUP_LABEL_LEN} characters of \
             letters, digits, single spaces and .-_+/:()%<>=,& (no quotes, no control characters)"
        ))
    }
}

/// The labels of the bands cut at `edges` (strictly increasing): `< 30`, `30–44`, `45–59`,
/// `≥ 60` when the column holds whole numbers only (`integral`) and the edges are whole,
/// else `< 30`, `30–<45`, `45–<60`, `≥ 60`. One more label than edges.
pub fn band_labels(edges: &[f64], integral: bool) -> Vec<String> {
    let whole = integral && edges.iter().all(|e| e.fract() == 0.0);
    let (Some(first), Some(last)) = (edges.first(), edges.last()) else {
        return Vec::new();
    };
    let mut labels = vec![format!("< {first}")];
    for w in edges.windows(2) {
        let (a, b) = (w[0], w[1]);
        labels.push(if whole {
            if b - 1.0 <= a {
                format!("{a}")
            } else {
                format!("{a}–{}", b - 1.0)
            }
        } else {
            format!("{a}–<{b}")
        });
    }
    labels.push(format!("≥ {last}"));
    labels
}

impl SubgroupSpec {
    /// Band edges finite, strictly increasing, at most [`MAX_BAND_EDGES`], and every band
    /// label (either form) within the label grammar.
    pub fn validate_bands(&self) -> Result<(), String> {
        let Self::Banded(b) = self else {
            return Ok(());
        };
        let c = &b.column;
        if b.bands.is_empty() || b.bands.len() > MAX_BAND_EDGES {
            return Err(format!(
                "subgroup {c:?}: bands must list 1 to {MAX_BAND_EDGES} edges"
            ));
        }
        if b.bands.iter().any(|e| !e.is_finite()) {
            return Err(format!("subgroup {c:?}: band edges must be finite numbers"));
        }
        if b.bands.windows(2).any(|w| w[0] >= w[1]) {
            return Err(format!(
                "subgroup {c:?}: band edges must be strictly increasing"
            ));
        }
        for integral in [false, true] {
            for l in band_labels(&b.bands, integral) {
                group_label(&l).map_err(|e| {
                    format!("subgroup {c:?}: a band label is too long or malformed ({e}): use shorter edges")
                })?;
            }
        }
        Ok(())
    }
}

impl EvaluationSpec {
    /// Threshold and confidence in (0, 1), at most [`MAX_BOOTSTRAP_RESAMPLES`] resamples,
    /// 2 to [`MAX_CALIBRATION_BINS`] calibration bins, `min_group_rows` at least
    /// [`MIN_GROUP_ROWS_FLOOR`].
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("evaluation.threshold", self.threshold),
            ("evaluation.confidence", self.confidence),
        ] {
            if !(v > 0.0 && v < 1.0) {
                return Err(format!("{name} = {v} must be strictly between 0 and 1"));
            }
        }
        if self.bootstrap_resamples > MAX_BOOTSTRAP_RESAMPLES {
            return Err(format!(
                "evaluation.bootstrap_resamples = {} is above {MAX_BOOTSTRAP_RESAMPLES}",
                self.bootstrap_resamples
            ));
        }
        if !(2..=MAX_CALIBRATION_BINS).contains(&self.calibration_bins) {
            return Err(format!(
                "evaluation.calibration_bins = {} must be between 2 and {MAX_CALIBRATION_BINS}",
                self.calibration_bins
            ));
        }
        if self.min_group_rows < MIN_GROUP_ROWS_FLOOR {
            return Err(format!(
                "evaluation.min_group_rows = {} is below {MIN_GROUP_ROWS_FLOOR}: smaller groups \
                 could single out rows",
                self.min_group_rows
            ));
        }
        Ok(())
    }
}

fn rate(name: &str, x: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&x) {
        Ok(())
    } else {
        Err(format!("{name} is not a rate in [0, 1]"))
    }
}

fn opt_rate(name: &str, x: Option<f64>) -> Result<(), String> {
    x.map_or(Ok(()), |x| rate(name, x))
}

impl Evaluation {
    /// Bounds every figure a run directory's evaluation carries into the model card (a run
    /// directory is attacker input, and every number copied is a channel): the settings
    /// within what a pipeline may ask for, the confusion counts adding up to the
    /// `holdout_rows`, the seven metrics in order with rates in [0, 1] and intervals
    /// `low ≤ high` (none without resamples), the calibration bins contiguous over [0, 1]
    /// with their rows adding up, and at most [`MAX_SUBGROUP_TABLES`] subgroup tables of at
    /// most [`MAX_GROUPS`] groups with labels by [`group_label`], none below its
    /// `min_group_rows`.
    pub fn validate(&self, holdout_rows: u64) -> Result<(), String> {
        EvaluationSpec {
            threshold: self.threshold,
            bootstrap_resamples: self.bootstrap.resamples,
            confidence: self.bootstrap.confidence,
            calibration_bins: 2,
            min_group_rows: MIN_GROUP_ROWS_FLOOR,
        }
        .validate()
        .map_err(|e| e.replace("evaluation.", "evaluation settings: "))?;
        let c = &self.confusion;
        let total = [
            c.true_positives,
            c.false_positives,
            c.true_negatives,
            c.false_negatives,
        ]
        .iter()
        .try_fold(0u64, |a, &b| a.checked_add(b));
        if total != Some(holdout_rows) {
            return Err(format!(
                "evaluation.confusion does not add up to the {holdout_rows} holdout rows"
            ));
        }
        self.validate_metrics()?;
        self.validate_calibration(holdout_rows)?;
        if self.subgroups.len() > MAX_SUBGROUP_TABLES {
            return Err(format!(
                "evaluation.subgroups has {} tables, at most {MAX_SUBGROUP_TABLES}",
                self.subgroups.len()
            ));
        }
        for (i, t) in self.subgroups.iter().enumerate() {
            t.validate(holdout_rows)
                .map_err(|e| format!("evaluation.subgroups[{i}]: {e}"))?;
        }
        Ok(())
    }

    fn validate_metrics(&self) -> Result<(), String> {
        let names: Vec<&str> = self.metrics.iter().map(|m| m.name.as_str()).collect();
        if names != METRIC_NAMES {
            return Err(format!(
                "evaluation.metrics must be {} in this order",
                METRIC_NAMES.join(", ")
            ));
        }
        for m in &self.metrics {
            let at = |f: &str| format!("evaluation.metrics.{}.{f}", m.name);
            opt_rate(&at("value"), m.value)?;
            opt_rate(&at("low"), m.low)?;
            opt_rate(&at("high"), m.high)?;
            match (m.low, m.high) {
                (None, None) => {}
                (Some(l), Some(h)) if l <= h && self.bootstrap.resamples > 0 => {}
                _ => {
                    return Err(format!(
                        "{}: an interval needs resamples, both ends and low ≤ high",
                        at("low")
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_calibration(&self, holdout_rows: u64) -> Result<(), String> {
        let bins = &self.calibration.bins;
        let n = bins.len();
        if !(2..=MAX_CALIBRATION_BINS as usize).contains(&n) {
            return Err(format!(
                "evaluation.calibration has {n} bins, 2 to {MAX_CALIBRATION_BINS} are recorded"
            ));
        }
        let mut rows = 0u64;
        for (i, b) in bins.iter().enumerate() {
            let at = |f: &str| format!("evaluation.calibration.bins[{i}].{f}");
            let lower = i as f64 / n as f64;
            let upper = (i + 1) as f64 / n as f64;
            if (b.lower - lower).abs() > 1e-9 || (b.upper - upper).abs() > 1e-9 {
                return Err(format!(
                    "{}: bins are equal-width over [0, 1], lowest first",
                    at("lower")
                ));
            }
            opt_rate(&at("mean_predicted"), b.mean_predicted)?;
            opt_rate(&at("observed_rate"), b.observed_rate)?;
            if (b.rows == 0) != (b.mean_predicted.is_none() || b.observed_rate.is_none())
                || b.mean_predicted.is_none() != b.observed_rate.is_none()
            {
                return Err(format!(
                    "{}: an empty bin has no rates, others have both",
                    at("rows")
                ));
            }
            rows = rows.saturating_add(b.rows);
        }
        if rows != holdout_rows {
            return Err(format!(
                "evaluation.calibration bins do not add up to the {holdout_rows} holdout rows"
            ));
        }
        rate(
            "evaluation.calibration.expected_calibration_error",
            self.calibration.expected_calibration_error,
        )
    }
}

impl SubgroupTable {
    fn validate(&self, holdout_rows: u64) -> Result<(), String> {
        crate::grammar::column_name(&self.column)?;
        if let Some(bands) = &self.bands {
            SubgroupSpec::Banded(BandedSubgroup {
                column: self.column.clone(),
                bands: bands.clone(),
            })
            .validate_bands()?;
        }
        if self.min_group_rows < MIN_GROUP_ROWS_FLOOR {
            return Err(format!(
                "min_group_rows {} is below {MIN_GROUP_ROWS_FLOOR}",
                self.min_group_rows
            ));
        }
        let shown = self.groups.len() as u64;
        if shown.saturating_add(self.suppressed_groups) > MAX_GROUPS as u64 {
            return Err(format!("more than {MAX_GROUPS} groups"));
        }
        let band_names: Option<Vec<String>> = self.bands.as_ref().map(|b| {
            let mut v = band_labels(b, true);
            v.extend(band_labels(b, false));
            v
        });
        let mut rows = 0u64;
        let mut labels = std::collections::BTreeSet::new();
        for (i, g) in self.groups.iter().enumerate() {
            let at = |f: &str| format!("groups[{i}].{f}");
            group_label(&g.group).map_err(|e| format!("{}: {e}", at("group")))?;
            if band_names.as_ref().is_some_and(|b| !b.contains(&g.group)) {
                return Err(format!("{}: not a label of the table's bands", at("group")));
            }
            if !labels.insert(g.group.as_str()) {
                return Err(format!("{}: a label is listed twice", at("group")));
            }
            if g.rows < self.min_group_rows || g.positives > g.rows {
                return Err(format!(
                    "{}: below min_group_rows (it should have been suppressed), or more \
                     positives than rows",
                    at("rows")
                ));
            }
            rate(&at("accuracy"), g.accuracy)?;
            opt_rate(&at("roc_auc"), g.roc_auc)?;
            opt_rate(&at("sensitivity"), g.sensitivity)?;
            opt_rate(&at("specificity"), g.specificity)?;
            let negatives = g.rows - g.positives;
            if !is_ratio_of(g.accuracy, g.rows)
                || g.sensitivity.is_some_and(|x| !is_ratio_of(x, g.positives))
                || g.specificity.is_some_and(|x| !is_ratio_of(x, negatives))
                || g.roc_auc.is_some_and(|x| {
                    !is_ratio_of(x, g.positives.saturating_mul(negatives).saturating_mul(2))
                })
            {
                return Err(format!(
                    "{}: a rate that is not a count of the group's rows divided by their number",
                    at("accuracy")
                ));
            }
            if g.sensitivity.is_some() != (g.positives > 0)
                || g.specificity.is_some() != (g.positives < g.rows)
                || g.roc_auc.is_some() != (g.positives > 0 && g.positives < g.rows)
            {
                return Err(format!(
                    "{}: a rate is recorded that the group's classes leave undefined, or missing",
                    at("sensitivity")
                ));
            }
            rows = rows.saturating_add(g.rows);
        }
        if rows > holdout_rows {
            return Err(format!(
                "groups hold more than the {holdout_rows} holdout rows"
            ));
        }
        self.validate_suppression(holdout_rows - rows)
    }

    /// What is hidden must stay hidden: the rows not shown (`hidden`) are those of the
    /// suppressed groups, and unless every group is suppressed, they are at least two
    /// groups holding together at least `min_group_rows` rows; otherwise one small group's
    /// size and positives would follow from the holdout's totals by subtraction.
    fn validate_suppression(&self, hidden: u64) -> Result<(), String> {
        if (hidden == 0) != (self.suppressed_groups == 0) {
            return Err(format!(
                "{} suppressed groups but {hidden} holdout rows outside the groups shown",
                self.suppressed_groups
            ));
        }
        if !self.groups.is_empty()
            && hidden > 0
            && (self.suppressed_groups < 2 || hidden < self.min_group_rows)
        {
            return Err(format!(
                "{} suppressed group(s) holding {hidden} rows: fewer than two groups or                  {} rows could be told apart from the totals",
                self.suppressed_groups, self.min_group_rows
            ));
        }
        Ok(())
    }
}

/// Whether `x` is a count divided by `n` (as every rate of a group is), so that a rate
/// carries no more than the count it stands for.
fn is_ratio_of(x: f64, n: u64) -> bool {
    let k = x * n as f64;
    (k - k.round()).abs() <= 1e-6
}
