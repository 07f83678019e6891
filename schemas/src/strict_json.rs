//! One strict JSON reader for every signed or untrusted document.
//!
//! `serde_json` keeps the last of two members with the same name, other JSON readers keep
//! the first or refuse: two verifiers could read the same signed bytes differently. Every
//! signed document (statements, DSSE envelopes, release indexes, approvals, audit entries
//! and heads) is parsed here, and a duplicated member name at any depth is refused before
//! the document is deserialized. Trailing bytes after the value (other than whitespace) are
//! refused too, as `serde_json::from_slice` does.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Why a document was refused by [`from_slice`].
#[derive(Debug, thiserror::Error)]
pub enum StrictJsonError {
    /// An object names the same member twice.
    #[error("duplicate key {key:?} in the object at {path}")]
    DuplicateKey {
        /// The member name, decoded.
        key: String,
        /// Where the object is, as a JSON path (`$`, `$.predicate`, `$.subject[0]`).
        path: String,
    },
    /// Not JSON, or not the expected document.
    #[error("{0}")]
    Invalid(#[from] serde_json::Error),
}

impl StrictJsonError {
    /// What kind of failure this is: always [`crate::ErrorKind::BadInput`] (the document
    /// is refused).
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            Self::DuplicateKey { .. } | Self::Invalid(_) => crate::ErrorKind::BadInput,
        }
    }
}

/// Parse `bytes` as a `T`, refusing duplicate keys at any depth and trailing bytes.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StrictJsonError> {
    check_no_duplicates(bytes)?;
    Ok(serde_json::from_slice(bytes)?)
}

/// [`from_slice`] for text.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, StrictJsonError> {
    from_slice(text.as_bytes())
}

/// The first pass of [`from_slice`] alone: `bytes` is one JSON value (and nothing after
/// it) in which no object names a member twice.
pub fn check_no_duplicates(bytes: &[u8]) -> Result<(), StrictJsonError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut found = None;
    let walked = Walk {
        path: Path::Root,
        found: &mut found,
    }
    .deserialize(&mut de);
    // A duplicate stops the walk with a custom error; report the duplicate itself.
    if let Some(dup) = found {
        return Err(dup);
    }
    walked?;
    de.end()?;
    Ok(())
}

/// Where a value sits, built lazily: only rendered when a duplicate is found.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("$"),
            Path::Key(parent, k) => {
                let plain = !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if plain {
                    write!(f, "{parent}.{k}")
                } else {
                    write!(f, "{parent}[{k:?}]")
                }
            }
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

struct Walk<'p, 'f> {
    path: Path<'p>,
    found: &'f mut Option<StrictJsonError>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_i128<E>(self, _: i128) -> Result<(), E> {
        Ok(())
    }
    fn visit_u128<E>(self, _: u128) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        loop {
            let path = Path::Index(&self.path, i);
            let seed = Walk {
                path,
                found: &mut *self.found,
            };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen: HashSet<String> = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            if seen.contains(&key) {
                *self.found = Some(StrictJsonError::DuplicateKey {
                    path: self.path.to_string(),
                    key,
                });
                return Err(serde::de::Error::custom("duplicate key"));
            }
            let path = Path::Key(&self.path, &key);
            map.next_value_seed(Walk {
                path,
                found: &mut *self.found,
            })?;
            seen.insert(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Doc {
        a: u32,
        b: Vec<serde_json::Value>,
    }

    #[test]
    fn accepts_what_serde_json_accepts_without_duplicates() {
        let d: Doc = from_slice(br#" {"a": 1, "b": [{"x": 1, "y": {"x": 2}}, [1, 2], null]} "#)
            .expect("valid");
        assert_eq!(d.a, 1);
        // The same key in different objects is fine.
        from_str::<serde_json::Value>(r#"{"x": {"x": {"x": 1}}, "y": [{"x": 1}, {"x": 2}]}"#)
            .expect("same key in sibling objects");
    }

    #[test]
    fn refuses_duplicates_at_any_depth() {
        for (text, key, path) in [
            (r#"{"a": 1, "a": 2, "b": []}"#, "a", "$"),
            (
                r#"{"a": 1, "b": [{"x": 1}, {"x": 1, "x": 2}]}"#,
                "x",
                "$.b[1]",
            ),
            (
                r#"{"a": 1, "b": [[{"p q": {"k": 1, "k": 1}}]]}"#,
                "k",
                "$.b[0][0][\"p q\"]",
            ),
            // An escaped spelling of the same name is the same name.
            (r#"{"a": 1, "\u0061": 2, "b": []}"#, "a", "$"),
        ] {
            match from_str::<serde_json::Value>(text) {
                Err(StrictJsonError::DuplicateKey { key: k, path: p }) => {
                    assert_eq!((k.as_str(), p.as_str()), (key, path), "{text}");
                }
                other => panic!("{text}: {other:?}"),
            }
            // serde_json alone reads these without complaint.
            assert!(serde_json::from_str::<serde_json::Value>(text).is_ok());
        }
    }

    #[test]
    fn refuses_trailing_bytes_and_bad_json() {
        assert!(matches!(
            from_str::<serde_json::Value>(r#"{"a": 1} {"a": 2}"#),
            Err(StrictJsonError::Invalid(_))
        ));
        assert!(matches!(
            from_str::<serde_json::Value>(r#"{"a": 1"#),
            Err(StrictJsonError::Invalid(_))
        ));
        assert!(matches!(
            from_slice::<Doc>(br#"{"a": "1", "b": []}"#),
            Err(StrictJsonError::Invalid(_))
        ));
        let deep = "[".repeat(10_000);
        assert!(from_str::<serde_json::Value>(&deep).is_err());
    }
}
