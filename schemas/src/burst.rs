//! Cloud burst's documents: the export policy (what de-identified data a burst may take
//! out), and the signed export statement (what was taken, how, and the checks it passed).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Verdict;

/// Most quasi-identifier columns one export policy lists.
pub const MAX_QUASI_IDENTIFIERS: usize = 32;
/// Most bands one generalization lists.
pub const MAX_BANDS: usize = 64;

/// `export.toml`: an `[export]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportPolicyFile {
    /// The policy.
    pub export: ExportPolicy,
}

/// What a burst may take out of the premises, and how it is de-identified.
///
/// Only rows of the pipeline's training split are eligible (validation and holdout rows
/// never leave). Identifier columns that are not listed as generalized quasi-identifiers
/// are dropped; the others are generalized; rows are sampled; equivalence classes over the
/// quasi-identifiers smaller than `k` are suppressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportPolicy {
    /// k of k-anonymity: every combination of quasi-identifier values in the export is
    /// shared by at least k rows (2 to 1000).
    pub k: u32,
    /// Fraction of the eligible rows sampled (0 excluded, 1 included).
    pub sample_fraction: f64,
    /// Seed of the sample (the same seed and data give the same export).
    #[serde(default)]
    pub seed: u64,
    /// Most rows the export may hold after sampling (none: no cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    /// The export is refused when suppression would remove more than this fraction of the
    /// sampled rows (default 0.1): generalize further instead.
    #[serde(default = "default_max_suppressed")]
    pub max_suppressed_fraction: f64,
    /// The quasi-identifiers: columns that could single a person out in combination. An
    /// identifier column must be generalized to be listed; a feature or the label is
    /// listed as it is (the model reads it as it is).
    pub quasi_identifiers: Vec<QuasiIdentifier>,
}

fn default_max_suppressed() -> f64 {
    0.1
}

/// One quasi-identifier column and its generalization (at most one of `bands`, `prefix`,
/// `truncate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QuasiIdentifier {
    /// The column.
    pub column: String,
    /// Numeric bands: `[30, 45, 60]` writes `<30`, `30-45`, `45-60`, `>=60`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bands: Option<Vec<f64>>,
    /// Keep the first n characters (ZIP `12345` with prefix 3: `123`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<u32>,
    /// Truncate an ISO date (`YYYY-MM-DD`) to its `year` or `month`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncate: Option<DateTruncation>,
}

impl QuasiIdentifier {
    /// How the column is generalized, in words (`bands 30, 45, 60`); `None` when it is
    /// kept as it is.
    pub fn generalization(&self) -> Option<String> {
        if let Some(b) = &self.bands {
            let b: Vec<String> = b.iter().map(ToString::to_string).collect();
            return Some(format!("bands {}", b.join(", ")));
        }
        if let Some(p) = self.prefix {
            return Some(format!("prefix {p}"));
        }
        self.truncate.map(|t| format!("truncate to {}", t.as_str()))
    }
}

/// How far a date is truncated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DateTruncation {
    /// `YYYY`.
    Year,
    /// `YYYY-MM`.
    Month,
}

impl DateTruncation {
    /// The name in the policy.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Year => "year",
            Self::Month => "month",
        }
    }
}

impl ExportPolicy {
    /// Check the policy's own bounds (not yet against a pipeline).
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=1000).contains(&self.k) {
            return Err(format!("k must be 2 to 1000 (got {})", self.k));
        }
        if !(self.sample_fraction > 0.0 && self.sample_fraction <= 1.0) {
            return Err("sample_fraction must be in (0, 1]".to_owned());
        }
        if !(0.0..1.0).contains(&self.max_suppressed_fraction) {
            return Err("max_suppressed_fraction must be in [0, 1)".to_owned());
        }
        if self.max_rows == Some(0) {
            return Err("max_rows must be at least 1".to_owned());
        }
        if self.quasi_identifiers.is_empty() {
            return Err(
                "quasi_identifiers is empty: name the columns k-anonymity is judged over"
                    .to_owned(),
            );
        }
        if self.quasi_identifiers.len() > MAX_QUASI_IDENTIFIERS {
            return Err(format!(
                "at most {MAX_QUASI_IDENTIFIERS} quasi-identifiers may be listed"
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for q in &self.quasi_identifiers {
            if !seen.insert(q.column.as_str()) {
                return Err(format!("quasi-identifier {:?} is listed twice", q.column));
            }
            let ways = usize::from(q.bands.is_some())
                + usize::from(q.prefix.is_some())
                + usize::from(q.truncate.is_some());
            if ways > 1 {
                return Err(format!(
                    "quasi-identifier {:?}: give one of bands, prefix or truncate",
                    q.column
                ));
            }
            if let Some(b) = &q.bands {
                let sorted = b.windows(2).all(|w| w[0] < w[1]);
                if b.is_empty()
                    || b.len() > MAX_BANDS
                    || !sorted
                    || b.iter().any(|v| !v.is_finite())
                {
                    return Err(format!(
                        "quasi-identifier {:?}: bands must be 1 to {MAX_BANDS} finite, increasing numbers",
                        q.column
                    ));
                }
            }
            if q.prefix == Some(0) {
                return Err(format!(
                    "quasi-identifier {:?}: a prefix of 0 characters keeps nothing; drop the column instead",
                    q.column
                ));
            }
        }
        Ok(())
    }
}

/// The signed statement of an export (`export.dsse.json`): subjects `data.parquet` and
/// `pipeline.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportPredicate {
    /// The model the export trains (the pipeline's release name).
    pub model_name: String,
    /// Its version.
    pub model_version: String,
    /// SHA-256 of the on-prem pipeline file the export was made for.
    pub pipeline_sha256: String,
    /// SHA-256 of the export policy file.
    pub policy_sha256: String,
    /// The policy as it was applied.
    pub policy: ExportPolicy,
    /// SHA-256 of the full on-prem data file (never its content).
    pub source_sha256: String,
    /// Row counts, from the full data to the export.
    pub rows: ExportRows,
    /// k the policy asked for.
    pub k_required: u32,
    /// The smallest equivalence class in the export.
    pub k_achieved: u64,
    /// Equivalence classes in the export.
    pub classes: u64,
    /// The exported columns, in file order.
    pub columns: Vec<ExportColumn>,
    /// Columns of the data the pipeline names that were not exported (identifiers).
    pub dropped: Vec<String>,
    /// The scans of the export against the full data.
    pub scans: Vec<ExportScan>,
    /// When it was made, RFC 3339 UTC.
    pub time: String,
}

/// Row counts of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRows {
    /// Rows of the full data.
    pub source: u64,
    /// Rows of its training split (the only ones eligible).
    pub eligible: u64,
    /// Rows sampled.
    pub sampled: u64,
    /// Sampled rows suppressed for k-anonymity.
    pub suppressed: u64,
    /// Rows exported.
    pub exported: u64,
}

/// One exported column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportColumn {
    /// The name.
    pub name: String,
    /// `feature`, `label` or `quasi-identifier`.
    pub role: String,
    /// Whether k-anonymity is judged over it.
    pub quasi_identifier: bool,
    /// How it was generalized (none: as it is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generalization: Option<String>,
}

/// One scan of an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportScan {
    /// `L1` (PII detectors) or `L2` (identifier values of the full data).
    pub layer: String,
    /// Pass or fail (a failed scan refuses the export, so a signed one says pass).
    pub verdict: Verdict,
    /// What was scanned and found, without any value.
    pub detail: String,
}

/// Most training jobs one burst runs.
pub const MAX_BURST_JOBS: usize = 64;
/// Most hosts one training job asks for.
pub const MAX_INSTANCES: u32 = 16;

/// `[burst]` in a pipeline: train on SageMaker training jobs on an approved export
/// (`airlock burst`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BurstSpec {
    /// Where the export and the jobs' outputs go, `s3://bucket[/prefix]`; the residency
    /// policy's `export` list must allow the bucket's region (and account).
    pub destination: String,
    /// The IAM role the training jobs run as.
    pub role: String,
    /// The training image: an image whose entrypoint is `airlock burst container`.
    pub image: String,
    /// Instance type of each host.
    #[serde(default = "default_instance_type")]
    pub instance_type: String,
    /// Hosts per job (data-parallel training across them when more than one), 1 to 16.
    #[serde(default = "default_instances")]
    pub instance_count: u32,
    /// The longest a job may run before SageMaker stops it, seconds.
    #[serde(default = "default_max_runtime")]
    pub max_runtime_seconds: u32,
    /// Seconds between two looks at a job's status.
    #[serde(default = "default_poll")]
    pub poll_seconds: u64,
    /// A hyperparameter sweep: several jobs, the best by validation loss kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<SweepSpec>,
}

fn default_instance_type() -> String {
    "ml.m5.xlarge".to_owned()
}

fn default_instances() -> u32 {
    1
}

fn default_max_runtime() -> u32 {
    86_400
}

fn default_poll() -> u64 {
    15
}

/// `[burst.sweep]`: which jobs a burst runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// `grid` (every combination of the values) or `random` (`trials` combinations drawn
    /// with `seed`).
    pub method: SweepMethod,
    /// Combinations drawn, for `random`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trials: Option<u32>,
    /// Jobs running at once (default 2).
    #[serde(default = "default_parallel")]
    pub max_parallel: u32,
    /// Seed of a random sweep's draws.
    #[serde(default)]
    pub seed: u64,
    /// Values per hyperparameter: `learning_rate`, `weight_decay`, `epochs`, `batch_size`,
    /// `dropout`, and `instance_count` (hosts of the job).
    pub parameters: std::collections::BTreeMap<String, Vec<f64>>,
}

fn default_parallel() -> u32 {
    2
}

/// How a sweep chooses its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SweepMethod {
    /// Every combination.
    Grid,
    /// Combinations drawn at random.
    Random,
}

impl SweepMethod {
    /// The name in the pipeline.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Grid => "grid",
            Self::Random => "random",
        }
    }
}

/// The parameters a sweep may vary. Not the seed: it also draws the on-prem splits, so a
/// job trained with another one would be evaluated on a holdout holding its training rows.
pub const SWEEP_PARAMETERS: [&str; 6] = [
    "learning_rate",
    "weight_decay",
    "epochs",
    "batch_size",
    "dropout",
    "instance_count",
];

impl BurstSpec {
    /// Check the section's own bounds.
    pub fn validate(&self) -> Result<(), String> {
        if !self.destination.starts_with("s3://") {
            return Err("burst.destination must be s3://bucket[/prefix]".to_owned());
        }
        if !(1..=MAX_INSTANCES).contains(&self.instance_count) {
            return Err(format!("burst.instance_count must be 1 to {MAX_INSTANCES}"));
        }
        if self.poll_seconds == 0 || self.max_runtime_seconds == 0 {
            return Err(
                "burst.poll_seconds and burst.max_runtime_seconds must be positive".to_owned(),
            );
        }
        let Some(s) = &self.sweep else { return Ok(()) };
        if !(1..=16).contains(&s.max_parallel) {
            return Err("burst.sweep.max_parallel must be 1 to 16".to_owned());
        }
        if s.parameters.is_empty() {
            return Err("burst.sweep.parameters is empty".to_owned());
        }
        for (k, v) in &s.parameters {
            if !SWEEP_PARAMETERS.contains(&k.as_str()) {
                return Err(format!(
                    "burst.sweep.parameters: {k:?} is not one a sweep varies ({})",
                    SWEEP_PARAMETERS.join(", ")
                ));
            }
            if v.is_empty() || v.len() > 16 || v.iter().any(|x| !x.is_finite()) {
                return Err(format!("burst.sweep.parameters.{k}: 1 to 16 finite values"));
            }
            let integral = matches!(
                k.as_str(),
                "epochs" | "batch_size" | "seed" | "instance_count"
            );
            if integral && v.iter().any(|x| x.fract() != 0.0 || *x < 0.0) {
                return Err(format!("burst.sweep.parameters.{k}: whole numbers"));
            }
            if k == "instance_count" && v.iter().any(|x| *x < 1.0 || *x > f64::from(MAX_INSTANCES))
            {
                return Err(format!(
                    "burst.sweep.parameters.instance_count: 1 to {MAX_INSTANCES}"
                ));
            }
        }
        let jobs = match s.method {
            SweepMethod::Grid => {
                if s.trials.is_some() {
                    return Err("burst.sweep.trials is for method = \"random\"".to_owned());
                }
                s.parameters.values().map(Vec::len).product::<usize>()
            }
            SweepMethod::Random => s
                .trials
                .ok_or("burst.sweep.trials: how many jobs a random sweep runs")?
                as usize,
        };
        if !(1..=MAX_BURST_JOBS).contains(&jobs) {
            return Err(format!(
                "the sweep would run {jobs} jobs; 1 to {MAX_BURST_JOBS} are allowed"
            ));
        }
        Ok(())
    }
}

/// What a burst run's training record says of the burst (`airlock burst`): the export it
/// trained on, the job kept and every job of the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BurstRecord {
    /// The burst's id.
    pub burst: String,
    /// SHA-256 of the approved export's statement (what the officers approved).
    pub export_statement_sha256: String,
    /// SHA-256 of the export's data file.
    pub export_data_sha256: String,
    /// The job kept.
    pub job: BurstJob,
    /// How the job was chosen: `single`, or a sweep's method, run by airlock, kept by the
    /// lowest final validation loss.
    pub selection: String,
    /// Every job of the burst, the kept one included.
    pub jobs: Vec<BurstJob>,
}

/// One training job of a burst.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BurstJob {
    /// The training job's name.
    pub name: String,
    /// Its ARN (`arn:aws:sagemaker:local:...` in local mode).
    pub arn: String,
    /// The hyperparameters sent.
    pub hyperparameters: std::collections::BTreeMap<String, String>,
    /// Hosts.
    pub hosts: u32,
    /// `completed`, `failed`, `refused` (its artifact did not verify) or `stopped`.
    pub outcome: String,
    /// The digest the job recorded of its artifact (completed jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_sha256: Option<String>,
    /// Its final validation loss, when its artifact verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_loss: Option<f64>,
}

impl BurstRecord {
    /// Grammars of everything the packager may copy.
    pub fn validate(&self) -> Result<(), String> {
        use crate::grammar as g;
        let name = |s: &str, f: &str| -> Result<(), String> {
            let ok = !s.is_empty()
                && s.len() <= 63
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if ok {
                Ok(())
            } else {
                Err(format!("burst.{f}: 1 to 63 letters, digits and '-'"))
            }
        };
        name(&self.burst, "burst")?;
        g::sha256_hex(&self.export_statement_sha256)
            .map_err(|e| format!("burst.export_statement_sha256: {e}"))?;
        g::sha256_hex(&self.export_data_sha256)
            .map_err(|e| format!("burst.export_data_sha256: {e}"))?;
        if !matches!(self.selection.as_str(), "single" | "grid" | "random") {
            return Err("burst.selection: single, grid or random".to_owned());
        }
        if self.jobs.is_empty()
            || self.jobs.len() > MAX_BURST_JOBS
            || !self.jobs.contains(&self.job)
        {
            return Err(format!(
                "burst.jobs: 1 to {MAX_BURST_JOBS}, the kept job among them"
            ));
        }
        for j in &self.jobs {
            name(&j.name, "jobs.name")?;
            let arn_ok = j.arn.starts_with("arn:aws:sagemaker:")
                && j.arn.len() <= 256
                && j.arn
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b":/-_".contains(&b));
            if !arn_ok {
                return Err("burst.jobs.arn: a SageMaker training job ARN".to_owned());
            }
            if !matches!(
                j.outcome.as_str(),
                "completed" | "failed" | "refused" | "stopped"
            ) {
                return Err("burst.jobs.outcome: completed, failed, refused or stopped".to_owned());
            }
            if !(1..=MAX_INSTANCES).contains(&j.hosts) {
                return Err(format!("burst.jobs.hosts: 1 to {MAX_INSTANCES}"));
            }
            for (k, v) in &j.hyperparameters {
                let number = v.len() <= 32 && v.parse::<f64>().is_ok_and(f64::is_finite);
                if !SWEEP_PARAMETERS.contains(&k.as_str()) || k == "instance_count" || !number {
                    return Err(
                        "burst.jobs.hyperparameters: a burst's hyperparameters, as numbers"
                            .to_owned(),
                    );
                }
            }
            if let Some(d) = &j.artifact_sha256 {
                g::sha256_hex(d).map_err(|e| format!("burst.jobs.artifact_sha256: {e}"))?;
            }
            if j.validation_loss.is_some_and(|l| !l.is_finite() || l < 0.0) {
                return Err("burst.jobs.validation_loss: finite, not negative".to_owned());
            }
        }
        Ok(())
    }
}
