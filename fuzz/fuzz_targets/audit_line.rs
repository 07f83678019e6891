//! Lines of a residency audit log, read as `audit verify` reads them: UTF-8 text split into
//! lines, each one JSON entry. What the reader accepts must round-trip (see
//! `check_json_round_trip`), and an entry written back must stay on one line, or a field
//! holding a newline could forge a second entry in the chain.
#![no_main]

use airlock_fuzz::{check_json_round_trip, read_json_str};
use airlock_schemas::AuditEntry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for line in text.lines() {
        let Some(entry) = read_json_str::<AuditEntry>(line) else {
            continue;
        };
        check_json_round_trip(&entry);
        let written = serde_json::to_string(&entry).expect("serialize");
        assert!(
            !written.contains(['\n', '\r']),
            "an entry serializes over more than one line"
        );
    }
});
