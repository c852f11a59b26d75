#![no_main]
//! safetensors header parsing and validation.
use libfuzzer_sys::fuzz_target;
use mlsec_formats::safetensors;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = safetensors::parse(&data) {
        let _ = safetensors::validate(&h, data.len() as u64);
    }
});
