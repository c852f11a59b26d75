//! The JSON report. Its shape is a contract, described by `docs/report.schema.json` and
//! versioned by [`JSON_SCHEMA_VERSION`](super::JSON_SCHEMA_VERSION).

use std::io::{self, Write};

use serde_json::json;

use crate::Report;

use super::{JSON_SCHEMA_VERSION, ToolInfo};

/// Builds the JSON value of a report.
pub fn to_value(report: &Report, tool: ToolInfo) -> serde_json::Value {
    let counts: serde_json::Map<String, serde_json::Value> = report
        .counts()
        .iter()
        .map(|(sev, n)| (sev.as_str().to_owned(), json!(n)))
        .collect();
    json!({
        "schema_version": JSON_SCHEMA_VERSION,
        "tool": { "name": tool.name, "version": tool.version },
        "summary": {
            "files_scanned": report.stats.files_scanned,
            "files_skipped": report.stats.files_skipped,
            "bytes_scanned": report.stats.bytes_scanned,
            "duration_ms": u64::try_from(report.stats.duration.as_millis()).unwrap_or(u64::MAX),
            "findings": counts,
            "errors": report.errors.len(),
        },
        "findings": report.findings,
        "errors": report.errors,
    })
}

/// Writes the report as pretty-printed JSON followed by a newline.
pub fn render(report: &Report, out: &mut dyn Write) -> io::Result<()> {
    render_with(report, ToolInfo::default(), out)
}

pub fn render_with(report: &Report, tool: ToolInfo, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &to_value(report, tool))?;
    out.write_all(b"\n")
}
