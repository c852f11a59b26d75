//! TensorFlow Lite models: the FlatBuffer `Model` table, read only as far as its operator codes,
//! subgraph count and metadata names. Custom operators are what a `.tflite` can make an
//! interpreter run beyond the built-in kernels (a registered custom kernel, or a TensorFlow op
//! through the Flex delegate).
//!
//! Schema (tensorflow/lite/schema/schema.fbs): `Model { version: uint; operator_codes:
//! [OperatorCode]; subgraphs: [SubGraph]; description: string; buffers: [Buffer]; ... }`,
//! `OperatorCode { deprecated_builtin_code: byte; custom_code: string; version: int;
//! builtin_code: BuiltinOperator (int) }`. Every offset is bounds-checked; nothing is read
//! past what is needed (a model's weight buffers are not touched).

use std::io;

use crate::source::ReadAt;

/// Most operator codes read.
pub const MAX_OPERATOR_CODES: u32 = 100_000;
/// Longest custom operator name kept.
pub const MAX_NAME: u32 = 1024;
/// `BuiltinOperator_CUSTOM`.
pub const CUSTOM: i32 = 32;
/// Builtin codes `deprecated_builtin_code` (a byte) can hold; larger codes use `builtin_code`.
pub const PLACEHOLDER_FOR_GREATER_OP_CODES: i32 = 127;

/// True when the FlatBuffer file identifier says TensorFlow Lite (`TFL3` at bytes 4..8).
pub fn sniff(head: &[u8]) -> bool {
    head.get(4..8) == Some(b"TFL3")
}

/// One entry of `operator_codes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorCode {
    pub builtin: i32,
    /// `custom_code`, for custom operators.
    pub custom: Option<String>,
    pub version: i32,
}

impl OperatorCode {
    pub fn is_custom(&self) -> bool {
        self.builtin == CUSTOM
    }
}

/// What was read of a model.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub version: u32,
    pub operator_codes: Vec<OperatorCode>,
    pub subgraphs: u32,
    pub description: Option<String>,
}

/// Why a model could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TfliteError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("offset {at}: {what}")]
    Malformed { at: u64, what: String },
    #[error("{what} exceeds {limit} ({name})")]
    Limit {
        what: String,
        limit: u64,
        name: &'static str,
    },
}

fn malformed(at: u64, what: impl Into<String>) -> TfliteError {
    TfliteError::Malformed {
        at,
        what: what.into(),
    }
}

struct Buf<'a> {
    src: &'a dyn ReadAt,
}

impl Buf<'_> {
    fn bytes<const N: usize>(&self, at: u64) -> Result<[u8; N], TfliteError> {
        let end = at
            .checked_add(N as u64)
            .ok_or_else(|| malformed(at, "offset overflows"))?;
        if end > self.src.len() {
            return Err(malformed(at, "offset past the end of the file"));
        }
        let mut b = [0u8; N];
        self.src.read_exact_at(at, &mut b)?;
        Ok(b)
    }
    fn u32(&self, at: u64) -> Result<u32, TfliteError> {
        Ok(u32::from_le_bytes(self.bytes(at)?))
    }
    fn i32(&self, at: u64) -> Result<i32, TfliteError> {
        Ok(i32::from_le_bytes(self.bytes(at)?))
    }
    fn u16(&self, at: u64) -> Result<u16, TfliteError> {
        Ok(u16::from_le_bytes(self.bytes(at)?))
    }
    fn i8(&self, at: u64) -> Result<i8, TfliteError> {
        Ok(i8::from_le_bytes(self.bytes(at)?))
    }

    /// Follows a `uoffset` stored at `at`.
    fn deref(&self, at: u64) -> Result<u64, TfliteError> {
        let off = self.u32(at)?;
        at.checked_add(u64::from(off))
            .filter(|&p| p < self.src.len())
            .ok_or_else(|| malformed(at, "offset past the end of the file"))
    }

    /// A table at `pos`: where each field is (`None` when absent).
    fn table(&self, pos: u64) -> Result<Table, TfliteError> {
        let soff = self.i32(pos)?;
        let vt = i64::try_from(pos)
            .ok()
            .and_then(|p| p.checked_sub(i64::from(soff)))
            .and_then(|v| u64::try_from(v).ok())
            .ok_or_else(|| malformed(pos, "vtable offset out of range"))?;
        let vt_len = self.u16(vt)?;
        if vt_len < 4 || vt_len % 2 != 0 {
            return Err(malformed(vt, format!("vtable length {vt_len}")));
        }
        let table_len = self.u16(vt + 2)?;
        let mut fields = Vec::with_capacity(usize::from((vt_len - 4) / 2));
        for i in 0..(vt_len - 4) / 2 {
            let off = self.u16(vt + 4 + 2 * u64::from(i))?;
            if off != 0 && off >= table_len.max(4) {
                return Err(malformed(
                    vt,
                    format!("field {i} at {off} lies outside its table of {table_len} bytes"),
                ));
            }
            fields.push((off != 0).then(|| pos + u64::from(off)));
        }
        Ok(Table { fields })
    }

    /// A vector at the offset stored in `field`: where its elements start, and how many.
    fn vector(
        &self,
        field: u64,
        elem: u64,
        limit: u32,
        name: &'static str,
    ) -> Result<(u64, u32), TfliteError> {
        let v = self.deref(field)?;
        let n = self.u32(v)?;
        if n > limit {
            return Err(TfliteError::Limit {
                what: format!("{n} elements"),
                limit: u64::from(limit),
                name,
            });
        }
        let end = (v + 4).checked_add(u64::from(n) * elem);
        if end.is_none_or(|e| e > self.src.len()) {
            return Err(malformed(
                v,
                format!("vector of {n} elements runs past the end of the file"),
            ));
        }
        Ok((v + 4, n))
    }

    fn string(&self, field: u64) -> Result<String, TfliteError> {
        let v = self.deref(field)?;
        let n = self.u32(v)?;
        if n > MAX_NAME {
            return Err(TfliteError::Limit {
                what: format!("a {n}-byte string"),
                limit: u64::from(MAX_NAME),
                name: "MAX_NAME",
            });
        }
        let b = self.src.read_vec(v + 4, n as usize)?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }
}

struct Table {
    fields: Vec<Option<u64>>,
}

impl Table {
    fn field(&self, i: usize) -> Option<u64> {
        self.fields.get(i).copied().flatten()
    }
}

/// Reads the model's operator codes and header fields.
pub fn parse(src: &dyn ReadAt) -> Result<Model, TfliteError> {
    let b = Buf { src };
    if src.len() < 8 {
        return Err(malformed(0, "shorter than a FlatBuffer header"));
    }
    let root = b.deref(0)?;
    let t = b.table(root)?;
    let mut m = Model::default();
    if let Some(f) = t.field(0) {
        m.version = b.u32(f)?;
    }
    if let Some(f) = t.field(1) {
        let (start, n) = b.vector(f, 4, MAX_OPERATOR_CODES, "MAX_OPERATOR_CODES")?;
        for i in 0..n {
            let at = start + 4 * u64::from(i);
            let oc = b.table(b.deref(at)?)?;
            let deprecated = match oc.field(0) {
                Some(p) => i32::from(b.i8(p)?),
                None => 0,
            };
            let builtin = match oc.field(3) {
                Some(p) => b.i32(p)?,
                None => 0,
            };
            // Writers before schema 3a set only the byte; later ones set both, and the byte is
            // 127 for codes that do not fit it.
            let code = if deprecated == PLACEHOLDER_FOR_GREATER_OP_CODES {
                builtin
            } else {
                builtin.max(deprecated)
            };
            let custom = match oc.field(1) {
                Some(p) => Some(b.string(p)?),
                None => None,
            };
            let version = match oc.field(2) {
                Some(p) => b.i32(p)?,
                None => 1,
            };
            m.operator_codes.push(OperatorCode {
                builtin: code,
                custom,
                version,
            });
        }
    }
    if let Some(f) = t.field(2) {
        m.subgraphs = b.vector(f, 4, u32::MAX, "subgraphs")?.1;
    }
    if let Some(f) = t.field(3) {
        m.description = Some(b.string(f)?);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model with one custom operator, laid out by hand as the flatbuffers builder would:
    /// root offset, identifier, padding, Model vtable (12) and table (20), the operator_codes
    /// vector (32), an OperatorCode vtable (40) and table (48), and its custom_code string (60).
    fn one_custom_op() -> Vec<u8> {
        let mut d = Vec::new();
        d.extend_from_slice(&20u32.to_le_bytes());
        d.extend_from_slice(b"TFL3");
        d.extend_from_slice(&[0; 4]);
        d.extend_from_slice(&[8, 0, 12, 0, 4, 0, 8, 0]); // version at +4, operator_codes at +8
        d.extend_from_slice(&8i32.to_le_bytes()); // table at 20, vtable 8 bytes before
        d.extend_from_slice(&3u32.to_le_bytes());
        d.extend_from_slice(&4u32.to_le_bytes()); // at 28: vector at 32
        d.extend_from_slice(&1u32.to_le_bytes());
        d.extend_from_slice(&12u32.to_le_bytes()); // at 36: table at 48
        d.extend_from_slice(&[8, 0, 12, 0, 0, 0, 4, 0]); // custom_code at +4
        d.extend_from_slice(&8i32.to_le_bytes()); // table at 48, vtable at 40
        d.extend_from_slice(&8u32.to_le_bytes()); // at 52: string at 60
        d.extend_from_slice(&[0; 4]);
        d.extend_from_slice(&4u32.to_le_bytes());
        d.extend_from_slice(b"MyOp\0");
        d
    }

    #[test]
    fn reads_operator_codes() {
        let m = parse(&one_custom_op().as_slice()).unwrap();
        assert_eq!(m.version, 3);
        assert_eq!(m.operator_codes.len(), 1);
        assert_eq!(m.operator_codes[0].custom.as_deref(), Some("MyOp"));
        assert!(m.operator_codes[0].builtin != CUSTOM); // the builtin fields are absent
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(&data.as_slice());
        }

        #[test]
        fn never_panics_on_a_mutated_model(at in 0usize..64, byte in proptest::num::u8::ANY) {
            let mut d = one_custom_op();
            let i = at % d.len();
            d[i] = byte;
            let _ = parse(&d.as_slice());
        }
    }

    #[test]
    fn rejects_short_and_out_of_range_input_without_panicking() {
        assert!(parse(&&b"TFL3"[..]).is_err());
        assert!(parse(&&b"\xff\xff\xff\xffTFL3"[..]).is_err());
        let mut d = vec![0u8; 16];
        d[0] = 8;
        d[4..8].copy_from_slice(b"TFL3");
        d[8..12].copy_from_slice(&(-1000i32).to_le_bytes());
        assert!(parse(&d.as_slice()).is_err());
    }
}
