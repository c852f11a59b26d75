#![no_main]
//! The whole scanner: detection, containers, every format, under several file names.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for name in ["m.pkl", "m.pt", "m.h5", "m.onnx", "m.joblib"] {
        let _ = mlsec_scan_model::scan_bytes(data, name);
    }
});
