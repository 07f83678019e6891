//! `trust.toml`, read as `Trust::load` reads it (bytes, lossily decoded as UTF-8, then
//! TOML into `TrustPolicy`): what is accepted must serialize back to TOML that reads as the
//! same policy, and serializing that again must give the same text.
#![no_main]

use airlock_schemas::TrustPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(policy) = toml::from_str::<TrustPolicy>(&text) else {
        return;
    };
    let written = toml::to_string(&policy).expect("an accepted policy must serialize");
    let again: TrustPolicy = toml::from_str(&written)
        .unwrap_or_else(|e| panic!("the serialized policy is refused: {e}\n{written}"));
    assert_eq!(again, policy, "the serialized policy reads back differently");
    let written_again = toml::to_string(&again).expect("serialize again");
    assert_eq!(written, written_again, "serialization is not a fixed point");
});
