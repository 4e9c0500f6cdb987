//! Client connections: each HTTP/1 connection behind a request-header [`Deadline`],
//! and its keep-alive loop run here rather than in Pingora.
//!
//! Why the loop is ours: Pingora waits for a kept-alive client's next request
//! inside the proxy's per-request future and session, over 20 KiB together (the
//! whole proxy state machine and its buffers), so every idle client held that much. Here an idle client waits
//! in a small future for its next bytes ([`Deadline::poll_next_request`] keeps them for
//! Pingora's first read) and the proxy's future exists only while a request is in
//! flight. Owning the wait also gives idle clients a timeout
//! (`timeouts.client_idle`; Pingora keeps HTTP/1.1 clients for ever) and closes
//! them as soon as a graceful shutdown starts.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Peek, Stream, ALPN};
use pingora::server::ShutdownWatch;
use prometheus::IntCounter;
use tokio::time::Sleep;

use crate::config::{units, Timeouts};
use crate::header_deadline::Deadline;

/// What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
use crate::state::Shared;

/// A timer's deadline before its first use: later than any wait's.
const NEVER: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The proxy's `ServerApp`, with the HTTP/1 connection handling described above.
pub struct Downstream<A> {
    app: Arc<A>,
    shared: Arc<Shared>,
    /// `requests_rejected_total{reason="header_timeout"}`, looked up once.
    cut: IntCounter,
}

impl<A> Downstream<A> {
    /// A client timeout from the live config, read at each use so reloads apply.
    /// The snapshot guard ends here, never held across an await.
    fn timeout(&self, pick: fn(&Timeouts) -> units::Duration) -> Duration {
        pick(&self.shared.snapshot.load().config.timeouts).get()
    }

    pub fn new(app: A, shared: Arc<Shared>) -> Self {
        let cut = shared
            .metrics
            .requests_rejected
            .with_label_values(&["header_timeout"]);
        Downstream {
            app: Arc::new(app),
            shared,
            cut,
        }
    }
}

#[async_trait]
impl<A: HttpServerApp + Send + Sync + 'static> ServerApp for Downstream<A> {
    async fn process_new(
        self: &Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let opts = self.app.server_options();
        // HTTP/2 over TLS and custom protocols are Pingora's alone.
        if stream.selected_alpn_proto() == Some(ALPN::H2) || opts.is_some_and(|o| o.force_custom) {
            return self.app.process_new(stream, shutdown).await;
        }
        // A plain connection may be HTTP/2 with prior knowledge (h2c). The peek for
        // the preface is timed as the start of a header; HTTP/2 then goes to
        // Pingora unwrapped (it has no HTTP/1 headers to time).
        let h2c = opts.is_some_and(|o| o.h2c) && stream.get_ssl_digest().is_none();
        let limit = self.timeout(|t| t.request_header);
        let mut timed = Box::new(Deadline::new(stream, limit, self.cut.clone()));
        if h2c {
            let mut preface = [0u8; 24];
            match timed.try_peek(&mut preface).await {
                Ok(true) if preface == *H2_PREFACE => {
                    return self.app.process_new(timed.into_inner(), shutdown).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!("no first request from a new client: {e}");
                    return None;
                }
            }
        }
        self.http1(timed, shutdown, h2c).await;
        None
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}

impl<A: HttpServerApp + Send + Sync + 'static> Downstream<A> {
    /// Pingora's HTTP/1 keep-alive loop (`ServerApp for HttpServerApp`), with the
    /// wait between requests moved out of the proxy's future. `data_ready`: the
    /// first request's bytes are known to have come (h2c peeked them). Ends (None)
    /// with the connection.
    async fn http1(
        &self,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
        data_ready: bool,
    ) -> Option<()> {
        let mut settings: Option<HttpPersistentSettings> = None;
        let mut idle = IdleWait {
            // Set at the first wait: a timer is registered only once polled.
            timer: Box::pin(tokio::time::sleep(NEVER)),
            shutdown: shutdown.clone(),
            watching: true,
        };
        let mut ready = data_ready;
        loop {
            if !ready {
                let limit = self.timeout(|t| t.client_idle);
                stream = idle.next_request(stream, limit).await?;
            }
            ready = false;
            let mut session = ServerSession::new_http1(stream);
            match settings {
                Some(s) => s.apply_to_session(&mut session),
                None => {
                    // Pingora's defaults for a new connection.
                    session.set_keepalive(if *shutdown.borrow() { None } else { Some(60) });
                    session.set_keepalive_reuses_remaining(
                        self.app
                            .server_options()
                            .and_then(|o| o.keepalive_request_limit),
                    );
                }
            }
            (stream, settings) = self
                .app
                .process_new_http(session, shutdown)
                .await?
                .consume();
        }
    }
}

/// A connection's wait for its next request, with what ends it: the client
/// closing, `timeouts.client_idle` of silence, or the start of a graceful shutdown.
struct IdleWait {
    /// One timer for the connection's whole life: moved only when it would fire
    /// late (the first wait, a shorter limit after a reload) or fired early, so a
    /// busy connection pays no timer registration per request.
    timer: Pin<Box<Sleep>>,
    shutdown: ShutdownWatch,
    watching: bool,
}

impl IdleWait {
    /// The stream back once the client's next bytes came; None when it ended.
    async fn next_request(&mut self, stream: Stream, limit: Duration) -> Option<Stream> {
        // Pingora hands back the stream it was given, which process_new wrapped.
        let Ok(mut timed) = stream.into_any().downcast::<Deadline>() else {
            tracing::error!("kept-alive stream is not the one given: closing it");
            return None;
        };
        if *self.shutdown.borrow() {
            return None;
        }
        let deadline = tokio::time::Instant::now() + limit;
        if self.timer.deadline() > deadline {
            self.timer.as_mut().reset(deadline);
        }
        loop {
            tokio::select! {
                biased;
                came = poll_fn(|cx| timed.poll_next_request(cx)) => {
                    return matches!(came, Ok(true)).then_some(timed as Stream);
                }
                () = self.timer.as_mut() => {
                    if tokio::time::Instant::now() >= deadline {
                        return None;
                    }
                    // Set for an earlier wait: this one's silence began later.
                    self.timer.as_mut().reset(deadline);
                }
                r = self.shutdown.changed(), if self.watching => match r {
                    Ok(()) if *self.shutdown.borrow_and_update() => return None,
                    Ok(()) => {}
                    // No sender: no shutdown signal can come any more.
                    Err(_) => self.watching = false,
                },
            }
        }
    }
}
