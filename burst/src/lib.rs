#![doc = include_str!("../README.md")]

mod approve;
pub mod container;
pub mod driver;
mod error;
pub mod export;
pub mod local;
mod onprem;
pub mod plan;
pub mod sagemaker;
pub mod sync;

pub use approve::{ExportDecision, VerifiedExport, decide, verify_export};
pub use driver::{BurstOptions, BurstState, BurstSummary, JobOutcome, burst};
pub use error::BurstError;
pub use export::{ExportOptions, ExportSummary, export, load_policy};
pub use onprem::write_run;

/// The export's data, in the export directory.
pub const DATA_FILE: &str = "data.parquet";
/// The pipeline the cloud trains with, in the export directory.
pub const PIPELINE_FILE: &str = "pipeline.toml";
/// The builder-signed export statement (a DSSE envelope), in the export directory.
pub const STATEMENT_FILE: &str = "export.dsse.json";
/// Officers' decisions on the export: `approvals/<key id>.dsse.json`.
pub const APPROVALS_DIR: &str = "approvals";

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// RFC 3339 UTC, whole seconds.
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
