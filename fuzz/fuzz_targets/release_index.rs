//! A registry's `models/<name>/<version>/release.json`, which `pull` reads from a registry
//! an attacker may write to: what the reader accepts must round-trip (see
//! `check_json_round_trip`).
#![no_main]

use airlock_fuzz::json_round_trip_if_valid;
use airlock_schemas::ReleaseIndex;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    json_round_trip_if_valid::<ReleaseIndex>(data);
});
