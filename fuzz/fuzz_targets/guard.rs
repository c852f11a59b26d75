//! Any text through the prompt-injection detector: folding (NFKC, tags, homoglyph skeletons,
//! leetspeak, spaced letters), bounded decoding and every dictionary layer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let d = mlsec_guard::Detector::builtin();
    let v = d.check(&text, mlsec_guard::Source::User);
    assert!((0.0..=1.0).contains(&v.score));
    let _ = d.check(&text, mlsec_guard::Source::Retrieved);
});
