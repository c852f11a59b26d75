//! Self-contained HTML reports with inline SVG plots: accuracy against budget per attack and
//! the worst examples (as pixels for small images) for classifiers; ROC curves on log axes for
//! membership. No script, no external resource; every data-derived string is escaped.

use std::fmt::Write as _;

use mlsec_diagnostics::Report;
use mlsec_diagnostics::render::escape_html as escape;
use mlsec_diagnostics::render::html::{findings_list, page_head};

use crate::classifier::ClassifierReport;
use crate::membership::MembershipReport;

const STYLE: &str =
    ".bad{background:#fff5f5;border-color:#feb2b2}p.note{font-size:14px;max-width:900px}";

const COLOURS: [&str; 6] = [
    "#2b6cb0", "#dd6b20", "#2f855a", "#c53030", "#6b46c1", "#718096",
];

fn head(h: &mut String, title: &str) {
    page_head(h, title, STYLE);
}

/// A line chart: `series` of (name, points) with x in [0, x_max], y in [0, 1].
fn lines(
    h: &mut String,
    id: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log: bool,
) {
    let (w, ht, l, b, t, r) = (560.0, 300.0, 50.0, 40.0, 10.0, 10.0);
    let (pw, ph) = (w - l - r, ht - b - t);
    let floor = 1e-3f64;
    let tx = |x: f64| -> f64 {
        if log {
            (x.max(floor).log10() - floor.log10()) / -floor.log10()
        } else {
            let max = series
                .iter()
                .flat_map(|(_, p)| p.iter().map(|q| q.0))
                .fold(0.0f64, f64::max)
                .max(1e-9);
            x / max
        }
    };
    let ty = |y: f64| if log { tx(y) } else { y.clamp(0.0, 1.0) };
    let _ = write!(
        h,
        "<svg id=\"{id}\" width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\"><rect x=\"{l}\" y=\"{t}\" width=\"{pw}\" height=\"{ph}\" fill=\"#fff\" stroke=\"#cbd5e0\"/>"
    );
    let ticks: Vec<f64> = if log {
        vec![0.001, 0.01, 0.1, 1.0]
    } else {
        vec![0.0, 0.25, 0.5, 0.75, 1.0]
    };
    for v in &ticks {
        let y = t + ph - ty(*v) * ph;
        let _ = write!(
            h,
            "<line x1=\"{l}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#edf2f7\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\">{v}</text>",
            l + pw,
            l - 4.0,
            y + 4.0
        );
    }
    if log {
        for v in &ticks {
            let x = l + tx(*v) * pw;
            let _ = write!(
                h,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{v}</text>",
                t + ph + 14.0
            );
        }
        // The chance line.
        let _ = write!(
            h,
            "<line x1=\"{l}\" y1=\"{}\" x2=\"{}\" y2=\"{t}\" stroke=\"#a0aec0\" stroke-dasharray=\"4 3\"/>",
            t + ph,
            l + pw
        );
    } else {
        let mut xs: Vec<f64> = series
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.0))
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup();
        for v in xs {
            let x = l + tx(v) * pw;
            let _ = write!(
                h,
                "<text x=\"{x:.1}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">{v}</text>",
                t + ph + 14.0
            );
        }
    }
    let _ = write!(
        h,
        "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"middle\">{}</text><text x=\"12\" y=\"{}\" font-size=\"12\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">{}</text>",
        l + pw / 2.0,
        ht - 6.0,
        escape(x_label),
        t + ph / 2.0,
        t + ph / 2.0,
        escape(y_label)
    );
    for (k, (name, pts)) in series.iter().enumerate() {
        let c = COLOURS[k % COLOURS.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", l + tx(*x) * pw, t + ph - ty(*y) * ph))
            .collect();
        let _ = write!(
            h,
            "<polyline class=\"series\" data-name=\"{}\" fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            escape(name),
            path.join(" ")
        );
    }
    h.push_str("</svg><div class=\"legend\">");
    for (k, (name, _)) in series.iter().enumerate() {
        let _ = write!(
            h,
            "<span style=\"background:{}\"></span>{}",
            COLOURS[k % COLOURS.len()],
            escape(name)
        );
    }
    h.push_str("</div>");
}

/// A small grey-scale (or RGB) picture of one input row.
fn pixels(h: &mut String, x: &[f32], l: crate::model::Layout, lo: f32, hi: f32) {
    let cell = (96 / l.height.max(l.width)).max(1);
    let _ = write!(
        h,
        "<svg width=\"{}\" height=\"{}\" class=\"pixels\">",
        cell * l.width,
        cell * l.height
    );
    let span = (hi - lo).max(1e-9);
    let plane = l.height * l.width;
    for r in 0..l.height {
        for c in 0..l.width {
            let v = |ch: usize| -> u8 {
                let raw = x.get(ch * plane + r * l.width + c).copied().unwrap_or(lo);
                (((raw - lo) / span).clamp(0.0, 1.0) * 255.0) as u8
            };
            let (red, green, blue) = if l.channels >= 3 {
                (v(0), v(1), v(2))
            } else {
                let g = 255 - v(0);
                (g, g, g)
            };
            let _ = write!(
                h,
                "<rect x=\"{}\" y=\"{}\" width=\"{cell}\" height=\"{cell}\" fill=\"#{red:02x}{green:02x}{blue:02x}\"/>",
                c * cell,
                r * cell
            );
        }
    }
    h.push_str("</svg>");
}

/// The classifier page. `clean` gives the clean rows of the worst examples, by data row.
pub fn classifier(
    r: &ClassifierReport,
    findings: &Report,
    clean: &dyn Fn(usize) -> Option<Vec<f32>>,
) -> String {
    let mut h = String::with_capacity(64 * 1024);
    head(&mut h, &format!("mlsec redteam classifier: {}", r.model));
    let _ = write!(
        h,
        "<h1>Adversarial robustness</h1><div class=\"sub\">model <code>{}</code> &middot; data <code>{}</code> ({} samples{}, {} mode, budget in {})</div>",
        escape(&r.model),
        escape(&r.data),
        r.samples,
        if r.unused.limited > 0 {
            format!("; {} more left out by --max-samples", r.unused.limited)
        } else {
            String::new()
        },
        r.mode,
        r.domain.budget_unit
    );
    let worst = r
        .results
        .iter()
        .map(|a| a.robust_accuracy)
        .fold(r.clean_accuracy, f64::min);
    let class = if findings.findings.iter().any(|f| f.rule.id == "RTM001") {
        "bad"
    } else {
        "ok"
    };
    let _ = write!(
        h,
        "<div class=\"cards\"><div class=\"card\"><b>{:.3}</b>clean accuracy</div><div class=\"card {class}\" id=\"worst\"><b>{worst:.3}</b>lowest accuracy under attack</div><div class=\"card\"><b>{:.0}%</b>correct samples broken</div><div class=\"card\"><b>{}</b>queries in {:.1} s</div></div>",
        r.clean_accuracy,
        r.broken_share * 100.0,
        r.queries,
        r.seconds
    );
    findings_list(&mut h, findings);
    h.push_str("<h2>Accuracy under attack</h2>");
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for a in &r.results {
        let name = a.attack.as_str().to_string();
        let pt = (crate::classifier::tidy(a.budget), a.robust_accuracy);
        match series.iter_mut().find(|(n, _)| *n == name) {
            Some((_, p)) => p.push(pt),
            None => series.push((name, vec![(0.0, r.clean_accuracy), pt])),
        }
    }
    lines(
        &mut h,
        "accuracy",
        "budget (eps)",
        "accuracy",
        &series,
        false,
    );
    h.push_str("<table id=\"results\"><tr><th>attack</th><th>access</th><th>eps</th><th>accuracy</th><th>broken</th><th>median distance</th><th>queries</th><th>seconds</th></tr>");
    for a in &r.results {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.3}</td><td>{} / {}</td><td>{}</td><td>{}</td><td>{:.2}</td></tr>",
            a.attack.as_str(),
            a.access,
            a.budget,
            a.robust_accuracy,
            a.succeeded,
            a.attacked,
            a.median_distance.map_or("-".into(), |d| format!("{d:.4}")),
            a.queries,
            a.seconds
        );
    }
    h.push_str("</table>");
    if !r.feature_weakness.is_empty() {
        h.push_str("<h2>Features the decisions hang on</h2><table id=\"features\"><tr><th>feature</th><th>changed in successful feature-wise attacks (largest budget)</th></tr>");
        for f in &r.feature_weakness {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td></tr>",
                escape(&f.feature),
                f.flips
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<h2>Weakest samples ({})</h2><table id=\"worst-examples\"><tr><th>row</th><th>label</th><th>becomes</th><th>attack</th><th>distance</th><th>change</th></tr>",
        r.worst.len()
    );
    for e in &r.worst {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.4}</td><td>",
            e.row,
            e.label,
            e.adversarial_label,
            e.attack.as_str(),
            e.distance
        );
        match (r.domain.layout, clean(e.row)) {
            (Some(l), Some(x0)) if l.height * l.width <= 64 * 64 && x0.len() == e.x.len() => {
                let lo = x0.iter().chain(&e.x).copied().fold(f32::INFINITY, f32::min);
                let hi = x0
                    .iter()
                    .chain(&e.x)
                    .copied()
                    .fold(f32::NEG_INFINITY, f32::max);
                pixels(&mut h, &x0, l, lo, hi);
                h.push_str(" &rarr; ");
                pixels(&mut h, &e.x, l, lo, hi);
            }
            _ if !e.changes.is_empty() => {
                let parts: Vec<String> = e
                    .changes
                    .iter()
                    .map(|c| format!("{}: {} &rarr; {}", escape(&c.feature), c.from, c.to))
                    .collect();
                h.push_str(&parts.join("<br>"));
            }
            _ => {
                let _ = write!(h, "{} values changed", e.changed);
            }
        }
        h.push_str("</td></tr>");
    }
    h.push_str("</table></body></html>");
    h
}

/// The membership page.
pub fn membership(r: &MembershipReport, findings: &Report) -> String {
    let mut h = String::with_capacity(32 * 1024);
    head(&mut h, &format!("mlsec redteam membership: {}", r.model));
    let _ = write!(
        h,
        "<h1>Membership inference</h1><div class=\"sub\">model <code>{}</code> &middot; {} members (<code>{}</code>) &middot; {} non-members (<code>{}</code>)</div>",
        escape(&r.model),
        r.members,
        escape(&r.train),
        r.non_members,
        escape(&r.holdout)
    );
    let best = r.attacks.iter().find(|a| a.attack == r.strongest);
    let class = if r.verdict == crate::membership::Verdict::NoMeasurableLeak {
        "ok"
    } else {
        "bad"
    };
    let _ = write!(
        h,
        "<div class=\"cards\"><div class=\"card {class}\" id=\"verdict\"><b>{:.3}</b>AUC ({})</div><div class=\"card\"><b>{:.1}%</b>members found at 1% FPR</div><div class=\"card\"><b>{:.1}% / {:.1}%</b>train / holdout accuracy</div></div><p class=\"note\">{}</p>",
        best.map_or(0.5, |b| b.auc),
        r.strongest,
        best.map_or(0.0, |b| b.tpr_at_1_fpr * 100.0),
        r.train_accuracy * 100.0,
        r.holdout_accuracy * 100.0,
        escape(&r.interpretation)
    );
    findings_list(&mut h, findings);
    h.push_str("<h2>ROC (log axes)</h2>");
    let series: Vec<(String, Vec<(f64, f64)>)> = r
        .attacks
        .iter()
        .map(|a| (a.attack.to_string(), a.roc.clone()))
        .collect();
    lines(
        &mut h,
        "roc",
        "false-positive rate",
        "true-positive rate",
        &series,
        true,
    );
    h.push_str("<table id=\"attacks\"><tr><th>attack</th><th>AUC</th><th>TPR at 0.1% FPR</th><th>TPR at 1% FPR</th><th>advantage</th></tr>");
    for a in &r.attacks {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            a.attack, a.auc, a.tpr_at_0_1_fpr, a.tpr_at_1_fpr, a.advantage
        );
    }
    h.push_str("</table>");
    if let Some(b) = best {
        h.push_str("<h2>Per class (strongest attack)</h2><table id=\"classes\"><tr><th>class</th><th>members</th><th>non-members</th><th>AUC</th></tr>");
        for c in &b.per_class {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                c.class,
                c.members,
                c.non_members,
                c.auc.map_or("-".into(), |a| format!("{a:.3}"))
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<h2>Most exposed training records ({} attack)</h2>",
        r.exposed_by
    );
    h.push_str("<table id=\"exposed\"><tr><th>row</th><th>label</th><th>score</th><th>model confidence</th><th>holdout records scoring as high</th></tr>");
    for e in &r.exposed {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td></tr>",
            e.row, e.label, e.score, e.confidence, e.holdout_at_or_above
        );
    }
    h.push_str("</table></body></html>");
    h
}
