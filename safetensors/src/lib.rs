//! Strict safetensors reading and canonical writing.
//!
//! A safetensors file is an 8-byte little-endian header length `N`, `N` bytes of UTF-8 JSON,
//! then the data buffer. [`parse`] accepts a strict subset of what the upstream
//! `safetensors` crate accepts: besides its checks (size caps, checked arithmetic,
//! contiguous offsets) it refuses duplicate JSON keys, which upstream silently resolves to
//! the last one, so two readers could disagree on what a file holds; control characters
//! (NUL included) in tensor names; unknown fields; a `null` metadata; and trailing bytes
//! that are not space padding. The header is parsed by a small hand-written JSON parser,
//! because `serde_json` keeps the last of duplicate keys without telling.
//!
//! [`write_canonical`] produces exactly one byte sequence for a set of tensors and metadata,
//! so release digests depend only on content, and [`is_canonical`] checks that a file
//! is that sequence.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;

/// Largest header accepted, in bytes. Real headers are a few kilobytes; the cap bounds the
/// memory and time an adversarial file can make the reader spend.
pub const MAX_HEADER_SIZE: usize = 16 * 1024 * 1024;

/// Longest tensor name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Key of the optional metadata object in the header.
pub const METADATA_KEY: &str = "__metadata__";

/// Deepest JSON nesting accepted. A valid header nests three levels; the cap keeps the
/// recursive parser's stack bounded on hostile input such as `[[[[...`.
const MAX_JSON_DEPTH: usize = 64;

/// Untrusted strings quoted in error messages are cut to this many bytes, so a message
/// stays readable when a key is megabytes long.
const MAX_QUOTED_LEN: usize = 256;

/// Element type of a tensor, as named in the header's `dtype` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dtype {
    /// Boolean, one byte per element (`BOOL`).
    Bool,
    /// Unsigned 8-bit integer (`U8`).
    U8,
    /// Signed 8-bit integer (`I8`).
    I8,
    /// Unsigned 16-bit integer (`U16`).
    U16,
    /// Signed 16-bit integer (`I16`).
    I16,
    /// IEEE half precision (`F16`).
    F16,
    /// bfloat16 (`BF16`).
    BF16,
    /// Unsigned 32-bit integer (`U32`).
    U32,
    /// Signed 32-bit integer (`I32`).
    I32,
    /// IEEE single precision (`F32`).
    F32,
    /// Unsigned 64-bit integer (`U64`).
    U64,
    /// Signed 64-bit integer (`I64`).
    I64,
    /// IEEE double precision (`F64`).
    F64,
}

impl Dtype {
    /// Every dtype, in declaration order.
    pub const ALL: [Dtype; 13] = [
        Dtype::Bool,
        Dtype::U8,
        Dtype::I8,
        Dtype::U16,
        Dtype::I16,
        Dtype::F16,
        Dtype::BF16,
        Dtype::U32,
        Dtype::I32,
        Dtype::F32,
        Dtype::U64,
        Dtype::I64,
        Dtype::F64,
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::Bool | Dtype::U8 | Dtype::I8 => 1,
            Dtype::U16 | Dtype::I16 | Dtype::F16 | Dtype::BF16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }

    /// The name used in the header, e.g. `"F32"` or `"BOOL"`.
    pub fn name(self) -> &'static str {
        match self {
            Dtype::Bool => "BOOL",
            Dtype::U8 => "U8",
            Dtype::I8 => "I8",
            Dtype::U16 => "U16",
            Dtype::I16 => "I16",
            Dtype::F16 => "F16",
            Dtype::BF16 => "BF16",
            Dtype::U32 => "U32",
            Dtype::I32 => "I32",
            Dtype::F32 => "F32",
            Dtype::U64 => "U64",
            Dtype::I64 => "I64",
            Dtype::F64 => "F64",
        }
    }

    /// The dtype a header name stands for; exact and case-sensitive, as upstream.
    pub fn from_name(s: &str) -> Option<Dtype> {
        Dtype::ALL.into_iter().find(|d| d.name() == s)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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

    /// Copies of all tensors, ready for [`write_canonical`].
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

/// A tensor held in memory, input of [`write_canonical`].
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedTensor {
    /// Tensor name.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions; empty for a scalar.
    pub shape: Vec<usize>,
    /// Little-endian element bytes, `product(shape) * dtype.size()` of them.
    pub data: Vec<u8>,
}

/// Why a file was refused or could not be written.
///
/// Messages quote names, keys and offsets but never tensor data. Quoted strings are
/// escaped with `{:?}` and cut to 256 bytes (marked with `…`).
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    /// The magic bytes of another weight format, see [`sniff_foreign_format`].
    #[error(
        "input looks like {format}, not safetensors; only safetensors is accepted \
         (other weight formats can execute code on load or hide data)"
    )]
    ForeignFormat {
        /// Human name of the detected format, with its article ("a GGUF model").
        format: &'static str,
    },
    /// Fewer than the 8 bytes of the header length.
    #[error("file is {len} bytes long, shorter than the 8-byte header length prefix")]
    TooShort {
        /// File length.
        len: usize,
    },
    /// The header length exceeds [`MAX_HEADER_SIZE`].
    #[error("header length {len} exceeds the maximum of {MAX_HEADER_SIZE} bytes")]
    HeaderTooLarge {
        /// The header length the file claims.
        len: u64,
    },
    /// The header length points past the end of the file.
    #[error(
        "header length {header_len} goes past the end of the file \
         ({file_len} bytes, so at most {} header bytes)", file_len.saturating_sub(8)
    )]
    HeaderOutOfBounds {
        /// The header length the file claims.
        header_len: u64,
        /// File length.
        file_len: usize,
    },
    /// The header bytes are not UTF-8.
    #[error("header is not valid UTF-8 (bad byte at header offset {offset})")]
    HeaderNotUtf8 {
        /// Offset of the first invalid byte, from the start of the header.
        offset: usize,
    },
    /// The header is not JSON.
    #[error("header is not valid JSON at header offset {offset}: {reason}")]
    InvalidJson {
        /// Offset from the start of the header.
        offset: usize,
        /// What the parser expected.
        reason: &'static str,
    },
    /// Something other than space padding follows the header's JSON value.
    #[error(
        "unexpected bytes after the header JSON at header offset {offset} \
         (only space padding may follow it)"
    )]
    TrailingGarbage {
        /// Offset of the first unexpected byte, from the start of the header.
        offset: usize,
    },
    /// The header's JSON value is not an object.
    #[error("header JSON must be an object, found {found}")]
    HeaderNotObject {
        /// Kind of value found.
        found: String,
    },
    /// A JSON object in the header has the same key twice.
    #[error("duplicate key {key:?} in header ({})", describe_path(path))]
    DuplicateKey {
        /// The repeated key.
        key: String,
        /// Keys of the enclosing objects, outermost first; empty at the top level.
        path: Vec<String>,
    },
    /// A tensor name is the empty string.
    #[error("tensor name is empty")]
    EmptyTensorName,
    /// A tensor name contains a control character.
    #[error("tensor name {name:?} contains control character {ch:?}")]
    TensorNameControlChar {
        /// The name.
        name: String,
        /// The first control character in it.
        ch: char,
    },
    /// A tensor name is longer than [`MAX_NAME_LEN`].
    #[error("tensor name {name:?} is {len} bytes long, more than the maximum of {MAX_NAME_LEN}")]
    TensorNameTooLong {
        /// The name, cut short.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A tensor would be named `__metadata__`, the key reserved for metadata.
    #[error(
        "a tensor cannot be named \"__metadata__\": that key is reserved for the \
         string-to-string metadata object"
    )]
    ReservedTensorName,
    /// A tensor's entry is not a JSON object.
    #[error("tensor {tensor:?}: entry must be an object, found {found}")]
    TensorEntryNotObject {
        /// Tensor name.
        tensor: String,
        /// Kind of value found.
        found: String,
    },
    /// A tensor's entry has a field other than dtype, shape and data_offsets.
    #[error(
        "tensor {tensor:?}: unknown field {field:?} (only \"dtype\", \"shape\" and \
         \"data_offsets\" are allowed)"
    )]
    UnknownField {
        /// Tensor name.
        tensor: String,
        /// The unknown key.
        field: String,
    },
    /// A tensor's entry lacks a required field.
    #[error("tensor {tensor:?}: missing field {field:?}")]
    MissingField {
        /// Tensor name.
        tensor: String,
        /// The missing key.
        field: &'static str,
    },
    /// A field of a tensor's entry has the wrong JSON type.
    #[error("tensor {tensor:?}: field {field:?} must be {expected}, found {found}")]
    FieldWrongType {
        /// Tensor name.
        tensor: String,
        /// The field.
        field: &'static str,
        /// The JSON type required.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// A dtype string this reader does not know.
    #[error("tensor {tensor:?}: unknown dtype {dtype:?}")]
    UnknownDtype {
        /// Tensor name.
        tensor: String,
        /// The dtype string.
        dtype: String,
    },
    /// A shape entry is not a non-negative integer that fits in `usize`.
    #[error("tensor {tensor:?}: shape entry {index} is {found}, not a non-negative integer")]
    InvalidShapeEntry {
        /// Tensor name.
        tensor: String,
        /// Position in the shape.
        index: usize,
        /// What was found.
        found: String,
    },
    /// `data_offsets` does not have exactly two entries.
    #[error("tensor {tensor:?}: data_offsets must have exactly 2 entries, found {count}")]
    DataOffsetsArity {
        /// Tensor name.
        tensor: String,
        /// Number of entries found.
        count: usize,
    },
    /// A `data_offsets` entry is not a non-negative integer that fits in `usize`.
    #[error("tensor {tensor:?}: data_offsets entry {index} is {found}, not a non-negative integer")]
    InvalidDataOffset {
        /// Tensor name.
        tensor: String,
        /// 0 for begin, 1 for end.
        index: usize,
        /// What was found.
        found: String,
    },
    /// `data_offsets` ends before it begins.
    #[error("tensor {tensor:?}: data_offsets [{begin}, {end}] end before they begin")]
    DataOffsetsReversed {
        /// Tensor name.
        tensor: String,
        /// First offset.
        begin: usize,
        /// Second offset.
        end: usize,
    },
    /// The element count or byte size of a shape overflows `usize`.
    #[error("tensor {tensor:?}: shape {shape:?} of {dtype} overflows the addressable size")]
    ShapeOverflow {
        /// Tensor name.
        tensor: String,
        /// The shape.
        shape: Vec<usize>,
        /// The dtype.
        dtype: Dtype,
    },
    /// A tensor's bytes do not match its shape and dtype.
    #[error(
        "tensor {tensor:?}: has {actual} bytes of data but shape {shape:?} of {dtype} \
         needs {expected}"
    )]
    ByteLengthMismatch {
        /// Tensor name.
        tensor: String,
        /// The dtype.
        dtype: Dtype,
        /// The shape.
        shape: Vec<usize>,
        /// Bytes the shape and dtype need.
        expected: usize,
        /// Bytes given (`end - begin`, or the data length when writing).
        actual: usize,
    },
    /// The tensor with the lowest offset does not start the data buffer.
    #[error(
        "tensor {tensor:?}: first tensor in the data buffer begins at offset {begin}, \
         leaving {begin} unused bytes before it"
    )]
    FirstTensorNotAtZero {
        /// Tensor name.
        tensor: String,
        /// Its begin offset.
        begin: usize,
    },
    /// A tensor begins before the previous one (by offset) ends.
    #[error(
        "tensor {next:?} (data offset {next_begin}) overlaps tensor {prev:?}, \
         which ends at data offset {prev_end}"
    )]
    TensorOverlap {
        /// The earlier tensor.
        prev: String,
        /// Where it ends.
        prev_end: usize,
        /// The tensor beginning inside it.
        next: String,
        /// Where that one begins.
        next_begin: usize,
    },
    /// Unused bytes between two tensors.
    #[error(
        "{} unused bytes between tensor {prev:?} (ends at data offset {prev_end}) and \
         tensor {next:?} (begins at data offset {next_begin})", next_begin - prev_end
    )]
    TensorGap {
        /// The earlier tensor.
        prev: String,
        /// Where it ends.
        prev_end: usize,
        /// The next tensor.
        next: String,
        /// Where it begins, after `prev_end`.
        next_begin: usize,
    },
    /// Bytes after the last tensor.
    #[error(
        "data buffer has {} bytes after the last tensor, which ends at data offset \
         {data_end} of {buffer_len}", buffer_len - data_end
    )]
    TrailingData {
        /// End of the last tensor (0 when there is none).
        data_end: usize,
        /// Length of the data buffer, more than `data_end`.
        buffer_len: usize,
    },
    /// A tensor ends past the end of the file.
    #[error(
        "tensor {tensor:?}: ends at data offset {end} but the data buffer holds only \
         {buffer_len} bytes (file truncated?)"
    )]
    DataTruncated {
        /// Tensor name.
        tensor: String,
        /// Its end offset.
        end: usize,
        /// Length of the data buffer.
        buffer_len: usize,
    },
    /// `__metadata__` is not an object.
    #[error("\"__metadata__\" must be an object of strings, found {found}")]
    MetadataNotObject {
        /// Kind of value found.
        found: String,
    },
    /// A `__metadata__` value is not a string.
    #[error("\"__metadata__\" key {key:?} must map to a string, found {found}")]
    MetadataValueNotString {
        /// The metadata key.
        key: String,
        /// What was found.
        found: String,
    },
    /// The writer was given two tensors with one name.
    #[error("duplicate tensor name {name:?}")]
    DuplicateTensorName {
        /// The name.
        name: String,
    },
    /// The writer's total data size overflows `usize`.
    #[error("total tensor data size overflows the addressable size")]
    DataTooLarge,
    /// The writer could not encode a string as JSON.
    #[error("could not encode the header as JSON")]
    HeaderEncoding(#[source] serde_json::Error),
}

/// Readable location of a duplicate key, for [`SafetensorsError::DuplicateKey`].
fn describe_path(path: &[String]) -> String {
    match path {
        [] => "at the top level".to_owned(),
        [only] if only == METADATA_KEY => "inside \"__metadata__\"".to_owned(),
        [tensor] => format!("inside the entry of tensor {tensor:?}"),
        _ => {
            let keys: Vec<String> = path.iter().map(|k| format!("{k:?}")).collect();
            format!("inside {}", keys.join(" → "))
        }
    }
}

/// Cuts an untrusted string for an error message.
fn clip(s: &str) -> String {
    if s.len() <= MAX_QUOTED_LEN {
        return s.to_owned();
    }
    let mut end = MAX_QUOTED_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Recognizes other weight formats by their magic bytes, so they are refused by name
/// rather than as a garbled safetensors header. Returns the format's name with its
/// article, e.g. "a GGUF model".
///
/// Read as a safetensors length prefix, the zip, NumPy, GGUF and HDF5 magics all claim a
/// header larger than [`MAX_HEADER_SIZE`], so no valid safetensors file can start with
/// them. Pickle is subtler: its `PROTO` opcode `0x80 0x02..=0x05` is also how a header of
/// 640 + 256·k bytes begins. The file is called pickle only when, in addition,
/// - the third byte is not 0x00: in a pickle it is the opcode after `PROTO`, and no
///   opcode is 0x00, while every header length from 640 to 1408 has it 0x00; and
/// - the first 8 bytes cannot be a safetensors prefix: the file is shorter than 8 bytes,
///   or their length exceeds [`MAX_HEADER_SIZE`] or the rest of the file.
///
/// So every valid safetensors file passes, and a real pickle (an opcode then arguments
/// or a frame length) is caught. The one misreport left is a *truncated* safetensors
/// file whose header is over 64 KiB with its two low length bytes equal to a pickle
/// `PROTO`; it is invalid either way.
///
/// HDF5 is only recognized at offset 0, not behind a user block.
pub fn sniff_foreign_format(bytes: &[u8]) -> Option<&'static str> {
    const MAGICS: [(&[u8], &str); 4] = [
        (
            b"PK\x03\x04",
            "a zip archive (PyTorch >= 1.6 .pt/.pth, Keras .keras, NumPy .npz)",
        ),
        (b"\x93NUMPY", "a NumPy .npy array"),
        (b"GGUF", "a GGUF model"),
        (b"\x89HDF\r\n\x1a\n", "an HDF5 file (Keras .h5)"),
    ];
    if let Some((_, format)) = MAGICS.iter().find(|(magic, _)| bytes.starts_with(magic)) {
        return Some(format);
    }
    match bytes {
        [0x80, 0x02..=0x05, third, ..] if *third != 0 && !plausible_prefix(bytes) => {
            Some("a Python pickle (PyTorch legacy .pt/.bin)")
        }
        _ => None,
    }
}

/// Whether the first 8 bytes could be the length prefix of a safetensors file this long.
fn plausible_prefix(bytes: &[u8]) -> bool {
    let Some(prefix) = bytes.first_chunk::<8>() else {
        return false;
    };
    let n = u64::from_le_bytes(*prefix);
    n <= MAX_HEADER_SIZE as u64
        && usize::try_from(n)
            .ok()
            .and_then(|n| n.checked_add(8))
            .is_some_and(|end| end <= bytes.len())
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
    let data_len = file_len - data_start;

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

    // Zero-length tensors sort before a tensor starting at the same offset, and names break
    // the remaining ties, so the order (and so the first error) is deterministic.
    spans.sort_by(|a, b| (a.begin, a.end, &a.name).cmp(&(b.begin, b.end, &b.name)));
    let mut cursor = 0usize;
    let mut prev: Option<&Span> = None;
    for span in &spans {
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
    Ok(SafetensorsFile {
        bytes,
        header_len,
        tensors,
        metadata,
    })
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
fn validate_name(name: &str) -> Result<(), SafetensorsError> {
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

/// Bytes a tensor of this shape and dtype occupies.
///
/// The product of the non-zero dimensions times the element size must fit in `usize`, even
/// when a zero dimension makes the tensor empty: then every partial product, in any order,
/// fits too, so code downstream that multiplies dimensions cannot overflow.
fn byte_size(name: &str, dtype: Dtype, shape: &[usize]) -> Result<usize, SafetensorsError> {
    let overflow = || SafetensorsError::ShapeOverflow {
        tensor: name.to_owned(),
        shape: shape.to_vec(),
        dtype,
    };
    let nonzero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    Ok(if shape.contains(&0) { 0 } else { nonzero })
}

/// Reads one tensor entry of the header.
fn read_entry(name: String, value: Json<'_>) -> Result<Span, SafetensorsError> {
    validate_name(&name)?;
    let fields = match value {
        Json::Object(fields) => fields,
        other => {
            return Err(SafetensorsError::TensorEntryNotObject {
                tensor: name,
                found: other.describe(),
            });
        }
    };
    let (mut dtype, mut shape, mut offsets) = (None, None, None);
    for (field, value) in fields {
        match field.as_str() {
            "dtype" => dtype = Some(value),
            "shape" => shape = Some(value),
            "data_offsets" => offsets = Some(value),
            _ => {
                return Err(SafetensorsError::UnknownField {
                    tensor: name,
                    field: clip(&field),
                });
            }
        }
    }
    let missing = |field| SafetensorsError::MissingField {
        tensor: name.clone(),
        field,
    };
    let wrong_type = |field, expected, found: &Json<'_>| SafetensorsError::FieldWrongType {
        tensor: name.clone(),
        field,
        expected,
        found: found.describe(),
    };
    let dtype = match dtype.ok_or_else(|| missing("dtype"))? {
        Json::String(s) => Dtype::from_name(&s).ok_or_else(|| SafetensorsError::UnknownDtype {
            tensor: name.clone(),
            dtype: clip(&s),
        })?,
        other => return Err(wrong_type("dtype", "a string", &other)),
    };
    let shape = match shape.ok_or_else(|| missing("shape"))? {
        Json::Array(items) => items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                item.as_usize()
                    .ok_or_else(|| SafetensorsError::InvalidShapeEntry {
                        tensor: name.clone(),
                        index,
                        found: item.describe(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?,
        other => return Err(wrong_type("shape", "an array of integers", &other)),
    };
    let offsets = match offsets.ok_or_else(|| missing("data_offsets"))? {
        Json::Array(items) => items,
        other => {
            return Err(wrong_type(
                "data_offsets",
                "an array of two integers",
                &other,
            ));
        }
    };
    let [begin, end] = offsets.as_slice() else {
        return Err(SafetensorsError::DataOffsetsArity {
            tensor: name,
            count: offsets.len(),
        });
    };
    let offset = |index: usize, item: &Json<'_>| {
        item.as_usize()
            .ok_or_else(|| SafetensorsError::InvalidDataOffset {
                tensor: name.clone(),
                index,
                found: item.describe(),
            })
    };
    let (begin, end) = (offset(0, begin)?, offset(1, end)?);
    if begin > end {
        return Err(SafetensorsError::DataOffsetsReversed {
            tensor: name,
            begin,
            end,
        });
    }
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

/// A tensor as the canonical header describes it.
struct Layout<'t> {
    name: &'t str,
    dtype: Dtype,
    shape: &'t [usize],
    len: usize,
}

/// Serializes a JSON string the way `serde_json` does, so that every writer agrees.
fn json_string(s: &str) -> Result<String, SafetensorsError> {
    serde_json::to_string(s).map_err(SafetensorsError::HeaderEncoding)
}

/// The canonical header for tensors already sorted by name, padded with spaces to a
/// multiple of 8 bytes so the data buffer stays 8-byte aligned.
fn canonical_header(
    layout: &[Layout<'_>],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, SafetensorsError> {
    let mut h = String::from("{");
    if !metadata.is_empty() {
        h.push_str("\"__metadata__\":{");
        for (i, (key, value)) in metadata.iter().enumerate() {
            if i > 0 {
                h.push(',');
            }
            h.push_str(&json_string(key)?);
            h.push(':');
            h.push_str(&json_string(value)?);
        }
        h.push('}');
    }
    let mut offset = 0usize;
    for (i, t) in layout.iter().enumerate() {
        if i > 0 || !metadata.is_empty() {
            h.push(',');
        }
        let end = offset
            .checked_add(t.len)
            .ok_or(SafetensorsError::DataTooLarge)?;
        let shape: Vec<String> = t.shape.iter().map(usize::to_string).collect();
        h.push_str(&json_string(t.name)?);
        h.push_str(":{\"dtype\":\"");
        h.push_str(t.dtype.name());
        h.push_str("\",\"shape\":[");
        h.push_str(&shape.join(","));
        h.push_str("],\"data_offsets\":[");
        h.push_str(&offset.to_string());
        h.push(',');
        h.push_str(&end.to_string());
        h.push_str("]}");
        offset = end;
    }
    h.push('}');
    while !h.len().is_multiple_of(8) {
        h.push(' ');
    }
    if h.len() > MAX_HEADER_SIZE {
        return Err(SafetensorsError::HeaderTooLarge {
            len: h.len() as u64,
        });
    }
    Ok(h.into_bytes())
}

/// Writes tensors and metadata as the one canonical safetensors byte sequence for them.
///
/// Tensors are sorted by name (byte order) whatever their order in `tensors`; the header is
/// compact JSON with `__metadata__` first (left out when `metadata` is empty) and each
/// entry's fields in the order dtype, shape, data_offsets, padded with spaces to a
/// multiple of 8 bytes; the data follows in name order with no gaps. Names must pass the
/// reader's rules and be unique, and each tensor's data must be exactly
/// `product(shape) * dtype.size()` bytes.
pub fn write_canonical(
    tensors: &[OwnedTensor],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, SafetensorsError> {
    let mut sorted: Vec<&OwnedTensor> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut layout = Vec::with_capacity(sorted.len());
    let mut total = 0usize;
    for (i, t) in sorted.iter().enumerate() {
        validate_name(&t.name)?;
        if i > 0 && sorted.get(i - 1).is_some_and(|p| p.name == t.name) {
            return Err(SafetensorsError::DuplicateTensorName {
                name: t.name.clone(),
            });
        }
        let expected = byte_size(&t.name, t.dtype, &t.shape)?;
        if t.data.len() != expected {
            return Err(SafetensorsError::ByteLengthMismatch {
                tensor: t.name.clone(),
                dtype: t.dtype,
                shape: t.shape.clone(),
                expected,
                actual: t.data.len(),
            });
        }
        total = total
            .checked_add(expected)
            .ok_or(SafetensorsError::DataTooLarge)?;
        layout.push(Layout {
            name: &t.name,
            dtype: t.dtype,
            shape: &t.shape,
            len: expected,
        });
    }
    let header = canonical_header(&layout, metadata)?;
    let capacity = total
        .checked_add(header.len())
        .and_then(|n| n.checked_add(8))
        .ok_or(SafetensorsError::DataTooLarge)?;
    let mut out = Vec::with_capacity(capacity);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    for t in sorted {
        out.extend_from_slice(&t.data);
    }
    Ok(out)
}

/// Whether a parsed file is byte for byte what [`write_canonical`] makes of its tensors and
/// metadata.
///
/// Only the header is rebuilt, not the data copied: a canonical header lays the data out in
/// name order with no gaps, and `parse` already checked that the data buffer is exactly
/// that long, so equal headers mean equal files.
pub fn is_canonical(file: &SafetensorsFile<'_>) -> bool {
    is_canonical_len(file, file.bytes.len())
}

/// [`is_canonical`] for a file of `file_len` bytes parsed with [`parse_header`].
pub fn is_canonical_len(file: &SafetensorsFile<'_>, file_len: usize) -> bool {
    let mut layout: Vec<Layout<'_>> = file
        .tensors
        .iter()
        .map(|t| Layout {
            name: &t.name,
            dtype: t.dtype,
            shape: &t.shape,
            len: t.range.len(),
        })
        .collect();
    layout.sort_by(|a, b| a.name.cmp(b.name));
    let Ok(header) = canonical_header(&layout, &file.metadata) else {
        return false;
    };
    let total = layout
        .iter()
        .try_fold(0usize, |acc, t| acc.checked_add(t.len));
    let expected_len = total.and_then(|n| n.checked_add(header.len())?.checked_add(8));
    file.bytes.get(..8) == Some(&(header.len() as u64).to_le_bytes()[..])
        && file.bytes.get(8..file.data_start()) == Some(&header[..])
        && expected_len == Some(file_len)
}

/// A parsed JSON value. Objects keep their keys in file order; numbers keep their text,
/// so that `1.0` or `-0` are never mistaken for the integers a header needs.
#[derive(Debug, PartialEq)]
enum Json<'h> {
    Null,
    Bool(bool),
    Number(&'h str),
    String(String),
    Array(Vec<Json<'h>>),
    Object(Vec<(String, Json<'h>)>),
}

impl Json<'_> {
    /// The value as a `usize`, if it is written as a plain non-negative integer.
    fn as_usize(&self) -> Option<usize> {
        match self {
            Json::Number(text) if text.bytes().all(|b| b.is_ascii_digit()) => text
                .parse::<u64>()
                .ok()
                .and_then(|n| usize::try_from(n).ok()),
            _ => None,
        }
    }

    /// A short description for error messages.
    fn describe(&self) -> String {
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
fn parse_json(text: &str) -> Result<Json<'_>, SafetensorsError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic and dependency-free, enough to vary test inputs.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    fn tensor(name: &str, dtype: Dtype, shape: &[usize], fill: u8) -> OwnedTensor {
        let len = shape.iter().product::<usize>() * dtype.size();
        OwnedTensor {
            name: name.to_owned(),
            dtype,
            shape: shape.to_vec(),
            data: (0..len).map(|i| fill.wrapping_add(i as u8)).collect(),
        }
    }

    fn sample() -> (Vec<OwnedTensor>, BTreeMap<String, String>) {
        let tensors = vec![
            tensor("layer.1.weight", Dtype::F32, &[2, 3], 1),
            tensor("layer.0.bias", Dtype::BF16, &[3], 50),
            tensor("empty", Dtype::I64, &[0, 4], 0),
            tensor("scalar", Dtype::F64, &[], 9),
            tensor("flags", Dtype::Bool, &[5], 0),
        ];
        let metadata = BTreeMap::from([
            ("format".to_owned(), "pt".to_owned()),
            ("note \"q\"\n".to_owned(), "é ✓ \\ \u{1}".to_owned()),
        ]);
        (tensors, metadata)
    }

    fn sorted_by_name(mut tensors: Vec<OwnedTensor>) -> Vec<OwnedTensor> {
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
        tensors
    }

    #[test]
    fn dtype_names_round_trip() {
        for dtype in Dtype::ALL {
            assert_eq!(Dtype::from_name(dtype.name()), Some(dtype));
            assert!([1, 2, 4, 8].contains(&dtype.size()));
        }
        assert_eq!(Dtype::from_name("f32"), None);
        assert_eq!(Dtype::from_name("F8_E4M3"), None);
        assert_eq!(Dtype::BF16.size(), 2);
    }

    #[test]
    fn write_then_parse_round_trips() {
        let (tensors, metadata) = sample();
        let bytes = write_canonical(&tensors, &metadata).expect("write");
        let file = parse(&bytes).expect("parse");
        assert!(file.header_len.is_multiple_of(8));
        assert_eq!(file.data_start(), 8 + file.header_len);
        assert_eq!(file.metadata, metadata);
        let mut back = file.owned_tensors();
        back.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(back, sorted_by_name(tensors.clone()));
        let w = file.tensor("layer.1.weight").expect("tensor present");
        assert_eq!(file.data(w), &tensors[0].data[..]);
        assert_eq!(w.shape, vec![2, 3]);
        assert!(
            file.header_text()
                .starts_with("{\"__metadata__\":{\"format\":\"pt\",")
        );
        assert!(is_canonical(&file));
        // Rewriting a canonical file gives the same bytes.
        let again = write_canonical(&file.owned_tensors(), &file.metadata).expect("rewrite");
        assert_eq!(again, bytes);
    }

    #[test]
    fn canonical_layout_is_exact() {
        let t = vec![
            tensor("b", Dtype::U8, &[2], 7),
            tensor("a", Dtype::F16, &[1], 1),
        ];
        let bytes = write_canonical(&t, &BTreeMap::new()).expect("write");
        let header = r#"{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}"#;
        let mut padded = header.to_owned();
        while !padded.len().is_multiple_of(8) {
            padded.push(' ');
        }
        let mut expected = (padded.len() as u64).to_le_bytes().to_vec();
        expected.extend_from_slice(padded.as_bytes());
        expected.extend_from_slice(&[1, 2, 7, 8]);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn empty_file_is_canonical() {
        let bytes = write_canonical(&[], &BTreeMap::new()).expect("write");
        assert_eq!(bytes, b"\x08\0\0\0\0\0\0\0{}      ");
        let file = parse(&bytes).expect("parse");
        assert!(file.tensors.is_empty() && file.metadata.is_empty());
        assert!(is_canonical(&file));
    }

    #[test]
    fn output_does_not_depend_on_input_order() {
        let (tensors, metadata) = sample();
        let reference = write_canonical(&tensors, &metadata).expect("write");
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20 {
            let mut shuffled = tensors.clone();
            for i in (1..shuffled.len()).rev() {
                shuffled.swap(i, rng.below(i + 1));
            }
            assert_eq!(
                write_canonical(&shuffled, &metadata).expect("write"),
                reference
            );
        }
    }

    /// Writes a valid but non-canonical file: reversed name order, whitespace, fields
    /// shuffled, extra padding, metadata last.
    fn write_loose(tensors: &[OwnedTensor], metadata: &BTreeMap<String, String>) -> Vec<u8> {
        let mut entries = Vec::new();
        let mut data = Vec::new();
        for t in tensors.iter().rev() {
            let begin = data.len();
            data.extend_from_slice(&t.data);
            entries.push(format!(
                "{} : {{ \"shape\": {:?}, \"data_offsets\": [{}, {}], \"dtype\": \"{}\" }}",
                serde_json::to_string(&t.name).expect("encode"),
                t.shape,
                begin,
                data.len(),
                t.dtype.name()
            ));
        }
        if !metadata.is_empty() {
            entries.push(format!(
                "\"__metadata__\": {}",
                serde_json::to_string(metadata).expect("encode")
            ));
        }
        let header = format!("{{ {} }}\n   ", entries.join(",\n "));
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&data);
        out
    }

    fn random_name(rng: &mut Rng) -> String {
        const PIECES: [&str; 12] = [
            "w", "bias", ".", "0", "layer", "é", "✓", "\"", "\\", " ", "/", "𝔘",
        ];
        let n = 1 + rng.below(5);
        (0..n).map(|_| rng.pick(&PIECES)).collect()
    }

    fn random_set(rng: &mut Rng) -> (Vec<OwnedTensor>, BTreeMap<String, String>) {
        let mut tensors: Vec<OwnedTensor> = Vec::new();
        for _ in 0..rng.below(7) {
            let name = random_name(rng);
            if tensors.iter().any(|t| t.name == name) {
                continue;
            }
            let dtype = rng.pick(&Dtype::ALL);
            let shape: Vec<usize> = (0..rng.below(4)).map(|_| rng.below(5)).collect();
            let len = shape.iter().product::<usize>() * dtype.size();
            tensors.push(OwnedTensor {
                name,
                dtype,
                shape,
                data: rng.bytes(len),
            });
        }
        let metadata = (0..rng.below(3))
            .map(|_| (random_name(rng), random_name(rng) + "\n\t\u{7f}"))
            .collect();
        (tensors, metadata)
    }

    #[test]
    fn random_tensor_sets_round_trip() {
        let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
        for case in 0..500 {
            let (tensors, metadata) = random_set(&mut rng);
            let bytes = write_canonical(&tensors, &metadata).expect("write");
            assert_eq!(
                bytes.len() % 8,
                (tensors.iter().map(|t| t.data.len()).sum::<usize>()) % 8
            );
            let file = parse(&bytes).unwrap_or_else(|e| panic!("case {case}: {e}"));
            assert!(is_canonical(&file), "case {case}");
            assert_eq!(file.metadata, metadata, "case {case}");
            let mut back = file.owned_tensors();
            back.sort_by(|a, b| a.name.cmp(&b.name));
            assert_eq!(back, sorted_by_name(tensors.clone()), "case {case}");
            let rewritten = write_canonical(&back, &file.metadata).expect("rewrite");
            assert_eq!(rewritten, bytes, "case {case}");

            // The same content written loosely parses, is not canonical, and rewrites to
            // the canonical bytes.
            let loose = write_loose(&tensors, &metadata);
            let loose_file = parse(&loose).unwrap_or_else(|e| panic!("case {case}: {e}"));
            let rewritten = write_canonical(&loose_file.owned_tensors(), &loose_file.metadata)
                .expect("rewrite loose");
            assert_eq!(rewritten, bytes, "case {case}");
            assert!(
                !is_canonical(&loose_file),
                "case {case}: loose file has whitespace"
            );
        }
    }

    #[test]
    fn writer_rejects_bad_input() {
        let none = BTreeMap::new();
        let dup = [
            tensor("a", Dtype::U8, &[1], 0),
            tensor("a", Dtype::U8, &[1], 0),
        ];
        assert!(matches!(
            write_canonical(&dup, &none),
            Err(SafetensorsError::DuplicateTensorName { name }) if name == "a"
        ));
        for (name, check) in [
            ("", "empty"),
            ("a\0b", "control"),
            ("a\nb", "control"),
            ("__metadata__", "reserved"),
        ] {
            let err = write_canonical(&[tensor(name, Dtype::U8, &[1], 0)], &none)
                .expect_err("invalid name");
            let ok = match check {
                "empty" => matches!(err, SafetensorsError::EmptyTensorName),
                "control" => matches!(err, SafetensorsError::TensorNameControlChar { .. }),
                _ => matches!(err, SafetensorsError::ReservedTensorName),
            };
            assert!(ok, "{name:?}: {err}");
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(matches!(
            write_canonical(&[tensor(&long, Dtype::U8, &[1], 0)], &none),
            Err(SafetensorsError::TensorNameTooLong { len, .. }) if len == MAX_NAME_LEN + 1
        ));
        let exact = "x".repeat(MAX_NAME_LEN);
        assert!(write_canonical(&[tensor(&exact, Dtype::U8, &[1], 0)], &none).is_ok());
        let mut short = tensor("w", Dtype::F32, &[2], 0);
        short.data.pop();
        assert!(matches!(
            write_canonical(&[short], &none),
            Err(SafetensorsError::ByteLengthMismatch {
                expected: 8,
                actual: 7,
                ..
            })
        ));
        let huge = OwnedTensor {
            name: "w".to_owned(),
            dtype: Dtype::F64,
            shape: vec![1 << 61],
            data: Vec::new(),
        };
        assert!(matches!(
            write_canonical(&[huge], &none),
            Err(SafetensorsError::ShapeOverflow { .. })
        ));
    }

    #[test]
    fn byte_size_is_order_independent() {
        let big = 1usize << 40;
        for shape in [[big, big, 0], [0, big, big], [big, 0, big]] {
            assert!(byte_size("t", Dtype::U8, &shape).is_err(), "{shape:?}");
        }
        assert_eq!(byte_size("t", Dtype::F32, &[big, 0]).ok(), Some(0));
        assert_eq!(byte_size("t", Dtype::F32, &[]).ok(), Some(4));
        assert_eq!(byte_size("t", Dtype::F32, &[2, 3]).ok(), Some(24));
    }

    #[test]
    fn foreign_magics_are_never_valid_lengths() {
        for magic in [
            &b"PK\x03\x04"[..],
            b"\x93NUMPY",
            b"GGUF",
            b"\x89HDF\r\n\x1a\n",
        ] {
            let mut prefix = [0u8; 8];
            prefix[..magic.len()].copy_from_slice(magic);
            assert!(
                u64::from_le_bytes(prefix) > MAX_HEADER_SIZE as u64,
                "{magic:?}"
            );
        }
    }

    #[test]
    fn pickle_rule() {
        // Real pickles: protocol 2 (torch legacy magic number as LONG1), protocol 4 frame.
        let torch_legacy = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
        assert!(sniff_foreign_format(torch_legacy).is_some());
        let frame = b"\x80\x04\x95\x1b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.";
        assert!(sniff_foreign_format(frame).is_some());
        assert!(sniff_foreign_format(b"\x80\x02N.").is_some());
        // A float 0.0 pickle has five zero bytes after the opcode, yet claims too much.
        assert!(sniff_foreign_format(b"\x80\x02G\0\0\0\0\0\0\0\0.").is_some());
        // Header lengths 640..=1408 have a zero third byte: never pickle.
        let mut st = vec![0x80, 0x02, 0, 0, 0, 0, 0, 0];
        st.resize(8 + 640, b' ');
        assert_eq!(sniff_foreign_format(&st), None);
        // A plausible prefix wins even with a non-zero third byte.
        let mut big = vec![0x80, 0x02, 0x01, 0, 0, 0, 0, 0];
        big.resize(8 + 0x010280, b' ');
        assert_eq!(sniff_foreign_format(&big), None);
        assert_eq!(sniff_foreign_format(b"\x80\x01abcdefgh"), None);
        assert_eq!(sniff_foreign_format(b"\x80\x06abcdefgh"), None);
    }

    fn json(text: &str) -> Result<Json<'_>, SafetensorsError> {
        parse_json(text)
    }

    #[test]
    fn json_strings_and_escapes() {
        assert_eq!(
            json(r#""a\"\\\/\b\f\n\r\t\u0041\u00e9\ud834\udd1e""#).expect("valid"),
            Json::String("a\"\\/\u{8}\u{c}\n\r\tAé𝄞".to_owned())
        );
        for bad in [
            r#""\ud834""#,
            r#""\udd1e""#,
            r#""\ud834\u0041""#,
            r#""\x""#,
            r#""\u12""#,
            r#""\u12g4""#,
            "\"a\u{1}\"",
            "\"abc",
            r#""\"#,
        ] {
            assert!(
                matches!(json(bad), Err(SafetensorsError::InvalidJson { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn json_numbers_and_literals() {
        for good in ["0", "-0", "12", "1.5", "-1e5", "2E+3", "0.0e-0"] {
            assert_eq!(json(good).expect("valid"), Json::Number(good), "{good}");
        }
        for bad in [
            "01", "1.", ".5", "-", "+1", "1e", "1e+", "0x10", "tru", "nul", "True", "NaN",
        ] {
            assert!(json(bad).is_err(), "{bad}");
        }
        assert_eq!(json(" true\n").expect("valid"), Json::Bool(true));
        assert_eq!(json("null").expect("valid"), Json::Null);
        assert_eq!(
            Json::Number("18446744073709551615").as_usize(),
            Some(usize::MAX)
        );
        assert_eq!(Json::Number("18446744073709551616").as_usize(), None);
        for not_index in ["-0", "1.0", "1e2", "-1"] {
            assert_eq!(Json::Number(not_index).as_usize(), None, "{not_index}");
        }
    }

    #[test]
    fn json_structure() {
        assert_eq!(
            json(r#"{"a":[1,{}],"b":{}}"#).expect("valid"),
            Json::Object(vec![
                (
                    "a".to_owned(),
                    Json::Array(vec![Json::Number("1"), Json::Object(vec![])])
                ),
                ("b".to_owned(), Json::Object(vec![])),
            ])
        );
        for bad in ["{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "{1:2}", "[1 2]", ""] {
            assert!(
                matches!(json(bad), Err(SafetensorsError::InvalidJson { .. })),
                "{bad:?}"
            );
        }
        assert!(matches!(
            json("{} x"),
            Err(SafetensorsError::TrailingGarbage { offset: 3 })
        ));
        let deep = "[".repeat(MAX_JSON_DEPTH + 1) + &"]".repeat(MAX_JSON_DEPTH + 1);
        assert!(matches!(
            json(&deep),
            Err(SafetensorsError::InvalidJson { .. })
        ));
        let ok = "[".repeat(MAX_JSON_DEPTH) + &"]".repeat(MAX_JSON_DEPTH);
        assert!(json(&ok).is_ok());
        let err = json(r#"{"a":{"b":{"c":1,"c":2}}}"#).expect_err("duplicate");
        assert!(
            matches!(&err, SafetensorsError::DuplicateKey { key, path } if key == "c" && path == &["a", "b"]),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            r#"duplicate key "c" in header (inside "a" → "b")"#
        );
    }

    #[test]
    fn error_strings_are_clipped() {
        let long = "é".repeat(1000);
        let clipped = clip(&long);
        assert!(clipped.len() <= MAX_QUOTED_LEN + '…'.len_utf8());
        assert!(clipped.ends_with('…'));
        assert_eq!(clip("short"), "short");
    }
}
