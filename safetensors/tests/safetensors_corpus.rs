//! Malformed safetensors files, one per defect the strict reader refuses, each checked for
//! its error variant and for a message that names the key fact. The files are built here
//! rather than checked in, so each case reads as the defect it holds.

use std::collections::BTreeMap;

use airlock_safetensors::{
    Dtype, MAX_HEADER_SIZE, OwnedTensor, SafetensorsError as E, is_canonical, parse,
    write_canonical,
};

/// A file with this header text (unpadded) and data buffer.
fn file(header: &str, data: &[u8]) -> Vec<u8> {
    raw(header.as_bytes(), data)
}

/// A file with these header bytes, which need not be UTF-8.
fn raw(header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// A file whose 8-byte prefix claims `len` header bytes, followed by `rest`.
fn claims(len: u64, rest: &[u8]) -> Vec<u8> {
    let mut out = len.to_le_bytes().to_vec();
    out.extend_from_slice(rest);
    out
}

/// A one-tensor header with this entry for tensor "w".
fn entry(body: &str) -> String {
    format!(r#"{{"w":{body}}}"#)
}

const W: &str = r#"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#;

/// Asserts that parsing fails with the given variant and that the message contains each
/// fact.
macro_rules! rejects {
    ($bytes:expr, $pat:pat $(if $guard:expr)?, [$($fact:expr),* $(,)?]) => {{
        let bytes: Vec<u8> = $bytes;
        let err = parse(&bytes).expect_err("malformed file must be rejected");
        assert!(matches!(err, $pat $(if $guard)?), "wrong variant: {err:?}");
        let msg = err.to_string();
        assert!(!msg.is_empty());
        $(assert!(msg.contains($fact), "message {msg:?} lacks {:?}", $fact);)*
    }};
}

// 1. Sizes of the prefix and header.

#[test]
fn shorter_than_the_length_prefix() {
    for len in 0..8 {
        rejects!(vec![1; len], E::TooShort { len: l } if l == len, ["shorter than the 8-byte"]);
    }
}

#[test]
fn header_length_over_the_cap() {
    let over = MAX_HEADER_SIZE as u64 + 1;
    rejects!(claims(over, b"{}"), E::HeaderTooLarge { len } if len == over, ["16777217", "maximum"]);
    rejects!(
        claims(u64::MAX, b"{}"),
        E::HeaderTooLarge { .. },
        ["18446744073709551615"]
    );
}

#[test]
fn header_length_past_end_of_file() {
    rejects!(
        claims(100, b"{}      "),
        E::HeaderOutOfBounds {
            header_len: 100,
            file_len: 16
        },
        ["100", "16 bytes"]
    );
    // The largest allowed length on a small file: 8 + N must be checked, not assumed.
    rejects!(
        claims(MAX_HEADER_SIZE as u64, b"{}"),
        E::HeaderOutOfBounds { .. },
        []
    );
}

// 2. Header text.

#[test]
fn header_not_utf8() {
    rejects!(
        raw(b"{\"w\xff\":{}}", &[]),
        E::HeaderNotUtf8 { offset: 3 },
        ["UTF-8", "3"]
    );
}

#[test]
fn header_not_json() {
    rejects!(
        file(r#"{"w":"#, &[]),
        E::InvalidJson { offset: 5, .. },
        ["not valid JSON", "5"]
    );
    rejects!(
        file(r#"{'w':1}"#, &[]),
        E::InvalidJson { .. },
        ["expected a string key"]
    );
    rejects!(file("", &[]), E::InvalidJson { .. }, ["unexpected end"]);
    let deep = "[".repeat(10_000);
    rejects!(file(&deep, &[]), E::InvalidJson { .. }, ["64 levels"]);
}

#[test]
fn header_not_an_object() {
    rejects!(file("[]", &[]), E::HeaderNotObject { .. }, ["an array"]);
    rejects!(
        file(r#""w""#, &[]),
        E::HeaderNotObject { .. },
        ["the string \"w\""]
    );
}

#[test]
fn trailing_garbage_after_header_json() {
    rejects!(
        file("{} x", &[]),
        E::TrailingGarbage { offset: 3 },
        ["offset 3", "padding"]
    );
    rejects!(file("{}\0\0", &[]), E::TrailingGarbage { offset: 2 }, []);
    rejects!(file("{}{}", &[]), E::TrailingGarbage { offset: 2 }, []);
    // Space padding, as writers add, is fine.
    parse(&file("{}      ", &[])).expect("space padding is allowed");
}

// 3. Duplicate keys, which serde_json and the upstream reader resolve silently.

#[test]
fn duplicate_tensor_name() {
    let header = format!(r#"{{"w":{W},"w":{W}}}"#);
    rejects!(
        file(&header, &[0; 8]),
        E::DuplicateKey { ref key, ref path } if key == "w" && path.is_empty(),
        [r#"duplicate key "w" in header"#, "top level"]
    );
}

#[test]
fn duplicate_field_inside_tensor_entry() {
    let header = entry(r#"{"dtype":"F32","shape":[2],"data_offsets":[0,8],"dtype":"I32"}"#);
    rejects!(
        file(&header, &[0; 8]),
        E::DuplicateKey { ref key, .. } if key == "dtype",
        [r#"duplicate key "dtype""#, r#"tensor "w""#]
    );
}

#[test]
fn duplicate_key_inside_metadata() {
    let header = r#"{"__metadata__":{"owner":"a","owner":"b"}}"#;
    rejects!(
        file(header, &[]),
        E::DuplicateKey { ref key, .. } if key == "owner",
        [r#""owner""#, "__metadata__"]
    );
}

#[test]
fn duplicate_key_spelled_with_an_escape() {
    let header = format!(r#"{{"w":{W},"\u0077":{W}}}"#);
    rejects!(file(&header, &[0; 8]), E::DuplicateKey { ref key, .. } if key == "w", []);
}

// 4. Tensor names.

#[test]
fn empty_tensor_name() {
    let header = r#"{"":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    rejects!(file(header, &[0; 8]), E::EmptyTensorName, ["empty"]);
}

#[test]
fn nul_in_tensor_name() {
    let header = format!(r#"{{"w\u0000x":{W}}}"#);
    rejects!(
        file(&header, &[0; 8]),
        E::TensorNameControlChar { ch: '\0', .. },
        [r#""w\0x""#, "control character"]
    );
}

#[test]
fn other_control_characters_in_tensor_names() {
    for (escaped, ch) in [(r"\n", '\n'), (r"\u007f", '\u{7f}'), (r"\u0085", '\u{85}')] {
        let header = format!(r#"{{"w{escaped}":{W}}}"#);
        rejects!(file(&header, &[0; 8]), E::TensorNameControlChar { ch: c, .. } if c == ch, []);
    }
}

#[test]
fn tensor_name_too_long() {
    let name = "n".repeat(1025);
    let header = format!(r#"{{"{name}":{W}}}"#);
    rejects!(
        file(&header, &[0; 8]),
        E::TensorNameTooLong { len: 1025, .. },
        ["1025 bytes", "1024"]
    );
    let name = "n".repeat(1024);
    parse(&file(&format!(r#"{{"{name}":{W}}}"#), &[0; 8])).expect("1024 bytes is allowed");
}

#[test]
fn tensor_named_metadata() {
    let header = format!(r#"{{"__metadata__":{W}}}"#);
    rejects!(
        file(&header, &[0; 8]),
        E::ReservedTensorName,
        ["__metadata__", "reserved"]
    );
}

// 5. Tensor entries.

#[test]
fn tensor_entry_not_an_object() {
    rejects!(
        file(r#"{"w":[0,8]}"#, &[0; 8]),
        E::TensorEntryNotObject { .. },
        [r#"tensor "w""#, "must be an object"]
    );
}

#[test]
fn unknown_dtype() {
    for dtype in ["F8_E4M3", "f32", "FLOAT", ""] {
        let header = entry(&format!(
            r#"{{"dtype":"{dtype}","shape":[2],"data_offsets":[0,8]}}"#
        ));
        rejects!(
            file(&header, &[0; 8]),
            E::UnknownDtype { dtype: ref d, .. } if d == dtype,
            ["unknown dtype", &format!("{dtype:?}")]
        );
    }
}

#[test]
fn dtype_not_a_string() {
    let header = entry(r#"{"dtype":4,"shape":[2],"data_offsets":[0,8]}"#);
    rejects!(
        file(&header, &[0; 8]),
        E::FieldWrongType { field: "dtype", .. },
        [r#"field "dtype" must be a string"#, "the number 4"]
    );
}

#[test]
fn unknown_field_in_tensor_entry() {
    let header = entry(r#"{"dtype":"F32","shape":[2],"data_offsets":[0,8],"grad":"x"}"#);
    rejects!(
        file(&header, &[0; 8]),
        E::UnknownField { ref field, .. } if field == "grad",
        [r#"unknown field "grad""#, r#"tensor "w""#]
    );
}

#[test]
fn missing_fields() {
    for (body, field) in [
        (r#"{"shape":[2],"data_offsets":[0,8]}"#, "dtype"),
        (r#"{"dtype":"F32","data_offsets":[0,8]}"#, "shape"),
        (r#"{"dtype":"F32","shape":[2]}"#, "data_offsets"),
    ] {
        rejects!(
            file(&entry(body), &[0; 8]),
            E::MissingField { field: f, .. } if f == field,
            [&format!("missing field {field:?}")]
        );
    }
}

#[test]
fn shape_entries_not_non_negative_integers() {
    for (shape, shown) in [
        ("[-2]", "-2"),
        ("[2.0]", "2.0"),
        ("[2e0]", "2e0"),
        (r#"["2"]"#, "\"2\""),
        ("[null]", "null"),
        ("[18446744073709551616]", "18446744073709551616"),
    ] {
        let header = entry(&format!(
            r#"{{"dtype":"F32","shape":{shape},"data_offsets":[0,8]}}"#
        ));
        rejects!(
            file(&header, &[0; 8]),
            E::InvalidShapeEntry { index: 0, .. },
            ["shape entry 0", shown, "not a non-negative integer"]
        );
    }
    let header = entry(r#"{"dtype":"F32","shape":2,"data_offsets":[0,8]}"#);
    rejects!(
        file(&header, &[0; 8]),
        E::FieldWrongType { field: "shape", .. },
        ["shape"]
    );
}

#[test]
fn data_offsets_not_two_entries() {
    for (offsets, count) in [("[]", 0), ("[8]", 1), ("[0,4,8]", 3)] {
        let header = entry(&format!(
            r#"{{"dtype":"F32","shape":[2],"data_offsets":{offsets}}}"#
        ));
        rejects!(
            file(&header, &[0; 8]),
            E::DataOffsetsArity { count: c, .. } if c == count,
            ["exactly 2 entries", &format!("found {count}")]
        );
    }
    let header = entry(r#"{"dtype":"F32","shape":[2],"data_offsets":"0-8"}"#);
    rejects!(
        file(&header, &[0; 8]),
        E::FieldWrongType {
            field: "data_offsets",
            ..
        },
        []
    );
}

#[test]
fn data_offsets_not_non_negative_integers() {
    for (offsets, index) in [("[-1,7]", 0), ("[0,8.0]", 1), ("[0,true]", 1)] {
        let header = entry(&format!(
            r#"{{"dtype":"F32","shape":[2],"data_offsets":{offsets}}}"#
        ));
        rejects!(
            file(&header, &[0; 8]),
            E::InvalidDataOffset { index: i, .. } if i == index,
            [&format!("data_offsets entry {index}")]
        );
    }
}

#[test]
fn data_offsets_reversed() {
    let header = entry(r#"{"dtype":"F32","shape":[1],"data_offsets":[8,4]}"#);
    rejects!(
        file(&header, &[0; 8]),
        E::DataOffsetsReversed {
            begin: 8,
            end: 4,
            ..
        },
        [r#"tensor "w": data_offsets [8, 4]"#]
    );
}

// 6. Sizes.

#[test]
fn shape_product_overflows() {
    let header = entry(r#"{"dtype":"U8","shape":[4294967296,4294967296,2],"data_offsets":[0,0]}"#);
    rejects!(
        file(&header, &[]),
        E::ShapeOverflow { .. },
        ["overflows", "4294967296"]
    );
    // The element count fits, but not once multiplied by 8 bytes.
    let header = entry(r#"{"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,0]}"#);
    rejects!(
        file(&header, &[]),
        E::ShapeOverflow {
            dtype: Dtype::F64,
            ..
        },
        ["F64"]
    );
}

#[test]
fn byte_length_does_not_match_shape() {
    let header = entry(r#"{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}"#);
    rejects!(
        file(&header, &[0; 12]),
        E::ByteLengthMismatch {
            expected: 16,
            actual: 12,
            ..
        },
        [r#"tensor "w""#, "12 bytes", "[2, 2] of F32 needs 16"]
    );
}

// 7. Layout of the data buffer.

#[test]
fn first_tensor_not_at_zero() {
    let header = entry(r#"{"dtype":"F32","shape":[2],"data_offsets":[4,12]}"#);
    rejects!(
        file(&header, &[0; 12]),
        E::FirstTensorNotAtZero { begin: 4, .. },
        [r#"tensor "w""#, "offset 4"]
    );
}

#[test]
fn overlapping_tensors() {
    let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                   "b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    rejects!(
        file(header, &[0; 12]),
        E::TensorOverlap {
            prev_end: 8,
            next_begin: 4,
            ..
        },
        [r#"tensor "b""#, r#"tensor "a""#, "overlaps"]
    );
    // Two tensors on the very same bytes.
    let header = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                   "b":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}"#;
    rejects!(file(header, &[0; 8]), E::TensorOverlap { .. }, []);
}

#[test]
fn hole_between_tensors() {
    let header = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                   "b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#;
    rejects!(
        file(header, &[0; 12]),
        E::TensorGap {
            prev_end: 4,
            next_begin: 8,
            ..
        },
        ["4 unused bytes", r#"tensor "a""#, r#"tensor "b""#]
    );
}

#[test]
fn misplaced_zero_length_tensor_is_a_hole() {
    let header = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                   "z":{"dtype":"F32","shape":[0],"data_offsets":[6,6]}}"#;
    rejects!(
        file(header, &[0; 4]),
        E::TensorGap { .. },
        [r#"tensor "z""#]
    );
    // Contiguous zero-length tensors are fine, also at the same offset as another.
    let header = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                   "y":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},
                   "z":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}"#;
    let bytes = file(header, &[0; 4]);
    let parsed = parse(&bytes).expect("zero-length tensors are allowed");
    let names: Vec<&str> = parsed.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["y", "a", "z"], "sorted by data offset");
}

#[test]
fn bytes_after_the_last_tensor() {
    rejects!(
        file(&entry(W), &[0; 10]),
        E::TrailingData {
            data_end: 8,
            buffer_len: 10
        },
        ["2 bytes after the last tensor"]
    );
    rejects!(
        file("{}", &[0]),
        E::TrailingData {
            data_end: 0,
            buffer_len: 1
        },
        []
    );
}

#[test]
fn data_buffer_shorter_than_offsets() {
    rejects!(
        file(&entry(W), &[0; 6]),
        E::DataTruncated {
            end: 8,
            buffer_len: 6,
            ..
        },
        [r#"tensor "w""#, "holds only 6 bytes"]
    );
}

// 8. Metadata.

#[test]
fn metadata_not_an_object() {
    for (value, shown) in [("null", "null"), (r#""x""#, "string"), ("[]", "array")] {
        let header = format!(r#"{{"__metadata__":{value}}}"#);
        rejects!(
            file(&header, &[]),
            E::MetadataNotObject { .. },
            ["__metadata__", shown]
        );
    }
}

#[test]
fn metadata_values_not_strings() {
    for (value, shown) in [
        ("1", "the number 1"),
        ("null", "null"),
        (r#"{"a":"b"}"#, "an object"),
    ] {
        let header = format!(r#"{{"__metadata__":{{"epochs":{value}}}}}"#);
        rejects!(
            file(&header, &[]),
            E::MetadataValueNotString { ref key, .. } if key == "epochs",
            [r#""epochs""#, shown]
        );
    }
}

// 9. Other formats.

#[test]
fn foreign_formats_are_named() {
    // The opening bytes of `torch.save(..., _use_new_zipfile_serialization=False)`:
    // PROTO 2, then the magic number as LONG1.
    let mut torch_legacy = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.".to_vec();
    torch_legacy.extend_from_slice(&[0; 64]);
    // `pickle.dumps({"a": 1}, protocol=4)`: PROTO 4, FRAME, ...
    let pickle4 = b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.".to_vec();
    let pickle5 = b"\x80\x05\x95\x0b\x00\x00\x00\x00\x00\x00\x00}\x94\x8c\x01a\x94K\x01s.".to_vec();
    let zip = b"PK\x03\x04\x14\x00\x00\x00\x00\x00archive/data.pkl".to_vec();
    let npy = b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', }".to_vec();
    let gguf = b"GGUF\x03\x00\x00\x00\x00\x00\x00\x00".to_vec();
    let hdf5 = b"\x89HDF\r\n\x1a\n\x00\x00\x00\x00".to_vec();
    for (bytes, name) in [
        (torch_legacy, "pickle"),
        (pickle4, "pickle"),
        (pickle5, "pickle"),
        (zip, "zip"),
        (npy, "NumPy"),
        (gguf, "GGUF"),
        (hdf5, "HDF5"),
    ] {
        rejects!(
            bytes,
            E::ForeignFormat { format } if format.contains(name),
            [name, "only safetensors is accepted"]
        );
    }
    // Recognized even when shorter than the 8-byte prefix.
    rejects!(b"GGUF".to_vec(), E::ForeignFormat { .. }, []);
}

/// A valid file whose header, padded with spaces, is exactly `len` bytes.
fn with_header_len(len: usize) -> Vec<u8> {
    let mut header = entry(r#"{"dtype":"U8","shape":[3],"data_offsets":[0,3]}"#);
    header.extend(std::iter::repeat_n(' ', len - header.len()));
    file(&header, b"abc")
}

#[test]
fn safetensors_that_starts_like_a_pickle_is_accepted() {
    // 640 = 0x280 and 0x480: the prefix begins 0x80 0x02 / 0x80 0x04, pickle's PROTO.
    for len in [0x280, 0x380, 0x480, 0x580, 0x01_0280, 0xff_0580] {
        let bytes = with_header_len(len);
        assert_eq!(bytes[0], 0x80);
        let parsed = parse(&bytes).unwrap_or_else(|e| panic!("header length {len:#x}: {e}"));
        assert_eq!(parsed.header_len, len);
        assert_eq!(parsed.data(&parsed.tensors[0]), b"abc");
    }
}

#[test]
fn truncated_safetensors_that_starts_like_a_pickle_is_not_called_pickle() {
    let mut bytes = with_header_len(0x480);
    bytes.truncate(100);
    rejects!(
        bytes,
        E::HeaderOutOfBounds {
            header_len: 0x480,
            ..
        },
        []
    );
}

// What the upstream `safetensors` crate accepts and this reader does not.

#[test]
fn upstream_accepted_cases_are_rejected() {
    // Upstream keeps the last duplicate, so two readers could see different tensors.
    let dup = format!(r#"{{"w":{W},"w":{{"dtype":"I32","shape":[2],"data_offsets":[0,8]}}}}"#);
    assert!(matches!(
        parse(&file(&dup, &[0; 8])),
        Err(E::DuplicateKey { .. })
    ));
    // Upstream allows NUL (and any other character) in names.
    let nul = format!(r#"{{"w\u0000":{W}}}"#);
    assert!(matches!(
        parse(&file(&nul, &[0; 8])),
        Err(E::TensorNameControlChar { .. })
    ));
    // Upstream treats a null `__metadata__` as absent.
    assert!(matches!(
        parse(&file(r#"{"__metadata__":null}"#, &[])),
        Err(E::MetadataNotObject { .. })
    ));
    // Upstream ignores unknown fields in an entry.
    let extra = entry(r#"{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}"#);
    assert!(matches!(
        parse(&file(&extra, &[0; 8])),
        Err(E::UnknownField { .. })
    ));
}

#[test]
fn messages_never_quote_tensor_data() {
    // Data that looks like text must not leak into a message.
    let secret = b"SECRET-1234-5678";
    let header = entry(r#"{"dtype":"U8","shape":[8],"data_offsets":[0,8]}"#);
    let cases = [
        file(&header, secret),
        file(
            &entry(r#"{"dtype":"U8","shape":[8],"data_offsets":[0,16]}"#),
            secret,
        ),
        file(
            &entry(r#"{"dtype":"U8","shape":[32],"data_offsets":[0,32]}"#),
            secret,
        ),
    ];
    for bytes in cases {
        let msg = parse(&bytes).expect_err("malformed").to_string();
        assert!(!msg.contains("SECRET"), "{msg}");
    }
}

// No panics, whatever the input.

fn valid_sample() -> Vec<u8> {
    let tensors = vec![
        OwnedTensor {
            name: "dense.weight".to_owned(),
            dtype: Dtype::F32,
            shape: vec![2, 3],
            data: (0..24).collect(),
        },
        OwnedTensor {
            name: "dense.bias".to_owned(),
            dtype: Dtype::F16,
            shape: vec![3],
            data: vec![1; 6],
        },
        OwnedTensor {
            name: "empty".to_owned(),
            dtype: Dtype::U8,
            shape: vec![0],
            data: Vec::new(),
        },
        OwnedTensor {
            name: "step".to_owned(),
            dtype: Dtype::I64,
            shape: vec![],
            data: vec![7, 0, 0, 0, 0, 0, 0, 0],
        },
    ];
    let metadata = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
    let bytes = write_canonical(&tensors, &metadata).expect("write sample");
    assert!(bytes.len() > 200, "the bit-flip test needs 200 bytes");
    bytes
}

/// What the fuzz target checks: anything accepted can be rewritten canonically and read
/// back.
fn parse_and_rewrite(bytes: &[u8]) -> bool {
    let Ok(parsed) = parse(bytes) else {
        return false;
    };
    let rewritten =
        write_canonical(&parsed.owned_tensors(), &parsed.metadata).expect("rewrite accepted file");
    let reparsed = parse(&rewritten).expect("canonical bytes parse");
    assert!(is_canonical(&reparsed));
    true
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = valid_sample();
    for len in 0..bytes.len() {
        assert!(
            !parse_and_rewrite(&bytes[..len]),
            "truncated to {len} bytes"
        );
    }
    assert!(parse_and_rewrite(&bytes));
}

#[test]
fn bit_flips_never_panic() {
    let bytes = valid_sample();
    let mut accepted = 0;
    for i in 0..200 {
        for bit in 0..8 {
            let mut flipped = bytes.clone();
            flipped[i] ^= 1 << bit;
            if parse_and_rewrite(&flipped) {
                accepted += 1;
            }
        }
    }
    // Some flips (inside names or metadata strings) still make a valid file.
    assert!(accepted > 0);
}
