//! Anything the strict reader accepts must rewrite canonically and read back.
#![no_main]

use airlock_packager::safetensors::{parse, write_canonical};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = parse(data) {
        let canonical = write_canonical(&file.owned_tensors(), &file.metadata)
            .expect("an accepted file must rewrite canonically");
        parse(&canonical).expect("canonical bytes must parse");
    }
});
