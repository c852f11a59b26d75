//! NumPy `.npy` header parsing. The header is a Python dict literal; this module parses the small
//! literal subset NumPy writes (dicts, tuples, lists, strings, integers, booleans, None) with a
//! depth limit, and never evaluates anything.

use crate::source::ReadAt;

/// Largest header accepted. NumPy itself refuses headers over 10,000 bytes unless told otherwise.
pub const MAX_HEADER: u64 = 1024 * 1024;
/// Deepest literal nesting.
pub const MAX_DEPTH: usize = 32;

pub const MAGIC: &[u8] = b"\x93NUMPY";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("not a .npy file (bad magic)")]
    Magic,
    #[error("unsupported .npy version {0}.{1}")]
    Version(u8, u8),
    #[error("truncated header")]
    Truncated,
    #[error("header length {0} exceeds MAX_HEADER ({MAX_HEADER} bytes)")]
    HeaderTooLarge(u64),
    #[error("invalid header: {0}")]
    Invalid(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// A Python literal as NumPy writes it.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Str(String),
    Int(i128),
    Bool(bool),
    None,
    Tuple(Vec<Lit>),
    List(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

#[derive(Debug, Clone)]
pub struct Header {
    pub version: (u8, u8),
    /// The `descr` value: a type string like `<f4`, or a structured list.
    pub descr: Lit,
    pub fortran_order: bool,
    pub shape: Vec<u64>,
    /// Offset of the array data (or the pickle, for object arrays).
    pub data_offset: u64,
}

impl Header {
    /// True if any field of the dtype is a Python object, so the data is a pickle.
    pub fn has_object(&self) -> bool {
        fn walk(l: &Lit) -> bool {
            match l {
                Lit::Str(s) => {
                    let t = s.trim_start_matches(['<', '>', '|', '=']);
                    t.starts_with('O')
                }
                Lit::Tuple(v) | Lit::List(v) => v.iter().any(walk),
                Lit::Dict(v) => v.iter().any(|(_, x)| walk(x)),
                _ => false,
            }
        }
        walk(&self.descr)
    }

    /// Bytes of array data the header declares, for simple (non-structured) dtypes.
    pub fn data_len(&self) -> Option<u64> {
        let Lit::Str(d) = &self.descr else {
            return None;
        };
        let t = d.trim_start_matches(['<', '>', '|', '=']);
        let kind = t.chars().next()?;
        let n: u64 = t.get(1..)?.parse().ok()?;
        let item = match kind {
            'U' => n.checked_mul(4)?,
            'b' | 'i' | 'u' | 'f' | 'c' | 'S' | 'V' | 'M' | 'm' => n,
            _ => return None,
        };
        self.shape
            .iter()
            .try_fold(item, |acc, &d| acc.checked_mul(d))
    }
}

pub fn sniff(head: &[u8]) -> bool {
    head.starts_with(MAGIC)
}

/// Reads and parses the header at `offset`.
pub fn parse(src: &dyn ReadAt) -> Result<Header, Error> {
    let pre = src.read_prefix(0, 12)?;
    if !pre.starts_with(MAGIC) {
        return Err(Error::Magic);
    }
    if pre.len() < 10 {
        return Err(Error::Truncated);
    }
    let (major, minor) = (pre[6], pre[7]);
    let (len, start) = match major {
        1 => (u64::from(u16::from_le_bytes([pre[8], pre[9]])), 10u64),
        2 | 3 => {
            if pre.len() < 12 {
                return Err(Error::Truncated);
            }
            (
                u64::from(u32::from_le_bytes([pre[8], pre[9], pre[10], pre[11]])),
                12u64,
            )
        }
        _ => return Err(Error::Version(major, minor)),
    };
    if len > MAX_HEADER {
        return Err(Error::HeaderTooLarge(len));
    }
    if start + len > src.len() {
        return Err(Error::Truncated);
    }
    let raw = src.read_vec(start, len as usize)?;
    let text = if major == 3 {
        String::from_utf8(raw).map_err(|_| Error::Invalid("not UTF-8".into()))?
    } else {
        raw.iter().map(|&b| char::from(b)).collect()
    };
    let mut p = LitParser {
        s: text.as_bytes(),
        i: 0,
    };
    let lit = p.value(0)?;
    let Lit::Dict(entries) = lit else {
        return Err(Error::Invalid("header is not a dict".into()));
    };
    let get = |k: &str| {
        entries
            .iter()
            .find(|(key, _)| matches!(key, Lit::Str(s) if s == k))
            .map(|(_, v)| v)
    };
    let descr = get("descr")
        .cloned()
        .ok_or_else(|| Error::Invalid("missing 'descr'".into()))?;
    let fortran_order = match get("fortran_order") {
        Some(Lit::Bool(b)) => *b,
        _ => return Err(Error::Invalid("missing or non-bool 'fortran_order'".into())),
    };
    let shape = match get("shape") {
        Some(Lit::Tuple(v)) => v
            .iter()
            .map(|d| match d {
                Lit::Int(i) => u64::try_from(*i).ok(),
                _ => None,
            })
            .collect::<Option<Vec<u64>>>()
            .ok_or_else(|| {
                Error::Invalid("'shape' has a non-integer or negative dimension".into())
            })?,
        _ => return Err(Error::Invalid("missing or non-tuple 'shape'".into())),
    };
    if let Some((Lit::Str(k), _)) = entries.iter().find(
        |(k, _)| !matches!(k, Lit::Str(s) if s == "descr" || s == "fortran_order" || s == "shape"),
    ) {
        return Err(Error::Invalid(format!("unexpected key {k:?}")));
    }
    Ok(Header {
        version: (major, minor),
        descr,
        fortran_order,
        shape,
        data_offset: start + len,
    })
}

struct LitParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl LitParser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn err(&self, what: &str) -> Error {
        Error::Invalid(format!("{what} at byte {}", self.i))
    }

    fn value(&mut self, depth: usize) -> Result<Lit, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::Invalid(format!(
                "nesting deeper than MAX_DEPTH ({MAX_DEPTH})"
            )));
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    self.ws();
                    if self.s.get(self.i) == Some(&b'}') {
                        self.i += 1;
                        return Ok(Lit::Dict(out));
                    }
                    let k = self.value(depth + 1)?;
                    self.ws();
                    if self.s.get(self.i) != Some(&b':') {
                        return Err(self.err("expected ':'"));
                    }
                    self.i += 1;
                    let v = self.value(depth + 1)?;
                    out.push((k, v));
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(b'}') => {}
                        _ => return Err(self.err("expected ',' or '}'")),
                    }
                }
            }
            Some(&open @ (b'(' | b'[')) => {
                let close = if open == b'(' { b')' } else { b']' };
                self.i += 1;
                let mut out = Vec::new();
                loop {
                    self.ws();
                    if self.s.get(self.i) == Some(&close) {
                        self.i += 1;
                        return Ok(if open == b'(' {
                            Lit::Tuple(out)
                        } else {
                            Lit::List(out)
                        });
                    }
                    out.push(self.value(depth + 1)?);
                    self.ws();
                    match self.s.get(self.i) {
                        Some(b',') => self.i += 1,
                        Some(c) if *c == close => {}
                        _ => return Err(self.err("expected ',' or a closing bracket")),
                    }
                }
            }
            Some(&q @ (b'\'' | b'"')) => {
                self.i += 1;
                let start = self.i;
                while let Some(&c) = self.s.get(self.i) {
                    if c == q {
                        let s = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
                        self.i += 1;
                        return Ok(Lit::Str(s));
                    }
                    if c == b'\\' {
                        self.i += 1;
                    }
                    self.i += 1;
                }
                Err(self.err("unterminated string"))
            }
            Some(c) if c.is_ascii_digit() || *c == b'-' => {
                let start = self.i;
                self.i += 1;
                while self
                    .s
                    .get(self.i)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'L')
                {
                    self.i += 1;
                }
                let t = std::str::from_utf8(&self.s[start..self.i])
                    .unwrap_or("")
                    .trim_end_matches('L');
                t.parse().map(Lit::Int).map_err(|_| self.err("bad integer"))
            }
            _ => {
                for (word, lit) in [
                    ("True", Lit::Bool(true)),
                    ("False", Lit::Bool(false)),
                    ("None", Lit::None),
                ] {
                    if self.s[self.i..].starts_with(word.as_bytes()) {
                        self.i += word.len();
                        return Ok(lit);
                    }
                }
                Err(self.err("unexpected token"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(header.len() as u16).to_le_bytes());
        v.extend_from_slice(header.as_bytes());
        v
    }

    #[test]
    fn simple_and_object() {
        let h = parse(&npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }\n",
        ))
        .unwrap();
        assert_eq!(h.shape, vec![3, 2]);
        assert_eq!(h.data_len(), Some(24));
        assert!(!h.has_object());
        let h = parse(&npy(
            "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }\n",
        ))
        .unwrap();
        assert!(h.has_object());
        let h = parse(&npy(
            "{'descr': [('a', '<f4'), ('b', '|O')], 'fortran_order': False, 'shape': (2,), }\n",
        ))
        .unwrap();
        assert!(h.has_object());
    }

    #[test]
    fn deep_nesting_is_limited() {
        let deep = format!(
            "{{'descr': {}'<f4'{}, 'fortran_order': False, 'shape': ()}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(matches!(parse(&npy(&deep)), Err(Error::Invalid(m)) if m.contains("MAX_DEPTH")));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let mut data = MAGIC.to_vec();
            data.extend_from_slice(&tail);
            if let Ok(h) = parse(&data) {
                let _ = h.has_object();
                let _ = h.data_len();
            }
        }

        #[test]
        fn header_text_never_panics(s in "[{}()\\[\\]',:a-z0-9 TrueFalsNn<|>-]{0,200}") {
            let _ = parse(&npy(&s));
        }
    }
}
