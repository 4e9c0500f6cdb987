//! Talking to origins: a pooled connection (or a new one, TCP then rustls with
//! the origin's own settings, then HTTP/1 or HTTP/2 as configured), and one
//! request over it. Health probes connect through here too, so a probe reaches
//! an origin exactly as traffic does.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use super::fork::{self, PreEncodedHeaders};
use http::header::HeaderValue;
use http::uri::{PathAndQuery, Scheme};
use http::Uri;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use pin_project_lite::pin_project;
use tokio::net::TcpStream;

use crate::core::config::OriginProtocol;
use crate::core::health::endpoints::Endpoint;
use crate::core::snapshot::OriginEntry;
use crate::proxy::pool::{OriginPool, RequestBody, Sender};

/// Why no connection could be had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect timed out")]
    Timeout,
    #[error("connect: {0}")]
    Io(#[from] std::io::Error),
    #[error("TLS: {0}")]
    Tls(#[from] crate::proxy::tls::HandshakeError),
    #[error("handshake: {0}")]
    Http(#[from] hyper::Error),
}

impl ConnectError {
    pub fn timed_out(&self) -> bool {
        matches!(self, ConnectError::Timeout)
    }
}

/// A connection to `endpoint` of `origin` ready for a request: a kept one when
/// there is one.
pub async fn connection(
    origin: &OriginEntry,
    endpoint: &Endpoint,
    connect_timeout: Duration,
    max_idle: Duration,
) -> Result<Sender, ConnectError> {
    let h2 = origin.protocol != OriginProtocol::Http1;
    while let Some(tx) = endpoint.pool.take(h2, max_idle) {
        match tx {
            Sender::H2(tx) => return Ok(Sender::H2(tx)),
            // Put back before its last answer's end was seen by its connection
            // task: ready once it has (an error: it closed meanwhile).
            Sender::H1(mut tx) => {
                if tx.ready().await.is_ok() {
                    return Ok(Sender::H1(tx));
                }
            }
        }
    }
    // Boxed: making a connection (TCP, then a rustls handshake) is rare next to
    // reusing one, and inline its state would enlarge every request's future,
    // which is moved into its box once per request.
    let connect = Box::pin(connect(
        origin,
        endpoint.addr,
        Purpose::Traffic(&endpoint.pool),
    ));
    match tokio::time::timeout(connect_timeout, connect).await {
        Ok(r) => r,
        Err(_) => Err(ConnectError::Timeout),
    }
}

/// What a new connection is for.
#[derive(Clone, Copy)]
pub enum Purpose<'a> {
    /// Requests: a new HTTP/2 connection is shared through the endpoint's pool
    /// with the requests that follow (HTTP/1 ones go back to it after their
    /// answer, which is the caller's part).
    Traffic(&'a OriginPool),
    /// A health probe: one request over a connection of its own, never pooled,
    /// so a probe tests connecting as well as answering.
    Probe,
}

/// A new connection to `addr`, one of `origin`'s addresses: TLS (when the
/// origin speaks it) checks the certificate against the origin's name, never the
/// address. Not timed: the caller bounds it.
pub async fn connect(
    origin: &OriginEntry,
    addr: std::net::SocketAddr,
    purpose: Purpose<'_>,
) -> Result<Sender, ConnectError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let h2 = origin.protocol != OriginProtocol::Http1;
    match &origin.tls {
        None => handshake(tcp, h2, purpose).await,
        Some(tls) => {
            let stream = crate::proxy::tls::connect_origin(tls, &origin.sni, h2, tcp)
                .await
                .map_err(ConnectError::Tls)?;
            handshake(stream, h2, purpose).await
        }
    }
}

async fn handshake<S>(io: S, h2: bool, purpose: Purpose<'_>) -> Result<Sender, ConnectError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    if h2 {
        let (tx, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .handshake(io)
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("origin HTTP/2 connection ended: {e}");
            }
        });
        if let Purpose::Traffic(pool) = purpose {
            pool.share(&tx);
        }
        return Ok(Sender::H2(tx));
    }
    let (tx, conn) = http1::Builder::new()
        .max_buf_size(super::listener::MAX_BUF)
        .handshake(io)
        .await?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!("origin connection ended: {e}");
        }
    });
    Ok(Sender::H1(tx))
}

/// The host a request to `origin` names: `host` when it is text, else the
/// origin's address.
pub fn authority<'a>(origin: &'a OriginEntry, host: Option<&'a HeaderValue>) -> &'a str {
    host.and_then(|h| h.to_str().ok())
        .unwrap_or(origin.address.as_str())
}

/// The target of a request to an HTTP/2 origin: HTTP/2 carries the host as
/// `:authority`, which hyper's HTTP/2 client takes from an absolute URI (it
/// refuses a bare path); the scheme is what the connection is.
pub fn h2_target<P>(
    origin: &OriginEntry,
    host: Option<&HeaderValue>,
    path: P,
) -> Result<Uri, http::Error>
where
    P: TryInto<PathAndQuery>,
    P::Error: Into<http::Error>,
{
    let scheme = if origin.tls.is_some() {
        Scheme::HTTPS
    } else {
        Scheme::HTTP
    };
    Uri::builder()
        .scheme(scheme)
        .authority(authority(origin, host))
        .path_and_query(path)
        .build()
}

/// Sends one request, and to an HTTP/1 origin the header `lines` encoded for
/// it (an HTTP/2 request carries all of its headers in its map). The HTTP/1
/// connection comes back with the answer, to be returned to the pool once its
/// body was read to the end.
///
/// The request goes into the connection's queue now; the future only waits
/// for the answer. Written by hand rather than as an `async fn`, which held
/// the request beside hyper's own future (640 bytes of every request's state
/// instead of about 300).
pub fn send(
    tx: Sender,
    req: http::Request<RequestBody>,
    lines: PreEncodedHeaders,
) -> Sent<impl Future<Output = OriginResult>, impl Future<Output = OriginResult>> {
    match tx {
        Sender::H1(mut tx) => Sent::H1 {
            answer: fork::send_request_with(&mut tx, req, lines),
            tx: Some(tx),
        },
        Sender::H2(mut tx) => Sent::H2 {
            answer: tx.send_request(req),
        },
    }
}

/// hyper's answer to one request.
type OriginResult = hyper::Result<http::Response<Incoming>>;

pin_project! {
    /// A request sent, waiting for its answer (see [`send`]).
    #[project = SentProj]
    pub enum Sent<A, B> {
        H1 { #[pin] answer: A, tx: Option<http1::SendRequest<RequestBody>> },
        H2 { #[pin] answer: B },
    }
}

impl<A, B> Future for Sent<A, B>
where
    A: Future<Output = OriginResult>,
    B: Future<Output = OriginResult>,
{
    type Output = hyper::Result<(
        http::Response<Incoming>,
        Option<http1::SendRequest<RequestBody>>,
    )>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            SentProj::H1 { answer, tx } => {
                let resp = ready!(answer.poll(cx))?;
                Poll::Ready(Ok((resp, tx.take())))
            }
            SentProj::H2 { answer } => Poll::Ready(Ok((ready!(answer.poll(cx))?, None))),
        }
    }
}
