//! The header's JSON: a strict RFC 8259 parser that refuses duplicate keys.

use std::collections::HashSet;

use crate::{SafetensorsError, clip};

/// Deepest JSON nesting accepted. A valid header nests three levels; the cap keeps the
/// recursive parser's stack bounded on hostile input such as `[[[[...`.
pub(crate) const MAX_JSON_DEPTH: usize = 64;

/// A parsed JSON value. Objects keep their keys in file order; numbers keep their text,
/// so that `1.0` or `-0` are never mistaken for the integers a header needs.
#[derive(Debug, PartialEq)]
pub(crate) enum Json<'h> {
    Null,
    Bool(bool),
    Number(&'h str),
    String(String),
    Array(Vec<Json<'h>>),
    Object(Vec<(String, Json<'h>)>),
}

impl Json<'_> {
    /// The value as a `usize`, if it is written as a plain non-negative integer.
    pub(crate) fn as_usize(&self) -> Option<usize> {
        match self {
            Json::Number(text) if text.bytes().all(|b| b.is_ascii_digit()) => text
                .parse::<u64>()
                .ok()
                .and_then(|n| usize::try_from(n).ok()),
            _ => None,
        }
    }

    /// A short description for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Json::Null => "null".to_owned(),
            Json::Bool(b) => b.to_string(),
            Json::Number(text) => format!("the number {}", clip(text)),
            Json::String(s) => format!("the string {:?}", clip(s)),
            Json::Array(_) => "an array".to_owned(),
            Json::Object(_) => "an object".to_owned(),
        }
    }
}

/// Parses the header as exactly one JSON value followed only by whitespace.
pub(crate) fn parse_json(text: &str) -> Result<Json<'_>, SafetensorsError> {
    let mut parser = JsonParser {
        text,
        pos: 0,
        path: Vec::new(),
    };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.pos < text.len() {
        return Err(SafetensorsError::TrailingGarbage { offset: parser.pos });
    }
    Ok(value)
}

/// A strict RFC 8259 parser that also refuses duplicate keys.
struct JsonParser<'h> {
    text: &'h str,
    pos: usize,
    /// Keys of the objects being parsed, to locate a duplicate key.
    path: Vec<String>,
}

impl<'h> JsonParser<'h> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn rest(&self) -> &'h [u8] {
        self.text.as_bytes().get(self.pos..).unwrap_or_default()
    }

    fn error(&self, reason: &'static str) -> SafetensorsError {
        SafetensorsError::InvalidJson {
            offset: self.pos,
            reason,
        }
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), SafetensorsError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(reason))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json<'h>, SafetensorsError> {
        if depth >= MAX_JSON_DEPTH {
            return Err(self.error("nested more than 64 levels deep"));
        }
        match self.peek() {
            None => Err(self.error("unexpected end of header")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Json::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(_) => Err(self.error("expected a JSON value")),
        }
    }

    fn literal(
        &mut self,
        word: &'static str,
        value: Json<'h>,
    ) -> Result<Json<'h>, SafetensorsError> {
        if self.rest().starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a JSON value"))
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json<'h>, SafetensorsError> {
        self.pos += 1;
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Object(entries));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string key"));
            }
            let key = self.string()?;
            if !seen.insert(key.clone()) {
                return Err(SafetensorsError::DuplicateKey {
                    key: clip(&key),
                    path: self.path.iter().map(|k| clip(k)).collect(),
                });
            }
            self.skip_whitespace();
            self.expect(b':', "expected ':' after an object key")?;
            self.skip_whitespace();
            self.path.push(key);
            let value = self.value(depth + 1);
            let key = self.path.pop().unwrap_or_default();
            entries.push((key, value?));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(entries));
                }
                _ => return Err(self.error("expected ',' or '}' in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json<'h>, SafetensorsError> {
        self.pos += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth + 1)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                _ => return Err(self.error("expected ',' or ']' in an array")),
            }
        }
    }

    fn string(&mut self) -> Result<String, SafetensorsError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            while matches!(self.peek(), Some(b) if b != b'"' && b != b'\\' && b >= 0x20) {
                self.pos += 1;
            }
            // Both ends sit next to ASCII bytes (or the end), so they are char boundaries.
            out.push_str(self.text.get(run_start..self.pos).unwrap_or_default());
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    out.push(self.escape()?);
                }
                Some(_) => return Err(self.error("unescaped control character in a string")),
            }
        }
    }

    fn escape(&mut self) -> Result<char, SafetensorsError> {
        let simple = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                return self.unicode_escape();
            }
            _ => return Err(self.error("invalid escape in a string")),
        };
        self.pos += 1;
        Ok(simple)
    }

    /// The character of a `\uXXXX` escape (the `\u` already read), joining surrogate pairs.
    fn unicode_escape(&mut self) -> Result<char, SafetensorsError> {
        let high = self.hex4()?;
        let code = match high {
            0xD800..=0xDBFF => {
                if !self.rest().starts_with(b"\\u") {
                    return Err(self.error("unpaired surrogate in a \\u escape"));
                }
                self.pos += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.error("unpaired surrogate in a \\u escape"));
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("unpaired surrogate in a \\u escape")),
            _ => high,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32, SafetensorsError> {
        let digits = self
            .text
            .get(self.pos..self.pos.saturating_add(4))
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("expected 4 hex digits after \\u"))?;
        let value = u32::from_str_radix(digits, 16)
            .map_err(|_| self.error("expected 4 hex digits after \\u"))?;
        self.pos += 4;
        Ok(value)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<Json<'h>, SafetensorsError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("invalid number: no digits after '.'"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("invalid number: no digits in the exponent"));
            }
        }
        let text = self.text.get(start..self.pos).unwrap_or_default();
        Ok(Json::Number(text))
    }
}
