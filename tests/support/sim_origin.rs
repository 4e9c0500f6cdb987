//! The simulated regional origin the end-to-end tests drive: it answers as
//! `meridian demo`'s origins do (its region's name, deep-health JSON on
//! `/health`), streams `/bytes/N`, records what it saw, and can be told at
//! runtime to fail, slow down, drop connections or report another health.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use meridian::cli::demo;
use tokio::net::TcpListener;

/// A poisoned lock still holds usable counters: a test that panicked while
/// holding it has failed already.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One request an origin saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl Seen {
    /// The first value of header `name` (lower-case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Runtime controls of a simulated origin; every field can change while it serves.
#[derive(Debug)]
pub struct Control {
    /// Status for normal requests; 0 = 200.
    pub status: AtomicU16,
    /// Added delay before answering, ms (normal requests and health).
    pub delay_ms: AtomicU64,
    /// Close each connection without answering: new ones at accept, open ones at
    /// their next request.
    pub drop_connections: AtomicBool,
    /// Body of `/health`.
    pub health_body: Mutex<String>,
    /// Status of `/health`; 0 = 200.
    pub health_status: AtomicU16,
    /// Connections accepted.
    pub accepts: AtomicU64,
    /// Connections ended (closed by either side).
    pub closes: AtomicU64,
    /// Requests answered (counted after `delay_ms`), health probes excluded.
    pub requests: AtomicU64,
    /// Requests arrived, counted before `delay_ms`: those now held are
    /// `arrived - requests`.
    pub arrived: AtomicU64,
    /// Health probes seen.
    pub probes: AtomicU64,
    seen: Mutex<Vec<Seen>>,
}

impl Control {
    /// Connections open now: accepted and not yet ended.
    pub fn open_connections(&self) -> u64 {
        self.accepts.load(Relaxed) - self.closes.load(Relaxed)
    }

    fn new() -> Control {
        Control {
            status: AtomicU16::new(0),
            delay_ms: AtomicU64::new(0),
            drop_connections: AtomicBool::new(false),
            health_body: Mutex::new(demo::HEALTHY.into()),
            health_status: AtomicU16::new(0),
            accepts: AtomicU64::new(0),
            closes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            arrived: AtomicU64::new(0),
            probes: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Sets the `/health` body, e.g. `{"status":"degraded","replication_lag_ms":300}`.
    pub fn set_health(&self, body: &str) {
        *lock(&self.health_body) = body.to_string();
    }

    /// Requests seen so far (health probes excluded), oldest first.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }
}

/// A simulated origin serving on loopback.
pub struct SimOrigin {
    pub region: String,
    pub addr: SocketAddr,
    pub control: Arc<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl SimOrigin {
    /// Starts an origin for `region` on `addr` (`127.0.0.1:0` for an ephemeral port).
    pub async fn start(region: &str, addr: SocketAddr) -> std::io::Result<SimOrigin> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let control = Arc::new(Control::new());
        let region_name: Arc<str> = region.into();
        let ctl = control.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                ctl.accepts.fetch_add(1, Relaxed);
                if ctl.drop_connections.load(Relaxed) {
                    drop(stream);
                    continue;
                }
                let (ctl, region) = (ctl.clone(), region_name.clone());
                let ended = ctl.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let (ctl, region) = (ctl.clone(), region.clone());
                        async move {
                            // A killed origin resets even its open keep-alive connections.
                            if ctl.drop_connections.load(Relaxed) {
                                return Err(std::io::Error::other("origin killed"));
                            }
                            Ok(answer(&ctl, &region, req).await)
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                    ended.closes.fetch_add(1, Relaxed);
                });
            }
        });
        Ok(SimOrigin {
            region: region.to_string(),
            addr,
            control,
            task,
        })
    }
}

impl Drop for SimOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type OriginBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> OriginBody {
    Full::new(b.into()).boxed()
}

async fn answer(ctl: &Control, region: &str, req: Request<Incoming>) -> Response<OriginBody> {
    let path = req.uri().path().to_string();
    if path != "/health" {
        ctl.arrived.fetch_add(1, Relaxed);
    }
    let delay = ctl.delay_ms.load(Relaxed);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    if path == "/health" {
        ctl.probes.fetch_add(1, Relaxed);
        let body = lock(&ctl.health_body).clone();
        let status = match ctl.health_status.load(Relaxed) {
            0 => 200,
            s => s,
        };
        return Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(full(body))
            .unwrap_or_default();
    }
    ctl.requests.fetch_add(1, Relaxed);
    let method = req.method().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request_id = req
        .headers()
        .get("x-request-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    // Read (and count) the whole upload.
    let body_len = demo::read_body(req.into_body()).await;
    lock(&ctl.seen).push(Seen {
        method: method.clone(),
        path: path.clone(),
        headers,
        body_len,
    });
    let status = match ctl.status.load(Relaxed) {
        0 => 200,
        s => s,
    };
    // `/bytes/N` streams N bytes in 16 KiB chunks (for large-body tests).
    if let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|n| n.parse::<usize>().ok())
    {
        let chunks = (0..n.div_ceil(16384)).map(move |i| {
            let len = (n - i * 16384).min(16384);
            Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; len])))
        });
        let stream = IterStream(chunks);
        return Response::builder()
            .status(status)
            .header("x-origin-region", region)
            .body(StreamBody::new(stream).boxed())
            .unwrap_or_default();
    }
    let body = demo::answer_body(region, &method, &path, body_len, &request_id);
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-origin-region", region)
        .body(full(body))
        .unwrap_or_default()
}

/// Yields an iterator's items one poll at a time, so a large body really streams
/// (also used by the protocol-only origins in `origin.rs`).
pub struct IterStream<I>(pub I);

impl<I: Iterator + Unpin> futures_core::Stream for IterStream<I> {
    type Item = I::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<I::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}
