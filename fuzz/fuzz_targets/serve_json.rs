//! `airlock serve`'s `application/json` request body (`{"instances": [{feature: value}]}`)
//! from any client, with the DEMO model's features. What the parser accepts must be whole
//! rows of finite `f32`s, and the same rows sent as CSV must read back bit for bit: the
//! two formats never disagree on what a request asks.
#![no_main]

use airlock_fuzz::serve::{check_rows, features, same_bits, to_csv};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../serve/src/body.rs"]
mod body;

fuzz_target!(|data: &[u8]| {
    let features = features();
    let Ok(x) = body::parse_json(&features, data) else {
        return;
    };
    check_rows(&x, features.len());
    let csv = to_csv(&features, &x);
    let again = body::parse_csv(&features, csv.as_bytes())
        .unwrap_or_else(|e| panic!("accepted JSON rows are refused as CSV: {e}\n{csv}"));
    assert!(
        same_bits(&x, &again),
        "JSON and CSV read different rows:\n{csv}"
    );
});
