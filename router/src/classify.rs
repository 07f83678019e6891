//! Which requests may leave: every request gets a [`Class`]; every class but
//! [`Class::Open`] is on-prem only.
//!
//! Looked at in this order, the first match deciding: the release (a card that says
//! on-prem only), the caller's metadata (data class, tenant and source headers), the body's
//! encoding, L1's identifier detectors over the body's bytes, then the body's structure:
//! only rows of numbers (JSON or CSV, as the serving contract takes them) may go to the
//! cloud. A sensitive field name anywhere, a string among the values, another content type
//! or a body that does not parse keeps the request on the premises: what the router cannot
//! read does not leave.

use std::collections::HashSet;

use airlock_leak::pii::PiiScanner;
use airlock_schemas::Classify;
use hyper::HeaderMap;

/// Why a request is (or is not) on-prem only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Class {
    /// L1 found an identifier in the body (or a site MRN).
    Identifier,
    /// The body names a field the policy marks sensitive.
    SensitiveField,
    /// The caller's data-class header names an on-prem class.
    DataClass,
    /// The tenant header names an on-prem tenant.
    Tenant,
    /// The source header names an on-prem source.
    Source,
    /// The release's card says on-prem only.
    OnpremModel,
    /// The body cannot be read as rows of numbers (another content type, an encoding,
    /// strings among the values, malformed).
    Opaque,
    /// None of the above: may go to the cloud.
    Open,
}

impl Class {
    /// Every class, in order.
    pub const ALL: [Class; 8] = [
        Class::Identifier,
        Class::SensitiveField,
        Class::DataClass,
        Class::Tenant,
        Class::Source,
        Class::OnpremModel,
        Class::Opaque,
        Class::Open,
    ];

    /// Stable kebab-case name (audit, metrics, demo).
    pub fn name(self) -> &'static str {
        match self {
            Class::Identifier => "identifier",
            Class::SensitiveField => "sensitive-field",
            Class::DataClass => "data-class",
            Class::Tenant => "tenant",
            Class::Source => "source",
            Class::OnpremModel => "onprem-model",
            Class::Opaque => "opaque",
            Class::Open => "open",
        }
    }

    /// Whether requests of this class must stay on the premises.
    pub fn onprem_only(self) -> bool {
        self != Class::Open
    }
}

/// A header rule: the header and the values that keep a request on the premises.
#[derive(Debug, Clone)]
struct HeaderRule {
    header: hyper::header::HeaderName,
    values: HashSet<String>,
    class: Class,
}

/// The policy's `[classify]`, compiled.
#[derive(Debug, Clone)]
pub struct Classifier {
    /// The model's feature columns, in order (`None`: an image model, whose requests the
    /// router cannot read as rows of numbers, so they stay).
    features: Option<Vec<String>>,
    scanner: Option<PiiScanner>,
    sensitive_fields: HashSet<String>,
    headers: Vec<HeaderRule>,
    onprem_model: bool,
}

impl Classifier {
    /// Compile `[classify]`; `onprem_model` when the release's card says on-prem only.
    pub fn new(
        c: &Classify,
        onprem_model: bool,
        features: Option<Vec<String>>,
    ) -> Result<Self, String> {
        let scanner = if c.identifiers {
            Some(
                PiiScanner::new(&c.mrn_patterns)
                    .map_err(|e| format!("[classify] mrn_patterns: {e}"))?,
            )
        } else {
            None
        };
        let mut headers = Vec::new();
        for (h, values, class) in [
            (
                &c.data_class_header,
                &c.onprem_data_classes,
                Class::DataClass,
            ),
            (&c.tenant_header, &c.onprem_tenants, Class::Tenant),
            (&c.source_header, &c.onprem_sources, Class::Source),
        ] {
            if let Some(h) = h {
                headers.push(HeaderRule {
                    header: hyper::header::HeaderName::from_bytes(h.as_bytes())
                        .map_err(|_| format!("[classify] {h:?} is not a header name"))?,
                    values: values
                        .iter()
                        .map(|v| v.trim().to_ascii_lowercase())
                        .collect(),
                    class,
                });
            }
        }
        Ok(Self {
            features,
            scanner,
            sensitive_fields: c
                .sensitive_fields
                .iter()
                .map(|f| f.to_ascii_lowercase())
                .collect(),
            headers,
            onprem_model,
        })
    }

    /// The class of a request with these headers and body, and for an open one the body
    /// the cloud gets: never the caller's bytes, but the rows as the serving contract reads
    /// them (exactly the model's features, each a finite 32-bit float), written again as
    /// `{"instances": [...]}` JSON. Whatever else the caller's body held (other keys,
    /// repeated keys, names in a CSV header, the digits of a number beyond an `f32`'s
    /// precision) does not leave; a body the serving contract refuses stays.
    pub fn classify(&self, headers: &HeaderMap, body: &[u8]) -> (Class, Option<Vec<u8>>) {
        let class = self.class_of(headers, body);
        if class != Class::Open {
            return (class, None);
        }
        let Some(features) = &self.features else {
            return (Class::Opaque, None);
        };
        let rows = match content_type(headers).as_str() {
            "application/json" => body::parse_json(features, body),
            "text/csv" => body::parse_csv(features, body),
            _ => return (Class::Opaque, None),
        };
        let Ok(rows) = rows else {
            return (Class::Opaque, None);
        };
        if rows.is_empty() {
            return (Class::Opaque, None);
        }
        let canonical = canonical_json(features, &rows);
        // What leaves is scanned too: a number's digits as an f32 prints them.
        if let Some(s) = &self.scanner
            && !s.find(&canonical).is_empty()
        {
            return (Class::Identifier, None);
        }
        (Class::Open, Some(canonical))
    }

    /// The class alone.
    fn class_of(&self, headers: &HeaderMap, body: &[u8]) -> Class {
        if self.onprem_model {
            return Class::OnpremModel;
        }
        for rule in &self.headers {
            for v in headers.get_all(&rule.header) {
                // A value that is not text cannot be compared: it stays.
                let Ok(v) = v.to_str() else { return rule.class };
                if v.split(',')
                    .any(|v| rule.values.contains(&v.trim().to_ascii_lowercase()))
                {
                    return rule.class;
                }
            }
        }
        let encoded = headers
            .get_all(hyper::header::CONTENT_ENCODING)
            .iter()
            .any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        if encoded {
            return Class::Opaque;
        }
        if let Some(s) = &self.scanner
            && !s.find(body).is_empty()
        {
            return Class::Identifier;
        }
        match content_type(headers).as_str() {
            "application/json" => self.json(body),
            "text/csv" => self.csv(body),
            _ => Class::Opaque,
        }
    }

    /// A JSON body: its strings are decoded (an escape such as `\u0040` hides an `@` from
    /// the byte scan) and scanned, keys checked against the sensitive fields; a string
    /// value, `true`, `false` or `null` makes it opaque.
    fn json(&self, body: &[u8]) -> Class {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
            return Class::Opaque;
        };
        let mut worst = Class::Open;
        self.walk(&v, &mut worst);
        worst
    }

    fn walk(&self, v: &serde_json::Value, worst: &mut Class) {
        use serde_json::Value;
        match v {
            Value::Number(_) => {}
            Value::Array(items) => {
                for i in items {
                    self.walk(i, worst);
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    self.note(self.text(k, true), worst);
                    self.walk(v, worst);
                }
            }
            Value::String(s) => {
                self.note(self.text(s, false), worst);
                self.note(Class::Opaque, worst);
            }
            Value::Bool(_) | Value::Null => self.note(Class::Opaque, worst),
        }
    }

    /// The class of one decoded string (a key when `key`).
    fn text(&self, s: &str, key: bool) -> Class {
        if key && self.sensitive_fields.contains(&s.to_ascii_lowercase()) {
            return Class::SensitiveField;
        }
        if let Some(scanner) = &self.scanner
            && !scanner.find(s.as_bytes()).is_empty()
        {
            return Class::Identifier;
        }
        Class::Open
    }

    /// Keep the most telling class: any on-prem class over open; an identifier or
    /// sensitive field over opaque.
    fn note(&self, c: Class, worst: &mut Class) {
        if c < *worst {
            *worst = c;
        }
    }

    /// A CSV body: numbers only, but for a header line of names (checked against the
    /// sensitive fields); must be UTF-8.
    fn csv(&self, body: &[u8]) -> Class {
        let Ok(text) = std::str::from_utf8(body) else {
            return Class::Opaque;
        };
        let mut worst = Class::Open;
        for (i, line) in text.lines().enumerate() {
            for cell in line.trim_end_matches('\r').split(',').map(str::trim) {
                if cell.is_empty() || cell.parse::<f64>().is_ok_and(f64::is_finite) {
                    continue;
                }
                let name = i == 0
                    && cell
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
                if name {
                    self.note(self.text(cell, true), &mut worst);
                } else {
                    self.note(Class::Opaque, &mut worst);
                }
            }
        }
        worst
    }
}

/// The request's media type, lower-case, without parameters.
fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Rows of `features` as `{"instances": [{feature: value, ...}, ...]}`, each value the
/// shortest text that reads back as the same `f32`.
fn canonical_json(features: &[String], rows: &[f32]) -> Vec<u8> {
    use std::fmt::Write as _;
    let mut out = String::from("{\"instances\":[");
    for (i, row) in rows.chunks(features.len().max(1)).enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('{');
        for (k, (f, v)) in features.iter().zip(row).enumerate() {
            if k > 0 {
                out.push(',');
            }
            // Feature names come from the verified card; serde_json escapes them.
            let name = serde_json::to_string(f).unwrap_or_default();
            let _ = write!(out, "{name}:{v}");
        }
        out.push('}');
    }
    out.push_str("]}");
    out.into_bytes()
}

/// The serving contract's own request parser (shared with `airlock serve` and its fuzz
/// target): what the cloud is sent is what a serve reads, no more.
#[allow(dead_code)]
#[path = "../../serve/src/body.rs"]
mod body;

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier() -> Classifier {
        let c = Classify {
            identifiers: true,
            mrn_patterns: vec![r"MRN-[0-9]{6}".into()],
            sensitive_fields: vec!["patient_name".into()],
            data_class_header: Some("x-data-class".into()),
            onprem_data_classes: vec!["PHI".into()],
            tenant_header: Some("x-tenant".into()),
            onprem_tenants: vec!["st-marys".into()],
            source_header: None,
            onprem_sources: vec![],
        };
        Classifier::new(&c, false, Some(vec!["amount".into(), "hour".into()])).expect("classifier")
    }

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            hyper::header::CONTENT_TYPE,
            "application/json".parse().expect("value"),
        );
        h
    }

    #[test]
    fn rows_of_numbers_are_open() {
        let c = classifier();
        let body = br#"{"instances": [{"amount": 12.5, "hour": 3}]}"#;
        assert_eq!(c.classify(&json_headers(), body).0, Class::Open);
        let mut h = HeaderMap::new();
        h.insert(
            hyper::header::CONTENT_TYPE,
            "text/csv".parse().expect("value"),
        );
        assert_eq!(c.classify(&h, b"amount,hour\n12.5,3\n1,2\n").0, Class::Open);
    }

    #[test]
    fn identifiers_fields_headers_and_opaque_bodies_stay() {
        let c = classifier();
        let h = json_headers();
        let email = br#"{"instances": [{"amount": 1}], "note": "jane.doe@example.com"}"#;
        assert_eq!(c.classify(&h, email).0, Class::Identifier);
        // An escaped @ is found once the string is decoded.
        let escaped = br#"{"instances": [{"amount": 1}], "n": "jane.doe\u0040example.com"}"#;
        assert_eq!(c.classify(&h, escaped).0, Class::Identifier);
        let card = br#"{"instances": [{"amount": 4111111111111111}]}"#;
        assert_eq!(c.classify(&h, card).0, Class::Identifier);
        let mrn = br#"{"instances": [{"amount": 1}], "id": "MRN-123456"}"#;
        assert_eq!(c.classify(&h, mrn).0, Class::Identifier);
        let field = br#"{"instances": [{"amount": 1, "patient_name": 0}]}"#;
        assert_eq!(c.classify(&h, field).0, Class::SensitiveField);
        let string = br#"{"instances": [{"amount": "high"}]}"#;
        assert_eq!(c.classify(&h, string).0, Class::Opaque);
        assert_eq!(c.classify(&h, b"{not json").0, Class::Opaque);
        let mut phi = h.clone();
        phi.insert("x-data-class", "phi".parse().expect("value"));
        assert_eq!(
            c.classify(&phi, br#"{"instances": []}"#).0,
            Class::DataClass
        );
        let mut tenant = h.clone();
        tenant.append("x-tenant", "other".parse().expect("value"));
        tenant.append("x-tenant", "St-Marys".parse().expect("value"));
        assert_eq!(
            c.classify(&tenant, br#"{"instances": []}"#).0,
            Class::Tenant
        );
        let mut gz = h.clone();
        gz.insert(
            hyper::header::CONTENT_ENCODING,
            "gzip".parse().expect("value"),
        );
        assert_eq!(c.classify(&gz, br#"{"instances": []}"#).0, Class::Opaque);
        let mut png = HeaderMap::new();
        png.insert(
            hyper::header::CONTENT_TYPE,
            "image/png".parse().expect("value"),
        );
        assert_eq!(c.classify(&png, b"\x89PNG").0, Class::Opaque);
        let mut csv = HeaderMap::new();
        csv.insert(
            hyper::header::CONTENT_TYPE,
            "text/csv".parse().expect("value"),
        );
        assert_eq!(
            c.classify(&csv, b"amount,patient_name\n1,2\n").0,
            Class::SensitiveField
        );
        assert_eq!(c.classify(&csv, b"1,2\n3,jane\n").0, Class::Opaque);
        assert_eq!(
            c.classify(&csv, b"1,2\n123-45-6789,1\n").0,
            Class::Identifier
        );
        let field = br#"{"instances": [{"amount": 1, "Patient_Name": 0}]}"#;
        assert_eq!(c.classify(&h, field).0, Class::SensitiveField);
        let model = Classifier::new(&Classify::default(), true, None).expect("classifier");
        assert_eq!(
            model.classify(&h, br#"{"instances": []}"#).0,
            Class::OnpremModel
        );
    }

    #[test]
    fn the_cloud_gets_the_rows_as_serve_reads_them_and_nothing_else() {
        let c = classifier();
        let h = json_headers();
        let open = |body: &[u8]| {
            let (class, out) = c.classify(&h, body);
            assert_eq!(class, Class::Open, "{}", String::from_utf8_lossy(body));
            String::from_utf8(out.expect("a body for the cloud")).expect("utf-8")
        };
        // A repeated key: the classifier's parser keeps the last, another might read the
        // first; neither leaves.
        let dup = br#"{"instances":[{"amount":1,"hour":2}],"x":"Jane Doe, HIV+, jane\u0040nhs.net","x":0}"#;
        assert_eq!(open(dup), r#"{"instances":[{"amount":1,"hour":2}]}"#);
        let dup = br#"{"instances":[{"amount":1,"hour":2}],"x":"Jane Doe, HIV+","x":0}"#;
        assert_eq!(open(dup), r#"{"instances":[{"amount":1,"hour":2}]}"#);
        // Free text in a key does not leave.
        let key = br#"{"instances":[{"amount":1,"hour":2}],"Jane Doe 12 Acacia Ave":0}"#;
        assert_eq!(open(key), r#"{"instances":[{"amount":1,"hour":2}]}"#);
        // A card number written as a float leaves as an f32, its digits gone.
        let card = br#"{"instances":[{"amount":4111111111111111.0,"hour":4.111111111111111e15}]}"#;
        let sent = open(card);
        assert!(!sent.contains("4111111111111111"), "{sent}");
        // A feature the model does not take, or one repeated: refused by serve's reader,
        // so it stays.
        assert_eq!(
            c.classify(&h, br#"{"instances":[{"amount":1,"hour":2,"note":3}]}"#)
                .0,
            Class::Opaque
        );
        assert_eq!(
            c.classify(&h, br#"{"instances":[{"amount":1,"amount":2,"hour":2}]}"#)
                .0,
            Class::Opaque
        );
        // CSV: names in a header that is not the model's stay; rows leave as JSON.
        let mut csv = HeaderMap::new();
        csv.insert(
            hyper::header::CONTENT_TYPE,
            "text/csv; name=Jane".parse().expect("value"),
        );
        assert_eq!(
            c.classify(&csv, b"Jane_Doe,HIV_positive\n1,2\n").0,
            Class::Opaque
        );
        let (class, out) = c.classify(&csv, b"amount,hour\n1.5,2\n");
        assert_eq!(class, Class::Open);
        assert_eq!(
            out.expect("body"),
            br#"{"instances":[{"amount":1.5,"hour":2}]}"#
        );
        // An image model's requests cannot be read as rows: they stay.
        let image = Classifier::new(&Classify::default(), false, None).expect("classifier");
        assert_eq!(
            image
                .classify(&h, br#"{"instances":[{"amount":1,"hour":2}]}"#)
                .0,
            Class::Opaque
        );
    }
}
