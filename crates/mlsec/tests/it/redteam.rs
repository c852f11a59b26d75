//! `mlsec redteam`: exit codes, the JSON report against its schema, SARIF, HTML, saved
//! examples, and clear errors that name the file or flag.

use super::{assert_valid, code, rule_ids, run, stderr, stdout};

const SCHEMA: &str = include_str!("../../../../docs/redteam-report.schema.json");

#[test]
fn classifier_json_follows_its_schema_and_fails_on_fragility() {
    let dir = tempfile::tempdir().unwrap();
    let ex = dir.path().join("examples");
    let o = run(&[
        "redteam",
        "classifier",
        "fixtures/redteam/digits_mlp.onnx",
        "--data",
        "fixtures/redteam/digits_test.csv",
        "--image",
        "8x8",
        "--attacks",
        "noise,square",
        "--budget",
        "0.1,0.2",
        "--queries",
        "200",
        "--max-samples",
        "60",
        "--format",
        "json",
        "--save-examples",
        ex.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_valid(SCHEMA, &v);
    assert_eq!(v["samples"], 60);
    assert_eq!(
        v["unused"]["limited"], 140,
        "the rows --max-samples left out are said"
    );
    assert!(stderr(&o).contains("140 more left out"), "{}", stderr(&o));
    assert!(rule_ids(&v).contains(&"RTM001"));
    assert!(stderr(&o).contains("clean accuracy"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("adversarial example(s)"),
        "{}",
        stderr(&o)
    );
    for f in ["adversarial.npy", "labels.npy", "adversarial.csv"] {
        assert!(ex.join(f).is_file(), "{f}");
    }
    // Noise alone at a small budget does not break the threshold: exit 0, no finding.
    let o = run(&[
        "redteam",
        "classifier",
        "fixtures/redteam/digits_mlp.onnx",
        "--data",
        "fixtures/redteam/digits_test.csv",
        "--image",
        "8x8",
        "--attacks",
        "noise",
        "--budget",
        "0.05",
        "--format",
        "sarif",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let sarif: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 0);
}

#[test]
fn classifier_text_and_html_name_the_weak_features() {
    let o = run(&[
        "redteam",
        "classifier",
        "fixtures/redteam/credit_forest.onnx",
        "--data",
        "fixtures/redteam/credit_test.csv",
        "--attacks",
        "features",
        "--budget",
        "0.2",
        "--frozen",
        "age",
        "--range",
        "late_payments=0:12",
    ]);
    let out = stdout(&o);
    assert!(
        out.contains("features the decisions hang on: debt_ratio"),
        "{out}"
    );
    assert!(out.contains("weakest samples"), "{out}");
    assert!(
        !out.contains("age "),
        "a frozen feature never changes: {out}"
    );
    let o = run(&[
        "redteam",
        "classifier",
        "fixtures/redteam/digits_mlp.onnx",
        "--data",
        "fixtures/redteam/digits_test.csv",
        "--image",
        "8x8",
        "--attacks",
        "square",
        "--budget",
        "0.2",
        "--queries",
        "100",
        "--max-samples",
        "20",
        "--format",
        "html",
    ]);
    let html = stdout(&o);
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("<svg id=\"accuracy\""));
    assert!(html.contains("class=\"pixels\""), "small images are drawn");
    assert!(!html.contains("<script"));
}

#[test]
fn membership_reports_leakage_and_its_absence() {
    let args = |model: &str| -> Vec<String> {
        [
            "redteam",
            "membership",
            model,
            "--train",
            "fixtures/redteam/member_train.csv",
            "--holdout",
            "fixtures/redteam/member_holdout.csv",
            "--population",
            "fixtures/redteam/member_population.csv",
            "--reference",
            "fixtures/redteam/member_ref_0.onnx",
            "--reference",
            "fixtures/redteam/member_ref_1.onnx",
            "--format",
            "json",
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    };
    let a = args("fixtures/redteam/member_overfit.onnx");
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_valid(SCHEMA, &v);
    assert_eq!(rule_ids(&v), vec!["RTM002"]);
    assert_ne!(v["verdict"], "no_measurable_leak");
    assert!(stderr(&o).contains("leaks which records"), "{}", stderr(&o));
    let a = args("fixtures/redteam/member_regular.onnx");
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    // The references are forests, the target a logistic regression: the audit still runs.
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_valid(SCHEMA, &v);
    assert_eq!(v["verdict"], "no_measurable_leak");
}

#[test]
fn bad_input_is_exit_2_naming_the_file_or_flag() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.onnx");
    fs_err::write(&bad, b"\x08\x07garbage").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "redteam",
                "classifier",
                bad.to_str().unwrap(),
                "--data",
                "fixtures/redteam/credit_test.csv",
            ],
            "bad.onnx",
        ),
        (
            vec![
                "redteam",
                "classifier",
                "fixtures/redteam/credit_forest.onnx",
                "--data",
                "fixtures/redteam/digits_test.csv",
            ],
            "digits_test.csv",
        ),
        (
            vec![
                "redteam",
                "classifier",
                "fixtures/redteam/credit_forest.onnx",
                "--data",
                "fixtures/redteam/credit_test.csv",
                "--attacks",
                "fgsm",
            ],
            "--attacks fgsm",
        ),
        (
            vec![
                "redteam",
                "classifier",
                "fixtures/redteam/credit_forest.onnx",
                "--data",
                "fixtures/redteam/credit_test.csv",
                "--range",
                "amount=5",
            ],
            "--range",
        ),
        (
            vec![
                "redteam",
                "classifier",
                "fixtures/redteam/digits_mlp.onnx",
                "--data",
                "fixtures/redteam/digits_test.csv",
                "--image",
                "9x9",
            ],
            "--image",
        ),
        (
            vec![
                "redteam",
                "membership",
                "fixtures/redteam/member_overfit.onnx",
                "--train",
                "fixtures/redteam/member_train.csv",
                "--holdout",
                "fixtures/redteam/missing.csv",
            ],
            "missing.csv",
        ),
    ];
    for (args, needle) in cases {
        let o = run(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }
}

#[allow(dead_code)]
#[path = "../../../mlsec-probe/tests/it/server.rs"]
mod vulnerable;

/// The scripted vulnerable chat model on a loopback port, for the life of the test process.
fn vulnerable_model() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tx.send(vulnerable::start(0).await).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}

#[test]
fn llm_probes_report_findings_resume_and_compare() {
    let url = vulnerable_model();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("j.jsonl");
    let before = dir.path().join("before.json");
    let args = |families: &str, out: &std::path::Path| -> Vec<String> {
        [
            "redteam",
            "llm",
            "--url",
            &url,
            "--model",
            "any",
            "--families",
            families,
            "--journal",
            journal.to_str().unwrap(),
            "--format",
            "json",
            "-o",
            out.to_str().unwrap(),
        ]
        .iter()
        .map(ToString::to_string)
        .collect()
    };
    let a = args("encoding,tool-forging", &before);
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("9 probes: 5 vulnerable"),
        "{}",
        stderr(&o)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&before).unwrap()).unwrap();
    assert_valid(SCHEMA, &v);
    let mut ids = rule_ids(&v);
    ids.sort_unstable();
    assert_eq!(ids, vec!["RTL001", "RTL006"]);
    // The same run again is answered from the journal: no request is sent.
    let again = dir.path().join("again.json");
    let a = args("encoding,tool-forging", &again);
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(stderr(&o).contains("(0 requests"), "{}", stderr(&o));
    // Compare: identical runs, nothing fixed or regressed.
    let o = run(&[
        "redteam",
        "compare",
        before.to_str().unwrap(),
        again.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let c: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_valid(SCHEMA, &c);
    assert_eq!(c["still_vulnerable"].as_array().unwrap().len(), 5);
    // Text and HTML.
    let o = run(&[
        "redteam",
        "llm",
        "--url",
        &url,
        "--model",
        "any",
        "--families",
        "leakage",
    ]);
    assert!(
        stdout(&o).contains("leakage/credential/0"),
        "{}",
        stdout(&o)
    );
    let text = stdout(&o);
    for (i, _) in text.match_indices("mlsec-test-key-") {
        assert!(
            text[i + 15..].starts_with('…'),
            "the planted key is masked: {text}"
        );
    }
    let o = run(&[
        "redteam",
        "llm",
        "--url",
        &url,
        "--model",
        "any",
        "--families",
        "jailbreak",
        "--format",
        "html",
    ]);
    assert!(stdout(&o).contains("<svg id=\"families\""));
    // Bad input: exit 2 naming the flag or the file.
    let o = run(&["redteam", "llm", "--url", "ftp://x", "--model", "m"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--url ftp://x"), "{}", stderr(&o));
    let o = run(&[
        "redteam",
        "llm",
        "--url",
        &url,
        "--model",
        "m",
        "--families",
        "telepathy",
    ]);
    assert!(
        stderr(&o).contains("--families telepathy"),
        "{}",
        stderr(&o)
    );
    let o = run(&[
        "redteam",
        "compare",
        "fixtures/redteam/expected.json",
        before.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("expected.json"), "{}", stderr(&o));
}
