//! Comparing a current table with a reference, column by column.
//!
//! A column drifts when a change is both *significant* (the test's p-value is below
//! `alpha / columns compared`, Bonferroni, so 25 unchanged columns do not raise one false alarm
//! in every run) and *material* (an effect size at or over its threshold, so a huge sample does
//! not flag a trivial change). A small current window therefore needs a large change to alarm,
//! and a large one needs a change that matters.
//!
//! | column kind | significance | effect sizes |
//! |---|---|---|
//! | numeric | Kolmogorov–Smirnov | Wasserstein / reference std, PSI over reference deciles, Jensen–Shannon |
//! | categorical | chi-squared (2 × k) | Jensen–Shannon, PSI |
//!
//! Besides distributions: a jump in the missing-value rate, categories the reference never had,
//! and a change of type (numbers turning into text or back) are drift signals of their own.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;

use crate::stats;
use crate::table::{Column, Table};

/// The knobs of a comparison (defaults in [`Options::default`]).
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// Family-wise false-alarm rate across the columns of one comparison.
    pub alpha: f64,
    /// Wasserstein distance over the reference standard deviation at which a numeric shift is
    /// material.
    pub wasserstein: f64,
    /// Jensen–Shannon distance at which a categorical shift is material.
    pub jensen_shannon: f64,
    /// Population stability index at which any shift is material.
    pub psi: f64,
    /// Change in the missing-value rate (absolute) that counts.
    pub missing_rate: f64,
    /// Share of current values in categories the reference never had that counts.
    pub new_categories: f64,
    /// Share of values of the other type (text in a numeric column or numbers in a text one)
    /// that counts.
    pub type_change: f64,
    /// Share of drifted columns at which the whole dataset is said to drift.
    pub dataset_share: f64,
    /// Bins for numeric histograms (reference quantiles).
    pub bins: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            alpha: 0.05,
            wasserstein: 0.1,
            jensen_shannon: 0.1,
            psi: 0.2,
            missing_rate: 0.05,
            new_categories: 0.01,
            type_change: 0.01,
            dataset_share: 0.5,
            bins: 10,
        }
    }
}

/// Categories kept apart in categorical tests; the rest are pooled as one "other" bucket.
pub const MAX_TESTED_CATEGORIES: usize = 100;
/// Least count behind a new-category or type-change signal.
pub const MIN_SIGNAL_COUNT: u64 = 5;

/// How a column was compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Numeric,
    Categorical,
    /// No values on either side.
    Empty,
}

/// One side's summary of a column.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub rows: u64,
    pub missing: u64,
    pub missing_rate: f64,
    pub numeric: u64,
    pub text: u64,
    pub non_finite: u64,
    pub distinct_categories: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Numbers are a uniform sample, not all of them (over `MAX_VALUES`).
    pub sampled: bool,
}

/// One statistic computed for a column.
#[derive(Debug, Clone, Serialize)]
pub struct Test {
    /// `ks`, `chi2`, `wasserstein_norm`, `psi`, `jensen_shannon`, `missing_rate`, ...
    pub name: &'static str,
    pub statistic: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// The p-value bound (for tests) or the effect threshold (for distances).
    pub threshold: f64,
    /// Whether this statistic is past its threshold.
    pub exceeded: bool,
}

/// Why a column counts as drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignalKind {
    Distribution,
    MissingRate,
    NewCategories,
    TypeChange,
    ColumnMissing,
    ColumnAdded,
    /// Could not be tested (no values on one side, high cardinality); not drift, but said.
    NotTested,
}

impl SignalKind {
    /// The name used in JSON (`missing-rate`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            SignalKind::Distribution => "distribution",
            SignalKind::MissingRate => "missing-rate",
            SignalKind::NewCategories => "new-categories",
            SignalKind::TypeChange => "type-change",
            SignalKind::ColumnMissing => "column-missing",
            SignalKind::ColumnAdded => "column-added",
            SignalKind::NotTested => "not-tested",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Signal {
    pub kind: SignalKind,
    pub message: String,
}

/// Bins and their counts on both sides, for plots.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Histogram {
    /// Numeric: the inner bin edges. Categorical: empty.
    pub edges: Vec<f64>,
    /// Categorical: the category per bin (the last may be "(other)").
    pub labels: Vec<String>,
    pub reference: Vec<f64>,
    pub current: Vec<f64>,
}

/// The verdict for one column.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnDrift {
    pub name: String,
    pub kind: Kind,
    pub reference: Option<Side>,
    pub current: Option<Side>,
    pub tests: Vec<Test>,
    pub signals: Vec<Signal>,
    pub drift: bool,
    pub histogram: Histogram,
}

/// Whole-comparison totals.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub columns: usize,
    pub compared: usize,
    pub drifted: usize,
    pub share: f64,
    pub dataset_drift: bool,
    /// The per-column p-value bound after Bonferroni.
    pub alpha_per_column: f64,
}

/// Compares two tables. Columns are matched by name; order follows the reference, then columns
/// only the current has.
pub fn compare(
    reference: &Table,
    current: &Table,
    options: &Options,
) -> (Vec<ColumnDrift>, Summary) {
    let shared: Vec<(&Column, &Column)> = reference
        .columns
        .iter()
        .filter_map(|r| current.column(&r.name).map(|c| (r, c)))
        .collect();
    let compared = shared.len().max(1);
    let alpha = options.alpha / compared as f64;
    let mut out: Vec<ColumnDrift> = reference
        .columns
        .par_iter()
        .map(|r| match current.column(&r.name) {
            Some(c) => compare_column(r, c, reference.rows, current.rows, alpha, options),
            None => ColumnDrift {
                name: r.name.clone(),
                kind: Kind::Empty,
                reference: Some(side(r, reference.rows)),
                current: None,
                tests: Vec::new(),
                signals: vec![Signal {
                    kind: SignalKind::ColumnMissing,
                    message: format!(
                        "column '{}' is in the reference but not in the current data",
                        r.name
                    ),
                }],
                drift: true,
                histogram: Histogram::default(),
            },
        })
        .collect();
    for c in &current.columns {
        if reference.column(&c.name).is_none() {
            out.push(ColumnDrift {
                name: c.name.clone(),
                kind: Kind::Empty,
                reference: None,
                current: Some(side(c, current.rows)),
                tests: Vec::new(),
                signals: vec![Signal {
                    kind: SignalKind::ColumnAdded,
                    message: format!(
                        "column '{}' is in the current data but not in the reference",
                        c.name
                    ),
                }],
                drift: true,
                histogram: Histogram::default(),
            });
        }
    }
    let drifted = out.iter().filter(|c| c.drift).count();
    let share = if out.is_empty() {
        0.0
    } else {
        drifted as f64 / out.len() as f64
    };
    let summary = Summary {
        columns: out.len(),
        compared: shared.len(),
        drifted,
        share,
        dataset_drift: !out.is_empty() && share >= options.dataset_share,
        alpha_per_column: alpha,
    };
    (out, summary)
}

fn side(c: &Column, rows: u64) -> Side {
    let (mean, std) = if c.values.is_empty() {
        (None, None)
    } else {
        let (m, s) = stats::mean_std(&c.values);
        (Some(m), Some(s))
    };
    Side {
        rows,
        missing: c.missing,
        missing_rate: rate(c.missing, rows),
        numeric: c.numeric,
        text: c.text,
        non_finite: c.non_finite,
        distinct_categories: c.categories.len(),
        mean,
        std,
        sampled: c.sampled(),
    }
}

fn rate(x: u64, n: u64) -> f64 {
    if n == 0 { 0.0 } else { x as f64 / n as f64 }
}

/// The kind a column is compared as: numbers unless text is the majority of the reference's
/// values (or of the current's, when the reference has none).
fn kind_of(r: &Column, c: &Column) -> Kind {
    let pick = |col: &Column| {
        if col.numeric + col.text == 0 {
            None
        } else if col.numeric >= col.text {
            Some(Kind::Numeric)
        } else {
            Some(Kind::Categorical)
        }
    };
    pick(r).or_else(|| pick(c)).unwrap_or(Kind::Empty)
}

fn compare_column(
    r: &Column,
    c: &Column,
    ref_rows: u64,
    cur_rows: u64,
    alpha: f64,
    o: &Options,
) -> ColumnDrift {
    let kind = kind_of(r, c);
    let mut d = ColumnDrift {
        name: r.name.clone(),
        kind,
        reference: Some(side(r, ref_rows)),
        current: Some(side(c, cur_rows)),
        tests: Vec::new(),
        signals: Vec::new(),
        drift: false,
        histogram: Histogram::default(),
    };
    missing_rate(&mut d, r, c, ref_rows, cur_rows, alpha, o);
    type_change(&mut d, r, c, kind, alpha, o);
    match kind {
        Kind::Numeric => numeric(&mut d, r, c, alpha, o),
        Kind::Categorical => categorical(&mut d, r, c, alpha, o),
        Kind::Empty => d.signals.push(Signal {
            kind: SignalKind::NotTested,
            message: format!("column '{}' has no values in either dataset", r.name),
        }),
    }
    d.drift = d.signals.iter().any(|s| s.kind != SignalKind::NotTested);
    d
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn missing_rate(
    d: &mut ColumnDrift,
    r: &Column,
    c: &Column,
    ref_rows: u64,
    cur_rows: u64,
    alpha: f64,
    o: &Options,
) {
    let (rr, cr) = (rate(r.missing, ref_rows), rate(c.missing, cur_rows));
    let p = stats::two_proportion_p(r.missing, ref_rows, c.missing, cur_rows);
    let exceeded = (cr - rr).abs() >= o.missing_rate && p < alpha;
    d.tests.push(Test {
        name: "missing_rate",
        statistic: cr - rr,
        p_value: Some(p),
        threshold: o.missing_rate,
        exceeded,
    });
    if exceeded {
        let verb = if cr > rr { "rose" } else { "fell" };
        d.signals.push(Signal {
            kind: SignalKind::MissingRate,
            message: format!(
                "missing values {verb} from {} to {} (p = {p:.2e})",
                pct(rr),
                pct(cr)
            ),
        });
    }
}

fn type_change(d: &mut ColumnDrift, r: &Column, c: &Column, kind: Kind, alpha: f64, o: &Options) {
    // Values of the other type: text in a numeric column, numbers in a categorical one.
    let off = |col: &Column| match kind {
        Kind::Numeric => col.text,
        Kind::Categorical => col.numeric,
        Kind::Empty => 0,
    };
    let (rn, cn) = (r.numeric + r.text, c.numeric + c.text);
    if rn == 0 || cn == 0 {
        return;
    }
    let (ro, co) = (off(r), off(c));
    let (rs, cs) = (rate(ro, rn), rate(co, cn));
    let p = stats::two_proportion_p(ro, rn, co, cn);
    let flipped =
        r.numeric >= r.text && c.numeric < c.text || r.numeric < r.text && c.numeric >= c.text;
    let exceeded = flipped || (cs - rs >= o.type_change && co >= MIN_SIGNAL_COUNT && p < alpha);
    d.tests.push(Test {
        name: "type_mismatch_rate",
        statistic: cs - rs,
        p_value: Some(p),
        threshold: o.type_change,
        exceeded,
    });
    if exceeded {
        let what = match kind {
            Kind::Numeric => "text",
            _ => "numbers",
        };
        let examples = if kind == Kind::Numeric {
            let mut top: Vec<(&String, &u64)> = c
                .categories
                .iter()
                .filter(|(k, _)| !r.categories.contains_key(*k))
                .collect();
            top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let shown: Vec<String> = top.iter().take(3).map(|(k, _)| quote(k)).collect();
            if shown.is_empty() {
                String::new()
            } else {
                format!(" (e.g. {})", shown.join(", "))
            }
        } else {
            String::new()
        };
        d.signals.push(Signal {
            kind: SignalKind::TypeChange,
            message: if flipped {
                format!(
                    "the column changed type: the reference is mostly {}, the current data mostly {}",
                    if r.numeric >= r.text { "numbers" } else { "text" },
                    if c.numeric >= c.text { "numbers" } else { "text" }
                )
            } else {
                format!(
                    "{what} in a {} column went from {} to {} of values{examples}",
                    if kind == Kind::Numeric { "numeric" } else { "text" },
                    pct(rs),
                    pct(cs)
                )
            },
        });
    }
}

fn quote(s: &str) -> String {
    let mut t: String = s.chars().take(40).collect();
    if t.len() < s.len() {
        t.push('…');
    }
    format!("{t:?}")
}

fn numeric(d: &mut ColumnDrift, r: &Column, c: &Column, alpha: f64, o: &Options) {
    if r.values.is_empty() || c.values.is_empty() {
        let which = if r.values.is_empty() {
            "reference"
        } else {
            "current data"
        };
        d.signals.push(Signal {
            kind: SignalKind::NotTested,
            message: format!("no numeric values in the {which}: distribution not compared"),
        });
        return;
    }
    let mut ks = stats::ks_2samp(&r.values, &c.values);
    if r.sampled() || c.sampled() {
        // A sample (a profile's quantiles, a reservoir) stands for more values: the distance
        // is the sample's, the evidence is the data's.
        ks.p_value = stats::ks_2samp_p(ks.statistic, r.finite() as usize, c.finite() as usize);
    }
    let significant = ks.p_value < alpha;
    d.tests.push(Test {
        name: "ks",
        statistic: ks.statistic,
        p_value: Some(ks.p_value),
        threshold: alpha,
        exceeded: significant,
    });
    let (_, std) = stats::mean_std(&r.values);
    let w = stats::wasserstein(&r.values, &c.values) / std.max(1e-3);
    d.tests.push(Test {
        name: "wasserstein_norm",
        statistic: w,
        p_value: None,
        threshold: o.wasserstein,
        exceeded: w >= o.wasserstein,
    });
    let edges = decile_edges(&r.values, o.bins);
    let rc = stats::bin_counts(&r.values, &edges);
    let cc = stats::bin_counts(&c.values, &edges);
    let (psi, _) = histogram_distances(d, &rc, &cc, o);
    d.histogram = Histogram {
        edges,
        labels: Vec::new(),
        reference: rc,
        current: cc,
    };
    let material = w >= o.wasserstein || psi >= o.psi;
    if significant && material {
        d.signals.push(Signal {
            kind: SignalKind::Distribution,
            message: format!(
                "distribution shifted: KS D = {:.3} (p = {:.2e}), Wasserstein = {w:.3} reference std, PSI = {psi:.3}",
                ks.statistic, ks.p_value
            ),
        });
    }
}

/// PSI and Jensen–Shannon over the same bins, recorded as effect sizes: (psi, js).
fn histogram_distances(d: &mut ColumnDrift, r: &[f64], c: &[f64], o: &Options) -> (f64, f64) {
    let psi = stats::psi(r, c);
    let js = stats::jensen_shannon(r, c);
    for (name, statistic, threshold) in [
        ("psi", psi, o.psi),
        ("jensen_shannon", js, o.jensen_shannon),
    ] {
        d.tests.push(Test {
            name,
            statistic,
            p_value: None,
            threshold,
            exceeded: statistic >= threshold,
        });
    }
    (psi, js)
}

/// Inner bin edges at the reference's quantiles, deduplicated (ties collapse bins).
fn decile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let bins = bins.clamp(2, 1000);
    let mut edges: Vec<f64> = (1..bins)
        .map(|i| stats::quantile(sorted, i as f64 / bins as f64))
        .collect();
    edges.dedup();
    edges
}

/// Category counts for a column compared as categorical: its text values, and its numbers
/// printed as text (so a "mostly text" column's numeric codes are categories too).
fn category_counts(col: &Column) -> HashMap<String, u64> {
    let mut m = col.categories.clone();
    for v in &col.values {
        *m.entry(format_number(*v)).or_default() += 1;
    }
    m
}

fn format_number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn categorical(d: &mut ColumnDrift, r: &Column, c: &Column, alpha: f64, o: &Options) {
    let rm = category_counts(r);
    let cm = category_counts(c);
    let (rt, ct): (u64, u64) = (rm.values().sum(), cm.values().sum());
    if rt == 0 || ct == 0 {
        let which = if rt == 0 { "reference" } else { "current data" };
        d.signals.push(Signal {
            kind: SignalKind::NotTested,
            message: format!("no values in the {which}: distribution not compared"),
        });
        return;
    }
    // New categories: current values the reference never had.
    let unseen: u64 = cm
        .iter()
        .filter(|(k, _)| !rm.contains_key(*k))
        .map(|(_, n)| n)
        .sum();
    let unseen_share = rate(unseen, ct);
    // A category with true frequency q is missed by n reference rows with chance (1-q)^n;
    // below 3/n ("rule of three") its absence says little.
    let floor = o.new_categories.max(3.0 / rt as f64);
    let new_exceeded = unseen_share >= floor && unseen >= MIN_SIGNAL_COUNT && r.overflow == 0;
    d.tests.push(Test {
        name: "new_category_share",
        statistic: unseen_share,
        p_value: None,
        threshold: floor,
        exceeded: new_exceeded,
    });
    if new_exceeded {
        let mut top: Vec<(&String, &u64)> =
            cm.iter().filter(|(k, _)| !rm.contains_key(*k)).collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let shown: Vec<String> = top
            .iter()
            .take(5)
            .map(|(k, n)| format!("{} ({n})", quote(k)))
            .collect();
        d.signals.push(Signal {
            kind: SignalKind::NewCategories,
            message: format!(
                "{} of current values are in {} categories the reference never had: {}",
                pct(unseen_share),
                top.len(),
                shown.join(", ")
            ),
        });
    }
    // High-cardinality text (identifiers, free text): a distribution test says nothing.
    let distinct = rm.len().max(cm.len());
    if distinct > 1_000 && distinct as f64 > 0.5 * rt.min(ct) as f64 {
        d.signals.push(Signal {
            kind: SignalKind::NotTested,
            message: format!(
                "{distinct} distinct values (an identifier or free text): distribution not compared"
            ),
        });
        return;
    }
    // Bins: the most common categories over both sides, the rest pooled.
    let mut all: Vec<(&String, u64)> = rm
        .iter()
        .map(|(k, n)| (k, *n + cm.get(k).copied().unwrap_or(0)))
        .chain(
            cm.iter()
                .filter(|(k, _)| !rm.contains_key(*k))
                .map(|(k, n)| (k, *n)),
        )
        .collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let keep = all.len().min(MAX_TESTED_CATEGORIES);
    let mut labels: Vec<String> = all[..keep].iter().map(|(k, _)| (*k).clone()).collect();
    let mut rc: Vec<u64> = labels
        .iter()
        .map(|k| rm.get(k).copied().unwrap_or(0))
        .collect();
    let mut cc: Vec<u64> = labels
        .iter()
        .map(|k| cm.get(k).copied().unwrap_or(0))
        .collect();
    if keep < all.len() || r.overflow + c.overflow > 0 {
        labels.push("(other)".to_string());
        rc.push(rt - rc.iter().sum::<u64>() + r.overflow);
        cc.push(ct - cc.iter().sum::<u64>() + c.overflow);
    }
    let chi = stats::chi2_contingency(&rc, &cc);
    let significant = chi.p_value < alpha;
    d.tests.push(Test {
        name: "chi2",
        statistic: chi.statistic,
        p_value: Some(chi.p_value),
        threshold: alpha,
        exceeded: significant,
    });
    let (rf, cf): (Vec<f64>, Vec<f64>) = (
        rc.iter().map(|x| *x as f64).collect(),
        cc.iter().map(|x| *x as f64).collect(),
    );
    let (psi, js) = histogram_distances(d, &rf, &cf, o);
    d.histogram = Histogram {
        edges: Vec::new(),
        labels,
        reference: rf,
        current: cf,
    };
    if significant && (js >= o.jensen_shannon || psi >= o.psi) {
        d.signals.push(Signal {
            kind: SignalKind::Distribution,
            message: format!(
                "category shares shifted: chi2 = {:.1} (dof {}, p = {:.2e}), Jensen–Shannon = {js:.3}, PSI = {psi:.3}",
                chi.statistic, chi.dof, chi.p_value
            ),
        });
    }
}
