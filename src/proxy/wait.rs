//! The two bounds on an HTTP/1 client's wait for a request head, kept apart:
//! `timeouts.request_header` from the head's first byte (and for a connection's
//! first request, from its start), and `timeouts.client_idle` for a kept-alive
//! client's silence between requests.
//!
//! hyper times the wait with one timer, `header_read_timeout`, armed when the wait
//! begins: on a kept-alive connection that is the end of the previous answer, so
//! the header bound alone would also cut clients that are merely idle, and a
//! keep-alive bound alone would let a head trickle in for a minute. So hyper's
//! timer is meridian's (`WaitTimer`), and the stream is watched for the first byte
//! read after a wait began (`Watched`): until one comes the wait is a keep-alive
//! wait, bounded by `idle`; from it, the head has `header`. A wait that runs out
//! for silence ends the connection quietly (`ended`), one that runs out on a slow
//! head is a header timeout, counted.
//!
//! This replaced a hyper patch (`http1::Builder::idle_timeout`, docs/hyper/
//! UPSTREAM.md) with public API. One difference is left: bytes of the next request
//! that hyper read before the wait began (a pipelined request, or one sent in the
//! same packet as the last body's end) are not seen as its first byte, so that head
//! is timed from the next read, or by `idle` if none comes: at most `header` more
//! than any client may hold a connection by silence.

use pin_project_lite::pin_project;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What a connection's timer and its watched stream share.
pub struct WaitClock(Arc<Clock>);

struct Clock {
    base: Instant,
    /// When the first byte since the wait began was read: µs since `base`,
    /// plus one; 0 for none yet.
    first_byte: AtomicU64,
    /// A wait has begun before: the next one follows an answer.
    kept_alive: AtomicBool,
    /// The last wait ended for silence, not for a slow header.
    idle_ran_out: AtomicBool,
}

impl Default for WaitClock {
    fn default() -> Self {
        WaitClock(Arc::new(Clock {
            base: Instant::now(),
            first_byte: AtomicU64::new(0),
            kept_alive: AtomicBool::new(false),
            idle_ran_out: AtomicBool::new(false),
        }))
    }
}

impl Clock {
    fn saw_bytes(&self) {
        if self.first_byte.load(Relaxed) == 0 {
            let us = u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX - 1);
            self.first_byte.store(us + 1, Relaxed);
        }
    }

    fn first_byte(&self) -> Option<Instant> {
        match self.first_byte.load(Relaxed) {
            0 => None,
            us => Some(self.base + Duration::from_micros(us - 1)),
        }
    }
}

pub fn http1_server(
    header: Duration,
    idle: Duration,
    clock: &WaitClock,
) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(WaitTimer {
        clock: clock.0.clone(),
        header,
        idle,
    })
    .header_read_timeout(header);
    b
}

pub fn watch<I>(io: I, clock: &WaitClock) -> Watched<I> {
    Watched {
        io,
        clock: clock.0.clone(),
    }
}

/// A keep-alive wait that ran out ends the connection quietly: hyper reports
/// every run-out of its header timer as a timeout, which would count it as a
/// slow header.
pub fn ended(r: hyper::Result<()>, clock: &WaitClock) -> hyper::Result<()> {
    match r {
        Err(e) if e.is_timeout() && clock.0.idle_ran_out.load(Relaxed) => Ok(()),
        r => r,
    }
}

/// hyper's timer for one connection; hyper asks it for nothing but the
/// header timer (`sleep_until`, when a wait for a request head begins).
struct WaitTimer {
    clock: Arc<Clock>,
    header: Duration,
    idle: Duration,
}

impl hyper::rt::Timer for WaitTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        self.sleep_until(Instant::now() + duration)
    }

    /// hyper asks for `header` from now; the wait's real deadline depends on
    /// what comes, so the sleep starts at the earliest it can be and moves on
    /// only when it fires early: a request that starts within `header` (every
    /// one under load) costs one timer, as hyper's own would.
    fn sleep_until(&self, _deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        let kept_alive = self.clock.kept_alive.swap(true, Relaxed);
        self.clock.first_byte.store(0, Relaxed);
        self.clock.idle_ran_out.store(false, Relaxed);
        let began = Instant::now();
        let idle = kept_alive.then_some(self.idle);
        let earliest = began + idle.map_or(self.header, |i| i.min(self.header));
        Box::pin(WaitSleep {
            clock: self.clock.clone(),
            began,
            header: self.header,
            idle,
            inner: tokio::time::sleep_until(earliest.into()),
        })
    }
}

pin_project! {
    /// One wait for a request head; its deadline moves to `header` after
    /// the first byte once one is read.
    struct WaitSleep {
        clock: Arc<Clock>,
        began: Instant,
        header: Duration,
        // None for a connection's first request.
        idle: Option<Duration>,
        #[pin]
        inner: tokio::time::Sleep,
    }
}

impl WaitSleep {
    /// The deadline now, and whether it is the keep-alive one.
    fn deadline(&self) -> (Instant, bool) {
        match (self.idle, self.clock.first_byte()) {
            (None, _) => (self.began + self.header, false),
            (Some(_), Some(first)) => (first + self.header, false),
            (Some(idle), None) => (self.began + idle, true),
        }
    }
}

impl Future for WaitSleep {
    type Output = ();

    // Polled by hyper whenever its read of the head is pending, so also after
    // every read that brought bytes. The sleep never fires after the deadline:
    // it starts at the earliest one (`sleep_until`), is moved on only when it
    // fires before the deadline, and is moved back when a byte comes after
    // that (a silent client's wait went past `header`, then it started a head).
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            let (deadline, idle) = self.deadline();
            let deadline = tokio::time::Instant::from_std(deadline);
            let mut this = self.as_mut().project();
            if deadline < this.inner.deadline() {
                this.inner.as_mut().reset(deadline);
            }
            ready!(this.inner.as_mut().poll(cx));
            if this.inner.deadline() >= deadline {
                this.clock.idle_ran_out.store(idle, Relaxed);
                return Poll::Ready(());
            }
            this.inner.as_mut().reset(deadline);
        }
    }
}

impl hyper::rt::Sleep for WaitSleep {}

pin_project! {
    /// A client's stream, noting when bytes come.
    pub struct Watched<I> {
        #[pin]
        io: I,
        clock: Arc<Clock>,
    }
}

impl<I: AsyncRead> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.io.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.clock.saw_bytes();
        }
        r
    }
}

impl<I: AsyncWrite> AsyncWrite for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}
