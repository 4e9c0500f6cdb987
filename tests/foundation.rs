//! Foundation end to end: proxying through the real binary to real origins.

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use support::*;

fn one_region(origin: std::net::SocketAddr) -> String {
    format!(
        r#"
local_region: us-east-1
listeners: [{{ address: "{{{{LISTEN}}}}" }}]
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1:
    origins: [{{ address: "{origin}" }}]
shutdown: {{ grace_period: 3s }}
"#
    )
}

#[tokio::test]
async fn forwards_headers_and_returns_the_origin_answer_unchanged() {
    let origin = SimOrigin::start("us-east-1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gw = Gateway::start(&one_region(origin.addr)).await;
    let client = reqwest::Client::new();

    let r = client
        .get(gw.url("/hello?x=1"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-meridian-region"], "us-east-1");
    assert_eq!(r.headers()["x-origin-region"], "us-east-1");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["path"], "/hello");
    assert_eq!(body["request_id"], "req-123");

    let seen = origin.control.seen();
    let s = seen.last().unwrap();
    // The untrusted peer's claimed XFF is kept, the real peer appended.
    assert_eq!(s.header("x-forwarded-for"), Some("203.0.113.9, 127.0.0.1"));
    assert_eq!(s.header("x-forwarded-proto"), Some("http"));
    assert_eq!(
        s.header("x-forwarded-host"),
        Some(gw.addr.to_string().as_str())
    );
    assert_eq!(s.header("x-meridian-edge-region"), Some("us-east-1"));
    assert!(s.header("x-meridian-client-country").is_some());

    // A request id is generated when the client sent none.
    client.get(gw.url("/again")).send().await.unwrap();
    let id = origin
        .control
        .seen()
        .last()
        .unwrap()
        .header("x-request-id")
        .unwrap()
        .to_string();
    assert_eq!(id.len(), 32, "{id}");

    // Status codes pass through unchanged.
    origin.control.status.store(418, Relaxed);
    let r = client.get(gw.url("/teapot")).send().await.unwrap();
    assert_eq!(r.status(), 418);
    assert_eq!(r.headers()["x-meridian-region"], "us-east-1");
    origin.control.status.store(0, Relaxed);
}

#[tokio::test]
async fn streams_large_bodies_both_ways() {
    let origin = SimOrigin::start("us-east-1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gw = Gateway::start(&one_region(origin.addr)).await;
    let client = reqwest::Client::new();

    let r = client.get(gw.url("/bytes/1048576")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 1 << 20);
    assert!(body.iter().all(|b| *b == b'x'));

    // A chunked upload (no content-length) of 3 MiB in 64 KiB pieces.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..48).map(|_| Ok(vec![b'u'; 65536])).collect();
    let stream = futures_util_stream(chunks);
    let r = client
        .post(gw.url("/upload"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["received_bytes"], 48 * 65536);
    let seen = origin.control.seen();
    assert_eq!(seen.last().unwrap().body_len, 48 * 65536);
}

/// A stream over a vector, for chunked uploads.
fn futures_util_stream(
    items: Vec<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    struct S(std::vec::IntoIter<Result<Vec<u8>, std::io::Error>>);
    impl futures_core::Stream for S {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    S(items.into_iter())
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let origin = SimOrigin::start("us-east-1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let gw = Gateway::start(&one_region(origin.addr)).await;
    let client = reqwest::Client::new();
    let before = origin.control.accepts.load(Relaxed);
    let probes_before = origin.control.probes.load(Relaxed);
    for i in 0..1000 {
        let r = client.get(gw.url(&format!("/r/{i}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    // Health probes use a fresh connection each: those are not traffic.
    let probes = origin.control.probes.load(Relaxed) - probes_before;
    let opened = origin.control.accepts.load(Relaxed) - before - probes;
    assert_eq!(origin.control.requests.load(Relaxed), 1000);
    // One per proxy thread at most, plus slack for a pool race.
    assert!(
        opened <= 4,
        "1,000 sequential requests opened {opened} upstream connections"
    );
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let origin = SimOrigin::start("us-east-1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut gw = Gateway::start(&one_region(origin.addr)).await;
    origin.control.delay_ms.store(800, Relaxed);
    let client = reqwest::Client::new();
    let in_flight: Vec<_> = (0..20)
        .map(|i| {
            let (c, u) = (client.clone(), gw.url(&format!("/slow/{i}")));
            tokio::spawn(async move { c.get(u).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    // Let the requests reach the origin (where they are held), then ask the
    // gateway to stop.
    eventually(Duration::from_secs(5), "requests at the origin", || {
        (origin.control.arrived.load(Relaxed) >= 20).then_some(())
    })
    .await;
    gw.signal("TERM");
    // The signal is handled asynchronously: poll, but the flip must come while the
    // requests (held 800 ms by the origin) are still in flight.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ready = reqwest::get(gw.admin_url("/readyz")).await.unwrap();
        if ready.status() == 503 {
            break;
        }
        assert!(Instant::now() < deadline, "readyz never flipped to 503");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        in_flight.iter().all(|t| !t.is_finished()),
        "readyz must flip before in-flight requests end"
    );
    for t in in_flight {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
    let (status, _) = tokio::task::spawn_blocking(move || gw.wait(Duration::from_secs(15)))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn demo_serves_the_printed_requests_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    // The demo config with its fixed ports moved to free ones.
    let dir = temp_dir("demo");
    let mut yaml = std::fs::read_to_string(repo("config/demo.yaml")).unwrap();
    let mut ports = std::collections::HashMap::new();
    for fixed in ["8080", "9901", "18081", "18082", "18083"] {
        let p = free_port().to_string();
        yaml = yaml.replace(&format!("127.0.0.1:{fixed}"), &format!("127.0.0.1:{p}"));
        ports.insert(fixed, p);
    }
    yaml = yaml.replace(
        "../geoip/",
        &format!("{}/geoip/", env!("CARGO_MANIFEST_DIR")),
    );
    let cfg = dir.join("demo.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["demo", "-c"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    while !printed.contains("Ctrl-C") {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "demo ended early: {printed}"
        );
        printed.push_str(&line);
    }
    let gw = format!("http://127.0.0.1:{}", ports["8080"]);
    assert!(printed.contains(&gw), "{printed}");
    assert!(printed.contains("curl"), "{printed}");
    let admin = format!("http://127.0.0.1:{}", ports["9901"]);
    eventually(Duration::from_secs(10), "demo ready", || {
        std::process::Command::new("curl")
            .args(["-sf", &format!("{admin}/readyz")])
            .status()
            .ok()
            .filter(|s| s.success())
    })
    .await;
    let r = reqwest::get(format!("{gw}/hello")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-meridian-region"));
    let state = reqwest::get(format!("{admin}/admin/state")).await.unwrap();
    assert_eq!(state.status(), 200);

    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

/// `THP_enabled` of a process: 0 once it opted out of transparent huge pages.
fn thp_enabled(pid: u32) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("THP_enabled:"));
    line.expect("kernel shows THP_enabled")
        .split_whitespace()
        .nth(1)
        .unwrap()
        .into()
}

#[tokio::test]
async fn transparent_huge_pages_are_off_unless_the_allocator_is_told_otherwise() {
    let origin = SimOrigin::start("us-east-1", "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let yaml = one_region(origin.addr);
    let gw = Gateway::start(&yaml).await;
    assert_eq!(
        thp_enabled(gw.pid()),
        "0",
        "RSS would step up as khugepaged collapses pages"
    );
    let gw = Gateway::start_with_env(&yaml, &[("MIMALLOC_ALLOW_THP", "1")]).await;
    assert_eq!(
        thp_enabled(gw.pid()),
        "1",
        "an explicit MIMALLOC_ALLOW_THP is the operator's choice"
    );
}
