//! The strict reader: a file's length prefix, its header's entries, and the tiling of its
//! data buffer.

use std::collections::BTreeMap;
use std::ops::Range;

use crate::dtype::byte_size;
use crate::json::{Json, parse_json};
use crate::sniff::sniff_foreign_format;
use crate::writer::OwnedTensor;
use crate::{Dtype, MAX_HEADER_SIZE, MAX_NAME_LEN, METADATA_KEY, SafetensorsError, clip};

/// One tensor of a parsed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Tensor name, validated by the same rules as the writer's.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions; empty for a scalar.
    pub shape: Vec<usize>,
    /// absolute byte range within the whole file
    pub range: Range<usize>,
}

/// A parsed safetensors file borrowing its bytes.
#[derive(Debug)]
pub struct SafetensorsFile<'a> {
    /// The whole file.
    pub bytes: &'a [u8],
    /// length of the JSON header (N)
    pub header_len: usize,
    /// sorted by data offset
    pub tensors: Vec<TensorInfo>,
    /// The `__metadata__` object; empty when the header has none.
    pub metadata: BTreeMap<String, String>,
}

impl<'a> SafetensorsFile<'a> {
    /// The tensor with this name, if any.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The bytes of a tensor. A `TensorInfo` from another file whose range lies outside
    /// this one yields an empty slice rather than a panic.
    pub fn data(&self, t: &TensorInfo) -> &'a [u8] {
        self.bytes.get(t.range.clone()).unwrap_or(&[])
    }

    /// The header's text with the numbers of every `"shape":[...]` and `"data_offsets":[...]`
    /// array blanked (each digit and comma a space), for scanning the header's free text.
    ///
    /// Those arrays are the layout: the parser checked every offset against the data
    /// buffer and every shape against its tensor's size, so their digits say nothing a
    /// writer chose freely, yet a gigabyte file's offsets are ten-digit numbers that look
    /// like identifiers (`[1075641364,2148465880]` passes the NHS number checksum). Only an
    /// array of digits and commas right after the key is blanked; the key cannot be forged
    /// inside a name or a metadata string, where every `"` is escaped. Everything else
    /// (names, dtypes, metadata, padding) is kept at its byte offset.
    pub fn header_text_without_layout(&self) -> Vec<u8> {
        let mut text = self.header_text().as_bytes().to_vec();
        for key in [&b"\"shape\":["[..], &b"\"data_offsets\":["[..]] {
            let mut from = 0;
            while let Some(at) = find(&text[from..], key) {
                let start = from + at + key.len();
                let len = text[start..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit() || **b == b',')
                    .count();
                if text.get(start + len) == Some(&b']') {
                    text[start..start + len].fill(b' ');
                }
                from = start;
            }
        }
        text
    }

    /// the raw header JSON text
    ///
    /// Empty if the public fields were changed so that they no longer describe a header.
    pub fn header_text(&self) -> &'a str {
        self.bytes
            .get(8..self.data_start())
            .and_then(|h| std::str::from_utf8(h).ok())
            .unwrap_or("")
    }

    /// byte offset where the data buffer starts (8 + N)
    pub fn data_start(&self) -> usize {
        self.header_len.saturating_add(8)
    }

    /// Copies of all tensors, ready for [`write_canonical`](crate::write_canonical).
    pub fn owned_tensors(&self) -> Vec<OwnedTensor> {
        self.tensors
            .iter()
            .map(|t| OwnedTensor {
                name: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                data: self.data(t).to_vec(),
            })
            .collect()
    }
}

/// Parses and validates a whole safetensors file.
///
/// Foreign formats are refused first (see [`sniff_foreign_format`]). Every tensor must be
/// well formed and the tensors, ordered by offset, must tile the data buffer exactly.
pub fn parse(bytes: &[u8]) -> Result<SafetensorsFile<'_>, SafetensorsError> {
    parse_with_len(bytes, bytes.len())
}

/// Parses and validates the header of a file of `file_len` bytes from a `prefix` holding
/// at least its first `8 + N` bytes, checking the layout against `file_len` without the
/// data. [`SafetensorsFile::data`] of the result is empty for tensors beyond the prefix.
/// Lets a verifier that streams the data through its hashes check the format without
/// holding the whole file in memory.
pub fn parse_header(
    prefix: &[u8],
    file_len: usize,
) -> Result<SafetensorsFile<'_>, SafetensorsError> {
    if prefix.len() > file_len {
        return Err(SafetensorsError::TrailingData {
            data_end: file_len,
            buffer_len: prefix.len(),
        });
    }
    parse_with_len(prefix, file_len)
}

fn parse_with_len(bytes: &[u8], file_len: usize) -> Result<SafetensorsFile<'_>, SafetensorsError> {
    let Prefix {
        header_len,
        header,
        data_start,
    } = read_prefix(bytes, file_len)?;
    let data_len = file_len - data_start;
    let (metadata, mut spans) = read_header(header)?;
    // Zero-length tensors sort before a tensor starting at the same offset, and names break
    // the remaining ties, so the order (and so the first error) is deterministic.
    spans.sort_by(|a, b| (a.begin, a.end, &a.name).cmp(&(b.begin, b.end, &b.name)));
    check_tiling(&spans, data_len)?;
    let tensors = place(spans, data_start)?;
    Ok(SafetensorsFile {
        bytes,
        header_len,
        tensors,
        metadata,
    })
}

/// The length prefix and the header it delimits.
struct Prefix<'a> {
    /// N.
    header_len: usize,
    /// The header's text.
    header: &'a str,
    /// 8 + N, at most the file's length.
    data_start: usize,
}

/// Refuses foreign formats, then reads the length prefix and the UTF-8 header it delimits,
/// which must lie within the file's `file_len` bytes.
fn read_prefix(bytes: &[u8], file_len: usize) -> Result<Prefix<'_>, SafetensorsError> {
    if let Some(format) = sniff_foreign_format(bytes) {
        return Err(SafetensorsError::ForeignFormat { format });
    }
    let Some(prefix) = bytes.first_chunk::<8>() else {
        return Err(SafetensorsError::TooShort { len: bytes.len() });
    };
    let claimed = u64::from_le_bytes(*prefix);
    if claimed > MAX_HEADER_SIZE as u64 {
        return Err(SafetensorsError::HeaderTooLarge { len: claimed });
    }
    let out_of_bounds = || SafetensorsError::HeaderOutOfBounds {
        header_len: claimed,
        file_len,
    };
    let header_len = usize::try_from(claimed).map_err(|_| out_of_bounds())?;
    let data_start = header_len.checked_add(8).ok_or_else(out_of_bounds)?;
    let header_bytes = bytes.get(8..data_start).ok_or_else(out_of_bounds)?;
    let header =
        std::str::from_utf8(header_bytes).map_err(|e| SafetensorsError::HeaderNotUtf8 {
            offset: e.valid_up_to(),
        })?;
    if data_start > file_len {
        return Err(out_of_bounds());
    }
    Ok(Prefix {
        header_len,
        header,
        data_start,
    })
}

/// The header's metadata and tensor entries, in file order.
fn read_header(header: &str) -> Result<(BTreeMap<String, String>, Vec<Span>), SafetensorsError> {
    let entries = match parse_json(header)? {
        Json::Object(entries) => entries,
        other => {
            return Err(SafetensorsError::HeaderNotObject {
                found: other.describe(),
            });
        }
    };
    let mut metadata = BTreeMap::new();
    let mut spans = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        if key == METADATA_KEY {
            metadata = read_metadata(value)?;
        } else {
            spans.push(read_entry(key, value)?);
        }
    }
    Ok((metadata, spans))
}

/// The spans, sorted by offset, must tile the data buffer of `data_len` bytes exactly: no
/// overlap, no gap, nothing past its end, nothing left after the last.
fn check_tiling(spans: &[Span], data_len: usize) -> Result<(), SafetensorsError> {
    let mut cursor = 0usize;
    let mut prev: Option<&Span> = None;
    for span in spans {
        if span.begin < cursor {
            let prev = prev.map(|p| p.name.clone()).unwrap_or_default();
            return Err(SafetensorsError::TensorOverlap {
                prev,
                prev_end: cursor,
                next: span.name.clone(),
                next_begin: span.begin,
            });
        }
        if span.begin > cursor {
            return Err(match prev {
                None => SafetensorsError::FirstTensorNotAtZero {
                    tensor: span.name.clone(),
                    begin: span.begin,
                },
                Some(p) => SafetensorsError::TensorGap {
                    prev: p.name.clone(),
                    prev_end: cursor,
                    next: span.name.clone(),
                    next_begin: span.begin,
                },
            });
        }
        if span.end > data_len {
            return Err(SafetensorsError::DataTruncated {
                tensor: span.name.clone(),
                end: span.end,
                buffer_len: data_len,
            });
        }
        cursor = span.end;
        prev = Some(span);
    }
    if cursor < data_len {
        return Err(SafetensorsError::TrailingData {
            data_end: cursor,
            buffer_len: data_len,
        });
    }
    Ok(())
}

/// The tensors, their offsets made absolute (the data buffer starts at `data_start`).
fn place(spans: Vec<Span>, data_start: usize) -> Result<Vec<TensorInfo>, SafetensorsError> {
    let mut tensors = Vec::with_capacity(spans.len());
    for span in spans {
        // Cannot fail: `end <= data.len()` was checked, so both sums are within the file.
        let start = data_start
            .checked_add(span.begin)
            .ok_or(SafetensorsError::DataTooLarge)?;
        let stop = data_start
            .checked_add(span.end)
            .ok_or(SafetensorsError::DataTooLarge)?;
        tensors.push(TensorInfo {
            name: span.name,
            dtype: span.dtype,
            shape: span.shape,
            range: start..stop,
        });
    }
    Ok(tensors)
}

/// A tensor entry read from the header, offsets still relative to the data buffer.
struct Span {
    name: String,
    dtype: Dtype,
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

/// Checks a tensor name, for both the reader and the writer.
pub(crate) fn validate_name(name: &str) -> Result<(), SafetensorsError> {
    if name.is_empty() {
        return Err(SafetensorsError::EmptyTensorName);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(SafetensorsError::TensorNameTooLong {
            name: clip(name),
            len: name.len(),
        });
    }
    if let Some(ch) = name.chars().find(|c| c.is_control()) {
        return Err(SafetensorsError::TensorNameControlChar {
            name: name.to_owned(),
            ch,
        });
    }
    if name == METADATA_KEY {
        return Err(SafetensorsError::ReservedTensorName);
    }
    Ok(())
}

/// Reads one tensor entry of the header.
fn read_entry(name: String, value: Json<'_>) -> Result<Span, SafetensorsError> {
    validate_name(&name)?;
    let [dtype, shape, offsets] = entry_fields(&name, value)?;
    let dtype = read_dtype(&name, dtype)?;
    let shape = read_shape(&name, shape)?;
    let (begin, end) = read_offsets(&name, offsets)?;
    let expected = byte_size(&name, dtype, &shape)?;
    if end - begin != expected {
        return Err(SafetensorsError::ByteLengthMismatch {
            tensor: name,
            dtype,
            shape,
            expected,
            actual: end - begin,
        });
    }
    Ok(Span {
        name,
        dtype,
        shape,
        begin,
        end,
    })
}

/// The `dtype`, `shape` and `data_offsets` fields of tensor `name`'s entry, each `None`
/// when absent; any other field is refused.
fn entry_fields<'h>(
    name: &str,
    value: Json<'h>,
) -> Result<[Option<Json<'h>>; 3], SafetensorsError> {
    let fields = match value {
        Json::Object(fields) => fields,
        other => {
            return Err(SafetensorsError::TensorEntryNotObject {
                tensor: name.to_owned(),
                found: other.describe(),
            });
        }
    };
    let mut found = [None, None, None];
    for (field, value) in fields {
        let slot = match field.as_str() {
            "dtype" => 0,
            "shape" => 1,
            "data_offsets" => 2,
            _ => {
                return Err(SafetensorsError::UnknownField {
                    tensor: name.to_owned(),
                    field: clip(&field),
                });
            }
        };
        found[slot] = Some(value);
    }
    Ok(found)
}

/// [`SafetensorsError::MissingField`] for `field` of tensor `name`.
fn missing(name: &str, field: &'static str) -> SafetensorsError {
    SafetensorsError::MissingField {
        tensor: name.to_owned(),
        field,
    }
}

/// [`SafetensorsError::FieldWrongType`] for `field` of tensor `name`.
fn wrong_type(
    name: &str,
    field: &'static str,
    expected: &'static str,
    found: &Json<'_>,
) -> SafetensorsError {
    SafetensorsError::FieldWrongType {
        tensor: name.to_owned(),
        field,
        expected,
        found: found.describe(),
    }
}

/// The `dtype` field: a string naming a known dtype.
fn read_dtype(name: &str, value: Option<Json<'_>>) -> Result<Dtype, SafetensorsError> {
    match value.ok_or_else(|| missing(name, "dtype"))? {
        Json::String(s) => Dtype::from_name(&s).ok_or_else(|| SafetensorsError::UnknownDtype {
            tensor: name.to_owned(),
            dtype: clip(&s),
        }),
        other => Err(wrong_type(name, "dtype", "a string", &other)),
    }
}

/// The `shape` field: an array of non-negative integers.
fn read_shape(name: &str, value: Option<Json<'_>>) -> Result<Vec<usize>, SafetensorsError> {
    match value.ok_or_else(|| missing(name, "shape"))? {
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                item.as_usize()
                    .ok_or_else(|| SafetensorsError::InvalidShapeEntry {
                        tensor: name.to_owned(),
                        index,
                        found: item.describe(),
                    })
            })
            .collect(),
        other => Err(wrong_type(name, "shape", "an array of integers", &other)),
    }
}

/// The `data_offsets` field: two non-negative integers, `begin <= end`.
fn read_offsets(name: &str, value: Option<Json<'_>>) -> Result<(usize, usize), SafetensorsError> {
    let offsets = match value.ok_or_else(|| missing(name, "data_offsets"))? {
        Json::Array(items) => items,
        other => {
            return Err(wrong_type(
                name,
                "data_offsets",
                "an array of two integers",
                &other,
            ));
        }
    };
    let [begin, end] = offsets.as_slice() else {
        return Err(SafetensorsError::DataOffsetsArity {
            tensor: name.to_owned(),
            count: offsets.len(),
        });
    };
    let offset = |index: usize, item: &Json<'_>| {
        item.as_usize()
            .ok_or_else(|| SafetensorsError::InvalidDataOffset {
                tensor: name.to_owned(),
                index,
                found: item.describe(),
            })
    };
    let (begin, end) = (offset(0, begin)?, offset(1, end)?);
    if begin > end {
        return Err(SafetensorsError::DataOffsetsReversed {
            tensor: name.to_owned(),
            begin,
            end,
        });
    }
    Ok((begin, end))
}

/// Reads the `__metadata__` object.
fn read_metadata(value: Json<'_>) -> Result<BTreeMap<String, String>, SafetensorsError> {
    let pairs = match value {
        Json::Object(pairs) => pairs,
        other => {
            return Err(SafetensorsError::MetadataNotObject {
                found: other.describe(),
            });
        }
    };
    // An entry shaped like a tensor means someone tried to name a tensor `__metadata__`;
    // say so rather than complain about a non-string metadata value.
    if pairs.iter().any(|(key, value)| {
        matches!(key.as_str(), "dtype" | "shape" | "data_offsets")
            && !matches!(value, Json::String(_))
    }) {
        return Err(SafetensorsError::ReservedTensorName);
    }
    let mut metadata = BTreeMap::new();
    for (key, value) in pairs {
        match value {
            Json::String(s) => {
                metadata.insert(key, s);
            }
            other => {
                return Err(SafetensorsError::MetadataValueNotString {
                    key: clip(&key),
                    found: other.describe(),
                });
            }
        }
    }
    Ok(metadata)
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
