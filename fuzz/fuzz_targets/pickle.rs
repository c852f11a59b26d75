#![no_main]
//! The opcode reader and the symbolic pickle machine on arbitrary bytes.
use libfuzzer_sys::fuzz_target;
use mlsec_formats::pickle::{Limits, OpReader};

fuzz_target!(|data: &[u8]| {
    let mut r = OpReader::new(&data, 0, Limits::default());
    while let Ok(Some(_)) = r.next_op() {}
    let _ = mlsec_scan_model::pickle::analyze(&data, mlsec_scan_model::pickle::StreamMode::All);
});
