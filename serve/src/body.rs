//! Request bodies of `airlock serve`'s `POST /invocations`, parsed into row-major `f32`
//! features in the model card's order.
//!
//! Self-contained on purpose: it uses only `std`, `serde` and `serde_json`, and nothing
//! of the crate, so that a fuzz target can include this file by `#[path]` and run it
//! without burn. Every refusal is a [`BadRequest`] that the server answers with a 400.
//!
//! What is refused, in both formats: a value that is not a number, or a number that is
//! not a finite `f32` (`1e39` overflows to infinity; `NaN` and `inf` are not numbers),
//! and a row that does not hold exactly the model's features. JSON also refuses unknown
//! and repeated features, and a repeated `instances` key, so that no two readers can
//! take the same body for different rows.

use std::fmt;

/// A request body the server refuses, with a message for the client. The message names
/// the instance or line, and the feature, but never echoes a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub String);

impl fmt::Display for BadRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadRequest {}

/// What a JSON body must look like.
pub const JSON_SHAPE: &str = "{\"instances\": [{feature: value, ...}, ...]}";

/// `{"instances": [{feature: value, ...}, ...]}` straight into row-major features, with
/// no intermediate JSON tree (parsing dominated the profile of 256-row requests). Keys
/// other than `instances` at the top level are ignored; `instances` must appear once.
/// An empty list yields no rows (the caller decides whether that is an error).
pub fn parse_json(features: &[String], body: &[u8]) -> Result<Vec<f32>, BadRequest> {
    use serde::de::DeserializeSeed as _;

    let mut x = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(body);
    let found = json::Body(features, &mut x)
        .deserialize(&mut de)
        .and_then(|found| de.end().map(|()| found))
        .map_err(|e| {
            BadRequest(match e.classify() {
                serde_json::error::Category::Data => e.to_string(),
                _ => format!("malformed JSON: {e}"),
            })
        })?;
    if !found {
        return Err(BadRequest(format!("expected {JSON_SHAPE}")));
    }
    Ok(x)
}

/// CSV rows of the features in the model card's order, comma-separated, no quoting,
/// with an optional first line naming the features in that order. Blank lines are
/// skipped; `\r\n` line ends are accepted. Line numbers in messages count from 1.
pub fn parse_csv(features: &[String], body: &[u8]) -> Result<Vec<f32>, BadRequest> {
    let bad = |s: String| BadRequest(s);
    let text = std::str::from_utf8(body).map_err(|_| bad("CSV body is not UTF-8".into()))?;
    let mut x = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        // An optional header naming the features in order.
        if i == 0
            && cells.len() == features.len()
            && cells.iter().zip(features).all(|(c, f)| c == f)
        {
            continue;
        }
        if cells.len() != features.len() {
            return Err(bad(format!(
                "CSV line {}: {} values, expected {} ({})",
                i + 1,
                cells.len(),
                features.len(),
                features.join(",")
            )));
        }
        for (c, f) in cells.iter().zip(features) {
            let n: f32 = c
                .parse()
                .ok()
                .filter(|n: &f32| n.is_finite())
                .ok_or_else(|| {
                    bad(format!(
                        "CSV line {}: {f} is not a finite number as a 32-bit float",
                        i + 1
                    ))
                })?;
            x.push(n);
        }
    }
    Ok(x)
}

/// The `f32` a JSON number stands for, if it is finite as an `f32`: `1e39` is a finite
/// `f64` but overflows `f32` to infinity, and is refused like `inf` in CSV.
fn finite_f32(n: f64) -> Option<f32> {
    let v = n as f32;
    v.is_finite().then_some(v)
}

/// The serde visitors of [`parse_json`].
mod json {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::{
        DeserializeSeed, Deserializer, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor,
    };

    use super::{JSON_SHAPE, finite_f32};

    /// The whole body; yields whether `instances` was there.
    pub(super) struct Body<'a>(pub(super) &'a [String], pub(super) &'a mut Vec<f32>);
    struct Rows<'a>(&'a [String], &'a mut Vec<f32>);
    struct Row<'a>(&'a [String], &'a mut Vec<f32>, usize);
    /// One feature value: instance, feature name.
    struct Value<'a>(usize, &'a str);

    impl<'de> DeserializeSeed<'de> for Body<'_> {
        type Value = bool;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Body<'_> {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(JSON_SHAPE)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut found = false;
            while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                if k == "instances" {
                    if found {
                        return Err(A::Error::custom("\"instances\" given twice"));
                    }
                    map.next_value_seed(Rows(self.0, &mut *self.1))?;
                    found = true;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
    }
    impl<'de> DeserializeSeed<'de> for Rows<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }
    }
    impl<'de> Visitor<'de> for Rows<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of instances")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut i = 0;
            while seq
                .next_element_seed(Row(self.0, &mut *self.1, i))?
                .is_some()
            {
                i += 1;
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Row<'_> {
        type Value = ();
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> Visitor<'de> for Row<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "instance {} as an object of feature values", self.2)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let (features, x, i) = (self.0, self.1, self.2);
            let start = x.len();
            x.resize(start + features.len(), f32::NAN);
            let mut seen = vec![false; features.len()];
            while let Some(k) = map.next_key::<Cow<'de, str>>()? {
                let Some(j) = features.iter().position(|f| *f == k) else {
                    return Err(A::Error::custom(format!(
                        "instance {i}: unknown feature {k:?}"
                    )));
                };
                if seen[j] {
                    return Err(A::Error::custom(format!(
                        "instance {i}: feature {k:?} given twice"
                    )));
                }
                x[start + j] = map.next_value_seed(Value(i, &features[j]))?;
                seen[j] = true;
            }
            if let Some(j) = seen.iter().position(|s| !s) {
                return Err(A::Error::custom(format!(
                    "instance {i}: missing feature {:?}",
                    features[j]
                )));
            }
            Ok(())
        }
    }
    impl<'de> DeserializeSeed<'de> for Value<'_> {
        type Value = f32;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<f32, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl Value<'_> {
        fn refuse<E: serde::de::Error>(&self) -> E {
            E::custom(format!(
                "instance {}: feature {:?} is not a finite number as a 32-bit float",
                self.0, self.1
            ))
        }
        fn number<E: serde::de::Error>(&self, n: f64) -> Result<f32, E> {
            finite_f32(n).ok_or_else(|| self.refuse())
        }
    }
    impl<'de> Visitor<'de> for Value<'_> {
        type Value = f32;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "a number for feature {:?}", self.1)
        }
        fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<f32, E> {
            self.number(n)
        }
        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<f32, E> {
            self.number(n as f64)
        }
        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<f32, E> {
            self.number(n as f64)
        }
        // Anything else (a string, a bool, null, a list, an object) is not a number. The
        // refusal comes before the value is read to its end: the body is refused whole.
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<f32, E> {
            Err(self.refuse())
        }
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<f32, E> {
            Err(self.refuse())
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<f32, E> {
            Err(self.refuse())
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<f32, E> {
            Err(self.refuse())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<f32, A::Error> {
            Err(self.refuse())
        }
        fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<f32, A::Error> {
            Err(self.refuse())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    fn json(body: &str) -> Result<Vec<f32>, BadRequest> {
        parse_json(&features(), body.as_bytes())
    }

    fn csv(body: &str) -> Result<Vec<f32>, BadRequest> {
        parse_csv(&features(), body.as_bytes())
    }

    fn refused(r: Result<Vec<f32>, BadRequest>, what: &str) {
        match r {
            Ok(x) => panic!("accepted {x:?}, expected a refusal with {what:?}"),
            Err(BadRequest(m)) => assert!(m.contains(what), "{m:?} lacks {what:?}"),
        }
    }

    #[test]
    fn json_rows_in_card_order() {
        assert_eq!(
            json(r#"{"instances": [{"b": 2, "a": -1.5}, {"a": 3e2, "b": 0}], "x": [1]}"#),
            Ok(vec![-1.5, 2.0, 300.0, 0.0])
        );
        assert_eq!(json(r#"{"instances": []}"#), Ok(vec![]));
        assert_eq!(
            json(r#"{"instances": [{"a": 3.4028235e38, "b": -3.4028235e38}]}"#),
            Ok(vec![f32::MAX, f32::MIN])
        );
    }

    #[test]
    fn json_numbers_that_are_not_finite_f32_are_refused() {
        for v in ["1e39", "-1e39", "3.5e38", "1.7e308"] {
            refused(
                json(&format!(r#"{{"instances": [{{"a": {v}, "b": 1}}]}}"#)),
                "instance 0: feature \"a\" is not a finite number as a 32-bit float",
            );
        }
        // Beyond f64: serde_json refuses it while parsing.
        refused(
            json(r#"{"instances": [{"a": 1e309, "b": 1}]}"#),
            "number out of range",
        );
        // Not JSON numbers at all.
        for v in ["NaN", "Infinity", "-Infinity", "inf", "nan"] {
            refused(
                json(&format!(r#"{{"instances": [{{"a": {v}, "b": 1}}]}}"#)),
                "malformed JSON",
            );
        }
        for v in ["\"1\"", "true", "null", "[1]", "{\"v\": 1}"] {
            refused(
                json(&format!(r#"{{"instances": [{{"a": 1, "b": {v}}}]}}"#)),
                "instance 0: feature \"b\" is not a finite number as a 32-bit float",
            );
        }
    }

    #[test]
    fn json_ambiguous_or_incomplete_rows_are_refused() {
        refused(
            json(r#"{"instances": [{"a": 1, "b": 2, "a": 3}]}"#),
            "instance 0: feature \"a\" given twice",
        );
        refused(
            json(r#"{"instances": [{"a": 1, "b": 2}], "instances": [{"a": 5, "b": 6}]}"#),
            "\"instances\" given twice",
        );
        refused(
            json(r#"{"instances": [{"a": 1, "b": 2}, {"a": 1}]}"#),
            "instance 1: missing feature \"b\"",
        );
        refused(
            json(r#"{"instances": [{"a": 1, "b": 2, "ssn": 1}]}"#),
            "instance 0: unknown feature \"ssn\"",
        );
        refused(json(r#"{"rows": []}"#), "expected {\"instances\"");
        refused(
            json(r#"{"instances": [{"a": 1, "b": 2}]} x"#),
            "malformed JSON",
        );
        refused(json(r#"{"instances": ["#), "malformed JSON");
        refused(json(r#"[1, 2]"#), "invalid type");
    }

    #[test]
    fn csv_rows_with_optional_header() {
        assert_eq!(
            csv("a,b\r\n1, 2\n\n-3e2,4\n"),
            Ok(vec![1.0, 2.0, -300.0, 4.0])
        );
        assert_eq!(csv(""), Ok(vec![]));
        refused(
            csv("1,2\na,b\n"),
            "CSV line 2: a is not a finite number as a 32-bit float",
        );
        refused(csv("1,2,3\n"), "CSV line 1: 3 values, expected 2 (a,b)");
        refused(csv("b,a\n"), "CSV line 1: a is not a finite");
        for v in ["1e39", "NaN", "inf", "-infinity", "0x10", ""] {
            refused(
                csv(&format!("1,{v}\n")),
                "CSV line 1: b is not a finite number as a 32-bit float",
            );
        }
        refused(parse_csv(&features(), b"1,\xff\n"), "not UTF-8");
    }
}
