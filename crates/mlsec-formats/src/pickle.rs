//! A pickle opcode reader (protocols 0-5). It decodes opcodes and their arguments and nothing
//! more: it builds no objects and resolves no imports. Symbolic execution lives in the scanner.
//!
//! Large byte and string payloads are not read: the reader records their offset, length and first
//! bytes ([`Payload::Skipped`]) and moves on, so a pickle with gigabytes of inline arrays costs the
//! same as its opcodes.

use std::fmt;
use std::io;

use crate::source::{Cursor, ReadAt};

/// Named limits for one pickle stream.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest text line (protocol 0 arguments, GLOBAL names).
    pub max_line: usize,
    /// Payloads longer than this are skipped, not read ([`Payload::Skipped`]).
    pub max_inline_payload: usize,
    /// How many leading bytes of a skipped payload are kept for sniffing.
    pub skipped_head: usize,
    /// Longest LONG1/LONG4 integer, in bytes.
    pub max_long_bytes: usize,
}

pub const MAX_LINE: usize = 64 * 1024;
pub const MAX_INLINE_PAYLOAD: usize = 1024 * 1024;
pub const SKIPPED_HEAD: usize = 256;
pub const MAX_LONG_BYTES: usize = 64 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: MAX_LINE,
            max_inline_payload: MAX_INLINE_PAYLOAD,
            skipped_head: SKIPPED_HEAD,
            max_long_bytes: MAX_LONG_BYTES,
        }
    }
}

macro_rules! opcodes {
    ($($name:ident = $byte:expr,)*) => {
        /// Every pickle opcode up to protocol 5.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        pub enum OpCode { $($name,)* }

        impl OpCode {
            pub fn from_byte(b: u8) -> Option<OpCode> {
                match b { $($byte => Some(OpCode::$name),)* _ => None }
            }
            pub fn byte(self) -> u8 {
                match self { $(OpCode::$name => $byte,)* }
            }
            pub fn name(self) -> &'static str {
                match self { $(OpCode::$name => stringify!($name),)* }
            }
        }
    };
}

opcodes! {
    MARK = b'(', STOP = b'.', POP = b'0', POP_MARK = b'1', DUP = b'2', FLOAT = b'F', INT = b'I',
    BININT = b'J', BININT1 = b'K', LONG = b'L', BININT2 = b'M', NONE = b'N', PERSID = b'P',
    BINPERSID = b'Q', REDUCE = b'R', STRING = b'S', BINSTRING = b'T', SHORT_BINSTRING = b'U',
    UNICODE = b'V', BINUNICODE = b'X', APPEND = b'a', BUILD = b'b', GLOBAL = b'c', DICT = b'd',
    EMPTY_DICT = b'}', APPENDS = b'e', GET = b'g', BINGET = b'h', INST = b'i', LONG_BINGET = b'j',
    LIST = b'l', EMPTY_LIST = b']', OBJ = b'o', PUT = b'p', BINPUT = b'q', LONG_BINPUT = b'r',
    SETITEM = b's', TUPLE = b't', EMPTY_TUPLE = b')', SETITEMS = b'u', BINFLOAT = b'G',
    PROTO = 0x80, NEWOBJ = 0x81, EXT1 = 0x82, EXT2 = 0x83, EXT4 = 0x84, TUPLE1 = 0x85,
    TUPLE2 = 0x86, TUPLE3 = 0x87, NEWTRUE = 0x88, NEWFALSE = 0x89, LONG1 = 0x8a, LONG4 = 0x8b,
    BINBYTES = b'B', SHORT_BINBYTES = b'C', SHORT_BINUNICODE = 0x8c, BINUNICODE8 = 0x8d,
    BINBYTES8 = 0x8e, EMPTY_SET = 0x8f, ADDITEMS = 0x90, FROZENSET = 0x91, NEWOBJ_EX = 0x92,
    STACK_GLOBAL = 0x93, MEMOIZE = 0x94, FRAME = 0x95, BYTEARRAY8 = 0x96, NEXT_BUFFER = 0x97,
    READONLY_BUFFER = 0x98,
}

impl fmt::Display for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A byte or string payload, read or skipped.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Inline(Vec<u8>),
    /// Too large to read: where it is, how long, and its first bytes.
    Skipped {
        offset: u64,
        len: u64,
        head: Vec<u8>,
    },
}

impl Payload {
    /// The bytes that were read (all of them, or the head of a skipped payload).
    pub fn head(&self) -> &[u8] {
        match self {
            Payload::Inline(v) => v,
            Payload::Skipped { head, .. } => head,
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Payload::Inline(v) => v.len() as u64,
            Payload::Skipped { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The decoded argument of an opcode.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    None,
    Int(i64),
    /// An integer too wide for `i64`; its length in bytes.
    BigInt(usize),
    Float(f64),
    /// Text (unicode opcodes and protocol-0 strings decoded as Latin-1/escapes).
    Str(Payload),
    /// Bytes (BINBYTES*, BYTEARRAY8, and BINSTRING, which Python 3 decodes as bytes or str).
    Bytes(Payload),
    /// GLOBAL and INST: module and name from two text lines.
    Global(String, String),
    /// PERSID: the persistent id line.
    Line(String),
}

/// One decoded opcode.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    pub code: OpCode,
    /// Byte offset of the opcode in the source.
    pub offset: u64,
    pub arg: Arg,
}

/// Why an opcode could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PickleError {
    #[error("unknown opcode 0x{byte:02x} at offset {offset}")]
    UnknownOpcode { byte: u8, offset: u64 },
    #[error("truncated {op} argument at offset {offset}")]
    Truncated { op: &'static str, offset: u64 },
    #[error("invalid {op} argument at offset {offset}: {reason}")]
    InvalidArg {
        op: &'static str,
        offset: u64,
        reason: String,
    },
    #[error("{op} at offset {offset} exceeds the limit {limit}: {what}")]
    Limit {
        op: &'static str,
        offset: u64,
        limit: &'static str,
        what: String,
    },
    #[error("I/O error at offset {offset}: {source}")]
    Io { offset: u64, source: io::Error },
}

impl PickleError {
    pub fn offset(&self) -> u64 {
        match self {
            PickleError::UnknownOpcode { offset, .. }
            | PickleError::Truncated { offset, .. }
            | PickleError::InvalidArg { offset, .. }
            | PickleError::Limit { offset, .. }
            | PickleError::Io { offset, .. } => *offset,
        }
    }
}

/// Reads opcodes one at a time from a [`ReadAt`].
pub struct OpReader<'a> {
    cur: Cursor<'a>,
    limits: Limits,
}

impl<'a> OpReader<'a> {
    pub fn new(src: &'a dyn ReadAt, start: u64, limits: Limits) -> OpReader<'a> {
        OpReader {
            cur: Cursor::new(src, start),
            limits,
        }
    }

    pub fn pos(&self) -> u64 {
        self.cur.pos()
    }

    pub fn remaining(&self) -> u64 {
        self.cur.remaining()
    }

    pub fn source(&self) -> &'a dyn ReadAt {
        self.cur.source()
    }

    /// Skips raw bytes that are not opcodes (joblib writes array data between opcodes).
    pub fn skip(&mut self, n: u64) -> io::Result<()> {
        self.cur.skip(n)
    }

    /// Reads one raw byte (joblib's alignment padding length).
    pub fn raw_byte(&mut self) -> io::Result<Option<u8>> {
        self.cur.byte()
    }

    pub fn seek(&mut self, pos: u64) {
        self.cur.seek(pos);
    }

    /// The next opcode, or `Ok(None)` at the end of data.
    pub fn next_op(&mut self) -> Result<Option<Op>, PickleError> {
        let offset = self.cur.pos();
        let byte = match self.cur.byte() {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(source) => return Err(PickleError::Io { offset, source }),
        };
        let Some(code) = OpCode::from_byte(byte) else {
            return Err(PickleError::UnknownOpcode { byte, offset });
        };
        let arg = self.arg(code, offset)?;
        Ok(Some(Op { code, offset, arg }))
    }

    fn fixed(&mut self, code: OpCode, offset: u64, n: usize) -> Result<Vec<u8>, PickleError> {
        self.cur.take(n).map_err(|e| io_err(code, offset, e))
    }

    fn uint(&mut self, code: OpCode, offset: u64, n: usize) -> Result<u64, PickleError> {
        // Byte by byte from the cursor's buffer: no allocation for the commonest arguments.
        let mut v: u64 = 0;
        for i in 0..n {
            match self.cur.byte() {
                Ok(Some(byte)) => v |= u64::from(byte) << (8 * i),
                Ok(None) => {
                    return Err(PickleError::Truncated {
                        op: code.name(),
                        offset,
                    });
                }
                Err(e) => return Err(io_err(code, offset, e)),
            }
        }
        Ok(v)
    }

    fn line(&mut self, code: OpCode, offset: u64) -> Result<Vec<u8>, PickleError> {
        match self.cur.line(self.limits.max_line) {
            Ok(Some(mut l)) => {
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                Ok(l)
            }
            Ok(None) => Err(PickleError::Truncated {
                op: code.name(),
                offset,
            }),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => Err(PickleError::Limit {
                op: code.name(),
                offset,
                limit: "MAX_LINE",
                what: format!("line longer than {} bytes", self.limits.max_line),
            }),
            Err(e) => Err(io_err(code, offset, e)),
        }
    }

    fn text_line(&mut self, code: OpCode, offset: u64) -> Result<String, PickleError> {
        let l = self.line(code, offset)?;
        // Protocol 0 lines are ASCII in practice; Latin-1 maps every byte, so nothing is lost.
        Ok(l.iter().map(|&b| char::from(b)).collect())
    }

    fn int_line(&mut self, code: OpCode, offset: u64) -> Result<i64, PickleError> {
        let l = self.text_line(code, offset)?;
        let t = l.trim();
        let t = t.strip_suffix('L').unwrap_or(t);
        match t {
            "00" => return Ok(0),
            "01" => return Ok(1),
            _ => {}
        }
        t.parse::<i64>().map_err(|_| PickleError::InvalidArg {
            op: code.name(),
            offset,
            reason: format!("not an integer: {:?}", truncate(&l, 40)),
        })
    }

    /// A payload preceded by its unsigned little-endian length of `width` bytes.
    fn sized(&mut self, code: OpCode, offset: u64, width: usize) -> Result<Payload, PickleError> {
        let n = self.uint(code, offset, width)?;
        self.payload(code, offset, n)
    }

    fn payload(&mut self, code: OpCode, offset: u64, len: u64) -> Result<Payload, PickleError> {
        if len > self.cur.remaining() {
            return Err(PickleError::Truncated {
                op: code.name(),
                offset,
            });
        }
        if len as usize > self.limits.max_inline_payload || len > usize::MAX as u64 {
            let head_len = self.limits.skipped_head.min(len as usize);
            let start = self.cur.pos();
            let head = self.fixed(code, offset, head_len)?;
            self.cur
                .skip(len - head_len as u64)
                .map_err(|e| io_err(code, offset, e))?;
            return Ok(Payload::Skipped {
                offset: start,
                len,
                head,
            });
        }
        Ok(Payload::Inline(self.fixed(code, offset, len as usize)?))
    }

    fn arg(&mut self, code: OpCode, offset: u64) -> Result<Arg, PickleError> {
        use OpCode as O;
        Ok(match code {
            O::PROTO | O::BININT1 | O::BINGET | O::BINPUT | O::EXT1 => {
                Arg::Int(self.uint(code, offset, 1)? as i64)
            }
            O::BININT2 | O::EXT2 => Arg::Int(self.uint(code, offset, 2)? as i64),
            O::BININT => Arg::Int(i64::from(self.uint(code, offset, 4)? as u32 as i32)),
            O::LONG_BINGET | O::LONG_BINPUT | O::EXT4 => {
                Arg::Int(self.uint(code, offset, 4)? as i64)
            }
            O::FRAME => Arg::Int(self.uint(code, offset, 8)? as i64),
            O::BINFLOAT => {
                let b = self.fixed(code, offset, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(&b);
                Arg::Float(f64::from_be_bytes(a))
            }
            O::INT => {
                let l = self.text_line(code, offset)?;
                match l.trim() {
                    "00" => Arg::Int(0),
                    "01" => Arg::Int(1),
                    t => match t.parse::<i64>() {
                        Ok(v) => Arg::Int(v),
                        Err(_)
                            if t.bytes().all(|c| c.is_ascii_digit() || c == b'-')
                                && !t.is_empty() =>
                        {
                            Arg::BigInt(t.len())
                        }
                        Err(_) => {
                            return Err(PickleError::InvalidArg {
                                op: code.name(),
                                offset,
                                reason: format!("not an integer: {:?}", truncate(&l, 40)),
                            });
                        }
                    },
                }
            }
            O::LONG => {
                let l = self.text_line(code, offset)?;
                let t = l.trim();
                let t = t.strip_suffix('L').unwrap_or(t);
                match t.parse::<i64>() {
                    Ok(v) => Arg::Int(v),
                    Err(_)
                        if t.bytes().all(|c| c.is_ascii_digit() || c == b'-') && !t.is_empty() =>
                    {
                        Arg::BigInt(t.len())
                    }
                    Err(_) => {
                        return Err(PickleError::InvalidArg {
                            op: code.name(),
                            offset,
                            reason: format!("not an integer: {:?}", truncate(&l, 40)),
                        });
                    }
                }
            }
            O::FLOAT => {
                let l = self.text_line(code, offset)?;
                match l.trim().parse::<f64>() {
                    Ok(v) => Arg::Float(v),
                    Err(_) => {
                        return Err(PickleError::InvalidArg {
                            op: code.name(),
                            offset,
                            reason: format!("not a float: {:?}", truncate(&l, 40)),
                        });
                    }
                }
            }
            O::LONG1 | O::LONG4 => {
                let n = if code == O::LONG1 {
                    self.uint(code, offset, 1)?
                } else {
                    self.uint(code, offset, 4)?
                };
                if code == O::LONG4 && (n as u32 as i32) < 0 {
                    return Err(PickleError::InvalidArg {
                        op: code.name(),
                        offset,
                        reason: "negative length".into(),
                    });
                }
                if n as usize > self.limits.max_long_bytes {
                    return Err(PickleError::Limit {
                        op: code.name(),
                        offset,
                        limit: "MAX_LONG_BYTES",
                        what: format!("{n}-byte integer"),
                    });
                }
                let b = self.fixed(code, offset, n as usize)?;
                if b.len() <= 8 {
                    let mut v: i64 = 0;
                    for (i, byte) in b.iter().enumerate() {
                        v |= i64::from(*byte) << (8 * i);
                    }
                    if let Some(&last) = b.last()
                        && last & 0x80 != 0
                        && b.len() < 8
                    {
                        v -= 1i64 << (8 * b.len());
                    }
                    Arg::Int(v)
                } else {
                    Arg::BigInt(b.len())
                }
            }
            O::STRING => {
                let l = self.line(code, offset)?;
                Arg::Str(Payload::Inline(decode_repr_string(&l).ok_or_else(
                    || PickleError::InvalidArg {
                        op: code.name(),
                        offset,
                        reason: "the STRING opcode argument must be quoted".into(),
                    },
                )?))
            }
            O::UNICODE => {
                let l = self.line(code, offset)?;
                Arg::Str(Payload::Inline(decode_raw_unicode_escape(&l).into_bytes()))
            }
            O::BINSTRING => {
                let n = self.uint(code, offset, 4)? as u32 as i32;
                if n < 0 {
                    return Err(PickleError::InvalidArg {
                        op: code.name(),
                        offset,
                        reason: "negative length".into(),
                    });
                }
                Arg::Str(self.payload(code, offset, n as u64)?)
            }
            O::SHORT_BINSTRING | O::SHORT_BINUNICODE => Arg::Str(self.sized(code, offset, 1)?),
            O::BINUNICODE => Arg::Str(self.sized(code, offset, 4)?),
            O::BINUNICODE8 => Arg::Str(self.sized(code, offset, 8)?),
            O::SHORT_BINBYTES => Arg::Bytes(self.sized(code, offset, 1)?),
            O::BINBYTES => Arg::Bytes(self.sized(code, offset, 4)?),
            O::BINBYTES8 | O::BYTEARRAY8 => Arg::Bytes(self.sized(code, offset, 8)?),
            O::GLOBAL | O::INST => {
                let module = self.text_line(code, offset)?;
                let name = self.text_line(code, offset)?;
                Arg::Global(module, name)
            }
            O::PERSID => Arg::Line(self.text_line(code, offset)?),
            O::GET | O::PUT => Arg::Int(self.int_line(code, offset)?),
            _ => Arg::None,
        })
    }
}

fn io_err(code: OpCode, offset: u64, e: io::Error) -> PickleError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        PickleError::Truncated {
            op: code.name(),
            offset,
        }
    } else {
        PickleError::Io { offset, source: e }
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Decodes the quoted Python `repr` of a protocol-0 STRING argument, e.g. `'a\\x41'`.
fn decode_repr_string(l: &[u8]) -> Option<Vec<u8>> {
    let q = *l.first()?;
    if !(q == b'\'' || q == b'"') || l.len() < 2 || *l.last()? != q {
        return None;
    }
    let body = &l[1..l.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let Some(&e) = body.get(i + 1) else {
            out.push(b'\\');
            break;
        };
        i += 2;
        match e {
            b'n' => out.push(b'\n'),
            b't' => out.push(b'\t'),
            b'r' => out.push(b'\r'),
            b'a' => out.push(7),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'v' => out.push(11),
            b'\\' | b'\'' | b'"' => out.push(e),
            b'x' => {
                let h = body
                    .get(i..i + 2)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match h {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.extend_from_slice(b"\\x"),
                }
            }
            b'0'..=b'7' => {
                let mut v: u32 = u32::from(e - b'0');
                let mut k = 0;
                while k < 2 && body.get(i).is_some_and(|d| (b'0'..=b'7').contains(d)) {
                    v = v * 8 + u32::from(body[i] - b'0');
                    i += 1;
                    k += 1;
                }
                out.push((v & 0xff) as u8);
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    Some(out)
}

/// Decodes Python's `raw-unicode-escape` (UNICODE opcode): `\uXXXX` and `\UXXXXXXXX`; other
/// bytes are Latin-1.
fn decode_raw_unicode_escape(l: &[u8]) -> String {
    let mut out = String::with_capacity(l.len());
    let mut i = 0;
    while i < l.len() {
        if l[i] == b'\\' {
            let width = match l.get(i + 1) {
                Some(b'u') => 4,
                Some(b'U') => 8,
                _ => 0,
            };
            if width > 0
                && let Some(ch) = l
                    .get(i + 2..i + 2 + width)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .and_then(char::from_u32)
            {
                out.push(ch);
                i += 2 + width;
                continue;
            }
        }
        out.push(char::from(l[i]));
        i += 1;
    }
    out
}

/// Cheap sniff: does this look like the start of a pickle stream?
///
/// True for a PROTO opcode with protocol 2-5, or for a protocol-0/1 stream that opens with a
/// GLOBAL whose two lines are identifiers, or with MARK/EMPTY_* followed by a valid opcode.
pub fn looks_like_pickle(head: &[u8]) -> bool {
    match head {
        [0x80, p, next, ..] if (2..=5).contains(p) => OpCode::from_byte(*next).is_some(),
        [b'c', rest @ ..] => {
            let mut lines = rest.split(|&b| b == b'\n');
            let ident = |l: &[u8]| {
                !l.is_empty()
                    && l.len() < 200
                    && l.iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            };
            matches!((lines.next(), lines.next()), (Some(m), Some(n)) if ident(m) && ident(n))
                && rest.contains(&b'\n')
        }
        [b'(' | b'}' | b']' | b')', next, ..] => {
            OpCode::from_byte(*next).is_some()
                && matches!(
                    *next,
                    b'd' | b'l'
                        | b't'
                        | b'c'
                        | b'i'
                        | b'S'
                        | b'V'
                        | b'I'
                        | b'X'
                        | b'q'
                        | b'p'
                        | b'('
                        | b'U'
                        | b'K'
                        | b'N'
                        | b'}'
                        | b']'
                        | b')'
                )
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(data: &[u8]) -> Vec<(OpCode, Arg)> {
        let mut r = OpReader::new(&data, 0, Limits::default());
        let mut v = Vec::new();
        while let Some(op) = r.next_op().unwrap() {
            v.push((op.code, op.arg));
        }
        v
    }

    #[test]
    fn protocol_0_global_and_string() {
        let v = ops(b"cos\nsystem\n(S'echo \\x41'\ntR.");
        assert_eq!(
            v[0],
            (OpCode::GLOBAL, Arg::Global("os".into(), "system".into()))
        );
        assert_eq!(
            v[2],
            (
                OpCode::STRING,
                Arg::Str(Payload::Inline(b"echo A".to_vec()))
            )
        );
        assert_eq!(v.last().unwrap().0, OpCode::STOP);
    }

    #[test]
    fn long1_sign() {
        assert_eq!(ops(b"\x8a\x01\xff")[0].1, Arg::Int(-1));
        assert_eq!(ops(b"\x8a\x02\xff\x00")[0].1, Arg::Int(255));
    }

    #[test]
    fn large_payload_is_skipped() {
        let mut data = vec![0x8e];
        data.extend_from_slice(&(2_000_000u64).to_le_bytes());
        data.extend(std::iter::repeat_n(7u8, 2_000_000));
        data.push(b'.');
        let v = ops(&data);
        match &v[0].1 {
            Arg::Bytes(Payload::Skipped { len, head, .. }) => {
                assert_eq!(*len, 2_000_000);
                assert_eq!(head.len(), SKIPPED_HEAD);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(v[1].0, OpCode::STOP);
    }

    #[test]
    fn huge_declared_length_is_truncation_not_allocation() {
        let mut data = vec![0x8e];
        data.extend_from_slice(&u64::MAX.to_le_bytes());
        let mut r = OpReader::new(&data, 0, Limits::default());
        assert!(matches!(r.next_op(), Err(PickleError::Truncated { .. })));
    }

    #[test]
    fn unknown_opcode() {
        let data: &[u8] = b"\xff";
        let mut r = OpReader::new(&data, 0, Limits::default());
        assert!(matches!(
            r.next_op(),
            Err(PickleError::UnknownOpcode {
                byte: 0xff,
                offset: 0
            })
        ));
    }

    #[test]
    fn sniff() {
        assert!(looks_like_pickle(b"\x80\x04\x95"));
        assert!(looks_like_pickle(b"cos\nsystem\n"));
        assert!(!looks_like_pickle(b"cat and dog are friends"));
        assert!(!looks_like_pickle(b"\x80\x09\x95"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let mut r = OpReader::new(&data, 0, Limits::default());
            for _ in 0..1000 {
                match r.next_op() {
                    Ok(Some(_)) => {}
                    _ => break,
                }
            }
        }
    }
}
