#![no_main]
//! The .npy header and its Python-literal parser.
use libfuzzer_sys::fuzz_target;
use mlsec_formats::npy;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = npy::parse(&data) {
        let _ = h.has_object();
        let _ = h.data_len();
    }
});
