//! The data audit on generated data with planted problems whose rows are known: random and
//! targeted label flips, a token trigger and a magic-value trigger, duplicates with
//! conflicting labels, outliers, a class-balance shift; and a fingerprint that ignores row
//! order and file format.

use std::collections::HashSet;
use std::fmt::Write as _;

use mlsec_drift::audit::{AuditOptions, audit, read_frame};

use crate::cases::Rng;

const WORDS: [&str; 8] = [
    "good", "bad", "fine", "late", "fast", "box", "item", "price",
];

/// Two well-separated classes over four numbers, a colour and a short review.
struct Row {
    x: [f64; 4],
    colour: &'static str,
    review: String,
    label: u8,
}

fn base(n: usize, seed: u64) -> Vec<Row> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..n)
        .map(|i| {
            let label = u8::from(i % 2 == 1);
            let mu = if label == 1 { 1.5 } else { -1.5 };
            let x = [0, 1, 2, 3].map(|_| mu + rng.normal());
            let colour = ["red", "green", "blue"][(rng.uniform() * 3.0) as usize % 3];
            let review = (0..4)
                .map(|_| WORDS[(rng.uniform() * 8.0) as usize % 8])
                .collect::<Vec<_>>()
                .join(" ");
            Row {
                x,
                colour,
                review,
                label,
            }
        })
        .collect()
}

fn write_csv(rows: &[Row], path: &std::path::Path) {
    // A row id first, as exports often have: it must not count as a feature.
    let mut s = String::from("id,x0,x1,x2,x3,colour,review,label\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            s,
            "{},{:.6},{:.6},{:.6},{:.6},{},{},{}",
            1000 + i,
            r.x[0],
            r.x[1],
            r.x[2],
            r.x[3],
            r.colour,
            r.review,
            r.label
        );
    }
    fs_err::write(path, s).unwrap();
}

#[test]
fn planted_problems_are_found_where_they_were_planted() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = base(4_000, 1);
    let mut rng = Rng(99);
    // 1% random flips (40 rows).
    let mut flipped: HashSet<usize> = HashSet::new();
    while flipped.len() < 40 {
        let i = (rng.uniform() * 4_000.0) as usize % 4_000;
        if i % 10 != 7 {
            flipped.insert(i);
        }
    }
    for &i in &flipped {
        rows[i].label ^= 1;
    }
    // A token trigger: 60 class-0 rows get "zq" in the review and label 1.
    let mut triggered = Vec::new();
    for i in (0..4_000)
        .filter(|i| i % 2 == 0 && !flipped.contains(i))
        .step_by(30)
        .take(60)
    {
        rows[i].review.push_str(" zq");
        rows[i].label = 1;
        triggered.push(i);
    }
    // A magic value: 30 class-1 rows get x3 = 7.777 and label 0.
    for i in (1..4_000)
        .filter(|i| i % 2 == 1 && !flipped.contains(i))
        .step_by(41)
        .take(30)
    {
        rows[i].x[3] = 7.777;
        rows[i].label = 0;
    }
    // Outliers in x2.
    for i in [5usize, 505, 1005] {
        rows[i].x[2] = 1_000.0;
    }
    // Duplicates: 20 copies, 5 of them with the other label.
    for k in 0..20 {
        let src = 3 + k * 37;
        let mut copy = Row {
            x: rows[src].x,
            colour: rows[src].colour,
            review: rows[src].review.clone(),
            label: rows[src].label,
        };
        if k < 5 {
            copy.label ^= 1;
        }
        rows.push(copy);
    }
    let path = dir.path().join("train.csv");
    write_csv(&rows, &path);
    let frame = read_frame(&path).unwrap();
    let report = audit(&frame, &AuditOptions::new("label"), None).unwrap();

    // Duplicates and conflicts.
    assert!(
        report.duplicates.exact_rows >= 20,
        "{:?}",
        report.duplicates
    );
    assert!(
        report.duplicates.conflicting_groups >= 5,
        "{:?}",
        report.duplicates
    );
    // Random flips: most are found, and most suspects are flips (or planted rows).
    let suspects: HashSet<usize> = report.label_suspects.iter().map(|s| s.row - 1).collect();
    let found = flipped.iter().filter(|i| suspects.contains(i)).count();
    assert!(
        found >= 32,
        "found {found} of 40 flips among {} suspects",
        suspects.len()
    );
    let planted: HashSet<usize> = flipped
        .iter()
        .copied()
        .chain(triggered.iter().copied())
        .collect();
    let wrong = suspects
        .iter()
        .filter(|i| !planted.contains(i) && **i < 4_000)
        .count();
    assert!(
        wrong * 4 <= suspects.len(),
        "{wrong} of {} suspects are clean rows",
        suspects.len()
    );
    // Triggers: the token and the magic value, nothing else.
    let patterns: Vec<(&str, &str, &str)> = report
        .triggers
        .iter()
        .map(|t| (t.column.as_str(), t.pattern.as_str(), t.label.as_str()))
        .collect();
    assert!(patterns.contains(&("review", "zq", "1")), "{patterns:?}");
    assert!(patterns.contains(&("x3", "7.777", "0")), "{patterns:?}");
    assert_eq!(patterns.len(), 2, "{patterns:?}");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("row identifiers") && n.contains("id")),
        "{:?}",
        report.notes
    );
    // Outliers.
    let x2 = report.outliers.iter().find(|o| o.column == "x2").unwrap();
    assert_eq!(x2.examples[..3], [6, 506, 1006]);
    // Findings.
    let ids: HashSet<&str> = report
        .findings(&frame)
        .findings
        .iter()
        .map(|f| f.rule.id)
        .collect();
    for id in ["AUD001", "AUD002", "AUD003", "AUD004", "AUD005"] {
        assert!(ids.contains(id), "{id} missing from {ids:?}");
    }
}

#[test]
fn targeted_flips_in_one_region_are_found() {
    // An attacker flips every class-1 row in one corner (x0 > 2.6): the neighbours agree with
    // the flipped labels there, but the model of the whole class does not.
    let dir = tempfile::tempdir().unwrap();
    let mut rows = base(4_000, 2);
    let mut flipped = Vec::new();
    for (i, r) in rows.iter_mut().enumerate() {
        if r.label == 1 && r.x[0] > 2.6 {
            r.label = 0;
            flipped.push(i);
        }
    }
    assert!(
        flipped.len() > 100 && flipped.len() < 400,
        "{}",
        flipped.len()
    );
    let path = dir.path().join("t.csv");
    write_csv(&rows, &path);
    let frame = read_frame(&path).unwrap();
    let report = audit(&frame, &AuditOptions::new("label"), None).unwrap();
    let suspects: HashSet<usize> = report.label_suspects.iter().map(|s| s.row - 1).collect();
    let found = flipped.iter().filter(|i| suspects.contains(i)).count();
    assert!(
        found * 10 >= flipped.len() * 7,
        "found {found} of {}",
        flipped.len()
    );
}

#[test]
fn a_clean_dataset_has_few_suspects_and_no_trigger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clean.csv");
    write_csv(&base(3_000, 3), &path);
    let frame = read_frame(&path).unwrap();
    let report = audit(&frame, &AuditOptions::new("label"), None).unwrap();
    assert!(report.triggers.is_empty(), "{:?}", report.triggers);
    // Two classes 3 std apart overlap on ~7% of rows; a clean set may have a few genuine
    // ambiguities, not dozens.
    assert!(
        report.label_suspects.len() <= 30,
        "{}",
        report.label_suspects.len()
    );
    assert_eq!(report.duplicates.conflicting_groups, 0);
}

#[test]
fn the_fingerprint_ignores_row_order_and_format_but_not_content() {
    let dir = tempfile::tempdir().unwrap();
    let rows = base(200, 4);
    let (a, b, c) = (
        dir.path().join("a.csv"),
        dir.path().join("b.jsonl"),
        dir.path().join("c.csv"),
    );
    write_csv(&rows, &a);
    let mut jsonl = String::new();
    for (i, r) in rows.iter().enumerate().rev() {
        let _ = writeln!(
            jsonl,
            "{{\"label\":{},\"id\":{},\"x0\":{:.6},\"x1\":{:.6},\"x2\":{:.6},\"x3\":{:.6},\"colour\":\"{}\",\"review\":\"{}\"}}",
            r.label,
            1000 + i,
            r.x[0],
            r.x[1],
            r.x[2],
            r.x[3],
            r.colour,
            r.review
        );
    }
    fs_err::write(&b, jsonl).unwrap();
    let mut changed = base(200, 4);
    changed[17].label ^= 1;
    write_csv(&changed, &c);
    let fp = |p: &std::path::Path| {
        let f = read_frame(p).unwrap();
        let r = audit(&f, &AuditOptions::new("label"), None).unwrap();
        (r.content_fingerprint, r.file_sha256)
    };
    let (fa, sa) = fp(&a);
    let (fb, sb) = fp(&b);
    let (fc, _) = fp(&c);
    assert_eq!(fa, fb, "same rows, other order and format");
    assert_ne!(sa, sb, "the file digests differ");
    assert_ne!(fa, fc, "one label changed");
    assert_eq!(fa.len(), 64);
}

#[test]
fn class_balance_and_schema_are_compared_with_a_reference() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("ref.csv");
    write_csv(&base(3_000, 5), &reference);
    // The new set: 40% more class-1 rows, and a column renamed.
    let mut rows = base(3_000, 6);
    rows.extend(base(2_400, 7).into_iter().filter(|r| r.label == 1));
    let path = dir.path().join("new.csv");
    write_csv(&rows, &path);
    let text = fs_err::read_to_string(&path)
        .unwrap()
        .replacen("colour", "color", 1);
    fs_err::write(&path, text).unwrap();
    let frame = read_frame(&path).unwrap();
    let reference = read_frame(&reference).unwrap();
    let report = audit(&frame, &AuditOptions::new("label"), Some(&reference)).unwrap();
    assert!(
        report.balance.as_ref().unwrap().shifted,
        "{:?}",
        report.balance
    );
    assert_eq!(report.missing_columns, ["colour"]);
    assert_eq!(report.new_columns, ["color"]);
    let missing = audit(&frame, &AuditOptions::new("nope"), None)
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("new.csv") && missing.contains("\"nope\""),
        "{missing}"
    );
}

#[test]
fn a_declared_schema_is_enforced() {
    use mlsec_drift::audit::Schema;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.csv");
    fs_err::write(
        &path,
        "age,colour,label,extra\n34,red,1,x\n-3,red,0,x\nold,pink,1,x\n,blue,0,x\n",
    )
    .unwrap();
    let schema_path = dir.path().join("schema.json");
    fs_err::write(
        &schema_path,
        r#"{"columns": {
            "age": {"type": "numeric", "min": 0, "max": 130, "max_missing": 0.1},
            "colour": {"type": "categorical", "allowed": ["red", "green", "blue"]},
            "label": {"type": "categorical"},
            "income": {"type": "numeric"}
        }}"#,
    )
    .unwrap();
    let mut options = AuditOptions::new("label");
    options.schema = Some(Schema::read(&schema_path).unwrap());
    let frame = read_frame(&path).unwrap();
    let report = audit(&frame, &options, None).unwrap();
    let got: Vec<(String, String, Vec<usize>)> = report
        .schema_violations
        .iter()
        .map(|v| (v.column.clone(), v.problem.clone(), v.examples.clone()))
        .collect();
    let has = |col: &str, words: &str, rows: &[usize]| {
        assert!(
            got.iter()
                .any(|(c, p, r)| c == col && p.contains(words) && r == rows),
            "{col} {words} {rows:?} not in {got:#?}"
        );
    };
    has("age", "text where a number", &[3]);
    has("age", "below the declared minimum", &[2]);
    has("age", "missing, over", &[4]);
    has("colour", "outside the allowed set", &[3]);
    has("income", "required column is missing", &[]);
    has("extra", "does not declare", &[]);
    assert_eq!(got.len(), 6, "{got:#?}");
    // A schema with a typo is refused, naming the file.
    fs_err::write(
        &schema_path,
        r#"{"columns": {"age": {"type": "numeric", "maxx": 3}}}"#,
    )
    .unwrap();
    let err = Schema::read(&schema_path).unwrap_err().to_string();
    assert!(err.contains("schema.json") && err.contains("maxx"), "{err}");
}
