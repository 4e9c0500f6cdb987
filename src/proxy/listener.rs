//! Client connections: accept, the PROXY header where the listener asks for
//! one, TLS (certificates by SNI from the snapshot, ALPN `h2`/`http/1.1`), then
//! hyper's HTTP/1 or HTTP/2 server connection until the client leaves, its
//! timeouts end it, or a graceful shutdown drains it.
//!
//! Memory per idle client is the budget here: an HTTP/1 connection waiting for
//! its next request holds no read or write buffer (meridian's hyper patch 0001,
//! docs/hyper/UPSTREAM.md), and each request's future is boxed only while it is in
//! flight. The wait for a request head has two bounds, kept apart by `wait`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use super::{wait, ConnInfo, Proxy, ResponseBody};
use crate::proxy::proxy_protocol;
use crate::telemetry::labels::Reject;
use crate::util::clock::monotonic_ms;
use crate::util::shutdown::{Connections, Open, ShutdownWatch};

/// hyper's HTTP/1 buffer cap per origin connection (its default is ~400 KiB):
/// bounds what one streaming body holds in flight. A client connection's is
/// `limits.max_header_bytes` (64 KiB by default too), the largest request head
/// accepted (431 above it).
pub const MAX_BUF: usize = 64 * 1024;

/// What an HTTP/2 client with prior knowledge sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// One proxy listener, bound.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Every connection starts with a PROXY v1/v2 header.
    pub proxy_protocol: bool,
    /// `max_connections`: one permit per connection served; none = no cap.
    pub slots: Option<Arc<tokio::sync::Semaphore>>,
}

/// Counters a connection may move before any request exists, shared by the
/// listener's connections.
struct Cuts {
    header_timeout: IntCounter,
    proxy_protocol: IntCounter,
    /// A request hyper's parser refused (answered 400, 414 or 431, then closed).
    malformed: IntCounter,
}

/// Accepts until shutdown; each connection runs in its own task, counted in
/// `live` (the open connections a shutdown waits for) until it ends.
pub async fn serve(
    listener: Listener,
    proxy: Arc<Proxy>,
    mut shutdown: ShutdownWatch,
    live: Connections,
) {
    let rejected = &proxy.shared.metrics.requests_rejected;
    let cuts = Arc::new(Cuts {
        header_timeout: rejected.with_label_values(&[Reject::HeaderTimeout.as_str()]),
        proxy_protocol: rejected.with_label_values(&[Reject::ProxyProtocol.as_str()]),
        malformed: rejected.with_label_values(&[Reject::Malformed.as_str()]),
    });
    let listener = Arc::new(listener);
    loop {
        // At the cap, nothing is accepted: new connections wait in the
        // kernel's accept queue (and past it, the client's SYN retries) until
        // a served one ends, rather than cost memory here.
        let slot = match &listener.slots {
            Some(slots) => tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                p = slots.clone().acquire_owned() => p.ok(),
            },
            None => None,
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            a = listener.tcp.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let served = connection(
                    stream,
                    peer,
                    listener.clone(),
                    proxy.clone(),
                    shutdown.clone(),
                    cuts.clone(),
                    live.open(),
                );
                match slot {
                    None => {
                        tokio::spawn(served);
                    }
                    // The permit is held until the connection ends.
                    Some(slot) => {
                        tokio::spawn(async move {
                            served.await;
                            drop(slot);
                        });
                    }
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, do not spin.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Serves a connection's stream to its end, HTTP/2 (boxed: large) or HTTP/1
/// (pinned in the caller's own future), and counts how it ended. A macro, not a
/// function: a function taking the stream (an `async fn`, or a `fn` returning a
/// future) would hold it a second time, in its argument, in every idle client's
/// task; expanded in place, the stream is held once.
macro_rules! serve_to_end {
    ($io:expr, $h2:expr, $handler:expr, $shutdown:ident, $limits:expr, $cuts:expr, $peer:expr) => {{
        let io = $io;
        let ended = if $h2 {
            let served = Box::pin(serve_h2(io, $handler, &mut $shutdown, $limits));
            served.await
        } else {
            let clock = wait::WaitClock::default();
            let mut conn = pin!(http1(io, $handler, $limits, &clock));
            let ended =
                until_drained(conn.as_mut(), &mut $shutdown, |c| c.graceful_shutdown()).await;
            wait::ended(ended, &clock)
        };
        ended_by(ended, &$cuts, $peer);
    }};
}

/// One client connection, to its end; its task holds this future, so an idle
/// client costs what this future holds while it waits.
///
/// It is sized for the common case, a cleartext HTTP/1 connection, held inline:
/// one allocation (the task) per idle client. What is larger is boxed and paid
/// only by the connections that need it: the PROXY header read, TLS (the
/// handshake, rustls' state) and HTTP/2. A plain `fn` around an `async move`
/// block, not an `async fn`: an `async fn` keeps a second copy of its arguments
/// in its future (rust-lang/rust#62958), and nothing here is awaited while a
/// large value sits in a temporary (an `.await`'s temporaries live across it).
#[allow(clippy::manual_async_fn)] // on purpose: see above
fn connection(
    mut stream: TcpStream,
    mut peer: SocketAddr,
    listener: Arc<Listener>,
    proxy: Arc<Proxy>,
    mut shutdown: ShutdownWatch,
    cuts: Arc<Cuts>,
    live: Open,
) -> impl Future<Output = ()> + Send {
    async move {
        let _live = live;
        let limits = Limits::of(&proxy.shared.snapshot.load().data_path);
        let header_limit = limits.header;
        if listener.proxy_protocol {
            let read = Box::pin(tokio::time::timeout(
                header_limit,
                read_proxy_header(&mut stream),
            ));
            match read.await {
                Ok(Ok(Some(source))) => peer = source,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "PROXY header refused: {e}");
                    cuts.proxy_protocol.inc();
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "no PROXY header within timeouts.request_header");
                    cuts.proxy_protocol.inc();
                    return;
                }
            }
        }
        if let Some(acceptor) = listener.tls.clone() {
            let handler = Handler {
                proxy,
                info: ConnInfo { peer, tls: true },
                last_request: None,
            };
            let served = Box::pin(tls_connection(
                stream, acceptor, handler, shutdown, limits, cuts,
            ));
            return served.await;
        }
        // Time the wait for the first bytes like a header's.
        let h2 = match tokio::time::timeout(header_limit, starts_with_preface(&stream)).await {
            Ok(Ok(h2)) => h2,
            Ok(Err(e)) => {
                tracing::debug!(%peer, "no first request: {e}");
                return;
            }
            Err(_) => {
                cuts.header_timeout.inc();
                return;
            }
        };
        let handler = Handler {
            proxy,
            info: ConnInfo { peer, tls: false },
            last_request: None,
        };
        serve_to_end!(
            TokioIo::new(stream),
            h2,
            handler,
            shutdown,
            limits,
            cuts,
            peer
        );
    }
}

/// A TLS connection after its TCP accept: the handshake (boxed, freed once
/// done), then HTTP/1 or, by ALPN, HTTP/2 (boxed: larger).
async fn tls_connection(
    stream: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
    handler: Handler,
    mut shutdown: ShutdownWatch,
    limits: Limits,
    cuts: Arc<Cuts>,
) {
    let peer = handler.info.peer;
    let accept = Box::pin(tokio::time::timeout(limits.header, acceptor.accept(stream)));
    let tls = match accept.await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake took longer than timeouts.request_header");
            return;
        }
    };
    let (tls, h2) = alpn_h2(tls);
    serve_to_end!(TokioIo::new(tls), h2, handler, shutdown, limits, cuts, peer);
}

/// Whether the client chose HTTP/2 by ALPN. Takes the stream by value and gives
/// it back: a borrow of it in `tls_connection` would keep a second copy of the
/// (large) stream in that future.
fn alpn_h2(
    tls: tokio_rustls::server::TlsStream<TcpStream>,
) -> (tokio_rustls::server::TlsStream<TcpStream>, bool) {
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    (tls, h2)
}

#[derive(Clone, Copy)]
struct Limits {
    /// `timeouts.request_header`: a request header from its first byte (and the
    /// first request of a connection from its start).
    header: Duration,
    /// `timeouts.client_idle`: a kept-alive client's silence between requests.
    idle: Duration,
    /// `limits.max_headers` and `limits.max_header_bytes` (HTTP/1): 431 above.
    max_headers: u32,
    max_head_bytes: u32,
}

impl Limits {
    fn of(t: &crate::core::snapshot::DataPath) -> Limits {
        Limits {
            header: t.request_header_timeout,
            idle: t.client_idle_timeout,
            max_headers: u32::try_from(t.max_headers).unwrap_or(u32::MAX),
            max_head_bytes: u32::try_from(t.max_header_bytes).unwrap_or(u32::MAX),
        }
    }
}

/// A connection's service: each request to the proxy.
#[derive(Clone)]
struct Handler {
    proxy: Arc<Proxy>,
    info: ConnInfo,
    /// HTTP/2 only: when the connection's last request started (monotonic
    /// ms), for its idle timeout (hyper's HTTP/2 server has none).
    last_request: Option<Arc<AtomicU64>>,
}

impl hyper::service::Service<http::Request<Incoming>> for Handler {
    type Response = http::Response<ResponseBody>;
    type Error = std::convert::Infallible;
    type Future = super::Answer;

    /// Boxed per request (`Proxy::handle` boxes it): hyper keeps room for one
    /// service future per connection, so an unboxed one would cost every idle
    /// client its size.
    fn call(&self, req: http::Request<Incoming>) -> super::Answer {
        if let Some(last) = &self.last_request {
            // Never 0, which means "none yet".
            last.store(monotonic_ms().max(1), Relaxed);
        }
        self.proxy.clone().handle(req, self.info)
    }
}

/// hyper's HTTP/1 server connection with meridian's limits.
fn http1<I>(
    io: TokioIo<I>,
    handler: Handler,
    limits: Limits,
    clock: &wait::WaitClock,
) -> http1::UpgradeableConnection<TokioIo<wait::Watched<I>>, Handler>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(wait::watch(io.into_inner(), clock));
    wait::http1_server(limits.header, limits.idle, clock)
        .max_headers(limits.max_headers as usize)
        // hyper's read buffer: the largest request head, and what one
        // streaming body holds in flight.
        .max_buf_size(limits.max_head_bytes as usize)
        .serve_connection(io, handler)
        .with_upgrades()
}

/// An HTTP/2 connection to its end (called boxed: its state is large).
async fn serve_h2<I>(
    io: TokioIo<I>,
    mut handler: Handler,
    shutdown: &mut ShutdownWatch,
    limits: Limits,
) -> hyper::Result<()>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (streams, interval, timeout) = {
        let snap = handler.proxy.shared.snapshot.load();
        let t = &snap.data_path;
        (
            t.h2_max_concurrent_streams,
            t.h2_keep_alive_interval,
            t.h2_keep_alive_timeout,
        )
    };
    let opened = monotonic_ms();
    // 0 until the first request starts.
    let last_request = Arc::new(AtomicU64::new(0));
    handler.last_request = Some(last_request.clone());
    // hyper's own guards stay on: streams a client resets before they are
    // answered (CVE-2023-44487's rapid reset) and streams it makes meridian
    // reset are capped per connection, then the connection is closed.
    let mut conn = pin!(http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .max_concurrent_streams(streams)
        .keep_alive_interval(interval)
        .keep_alive_timeout(timeout)
        .max_header_list_size(limits.max_head_bytes)
        .serve_connection(io, handler));
    // As for HTTP/1: the first request must start within
    // `timeouts.request_header` of the connection (a client that opens one and
    // sends no whole header block holds nothing for long), and a client that
    // starts no request for `timeouts.client_idle` after that is sent GOAWAY.
    // Streams in flight finish either way.
    let idle = async {
        loop {
            let (since, limit) = match last_request.load(Relaxed) {
                0 => (opened, limits.header),
                last => (last, limits.idle),
            };
            let quiet = Duration::from_millis(monotonic_ms().saturating_sub(since));
            if quiet >= limit {
                return;
            }
            // Woken at least as often as the shorter limit, so a first request
            // that starts meanwhile moves the deadline in time.
            tokio::time::sleep((limit - quiet).min(limits.header.min(limits.idle))).await;
        }
    };
    tokio::select! {
        r = conn.as_mut() => return r,
        _ = shutdown.wait_for(|stop| *stop) => {}
        _ = idle => tracing::debug!("HTTP/2 client idle (timeouts.request_header or client_idle)"),
    }
    conn.as_mut().graceful_shutdown();
    conn.await
}

/// Counts and logs how a connection ended, when by an error.
fn ended_by(ended: hyper::Result<()>, cuts: &Cuts, peer: SocketAddr) {
    if let Err(e) = ended {
        if e.is_timeout() {
            cuts.header_timeout.inc();
        } else if e.is_parse() {
            cuts.malformed.inc();
        }
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

/// Runs a connection to its end; once a shutdown starts, asks it to finish
/// (`graceful`: an idle one closes at once, a busy one after its answer). The
/// connection is pinned by the caller, in its own future: taken by value, it
/// would be held twice (the argument and the pinned local).
async fn until_drained<C>(
    mut conn: Pin<&mut C>,
    shutdown: &mut ShutdownWatch,
    graceful: impl FnOnce(Pin<&mut C>),
) -> hyper::Result<()>
where
    C: Future<Output = hyper::Result<()>>,
{
    tokio::select! {
        r = conn.as_mut() => return r,
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
    graceful(conn.as_mut());
    conn.await
}

/// Whether a cleartext connection opens with the HTTP/2 preface (prior
/// knowledge), peeked so HTTP/1 reads the same bytes afterwards.
async fn starts_with_preface(stream: &TcpStream) -> std::io::Result<bool> {
    let mut buf = [0u8; 24];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Ok(false);
        }
        if n == H2_PREFACE.len() {
            return Ok(true);
        }
        // A strict prefix of the preface: the rest is on its way (a peek would
        // return at once with the same bytes, so wait a little between looks).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads the PROXY header off the front of the connection, and nothing more.
/// Some(source) for a proxied connection, None for LOCAL (keep the TCP peer).
async fn read_proxy_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, String> {
    let mut buf = [0u8; proxy_protocol::MAX_HEADER_LEN];
    loop {
        let n = stream.peek(&mut buf).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before a PROXY header".into());
        }
        match proxy_protocol::parse(&buf[..n]).map_err(|e| e.to_string())? {
            Some((header, len)) => {
                stream
                    .read_exact(&mut buf[..len])
                    .await
                    .map_err(|e| e.to_string())?;
                return Ok(match header {
                    proxy_protocol::Header::Proxied { source, .. } => Some(source),
                    proxy_protocol::Header::Local => None,
                });
            }
            // Part of a header: the rest is on its way.
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}
