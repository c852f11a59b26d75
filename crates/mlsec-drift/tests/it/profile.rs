//! Profiles stand in for the reference; windows over a stream find drift where it starts.

use mlsec_drift::DriftReport;
use mlsec_drift::compare::{Options, SignalKind};
use mlsec_drift::profile::{PROFILE_QUANTILES, Profile};
use mlsec_drift::table::{self, Chunks, DataError, Format};

use crate::cases::csv;

fn drifted(rep: &DriftReport) -> Vec<String> {
    rep.columns
        .iter()
        .filter(|c| c.drift)
        .map(|c| c.name.clone())
        .collect()
}

#[test]
fn a_profile_decides_like_the_data_it_summarises() {
    let dir = tempfile::tempdir().unwrap();
    let reference = table::read(
        csv(50_000, 6, 30, |_, _, _| {}).as_bytes(),
        "ref.csv",
        Format::Csv,
    )
    .unwrap();
    let path = dir.path().join("ref.profile.json");
    let profile = Profile::of(&reference);
    fs_err::write(&path, serde_json::to_vec(&profile).unwrap()).unwrap();
    assert!(fs_err::metadata(&path).unwrap().len() < 400_000, "compact");
    let loaded = table::read_path(&path).unwrap();
    assert_eq!(loaded.format, Format::Profile);

    let unchanged = table::read(
        csv(3_000, 6, 31, |_, _, _| {}).as_bytes(),
        "a.csv",
        Format::Csv,
    )
    .unwrap();
    let shifted = table::read(
        csv(3_000, 6, 32, |rng, _, f| {
            f[2] = format!("{:.5}", rng.normal() * 3.0 + 2.0 + 0.6);
        })
        .as_bytes(),
        "b.csv",
        Format::Csv,
    )
    .unwrap();
    for current in [&unchanged, &shifted] {
        let full = DriftReport::new(&reference, current, &Options::default());
        let summary = DriftReport::new(&loaded, current, &Options::default());
        assert_eq!(drifted(&full), drifted(&summary));
        for (a, b) in full.columns.iter().zip(&summary.columns) {
            let d = |c: &mlsec_drift::compare::ColumnDrift| {
                c.tests.iter().find(|t| t.name == "ks").map(|t| t.statistic)
            };
            if let (Some(x), Some(y)) = (d(a), d(b)) {
                assert!(
                    (x - y).abs() <= 1.0 / PROFILE_QUANTILES as f64 + 1e-9,
                    "{}: {x} vs {y}",
                    a.name
                );
            }
        }
    }
    assert!(drifted(&DriftReport::new(&loaded, &unchanged, &Options::default())).is_empty());
    assert_eq!(
        drifted(&DriftReport::new(&loaded, &shifted, &Options::default())),
        ["x2"]
    );
}

#[test]
fn a_bad_profile_is_refused_with_the_reason() {
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let dir = tempfile::tempdir().unwrap();
    let reference = table::read(&b"a,b\n1,x\n2,y\n3,x\n"[..], "ref.csv", Format::Csv).unwrap();
    let good = serde_json::to_value(Profile::of(&reference)).unwrap();
    let cases: Vec<(&str, Edit)> = vec![
        (
            "missing + numeric + text",
            Box::new(|v| v["rows"] = 99.into()),
        ),
        (
            "sorted",
            Box::new(|v| v["columns"][0]["quantiles"] = serde_json::json!([3.0, 1.0, 2.0])),
        ),
        ("version", Box::new(|v| v["mlsec_drift_profile"] = 7.into())),
        ("unknown field", Box::new(|v| v["extra"] = 1.into())),
        (
            "do not add up",
            Box::new(|v| v["columns"][1]["categories"]["x"] = 5.into()),
        ),
        (
            "too many quantiles",
            Box::new(|v| v["columns"][0]["quantiles"] = serde_json::json!([1.0, 2.0, 3.0, 4.0])),
        ),
    ];
    for (want, edit) in cases {
        let mut v = good.clone();
        edit(&mut v);
        let path = dir.path().join("bad.profile.json");
        fs_err::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
        match table::read_path(&path) {
            Err(e @ DataError::Profile { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("bad.profile.json") && msg.contains(want),
                    "{want}: {msg}"
                );
            }
            other => panic!("{want}: {other:?}"),
        }
    }
}

#[test]
fn windows_over_a_stream_find_where_drift_starts() {
    let reference = table::read(
        csv(5_000, 2, 40, |_, _, _| {}).as_bytes(),
        "ref.csv",
        Format::Csv,
    )
    .unwrap();
    // Three windows of 1,000 rows; missing values appear in the third.
    let stream = csv(3_000, 2, 41, |_, r, f| {
        if r >= 2_000 && r % 3 == 0 {
            f[0] = String::new();
        }
    });
    let mut chunks = Chunks::new(stream.as_bytes(), "stream.csv", Format::Csv).unwrap();
    let mut verdicts = Vec::new();
    while let Some(window) = chunks.next_table(Some(1_000)).unwrap() {
        assert_eq!(window.rows, 1_000);
        let rep = DriftReport::new(&reference, &window, &Options::default());
        let kinds: Vec<SignalKind> = rep
            .columns
            .iter()
            .flat_map(|c| c.signals.iter().map(|s| s.kind))
            .collect();
        verdicts.push(kinds);
    }
    assert_eq!(verdicts.len(), 3);
    assert!(
        verdicts[0].is_empty() && verdicts[1].is_empty(),
        "{verdicts:?}"
    );
    assert_eq!(verdicts[2], [SignalKind::MissingRate]);
}
