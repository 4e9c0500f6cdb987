//! The routing engine end to end: real clients, the real gateway binary, real
//! origins per region, the real country database (`geoip/fetch`) and the committed
//! test database with clients bound to loopback addresses that geolocate.

mod support;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use support::*;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
/// 32 bytes, base64: the key both gateway instances share.
const KEYS: &str = "k1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n";

struct World {
    origins: HashMap<&'static str, SimOrigin>,
    keys_file: std::path::PathBuf,
}

impl World {
    async fn new() -> World {
        let mut origins = HashMap::new();
        for r in REGIONS {
            let o = SimOrigin::start(r, "127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            origins.insert(r, o);
        }
        let keys_file = temp_dir("keys").join("session.keys");
        std::fs::write(&keys_file, KEYS).unwrap();
        World { origins, keys_file }
    }

    /// A gateway config over this world's origins; `database` is relative to the repo.
    fn config(&self, database: &str, trusted: &str, eu_when_unavailable: &str) -> String {
        let o = |r: &str| self.origins[r].addr;
        format!(
            r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
client_ip: {{ trusted_proxies: [{trusted}] }}
geoip: {{ database: "{{{{REPO}}}}/{database}" }}
write_region: us-east-1
regions:
  us-east-1: {{ origins: [ {{ address: "{}" }} ] }}
  eu-west-1: {{ origins: [ {{ address: "{}" }} ] }}
  ap-southeast-1: {{ origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 200ms, timeout: 150ms, healthy_threshold: 1, unhealthy_threshold: 1 }}
routing:
  steering: geo
  geo:
    continents: {{ EU: eu-west-1, NA: us-east-1, AS: ap-southeast-1, OC: ap-southeast-1 }}
    default: us-east-1
  residency:
    - {{ name: eu, continents: [EU], regions: [eu-west-1], when_unavailable: {eu_when_unavailable} }}
routes:
  - match: {{ path_prefix: /api }}
    writes: write_region
    read_your_writes: {{ window: 5s }}
sessions: {{ keys_file: "{}" }}
debug_headers: true
"#,
            o("us-east-1"),
            o("eu-west-1"),
            o("ap-southeast-1"),
            self.keys_file.display()
        )
    }
}

fn real_db() -> &'static str {
    let path = repo("geoip/geo-whois-asn-country.mmdb");
    assert!(
        path.exists(),
        "{} is missing: run `geoip/fetch --city` (scripts/test does; tests download nothing)",
        path.display()
    );
    "geoip/geo-whois-asn-country.mmdb"
}

async fn get_as(gw: &Gateway, xff: Option<&str>, path: &str) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(gw.url(path));
    if let Some(x) = xff {
        req = req.header("x-forwarded-for", x);
    }
    req.send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

#[tokio::test]
async fn real_database_sends_each_country_to_its_region() {
    let world = World::new().await;
    let gw = Gateway::start(&world.config(real_db(), "127.0.0.1/32", "reject")).await;
    let cases = [
        ("194.25.2.129", "DE", "eu-west-1"),
        ("80.10.246.2", "FR", "eu-west-1"),
        ("2a00:1450:4001::1", "IE", "eu-west-1"),
        ("8.8.8.8", "US", "us-east-1"),
        ("153.156.0.1", "JP", "ap-southeast-1"),
        ("1.1.1.1", "AU", "ap-southeast-1"),
        // South America has no mapping: the default region.
        ("200.160.2.3", "BR", "us-east-1"),
    ];
    for (ip, country, region) in cases {
        let r = get_as(&gw, Some(ip), "/page").await;
        assert_eq!(r.status(), 200, "{ip}");
        assert_eq!(header(&r, "x-meridian-region"), region, "{ip} ({country})");
        let seen = world.origins[region].control.seen();
        let last = seen.last().unwrap();
        assert_eq!(last.header("x-meridian-client-country"), Some(country));
        // The origin sees the client's chain plus the trusted peer appended.
        assert_eq!(
            last.header("x-forwarded-for"),
            Some(format!("{ip}, 127.0.0.1").as_str())
        );
    }
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(&m, "meridian_geo_lookups_total", &[("result", "hit")]),
        cases.len() as f64
    );
}

#[tokio::test]
async fn untrusted_forwarded_for_is_never_believed() {
    let world = World::new().await;
    // Only 10/8 is trusted: a loopback client's X-Forwarded-For is ignored and its
    // own address (127.0.2.7 = DE, 127.0.3.7 = JP in the test database) decides.
    let gw = Gateway::start(&world.config("geoip/test-city.mmdb", "10.0.0.0/8", "reject")).await;
    for (src, xff, region, country) in [
        ("127.0.2.7", "8.8.8.8", "eu-west-1", "DE"),
        ("127.0.3.7", "198.51.100.1", "ap-southeast-1", "JP"),
        ("127.0.1.7", "garbage, 127.0.2.7", "us-east-1", "US"),
    ] {
        let client = reqwest::Client::builder()
            .local_address(src.parse::<IpAddr>().unwrap())
            .build()
            .unwrap();
        let r = client
            .get(gw.url("/x"))
            .header("x-forwarded-for", xff)
            .send()
            .await
            .unwrap();
        assert_eq!(header(&r, "x-meridian-region"), region, "client {src}");
        let seen = world.origins[region].control.seen();
        assert_eq!(
            seen.last().unwrap().header("x-meridian-client-country"),
            Some(country)
        );
    }
}

#[tokio::test]
async fn malformed_forwarded_for_entries_are_skipped_and_counted() {
    let world = World::new().await;
    let gw = Gateway::start(&world.config("geoip/test-city.mmdb", "127.0.0.1/32", "reject")).await;
    // Right to left: the trusted peer, then garbage (skipped), then 127.0.3.9 (JP).
    let r = get_as(&gw, Some("127.0.2.1, 127.0.3.9, not-an-ip"), "/x").await;
    assert_eq!(header(&r, "x-meridian-region"), "ap-southeast-1");
    let m = gw.metrics().await;
    assert_eq!(metric_sum(&m, "meridian_xff_malformed_total", &[]), 1.0);
}

#[tokio::test]
async fn residency_rejects_or_allows_outside_when_the_group_is_down() {
    let world = World::new().await;
    let reject = Gateway::start(&world.config(real_db(), "127.0.0.1/32", "reject")).await;
    let allow = Gateway::start(&world.config(real_db(), "127.0.0.1/32", "allow_outside")).await;
    let eu = &world.origins["eu-west-1"].control;
    eu.health_status
        .store(503, std::sync::atomic::Ordering::Relaxed);
    let de = "194.25.2.129";
    let r = retry_until(|| get_as(&reject, Some(de), "/page"), |r| r.status() == 503).await;
    assert_eq!(header(&r, "content-type"), "application/json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "no_healthy_region");
    // The same client through a gateway whose group allows leaving: another region serves.
    let r = retry_until(
        || get_as(&allow, Some(de), "/page"),
        |r| {
            r.headers()
                .get("x-meridian-region")
                .is_some_and(|v| v != "eu-west-1")
        },
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "x-meridian-decision").contains("failover"));
    // US clients never notice.
    let r = get_as(&reject, Some("8.8.8.8"), "/page").await;
    assert_eq!(header(&r, "x-meridian-region"), "us-east-1");
}

/// Calls `f` until `ok` holds for its answer (at most 10 s), returning that answer.
async fn retry_until<F, Fut>(mut f: F, ok: impl Fn(&reqwest::Response) -> bool) -> reqwest::Response
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = reqwest::Response>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = f().await;
        if ok(&r) {
            return r;
        }
        assert!(std::time::Instant::now() < deadline, "condition never held");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("meridian_rw=")
        .unwrap()
}

#[tokio::test]
async fn a_write_pins_the_clients_reads_on_every_instance() {
    let world = World::new().await;
    let config = world.config(real_db(), "127.0.0.1/32", "reject");
    let gw = Gateway::start(&config).await;
    let other = Gateway::start(&config).await;
    let jp = "153.156.0.1";

    // A Japanese client's write goes to the write region and comes back with a token.
    let r = reqwest::Client::new()
        .post(gw.url("/api/orders"))
        .header("x-forwarded-for", jp)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-meridian-region"), "us-east-1");
    assert_eq!(header(&r, "x-meridian-decision"), "write");
    let set_cookie = header(&r, "set-cookie");
    let token = header(&r, "x-meridian-write-token");
    assert_eq!(cookie_value(&set_cookie), token);
    assert!(token.starts_with("v1.us-east-1."), "{token}");
    assert!(
        set_cookie.ends_with("; Path=/; HttpOnly; SameSite=Lax; Max-Age=5"),
        "{set_cookie}"
    );

    // Its next reads stay on us-east-1, through this instance or another one, by
    // cookie or by header; without the token they go home to ap-southeast-1.
    let read = |gw: &Gateway, how: &'static str| {
        let mut req = reqwest::Client::new()
            .get(gw.url("/api/orders/1"))
            .header("x-forwarded-for", jp);
        req = match how {
            "cookie" => req.header("cookie", format!("a=b; meridian_rw={token}")),
            "header" => req.header("x-meridian-write-token", token.as_str()),
            _ => req,
        };
        req.send()
    };
    for (g, how) in [(&gw, "cookie"), (&other, "cookie"), (&other, "header")] {
        let r = read(g, how).await.unwrap();
        assert_eq!(header(&r, "x-meridian-region"), "us-east-1", "{how}");
        assert_eq!(header(&r, "x-meridian-decision"), "read_your_writes");
    }
    let r = read(&gw, "none").await.unwrap();
    assert_eq!(header(&r, "x-meridian-region"), "ap-southeast-1");
    let m = other.metrics().await;
    assert_eq!(
        metric_sum(&m, "meridian_write_tokens_total", &[("outcome", "honored")]),
        2.0
    );
}

#[tokio::test]
async fn bad_tokens_are_ignored_and_counted() {
    let world = World::new().await;
    let gw = Gateway::start(&world.config(real_db(), "127.0.0.1/32", "reject")).await;
    let jp = "153.156.0.1";
    let r = reqwest::Client::new()
        .put(gw.url("/api/orders/1"))
        .header("x-forwarded-for", jp)
        .send()
        .await
        .unwrap();
    let token = header(&r, "x-meridian-write-token");
    let (head, mac) = token.rsplit_once('.').unwrap();
    let flipped = if mac.starts_with('A') { "B" } else { "A" };
    let tampered = format!("{head}.{flipped}{}", &mac[1..]);
    let other_region = token.replacen("us-east-1", "eu-west-1", 1);
    let unknown_key = token.replacen(".k1.", ".k9.", 1);
    // Genuinely signed with the shared key, but long past its window.
    let expired = meridian::request::tokens::KeyRing::load(&world.keys_file)
        .unwrap()
        .sign_write("us-east-1", 1000);
    for (bad, outcome) in [
        (tampered.as_str(), "tampered"),
        (other_region.as_str(), "tampered"),
        (unknown_key.as_str(), "unknown_key"),
        (expired.as_str(), "expired"),
        ("v1.us-east-1", "malformed"),
    ] {
        let r = reqwest::Client::new()
            .get(gw.url("/api/orders/1"))
            .header("x-forwarded-for", jp)
            .header("cookie", format!("meridian_rw={bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "x-meridian-region"),
            "ap-southeast-1",
            "{outcome}: {bad}"
        );
    }
    let m = gw.metrics().await;
    for (outcome, n) in [
        ("tampered", 2.0),
        ("unknown_key", 1.0),
        ("expired", 1.0),
        ("malformed", 1.0),
    ] {
        assert_eq!(
            metric_sum(&m, "meridian_write_tokens_total", &[("outcome", outcome)]),
            n,
            "{outcome}"
        );
    }
}

#[tokio::test]
async fn a_token_for_an_unhealthy_region_routes_normally() {
    let world = World::new().await;
    let gw = Gateway::start(&world.config(real_db(), "127.0.0.1/32", "reject")).await;
    let jp = "153.156.0.1";
    let r = reqwest::Client::new()
        .post(gw.url("/api/orders"))
        .header("x-forwarded-for", jp)
        .send()
        .await
        .unwrap();
    let token = header(&r, "x-meridian-write-token");
    world.origins["us-east-1"]
        .control
        .health_status
        .store(500, std::sync::atomic::Ordering::Relaxed);
    let r = retry_until(
        || {
            let req = reqwest::Client::new()
                .get(gw.url("/api/orders/1"))
                .header("x-forwarded-for", jp)
                .header("x-meridian-write-token", token.as_str())
                .send();
            async { req.await.unwrap() }
        },
        |r| {
            r.headers()
                .get("x-meridian-region")
                .is_some_and(|v| v == "ap-southeast-1")
        },
    )
    .await;
    assert_eq!(header(&r, "x-meridian-decision"), "geo");
    let m = gw.metrics().await;
    assert!(
        metric_sum(
            &m,
            "meridian_write_tokens_total",
            &[("outcome", "region_unhealthy")]
        ) >= 1.0
    );
}

#[tokio::test]
async fn weighted_shares_hold_over_ten_thousand_real_requests() {
    let world = World::new().await;
    let yaml = world
        .config("geoip/test-city.mmdb", "127.0.0.1/32", "reject")
        .replace("  steering: geo", "  steering: weighted")
        .replace("us-east-1: { origins", "us-east-1: { weight: 60, origins")
        .replace("eu-west-1: { origins", "eu-west-1: { weight: 30, origins")
        .replace(
            "ap-southeast-1: { origins",
            "ap-southeast-1: { weight: 10, origins",
        );
    assert!(yaml.contains("weight: 10"));
    let gw = Gateway::start(&yaml).await;
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (client, url) = (client.clone(), gw.url("/w"));
        tasks.push(tokio::spawn(async move {
            let mut counts: HashMap<String, u32> = HashMap::new();
            for _ in 0..2500 {
                let r = client.get(&url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                *counts.entry(header(&r, "x-meridian-region")).or_default() += 1;
            }
            counts
        }));
    }
    let mut total: HashMap<String, u32> = HashMap::new();
    for t in tasks {
        for (k, v) in t.await.unwrap() {
            *total.entry(k).or_default() += v;
        }
    }
    for (region, want) in [
        ("us-east-1", 0.6),
        ("eu-west-1", 0.3),
        ("ap-southeast-1", 0.1),
    ] {
        let got = f64::from(total.get(region).copied().unwrap_or(0)) / 10_000.0;
        assert!(
            (got - want).abs() < 0.03,
            "{region}: {got:.3} of traffic, want {want} ({total:?})"
        );
    }
}
