//! Parquet files written by pyarrow and polars (`scripts/drift_parquet_fixtures.py`): every
//! codec and logical type read as the script says, drift on Parquet equal to drift on the same
//! data as CSV, the audit's fingerprint equal across the two formats, and broken files reported
//! by name rather than crashing.

use std::path::{Path, PathBuf};

use mlsec_drift::DriftReport;
use mlsec_drift::audit::{AuditOptions, audit, read_frame};
use mlsec_drift::compare::Options;
use mlsec_drift::table::{DataError, Format, read_path};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/drift/parquet")
}

#[test]
fn every_codec_and_type_reads_as_written() {
    let expected: serde_json::Value =
        serde_json::from_slice(&fs_err::read(fixtures().join("expected.json")).unwrap()).unwrap();
    let rows = expected["rows"].as_u64().unwrap();
    for file in [
        "mixed.snappy.parquet",
        "mixed.zstd.parquet",
        "mixed.gzip.parquet",
        "mixed.lz4.parquet",
        "mixed.none.parquet",
        "mixed.polars.parquet",
    ] {
        let t = read_path(&fixtures().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(t.format, Format::Parquet);
        assert_eq!(t.rows, rows, "{file}");
        assert_eq!(t.problem_count, 0, "{file}: {:?}", t.problems);
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        let want: Vec<&str> = expected["columns"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .filter(|n| file != "mixed.polars.parquet" || *n != "tags")
            .collect();
        assert_eq!(names, want, "{file}");
        for (col, counts) in expected["counts"].as_object().unwrap() {
            let Some(c) = t.column(col) else {
                assert_eq!(col, "tags", "{file}: no column {col}");
                continue;
            };
            let got = [c.missing, c.numeric, c.non_finite, c.text];
            let want: Vec<u64> = counts
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(
                got.to_vec(),
                want,
                "{file}: {col} [missing, numeric, non_finite, text]"
            );
        }
        let dec = t.column("dec").unwrap();
        assert_eq!(dec.values.first().copied(), expected["dec_min"].as_f64());
        assert_eq!(dec.values.last().copied(), expected["dec_max"].as_f64());
        assert_eq!(
            t.column("d").unwrap().values.first().copied(),
            expected["d_min"].as_f64(),
            "{file}: dates are days since the epoch"
        );
        assert_eq!(
            t.column("ts").unwrap().values.first().copied(),
            expected["ts_min"].as_f64(),
            "{file}: timestamps are their stored count"
        );
        assert_eq!(
            t.column("b").unwrap().categories.get("true").copied(),
            Some(rows / 4),
            "{file}: booleans are categories"
        );
    }
}

#[test]
fn drift_on_parquet_equals_drift_on_the_same_data_as_csv() {
    let report = |r: &str, c: &str| {
        DriftReport::new(
            &read_path(&fixtures().join(r)).unwrap(),
            &read_path(&fixtures().join(c)).unwrap(),
            &Options::default(),
        )
    };
    let pq = report("reference.parquet", "current.parquet");
    let csv = report("reference.csv", "current.csv");
    let verdicts = |r: &DriftReport| -> Vec<(String, bool)> {
        r.columns
            .iter()
            .map(|c| (c.name.clone(), c.drift))
            .collect()
    };
    assert_eq!(verdicts(&pq), verdicts(&csv));
    // x shifted by half a standard deviation and c gained a category; y did not change.
    assert_eq!(
        verdicts(&pq),
        [("x".into(), true), ("y".into(), false), ("c".into(), true)]
    );
    for (a, b) in pq.columns.iter().zip(&csv.columns) {
        for (ta, tb) in a.tests.iter().zip(&b.tests) {
            assert_eq!(ta.name, tb.name);
            assert!(
                (ta.statistic - tb.statistic).abs() < 1e-12,
                "{} {}: {} vs {}",
                a.name,
                ta.name,
                ta.statistic,
                tb.statistic
            );
        }
    }
}

#[test]
fn the_audit_reads_parquet_with_the_same_fingerprint_as_csv() {
    let fp = |f: &str| {
        let frame = read_frame(&fixtures().join(f)).unwrap();
        assert_eq!(frame.rows, 2_000);
        let r = audit(&frame, &AuditOptions::new("c"), None).unwrap();
        (r.content_fingerprint, r.file_sha256)
    };
    let (a, sa) = fp("reference.parquet");
    let (b, sb) = fp("reference.csv");
    assert_eq!(a, b, "same rows, other format");
    assert_ne!(sa, sb);
}

#[test]
fn broken_files_are_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = fs_err::read(fixtures().join("mixed.snappy.parquet")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.parquet", Vec::new()),
        ("text.parquet", b"a,b\n1,2\n".to_vec()),
        ("truncated.parquet", good[..good.len() / 2].to_vec()),
        ("no-footer.parquet", good[..good.len() - 8].to_vec()),
        ("huge-footer.parquet", {
            let mut b = good.clone();
            let n = b.len();
            b[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
            b
        }),
    ];
    for (name, bytes) in cases {
        let p = dir.path().join(name);
        fs_err::write(&p, bytes).unwrap();
        let err = read_path(&p).expect_err(name);
        assert!(matches!(err, DataError::Parquet { .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
        assert!(read_frame(&p).is_err(), "{name}");
    }
    // Pages damaged in the middle of the file: an error or rows counted unreadable, never a
    // panic and never a silent short read.
    for at in [good.len() / 3, good.len() / 2, good.len() * 2 / 3] {
        let mut b = good.clone();
        for x in &mut b[at..at + 64] {
            *x ^= 0x5a;
        }
        let p = dir.path().join("damaged.parquet");
        fs_err::write(&p, b).unwrap();
        if let Ok(t) = read_path(&p) {
            assert!(
                t.rows == 200 || t.problem_count > 0,
                "damage at {at}: {} rows, nothing unreadable",
                t.rows
            );
        }
    }
}
