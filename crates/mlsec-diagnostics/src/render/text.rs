//! Human-readable text, coloured when asked to (the caller decides: terminal, `NO_COLOR`).

use std::io::{self, Write};

use crate::{Report, Severity};

use super::human_bytes;

struct Style {
    color: bool,
}

impl Style {
    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }

    fn severity(&self, sev: Severity) -> String {
        let code = match sev {
            Severity::Critical => "1;35",
            Severity::High => "1;31",
            Severity::Medium => "33",
            Severity::Low => "36",
            Severity::Info => "2",
        };
        self.paint(code, &format!("{:<8}", sev.as_str()))
    }
}

/// Writes one block per finding, then per-file errors. The summary line is separate
/// ([`summary`]) because it goes to stderr.
pub fn render(report: &Report, out: &mut dyn Write, color: bool) -> io::Result<()> {
    findings(report, out, color)?;
    errors(report, out, color)
}

/// Writes one block per finding.
pub fn findings(report: &Report, out: &mut dyn Write, color: bool) -> io::Result<()> {
    let st = Style { color };
    for f in &report.findings {
        writeln!(
            out,
            "{} {} {}  {}",
            st.severity(f.severity),
            st.paint("1", f.rule.id),
            f.rule.name,
            f.location
        )?;
        writeln!(out, "    {}", f.message)?;
        if let Some(ev) = &f.evidence {
            writeln!(out, "    {} {ev}", st.paint("2", "evidence:"))?;
        }
        writeln!(out, "    {} {}", st.paint("2", "fix:"), f.rule.remediation)?;
    }
    Ok(())
}

/// Writes one line per error: `error    PATH: REASON` (the binary writes these to stderr
/// whatever the output format).
pub fn errors(report: &Report, out: &mut dyn Write, color: bool) -> io::Result<()> {
    let st = Style { color };
    for e in &report.errors {
        writeln!(
            out,
            "{} {}: {}",
            st.paint("1;31", "error   "),
            e.path,
            e.message
        )?;
    }
    Ok(())
}

/// One line: files, bytes, time and counts, e.g.
/// `scanned 3 files (1.2 MiB) in 0.01s, skipped 1: 1 critical, 0 high, 0 medium, 0 low, 0 info`.
pub fn summary(report: &Report) -> String {
    let s = &report.stats;
    let counts: Vec<String> = report
        .counts()
        .iter()
        .map(|(sev, n)| format!("{n} {sev}"))
        .collect();
    let mut line = format!(
        "scanned {} file{} ({}) in {:.2}s",
        s.files_scanned,
        if s.files_scanned == 1 { "" } else { "s" },
        human_bytes(s.bytes_scanned),
        s.duration.as_secs_f64()
    );
    if s.files_skipped > 0 {
        line.push_str(&format!(", skipped {}", s.files_skipped));
    }
    line.push_str(": ");
    line.push_str(&counts.join(", "));
    if !report.errors.is_empty() {
        line.push_str(&format!(
            ", {} error{}",
            report.errors.len(),
            if report.errors.len() == 1 { "" } else { "s" }
        ));
    }
    line
}
