//! Renderer contracts: snapshots of every format on one report, the JSON report schema, and the
//! official SARIF 2.1.0 schema.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use mlsec_diagnostics::render::{self, ToolInfo};
use mlsec_diagnostics::{FileError, Finding, Location, Report, Rule, Severity, Stats};

static DANGEROUS: Rule = Rule {
    id: "TST001",
    name: "test-dangerous-global",
    summary: "A dangerous global",
    severity: Severity::Critical,
    cwe: &["CWE-502"],
    owasp: &["ML06"],
    what: "Flags dangerous globals.",
    why: "They run code.",
    example: "os.system",
    remediation: "Do not load the file.",
    references: &["https://example.invalid/rule"],
};

static NOTE: Rule = Rule {
    id: "TST002",
    name: "test-note",
    summary: "Something to note",
    severity: Severity::Low,
    cwe: &["CWE-20"],
    owasp: &[],
    what: "Notes things.",
    why: "Because.",
    example: "",
    remediation: "Look at it.",
    references: &[],
};

const TOOL: ToolInfo = ToolInfo {
    name: "mlsec",
    version: "0.0.0-test",
};

fn report() -> Report {
    Report {
        findings: vec![
            Finding::new(
                &DANGEROUS,
                Location::file("models/evil model.pt")
                    .member("archive/data.pkl")
                    .at(57)
                    .opcode("STACK_GLOBAL"),
                "pickle imports posix.system",
            )
            .evidence("posix.system(\"echo hi\")"),
            Finding::new(&NOTE, Location::file("models/plain.pkl").at(3), "a note")
                .severity(Severity::Info),
            Finding::new(
                &NOTE,
                Location::file("models/config.json").field("/auto_map"),
                "a low note",
            ),
        ],
        errors: vec![FileError {
            path: "models/unreadable.bin".into(),
            message: "cannot open: permission denied".into(),
        }],
        stats: Stats {
            files_scanned: 3,
            files_skipped: 1,
            bytes_scanned: 123_456,
            duration: Duration::from_millis(42),
        },
        rules: vec![&DANGEROUS, &NOTE],
    }
}

/// Validates `instance` against a JSON Schema, failing with every violation listed.
#[track_caller]
fn assert_valid(schema_text: &str, instance: &serde_json::Value) -> jsonschema::Validator {
    let schema: serde_json::Value = serde_json::from_str(schema_text).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    validator
}

fn render_to_string(f: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut v = Vec::new();
    f(&mut v).unwrap();
    String::from_utf8(v).unwrap()
}

#[test]
fn text_snapshot() {
    let r = report();
    insta::assert_snapshot!(
        "text",
        render_to_string(|o| render::text::render(&r, o, false))
    );
    insta::assert_snapshot!("summary", render::text::summary(&r));
}

#[test]
fn text_colour_only_when_asked() {
    let r = report();
    assert!(!render_to_string(|o| render::text::render(&r, o, false)).contains('\x1b'));
    assert!(render_to_string(|o| render::text::render(&r, o, true)).contains("\x1b[1;35mcritical"));
}

#[test]
fn json_snapshot_and_schema() {
    let r = report();
    let text = render_to_string(|o| render::json::render_with(&r, TOOL, o));
    insta::assert_snapshot!("json", text);
    let instance: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = assert_valid(
        include_str!("../../../../docs/report.schema.json"),
        &instance,
    );
    // The schema rejects what it should: a finding without a rule id.
    let mut bad = instance.clone();
    bad["findings"][0]
        .as_object_mut()
        .unwrap()
        .remove("rule_id");
    assert!(!validator.is_valid(&bad));
}

#[test]
fn sarif_snapshot_and_official_schema() {
    let r = report();
    let text = render_to_string(|o| render::sarif::render_with(&r, TOOL, o));
    insta::assert_snapshot!("sarif", text);
    let instance: serde_json::Value = serde_json::from_str(&text).unwrap();
    let validator = assert_valid(include_str!("data/sarif-schema-2.1.0.json"), &instance);
    // Rule metadata lives in tool.driver.rules and results point at it.
    let rules = instance["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["id"], "TST001");
    assert_eq!(rules[0]["properties"]["security-severity"], "9.5");
    let results = instance["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    for res in results {
        let idx = usize::try_from(res["ruleIndex"].as_u64().unwrap()).unwrap();
        assert_eq!(rules[idx]["id"], res["ruleId"]);
    }
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "models/evil%20model.pt"
    );
    assert_eq!(
        instance["runs"][0]["invocations"][0]["executionSuccessful"],
        false
    );
    // A broken log must fail the same validator (the check can fail).
    let mut bad = instance.clone();
    bad["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!validator.is_valid(&bad));
}

#[test]
fn empty_report_renders_in_every_format() {
    let r = Report::default();
    assert_eq!(render_to_string(|o| render::text::render(&r, o, false)), "");
    let sarif: serde_json::Value =
        serde_json::from_str(&render_to_string(|o| render::sarif::render(&r, o))).unwrap();
    assert_eq!(sarif["runs"][0]["results"].as_array().unwrap().len(), 0);
    assert_eq!(
        render::text::summary(&r),
        "scanned 0 files (0 B) in 0.00s: 0 critical, 0 high, 0 medium, 0 low, 0 info"
    );
}

#[test]
fn severity_order_and_parse() {
    assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Info);
    for s in Severity::ALL {
        assert_eq!(Severity::parse(s.as_str()), Some(s));
    }
    assert_eq!(Severity::parse("severe"), None);
}

#[test]
fn example_failures_reports_misses_and_false_alarms() {
    static EXAMPLES: &[mlsec_diagnostics::RuleExamples] = &[(&DANGEROUS, &["bad"], &["good"])];
    let hit = |src: &str| {
        if src.contains("bad") || src.contains("good") {
            vec![Finding::new(&DANGEROUS, Location::file("x"), "hit")]
        } else {
            Vec::new()
        }
    };
    let f = mlsec_diagnostics::example_failures(EXAMPLES, hit);
    assert_eq!(f.len(), 1);
    assert!(f[0].contains("false alarm"));
    let f = mlsec_diagnostics::example_failures(EXAMPLES, |_| Vec::new());
    assert_eq!(f.len(), 1);
    assert!(f[0].contains("missed"));
    assert!(
        mlsec_diagnostics::example_failures(EXAMPLES, |s| if s == "bad" {
            hit(s)
        } else {
            Vec::new()
        })
        .is_empty()
    );
}
