//! Shared by the fuzz targets: the JSON reader airlock's verifiers use for signed
//! documents, and the properties every parsed document must have.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Parses a JSON document as airlock's verifiers do; `None` for what they refuse.
pub fn read_json<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

/// [`read_json`] on text, as the audit log's reader takes each line.
pub fn read_json_str<T: DeserializeOwned>(text: &str) -> Option<T> {
    serde_json::from_str(text).ok()
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
