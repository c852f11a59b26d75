//! Renderers: one module per output format, each a pure function of a [`Report`](crate::Report).

pub mod html;
pub mod json;
pub mod sarif;
pub mod text;

/// Escapes text for HTML element content and quoted attributes (the self-contained HTML
/// reports of drift, data audits and red-team runs). Control characters other than newline
/// and tab become U+FFFD.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Version of the JSON report shape (`docs/report.schema.json`). Bumped on any breaking change.
pub const JSON_SCHEMA_VERSION: &str = "1.1.0";

/// The tool name and version written into JSON and SARIF output.
#[derive(Debug, Clone, Copy)]
pub struct ToolInfo {
    pub name: &'static str,
    pub version: &'static str,
}

impl Default for ToolInfo {
    fn default() -> Self {
        ToolInfo {
            name: "mlsec",
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// Formats a byte count with binary units, e.g. `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
