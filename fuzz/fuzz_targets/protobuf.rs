#![no_main]
//! The protobuf walker through the ONNX and SavedModel views.
use libfuzzer_sys::fuzz_target;
use mlsec_formats::protobuf::{onnx, saved_model};

fuzz_target!(|data: &[u8]| {
    let _ = onnx::parse(&data);
    let _ = saved_model::parse(&data);
});
