//! Any bytes as an LLM endpoint's reply (content and a tool call), judged for every probe of
//! the catalogue: the detectors decode base64 and hex runs and read URLs out of hostile text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlsec_probe::detect::{Reply, judge, urls};
use mlsec_probe::probes::{Plants, catalogue};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    let plants = Plants::new(1);
    let reply = Reply {
        status: 200,
        content: text.clone(),
        tool_calls: vec![(text.chars().take(32).collect(), text.clone())],
        error: None,
    };
    for probe in catalogue(&plants) {
        let _ = judge(&probe, &plants, &reply);
    }
    let _ = urls(&text);
});
