//! Kept-alive client connections over raw sockets: hyper's HTTP/1 server runs the
//! wait between requests, on meridian's own timer (src/proxy/wait.rs: the
//! keep-alive bound apart from the header bound), and these check what ends an
//! idle connection: `timeouts.client_idle` of silence, the client closing, a
//! graceful shutdown.

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One origin; its probes may take long (tests here hold requests at the origin).
async fn gateway(extra: &str) -> (Gateway, SimOrigin) {
    one_origin_gateway(&format!("health: {{ interval: 4s, timeout: 3s }}\n{extra}")).await
}

/// Sends one GET on `s` and reads its whole answer; returns the status line.
async fn get(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let answer = read_response(s).await;
    answer.lines().next().unwrap_or_default().to_string()
}

/// How long until the gateway closes `s` (reads nothing but the end).
async fn closed_after(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 64];
    match tokio::time::timeout(within, s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => Some(started.elapsed()),
        Ok(Ok(n)) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(_) => None,
    }
}

#[tokio::test]
async fn a_silent_client_is_closed_after_client_idle_and_a_busy_one_is_not() {
    let (gw, o) = gateway("timeouts: { client_idle: 1s }").await;
    let mut busy = TcpStream::connect(gw.addr).await.unwrap();
    let mut silent = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(get(&mut silent, "/once").await, "HTTP/1.1 200 OK");
    // Requests 300 ms apart for 3 s: the connection outlives the limit many times
    // over, but is never silent for as long as it.
    let watch = tokio::spawn(async move {
        let closed = closed_after(&mut silent, Duration::from_secs(4)).await;
        closed.expect("the silent client is closed")
    });
    let started = Instant::now();
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(3) {
        assert_eq!(get(&mut busy, "/busy").await, "HTTP/1.1 200 OK");
        sent += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let silent_for = watch.await.unwrap();
    assert!(
        silent_for >= Duration::from_millis(800) && silent_for < Duration::from_millis(2500),
        "the silent client was closed after {silent_for:?} (client_idle: 1s)"
    );
    let seen = o.control.seen();
    assert_eq!(seen.iter().filter(|r| r.path == "/busy").count(), sent);
    // The busy one, now left silent, goes the same way.
    assert!(closed_after(&mut busy, Duration::from_secs(3))
        .await
        .is_some());
}

#[tokio::test]
async fn a_graceful_shutdown_closes_idle_clients_at_once_and_finishes_busy_ones() {
    let (mut gw, o) = gateway("shutdown: { grace_period: 5s }").await;
    let mut idle = TcpStream::connect(gw.addr).await.unwrap();
    let mut busy = TcpStream::connect(gw.addr).await.unwrap();
    assert_eq!(get(&mut idle, "/before").await, "HTTP/1.1 200 OK");
    // The busy client's request is held at the origin while shutdown starts.
    let arrived = o.control.arrived.load(Relaxed);
    o.control.delay_ms.store(1500, Relaxed);
    let in_flight = tokio::spawn(async move { get(&mut busy, "/slow").await });
    eventually(
        Duration::from_secs(3),
        "the slow request reaches the origin",
        || async {
            let now = o.control.arrived.load(Relaxed);
            seen_if(now > arrived, now)
        },
    )
    .await;
    gw.signal("TERM");
    let closed = closed_after(&mut idle, Duration::from_secs(3)).await;
    assert!(
        closed.is_some_and(|c| c < Duration::from_secs(1)),
        "an idle client is closed as shutdown starts, not at the end of the 5 s grace period ({closed:?})"
    );
    assert_eq!(in_flight.await.unwrap(), "HTTP/1.1 200 OK");
    let (status, _) = gw.wait(Duration::from_secs(10));
    assert!(status.success());
}

/// What the client does on one connection: send bytes, or pause.
enum Step {
    Send(&'static [u8]),
    Pause(u64),
}
use Step::{Pause, Send};

/// What is done, the steps, the answers' statuses, closed after them (None: either).
type Case = (&'static str, Vec<Step>, Vec<u16>, Option<bool>);

/// Plays `steps` on a fresh connection, then reads for 1.5 s; returns the statuses
/// of the answers in order and whether the gateway closed the connection.
async fn play(gw: &Gateway, steps: &[Step]) -> (Vec<u16>, bool) {
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    for step in steps {
        match step {
            Send(bytes) => s.write_all(bytes).await.unwrap(),
            Pause(ms) => tokio::time::sleep(Duration::from_millis(*ms)).await,
        }
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_millis(1500), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&got);
    // An HTTP/1.0 client is answered as HTTP/1.0 (hyper speaks its peer's
    // version), anyone else as HTTP/1.1: either status line counts.
    let statuses = text
        .match_indices("HTTP/1.")
        .filter(|(i, _)| matches!(text.get(i + 7..i + 9), Some("0 " | "1 ")))
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect();
    (statuses, closed)
}

#[tokio::test]
async fn connection_semantics_hold_through_meridians_keep_alive_loop() {
    let (gw, _o) = gateway("").await;
    const GET: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
    let cases: Vec<Case> = vec![
        ("two requests, a pause between", vec![Send(GET), Pause(300), Send(GET)], vec![200, 200], Some(false)),
        (
            // The first bytes of the next request are read while waiting for it, the
            // rest by Pingora: the header deadline and the parser see one header.
            "a header split across reads after a pause",
            vec![Send(GET), Pause(200), Send(b"GET /b HT"), Pause(200), Send(b"TP/1.1\r\nHost: x\r\n\r\n")],
            vec![200, 200],
            Some(false),
        ),
        ("Connection: close", vec![Send(b"GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")], vec![200], Some(true)),
        ("HTTP/1.0", vec![Send(b"GET /a HTTP/1.0\r\nHost: x\r\n\r\n")], vec![200], Some(true)),
        (
            "HTTP/1.0 with keep-alive",
            vec![
                Send(b"GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"),
                Pause(200),
                Send(b"GET /a HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n\r\n"),
            ],
            vec![200, 200],
            Some(false),
        ),
        (
            "a chunked body, then the next request",
            vec![
                Send(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
                Pause(200),
                Send(GET),
            ],
            vec![200, 200],
            Some(false),
        ),
        (
            "Expect: 100-continue",
            vec![
                Send(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"),
                Pause(300),
                Send(b"hello"),
            ],
            vec![100, 200],
            // The connection stays open after it, as after any answer.
            Some(false),
        ),
    ];
    for (what, steps, statuses, closed) in cases {
        let (got, got_closed) = play(&gw, &steps).await;
        assert_eq!(got, statuses, "{what}");
        if let Some(closed) = closed {
            assert_eq!(got_closed, closed, "{what}: closed");
        }
    }
}
