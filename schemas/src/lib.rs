#![doc = include_str!("../README.md")]

mod error_kind;
pub mod evaluation;
pub mod grammar;
mod io;
mod pipeline;
mod release;
pub mod strict_json;
mod training_record;
mod uri;

pub use error_kind::ErrorKind;
pub use evaluation::{
    BandedSubgroup, BootstrapInfo, Calibration, CalibrationBin, CardConfiguration, CardDataFile,
    CardSource, Confusion, EstimatedMetric, Evaluation, EvaluationSpec, SubgroupRow, SubgroupSpec,
    SubgroupTable,
};
pub use io::IoError;
pub use pipeline::{
    DataSpec, DeploySpec, ModelKind, ModelSpec, OptimizerKind, OptimizerSpec, PipelineError,
    PipelineSpec, PublishSpec, ReleaseSpec, SageMakerSpec, SigningSpec, SplitSpec, TrainingSpec,
};
pub use release::{
    APPROVAL_PREDICATE_TYPE, ApprovalPredicate, Architecture, AuditAction, AuditEntry, AuditHead,
    AuditPoint, BUNDLE_FORMAT_VERSION, CardMetrics, Decision, DestinationRule, Envelope,
    EnvelopeSignature, Finding, IN_TOTO_PAYLOAD_TYPE, InputFeature, KeyRole, LeakLayer, LeakReport,
    LeakSpec, ModelCard, ModelOutput, RELEASE_PREDICATE_TYPE, ReleaseIndex, ReleasePredicate,
    ReportInput, ResidencyPolicy, SLSA_PROVENANCE_TYPE, STATEMENT_TYPE, ShardDigests, Statement,
    Subject, TensorSpec, TrainingSummary, TrustPolicy, TrustedKey, Verdict,
};
pub use training_record::{
    BackendInfo, DatasetFile, DatasetFingerprint, EpochMetrics, FileDigest, HoldoutMetrics,
    Hyperparameters, RocPoint, SplitSizes, TRAINING_RECORD_VERSION, TrainingRecord,
};
pub use uri::{DEFAULT_URI_BASE, UriBase};

/// Every document type with a JSON Schema under `schemas/json/`, by file stem.
///
/// The schema files are generated from these types; `cargo test -p airlock-schemas`
/// fails when a checked-in schema is stale (`make schemas` regenerates them).
pub fn json_schemas() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        ("pipeline-spec", schemars::schema_for!(PipelineSpec)),
        ("training-record", schemars::schema_for!(TrainingRecord)),
        ("model-card", schemars::schema_for!(ModelCard)),
        ("leak-report", schemars::schema_for!(LeakReport)),
        (
            "release-statement",
            schemars::schema_for!(Statement<ReleasePredicate>),
        ),
        ("dsse-envelope", schemars::schema_for!(Envelope)),
        ("trust-policy", schemars::schema_for!(TrustPolicy)),
        ("audit-entry", schemars::schema_for!(AuditEntry)),
        ("audit-head", schemars::schema_for!(AuditHead)),
        ("residency-policy", schemars::schema_for!(ResidencyPolicy)),
        ("release-index", schemars::schema_for!(ReleaseIndex)),
        (
            "approval-statement",
            schemars::schema_for!(Statement<ApprovalPredicate>),
        ),
    ]
}
