#![no_main]
//! GGUF header, metadata and tensor infos, plus chat-template inspection.
use libfuzzer_sys::fuzz_target;
use mlsec_formats::gguf;

fuzz_target!(|data: &[u8]| {
    if let Ok(g) = gguf::parse(&data) {
        let _ = gguf::validate(&g, data.len() as u64);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = mlsec_scan_model::template::risks(s);
    }
});
