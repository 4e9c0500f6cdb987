//! meridian's own hostile-input suite (issue 28): request shapes from RFC 9112
//! §11, RFC 9113 §8 and published request-smuggling research, each sent as
//! exact bytes and judged at a raw origin that records what it received. Every
//! case is either refused (a 4xx/5xx or a closed connection, and no origin reads
//! a whole request) or forwarded as exactly one unambiguous request: one head
//! in HTTP/1.1 form, one Host, at most one framing header, and a body that ends
//! exactly where its framing says. The table in docs/RELIABILITY.md names the
//! classes.

mod support;

use std::time::Duration;

use support::raw::{judge, RawOrigin};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// A 4xx/5xx or a closed connection; no origin reads a whole request.
    Refused,
    /// A 200 from the origin, which read exactly one unambiguous request.
    Forwarded,
    /// Either of those, judged the same way.
    Either,
}
use Expect::*;

struct Case {
    name: &'static str,
    send: Send,
    expect: Expect,
    /// Lines the forwarded head must have / must not have (lowercased).
    has: &'static [&'static str],
    lacks: &'static [&'static str],
    /// Its bytes hold the client's next request too (pipelined after a body that
    /// ends where its length says): that one may reach an origin as well, as a
    /// request of its own on its own connection, never inside the first.
    pipelined: bool,
}

enum Send {
    H1(Vec<u8>),
    /// Header fields (pseudo-headers included, in order) and a body.
    H2(Vec<(&'static str, String)>, Option<&'static [u8]>),
}

fn h1(name: &'static str, raw: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        send: Send::H1(raw.into()),
        expect,
        has: &[],
        lacks: &[],
        pipelined: false,
    }
}

fn h2(
    name: &'static str,
    fields: &[(&'static str, &str)],
    body: Option<&'static [u8]>,
    expect: Expect,
) -> Case {
    let fields = fields.iter().map(|(n, v)| (*n, v.to_string())).collect();
    Case {
        name,
        send: Send::H2(fields, body),
        expect,
        has: &[],
        lacks: &[],
        pipelined: false,
    }
}

impl Case {
    fn has(mut self, lines: &'static [&'static str]) -> Case {
        self.has = lines;
        self
    }
    fn lacks(mut self, lines: &'static [&'static str]) -> Case {
        self.lacks = lines;
        self
    }
    fn pipelined(mut self) -> Case {
        self.pipelined = true;
        self
    }
}

/// A POST to /p with `headers` (each line with its CRLF) and `body`.
fn post(headers: &str, body: &str) -> Vec<u8> {
    format!("POST /p HTTP/1.1\r\nHost: h.example\r\n{headers}\r\n{body}").into_bytes()
}

/// A chunked POST whose body is `body`, sent as is.
fn chunked(body: &str) -> Vec<u8> {
    post("Transfer-Encoding: chunked\r\n", body)
}

/// A GET with these header lines.
fn get(headers: &str) -> Vec<u8> {
    format!("GET /g HTTP/1.1\r\n{headers}\r\n").into_bytes()
}

fn cases() -> Vec<Case> {
    let big = "a".repeat(40 * 1024);
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nHost: h.example\r\n\r\n",
        "u".repeat(100 * 1024)
    );
    vec![
        // Content-Length and Transfer-Encoding (CL.TE, TE.CL, TE.TE).
        h1("CL.TE", post("Content-Length: 6\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\nG"), Either),
        h1("TE.CL", post("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", "8\r\nSMUGGLED\r\n0\r\n\r\n"), Either)
            .lacks(&["content-length:"]),
        h1("TE with a space before the colon", post("Transfer-Encoding : chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"), Refused),
        h1("TE xchunked with CL", post("Transfer-Encoding: xchunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"), Refused),
        h1("TE chunked then identity", post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "0\r\n\r\n"), Refused),
        h1("TE with a tab", post("Transfer-Encoding:\tchunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), Forwarded),
        h1("TE with trailing space", post("Transfer-Encoding: chunked \r\n", "5\r\nhello\r\n0\r\n\r\n"), Forwarded),
        h1("TE uppercase", post("Transfer-Encoding: CHUNKED\r\n", "5\r\nhello\r\n0\r\n\r\n"), Forwarded),
        h1("TE chunked twice", post("Transfer-Encoding: chunked, chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), Either),
        h1("TE identity, chunked", post("Transfer-Encoding: identity, chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), Refused),
        h1("TE gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), Refused),
        h1("TE gzip then TE chunked", post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), Refused),
        h1("TE on HTTP/1.0", "POST /p HTTP/1.0\r\nHost: h.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", Refused),
        h1("TE name folded", post("Transfer-Encoding\r\n : chunked\r\n", "0\r\n\r\n"), Refused),
        h1("TE with a vertical tab", post("Transfer-Encoding: \x0bchunked\r\n", "0\r\n\r\n"), Refused),
        h1("TE with a NUL", post("Transfer-Encoding: chu\0nked\r\n", "0\r\n\r\n"), Refused),
        h1("TE and CL 0", post("Transfer-Encoding: chunked\r\nContent-Length: 0\r\n", "5\r\nhello\r\n0\r\n\r\n"), Either)
            .lacks(&["content-length:"]),
        // Content-Length shapes.
        h1("CL with a plus", post("Content-Length: +5\r\n", "hello"), Refused),
        h1("CL in hex", post("Content-Length: 0x5\r\n", "hello"), Refused),
        h1("CL list of one value", post("Content-Length: 5, 5\r\n", "hello"), Either),
        h1("CL list of two values", post("Content-Length: 5, 6\r\n", "hello!"), Refused),
        h1("CL twice, same", post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"), Either),
        h1("CL twice, different", post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"), Refused),
        h1("CL negative", post("Content-Length: -1\r\n", "hello"), Refused),
        h1("CL overflowing", post("Content-Length: 99999999999999999999\r\n", "hello"), Refused),
        h1("CL with trailing space", post("Content-Length: 5 \r\n", "hello"), Forwarded),
        h1("CL with a space before the colon", post("Content-Length : 5\r\n", "hello"), Refused),
        h1("CL with a NUL", post("Content-Length: 5\0\r\n", "hello"), Refused),
        h1("CL shorter than the body, a request behind", post("Content-Length: 3\r\n", "abcGET /smuggled HTTP/1.1\r\nHost: h.example\r\n\r\n"), Forwarded)
            .has(&["content-length: 3"])
            .pipelined(),
        // Chunk sizes and extensions.
        h1("chunk size +5", chunked("+5\r\nhello\r\n0\r\n\r\n"), Refused),
        h1("chunk size 0x5", chunked("0x5\r\nhello\r\n0\r\n\r\n"), Refused),
        h1("chunk size -5", chunked("-5\r\nhello\r\n0\r\n\r\n"), Refused),
        h1("chunk size overflowing", chunked("fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"), Refused),
        h1("chunk size with underscore", chunked("5_0\r\nhello\r\n0\r\n\r\n"), Refused),
        h1("chunk size uppercase hex", chunked("A\r\nhellohello\r\n0\r\n\r\n"), Forwarded),
        h1("chunk size with leading zeros", chunked("0005\r\nhello\r\n0\r\n\r\n"), Forwarded),
        h1("chunk extension", chunked("5;name=value\r\nhello\r\n0\r\n\r\n"), Forwarded).lacks(&["name=value"]),
        h1("chunk extension quoted", chunked("5;n=\"v\"\r\nhello\r\n0\r\n\r\n"), Either),
        h1("chunk extension of 40 KB", chunked(&format!("5;x={big}\r\nhello\r\n0\r\n\r\n")), Refused),
        h1("bare LF after the chunk size", chunked("5\nhello\r\n0\r\n\r\n"), Refused),
        h1("bare CR after the chunk size", chunked("5\rhello\r\n0\r\n\r\n"), Refused),
        h1("LF alone after the chunk data", chunked("5\r\nhello\n0\r\n\r\n"), Refused),
        h1("no CRLF after the chunk data", chunked("5\r\nhello0\r\n\r\n"), Refused),
        h1("chunk data longer than its size", chunked("5\r\nhelloEXTRA\r\n0\r\n\r\n"), Refused),
        h1("chunk size with a space", chunked("5 \r\nhello\r\n0\r\n\r\n"), Either),
        h1("last chunk with an extension", chunked("5\r\nhello\r\n0;x=y\r\n\r\n"), Forwarded),
        // Trailers.
        h1("a trailer", chunked("5\r\nhello\r\n0\r\nX-Trailer: a\r\n\r\n"), Forwarded),
        h1("a Content-Length trailer", chunked("5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n"), Either),
        h1("a folded trailer", chunked("5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n"), Either),
        h1("a request behind the last chunk", chunked("0\r\n\r\nGARBAGE\r\n\r\n"), Forwarded),
        // Header syntax.
        h1("obs-fold", get("Host: h.example\r\nX-Folded: a\r\n b\r\n"), Refused),
        h1("a header without a colon", get("Host: h.example\r\nNoColon\r\n"), Refused),
        h1("a space in a header name", get("Host: h.example\r\nX Y: z\r\n"), Refused),
        h1("a parenthesis in a header name", get("Host: h.example\r\nX(Y): z\r\n"), Refused),
        h1("a NUL in a header value", get("Host: h.example\r\nX-V: a\0b\r\n"), Refused),
        h1("a CR in a header value", get("Host: h.example\r\nX-V: a\rb\r\n"), Refused),
        h1("bare LF line endings", "GET /g HTTP/1.1\nHost: h.example\n\n", Either),
        h1("two spaces in the request line", "GET  /g HTTP/1.1\r\nHost: h.example\r\n\r\n", Refused),
        h1("a tab in the request line", "GET\t/g HTTP/1.1\r\nHost: h.example\r\n\r\n", Refused),
        h1("lowercase version", "GET /g http/1.1\r\nHost: h.example\r\n\r\n", Refused),
        h1("HTTP/1.2", "GET /g HTTP/1.2\r\nHost: h.example\r\n\r\n", Either),
        h1("HTTP/2.0 in an HTTP/1 request line", "GET /g HTTP/2.0\r\nHost: h.example\r\n\r\n", Refused),
        h1("a raw space in the target", "GET /a b HTTP/1.1\r\nHost: h.example\r\n\r\n", Refused),
        h1("a non-ASCII byte in the target", b"GET /\xff HTTP/1.1\r\nHost: h.example\r\n\r\n".to_vec(), Refused),
        h1("a 100 KB target", long_uri, Refused),
        h1("a lowercase method", "get /g HTTP/1.1\r\nHost: h.example\r\n\r\n", Forwarded),
        h1("a fragment in the target", "GET /g#frag HTTP/1.1\r\nHost: h.example\r\n\r\n", Either),
        h1("a target starting with //", "GET //evil.example/x HTTP/1.1\r\nHost: h.example\r\n\r\n", Forwarded)
            .has(&["host: h.example"]),
        // Method and target forms.
        h1("CONNECT", "CONNECT h.example:443 HTTP/1.1\r\nHost: h.example:443\r\n\r\n", Refused),
        h1("GET *", "GET * HTTP/1.1\r\nHost: h.example\r\n\r\n", Refused),
        h1("OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: h.example\r\n\r\n", Forwarded),
        h1("absolute-form, another host", "GET http://other.example/x HTTP/1.1\r\nHost: h.example\r\n\r\n", Forwarded)
            .has(&["host: other.example", "x-forwarded-host: other.example"]),
        h1("absolute-form with userinfo", "GET http://user@h.example/x HTTP/1.1\r\nHost: h.example\r\n\r\n", Refused),
        h1("absolute-form without Host", "GET http://h.example/x HTTP/1.1\r\n\r\n", Refused),
        h1("absolute-form https", "GET https://h.example/x HTTP/1.1\r\nHost: h.example\r\n\r\n", Forwarded)
            .has(&["host: h.example"]),
        // Host.
        h1("no Host on HTTP/1.1", "GET /g HTTP/1.1\r\n\r\n", Refused),
        h1("two Hosts", get("Host: a.example\r\nHost: b.example\r\n"), Refused),
        h1("a Host with userinfo", get("Host: user@h.example\r\n"), Refused),
        h1("a Host with a slash", get("Host: h.example/x\r\n"), Refused),
        h1("a Host with a port", get("Host: h.example:8080\r\n"), Forwarded).has(&["host: h.example:8080"]),
        h1("an IPv6 Host", get("Host: [::1]:80\r\n"), Forwarded).has(&["host: [::1]:80"]),
        h1("HTTP/1.0 without Host", "GET /g HTTP/1.0\r\n\r\n", Forwarded),
        // Hop-by-hop and Connection.
        h1("Connection names Host", get("Host: h.example\r\nConnection: close, Host\r\n"), Forwarded)
            .has(&["host: h.example", "x-forwarded-host: h.example"]),
        h1("Connection names X-Forwarded-For", get("Host: h.example\r\nConnection: X-Forwarded-For\r\nX-Forwarded-For: 192.0.2.1\r\n"), Forwarded)
            .has(&["x-forwarded-for: 192.0.2.1, 127.0.0.1"]),
        h1("Connection names Content-Length", post("Connection: Content-Length\r\nContent-Length: 5\r\n", "hello"), Forwarded)
            .has(&["content-length: 5"]),
        h1("Connection names Transfer-Encoding", post("Connection: Transfer-Encoding\r\nTransfer-Encoding: chunked\r\n", "5\r\nhello\r\n0\r\n\r\n"), Forwarded),
        h1("Connection names a custom header", get("Host: h.example\r\nConnection: X-Secret\r\nX-Secret: s\r\n"), Forwarded)
            .lacks(&["x-secret:", "connection:"]),
        h1("Keep-Alive and Proxy-Connection", get("Host: h.example\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"), Forwarded)
            .lacks(&["keep-alive:", "proxy-connection:"]),
        h1("TE: gzip", get("Host: h.example\r\nTE: gzip\r\n"), Forwarded).lacks(&["te:"]),
        h1("h2c upgrade with Connection", get("Host: h.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"), Forwarded)
            .lacks(&["upgrade:", "http2-settings:", "connection:"]),
        h1("h2c upgrade without Connection", get("Host: h.example\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"), Forwarded)
            .lacks(&["upgrade:", "http2-settings:"]),
        h1("Upgrade without Connection", get("Host: h.example\r\nUpgrade: websocket\r\n"), Forwarded).lacks(&["upgrade:"]),
        h1("Expect: 100-continue", post("Expect: 100-continue\r\nContent-Length: 5\r\n", "hello"), Forwarded),
        h1("an unknown Expect", post("Expect: something\r\nContent-Length: 5\r\n", "hello"), Either),
        // HTTP/2 (frames by hand).
        h2("h2 :authority and a different host", &[(":method", "GET"), (":scheme", "http"), (":authority", "h.example"), (":path", "/x"), ("host", "other.example")], None, Forwarded)
            .has(&["host: h.example"]),
        h2("h2 connection header", &[(":method", "GET"), (":scheme", "http"), (":authority", "h.example"), (":path", "/x"), ("connection", "close")], None, Refused),
        h2("h2 transfer-encoding", &[(":method", "POST"), (":scheme", "http"), (":authority", "h.example"), (":path", "/x"), ("transfer-encoding", "chunked")], Some(b"0\r\n\r\n"), Refused),
        h2("h2 te: gzip", &[(":method", "GET"), (":scheme", "http"), (":authority", "h.example"), (":path", "/x"), ("te", "gzip")], None, Refused),
        h2("h2 upgrade", &[(":method", "GET"), (":scheme", "http"), (":authority", "h.example"), (":path", "/x"), ("upgrade", "h2c")], None, Refused),
        h2("h2 uppercase header name", &[(":method", "GET"), (":scheme", "http"), (":authority", "h.example"), (":path", "/x"), ("X-Up", "1")], None, Refused),
        h2("h2 without :path", &[(":method", "GET"), (":scheme", "http"), (":authority", "h.example")], None, Refused),
        h2("h2 with an empty :path", &[(":method", "GET"), (":scheme", "http"), (":authority", "h.example"), (":path", "")], None, Refused),
        h2("h2 :method twice", &[(":method", "GET"), (":method", "POST"), (":scheme", "http"), (":authority", "h.example"), (":path", "/x")], None, Refused),
        h2("h2 pseudo-header after a field", &[(":method", "GET"), (":scheme", "http"), ("x-a", "1"), (":authority", "h.example"), (":path", "/x")], None, Refused),
        h2("h2 CRLF in a value", &[(":method", "GET"), (":scheme", "http"), (":authority", "h.example"), (":path", "/x"), ("x-a", "a\r\nx-injected: b")], None, Refused),
        h2("h2 content-length longer than the data", &[(":method", "POST"), (":scheme", "http"), (":authority", "h.example"), (":path", "/x"), ("content-length", "10")], Some(b"hello"), Refused),
        h2("h2 content-length shorter than the data", &[(":method", "POST"), (":scheme", "http"), (":authority", "h.example"), (":path", "/x"), ("content-length", "2")], Some(b"hello"), Refused),
        h2("h2 CONNECT", &[(":method", "CONNECT"), (":authority", "h.example:443")], None, Refused),
        h2("h2 a body with a request inside", &[(":method", "POST"), (":scheme", "http"), (":authority", "h.example"), (":path", "/x")], Some(b"GET /smuggled HTTP/1.1\r\nHost: h.example\r\n\r\n"), Forwarded),
    ]
}

/// Sends `raw` and reads one answer (a whole one with its Content-Length), or
/// until the gateway closes, or 2 s. Its status; None when closed unanswered.
async fn ask_h1(gw: &Gateway, raw: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let _ = s.write_all(raw).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(status) = whole_answer(&got) {
            return Some(status);
        }
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => {
                let text = String::from_utf8_lossy(&got);
                return text.get(9..12).and_then(|s| s.parse().ok());
            }
        }
    }
}

/// The status of the first final answer in `got`, once it is whole.
fn whole_answer(got: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(got);
    let mut rest: &str = &text;
    loop {
        let (head, body) = rest.split_once("\r\n\r\n")?;
        let status: u16 = head.get(9..12)?.parse().ok()?;
        if (100..200).contains(&status) {
            rest = body;
            continue;
        }
        let length = head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })?;
        return (body.len() >= length).then_some(status);
    }
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 §5.1).
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Sends one request on a new cleartext HTTP/2 connection, its header block
/// as literal fields without indexing (any bytes, as a hostile client may), and
/// reads frames for 2 s. Some(200) when the answer's block starts with the
/// static `:status: 200`, Some(other) for another answer, None for a reset,
/// GOAWAY or nothing.
async fn ask_h2(gw: &Gateway, fields: &[(&str, String)], body: Option<&[u8]>) -> Option<u16> {
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0);
        hpack_int(&mut block, 0, 7, name.len());
        block.extend_from_slice(name.as_bytes());
        hpack_int(&mut block, 0, 7, value.len());
        block.extend_from_slice(value.as_bytes());
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frame(&mut out, 4, 0, 0, &[]);
    let end_stream = if body.is_none() { 1 } else { 0 };
    frame(&mut out, 1, 4 | end_stream, 1, &block);
    if let Some(body) = body {
        frame(&mut out, 0, 1, 1, body);
    }
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let _ = s.write_all(&out).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        // Walk the frames so far.
        let mut at = 0;
        while got.len() >= at + 9 {
            let len = u32::from_be_bytes([0, got[at], got[at + 1], got[at + 2]]) as usize;
            let (kind, stream) = (
                got[at + 3],
                u32::from_be_bytes(got[at + 5..at + 9].try_into().unwrap()) & 0x7fff_ffff,
            );
            if got.len() < at + 9 + len {
                break;
            }
            let payload = &got[at + 9..at + 9 + len];
            match kind {
                1 if stream == 1 => {
                    return Some(if payload.first() == Some(&0x88) {
                        200
                    } else {
                        0
                    });
                }
                3 if stream == 1 => return None,
                7 => return None,
                _ => {}
            }
            at += 9 + len;
        }
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return None,
        }
    }
}

#[tokio::test]
async fn every_hostile_request_is_refused_or_forwarded_as_one_unambiguous_request() {
    let o = RawOrigin::start().await;
    let gw = Gateway::start(&one_region_config(
        o.addr,
        "health: { interval: 60s, timeout: 1s }\ntimeouts: { request_header: 1s }",
    ))
    .await;
    let cases = cases();
    assert!(cases.len() >= 80, "{} cases", cases.len());
    let mut failures = Vec::new();
    let mut outcomes = Vec::new();
    for case in &cases {
        o.settle(Duration::from_secs(2)).await;
        let before = o.connections().len();
        let status = match &case.send {
            Send::H1(raw) => ask_h1(&gw, raw).await,
            Send::H2(fields, body) => ask_h2(&gw, fields, *body).await,
        };
        // A refused request may still have a cut-short try at the origin.
        tokio::time::sleep(Duration::from_millis(30)).await;
        o.settle(Duration::from_secs(2)).await;
        let conns: Vec<Vec<u8>> = o.connections()[before..]
            .iter()
            // A connection that carried nothing (a try dropped before it wrote)
            // is no request.
            .filter(|c| !c.is_empty() && !c.starts_with(b"GET /health "))
            .cloned()
            .collect();
        let judged: Vec<_> = conns.iter().map(|c| judge(c)).collect();
        let complete: Vec<&String> = judged
            .iter()
            .filter_map(|j| j.as_ref().ok()?.as_ref())
            .collect();
        let fail = |why: String| {
            format!(
                "{}: {why} (status {status:?}; origin got {:?})",
                case.name,
                conns
                    .iter()
                    .map(|c| String::from_utf8_lossy(c).into_owned())
                    .collect::<Vec<_>>()
            )
        };
        if let Some(Err(e)) = judged.iter().find(|j| j.is_err()) {
            failures.push(fail(format!("ambiguous at the origin: {e}")));
            continue;
        }
        let forwarded = status == Some(200);
        let outcome = match (case.expect, forwarded) {
            (Refused, true) => {
                failures.push(fail("forwarded, expected refused".into()));
                continue;
            }
            (Forwarded, false) => {
                failures.push(fail("refused, expected forwarded".into()));
                continue;
            }
            (_, true) => "forwarded",
            (_, false) => "refused",
        };
        if forwarded {
            // Each origin connection carried one whole request (checked above:
            // none was ambiguous); only a pipelined case may have two of them,
            // the second the client's own next request.
            let most = if case.pipelined { 2 } else { 1 };
            if complete.is_empty() || complete.len() > most || conns.len() != complete.len() {
                failures.push(fail(format!("{} complete requests", complete.len())));
                continue;
            }
            let head = complete[0];
            for line in case.has {
                if !head.contains(&format!("\r\n{line}")) {
                    failures.push(fail(format!("lacks {line:?}")));
                }
            }
            for line in case.lacks {
                if head.contains(&format!("\r\n{line}")) {
                    failures.push(fail(format!("has {line:?}")));
                }
            }
        } else if !complete.is_empty() {
            failures.push(fail("refused, but an origin read a whole request".into()));
            continue;
        }
        outcomes.push(format!("{}: {outcome} ({status:?})", case.name));
    }
    eprintln!("{}", outcomes.join("\n"));
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    let r = reqwest::get(gw.url("/still")).await.unwrap();
    assert_eq!(r.status(), 200);
}
