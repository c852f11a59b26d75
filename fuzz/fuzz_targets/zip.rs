#![no_main]
//! The zip reader: central directory, local headers, member inflation, CRC.
use libfuzzer_sys::fuzz_target;
use mlsec_formats::zip;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = zip::Archive::open(&data, zip::Limits::default()) {
        for e in &a.entries {
            if let Ok(m) = zip::member(&data, e, zip::Limits::default()) {
                let _ = zip::crc_matches(m.as_read_at(), e.crc32);
            }
        }
    }
});
