//! The body of every answer meridian gives: the origin's, streamed with a read
//! timeout between its frames, or a small one the gateway made. When it ends
//! (or the client goes away) the request is recorded once, the origin's
//! connection goes back to its pool if the answer was read to the end, and the
//! origin's in-flight count drops.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use tokio::time::Sleep;

use crate::proxy::pool::{OriginPool, RequestBody};

/// An answer's body.
pub struct ResponseBody {
    inner: Inner,
    /// Kept apart (boxed) so the body hyper keeps per connection stays small.
    end: Option<Box<End>>,
}

enum Inner {
    Full(Option<Bytes>),
    Origin {
        body: Incoming,
        /// The longest wait for the origin's next frame.
        read_timeout: Duration,
        /// Armed only while a frame is awaited.
        timer: Option<Pin<Box<Sleep>>>,
        waiting: bool,
    },
}

/// What happens when the answer ends.
pub struct End {
    /// The request's record, finished once when the answer ends (and
    /// dropped with this).
    pub record: Option<super::Record>,
    /// The origin connection to return once the body was read to its end.
    pub reuse: Option<(Arc<OriginPool>, http1::SendRequest<RequestBody>)>,
    pub bytes: usize,
    pub complete: bool,
    /// The origin's body failed (an error or its read timeout): a body cut
    /// short is then the origin's doing, not a client that left.
    pub origin_failed: bool,
}

impl End {
    /// The answer's end: the origin's connection back to its pool when the
    /// body was read whole, and the request's record finished.
    fn finish(&mut self) {
        if let (true, Some((pool, tx))) = (self.complete, self.reuse.take()) {
            pool.put(tx);
        }
        if let Some(record) = &mut self.record {
            record.finish(self.bytes, self.complete, self.origin_failed);
        }
    }
}

/// Finishes what `ResponseBody::finished` did not: an answer whose end was
/// never polled (the client left mid-body, or an empty body hyper never asks
/// for). After `finished` nothing is left to do.
impl Drop for End {
    fn drop(&mut self) {
        self.finish();
    }
}

impl ResponseBody {
    /// A body made by the gateway.
    pub fn full(bytes: Bytes, mut end: Option<Box<End>>) -> ResponseBody {
        if let Some(end) = &mut end {
            end.complete = bytes.is_empty();
        }
        let inner = Inner::Full((!bytes.is_empty()).then_some(bytes));
        ResponseBody { inner, end }
    }

    /// The origin's body, at most `read_timeout` between frames.
    pub fn origin(
        body: Incoming,
        read_timeout: Duration,
        mut end: Option<Box<End>>,
    ) -> ResponseBody {
        // hyper never polls a body that is empty from the start.
        if let Some(end) = &mut end {
            end.complete = body.is_end_stream();
        }
        ResponseBody {
            inner: Inner::Origin {
                body,
                read_timeout,
                timer: None,
                waiting: false,
            },
            end,
        }
    }

    /// The body's end, read whole (`complete`) or failed on the origin's side:
    /// the answer ends here, and the connection goes back before the client
    /// reads on.
    fn finished(&mut self, complete: bool) {
        if let Some(mut end) = self.end.take() {
            end.complete = complete;
            end.origin_failed = !complete;
            end.finish();
        }
    }
}

/// The origin stopped sending in the middle of a body.
#[derive(Debug, thiserror::Error)]
#[error("the origin sent nothing for the read timeout")]
pub struct ReadTimeout;

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        let polled = match &mut this.inner {
            Inner::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Inner::Origin {
                body,
                read_timeout,
                timer,
                waiting,
            } => match Pin::new(body).poll_frame(cx) {
                Poll::Ready(r) => {
                    *waiting = false;
                    Poll::Ready(r.map(|f| f.map_err(Into::into)))
                }
                Poll::Pending => {
                    let deadline = tokio::time::Instant::now() + *read_timeout;
                    match timer {
                        Some(t) if *waiting => {}
                        Some(t) => t.as_mut().reset(deadline),
                        None => *timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
                    }
                    *waiting = true;
                    if let Some(t) = timer {
                        ready!(t.as_mut().poll(cx));
                    }
                    *waiting = false;
                    Poll::Ready(Some(Err(ReadTimeout.into())))
                }
            },
        };
        match &polled {
            Poll::Ready(None) => this.finished(true),
            Poll::Ready(Some(Ok(f))) => {
                if let (Some(end), Some(d)) = (&mut this.end, f.data_ref()) {
                    end.bytes += d.len();
                }
                if this.is_end_stream() {
                    this.finished(true);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finished(false),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(b) => b.is_none(),
            Inner::Origin { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Inner::Origin { body, .. } => body.size_hint(),
        }
    }
}
