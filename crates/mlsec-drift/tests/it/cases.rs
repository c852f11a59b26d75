//! Drift decisions on generated data whose truth is known, including the cases other tools get
//! wrong: a small current window against a large reference, a missing-value spike with the
//! distribution unchanged, all-missing and mixed-type columns, a trivial shift in a huge sample.

use std::fmt::Write as _;

use mlsec_drift::DriftReport;
use mlsec_drift::compare::{Kind, Options, SignalKind};
use mlsec_drift::table::{self, Format};

/// xorshift64* and Box–Muller: deterministic data without a dependency.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
    pub(crate) fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    fn pick<'a>(&mut self, items: &[(&'a str, f64)]) -> &'a str {
        let mut x = self.uniform();
        for (s, w) in items {
            if x < *w {
                return s;
            }
            x -= w;
        }
        items.last().unwrap().0
    }
}

/// A CSV with `cols` numeric columns x0.. and one categorical column `cat`; `tweak` may rewrite
/// a row's fields.
pub(crate) fn csv(
    rows: usize,
    cols: usize,
    seed: u64,
    tweak: impl Fn(&mut Rng, usize, &mut Vec<String>),
) -> String {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut out = String::new();
    let header: Vec<String> = (0..cols)
        .map(|i| format!("x{i}"))
        .chain(["cat".to_string()])
        .collect();
    out.push_str(&header.join(","));
    out.push('\n');
    let cats = [("red", 0.5), ("green", 0.3), ("blue", 0.2)];
    for r in 0..rows {
        let mut fields: Vec<String> = (0..cols)
            .map(|i| format!("{:.5}", rng.normal() * (1.0 + i as f64) + i as f64))
            .collect();
        fields.push(rng.pick(&cats).to_string());
        tweak(&mut rng, r, &mut fields);
        let _ = writeln!(out, "{}", fields.join(","));
    }
    out
}

fn report(reference: &str, current: &str) -> DriftReport {
    let r = table::read(reference.as_bytes(), "reference.csv", Format::Csv).unwrap();
    let c = table::read(current.as_bytes(), "current.csv", Format::Csv).unwrap();
    DriftReport::new(&r, &c, &Options::default())
}

fn signals(rep: &DriftReport, column: &str) -> Vec<SignalKind> {
    rep.columns
        .iter()
        .find(|c| c.name == column)
        .unwrap()
        .signals
        .iter()
        .map(|s| s.kind)
        .collect()
}

#[test]
fn unchanged_data_in_small_windows_raises_no_alarm() {
    // 20 windows of 100 rows against 20,000 reference rows, 25 columns each: 500 comparisons of
    // unchanged distributions. Bonferroni keeps the family-wise rate at 5% per window.
    let reference = csv(20_000, 24, 1, |_, _, _| {});
    let reference = table::read(reference.as_bytes(), "reference.csv", Format::Csv).unwrap();
    let mut alarms = 0;
    for seed in 0..20 {
        let current = csv(100, 24, 100 + seed, |_, _, _| {});
        let current = table::read(current.as_bytes(), "current.csv", Format::Csv).unwrap();
        let rep = DriftReport::new(&reference, &current, &Options::default());
        alarms += rep.summary.drifted;
        assert!(!rep.summary.dataset_drift);
    }
    assert!(
        alarms <= 2,
        "{alarms} false alarms in 500 unchanged comparisons"
    );
}

#[test]
fn a_half_sigma_shift_is_found_in_a_modest_window() {
    let reference = csv(20_000, 4, 2, |_, _, _| {});
    let current = csv(2_000, 4, 3, |rng, _, f| {
        // x1 has std 2: shift by 1.0 = half a std.
        f[1] = format!("{:.5}", rng.normal() * 2.0 + 1.0 + 1.0);
    });
    let rep = report(&reference, &current);
    assert_eq!(signals(&rep, "x1"), [SignalKind::Distribution]);
    for c in ["x0", "x2", "x3", "cat"] {
        assert!(signals(&rep, c).is_empty(), "{c}: {:?}", signals(&rep, c));
    }
}

#[test]
fn a_trivial_shift_in_a_huge_sample_is_not_material() {
    // 0.03 std: KS is significant at 100k rows per side, but the change does not matter.
    let reference = csv(100_000, 1, 4, |_, _, _| {});
    let current = csv(100_000, 1, 5, |rng, _, f| {
        f[0] = format!("{:.5}", rng.normal() + 0.03);
    });
    let rep = report(&reference, &current);
    let x0 = rep.columns.iter().find(|c| c.name == "x0").unwrap();
    let ks = x0.tests.iter().find(|t| t.name == "ks").unwrap();
    assert!(ks.exceeded, "the shift is statistically detectable: {ks:?}");
    assert!(!x0.drift, "{:?}", x0.signals);
}

#[test]
fn a_missing_value_spike_is_drift_even_when_values_look_the_same() {
    let reference = csv(5_000, 2, 6, |rng, _, f| {
        if rng.uniform() < 0.01 {
            f[0].clear();
        }
    });
    let current = csv(1_000, 2, 7, |rng, _, f| {
        if rng.uniform() < 0.2 {
            f[0] = "NA".to_string();
        }
    });
    let rep = report(&reference, &current);
    assert_eq!(signals(&rep, "x0"), [SignalKind::MissingRate]);
    let msg = &rep.columns[0].signals[0].message;
    assert!(
        msg.starts_with("missing values rose from 1.1% to 19.7%"),
        "{msg}"
    );
}

#[test]
fn all_missing_columns_are_reported_not_crashed_on() {
    let reference = csv(1_000, 2, 8, |_, _, f| f[1] = "null".to_string());
    let current = csv(1_000, 2, 9, |_, _, f| {
        f[0] = String::new();
        f[1] = "NaN".to_string();
    });
    let rep = report(&reference, &current);
    // x0: values in the reference, none now.
    let x0 = signals(&rep, "x0");
    assert!(x0.contains(&SignalKind::MissingRate), "{x0:?}");
    assert!(x0.contains(&SignalKind::NotTested), "{x0:?}");
    // x1: empty on both sides: said, not drift.
    let x1 = rep.columns.iter().find(|c| c.name == "x1").unwrap();
    assert_eq!(x1.kind, Kind::Empty);
    assert!(!x1.drift);
    assert_eq!(signals(&rep, "x1"), [SignalKind::NotTested]);
}

#[test]
fn text_creeping_into_a_numeric_column_is_a_type_change() {
    let reference = csv(3_000, 1, 10, |_, _, _| {});
    let current = csv(1_000, 1, 11, |rng, _, f| {
        if rng.uniform() < 0.1 {
            f[0] = "\"1,234.50\"".to_string();
        }
    });
    let rep = report(&reference, &current);
    let x0 = rep.columns.iter().find(|c| c.name == "x0").unwrap();
    assert_eq!(x0.kind, Kind::Numeric);
    assert!(
        signals(&rep, "x0").contains(&SignalKind::TypeChange),
        "{:?}",
        x0.signals
    );
    assert!(x0.signals.iter().any(|s| s.message.contains("1,234.50")));
}

#[test]
fn a_column_that_flips_type_is_a_type_change() {
    let reference = csv(500, 1, 12, |_, _, _| {});
    let current = csv(500, 1, 13, |_, r, f| f[0] = format!("id-{r}"));
    let rep = report(&reference, &current);
    assert!(signals(&rep, "x0").contains(&SignalKind::TypeChange));
}

#[test]
fn new_categories_and_share_shifts_are_found() {
    let reference = csv(5_000, 1, 14, |_, _, _| {});
    let current = csv(2_000, 1, 15, |rng, _, f| {
        f[1] = rng
            .pick(&[("red", 0.2), ("green", 0.3), ("blue", 0.4), ("purple", 0.1)])
            .to_string();
    });
    let rep = report(&reference, &current);
    let s = signals(&rep, "cat");
    assert!(s.contains(&SignalKind::NewCategories), "{s:?}");
    assert!(s.contains(&SignalKind::Distribution), "{s:?}");
    let cat = rep.columns.iter().find(|c| c.name == "cat").unwrap();
    assert_eq!(cat.kind, Kind::Categorical);
    assert!(cat.signals.iter().any(|s| s.message.contains("\"purple\"")));
}

#[test]
fn a_rare_category_a_small_reference_missed_is_not_new() {
    // 200 reference rows can easily miss a 1% category; 3/200 = 1.5% is the floor.
    let reference = csv(200, 1, 16, |_, _, f| f[1] = "a".to_string());
    let current = csv(1_000, 1, 17, |rng, _, f| {
        f[1] = if rng.uniform() < 0.012 { "b" } else { "a" }.to_string();
    });
    let rep = report(&reference, &current);
    assert!(!signals(&rep, "cat").contains(&SignalKind::NewCategories));
}

#[test]
fn schema_changes_and_unreadable_rows_are_findings() {
    let reference = "a,b,c\n1,2,3\n4,5,6\n";
    let current = "a,c,d\n1,3,9\n4,6\n7,8,9\n";
    let rep = report(reference, current);
    assert_eq!(signals(&rep, "b"), [SignalKind::ColumnMissing]);
    assert_eq!(signals(&rep, "d"), [SignalKind::ColumnAdded]);
    assert_eq!(rep.current.unreadable_rows, 1);
    let findings = rep.findings();
    let ids: Vec<&str> = findings.findings.iter().map(|f| f.rule.id).collect();
    assert!(ids.contains(&"DRF005"), "{ids:?}");
    assert!(
        findings
            .findings
            .iter()
            .any(|f| f.rule.id == "DRF006" && f.message.contains("line 3")),
        "{:?}",
        findings.findings
    );
}

#[test]
fn jsonl_and_csv_agree_on_the_same_data() {
    let mut jsonl = String::new();
    let data = csv(300, 2, 18, |_, _, _| {});
    for line in data.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        let _ = writeln!(
            jsonl,
            "{{\"x0\":{},\"x1\":{},\"cat\":\"{}\"}}",
            f[0], f[1], f[2]
        );
    }
    let a = table::read(data.as_bytes(), "a.csv", Format::Csv).unwrap();
    let b = table::read(jsonl.as_bytes(), "b.jsonl", Format::Jsonl).unwrap();
    let rep = DriftReport::new(&a, &b, &Options::default());
    for c in &rep.columns {
        let ks = c
            .tests
            .iter()
            .find(|t| t.name == "ks" || t.name == "chi2")
            .unwrap();
        assert!(ks.statistic.abs() < 1e-12, "{}: {ks:?}", c.name);
        assert!(!c.drift, "{}", c.name);
    }
}
