#![doc = include_str!("../README.md")]

pub mod approvals;
pub mod bundle;
pub mod dsse;
pub mod fold;
pub mod keys;
pub mod leak;
mod package;
pub mod review;
/// The strict safetensors reader and canonical writer, from the `airlock-safetensors` crate.
pub use airlock_safetensors as safetensors;
pub mod shards;
mod verify;

pub use bundle::BundleFiles;
pub use package::{
    APPROVALS_DIR, LEAK_REPORT_FILE, MODEL_CARD_FILE, MODEL_FILE, PROVENANCE_DSSE_FILE,
    PackageError, PackageOptions, PackageSummary, STATEMENT_DSSE_FILE, STATEMENT_FILE,
    identifier_index_for_bundle, package, run_pointer_path,
};
pub use verify::{
    Check, LoadedKey, ModelBytes, Trust, TrustError, Verification, VerifyOptions, role_name,
    verify_bundle, verify_bundle_streamed, verify_bundle_with,
};
