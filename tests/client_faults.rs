//! The edge is the last word on HTTP (issue 28): a client's fault is the
//! client's (a 4xx, counted as rejected, never retried, never held against an
//! origin or a region), and what meridian forwards is judged at a raw origin
//! that records the exact bytes it received.

mod support;

use std::time::Duration;

use meridian::telemetry::labels::Reject;
use support::raw::RawOrigin;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway in front of one raw recording origin.
async fn raw_gateway(origin_extra: &str) -> (Gateway, RawOrigin) {
    let o = RawOrigin::start().await;
    let entry = format!(r#"{{ address: "{}"{origin_extra} }}"#, o.addr);
    let gw = Gateway::start(&one_origin_config(
        &entry,
        "health: { interval: 5s, timeout: 1s }\ntimeouts: { request_header: 1s }",
    ))
    .await;
    (gw, o)
}

/// Sends `raw` on a fresh connection; what came back before the gateway
/// closed (or 3 s passed).
async fn exchange(gw: &Gateway, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let _ = s.write_all(raw).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn status(resp: &str) -> Option<u16> {
    resp.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

fn rejected(metrics: &str, reason: &str) -> f64 {
    metric_sum(
        metrics,
        "meridian_requests_rejected_total",
        &[("reason", reason)],
    )
}

/// Chunked bodies whose framing is the client's mistake.
fn broken_bodies() -> Vec<(&'static str, Vec<u8>)> {
    let head = "POST /upload HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n";
    let with = |body: &str| format!("{head}{body}").into_bytes();
    vec![
        ("size with a plus sign", with("+5\r\nhello\r\n0\r\n\r\n")),
        ("size with 0x", with("0x5\r\nhello\r\n0\r\n\r\n")),
        ("negative size", with("-5\r\nhello\r\n0\r\n\r\n")),
        (
            "overflowing size",
            with("fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        ),
        ("bare LF after the size", with("5\nhello\r\n0\r\n\r\n")),
        (
            "data longer than its chunk",
            with("5\r\nhelloEXTRA\r\n0\r\n\r\n"),
        ),
        (
            "a 40 KB chunk extension",
            with(&format!(
                "5;x={}\r\nhello\r\n0\r\n\r\n",
                "a".repeat(40 * 1024)
            )),
        ),
    ]
}

#[tokio::test]
async fn a_broken_chunked_body_is_a_400_and_no_origin_reads_a_whole_request() {
    let (gw, o) = raw_gateway("").await;
    let cases = broken_bodies();
    for (name, raw) in &cases {
        let resp = exchange(&gw, raw).await;
        assert_eq!(status(&resp), Some(400), "{name}: {resp}");
        assert!(
            !resp.contains("hyper") && !resp.contains("Body stream"),
            "{name}: the answer repeats an internal error: {resp}"
        );
    }
    // The origin may have seen a head and the valid part of a body, never the
    // end of a chunked body: for it the request never happened.
    for req in o.wait_requests(0).await {
        assert!(
            !req.contains("\r\n0\r\n\r\n"),
            "a whole request arrived: {req:?}"
        );
        assert!(
            !req.contains("EXTRA"),
            "the chunk's excess arrived: {req:?}"
        );
    }
    let m = gw.metrics().await;
    assert_eq!(rejected(&m, "bad_body"), cases.len() as f64);
    let known = &Reject::ALL.map(Reject::as_str);
    assert_only_known_labels(&m, "meridian_requests_rejected_total", "reason", known);
    let status_4xx = metric_sum(&m, "meridian_requests_total", &[("status_class", "4xx")]);
    assert!(status_4xx >= cases.len() as f64, "4xx: {status_4xx}");
}

#[tokio::test]
async fn client_garbage_never_counts_against_origins_or_regions() {
    let (a, b) = (origin("us-east-1").await, origin("us-east-1").await);
    let yaml = format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ origins: [ {{ address: "{}" }}, {{ address: "{}" }} ] }}
health: {{ interval: 1s, timeout: 500ms }}
outlier_detection: {{ consecutive_failures: 3, base_ejection: 30s, max_ejection: 60s, max_ejected_percent: 50 }}
routing: {{ retries: {{ attempts: 3 }} }}
"#,
        a.addr, b.addr
    );
    let gw = Gateway::start(&yaml).await;
    for _ in 0..5 {
        let r = reqwest::get(gw.url("/fine")).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let before = gw.state().await;
    let ratio =
        |s: &serde_json::Value| s["regions"]["us-east-1"]["last_minute"]["error_ratio"].clone();
    let cases = broken_bodies();
    // As many as run in a few seconds, 16 connections at a time.
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    let workers: Vec<_> = (0..16)
        .map(|w| {
            let (addr, cases, sent) = (gw.addr, cases.clone(), sent.clone());
            tokio::spawn(async move {
                let mut i = w;
                while tokio::time::Instant::now() < deadline
                    && sent.load(std::sync::atomic::Ordering::Relaxed) < 1000
                {
                    let raw = &cases[i % cases.len()].1;
                    i += 1;
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    let _ = s.write_all(raw).await;
                    let mut out = Vec::new();
                    let _ =
                        tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await;
                    let resp = String::from_utf8_lossy(&out).into_owned();
                    assert_eq!(status(&resp), Some(400), "{resp}");
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert!(sent >= 100, "only {sent} sent");
    let after = gw.state().await;
    for o in after["regions"]["us-east-1"]["origins"].as_array().unwrap() {
        assert_eq!(o["ejected"], false, "{o}");
        assert_eq!(o["times_ejected"], 0, "{o}");
        assert_eq!(o["last_minute"]["errors"], 0, "{o}");
    }
    assert_eq!(ratio(&after), ratio(&before), "region error ratio moved");
    assert_eq!(
        after["regions"]["us-east-1"]["last_minute"]["errors"], 0,
        "{after}"
    );
    let m = gw.metrics().await;
    assert_eq!(metric_sum(&m, "meridian_retries_total", &[]), 0.0);
    assert_eq!(rejected(&m, "bad_body"), sent as f64);
    let r = reqwest::get(gw.url("/fine")).await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_client_that_stalls_or_leaves_mid_body_is_not_the_origins_failure() {
    let o = origin("us-east-1").await;
    let gw = Gateway::start_with_env(
        &one_region_config(
            o.addr,
            "timeouts: { client_body: 500ms }\noutlier_detection: { consecutive_failures: 1, base_ejection: 30s, max_ejected_percent: 100 }",
        ),
        &[("RUST_LOG", "warn,meridian::access=info")],
    )
    .await;
    let head = "POST /slow HTTP/1.1\r\nHost: h.example\r\nContent-Length: 10\r\n\r\nhello";
    // Stalls: the origin waits for the rest, meridian waits on the client.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let resp = read_response(&mut s).await;
    assert_eq!(status(&resp), Some(408), "{resp}");
    // Leaves: half a body, then the connection closes.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(s);
    wait_metric(
        &gw,
        "meridian_requests_rejected_total",
        &[("reason", "client_gone")],
        1.0,
        Duration::from_secs(3),
    )
    .await;
    let m = gw.metrics().await;
    assert_eq!(rejected(&m, "client_timeout"), 1.0);
    let state = gw.state().await;
    let origin = &state["regions"]["us-east-1"]["origins"][0];
    assert_eq!(origin["ejected"], false, "{origin}");
    assert_eq!(origin["last_minute"]["errors"], 0, "{origin}");
    assert_eq!(state["regions"]["us-east-1"]["last_minute"]["errors"], 0);
    let r = reqwest::get(gw.url("/fine")).await.unwrap();
    assert_eq!(r.status(), 200);
    // The access log says whose fault each was, as nginx would.
    eventually(Duration::from_secs(5), "three access lines", || async {
        let lines = gw.stderr().matches("meridian::access").count();
        seen_if(lines >= 3, lines)
    })
    .await;
    let log = gw.stderr();
    let slow: Vec<&str> = log.lines().filter(|l| l.contains("path=/slow")).collect();
    assert_eq!(slow.len(), 2, "{log}");
    assert!(
        slow[0].contains("status=408") && slow[0].contains("error=\"request_timeout\""),
        "{log}"
    );
    assert!(
        slow[1].contains("status=499") && slow[1].contains("error=\"client_gone\""),
        "{log}"
    );
}

#[tokio::test]
async fn a_body_over_its_routes_max_body_is_a_413_before_the_origin_reads_more() {
    let o = RawOrigin::start().await;
    let gw = Gateway::start(&one_region_config(
        o.addr,
        "health: { interval: 5s, timeout: 1s }\nroutes:\n  - match: { path_prefix: /up }\n    limits: { max_body: 1KiB }\n",
    ))
    .await;
    // Its length says so: answered before any origin is asked.
    let long = format!(
        "POST /up HTTP/1.1\r\nHost: h.example\r\nContent-Length: 2000\r\n\r\n{}",
        "x".repeat(2000)
    );
    let resp = exchange(&gw, long.as_bytes()).await;
    assert_eq!(status(&resp), Some(413), "{resp}");
    assert!(o.wait_requests(0).await.is_empty(), "{:?}", o.requests());
    // Chunked: the chunk that passes the limit never reaches the origin.
    let chunked = format!(
        "POST /up HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n{}\r\n258\r\n{}\r\n0\r\n\r\n",
        "a".repeat(600),
        "Z".repeat(600)
    );
    let resp = exchange(&gw, chunked.as_bytes()).await;
    assert_eq!(status(&resp), Some(413), "{resp}");
    for req in o.wait_requests(0).await {
        assert!(!req.contains("ZZZ"), "bytes past the limit arrived: {req}");
    }
    // Within the limit, or on another route: on to the origin.
    let short = "POST /up HTTP/1.1\r\nHost: h.example\r\nContent-Length: 5\r\n\r\nhello";
    assert_eq!(status(&exchange(&gw, short.as_bytes()).await), Some(200));
    let other = long.replace("/up", "/other");
    assert_eq!(status(&exchange(&gw, other.as_bytes()).await), Some(200));
    let m = gw.metrics().await;
    assert_eq!(rejected(&m, "body_too_large"), 2.0);
}
