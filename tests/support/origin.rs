//! A scripted hyper origin for protocol tests, speaking exactly one protocol
//! (HTTP/1.1 only, cleartext HTTP/2 only, or HTTP/2 over TLS only), with the answers `SimOrigin` does
//! not give: trailers, chosen statuses, unknown-length bodies. It records every
//! request but the health probes.
//!
//! Paths: `/health` (200 `{"status":"healthy"}`), `/status/NNN` (that status, no
//! body), `/chunked` (`one,two,three` in three frames, no length), `/trailers`
//! (`hello` then the trailer `x-checksum: 5d41402a`), anything else: 200 with
//! `{"method", "path", "body_len"}` and a Content-Length.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};

/// Which protocol the origin accepts; anything else fails at its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaks {
    Http1,
    /// HTTP/2 with prior knowledge, no TLS.
    H2c,
}

/// How connections are taken: `Speaks` in the clear, or HTTP/2 after a TLS
/// handshake that offers only ALPN `h2`.
#[derive(Clone)]
enum Mode {
    Clear(Speaks),
    H2Tls(tokio_rustls::TlsAcceptor),
}

/// One request the origin answered.
#[derive(Debug, Clone)]
pub struct Request1 {
    pub method: String,
    pub path: String,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body_len: usize,
}

#[derive(Default)]
pub struct Record {
    pub seen: Mutex<Vec<Request1>>,
    /// Health probes answered (`GET /health`).
    pub probes: AtomicU64,
    /// Connections accepted, probes included.
    pub accepts: AtomicU64,
}

impl Record {
    pub fn seen(&self) -> Vec<Request1> {
        self.seen.lock().unwrap().clone()
    }
}

pub struct HttpOrigin {
    pub addr: SocketAddr,
    pub record: Arc<Record>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Body = BoxBody<Bytes, Infallible>;

impl HttpOrigin {
    /// Listens on an ephemeral loopback port.
    pub async fn start(speaks: Speaks) -> HttpOrigin {
        Self::run(Mode::Clear(speaks)).await
    }

    /// HTTP/2 over TLS with `leaf`'s certificate, ALPN `h2` only.
    pub async fn start_h2_tls(leaf: &super::certs::Leaf) -> HttpOrigin {
        let pem = |p: &std::path::Path| std::io::BufReader::new(std::fs::File::open(p).unwrap());
        let chain = rustls_pemfile::certs(&mut pem(&leaf.cert))
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = rustls_pemfile::private_key(&mut pem(&leaf.key))
            .unwrap()
            .expect("a private key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Self::run(Mode::H2Tls(tokio_rustls::TlsAcceptor::from(Arc::new(
            config,
        ))))
        .await
    }

    async fn run(mode: Mode) -> HttpOrigin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let record = Arc::new(Record::default());
        let rec = record.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                rec.accepts.fetch_add(1, Relaxed);
                let (rec, mode) = (rec.clone(), mode.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let rec = rec.clone();
                        async move { Ok::<_, Infallible>(answer(&rec, req).await) }
                    });
                    let h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                    let _ = match mode {
                        Mode::Clear(Speaks::Http1) => {
                            hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await
                        }
                        Mode::Clear(Speaks::H2c) => {
                            h2.serve_connection(TokioIo::new(stream), svc).await
                        }
                        Mode::H2Tls(acceptor) => {
                            let Ok(tls) = acceptor.accept(stream).await else {
                                return;
                            };
                            h2.serve_connection(TokioIo::new(tls), svc).await
                        }
                    };
                });
            }
        });
        HttpOrigin { addr, record, task }
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

/// A body of `frames`, one poll each, so it has no known length.
fn frames(frames: Vec<Frame<Bytes>>) -> Body {
    let stream = super::sim_origin::IterStream(frames.into_iter().map(Ok::<_, Infallible>));
    StreamBody::new(stream).boxed()
}

async fn answer(rec: &Record, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if path == "/health" {
        rec.probes.fetch_add(1, Relaxed);
        return Response::new(full(r#"{"status":"healthy"}"#));
    }
    let (parts, body) = req.into_parts();
    let body_len = body.collect().await.map_or(0, |b| b.to_bytes().len());
    rec.seen.lock().unwrap().push(Request1 {
        method: parts.method.to_string(),
        path: path.clone(),
        version: parts.version,
        headers: parts.headers.clone(),
        body_len,
    });
    if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|c| c.parse::<u16>().ok())
    {
        return Response::builder()
            .status(code)
            .body(full(Bytes::new()))
            .unwrap();
    }
    match path.as_str() {
        "/chunked" => Response::new(frames(
            ["one,", "two,", "three"]
                .into_iter()
                .map(|s| Frame::data(Bytes::from(s)))
                .collect(),
        )),
        "/trailers" => {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-checksum", http::HeaderValue::from_static("5d41402a"));
            Response::builder()
                .header("trailer", "x-checksum")
                .body(frames(vec![
                    Frame::data(Bytes::from("hello")),
                    Frame::trailers(trailers),
                ]))
                .unwrap()
        }
        _ => {
            let text = serde_json::json!({
                "method": parts.method.as_str(),
                "path": path,
                "body_len": body_len,
            })
            .to_string();
            Response::builder()
                .header("content-type", "application/json")
                .body(full(text))
                .unwrap()
        }
    }
}
