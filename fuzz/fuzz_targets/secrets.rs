//! Any text through the secrets scanner: keyword prefilter, every rule's regex, notebook and
//! base64 views, suppressors and validators.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let engine = mlsec_scan_secrets::Engine::builtin();
    let opts = mlsec_scan_secrets::Options::default();
    let _ = engine.scan_text("a.env", &text, opts);
    let _ = engine.scan_text("a.ipynb", &text, opts);
});
