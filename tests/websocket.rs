//! WebSocket through the gateway with real peers: the `websockets` library as
//! client and as origin, on a plain and on a TLS listener. Text, binary and a
//! 1 MiB message go both ways unchanged; a close started by either side reaches
//! the other with its code and reason; one upgrade counts as one request, `1xx`.
//!
//! Needs `.venv-peers` (`scripts/peers`).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::certs::Pki;
use support::peers::{run_client, PeerServer};
use support::*;

struct Setup {
    gw: Gateway,
    origin: PeerServer,
    /// `ws://...` or `wss://...` of the gateway, without a path.
    base: String,
    /// Extra client arguments (the CA for wss).
    client_args: Vec<String>,
}

async fn setup(tls: bool) -> Setup {
    let origin = PeerServer::start("ws_origin.py", &[]);
    let dir = temp_dir("ws");
    let pki = Pki::new(&dir);
    let leaf = pki.issue("gateway", &["localhost", "127.0.0.1"]);
    let tls_yaml = if tls {
        format!(
            r#"
    tls: {{ certificates: [ {{ cert: "{}", key: "{}" }} ] }}"#,
            leaf.cert.display(),
            leaf.key.display()
        )
    } else {
        String::new()
    };
    let yaml = format!(
        r#"
local_region: us-east-1
listeners:
  - address: "{{{{LISTEN}}}}"{tls_yaml}
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 500ms, timeout: 400ms }}
"#,
        origin.addr()
    );
    let gw = Gateway::start(&yaml).await;
    let (base, client_args) = if tls {
        (
            format!("wss://127.0.0.1:{}", gw.addr.port()),
            vec![
                "--ca".to_string(),
                pki.ca().display().to_string(),
                "--name".into(),
                "localhost".into(),
            ],
        )
    } else {
        (format!("ws://{}", gw.addr), Vec::new())
    };
    Setup {
        gw,
        origin,
        base,
        client_args,
    }
}

impl Setup {
    /// Runs the client scenario on `path`; its steps by name.
    async fn client(&self, path: &str, scenario: &str) -> Vec<Value> {
        let url = format!("{}{path}", self.base);
        let mut args = vec![url.as_str(), scenario];
        args.extend(self.client_args.iter().map(String::as_str));
        run_client("ws_client.py", &args, Duration::from_secs(60)).await
    }

    /// The origin's report of the next connection that ended.
    fn origin_closed(&self) -> Value {
        let line = self
            .origin
            .next_line(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("the origin saw no connection end\n{}", self.gw.stderr()));
        assert_eq!(line["event"], "closed", "{line}");
        line
    }

    /// Waits until `requests_total` is `total` in all and `upgrades` of them `1xx`.
    async fn counted(&self, upgrades: f64, total: f64) {
        let within = Duration::from_secs(5);
        let name = "meridian_requests_total";
        wait_metric(&self.gw, name, &[("status_class", "1xx")], upgrades, within).await;
        wait_metric(&self.gw, name, &[], total, within).await;
    }

    async fn requests(&self, labels: &[(&str, &str)]) -> f64 {
        metric_sum(&self.gw.metrics().await, "meridian_requests_total", labels)
    }
}

fn step<'a>(steps: &'a [Value], name: &str) -> &'a Value {
    steps
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step `{name}` in {steps:#?}"))
}

async fn websocket_through(tls: bool) {
    let s = setup(tls).await;
    let total = s.requests(&[]).await;
    let upgrades = s.requests(&[("status_class", "1xx")]).await;

    // Messages both ways, then the client closes.
    let steps = s.client("/echo", "echo").await;
    let ctx = format!("tls={tls}: {steps:#?}\n{}", s.gw.stderr());
    assert_eq!(step(&steps, "open")["status"], 101, "{ctx}");
    for name in ["text", "binary", "large"] {
        assert_eq!(step(&steps, name)["ok"], true, "{name}: {ctx}");
    }
    assert_eq!(step(&steps, "text")["kind"], "str", "{ctx}");
    assert_eq!(step(&steps, "binary")["kind"], "bytes", "{ctx}");
    assert_eq!(step(&steps, "large")["size"], 1 << 20, "{ctx}");
    let close = step(&steps, "close");
    assert_eq!(
        (close["code"].as_u64(), close["reason"].as_str()),
        (Some(1000), Some("client done")),
        "{ctx}"
    );
    let seen = s.origin_closed();
    assert_eq!(seen["path"], "/echo", "{seen}");
    assert_eq!(seen["client_closed_first"], true, "{seen}");
    assert_eq!(
        (seen["code"].as_u64(), seen["reason"].as_str()),
        (Some(1000), Some("client done")),
        "the client's close frame reached the origin: {seen}"
    );
    assert_eq!(seen["received"], 3, "{seen}");
    let xff = seen["forwarded_for"].as_str().unwrap_or_default();
    assert!(xff.ends_with("127.0.0.1"), "X-Forwarded-For `{xff}`");

    // One upgrade, one request: counted once, as 1xx, whenever the tunnel ends.
    s.counted(upgrades + 1.0, total + 1.0).await;

    // The origin closes: its code and reason reach the client.
    let steps = s.client("/origin-closes", "origin_closes").await;
    let closed = step(&steps, "closed_by_origin");
    assert_eq!(
        (closed["code"].as_u64(), closed["reason"].as_str()),
        (Some(4001), Some("origin closes")),
        "tls={tls}: {steps:#?}\n{}",
        s.gw.stderr()
    );
    let seen = s.origin_closed();
    assert_eq!(seen["path"], "/origin-closes", "{seen}");
    assert_eq!(seen["client_closed_first"], false, "{seen}");
    s.counted(upgrades + 2.0, total + 2.0).await;
}

#[tokio::test]
async fn websocket_on_a_plain_listener() {
    websocket_through(false).await;
}

#[tokio::test]
async fn websocket_on_a_tls_listener() {
    websocket_through(true).await;
}
