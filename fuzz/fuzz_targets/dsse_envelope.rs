//! A DSSE envelope (`statement.dsse.json`, `provenance.dsse.json`, `approvals/*.dsse.json`,
//! the audit log's signed head), as far as a verifier reads it before any signature check.
//!
//! What the reader accepts must round-trip (see `check_json_round_trip`); the payload and
//! signatures that decode as standard base64 must re-encode to the same text, so that one
//! payload has one encoding; and a decoded payload is handed to the readers of the three
//! documents airlock signs (release statement, approval, audit head), which must round-trip
//! what they accept.
#![no_main]

use airlock_fuzz::{check_json_round_trip, json_round_trip_if_valid, read_json};
use airlock_schemas::{ApprovalPredicate, AuditHead, Envelope, ReleasePredicate, Statement};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(env) = read_json::<Envelope>(data) else {
        return;
    };
    check_json_round_trip(&env);
    for sig in &env.signatures {
        if let Ok(bytes) = STANDARD.decode(&sig.sig) {
            assert_eq!(
                STANDARD.encode(bytes),
                sig.sig,
                "a signature has two encodings"
            );
        }
    }
    // `dsse::verify` decodes the payload before it checks any signature.
    let Ok(payload) = STANDARD.decode(&env.payload) else {
        return;
    };
    assert_eq!(
        STANDARD.encode(&payload),
        env.payload,
        "the payload has two encodings"
    );
    let _ = json_round_trip_if_valid::<Statement<ReleasePredicate>>(&payload)
        || json_round_trip_if_valid::<Statement<ApprovalPredicate>>(&payload)
        || json_round_trip_if_valid::<AuditHead>(&payload);
});
