//! The strict safetensors reader on arbitrary bytes (a model file is the largest input an
//! attacker with write access to a bundle or a registry controls).
//!
//! Whatever `parse` accepts must
//! - rewrite canonically, and the rewritten file must parse, be canonical, and hold every
//!   tensor unchanged: the same names, dtypes, shapes and bytes, and the same metadata;
//! - be rewritten to its own bytes when it already is canonical, and rewriting the rewrite
//!   must change nothing (one byte sequence per content, which release digests rely on);
//! - read the same through `parse_header` from its header alone, as the streaming
//!   verifier reads it.
#![no_main]

use std::collections::BTreeMap;

use airlock_safetensors::{
    OwnedTensor, SafetensorsFile, is_canonical, is_canonical_len, parse, parse_header,
    write_canonical,
};
use libfuzzer_sys::fuzz_target;

/// Tensors by name, with their bytes.
fn by_name<'f, 'a>(
    file: &'f SafetensorsFile<'a>,
) -> BTreeMap<&'f str, (&'static str, &'f [usize], &'a [u8])> {
    file.tensors
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                (t.dtype.name(), t.shape.as_slice(), file.data(t)),
            )
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = parse(data) else {
        return;
    };
    let tensors: Vec<OwnedTensor> = file.owned_tensors();
    let canonical = write_canonical(&tensors, &file.metadata)
        .expect("an accepted file must rewrite canonically");
    let rewritten = parse(&canonical).expect("canonical bytes must parse");
    assert!(is_canonical(&rewritten), "the rewrite is not canonical");
    assert_eq!(
        by_name(&file),
        by_name(&rewritten),
        "the rewrite changed a tensor's name, dtype, shape or bytes"
    );
    assert_eq!(file.tensors.len(), rewritten.tensors.len());
    assert_eq!(
        file.metadata, rewritten.metadata,
        "the rewrite changed the metadata"
    );
    if is_canonical(&file) {
        assert_eq!(canonical, data, "a canonical file rewrites to other bytes");
    }
    let twice = write_canonical(&rewritten.owned_tensors(), &rewritten.metadata)
        .expect("a canonical file must rewrite");
    assert_eq!(twice, canonical, "rewriting is not a fixed point");

    // The streaming verifier's view: the header and the file's length, without the data.
    let header = &data[..file.data_start()];
    let streamed = parse_header(header, data.len()).expect("the header alone must parse");
    assert_eq!(streamed.header_len, file.header_len);
    assert_eq!(streamed.tensors, file.tensors);
    assert_eq!(streamed.metadata, file.metadata);
    assert_eq!(
        is_canonical_len(&streamed, data.len()),
        is_canonical(&file),
        "the streaming verifier disagrees on canonical form"
    );
});
