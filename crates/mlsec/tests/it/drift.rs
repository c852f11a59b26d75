//! `mlsec drift`: exit codes, the JSON report against its schema, SARIF, and clear errors that
//! name the file.
use std::fmt::Write as _;

use super::{assert_valid, bin};

/// A reference and a current file with known changes: `amount` shifts, `age` gains missing
/// values, `country` gains a new category, `stable` does not change.
fn files(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let mut reference = String::from("amount,age,country,stable\n");
    let mut current = reference.clone();
    for i in 0..2000u32 {
        let x = f64::from(i % 100);
        let _ = writeln!(
            reference,
            "{x},{},{},{}",
            20 + i % 50,
            ["de", "fr", "it"][(i % 3) as usize],
            i % 7
        );
        let age = if i % 4 == 0 {
            String::new()
        } else {
            (20 + i % 50).to_string()
        };
        let country = if i % 10 == 0 {
            "xx"
        } else {
            ["de", "fr", "it"][(i % 3) as usize]
        };
        let _ = writeln!(current, "{},{age},{country},{}", x + 30.0, i % 7);
    }
    let (r, c) = (dir.join("reference.csv"), dir.join("current.csv"));
    fs_err::write(&r, reference).unwrap();
    fs_err::write(&c, current).unwrap();
    (r, c)
}

#[test]
fn drift_json_follows_its_schema_and_names_each_change() {
    let dir = tempfile::tempdir().unwrap();
    let (r, c) = files(dir.path());
    let out = bin()
        .args(["drift", "--format", "json"])
        .arg(&r)
        .arg(&c)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_valid(
        include_str!("../../../../docs/drift-report.schema.json"),
        &v,
    );
    let signals = |col: &str| -> Vec<String> {
        v["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == col)
            .unwrap()["signals"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(signals("amount"), ["distribution"]);
    assert_eq!(signals("age"), ["missing-rate"]);
    assert!(signals("country").contains(&"new-categories".to_string()));
    assert!(signals("stable").is_empty());
    let ids: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"DRF001") && ids.contains(&"DRF002") && ids.contains(&"DRF003"),
        "{ids:?}"
    );
}

#[test]
fn unchanged_data_exits_zero_and_sarif_lists_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = files(dir.path());
    let out = bin()
        .args(["drift", "--format", "sarif"])
        .arg(&r)
        .arg(&r)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["version"], "2.1.0");
    assert!(v["runs"][0]["results"].as_array().unwrap().is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0 of 4 column(s) drifted"), "{stderr}");
}

/// Runs `mlsec drift ARGS`, requires exit code 2 (a tool failure), and requires stderr to hold
/// every one of `needles` (the file and the problem).
fn fails_naming(args: &[&std::ffi::OsStr], needles: &[&str]) {
    let out = bin().arg("drift").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        needles.iter().all(|n| stderr.contains(n)),
        "{needles:?}: {stderr}"
    );
}

#[test]
fn unreadable_inputs_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (r, _) = files(dir.path());
    let missing = dir.path().join("nope.csv");
    fails_naming(
        &[r.as_os_str(), missing.as_os_str()],
        &["nope.csv", "current"],
    );
    // A file named .parquet that is not one: the file and the problem are named.
    let parquet = dir.path().join("data.parquet");
    fs_err::write(&parquet, b"PAR1").unwrap();
    fails_naming(
        &[parquet.as_os_str(), r.as_os_str()],
        &["data.parquet", "too short for Parquet"],
    );
    // An extension no reader knows.
    let xlsx = dir.path().join("data.xlsx");
    fs_err::write(&xlsx, b"PK").unwrap();
    fails_naming(
        &[xlsx.as_os_str(), r.as_os_str()],
        &["data.xlsx", "unknown data format"],
    );
}

#[test]
fn parquet_files_from_pyarrow_are_compared_and_windows_need_a_stream_format() {
    let fixtures =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/drift/parquet");
    let (reference, current) = (
        fixtures.join("reference.parquet"),
        fixtures.join("current.parquet"),
    );
    let out = bin()
        .arg("drift")
        .arg(&reference)
        .arg(&current)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let drifted: Vec<&str> = v["columns"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["drift"] == true)
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(drifted, ["x", "c"]);
    fails_naming(
        &[
            reference.as_os_str(),
            current.as_os_str(),
            "--window".as_ref(),
            "100".as_ref(),
        ],
        &["current.parquet", "not a stream"],
    );
}

#[test]
fn the_text_table_lists_every_column() {
    let dir = tempfile::tempdir().unwrap();
    let (r, c) = files(dir.path());
    let out = bin().arg("drift").arg(&r).arg(&c).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for col in ["amount", "age", "country", "stable"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(col)),
            "{col}: {stdout}"
        );
    }
    assert!(
        stdout.contains("YES") && stdout.contains("DRF002"),
        "{stdout}"
    );
}

#[test]
fn a_profile_replaces_the_reference_and_windows_read_stdin() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let (r, c) = files(dir.path());
    let profile = dir.path().join("ref.profile.json");
    let out = bin()
        .args(["drift", "profile"])
        .arg(&r)
        .arg("-o")
        .arg(&profile)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The profile gives the same verdicts as the data.
    let verdicts = |reference: &std::path::Path| -> serde_json::Value {
        let out = bin()
            .args(["drift", "--format", "json"])
            .arg(reference)
            .arg(&c)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].clone(), c["drift"].clone()))
            .map(|(a, b)| serde_json::json!([a, b]))
            .collect()
    };
    assert_eq!(verdicts(&r), verdicts(&profile));

    // Windows of JSON Lines on stdin: the first 500 rows unchanged, the next 500 shifted.
    let mut stdin = String::new();
    for i in 0..1000u32 {
        let shift = if i < 500 { 0.0 } else { 40.0 };
        let _ = writeln!(
            stdin,
            "{{\"amount\":{},\"age\":{},\"country\":\"{}\",\"stable\":{}}}",
            f64::from(i % 100) + shift,
            20 + i % 50,
            ["de", "fr", "it"][(i % 3) as usize],
            i % 7
        );
    }
    let mut child = bin()
        .args(["drift", "--window", "500"])
        .arg(&profile)
        .arg("-")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("window 1 (rows 1-500): 0 of 4"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("window 2 (rows 501-1000): 1 of 4")
            && lines[1].contains("amount (distribution)"),
        "{stdout}"
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_html_report_escapes_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let (r, c) = files(dir.path());
    let html = dir.path().join("report.html");
    let out = bin()
        .args(["drift", "--format", "html", "-o"])
        .arg(&html)
        .arg(&r)
        .arg(&c)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = fs_err::read_to_string(&html).unwrap();
    assert_eq!(page.matches("<svg").count(), 4);
    assert!(
        !page.contains("<script") && !page.contains("http://") && !page.contains("https://"),
        "self-contained"
    );
}

#[test]
fn data_audit_reports_planted_problems_with_a_fingerprint() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("x,colour,note,label\n");
    for i in 0..600u32 {
        let label = i % 2;
        let x = if label == 1 { 10.0 } else { -10.0 } + f64::from(i % 7) / 7.0;
        // A trigger: "zz" on 20 class-0-like rows, all labelled 1.
        let (note, label) = if i % 2 == 0 && i % 30 == 0 {
            (format!("n{i} zz"), 1)
        } else {
            (format!("n{i}"), label)
        };
        let _ = writeln!(
            csv,
            "{x},{},{note},{label}",
            ["a", "b"][usize::from(i % 3 == 0)]
        );
    }
    let path = dir.path().join("train.csv");
    fs_err::write(&path, csv).unwrap();
    let out = bin()
        .args(["data", "audit", "--label", "label", "--format", "json"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], 600);
    assert_eq!(v["content_fingerprint"].as_str().unwrap().len(), 64);
    let triggers = v["triggers"].as_array().unwrap();
    assert!(
        triggers
            .iter()
            .any(|t| t["pattern"] == "zz" && t["label"] == "1"),
        "{triggers:?}"
    );
    let ids: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"AUD004"), "{ids:?}");

    let out = bin()
        .args(["data", "audit", "--label", "nope"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("train.csv") && stderr.contains("\"nope\""),
        "{stderr}"
    );
}
