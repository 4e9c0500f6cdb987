//! Connections to origins kept for reuse: one pool per origin identity (its
//! address, protocol and TLS settings), outliving snapshots like health state
//! does, so a reload keeps warm connections to the origins it keeps. Storage
//! only: connecting lives in `proxy::upstream`.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};

use crate::proxy::blame::{self, ClientFault};
use crate::util::lock::lock;

/// At most this many idle HTTP/1 connections are kept per origin.
const MAX_IDLE_PER_ORIGIN: usize = 1024;

/// How many of the most recently kept connections `take` looks at for one
/// that is ready now.
const READY_LOOKS: usize = 8;

/// A request body on its way to an origin.
#[derive(Debug)]
pub enum RequestBody {
    /// Kept whole (none, or a small one buffered so a retry can resend it).
    Full(Option<Bytes>),
    /// Streamed from the client as it comes: sent once, never resent. Notes
    /// what it passed on (see `Upload`).
    Stream(Incoming, Arc<Upload>),
}

/// A streamed request body's progress, shared with the try that sends it.
#[derive(Debug)]
pub struct Upload {
    /// The route's `limits.max_body` (`u64::MAX` for none): a body that
    /// passes it fails here, before the origin gets the bytes beyond it.
    limit: u64,
    /// Bytes passed on, so a wait for the answer can tell a slow upload from
    /// a silent origin.
    pub sent: AtomicU64,
    /// The last read of the client's body is waiting for its bytes.
    waiting: AtomicBool,
    /// The client's body was read to its end.
    done: AtomicBool,
    /// Set when reading the client's body failed: the origin connection then
    /// fails because of the client, and `blame` must know.
    failed: OnceLock<ClientFault>,
}

impl Upload {
    pub fn new(limit: Option<u64>) -> Upload {
        Upload {
            limit: limit.unwrap_or(u64::MAX),
            sent: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            done: AtomicBool::new(false),
            failed: OnceLock::new(),
        }
    }

    /// Where the client's body is, as far as it was read.
    pub fn outcome(&self) -> blame::Upload {
        match self.failed.get() {
            Some(f) => blame::Upload::Failed(*f),
            None if self.done.load(Relaxed) => blame::Upload::Whole,
            None if self.waiting.load(Relaxed) => blame::Upload::WaitingOnClient,
            None => blame::Upload::Streaming,
        }
    }
}

/// A request body grew past its route's `limits.max_body`.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than limits.max_body")]
pub struct TooLarge;

impl Body for RequestBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            RequestBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RequestBody::Stream(s, upload) => {
                let polled = Pin::new(&mut *s).poll_frame(cx);
                upload.waiting.store(polled.is_pending(), Relaxed);
                let frame = ready!(polled);
                match &frame {
                    Some(Ok(f)) => {
                        let n = f.data_ref().map_or(0, |d| d.len() as u64);
                        if upload.sent.fetch_add(n, Relaxed) + n > upload.limit {
                            let _ = upload.failed.set(ClientFault::TooLarge);
                            return Poll::Ready(Some(Err(TooLarge.into())));
                        }
                        if s.is_end_stream() {
                            upload.done.store(true, Relaxed);
                        }
                    }
                    Some(Err(e)) => {
                        let _ = upload.failed.set(blame::of_body_error(e));
                    }
                    None => upload.done.store(true, Relaxed),
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Full(b) => b.is_none(),
            RequestBody::Stream(s, _) => s.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RequestBody::Stream(s, _) => s.size_hint(),
        }
    }
}

/// A connection ready to carry one request.
pub enum Sender {
    H1(http1::SendRequest<RequestBody>),
    H2(http2::SendRequest<RequestBody>),
}

/// One origin's reusable connections.
#[derive(Default)]
pub struct OriginPool {
    /// Idle HTTP/1 connections, the most recently used last.
    idle: Mutex<Vec<(http1::SendRequest<RequestBody>, Instant)>>,
    /// The HTTP/2 connection all requests share.
    h2: Mutex<Option<http2::SendRequest<RequestBody>>>,
}

impl OriginPool {
    /// A kept connection still open and used within `max_idle`, if any: the
    /// shared one for an HTTP/2 origin (`h2`), else an idle HTTP/1 one.
    pub fn take(&self, h2: bool, max_idle: Duration) -> Option<Sender> {
        if h2 {
            let shared = lock(&self.h2);
            return shared
                .as_ref()
                .filter(|tx| !tx.is_closed())
                .map(|tx| Sender::H2(tx.clone()));
        }
        let mut idle = lock(&self.idle);
        // One put back a moment ago may not be ready yet: its connection task has
        // not run since its answer ended, and its taker would wait for that task
        // (a wake-up and a second poll of the request). Under load, a slightly
        // older one usually is ready: take the most recent of those.
        let recent = idle.len().saturating_sub(READY_LOOKS);
        if let Some(i) = idle[recent..].iter().rposition(|(tx, _)| tx.is_ready()) {
            let (tx, since) = idle.remove(recent + i);
            if since.elapsed() < max_idle {
                return Some(Sender::H1(tx));
            }
        }
        while let Some((tx, since)) = idle.pop() {
            if usable(&tx, since, max_idle) {
                return Some(Sender::H1(tx));
            }
        }
        None
    }

    /// Keeps an HTTP/1 connection whose last exchange ended cleanly.
    pub fn put(&self, tx: http1::SendRequest<RequestBody>) {
        if tx.is_closed() {
            return;
        }
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE_PER_ORIGIN {
            idle.push((tx, Instant::now()));
        }
    }

    /// Closes the kept HTTP/1 connections unused for `max_idle` or more: their
    /// senders dropped, hyper's connection tasks end and close the sockets.
    pub fn expire(&self, max_idle: Duration) {
        lock(&self.idle).retain(|(tx, since)| usable(tx, *since, max_idle));
    }

    /// Shares a new HTTP/2 connection with the requests that follow.
    pub fn share(&self, tx: &http2::SendRequest<RequestBody>) {
        *lock(&self.h2) = Some(tx.clone());
    }
}

/// A kept connection still open and unused for less than `max_idle`.
fn usable(tx: &http1::SendRequest<RequestBody>, since: Instant, max_idle: Duration) -> bool {
    !tx.is_closed() && since.elapsed() < max_idle
}

impl std::fmt::Debug for OriginPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let idle = lock(&self.idle).len();
        f.debug_struct("OriginPool").field("idle", &idle).finish()
    }
}
