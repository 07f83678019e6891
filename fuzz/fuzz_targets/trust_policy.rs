//! `trust.toml`, read as `Trust::load` reads it (bytes, lossily decoded as UTF-8, then
//! TOML into `TrustPolicy`), and `residency.toml`, read the same way by `publish`: what is
//! accepted must serialize back to TOML that reads as the same policy, and serializing
//! that again must give the same text. (`Trust::load`'s checks of the keys themselves need
//! the packager, and so burn: they are not fuzzed here.)
#![no_main]

use std::fmt::Debug;

use airlock_schemas::{ResidencyPolicy, TrustPolicy};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if !round_trip::<TrustPolicy>(&text) {
        round_trip::<ResidencyPolicy>(&text);
    }
});

/// Checks the round trip of `text` as a `T`, if it reads as one; returns whether it did.
fn round_trip<T>(text: &str) -> bool
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let Ok(policy) = toml::from_str::<T>(text) else {
        return false;
    };
    let written = toml::to_string(&policy).expect("an accepted policy must serialize");
    let again: T = toml::from_str(&written)
        .unwrap_or_else(|e| panic!("the serialized policy is refused: {e}\n{written}"));
    assert_eq!(
        again, policy,
        "the serialized policy reads back differently"
    );
    let written_again = toml::to_string(&again).expect("serialize again");
    assert_eq!(written, written_again, "serialization is not a fixed point");
    true
}
