//! GGUF header, metadata and tensor-info parsing (versions 1-3).
//!
//! Metadata is read sequentially; array values are walked but not kept (a tokenizer's 150k tokens
//! cost one pass and no memory). Scalar strings are kept, so the scanner can inspect chat
//! templates.

use std::fmt;

use crate::source::{Cursor, ReadAt};

pub const MAX_KV: u64 = 1_000_000;
pub const MAX_TENSORS: u64 = 1_000_000;
pub const MAX_STRING: u64 = 16 * 1024 * 1024;
pub const MAX_ARRAY: u64 = 64 * 1024 * 1024;
pub const MAX_DIMS: u32 = 4;
/// Largest total of kept string values.
pub const MAX_KEPT_STRINGS: u64 = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("not a GGUF file (bad magic)")]
    Magic,
    #[error("unsupported GGUF version {0}")]
    Version(u32),
    #[error("truncated {0}")]
    Truncated(String),
    #[error("limit {limit} exceeded: {what}")]
    Limit { limit: &'static str, what: String },
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },
    #[error("I/O error: {0}")]
    Io(std::io::Error),
}

/// A metadata value as kept: scalars and strings; arrays only as type and length.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i128),
    Float(f64),
    Bool(bool),
    Str(String),
    Array { elem_type: u32, len: u64 },
}

#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    pub offset: u64,
}

#[derive(Debug, Clone)]
pub struct Gguf {
    pub version: u32,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    /// Where tensor data starts (after tensor infos, aligned).
    pub data_start: u64,
}

/// A structural problem in a readable file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    UnknownType {
        tensor: String,
        ggml_type: u32,
    },
    Misaligned {
        tensor: String,
        offset: u64,
    },
    OutOfBounds {
        tensor: String,
        end: u64,
        file_len: u64,
    },
    Overlap {
        first: String,
        second: String,
    },
    DuplicateTensor(String),
    DuplicateKey(String),
    BadAlignment(u64),
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Issue::UnknownType { tensor, ggml_type } => {
                write!(f, "tensor {tensor:?} has unknown ggml type {ggml_type}")
            }
            Issue::Misaligned { tensor, offset } => {
                write!(f, "tensor {tensor:?} offset {offset} is not aligned")
            }
            Issue::OutOfBounds {
                tensor,
                end,
                file_len,
            } => write!(
                f,
                "tensor {tensor:?} ends at {end}, past the end of the file ({file_len})"
            ),
            Issue::Overlap { first, second } => {
                write!(f, "tensors {first:?} and {second:?} overlap")
            }
            Issue::DuplicateTensor(n) => write!(f, "tensor name {n:?} appears twice"),
            Issue::DuplicateKey(k) => write!(f, "metadata key {k:?} appears twice"),
            Issue::BadAlignment(a) => {
                write!(f, "general.alignment {a} is not a non-zero power of two")
            }
        }
    }
}

/// (block size, bytes per block) of a ggml type, `None` if unknown or retired.
pub fn type_size(t: u32) -> Option<(u64, u64)> {
    Some(match t {
        0 => (1, 4),
        1 | 30 => (1, 2),
        2 | 20 => (32, 18),
        3 => (32, 20),
        6 => (32, 22),
        7 => (32, 24),
        8 => (32, 34),
        9 => (32, 36),
        10 => (256, 84),
        11 | 21 => (256, 110),
        12 => (256, 144),
        13 => (256, 176),
        14 => (256, 210),
        15 => (256, 292),
        16 | 35 => (256, 66),
        17 => (256, 74),
        18 => (256, 98),
        19 => (256, 50),
        22 => (256, 82),
        23 => (256, 136),
        24 => (1, 1),
        25 => (1, 2),
        26 => (1, 4),
        27 | 28 => (1, 8),
        29 => (256, 56),
        34 => (256, 54),
        39 => (32, 17),
        _ => return None,
    })
}

pub fn sniff(head: &[u8]) -> bool {
    head.starts_with(b"GGUF")
}

struct R<'a> {
    c: Cursor<'a>,
    version: u32,
}

impl R<'_> {
    fn bytes(&mut self, n: usize, what: &str) -> Result<Vec<u8>, Error> {
        self.c.take(n).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::Truncated(what.to_owned())
            } else {
                Error::Io(e)
            }
        })
    }
    fn u32(&mut self, what: &str) -> Result<u32, Error> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self, what: &str) -> Result<u64, Error> {
        if self.version == 1 {
            return Ok(u64::from(self.u32(what)?));
        }
        let b = self.bytes(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        Ok(u64::from_le_bytes(a))
    }
    fn len(&mut self, what: &str, max: u64, limit: &'static str) -> Result<u64, Error> {
        let n = self.u64(what)?;
        if n > max {
            return Err(Error::Limit {
                limit,
                what: format!("{what} declares {n}"),
            });
        }
        Ok(n)
    }
    fn string(&mut self, what: &str) -> Result<String, Error> {
        let n = self.len(what, MAX_STRING, "MAX_STRING")?;
        let b = self.bytes(n as usize, what)?;
        String::from_utf8(b).map_err(|_| Error::Invalid {
            what: what.to_owned(),
            reason: "not UTF-8".into(),
        })
    }
    fn skip_string(&mut self, what: &str) -> Result<(), Error> {
        let n = self.len(what, MAX_STRING, "MAX_STRING")?;
        self.c
            .skip(n)
            .map_err(|_| Error::Truncated(what.to_owned()))
    }
    fn scalar(&mut self, t: u32, what: &str) -> Result<Value, Error> {
        let fixed = |r: &mut Self, n: usize| -> Result<Vec<u8>, Error> { r.bytes(n, what) };
        Ok(match t {
            0 => Value::Int(i128::from(fixed(self, 1)?[0])),
            1 => Value::Int(i128::from(fixed(self, 1)?[0] as i8)),
            2 => {
                let b = fixed(self, 2)?;
                Value::Int(i128::from(u16::from_le_bytes([b[0], b[1]])))
            }
            3 => {
                let b = fixed(self, 2)?;
                Value::Int(i128::from(i16::from_le_bytes([b[0], b[1]])))
            }
            4..=6 => {
                let b = fixed(self, 4)?;
                let a = [b[0], b[1], b[2], b[3]];
                match t {
                    4 => Value::Int(i128::from(u32::from_le_bytes(a))),
                    5 => Value::Int(i128::from(i32::from_le_bytes(a))),
                    _ => Value::Float(f64::from(f32::from_le_bytes(a))),
                }
            }
            7 => Value::Bool(fixed(self, 1)?[0] != 0),
            10..=12 => {
                let b = fixed(self, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(&b);
                match t {
                    10 => Value::Int(i128::from(u64::from_le_bytes(a))),
                    11 => Value::Int(i128::from(i64::from_le_bytes(a))),
                    _ => Value::Float(f64::from_le_bytes(a)),
                }
            }
            other => {
                return Err(Error::Invalid {
                    what: what.to_owned(),
                    reason: format!("unknown value type {other}"),
                });
            }
        })
    }
    fn value(&mut self, t: u32, what: &str, depth: u32) -> Result<Value, Error> {
        match t {
            8 => Ok(Value::Str(self.string(what)?)),
            9 => {
                if depth > 4 {
                    return Err(Error::Limit {
                        limit: "MAX_DEPTH",
                        what: format!("{what}: nested arrays"),
                    });
                }
                let elem = self.u32(what)?;
                let n = self.len(what, MAX_ARRAY, "MAX_ARRAY")?;
                match elem {
                    8 => {
                        for _ in 0..n {
                            self.skip_string(what)?;
                        }
                    }
                    9 => {
                        for _ in 0..n {
                            let inner = self.u32(what)?;
                            self.value_array_body(inner, what, depth + 1)?;
                        }
                    }
                    _ => {
                        let size = scalar_size(elem).ok_or_else(|| Error::Invalid {
                            what: what.to_owned(),
                            reason: format!("unknown array element type {elem}"),
                        })?;
                        self.c
                            .skip(n * size)
                            .map_err(|_| Error::Truncated(what.to_owned()))?;
                    }
                }
                Ok(Value::Array {
                    elem_type: elem,
                    len: n,
                })
            }
            _ => self.scalar(t, what),
        }
    }
    fn value_array_body(&mut self, elem: u32, what: &str, depth: u32) -> Result<(), Error> {
        if depth > 4 {
            return Err(Error::Limit {
                limit: "MAX_DEPTH",
                what: format!("{what}: nested arrays"),
            });
        }
        let n = self.len(what, MAX_ARRAY, "MAX_ARRAY")?;
        for _ in 0..n {
            match elem {
                8 => self.skip_string(what)?,
                9 => {
                    let inner = self.u32(what)?;
                    self.value_array_body(inner, what, depth + 1)?;
                }
                _ => {
                    self.scalar(elem, what)?;
                }
            }
        }
        Ok(())
    }
}

fn scalar_size(t: u32) -> Option<u64> {
    Some(match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        _ => return None,
    })
}

/// Parses the header, metadata and tensor infos.
pub fn parse(src: &dyn ReadAt) -> Result<Gguf, Error> {
    let mut r = R {
        c: Cursor::new(src, 0),
        version: 3,
    };
    if r.bytes(4, "magic").map_err(|_| Error::Magic)? != b"GGUF" {
        return Err(Error::Magic);
    }
    let version = r.u32("version")?;
    if !(1..=3).contains(&version) {
        return Err(Error::Version(version));
    }
    r.version = version;
    let n_tensors = r.len("tensor count", MAX_TENSORS, "MAX_TENSORS")?;
    let n_kv = r.len("metadata count", MAX_KV, "MAX_KV")?;
    let mut metadata = Vec::new();
    let mut kept = 0u64;
    for i in 0..n_kv {
        let key = r.string(&format!("metadata key #{i}"))?;
        let t = r.u32(&format!("type of {key:?}"))?;
        let v = r.value(t, &format!("value of {key:?}"), 0)?;
        if let Value::Str(s) = &v {
            kept += s.len() as u64;
            if kept > MAX_KEPT_STRINGS {
                return Err(Error::Limit {
                    limit: "MAX_KEPT_STRINGS",
                    what: "metadata strings".into(),
                });
            }
        }
        metadata.push((key, v));
    }
    let mut tensors = Vec::new();
    for i in 0..n_tensors {
        let name = r.string(&format!("tensor #{i} name"))?;
        let n_dims = r.u32(&format!("tensor {name:?} rank"))?;
        if n_dims > MAX_DIMS {
            return Err(Error::Limit {
                limit: "MAX_DIMS",
                what: format!("tensor {name:?} has {n_dims} dimensions"),
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64(&format!("tensor {name:?} dims"))?);
        }
        let ggml_type = r.u32(&format!("tensor {name:?} type"))?;
        let offset = r.u64(&format!("tensor {name:?} offset"))?;
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        });
    }
    let alignment = metadata
        .iter()
        .find(|(k, _)| k == "general.alignment")
        .and_then(|(_, v)| {
            if let Value::Int(i) = v {
                u64::try_from(*i).ok()
            } else {
                None
            }
        })
        .unwrap_or(32);
    let a = if alignment == 0 || !alignment.is_power_of_two() {
        32
    } else {
        alignment
    };
    let data_start = r.c.pos().div_ceil(a) * a;
    Ok(Gguf {
        version,
        metadata,
        tensors,
        alignment,
        data_start,
    })
}

/// Checks types, alignment, bounds, overlaps and duplicates.
pub fn validate(g: &Gguf, file_len: u64) -> Vec<Issue> {
    let mut issues = Vec::new();
    let align_ok = g.alignment != 0 && g.alignment.is_power_of_two();
    if !align_ok {
        issues.push(Issue::BadAlignment(g.alignment));
    }
    let mut keys: Vec<&str> = g.metadata.iter().map(|(k, _)| k.as_str()).collect();
    keys.sort_unstable();
    for w in keys.windows(2) {
        if w[0] == w[1] {
            issues.push(Issue::DuplicateKey(w[0].to_owned()));
        }
    }
    let mut names: Vec<&str> = g.tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    for w in names.windows(2) {
        if w[0] == w[1] {
            issues.push(Issue::DuplicateTensor(w[0].to_owned()));
        }
    }
    let mut ranges = Vec::new();
    for t in &g.tensors {
        let Some((blck, size)) = type_size(t.ggml_type) else {
            issues.push(Issue::UnknownType {
                tensor: t.name.clone(),
                ggml_type: t.ggml_type,
            });
            continue;
        };
        if align_ok && t.offset % g.alignment != 0 {
            issues.push(Issue::Misaligned {
                tensor: t.name.clone(),
                offset: t.offset,
            });
        }
        let n = t.dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let bytes = n
            .map(|n| n.div_ceil(blck))
            .and_then(|b| b.checked_mul(size));
        let end = bytes.and_then(|b| g.data_start.checked_add(t.offset)?.checked_add(b));
        match end {
            Some(e) if e <= file_len => {
                ranges.push((t.offset, t.offset + bytes.unwrap_or(0), t.name.as_str()));
            }
            _ => issues.push(Issue::OutOfBounds {
                tensor: t.name.clone(),
                end: end.unwrap_or(u64::MAX),
                file_len,
            }),
        }
    }
    ranges.sort_unstable();
    for w in ranges.windows(2) {
        if w[1].0 < w[0].1 {
            issues.push(Issue::Overlap {
                first: w[0].2.to_owned(),
                second: w[1].2.to_owned(),
            });
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn never_panics(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut data = b"GGUF\x03\x00\x00\x00".to_vec();
            data.extend_from_slice(&tail);
            if let Ok(g) = parse(&data) {
                let _ = validate(&g, data.len() as u64);
            }
            let _ = parse(&tail);
        }
    }

    #[test]
    fn huge_counts_are_limits() {
        let mut data = b"GGUF\x03\x00\x00\x00".to_vec();
        data.extend_from_slice(&u64::MAX.to_le_bytes());
        data.extend_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            parse(&data),
            Err(Error::Limit {
                limit: "MAX_TENSORS",
                ..
            })
        ));
    }
}
