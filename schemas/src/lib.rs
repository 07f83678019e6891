#![doc = include_str!("../README.md")]

mod burst;
mod error_kind;
pub mod evaluation;
mod federation;
pub mod grammar;
mod io;
mod model_spec;
mod pipeline;
mod release;
mod route;
pub mod strict_json;
mod training_record;
mod uri;

pub use burst::{
    BurstJob, BurstRecord, BurstSpec, DateTruncation, ExportColumn, ExportPolicy, ExportPolicyFile,
    ExportPredicate, ExportRows, ExportScan, MAX_BANDS, MAX_BURST_JOBS, MAX_INSTANCES,
    MAX_QUASI_IDENTIFIERS, QuasiIdentifier, SWEEP_PARAMETERS, SweepMethod, SweepSpec,
};
pub use error_kind::ErrorKind;
pub use evaluation::{
    BandedSubgroup, BootstrapInfo, Calibration, CalibrationBin, CardConfiguration, CardDataFile,
    CardSource, Confusion, EstimatedMetric, Evaluation, EvaluationSpec, SubgroupRow, SubgroupSpec,
    SubgroupTable,
};
pub use federation::{
    Contribution, FederationFile, FederationRecord, FederationSpec, LayerOutcome, MAX_ROUNDS,
    MAX_SITES, Party, Refusal, RoundPredicate, Site, SiteContribution, Strategy, UpdateKind,
    UpdatePredicate,
};
pub use io::IoError;
pub use model_spec::{
    CnnSpec, ConvBlock, DataFormat, ImageInput, MAX_CLASSES, MAX_IMAGE_SIDE, MlpSpec, ModelSpec,
    TaskSpec,
};
pub use pipeline::{
    AutoscalingSpec, DataSpec, DeploySpec, MAX_TRAINING_DEVICES, OptimizerKind, OptimizerSpec,
    PipelineError, PipelineSpec, PrivacyAuditSpec, PrivacySpec, PublishSpec, ReleaseSpec,
    SageMakerSpec, SigningSpec, SplitSpec, TrainingSpec,
};
pub use release::{
    APPROVAL_PREDICATE_TYPE, ApprovalPredicate, Architecture, AuditAction, AuditEntry, AuditHead,
    AuditPoint, BUNDLE_FORMAT_VERSION, BinaryCardMetrics, CardMetrics, CnnArchitecture,
    ConsistencyProof, Decision, DestinationRule, Envelope, EnvelopeSignature, Finding,
    IN_TOTO_PAYLOAD_TYPE, InclusionProof, InputFeature, KeyRole, LEAK_LAYERS, LeakLayer,
    LeakReport, LeakSpec, ModelCard, ModelOutput, MulticlassCardMetrics, OciRule, PrivacyAudit,
    PrivacyGuarantee, PrivacyMechanism, RELEASE_PREDICATE_TYPE, RegressionCardMetrics,
    ReleaseIndex, ReleasePredicate, ReportInput, ResidencyPolicy, SLSA_PROVENANCE_TYPE,
    STATEMENT_TYPE, ShardDigests, Statement, Subject, TensorSpec, TrainingSummary, TrustPolicy,
    TrustedKey, Verdict,
};
pub use route::{
    Classify, CloudEndpoint, CloudSide, HealthSpec, MAX_UPSTREAMS, OnpremSide, RouteAudit,
    RouteListen, RoutePolicy, RouteRelease, RoutingRecord,
};
pub use training_record::{
    BackendInfo, DatasetFile, DatasetFingerprint, EpochMetrics, FileDigest, Holdout,
    HoldoutMetrics, Hyperparameters, MAX_RESIDUAL_BINS, MIN_RESIDUAL_BIN_ROWS, MulticlassMetrics,
    RegressionMetrics, ResidualBin, RocPoint, SplitSizes, TRAINING_RECORD_VERSION, TrainingRecord,
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
        ("federation", schemars::schema_for!(FederationFile)),
        (
            "federated-update-statement",
            schemars::schema_for!(Statement<UpdatePredicate>),
        ),
        (
            "federated-round-statement",
            schemars::schema_for!(Statement<RoundPredicate>),
        ),
        ("export-policy", schemars::schema_for!(ExportPolicyFile)),
        (
            "export-statement",
            schemars::schema_for!(Statement<ExportPredicate>),
        ),
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
        ("route-policy", schemars::schema_for!(RoutePolicy)),
        ("release-index", schemars::schema_for!(ReleaseIndex)),
        (
            "approval-statement",
            schemars::schema_for!(Statement<ApprovalPredicate>),
        ),
    ]
}
