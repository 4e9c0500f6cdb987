//! The admin listener (hyper, its own port): health, readiness, metrics, state, the
//! event journal, the series behind the status page, and the page itself.

mod state;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use subtle::ConstantTimeEq;

use crate::services::reload::Reloader;
use crate::services::shared::Shared;
use crate::telemetry::series::Series;

type Body = Full<Bytes>;

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Full::new(body.into()))
        .unwrap_or_default()
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            serde_json::to_vec(value).unwrap_or_default(),
        )))
        .unwrap_or_default()
}

/// The status page: one self-contained file (no external scripts, styles or fonts)
/// that draws itself from the endpoints below.
const STATUS_PAGE: &str = include_str!("status_page.html");

/// What the admin server answers from: the gateway's shared state, the reload
/// service (its writes and its status), and the status page's chart data, which
/// only this server samples and serves.
pub struct Admin {
    pub shared: Arc<Shared>,
    pub reloader: Arc<Reloader>,
    pub series: Series,
}

/// Answers one admin request from `peer`.
pub async fn handle(admin: &Admin, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let (shared, series) = (&admin.shared, &admin.series);
    match (req.method(), req.uri().path()) {
        (&Method::GET, "/" | "/ui") => Response::builder()
            .header("content-type", "text/html; charset=utf-8")
            .header("cache-control", "no-store")
            // The page may talk to this listener only: a stray reference to anything
            // else is refused by the browser too.
            .header(
                "content-security-policy",
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'",
            )
            .body(Full::new(Bytes::from_static(STATUS_PAGE.as_bytes())))
            .unwrap_or_default(),
        (&Method::GET, "/admin/events") => {
            match crate::telemetry::events::parse_query(req.uri().query()) {
                Ok(q) => {
                    let events =
                        shared
                            .events
                            .query(q.since, q.kind, q.limit.unwrap_or(usize::MAX));
                    json(StatusCode::OK, &serde_json::json!({ "events": events }))
                }
                Err(e) => error(StatusCode::BAD_REQUEST, &e),
            }
        }
        (&Method::GET, "/admin/series") => json(StatusCode::OK, &series.doc()),
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => {
            if shared.ready() {
                text(StatusCode::OK, "ready\n")
            } else if shared.shutting_down() {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "starting\n")
            }
        }
        (&Method::GET, "/metrics") => Response::builder()
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .body(Full::new(Bytes::from(shared.metrics.render())))
            .unwrap_or_default(),
        (&Method::GET, "/admin/state") => json(
            StatusCode::OK,
            &state::document(shared, admin.reloader.last_error()),
        ),
        (&Method::POST, path) if path == "/admin/reload" || path.starts_with("/admin/regions/") => {
            if let Err(denied) = authorize(shared, &req) {
                return denied;
            }
            write_endpoint(admin, path, peer).await
        }
        (
            _,
            "/" | "/ui" | "/healthz" | "/readyz" | "/metrics" | "/admin/state" | "/admin/reload"
            | "/admin/events" | "/admin/series",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Write endpoints need `Authorization: Bearer <token>` with the token in
/// `admin.token_file`: 401 without a matching one, 403 when none is configured.
#[allow(clippy::result_large_err)]
fn authorize(shared: &Shared, req: &Request<Incoming>) -> Result<(), Response<Body>> {
    let snap = shared.snapshot.load();
    let Some(path) = &snap.admin.token_file else {
        return Err(error(
            StatusCode::FORBIDDEN,
            "write endpoints are disabled: no admin.token_file",
        ));
    };
    let expected = match std::fs::read_to_string(path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => {
            tracing::error!("admin token file {} unreadable or empty", path.display());
            return Err(error(
                StatusCode::FORBIDDEN,
                "admin token file unreadable or empty",
            ));
        }
    };
    let given = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    // Constant-time comparison: the token is a secret (its length is not).
    let ok = given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(expected.as_bytes())));
    if ok {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        ))
    }
}

fn error(status: StatusCode, detail: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": status.canonical_reason().unwrap_or(""), "detail": detail }),
    )
}

async fn write_endpoint(admin: &Admin, path: &str, peer: SocketAddr) -> Response<Body> {
    let shared = &admin.shared;
    if path == "/admin/reload" {
        // Reading and compiling a config is blocking work.
        let r = admin.reloader.clone();
        let outcome = match tokio::task::spawn_blocking(move || {
            r.reload(&format!("admin request from {peer}"))
        })
        .await
        {
            Ok(o) => o,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        };
        return match outcome {
            crate::services::reload::Outcome::Swapped { sha256 } => json(
                StatusCode::OK,
                &serde_json::json!({ "result": "reloaded", "sha256": sha256 }),
            ),
            crate::services::reload::Outcome::Rejected(errors) => json(
                StatusCode::UNPROCESSABLE_ENTITY,
                &serde_json::json!({ "result": "rejected", "errors": errors }),
            ),
        };
    }
    let rest = path.trim_start_matches("/admin/regions/");
    let (region, action) = match rest.rsplit_once('/') {
        Some((r, a @ ("drain" | "undrain"))) => (r, a),
        _ => return text(StatusCode::NOT_FOUND, "not found\n"),
    };
    let snap = shared.snapshot.load();
    let Some(r) = snap.region_idx(region) else {
        return error(StatusCode::NOT_FOUND, &format!("unknown region `{region}`"));
    };
    let drained = action == "drain";
    let was = snap.regions[r]
        .state
        .drained
        .swap(drained, std::sync::atomic::Ordering::Relaxed);
    if was != drained {
        let word = |d: bool| if d { "drained" } else { "serving" };
        shared.events.record(
            crate::telemetry::events::Kind::Drain,
            region,
            Some(word(was)),
            Some(word(drained)),
            format!("{action} by admin request from {peer}"),
        );
    }
    json(
        StatusCode::OK,
        &serde_json::json!({ "region": region, "drained": drained }),
    )
}

/// Serves the admin API on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    reloader: Arc<Reloader>,
) {
    let admin = Arc::new(Admin {
        shared,
        reloader,
        series: Series::default(),
    });
    // The status page's chart is sampled here: the admin server lives as long as
    // the process, and nothing else needs the series.
    let sampler = admin.clone();
    tokio::spawn(crate::telemetry::series::every_step(move || {
        sampler
            .series
            .sample(&sampler.shared.metrics, crate::util::clock::now_ms())
    }));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("admin accept: {e}");
                continue;
            }
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, Infallible>(handle(&admin, req, peer).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
