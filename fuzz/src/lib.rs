//! Shared by the fuzz targets: the JSON reader airlock's verifiers use for signed
//! documents (`airlock_schemas::strict_json`), and the properties every parsed document
//! must have.

pub mod serve;

use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses a JSON document as airlock's verifiers do (the strict reader, which refuses
/// duplicate keys); `None` for what they refuse. What the strict reader accepts, plain
/// `serde_json` must accept as the same value: the strict reader only ever refuses more.
pub fn read_json<T>(bytes: &[u8]) -> Option<T>
where
    T: DeserializeOwned + PartialEq + Debug,
{
    let value: T = airlock_schemas::strict_json::from_slice(bytes).ok()?;
    let lenient: T = serde_json::from_slice(bytes)
        .unwrap_or_else(|e| panic!("the strict reader accepts what serde_json refuses: {e}"));
    assert_eq!(
        lenient, value,
        "the strict reader and serde_json read different values"
    );
    Some(value)
}

/// [`read_json`] on text, as the audit log's reader takes each line.
pub fn read_json_str<T>(text: &str) -> Option<T>
where
    T: DeserializeOwned + PartialEq + Debug,
{
    read_json(text.as_bytes())
}

/// What was accepted serializes, the serialization is accepted and reads back as the same
/// value, and serializing that gives the same bytes: no document changes meaning when
/// airlock writes it again (an index republished, a statement re-signed).
pub fn check_json_round_trip<T>(value: &T)
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    let bytes = serde_json::to_vec(value).expect("an accepted document must serialize");
    let again: T = read_json(&bytes).unwrap_or_else(|| {
        panic!(
            "airlock's own serialization is refused: {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    assert_eq!(&again, value, "the serialization reads back differently");
    let bytes_again = serde_json::to_vec(&again).expect("serialize again");
    assert_eq!(bytes, bytes_again, "serialization is not a fixed point");
}

/// [`check_json_round_trip`] for a document that parses, if it does; returns whether it did.
pub fn json_round_trip_if_valid<T>(bytes: &[u8]) -> bool
where
    T: DeserializeOwned + Serialize + PartialEq + Debug,
{
    match read_json::<T>(bytes) {
        Some(value) => {
            check_json_round_trip(&value);
            true
        }
        None => false,
    }
}
