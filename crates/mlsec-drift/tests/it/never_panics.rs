//! Any bytes, in any format, read and compared without a panic; every row is accounted for.

use mlsec_drift::DriftReport;
use mlsec_drift::compare::Options;
use mlsec_drift::table::{Format, read};
use proptest::prelude::*;

fn formats() -> impl Strategy<Value = Format> {
    prop_oneof![Just(Format::Csv), Just(Format::Tsv), Just(Format::Jsonl)]
}

/// Text made of the characters that matter to the readers, so the cases reach the parsers.
fn tabular() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            Just(b','),
            Just(b'\t'),
            Just(b'\n'),
            Just(b'"'),
            Just(b'{'),
            Just(b'}'),
            Just(b':'),
            Just(b'1'),
            Just(b'.'),
            Just(b'-'),
            Just(b'e'),
            Just(b'a'),
            Just(b'N'),
            Just(b'A'),
            any::<u8>()
        ],
        0..400,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn reading_and_comparing_never_panics(a in tabular(), b in tabular(), format in formats()) {
        let (Ok(ra), Ok(rb)) = (read(&a[..], "a", format), read(&b[..], "b", format)) else {
            return Ok(());
        };
        for t in [&ra, &rb] {
            for c in &t.columns {
                // Every row of every column is missing, a number or text.
                prop_assert_eq!(c.missing + c.numeric + c.text, t.rows, "column {}", c.name);
            }
        }
        let report = DriftReport::new(&ra, &rb, &Options::default());
        prop_assert_eq!(report.summary.columns, report.columns.len());
        for c in &report.columns {
            for t in &c.tests {
                if let Some(p) = t.p_value {
                    prop_assert!((0.0..=1.0).contains(&p), "{}: p = {}", t.name, p);
                }
            }
        }
        let _ = report.findings();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn auditing_any_table_never_panics(a in tabular(), jsonl in any::<bool>()) {
        let format = if jsonl { Format::Jsonl } else { Format::Csv };
        let Ok(frame) = mlsec_drift::audit::read_frame_from(&a[..], "a", format) else {
            return Ok(());
        };
        for col in &frame.cells {
            prop_assert_eq!(col.len(), frame.rows);
        }
        if let Some(label) = frame.names.first().cloned() {
            let opts = mlsec_drift::audit::AuditOptions::new(&label);
            let report = mlsec_drift::audit::audit(&frame, &opts, Some(&frame)).unwrap();
            let _ = report.findings(&frame);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A profile edited at random either is refused or compares without a panic.
    #[test]
    fn any_profile_edit_is_refused_or_usable(
        rows in 0u64..50, missing in 0u64..50, numeric in 0u64..50, text in 0u64..50,
        q in proptest::collection::vec(-1e6f64..1e6, 0..8), overflow in 0u64..5,
    ) {
        let doc = serde_json::json!({
            "mlsec_drift_profile": 1, "source": "s", "rows": rows,
            "columns": [{"name": "a", "missing": missing, "numeric": numeric, "non_finite": 0,
                         "text": text, "quantiles": q, "categories": {"x": text.saturating_sub(overflow)},
                         "overflow": overflow}]
        });
        let bytes = serde_json::to_vec(&doc).unwrap();
        if let Ok(p) = mlsec_drift::profile::Profile::parse(&bytes, "p.profile.json") {
            let current = read(&b"a\n1\nx\n\n"[..], "c.csv", Format::Csv).unwrap();
            let report = DriftReport::new(&p.to_table(), &current, &Options::default());
            prop_assert_eq!(report.columns.len(), 1);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A real Parquet file with bytes changed and cut anywhere: an error or a table whose rows
    /// are all accounted for, never a panic.
    #[test]
    fn damaged_parquet_never_panics(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/drift/parquet/mixed.snappy.parquet");
        let mut bytes = fs_err::read(path).unwrap();
        for (at, v) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *v;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("damaged.parquet");
        fs_err::write(&p, &bytes).unwrap();
        if let Ok(t) = mlsec_drift::table::read_path(&p) {
            // Every row read is accounted for in every column.
            for c in &t.columns {
                prop_assert_eq!(c.missing + c.numeric + c.text, t.rows, "{}", c.name);
            }
            let _ = DriftReport::new(&t, &t, &Options::default());
        }
        let _ = mlsec_drift::audit::read_frame(&p);
    }
}
