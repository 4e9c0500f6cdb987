//! `meridian demo`: simulated regional origins on loopback and the gateway in
//! front of them. Each origin answers with its region's name and what it
//! received, and serves deep-health JSON on `/health`. The end-to-end tests'
//! controllable origin (`tests/support/sim_origin.rs`) answers the same way,
//! through `answer_body`, `read_body` and `HEALTHY`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// What a healthy origin's `/health` says (deep health: status and lag).
pub const HEALTHY: &str = r#"{"status":"healthy","replication_lag_ms":0}"#;

/// An origin's answer to a request: its region and what it received, one
/// JSON line.
pub fn answer_body(
    region: &str,
    method: &str,
    path: &str,
    received_bytes: usize,
    request_id: &str,
) -> String {
    serde_json::json!({
        "region": region,
        "method": method,
        "path": path,
        "received_bytes": received_bytes,
        "request_id": request_id,
    })
    .to_string()
        + "\n"
}

/// Reads a request body to its end (or its first error): the bytes received.
pub async fn read_body(mut body: Incoming) -> usize {
    let mut len = 0;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => len += f.data_ref().map_or(0, |d| d.len()),
            Err(_) => break,
        }
    }
    len
}

/// Serves region `region`'s origin on `listener` until the process exits (also the
/// origins of the profile-guided build's training, src/bin/meridian-train.rs).
pub async fn serve_origin(listener: TcpListener, region: Arc<str>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let region = region.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let region = region.clone();
                async move { Ok::<_, Infallible>(answer(&region, req).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn answer(region: &str, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let json = Response::builder().header("content-type", "application/json");
    if path == "/health" {
        return json.body(Full::from(HEALTHY)).unwrap_or_default();
    }
    let method = req.method().to_string();
    let request_id = req
        .headers()
        .get("x-request-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let received = read_body(req.into_body()).await;
    let body = answer_body(region, &method, &path, received, &request_id);
    json.header("x-origin-region", region)
        .body(Full::from(body))
        .unwrap_or_default()
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
                for (region, addr) in origins {
                    match TcpListener::bind(addr).await {
                        Ok(listener) => {
                            tokio::spawn(serve_origin(listener, region.into()));
                        }
                        Err(e) => {
                            let _ = tx.send(Err(format!("origin {region} on {addr}: {e}")));
                            return;
                        }
                    }
                }
                let _ = tx.send(Ok(()));
                // Serve until the process exits.
                std::future::pending::<()>().await;
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
