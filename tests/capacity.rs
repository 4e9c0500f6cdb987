//! Capacity end to end: an origin that serves a fixed number of requests at
//! once (each held a fixed time, the rest queued, as a worker pool does) behind
//! the real gateway binary, offered three times what it can take. Its region
//! keeps it at its limit and spills the excess to the next region; where
//! residency allows no other region, the excess is shed quickly with 503 and
//! `Retry-After` while the origin stays busy (no congestion collapse).

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use support::*;

/// Serves `workers` requests at once, each for `hold`; more wait for a worker.
/// Health probes (`/health`) are answered at once, outside the workers.
struct CappedOrigin {
    addr: SocketAddr,
    /// Requests in the origin now (waiting or served), the most ever, and done.
    inside: Arc<AtomicU64>,
    most_inside: Arc<AtomicU64>,
    served: Arc<AtomicU64>,
    /// Its workers: forgetting permits makes it serve fewer at once.
    workers: Arc<tokio::sync::Semaphore>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CappedOrigin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl CappedOrigin {
    async fn start(name: &'static str, workers: usize, hold: Duration) -> CappedOrigin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pool = Arc::new(tokio::sync::Semaphore::new(workers));
        let inside = Arc::new(AtomicU64::new(0));
        let most_inside = Arc::new(AtomicU64::new(0));
        let served = Arc::new(AtomicU64::new(0));
        let (i, m, s) = (inside.clone(), most_inside.clone(), served.clone());
        let workers = pool.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (pool, i, m, s) = (pool.clone(), i.clone(), m.clone(), s.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                        let (pool, i, m, s) = (pool.clone(), i.clone(), m.clone(), s.clone());
                        async move {
                            if req.uri().path() != "/health" {
                                let now = i.fetch_add(1, Relaxed) + 1;
                                m.fetch_max(now, Relaxed);
                                let _worker = pool.acquire().await.unwrap();
                                tokio::time::sleep(hold).await;
                                i.fetch_sub(1, Relaxed);
                                s.fetch_add(1, Relaxed);
                            }
                            let mut resp = http::Response::new(Full::new(Bytes::from(name)));
                            resp.headers_mut()
                                .insert("x-served-by", http::HeaderValue::from_static(name));
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        CappedOrigin {
            addr,
            inside,
            most_inside,
            served,
            workers,
            task,
        }
    }
}

/// What `clients` closed-loop clients got over `for_how_long`.
#[derive(Default)]
struct Outcome {
    ok: u64,
    ok_by: std::collections::BTreeMap<String, u64>,
    spilled: u64,
    shed: u64,
    /// The slowest shed answer.
    /// How long each shed answer took.
    shed_took: Vec<Duration>,
    other: Vec<String>,
}

/// Everything but each shed answer's time, which would fill a page.
impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outcome")
            .field("ok", &self.ok)
            .field("ok_by", &self.ok_by)
            .field("spilled", &self.spilled)
            .field("shed", &self.shed)
            .field("other", &self.other)
            .finish()
    }
}

async fn offer(gw: &Gateway, xff: &str, clients: usize, for_how_long: Duration) -> Outcome {
    offer_at(gw, "/page", xff, clients, for_how_long).await
}

async fn offer_at(
    gw: &Gateway,
    path: &str,
    xff: &str,
    clients: usize,
    for_how_long: Duration,
) -> Outcome {
    let url = gw.url(path);
    let end = Instant::now() + for_how_long;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (url, xff) = (url.clone(), xff.to_string());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut out = Outcome::default();
                while Instant::now() < end {
                    let start = Instant::now();
                    let r = client
                        .get(&url)
                        .header("x-forwarded-for", &xff)
                        .send()
                        .await
                        .unwrap();
                    let took = start.elapsed();
                    let header = |n: &str| {
                        r.headers()
                            .get(n)
                            .map(|v| v.to_str().unwrap().to_string())
                            .unwrap_or_default()
                    };
                    match r.status().as_u16() {
                        200 => {
                            out.ok += 1;
                            if header("x-meridian-decision").contains("spillover") {
                                out.spilled += 1;
                            }
                            *out.ok_by.entry(header("x-served-by")).or_default() += 1;
                        }
                        503 if header("retry-after") == "1" => {
                            let body: serde_json::Value = r.json().await.unwrap();
                            assert_eq!(body["error"], "overloaded", "{body}");
                            out.shed += 1;
                            out.shed_took.push(took);
                        }
                        s => out.other.push(format!("{s} {}", r.text().await.unwrap())),
                    }
                }
                out
            })
        })
        .collect();
    let mut all = Outcome::default();
    for t in tasks {
        let o = t.await.unwrap();
        all.ok += o.ok;
        all.spilled += o.spilled;
        all.shed += o.shed;
        all.shed_took.extend(o.shed_took);
        all.other.extend(o.other);
        for (k, v) in o.ok_by {
            *all.ok_by.entry(k).or_default() += v;
        }
    }
    all
}

/// Two regions, eu-west-1 with the capped origin (limits `capacity`) and
/// us-east-1 with room to spare; German clients may use only eu-west-1 when
/// `eu_only`, else both (eu first).
fn config(eu: SocketAddr, us: SocketAddr, capacity: &str, eu_only: bool) -> String {
    let residency = if eu_only {
        "residency:\n    - { name: eu, continents: [EU], regions: [eu-west-1], when_unavailable: reject }"
    } else {
        "residency: []"
    };
    format!(
        r#"
local_region: eu-west-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
client_ip: {{ trusted_proxies: [127.0.0.1/32] }}
geoip: {{ database: "{{{{REPO}}}}/geoip/geo-whois-asn-country.mmdb" }}
regions:
  eu-west-1: {{ origins: [ {{ address: "{eu}", {capacity} }} ] }}
  us-east-1: {{ origins: [ {{ address: "{us}" }} ] }}
health: {{ interval: 200ms, timeout: 150ms, healthy_threshold: 1, unhealthy_threshold: 1 }}
routing:
  steering: geo
  geo: {{ continents: {{ EU: eu-west-1, NA: us-east-1 }}, default: us-east-1 }}
  {residency}
overload: {{ queue_timeout: 50ms }}
routes:
  - {{ match: {{ path_prefix: /bulk }}, priority: sheddable }}
debug_headers: true
"#
    )
}

const GERMANY: &str = "194.25.2.129";

/// How long the EU origin of [`four_at_a_time`] holds each request.
const HOLD: Duration = Duration::from_millis(100);

/// An EU origin that serves 4 at a time for [`HOLD`] each with `max_inflight: 4`,
/// a roomy US one, and the gateway in front; German clients may use only the EU
/// when `eu_only`.
async fn four_at_a_time(eu_only: bool) -> (CappedOrigin, CappedOrigin, Gateway) {
    need_real_db();
    let eu = CappedOrigin::start("eu", 4, HOLD).await;
    let us = CappedOrigin::start("us", 64, HOLD).await;
    let gw = Gateway::start(&config(eu.addr, us.addr, "max_inflight: 4", eu_only)).await;
    (eu, us, gw)
}

fn need_real_db() {
    let path = repo("geoip/geo-whois-asn-country.mmdb");
    assert!(
        path.exists(),
        "{} is missing: run `geoip/fetch --city` (scripts/test does; tests download nothing)",
        path.display()
    );
}

#[tokio::test]
async fn a_full_region_spills_the_excess_to_the_next_and_nobody_sees_an_error() {
    let (eu, _us, gw) = four_at_a_time(false).await;

    // Three times what the EU origin takes at once, for two seconds.
    let got = offer(&gw, GERMANY, 12, Duration::from_secs(2)).await;
    eprintln!("offered 3x: {got:?}");
    assert!(
        got.other.is_empty(),
        "errors: {:?}",
        &got.other[..got.other.len().min(5)]
    );
    assert_eq!(got.shed, 0, "{got:?}");
    assert!(
        eu.most_inside.load(Relaxed) <= 4,
        "the EU origin had {} requests at once, over its limit of 4",
        eu.most_inside.load(Relaxed)
    );
    // The EU origin was kept busy (at most 4 / 100 ms for 2 s = 80; 70 % of that
    // leaves room for a loaded test machine), the rest spilled.
    let (eu_ok, us_ok) = (got.ok_by["eu"], got.ok_by.get("us").copied().unwrap_or(0));
    assert!(eu_ok >= 56, "the EU origin served only {eu_ok}: {got:?}");
    assert!(us_ok >= eu_ok, "the excess did not spill: {got:?}");
    assert_eq!(
        got.spilled, us_ok,
        "every US answer says spillover: {got:?}"
    );
    let m = gw.metrics().await;
    let spilled = metric_sum(
        &m,
        "meridian_spillover_total",
        &[("from", "eu-west-1"), ("to", "us-east-1")],
    );
    assert_eq!(spilled as u64, us_ok, "{m}");
    let decisions = label_values(&m, "meridian_requests_total", "decision");
    assert!(decisions.contains("spillover"), "{decisions:?}");
    let limit = metric_sum(
        &m,
        "meridian_origin_inflight_limit",
        &[("region", "eu-west-1")],
    );
    assert_eq!(limit, 4.0, "{m}");
    // Never spilled the other way, and counted from start-up at 0.
    let back = metric_sum(
        &m,
        "meridian_spillover_total",
        &[("from", "us-east-1"), ("to", "eu-west-1")],
    );
    assert_eq!(back, 0.0, "{m}");
    assert!(
        m.contains("meridian_spillover_total{from=\"us-east-1\",to=\"eu-west-1\"} 0"),
        "{m}"
    );

    // Load back within capacity: everything stays in the EU, no spill.
    let before = eu.served.load(Relaxed);
    let calm = offer(&gw, GERMANY, 3, Duration::from_millis(600)).await;
    assert_eq!(calm.spilled, 0, "{calm:?}");
    assert_eq!(calm.ok_by.get("us"), None, "{calm:?}");
    assert_eq!(eu.served.load(Relaxed) - before, calm.ok);
    let state = gw.state().await;
    let origin = &state["regions"]["eu-west-1"]["origins"][0];
    assert_eq!(origin["capacity"]["max_inflight"], 4, "{origin}");
    assert_eq!(eu.inside.load(Relaxed), 0);
    // The regions' last minute says where the excess went, as the counter does.
    let region = |name: &str| state["regions"][name]["capacity"].clone();
    let (eu_c, us_c) = (region("eu-west-1"), region("us-east-1"));
    assert_eq!(eu_c["max_inflight"], 4, "{eu_c}");
    assert_eq!(eu_c["in_flight"], 0, "{eu_c}");
    assert_eq!(eu_c["last_minute"]["spilled_out"], us_ok, "{eu_c}");
    assert_eq!(us_c["last_minute"]["spilled_in"], us_ok, "{us_c}");
    assert_eq!(
        us_c["max_inflight"],
        serde_json::Value::Null,
        "no limit there: {us_c}"
    );
    let per_s = eu_c["last_minute"]["spilled_out_rps"].as_f64().unwrap();
    assert!(per_s > 0.0, "{eu_c}");
}

#[tokio::test]
async fn with_nowhere_else_allowed_the_excess_is_shed_fast_and_the_origin_stays_busy() {
    let (eu, us, gw) = four_at_a_time(true).await;

    let (run, hold) = (Duration::from_secs(2), HOLD);
    let got = offer(&gw, GERMANY, 12, run).await;
    eprintln!("offered 3x, nowhere to spill: {got:?}");
    assert!(
        got.other.is_empty(),
        "errors: {:?}",
        &got.other[..got.other.len().min(5)]
    );
    // Residency holds while the EU is full: nothing reached the US.
    assert_eq!(got.ok_by.get("us"), None, "{got:?}");
    assert_eq!(us.served.load(Relaxed), 0);
    assert!(
        eu.most_inside.load(Relaxed) <= 4,
        "{}",
        eu.most_inside.load(Relaxed)
    );
    assert!(got.shed > 0, "{got:?}");
    // Goodput: at least 90 % of what the origin can do in the run (4 per 100 ms).
    let capacity = 4.0 * run.as_secs_f64() / hold.as_secs_f64();
    assert!(
        got.ok as f64 >= 0.9 * capacity,
        "goodput {} of a possible {capacity}: {got:?}",
        got.ok
    );
    // A shed request waited its queue timeout (50 ms), not an origin's time
    // (the median: a loaded test machine delays a few answers more).
    let mut took = got.shed_took.clone();
    took.sort();
    let median = took[took.len() / 2];
    eprintln!(
        "shed answers: median {median:?}, slowest {:?}",
        took[took.len() - 1]
    );
    assert!(
        median < Duration::from_millis(80),
        "median shed answer took {median:?}"
    );
    let m = gw.metrics().await;
    let shed = metric_sum(
        &m,
        "meridian_requests_shed_total",
        &[("reason", "queue_timeout")],
    );
    assert_eq!(shed as u64, got.shed, "{m}");
    let events = reqwest::get(gw.admin_url("/admin/events?kind=overload"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(events.contains("shedding"), "{events}");
    // Counted against the region the requests were for.
    let state = gw.state().await;
    let eu_c = &state["regions"]["eu-west-1"]["capacity"];
    assert_eq!(eu_c["last_minute"]["shed"], got.shed, "{eu_c}");
    assert_eq!(eu_c["last_minute"]["spilled_out"], 0, "{eu_c}");
}

#[tokio::test]
async fn an_adaptive_limit_finds_the_origins_concurrency_and_follows_it_down() {
    need_real_db();
    // 50 ms a request: long beside the scheduling noise of a busy test machine
    // (the controller steers by latency, and the tests beside this one load the cores).
    let eu = CappedOrigin::start("eu", 8, Duration::from_millis(50)).await;
    let us = CappedOrigin::start("us", 256, Duration::from_millis(50)).await;
    let gw = Gateway::start(&config(eu.addr, us.addr, "max_inflight: adaptive", false)).await;
    let limit = |state: serde_json::Value| {
        let c = &state["regions"]["eu-west-1"]["origins"][0]["capacity"];
        assert_eq!(c["adaptive"], true, "{c}");
        c["max_inflight"].as_u64().unwrap()
    };
    assert_eq!(
        limit(gw.state().await),
        5,
        "it starts by measuring, at a quarter of 20"
    );

    // Four times what the origin serves at once: the limit comes down to near 8
    // (the square root of the limit is the queue it allows). The limit moves
    // window by window, so what counts is its median over the phase's last second.
    let phase = |workers: u32| {
        let gw = &gw;
        async move {
            let load = offer(gw, GERMANY, 32, Duration::from_secs(3));
            let watch = async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let mut seen = Vec::new();
                for _ in 0..10 {
                    seen.push(limit(gw.state().await));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                seen.sort();
                seen
            };
            let (got, seen) = tokio::join!(load, watch);
            eprintln!("adaptive, {workers} workers: limits {seen:?}, {got:?}");
            assert!(got.other.is_empty() && got.shed == 0, "{got:?}");
            seen[seen.len() / 2]
        }
    };
    let first = phase(8).await;
    assert!(
        (6..=16).contains(&first),
        "median limit {first} for an origin of 8"
    );

    // The origin now serves half as many at once: the limit follows it down.
    eu.workers.forget_permits(4);
    let second = phase(4).await;
    assert!(second < first, "{second} after {first}");
    assert!(
        (3..=10).contains(&second),
        "median limit {second} for an origin of 4"
    );
    let unloaded = gw.state().await["regions"]["eu-west-1"]["origins"][0]["capacity"]
        ["unloaded_latency_ms"]
        .as_f64()
        .unwrap();
    assert!(
        (45.0..100.0).contains(&unloaded),
        "unloaded latency {unloaded} ms"
    );
}

#[tokio::test]
async fn a_rate_limited_origin_gets_its_rate_and_the_rest_spills() {
    need_real_db();
    let eu = CappedOrigin::start("eu", 64, Duration::from_millis(1)).await;
    let us = CappedOrigin::start("us", 64, Duration::from_millis(1)).await;
    let gw = Gateway::start(&config(eu.addr, us.addr, "max_rps: 50", false)).await;
    let run = Duration::from_secs(2);
    let got = offer(&gw, GERMANY, 8, run).await;
    eprintln!("max_rps 50: {got:?}");
    assert!(got.other.is_empty() && got.shed == 0, "{got:?}");
    // 50 a second for two seconds, plus the burst of a tenth of a second.
    let eu_ok = got.ok_by["eu"];
    assert!(
        (85..=110).contains(&eu_ok),
        "the EU origin served {eu_ok}: {got:?}"
    );
    assert!(got.ok_by["us"] > eu_ok, "{got:?}");
    assert_eq!(got.spilled, got.ok_by["us"], "{got:?}");
    let state = gw.state().await;
    assert_eq!(
        state["regions"]["eu-west-1"]["origins"][0]["capacity"]["max_rps"],
        50
    );
}

#[tokio::test]
async fn sheddable_requests_are_shed_first() {
    let (eu, us, gw) = four_at_a_time(true).await;
    let run = Duration::from_secs(2);
    let (normal, bulk) = tokio::join!(
        offer_at(&gw, "/page", GERMANY, 4, run),
        offer_at(&gw, "/bulk", GERMANY, 4, run),
    );
    eprintln!("normal {normal:?}\nsheddable {bulk:?}");
    assert!(
        normal.other.is_empty() && bulk.other.is_empty(),
        "{normal:?} {bulk:?}"
    );
    // Sheddable requests stop at 3 of the 4 places and never wait: the normal
    // ones get most of the origin.
    assert!(
        normal.ok > 2 * bulk.ok,
        "normal {} vs sheddable {}",
        normal.ok,
        bulk.ok
    );
    assert!(bulk.shed > normal.shed, "{normal:?} {bulk:?}");
    let m = gw.metrics().await;
    let shed = metric_sum(
        &m,
        "meridian_requests_shed_total",
        &[("reason", "sheddable")],
    );
    assert_eq!(shed as u64, bulk.shed, "{m}");
    assert!(eu.most_inside.load(Relaxed) <= 4);
    assert_eq!(us.served.load(Relaxed), 0, "residency: nothing left the EU");
}
