//! `statement.json` (in-toto Statement v1 with airlock's release predicate), the document
//! officers sign, and the statement inside an approval envelope: what the reader accepts
//! must round-trip (see `check_json_round_trip`).
#![no_main]

use airlock_fuzz::json_round_trip_if_valid;
use airlock_schemas::{ApprovalPredicate, ReleasePredicate, Statement};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = json_round_trip_if_valid::<Statement<ReleasePredicate>>(data)
        || json_round_trip_if_valid::<Statement<ApprovalPredicate>>(data);
});
