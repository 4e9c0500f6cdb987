//! A deadline on each request header as a whole. Pingora times every read of a
//! request header, not the header: a client that trickles a byte every few seconds
//! (slowloris) would keep its connection, and a file descriptor, for ever. Each
//! HTTP/1 connection is wrapped in a [`Deadline`] stream that watches the bytes read
//! through it: from the first byte of a request to the blank line that ends its
//! header, `timeouts.request_header` at most; past it, the read fails and the
//! connection closes. The peek for the HTTP/2 preface at the start of a plain
//! connection counts as the first header. Bodies and HTTP/2 are not timed here
//! (a connection found to be HTTP/2 is unwrapped); idle keep-alive time is
//! `timeouts.client_idle` (src/downstream.rs).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Buf, Bytes};
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::tls::{SslDigest, TlsRef};
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Where the connection is, as far as request headers go.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// No byte of a new request yet (a new or idle keep-alive connection).
    BetweenRequests,
    /// Header bytes came in; `last` holds the latest four, to find the blank line
    /// when it is split across reads.
    InHeader { since: Instant, last: [u8; 4] },
    /// The header is complete: the body and the response are not timed here.
    AfterHeader,
    /// After a 101 upgrade, or a cut: no more HTTP/1 headers.
    Untimed,
}

/// A stream that fails a read once a request header has taken longer than `limit`.
pub struct Deadline {
    inner: Stream,
    limit: Duration,
    phase: Phase,
    /// Armed only while a header is incomplete and the client has nothing to send.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    cut: IntCounter,
    /// Bytes read by [`Deadline::poll_next_request`], given to the next reads.
    replay: Option<Bytes>,
}

impl std::fmt::Debug for Deadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deadline")
            .field("inner", &self.inner)
            .field("phase", &self.phase)
            .finish()
    }
}

impl Deadline {
    pub fn new(inner: Stream, limit: Duration, cut: IntCounter) -> Deadline {
        Deadline {
            inner,
            limit,
            phase: Phase::BetweenRequests,
            timer: None,
            cut,
            replay: None,
        }
    }

    /// The stream it wraps, for a connection that turned out not to be HTTP/1.
    pub fn into_inner(self) -> Stream {
        self.inner
    }

    /// Ready once the client sent more bytes (true) or closed (false). The bytes
    /// are kept for the next reads: an idle connection waits here, in whatever
    /// small future polls this, and needs no read buffer until data comes.
    pub fn poll_next_request(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        if self.replay.is_some() {
            return Poll::Ready(Ok(true));
        }
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); 4096];
        let mut buf = ReadBuf::uninit(&mut space);
        ready!(Pin::new(&mut *self).poll_read(cx, &mut buf))?;
        if buf.filled().is_empty() {
            return Poll::Ready(Ok(false));
        }
        self.replay = Some(Bytes::copy_from_slice(buf.filled()));
        Poll::Ready(Ok(true))
    }

    /// Follows the request through the bytes just read.
    fn read(&mut self, new: &[u8]) {
        if new.is_empty() {
            return;
        }
        let (since, mut last) = match self.phase {
            Phase::BetweenRequests => (None, [0; 4]),
            Phase::InHeader { since, last } => (Some(since), last),
            Phase::AfterHeader | Phase::Untimed => return,
        };
        if header_ends(&mut last, new) {
            self.phase = Phase::AfterHeader;
            self.timer = None;
            return;
        }
        // The clock is read only for a header that did not come in one read.
        let since = since.unwrap_or_else(Instant::now);
        self.phase = Phase::InHeader { since, last };
    }

    /// Follows the response: once it starts, the next bytes read begin a new request.
    fn wrote(&mut self, out: &[u8]) {
        // A write while a header seems incomplete is an answer too (an error, or a
        // header whose end this scan missed): either way that request is over.
        if !matches!(self.phase, Phase::AfterHeader | Phase::InHeader { .. }) || out.is_empty() {
            return;
        }
        self.timer = None;
        // An interim 1xx response is not the answer: the body may still follow.
        match out.get(..12) {
            Some([b'H', b'T', b'T', b'P', b'/', _, _, _, b' ', b'1', b'0', b'1']) => {
                self.phase = Phase::Untimed
            }
            Some([b'H', b'T', b'T', b'P', b'/', _, _, _, b' ', b'1', ..]) => {}
            _ => self.phase = Phase::BetweenRequests,
        }
    }

    /// True once the header being read is past its deadline. `cx` is woken at the
    /// deadline when it is still ahead (the client may never send another byte).
    fn expired(&mut self, cx: Option<&mut Context<'_>>) -> bool {
        let Phase::InHeader { since, .. } = self.phase else {
            return false;
        };
        let at = since + self.limit;
        if Instant::now() >= at {
            return true;
        }
        let Some(cx) = cx else {
            return false;
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at.into())));
        timer.as_mut().poll(cx).is_ready()
    }

    /// Ends the connection's timing, counts the cut, and gives the read's error.
    fn cut(&mut self) -> io::Error {
        self.phase = Phase::Untimed;
        self.timer = None;
        self.cut.inc();
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "request header not complete within {:?} (timeouts.request_header)",
                self.limit
            ),
        )
    }
}

/// True when `new`, read after the header bytes whose last four are `window`,
/// holds the blank line that ends a request header: a line ending (CRLF or LF, as
/// httparse takes them) followed by an empty line. When it does not, `window` is
/// left holding the last four bytes for the next read.
fn header_ends(window: &mut [u8; 4], new: &[u8]) -> bool {
    let blank = |w: &[u8; 4]| w[1..] == *b"\n\r\n" || w[2..] == *b"\n\n";
    // The usual case first: a whole GET header in one read ends with the blank line.
    if new.last_chunk::<4>().is_some_and(blank) {
        return true;
    }
    new.iter().any(|&b| {
        *window = [window[1], window[2], window[3], b];
        blank(window)
    })
}

impl AsyncRead for Deadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // Bytes already read (and followed) by poll_next_request come first.
        if let Some(kept) = &mut this.replay {
            let n = kept.len().min(buf.remaining());
            buf.put_slice(&kept[..n]);
            kept.advance(n);
            if kept.is_empty() {
                this.replay = None;
            }
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.read(&buf.filled()[before..]);
                // A client sending fast but never finishing is cut as well.
                if this.expired(None) {
                    return Poll::Ready(Err(this.cut()));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(Some(cx)) => Poll::Ready(Err(this.cut())),
            other => other,
        }
    }
}

impl AsyncWrite for Deadline {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.wrote(buf);
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(first) = bufs.iter().find(|b| !b.is_empty()) {
            self.wrote(first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

// What Pingora asks of a stream beyond reading and writing: all the inner one's.

#[async_trait]
impl Shutdown for Deadline {
    async fn shutdown(&mut self) {
        self.inner.shutdown().await
    }
}

impl UniqueID for Deadline {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

impl Ssl for Deadline {
    fn get_ssl(&self) -> Option<&TlsRef> {
        self.inner.get_ssl()
    }
    fn get_ssl_digest(&self) -> Option<Arc<SslDigest>> {
        self.inner.get_ssl_digest()
    }
    fn selected_alpn_proto(&self) -> Option<ALPN> {
        self.inner.selected_alpn_proto()
    }
}

/// Pingora peeks at the first bytes of a plain connection (for the HTTP/2 preface)
/// with an untimed `read_exact`: a client that sends a few bytes, or none, would
/// hold it for ever. The peek is the start of the first header, and timed as such.
#[async_trait]
impl Peek for Deadline {
    async fn try_peek(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        // Only a new connection is peeked at, before anything was read ahead.
        debug_assert!(self.replay.is_none());
        let since = Instant::now();
        match tokio::time::timeout(self.limit, self.inner.try_peek(buf)).await {
            Ok(peeked) => {
                if matches!(peeked, Ok(true)) && self.phase == Phase::BetweenRequests {
                    self.phase = Phase::InHeader {
                        since,
                        last: [0; 4],
                    };
                }
                peeked
            }
            Err(_) => Err(self.cut()),
        }
    }
}

impl GetTimingDigest for Deadline {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
    fn get_read_pending_time(&self) -> Duration {
        self.inner.get_read_pending_time()
    }
    fn get_write_pending_time(&self) -> Duration {
        self.inner.get_write_pending_time()
    }
}

impl GetProxyDigest for Deadline {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        self.inner.get_proxy_digest()
    }
    fn set_proxy_digest(&mut self, digest: ProxyDigest) {
        self.inner.set_proxy_digest(digest)
    }
}

impl GetSocketDigest for Deadline {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }
    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::header_ends;

    #[test]
    fn the_blank_line_is_found_within_and_across_reads() {
        assert!(header_ends(
            &mut [0; 4],
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"
        ));
        assert!(header_ends(
            &mut [0; 4],
            b"POST / HTTP/1.1\r\nA: b\r\n\r\nbody"
        ));
        assert!(header_ends(&mut { *b"a\r\n\r" }, b"\n"));
        assert!(header_ends(&mut { *b"\r\nA:" }, b" b\r\n\r\n"));
        assert!(header_ends(&mut [0; 4], b"GET / HTTP/1.0\n\n"));
        assert!(header_ends(&mut [0; 4], b"GET / HTTP/1.0\nA: b\n\r\n"));
        assert!(header_ends(&mut { *b"b\r\n\r" }, b"\nbody"));
        assert!(!header_ends(&mut [0; 4], b"GET / HTTP/1.1\r\nHo"));
        assert!(!header_ends(&mut { *b"\r\nHo" }, b"st: a\r\n"));
        // The window carries the end of one read into the next.
        let mut window = [0; 4];
        assert!(!header_ends(&mut window, b"GET / HTTP/1.1\r\nA: b\r\n\r"));
        assert_eq!(&window, b"b\r\n\r");
        assert!(header_ends(&mut window, b"\n"));
    }
}
