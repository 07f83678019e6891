//! Other weight formats, recognized by their magic bytes.

use crate::MAX_HEADER_SIZE;

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
