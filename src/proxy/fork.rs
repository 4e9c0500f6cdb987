//! What meridian takes from its hyper fork (`vendor/hyper`, docs/hyper/UPSTREAM.md)
//! beyond what every hyper user gets, in one place, with what stands in for each
//! when meridian is built against stock hyper (`scripts/stock-hyper`): one feature
//! per patch whose API meridian calls, both on by default through `hyper-fork`.
//! The stand-ins send the same bytes and keep the same limits; they cost more work
//! per request (the `wait` module says where the keep-alive bound is coarser).

use hyper::body::Incoming;
use hyper::client::conn::http1;
use std::future::Future;

#[cfg(feature = "hyper-header-lines")]
pub use hyper::ext::PreEncodedHeaders;
#[cfg(not(feature = "hyper-header-lines"))]
pub use lines::PreEncodedHeaders;

/// Sends `req` to an HTTP/1 origin with `lines` written after its own headers.
#[cfg(feature = "hyper-header-lines")]
pub fn send_request_with<B>(
    tx: &mut http1::SendRequest<B>,
    req: http::Request<B>,
    lines: PreEncodedHeaders,
) -> impl Future<Output = hyper::Result<http::Response<Incoming>>>
where
    B: hyper::body::Body + 'static,
{
    tx.send_request_with(req, lines)
}

/// Stock hyper: the lines go into the request's map, after its own headers (the
/// order the fork writes them in).
#[cfg(not(feature = "hyper-header-lines"))]
pub fn send_request_with<B>(
    tx: &mut http1::SendRequest<B>,
    mut req: http::Request<B>,
    lines: PreEncodedHeaders,
) -> impl Future<Output = hyper::Result<http::Response<Incoming>>>
where
    B: hyper::body::Body + 'static,
{
    let headers = req.headers_mut();
    for (name, value) in lines.headers() {
        headers.append(name, value);
    }
    tx.send_request(req)
}

/// hyper's HTTP/1 server builder with the request-header bound (`header`: a
/// request head from its first byte, and a connection's first request from its
/// start) and the keep-alive bound (`idle`: a kept-alive client's silence
/// between requests) set apart, as the fork's `idle_timeout` allows.
#[cfg(feature = "hyper-idle-timeout")]
pub fn http1_server(
    header: std::time::Duration,
    idle: std::time::Duration,
    _clock: &WaitClock,
) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header)
        .idle_timeout(idle);
    b
}

/// With the fork, hyper keeps the state of a connection's wait itself: nothing
/// to share, and nothing held per connection.
#[cfg(feature = "hyper-idle-timeout")]
#[derive(Clone, Copy, Default)]
pub struct WaitClock;

/// The connection's stream, as hyper reads it (with the fork: as it is).
#[cfg(feature = "hyper-idle-timeout")]
pub type Watched<I> = I;

#[cfg(feature = "hyper-idle-timeout")]
pub fn watch<I>(io: I, _clock: &WaitClock) -> Watched<I> {
    io
}

/// How hyper ended a connection (with the fork, a keep-alive wait that ran out
/// already ends it quietly).
#[cfg(feature = "hyper-idle-timeout")]
pub fn ended(r: hyper::Result<()>, _clock: &WaitClock) -> hyper::Result<()> {
    r
}

#[cfg(not(feature = "hyper-idle-timeout"))]
pub use wait::{ended, http1_server, watch, WaitClock, Watched};

#[cfg(not(feature = "hyper-header-lines"))]
mod lines {
    use http::{HeaderName, HeaderValue};
    use std::sync::Arc;

    /// Header lines made once for all of a request's tries, as names and values
    /// (the fork keeps them encoded). Shared, so a try's copy is a count.
    #[derive(Clone, Debug, Default)]
    pub struct PreEncodedHeaders {
        lines: Arc<[(HeaderName, HeaderValue)]>,
        skip: usize,
    }

    impl PreEncodedHeaders {
        pub fn from_headers<'a, I>(headers: I) -> PreEncodedHeaders
        where
            I: Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
        {
            let lines: Vec<_> = headers.map(|(n, v)| (n.clone(), v.clone())).collect();
            PreEncodedHeaders {
                lines: lines.into(),
                skip: 0,
            }
        }

        /// The lines after the first `n`.
        pub fn skip_lines(&self, n: usize) -> PreEncodedHeaders {
            PreEncodedHeaders {
                lines: self.lines.clone(),
                skip: (self.skip + n).min(self.lines.len()),
            }
        }

        pub fn headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
            self.lines[self.skip..].iter().cloned()
        }
    }
}

/// Stock hyper times a connection's wait for a request head with one timer,
/// `header_read_timeout`, armed when the wait begins: on a kept-alive connection
/// that is the end of the previous answer, so the header bound would also cut
/// clients that are merely idle. Here hyper's timer is meridian's (`WaitTimer`),
/// and the stream is watched for the first byte read after the wait began
/// (`Watched`): until one comes, the wait is a keep-alive wait, bounded by `idle`;
/// from it, the header has `header`. A connection's first request is timed from
/// its start, as with the fork.
///
/// One difference is left: bytes of the next request read before the wait began
/// (a pipelined request, or one sent in the same packet as the last body's end)
/// are not seen as its first byte, so that header is timed from the next read
/// instead, or by `idle` if none comes.
#[cfg(not(feature = "hyper-idle-timeout"))]
mod wait {
    use pin_project_lite::pin_project;
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
    use std::sync::Arc;
    use std::task::{ready, Context, Poll};
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

    /// What a connection's timer and its watched stream share.
    #[derive(Clone)]
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

    /// A keep-alive wait that ran out is the quiet close it is with the fork,
    /// not a header timeout.
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

        fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
            let kept_alive = self.clock.kept_alive.swap(true, Relaxed);
            self.clock.first_byte.store(0, Relaxed);
            self.clock.idle_ran_out.store(false, Relaxed);
            Box::pin(WaitSleep {
                clock: self.clock.clone(),
                began: Instant::now(),
                header: self.header,
                idle: kept_alive.then_some(self.idle),
                inner: tokio::time::sleep_until(deadline.into()),
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

        // Polled by hyper whenever its read of the head is pending, so also
        // after every read that brought bytes: the deadline moves then.
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            loop {
                let (deadline, idle) = self.deadline();
                let deadline = tokio::time::Instant::from_std(deadline);
                let mut this = self.as_mut().project();
                if this.inner.deadline() != deadline {
                    this.inner.as_mut().reset(deadline);
                }
                ready!(this.inner.poll(cx));
                if self.deadline().0 == deadline.into_std() {
                    self.clock.idle_ran_out.store(idle, Relaxed);
                    return Poll::Ready(());
                }
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
}
