//! The report as Prometheus text exposition (version 0.0.4), for node_exporter's textfile
//! collector or a push gateway: one gauge family per quantity, labelled by column. Column names
//! are data: label values are escaped as the format requires.

use std::fmt::Write as _;

use crate::DriftReport;

/// Escapes a label value: backslash, double quote and newline.
fn label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A sample value; NaN and infinities as the format spells them.
fn value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// Renders the families `mlsec_drift_*`.
pub fn render(report: &DriftReport) -> String {
    let mut o = String::new();
    let s = &report.summary;
    let family = |o: &mut String, name: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} gauge");
    };
    family(
        &mut o,
        "mlsec_drift_dataset_drift",
        "1 when the share of drifted columns reaches the dataset threshold.",
    );
    let _ = writeln!(o, "mlsec_drift_dataset_drift {}", u8::from(s.dataset_drift));
    family(
        &mut o,
        "mlsec_drift_drifted_columns",
        "Columns that drifted.",
    );
    let _ = writeln!(o, "mlsec_drift_drifted_columns {}", s.drifted);
    family(
        &mut o,
        "mlsec_drift_columns",
        "Columns compared or reported.",
    );
    let _ = writeln!(o, "mlsec_drift_columns {}", s.columns);
    family(&mut o, "mlsec_drift_rows", "Rows read per dataset.");
    for (side, ds) in [
        ("reference", &report.reference),
        ("current", &report.current),
    ] {
        let _ = writeln!(o, "mlsec_drift_rows{{dataset=\"{side}\"}} {}", ds.rows);
    }
    family(
        &mut o,
        "mlsec_drift_unreadable_rows",
        "Rows that could not be read per dataset.",
    );
    for (side, ds) in [
        ("reference", &report.reference),
        ("current", &report.current),
    ] {
        let _ = writeln!(
            o,
            "mlsec_drift_unreadable_rows{{dataset=\"{side}\"}} {}",
            ds.unreadable_rows
        );
    }
    family(
        &mut o,
        "mlsec_drift_column_drift",
        "1 when the column drifted.",
    );
    for c in &report.columns {
        let _ = writeln!(
            o,
            "mlsec_drift_column_drift{{column=\"{}\"}} {}",
            label(&c.name),
            u8::from(c.drift)
        );
    }
    family(
        &mut o,
        "mlsec_drift_missing_rate",
        "Share of missing values per column and dataset.",
    );
    for c in &report.columns {
        for (side, v) in [("reference", &c.reference), ("current", &c.current)] {
            if let Some(v) = v {
                let _ = writeln!(
                    o,
                    "mlsec_drift_missing_rate{{column=\"{}\",dataset=\"{side}\"}} {}",
                    label(&c.name),
                    value(v.missing_rate)
                );
            }
        }
    }
    family(
        &mut o,
        "mlsec_drift_statistic",
        "Each test's statistic per column.",
    );
    for c in &report.columns {
        for t in &c.tests {
            let _ = writeln!(
                o,
                "mlsec_drift_statistic{{column=\"{}\",test=\"{}\"}} {}",
                label(&c.name),
                t.name,
                value(t.statistic)
            );
        }
    }
    family(
        &mut o,
        "mlsec_drift_p_value",
        "Each significance test's p-value per column.",
    );
    for c in &report.columns {
        for t in &c.tests {
            if let Some(p) = t.p_value {
                let _ = writeln!(
                    o,
                    "mlsec_drift_p_value{{column=\"{}\",test=\"{}\"}} {}",
                    label(&c.name),
                    t.name,
                    value(p)
                );
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Options;
    use crate::table::{Format, read};

    #[test]
    fn labels_are_escaped_and_every_line_parses() {
        let data = "\"a\"\"b\\\\c\nd\",x\n1,p\n2,q\n";
        let t = read(data.as_bytes(), "t.csv", Format::Csv).unwrap();
        let text = render(&DriftReport::new(&t, &t, &Options::default()));
        assert!(text.contains(r#"column="a\"b\\\\c\nd""#), "{text}");
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            // name{labels} value, with no raw newline or unescaped quote inside labels.
            let (_, v) = line.rsplit_once(' ').unwrap();
            assert!(v == "NaN" || v.parse::<f64>().is_ok(), "{line}");
        }
        assert!(text.contains("mlsec_drift_dataset_drift 0"));
    }
}
