//! The drift reader and comparison on any bytes: CSV, TSV and JSON Lines, then a comparison of
//! the first half against the second (statistics on whatever values came out); and the audit's
//! row reader with every audit check; and Parquet (through a file, as the reader needs one).
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
    // Parquet: the bytes as a file, read for drift and for the audit.
    let path = std::env::temp_dir().join(format!("mlsec-fuzz-{}.parquet", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        if let Ok(t) = mlsec_drift::table::read_path(&path) {
            let _ = mlsec_drift::DriftReport::new(&t, &t, &Options::default());
        }
        let _ = mlsec_drift::audit::read_frame(&path);
    }
    // A profile from untrusted JSON, used as a reference.
    if let Ok(profile) = mlsec_drift::profile::Profile::parse(data, "p") {
        let reference = profile.to_table();
        if let Ok(current) = read(data, "c", Format::Jsonl) {
            let _ = mlsec_drift::DriftReport::new(&reference, &current, &Options::default());
        }
    }
    // The audit's row reader and every check, with the first column as the label.
    for format in [Format::Csv, Format::Jsonl] {
        let Ok(frame) = mlsec_drift::audit::read_frame_from(data, "f", format) else {
            continue;
        };
        if let Some(label) = frame.names.first().cloned() {
            let opts = mlsec_drift::audit::AuditOptions::new(&label);
            if let Ok(report) = mlsec_drift::audit::audit(&frame, &opts, Some(&frame)) {
                let _ = report.findings(&frame);
            }
        }
    }
});
