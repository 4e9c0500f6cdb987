//! PROXY protocol on a listener (`proxy_protocol: true`): the address in the
//! header is the client for everything after it (X-Forwarded-For, GeoIP,
//! routing). Senders: HAProxy 2.6 with `send-proxy-v2` (what an AWS NLB sends is
//! v2 too) and a hand-written v1 line (one line of text; no client library exists
//! for it), with hyper's HTTP/1.1 client speaking after it. Connections without a
//! header or with a malformed one are closed unanswered and counted.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use meridian::telemetry::labels::Reject;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Three regions, geo-steered with the test database: 127.0.2.0/24 is DE
/// (eu-west-1), 203.0.113.0/24 is JP (ap-southeast-1), the rest us-east-1.
struct Setup {
    gw: Gateway,
    use1: SimOrigin,
    euw1: SimOrigin,
    apse1: SimOrigin,
}

async fn setup() -> Setup {
    let (use1, euw1, apse1) = (
        origin("us-east-1").await,
        origin("eu-west-1").await,
        origin("ap-southeast-1").await,
    );
    let yaml = format!(
        r#"
local_region: us-east-1
listeners:
  - address: "{{{{LISTEN}}}}"
    proxy_protocol: true
admin: {{ address: "{{{{ADMIN}}}}" }}
geoip: {{ database: "{{{{REPO}}}}/geoip/test-city.mmdb" }}
regions:
  us-east-1: {{ origins: [ {{ address: "{}" }} ] }}
  eu-west-1: {{ origins: [ {{ address: "{}" }} ] }}
  ap-southeast-1: {{ origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 200ms, timeout: 150ms }}
routing: {{ steering: geo, geo: {{ countries: {{ DE: eu-west-1, JP: ap-southeast-1 }}, default: us-east-1 }} }}
debug_headers: true
"#,
        use1.addr, euw1.addr, apse1.addr
    );
    Setup {
        gw: Gateway::start(&yaml).await,
        use1,
        euw1,
        apse1,
    }
}

impl Setup {
    /// Every path any origin was asked for (health probes aside).
    fn paths(&self) -> Vec<String> {
        [&self.use1, &self.euw1, &self.apse1]
            .iter()
            .flat_map(|o| o.control.seen())
            .map(|s| s.path)
            .collect()
    }
}

/// HAProxy in TCP mode in front of the gateway, sending PROXY v2; killed by PID
/// when dropped.
struct Haproxy {
    child: Child,
    addr: SocketAddr,
}

impl Haproxy {
    async fn start(gateway: SocketAddr) -> Haproxy {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let dir = temp_dir("haproxy");
        // HAProxy refuses port 0; it takes an inherited socket instead (`fd@3`): one
        // the kernel gave a free port, bound here and handed over at spawn.
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let cfg = dir.join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "global\n  maxconn 64\n\
                 defaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n\
                 frontend fe\n  bind fd@3\n  default_backend be\n\
                 backend be\n  server s1 {gateway} send-proxy-v2\n"
            ),
        )
        .unwrap();
        let fd = socket.as_raw_fd();
        let mut cmd = Command::new("haproxy");
        cmd.arg("-db").arg("-f").arg(&cfg).stdout(Stdio::null());
        // SAFETY: between fork and exec only async-signal-safe calls (dup2, fcntl)
        // on descriptors this process owns.
        unsafe {
            cmd.pre_exec(move || {
                let ok = if fd == 3 {
                    libc::fcntl(3, libc::F_SETFD, 0) == 0
                } else {
                    libc::dup2(fd, 3) == 3
                };
                if ok {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = cmd
            .spawn()
            .expect("haproxy (Debian `haproxy`, which .ci/run installs)");
        // HAProxy holds the socket now. It listens from the start, so there is
        // nothing to wait for: a connection made before HAProxy accepts waits in
        // the backlog, and if HAProxy exits, the socket closes with it and such a
        // connection is reset rather than left hanging.
        drop(socket);
        Haproxy { child, addr }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap_or_default())
}

#[tokio::test]
async fn haproxy_send_proxy_v2_makes_the_real_client_the_peer() {
    let s = setup().await;
    let haproxy = Haproxy::start(s.gw.addr).await;
    // A German client, as HAProxy sees it: bound to 127.0.2.7.
    let client = reqwest::Client::builder()
        .local_address(Some("127.0.2.7".parse().unwrap()))
        .build()
        .unwrap();
    for i in 0..3 {
        let r = client
            .get(format!("http://{}/via-haproxy/{i}", haproxy.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", s.gw.stderr());
        assert_eq!(header(&r, "x-meridian-region"), "eu-west-1");
        assert_eq!(header(&r, "x-meridian-decision"), "geo");
    }
    let seen = s.euw1.control.seen();
    assert_eq!(seen.len(), 3, "{:?}", s.paths());
    for req in &seen {
        let xff = req.header("x-forwarded-for").unwrap_or_default();
        assert!(
            xff.ends_with("127.0.2.7"),
            "X-Forwarded-For `{xff}`: the client, not HAProxy's 127.0.0.1"
        );
        assert_eq!(req.header("x-meridian-client-country"), Some("DE"));
    }
    assert!(s.use1.control.seen().is_empty() && s.apse1.control.seen().is_empty());
}

/// Writes `preamble` on a fresh connection, then sends one GET with hyper's
/// HTTP/1.1 client over the same connection.
async fn get_after(
    gw: &Gateway,
    preamble: &[u8],
    path: &str,
) -> hyper::Result<http::Response<Bytes>> {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(preamble).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header("host", "api.example.test")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(http::Response::from_parts(parts, body))
}

#[tokio::test]
async fn a_v1_header_names_the_client() {
    let s = setup().await;
    let r = get_after(
        &s.gw,
        b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n",
        "/v1",
    )
    .await
    .unwrap_or_else(|e| panic!("no answer after a v1 header: {e}\n{}", s.gw.stderr()));
    assert_eq!(r.status(), 200);
    // 203.0.113.0/24 is JP in the test database: routed by the header's address.
    assert_eq!(r.headers()["x-meridian-region"], "ap-southeast-1");
    let seen = s.apse1.control.seen();
    let req = seen.iter().find(|r| r.path == "/v1").expect("the GET");
    let xff = req.header("x-forwarded-for").unwrap_or_default();
    assert!(xff.ends_with("203.0.113.9"), "X-Forwarded-For `{xff}`");
    assert_eq!(req.header("x-meridian-client-country"), Some("JP"));
}

/// Sends `raw` on a fresh connection; what came back before the gateway closed
/// it. Panics if the gateway keeps it open for 3 s (it must close, not wait).
async fn closed_answer(gw: &Gateway, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(gw.addr).await.unwrap();
    let _ = s.write_all(raw).await;
    let mut out = Vec::new();
    match tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut out)).await {
        Ok(_) => String::from_utf8_lossy(&out).into_owned(),
        Err(_) => panic!(
            "the connection was held open; got {:?}",
            String::from_utf8_lossy(&out)
        ),
    }
}

#[tokio::test]
async fn no_header_or_a_malformed_one_is_closed_unanswered_and_counted() {
    let s = setup().await;
    let cases: [(&str, &[u8]); 3] = [
        (
            "no header",
            b"GET /no-header HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        (
            "malformed v1",
            b"PROXY TCP4 not-an-address 127.0.0.1 5555 80\r\nGET /malformed-v1 HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        (
            // The v2 signature, then a version nibble of 3 and a short length.
            "malformed v2",
            b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x04abcdGET /malformed-v2 HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
    ];
    for (what, raw) in cases {
        let answer = closed_answer(&s.gw, raw).await;
        assert_eq!(answer, "", "{what}: closed without an HTTP answer");
    }
    wait_metric(
        &s.gw,
        "meridian_requests_rejected_total",
        &[("reason", "proxy_protocol")],
        cases.len() as f64,
        Duration::from_secs(3),
    )
    .await;
    assert!(s.paths().is_empty(), "reached an origin: {:?}", s.paths());
    let known = &Reject::ALL.map(Reject::as_str);
    let m = s.gw.metrics().await;
    assert_only_known_labels(&m, "meridian_requests_rejected_total", "reason", known);
    // A well-formed header on the same listener still works.
    let r = get_after(
        &s.gw,
        b"PROXY TCP4 127.0.1.5 127.0.0.1 5555 80\r\n",
        "/fine",
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-meridian-region"], "us-east-1");
}
