//! Read-your-writes end to end: a write in the residency group's write region
//! pins the client's reads there for the window (fixed or following measured
//! replication lag); hostile tokens change nothing but a counter; keys rotate.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use meridian::request::tokens::{KeyRing, TokenOutcome};
use support::*;

const ADMIN_TOKEN: &str = "admin-token-for-tests";
const DE: &str = "127.0.2.9";

fn key(fill: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([fill; 32])
}

struct World {
    origins: HashMap<&'static str, SimOrigin>,
    dir: std::path::PathBuf,
}

impl World {
    async fn new() -> World {
        let mut origins = HashMap::new();
        for r in ["us-east-1", "eu-west-1", "eu-central-1"] {
            origins.insert(
                r,
                SimOrigin::start(r, "127.0.0.1:0".parse().unwrap())
                    .await
                    .unwrap(),
            );
        }
        let dir = temp_dir("ryw");
        std::fs::write(dir.join("admin.token"), ADMIN_TOKEN).unwrap();
        World { origins, dir }
    }

    fn keys(&self, lines: &[(&str, u8)]) {
        let text: String = lines
            .iter()
            .map(|(id, fill)| format!("{id}:{}\n", key(*fill)))
            .collect();
        std::fs::write(self.dir.join("session.keys"), text).unwrap();
    }

    fn ring(&self) -> KeyRing {
        KeyRing::load(&self.dir.join("session.keys")).unwrap()
    }

    /// EU clients live in eu-west-1 and eu-central-1; their writes go to eu-central-1.
    fn config(&self, window: &str) -> String {
        let o = |r: &str| self.origins[r].addr;
        format!(
            r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}", token_file: "{dir}/admin.token" }}
client_ip: {{ trusted_proxies: [127.0.0.1/32] }}
geoip: {{ database: "{{{{REPO}}}}/geoip/test-city.mmdb" }}
write_region: us-east-1
regions:
  us-east-1: {{ origins: [ {{ address: "{}" }} ] }}
  eu-west-1: {{ origins: [ {{ address: "{}" }} ] }}
  eu-central-1: {{ origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 100ms, timeout: 80ms, healthy_threshold: 1, unhealthy_threshold: 1 }}
routing:
  geo: {{ continents: {{ EU: eu-west-1, NA: us-east-1 }}, default: us-east-1 }}
  residency:
    - {{ name: eu, continents: [EU], regions: [eu-west-1, eu-central-1], write_region: eu-central-1 }}
routes:
  - match: {{ path_prefix: /api }}
    writes: write_region
    read_your_writes: {window}
sessions: {{ keys_file: "{dir}/session.keys" }}
debug_headers: true
"#,
            o("us-east-1"),
            o("eu-west-1"),
            o("eu-central-1"),
            dir = self.dir.display()
        )
    }
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map_or(String::new(), |v| v.to_str().unwrap().to_string())
}

async fn write(gw: &Gateway) -> (String, u64) {
    let now = meridian::util::clock::now_ms();
    let r = reqwest::Client::new()
        .post(gw.url("/api/orders"))
        .header("x-forwarded-for", DE)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-meridian-region"), "eu-central-1");
    assert_eq!(header(&r, "x-meridian-decision"), "write");
    (header(&r, "x-meridian-write-token"), now)
}

async fn read(gw: &Gateway, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(gw.url("/api/orders/1"))
        .header("x-forwarded-for", DE)
        .header("cookie", format!("meridian_rw={token}"))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_eu_write_pins_reads_to_the_write_region_for_the_window() {
    let world = World::new().await;
    world.keys(&[("k1", 1)]);
    let gw = Gateway::start(&world.config("{ window: 1s }")).await;
    let (token, _) = write(&gw).await;
    assert!(token.starts_with("v1.eu-central-1."));
    let r = read(&gw, &token).await;
    assert_eq!(header(&r, "x-meridian-region"), "eu-central-1");
    assert_eq!(header(&r, "x-meridian-decision"), "read_your_writes");
    // Waiting out the 1 s window is what this test is about: the same token, read
    // after its `not_after`, no longer pins.
    let not_after: u64 = token.split('.').nth(2).unwrap().parse().unwrap();
    let left = not_after.saturating_sub(meridian::util::clock::now_ms());
    tokio::time::sleep(Duration::from_millis(left + 100)).await;
    let r = read(&gw, &token).await;
    assert_eq!(header(&r, "x-meridian-region"), "eu-west-1");
    assert_eq!(header(&r, "x-meridian-decision"), "geo");
    let m = gw.metrics().await;
    for (outcome, n) in [("issued", 1.0), ("honored", 1.0), ("expired", 1.0)] {
        assert_eq!(
            metric_sum(&m, "meridian_write_tokens_total", &[("outcome", outcome)]),
            n
        );
    }
    let known = TokenOutcome::ALL.map(TokenOutcome::as_str);
    assert_only_known_labels(&m, "meridian_write_tokens_total", "outcome", &known);
}

#[tokio::test]
async fn the_auto_window_follows_replication_lag_up_to_the_cap() {
    let world = World::new().await;
    world.keys(&[("k1", 1)]);
    let gw = Gateway::start(&world.config("{ window: auto, margin: 100ms, max: 1500ms }")).await;
    for (lag, want_ms) in [(300, 400), (2000, 1500)] {
        for o in world.origins.values() {
            o.control.set_health(&format!(
                r#"{{"status":"healthy","replication_lag_ms":{lag}}}"#
            ));
        }
        eventually(
            Duration::from_secs(5),
            "every region reporting the lag",
            || async {
                let s = gw.state().await;
                let lags: Vec<_> = ["us-east-1", "eu-west-1", "eu-central-1"]
                    .iter()
                    .map(|r| s["regions"][r]["replication_lag_ms"].clone())
                    .collect();
                seen_if(lags.iter().all(|l| *l == lag), lags)
            },
        )
        .await;
        let (token, sent) = write(&gw).await;
        let not_after: u64 = token.split('.').nth(2).unwrap().parse().unwrap();
        let window = not_after - sent;
        assert!(
            (want_ms..want_ms + 150).contains(&window),
            "lag {lag}: window {window} ms, want about {want_ms}"
        );
    }
}

#[tokio::test]
async fn hostile_tokens_change_nothing_but_a_counter() {
    let world = World::new().await;
    world.keys(&[("k1", 1)]);
    let gw = Gateway::start(&world.config("{ window: 5s }")).await;
    let (token, _) = write(&gw).await;
    let ring = world.ring();
    let parts: Vec<&str> = token.split('.').collect();
    let flip = |field: usize| {
        let mut p: Vec<String> = parts.iter().map(|s| s.to_string()).collect();
        let c = p[field].remove(0);
        p[field].insert(0, if c == 'e' || c == '1' { 'f' } else { 'e' });
        p.join(".")
    };
    let cases: Vec<(String, &str)> = vec![
        (flip(1), "tampered"),    // region
        (flip(2), "malformed"),   // expiry: a letter is no number
        (flip(3), "unknown_key"), // key id
        (flip(4), "tampered"),    // MAC
        (token[..token.len() - 5].to_string(), "malformed"),
        (format!("{token}.extra"), "malformed"),
        (
            ring.sign_write("eu-central-1", meridian::util::clock::now_ms() + 3_600_000),
            "beyond_cap",
        ),
        (
            ring.sign_write("mars-1", meridian::util::clock::now_ms() + 1_000),
            "region_unknown",
        ),
        ("x".repeat(10 * 1024), "malformed"),
        (
            KeyRing::from_keys(vec![("k1".into(), vec![9; 32])])
                .unwrap()
                .sign_write("eu-central-1", meridian::util::clock::now_ms() + 1_000),
            "tampered",
        ),
    ];
    let mut want: HashMap<&str, f64> = HashMap::new();
    for (bad, outcome) in &cases {
        let r = read(&gw, bad).await;
        assert_eq!(r.status(), 200, "{outcome}");
        assert_eq!(
            header(&r, "x-meridian-region"),
            "eu-west-1",
            "{outcome}: {bad:.60}"
        );
        *want.entry(outcome).or_default() += 1.0;
    }
    let m = gw.metrics().await;
    for (outcome, n) in want {
        assert_eq!(
            metric_sum(&m, "meridian_write_tokens_total", &[("outcome", outcome)]),
            n,
            "{outcome}"
        );
    }
    assert_eq!(
        metric_sum(&m, "meridian_write_tokens_total", &[("outcome", "honored")]),
        0.0
    );
    let known = TokenOutcome::ALL.map(TokenOutcome::as_str);
    assert_only_known_labels(&m, "meridian_write_tokens_total", "outcome", &known);
}

#[tokio::test]
async fn keys_rotate_without_breaking_tokens() {
    let world = World::new().await;
    world.keys(&[("old", 1)]);
    let gw = Gateway::start(&world.config("{ window: 10s }")).await;
    let (old_token, _) = write(&gw).await;
    let reload = || async {
        let r = reqwest::Client::new()
            .post(gw.admin_url("/admin/reload"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    // The new key goes first: it signs, the old one still verifies.
    world.keys(&[("new", 2), ("old", 1)]);
    reload().await;
    assert_eq!(
        header(&read(&gw, &old_token).await, "x-meridian-region"),
        "eu-central-1"
    );
    let (new_token, _) = write(&gw).await;
    assert!(new_token.contains(".new."));
    // The old key retired: its tokens no longer pin, and say why.
    world.keys(&[("new", 2)]);
    reload().await;
    assert_eq!(
        header(&read(&gw, &old_token).await, "x-meridian-region"),
        "eu-west-1"
    );
    assert_eq!(
        header(&read(&gw, &new_token).await, "x-meridian-region"),
        "eu-central-1"
    );
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(
            &m,
            "meridian_write_tokens_total",
            &[("outcome", "unknown_key")]
        ),
        1.0
    );
}
