//! What the self-contained HTML reports (drift, data audits, red-team runs) share: the page
//! head with the house style, and the findings list. Every data-derived string is escaped.

use std::fmt::Write as _;

use super::escape_html;
use crate::Report;

/// The house style; a page adds its own rules after it.
pub const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1a202c;background:#fff;max-width:1100px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#4a5568;font-size:13px;margin-bottom:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #e2e8f0;border-radius:6px;padding:10px 14px;min-width:140px}
.card b{display:block;font-size:22px}
.ok{background:#f0fff4;border-color:#9ae6b4}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #edf2f7;vertical-align:top}
th{background:#f7fafc}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
ul.findings{font-size:13px;padding-left:18px}
"#;

/// Opens the page: doctype, title (escaped), [`STYLE`] and `extra_style`, `<body>`.
pub fn page_head(h: &mut String, title: &str, extra_style: &str) {
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}{extra_style}</style></head><body>",
        escape_html(title)
    );
}

/// The findings section: a heading with the count, then one item per finding (rule id, name,
/// severity, message), or a line saying there are none.
pub fn findings_list(h: &mut String, findings: &Report) {
    let _ = write!(h, "<h2>Findings ({})</h2>", findings.findings.len());
    if findings.findings.is_empty() {
        h.push_str("<p class=\"note\">None at the thresholds set.</p>");
        return;
    }
    h.push_str("<ul class=\"findings\" id=\"findings\">");
    for f in &findings.findings {
        let _ = write!(
            h,
            "<li><b>{}</b> {} [{}]: {}</li>",
            f.rule.id,
            f.rule.name,
            f.severity,
            escape_html(&f.message)
        );
    }
    h.push_str("</ul>");
}
