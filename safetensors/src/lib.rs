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

mod dtype;
mod json;
mod reader;
mod sniff;
mod writer;

pub use dtype::Dtype;
pub use reader::{SafetensorsFile, TensorInfo, parse, parse_header};
pub use sniff::sniff_foreign_format;
pub use writer::{
    OwnedTensor, TensorBytes, TensorRef, is_canonical, is_canonical_len, write_canonical,
    write_canonical_refs,
};

/// Largest header accepted, in bytes. Real headers are a few kilobytes; the cap bounds the
/// memory and time an adversarial file can make the reader spend.
pub const MAX_HEADER_SIZE: usize = 16 * 1024 * 1024;

/// Longest tensor name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// Key of the optional metadata object in the header.
pub const METADATA_KEY: &str = "__metadata__";

/// Untrusted strings quoted in error messages are cut to this many bytes, so a message
/// stays readable when a key is megabytes long.
const MAX_QUOTED_LEN: usize = 256;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::dtype::byte_size;
    use crate::json::{Json, MAX_JSON_DEPTH, parse_json};

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

    #[test]
    fn the_header_without_layout_blanks_shapes_and_offsets_and_keeps_the_free_text() {
        let tensors = vec![
            OwnedTensor {
                name: "shape".into(),
                dtype: Dtype::U8,
                shape: vec![3, 1],
                data: vec![1, 2, 3],
            },
            OwnedTensor {
                name: "w9434765919".into(),
                dtype: Dtype::U8,
                shape: vec![12],
                data: vec![0; 12],
            },
        ];
        let metadata = BTreeMap::from([(
            "note".to_owned(),
            "\"shape\":[943,476,5919] data_offsets 9434765919".to_owned(),
        )]);
        let bytes = write_canonical(&tensors, &metadata).expect("write");
        let file = parse(&bytes).expect("parse");
        let raw = file.header_text();
        let masked = file.header_text_without_layout();
        assert_eq!(masked.len(), raw.len());
        let masked = String::from_utf8(masked).expect("utf-8");
        assert!(raw.contains("\"shape\":[3,1]") && raw.contains("\"data_offsets\":[3,15]"));
        assert!(masked.contains("\"shape\":[   ]") && masked.contains("\"data_offsets\":[    ]"));
        // Names and metadata, digits and forged keys included, are kept byte for byte.
        for kept in [
            "\"w9434765919\"",
            "\"shape\":{",
            "[943,476,5919] data_offsets 9434765919",
        ] {
            assert!(masked.contains(kept), "{kept} in {masked}");
        }
    }

    #[test]
    fn borrowed_f32_values_write_the_same_bytes_as_owned_ones() {
        let values: [Vec<f32>; 2] = [
            vec![1.5, -0.0, f32::MIN_POSITIVE, 3.25e-7, -7.0, 1e30],
            vec![0.1; 4],
        ];
        let shapes = [vec![2, 3], vec![4]];
        let names = ["z.weight", "a.bias"];
        let owned: Vec<OwnedTensor> = (0..2)
            .map(|i| OwnedTensor {
                name: names[i].to_owned(),
                dtype: Dtype::F32,
                shape: shapes[i].clone(),
                data: values[i].iter().flat_map(|x| x.to_le_bytes()).collect(),
            })
            .collect();
        let refs: Vec<TensorRef<'_>> = (0..2)
            .map(|i| TensorRef {
                name: names[i],
                dtype: Dtype::F32,
                shape: &shapes[i],
                data: TensorBytes::F32(&values[i]),
            })
            .collect();
        let metadata = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
        assert_eq!(
            write_canonical_refs(&refs, &metadata).expect("refs"),
            write_canonical(&owned, &metadata).expect("owned")
        );
        // F32 values under another dtype, or too few of them, are refused.
        let mut bad = refs.clone();
        bad[0].dtype = Dtype::I32;
        assert!(write_canonical_refs(&bad, &metadata).is_err());
        let short = [TensorRef {
            shape: &[7],
            ..refs[1]
        }];
        assert!(write_canonical_refs(&short, &metadata).is_err());
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
