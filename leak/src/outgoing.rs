//! L1 and L2 over the text documents that leave the premises: the signed statement and
//! provenance, the model card, the leak report, approvals, the release index and the audit
//! log. Every byte is scanned, and JSON documents are also scanned string by string after
//! unescaping, with DSSE payloads decoded and scanned in turn.
//!
//! L2 here matches the training data's identifier values in three forms:
//!
//! - **exact**: the bytes as the CSV holds them (values of at least [`MIN_TEXT_LEN`] bytes),
//!   anywhere;
//! - **folded**: case-folded and with all whitespace removed, on both sides, so that
//!   `JOHN  SMITH` finds `John Smith` (at least [`MIN_TEXT_LEN`] bytes after folding); the
//!   match must not continue a word on either side;
//! - **digits**: for numeric identifiers (only digits and `-./()+` or spaces, at least
//!   [`MIN_DIGITS`] digits), the digits alone, found in any chain of digit groups joined by
//!   one or two of those separators, so that a card number grouped with dots or an SSN
//!   without dashes is found. The match spans whole groups and must not continue a word.
//!
//! Findings name the document, the byte offset, the row and the column, never a value.

use std::collections::HashMap;

use base64::Engine as _;

use super::pii::PiiScanner;

/// Shortest identifier value searched for, in bytes (exact and folded forms).
pub const MIN_TEXT_LEN: usize = 8;
/// Fewest digits of a numeric identifier searched for in its digits-only form.
pub const MIN_DIGITS: usize = 8;
/// Separators allowed between digit groups (one or two in a row).
const DIGIT_SEPARATORS: &[u8] = b" -./()";

/// How an identifier value was matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Form {
    /// Byte for byte.
    Exact,
    /// Case-folded, whitespace removed.
    Folded,
    /// Digits only.
    Digits,
}

impl Form {
    /// Kind name in leak reports and refusals.
    pub fn kind(self) -> &'static str {
        match self {
            Form::Exact => "text-record",
            Form::Folded => "text-record (case-folded, whitespace-insensitive)",
            Form::Digits => "numeric-identifier (digits only)",
        }
    }
}

/// One finding in an outgoing document. `Debug` and `Display` print no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingFinding {
    /// `L1` or `L2`.
    pub layer: &'static str,
    /// Kind: an L1 pattern name (`email`, `card-number`...) or an L2 [`Form::kind`].
    pub kind: String,
    /// Where: the document, the part of it (a JSON string, a DSSE payload) and the offset.
    pub location: String,
    /// Training data row (L2).
    pub row: Option<u64>,
    /// Training data column (L2).
    pub column: Option<String>,
}

impl std::fmt::Display for OutgoingFinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} in {}", self.layer, self.kind, self.location)?;
        if let (Some(r), Some(c)) = (self.row, &self.column) {
            write!(f, " (training data row {r}, column {c})")?;
        }
        Ok(())
    }
}

/// The training data's identifier values in their normalized forms.
///
/// `Debug` prints sizes only.
pub struct IdentifierIndex {
    columns: Vec<String>,
    exact: Option<Patterns>,
    folded: Option<Patterns>,
    digits: HashMap<Vec<u8>, (u32, u32)>,
    max_digits: usize,
    pii: PiiScanner,
}

/// Distinct values of at least [`MIN_TEXT_LEN`] bytes, found by their first
/// [`MIN_TEXT_LEN`] bytes: each position of a haystack is one probe of an open-addressing
/// table, and the few candidates there are compared whole. Building is a sort and one pass
/// (an Aho-Corasick automaton over a few hundred thousand values took seconds to build,
/// for documents of a few kilobytes).
struct Patterns {
    /// The values, grouped by their first [`MIN_TEXT_LEN`] bytes.
    values: Vec<Vec<u8>>,
    /// Per value: the first (row, column) holding it.
    origins: Vec<(u32, u32)>,
    /// The distinct prefixes (as little-endian u64), and where each one's values start in
    /// `values` (`starts[i]..starts[i + 1]`).
    prefixes: Vec<u64>,
    starts: Vec<u32>,
    /// Open addressing over `prefixes`: an index into it, or `EMPTY`.
    slots: Vec<u32>,
}

const EMPTY_SLOT: u32 = u32::MAX;

/// MurmurHash3's 64-bit finalizer: every byte of the prefix reaches every bit of the slot
/// (values share long prefixes: emails, IBANs, phone numbers).
fn mix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

fn prefix_key(w: &[u8]) -> u64 {
    let mut k = [0u8; MIN_TEXT_LEN];
    k.copy_from_slice(&w[..MIN_TEXT_LEN]);
    u64::from_le_bytes(k)
}

impl Patterns {
    /// `None` for no values. Each value is at least [`MIN_TEXT_LEN`] bytes.
    fn new(values: Vec<(String, (u32, u32))>) -> Result<Option<Self>, String> {
        if values.is_empty() {
            return Ok(None);
        }
        if values.len() >= EMPTY_SLOT as usize / 2 {
            return Err("too many identifier values".into());
        }
        let mut keyed: Vec<(u64, Vec<u8>, (u32, u32))> = Vec::with_capacity(values.len());
        for (i, (v, origin)) in values.into_iter().enumerate() {
            if v.len() < MIN_TEXT_LEN {
                return Err(format!(
                    "identifier value {i} is shorter than {MIN_TEXT_LEN} bytes"
                ));
            }
            keyed.push((prefix_key(v.as_bytes()), v.into_bytes(), origin));
        }
        keyed.sort_unstable_by_key(|k| k.0);
        let mut p = Self {
            values: Vec::with_capacity(keyed.len()),
            origins: Vec::with_capacity(keyed.len()),
            prefixes: Vec::new(),
            starts: Vec::new(),
            slots: Vec::new(),
        };
        for (key, v, origin) in keyed {
            if p.prefixes.last() != Some(&key) {
                p.prefixes.push(key);
                p.starts.push(to_u32(p.values.len()));
            }
            p.values.push(v);
            p.origins.push(origin);
        }
        p.starts.push(to_u32(p.values.len()));
        let size = (p.prefixes.len() * 2).next_power_of_two();
        p.slots = vec![EMPTY_SLOT; size];
        for (i, &key) in p.prefixes.iter().enumerate() {
            let mut at = (mix(key) as usize) & (size - 1);
            while p.slots[at] != EMPTY_SLOT {
                at = (at + 1) & (size - 1);
            }
            p.slots[at] = to_u32(i);
        }
        Ok(Some(p))
    }

    /// The values starting with the prefix `key`: a range of `values`.
    fn candidates(&self, key: u64) -> std::ops::Range<usize> {
        let mask = self.slots.len() - 1;
        let mut at = (mix(key) as usize) & mask;
        loop {
            let slot = self.slots[at];
            if slot == EMPTY_SLOT {
                return 0..0;
            }
            let i = slot as usize;
            if self.prefixes[i] == key {
                return self.starts[i] as usize..self.starts[i + 1] as usize;
            }
            at = (at + 1) & mask;
        }
    }

    /// Every (start, end, value index) occurrence in `hay`, overlapping ones included.
    fn find_all(&self, hay: &[u8], mut found: impl FnMut(usize, usize, usize)) {
        if hay.len() < MIN_TEXT_LEN {
            return;
        }
        for (at, w) in hay.windows(MIN_TEXT_LEN).enumerate() {
            for id in self.candidates(prefix_key(w)) {
                let v = &self.values[id];
                if hay[at..].starts_with(v) {
                    found(at, at + v.len(), id);
                }
            }
        }
    }
}

/// Distinct values of `items` (in order), each with the origin of its first occurrence.
fn distinct(mut items: Vec<(String, (u32, u32))>) -> Vec<(String, (u32, u32))> {
    // Stable: of equal values, the first in row order stays.
    items.sort_by(|a, b| a.0.cmp(&b.0));
    items.dedup_by(|later, first| later.0 == first.0);
    items
}

impl std::fmt::Debug for IdentifierIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentifierIndex")
            .field("columns", &self.columns)
            .field("exact", &self.exact.as_ref().map_or(0, |p| p.origins.len()))
            .field(
                "folded",
                &self.folded.as_ref().map_or(0, |p| p.origins.len()),
            )
            .field("digits", &self.digits.len())
            .field("mrn_patterns", &self.pii.mrn_patterns())
            .finish()
    }
}

/// Sizes of an [`IdentifierIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentifierStats {
    /// Distinct exact values.
    pub exact: usize,
    /// Distinct folded values.
    pub folded: usize,
    /// Distinct digit strings.
    pub digits: usize,
}

/// Case-fold and drop whitespace: the folded form of a value.
pub fn fold_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The digits of a numeric identifier (only digits and `-./()+` or spaces), or `None`.
pub fn numeric_digits(s: &str) -> Option<Vec<u8>> {
    let b = s.trim().as_bytes();
    let numeric = !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_digit() || DIGIT_SEPARATORS.contains(c) || *c == b'+');
    numeric.then(|| b.iter().copied().filter(u8::is_ascii_digit).collect())
}

fn to_u32(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

impl IdentifierIndex {
    /// Index `values` (row-major, `columns.len()` per row). Fails (and the caller refuses)
    /// when the shapes disagree or the automaton cannot be built.
    pub fn build(columns: &[String], values: &[String]) -> Result<Self, String> {
        let nc = columns.len();
        if nc == 0 && !values.is_empty() || nc > 0 && !values.len().is_multiple_of(nc) {
            return Err(format!(
                "{} identifier values do not fill rows of {nc} columns",
                values.len()
            ));
        }
        let mut exact: Vec<(String, (u32, u32))> = Vec::new();
        let mut folded: Vec<(String, (u32, u32))> = Vec::new();
        let mut digits = HashMap::new();
        let mut max_digits = 0;
        for (i, v) in values.iter().enumerate() {
            let origin = (to_u32(i / nc.max(1)), to_u32(i % nc.max(1)));
            if v.len() >= MIN_TEXT_LEN {
                exact.push((v.clone(), origin));
            }
            let f = fold_text(v);
            if f.len() >= MIN_TEXT_LEN {
                folded.push((f, origin));
            }
            if let Some(d) = numeric_digits(v).filter(|d| d.len() >= MIN_DIGITS) {
                max_digits = max_digits.max(d.len());
                digits.entry(d).or_insert(origin);
            }
        }
        Ok(Self {
            columns: columns.to_vec(),
            exact: Patterns::new(distinct(exact))?,
            folded: Patterns::new(distinct(folded))?,
            digits,
            max_digits,
            pii: PiiScanner::default(),
        })
    }

    /// The same index with L1 configured by `pii` (the site's MRN patterns); L1 is the
    /// built-in detectors until then.
    pub fn with_pii(mut self, pii: PiiScanner) -> Self {
        self.pii = pii;
        self
    }

    /// An index of no values: L1 only.
    pub fn empty() -> Self {
        Self {
            columns: Vec::new(),
            exact: None,
            folded: None,
            digits: HashMap::new(),
            max_digits: 0,
            pii: PiiScanner::default(),
        }
    }

    /// Sizes.
    pub fn stats(&self) -> IdentifierStats {
        IdentifierStats {
            exact: self.exact.as_ref().map_or(0, |p| p.origins.len()),
            folded: self.folded.as_ref().map_or(0, |p| p.origins.len()),
            digits: self.digits.len(),
        }
    }

    /// L2 matches in `bytes`: (offset, form, row, column index), sorted, deduplicated.
    pub fn matches(&self, bytes: &[u8]) -> Vec<(usize, Form, u32, u32)> {
        let mut out = Vec::new();
        if let Some(p) = &self.exact {
            p.find_all(bytes, |start, _, id| {
                let (r, c) = p.origins[id];
                out.push((start, Form::Exact, r, c));
            });
        }
        if let Some(p) = &self.folded {
            let (text, starts, ends) = folded_haystack(bytes);
            p.find_all(&text, |start, end, id| {
                let (s, e) = (starts[start], ends[end - 1]);
                if !(word_char_before(bytes, s) || word_char_at(bytes, e)) {
                    let (r, c) = p.origins[id];
                    out.push((s, Form::Folded, r, c));
                }
            });
        }
        if !self.digits.is_empty() {
            self.digit_matches(bytes, &mut out);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn digit_matches(&self, bytes: &[u8], out: &mut Vec<(usize, Form, u32, u32)>) {
        let n = bytes.len();
        let mut i = 0;
        while i < n {
            if !bytes[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            // A chain of digit groups joined by one or two separators.
            let mut groups: Vec<(usize, usize)> = Vec::new();
            let mut j = i;
            loop {
                let s = j;
                while j < n && bytes[j].is_ascii_digit() {
                    j += 1;
                }
                groups.push((s, j));
                let mut k = j;
                while k < n && k - j < 2 && DIGIT_SEPARATORS.contains(&bytes[k]) {
                    k += 1;
                }
                if k > j && k < n && bytes[k].is_ascii_digit() {
                    j = k;
                } else {
                    break;
                }
            }
            let last = groups.len() - 1;
            for a in 0..groups.len() {
                if a == 0 && word_char_before(bytes, groups[0].0) {
                    continue;
                }
                let mut digits = Vec::new();
                for (b, &(s, e)) in groups.iter().enumerate().skip(a) {
                    digits.extend_from_slice(&bytes[s..e]);
                    if digits.len() > self.max_digits {
                        break;
                    }
                    if digits.len() < MIN_DIGITS || (b == last && word_char_at(bytes, e)) {
                        continue;
                    }
                    if let Some(&(r, c)) = self.digits.get(&digits) {
                        out.push((groups[a].0, Form::Digits, r, c));
                    }
                }
            }
            i = groups[last].1;
        }
    }

    /// L1 and L2 over one outgoing document named `name`: its raw bytes and, for JSON, every
    /// string after unescaping, with DSSE payloads decoded and scanned the same way.
    pub fn scan_document(&self, name: &str, bytes: &[u8]) -> Vec<OutgoingFinding> {
        let mut out = Vec::new();
        self.scan_part(name, bytes, 0, &mut out);
        out
    }

    fn scan_part(&self, place: &str, bytes: &[u8], depth: usize, out: &mut Vec<OutgoingFinding>) {
        self.scan_bytes(place, bytes, out);
        if depth > 4 {
            return;
        }
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
            return;
        };
        let mut strings = Vec::new();
        collect_strings(&value, "", &mut strings);
        for (pointer, s) in &strings {
            // Raw bytes already covered strings written without escapes.
            if !bytes_contain(bytes, s.as_bytes()) {
                self.scan_bytes(&format!("{place} string {pointer}"), s.as_bytes(), out);
            }
        }
        // A DSSE envelope: its payload is what was signed.
        if let Some(payload) = value.get("payload").and_then(|p| p.as_str())
            && value.get("payloadType").is_some()
        {
            match base64::engine::general_purpose::STANDARD.decode(payload) {
                Ok(p) => self.scan_part(&format!("{place} payload"), &p, depth + 1, out),
                Err(_) => out.push(OutgoingFinding {
                    layer: "L2",
                    kind: "undecodable-payload".into(),
                    location: format!("{place} payload (not base64: cannot be scanned)"),
                    row: None,
                    column: None,
                }),
            }
        }
    }

    fn scan_bytes(&self, place: &str, bytes: &[u8], out: &mut Vec<OutgoingFinding>) {
        for hit in self.pii.find(bytes) {
            out.push(OutgoingFinding {
                layer: "L1",
                kind: hit.kind.name().into(),
                location: format!("{place} at byte {}", hit.range.start),
                row: None,
                column: None,
            });
        }
        for (offset, form, row, col) in self.matches(bytes) {
            out.push(OutgoingFinding {
                layer: "L2",
                kind: form.kind().into(),
                location: format!("{place} at byte {offset}"),
                row: Some(u64::from(row)),
                column: self.columns.get(col as usize).cloned(),
            });
        }
    }
}

fn bytes_contain(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Every string (keys and values) of a JSON value, with a JSON pointer to where it is.
fn collect_strings(v: &serde_json::Value, at: &str, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::String(s) => out.push((at.to_owned(), s.clone())),
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect_strings(x, &format!("{at}/{i}"), out);
            }
        }
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                // Keys are shown only when plain (a key may itself be what is found).
                let plain = (1..=40).contains(&k.len())
                    && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                let here = format!("{at}/{}", if plain { k.as_str() } else { "?" });
                out.push((format!("{here} (key)"), k.clone()));
                collect_strings(x, &here, out);
            }
        }
        _ => {}
    }
}

/// The folded text of `bytes` (UTF-8 chunks lowercased, whitespace dropped; an invalid
/// byte becomes 0xFF, which no folded value holds), with the original start and end offset
/// of the character each folded byte came from.
fn folded_haystack(bytes: &[u8]) -> (Vec<u8>, Vec<usize>, Vec<usize>) {
    let mut text = Vec::with_capacity(bytes.len());
    let (mut starts, mut ends) = (
        Vec::with_capacity(bytes.len()),
        Vec::with_capacity(bytes.len()),
    );
    let mut pos = 0;
    for chunk in bytes.utf8_chunks() {
        for (i, ch) in chunk.valid().char_indices() {
            let (s, e) = (pos + i, pos + i + ch.len_utf8());
            if ch.is_whitespace() {
                continue;
            }
            let mut buf = [0u8; 4];
            for l in ch.to_lowercase() {
                for &b in l.encode_utf8(&mut buf).as_bytes() {
                    text.push(b);
                    starts.push(s);
                    ends.push(e);
                }
            }
        }
        pos += chunk.valid().len();
        for k in 0..chunk.invalid().len() {
            text.push(0xFF);
            starts.push(pos + k);
            ends.push(pos + k + 1);
        }
        pos += chunk.invalid().len();
    }
    (text, starts, ends)
}

/// Whether the character ending right before `at` is alphanumeric (a match there would
/// continue a word).
fn word_char_before(bytes: &[u8], at: usize) -> bool {
    if at == 0 {
        return false;
    }
    let mut s = at - 1;
    while s > 0 && at - s < 4 && bytes[s] & 0xC0 == 0x80 {
        s -= 1;
    }
    std::str::from_utf8(&bytes[s..at])
        .ok()
        .and_then(|t| t.chars().next())
        .map_or(bytes[at - 1].is_ascii_alphanumeric(), char::is_alphanumeric)
}

/// Whether the character starting at `at` is alphanumeric.
fn word_char_at(bytes: &[u8], at: usize) -> bool {
    let Some(rest) = bytes.get(at..) else {
        return false;
    };
    let end = rest.len().min(4);
    (1..=end)
        .find_map(|l| std::str::from_utf8(&rest[..l]).ok())
        .and_then(|s| s.chars().next())
        .is_some_and(char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> IdentifierIndex {
        let columns = vec!["full_name".to_owned(), "card".to_owned(), "ssn".to_owned()];
        let values: Vec<String> = [
            "John Smith",
            "4111111111111111",
            "123-45-6789",
            "Élodie Müller",
            "5500 0000 0000 0004",
            "078-05-1120",
        ]
        .map(str::to_owned)
        .to_vec();
        IdentifierIndex::build(&columns, &values).expect("index")
    }

    fn forms(text: &str) -> Vec<(Form, u32, u32)> {
        index()
            .matches(text.as_bytes())
            .into_iter()
            .map(|(_, f, r, c)| (f, r, c))
            .collect()
    }

    #[test]
    fn case_and_whitespace_are_ignored_for_text() {
        assert_eq!(
            forms("by John Smith."),
            vec![(Form::Exact, 0, 0), (Form::Folded, 0, 0)]
        );
        for t in [
            "by JOHN SMITH.",
            "by john  smith",
            "by johnsmith",
            "by J o h n\tS m i t h",
        ] {
            assert_eq!(forms(t), vec![(Form::Folded, 0, 0)], "{t}");
        }
        assert_eq!(forms("by ÉLODIE MÜLLER"), vec![(Form::Folded, 1, 0)]);
        // Not inside another word.
        assert!(forms("by xjohnsmith").is_empty());
        assert!(forms("by johnsmithers").is_empty());
    }

    #[test]
    fn digits_only_for_numeric_identifiers() {
        // Spaces: the folded form finds it too.
        assert_eq!(
            forms("card 4111 1111 1111 1111"),
            vec![(Form::Folded, 0, 1), (Form::Digits, 0, 1)]
        );
        for t in [
            "card 4111.1111.1111.1111 ok",
            "card 4111-1111-1111-1111.",
            "card (4111) 1111-1111-1111",
        ] {
            assert_eq!(forms(t), vec![(Form::Digits, 0, 1)], "{t}");
        }
        assert_eq!(forms("ssn 123456789"), vec![(Form::Digits, 0, 2)]);
        assert_eq!(forms("ssn 123.45.6789"), vec![(Form::Digits, 0, 2)]);
        // Exact and folded find the dashed form; digits find it too.
        assert_eq!(
            forms("ssn 123-45-6789"),
            vec![
                (Form::Exact, 0, 2),
                (Form::Folded, 0, 2),
                (Form::Digits, 0, 2)
            ]
        );
        // A value stored with spaces is found without them.
        assert_eq!(
            forms("5500000000000004"),
            vec![(Form::Folded, 1, 1), (Form::Digits, 1, 1)]
        );
        // Whole groups only, and never inside a longer number or a word.
        for t in [
            "0.1234567890",
            "91234567891",
            "ssn 1234567890",
            "x123456789",
            "123456789x",
            "hash ab123456789cd",
            "2026-11-29T12:34:56Z",
        ] {
            assert!(forms(t).is_empty(), "{t}");
        }
        // Leading zeros are digits too.
        assert_eq!(forms("078 05 1120"), vec![(Form::Digits, 1, 2)]);
    }

    #[test]
    fn documents_are_scanned_through_json_escapes_and_dsse_payloads() {
        let idx = index();
        let inner = r#"{"reason": "card 4111.1111.1111.1111"}"#;
        let env = serde_json::json!({
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64::engine::general_purpose::STANDARD.encode(inner),
            "signatures": [],
        });
        let f = idx.scan_document("approvals/k.dsse.json", env.to_string().as_bytes());
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].kind, Form::Digits.kind());
        assert!(
            f[0].location.starts_with("approvals/k.dsse.json payload"),
            "{}",
            f[0]
        );
        assert_eq!(f[0].column.as_deref(), Some("card"));
        // \u escapes do not hide a value.
        let escaped = r#"{"officer": "\u004a\u006f\u0068\u006e Smith"}"#;
        let f = idx.scan_document("x.json", escaped.as_bytes());
        assert!(
            f.iter().any(|f| f.location.contains("string /officer")),
            "{f:?}"
        );
        // L1 too, and no value in what is printed.
        let f = idx.scan_document("x.json", br#"{"r": "mail jane@example.org"}"#);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f.iter()
                .all(|f| f.kind == "email" && !f.to_string().contains("jane"))
        );
    }

    /// The prefix-hash search finds exactly the occurrences an Aho-Corasick automaton finds
    /// (overlapping ones included), on haystacks dense with near misses.
    #[test]
    fn prefix_search_finds_what_aho_corasick_finds() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let alphabet = b"ab1 ";
        let word = |rng: &mut rand_chacha::ChaCha8Rng, n: usize| -> String {
            (0..n)
                .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
                .collect()
        };
        for round in 0..40 {
            let mut values: Vec<String> = (0..rng.random_range(1..60))
                .map(|_| {
                    let n = rng.random_range(MIN_TEXT_LEN..MIN_TEXT_LEN + 6);
                    word(&mut rng, n)
                })
                .collect();
            values.sort();
            values.dedup();
            let p = Patterns::new(values.iter().map(|v| (v.clone(), (0, 0))).collect())
                .expect("patterns")
                .expect("some");
            let ac = aho_corasick::AhoCorasick::new(&values).expect("automaton");
            for _ in 0..20 {
                let n = rng.random_range(0..300);
                let hay = word(&mut rng, n);
                let mut ours = Vec::new();
                p.find_all(hay.as_bytes(), |s, e, id| {
                    ours.push((s, e, p.values[id].clone()));
                });
                let mut theirs: Vec<(usize, usize, Vec<u8>)> = ac
                    .find_overlapping_iter(hay.as_bytes())
                    .map(|m| {
                        let v = values[m.pattern().as_usize()].as_bytes().to_vec();
                        (m.start(), m.end(), v)
                    })
                    .collect();
                ours.sort_unstable();
                theirs.sort_unstable();
                assert_eq!(ours, theirs, "round {round}: {hay:?}");
            }
        }
    }
}
