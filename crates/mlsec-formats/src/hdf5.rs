//! Root-group attributes of an HDF5 file, read without reading datasets.
//!
//! Keras stores a model's architecture as the root attribute `model_config` (a JSON string), so
//! this is all the scanner needs from a legacy `.h5` model. Supported: superblock versions 0-3,
//! object header versions 1 and 2 with continuation blocks, attribute message versions 1-3, fixed
//! and variable-length strings (the latter through the global heap). Dense attribute storage
//! (fractal heaps) is reported as [`Error::Unsupported`].

use crate::source::ReadAt;

/// Most header messages walked in the root object header, continuations included.
pub const MAX_MESSAGES: usize = 65_536;
/// Most continuation blocks followed.
pub const MAX_CONTINUATIONS: usize = 256;
/// Largest header block or heap collection read into memory.
pub const MAX_BLOCK: u64 = 64 * 1024 * 1024;

pub const SIGNATURE: &[u8] = b"\x89HDF\r\n\x1a\n";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("not an HDF5 file")]
    Signature,
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("unsupported HDF5 layout: {0}")]
    Unsupported(String),
    #[error("limit {limit} exceeded: {what}")]
    Limit { limit: &'static str, what: String },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// An attribute value, as far as the scanner cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Other,
}

/// Superblock facts.
#[derive(Debug, Clone, Copy)]
pub struct Superblock {
    pub version: u8,
    pub offset_size: u8,
    pub length_size: u8,
    pub base: u64,
    pub eof: u64,
    pub root_header: u64,
}

fn uint(b: &[u8], at: usize, n: u8) -> Option<u64> {
    let s = b.get(at..at + usize::from(n))?;
    Some(
        s.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
    )
}

/// Reads the superblock at offset 0.
pub fn superblock(src: &dyn ReadAt) -> Result<Superblock, Error> {
    let sb = src.read_prefix(0, 256)?;
    if !sb.starts_with(SIGNATURE) {
        return Err(Error::Signature);
    }
    let version = *sb.get(8).ok_or(Error::Truncated("superblock"))?;
    let (os, ls, addr_at) = match version {
        0 | 1 => {
            let os = *sb.get(13).ok_or(Error::Truncated("superblock"))?;
            let ls = *sb.get(14).ok_or(Error::Truncated("superblock"))?;
            (os, ls, if version == 0 { 24 } else { 28 })
        }
        2 | 3 => {
            let os = *sb.get(9).ok_or(Error::Truncated("superblock"))?;
            let ls = *sb.get(10).ok_or(Error::Truncated("superblock"))?;
            (os, ls, 12)
        }
        v => {
            return Err(Error::Invalid {
                what: "superblock",
                reason: format!("unknown version {v}"),
            });
        }
    };
    if !matches!(os, 2 | 4 | 8) || !matches!(ls, 2 | 4 | 8) {
        return Err(Error::Invalid {
            what: "superblock",
            reason: format!("offset size {os}, length size {ls}"),
        });
    }
    let o = usize::from(os);
    let field = |at: usize| uint(&sb, at, os).ok_or(Error::Truncated("superblock"));
    let base = field(addr_at)?;
    // Both layouts put the end-of-file address third. Versions 0-1 then have the driver block and
    // the root symbol table entry (link name offset, object header); versions 2-3 the root header.
    let eof = field(addr_at + 2 * o)?;
    let root_header = if version <= 1 {
        field(addr_at + 5 * o)?
    } else {
        field(addr_at + 3 * o)?
    };
    Ok(Superblock {
        version,
        offset_size: os,
        length_size: ls,
        base,
        eof,
        root_header,
    })
}

struct Ctx<'a> {
    src: &'a dyn ReadAt,
    sb: Superblock,
    messages: usize,
}

impl Ctx<'_> {
    fn read(&self, addr: u64, len: u64, what: &'static str) -> Result<Vec<u8>, Error> {
        if len > MAX_BLOCK {
            return Err(Error::Limit {
                limit: "MAX_BLOCK",
                what: format!("{what} of {len} bytes"),
            });
        }
        let abs = self
            .sb
            .base
            .checked_add(addr)
            .ok_or(Error::Truncated(what))?;
        if abs.checked_add(len).is_none_or(|e| e > self.src.len()) {
            return Err(Error::Truncated(what));
        }
        Ok(self.src.read_vec(abs, len as usize)?)
    }

    fn tick(&mut self) -> Result<(), Error> {
        self.messages += 1;
        if self.messages > MAX_MESSAGES {
            return Err(Error::Limit {
                limit: "MAX_MESSAGES",
                what: "root object header messages".into(),
            });
        }
        Ok(())
    }
}

/// Reads the root group's attributes (name, value).
pub fn root_attributes(src: &dyn ReadAt) -> Result<Vec<(String, Value)>, Error> {
    let sb = superblock(src)?;
    let mut cx = Ctx {
        src,
        sb,
        messages: 0,
    };
    let mut raw_attrs: Vec<Vec<u8>> = Vec::new();
    let first = cx.read(sb.root_header, 16, "root object header")?;
    let mut blocks: Vec<(u64, u64, bool)> = Vec::new(); // (addr, len, is v2 continuation)
    let v2 = first.starts_with(b"OHDR");
    if v2 {
        let flags = *first.get(5).ok_or(Error::Truncated("object header"))?;
        let mut at = 6usize;
        if flags & 0x20 != 0 {
            at += 16;
        }
        if flags & 0x10 != 0 {
            at += 4;
        }
        let size_len = 1u8 << (flags & 3);
        let head = cx.read(sb.root_header, (at + 8) as u64, "object header")?;
        let chunk = uint(&head, at, size_len).ok_or(Error::Truncated("object header"))?;
        let start = sb
            .root_header
            .checked_add(at as u64 + u64::from(size_len))
            .ok_or(Error::Truncated("object header"))?;
        walk_v2(&mut cx, start, chunk, flags, &mut raw_attrs, &mut blocks)?;
    } else {
        if first.first() != Some(&1) {
            return Err(Error::Invalid {
                what: "object header",
                reason: format!("version {:?}", first.first()),
            });
        }
        let size = uint(&first, 8, 4).ok_or(Error::Truncated("object header"))?;
        let start = sb
            .root_header
            .checked_add(16)
            .ok_or(Error::Truncated("object header"))?;
        walk_v1(&mut cx, start, size, &mut raw_attrs, &mut blocks)?;
    }
    let mut followed = 0;
    while let Some((addr, len, is_v2)) = blocks.pop() {
        followed += 1;
        if followed > MAX_CONTINUATIONS {
            return Err(Error::Limit {
                limit: "MAX_CONTINUATIONS",
                what: "object header continuation blocks".into(),
            });
        }
        if is_v2 {
            // "OCHK" signature, messages, checksum.
            let flags = if v2 {
                cx.read(sb.root_header, 6, "object header")?[5]
            } else {
                0
            };
            let start = addr
                .checked_add(4)
                .ok_or(Error::Truncated("object header continuation"))?;
            walk_v2(
                &mut cx,
                start,
                len.saturating_sub(8),
                flags,
                &mut raw_attrs,
                &mut blocks,
            )?;
        } else {
            walk_v1(&mut cx, addr, len, &mut raw_attrs, &mut blocks)?;
        }
    }
    raw_attrs.iter().map(|a| attribute(&cx, a)).collect()
}

fn continuation(cx: &Ctx<'_>, data: &[u8]) -> Result<(u64, u64), Error> {
    let addr = uint(data, 0, cx.sb.offset_size).ok_or(Error::Truncated("continuation message"))?;
    let len = uint(data, usize::from(cx.sb.offset_size), cx.sb.length_size)
        .ok_or(Error::Truncated("continuation message"))?;
    Ok((addr, len))
}

fn walk_v1(
    cx: &mut Ctx<'_>,
    start: u64,
    len: u64,
    attrs: &mut Vec<Vec<u8>>,
    blocks: &mut Vec<(u64, u64, bool)>,
) -> Result<(), Error> {
    let block = cx.read(start, len, "object header block")?;
    let mut p = 0usize;
    while p + 8 <= block.len() {
        cx.tick()?;
        let ty = uint(&block, p, 2).unwrap_or(0);
        let size = uint(&block, p + 2, 2).unwrap_or(0) as usize;
        let data = block
            .get(p + 8..p + 8 + size)
            .ok_or(Error::Truncated("object header message"))?;
        match ty {
            0x0C => attrs.push(data.to_vec()),
            0x10 => {
                let (a, l) = continuation(cx, data)?;
                blocks.push((a, l, false));
            }
            0x15 => return Err(Error::Unsupported("dense attribute storage".into())),
            _ => {}
        }
        p += 8 + size;
    }
    Ok(())
}

fn walk_v2(
    cx: &mut Ctx<'_>,
    start: u64,
    len: u64,
    flags: u8,
    attrs: &mut Vec<Vec<u8>>,
    blocks: &mut Vec<(u64, u64, bool)>,
) -> Result<(), Error> {
    let block = cx.read(start, len, "object header block")?;
    let prefix = if flags & 0x04 != 0 { 6 } else { 4 };
    let mut p = 0usize;
    while p + prefix <= block.len() {
        cx.tick()?;
        let ty = block[p];
        let size = uint(&block, p + 1, 2).unwrap_or(0) as usize;
        let Some(data) = block.get(p + prefix..p + prefix + size) else {
            // Gap at the end of the chunk.
            break;
        };
        match ty {
            0x0C => attrs.push(data.to_vec()),
            0x10 => {
                let (a, l) = continuation(cx, data)?;
                blocks.push((a, l, true));
            }
            0x15 => {
                // Attribute info: dense storage in use if the fractal heap address is defined.
                let heap_at = if data.get(1).is_some_and(|f| f & 1 != 0) {
                    4
                } else {
                    2
                };
                if uint(data, heap_at, cx.sb.offset_size)
                    .is_some_and(|a| a != u64::MAX >> (64 - 8 * u32::from(cx.sb.offset_size)))
                {
                    return Err(Error::Unsupported("dense attribute storage".into()));
                }
            }
            _ => {}
        }
        p += prefix + size;
    }
    Ok(())
}

fn pad8(n: usize) -> usize {
    n.div_ceil(8).saturating_mul(8)
}

fn attribute(cx: &Ctx<'_>, a: &[u8]) -> Result<(String, Value), Error> {
    let bad = |r: &str| Error::Invalid {
        what: "attribute message",
        reason: r.to_owned(),
    };
    let version = *a.first().ok_or(Error::Truncated("attribute message"))?;
    let name_size = uint(a, 2, 2).ok_or(Error::Truncated("attribute message"))? as usize;
    let dt_size = uint(a, 4, 2).ok_or(Error::Truncated("attribute message"))? as usize;
    let ds_size = uint(a, 6, 2).ok_or(Error::Truncated("attribute message"))? as usize;
    // Name, datatype and dataspace follow the fixed part; version 1 pads each to 8 bytes.
    let (name_at, pad): (usize, fn(usize) -> usize) = match version {
        1 => (8, pad8),
        2 => (8, |n| n),
        3 => (9, |n| n),
        v => return Err(bad(&format!("version {v}"))),
    };
    let dt_at = name_at + pad(name_size);
    let data_at = dt_at + pad(dt_size) + pad(ds_size);
    let name_raw = a
        .get(name_at..name_at + name_size)
        .ok_or(Error::Truncated("attribute name"))?;
    let name =
        String::from_utf8_lossy(name_raw.split(|&b| b == 0).next().unwrap_or(&[])).into_owned();
    let dt = a
        .get(dt_at..dt_at + dt_size)
        .ok_or(Error::Truncated("attribute datatype"))?;
    let data = a.get(data_at..).unwrap_or(&[]);
    let class = dt.first().map_or(255, |b| b & 0x0f);
    let value = match class {
        3 => {
            let size = uint(dt, 4, 4).ok_or(Error::Truncated("datatype"))? as usize;
            let s = data.get(..size.min(data.len())).unwrap_or(&[]);
            Value::Str(
                String::from_utf8_lossy(s.split(|&b| b == 0).next().unwrap_or(&[])).into_owned(),
            )
        }
        9 if dt.get(1).is_some_and(|b| b & 0x0f == 1) => {
            // length (4), then a global heap ID: collection address, object index (4).
            let os = cx.sb.offset_size;
            let len = uint(data, 0, 4).ok_or(Error::Truncated("vlen string"))?;
            let coll = uint(data, 4, os).ok_or(Error::Truncated("vlen string"))?;
            let idx = uint(data, 4 + usize::from(os), 4).ok_or(Error::Truncated("vlen string"))?;
            Value::Str(global_heap_object(cx, coll, idx, len)?)
        }
        _ => Value::Other,
    };
    Ok((name, value))
}

fn global_heap_object(cx: &Ctx<'_>, coll: u64, idx: u64, len: u64) -> Result<String, Error> {
    let ls = cx.sb.length_size;
    let head = cx.read(coll, 8 + u64::from(ls), "global heap collection")?;
    if !head.starts_with(b"GCOL") {
        return Err(Error::Invalid {
            what: "global heap collection",
            reason: "bad signature".into(),
        });
    }
    let size = uint(&head, 8, ls).ok_or(Error::Truncated("global heap collection"))?;
    let heap = cx.read(coll, size, "global heap collection")?;
    let mut p = 8 + usize::from(ls);
    let hdr = 8 + usize::from(ls);
    while p + hdr <= heap.len() {
        let i = uint(&heap, p, 2).unwrap_or(0);
        let osize = uint(&heap, p + 8, ls).unwrap_or(0);
        if i == idx {
            let n = usize::try_from(len.min(osize))
                .map_err(|_| Error::Truncated("global heap object"))?;
            let start = p + hdr;
            let body = start
                .checked_add(n)
                .and_then(|end| heap.get(start..end))
                .ok_or(Error::Truncated("global heap object"))?;
            return Ok(String::from_utf8_lossy(body).into_owned());
        }
        if i == 0 {
            break;
        }
        let step = usize::try_from(osize).map_err(|_| Error::Truncated("global heap object"))?;
        p = p
            .checked_add(hdr)
            .and_then(|q| q.checked_add(pad8(step)))
            .ok_or(Error::Truncated("global heap object"))?;
    }
    Err(Error::Invalid {
        what: "global heap",
        reason: format!("object {idx} not found"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn never_panics(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut data = SIGNATURE.to_vec();
            data.extend_from_slice(&tail);
            let _ = root_attributes(&data);
        }
    }

    /// Found by the fuzz target: a continuation block at address 2^64 - 1 (its signature skip
    /// overflowed). Addresses from the file are added with overflow checks.
    #[test]
    fn a_continuation_at_the_end_of_the_address_space_is_truncated_not_a_panic() {
        #[rustfmt::skip]
        const INPUT: &[u8] = &[
        0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x08, 0x00,
        0x04, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x32, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xa0, 0x37, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0xa8, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x4f, 0x48, 0x44, 0x52, 0x01, 0x00,
        0x3a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x2a, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x17, 0x00,
        0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x08, 0x00, 0x00, 0x1a, 0x0a,
        ];
        assert!(matches!(root_attributes(&INPUT), Err(Error::Truncated(_))));
    }
}
