//! Element types, and the byte size of a shape of them.

use std::fmt;

use crate::SafetensorsError;

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

/// Bytes a tensor of this shape and dtype occupies.
///
/// The product of the non-zero dimensions times the element size must fit in `usize`, even
/// when a zero dimension makes the tensor empty: then every partial product, in any order,
/// fits too, so code downstream that multiplies dimensions cannot overflow.
pub(crate) fn byte_size(
    name: &str,
    dtype: Dtype,
    shape: &[usize],
) -> Result<usize, SafetensorsError> {
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
