//! Positioned reads over files and in-memory buffers.
//!
//! Parsers take `&dyn ReadAt` and read only the ranges they need. A 10 GB safetensors file costs
//! one 8-byte read and one header read.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Random-access read-only bytes.
pub trait ReadAt: Send + Sync {
    /// Total length in bytes.
    fn len(&self) -> u64;

    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at or past the end).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, mut offset: u64, mut buf: &mut [u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.read_at(offset, buf)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "unexpected end of data",
                ));
            }
            offset += n as u64;
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset` into a new vector. Callers bound `len` by a named limit.
    fn read_vec(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut v = vec![0; len];
        self.read_exact_at(offset, &mut v)?;
        Ok(v)
    }

    /// Reads up to `len` bytes at `offset` (fewer at the end of data).
    fn read_prefix(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let avail = self.len().saturating_sub(offset);
        let n = usize::try_from(avail).unwrap_or(usize::MAX).min(len);
        self.read_vec(offset, n)
    }
}

/// A file, with its length read once.
pub struct FileSource {
    file: File,
    len: u64,
}

impl FileSource {
    pub fn new(file: File) -> io::Result<FileSource> {
        let len = file.metadata()?.len();
        Ok(FileSource { file, len })
    }
}

impl ReadAt for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let max = usize::try_from(self.len - offset)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        FileExt::read_at(&self.file, &mut buf[..max], offset)
    }
}

impl ReadAt for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let Ok(start) = usize::try_from(offset) else {
            return Ok(0);
        };
        let Some(src) = self.get(start..) else {
            return Ok(0);
        };
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        Ok(n)
    }
}

impl ReadAt for &[u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        <[u8] as ReadAt>::read_at(self, offset, buf)
    }
}

impl ReadAt for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.as_slice().read_at(offset, buf)
    }
}

impl<T: ReadAt + ?Sized> ReadAt for Arc<T> {
    fn len(&self) -> u64 {
        (**self).len()
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        (**self).read_at(offset, buf)
    }
}

/// A window `[start, start + len)` of another source, e.g. a stored zip member.
pub struct Slice<'a> {
    inner: &'a dyn ReadAt,
    start: u64,
    len: u64,
}

impl<'a> Slice<'a> {
    /// A window clamped to the inner source's length.
    pub fn new(inner: &'a dyn ReadAt, start: u64, len: u64) -> Slice<'a> {
        let start = start.min(inner.len());
        let len = len.min(inner.len() - start);
        Slice { inner, start, len }
    }
}

impl ReadAt for Slice<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        if offset >= self.len {
            return Ok(0);
        }
        let max = usize::try_from(self.len - offset)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        self.inner.read_at(self.start + offset, &mut buf[..max])
    }
}

/// A buffered forward cursor over a [`ReadAt`], with cheap skips over large payloads.
pub struct Cursor<'a> {
    src: &'a dyn ReadAt,
    pos: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

const CURSOR_BUF: usize = 64 * 1024;

impl<'a> Cursor<'a> {
    pub fn new(src: &'a dyn ReadAt, pos: u64) -> Cursor<'a> {
        Cursor {
            src,
            pos,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    pub fn pos(&self) -> u64 {
        self.pos
    }

    pub fn source(&self) -> &'a dyn ReadAt {
        self.src
    }

    pub fn remaining(&self) -> u64 {
        self.src.len().saturating_sub(self.pos)
    }

    fn fill(&mut self) -> io::Result<()> {
        let in_buf =
            self.pos >= self.buf_start && self.pos < self.buf_start + self.buf.len() as u64;
        if !in_buf {
            let n = usize::try_from(self.remaining())
                .unwrap_or(usize::MAX)
                .min(CURSOR_BUF);
            self.buf.resize(n, 0);
            let got = self.src.read_at(self.pos, &mut self.buf)?;
            self.buf.truncate(got);
            self.buf_start = self.pos;
        }
        Ok(())
    }

    /// The next byte, or `None` at the end of data.
    pub fn byte(&mut self) -> io::Result<Option<u8>> {
        self.fill()?;
        let idx = (self.pos - self.buf_start) as usize;
        match self.buf.get(idx) {
            Some(&b) => {
                self.pos += 1;
                Ok(Some(b))
            }
            None => Ok(None),
        }
    }

    /// Reads exactly `n` bytes (callers bound `n`).
    pub fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        if (n as u64) > self.remaining() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "unexpected end of data",
            ));
        }
        self.fill()?;
        let idx = (self.pos - self.buf_start) as usize;
        let out = if let Some(s) = self.buf.get(idx..idx + n) {
            s.to_vec()
        } else {
            self.src.read_vec(self.pos, n)?
        };
        self.pos += n as u64;
        Ok(out)
    }

    /// Reads a line ending in `\n` (excluded), up to `max` bytes.
    pub fn line(&mut self, max: usize) -> io::Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        loop {
            match self.byte()? {
                None => return Ok(None),
                Some(b'\n') => return Ok(Some(out)),
                Some(b) => {
                    if out.len() >= max {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
                    }
                    out.push(b);
                }
            }
        }
    }

    /// Skips `n` bytes without reading them; fails if fewer remain.
    pub fn skip(&mut self, n: u64) -> io::Result<()> {
        if n > self.remaining() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "unexpected end of data",
            ));
        }
        self.pos += n;
        Ok(())
    }

    pub fn seek(&mut self, pos: u64) {
        self.pos = pos;
    }
}
