//! The load client of `loadtest/overload`: CLIENTS closed-loop clients, each on a
//! keep-alive HTTP/1 connection of its own, send `GET` to URL as fast as answers come
//! back, for WARMUP + SECONDS. Unlike wrk it keeps every answer of the measured
//! SECONDS (status, the origin that served it, its latency), so the figures of an
//! overloaded gateway can be taken apart: goodput is the 200s alone, and the
//! latency percentiles are those of the 200s (the admitted requests), not diluted
//! by fast refusals.
//!
//! It prints one JSON object: `seconds`, `answers`, `ok`, `status` (count per
//! status; 0 is a transport error: refused, reset, closed without an answer),
//! `ok_by` (count of 200s per `x-served-by`, "-" when absent), `ok_ms` and
//! `refused_ms` (p50, p90, p99 and max latency, in ms, of the 200s and of the
//! rest). A latency runs from the request's start to its body's end, the
//! connection's set-up included when one had to be opened again (a gateway may
//! close after refusing).
//!
//! After an answer that is not a 200 a client waits BACKOFF_MS (default 0) before its
//! next request, as a client that backs off before retrying does. Without it, a
//! gateway that refuses at once is offered refusals as fast as this client can
//! turn them round, and the run measures the client's core instead of the gateway.
//!
//! One thread, so the client's cost is one core at most and can be pinned.
//!
//!   cargo build --release --example overload_client
//!   overload_client URL CLIENTS SECONDS [WARMUP_SECONDS [BACKOFF_MS]]
//!   overload_client http://127.0.0.1:8080/page 64 10 1 10

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::HOST;
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One answer (or failure) of the measured window.
struct Record {
    /// The HTTP status, or 0 when no answer came (the connection failed).
    status: u16,
    served_by: Option<String>,
    latency: Duration,
}

/// Where the clients send: the URL taken apart once.
#[derive(Clone)]
struct Target {
    addr: String,
    authority: String,
    path: String,
}

async fn connect(target: &Target) -> Option<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(&target.addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    Some(sender)
}

/// One request on `conn` (opened first if there is none); the connection is kept
/// for the next request unless it failed or the gateway is closing it.
async fn one(target: &Target, conn: &mut Option<SendRequest<Empty<Bytes>>>) -> Record {
    let start = Instant::now();
    let failed = |start: Instant| Record {
        status: 0,
        served_by: None,
        latency: start.elapsed(),
    };
    if conn.as_ref().is_none_or(|c| c.is_closed()) {
        *conn = connect(target).await;
    }
    let Some(sender) = conn.as_mut() else {
        return failed(start);
    };
    if sender.ready().await.is_err() {
        *conn = None;
        return failed(start);
    }
    let req = Request::get(target.path.as_str())
        .header(HOST, target.authority.as_str())
        .body(Empty::new())
        .expect("a GET with a valid path and host");
    let resp = match sender.send_request(req).await {
        Ok(resp) => resp,
        Err(_) => {
            *conn = None;
            return failed(start);
        }
    };
    let status = resp.status().as_u16();
    let served_by = resp
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if resp.into_body().collect().await.is_err() {
        *conn = None;
        return failed(start);
    }
    Record {
        status,
        served_by,
        latency: start.elapsed(),
    }
}

/// A closed-loop client: keeps what ended inside [measure_from, until).
async fn client(
    target: Target,
    measure_from: Instant,
    until: Instant,
    backoff: Duration,
) -> Vec<Record> {
    let mut conn = None;
    let mut kept = Vec::new();
    while Instant::now() < until {
        let r = one(&target, &mut conn).await;
        let refused = r.status != 200;
        // A refused connection comes back at once: never spin on it.
        let pause = if r.status == 0 {
            backoff.max(Duration::from_millis(1))
        } else {
            backoff
        };
        let now = Instant::now();
        if now >= measure_from && now < until {
            kept.push(r);
        }
        if refused && !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    kept
}

/// p50, p90, p99 and max in ms of `lat` (sorted in place), nearest rank.
fn percentiles(lat: &mut [Duration]) -> serde_json::Value {
    if lat.is_empty() {
        return serde_json::Value::Null;
    }
    lat.sort_unstable();
    let at = |q: f64| {
        let rank = ((q * lat.len() as f64).ceil() as usize).clamp(1, lat.len());
        lat[rank - 1].as_secs_f64() * 1e3
    };
    serde_json::json!({ "p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": at(1.0) })
}

fn usage() -> ! {
    eprintln!("usage: overload_client URL CLIENTS SECONDS [WARMUP_SECONDS [BACKOFF_MS]]");
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 || args.len() > 5 {
        usage()
    }
    let (Ok(uri), Ok(clients), Ok(seconds), Ok(warmup), Ok(backoff_ms)) = (
        args[0].parse::<Uri>(),
        args[1].parse::<usize>(),
        args[2].parse::<f64>(),
        args.get(3).map_or(Ok(1.0), |w| w.parse::<f64>()),
        args.get(4).map_or(Ok(0), |b| b.parse::<u64>()),
    ) else {
        usage()
    };
    let Some(authority) = uri.authority() else {
        usage()
    };
    let target = Target {
        addr: format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        ),
        authority: authority.to_string(),
        path: uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.to_string()),
    };

    let measure_from = Instant::now() + Duration::from_secs_f64(warmup);
    let until = measure_from + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let backoff = Duration::from_millis(backoff_ms);
            tokio::spawn(client(target.clone(), measure_from, until, backoff))
        })
        .collect();
    let mut records = Vec::new();
    for t in tasks {
        records.extend(t.await.expect("a client task panicked"));
    }

    let mut status: BTreeMap<u16, u64> = BTreeMap::new();
    let mut ok_by: BTreeMap<String, u64> = BTreeMap::new();
    let (mut ok_lat, mut refused_lat) = (Vec::new(), Vec::new());
    for r in &records {
        *status.entry(r.status).or_default() += 1;
        if r.status == 200 {
            let by = r.served_by.clone().unwrap_or_else(|| "-".to_string());
            *ok_by.entry(by).or_default() += 1;
            ok_lat.push(r.latency);
        } else {
            refused_lat.push(r.latency);
        }
    }
    let out = serde_json::json!({
        "seconds": seconds,
        "clients": clients,
        "answers": records.len(),
        "ok": ok_lat.len(),
        "status": status,
        "ok_by": ok_by,
        "ok_ms": percentiles(&mut ok_lat),
        "refused_ms": percentiles(&mut refused_lat),
    });
    println!("{out}");
}
