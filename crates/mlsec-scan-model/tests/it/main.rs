//! Integration tests for the model scanner: committed fixtures from the real libraries, the
//! public bypasses of Python scanners by mechanism, and hostile input.
#![allow(clippy::unwrap_used)]

mod bypasses;
mod claims;
mod fixtures;
mod hostile;
mod rules;
mod torch_loader;
mod writer;

use mlsec_diagnostics::{Finding, Severity};

/// Findings for an in-memory file.
pub fn scan(data: &[u8], name: &str) -> Vec<Finding> {
    mlsec_scan_model::scan_bytes(data, name)
}

/// Asserts that some finding has `rule` at `severity` or above and mentions `needle`.
#[track_caller]
pub fn assert_caught(findings: &[Finding], rule: &str, severity: Severity, needle: &str) {
    let ok = findings.iter().any(|f| {
        f.rule.id == rule
            && f.severity >= severity
            && (f.message.contains(needle)
                || f.evidence.as_deref().is_some_and(|e| e.contains(needle)))
    });
    assert!(
        ok,
        "expected {rule} >= {severity} mentioning {needle:?}, got:\n{}",
        dump(findings)
    );
}

pub fn dump(findings: &[Finding]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "  {} {} {} | {} | {:?}",
                f.severity, f.rule.id, f.location, f.message, f.evidence
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
