#![doc = include_str!("../README.md")]

pub mod approvals;
pub mod bundle;
pub mod dsse;
pub mod gate;
pub mod keys;
pub mod merkle;
pub mod shards;
mod verify;

pub use bundle::{
    APPROVALS_DIR, BundleFiles, LEAK_REPORT_FILE, MODEL_CARD_FILE, MODEL_FILE,
    PROVENANCE_DSSE_FILE, STATEMENT_DSSE_FILE, STATEMENT_FILE,
};
pub use ed25519_dalek::VerifyingKey;
pub use gate::{Admitted, GateOptions, Refusal, admit};
pub use verify::{
    Check, LoadedKey, ModelBytes, Trust, TrustError, Verification, VerifyOptions, role_name,
    verify_bundle, verify_bundle_streamed, verify_bundle_with,
};

/// Pretty JSON with a final newline: how every document airlock signs or writes is laid
/// out.
pub fn pretty<T: serde::Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v)
        .unwrap_or_else(|e| unreachable!("bundle documents serialize: {e}"));
    b.push(b'\n');
    b
}
