//! The self-contained HTML report: a summary, the findings, the drift table and one overlay plot
//! per column, as inline SVG. No script, no external resource; every data-derived string
//! (column names, categories, paths, messages) is escaped.

use std::fmt::Write as _;

use mlsec_diagnostics::Report;

use crate::DriftReport;
use crate::compare::{ColumnDrift, Kind};

/// The reference series' colour in plots and legends.
pub const REFERENCE_COLOUR: &str = "#2b6cb0";
/// The current series' colour.
pub const CURRENT_COLOUR: &str = "#dd6b20";
/// Bars shown per plot; wider histograms are cut (the JSON has all bins).
const MAX_BARS: usize = 40;

pub use mlsec_diagnostics::render::escape_html as escape;
use mlsec_diagnostics::render::html::{findings_list, page_head};

const STYLE: &str = "
.drift{background:#fff5f5;border-color:#feb2b2}
.yes{color:#c53030;font-weight:600}.no{color:#2f855a}
.col{border:1px solid #e2e8f0;border-radius:6px;padding:10px 14px;margin:12px 0}
.col h3{font-size:15px;margin:0 0 4px;word-break:break-all}
.sig{font-size:13px;color:#c53030;margin:2px 0}
.note{font-size:13px;color:#4a5568;margin:2px 0}
";

/// The whole page.
pub fn render(report: &DriftReport, findings: &Report) -> String {
    let mut h = String::with_capacity(64 * 1024);
    let s = &report.summary;
    page_head(
        &mut h,
        &format!("mlsec drift: {}", &report.current.path),
        STYLE,
    );
    let _ = write!(
        h,
        "<h1>Data drift</h1><div class=\"sub\">reference <code>{}</code> ({} rows) &middot; current <code>{}</code> ({} rows)</div>",
        escape(&report.reference.path),
        report.reference.rows,
        escape(&report.current.path),
        report.current.rows
    );
    let verdict = if s.dataset_drift { "drift" } else { "ok" };
    let _ = write!(
        h,
        "<div class=\"cards\"><div class=\"card {verdict}\" id=\"verdict\"><b>{}</b>dataset drift</div>\
         <div class=\"card\"><b>{} / {}</b>columns drifted</div>\
         <div class=\"card\"><b>{:.0}%</b>share (threshold {:.0}%)</div>\
         <div class=\"card\"><b>{:.1e}</b>p-value bound per column</div></div>",
        if s.dataset_drift { "yes" } else { "no" },
        s.drifted,
        s.columns,
        s.share * 100.0,
        report.options.dataset_share * 100.0,
        s.alpha_per_column
    );
    findings_list(&mut h, findings);
    h.push_str("<h2>Columns</h2><table id=\"drift-table\"><tr><th>column</th><th>kind</th><th>drift</th><th>test</th><th>p-value</th><th>effect</th></tr>");
    for c in &report.columns {
        let (test, p) = headline(c);
        let _ = write!(
            h,
            "<tr><td><a href=\"#c-{}\">{}</a></td><td>{}</td><td class=\"{}\">{}</td><td>{test}</td><td>{p}</td><td>{}</td></tr>",
            anchor(&c.name),
            escape(&c.name),
            kind(c.kind),
            if c.drift { "yes" } else { "no" },
            if c.drift { "drift" } else { "no" },
            escape(&effects(c))
        );
    }
    h.push_str("</table>");
    for c in &report.columns {
        column(&mut h, c);
    }
    h.push_str("<p class=\"note\">Made by mlsec drift. Bars are shares of each dataset's values per bin (numeric: reference deciles).</p></body></html>\n");
    h
}

/// The audit report as one self-contained page: summary cards, findings, and a table per check.
pub fn render_audit(report: &crate::audit::AuditReport, findings: &Report) -> String {
    let mut h = String::with_capacity(32 * 1024);
    page_head(
        &mut h,
        &format!("mlsec data audit: {}", &report.dataset),
        STYLE,
    );
    let _ = write!(
        h,
        "<h1>Data audit</h1><div class=\"sub\"><code>{}</code> &middot; {} rows &middot; {} columns &middot; label <code>{}</code></div>",
        escape(&report.dataset),
        report.rows,
        report.columns,
        escape(&report.label)
    );
    let verdict = if report.triggers.is_empty() && report.label_suspects.is_empty() {
        "ok"
    } else {
        "drift"
    };
    let _ = write!(
        h,
        "<div class=\"cards\"><div class=\"card {verdict}\"><b>{}</b>label-flip suspects</div>\
         <div class=\"card {verdict}\"><b>{}</b>trigger candidates</div>\
         <div class=\"card\"><b>{}</b>duplicate rows</div>\
         <div class=\"card\"><b>{}</b>conflicting groups</div></div>",
        report.label_suspects.len(),
        report.triggers.len(),
        report.duplicates.exact_rows + report.duplicates.near_rows,
        report.duplicates.conflicting_groups
    );
    let _ = write!(
        h,
        "<div class=\"note\">file sha256 <code>{}</code><br>content fingerprint <code>{}</code></div>",
        report.file_sha256, report.content_fingerprint
    );
    findings_list(&mut h, findings);
    h.push_str("<h2>Labels</h2><table><tr><th>label</th><th>rows</th></tr>");
    for (l, n) in &report.label_counts {
        let _ = write!(h, "<tr><td>{}</td><td>{n}</td></tr>", escape(l));
    }
    h.push_str("</table>");
    if !report.triggers.is_empty() {
        h.push_str("<h2>Trigger candidates</h2><table id=\"triggers\"><tr><th>column</th><th>kind</th><th>pattern</th><th>rows</th><th>label</th><th>purity</th><th>base rate</th><th>p-value</th></tr>");
        for t in &report.triggers {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{:.0}%</td><td>{:.0}%</td><td>{:.1e}</td></tr>",
                escape(&t.column),
                t.kind,
                escape(&t.pattern),
                t.rows,
                escape(&t.label),
                t.purity * 100.0,
                t.base_rate * 100.0,
                t.p_value
            );
        }
        h.push_str("</table>");
    }
    if !report.label_suspects.is_empty() {
        h.push_str("<h2>Label-flip suspects</h2><table id=\"suspects\"><tr><th>row</th><th>given</th><th>suggested</th><th>score</th><th>methods</th></tr>");
        for s in report.label_suspects.iter().take(200) {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td></tr>",
                s.row,
                escape(&s.given),
                escape(&s.suggested),
                s.score,
                s.methods.join(" + ")
            );
        }
        h.push_str("</table>");
        if report.label_suspects.len() > 200 {
            let _ = write!(
                h,
                "<p class=\"note\">{} more in the JSON report.</p>",
                report.label_suspects.len() - 200
            );
        }
    }
    for n in &report.notes {
        let _ = write!(h, "<p class=\"note\">{}</p>", escape(n));
    }
    h.push_str("<p class=\"note\">Made by mlsec data audit.</p></body></html>\n");
    h
}

fn kind(k: Kind) -> &'static str {
    match k {
        Kind::Numeric => "numeric",
        Kind::Categorical => "categorical",
        Kind::Empty => "-",
    }
}

/// A stable, safe id for a column's section.
fn anchor(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn headline(c: &ColumnDrift) -> (String, String) {
    match c.tests.iter().find(|t| t.name == "ks" || t.name == "chi2") {
        Some(t) => (
            format!("{} {:.4}", t.name, t.statistic),
            t.p_value.map_or_else(String::new, |p| format!("{p:.2e}")),
        ),
        None => ("-".to_string(), String::new()),
    }
}

fn effects(c: &ColumnDrift) -> String {
    c.tests
        .iter()
        .filter(|t| matches!(t.name, "wasserstein_norm" | "psi" | "jensen_shannon"))
        .map(|t| format!("{} {:.3}", t.name, t.statistic))
        .collect::<Vec<_>>()
        .join(", ")
}

fn column(h: &mut String, c: &ColumnDrift) {
    let _ = write!(
        h,
        "<div class=\"col\" id=\"c-{}\"><h3>{} <span class=\"{}\">{}</span></h3>",
        anchor(&c.name),
        escape(&c.name),
        if c.drift { "yes" } else { "no" },
        if c.drift { "drift" } else { "no drift" }
    );
    for s in &c.signals {
        let class = if s.kind == crate::compare::SignalKind::NotTested {
            "note"
        } else {
            "sig"
        };
        let _ = write!(h, "<div class=\"{class}\">{}</div>", escape(&s.message));
    }
    if let (Some(r), Some(cur)) = (&c.reference, &c.current) {
        let _ = write!(
            h,
            "<div class=\"note\">missing: {:.1}% &rarr; {:.1}%",
            r.missing_rate * 100.0,
            cur.missing_rate * 100.0
        );
        if let (Some(rm), Some(cm)) = (r.mean, cur.mean) {
            let _ = write!(h, " &middot; mean: {} &rarr; {}", num(rm), num(cm));
        }
        h.push_str("</div>");
    }
    if !c.histogram.reference.is_empty() {
        plot(h, c);
    }
    h.push_str("</div>");
}

fn num(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) {
        format!("{v:.3e}")
    } else {
        format!("{v:.4}")
    }
}

/// Grouped bars: reference and current share per bin, with bin labels under each group.
fn plot(h: &mut String, c: &ColumnDrift) {
    let hist = &c.histogram;
    let shares = |v: &[f64]| -> Vec<f64> {
        let total: f64 = v.iter().sum();
        v.iter()
            .map(|x| if total > 0.0 { x / total } else { 0.0 })
            .collect()
    };
    let (rs, cs) = (shares(&hist.reference), shares(&hist.current));
    let n = rs.len().min(MAX_BARS);
    let labels: Vec<String> = if hist.labels.is_empty() {
        (0..n)
            .map(|i| match hist.edges.get(i) {
                Some(e) => format!("\u{2264}{}", short(*e)),
                None => format!(
                    ">{}",
                    hist.edges.last().map_or_else(String::new, |e| short(*e))
                ),
            })
            .collect()
    } else {
        hist.labels
            .iter()
            .take(n)
            .map(|l| l.chars().take(12).collect())
            .collect()
    };
    let max = rs
        .iter()
        .chain(&cs)
        .fold(0.0f64, |a, b| a.max(*b))
        .max(1e-9);
    let (w, ht, left, bottom, top) = (760.0, 200.0, 40.0, 36.0, 10.0);
    let plot_h = ht - bottom - top;
    let group = (w - left - 10.0) / n.max(1) as f64;
    let bar = (group * 0.38).max(1.0);
    let _ = write!(
        h,
        "<svg class=\"plot\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\" aria-label=\"{}: reference and current distribution\">",
        escape(&c.name)
    );
    let _ = write!(
        h,
        "<line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#a0aec0\"/>",
        top + plot_h,
        w - 10.0,
        top + plot_h
    );
    let _ = write!(
        h,
        "<text x=\"4\" y=\"{}\" font-size=\"10\" fill=\"#4a5568\">{:.0}%</text>",
        top + 8.0,
        max * 100.0
    );
    for i in 0..n {
        let x = left + i as f64 * group + group * 0.1;
        for (k, (v, colour)) in [(rs[i], REFERENCE_COLOUR), (cs[i], CURRENT_COLOUR)]
            .into_iter()
            .enumerate()
        {
            let bh = v / max * plot_h;
            let _ = write!(
                h,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"{colour}\"><title>{:.1}%</title></rect>",
                x + k as f64 * bar,
                top + plot_h - bh,
                v * 100.0
            );
        }
        let _ = write!(
            h,
            "<text x=\"{:.1}\" y=\"{}\" font-size=\"9\" fill=\"#4a5568\" text-anchor=\"middle\">{}</text>",
            x + bar,
            ht - bottom + 14.0,
            escape(&labels[i])
        );
    }
    let _ = write!(
        h,
        "<text x=\"{left}\" y=\"{}\" font-size=\"11\" fill=\"{REFERENCE_COLOUR}\">&#9632; reference</text><text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"{CURRENT_COLOUR}\">&#9632; current</text></svg>",
        ht - 4.0,
        left + 90.0,
        ht - 4.0
    );
}

fn short(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e4 || v.abs() < 1e-2) {
        format!("{v:.1e}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Options;
    use crate::table::{Format, read};

    #[test]
    fn data_derived_text_is_escaped() {
        let evil = "<script>alert(1)</script>";
        let data = format!("\"{evil}\",c\n1,\"<img src=x onerror=alert(2)>\"\n2,b\n");
        let a = read(data.as_bytes(), "a<b>.csv", Format::Csv).unwrap();
        let b = read(data.as_bytes(), "b.csv", Format::Csv).unwrap();
        let report = DriftReport::new(&a, &b, &Options::default());
        let html = render(&report, &report.findings());
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("a&lt;b&gt;.csv"));
    }

    #[test]
    fn the_audit_page_escapes_patterns_and_labels() {
        let dir = std::env::temp_dir().join(format!("mlsec-audit-html-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("t.csv");
        let mut csv = String::from("x,note,label\n");
        for i in 0..400 {
            let label = if i % 2 == 0 { "<b>a</b>" } else { "b" };
            let note = if i % 2 == 1 && i % 20 == 1 {
                "w <script>"
            } else {
                "w x"
            };
            let label = if note.contains("script") {
                "<b>a</b>"
            } else {
                label
            };
            csv.push_str(&format!(
                "{},{note},{label}\n",
                if i % 2 == 0 { -5 } else { 5 }
            ));
        }
        std::fs::write(&path, csv).unwrap();
        let frame = crate::audit::read_frame(&path).unwrap();
        let report =
            crate::audit::audit(&frame, &crate::audit::AuditOptions::new("label"), None).unwrap();
        let html = render_audit(&report, &report.findings(&frame));
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            !html.contains("<script") && !html.contains("<b>a</b>"),
            "{html}"
        );
        assert!(html.contains("&lt;b&gt;a&lt;/b&gt;"));
    }

    #[test]
    fn every_column_with_values_gets_a_plot() {
        let data = "x,c,e\n1,a,\n2,b,\n3,a,\n";
        let a = read(data.as_bytes(), "a.csv", Format::Csv).unwrap();
        let report = DriftReport::new(&a, &a, &Options::default());
        let html = render(&report, &report.findings());
        assert_eq!(html.matches("<svg").count(), 2, "x and c, not the empty e");
        assert!(html.starts_with("<!doctype html>") && html.ends_with("</html>\n"));
    }
}
