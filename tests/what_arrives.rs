//! What an origin receives when a client sends hostile HTTP (issue 28), read
//! at a raw origin that records the exact bytes: h2c upgrades, `Connection`
//! naming what meridian must send, absolute-form and missing Host, CONNECT and
//! `*`, transfer codings meridian does not implement, and HTTP/2's
//! `:authority` against a `host` header.

mod support;

use std::time::Duration;

use support::raw::RawOrigin;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A gateway in front of one raw recording origin; `origin_extra` is added to
/// the origin's YAML entry.
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
    let rest = resp
        .strip_prefix("HTTP/1.1 ")
        .or(resp.strip_prefix("HTTP/1.0 "))?;
    rest.get(..3)?.parse().ok()
}

/// The values of header `name` in a recorded request's head.
fn header(request: &str, name: &str) -> Vec<String> {
    let head = request.split("\r\n\r\n").next().unwrap_or("");
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

fn request_line(request: &str) -> &str {
    request.lines().next().unwrap_or("")
}

/// Sends each request, expects `want` for each, and returns what the origin
/// recorded, one request per case.
async fn forwarded(gw: &Gateway, o: &RawOrigin, cases: &[(&str, &[u8])], want: u16) -> Vec<String> {
    for (name, raw) in cases {
        let resp = exchange(gw, raw).await;
        assert_eq!(status(&resp), Some(want), "{name}: {resp}");
    }
    let got = o.wait_requests(cases.len()).await;
    assert_eq!(got.len(), cases.len(), "{got:#?}");
    got
}

#[tokio::test]
async fn an_h2c_upgrade_never_reaches_an_origin() {
    let (gw, o) = raw_gateway("").await;
    let settings = "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";
    let with_connection = format!(
        "GET /a HTTP/1.1\r\nHost: h.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n{settings}\r\n"
    );
    let without_connection =
        format!("GET /b HTTP/1.1\r\nHost: h.example\r\nUpgrade: h2c\r\n{settings}\r\n");
    let among_others =
        "GET /c HTTP/1.1\r\nHost: h.example\r\nConnection: upgrade\r\nUpgrade: foo/2, H2C\r\n\r\n";
    let cases: [(&str, &[u8]); 3] = [
        ("with Connection", with_connection.as_bytes()),
        ("without Connection", without_connection.as_bytes()),
        ("among other protocols", among_others.as_bytes()),
    ];
    for req in forwarded(&gw, &o, &cases, 200).await {
        for name in ["upgrade", "http2-settings", "connection"] {
            assert!(
                header(&req, name).is_empty(),
                "{name} reached the origin: {req}"
            );
        }
        assert_eq!(header(&req, "host"), ["h.example"], "{req}");
    }
}

#[tokio::test]
async fn connection_cannot_remove_host_framing_or_forwarding_headers() {
    let (gw, o) = raw_gateway("").await;
    let raw = b"POST /c HTTP/1.1\r\nHost: h.example\r\n\
        Connection: keep-alive, Host, Content-Length, X-Forwarded-For, X-Forwarded-Host, X-Forwarded-Proto, X-Request-Id, X-Meridian-Client-Country, Forwarded, X-Secret\r\n\
        X-Forwarded-For: 192.0.2.1\r\nX-Request-Id: abc\r\nForwarded: for=192.0.2.1\r\nX-Secret: s\r\n\
        Content-Length: 5\r\n\r\nhello";
    let got = forwarded(&gw, &o, &[("Connection naming them", raw)], 200).await;
    let req = &got[0];
    assert_eq!(header(req, "host"), ["h.example"], "{req}");
    assert_eq!(header(req, "x-forwarded-host"), ["h.example"], "{req}");
    assert_eq!(
        header(req, "x-forwarded-for"),
        ["192.0.2.1, 127.0.0.1"],
        "{req}"
    );
    assert_eq!(header(req, "x-forwarded-proto"), ["http"], "{req}");
    assert_eq!(header(req, "x-request-id"), ["abc"], "{req}");
    assert_eq!(header(req, "x-meridian-client-country").len(), 1, "{req}");
    assert_eq!(header(req, "forwarded"), ["for=192.0.2.1"], "{req}");
    assert_eq!(header(req, "content-length"), ["5"], "{req}");
    assert!(req.ends_with("\r\n\r\nhello"), "{req}");
    // What Connection may name still stays on its hop.
    assert!(header(req, "x-secret").is_empty(), "{req}");
    assert!(header(req, "connection").is_empty(), "{req}");
}

#[tokio::test]
async fn an_absolute_form_target_replaces_host_and_http_1_1_needs_one() {
    let (gw, o) = raw_gateway("").await;
    let raw: &[u8] = b"GET http://other.example:8080/x?q=1 HTTP/1.1\r\nHost: h.example\r\n\r\n";
    let got = forwarded(&gw, &o, &[("absolute-form", raw)], 200).await;
    let req = &got[0];
    assert_eq!(request_line(req), "GET /x?q=1 HTTP/1.1", "{req}");
    assert_eq!(header(req, "host"), ["other.example:8080"], "{req}");
    assert_eq!(
        header(req, "x-forwarded-host"),
        ["other.example:8080"],
        "{req}"
    );
    // HTTP/1.1 without Host is a 400 even with an absolute-form target.
    let resp = exchange(&gw, b"GET http://h.example/y HTTP/1.1\r\n\r\n").await;
    assert_eq!(status(&resp), Some(400), "{resp}");
    assert_eq!(
        o.wait_requests(2).await.len(),
        1,
        "the request without Host went on"
    );
}

#[tokio::test]
async fn an_http_1_0_request_without_host_goes_on_with_the_origins() {
    let (gw, o) = raw_gateway("").await;
    let got = forwarded(&gw, &o, &[("HTTP/1.0", b"GET /old HTTP/1.0\r\n\r\n")], 200).await;
    let addr = o.addr.to_string();
    assert_eq!(header(&got[0], "host"), [addr.as_str()], "{}", got[0]);
    assert_eq!(request_line(&got[0]), "GET /old HTTP/1.1");
    let (gw, o) = raw_gateway(r#", host_header: "backend.internal""#).await;
    let got = forwarded(&gw, &o, &[("HTTP/1.0", b"GET /old HTTP/1.0\r\n\r\n")], 200).await;
    assert_eq!(header(&got[0], "host"), ["backend.internal"], "{}", got[0]);
}

#[tokio::test]
async fn connect_is_a_405_and_a_star_target_is_for_options_only() {
    let (gw, o) = raw_gateway("").await;
    let connect = exchange(
        &gw,
        b"CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n",
    )
    .await;
    assert_eq!(status(&connect), Some(405), "{connect}");
    for method in ["GET", "POST", "DELETE"] {
        let raw = format!("{method} * HTTP/1.1\r\nHost: h.example\r\nContent-Length: 0\r\n\r\n");
        let resp = exchange(&gw, raw.as_bytes()).await;
        assert_eq!(status(&resp), Some(400), "{method} *: {resp}");
    }
    assert!(o.wait_requests(0).await.is_empty(), "{:?}", o.requests());
    let got = forwarded(
        &gw,
        &o,
        &[(
            "OPTIONS *",
            b"OPTIONS * HTTP/1.1\r\nHost: h.example\r\n\r\n",
        )],
        200,
    )
    .await;
    assert_eq!(request_line(&got[0]), "OPTIONS * HTTP/1.1");
    let m = gw.metrics().await;
    let rejected = |r| metric_sum(&m, "meridian_requests_rejected_total", &[("reason", r)]);
    assert_eq!(rejected("connect"), 1.0);
    assert_eq!(rejected("bad_target"), 3.0);
}

#[tokio::test]
async fn a_transfer_coding_besides_chunked_is_a_501_and_never_forwarded() {
    let (gw, o) = raw_gateway("").await;
    // Each ends in chunked: hyper itself refuses a message whose last coding
    // is not chunked.
    // The last is two headers, the first naming gzip.
    let cases = [
        "gzip, chunked",
        "deflate,chunked",
        "x-custom , chunked",
        "gzip\r\nTransfer-Encoding: chunked",
    ];
    for te in cases {
        let raw = format!(
            "POST /t HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: {te}\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let resp = exchange(&gw, raw.as_bytes()).await;
        assert_eq!(status(&resp), Some(501), "{te}: {resp}");
    }
    assert!(o.wait_requests(0).await.is_empty(), "{:?}", o.requests());
    // Chunked alone (in any case) is framing meridian understands.
    let raw: &[u8] =
        b"POST /t HTTP/1.1\r\nHost: h.example\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let got = forwarded(&gw, &o, &[("chunked", raw)], 200).await;
    assert!(got[0].contains("hello"), "{}", got[0]);
}

#[tokio::test]
async fn http_2s_authority_wins_over_a_host_header() {
    let (gw, o) = raw_gateway("").await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let req = http::Request::builder()
        .uri("http://h.example/two")
        .header("host", "other.example")
        .body(())
        .unwrap();
    let (answer, _) = client.send_request(req, true).unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(answer.status(), 200);
    let got = o.wait_requests(1).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(header(&got[0], "host"), ["h.example"], "{}", got[0]);
    assert_eq!(
        header(&got[0], "x-forwarded-host"),
        ["h.example"],
        "{}",
        got[0]
    );
}
