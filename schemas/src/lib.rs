#![doc = include_str!("../README.md")]

mod pipeline;
mod training_record;

pub use pipeline::{
    DataSpec, ModelKind, ModelSpec, OptimizerKind, OptimizerSpec, PipelineError, PipelineSpec,
    ReleaseSpec, SplitSpec, TrainingSpec,
};
pub use training_record::{
    BackendInfo, DatasetFile, DatasetFingerprint, EpochMetrics, FileDigest, HoldoutMetrics,
    Hyperparameters, RocPoint, SplitSizes, TRAINING_RECORD_VERSION, TrainingRecord,
};

/// Every document type with a JSON Schema under `schemas/json/`, by file stem.
///
/// The schema files are generated from these types; `cargo test -p airlock-schemas`
/// fails when a checked-in schema is stale (`make schemas` regenerates them).
pub fn json_schemas() -> Vec<(&'static str, schemars::Schema)> {
    vec![
        ("pipeline-spec", schemars::schema_for!(PipelineSpec)),
        ("training-record", schemars::schema_for!(TrainingRecord)),
    ]
}
