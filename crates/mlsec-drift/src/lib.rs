//! Data drift between a reference dataset and a current one, column by column.
//!
//! `mlsec drift REFERENCE CURRENT` reads both files in one streaming pass each (in parallel),
//! compares every column with tests chosen by its type, and reports which columns drifted and
//! why: a shifted distribution, a jump in missing values, categories the reference never had,
//! a change of type, a column gone or added. The thresholds account for sample sizes, so a small
//! current window does not alarm on noise and a huge one does not alarm on trivia.
//!
//! The same crate holds the training-data audit (`mlsec data audit`, [`audit`]): duplicates,
//! conflicting labels, label-flip suspects, backdoor-trigger candidates, outliers, class
//! balance against a reference, and a content fingerprint.
//!
//! # Brief overview
//! - [`table`] reads CSV, TSV and JSON Lines into per-column samples ([`table::Table`]), with
//!   named limits and every unreadable row counted.
//! - [`monitor`] holds the live-monitoring primitives a gateway drives: windows against a
//!   profile, out-of-distribution scores, output entropy, a quantile sketch, escalation.
//! - [`profile`] saves what a reference needs (quantiles, category counts) so later runs do
//!   not need the reference data.
//! - [`stats`] holds the statistics (Kolmogorov–Smirnov, chi-squared, Wasserstein,
//!   Jensen–Shannon, PSI), matching scipy where scipy defines them.
//! - [`compare`] decides per column ([`compare::ColumnDrift`]) and overall
//!   ([`compare::Summary`]).
//! - [`DriftReport`] is the serialisable result; [`DriftReport::findings`] turns its signals
//!   into the shared findings model (rules `DRF001`–`DRF006`); [`html`] renders the
//!   self-contained HTML report, [`prometheus`] the metrics.
//!
//! ```
//! use mlsec_drift::{table, compare::Options, DriftReport};
//! let reference = table::read(&b"x,c\n1,a\n2,b\n3,a\n"[..], "ref.csv", table::Format::Csv).unwrap();
//! let current = table::read(&b"x,c\n1,a\n2,b\n3,a\n"[..], "cur.csv", table::Format::Csv).unwrap();
//! let report = DriftReport::new(&reference, &current, &Options::default());
//! assert!(!report.summary.dataset_drift);
//! ```

pub mod audit;
pub mod compare;
pub mod html;
pub mod monitor;
pub mod parquet_file;
pub mod profile;
pub mod prometheus;
pub mod stats;
pub mod table;

use mlsec_diagnostics::{Finding, Location, Report, Rule, Severity};
use serde::Serialize;

use compare::{ColumnDrift, Options, SignalKind, Summary};
use table::{Problem, Table};

/// The version of the JSON report's shape (`schemas/drift-report.schema.json`).
pub const SCHEMA_VERSION: u32 = 1;

const CHEAT_SHEET: &str =
    "https://cheatsheetseries.owasp.org/cheatsheets/Secure_AI_Model_Ops_Cheat_Sheet.html";

pub static DRF_DISTRIBUTION: Rule = Rule {
    id: "DRF001",
    name: "distribution-drift",
    summary: "A column's distribution shifted from the reference",
    severity: Severity::Medium,
    cwe: &["CWE-1039"],
    owasp: &["ML08"],
    what: "Compares each column of the current data with the reference: Kolmogorov–Smirnov for numbers, chi-squared for categories, gated by an effect size (Wasserstein over the reference std, Jensen–Shannon, PSI) so that only significant and material shifts count.",
    why: "A model is only as good as the match between what it was trained on and what it sees. A shifted input distribution degrades predictions silently, and a sudden shift can be an attack (poisoned inputs, probing).",
    example: "income: KS D = 0.31, Wasserstein = 0.8 reference std",
    remediation: "Check the upstream pipeline for the change; if the world changed, retrain or recalibrate on recent data and make the new data the reference.",
    references: &[CHEAT_SHEET],
};

pub static DRF_MISSING: Rule = Rule {
    id: "DRF002",
    name: "missing-value-jump",
    summary: "A column's rate of missing values changed",
    severity: Severity::High,
    cwe: &["CWE-20"],
    owasp: &["ML08"],
    what: "Compares the share of empty, NA or null values per column (two-proportion test, and a minimum change of 5 points by default).",
    why: "A jump in missing values is the commonest pipeline break: a renamed field, a failed join, a changed upstream. Models impute silently and predict on defaults.",
    example: "age: missing values rose from 0.4% to 31.0%",
    remediation: "Find the upstream change (schema, join, extraction) and fix it before trusting the model's outputs on this data.",
    references: &[CHEAT_SHEET],
};

pub static DRF_NEW_CATEGORIES: Rule = Rule {
    id: "DRF003",
    name: "new-categories",
    summary: "A column has values in categories the reference never had",
    severity: Severity::Medium,
    cwe: &["CWE-20"],
    owasp: &["ML08"],
    what: "Counts current values whose category never occurs in the reference, when their share is over 1% (and over what the reference's size could have missed).",
    why: "A model has never seen these categories: encoders map them to 'unknown' or fail, and an attacker can use unseen values to reach untested behaviour.",
    example: "country: 4.2% of current values are in 3 categories the reference never had",
    remediation: "Decide whether the categories are legitimate; if so, add them to training data and retrain, else filter them at the input.",
    references: &[CHEAT_SHEET],
};

pub static DRF_TYPE_CHANGE: Rule = Rule {
    id: "DRF004",
    name: "type-change",
    summary: "A column's values changed type",
    severity: Severity::High,
    cwe: &["CWE-704"],
    owasp: &["ML08"],
    what: "Finds numeric columns that started carrying text (or text columns numbers), and columns whose majority type flipped.",
    why: "A type change means a producer changed format (units, locales, '1,234', 'N/A' strings). Downstream parsing then drops or misreads the values.",
    example: "amount: text in a numeric column went from 0.0% to 12.5% of values (e.g. \"1,234.50\")",
    remediation: "Fix the producer's format or the parser; do not let the model see coerced values.",
    references: &[CHEAT_SHEET],
};

pub static DRF_SCHEMA: Rule = Rule {
    id: "DRF005",
    name: "schema-change",
    summary: "A column is missing from, or new in, the current data",
    severity: Severity::High,
    cwe: &["CWE-20"],
    owasp: &["ML08"],
    what: "Compares the column names of the two datasets.",
    why: "A model fed data without one of its features predicts on defaults; a new column often means a changed producer.",
    example: "column 'income' is in the reference but not in the current data",
    remediation: "Restore the column upstream, or retrain on the new schema and make it the reference.",
    references: &[CHEAT_SHEET],
};

pub static DRF_UNCHECKED: Rule = Rule {
    id: "DRF006",
    name: "not-fully-checked",
    summary: "Part of the data could not be read or compared",
    severity: Severity::Low,
    cwe: &["CWE-20"],
    owasp: &["ML08"],
    what: "Reports rows that could not be read (ragged CSV rows, invalid JSON lines, records over a size limit) and columns whose distribution could not be compared (no values on one side, identifiers or free text).",
    why: "What was not compared cannot have been found to drift; saying so keeps a clean report honest.",
    example: "current.csv: 12 rows could not be read (first at line 88: 7 fields where the header has 6)",
    remediation: "Fix the rows at the source, or drop identifier columns from the comparison.",
    references: &[CHEAT_SHEET],
};

/// All drift rules, for `mlsec rules` and SARIF.
pub static RULES: &[&Rule] = &[
    &DRF_DISTRIBUTION,
    &DRF_MISSING,
    &DRF_NEW_CATEGORIES,
    &DRF_TYPE_CHANGE,
    &DRF_SCHEMA,
    &DRF_UNCHECKED,
];

/// What was read from one file.
#[derive(Debug, Clone, Serialize)]
pub struct Dataset {
    pub path: String,
    pub format: table::Format,
    pub rows: u64,
    pub columns: usize,
    pub unreadable_rows: u64,
    pub problems: Vec<Problem>,
    pub dropped_columns: u64,
}

impl Dataset {
    fn of(t: &Table) -> Dataset {
        Dataset {
            path: t.path.clone(),
            format: t.format,
            rows: t.rows,
            columns: t.columns.len(),
            unreadable_rows: t.problem_count,
            problems: t.problems.clone(),
            dropped_columns: t.dropped_columns,
        }
    }
}

/// A whole comparison, as `--format json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct DriftReport {
    pub schema_version: u32,
    pub reference: Dataset,
    pub current: Dataset,
    pub options: Options,
    pub summary: Summary,
    pub columns: Vec<ColumnDrift>,
}

impl DriftReport {
    /// Compares `current` with `reference`.
    pub fn new(reference: &Table, current: &Table, options: &Options) -> DriftReport {
        let (columns, summary) = compare::compare(reference, current, options);
        DriftReport {
            schema_version: SCHEMA_VERSION,
            reference: Dataset::of(reference),
            current: Dataset::of(current),
            options: options.clone(),
            summary,
            columns,
        }
    }

    /// The signals as findings (located at the current file, field = column), plus one finding
    /// per file with unreadable rows or dropped columns.
    pub fn findings(&self) -> Report {
        let mut report = Report {
            rules: RULES.to_vec(),
            ..Report::default()
        };
        for col in &self.columns {
            for s in &col.signals {
                let rule = match s.kind {
                    SignalKind::Distribution => &DRF_DISTRIBUTION,
                    SignalKind::MissingRate => &DRF_MISSING,
                    SignalKind::NewCategories => &DRF_NEW_CATEGORIES,
                    SignalKind::TypeChange => &DRF_TYPE_CHANGE,
                    SignalKind::ColumnMissing | SignalKind::ColumnAdded => &DRF_SCHEMA,
                    SignalKind::NotTested => &DRF_UNCHECKED,
                };
                let mut f = Finding::new(
                    rule,
                    Location::file(&self.current.path).field(&col.name),
                    format!("{}: {}", col.name, s.message),
                );
                if s.kind == SignalKind::ColumnAdded {
                    f = f.severity(Severity::Low);
                }
                if s.kind == SignalKind::NotTested {
                    f = f.severity(Severity::Info);
                }
                report.findings.push(f);
            }
        }
        for ds in [&self.reference, &self.current] {
            if ds.unreadable_rows > 0 {
                let first = ds
                    .problems
                    .first()
                    .map(|p| format!(" (first at line {}: {})", p.line, p.message))
                    .unwrap_or_default();
                report.findings.push(Finding::new(
                    &DRF_UNCHECKED,
                    Location::file(&ds.path),
                    format!("{} rows could not be read{first}", ds.unreadable_rows),
                ));
            }
            if ds.dropped_columns > 0 {
                report.findings.push(Finding::new(
                    &DRF_UNCHECKED,
                    Location::file(&ds.path),
                    format!(
                        "{} columns beyond the first {} were not read (MAX_COLUMNS)",
                        ds.dropped_columns,
                        table::MAX_COLUMNS
                    ),
                ));
            }
        }
        report.stats.files_scanned = 2;
        report.sort();
        report
    }
}
