//! `mlsec rules`: the rule catalogue with its documentation.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::bail;
use mlsec_diagnostics::Rule;
use serde_json::json;

use crate::args::{RulesArgs, RulesFormat};

fn all() -> Vec<&'static Rule> {
    let mut all = mlsec_scan_model::rules::ALL.to_vec();
    all.extend(mlsec_scan_code::RULES.iter().copied());
    all.extend(mlsec_scan_deploy::RULES.iter().copied());
    all.extend(mlsec_registry::inventory::RULES.iter().copied());
    all.extend(mlsec_drift::RULES.iter().copied());
    all.extend(mlsec_drift::audit::RULES.iter().copied());
    all.extend(mlsec_redteam::RULES.iter().copied());
    all.extend(mlsec_probe::report::RULES.iter().copied());
    all.extend(
        mlsec_scan_secrets::Engine::builtin()
            .catalogue()
            .iter()
            .copied(),
    );
    all
}

fn doc(rule: &Rule) -> String {
    let mut s = format!(
        "{} {} ({})\n  {}\n\n  What it does\n    {}\n  Why is this bad?\n    {}\n  Example\n    {}\n  Remediation\n    {}\n  Tags: {} {}\n",
        rule.id,
        rule.name,
        rule.severity,
        rule.summary,
        rule.what,
        rule.why,
        rule.example,
        rule.remediation,
        rule.cwe.join(" "),
        rule.owasp
            .iter()
            .map(|o| format!("OWASP-{o}"))
            .collect::<Vec<_>>()
            .join(" "),
    );
    for r in rule.references {
        s.push_str(&format!("  See: {r}\n"));
    }
    s
}

pub fn run(args: &RulesArgs) -> anyhow::Result<ExitCode> {
    let mut rules = all();
    if let Some(id) = &args.id {
        rules.retain(|r| r.id.eq_ignore_ascii_case(id) || r.name == id);
        if rules.is_empty() {
            bail!("no rule with id or name {id:?}; `mlsec rules` lists them");
        }
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match args.format {
        RulesFormat::Json => {
            let v: Vec<_> = rules
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id, "name": r.name, "severity": r.severity.as_str(), "summary": r.summary,
                        "what": r.what, "why": r.why, "example": r.example, "remediation": r.remediation,
                        "cwe": r.cwe, "owasp": r.owasp, "references": r.references,
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &v)?;
            writeln!(out)?;
        }
        RulesFormat::Text => {
            if args.id.is_some() {
                for r in &rules {
                    write!(out, "{}", doc(r))?;
                }
            } else {
                // Columns as wide as their longest entry (secret rule ids are words).
                let id_w = rules.iter().map(|r| r.id.len()).max().unwrap_or(8);
                let name_w = rules.iter().map(|r| r.name.len()).max().unwrap_or(32);
                for r in &rules {
                    writeln!(
                        out,
                        "{:<id_w$} {:<9} {:<name_w$} {}",
                        r.id,
                        r.severity.as_str(),
                        r.name,
                        r.summary
                    )?;
                }
                writeln!(
                    out,
                    "\n{} rules. `mlsec rules ID` shows one in full.",
                    rules.len()
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
