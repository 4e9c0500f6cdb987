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

/// The accept queue the kernel keeps for `addr`'s listening socket (`ss`'s Send-Q).
fn accept_queue(addr: std::net::SocketAddr) -> u32 {
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", addr.port())])
        .output()
        .expect("ss (iproute2)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no listener on {addr}: {text}"));
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

#[tokio::test]
async fn client_listeners_queue_a_burst_of_new_connections() {
    // A plain bind asks for 128: a burst of new clients while the thread is busy
    // overflowed it, and each dropped SYN cost a client a one-second retransmit.
    let (gw, _origin) = one_origin_gateway("").await;
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(accept_queue(gw.listeners[0]), somaxconn.min(4096));
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
async fn pooled_connections_close_after_timeouts_idle_without_traffic() {
    let (gw, origin) = one_origin_gateway("timeouts: { idle: 1s }").await;
    let client = reqwest::Client::new();
    for i in 0..20 {
        let r = client.get(gw.url(&format!("/r/{i}"))).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    // Kept while in use; closed about 1 s after the last request (plus the
    // pool's 1 s sweep), though nothing asks the pool for a connection again.
    // Health probes' own connections open and close within a probe.
    assert!(
        origin.control.open_connections() >= 1,
        "the pooled connection was not kept"
    );
    all_connections_closed(&origin, Duration::from_secs(8)).await;
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
    eventually(Duration::from_secs(5), "requests at the origin", || async {
        let arrived = origin.control.arrived.load(Relaxed);
        seen_if(arrived >= 20, arrived)
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

/// A running `meridian demo` and what it printed.
struct Demo {
    child: std::process::Child,
    printed: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `meridian demo` with the demo config, its gateway and admin on port 0 and
/// its origins on `origin_ports`, and reads what it prints up to "Ctrl-C"; `None`
/// when it exited because an origin port was taken.
fn start_demo(origin_ports: &[u16; 3]) -> Option<Demo> {
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};
    let dir = temp_dir("demo");
    let mut yaml = std::fs::read_to_string(repo("config/demo.yaml")).unwrap();
    for fixed in ["8080", "9901"] {
        yaml = yaml.replace(&format!("127.0.0.1:{fixed}"), "127.0.0.1:0");
    }
    for (fixed, port) in ["18081", "18082", "18083"].iter().zip(origin_ports) {
        yaml = yaml.replace(&format!("127.0.0.1:{fixed}"), &format!("127.0.0.1:{port}"));
    }
    yaml = yaml.replace(
        "../geoip/",
        &format!("{}/geoip/", env!("CARGO_MANIFEST_DIR")),
    );
    let cfg = dir.join("demo.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["demo", "-c"])
        .arg(&cfg)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut demo = Demo {
        child,
        printed: String::new(),
        stderr: Default::default(),
    };
    let mut pipe = demo.child.stderr.take().unwrap();
    let sink = demo.stderr.clone();
    let drained = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        sink.lock().unwrap().push_str(&text);
    });
    let mut out = BufReader::new(demo.child.stdout.take().unwrap());
    while !demo.printed.contains("Ctrl-C") {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let _ = demo.child.wait();
            let _ = drained.join();
            let stderr = demo.stderr.lock().unwrap().clone();
            assert!(
                stderr.contains("Address already in use"),
                "demo ended early: {}{stderr}",
                demo.printed
            );
            return None;
        }
        demo.printed.push_str(&line);
    }
    Some(demo)
}

/// The address printed after `prefix` (`gateway on http://`, `admin on http://`).
fn printed_addr(printed: &str, prefix: &str) -> std::net::SocketAddr {
    let rest = printed
        .split_once(prefix)
        .unwrap_or_else(|| panic!("no `{prefix}` in {printed}"))
        .1;
    let addr = rest.split_whitespace().next().unwrap();
    addr.parse()
        .unwrap_or_else(|e| panic!("`{addr}` after `{prefix}`: {e}"))
}

#[tokio::test]
async fn demo_serves_the_printed_requests_and_stops_on_ctrl_c() {
    // The demo binds its origins itself, at the addresses its config names: it
    // cannot be handed sockets. Ports are drawn from below the kernel's ephemeral
    // range, where no port-0 bind or outgoing connection lands; one taken by
    // someone else makes the demo exit at once, and then others are drawn.
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    // A range starting below 11000 leaves little room under it: draw from 1000
    // ports anyway (a collision is noticed and redrawn).
    let span = ephemeral_low.saturating_sub(10_000).max(1_000);
    let draw = || 10_000 + rand::random::<u16>() % span;
    let mut demo = (0..5)
        .find_map(|_| start_demo(&[draw(), draw(), draw()]))
        .expect("the demo started within 5 draws of origin ports");
    let printed = demo.printed.clone();
    let gw_addr = printed_addr(&printed, "gateway on http://");
    let admin_addr = printed_addr(&printed, "admin on http://");
    assert_ne!(
        gw_addr.port(),
        0,
        "the bound port is printed, not the config's 0"
    );
    assert!(printed.contains("curl"), "{printed}");
    assert!(
        printed.contains(&format!("http://{gw_addr}/hello")),
        "the curl lines name the bound address: {printed}"
    );
    let (gw, admin) = (format!("http://{gw_addr}"), format!("http://{admin_addr}"));
    // Printed once ready.
    let ready = reqwest::get(format!("{admin}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let r = reqwest::get(format!("{gw}/hello")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("x-meridian-region"));
    let state = reqwest::get(format!("{admin}/admin/state")).await.unwrap();
    assert_eq!(state.status(), 200);

    let ok = std::process::Command::new("kill")
        .args(["-INT", &demo.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let status = tokio::task::spawn_blocking(move || {
        let status = demo.child.wait();
        (demo, status)
    })
    .await
    .unwrap()
    .1
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

/// Port 0 everywhere: the ready file names the ports bound, both listeners serve
/// there, and a reload whose file names those ports (or still says 0) is no
/// listener change, while a real one is logged as needing a restart.
#[tokio::test]
async fn port_zero_listeners_are_named_in_the_ready_file() {
    let origin = origin("us-east-1").await;
    let yaml = format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }}, {{ address: "127.0.0.1:0" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ origins: [ {{ address: "{}" }} ] }}
"#,
        origin.addr
    );
    let gw = Gateway::start(&yaml).await;
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&gw.ready_file).unwrap()).unwrap();
    assert_eq!(doc["pid"], gw.pid());
    let (first, second) = (gw.listeners[0], gw.listeners[1]);
    for a in [first, second, gw.admin] {
        assert!(a.port() != 0 && a.ip().is_loopback(), "{doc}");
    }
    assert!(first != second && first != gw.admin, "{doc}");
    // Written once ready, never before.
    let ready = reqwest::get(gw.admin_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    for a in [first, second] {
        let r = reqwest::get(format!("http://{a}/hello")).await.unwrap();
        assert_eq!(r.status(), 200, "listener {a}");
    }
    // Only the gateway knows the port: `meridian status -c` says where to look.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["status", "-c"])
        .arg(&gw.config_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("port 0") && stderr.contains("--admin"),
        "{stderr}"
    );

    let reloaded = |n: f64| {
        let gw = &gw;
        async move {
            let labels = [("result", "ok")];
            wait_metric(
                gw,
                "meridian_config_reloads_total",
                &labels,
                n,
                Duration::from_secs(5),
            )
            .await
        }
    };
    // The file now names the ports bound (the second listener still says 0).
    let named = yaml
        .replace("{{LISTEN}}", &first.to_string())
        .replace("{{ADMIN}}", &gw.admin.to_string());
    write_config(&gw, &format!("{named}shutdown: {{ grace_period: 4s }}\n"));
    reloaded(2.0).await;
    assert!(
        !gw.stderr().contains("take effect on restart"),
        "no listener changed: {}",
        gw.stderr()
    );
    // A listener really moved: logged, and the old address keeps serving.
    let elsewhere = RefusingPort::bind().addr;
    write_config(
        &gw,
        &named.replace(&first.to_string(), &elsewhere.to_string()),
    );
    reloaded(3.0).await;
    let want = format!(
        "listeners[0].address is now {elsewhere}, still listening on {first}: \
         listener and admin addresses take effect on restart only"
    );
    // The log line goes through the log writer thread: it may land a moment
    // after the reload is counted.
    eventually(Duration::from_secs(5), &want, || async {
        let seen = gw.stderr();
        if seen.contains(&want) {
            Ok(())
        } else {
            Err(seen)
        }
    })
    .await;
    let r = reqwest::get(format!("http://{first}/hello")).await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Replaces `gw`'s config file whole (write and rename: never read half-way).
fn write_config(gw: &Gateway, yaml: &str) {
    let tmp = gw.config_path.with_extension("tmp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, &gw.config_path).unwrap();
}
