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

use parquet::file::reader::{FileReader, SerializedFileReader};
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
    let name = path.display().to_string();
    let file = fs_err::File::open(path).map_err(|e| DataError::Io {
        path: name.clone(),
        source: e,
    })?;
    let file = file.into_parts().0;
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_file(file, &name, row)
    }))
    .unwrap_or_else(|_| {
        Err(bad(
            &name,
            "the Parquet reader failed on this file: it is corrupt or uses a feature mlsec does not read".into(),
        ))
    })
}

fn read_file(
    file: std::fs::File,
    name: &str,
    row: &mut dyn FnMut(&[Value<'_>]) -> bool,
) -> Result<Read, DataError> {
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
    let total = u64::try_from(reader.metadata().file_metadata().num_rows()).unwrap_or(0);
    let fields: Vec<String> = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect();
    if fields.is_empty() {
        return Err(DataError::NoHeader {
            path: name.to_string(),
        });
    }
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
