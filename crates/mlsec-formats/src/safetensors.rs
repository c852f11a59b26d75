//! Strict safetensors header parsing and validation.
//!
//! Layout: an 8-byte little-endian header length `N`, `N` bytes of JSON, then the tensor buffer.
//! Only the header is read. Validation follows the reference implementation and is stricter where
//! it is silent: duplicate JSON keys are rejected instead of letting the last one win.

use std::collections::HashSet;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};

use crate::source::ReadAt;

/// Largest header read, as in the reference implementation (100 MB).
pub const MAX_HEADER: u64 = 100_000_000;
/// Most tensors in one header.
pub const MAX_TENSORS: usize = 1_000_000;
/// Most dimensions of one tensor.
pub const MAX_RANK: usize = 64;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("file is shorter than the 8-byte header length")]
    TooShort,
    #[error("header length {0} exceeds MAX_HEADER ({MAX_HEADER} bytes)")]
    HeaderTooLarge(u64),
    #[error("header length {declared} runs past the end of the file ({file_len} bytes)")]
    HeaderPastEnd { declared: u64, file_len: u64 },
    #[error("header does not start with '{{'")]
    HeaderStart,
    #[error("header is not valid UTF-8 JSON: {0}")]
    Json(String),
    #[error("tensor {name:?}: {reason}")]
    Tensor { name: String, reason: String },
    #[error("__metadata__: {0}")]
    Metadata(String),
    #[error("more than MAX_TENSORS ({MAX_TENSORS}) tensors")]
    TooManyTensors,
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub begin: u64,
    pub end: u64,
}

#[derive(Debug, Clone)]
pub struct Header {
    pub header_len: u64,
    pub tensors: Vec<TensorInfo>,
    pub metadata: Vec<(String, String)>,
}

/// A structural problem in an otherwise readable header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Issue {
    UnknownDtype {
        tensor: String,
        dtype: String,
    },
    SizeMismatch {
        tensor: String,
        expected: u64,
        actual: u64,
    },
    Overlap {
        first: String,
        second: String,
    },
    Gap {
        before: String,
        bytes: u64,
    },
    NotAtStart {
        first: String,
        begin: u64,
    },
    OutOfBounds {
        tensor: String,
        end: u64,
        buffer: u64,
    },
    TrailingData {
        bytes: u64,
    },
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Issue::UnknownDtype { tensor, dtype } => {
                write!(f, "tensor {tensor:?} has unknown dtype {dtype:?}")
            }
            Issue::SizeMismatch {
                tensor,
                expected,
                actual,
            } => {
                write!(
                    f,
                    "tensor {tensor:?} spans {actual} bytes but its dtype and shape need {expected}"
                )
            }
            Issue::Overlap { first, second } => {
                write!(f, "tensors {first:?} and {second:?} overlap")
            }
            Issue::Gap { before, bytes } => {
                write!(f, "{bytes} unreferenced bytes before tensor {before:?}")
            }
            Issue::NotAtStart { first, begin } => {
                write!(f, "first tensor {first:?} starts at {begin}, not 0")
            }
            Issue::OutOfBounds {
                tensor,
                end,
                buffer,
            } => {
                write!(
                    f,
                    "tensor {tensor:?} ends at {end}, past the {buffer}-byte buffer"
                )
            }
            Issue::TrailingData { bytes } => write!(
                f,
                "{bytes} bytes after the last tensor are not referenced by the header"
            ),
        }
    }
}

/// Bits per element, or `None` for an unknown dtype.
pub fn dtype_bits(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 8,
        "I16" | "U16" | "F16" | "BF16" => 16,
        "I32" | "U32" | "F32" => 32,
        "I64" | "U64" | "F64" | "C64" => 64,
        "F4" => 4,
        "F6_E2M3" | "F6_E3M2" => 6,
        _ => return None,
    })
}

/// An object that rejects duplicate keys, keeping them in file order.
struct StrictObject(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for StrictObject {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictObject, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    if out.len() > MAX_TENSORS {
                        return Err(de::Error::custom("more than MAX_TENSORS entries"));
                    }
                    out.push((k, map.next_value()?));
                }
                Ok(StrictObject(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// True if the first bytes look like a safetensors file: a plausible length then `{`.
pub fn sniff(head: &[u8], file_len: u64) -> bool {
    if head.len() < 9 {
        return false;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&head[..8]);
    let n = u64::from_le_bytes(a);
    (2..=MAX_HEADER).contains(&n) && n + 8 <= file_len && head[8] == b'{'
}

/// Reads and parses the header (one 8-byte read and one header read).
pub fn parse(src: &dyn ReadAt) -> Result<Header, Error> {
    let file_len = src.len();
    if file_len < 8 {
        return Err(Error::TooShort);
    }
    let mut a = [0u8; 8];
    src.read_exact_at(0, &mut a)?;
    let n = u64::from_le_bytes(a);
    if n > MAX_HEADER {
        return Err(Error::HeaderTooLarge(n));
    }
    if n.checked_add(8).is_none_or(|end| end > file_len) {
        return Err(Error::HeaderPastEnd {
            declared: n,
            file_len,
        });
    }
    let raw = src.read_vec(8, n as usize)?;
    if raw.first() != Some(&b'{') {
        return Err(Error::HeaderStart);
    }
    let text = std::str::from_utf8(&raw).map_err(|e| Error::Json(e.to_string()))?;
    let obj: StrictObject =
        serde_json::from_str(text.trim_end_matches(' ')).map_err(|e| Error::Json(e.to_string()))?;
    let mut tensors = Vec::new();
    let mut metadata = Vec::new();
    for (name, v) in obj.0 {
        if name == "__metadata__" {
            let serde_json::Value::Object(m) = v else {
                return Err(Error::Metadata("must be an object of strings".into()));
            };
            for (k, val) in m {
                let serde_json::Value::String(s) = val else {
                    return Err(Error::Metadata(format!("value of {k:?} is not a string")));
                };
                metadata.push((k, s));
            }
            continue;
        }
        let bad = |reason: &str| Error::Tensor {
            name: name.clone(),
            reason: reason.to_owned(),
        };
        let serde_json::Value::Object(t) = &v else {
            return Err(bad("entry is not an object"));
        };
        if let Some(k) = t
            .keys()
            .find(|k| !matches!(k.as_str(), "dtype" | "shape" | "data_offsets"))
        {
            return Err(bad(&format!("unexpected field {k:?}")));
        }
        let dtype = t
            .get("dtype")
            .and_then(|d| d.as_str())
            .ok_or_else(|| bad("missing or non-string dtype"))?
            .to_owned();
        let shape_v = t
            .get("shape")
            .and_then(|s| s.as_array())
            .ok_or_else(|| bad("missing shape array"))?;
        if shape_v.len() > MAX_RANK {
            return Err(bad(&format!(
                "rank {} exceeds MAX_RANK ({MAX_RANK})",
                shape_v.len()
            )));
        }
        let shape = shape_v
            .iter()
            .map(serde_json::Value::as_u64)
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| bad("shape has a non-integer or negative dimension"))?;
        let offs = t
            .get("data_offsets")
            .and_then(|o| o.as_array())
            .ok_or_else(|| bad("missing data_offsets"))?;
        let (Some(begin), Some(end), 2) = (
            offs.first().and_then(serde_json::Value::as_u64),
            offs.get(1).and_then(serde_json::Value::as_u64),
            offs.len(),
        ) else {
            return Err(bad("data_offsets must be two non-negative integers"));
        };
        if end < begin {
            return Err(bad(&format!(
                "data_offsets end {end} is before begin {begin}"
            )));
        }
        tensors.push(TensorInfo {
            name,
            dtype,
            shape,
            begin,
            end,
        });
    }
    Ok(Header {
        header_len: n,
        tensors,
        metadata,
    })
}

/// Checks offsets, sizes, overlaps, gaps and bounds against the buffer after the header.
pub fn validate(h: &Header, file_len: u64) -> Vec<Issue> {
    let buffer = file_len.saturating_sub(8 + h.header_len);
    let mut issues = Vec::new();
    for t in &h.tensors {
        let Some(bits) = dtype_bits(&t.dtype) else {
            issues.push(Issue::UnknownDtype {
                tensor: t.name.clone(),
                dtype: t.dtype.clone(),
            });
            continue;
        };
        let n = t.shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let expected_bits = n.and_then(|n| n.checked_mul(bits));
        let actual = t.end - t.begin;
        match expected_bits {
            Some(b) if b % 8 == 0 && b / 8 == actual => {}
            Some(b) => issues.push(Issue::SizeMismatch {
                tensor: t.name.clone(),
                expected: b.div_ceil(8),
                actual,
            }),
            None => issues.push(Issue::SizeMismatch {
                tensor: t.name.clone(),
                expected: u64::MAX,
                actual,
            }),
        }
        if t.end > buffer {
            issues.push(Issue::OutOfBounds {
                tensor: t.name.clone(),
                end: t.end,
                buffer,
            });
        }
    }
    let mut sorted: Vec<&TensorInfo> = h.tensors.iter().collect();
    sorted.sort_by_key(|t| (t.begin, t.end));
    let mut cursor = 0u64;
    let mut prev: Option<&TensorInfo> = None;
    for t in sorted {
        match prev {
            None if t.begin != 0 => issues.push(Issue::NotAtStart {
                first: t.name.clone(),
                begin: t.begin,
            }),
            Some(p) if t.begin < cursor => issues.push(Issue::Overlap {
                first: p.name.clone(),
                second: t.name.clone(),
            }),
            Some(_) if t.begin > cursor => issues.push(Issue::Gap {
                before: t.name.clone(),
                bytes: t.begin - cursor,
            }),
            _ => {}
        }
        cursor = cursor.max(t.end);
        prev = Some(t);
    }
    if cursor < buffer {
        issues.push(Issue::TrailingData {
            bytes: buffer - cursor,
        });
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend(std::iter::repeat_n(0u8, data));
        v
    }

    #[test]
    fn valid() {
        let f = file(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"__metadata__":{"format":"pt"}}"#,
            8,
        );
        let h = parse(&f).unwrap();
        assert_eq!(h.tensors.len(), 1);
        assert!(validate(&h, f.len() as u64).is_empty());
    }

    #[test]
    fn duplicate_keys_rejected() {
        let f = file(
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
            4,
        );
        assert!(matches!(parse(&f), Err(Error::Json(m)) if m.contains("duplicate")));
    }

    #[test]
    fn overlap_and_size() {
        let f = file(
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}}"#,
            8,
        );
        let issues = validate(&parse(&f).unwrap(), f.len() as u64);
        assert!(
            issues.iter().any(|i| matches!(i, Issue::Overlap { .. })),
            "{issues:?}"
        );
    }

    #[test]
    fn header_length_bomb() {
        let mut f = u64::MAX.to_le_bytes().to_vec();
        f.push(b'{');
        assert!(matches!(parse(&f), Err(Error::HeaderTooLarge(_))));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(h) = parse(&data) {
                let _ = validate(&h, data.len() as u64);
            }
        }
    }
}
