//! What a listener watches on each connection beneath HTTP, where hyper cannot be asked:
//! - a deadline for the first byte: a connection that never sends anything is closed (hyper's
//!   header timeout starts only once its HTTP/1 parser runs, after protocol detection has read
//!   something);
//! - the framing of every HTTP/1 request head. hyper serves a head that carries both
//!   `Content-Length` and `Transfer-Encoding`, or two equal `Content-Length`s, after dropping one
//!   of them; a proxy in front may have framed the same bytes the other way (request
//!   smuggling). [`Framing`] follows the connection's requests as hyper reads them (heads, fixed
//!   and chunked bodies) and marks the connection ([`ConnMarks`]) when one head is ambiguous;
//!   the server refuses that request and every later one on the connection, and closes it.
//!
//! Bytes are only looked at, never changed. Limits: a head is followed up to
//! [`MAX_HEAD_BYTES`] and [`MAX_HEADERS`] fields, a chunk-size or trailer line up to
//! [`MAX_LINE_BYTES`]; past them (or on bytes hyper will refuse anyway) the watcher stops
//! following the connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Longest request head followed.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Most header fields in a head followed.
pub const MAX_HEADERS: usize = 128;
/// Longest chunk-size line (with extensions) or trailer line followed.
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// What the watcher learnt about a connection, shared with its requests (through their
/// extensions).
#[derive(Debug, Clone, Default)]
pub struct ConnMarks(Arc<AtomicBool>);

impl ConnMarks {
    /// A request head on this connection gave its body's length in more than one way.
    pub fn ambiguous(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn mark_ambiguous(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Where in the HTTP/1 message stream the watcher is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a request head.
    Head,
    /// This many body bytes to go.
    Fixed(u64),
    /// In a chunked body.
    Chunk(Chunk),
    /// No longer following (HTTP/2, an ambiguous head, or bytes hyper refuses).
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// The hex size so far and the line's length.
    Size {
        n: u64,
        len: usize,
        digits: bool,
    },
    /// After the size: an extension, up to CR.
    Ext {
        n: u64,
        len: usize,
    },
    /// CR seen after the size line.
    SizeLf {
        n: u64,
    },
    Data(u64),
    DataCr,
    DataLf,
    /// A trailer line of this length so far (0: maybe the final empty line).
    Trailer {
        len: usize,
    },
    TrailerLf {
        len: usize,
    },
}

/// Follows the requests of one HTTP/1 connection.
#[derive(Debug)]
pub struct Framing {
    state: State,
    head: Vec<u8>,
    marks: ConnMarks,
}

impl Framing {
    /// A watcher that records what it finds in `marks`.
    pub fn new(marks: ConnMarks) -> Framing {
        Framing {
            state: State::Head,
            head: Vec::new(),
            marks,
        }
    }

    /// Whether the watcher still follows the connection.
    pub fn following(&self) -> bool {
        self.state != State::Off
    }

    /// Feeds the bytes just read, in order.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            match self.state {
                State::Off => return,
                State::Head => {
                    let Some(used) = self.head_bytes(bytes) else {
                        return;
                    };
                    bytes = &bytes[used..];
                }
                State::Fixed(n) => {
                    let take = n.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    self.state = if n == take {
                        State::Head
                    } else {
                        State::Fixed(n - take)
                    };
                }
                State::Chunk(Chunk::Data(n)) => {
                    let take = n.min(bytes.len() as u64);
                    bytes = &bytes[take as usize..];
                    self.state = State::Chunk(if n == take {
                        Chunk::DataCr
                    } else {
                        Chunk::Data(n - take)
                    });
                }
                State::Chunk(c) => {
                    self.state = chunk_byte(c, bytes[0]);
                    bytes = &bytes[1..];
                }
            }
        }
    }

    /// Takes bytes into the head; when it is complete, judges it and returns how many of
    /// `bytes` it used. `None` when all were used and the head is still incomplete.
    fn head_bytes(&mut self, bytes: &[u8]) -> Option<usize> {
        // The common case: the whole head in one read, judged where it lies. Like the path
        // below, it parses only once a line has ended, so how reads split the bytes never
        // changes the verdict.
        if self.head.is_empty() && bytes.len() <= MAX_HEAD_BYTES && bytes.contains(&b'\n') {
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut fields);
            match req.parse(bytes) {
                Ok(httparse::Status::Complete(len)) => {
                    self.state = judge(&req, &self.marks);
                    return Some(len);
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => {
                    self.stop();
                    return None;
                }
            }
        }
        let before = self.head.len();
        let room = MAX_HEAD_BYTES + 1 - before;
        let add = &bytes[..bytes.len().min(room)];
        self.head.extend_from_slice(add);
        if !add.contains(&b'\n') {
            if self.head.len() > MAX_HEAD_BYTES {
                self.stop();
            }
            return None;
        }
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut fields);
        match req.parse(&self.head) {
            Ok(httparse::Status::Complete(len)) => {
                self.state = judge(&req, &self.marks);
                self.head.clear();
                Some(len - before)
            }
            Ok(httparse::Status::Partial) if self.head.len() <= MAX_HEAD_BYTES => None,
            // Too long, too many fields, or not HTTP/1 (the HTTP/2 preface): hyper answers
            // or refuses it; nothing more to follow.
            _ => {
                self.stop();
                None
            }
        }
    }

    fn stop(&mut self) {
        self.state = State::Off;
        self.head = Vec::new();
    }
}

/// How a complete head frames its body.
fn judge(req: &httparse::Request<'_, '_>, marks: &ConnMarks) -> State {
    let mut lengths = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"));
    let first_length = lengths.next();
    let more_lengths = lengths.next().is_some();
    // hyper frames by the last Transfer-Encoding field's last coding.
    let last_encoding = req
        .headers
        .iter()
        .rfind(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
        .map(|h| h.value);
    if more_lengths || (first_length.is_some() && last_encoding.is_some()) {
        marks.mark_ambiguous();
        return State::Off;
    }
    if let Some(last) = last_encoding {
        let chunked_last = last
            .rsplit(|&b| b == b',')
            .next()
            .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        return if chunked_last {
            State::Chunk(Chunk::Size {
                n: 0,
                len: 0,
                digits: false,
            })
        } else {
            // hyper refuses a request whose last coding is not chunked.
            State::Off
        };
    }
    match first_length {
        None => State::Head,
        Some(h) => match std::str::from_utf8(h.value)
            .ok()
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok())
        {
            Some(0) => State::Head,
            Some(n) => State::Fixed(n),
            None => State::Off,
        },
    }
}

/// One byte of chunked framing outside chunk data.
fn chunk_byte(c: Chunk, b: u8) -> State {
    let next = match c {
        Chunk::Size { n, len, digits } => match b {
            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                let d = u64::from((b as char).to_digit(16).unwrap_or(0));
                match n.checked_mul(16).and_then(|x| x.checked_add(d)) {
                    Some(n) if len < MAX_LINE_BYTES => Chunk::Size {
                        n,
                        len: len + 1,
                        digits: true,
                    },
                    _ => return State::Off,
                }
            }
            b';' | b' ' | b'\t' if digits => Chunk::Ext { n, len: len + 1 },
            b'\r' if digits => Chunk::SizeLf { n },
            _ => return State::Off,
        },
        Chunk::Ext { n, len } => match b {
            b'\r' => Chunk::SizeLf { n },
            b'\n' => return State::Off,
            _ if len < MAX_LINE_BYTES => Chunk::Ext { n, len: len + 1 },
            _ => return State::Off,
        },
        Chunk::SizeLf { n } => match (b, n) {
            (b'\n', 0) => Chunk::Trailer { len: 0 },
            (b'\n', n) => Chunk::Data(n),
            _ => return State::Off,
        },
        Chunk::DataCr if b == b'\r' => Chunk::DataLf,
        Chunk::DataLf if b == b'\n' => Chunk::Size {
            n: 0,
            len: 0,
            digits: false,
        },
        Chunk::Trailer { len } => match b {
            b'\r' => Chunk::TrailerLf { len },
            b'\n' => return State::Off,
            _ if len < MAX_LINE_BYTES => Chunk::Trailer { len: len + 1 },
            _ => return State::Off,
        },
        Chunk::TrailerLf { len } => match (b, len) {
            (b'\n', 0) => return State::Head,
            (b'\n', _) => Chunk::Trailer { len: 0 },
            _ => return State::Off,
        },
        Chunk::DataCr | Chunk::DataLf | Chunk::Data(_) => return State::Off,
    };
    State::Chunk(next)
}

/// A connection's byte stream with the first-byte deadline and, for HTTP/1, the framing
/// watcher.
pub struct Watched<S> {
    inner: S,
    first_byte: Option<Pin<Box<tokio::time::Sleep>>>,
    framing: Option<Framing>,
}

impl<S> Watched<S> {
    /// Watches `inner`: closed with `TimedOut` if nothing arrives within `first_byte`;
    /// request framing followed when `framing` is given (HTTP/1; not for a TLS connection that
    /// chose h2).
    pub fn new(inner: S, first_byte: Duration, framing: Option<Framing>) -> Watched<S> {
        Watched {
            inner,
            first_byte: Some(Box::pin(tokio::time::sleep(first_byte))),
            framing,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() {
                    this.first_byte = None;
                    if let Some(f) = &mut this.framing {
                        f.feed(new);
                        if !f.following() {
                            this.framing = None;
                        }
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if let Some(deadline) = &mut this.first_byte
                    && deadline.as_mut().poll(cx).is_ready()
                {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "nothing received before the header timeout",
                    )));
                }
                Poll::Pending
            }
            other @ Poll::Ready(Err(_)) => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> (bool, State) {
        let marks = ConnMarks::default();
        let mut f = Framing::new(marks.clone());
        for c in chunks {
            f.feed(c);
        }
        (marks.ambiguous(), f.state)
    }

    fn whole(bytes: &[u8]) -> (bool, State) {
        run(&[bytes])
    }

    fn bytewise(bytes: &[u8]) -> (bool, State) {
        let parts: Vec<&[u8]> = bytes.chunks(1).collect();
        run(&parts)
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

    #[test]
    fn ambiguous_heads_mark_the_connection() {
        for head in [
            &b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\ncontent-length: 4\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        ] {
            assert!(whole(head).0, "{}", String::from_utf8_lossy(head));
            assert!(bytewise(head).0, "{}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn plain_requests_are_followed_through_their_bodies() {
        let fixed = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n";
        for body in [&fixed[..], &chunked[..], GET] {
            let mut stream = body.to_vec();
            stream.extend_from_slice(GET);
            assert_eq!(whole(&stream), (false, State::Head));
            assert_eq!(bytewise(&stream), (false, State::Head));
        }
    }

    #[test]
    fn a_body_that_looks_like_a_smuggled_head_is_only_a_body() {
        let inner = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
        let mut stream =
            format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", inner.len()).into_bytes();
        stream.extend_from_slice(inner);
        stream.extend_from_slice(GET);
        assert_eq!(whole(&stream), (false, State::Head));
        let mut chunked = format!(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
            inner.len()
        )
        .into_bytes();
        chunked.extend_from_slice(inner);
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        chunked.extend_from_slice(GET);
        assert_eq!(bytewise(&chunked), (false, State::Head));
    }

    #[test]
    fn the_second_request_on_a_connection_is_judged_too() {
        let mut stream = GET.to_vec();
        stream.extend_from_slice(
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
        );
        assert!(whole(&stream).0);
    }

    #[test]
    fn a_bad_request_line_is_never_marked_however_it_is_split() {
        // Found by the `framing` fuzz target: bad bytes after a line end are judged at once
        // when whole and at the next line end when split; neither marks the connection, and
        // the split watcher gives up as soon as a line ends.
        for bytes in [
            &b"mlsed-fixt}res:i55\x01\x00\x00\x00\x00\x00\x00\xd24gH\x00\x00"[..],
            b"\njjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj\xe9\xe9\xe9jjjjn",
        ] {
            for cut in 0..bytes.len() {
                let split = run(&[&bytes[..cut], &bytes[cut..]]);
                assert!(!split.0 && !whole(bytes).0, "cut {cut}");
                let ended = run(&[&bytes[..cut], &bytes[cut..], b"\r\n\r\n"]);
                assert_eq!(ended, (false, State::Off), "cut {cut}");
            }
        }
    }

    #[test]
    fn what_hyper_refuses_stops_the_watch() {
        for bytes in [
            &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..],
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"\x00\x01garbage\r\n\r\n",
        ] {
            assert_eq!(whole(bytes), (false, State::Off), "{bytes:?}");
        }
        let huge = vec![b'a'; MAX_HEAD_BYTES + 10];
        assert_eq!(whole(&huge), (false, State::Off));
    }

    proptest::proptest! {
        /// Any bytes, in any split: never a panic, and the same mark whole or split. (On bytes
        /// hyper refuses, a split may defer giving up to the next line end, never the mark.)
        #[test]
        fn framing_never_panics_and_splits_do_not_matter(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            cut in 0usize..512,
        ) {
            let cut = cut.min(bytes.len());
            let a = whole(&bytes);
            let b = run(&[&bytes[..cut], &bytes[cut..]]);
            proptest::prop_assert_eq!(a.0, b.0);
            if a.1 != State::Off {
                proptest::prop_assert_eq!(a.1, b.1);
            }
        }

        /// Well-formed request streams built from parts never mark the connection, and end
        /// ready for the next head.
        #[test]
        fn honest_streams_are_never_marked(
            reqs in proptest::collection::vec((0u8..3, "[ -~]{0,40}"), 1..6),
            split in 1usize..17,
        ) {
            let mut stream = Vec::new();
            for (kind, body) in &reqs {
                match kind {
                    0 => stream.extend_from_slice(GET),
                    1 => {
                        stream.extend_from_slice(format!("POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
                        stream.extend_from_slice(body.as_bytes());
                    }
                    _ => {
                        stream.extend_from_slice(b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
                        if !body.is_empty() {
                            stream.extend_from_slice(format!("{:X}\r\n{body}\r\n", body.len()).as_bytes());
                        }
                        stream.extend_from_slice(b"0\r\n\r\n");
                    }
                }
            }
            let parts: Vec<&[u8]> = stream.chunks(split).collect();
            proptest::prop_assert_eq!(run(&parts), (false, State::Head));
        }
    }
}
