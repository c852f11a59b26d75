//! A zip reader built for scanning hostile archives.
//!
//! It trusts the central directory, as PyTorch's miniz reader does, and records every point where
//! another reader (Python's `zipfile`, which the Python scanners use) would see something
//! different: local/central name mismatches, encryption flags on plain data, duplicate names,
//! overlapping entries. Members are read with positioned reads; stored members are never copied
//! and deflated members are inflated up to a named limit.

use std::io::{self, Read};

use crate::source::{ReadAt, Slice};

/// Named limits for one archive.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most entries read from a central directory.
    pub max_entries: usize,
    /// Largest central directory read into memory.
    pub max_central_directory: u64,
    /// Largest inflated size of one member.
    pub max_member_inflated: u64,
    /// Largest inflated/compressed ratio before a member is treated as a bomb.
    pub max_ratio: u64,
}

pub const MAX_ENTRIES: usize = 100_000;
pub const MAX_CENTRAL_DIRECTORY: u64 = 64 * 1024 * 1024;
pub const MAX_MEMBER_INFLATED: u64 = 512 * 1024 * 1024;
pub const MAX_RATIO: u64 = 1000;
/// Members that inflate to less than this are never treated as bombs, whatever their ratio
/// (zeros compress about 1000:1, and small zero-filled arrays are ordinary).
pub const RATIO_FLOOR: u64 = 32 * 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: MAX_ENTRIES,
            max_central_directory: MAX_CENTRAL_DIRECTORY,
            max_member_inflated: MAX_MEMBER_INFLATED,
            max_ratio: MAX_RATIO,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ZipError {
    #[error("no end-of-central-directory record")]
    NoEndOfCentralDirectory,
    #[error("truncated {0}")]
    Truncated(&'static str),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("limit {limit} exceeded: {what}")]
    Limit { limit: &'static str, what: String },
    #[error("member {name:?} uses compression method {method}, which is not supported")]
    UnsupportedMethod { name: String, method: u16 },
    #[error("member {name:?}: {reason}")]
    Corrupt { name: String, reason: String },
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// One central directory entry.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The central directory name (lossy UTF-8), which miniz and PyTorch use.
    pub name: String,
    pub flags: u16,
    pub method: u16,
    pub crc32: u32,
    pub compressed_size: u64,
    pub uncompressed_size: u64,
    pub local_header_offset: u64,
    /// Where member data starts, from the local header; `None` if the local header is unreadable.
    pub data_offset: Option<u64>,
    /// The local header's name, when it differs from the central one.
    pub local_name: Option<String>,
    /// Why the local header could not be read, if it could not.
    pub local_error: Option<String>,
}

impl Entry {
    pub fn is_dir(&self) -> bool {
        self.name.ends_with('/')
    }

    /// General-purpose flag bit 0: "encrypted".
    pub fn encrypted_flag(&self) -> bool {
        self.flags & 1 != 0
    }
}

/// Something about the archive's structure that readers may disagree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anomaly {
    /// Two entries with the same name; readers differ on which one wins.
    DuplicateName(String),
    /// Two entries whose data ranges overlap (a classic zip-bomb construction).
    Overlap(String, String),
    /// Central and local header names differ.
    NameMismatch { central: String, local: String },
    /// The encryption flag is set; Python's `zipfile` refuses the member, miniz ignores the flag.
    EncryptedFlag(String),
    /// The local header could not be read.
    BadLocalHeader { name: String, reason: String },
    /// The end record's entry count disagrees with the central directory.
    EntryCountMismatch { declared: u64, found: u64 },
    /// A member name that is absolute or climbs out with `..`.
    UnsafePath(String),
    /// Bytes before the archive (offsets are relative to a later start): Python's `zipfile`
    /// reads such archives, miniz and `numpy.load` do not.
    PrependedData(u64),
}

/// A parsed archive: entries in central-directory order, plus anomalies.
#[derive(Debug)]
pub struct Archive {
    pub entries: Vec<Entry>,
    pub anomalies: Vec<Anomaly>,
}

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_LOC_SIG: u32 = 0x0706_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const CDH_SIG: u32 = 0x0201_4b50;
const LFH_SIG: u32 = 0x0403_4b50;

fn u16le(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_le_bytes([s[0], s[1]]))
}

fn u32le(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64le(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_le_bytes(a)
    })
}

/// True if the data starts like a zip archive (local header or empty-archive end record).
pub fn is_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06")
}

impl Archive {
    /// Reads the central directory and every local header (one small read per entry).
    pub fn open(src: &dyn ReadAt, limits: Limits) -> Result<Archive, ZipError> {
        let len = src.len();
        let tail_len = len.min(22 + 65535);
        let tail = src.read_vec(len - tail_len, tail_len as usize)?;
        let eocd_pos = (0..tail.len().saturating_sub(21))
            .rev()
            .find(|&i| u32le(&tail, i) == EOCD_SIG)
            .ok_or(ZipError::NoEndOfCentralDirectory)?;
        let eocd_abs = len - tail_len + eocd_pos as u64;
        let e = &tail[eocd_pos..];
        let mut total = u64::from(u16le(e, 10));
        let mut cd_size = u64::from(u32le(e, 12));
        let mut cd_offset = u64::from(u32le(e, 16));
        let mut zip64 = false;
        if (total == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff) && eocd_abs >= 20
        {
            let loc = src.read_vec(eocd_abs - 20, 20)?;
            if u32le(&loc, 0) == EOCD64_LOC_SIG {
                let off64 = u64le(&loc, 8);
                let rec = src.read_prefix(off64, 56)?;
                if rec.len() < 56 || u32le(&rec, 0) != EOCD64_SIG {
                    return Err(ZipError::Invalid {
                        what: "zip64 end record",
                        reason: "bad signature".into(),
                    });
                }
                total = u64le(&rec, 32);
                cd_size = u64le(&rec, 40);
                cd_offset = u64le(&rec, 48);
                zip64 = true;
            }
        }
        if cd_size > limits.max_central_directory {
            return Err(ZipError::Limit {
                limit: "MAX_CENTRAL_DIRECTORY",
                what: format!("{cd_size}-byte central directory"),
            });
        }
        if cd_offset.checked_add(cd_size).is_none_or(|end| end > len) {
            return Err(ZipError::Truncated("central directory"));
        }
        // Data prepended to the archive shifts every offset. Python's zipfile detects this from
        // where the central directory really ends and adds the difference; so does this reader,
        // but only when the unshifted offset does not hold a central directory.
        let mut concat = 0u64;
        let cd_end = if zip64 {
            eocd_abs.saturating_sub(20 + 56)
        } else {
            eocd_abs
        };
        if cd_size > 0 && cd_offset.saturating_add(cd_size) < cd_end {
            let at_declared = src.read_prefix(cd_offset, 4)?;
            let shift = cd_end - cd_offset - cd_size;
            if u32le(&at_declared, 0) != CDH_SIG
                && u32le(&src.read_prefix(cd_offset + shift, 4)?, 0) == CDH_SIG
            {
                concat = shift;
                cd_offset += shift;
            }
        }
        let cd = src.read_vec(cd_offset, cd_size as usize)?;
        let mut entries = Vec::new();
        let mut anomalies = Vec::new();
        let mut p = 0usize;
        while p + 46 <= cd.len() && u32le(&cd, p) == CDH_SIG {
            if entries.len() >= limits.max_entries {
                return Err(ZipError::Limit {
                    limit: "MAX_ENTRIES",
                    what: format!("more than {} entries", limits.max_entries),
                });
            }
            let h = &cd[p..];
            let name_len = usize::from(u16le(h, 28));
            let extra_len = usize::from(u16le(h, 30));
            let comment_len = usize::from(u16le(h, 32));
            let Some(name_bytes) = h.get(46..46 + name_len) else {
                return Err(ZipError::Truncated("central directory entry name"));
            };
            let extra = h
                .get(46 + name_len..46 + name_len + extra_len)
                .unwrap_or(&[]);
            let mut csize = u64::from(u32le(h, 20));
            let mut usize_ = u64::from(u32le(h, 24));
            let mut offset = u64::from(u32le(h, 42));
            // Zip64 extended information, in the order the spec gives, only for saturated fields.
            let mut x = 0usize;
            while x + 4 <= extra.len() {
                let id = u16le(extra, x);
                let sz = usize::from(u16le(extra, x + 2));
                let body = extra.get(x + 4..x + 4 + sz).unwrap_or(&[]);
                if id == 0x0001 {
                    let mut q = 0;
                    if usize_ == 0xffff_ffff {
                        usize_ = u64le(body, q);
                        q += 8;
                    }
                    if csize == 0xffff_ffff {
                        csize = u64le(body, q);
                        q += 8;
                    }
                    if offset == 0xffff_ffff {
                        offset = u64le(body, q);
                    }
                }
                x += 4 + sz;
            }
            entries.push(Entry {
                name: String::from_utf8_lossy(name_bytes).into_owned(),
                flags: u16le(h, 8),
                method: u16le(h, 10),
                crc32: u32le(h, 16),
                compressed_size: csize,
                uncompressed_size: usize_,
                local_header_offset: offset.saturating_add(concat),
                data_offset: None,
                local_name: None,
                local_error: None,
            });
            p += 46 + name_len + extra_len + comment_len;
        }
        if concat > 0 {
            anomalies.push(Anomaly::PrependedData(concat));
        }
        if entries.len() as u64 != total {
            anomalies.push(Anomaly::EntryCountMismatch {
                declared: total,
                found: entries.len() as u64,
            });
        }
        for e in &mut entries {
            match read_local(src, e.local_header_offset) {
                Ok((data_off, lname)) => {
                    e.data_offset = Some(data_off);
                    if lname != e.name {
                        anomalies.push(Anomaly::NameMismatch {
                            central: e.name.clone(),
                            local: lname.clone(),
                        });
                        e.local_name = Some(lname);
                    }
                }
                Err(reason) => {
                    anomalies.push(Anomaly::BadLocalHeader {
                        name: e.name.clone(),
                        reason: reason.clone(),
                    });
                    e.local_error = Some(reason);
                }
            }
            if e.encrypted_flag() {
                anomalies.push(Anomaly::EncryptedFlag(e.name.clone()));
            }
            if is_unsafe_path(&e.name) {
                anomalies.push(Anomaly::UnsafePath(e.name.clone()));
            }
        }
        let mut names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        names.sort_unstable();
        for w in names.windows(2) {
            if w[0] == w[1] && !anomalies.contains(&Anomaly::DuplicateName(w[0].to_owned())) {
                anomalies.push(Anomaly::DuplicateName(w[0].to_owned()));
            }
        }
        let mut ranges: Vec<(u64, u64, &str)> = entries
            .iter()
            .map(|e| {
                (
                    e.local_header_offset,
                    e.data_offset
                        .unwrap_or(e.local_header_offset)
                        .saturating_add(e.compressed_size),
                    e.name.as_str(),
                )
            })
            .collect();
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            if w[1].0 < w[0].1 {
                anomalies.push(Anomaly::Overlap(w[0].2.to_owned(), w[1].2.to_owned()));
            }
        }
        Ok(Archive { entries, anomalies })
    }

    /// Finds an entry by its central directory name (the last one, if duplicated, as miniz does).
    pub fn find(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().rev().find(|e| e.name == name)
    }
}

/// Is this member name absolute or does it climb out of the extraction directory?
pub fn is_unsafe_path(name: &str) -> bool {
    name.starts_with('/')
        || name.starts_with('\\')
        || name.as_bytes().get(1) == Some(&b':')
        || name.split(['/', '\\']).any(|c| c == "..")
}

fn read_local(src: &dyn ReadAt, off: u64) -> Result<(u64, String), String> {
    let h = src.read_prefix(off, 30).map_err(|e| e.to_string())?;
    if h.len() < 30 {
        return Err("truncated local header".into());
    }
    if u32le(&h, 0) != LFH_SIG {
        return Err(format!("bad local header signature at offset {off}"));
    }
    let name_len = u64::from(u16le(&h, 26));
    let extra_len = u64::from(u16le(&h, 28));
    let name = src
        .read_prefix(off + 30, name_len as usize)
        .map_err(|e| e.to_string())?;
    if name.len() as u64 != name_len {
        return Err("truncated local header name".into());
    }
    Ok((
        off + 30 + name_len + extra_len,
        String::from_utf8_lossy(&name).into_owned(),
    ))
}

/// A member's bytes: stored members are a window over the archive, deflated ones are inflated.
pub enum MemberData<'a> {
    Stored(Slice<'a>),
    Inflated(Vec<u8>),
}

impl MemberData<'_> {
    pub fn as_read_at(&self) -> &dyn ReadAt {
        match self {
            MemberData::Stored(s) => s,
            MemberData::Inflated(v) => v,
        }
    }
}

/// Opens a member for reading. The encryption flag is ignored, as PyTorch ignores it.
pub fn member<'a>(
    src: &'a dyn ReadAt,
    e: &Entry,
    limits: Limits,
) -> Result<MemberData<'a>, ZipError> {
    let corrupt = |reason: String| ZipError::Corrupt {
        name: e.name.clone(),
        reason,
    };
    let data_off = e.data_offset.ok_or_else(|| {
        corrupt(
            e.local_error
                .clone()
                .unwrap_or_else(|| "unreadable local header".into()),
        )
    })?;
    if data_off
        .checked_add(e.compressed_size)
        .is_none_or(|end| end > src.len())
    {
        return Err(corrupt(format!(
            "data ({} bytes at offset {data_off}) runs past the end of the archive",
            e.compressed_size
        )));
    }
    let raw = Slice::new(src, data_off, e.compressed_size);
    match e.method {
        0 => Ok(MemberData::Stored(raw)),
        8 => {
            if e.uncompressed_size > limits.max_member_inflated {
                return Err(ZipError::Limit {
                    limit: "MAX_MEMBER_INFLATED",
                    what: format!("{:?} declares {} bytes", e.name, e.uncompressed_size),
                });
            }
            let cap = limits.max_member_inflated.min(
                e.compressed_size
                    .saturating_mul(limits.max_ratio)
                    .max(RATIO_FLOOR),
            );
            let comp = raw.read_vec(
                0,
                usize::try_from(e.compressed_size).map_err(|_| corrupt("too large".into()))?,
            )?;
            let mut out = Vec::new();
            let mut dec = flate2::read::DeflateDecoder::new(&comp[..]).take(cap + 1);
            dec.read_to_end(&mut out)
                .map_err(|err| corrupt(format!("inflate failed: {err}")))?;
            if out.len() as u64 > cap {
                return Err(ZipError::Limit {
                    limit: if cap == limits.max_member_inflated {
                        "MAX_MEMBER_INFLATED"
                    } else {
                        "MAX_RATIO"
                    },
                    what: format!(
                        "{:?} inflates past {cap} bytes from {} compressed",
                        e.name, e.compressed_size
                    ),
                });
            }
            if out.len() as u64 != e.uncompressed_size {
                return Err(corrupt(format!(
                    "inflates to {} bytes but declares {} (readers that trust the declared size see other data)",
                    out.len(),
                    e.uncompressed_size
                )));
            }
            Ok(MemberData::Inflated(out))
        }
        m => Err(ZipError::UnsupportedMethod {
            name: e.name.clone(),
            method: m,
        }),
    }
}

/// The first `n` bytes of a member, inflating only that much: enough to identify it and read a
/// header without inflating a large member.
pub fn member_prefix(src: &dyn ReadAt, e: &Entry, n: usize) -> Result<Vec<u8>, ZipError> {
    let corrupt = |reason: String| ZipError::Corrupt {
        name: e.name.clone(),
        reason,
    };
    let data_off = e
        .data_offset
        .ok_or_else(|| corrupt("unreadable local header".into()))?;
    if data_off
        .checked_add(e.compressed_size)
        .is_none_or(|end| end > src.len())
    {
        return Err(corrupt("data runs past the end of the archive".into()));
    }
    let raw = Slice::new(src, data_off, e.compressed_size);
    match e.method {
        0 => Ok(raw.read_prefix(0, n)?),
        8 => {
            let mut out = Vec::with_capacity(n);
            let reader = crate::source::Cursor::new(&raw, 0);
            let mut dec = flate2::read::DeflateDecoder::new(CursorRead(reader)).take(n as u64);
            dec.read_to_end(&mut out)
                .map_err(|err| corrupt(format!("inflate failed: {err}")))?;
            Ok(out)
        }
        m => Err(ZipError::UnsupportedMethod {
            name: e.name.clone(),
            method: m,
        }),
    }
}

/// `Read` over a [`Cursor`](crate::source::Cursor).
struct CursorRead<'a>(crate::source::Cursor<'a>);

impl Read for CursorRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = usize::try_from(self.0.remaining())
            .unwrap_or(usize::MAX)
            .min(buf.len())
            .min(64 * 1024);
        if n == 0 {
            return Ok(0);
        }
        let v = self.0.take(n)?;
        buf[..n].copy_from_slice(&v);
        Ok(n)
    }
}

/// CRC-32 of a member's data, compared with the central directory. Reads the whole member, so
/// callers use it only on members they read anyway.
pub fn crc_matches(data: &dyn ReadAt, expected: u32) -> io::Result<bool> {
    let mut crc = flate2::Crc::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut off = 0u64;
    loop {
        let n = data.read_at(off, &mut buf)?;
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
        off += n as u64;
    }
    Ok(crc.sum() == expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..1024)) {
            if let Ok(a) = Archive::open(&data, Limits::default()) {
                for e in &a.entries {
                    if let Ok(m) = member(&data, e, Limits::default()) {
                        let _ = crc_matches(m.as_read_at(), e.crc32);
                    }
                }
            }
        }

        #[test]
        fn never_panics_after_valid_prefix(tail in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut data = b"PK\x03\x04".to_vec();
            data.extend_from_slice(&tail);
            data.extend_from_slice(b"PK\x05\x06");
            data.extend_from_slice(&tail);
            let _ = Archive::open(&data, Limits::default());
        }
    }

    #[test]
    fn unsafe_paths() {
        assert!(is_unsafe_path("../x"));
        assert!(is_unsafe_path("/etc/passwd"));
        assert!(is_unsafe_path("a/../../b"));
        assert!(is_unsafe_path("C:\\x"));
        assert!(!is_unsafe_path("archive/data.pkl"));
        assert!(!is_unsafe_path("a..b/c"));
    }
}
