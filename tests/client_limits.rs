//! Limits a front door needs (issue 28): header count and bytes (431), and the
//! HTTP/2 settings and guards clients get (concurrent streams, rapid reset).

mod support;

use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

#[tokio::test]
async fn a_head_over_the_header_count_or_bytes_is_a_431() {
    let (gw, o) = one_origin_gateway("limits: { max_headers: 20, max_header_bytes: 16KiB }").await;
    let with_headers = |n: usize| {
        let extra: String = (0..n).map(|i| format!("X-H{i}: v\r\n")).collect();
        format!("GET /many{n} HTTP/1.1\r\nHost: h.example\r\nConnection: close\r\n{extra}\r\n")
    };
    let with_bytes = |n: usize| {
        format!(
            "GET /big{n} HTTP/1.1\r\nHost: h.example\r\nConnection: close\r\nX-Big: {}\r\n\r\n",
            "a".repeat(n)
        )
    };
    for (raw, want) in [
        (with_headers(10), 200),
        (with_headers(30), 431),
        (with_bytes(8 * 1024), 200),
        (with_bytes(20 * 1024), 431),
    ] {
        let resp = exchange(&gw, raw.as_bytes()).await;
        assert_eq!(status(&resp), Some(want), "{}: {resp}", &raw[..20]);
    }
    let paths: Vec<String> = o.control.seen().iter().map(|s| s.path.clone()).collect();
    assert_eq!(paths, ["/many10", "/big8192"]);
}

#[tokio::test]
async fn http2_clients_get_the_configured_concurrent_streams() {
    let (gw, _o) = one_origin_gateway("http2: { max_concurrent_streams: 7 }").await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (client, mut conn) = h2::client::handshake(tcp).await.unwrap();
    let ask = async {
        let mut client = client.ready().await.unwrap();
        let req = http::Request::get("http://h.example/x").body(()).unwrap();
        let (answer, _) = client.send_request(req, true).unwrap();
        answer.await.unwrap().status()
    };
    let status = tokio::select! {
        s = ask => s,
        e = &mut conn => panic!("connection ended: {e:?}"),
    };
    assert_eq!(status, 200);
    assert_eq!(conn.max_concurrent_send_streams(), 7);
}

/// CPU seconds the process has used (user and system), from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command's closing parenthesis; utime and stime are the
    // 14th and 15th of the line, in clock ticks (100 a second on Linux).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// CVE-2023-44487's shape: streams opened and reset at once, as fast as a
/// client can, on one connection. Each costs the gateway a bounded amount (no
/// origin request outlives its reset), and other clients are served meanwhile.
#[tokio::test]
async fn a_rapid_reset_flood_costs_little_and_others_are_served() {
    use std::sync::atomic::Ordering::Relaxed;
    let (gw, o) = one_origin_gateway("").await;
    o.control.delay_ms.store(200, Relaxed);
    let cpu_before = cpu_seconds(gw.pid());
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    const FLOOD: u32 = 10_000;
    let flood = tokio::spawn(async move {
        let mut client = client;
        let mut sent = 0u32;
        for i in 0..FLOOD {
            let Ok(ready) = client.ready().await else {
                break;
            };
            client = ready;
            let req = http::Request::get(format!("http://h.example/flood{i}"))
                .body(())
                .unwrap();
            let Ok((answer, mut stream)) = client.send_request(req, false) else {
                break;
            };
            // Let the connection task put HEADERS on the wire before the
            // reset (h2 drops a stream reset before it was written).
            tokio::task::yield_now().await;
            stream.send_reset(h2::Reason::CANCEL);
            drop(answer);
            sent += 1;
        }
        sent
    });
    let started = std::time::Instant::now();
    let r = reqwest::get(gw.url("/fine")).await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "another client waited {:?}",
        started.elapsed()
    );
    let sent = tokio::time::timeout(Duration::from_secs(20), flood)
        .await
        .expect("the flood ends")
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the flooding connection ends")
        .unwrap();
    // h2's guard: GOAWAY with ENHANCE_YOUR_CALM ("too_many_resets"), then
    // the connection closes (a client still writing may see a broken pipe first).
    assert!(ended.is_err(), "the flooding connection ended cleanly");
    assert!(sent < FLOOD, "all {sent} resets were taken");
    // Every reset stream's origin request was dropped with it: none is still
    // waiting at the origin (each would hold a connection for 200 ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu = cpu_seconds(gw.pid()) - cpu_before;
    let per_stream_us = cpu * 1e6 / f64::from(sent.max(1));
    let reached = o.control.requests.load(Relaxed);
    eprintln!("{sent} resets: {cpu:.2} s of CPU, {per_stream_us:.0} µs each; {reached} reached the origin");
    // A debug build: a stream costs tens of µs; a bound ten times that.
    assert!(
        per_stream_us < 1000.0,
        "{per_stream_us:.0} µs per reset stream"
    );
    let r = reqwest::get(gw.url("/after")).await.unwrap();
    assert_eq!(r.status(), 200);
    all_connections_closed_but_pooled(&o).await;
}

/// The origin holds no more open connections than a handful kept in the pool.
async fn all_connections_closed_but_pooled(o: &SimOrigin) {
    eventually(
        Duration::from_secs(5),
        "origin connections back to a few",
        || async {
            let n = o.control.open_connections();
            seen_if(n <= 8, n)
        },
    )
    .await;
}

#[tokio::test]
async fn connections_over_a_listeners_cap_wait_until_one_ends() {
    let o = origin("us-east-1").await;
    let yaml = one_region_config(o.addr, "").replace(
        r#"listeners: [ { address: "{{LISTEN}}" } ]"#,
        r#"listeners: [ { address: "{{LISTEN}}", max_connections: 2 } ]"#,
    );
    assert!(yaml.contains("max_connections"), "{yaml}");
    let gw = Gateway::start(&yaml).await;
    let ask = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: h.example\r\n\r\n");
    // Two kept-alive clients take both slots.
    let mut kept = Vec::new();
    for i in 0..2 {
        let mut s = TcpStream::connect(gw.addr).await.unwrap();
        s.write_all(ask(&format!("/kept{i}")).as_bytes())
            .await
            .unwrap();
        assert_eq!(status(&read_response(&mut s).await), Some(200));
        kept.push(s);
    }
    // A third connects (the kernel's queue takes it) but is not served...
    let mut third = TcpStream::connect(gw.addr).await.unwrap();
    third.write_all(ask("/third").as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), third.read(&mut buf)).await;
    assert!(early.is_err(), "served beyond the cap: {early:?}");
    // ...until one of the two leaves.
    drop(kept.pop());
    let resp = read_response(&mut third).await;
    assert_eq!(status(&resp), Some(200), "{resp}");
    let s = &mut kept[0];
    s.write_all(ask("/still").as_bytes()).await.unwrap();
    assert_eq!(status(&read_response(s).await), Some(200));
}

#[tokio::test]
async fn an_idle_http2_client_is_sent_goaway_after_client_idle() {
    let (gw, _o) = one_origin_gateway("timeouts: { client_idle: 400ms }").await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let mut conn = tokio::spawn(conn);
    let mut client = client;
    // A client that keeps asking is not idle.
    for i in 0..8 {
        let mut ready = client.ready().await.unwrap();
        let req = http::Request::get(format!("http://h.example/busy{i}"))
            .body(())
            .unwrap();
        let (answer, _) = ready.send_request(req, true).unwrap();
        assert_eq!(answer.await.unwrap().status(), 200);
        client = ready;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!conn.is_finished(), "a busy client's connection ended");
    // Then silent: GOAWAY, and the connection ends.
    let ended = tokio::time::timeout(Duration::from_secs(3), &mut conn).await;
    assert!(ended.is_ok(), "an idle HTTP/2 client kept its connection");
}

#[tokio::test]
async fn an_http2_client_that_starts_no_request_is_cut_after_request_header() {
    let (gw, _o) = one_origin_gateway("timeouts: { request_header: 300ms }").await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    // The preface and settings, then nothing.
    let (_client, conn) = h2::client::handshake(tcp).await.unwrap();
    let started = std::time::Instant::now();
    let ended = tokio::time::timeout(Duration::from_secs(3), conn).await;
    assert!(ended.is_ok(), "a silent HTTP/2 connection stayed open");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "{:?}",
        started.elapsed()
    );
}
