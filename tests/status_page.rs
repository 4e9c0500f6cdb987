//! The status page in a real browser: headless Chromium (Debian's `chromium`,
//! installed by `.ci/run`) keeps the page open on a running three-region gateway,
//! and the test reads the live DOM over the DevTools protocol: all three regions
//! shown, then one region's origin killed and shown unhealthy within 3 s with the
//! event listed. Every request the page makes is checked to go to the admin
//! listener, and a screenshot is written.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const INSTALL: &str = "apt-get install -y --no-install-recommends chromium";

/// Headless Chromium with the DevTools protocol on a loopback port; killed on drop.
struct Browser {
    child: Child,
    devtools: String,
    _profile: std::path::PathBuf,
}

impl Browser {
    fn start() -> Browser {
        if Command::new("chromium").arg("--version").output().is_err() {
            panic!("chromium is missing: {INSTALL} (.ci/run installs it)");
        }
        let profile = temp_dir("chromium");
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--window-size=1400,900",
                "--remote-debugging-port=0",
                // No network: any host but loopback fails to resolve, so the page
                // works only if it needs nothing from outside.
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromium ({e}): {INSTALL}"));
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let devtools = loop {
            let line = lines
                .next()
                .expect("chromium exited before DevTools listened")
                .unwrap();
            if let Some(ws) = line.strip_prefix("DevTools listening on ws://") {
                break ws.split('/').next().unwrap().to_string();
            }
        };
        // Keep draining its stderr so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Browser {
            child,
            devtools,
            _profile: profile,
        }
    }

    /// A DevTools session on the browser's first page.
    async fn page(&self) -> Cdp {
        let list: Value = reqwest::get(format!("http://{}/json/list", self.devtools))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ws = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .and_then(|t| t["webSocketDebuggerUrl"].as_str())
            .expect("a page target")
            .to_string();
        Cdp::connect(&ws).await
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal DevTools protocol client: JSON commands over a WebSocket (RFC 6455,
/// text frames, client frames masked), written here so the test needs no crate.
struct Cdp {
    stream: TcpStream,
    next_id: u64,
    /// Every URL the page asked for (`Network.requestWillBeSent`).
    requested: Vec<String>,
}

impl Cdp {
    async fn connect(ws_url: &str) -> Cdp {
        let rest = ws_url.strip_prefix("ws://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut stream = TcpStream::connect(host).await.unwrap();
        let req = format!(
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: bWVyaWRpYW4tc3RhdHVzLTE=\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(stream.read_u8().await.unwrap());
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Cdp {
            stream,
            next_id: 1,
            requested: Vec::new(),
        }
    }

    async fn send_frame(&mut self, payload: &[u8]) {
        let mut frame = vec![0x81u8];
        match payload.len() {
            n if n < 126 => frame.push(0x80 | n as u8),
            n if n < 65_536 => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask = rand::random::<[u8; 4]>();
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&frame).await.unwrap();
    }

    /// One whole message (continuation frames joined).
    async fn read_message(&mut self) -> Value {
        let mut message = Vec::new();
        loop {
            let b0 = self.stream.read_u8().await.unwrap();
            let b1 = self.stream.read_u8().await.unwrap();
            let len = match b1 & 0x7f {
                126 => u64::from(self.stream.read_u16().await.unwrap()),
                127 => self.stream.read_u64().await.unwrap(),
                n => u64::from(n),
            };
            let mut payload = vec![0u8; len as usize];
            self.stream.read_exact(&mut payload).await.unwrap();
            message.extend_from_slice(&payload);
            if b0 & 0x80 != 0 {
                break;
            }
        }
        serde_json::from_slice(&message).unwrap()
    }

    /// Sends a command and returns its result, noting the events that come before it.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({ "id": id, "method": method, "params": params }).to_string();
        self.send_frame(msg.as_bytes()).await;
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.read_message())
                .await
                .expect("DevTools answered in time");
            if m["method"] == "Network.requestWillBeSent" {
                let url = m["params"]["request"]["url"].as_str().unwrap_or("");
                self.requested.push(url.to_string());
            }
            if m["id"] == id {
                assert!(m.get("error").is_none(), "{method}: {m}");
                return m["result"].clone();
            }
        }
    }

    /// Evaluates `js` in the page and returns its value.
    async fn eval(&mut self, js: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({ "expression": js, "returnByValue": true }),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Polls `js` until it returns true; the time it took.
    async fn wait_true(&mut self, js: &str, within: Duration) -> Duration {
        let t0 = Instant::now();
        loop {
            if self.eval(js).await == Value::Bool(true) {
                return t0.elapsed();
            }
            assert!(
                t0.elapsed() < within,
                "page never showed `{js}` within {within:?}; it shows: {}",
                self.eval("document.body.innerText").await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn config(a: &SimOrigin, b: &SimOrigin, c: &SimOrigin) -> String {
    format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ weight: 100, origins: [ {{ address: "{}" }} ] }}
  eu-west-1: {{ weight: 50, origins: [ {{ address: "{}" }} ] }}
  ap-southeast-1: {{ weight: 20, traffic_dial: 80, origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 300ms, timeout: 200ms, unhealthy_threshold: 3, healthy_threshold: 1 }}
routing: {{ steering: weighted }}
shifts:
  - {{ name: maintenance, from: us-east-1, to: eu-west-1, percent: 30, start: 2026-01-01T00:00:00Z, ramp: 87600h }}
"#,
        a.addr, b.addr, c.addr
    )
}

/// The page as served: everything it loads must be this listener's own endpoints.
#[tokio::test]
async fn the_page_is_self_contained_and_read_only() {
    let (a, b, c) = (
        origin("us-east-1").await,
        origin("eu-west-1").await,
        origin("ap-southeast-1").await,
    );
    let gw = Gateway::start(&config(&a, &b, &c)).await;
    for path in ["/", "/ui"] {
        let r = reqwest::get(gw.admin_url(path)).await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
        let html = r.text().await.unwrap();
        for banned in [
            "http:", "https:", "\"//", "'//", "src=", "<link", "@import", "url(", "<iframe",
            "<form", "<object",
        ] {
            assert!(!html.contains(banned), "{path} contains `{banned}`");
        }
        // Reads only, and only from the admin API.
        for (i, _) in html.match_indices("get(\"") {
            let target = &html[i + 5..];
            assert!(
                target.starts_with("/admin/"),
                "{}",
                &target[..40.min(target.len())]
            );
        }
        assert_eq!(html.matches("fetch(").count(), 1, "one GET helper");
        assert!(!html.contains("method:"), "no write requests");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_every_region_and_a_killed_one_turns_unhealthy_within_3s() {
    let (a, b, c) = (
        origin("us-east-1").await,
        origin("eu-west-1").await,
        origin("ap-southeast-1").await,
    );
    let gw = Gateway::start(&config(&a, &b, &c)).await;
    // A little traffic, so the chart and the rates have something to show.
    let url = gw.url("/");
    let traffic = tokio::spawn(async move {
        let client = reqwest::Client::new();
        loop {
            let _ = client.get(&url).send().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let browser = Browser::start();
    let mut page = browser.page().await;
    page.call("Network.enable", json!({})).await;
    page.call("Page.navigate", json!({ "url": gw.admin_url("/") }))
        .await;
    page.wait_true(
        "document.querySelectorAll('.card[data-region]').length === 3",
        Duration::from_secs(10),
    )
    .await;
    for r in ["us-east-1", "eu-west-1", "ap-southeast-1"] {
        let health = page
            .eval(&format!(
                "document.querySelector('.card[data-region=\"{r}\"]').dataset.health"
            ))
            .await;
        assert_eq!(health, "healthy", "{r}");
        // Each region's load against its capacity (these origins have no limit).
        let load = page
            .eval(&format!(
                "document.querySelector('.card[data-region=\"{r}\"] .inflight').textContent"
            ))
            .await;
        assert!(
            load.as_str().unwrap().ends_with("/ no limit"),
            "{r}: {load}"
        );
    }
    let origins = page
        .eval("document.querySelectorAll('#origins tbody tr').length")
        .await;
    assert_eq!(origins, 3);
    assert_eq!(
        page.eval("document.querySelectorAll('[data-shift=\"maintenance\"]').length")
            .await,
        1
    );
    // Let a few points of the chart accumulate, for the screenshot.
    page.wait_true(
        "document.querySelectorAll('#chart polygon').length > 0",
        Duration::from_secs(10),
    )
    .await;

    drop(b);
    let killed = Instant::now();
    let took = page
        .wait_true(
            "document.querySelector('.card[data-region=\"eu-west-1\"]').dataset.health === 'unhealthy' \
             && [...document.querySelectorAll('#events tr[data-kind=\"origin_health\"]')] \
                .some(tr => tr.textContent.includes('eu-west-1/'))",
            Duration::from_secs(3),
        )
        .await;
    let since_kill = killed.elapsed();
    assert!(since_kill <= Duration::from_secs(3), "{since_kill:?}");
    eprintln!("the page showed eu-west-1 unhealthy {took:?} after the kill");
    let event_text = page
        .eval("document.querySelector('#events tr[data-kind=\"region_health\"]').textContent")
        .await;
    assert!(
        event_text.as_str().unwrap_or("").contains("unhealthy"),
        "{event_text}"
    );

    // Tall enough for the event journal under the tables.
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1400, "height": 1050, "deviceScaleFactor": 1, "mobile": false }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shot = page
        .call("Page.captureScreenshot", json!({ "format": "png" }))
        .await;
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    std::fs::write(&file, &png).unwrap();
    eprintln!("screenshot: {}", file.display());

    // Everything the page asked for came from the admin listener.
    let admin = gw.admin_url("/");
    assert!(page.requested.len() >= 4, "{:?}", page.requested);
    for u in &page.requested {
        assert!(u.starts_with(&admin), "the page loaded {u}");
    }
    traffic.abort();
}
