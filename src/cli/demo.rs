//! Simulated regional origins: what `meridian demo` runs behind the gateway,
//! and the origin fixture end-to-end tests drive. Each origin answers with its
//! region's name, serves deep-health JSON on `/health`, and can be told at
//! runtime to fail, slow down, drop connections or report another health.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::util::lock::lock;

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
            health_body: Mutex::new(r#"{"status":"healthy","replication_lag_ms":0}"#.into()),
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
    let mut body = req.into_body();
    let mut body_len = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => body_len += f.data_ref().map_or(0, |d| d.len()),
            Err(_) => break,
        }
    }
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
    let body = serde_json::json!({
        "region": region,
        "method": method,
        "path": path,
        "received_bytes": body_len,
        "request_id": request_id,
    })
    .to_string()
        + "\n";
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-origin-region", region)
        .body(full(body))
        .unwrap_or_default()
}

/// Yields an iterator's items one poll at a time, so a large body really streams
/// (public for the test origins in `tests/support`).
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

/// `meridian demo`: starts a simulated origin at every origin address of the
/// config (loopback only), runs the gateway in front of them until Ctrl-C, and
/// prints sample requests once it is ready.
pub fn run(config_path: std::path::PathBuf) -> anyhow::Result<()> {
    use anyhow::Context;
    let loaded = crate::core::config::load(&config_path).map_err(|errs| {
        anyhow::anyhow!(errs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n"))
    })?;
    let mut origins = Vec::new();
    for (region, r) in &loaded.config.regions {
        for o in &r.origins {
            let addr: SocketAddr = o.address.parse().with_context(|| {
                format!("demo origins must be loopback ip:port, found {}", o.address)
            })?;
            anyhow::ensure!(
                addr.ip().is_loopback(),
                "demo origin {addr} is not on loopback"
            );
            origins.push((region.clone(), addr));
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("demo-origins".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let mut running = Vec::new();
                for (region, addr) in origins {
                    match SimOrigin::start(&region, addr).await {
                        Ok(o) => running.push(o),
                        Err(e) => {
                            let _ = tx.send(Err(format!("origin {region} on {addr}: {e}")));
                            return;
                        }
                    }
                }
                let _ = tx.send(Ok(()));
                // Serve until the process exits.
                std::future::pending::<()>().await;
                drop(running);
            });
        })?;
    rx.recv()
        .context("demo origins did not start")?
        .map_err(|e| anyhow::anyhow!(e))?;

    // Printed once the gateway is ready, with the addresses it bound (the config
    // may say port 0).
    let banner = move |bound: &crate::services::server::Bound| {
        print_banner(&loaded.config, bound);
        Ok(())
    };
    crate::services::server::run(config_path, Some(Box::new(banner)))
}

/// The demo's sample requests against the bound addresses.
fn print_banner(c: &crate::core::config::Config, bound: &crate::services::server::Bound) {
    let gw = bound.listeners[0];
    let admin = bound.admin;
    println!(
        "meridian demo: {} regions on loopback, gateway on http://{gw}",
        c.regions.len()
    );
    for (region, r) in &c.regions {
        let addrs: Vec<&str> = r.origins.iter().map(|o| o.address.as_str()).collect();
        println!("  {region:<16} origin {}", addrs.join(", "));
    }
    println!("admin on http://{admin}  (/metrics /readyz /admin/state)\n");
    println!("Try (the source address picks the country in the bundled test GeoIP database):");
    println!("  curl -si --interface 127.0.1.1 http://{gw}/hello      # US client -> us-east-1");
    println!(
        "  curl -si --interface 127.0.2.1 http://{gw}/hello      # German client -> eu-west-1"
    );
    println!("  curl -si --interface 127.0.3.1 http://{gw}/hello      # Japanese client -> ap-southeast-1");
    println!("  curl -si -X POST --interface 127.0.3.1 http://{gw}/api/orders   # a write -> write region");
    println!("  curl -s http://{admin}/admin/state");
    println!("Ctrl-C stops everything.");
}
