//! SARIF 2.1.0. Every rule of the report's catalogue goes into `tool.driver.rules`; results point
//! at their rule by id and index. Container members and pickle offsets, which SARIF has no
//! physical notion of, go into `logicalLocations` and the result's `properties`.

use std::io::{self, Write};

use serde_json::{Value, json};

use crate::{Report, Rule, Severity};

use super::ToolInfo;

pub const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

fn level(sev: Severity) -> &'static str {
    match sev {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low | Severity::Info => "note",
    }
}

/// GitHub code scanning reads `security-severity` (0.0-10.0) to rank security alerts.
fn security_severity(sev: Severity) -> &'static str {
    match sev {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

fn rule_json(rule: &Rule) -> Value {
    let mut tags: Vec<String> = vec!["security".to_owned()];
    tags.extend(
        rule.cwe
            .iter()
            .map(|c| format!("external/cwe/{}", c.to_ascii_lowercase())),
    );
    tags.extend(rule.owasp.iter().map(|o| format!("owasp-ml-top-10/{o}")));
    let help = format!(
        "## What it does\n{}\n\n## Why is this bad?\n{}\n\n## Example\n{}\n\n## Remediation\n{}",
        rule.what, rule.why, rule.example, rule.remediation
    );
    let mut v = json!({
        "id": rule.id,
        "name": rule.name,
        "shortDescription": { "text": rule.summary },
        "fullDescription": { "text": rule.what },
        "help": { "text": help.clone(), "markdown": help },
        "defaultConfiguration": { "level": level(rule.severity) },
        "properties": {
            "tags": tags,
            "security-severity": security_severity(rule.severity),
            "cwe": rule.cwe,
            "owasp-ml": rule.owasp,
        }
    });
    if let Some(first) = rule.references.first() {
        v["helpUri"] = json!(first);
    }
    v
}

/// A stable fingerprint so code-scanning UIs can track a finding across runs.
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for ch in path.chars() {
        match ch {
            '%' => out.push_str("%25"),
            ' ' => out.push_str("%20"),
            '#' => out.push_str("%23"),
            '?' => out.push_str("%3F"),
            '\\' => out.push('/'),
            c => out.push(c),
        }
    }
    out
}

/// Builds the SARIF log value.
pub fn to_value(report: &Report, tool: ToolInfo) -> Value {
    let mut rules: Vec<&Rule> = report.rules.clone();
    for f in &report.findings {
        if !rules.iter().any(|r| r.id == f.rule.id) {
            rules.push(f.rule);
        }
    }
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let index = rules.iter().position(|r| r.id == f.rule.id).unwrap_or(0);
            let mut text = f.message.clone();
            if let Some(ev) = &f.evidence {
                text.push_str(" Evidence: ");
                text.push_str(ev);
            }
            let mut physical = json!({ "artifactLocation": { "uri": uri(&f.location.path) } });
            // Every result has a region with a startLine (GitHub code scanning needs one): the
            // file line when known, else line 1 with the byte offset where there is one. A
            // notebook's cell and line in the cell go in properties; its column counts in the
            // cell, so it is given only with a file line.
            let mut region = match f.location.line {
                Some(line) if f.location.cell.is_none() => {
                    json!({ "startLine": line, "startColumn": f.location.column.unwrap_or(1) })
                }
                Some(line) => json!({ "startLine": line }),
                None => json!({ "startLine": 1 }),
            };
            if f.location.members.is_empty()
                && let Some(off) = f.location.offset
            {
                region["byteOffset"] = json!(off);
            }
            physical["region"] = region;
            let mut loc = json!({ "physicalLocation": physical });
            if !f.location.members.is_empty() {
                loc["logicalLocations"] = json!([{
                    "fullyQualifiedName": f.location.members.join("/"),
                    "kind": "resource",
                }]);
            }
            let mut props = serde_json::Map::new();
            props.insert("severity".into(), json!(f.severity.as_str()));
            if !f.location.members.is_empty() {
                props.insert("members".into(), json!(f.location.members));
            }
            if let Some(off) = f.location.offset {
                props.insert("offset".into(), json!(off));
            }
            if let Some(op) = &f.location.opcode {
                props.insert("opcode".into(), json!(op));
            }
            if let Some(field) = &f.location.field {
                props.insert("field".into(), json!(field));
            }
            if let Some(cell) = f.location.cell {
                props.insert("cell".into(), json!(cell));
                if let Some(line) = f.location.cell_line {
                    props.insert("cellLine".into(), json!(line));
                }
            }
            if let Some(ev) = &f.evidence {
                props.insert("evidence".into(), json!(ev));
            }
            json!({
                "ruleId": f.rule.id,
                "ruleIndex": index,
                "level": level(f.severity),
                "message": { "text": text },
                "locations": [loc],
                "partialFingerprints": {
                    "mlsecFinding/v1": f.fingerprint(),
                },
                "properties": props,
            })
        })
        .collect();
    let notifications: Vec<Value> = report
        .errors
        .iter()
        .map(|e| {
            json!({
                "level": "error",
                "message": { "text": format!("{}: {}", e.path, e.message) },
                "locations": [{ "physicalLocation": { "artifactLocation": { "uri": uri(&e.path) } } }],
            })
        })
        .collect();
    json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": tool.name,
                    "version": tool.version,
                    "semanticVersion": tool.version,
                    "informationUri": "https://github.com/mlsec/mlsec",
                    "rules": rules.iter().map(|r| rule_json(r)).collect::<Vec<_>>(),
                }
            },
            "invocations": [{
                "executionSuccessful": report.errors.is_empty(),
                "toolExecutionNotifications": notifications,
            }],
            "results": results,
        }]
    })
}

pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    render_with(report, ToolInfo::default(), out)
}

pub fn render_with(report: &Report, tool: ToolInfo, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &to_value(report, tool))?;
    out.write_all(b"\n")
}
