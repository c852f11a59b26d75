//! The drift reader and comparison on any bytes: CSV, TSV and JSON Lines, then a comparison of
//! the first half against the second (statistics on whatever values came out).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mlsec_drift::compare::Options;
use mlsec_drift::table::{read, Format};

fuzz_target!(|data: &[u8]| {
    let mid = data.len() / 2;
    for format in [Format::Csv, Format::Tsv, Format::Jsonl] {
        let (Ok(a), Ok(b)) = (read(&data[..mid], "a", format), read(&data[mid..], "b", format)) else {
            continue;
        };
        let report = mlsec_drift::DriftReport::new(&a, &b, &Options::default());
        let _ = report.findings();
        let _ = serde_json::to_vec(&report);
    }
});
