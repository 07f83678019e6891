//! The canonical writer, and the check that a file is what it would write.

use std::collections::BTreeMap;

use crate::dtype::byte_size;
use crate::reader::{SafetensorsFile, validate_name};
use crate::{Dtype, MAX_HEADER_SIZE, SafetensorsError};

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
    let views: Vec<TensorRef<'_>> = tensors
        .iter()
        .map(|t| TensorRef {
            name: &t.name,
            dtype: t.dtype,
            shape: &t.shape,
            data: TensorBytes::Le(&t.data),
        })
        .collect();
    write_canonical_refs(&views, metadata)
}

/// A tensor to write whose values are borrowed, input of [`write_canonical_refs`].
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    /// Tensor name.
    pub name: &'a str,
    /// Element type.
    pub dtype: Dtype,
    /// Dimensions; empty for a scalar.
    pub shape: &'a [usize],
    /// The values.
    pub data: TensorBytes<'a>,
}

/// A [`TensorRef`]'s values.
#[derive(Debug, Clone, Copy)]
pub enum TensorBytes<'a> {
    /// Little-endian element bytes, `product(shape) * dtype.size()` of them.
    Le(&'a [u8]),
    /// `f32` values, written little-endian (the tensor's dtype must be F32).
    F32(&'a [f32]),
}

impl TensorBytes<'_> {
    fn len(&self) -> usize {
        match self {
            Self::Le(b) => b.len(),
            Self::F32(v) => v.len().saturating_mul(4),
        }
    }

    /// Appends the bytes to `out`, whose capacity already holds them.
    fn append_to(&self, out: &mut Vec<u8>) {
        match self {
            Self::Le(b) => out.extend_from_slice(b),
            Self::F32(v) => {
                let start = out.len();
                out.resize(start + v.len() * 4, 0);
                for (chunk, x) in out[start..].chunks_exact_mut(4).zip(v.iter()) {
                    chunk.copy_from_slice(&x.to_le_bytes());
                }
            }
        }
    }
}

/// [`write_canonical`] of borrowed tensors: the file is the only copy made of their values
/// (a released 1 GiB model is written without an intermediate gigabyte of owned bytes).
pub fn write_canonical_refs(
    tensors: &[TensorRef<'_>],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, SafetensorsError> {
    let mut sorted: Vec<&TensorRef<'_>> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(b.name));
    let mut layout = Vec::with_capacity(sorted.len());
    let mut total = 0usize;
    for (i, t) in sorted.iter().enumerate() {
        validate_name(t.name)?;
        if i > 0 && sorted.get(i - 1).is_some_and(|p| p.name == t.name) {
            return Err(SafetensorsError::DuplicateTensorName {
                name: t.name.to_owned(),
            });
        }
        let expected = byte_size(t.name, t.dtype, t.shape)?;
        let f32_mismatch = matches!(t.data, TensorBytes::F32(_)) && t.dtype != Dtype::F32;
        if t.data.len() != expected || f32_mismatch {
            return Err(SafetensorsError::ByteLengthMismatch {
                tensor: t.name.to_owned(),
                dtype: t.dtype,
                shape: t.shape.to_vec(),
                expected,
                actual: t.data.len(),
            });
        }
        total = total
            .checked_add(expected)
            .ok_or(SafetensorsError::DataTooLarge)?;
        layout.push(Layout {
            name: t.name,
            dtype: t.dtype,
            shape: t.shape,
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
        t.data.append_to(&mut out);
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

/// [`is_canonical`] for a file of `file_len` bytes parsed with [`parse_header`](crate::parse_header).
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
