//! Client connections: accept, the PROXY header where the listener asks for
//! one, TLS (certificates by SNI from the snapshot, ALPN `h2`/`http/1.1`), then
//! hyper's HTTP/1 or HTTP/2 server connection until the client leaves, its
//! timeouts end it, or a graceful shutdown drains it.
//!
//! Memory per idle client is the budget here: an HTTP/1 connection waiting for
//! its next request holds no read or write buffer (meridian's hyper patch,
//! docs/hyper/), and each request's future is boxed only while it is in flight.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

use super::{ConnInfo, Proxy};
use crate::proxy_protocol;
use crate::shutdown::ShutdownWatch;

/// hyper's HTTP/1 buffer cap per connection (its default is ~400 KiB): bounds
/// what one streaming body holds in flight, and is the largest request header
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
}

/// Counters a connection may move before any request exists.
#[derive(Clone)]
struct Cuts {
    header_timeout: IntCounter,
    proxy_protocol: IntCounter,
    /// A request hyper's parser refused (answered 400, 414 or 431, then closed).
    malformed: IntCounter,
}

/// Accepts until shutdown; each connection runs in its own task holding a
/// clone of `live` (the count of open connections a shutdown waits for).
pub async fn serve(
    listener: Listener,
    proxy: Arc<Proxy>,
    mut shutdown: ShutdownWatch,
    live: Arc<()>,
) {
    let rejected = &proxy.shared.metrics.requests_rejected;
    let cuts = Cuts {
        header_timeout: rejected.with_label_values(&["header_timeout"]),
        proxy_protocol: rejected.with_label_values(&["proxy_protocol"]),
        malformed: rejected.with_label_values(&["malformed"]),
    };
    let listener = Arc::new(listener);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|stop| *stop) => break,
            a = listener.tcp.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let conn = connection(
                    stream,
                    peer,
                    listener.clone(),
                    proxy.clone(),
                    shutdown.clone(),
                    cuts.clone(),
                );
                let live = live.clone();
                tokio::spawn(async move {
                    conn.await;
                    drop(live);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off, do not spin.
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(
    stream: TcpStream,
    mut peer: SocketAddr,
    listener: Arc<Listener>,
    proxy: Arc<Proxy>,
    shutdown: ShutdownWatch,
    cuts: Cuts,
) {
    let (header_limit, idle_limit) = {
        let snap = proxy.shared.snapshot.load();
        let t = &snap.data_path;
        (t.request_header_timeout, t.client_idle_timeout)
    };
    let mut stream = stream;
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
    let limits = Limits {
        header: header_limit,
        idle: idle_limit,
    };
    match &listener.tls {
        Some(acceptor) => {
            let accept = Box::pin(tokio::time::timeout(header_limit, acceptor.accept(stream)));
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
            let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
            let info = ConnInfo { peer, tls: true };
            Box::pin(serve_http(tls, h2, info, proxy, shutdown, limits, cuts)).await;
        }
        None => {
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
            let info = ConnInfo { peer, tls: false };
            Box::pin(serve_http(stream, h2, info, proxy, shutdown, limits, cuts)).await;
        }
    }
}

#[derive(Clone, Copy)]
struct Limits {
    /// `timeouts.request_header`: a request header from its first byte (and the
    /// first request of a connection from its start).
    header: Duration,
    /// `timeouts.client_idle`: a kept-alive client's silence between requests.
    idle: Duration,
}

async fn serve_http<I>(
    io: I,
    h2: bool,
    info: ConnInfo,
    proxy: Arc<Proxy>,
    mut shutdown: ShutdownWatch,
    limits: Limits,
    cuts: Cuts,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Boxed per request: hyper keeps room for one service future per
    // connection, so an unboxed one would cost every idle client its size. The
    // connections below are boxed too, each only as large as its own protocol
    // needs: inline, every connection's task would be sized for the largest
    // (HTTP/2 over TLS), 16 KiB each while idle.
    let service = service_fn(move |req: http::Request<Incoming>| -> super::Answer {
        proxy.clone().handle(req, info)
    });
    let io = TokioIo::new(io);
    let ended = if h2 {
        let conn = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .serve_connection(io, service);
        Box::pin(until_drained(conn, &mut shutdown, |c| {
            c.graceful_shutdown()
        }))
        .await
    } else {
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header)
            .idle_timeout(limits.idle)
            .max_buf_size(MAX_BUF)
            .serve_connection(io, service)
            .with_upgrades();
        Box::pin(until_drained(conn, &mut shutdown, |c| {
            c.graceful_shutdown()
        }))
        .await
    };
    if let Err(e) = ended {
        if e.is_timeout() {
            cuts.header_timeout.inc();
        } else if e.is_parse() {
            cuts.malformed.inc();
        }
        tracing::debug!(peer = %info.peer, "connection ended: {e}");
    }
}

/// Runs a connection to its end; once a shutdown starts, asks it to finish
/// (`graceful`: an idle one closes at once, a busy one after its answer).
async fn until_drained<C, E>(
    conn: C,
    shutdown: &mut ShutdownWatch,
    graceful: impl FnOnce(Pin<&mut C>),
) -> Result<(), E>
where
    C: Future<Output = Result<(), E>>,
{
    let mut conn = pin!(conn);
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
