//! A capped origin for `loadtest/overload`: serves `WORKERS` requests at once, holds
//! each for `HOLD_MS`, and queues the rest in arrival order, as a worker pool does
//! (the `CappedOrigin` of tests/capacity.rs as a process of its own, so that nginx and
//! HAProxy can be put in front of the same origins as meridian). Its capacity is
//! WORKERS / HOLD_MS requests per millisecond, whatever the gateway in front does.
//!
//! - Every answer carries `x-served-by: NAME` (and NAME as its body), so the load
//!   client can tell which region served whatever the gateway adds or drops.
//! - `/health` is answered at once, outside the workers: a busy origin is not a dead
//!   one, and probes must not take a worker from the traffic being measured.
//! - `/stats` answers `{"served":S,"most_inside":M,"hold_ms":H}` and starts a new
//!   measurement: M is the most requests that were inside at once (waiting or
//!   served) since the last `/stats`, the check that a gateway kept its limit; H is
//!   the mean time a worker was held per request since then, the check that the
//!   origin itself kept its pace (a starved core makes the sleeps overrun).
//!
//! One thread (a current-thread runtime): a few thousand requests per second of
//! sleeping is far from what one core does, and it leaves the other core alone.
//!
//!   cargo build --release --example capped_origin
//!   capped_origin NAME LISTEN WORKERS HOLD_MS
//!   capped_origin a 127.0.0.1:8081 16 20 &
//!   curl -si http://127.0.0.1:8081/        # after 20 ms: x-served-by: a
//!   curl -s http://127.0.0.1:8081/stats    # {"served":1,"most_inside":1,"hold_ms":21.1}

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;

/// The origin's own count of its traffic, shared by every connection.
struct Origin {
    name: HeaderValue,
    hold: Duration,
    workers: Semaphore,
    /// Requests inside now (waiting for a worker or being served).
    inside: AtomicU64,
    /// The most inside at once since the last `/stats`.
    most_inside: AtomicU64,
    served: AtomicU64,
    /// Requests served and microseconds their workers were held, since the last `/stats`.
    held_count: AtomicU64,
    held_us: AtomicU64,
}

impl Origin {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        match req.uri().path() {
            "/health" => json(r#"{"status":"healthy","replication_lag_ms":0}"#.to_string()),
            "/stats" => {
                let (count, us) = (
                    self.held_count.swap(0, Relaxed),
                    self.held_us.swap(0, Relaxed),
                );
                json(format!(
                    r#"{{"served":{},"most_inside":{},"hold_ms":{:.3}}}"#,
                    self.served.load(Relaxed),
                    self.most_inside.swap(self.inside.load(Relaxed), Relaxed),
                    us as f64 / count.max(1) as f64 / 1e3
                ))
            }
            _ => {
                let now = self.inside.fetch_add(1, Relaxed) + 1;
                self.most_inside.fetch_max(now, Relaxed);
                {
                    // The semaphore is never closed, so acquire cannot fail.
                    let _worker = self.workers.acquire().await.expect("semaphore open");
                    let start = std::time::Instant::now();
                    tokio::time::sleep(self.hold).await;
                    self.held_us
                        .fetch_add(start.elapsed().as_micros() as u64, Relaxed);
                    self.held_count.fetch_add(1, Relaxed);
                }
                self.inside.fetch_sub(1, Relaxed);
                self.served.fetch_add(1, Relaxed);
                let mut resp = Response::new(Full::new(Bytes::from(
                    self.name.to_str().unwrap_or("?").to_string(),
                )));
                resp.headers_mut().insert("x-served-by", self.name.clone());
                resp
            }
        }
    }
}

fn json(body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn usage() -> ! {
    eprintln!("usage: capped_origin NAME LISTEN WORKERS HOLD_MS");
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [name, listen, workers, hold_ms] = &args[..] else {
        usage()
    };
    let (Ok(name), Ok(listen), Ok(workers), Ok(hold_ms)) = (
        HeaderValue::from_str(name),
        listen.parse::<SocketAddr>(),
        workers.parse::<usize>(),
        hold_ms.parse::<u64>(),
    ) else {
        usage()
    };
    let origin = Arc::new(Origin {
        name,
        hold: Duration::from_millis(hold_ms),
        workers: Semaphore::new(workers),
        inside: AtomicU64::new(0),
        most_inside: AtomicU64::new(0),
        served: AtomicU64::new(0),
        held_count: AtomicU64::new(0),
        held_us: AtomicU64::new(0),
    });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    loop {
        // An accept error (out of descriptors, a connection reset before accept) is
        // that connection's problem, not the origin's: keep accepting.
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let origin = origin.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let origin = origin.clone();
                async move { Ok::<_, Infallible>(origin.answer(req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
