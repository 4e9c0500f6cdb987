//! HTTP/1.1 and HTTP/2 semantics a gateway must keep, end to end against an
//! HTTP/1.1-only hyper origin: pipelining, bare and Host-less requests,
//! `Expect: 100-continue`, chunked bodies, trailers, bodiless answers (HEAD, 204,
//! 304) and gigabyte bodies in bounded memory. Raw sockets only where a client
//! library cannot say it (pipelining, a request without header lines, no Host,
//! the byte-exact framing of bodiless answers, waiting for the 100 before the body);
//! hyper's clients for trailers, httpx (`.venv-peers`, `scripts/peers`) for HTTP/2
//! over TLS.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use support::origin::{HttpOrigin, Speaks};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn gateway() -> (Gateway, HttpOrigin) {
    let o = HttpOrigin::start(Speaks::Http1).await;
    let gw = gateway_in_front_of(o.addr, "health: { interval: 500ms, timeout: 400ms }").await;
    (gw, o)
}

/// Reads from `s` into `buf` until `done(buf)`, failing after 3 s or on close.
async fn read_until(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    what: &str,
    done: impl Fn(&[u8]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut chunk = [0u8; 16 << 10];
    while !done(buf) {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = tokio::time::timeout(left, s.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no {what} within 3 s; got {:?}",
                    String::from_utf8_lossy(buf)
                )
            })
            .unwrap();
        assert!(
            n > 0,
            "closed before {what}; got {:?}",
            String::from_utf8_lossy(buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The next whole response with a Content-Length from `s`: its head and body.
/// `buf` keeps what was read past it (the next pipelined answer's bytes).
async fn next_response(s: &mut TcpStream, buf: &mut Vec<u8>) -> (String, String) {
    let head_end = |b: &[u8]| b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4);
    read_until(s, buf, "a response head", |b| head_end(b).is_some()).await;
    let end = head_end(buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no content-length: {head}"));
    read_until(s, buf, "a response body", |b| b.len() >= end + length).await;
    let body = String::from_utf8_lossy(&buf[end..end + length]).into_owned();
    buf.drain(..end + length);
    (head, body)
}

/// A fresh connection to the gateway with `raw` written on it.
async fn send(gw: &Gateway, raw: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    s
}

/// Number of complete response heads in `buf`.
fn heads(buf: &[u8]) -> usize {
    String::from_utf8_lossy(buf).matches("\r\n\r\n").count()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let (gw, o) = gateway().await;
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    // Three requests in one write: the gateway must answer each, in order.
    s.write_all(
        b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\nGET /p3 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await
    .unwrap();
    let (mut paths, mut buf) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (head, body) = next_response(&mut s, &mut buf).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        paths.push(v["path"].as_str().unwrap().to_string());
    }
    assert_eq!(paths, ["/p1", "/p2", "/p3"]);
    let seen: Vec<String> = o.record.seen().into_iter().map(|r| r.path).collect();
    assert_eq!(seen, ["/p1", "/p2", "/p3"]);
}

#[tokio::test]
async fn a_bare_http10_request_is_answered_at_once_and_http11_without_host_is_400() {
    let (gw, o) = gateway().await;
    // HAProxy's `option httpchk` default: 22 bytes, no header lines. Shorter than
    // the HTTP/2 preface (24 bytes): a gateway waiting for more to tell the two
    // apart would hold it until the header deadline.
    let started = Instant::now();
    let mut s = send(&gw, b"OPTIONS / HTTP/1.0\r\n\r\n").await;
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, "an answer to OPTIONS", |b| heads(b) >= 1).await;
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1."), "{text}");
    assert!(took < Duration::from_millis(500), "answered after {took:?}");

    let mut s = send(&gw, b"GET /no-host HTTP/1.1\r\nUser-Agent: raw\r\n\r\n").await;
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, "an answer without Host", |b| {
        heads(b) >= 1
    })
    .await;
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(o.record.seen().iter().all(|r| r.path != "/no-host"));
}

#[tokio::test]
async fn expect_100_continue_gets_the_interim_answer_before_the_body() {
    let (gw, o) = gateway().await;
    let mut s = send(
        &gw,
        b"POST /expect HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    // Nothing of the body is sent until the 100 arrives (curl would give up
    // waiting after 1 s and send it anyway, hiding a missing 100).
    let mut buf = Vec::new();
    read_until(&mut s, &mut buf, "100 Continue", |b| heads(b) >= 1).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    assert!(text.starts_with("HTTP/1.1 100"), "{text}");
    assert_eq!(
        heads(&buf),
        1,
        "only the interim answer before the body: {text}"
    );
    s.write_all(b"hello").await.unwrap();
    let answer = read_response(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#""body_len":5"#), "{answer}");
    let seen = o.record.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].path.as_str(), seen[0].body_len), ("/expect", 5));
}

#[tokio::test]
async fn chunked_bodies_stream_both_ways() {
    let (gw, o) = gateway().await;
    let client = reqwest::Client::new();
    // Up: no length (a stream), so reqwest sends it chunked.
    let r = client
        .post(gw.url("/upload"))
        .body(reqwest::Body::wrap_stream(Chunks(3)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["body_len"], 3 * (64 << 10));
    let up = o
        .record
        .seen()
        .into_iter()
        .find(|r| r.path == "/upload")
        .unwrap();
    assert_eq!(up.body_len, 3 * (64 << 10));
    // Down: the origin's body has no length; an HTTP/1.1 client gets it chunked.
    let r = client.get(gw.url("/chunked")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("transfer-encoding").map(|v| v.as_bytes()),
        Some(&b"chunked"[..]),
        "{:?}",
        r.headers()
    );
    assert!(r.headers().get("content-length").is_none());
    assert_eq!(r.text().await.unwrap(), "one,two,three");
}

/// GET /trailers with hyper's client over `io` (HTTP/1.1 with `TE: trailers`, or
/// HTTP/2); the body and the trailers.
async fn trailers_over(gw: &Gateway, h2: bool) -> (Bytes, Option<http::HeaderMap>) {
    let io = hyper_util::rt::TokioIo::new(TcpStream::connect(gw.addr).await.unwrap());
    let collected = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get(format!("http://{}/trailers", gw.addr))
            .header("te", "trailers")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let r = send.send_request(req).await.unwrap();
        assert_eq!(r.status(), 200);
        r.into_body().collect().await.unwrap()
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("/trailers")
            .header("host", "x")
            .header("te", "trailers")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let r = send.send_request(req).await.unwrap();
        assert_eq!(r.status(), 200);
        r.into_body().collect().await.unwrap()
    };
    let trailers = collected.trailers().cloned();
    (collected.to_bytes(), trailers)
}

#[tokio::test]
async fn response_trailers_reach_http11_and_http2_clients() {
    let (gw, o) = gateway().await;
    // hyper's clients, because they expose trailers (httpx does not). HTTP/2 here
    // is cleartext with prior knowledge on the plain listener; TLS only adds ALPN.
    let mut got = Vec::new();
    for h2 in [false, true] {
        let (body, trailers) = trailers_over(&gw, h2).await;
        assert_eq!(body, "hello", "h2={h2}");
        let value = trailers
            .as_ref()
            .and_then(|t| t.get("x-checksum"))
            .map(|v| v.to_str().unwrap().to_string());
        got.push((if h2 { "HTTP/2" } else { "HTTP/1.1" }, value));
    }
    let want = [
        ("HTTP/1.1", Some("5d41402a".to_string())),
        ("HTTP/2", Some("5d41402a".to_string())),
    ];
    assert_eq!(got, want, "the trailer `x-checksum` as each client saw it");
    // The origin (hyper) sends trailers only to a request with `TE: trailers`.
    let seen = o.record.seen();
    assert_eq!(seen.len(), 2);
    for r in &seen {
        assert_eq!(
            r.headers.get("te").map(|v| v.as_bytes()),
            Some(&b"trailers"[..])
        );
    }
}

#[tokio::test]
async fn head_204_and_304_arrive_without_bodies() {
    let (gw, o) = gateway().await;
    // One keep-alive connection, one request at a time. Any body bytes after a
    // bodiless answer would sit between its head and the next answer's.
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let mut buf = Vec::new();
    let requests = [
        "HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /status/204 HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /status/304 HTTP/1.1\r\nHost: x\r\nIf-None-Match: \"v1\"\r\n\r\n",
    ];
    for (i, req) in requests.iter().enumerate() {
        s.write_all(req.as_bytes()).await.unwrap();
        read_until(&mut s, &mut buf, req, |b| heads(b) > i).await;
    }
    s.write_all(b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let last = read_response(&mut s).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let parts: Vec<&str> = text.split("\r\n\r\n").collect();
    assert_eq!(parts.len(), 4, "three heads and nothing after: {text:?}");
    assert!(parts[0].starts_with("HTTP/1.1 200"), "HEAD: {text:?}");
    assert!(parts[1].starts_with("HTTP/1.1 204"), "after HEAD: {text:?}");
    assert!(parts[2].starts_with("HTTP/1.1 304"), "after 204: {text:?}");
    assert_eq!(parts[3], "", "bytes after the 304's head: {text:?}");
    assert!(last.starts_with("HTTP/1.1 200"), "after 304: {last:?}");
    let seen: Vec<(String, String)> = o
        .record
        .seen()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[0], ("HEAD".to_string(), "/head".to_string()));
}

#[tokio::test]
async fn an_http2_client_over_tls_gets_bodiless_and_unsized_answers_right() {
    // httpx (h2 over TLS, ALPN) against a TLS listener; the origin speaks HTTP/1.1,
    // so the gateway translates framing both ways.
    let o = HttpOrigin::start(Speaks::Http1).await;
    let pki = certs::Pki::new(&temp_dir("h2-semantics"));
    let leaf = pki.issue("gateway", &["localhost", "127.0.0.1"]);
    let gw = tls_gateway(
        &leaf,
        &format!(r#"{{ address: "{}" }}"#, o.addr),
        "health: { interval: 500ms, timeout: 400ms }",
    )
    .await;
    let requests = serde_json::json!([
        { "method": "HEAD", "path": "/head" },
        { "method": "GET", "path": "/status/204" },
        { "method": "GET", "path": "/status/304" },
        { "method": "GET", "path": "/chunked" },
        { "method": "GET", "path": "/after" },
    ]);
    let out = peers::run_client(
        "h2_client.py",
        &[
            &format!("https://127.0.0.1:{}", gw.addr.port()),
            "--ca",
            pki.ca().to_str().unwrap(),
            &requests.to_string(),
        ],
        Duration::from_secs(60),
    )
    .await;
    let got: Vec<(String, u64, String, String)> = out
        .iter()
        .map(|r| {
            (
                r["path"].as_str().unwrap().to_string(),
                r["status"].as_u64().unwrap(),
                r["http_version"].as_str().unwrap().to_string(),
                r["body"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let h2 = |path: &str, status: u64, body: &str| {
        (
            path.to_string(),
            status,
            "HTTP/2".to_string(),
            body.to_string(),
        )
    };
    assert_eq!(
        got[..4],
        [
            h2("/head", 200, ""),
            h2("/status/204", 204, ""),
            h2("/status/304", 304, ""),
            h2("/chunked", 200, "one,two,three"),
        ],
        "{out:#?}\n{}",
        gw.stderr()
    );
    assert_eq!((got[4].1, got[4].2.as_str()), (200, "HTTP/2"), "{out:#?}");
    assert_eq!(o.record.seen().len(), 5);
}

#[tokio::test]
async fn gigabyte_bodies_stream_both_ways_in_bounded_memory() {
    let (gw, o) = one_origin_gateway("health: { interval: 500ms, timeout: 400ms }").await;
    let started = Instant::now();
    let (before, peak) = stream_both_ways(&gw, 1024).await;
    // Buffers, not bodies: far below 1 GiB, and the same bound as for 256 MiB.
    assert!(
        peak < before + 64,
        "RSS went from {before} MiB to a peak of {peak} MiB (in {:?})",
        started.elapsed()
    );
    assert!(o.control.seen().iter().any(|s| s.path == "/upload"));
}
