//! Reading tabular data (CSV, TSV, JSON Lines) into per-column samples.
//!
//! One streaming pass per file: each field is classified once (missing, number, text), numbers
//! go into a bounded sample and text into bounded category counts. A row that cannot be read
//! (ragged, invalid JSON, over a limit) is counted and kept as an example with its line number;
//! it never aborts the read. Only a file that cannot be opened or has no header is an error.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde::Serialize;

/// Most columns read from one file; later columns are reported, not read.
pub const MAX_COLUMNS: usize = 4_096;
/// Largest JSON Lines record.
pub const MAX_LINE_BYTES: usize = 16 << 20;
/// Longest text value kept as a category (longer ones are cut at a character boundary).
pub const MAX_CATEGORY_BYTES: usize = 256;
/// Distinct categories counted per column; further distinct values go to one overflow count.
pub const MAX_CATEGORIES: usize = 50_000;
/// Numeric values kept per column. Beyond this a uniform reservoir sample is kept and the
/// column says so.
pub const MAX_VALUES: usize = 1 << 22;
/// Numbers kept across all columns of one table (2 GiB of f64). Past it, columns stop growing
/// and keep sampling into what they hold; every column keeps at least [`MIN_VALUES`].
pub const MAX_TOTAL_VALUES: u64 = 1 << 28;
/// Numbers every column may keep whatever the total.
pub const MIN_VALUES: usize = 4_096;
/// Bytes of category text kept across all columns of one table; further new categories are
/// pooled into each column's overflow count.
pub const MAX_TOTAL_CATEGORY_BYTES: u64 = 256 << 20;
/// Row problems kept as examples (all are counted).
pub const MAX_PROBLEM_EXAMPLES: usize = 20;

/// Text that means "no value", as pandas reads it by default.
pub(crate) const MISSING: &[&str] = &[
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
];

/// How a data file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Format {
    Csv,
    Tsv,
    Jsonl,
    /// Apache Parquet (read from a file, not a stream).
    Parquet,
    /// A saved profile (`mlsec drift profile`), usable as a reference.
    Profile,
}

impl Format {
    /// The format a path's extension names (`.csv`, `.tsv`, `.jsonl`/`.ndjson`), with a
    /// trailing `.gz` not supported (say so rather than misread it).
    pub fn from_path(path: &Path) -> Result<Format, DataError> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let ext = name.rsplit('.').next().unwrap_or("");
        match ext {
            "csv" | "txt" => Ok(Format::Csv),
            "tsv" | "tab" => Ok(Format::Tsv),
            "json" if name.ends_with(".profile.json") => Ok(Format::Profile),
            "jsonl" | "ndjson" | "json" => Ok(Format::Jsonl),
            "parquet" | "pq" => Ok(Format::Parquet),
            _ => Err(DataError::UnknownFormat {
                path: path.display().to_string(),
                ext: ext.to_string(),
            }),
        }
    }
}

/// Why a file could not be read at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: unknown data format '.{ext}' (expected .csv, .tsv, .jsonl, .ndjson or .parquet)"
    )]
    UnknownFormat { path: String, ext: String },
    #[error("{path}: no header row (an empty file)")]
    NoHeader { path: String },
    #[error("{path}: header: {message}")]
    Header { path: String, message: String },
    #[error("{path}: not a usable data schema: {message}")]
    Schema { path: String, message: String },
    #[error("{path}: Parquet: {message}")]
    Parquet { path: String, message: String },
    #[error("{path}: not a usable drift profile: {message}")]
    Profile { path: String, message: String },
}

/// One row that could not be read, kept as an example.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub line: u64,
    pub message: String,
}

/// Everything read from one column.
#[derive(Debug, Clone, Default)]
pub struct Column {
    pub name: String,
    /// Rows that had this column (present, even if empty).
    pub present: u64,
    pub missing: u64,
    /// Values that parsed as numbers (finite or not).
    pub numeric: u64,
    /// Numbers that were infinite.
    pub non_finite: u64,
    /// Values that were text (or JSON booleans, objects, arrays).
    pub text: u64,
    /// A sample of the finite numbers: all of them up to [`MAX_VALUES`].
    pub values: Vec<f64>,
    /// Text values and how often each occurred.
    pub categories: HashMap<String, u64>,
    /// Text values beyond [`MAX_CATEGORIES`] distinct ones.
    pub overflow: u64,
    /// Reservoir state once the sample is full.
    rng: u64,
}

impl Column {
    pub(crate) fn new(name: String) -> Column {
        Column {
            name,
            rng: 0x9e37_79b9_7f4a_7c15,
            ..Column::default()
        }
    }

    /// Finite numbers seen; `values` holds all of them or a sample standing for them.
    pub fn finite(&self) -> u64 {
        self.numeric - self.non_finite
    }

    /// Whether the numbers are a sample rather than all of them.
    pub fn sampled(&self) -> bool {
        self.finite() > self.values.len() as u64
    }

    fn push_number(&mut self, v: f64, budget: &mut Budget) {
        self.numeric += 1;
        if !v.is_finite() {
            self.non_finite += 1;
            return;
        }
        let len = self.values.len();
        if len < MIN_VALUES || (len < MAX_VALUES && budget.values < MAX_TOTAL_VALUES) {
            self.values.push(v);
            budget.values += 1;
            return;
        }
        // Algorithm R with a fixed-seed xorshift: the same file gives the same sample.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let seen = self.numeric - self.non_finite;
        let slot = self.rng % seen;
        if let Some(x) = self.values.get_mut(slot as usize) {
            *x = v;
        }
    }

    fn push_text(&mut self, s: &str, budget: &mut Budget) {
        self.text += 1;
        let key = truncate(s, MAX_CATEGORY_BYTES);
        if let Some(n) = self.categories.get_mut(key) {
            *n += 1;
        } else if self.categories.len() < MAX_CATEGORIES
            && budget.category_bytes + key.len() as u64 <= MAX_TOTAL_CATEGORY_BYTES
        {
            budget.category_bytes += key.len() as u64;
            self.categories.insert(key.to_string(), 1);
        } else {
            self.overflow += 1;
        }
    }

    /// Classifies one CSV field.
    fn push_field(&mut self, raw: &str, budget: &mut Budget) {
        self.present += 1;
        let s = raw.trim();
        // Numbers first: most fields are numbers, and none of the missing markers parses as
        // one (the NaN spellings parse to NaN, which `parse_number` refuses).
        if let Some(v) = parse_number(s) {
            self.push_number(v, budget);
        } else if MISSING.contains(&s) {
            self.missing += 1;
        } else {
            self.push_text(s, budget);
        }
    }

    pub(crate) fn push_parquet(&mut self, v: &crate::parquet_file::Value<'_>, budget: &mut Budget) {
        use crate::parquet_file::Value;
        self.present += 1;
        match v {
            Value::Missing => self.missing += 1,
            Value::Num(x) => self.push_number(*x, budget),
            Value::Text(s) if MISSING.contains(&s.trim()) => self.missing += 1,
            Value::Text(s) => self.push_text(s, budget),
        }
    }

    fn push_json(&mut self, v: &serde_json::Value, budget: &mut Budget) {
        use serde_json::Value;
        self.present += 1;
        match v {
            Value::Null => self.missing += 1,
            Value::Number(n) => match n.as_f64() {
                Some(x) => self.push_number(x, budget),
                None => self.push_text(&n.to_string(), budget),
            },
            Value::String(s) if MISSING.contains(&s.trim()) => self.missing += 1,
            Value::String(s) => self.push_text(s, budget),
            Value::Bool(b) => self.push_text(if *b { "true" } else { "false" }, budget),
            other => self.push_text(&other.to_string(), budget),
        }
    }
}

/// What one table has kept so far, against [`MAX_TOTAL_VALUES`] and
/// [`MAX_TOTAL_CATEGORY_BYTES`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Budget {
    values: u64,
    category_bytes: u64,
}

/// Refuses a physical line longer than [`MAX_LINE_BYTES`], so one hostile CSV record cannot
/// make the reader buffer the whole file.
pub(crate) struct LineLimit<R> {
    inner: R,
    run: usize,
}

impl<R> LineLimit<R> {
    pub(crate) fn new(inner: R) -> LineLimit<R> {
        LineLimit { inner, run: 0 }
    }
}

impl<R: Read> Read for LineLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let chunk = buf.get(..n).unwrap_or_default();
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            if self.run + (nl - start) > MAX_LINE_BYTES {
                return Err(long_line());
            }
            self.run = 0;
            start = nl + 1;
        }
        self.run += n - start;
        if self.run > MAX_LINE_BYTES {
            return Err(long_line());
        }
        Ok(n)
    }
}

fn long_line() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("a line longer than {MAX_LINE_BYTES} bytes (MAX_LINE_BYTES)"),
    )
}

/// Numbers as CSV writers print them; `inf`/`-inf` count (as non-finite), `nan` is missing.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let first = *b.first()?;
    if !(first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.' | b'i' | b'I')) {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| !v.is_nan())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// One file, read.
#[derive(Debug, Clone)]
pub struct Table {
    pub path: String,
    pub format: Format,
    /// Data rows read (not counting the header or unreadable rows).
    pub rows: u64,
    pub columns: Vec<Column>,
    /// Rows that could not be read, all counted.
    pub problem_count: u64,
    pub problems: Vec<Problem>,
    /// Header names beyond [`MAX_COLUMNS`].
    pub dropped_columns: u64,
    pub(crate) budget: Budget,
}

impl Table {
    /// A table with no columns or rows yet.
    pub(crate) fn empty(path: String, format: Format) -> Table {
        Table {
            path,
            format,
            rows: 0,
            columns: Vec::new(),
            problem_count: 0,
            problems: Vec::new(),
            dropped_columns: 0,
            budget: Budget::default(),
        }
    }

    fn problem(&mut self, line: u64, message: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_PROBLEM_EXAMPLES {
            self.problems.push(Problem { line, message });
        }
    }

    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Sorts every column's numbers (the two-sample statistics need them sorted).
    pub fn sort(&mut self) {
        use rayon::prelude::*;
        self.columns
            .par_iter_mut()
            .for_each(|c| crate::stats::sort(&mut c.values));
    }
}

/// Reads a file, choosing the format by extension (a `.profile.json` is a saved profile).
pub fn read_path(path: &Path) -> Result<Table, DataError> {
    let format = Format::from_path(path)?;
    if format == Format::Profile {
        return crate::profile::Profile::read(path).map(|p| p.to_table());
    }
    if format == Format::Parquet {
        return read_parquet(path);
    }
    let file = fs_err::File::open(path).map_err(|e| DataError::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    let size = file.metadata().map(|m| m.len()).ok();
    let mut chunks = Chunks::new(file, &path.display().to_string(), format)?;
    chunks.size_hint = size;
    Ok(match chunks.next_table(None)? {
        Some(t) => t,
        None => chunks.empty(),
    })
}

/// Reads a Parquet file whole into a table.
fn read_parquet(path: &Path) -> Result<Table, DataError> {
    let mut table = Table::empty(path.display().to_string(), Format::Parquet);
    let mut columns: Vec<Column> = Vec::new();
    let mut budget = Budget::default();
    // Flat files column by column; nested ones (and rarer types) by row.
    let columnar = crate::parquet_file::read_columnar(path, &mut |i, v| {
        if columns.len() <= i {
            columns.resize_with(i + 1, || Column::new(String::new()));
        }
        columns[i].push_parquet(v, &mut budget);
    });
    let read = match columnar {
        Ok(Some(read)) => read,
        // Not flat, or a decoding error part-way: the row reader reads what it can and counts
        // the rest as unreadable.
        Ok(None) | Err(DataError::Parquet { .. }) => {
            columns.clear();
            budget = Budget::default();
            crate::parquet_file::read_rows(path, &mut |row| {
                if columns.len() < row.len() {
                    columns.resize_with(row.len(), || Column::new(String::new()));
                }
                for (c, v) in columns.iter_mut().zip(row) {
                    c.push_parquet(v, &mut budget);
                }
                true
            })?
        }
        Err(e) => return Err(e),
    };
    columns.resize_with(read.names.len(), || Column::new(String::new()));
    for (c, name) in columns.iter_mut().zip(&read.names) {
        c.name.clone_from(name);
    }
    table.columns = columns;
    table.budget = budget;
    table.rows = read.rows;
    table.dropped_columns = read.dropped_columns;
    table.problem_count = read.unreadable;
    if let Some((line, message)) = read.first_problem {
        table.problems.push(Problem {
            line,
            message: format!("row {line} and every row after it could not be decoded: {message}"),
        });
    }
    table.sort();
    Ok(table)
}

/// Reads CSV, TSV or JSON Lines from any reader; `name` labels errors and findings.
pub fn read(input: impl Read, name: &str, format: Format) -> Result<Table, DataError> {
    let mut chunks = Chunks::new(input, name, format)?;
    Ok(match chunks.next_table(None)? {
        Some(t) => t,
        None => chunks.empty(),
    })
}

enum Source<R: Read> {
    Delimited {
        reader: csv::Reader<BufReader<LineLimit<R>>>,
        names: Vec<String>,
        width: usize,
        dropped: u64,
    },
    Jsonl {
        reader: BufReader<R>,
    },
}

/// A reader that hands out consecutive tables of at most N rows: `--window` over a stream.
/// [`read`] is one chunk of everything.
pub struct Chunks<R: Read> {
    source: Source<R>,
    name: String,
    format: Format,
    /// The last physical line read (JSON Lines; CSV records carry their own positions).
    line: u64,
    done: bool,
    /// The input's size in bytes, when known: numeric columns are sized from it after the
    /// first rows, so a large file's columns are allocated once instead of doubling.
    pub size_hint: Option<u64>,
}

impl<R: Read> Chunks<R> {
    /// Opens the stream; for CSV and TSV this reads the header row.
    pub fn new(input: R, name: &str, format: Format) -> Result<Chunks<R>, DataError> {
        let delimiter = match format {
            Format::Csv => b',',
            Format::Tsv => b'\t',
            Format::Jsonl => {
                return Ok(Chunks {
                    source: Source::Jsonl {
                        reader: BufReader::with_capacity(1 << 20, input),
                    },
                    name: name.to_string(),
                    format,
                    line: 0,
                    done: false,
                    size_hint: None,
                });
            }
            Format::Profile => {
                return Err(DataError::Profile {
                    path: name.to_string(),
                    message: "a profile is a reference, not a stream".to_string(),
                });
            }
            Format::Parquet => {
                return Err(DataError::Parquet {
                    path: name.to_string(),
                    message: "Parquet is read from a file (its footer comes first), not a stream: name the file, or use CSV or JSON Lines for --window and stdin".to_string(),
                });
            }
        };
        let mut buffered = BufReader::with_capacity(1 << 20, LineLimit::new(input));
        let delimiter = if format == Format::Csv {
            sniff_delimiter(&mut buffered).map_err(|e| DataError::Io {
                path: name.to_string(),
                source: e,
            })?
        } else {
            delimiter
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(true)
            .from_reader(buffered);
        let headers = reader
            .byte_headers()
            .map_err(|e| csv_error(e, name))?
            .clone();
        if headers.is_empty() {
            return Err(DataError::NoHeader {
                path: name.to_string(),
            });
        }
        let raw: Vec<String> = headers
            .iter()
            .map(|h| String::from_utf8_lossy(h).trim().to_string())
            .collect();
        Ok(Chunks {
            source: Source::Delimited {
                names: unique_names(&raw, MAX_COLUMNS),
                width: raw.len(),
                dropped: raw.len().saturating_sub(MAX_COLUMNS) as u64,
                reader,
            },
            name: name.to_string(),
            format,
            line: 0,
            done: false,
            size_hint: None,
        })
    }

    /// A table with the stream's columns and no rows.
    pub fn empty(&self) -> Table {
        let mut t = Table::empty(self.name.clone(), self.format);
        if let Source::Delimited { names, dropped, .. } = &self.source {
            t.columns = names.iter().cloned().map(Column::new).collect();
            t.dropped_columns = *dropped;
        }
        t
    }

    /// The next table of at most `max_rows` readable rows (all remaining rows with `None`), or
    /// `None` once the stream is exhausted. Unreadable rows are counted in the table they fall
    /// in and do not count towards `max_rows`.
    pub fn next_table(&mut self, max_rows: Option<u64>) -> Result<Option<Table>, DataError> {
        if self.done {
            return Ok(None);
        }
        let mut table = self.empty();
        let limit = max_rows.unwrap_or(u64::MAX).max(1);
        let hint = if max_rows.is_none() {
            self.size_hint
        } else {
            None
        };
        let eof = match &mut self.source {
            Source::Delimited { reader, width, .. } => {
                read_delimited(reader, *width, &mut table, limit, hint)?
            }
            Source::Jsonl { reader } => read_jsonl(reader, &mut table, limit, &mut self.line)?,
        };
        self.done = eof;
        if table.rows == 0 && table.problem_count == 0 && eof && max_rows.is_some() {
            return Ok(None);
        }
        for c in &mut table.columns {
            // A JSON record without the key, or a short CSV row, is a missing value.
            c.missing += table.rows - c.present.min(table.rows);
            c.present = table.rows;
        }
        table.sort();
        Ok(Some(table))
    }
}

fn csv_error(e: csv::Error, path: &str) -> DataError {
    let message = e.to_string();
    match e.into_kind() {
        csv::ErrorKind::Io(source) => DataError::Io {
            path: path.to_string(),
            source,
        },
        _ => DataError::Header {
            path: path.to_string(),
            message,
        },
    }
}

/// Reads up to `limit` rows; true at the end of the input.
fn read_delimited<R: Read>(
    reader: &mut csv::Reader<BufReader<LineLimit<R>>>,
    width: usize,
    table: &mut Table,
    limit: u64,
    size_hint: Option<u64>,
) -> Result<bool, DataError> {
    let mut record = csv::ByteRecord::new();
    let mut sized = size_hint.is_none();
    while table.rows < limit {
        if !sized && table.rows == SIZING_ROWS {
            sized = true;
            let read = reader.position().byte().max(1);
            if let Some(total) = size_hint {
                reserve(table, total, read);
            }
        }
        match reader.read_byte_record(&mut record) {
            Ok(false) => return Ok(true),
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                if let csv::ErrorKind::Io(_) = e.kind() {
                    return Err(csv_error(e, &table.path));
                }
                table.problem(line, e.to_string());
                continue;
            }
        }
        let line = record.position().map_or(0, csv::Position::line);
        if record.len() != width {
            table.problem(
                line,
                format!("{} fields where the header has {width}", record.len()),
            );
            continue;
        }
        table.rows += 1;
        let budget = &mut table.budget;
        for (col, field) in table.columns.iter_mut().zip(record.iter()) {
            match std::str::from_utf8(field) {
                Ok(s) => col.push_field(s, budget),
                Err(_) => col.push_field(&String::from_utf8_lossy(field), budget),
            }
        }
    }
    Ok(false)
}

/// The delimiter of a `.csv` file: a comma unless the header line (read ahead, not consumed)
/// has more semicolons, tabs or pipes outside quotes, as European exports and hand-made files
/// do.
pub(crate) fn sniff_delimiter(input: &mut impl BufRead) -> std::io::Result<u8> {
    let head = input.fill_buf()?;
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let mut counts = [0usize; 4];
    let mut quoted = false;
    for b in line {
        match b {
            b'"' => quoted = !quoted,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            b'|' if !quoted => counts[3] += 1,
            _ => {}
        }
    }
    let delimiters = [b',', b';', b'\t', b'|'];
    let best = (0..4)
        .max_by_key(|i| (counts[*i], usize::from(*i == 0)))
        .unwrap_or(0);
    Ok(if counts[best] > counts[0] {
        delimiters[best]
    } else {
        b','
    })
}

/// Rows read before numeric columns are sized from the input's length.
const SIZING_ROWS: u64 = 4_096;

/// Reserves room in mostly-numeric columns for the rows the rest of the input will bring,
/// estimated from the bytes the first rows took (plus 5%), capped at [`MAX_VALUES`].
fn reserve(table: &mut Table, total_bytes: u64, read_bytes: u64) {
    let rows = table.rows.max(1);
    let estimate = (total_bytes as f64 / read_bytes as f64 * rows as f64 * 1.05) as u64;
    for c in &mut table.columns {
        if c.numeric * 2 >= rows {
            let want = estimate.min(MAX_VALUES as u64) as usize;
            c.values.reserve(want.saturating_sub(c.values.len()));
        }
    }
}

/// Header names made unique the way pandas does (`a`, `a.1`, ...), blanks named by position.
pub(crate) fn unique_names(names: &[String], max: usize) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for (i, n) in names.iter().take(max).enumerate() {
        let base = if n.is_empty() {
            format!("column_{}", i + 1)
        } else {
            n.clone()
        };
        let mut name = base.clone();
        while let Some(k) = seen.get_mut(&name) {
            *k += 1;
            name = format!("{base}.{k}");
        }
        seen.insert(name.clone(), 0);
        out.push(name);
    }
    out
}

/// Reads up to `limit` records; true at the end of the input.
fn read_jsonl<R: Read>(
    reader: &mut BufReader<R>,
    table: &mut Table,
    limit: u64,
    line: &mut u64,
) -> Result<bool, DataError> {
    let io = |e: std::io::Error, path: &str| DataError::Io {
        path: path.to_string(),
        source: e,
    };
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut buf = Vec::new();
    while table.rows < limit {
        buf.clear();
        let n = (&mut *reader)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| io(e, &table.path))?;
        if n == 0 {
            return Ok(true);
        }
        *line += 1;
        if buf.len() > MAX_LINE_BYTES && buf.last() != Some(&b'\n') {
            // Skip the rest of the overlong record.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let m = (&mut *reader)
                    .take(1 << 20)
                    .read_until(b'\n', &mut rest)
                    .map_err(|e| io(e, &table.path))?;
                if m == 0 || rest.last() == Some(&b'\n') {
                    break;
                }
            }
            table.problem(
                *line,
                format!("record longer than {MAX_LINE_BYTES} bytes (MAX_LINE_BYTES)"),
            );
            continue;
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let record: serde_json::Map<String, serde_json::Value> = match serde_json::from_slice(&buf)
        {
            Ok(serde_json::Value::Object(m)) => m,
            Ok(_) => {
                table.problem(*line, "not a JSON object".to_string());
                continue;
            }
            Err(e) => {
                table.problem(*line, format!("invalid JSON: {e}"));
                continue;
            }
        };
        table.rows += 1;
        for (key, value) in &record {
            let idx = if let Some(i) = index.get(key) {
                *i
            } else {
                if table.columns.len() >= MAX_COLUMNS {
                    table.dropped_columns += 1;
                    continue;
                }
                let i = table.columns.len();
                table.columns.push(Column::new(key.clone()));
                index.insert(key.clone(), i);
                i
            };
            if let Some(col) = table.columns.get_mut(idx) {
                col.push_json(value, &mut table.budget);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_classified_and_bad_rows_counted() {
        let data = "a,b,b\n1,x,\nNA,y,2\n3,z\n 4 ,1e400,5\n";
        let t = read(data.as_bytes(), "t.csv", Format::Csv).unwrap();
        assert_eq!(t.rows, 3);
        assert_eq!(t.problem_count, 1);
        assert_eq!(t.problems[0].line, 4);
        let names: Vec<_> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "b.1"]);
        let a = t.column("a").unwrap();
        assert_eq!((a.missing, a.numeric), (1, 2));
        assert_eq!(a.values, [1.0, 4.0]);
        let b = t.column("b").unwrap();
        assert_eq!((b.text, b.numeric, b.non_finite), (2, 1, 1));
        assert_eq!(t.column("b.1").unwrap().missing, 1);
    }

    #[test]
    fn jsonl_keys_that_appear_late_count_earlier_rows_missing() {
        let data = "{\"a\":1}\n\n[1]\n{\"a\":null,\"b\":\"x\"}\n{bad\n{\"b\":true}\n";
        let t = read(data.as_bytes(), "t.jsonl", Format::Jsonl).unwrap();
        assert_eq!(t.rows, 3);
        assert_eq!(t.problem_count, 2);
        let b = t.column("b").unwrap();
        assert_eq!((b.missing, b.text), (1, 2));
        assert_eq!(b.categories.get("true"), Some(&1));
        let a = t.column("a").unwrap();
        assert_eq!((a.missing, a.numeric), (2, 1));
    }

    #[test]
    fn an_overlong_csv_line_is_refused_not_buffered() {
        let mut data = b"a,b\n1,".to_vec();
        data.resize(data.len() + MAX_LINE_BYTES + 10, b'x');
        data.extend_from_slice(b"\n2,3\n");
        let err = read(&data[..], "big.csv", Format::Csv)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("big.csv") && err.contains("MAX_LINE_BYTES"),
            "{err}"
        );
        // A long file of short lines is fine: the limit is per line.
        let many = "a\n".to_string() + &"1\n".repeat(MAX_LINE_BYTES / 2 + 10);
        assert_eq!(
            read(many.as_bytes(), "ok.csv", Format::Csv).unwrap().rows as usize,
            MAX_LINE_BYTES / 2 + 10
        );
    }

    #[test]
    fn semicolons_tabs_and_a_byte_order_mark_are_read_like_commas() {
        let comma = read(&b"a,b\n1,x\n"[..], "c.csv", Format::Csv).unwrap();
        for data in [
            &b"a;b\n1;x\n"[..],
            &b"a\tb\n1\tx\n"[..],
            &b"a|b\n1|x\n"[..],
            &b"\xef\xbb\xbfa,b\r\n1,x\r\n"[..],
            &b"\"a;z\",b\n1,x\n"[..],
        ] {
            let t = read(data, "d.csv", Format::Csv).unwrap();
            let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(
                names.len(),
                2,
                "{:?}: {names:?}",
                String::from_utf8_lossy(data)
            );
            assert_eq!(t.column(names[1]).unwrap().categories.get("x"), Some(&1));
            if !data.starts_with(b"\"") {
                assert_eq!(names, ["a", "b"], "{:?}", String::from_utf8_lossy(data));
                assert_eq!(
                    t.column("a").unwrap().values,
                    comma.column("a").unwrap().values
                );
            }
        }
    }

    #[test]
    fn an_empty_file_has_no_header() {
        assert!(matches!(
            read(&b""[..], "e.csv", Format::Csv),
            Err(DataError::NoHeader { .. })
        ));
    }
}
