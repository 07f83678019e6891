//! Documents of a release bundle: the model card, the leak report, in-toto statements
//! with their DSSE envelopes, and the trust policy that says whose signatures count.

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::{EpochMetrics, RocPoint};

/// Version of the bundle document formats; bumped on any incompatible change.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;
/// in-toto Statement v1 `_type`.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of airlock's release predicate.
pub const RELEASE_PREDICATE_TYPE: &str = "https://airlock.dev/attestation/release/v1";
/// `predicateType` of SLSA provenance v1.
pub const SLSA_PROVENANCE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// DSSE payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The leak report's layers, id and name, in the order every report holds them: a report
/// with another list (a layer dropped, added or reordered) does not verify.
pub const LEAK_LAYERS: [(&str, &str); 5] = [
    ("L0", "structure"),
    ("L1", "pii-patterns"),
    ("L2", "exact-records"),
    ("L3", "membership-inference"),
    ("L4", "reproducibility"),
];

/// `model-card.json`: what the model is and how it did, without a single raw value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelCard {
    /// [`BUNDLE_FORMAT_VERSION`].
    pub schema_version: u32,
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
    /// What the model is for.
    pub intended_use: Option<String>,
    /// How to rebuild the model from `model.safetensors`.
    pub architecture: Architecture,
    /// Input columns, in order: raw values (standardization is folded into the weights).
    pub inputs: Vec<InputFeature>,
    /// What the model outputs.
    pub output: ModelOutput,
    /// Metrics on rows never used in training.
    pub metrics: CardMetrics,
    /// Aggregate training curves, for reviewers.
    pub training: TrainingSummary,
    /// The training configuration, for comparing releases (absent in older cards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<crate::CardConfiguration>,
    /// The holdout evaluation: intervals, clinical metrics, calibration, subgroups (absent
    /// in older cards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<crate::Evaluation>,
    /// The release is served on the premises only (`[release] onprem_only`): a router
    /// sends none of its requests to the cloud.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub onprem_only: bool,
}

/// Architecture of the released model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    /// `mlp` or `cnn`.
    pub kind: String,
    /// Widths of the dense layers from their input to the output, e.g. `[12, 64, 32, 1]`
    /// (for a CNN, the first is the flattened last block).
    pub layer_widths: Vec<usize>,
    /// For a CNN: the input images and the convolution blocks before the dense layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnn: Option<CnnArchitecture>,
    /// Activation between layers: `relu`.
    pub activation: String,
    /// Every tensor in `model.safetensors`, with its shape (`[out, in]` for weights).
    pub tensors: Vec<TensorSpec>,
}

/// The convolutional part of a CNN's architecture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CnnArchitecture {
    /// Size of the images the model takes.
    pub input: crate::ImageInput,
    /// Convolution blocks, input side first.
    pub conv: Vec<crate::ConvBlock>,
    /// Whether the input is normalized by the released aggregate tensors `input.mean` and
    /// `input.std` (per channel) before the first block; otherwise the normalization is
    /// folded into its weights and the model takes pixel values in [0, 1].
    pub input_normalization: bool,
}

/// Name, dtype and shape of one released tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    /// Tensor name.
    pub name: String,
    /// safetensors dtype, `F32`.
    pub dtype: String,
    /// Shape.
    pub shape: Vec<usize>,
}

/// One input column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputFeature {
    /// Column name.
    pub name: String,
    /// `float32`.
    pub dtype: String,
}

/// The model's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelOutput {
    /// Label column the model predicts.
    pub label: String,
    /// Output classes: negative first (binary), in output order (multi-class), none
    /// (regression).
    pub classes: Vec<String>,
    /// From raw outputs to answers: `sigmoid` (one logit to the probability of the
    /// positive class), `softmax` (logits to class probabilities) or `identity` (the
    /// value itself).
    pub transform: String,
}

/// Holdout metrics, per task (told apart by their members; binary cards written before
/// tasks read as [`CardMetrics::Binary`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CardMetrics {
    /// A binary classifier.
    Binary(BinaryCardMetrics),
    /// A multi-class classifier.
    Multiclass(MulticlassCardMetrics),
    /// A regression.
    Regression(RegressionCardMetrics),
}

impl CardMetrics {
    /// The binary figures, for a binary classifier.
    pub fn binary(&self) -> Option<&BinaryCardMetrics> {
        match self {
            Self::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// The card's figures from a training record's holdout metrics.
    pub fn from_holdout(h: &crate::Holdout, holdout_rows: u64) -> Self {
        match h {
            crate::Holdout::Binary(b) => Self::Binary(BinaryCardMetrics {
                roc_auc: b.roc_auc,
                accuracy: b.accuracy,
                loss: b.loss,
                holdout_rows,
                positive_rate: b.positive_rate,
            }),
            crate::Holdout::Multiclass(m) => Self::Multiclass(MulticlassCardMetrics {
                loss: m.loss,
                accuracy: m.accuracy,
                macro_f1: m.macro_f1,
                confusion: m.confusion.clone(),
                holdout_rows,
            }),
            crate::Holdout::Regression(r) => Self::Regression(RegressionCardMetrics {
                loss: r.loss,
                rmse: r.rmse,
                mae: r.mae,
                r2: r.r2,
                residuals: r.residuals.clone(),
                holdout_rows,
            }),
        }
    }

    /// Rows in the holdout split.
    pub fn holdout_rows(&self) -> u64 {
        match self {
            Self::Binary(b) => b.holdout_rows,
            Self::Multiclass(m) => m.holdout_rows,
            Self::Regression(r) => r.holdout_rows,
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
}

/// Holdout metrics of a multi-class classifier in the card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MulticlassCardMetrics {
    /// Categorical cross-entropy.
    pub loss: f64,
    /// Fraction of rows whose most probable class is the label.
    pub accuracy: f64,
    /// Unweighted mean over classes of F1.
    pub macro_f1: f64,
    /// Counts: `confusion[true][predicted]`, classes in the output's order.
    pub confusion: Vec<Vec<u64>>,
    /// Rows in the holdout split.
    pub holdout_rows: u64,
}

/// Holdout metrics of a regression in the card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegressionCardMetrics {
    /// Mean squared error.
    pub loss: f64,
    /// Root mean squared error.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination.
    pub r2: f64,
    /// The binned residual plot (see [`crate::RegressionMetrics::residuals`]).
    pub residuals: Vec<crate::ResidualBin>,
    /// Rows in the holdout split.
    pub holdout_rows: u64,
}

/// Holdout metrics of a binary classifier in the card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BinaryCardMetrics {
    /// Area under the ROC curve.
    pub roc_auc: f64,
    /// Accuracy at threshold 0.5.
    pub accuracy: f64,
    /// Binary cross-entropy.
    pub loss: f64,
    /// Rows in the holdout split.
    pub holdout_rows: u64,
    /// Fraction of positive labels in the holdout split.
    pub positive_rate: f64,
}

/// Aggregate training figures for the review page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainingSummary {
    /// Per-epoch losses and accuracies.
    pub epochs: Vec<EpochMetrics>,
    /// Holdout ROC curve (at most 101 points).
    pub roc_curve: Vec<RocPoint>,
    /// Training / validation / holdout rows.
    pub split_rows: [u64; 3],
}

/// A leak check's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Nothing found.
    Pass,
    /// Something found: the release is refused.
    Fail,
    /// The check could not run: fail closed, the release is refused.
    Error,
}

/// `leak-report.json`: every leak check, its parameters, inputs, counts and verdict.
/// Findings name places (file, tensor, offset, record index, column), never content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeakReport {
    /// [`BUNDLE_FORMAT_VERSION`].
    pub schema_version: u32,
    /// `pass` only when every layer passed.
    pub verdict: Verdict,
    /// What was checked and against what, by digest.
    pub inputs: Vec<ReportInput>,
    /// [`LEAK_LAYERS`], in order.
    pub layers: Vec<LeakLayer>,
}

/// An input of the leak checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    /// Role: `checkpoint`, `training-data`, `model`, `model-card`...
    pub role: String,
    /// File name (not a full path: paths stay on-prem).
    pub name: String,
    /// SHA-256 of its bytes.
    pub sha256: String,
}

/// One leak-check layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeakLayer {
    /// `L0`, `L1`, `L2` or `L3`.
    pub id: String,
    /// `structure`, `pii-patterns`, `exact-records`, `membership-inference`.
    pub name: String,
    /// Outcome.
    pub verdict: Verdict,
    /// Parameters the check ran with.
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// Counts and measured figures.
    pub counts: BTreeMap<String, serde_json::Value>,
    /// What was found (at most 100 listed; `counts` has the totals).
    pub findings: Vec<Finding>,
    /// Why the check could not run, when the verdict is `error`.
    pub error: Option<String>,
}

/// One finding: where, and what kind, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Finding {
    /// Kind of finding, e.g. `unexpected-tensor`, `email`, `text-record`, `numeric-record`.
    pub kind: String,
    /// Where: file and tensor, metadata key, or byte offset.
    pub location: String,
    /// 0-based record index in the training data, for record matches.
    pub record: Option<u64>,
    /// Column name, for record matches.
    pub column: Option<String>,
}

/// in-toto Statement v1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Statement<P> {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub type_: String,
    /// The artifacts the statement is about.
    pub subject: Vec<Subject>,
    /// URI naming the predicate's schema.
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The claim.
    pub predicate: P,
}

/// An in-toto subject: a name and its digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// File name within the bundle.
    pub name: String,
    /// Algorithm → lowercase hex digest (`sha256`).
    pub digest: BTreeMap<String, String>,
}

/// airlock's release predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleasePredicate {
    /// Model name.
    pub model_name: String,
    /// Model version.
    pub model_version: String,
    /// SHA-256 of the pipeline file.
    pub pipeline_sha256: String,
    /// SHA-256 of the run's `training-record.json`.
    pub training_record_sha256: String,
    /// Combined leak verdict (always `pass` in a signed bundle).
    pub leak_verdict: Verdict,
    /// Git commit the pipeline was trained at.
    pub git_commit: Option<String>,
    /// Per-shard digests of `model.safetensors`, so verification can use every core.
    pub model_shards: ShardDigests,
    /// The differential-privacy guarantee of a DP-SGD run, recomputed by the packager
    /// from the pipeline and proven by the replay (L4); absent for other runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacyGuarantee>,
}

/// How the privacy guarantee was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PrivacyMechanism {
    /// DP-SGD: Poisson-sampled batches, each example's gradient clipped to
    /// `max_grad_norm`, Gaussian noise of `noise_multiplier · max_grad_norm` per step,
    /// accounted with RDP of the sampled Gaussian mechanism.
    DpSgd,
}

/// An (ε, δ) differential-privacy guarantee for one row of the training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyGuarantee {
    /// The mechanism.
    pub mechanism: PrivacyMechanism,
    /// ε spent over all of training.
    pub epsilon: f64,
    /// δ.
    pub delta: f64,
    /// ε spent after each epoch.
    pub epsilon_per_epoch: Vec<f64>,
    /// Noise standard deviation over the clipping norm.
    pub noise_multiplier: f64,
    /// Per-example gradient clipping norm.
    pub max_grad_norm: f64,
    /// Probability that a row is in a step's batch.
    pub sampling_rate: f64,
    /// Noisy steps taken.
    pub steps: u64,
    /// SHA-256 of the secret that seeded the noise and the sampling (kept on the premises,
    /// in the run directory, so that the replay can prove the weights).
    pub noise_secret_sha256: String,
    /// The one-run audit, when the pipeline asked for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<PrivacyAudit>,
}

/// What the one-run privacy audit measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyAudit {
    /// Canaries, each trained on with probability ½.
    pub canaries: u64,
    /// Guesses the auditor made (the canaries it was surest about).
    pub guesses: u64,
    /// Guesses that were right.
    pub correct: u64,
    /// The lower bound on ε the guesses prove at 95 % confidence.
    pub epsilon_lower_bound: f64,
}

/// SHA-256 of consecutive fixed-size pieces of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShardDigests {
    /// File length in bytes.
    pub length: u64,
    /// Bytes per shard (the last may be shorter).
    pub shard_size: u64,
    /// Lowercase hex SHA-256 per shard, in file order.
    pub sha256: Vec<String>,
}

/// A DSSE envelope (`https://github.com/secure-systems-lab/dsse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Media type of the payload.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// Standard base64 of the payload bytes.
    pub payload: String,
    /// Signatures over PAE(payloadType, payload).
    pub signatures: Vec<EnvelopeSignature>,
}

/// One DSSE signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// Key id: hex SHA-256 of the public key's SPKI DER.
    pub keyid: String,
    /// Standard base64 of the ed25519 signature.
    pub sig: String,
}

/// `trust.toml`: the keys whose signatures count, by role, and the approval threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustPolicy {
    /// Distinct officer approvals a release needs (k of n).
    #[serde(default)]
    pub approvals_required: u32,
    /// Trusted public keys.
    #[serde(default)]
    pub keys: Vec<TrustedKey>,
    /// Key ids (hex SHA-256 of the SPKI DER) whose signatures no longer count.
    #[serde(default)]
    pub revoked: Vec<String>,
    /// Base of the predicate types this policy expects and officers' decisions carry (see
    /// [`crate::UriBase`]); default `https://airlock.dev`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri_base: Option<String>,
}

/// A trusted public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrustedKey {
    /// Who holds it.
    pub name: String,
    /// What its signatures may do.
    pub role: KeyRole,
    /// SPKI PEM file, relative to the policy file.
    pub public_key: PathBuf,
    /// The key counts only from this time on (RFC 3339).
    #[serde(default)]
    pub not_before: Option<String>,
    /// The key counts only until this time (RFC 3339).
    #[serde(default)]
    pub not_after: Option<String>,
}

/// Roles of trusted keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum KeyRole {
    /// Signs release bundles (CI).
    Builder,
    /// Approves or rejects releases (compliance officers).
    Officer,
    /// Publishes to the cloud and signs the audit log.
    Publisher,
    /// A federation's site: signs the updates it lets out (`airlock federate site`).
    Site,
    /// A federation's aggregator: signs each round's global model and the federation's
    /// entries of the audit log.
    Aggregator,
}

/// Leak-check thresholds in a pipeline file (`[leak]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LeakSpec {
    /// L3: highest membership-inference AUC allowed.
    #[serde(default = "default_mia_auc")]
    pub max_membership_auc: f64,
    /// L3: highest membership advantage (max TPR − FPR) allowed.
    #[serde(default = "default_mia_advantage")]
    pub max_membership_advantage: f64,
    /// L1: the site's medical record number formats, as regular expressions (e.g.
    /// `"MRN[0-9]{8}"`); a match in anything that leaves is a finding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mrn_patterns: Vec<String>,
    /// L3: reference models RMIA trains on rows the run never trained on (1 to 8).
    #[serde(default = "default_rmia_references")]
    pub rmia_reference_models: u32,
    /// L3: highest RMIA AUC allowed.
    #[serde(default = "default_rmia_auc")]
    pub max_rmia_auc: f64,
    /// L3: highest share of members RMIA may find at a 1 % false-positive rate.
    #[serde(default = "default_rmia_tpr")]
    pub max_rmia_tpr_at_1pct_fpr: f64,
    /// L4: train again from the run's pipeline, seed and data and require the same
    /// checkpoint byte for byte (on CUDA: report the largest difference). Off, the release
    /// is marked as not reproduced for the officers.
    #[serde(default = "default_true")]
    pub reproduce: bool,
}

fn default_true() -> bool {
    true
}

fn default_rmia_references() -> u32 {
    2
}
fn default_rmia_auc() -> f64 {
    0.60
}
fn default_rmia_tpr() -> f64 {
    0.05
}
fn default_mia_auc() -> f64 {
    0.60
}
fn default_mia_advantage() -> f64 {
    0.15
}

impl Default for LeakSpec {
    fn default() -> Self {
        Self {
            max_membership_auc: default_mia_auc(),
            max_membership_advantage: default_mia_advantage(),
            mrn_patterns: Vec::new(),
            rmia_reference_models: default_rmia_references(),
            max_rmia_auc: default_rmia_auc(),
            max_rmia_tpr_at_1pct_fpr: default_rmia_tpr(),
            reproduce: true,
        }
    }
}

/// `predicateType` of an officer's decision.
pub const APPROVAL_PREDICATE_TYPE: &str = "https://airlock.dev/attestation/approval/v1";

/// An officer's decision on a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// The model may leave the premises.
    Approve,
    /// It may not: one valid rejection blocks the release.
    Reject,
}

/// Predicate of `approvals/<key id>.dsse.json`, whose subjects are `statement.json` and
/// `model.safetensors` by SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalPredicate {
    /// Approve or reject.
    pub decision: Decision,
    /// The officer's name as they gave it.
    pub officer: String,
    /// Why.
    pub reason: String,
    /// When, RFC 3339 UTC.
    pub time: String,
    /// Until when an approval counts, RFC 3339 UTC (none: no expiry).
    pub expires: Option<String>,
    /// Model name of the release decided on.
    pub model_name: String,
    /// Model version of the release decided on.
    pub model_version: String,
}

/// One entry of the residency audit log (a JSON line).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditEntry {
    /// 1-based position in the log.
    pub seq: u64,
    /// When, RFC 3339 UTC.
    pub time: String,
    /// Key id of the publisher key that acted.
    pub actor: String,
    /// What happened: `start` (about to send to `destination`), `publish`, `deploy` or
    /// `refuse`.
    pub action: AuditAction,
    /// Name of the model the entry is about, as its signed release statement gives it
    /// (absent in entries written before it was recorded, and when no statement verified).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Version of that model, as signed (absent as `model` is).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Artifact name → SHA-256 of what crossed (or would have).
    pub artifacts: BTreeMap<String, String>,
    /// Destination URI.
    pub destination: String,
    /// Region (and account) the destination reported, when it was asked.
    pub verified_region: Option<String>,
    /// Key ids of the officer approvals that counted.
    pub approvals: Vec<String>,
    /// SHA-256 of the trust policy.
    pub trust_policy_sha256: String,
    /// SHA-256 of the residency policy.
    pub residency_policy_sha256: String,
    /// `started` (for `start`), `ok` (or `ok: ...`), `refused: why` or `failed: why`.
    pub outcome: String,
    /// What the router counted (`route`) or refused (`route-refusal`): classes, sides and
    /// outcomes, never a payload or a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<crate::RoutingRecord>,
    /// SHA-256 of the previous entry's line (64 zeros for the first).
    pub prev: String,
}

/// What an audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuditAction {
    /// Written (and its head signed) before the first byte is sent to `destination`: what
    /// is about to leave (`artifacts`) and where to. A release index records this entry.
    Start,
    /// Files or a model package reached `destination` (or failed to: see `outcome`).
    Publish,
    /// An endpoint was deployed (or failed to be).
    Deploy,
    /// The publish was refused; nothing was sent.
    Refuse,
    /// The bundle was staged for review (`review/<name>/<version>/` in the registry) before
    /// its approvals: the model's bytes crossed the boundary, though it is not released.
    Stage,
    /// A site's update reached a federation's aggregator (weights or statistics only,
    /// by digest): accepted into the round, or refused (see `outcome`).
    FederatedUpdate,
    /// A round's global model, signed by the aggregator, is what the sites receive next.
    FederatedRound,
    /// A burst's approved data export is about to leave (written before the first byte),
    /// reached its destination, or was refused (see `outcome`).
    Export,
    /// A burst's cloud training job was created, finished or failed (see `outcome`).
    TrainingJob,
    /// A burst's trained artifact came back and was verified, or was refused.
    SyncBack,
    /// A burst's cloud resources were released: jobs stopped, exported data and outputs
    /// deleted.
    Release,
    /// The router's counts of one window: requests per class, side and outcome.
    Route,
    /// The router refused one request (no side may or can serve it); the reason is the
    /// outcome.
    RouteRefusal,
}

impl AuditAction {
    /// Whether a federation's aggregator records it (its log holds nothing else).
    pub fn is_federated(self) -> bool {
        matches!(self, Self::FederatedUpdate | Self::FederatedRound)
    }

    /// The name used in the log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Publish => "publish",
            Self::Deploy => "deploy",
            Self::Refuse => "refuse",
            Self::Stage => "stage",
            Self::FederatedUpdate => "federated-update",
            Self::FederatedRound => "federated-round",
            Self::Export => "export",
            Self::TrainingJob => "training-job",
            Self::SyncBack => "sync-back",
            Self::Release => "release",
            Self::Route => "route",
            Self::RouteRefusal => "route-refusal",
        }
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The signed head of an audit log: the last entry, by position and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditHead {
    /// Entries in the log.
    pub seq: u64,
    /// SHA-256 of the last entry's line.
    pub entry_sha256: String,
    /// When the head was signed.
    pub time: String,
}

/// `residency.toml`: where data-derived artifacts may go, per destination kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResidencyPolicy {
    /// Model registries (`file://`, `s3://`).
    pub registry: DestinationRule,
    /// SageMaker model registry and endpoints.
    #[serde(default)]
    pub sagemaker: Option<DestinationRule>,
    /// Data exports for cloud bursts (de-identified training rows) and the training jobs
    /// that read them: a separate list, usually stricter than `registry`'s. Absent: no
    /// export may leave.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<DestinationRule>,
    /// OCI registries (`oci://host[:port]/repository`), which cannot say where they are: the
    /// hosts releases may be pushed to, each with the region the operator vouches it is in
    /// (that region must also be in `registry.regions`). Absent: no OCI registry is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oci: Option<OciRule>,
}

/// `[oci]` of `residency.toml`: the OCI registry hosts releases may be pushed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OciRule {
    /// `host` or `host:port`, exactly as in the `oci://` URI (lower case; a host without a
    /// port allows only the default port) → the region it is in (recorded in the audit log,
    /// and held to `registry.regions`), e.g. `"harbor.eu.example.com" = "eu-west-1"`.
    pub hosts: BTreeMap<String, String>,
}

/// Allowed places for one kind of destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationRule {
    /// Allowed regions, as the destination reports them (`eu-west-1`; `local` for a
    /// `file://` registry on the premises).
    pub regions: Vec<String>,
    /// Allowed account ids; empty: any account.
    #[serde(default)]
    pub accounts: Vec<String>,
}

/// `models/<name>/<version>/release.json` in a registry: the index of a published release,
/// written after every blob it names is in place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseIndex {
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
    /// Bundle file name (`model.safetensors`, `approvals/<key id>.dsse.json`...) → SHA-256
    /// of its blob under `blobs/sha256/`.
    pub files: BTreeMap<String, String>,
    /// When it was published, RFC 3339 UTC.
    pub published_at: String,
    /// Key id of the publisher.
    pub publisher: String,
    /// The audit entry that announced this publish (its `start` entry), in the publisher's
    /// audit log, whose copy the registry keeps under `audit/`: the witness that the log
    /// recorded the release. `airlock pull` finds it in that copy; `airlock audit verify
    /// --registry` finds it in the log.
    pub audit: AuditPoint,
    /// That entry's inclusion proof in the log's Merkle tree and the signed checkpoint it
    /// was proved against: a reader with the trust policy alone checks that the publish is
    /// on record, without the log (absent in indexes written before the log was a tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transparency: Option<InclusionProof>,
}

/// An entry's inclusion proof in an audit log's RFC 9162 Merkle tree, with the signed
/// checkpoint (C2SP `tlog-checkpoint`) of the tree it was proved in: what
/// `airlock audit prove` prints, what a release index and a pulled bundle
/// (`transparency.json`) carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The entry's `seq` (its leaf index is `seq - 1`).
    pub seq: u64,
    /// The entry's line, exactly as in the log (without its newline): the leaf is
    /// `SHA-256(0x00 || entry)`.
    pub entry: String,
    /// Leaves in the tree the proof is for (the checkpoint's size).
    pub tree_size: u64,
    /// The proof's hashes, nearest the leaf first, lowercase hex.
    pub hashes: Vec<String>,
    /// The signed checkpoint note of that tree.
    pub checkpoint: String,
}

/// A consistency proof between two sizes of an audit log's Merkle tree: what
/// `airlock audit consistency` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The older size.
    pub from_size: u64,
    /// The older tree's root, lowercase hex (compare it with a checkpoint of that size).
    pub from_root: String,
    /// The newer size (the checkpoint's).
    pub tree_size: u64,
    /// The proof's hashes, lowercase hex.
    pub hashes: Vec<String>,
    /// The signed checkpoint note of the newer tree.
    pub checkpoint: String,
}

/// One entry of an audit log, by position and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditPoint {
    /// File name of the log's copy under `audit/` in the registry (the log's own file name).
    pub log: String,
    /// The entry's `seq`.
    pub seq: u64,
    /// SHA-256 of the entry's line.
    pub entry_sha256: String,
}
