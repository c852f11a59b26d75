#![no_main]
//! TensorFlow Lite FlatBuffer: root table, vtables, operator codes, strings.
use libfuzzer_sys::fuzz_target;
use mlsec_formats::tflite;

fuzz_target!(|data: &[u8]| {
    let _ = tflite::parse(&data);
    // With the identifier in place, so the scanner's dispatch is exercised as well.
    if data.len() >= 8 {
        let mut d = data.to_vec();
        d[4..8].copy_from_slice(b"TFL3");
        let _ = mlsec_scan_model::scan_bytes(&d, "model.tflite");
    }
});
