#![doc = include_str!("../README.md")]

pub mod approvals;
pub mod dsse;
pub mod fold;
pub mod keys;
pub mod leak;
mod package;
pub mod review;
pub mod safetensors;
pub mod shards;
mod verify;

pub use package::{
    APPROVALS_DIR, LEAK_REPORT_FILE, MODEL_CARD_FILE, MODEL_FILE, PROVENANCE_DSSE_FILE,
    PackageError, PackageOptions, PackageSummary, STATEMENT_DSSE_FILE, STATEMENT_FILE,
    identifier_index_for_bundle, package, run_pointer_path,
};
pub use verify::{Check, LoadedKey, Trust, TrustError, Verification, verify_bundle};
