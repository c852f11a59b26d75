//! `mlsec data audit DATASET --label COL`: checks of training data for poisoning and for the
//! quality problems poisoning hides in.
//!
//! - Exact and near duplicates, and duplicates whose labels disagree.
//! - Label-flip suspects, by two independent methods: confident learning on out-of-fold
//!   probabilities of a naive Bayes model (Gaussian for numbers, smoothed counts for
//!   categories), and disagreement with the k nearest neighbours.
//! - Backdoor-trigger candidates: a value or token on a small share of rows that nearly always
//!   carries one label, far above that label's base rate (a binomial test, Bonferroni over
//!   candidates).
//! - Outliers: robust z-scores (median and MAD) per numeric column.
//! - Against a reference: missing or new columns and a shift in class balance.
//! - A fingerprint for lineage: the file's SHA-256 and an order-independent content hash.
//!
//! The data is held in columns aligned by row, up to [`MAX_AUDIT_ROWS`]; the kNN check runs on
//! up to [`MAX_KNN_ROWS`] rows (an evenly spaced sample beyond, said in the report).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use mlsec_diagnostics::{Finding, Location, Report, Rule, Severity};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::stats;
use crate::table::{
    DataError, Format, LineLimit, MAX_COLUMNS, MAX_LINE_BYTES, MISSING, parse_number, unique_names,
};

/// Rows read for an audit; more are counted and reported, not audited.
pub const MAX_AUDIT_ROWS: usize = 2_000_000;
/// Rows the nearest-neighbour check compares (all pairs); an evenly spaced sample beyond.
pub const MAX_KNN_ROWS: usize = 10_000;
/// Neighbours asked per row.
pub const KNN_K: usize = 10;
/// Folds for out-of-fold probabilities.
pub const FOLDS: usize = 5;
/// Distinct texts interned per dataset; further ones share one "other" id.
pub const MAX_TEXTS: usize = 1_000_000;
/// Distinct tokens counted for trigger search.
pub const MAX_TOKENS: usize = 500_000;
/// Fewest rows behind a trigger candidate.
pub const MIN_TRIGGER_ROWS: usize = 10;
/// Largest share of rows a trigger may cover (a pattern on more rows is a feature, not a trigger).
pub const MAX_TRIGGER_SHARE: f64 = 0.05;
/// Examples kept per check.
pub const MAX_EXAMPLES: usize = 20;

const OTHER: u32 = u32::MAX;

/// One cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    Missing,
    Num(f64),
    Text(u32),
}

/// A dataset held by row: `cells[column][row]`.
#[derive(Debug, Clone)]
pub struct Frame {
    pub path: String,
    pub names: Vec<String>,
    pub cells: Vec<Vec<Cell>>,
    pub texts: Vec<String>,
    pub rows: usize,
    /// Rows past [`MAX_AUDIT_ROWS`], not read.
    pub rows_not_read: u64,
    pub unreadable_rows: u64,
    pub first_problem: Option<(u64, String)>,
    /// SHA-256 of the file's bytes as read.
    pub file_sha256: String,
}

impl Frame {
    /// A frame with no columns or rows yet.
    fn empty(path: String) -> Frame {
        Frame {
            path,
            names: Vec::new(),
            cells: Vec::new(),
            texts: Vec::new(),
            rows: 0,
            rows_not_read: 0,
            unreadable_rows: 0,
            first_problem: None,
            file_sha256: String::new(),
        }
    }
}

struct Interner {
    ids: HashMap<String, u32>,
    texts: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(i) = self.ids.get(s) {
            return *i;
        }
        if self.texts.len() >= MAX_TEXTS {
            return OTHER;
        }
        let i = self.texts.len() as u32;
        self.texts.push(s.to_string());
        self.ids.insert(s.to_string(), i);
        i
    }
}

/// Hashes what passes through, so the file's digest comes from the same single read.
struct Tee<R> {
    inner: R,
    hash: Sha256,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }
}

fn cell(s: &str, interner: &mut Interner) -> Cell {
    let s = s.trim();
    if let Some(v) = parse_number(s) {
        Cell::Num(v)
    } else if MISSING.contains(&s) {
        Cell::Missing
    } else {
        Cell::Text(interner.id(s))
    }
}

/// Reads a CSV, TSV or JSON Lines file by row.
pub fn read_frame(path: &Path) -> Result<Frame, DataError> {
    let name = path.display().to_string();
    let format = Format::from_path(path)?;
    if format == Format::Parquet {
        return read_parquet_frame(path);
    }
    let file = fs_err::File::open(path).map_err(|e| DataError::Io {
        path: name.clone(),
        source: e,
    })?;
    read_frame_from(file, &name, format)
}

/// Reads a Parquet file by row; its digest is of the file's bytes, read once more.
fn read_parquet_frame(path: &Path) -> Result<Frame, DataError> {
    use crate::parquet_file::Value;
    let name = path.display().to_string();
    let mut hash = Sha256::new();
    let mut file = fs_err::File::open(path).map_err(|e| DataError::Io {
        path: name.clone(),
        source: e,
    })?;
    std::io::copy(&mut file, &mut hash).map_err(|e| DataError::Io {
        path: name.clone(),
        source: e,
    })?;
    let mut frame = Frame::empty(name);
    frame.file_sha256 = hex(&hash.finalize());
    let cell = |v: &Value<'_>, interner: &mut Interner| match v {
        Value::Missing => Cell::Missing,
        Value::Num(x) if x.is_finite() => Cell::Num(*x),
        Value::Num(_) => Cell::Missing,
        Value::Text(t) => cell_text(t, interner),
    };
    let mut interner = Interner {
        ids: HashMap::new(),
        texts: Vec::new(),
    };
    let mut cells: Vec<Vec<Cell>> = Vec::new();
    // Flat files column by column, each column cut at MAX_AUDIT_ROWS.
    let columnar = crate::parquet_file::read_columnar(path, &mut |i, v| {
        if cells.len() <= i {
            cells.resize_with(i + 1, Vec::new);
        }
        if cells[i].len() < MAX_AUDIT_ROWS {
            let c = cell(v, &mut interner);
            cells[i].push(c);
        }
    });
    let (read, rows, not_read) = match columnar {
        Ok(Some(read)) => {
            let rows = usize::try_from(read.rows).map_or(MAX_AUDIT_ROWS, |r| r.min(MAX_AUDIT_ROWS));
            let not_read = read.rows.saturating_sub(rows as u64);
            (read, rows, not_read)
        }
        // Not flat, or a decoding error part-way: by row, counting what cannot be read.
        Ok(None) | Err(DataError::Parquet { .. }) => {
            cells.clear();
            interner = Interner {
                ids: HashMap::new(),
                texts: Vec::new(),
            };
            let mut rows = 0usize;
            let mut not_read = 0u64;
            let read = crate::parquet_file::read_rows(path, &mut |row| {
                if rows >= MAX_AUDIT_ROWS {
                    not_read += 1;
                    return true;
                }
                if cells.len() < row.len() {
                    cells.resize_with(row.len(), Vec::new);
                }
                rows += 1;
                for (col, v) in cells.iter_mut().zip(row) {
                    col.push(cell(v, &mut interner));
                }
                true
            })?;
            (read, rows, not_read)
        }
        Err(e) => return Err(e),
    };
    cells.resize_with(read.names.len(), Vec::new);
    frame.names = read.names;
    frame.cells = cells;
    frame.rows = rows;
    frame.rows_not_read = not_read;
    frame.unreadable_rows = read.unreadable;
    frame.first_problem = read.first_problem;
    frame.texts = interner.texts;
    Ok(frame)
}

/// Reads CSV, TSV or JSON Lines by row from any reader; `name` labels errors and findings.
pub fn read_frame_from(input: impl Read, name: &str, format: Format) -> Result<Frame, DataError> {
    let name = name.to_string();
    let mut tee = Tee {
        inner: input,
        hash: Sha256::new(),
    };
    let mut frame = Frame::empty(name.clone());
    let mut interner = Interner {
        ids: HashMap::new(),
        texts: Vec::new(),
    };
    let problem = |frame: &mut Frame, line: u64, msg: String| {
        frame.unreadable_rows += 1;
        if frame.first_problem.is_none() {
            frame.first_problem = Some((line, msg));
        }
    };
    match format {
        Format::Csv | Format::Tsv => {
            let mut buffered = BufReader::with_capacity(1 << 20, LineLimit::new(&mut tee));
            let delimiter = if format == Format::Tsv {
                b'\t'
            } else {
                crate::table::sniff_delimiter(&mut buffered).map_err(|e| DataError::Io {
                    path: name.clone(),
                    source: e,
                })?
            };
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .flexible(true)
                .from_reader(buffered);
            let io = |e: csv::Error| DataError::Header {
                path: name.clone(),
                message: e.to_string(),
            };
            let headers = reader.byte_headers().map_err(io)?.clone();
            if headers.is_empty() {
                return Err(DataError::NoHeader { path: name.clone() });
            }
            let raw: Vec<String> = headers
                .iter()
                .map(|h| String::from_utf8_lossy(h).trim().to_string())
                .collect();
            frame.names = unique_names(&raw, MAX_COLUMNS);
            frame.cells = vec![Vec::new(); frame.names.len()];
            let mut record = csv::ByteRecord::new();
            loop {
                match reader.read_byte_record(&mut record) {
                    Ok(false) => break,
                    Ok(true) => {}
                    Err(e) => {
                        if let csv::ErrorKind::Io(_) = e.kind() {
                            return Err(DataError::Header {
                                path: name.clone(),
                                message: e.to_string(),
                            });
                        }
                        let line = e.position().map_or(0, csv::Position::line);
                        problem(&mut frame, line, e.to_string());
                        continue;
                    }
                }
                let line = record.position().map_or(0, csv::Position::line);
                if record.len() != raw.len() {
                    problem(
                        &mut frame,
                        line,
                        format!("{} fields where the header has {}", record.len(), raw.len()),
                    );
                    continue;
                }
                if frame.rows >= MAX_AUDIT_ROWS {
                    frame.rows_not_read += 1;
                    continue;
                }
                frame.rows += 1;
                for (col, field) in frame.cells.iter_mut().zip(record.iter()) {
                    col.push(cell(&String::from_utf8_lossy(field), &mut interner));
                }
            }
        }
        Format::Jsonl => {
            let mut reader = BufReader::with_capacity(1 << 20, &mut tee);
            let mut index: HashMap<String, usize> = HashMap::new();
            let mut buf = Vec::new();
            let mut line = 0u64;
            loop {
                buf.clear();
                let n = (&mut reader)
                    .take(MAX_LINE_BYTES as u64 + 1)
                    .read_until(b'\n', &mut buf)
                    .map_err(|e| DataError::Io {
                        path: name.clone(),
                        source: e,
                    })?;
                if n == 0 {
                    break;
                }
                line += 1;
                if buf.len() > MAX_LINE_BYTES {
                    return Err(DataError::Io {
                        path: name.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!("line {line}: longer than MAX_LINE_BYTES ({MAX_LINE_BYTES})"),
                        ),
                    });
                }
                if buf.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let Ok(serde_json::Value::Object(record)) =
                    serde_json::from_slice::<serde_json::Value>(&buf)
                else {
                    problem(&mut frame, line, "not a JSON object".to_string());
                    continue;
                };
                if frame.rows >= MAX_AUDIT_ROWS {
                    frame.rows_not_read += 1;
                    continue;
                }
                for col in &mut frame.cells {
                    col.push(Cell::Missing);
                }
                for (key, value) in &record {
                    let idx = if let Some(i) = index.get(key) {
                        *i
                    } else {
                        if frame.names.len() >= MAX_COLUMNS {
                            continue;
                        }
                        index.insert(key.clone(), frame.names.len());
                        frame.names.push(key.clone());
                        frame.cells.push(vec![Cell::Missing; frame.rows + 1]);
                        frame.names.len() - 1
                    };
                    let c = match value {
                        serde_json::Value::Null => Cell::Missing,
                        serde_json::Value::Number(n) => n.as_f64().map_or(Cell::Missing, Cell::Num),
                        serde_json::Value::String(s) => cell_text(s, &mut interner),
                        serde_json::Value::Bool(b) => {
                            Cell::Text(interner.id(if *b { "true" } else { "false" }))
                        }
                        other => Cell::Text(interner.id(&other.to_string())),
                    };
                    if let Some(slot) = frame.cells.get_mut(idx).and_then(|c| c.last_mut()) {
                        *slot = c;
                    }
                }
                frame.rows += 1;
            }
        }
        Format::Profile => {
            return Err(DataError::Profile {
                path: name,
                message: "a profile has no rows to audit".to_string(),
            });
        }
        Format::Parquet => {
            return Err(DataError::Parquet {
                path: name,
                message: "Parquet is read from a file, not a stream".to_string(),
            });
        }
    }
    // Drain what the reader left unread so the digest covers the whole file.
    std::io::copy(&mut tee, &mut std::io::sink()).map_err(|e| DataError::Io {
        path: name.clone(),
        source: e,
    })?;
    frame.file_sha256 = hex(&tee.hash.finalize());
    frame.texts = interner.texts;
    Ok(frame)
}

fn cell_text(s: &str, interner: &mut Interner) -> Cell {
    if MISSING.contains(&s.trim()) {
        Cell::Missing
    } else {
        Cell::Text(interner.id(s))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Largest schema file read.
pub const MAX_SCHEMA_BYTES: u64 = 1 << 20;

/// A declared schema (`--schema FILE`): what each column must be.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schema {
    pub columns: std::collections::BTreeMap<String, ColumnSpec>,
    /// Columns the schema does not name are allowed (reported as low otherwise).
    #[serde(default)]
    pub allow_extra: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SpecKind {
    /// Every present value is a number.
    Numeric,
    /// Any text; with `allowed`, one of a set.
    Categorical,
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    #[serde(rename = "type")]
    pub kind: SpecKind,
    #[serde(default = "yes")]
    pub required: bool,
    /// Largest share of missing values allowed (default: any).
    pub max_missing: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// The only values allowed (categorical).
    pub allowed: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

impl Schema {
    /// Reads a JSON schema file, refusing unknown fields and files over [`MAX_SCHEMA_BYTES`].
    pub fn read(path: &Path) -> Result<Schema, DataError> {
        let name = path.display().to_string();
        let bad = |message: String| DataError::Schema {
            path: name.clone(),
            message,
        };
        let len = fs_err::metadata(path)
            .map_err(|e| DataError::Io {
                path: name.clone(),
                source: e,
            })?
            .len();
        if len > MAX_SCHEMA_BYTES {
            return Err(bad(format!("schema of {len} bytes, over MAX_SCHEMA_BYTES")));
        }
        let bytes = fs_err::read(path).map_err(|e| DataError::Io {
            path: name.clone(),
            source: e,
        })?;
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a schema: {e}")))
    }
}

/// One way the data breaks the declared schema.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaViolation {
    pub column: String,
    pub problem: String,
    /// Rows affected (0 for a column-level problem).
    pub rows: usize,
    /// First affected rows, 1-based.
    pub examples: Vec<usize>,
    /// `high` (a required column missing), `medium` (values) or `low` (an undeclared column).
    pub severity: Severity,
}

/// Checks a frame against a declared schema.
pub fn check_schema(frame: &Frame, schema: &Schema) -> Vec<SchemaViolation> {
    let mut out = Vec::new();
    for (name, spec) in &schema.columns {
        let Some(ci) = frame.names.iter().position(|n| n == name) else {
            if spec.required {
                out.push(SchemaViolation {
                    column: name.clone(),
                    problem: "required column is missing".to_string(),
                    rows: 0,
                    examples: Vec::new(),
                    severity: Severity::High,
                });
            }
            continue;
        };
        let col = &frame.cells[ci];
        let mut bad = |problem: String, rows: Vec<usize>| {
            if !rows.is_empty() {
                out.push(SchemaViolation {
                    column: name.clone(),
                    problem,
                    rows: rows.len(),
                    examples: rows.iter().take(MAX_EXAMPLES).map(|r| r + 1).collect(),
                    severity: Severity::Medium,
                });
            }
        };
        let rows_where = |f: &dyn Fn(&Cell) -> bool| -> Vec<usize> {
            col.iter()
                .enumerate()
                .filter(|(_, c)| f(c))
                .map(|(r, _)| r)
                .collect()
        };
        if spec.kind == SpecKind::Numeric {
            bad(
                "text where a number is declared".to_string(),
                rows_where(&|c| matches!(c, Cell::Text(_))),
            );
            if let Some(min) = spec.min {
                bad(
                    format!("below the declared minimum {min}"),
                    rows_where(&|c| matches!(c, Cell::Num(v) if *v < min)),
                );
            }
            if let Some(max) = spec.max {
                bad(
                    format!("above the declared maximum {max}"),
                    rows_where(&|c| matches!(c, Cell::Num(v) if *v > max)),
                );
            }
        }
        if let Some(allowed) = &spec.allowed {
            let ok: std::collections::HashSet<&str> = allowed.iter().map(String::as_str).collect();
            bad(
                "a value outside the allowed set".to_string(),
                rows_where(&|c| {
                    !matches!(c, Cell::Missing)
                        && !label_text(frame, *c).is_some_and(|t| ok.contains(t.as_str()))
                }),
            );
        }
        if let Some(limit) = spec.max_missing {
            let missing = rows_where(&|c| matches!(c, Cell::Missing));
            if frame.rows > 0 && missing.len() as f64 / frame.rows as f64 > limit {
                let share = missing.len() as f64 / frame.rows as f64;
                bad(
                    format!(
                        "{:.1}% missing, over the declared {:.1}%",
                        share * 100.0,
                        limit * 100.0
                    ),
                    missing,
                );
            }
        }
    }
    if !schema.allow_extra {
        for name in frame
            .names
            .iter()
            .filter(|n| !schema.columns.contains_key(*n))
        {
            out.push(SchemaViolation {
                column: name.clone(),
                problem: "a column the schema does not declare".to_string(),
                rows: 0,
                examples: Vec::new(),
                severity: Severity::Low,
            });
        }
    }
    out
}

/// Audit settings.
#[derive(Debug, Clone, Serialize)]
pub struct AuditOptions {
    pub label: String,
    /// A declared schema to check the data against.
    #[serde(skip)]
    pub schema: Option<Schema>,
    /// Family-wise false-alarm rate for the trigger search and the balance test.
    pub alpha: f64,
    /// Robust z-score over which a value is an outlier.
    pub outlier_z: f64,
    /// Share of a row's neighbours that must carry one other label for a kNN suspect.
    pub knn_agreement: f64,
}

impl AuditOptions {
    pub fn new(label: &str) -> AuditOptions {
        AuditOptions {
            label: label.to_string(),
            schema: None,
            alpha: 0.01,
            outlier_z: 6.0,
            knn_agreement: 0.8,
        }
    }
}

/// A row whose label looks wrong.
#[derive(Debug, Clone, Serialize)]
pub struct LabelSuspect {
    /// 1-based data row (not counting the header).
    pub row: usize,
    pub given: String,
    pub suggested: String,
    /// The model's probability of the suggested label, or the neighbours' share.
    pub score: f64,
    /// `confident-learning`, `knn` or both.
    pub methods: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trigger {
    pub column: String,
    /// `value` (a whole cell) or `token` (a word in a text column).
    pub kind: &'static str,
    pub pattern: String,
    pub rows: usize,
    pub label: String,
    pub purity: f64,
    pub base_rate: f64,
    pub p_value: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outliers {
    pub column: String,
    pub count: usize,
    pub examples: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Duplicates {
    pub exact_groups: usize,
    pub exact_rows: usize,
    pub near_groups: usize,
    pub near_rows: usize,
    pub conflicting_groups: usize,
    pub conflicting_rows: usize,
    /// Row numbers of conflicting groups, as examples.
    pub conflict_examples: Vec<Vec<usize>>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Balance {
    pub reference: Vec<(String, u64)>,
    pub current: Vec<(String, u64)>,
    pub chi2: f64,
    pub p_value: f64,
    pub jensen_shannon: f64,
    pub shifted: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub dataset: String,
    pub rows: usize,
    pub columns: usize,
    pub label: String,
    pub label_counts: Vec<(String, u64)>,
    pub unlabelled_rows: usize,
    pub file_sha256: String,
    /// SHA-256 over the sorted per-row digests: the same for the same rows in any order and
    /// any file format.
    pub content_fingerprint: String,
    pub duplicates: Duplicates,
    pub label_suspects: Vec<LabelSuspect>,
    pub confident_learning_suspects: usize,
    pub knn_suspects: usize,
    pub knn_rows: usize,
    pub triggers: Vec<Trigger>,
    pub outliers: Vec<Outliers>,
    pub balance: Option<Balance>,
    pub missing_columns: Vec<String>,
    pub new_columns: Vec<String>,
    /// Breaks of the declared schema (`--schema`).
    pub schema_violations: Vec<SchemaViolation>,
    pub notes: Vec<String>,
}

/// Why an audit could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error("{path}: no column named {label:?} (columns: {columns})")]
    NoLabel {
        path: String,
        label: String,
        columns: String,
    },
    #[error(transparent)]
    Data(#[from] DataError),
}

fn label_text(frame: &Frame, c: Cell) -> Option<String> {
    match c {
        Cell::Missing => None,
        Cell::Num(v) => Some(if v.fract() == 0.0 && v.abs() < 1e15 {
            format!("{}", v as i64)
        } else {
            format!("{v}")
        }),
        Cell::Text(OTHER) => Some("(other)".to_string()),
        Cell::Text(i) => frame.texts.get(i as usize).cloned(),
    }
}

/// A feature column prepared for the models.
enum Feature {
    /// Standardised values (missing → 0, the mean).
    Numeric { z: Vec<f64> },
    /// Category ids (0 = missing or other), and how many there are.
    Categorical { codes: Vec<u32>, levels: u32 },
}

/// Whether sorted values look like row identifiers: at least 100, all distinct integers.
fn identifier_like(sorted: &[f64]) -> bool {
    sorted.len() >= 100
        && sorted.iter().all(|v| v.fract() == 0.0)
        && sorted.windows(2).all(|w| w[0] < w[1])
}

/// The columns the models use, and the names of numeric identifier columns left out.
fn features(frame: &Frame, label_col: usize) -> (Vec<(usize, Feature)>, Vec<String>) {
    let mut out = Vec::new();
    let mut identifiers = Vec::new();
    for (ci, col) in frame.cells.iter().enumerate() {
        if ci == label_col {
            continue;
        }
        let nums = col.iter().filter(|c| matches!(c, Cell::Num(_))).count();
        let texts = col.iter().filter(|c| matches!(c, Cell::Text(_))).count();
        if nums >= texts && nums > 0 {
            let vals: Vec<f64> = col
                .iter()
                .filter_map(|c| match c {
                    Cell::Num(v) if v.is_finite() => Some(*v),
                    _ => None,
                })
                .collect();
            let mut sorted = vals.clone();
            stats::sort(&mut sorted);
            if identifier_like(&sorted) {
                // A row id says nothing about the label, and would skew distances.
                identifiers.push(frame.names[ci].clone());
                continue;
            }
            let (mean, std) = stats::mean_std(&vals);
            let std = if std.is_finite() && std > 0.0 {
                std
            } else {
                1.0
            };
            let z = col
                .iter()
                .map(|c| match c {
                    Cell::Num(v) if v.is_finite() => (v - mean) / std,
                    _ => 0.0,
                })
                .collect();
            out.push((ci, Feature::Numeric { z }));
        } else if texts > 0 {
            let mut ids: HashMap<u32, u32> = HashMap::new();
            let codes: Vec<u32> = col
                .iter()
                .map(|c| match c {
                    Cell::Text(t) if *t != OTHER => {
                        let next = ids.len() as u32 + 1;
                        *ids.entry(*t).or_insert(next)
                    }
                    _ => 0,
                })
                .collect();
            // Identifiers and free text say nothing to a per-category model.
            if ids.len() > 1_000 || ids.len() * 2 > frame.rows {
                continue;
            }
            out.push((
                ci,
                Feature::Categorical {
                    levels: ids.len() as u32 + 1,
                    codes,
                },
            ));
        }
    }
    (out, identifiers)
}

/// Out-of-fold class probabilities from naive Bayes: `probs[row][class]`.
fn out_of_fold(features: &[(usize, Feature)], labels: &[Option<usize>], k: usize) -> Vec<Vec<f64>> {
    let n = labels.len();
    let fold_probs: Vec<Vec<(usize, Vec<f64>)>> = (0..FOLDS)
        .into_par_iter()
        .map(|fold| {
            let train = |i: usize| i % FOLDS != fold;
            // Priors with add-one smoothing.
            let mut class_n = vec![1.0f64; k];
            for (i, l) in labels.iter().enumerate() {
                if let (true, Some(l)) = (train(i), l) {
                    class_n[*l] += 1.0;
                }
            }
            let total: f64 = class_n.iter().sum();
            // Per feature, per class: Gaussian (mean, var) or smoothed category counts.
            let mut params: Vec<Vec<Vec<f64>>> = Vec::new();
            for (_, f) in features {
                match f {
                    Feature::Numeric { z } => {
                        let mut s = vec![(0.0f64, 0.0f64, 0.0f64); k];
                        for (i, l) in labels.iter().enumerate() {
                            if let (true, Some(l)) = (train(i), l) {
                                let e = &mut s[*l];
                                e.0 += 1.0;
                                e.1 += z[i];
                                e.2 += z[i] * z[i];
                            }
                        }
                        params.push(
                            s.iter()
                                .map(|(c, sum, sq)| {
                                    let m = if *c > 0.0 { sum / c } else { 0.0 };
                                    let v = if *c > 1.0 {
                                        (sq / c - m * m).max(1e-3)
                                    } else {
                                        1.0
                                    };
                                    vec![m, v]
                                })
                                .collect(),
                        );
                    }
                    Feature::Categorical { codes, levels } => {
                        let mut t = vec![vec![1.0f64; *levels as usize]; k];
                        for (i, l) in labels.iter().enumerate() {
                            if let (true, Some(l)) = (train(i), l) {
                                t[*l][codes[i] as usize] += 1.0;
                            }
                        }
                        for row in &mut t {
                            let s: f64 = row.iter().sum();
                            for x in row.iter_mut() {
                                *x = (*x / s).ln();
                            }
                        }
                        params.push(t);
                    }
                }
            }
            (0..n)
                .filter(|i| !train(*i))
                .map(|i| {
                    let mut logp: Vec<f64> = class_n.iter().map(|c| (c / total).ln()).collect();
                    for ((_, f), p) in features.iter().zip(&params) {
                        for (c, lp) in logp.iter_mut().enumerate() {
                            match f {
                                Feature::Numeric { z } => {
                                    let (m, v) = (p[c][0], p[c][1]);
                                    *lp += -0.5 * ((z[i] - m).powi(2) / v + v.ln());
                                }
                                Feature::Categorical { codes, .. } => {
                                    *lp += p[c][codes[i] as usize];
                                }
                            }
                        }
                    }
                    let max = logp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let exp: Vec<f64> = logp.iter().map(|x| (x - max).exp()).collect();
                    let s: f64 = exp.iter().sum();
                    (i, exp.iter().map(|x| x / s).collect())
                })
                .collect()
        })
        .collect();
    let mut probs = vec![Vec::new(); n];
    for fold in fold_probs {
        for (i, p) in fold {
            probs[i] = p;
        }
    }
    probs
}

/// Confident learning (Northcutt et al.): a row labelled `i` is a suspect when some other
/// class `j` reaches its own average self-confidence `t_j` and beats the given label.
fn confident_learning(
    probs: &[Vec<f64>],
    labels: &[Option<usize>],
    k: usize,
) -> Vec<(usize, usize, f64)> {
    let mut sum = vec![0.0; k];
    let mut cnt = vec![0.0; k];
    for (p, l) in probs.iter().zip(labels) {
        if let Some(l) = l {
            sum[*l] += p[*l];
            cnt[*l] += 1.0;
        }
    }
    let t: Vec<f64> = sum
        .iter()
        .zip(&cnt)
        .map(|(s, c)| if *c > 0.0 { s / c } else { 1.0 })
        .collect();
    let mut out = Vec::new();
    for (row, (p, l)) in probs.iter().zip(labels).enumerate() {
        let Some(given) = *l else { continue };
        let best = (0..k)
            .filter(|j| *j != given && p[*j] >= t[*j] && p[*j] > p[given])
            .max_by(|a, b| p[*a].total_cmp(&p[*b]));
        if let Some(j) = best {
            out.push((row, j, p[j]));
        }
    }
    out
}

/// Rows whose k nearest neighbours (standardised numbers, category mismatches count 1)
/// mostly carry one other label: (row, label, share).
fn knn_disagreement(
    features: &[(usize, Feature)],
    labels: &[Option<usize>],
    rows: &[usize],
    agreement: f64,
) -> Vec<(usize, usize, f64)> {
    // Dense row-major copies of the sampled rows, so the inner loop is a contiguous scan.
    let nums: Vec<&Vec<f64>> = features
        .iter()
        .filter_map(|(_, f)| match f {
            Feature::Numeric { z } => Some(z),
            Feature::Categorical { .. } => None,
        })
        .collect();
    let cats: Vec<&Vec<u32>> = features
        .iter()
        .filter_map(|(_, f)| match f {
            Feature::Categorical { codes, .. } => Some(codes),
            Feature::Numeric { .. } => None,
        })
        .collect();
    let (dn, dc) = (nums.len(), cats.len());
    let num: Vec<f64> = rows
        .iter()
        .flat_map(|&r| nums.iter().map(move |z| z[r]))
        .collect();
    let cat: Vec<u32> = rows
        .iter()
        .flat_map(|&r| cats.iter().map(move |c| c[r]))
        .collect();
    let labelled: Vec<usize> = (0..rows.len())
        .filter(|&a| labels[rows[a]].is_some())
        .collect();
    (0..rows.len())
        .into_par_iter()
        .filter_map(|a| {
            let given = labels[rows[a]]?;
            let (na, ca) = (&num[a * dn..(a + 1) * dn], &cat[a * dc..(a + 1) * dc]);
            let mut best: Vec<(f64, usize)> = Vec::with_capacity(KNN_K + 1);
            let mut worst = f64::INFINITY;
            for &b in &labelled {
                if b == a {
                    continue;
                }
                let nb = &num[b * dn..(b + 1) * dn];
                let mut d = 0.0;
                for (x, y) in na.iter().zip(nb) {
                    d += (x - y) * (x - y);
                }
                if d >= worst {
                    continue;
                }
                let cb = &cat[b * dc..(b + 1) * dc];
                d += ca.iter().zip(cb).filter(|(x, y)| x != y).count() as f64;
                if d >= worst {
                    continue;
                }
                let pos = best.partition_point(|(x, _)| *x <= d);
                best.insert(pos, (d, b));
                if best.len() > KNN_K {
                    best.pop();
                }
                if best.len() == KNN_K {
                    worst = best[KNN_K - 1].0;
                }
            }
            if best.len() < KNN_K {
                return None;
            }
            let mut votes: HashMap<usize, usize> = HashMap::new();
            for (_, b) in &best {
                if let Some(l) = labels[rows[*b]] {
                    *votes.entry(l).or_default() += 1;
                }
            }
            let (top, n) = votes
                .into_iter()
                .max_by_key(|(l, n)| (*n, usize::MAX - l))?;
            let share = n as f64 / KNN_K as f64;
            (top != given && share >= agreement).then_some((rows[a], top, share))
        })
        .collect()
}

/// Tokens of a text value: lowercase words of letters and digits.
fn tokens(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
}

/// `P(X >= x)` for a binomial(n, p), summed in logarithms.
fn binomial_tail(x: usize, n: usize, p: f64) -> f64 {
    if x == 0 {
        return 1.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let nf = n as f64;
    let ln_n = libm::lgamma(nf + 1.0);
    let mut total = 0.0;
    for k in x..=n {
        let kf = k as f64;
        let term = ln_n - libm::lgamma(kf + 1.0) - libm::lgamma(nf - kf + 1.0)
            + kf * p.ln()
            + (nf - kf) * (1.0 - p).ln();
        let t = term.exp();
        total += t;
        if t < total * 1e-17 && kf > nf * p {
            break;
        }
    }
    total.min(1.0)
}

/// Runs every check. `reference`, when given, adds the schema and class-balance comparison.
pub fn audit(
    frame: &Frame,
    options: &AuditOptions,
    reference: Option<&Frame>,
) -> Result<AuditReport, AuditError> {
    let label_col = frame
        .names
        .iter()
        .position(|n| *n == options.label)
        .ok_or_else(|| AuditError::NoLabel {
            path: frame.path.clone(),
            label: options.label.clone(),
            columns: frame.names.join(", "),
        })?;
    let n = frame.rows;
    let mut notes = Vec::new();
    // Labels as dense ids.
    let mut label_ids: HashMap<String, usize> = HashMap::new();
    let mut label_names: Vec<String> = Vec::new();
    let labels: Vec<Option<usize>> = frame.cells[label_col]
        .iter()
        .map(|c| {
            label_text(frame, *c).map(|t| {
                *label_ids.entry(t.clone()).or_insert_with(|| {
                    label_names.push(t);
                    label_names.len() - 1
                })
            })
        })
        .collect();
    let k = label_names.len();
    let mut label_counts = vec![0u64; k];
    for l in labels.iter().flatten() {
        label_counts[*l] += 1;
    }
    let unlabelled = labels.iter().filter(|l| l.is_none()).count();

    // Fingerprint: per-row digests of canonical cells (column name, kind, value), sorted.
    let mut order: Vec<usize> = (0..frame.names.len()).collect();
    order.sort_by(|a, b| frame.names[*a].cmp(&frame.names[*b]));
    let mut row_digests: Vec<[u8; 32]> = (0..n)
        .into_par_iter()
        .map(|r| {
            let mut h = Sha256::new();
            for &c in &order {
                h.update(frame.names[c].as_bytes());
                h.update([0]);
                match frame.cells[c][r] {
                    Cell::Missing => h.update([0]),
                    Cell::Num(v) => {
                        h.update([1]);
                        h.update(v.to_bits().to_le_bytes());
                    }
                    Cell::Text(t) => {
                        h.update([2]);
                        h.update(
                            frame
                                .texts
                                .get(t as usize)
                                .map_or(&b"\xff"[..], |s| s.as_bytes()),
                        );
                    }
                }
                h.update([0]);
            }
            h.finalize().into()
        })
        .collect();
    row_digests.par_sort_unstable();
    let mut fp = Sha256::new();
    for d in &row_digests {
        fp.update(d);
    }
    let content_fingerprint = hex(&fp.finalize());

    // Duplicates over the features (the label left out), exact and normalised.
    // Row identifiers (distinct integers) are left out of duplicates and models: two rows with
    // different ids and the same content are still duplicates.
    let (feats, identifiers) = features(frame, label_col);
    if !identifiers.is_empty() {
        notes.push(format!(
            "left out of the duplicate and label checks as row identifiers (distinct integers): {}",
            identifiers.join(", ")
        ));
    }
    let feature_cols: Vec<usize> = (0..frame.names.len())
        .filter(|c| *c != label_col && !identifiers.contains(&frame.names[*c]))
        .collect();
    let row_hash = |r: usize, near: bool| -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for &c in &feature_cols {
            match frame.cells[c][r] {
                Cell::Missing => 0u8.hash(&mut h),
                Cell::Num(v) => {
                    1u8.hash(&mut h);
                    if near {
                        // Four significant digits.
                        if v == 0.0 || !v.is_finite() {
                            v.to_bits().hash(&mut h);
                        } else {
                            let e = v.abs().log10().floor() as i32 - 3;
                            ((v / 10f64.powi(e)).round() as i64, e).hash(&mut h);
                        }
                    } else {
                        v.to_bits().hash(&mut h);
                    }
                }
                Cell::Text(t) => {
                    2u8.hash(&mut h);
                    if near {
                        let s = frame.texts.get(t as usize).map_or("", String::as_str);
                        for tok in tokens(s) {
                            tok.hash(&mut h);
                        }
                    } else {
                        t.hash(&mut h);
                    }
                }
            }
        }
        h.finish()
    };
    let group = |near: bool| -> Vec<Vec<usize>> {
        let hashes: Vec<u64> = (0..n).into_par_iter().map(|r| row_hash(r, near)).collect();
        let mut groups: HashMap<u64, Vec<usize>> = HashMap::new();
        for (r, h) in hashes.into_iter().enumerate() {
            groups.entry(h).or_default().push(r);
        }
        let mut out: Vec<Vec<usize>> = groups.into_values().filter(|g| g.len() > 1).collect();
        out.sort();
        out
    };
    let exact = group(false);
    let near = group(true);
    let exact_rows: usize = exact.iter().map(|g| g.len() - 1).sum();
    let near_only: Vec<&Vec<usize>> = near.iter().filter(|g| !exact.contains(g)).collect();
    let near_rows: usize = near_only.iter().map(|g| g.len() - 1).sum();
    let conflicting: Vec<&Vec<usize>> = near
        .iter()
        .filter(|g| {
            let mut ls = g.iter().filter_map(|r| labels[*r]);
            let first = ls.next();
            ls.any(|l| Some(l) != first)
        })
        .collect();
    let duplicates = Duplicates {
        exact_groups: exact.len(),
        exact_rows,
        near_groups: near_only.len(),
        near_rows,
        conflicting_groups: conflicting.len(),
        conflicting_rows: conflicting.iter().map(|g| g.len()).sum(),
        conflict_examples: conflicting
            .iter()
            .take(MAX_EXAMPLES)
            .map(|g| g.iter().map(|r| r + 1).collect())
            .collect(),
    };

    // Label-flip suspects.

    let (mut suspects, mut cl_count, mut knn_count, mut knn_rows) = (Vec::new(), 0, 0, 0);
    if k >= 2 && !feats.is_empty() && n >= FOLDS * 2 {
        let probs = out_of_fold(&feats, &labels, k);
        let cl = confident_learning(&probs, &labels, k);
        cl_count = cl.len();
        let sample: Vec<usize> = if n <= MAX_KNN_ROWS {
            (0..n).collect()
        } else {
            notes.push(format!(
                "the nearest-neighbour check ran on an evenly spaced sample of {MAX_KNN_ROWS} of {n} rows (MAX_KNN_ROWS)"
            ));
            (0..MAX_KNN_ROWS).map(|i| i * n / MAX_KNN_ROWS).collect()
        };
        knn_rows = sample.len();
        let knn = knn_disagreement(&feats, &labels, &sample, options.knn_agreement);
        knn_count = knn.len();
        let mut by_row: HashMap<usize, LabelSuspect> = HashMap::new();
        for (row, j, score) in cl {
            by_row.insert(
                row,
                LabelSuspect {
                    row: row + 1,
                    given: labels[row].map_or_else(String::new, |l| label_names[l].clone()),
                    suggested: label_names[j].clone(),
                    score,
                    methods: vec!["confident-learning"],
                },
            );
        }
        for (row, j, share) in knn {
            by_row
                .entry(row)
                .and_modify(|s| s.methods.push("knn"))
                .or_insert_with(|| LabelSuspect {
                    row: row + 1,
                    given: labels[row].map_or_else(String::new, |l| label_names[l].clone()),
                    suggested: label_names[j].clone(),
                    score: share,
                    methods: vec!["knn"],
                });
        }
        suspects = by_row.into_values().collect();
        suspects.sort_by(|a, b| {
            b.methods
                .len()
                .cmp(&a.methods.len())
                .then(b.score.total_cmp(&a.score))
                .then(a.row.cmp(&b.row))
        });
    } else {
        notes.push("label checks need two labels or more, a feature and 10 rows".to_string());
    }

    // Trigger candidates: values and tokens on few rows, nearly all with one label.
    let labelled = (n - unlabelled).max(1) as f64;
    let mut candidates: Vec<(usize, &'static str, String, Vec<usize>)> = Vec::new();
    for &c in &feature_cols {
        let col = &frame.cells[c];
        let mut by_number: HashMap<u64, Vec<usize>> = HashMap::new();
        let mut by_text: HashMap<u32, Vec<usize>> = HashMap::new();
        let mut by_token: HashMap<String, Vec<usize>> = HashMap::new();
        let texts = col.iter().filter(|x| matches!(x, Cell::Text(_))).count();
        let distinct_texts: std::collections::HashSet<u32> = col
            .iter()
            .filter_map(|x| {
                if let Cell::Text(t) = x {
                    Some(*t)
                } else {
                    None
                }
            })
            .collect();
        // Free text (values of several words, or mostly distinct): search its tokens.
        let multi_word = col
            .iter()
            .filter(|x| match x {
                Cell::Text(t) => frame
                    .texts
                    .get(*t as usize)
                    .is_some_and(|s| s.trim().contains(char::is_whitespace)),
                _ => false,
            })
            .count();
        let free_text = texts > 0 && (distinct_texts.len() * 2 > texts || multi_word * 2 >= texts);
        for (r, x) in col.iter().enumerate() {
            if labels[r].is_none() {
                continue;
            }
            match x {
                Cell::Num(v) => by_number.entry(v.to_bits()).or_default().push(r),
                Cell::Text(t) if free_text => {
                    let s = frame.texts.get(*t as usize).map_or("", String::as_str);
                    let mut seen = std::collections::HashSet::new();
                    for tok in tokens(s) {
                        if seen.insert(tok.clone())
                            && (by_token.len() < MAX_TOKENS || by_token.contains_key(&tok))
                        {
                            by_token.entry(tok).or_default().push(r);
                        }
                    }
                }
                Cell::Text(t) if *t != OTHER => by_text.entry(*t).or_default().push(r),
                Cell::Text(_) | Cell::Missing => {}
            }
        }
        // A numeric column's repeated exact values are only candidates when the column is
        // otherwise continuous.
        let nums: usize = by_number.values().map(Vec::len).sum();
        if nums > 0 && by_number.len() * 2 > nums {
            for (bits, rows) in by_number {
                candidates.push((c, "value", format!("{}", f64::from_bits(bits)), rows));
            }
        }
        for (t, rows) in by_text {
            let pattern = frame.texts.get(t as usize).cloned().unwrap_or_default();
            candidates.push((c, "value", pattern, rows));
        }
        for (tok, rows) in by_token {
            candidates.push((c, "token", tok, rows));
        }
    }
    let max_rows = (labelled * MAX_TRIGGER_SHARE).ceil() as usize;
    let tested: Vec<_> = candidates
        .into_iter()
        .filter(|(_, _, _, rows)| {
            rows.len() >= MIN_TRIGGER_ROWS && rows.len() <= max_rows.max(MIN_TRIGGER_ROWS)
        })
        .collect();
    let bound = options.alpha / tested.len().max(1) as f64;
    let mut triggers: Vec<Trigger> = tested
        .into_iter()
        .filter_map(|(c, kind, pattern, rows)| {
            let mut votes = vec![0usize; k];
            for r in &rows {
                if let Some(l) = labels[*r] {
                    votes[l] += 1;
                }
            }
            let (top, &hits) = votes.iter().enumerate().max_by_key(|(_, v)| **v)?;
            let purity = hits as f64 / rows.len() as f64;
            let base = label_counts[top] as f64 / labelled;
            if purity < 0.9 || purity <= base {
                return None;
            }
            let p = binomial_tail(hits, rows.len(), base);
            (p < bound).then(|| Trigger {
                column: frame.names[c].clone(),
                kind,
                pattern: pattern.chars().take(80).collect(),
                rows: rows.len(),
                label: label_names[top].clone(),
                purity,
                base_rate: base,
                p_value: p,
            })
        })
        .collect();
    triggers.sort_by(|a, b| {
        a.p_value
            .total_cmp(&b.p_value)
            .then(a.pattern.cmp(&b.pattern))
    });

    // Outliers per numeric column: robust z over median and MAD.
    let mut outliers = Vec::new();
    for &c in &feature_cols {
        let vals: Vec<(usize, f64)> = frame.cells[c]
            .iter()
            .enumerate()
            .filter_map(|(r, x)| match x {
                Cell::Num(v) if v.is_finite() => Some((r, *v)),
                _ => None,
            })
            .collect();
        if vals.len() < 20 {
            continue;
        }
        let mut sorted: Vec<f64> = vals.iter().map(|(_, v)| *v).collect();
        stats::sort(&mut sorted);
        let med = stats::quantile(&sorted, 0.5);
        let mut dev: Vec<f64> = sorted.iter().map(|v| (v - med).abs()).collect();
        stats::sort(&mut dev);
        let mad = stats::quantile(&dev, 0.5) * 1.4826;
        if mad <= 0.0 {
            continue;
        }
        let rows: Vec<usize> = vals
            .iter()
            .filter(|(_, v)| ((v - med) / mad).abs() > options.outlier_z)
            .map(|(r, _)| r + 1)
            .collect();
        if !rows.is_empty() {
            outliers.push(Outliers {
                column: frame.names[c].clone(),
                count: rows.len(),
                examples: rows.into_iter().take(MAX_EXAMPLES).collect(),
            });
        }
    }

    // Against a reference: columns and class balance.
    let (mut missing_columns, mut new_columns, mut balance) = (Vec::new(), Vec::new(), None);
    if let Some(reference) = reference {
        missing_columns = reference
            .names
            .iter()
            .filter(|c| !frame.names.contains(c))
            .cloned()
            .collect();
        new_columns = frame
            .names
            .iter()
            .filter(|c| !reference.names.contains(c))
            .cloned()
            .collect();
        if let Some(rc) = reference.names.iter().position(|c| *c == options.label) {
            let mut rcounts: HashMap<String, u64> = HashMap::new();
            for c in &reference.cells[rc] {
                if let Some(t) = label_text(reference, *c) {
                    *rcounts.entry(t).or_default() += 1;
                }
            }
            let mut all: Vec<String> = label_names.clone();
            for key in rcounts.keys() {
                if !all.contains(key) {
                    all.push(key.clone());
                }
            }
            all.sort();
            let cur: Vec<u64> = all
                .iter()
                .map(|l| label_ids.get(l).map_or(0, |i| label_counts[*i]))
                .collect();
            let refc: Vec<u64> = all
                .iter()
                .map(|l| rcounts.get(l).copied().unwrap_or(0))
                .collect();
            let chi = stats::chi2_contingency(&refc, &cur);
            let fr: Vec<f64> = refc.iter().map(|x| *x as f64).collect();
            let fc: Vec<f64> = cur.iter().map(|x| *x as f64).collect();
            let js = stats::jensen_shannon(&fr, &fc);
            balance = Some(Balance {
                reference: all.iter().cloned().zip(refc).collect(),
                current: all.iter().cloned().zip(cur).collect(),
                chi2: chi.statistic,
                p_value: chi.p_value,
                jensen_shannon: js,
                shifted: chi.p_value < options.alpha && js >= 0.05,
            });
        } else {
            notes.push(format!(
                "the reference has no column {:?}: class balance not compared",
                options.label
            ));
        }
    }
    if frame.rows_not_read > 0 {
        notes.push(format!(
            "{} rows past MAX_AUDIT_ROWS ({MAX_AUDIT_ROWS}) were not audited",
            frame.rows_not_read
        ));
    }
    let mut counts: Vec<(String, u64)> = label_names
        .iter()
        .cloned()
        .zip(label_counts.iter().copied())
        .collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(AuditReport {
        dataset: frame.path.clone(),
        rows: n,
        columns: frame.names.len(),
        label: options.label.clone(),
        label_counts: counts,
        unlabelled_rows: unlabelled,
        file_sha256: frame.file_sha256.clone(),
        content_fingerprint,
        duplicates,
        label_suspects: suspects,
        confident_learning_suspects: cl_count,
        knn_suspects: knn_count,
        knn_rows,
        triggers,
        outliers,
        balance,
        missing_columns,
        new_columns,
        schema_violations: options
            .schema
            .as_ref()
            .map(|sc| check_schema(frame, sc))
            .unwrap_or_default(),
        notes,
    })
}

const CHEAT_SHEET: &str =
    "https://cheatsheetseries.owasp.org/cheatsheets/Secure_AI_Model_Ops_Cheat_Sheet.html";

pub static AUD_DUPLICATES: Rule = Rule {
    id: "AUD001",
    name: "duplicate-rows",
    summary: "Training rows repeat, exactly or nearly",
    severity: Severity::Low,
    cwe: &["CWE-1284"],
    owasp: &["ML02"],
    what: "Groups rows whose features are identical, or identical after rounding numbers to four significant digits and normalising text.",
    why: "Duplicates overweight some examples, leak between train and test splits, and are the cheapest way to amplify a poisoned row.",
    example: "1,204 rows repeat other rows exactly",
    remediation: "Deduplicate before splitting and training; find out why the pipeline repeats rows.",
    references: &[CHEAT_SHEET],
};

pub static AUD_CONFLICTS: Rule = Rule {
    id: "AUD002",
    name: "conflicting-labels",
    summary: "Identical features carry different labels",
    severity: Severity::Medium,
    cwe: &["CWE-1284"],
    owasp: &["ML02"],
    what: "Finds groups of exact or near duplicates whose labels disagree.",
    why: "The same input cannot honestly have two labels: one is a labelling error or a flipped label planted to poison the model.",
    example: "rows 17 and 9,031 have the same features, labels 'fraud' and 'ok'",
    remediation: "Review the group and keep one correct label.",
    references: &[CHEAT_SHEET],
};

pub static AUD_LABEL_FLIPS: Rule = Rule {
    id: "AUD003",
    name: "label-flip-suspects",
    summary: "Rows whose labels look flipped",
    severity: Severity::Medium,
    cwe: &["CWE-1284"],
    owasp: &["ML02"],
    what: "Flags rows whose label disagrees with out-of-fold predictions (confident learning) or with nearly all of their nearest neighbours.",
    why: "Label flipping is the simplest poisoning attack; a few flipped labels move decision boundaries where the attacker wants them.",
    example: "row 4,112 labelled 'ok', model 0.97 'fraud', 9 of 10 neighbours 'fraud'",
    remediation: "Review the suspects, starting with those both methods flag; relabel or drop them, and find where they came from.",
    references: &[CHEAT_SHEET],
};

pub static AUD_TRIGGER: Rule = Rule {
    id: "AUD004",
    name: "backdoor-trigger-candidate",
    summary: "A rare value or token nearly always comes with one label",
    severity: Severity::High,
    cwe: &["CWE-506"],
    owasp: &["ML02", "ML10"],
    what: "Finds values and text tokens on at most 5% of rows (and at least 10) whose rows carry one label at least 90% of the time, significantly above its base rate (binomial test, Bonferroni over all candidates).",
    why: "A backdoor is planted by adding a trigger (a token, a pixel patch, a magic value) to rows labelled with the attacker's target; the model learns the shortcut and obeys the trigger in production.",
    example: "token 'cf' on 212 rows, 100% labelled 'positive' (base rate 48%)",
    remediation: "Inspect the rows with the pattern; if it has no legitimate reason to predict the label, remove them and retrain.",
    references: &[CHEAT_SHEET],
};

pub static AUD_OUTLIERS: Rule = Rule {
    id: "AUD005",
    name: "outliers",
    summary: "Values far outside a column's distribution",
    severity: Severity::Low,
    cwe: &["CWE-1284"],
    owasp: &["ML02"],
    what: "Counts values whose robust z-score (median and MAD) exceeds 6.",
    why: "Extreme values are either errors or crafted points that pull a model; both deserve a look before training.",
    example: "amount: 37 values beyond 6 robust standard deviations",
    remediation: "Check the rows; fix, clip or drop values that are errors.",
    references: &[CHEAT_SHEET],
};

pub static AUD_BALANCE: Rule = Rule {
    id: "AUD006",
    name: "class-balance-shift",
    summary: "The label distribution differs from the reference",
    severity: Severity::Medium,
    cwe: &["CWE-1284"],
    owasp: &["ML02"],
    what: "Compares label counts with the reference dataset (chi-squared, and a Jensen–Shannon distance of at least 0.05).",
    why: "A shifted class balance changes what the model learns; an attacker injecting rows of one class shifts it.",
    example: "label: 'fraud' 2.1% in the reference, 9.8% now",
    remediation: "Find where the new rows came from; rebalance or reweight if the shift is legitimate.",
    references: &[CHEAT_SHEET],
};

pub static AUD_SCHEMA: Rule = Rule {
    id: "AUD007",
    name: "schema-mismatch",
    summary: "Columns differ from the reference dataset or break the declared schema",
    severity: Severity::High,
    cwe: &["CWE-20"],
    owasp: &["ML02"],
    what: "Compares column names with the reference dataset, and checks a declared schema (--schema): required columns, types, ranges, allowed values and missing shares.",
    why: "A training set missing a feature, or carrying a new one, is not the dataset the pipeline was built for.",
    example: "column 'income' is in the reference but not in this dataset",
    remediation: "Restore the schema, or update the reference deliberately.",
    references: &[CHEAT_SHEET],
};

pub static AUD_UNCHECKED: Rule = Rule {
    id: "AUD008",
    name: "audit-not-complete",
    summary: "Part of the dataset was not audited",
    severity: Severity::Info,
    cwe: &["CWE-20"],
    owasp: &["ML02"],
    what: "Reports unreadable rows, rows past the audit's limits, and checks that ran on a sample.",
    why: "What was not checked cannot have been found clean.",
    example: "the nearest-neighbour check ran on a sample of 10000 of 250000 rows",
    remediation: "Fix unreadable rows at the source; audit large datasets in parts for full coverage.",
    references: &[CHEAT_SHEET],
};

/// The audit rules, for `mlsec rules` and SARIF.
pub static RULES: &[&Rule] = &[
    &AUD_DUPLICATES,
    &AUD_CONFLICTS,
    &AUD_LABEL_FLIPS,
    &AUD_TRIGGER,
    &AUD_OUTLIERS,
    &AUD_BALANCE,
    &AUD_SCHEMA,
    &AUD_UNCHECKED,
];

impl AuditReport {
    /// The checks' results as findings, located at the dataset.
    pub fn findings(&self, frame: &Frame) -> Report {
        let mut report = Report {
            rules: RULES.to_vec(),
            ..Report::default()
        };
        let at = || Location::file(&self.dataset);
        let d = &self.duplicates;
        if d.exact_rows + d.near_rows > 0 {
            report.findings.push(Finding::new(
                &AUD_DUPLICATES,
                at(),
                format!(
                    "{} rows repeat other rows exactly ({} groups), {} more nearly ({} groups)",
                    d.exact_rows, d.exact_groups, d.near_rows, d.near_groups
                ),
            ));
        }
        if d.conflicting_groups > 0 {
            let ex: Vec<String> = d
                .conflict_examples
                .iter()
                .take(3)
                .map(|g| {
                    format!(
                        "rows {}",
                        g.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join("/")
                    )
                })
                .collect();
            report.findings.push(
                Finding::new(
                    &AUD_CONFLICTS,
                    at().field(&self.label),
                    format!(
                        "{} groups of duplicates ({} rows) carry different labels",
                        d.conflicting_groups, d.conflicting_rows
                    ),
                )
                .evidence(ex.join("; ")),
            );
        }
        if !self.label_suspects.is_empty() {
            let both = self
                .label_suspects
                .iter()
                .filter(|s| s.methods.len() > 1)
                .count();
            let ex: Vec<String> = self
                .label_suspects
                .iter()
                .take(5)
                .map(|s| {
                    format!(
                        "row {}: {:?} → {:?} ({:.2}, {})",
                        s.row,
                        s.given,
                        s.suggested,
                        s.score,
                        s.methods.join("+")
                    )
                })
                .collect();
            report.findings.push(
                Finding::new(
                    &AUD_LABEL_FLIPS,
                    at().field(&self.label),
                    format!(
                        "{} label-flip suspects ({} by confident learning, {} by nearest neighbours, {both} by both)",
                        self.label_suspects.len(),
                        self.confident_learning_suspects,
                        self.knn_suspects
                    ),
                )
                .evidence(ex.join("; ")),
            );
        }
        for t in &self.triggers {
            report.findings.push(Finding::new(
                &AUD_TRIGGER,
                at().field(&t.column),
                format!(
                    "{} {:?} in '{}' is on {} rows, {:.0}% labelled {:?} (base rate {:.0}%, p = {:.1e})",
                    t.kind,
                    t.pattern,
                    t.column,
                    t.rows,
                    t.purity * 100.0,
                    t.label,
                    t.base_rate * 100.0,
                    t.p_value
                ),
            ));
        }
        for o in &self.outliers {
            report.findings.push(Finding::new(
                &AUD_OUTLIERS,
                at().field(&o.column),
                format!(
                    "{}: {} values beyond a robust z-score of 6 (rows {})",
                    o.column,
                    o.count,
                    o.examples
                        .iter()
                        .take(5)
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        if let Some(b) = &self.balance
            && b.shifted
        {
            report.findings.push(Finding::new(
                &AUD_BALANCE,
                at().field(&self.label),
                format!(
                    "label balance shifted from the reference: chi2 = {:.1} (p = {:.1e}), Jensen–Shannon = {:.3}",
                    b.chi2, b.p_value, b.jensen_shannon
                ),
            ));
        }
        for c in &self.missing_columns {
            report.findings.push(Finding::new(
                &AUD_SCHEMA,
                at().field(c),
                format!("column '{c}' is in the reference but not in this dataset"),
            ));
        }
        for c in &self.new_columns {
            report.findings.push(
                Finding::new(
                    &AUD_SCHEMA,
                    at().field(c),
                    format!("column '{c}' is not in the reference"),
                )
                .severity(Severity::Low),
            );
        }
        for v in &self.schema_violations {
            let rows = if v.rows > 0 {
                format!(
                    ": {} rows (first {})",
                    v.rows,
                    v.examples
                        .iter()
                        .take(5)
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            } else {
                String::new()
            };
            report.findings.push(
                Finding::new(
                    &AUD_SCHEMA,
                    at().field(&v.column),
                    format!("{}: {}{rows}", v.column, v.problem),
                )
                .severity(v.severity),
            );
        }
        if frame.unreadable_rows > 0 {
            let first = frame
                .first_problem
                .as_ref()
                .map(|(l, m)| format!(" (first at line {l}: {m})"))
                .unwrap_or_default();
            report.findings.push(
                Finding::new(
                    &AUD_UNCHECKED,
                    at(),
                    format!("{} rows could not be read{first}", frame.unreadable_rows),
                )
                .severity(Severity::Low),
            );
        }
        for n in &self.notes {
            report
                .findings
                .push(Finding::new(&AUD_UNCHECKED, at(), n.clone()));
        }
        report.stats.files_scanned = 1;
        report.sort();
        report
    }
}
