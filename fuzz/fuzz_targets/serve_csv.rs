//! `airlock serve`'s `text/csv` request body from any client, with the DEMO model's
//! features. What the parser accepts must be whole rows of finite `f32`s, and the same
//! rows sent as JSON must read back bit for bit: the two formats never disagree on what a
//! request asks.
#![no_main]

use airlock_fuzz::serve::{check_rows, features, same_bits, to_json};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../serve/src/body.rs"]
mod body;

fuzz_target!(|data: &[u8]| {
    let features = features();
    let Ok(x) = body::parse_csv(&features, data) else {
        return;
    };
    check_rows(&x, features.len());
    let json = to_json(&features, &x);
    let again = body::parse_json(&features, json.as_bytes())
        .unwrap_or_else(|e| panic!("accepted CSV rows are refused as JSON: {e}\n{json}"));
    assert!(
        same_bits(&x, &again),
        "CSV and JSON read different rows:\n{json}"
    );
});
