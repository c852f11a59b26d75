//! Parquet input, by row, for `mlsec drift` (columns) and `mlsec data audit` (rows).
//!
//! A Parquet file is read from its footer, so it needs a file rather than a stream. The
//! top-level fields are the columns: numbers (integers, floats, decimals, dates, times and
//! timestamps as their stored counts) are numbers, strings and booleans are text, null is
//! missing, and a nested value (struct, list, map) is compared as its text. A file the reader
//! cannot open is an error naming it; rows it cannot decode part-way are counted as unreadable,
//! never dropped silently. The reader runs behind `catch_unwind`, so a malformed file that trips
//! the parquet crate is an error, not a crash.

use std::borrow::Cow;
use std::path::Path;

use parquet::basic::{ConvertedType, Type as Physical};
use parquet::column::reader::ColumnReader;
use parquet::file::reader::{FileReader, RowGroupReader, SerializedFileReader};
use parquet::record::Field;

use crate::table::{DataError, MAX_COLUMNS, parse_number, unique_names};

/// Largest footer (schema and row-group metadata) read: a real file's is kilobytes.
pub const MAX_PARQUET_FOOTER_BYTES: u64 = 64 << 20;
/// Largest column chunk, uncompressed, the footer may declare: decoders size their buffers from
/// it, so a small file cannot claim gigabytes.
pub const MAX_PARQUET_CHUNK_BYTES: u64 = 2 << 30;

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value<'a> {
    Missing,
    Num(f64),
    Text(Cow<'a, str>),
}

fn value(f: &Field) -> Value<'_> {
    match f {
        Field::Null => Value::Missing,
        Field::Bool(b) => Value::Text(Cow::Borrowed(if *b { "true" } else { "false" })),
        Field::Byte(x) => Value::Num(f64::from(*x)),
        Field::Short(x) => Value::Num(f64::from(*x)),
        Field::Int(x) | Field::Date(x) | Field::TimeMillis(x) => Value::Num(f64::from(*x)),
        Field::Long(x)
        | Field::TimeMicros(x)
        | Field::TimestampMillis(x)
        | Field::TimestampMicros(x) => Value::Num(*x as f64),
        Field::UByte(x) => Value::Num(f64::from(*x)),
        Field::UShort(x) => Value::Num(f64::from(*x)),
        Field::UInt(x) => Value::Num(f64::from(*x)),
        Field::ULong(x) => Value::Num(*x as f64),
        Field::Float16(x) => Value::Num(f64::from(*x)),
        Field::Float(x) => Value::Num(f64::from(*x)),
        Field::Double(x) => Value::Num(*x),
        Field::Str(s) => Value::Text(Cow::Borrowed(s)),
        Field::Decimal(_) => {
            let s = f.to_string();
            match parse_number(&s) {
                Some(x) => Value::Num(x),
                None => Value::Text(Cow::Owned(s)),
            }
        }
        Field::Bytes(b) => Value::Text(String::from_utf8_lossy(b.data())),
        Field::Group(_) | Field::ListInternal(_) | Field::MapInternal(_) => {
            Value::Text(Cow::Owned(f.to_string()))
        }
    }
}

/// Values a column reader decodes per call.
const BATCH: usize = 8_192;

/// How a flat column's stored values become values.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    Signed,
    Unsigned,
    /// An integer decimal with this many digits after the point.
    Decimal(i32),
    Float,
    Text,
}

/// The kind of each top-level column when every one is flat and of a type read column by
/// column; `None` sends the file to the row reader.
fn columnar_kinds(reader: &SerializedFileReader<std::fs::File>) -> Option<Vec<Kind>> {
    let schema = reader.metadata().file_metadata().schema_descr();
    if schema.num_columns() != schema.root_schema().get_fields().len() {
        return None; // a nested field has several leaves
    }
    (0..schema.num_columns())
        .map(|i| {
            let c = schema.column(i);
            if c.max_rep_level() > 0 || c.max_def_level() > 1 {
                return None;
            }
            let ct = c.converted_type();
            match (c.physical_type(), ct) {
                (Physical::BOOLEAN, _) => Some(Kind::Bool),
                (Physical::INT32 | Physical::INT64, ConvertedType::DECIMAL) => (0..=18)
                    .contains(&c.type_scale())
                    .then(|| Kind::Decimal(c.type_scale())),
                (
                    Physical::INT32 | Physical::INT64,
                    ConvertedType::UINT_8
                    | ConvertedType::UINT_16
                    | ConvertedType::UINT_32
                    | ConvertedType::UINT_64,
                ) => Some(Kind::Unsigned),
                (Physical::INT32 | Physical::INT64, _) => Some(Kind::Signed),
                (Physical::FLOAT | Physical::DOUBLE, _) => Some(Kind::Float),
                (Physical::BYTE_ARRAY, ConvertedType::DECIMAL) => None,
                (Physical::BYTE_ARRAY, _) => Some(Kind::Text),
                _ => None,
            }
        })
        .collect()
}

fn bytes_text(v: &parquet::data_type::ByteArray) -> Value<'_> {
    Value::Text(String::from_utf8_lossy(v.data()))
}

/// Reads one flat column of one row group into `col`: numbers as numbers, the rest as text,
/// nulls (definition level 0) as missing.
fn read_column(
    rg: &dyn RowGroupReader,
    i: usize,
    kind: Kind,
    rows: usize,
    push: &mut dyn FnMut(&Value<'_>),
) -> parquet::errors::Result<()> {
    let mut defs: Vec<i16> = Vec::with_capacity(BATCH);
    let optional = rg.metadata().column(i).column_descr().max_def_level() > 0;
    let scale = match kind {
        Kind::Decimal(s) => 10f64.powi(s),
        _ => 1.0,
    };
    macro_rules! drain {
        ($reader:expr, $values:ident, $to:expr) => {{
            let mut reader = $reader;
            let mut $values = Vec::with_capacity(BATCH);
            let mut done = 0usize;
            while done < rows {
                defs.clear();
                $values.clear();
                let (records, _, levels) = reader.read_records(
                    BATCH.min(rows - done),
                    optional.then_some(&mut defs),
                    None,
                    &mut $values,
                )?;
                if records == 0 {
                    return Err(parquet::errors::ParquetError::General(format!(
                        "column {i}: {} rows declared, {done} stored",
                        rows
                    )));
                }
                let mut next = $values.iter();
                for r in 0..levels.max(records) {
                    if optional && defs.get(r).copied().unwrap_or(0) == 0 {
                        push(&Value::Missing);
                    } else if let Some(v) = next.next() {
                        push(&$to(v));
                    } else {
                        push(&Value::Missing);
                    }
                }
                done += records;
            }
        }};
    }
    match rg.get_column_reader(i)? {
        ColumnReader::BoolColumnReader(r) => {
            drain!(r, values, |v: &bool| Value::Text(Cow::Borrowed(if *v {
                "true"
            } else {
                "false"
            })));
        }
        ColumnReader::Int32ColumnReader(r) => drain!(r, values, |v: &i32| Value::Num(match kind {
            Kind::Unsigned => f64::from(*v as u32),
            _ => f64::from(*v) / scale,
        })),
        ColumnReader::Int64ColumnReader(r) => drain!(r, values, |v: &i64| Value::Num(match kind {
            Kind::Unsigned => *v as u64 as f64,
            Kind::Decimal(_) => *v as f64 / scale,
            _ => *v as f64,
        })),
        ColumnReader::FloatColumnReader(r) => {
            drain!(r, values, |v: &f32| Value::Num(f64::from(*v)));
        }
        ColumnReader::DoubleColumnReader(r) => drain!(r, values, |v: &f64| Value::Num(*v)),
        ColumnReader::ByteArrayColumnReader(r) => drain!(r, values, bytes_text),
        _ => {
            return Err(parquet::errors::ParquetError::General(format!(
                "column {i}: not a type read by column"
            )));
        }
    }
    Ok(())
}

/// Opens `path` and runs `f` on the file behind `catch_unwind`, so a malformed file that trips
/// the parquet crate is an error naming the file, not a crash.
fn guarded<T>(
    path: &Path,
    f: impl FnOnce(std::fs::File, &str) -> Result<T, DataError>,
) -> Result<T, DataError> {
    let name = path.display().to_string();
    let file = fs_err::File::open(path).map_err(|e| DataError::Io {
        path: name.clone(),
        source: e,
    })?;
    let file = file.into_parts().0;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(file, &name))).unwrap_or_else(|_| {
        Err(bad(
            &name,
            "the Parquet reader failed on this file: it is corrupt or uses a feature mlsec does not read".into(),
        ))
    })
}

/// Reads a flat file column by column, calling `push` with each column's index and values in
/// row order: `Ok(None)` when the file is not flat and the row reader must be used.
pub(crate) fn read_columnar(
    path: &Path,
    push: &mut dyn FnMut(usize, &Value<'_>),
) -> Result<Option<Read>, DataError> {
    guarded(path, |file, name| {
        let reader = open(file, name)?;
        let Some(kinds) = columnar_kinds(&reader) else {
            return Ok(None);
        };
        let fields = field_names(&reader);
        let width = kinds.len().min(MAX_COLUMNS);
        let mut out = Read {
            dropped_columns: kinds.len().saturating_sub(MAX_COLUMNS) as u64,
            names: unique_names(&fields, MAX_COLUMNS),
            ..Read::default()
        };
        for g in 0..reader.num_row_groups() {
            let rg = reader
                .get_row_group(g)
                .map_err(|e| bad(name, e.to_string()))?;
            let rows = usize::try_from(rg.metadata().num_rows()).unwrap_or(0);
            for (i, kind) in kinds.iter().enumerate().take(width) {
                if let Err(e) = read_column(rg.as_ref(), i, *kind, rows, &mut |v| push(i, v)) {
                    return Err(bad(name, format!("row group {g}: {e}")));
                }
            }
            out.rows += rows as u64;
        }
        Ok(Some(out))
    })
}

fn field_names(reader: &SerializedFileReader<std::fs::File>) -> Vec<String> {
    reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect()
}

/// What reading a file's rows found.
#[derive(Debug, Default)]
pub(crate) struct Read {
    pub rows: u64,
    /// Rows the file holds that could not be decoded.
    pub unreadable: u64,
    pub first_problem: Option<(u64, String)>,
    pub dropped_columns: u64,
    /// The column names (made unique, at most [`MAX_COLUMNS`]).
    pub names: Vec<String>,
}

fn bad(path: &str, message: String) -> DataError {
    DataError::Parquet {
        path: path.to_string(),
        message,
    }
}

/// Reads a Parquet file row by row: `row` gets each row's values in the order of
/// [`Read::names`] (made unique, at most [`MAX_COLUMNS`]), and returns false to stop early (the
/// remaining rows are not counted as read or unreadable).
pub(crate) fn read_rows(
    path: &Path,
    row: &mut dyn FnMut(&[Value<'_>]) -> bool,
) -> Result<Read, DataError> {
    guarded(path, |file, name| read_file(file, name, row))
}

/// Opens a file after checking its magic, footer size and declared chunk sizes.
fn open(file: std::fs::File, name: &str) -> Result<SerializedFileReader<std::fs::File>, DataError> {
    let len = file.metadata().map_or(0, |m| m.len());
    let mut tail = [0u8; 8];
    {
        use std::io::{Read as _, Seek, SeekFrom};
        let mut f = &file;
        if len < 12 {
            return Err(bad(name, format!("{len} bytes: too short for Parquet")));
        }
        f.seek(SeekFrom::End(-8))
            .and_then(|_| f.read_exact(&mut tail))
            .map_err(|e| DataError::Io {
                path: name.to_string(),
                source: e,
            })?;
        f.seek(SeekFrom::Start(0)).map_err(|e| DataError::Io {
            path: name.to_string(),
            source: e,
        })?;
    }
    if &tail[4..] != b"PAR1" {
        return Err(bad(
            name,
            "no PAR1 magic at the end: not a Parquet file (or an encrypted one)".into(),
        ));
    }
    let footer = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if footer > MAX_PARQUET_FOOTER_BYTES {
        return Err(bad(
            name,
            format!(
                "a {footer}-byte footer, over MAX_PARQUET_FOOTER_BYTES ({MAX_PARQUET_FOOTER_BYTES})"
            ),
        ));
    }
    let reader = SerializedFileReader::new(file).map_err(|e| bad(name, e.to_string()))?;
    for (g, rg) in reader.metadata().row_groups().iter().enumerate() {
        for c in rg.columns() {
            let (packed, unpacked) = (
                u64::try_from(c.compressed_size()).unwrap_or(u64::MAX),
                u64::try_from(c.uncompressed_size()).unwrap_or(u64::MAX),
            );
            if packed > len || unpacked > MAX_PARQUET_CHUNK_BYTES {
                return Err(bad(
                    name,
                    format!(
                        "row group {g}, column {}: declares {packed} bytes stored and {unpacked} unpacked in a {len}-byte file (MAX_PARQUET_CHUNK_BYTES {MAX_PARQUET_CHUNK_BYTES})",
                        c.column_path()
                    ),
                ));
            }
        }
    }
    if field_names(&reader).is_empty() {
        return Err(DataError::NoHeader {
            path: name.to_string(),
        });
    }
    Ok(reader)
}

fn read_file(
    file: std::fs::File,
    name: &str,
    row: &mut dyn FnMut(&[Value<'_>]) -> bool,
) -> Result<Read, DataError> {
    let reader = open(file, name)?;
    let total = u64::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
    let fields = field_names(&reader);
    let mut out = Read {
        dropped_columns: fields.len().saturating_sub(MAX_COLUMNS) as u64,
        names: unique_names(&fields, MAX_COLUMNS),
        ..Read::default()
    };
    let width = out.names.len();
    for r in reader {
        match r {
            Ok(r) => {
                let mut values: Vec<Value<'_>> = r
                    .get_column_iter()
                    .take(width)
                    .map(|(_, f)| value(f))
                    .collect();
                values.resize(width, Value::Missing);
                out.rows += 1;
                if !row(&values) {
                    return Ok(out);
                }
            }
            Err(e) => {
                // The row iterator cannot resume after a decoding error: every row not read
                // is unreadable.
                out.unreadable = total.saturating_sub(out.rows).max(1);
                out.first_problem = Some((out.rows + 1, e.to_string()));
                return Ok(out);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/drift/parquet")
            .join(name)
    }

    #[test]
    fn flat_files_are_read_by_column_and_nested_ones_by_row() {
        let mut seen = 0u64;
        let flat =
            read_columnar(&fixture("mixed.polars.parquet"), &mut |_, _| seen += 1).expect("reads");
        let read = flat.expect("polars' flat file is read by column");
        assert_eq!(read.rows, 200);
        assert_eq!(seen, 200 * read.names.len() as u64);
        // The list column sends the pyarrow file to the row reader.
        assert!(
            read_columnar(&fixture("mixed.snappy.parquet"), &mut |_, _| {})
                .expect("reads")
                .is_none()
        );
    }

    #[test]
    fn both_readers_give_the_same_values() {
        for file in ["reference.parquet", "mixed.polars.parquet"] {
            let mut by_column: Vec<Vec<String>> = Vec::new();
            read_columnar(&fixture(file), &mut |i, v| {
                if by_column.len() <= i {
                    by_column.resize_with(i + 1, Vec::new);
                }
                by_column[i].push(format!("{v:?}"));
            })
            .expect("reads")
            .expect("flat");
            let mut by_row: Vec<Vec<String>> = Vec::new();
            read_rows(&fixture(file), &mut |row| {
                by_row.resize_with(row.len(), Vec::new);
                for (i, v) in row.iter().enumerate() {
                    by_row[i].push(format!("{v:?}"));
                }
                true
            })
            .expect("reads");
            assert_eq!(by_column, by_row, "{file}");
        }
    }
}
