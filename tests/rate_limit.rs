//! Local rate limits per route (issue 29), end to end over real sockets: the
//! 429 with its fields, budgets per client address and per header value, a
//! route without a limit untouched, the metric, and the refill.

mod support;

use std::time::Duration;

use support::*;

/// Two limited routes and one without a limit; X-Forwarded-For from loopback
/// is believed, so each test client is the address it claims.
fn config(origin: std::net::SocketAddr) -> String {
    one_region_config(
        origin,
        r#"
client_ip: { trusted_proxies: [127.0.0.1/32] }
routes:
  - match: { path_prefix: /api }
    rate_limit: { key: client_ip, rate: 1/s, burst: 3, headers: always }
  - match: { path_prefix: /keyed }
    rate_limit: { key: "header:X-Api-Key", rate: 1/m, burst: 2 }
"#,
    )
}

async fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(gw.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn statuses(gw: &Gateway, path: &str, headers: &[(&str, &str)], n: usize) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(get(gw, path, headers).await.status().as_u16());
    }
    out
}

fn header<'a>(r: &'a reqwest::Response, name: &str) -> &'a str {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn over_its_budget_a_client_gets_429_and_the_origin_never_sees_it() {
    let o = origin("us-east-1").await;
    let gw = Gateway::start(&config(o.addr)).await;
    let a = [("X-Forwarded-For", "203.0.113.1")];
    let b = [("X-Forwarded-For", "203.0.113.2")];

    // Admitted answers carry what is left and when the bucket is full again.
    let mut left = Vec::new();
    for _ in 0..3 {
        let r = get(&gw, "/api/a", &a).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "ratelimit-policy"),
            "\"route-0\";q=1;w=1;meridian-burst=3"
        );
        left.push(header(&r, "ratelimit").to_string());
    }
    assert_eq!(
        left,
        [
            "\"route-0\";r=2;t=1",
            "\"route-0\";r=1;t=2",
            "\"route-0\";r=0;t=3"
        ]
    );
    let refused = get(&gw, "/api/a", &a).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "retry-after"), "1");
    assert_eq!(
        header(&refused, "ratelimit-policy"),
        "\"route-0\";q=1;w=1;meridian-burst=3"
    );
    assert_eq!(header(&refused, "ratelimit"), "\"route-0\";r=0;t=1");
    assert_eq!(header(&refused, "content-type"), "application/json");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["error"], "rate_limited", "{body}");

    // Another client has its own budget; a route without a limit has none.
    assert_eq!(statuses(&gw, "/api/b", &b, 3).await, [200, 200, 200]);
    assert_eq!(statuses(&gw, "/free", &a, 20).await, [200; 20]);
    let free = get(&gw, "/free", &a).await;
    assert!(free.headers().get("ratelimit").is_none());
    assert!(free.headers().get("ratelimit-policy").is_none());

    // The origin saw exactly the admitted requests.
    let seen = |p: &str| o.control.seen().iter().filter(|s| s.path == p).count();
    assert_eq!((seen("/api/a"), seen("/api/b"), seen("/free")), (3, 3, 21));

    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(
            &m,
            "meridian_requests_rate_limited_total",
            &[("route", "0")]
        ),
        1.0
    );
    // Created at 0 for every limited route; nothing counted against a region.
    assert_eq!(
        label_values(&m, "meridian_requests_rate_limited_total", "route"),
        ["0", "1"].map(String::from).into()
    );
    assert_eq!(
        metric_sum(&m, "meridian_requests_total", &[("status_class", "4xx")]),
        1.0
    );
    let state = gw.state().await.to_string();
    assert!(!state.contains("\"errors\":1"), "{state}");

    // After the refill time, one more is admitted.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(get(&gw, "/api/a", &a).await.status(), 200);
    assert_eq!(get(&gw, "/api/a", &a).await.status(), 429);
}

#[tokio::test]
async fn a_header_key_gives_each_value_a_budget_and_no_header_the_clients_own() {
    let o = origin("us-east-1").await;
    let gw = Gateway::start(&config(o.addr)).await;
    let k1 = [("X-Forwarded-For", "203.0.113.1"), ("X-Api-Key", "k1")];
    let k1_elsewhere = [("X-Forwarded-For", "203.0.113.9"), ("X-Api-Key", "k1")];
    let k2 = [("X-Forwarded-For", "203.0.113.1"), ("X-Api-Key", "k2")];
    let none_a = [("X-Forwarded-For", "203.0.113.1")];
    let none_b = [("X-Forwarded-For", "203.0.113.2")];

    // `headers` left at `limited`: an admitted answer carries no fields.
    let admitted = get(&gw, "/keyed", &k1).await;
    assert_eq!(admitted.status(), 200);
    assert!(admitted.headers().get("ratelimit").is_none());
    assert!(admitted.headers().get("ratelimit-policy").is_none());
    assert_eq!(statuses(&gw, "/keyed", &k1, 2).await, [200, 429]);
    // The key is the header's value, wherever the client is.
    assert_eq!(statuses(&gw, "/keyed", &k1_elsewhere, 1).await, [429]);
    assert_eq!(statuses(&gw, "/keyed", &k2, 3).await, [200, 200, 429]);
    // Without the header: keyed by the client's address.
    assert_eq!(statuses(&gw, "/keyed", &none_a, 3).await, [200, 200, 429]);
    assert_eq!(statuses(&gw, "/keyed", &none_b, 3).await, [200, 200, 429]);
    let refused = get(&gw, "/keyed", &k1).await;
    assert_eq!(
        header(&refused, "ratelimit-policy"),
        "\"route-1\";q=1;w=60;meridian-burst=2"
    );
    let wait: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(
        header(&refused, "ratelimit"),
        format!("\"route-1\";r=0;t={wait}")
    );

    assert_eq!(o.control.seen().len(), 8);
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(
            &m,
            "meridian_requests_rate_limited_total",
            &[("route", "1")]
        ),
        6.0
    );
}

/// Rewrites the config file (write, then rename: no half file is read) and
/// waits until the file watch has applied it.
async fn reload(gw: &Gateway, yaml: &str) {
    let sha = |s: serde_json::Value| s["config"]["sha256"].as_str().unwrap().to_string();
    let before = sha(gw.state().await);
    let yaml = yaml
        .replace("{{LISTEN}}", &gw.addr.to_string())
        .replace("{{ADMIN}}", &gw.admin.to_string());
    let tmp = gw.config_path.with_extension("tmp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, &gw.config_path).unwrap();
    eventually(Duration::from_secs(10), "the reload", || async {
        let now = sha(gw.state().await);
        seen_if(now != before, now)
    })
    .await;
}

/// A reload that keeps a route's limit keeps its clients' budgets; one that
/// changes the limit starts it afresh.
#[tokio::test]
async fn a_reload_keeps_budgets_unless_the_limit_changed() {
    let o = origin("us-east-1").await;
    let gw = Gateway::start(&config(o.addr)).await;
    let k1 = [("X-Api-Key", "k1")];
    assert_eq!(statuses(&gw, "/keyed", &k1, 3).await, [200, 200, 429]);

    // The same limit, with an unrelated change (a new route in front).
    let same = config(o.addr).replace("routes:\n", "routes:\n  - match: { path_prefix: /new }\n");
    reload(&gw, &same).await;
    assert_eq!(statuses(&gw, "/keyed", &k1, 1).await, [429]);
    let changed = config(o.addr).replace("rate: 1/m, burst: 2", "rate: 1/m, burst: 3");
    reload(&gw, &changed).await;
    assert_eq!(statuses(&gw, "/keyed", &k1, 4).await, [200, 200, 200, 429]);
}

/// `key: country`: clients of one country share a bucket, and every client of
/// unknown country shares the `XX` one (the committed test database maps
/// 127.0.2.0/24 to DE and 127.0.3.0/24 to JP; 10.0.0.0/8 is unknown).
#[tokio::test]
async fn a_country_key_gives_each_country_one_budget() {
    let o = origin("us-east-1").await;
    let yaml = one_region_config(
        o.addr,
        r#"
client_ip: { trusted_proxies: [127.0.0.1/32] }
geoip: { database: "{{REPO}}/geoip/test-city.mmdb" }
routes:
  - rate_limit: { key: country, rate: 1/m, burst: 2 }
"#,
    );
    let gw = Gateway::start(&yaml).await;
    let from = |ip: &'static str| [("X-Forwarded-For", ip)];
    assert_eq!(statuses(&gw, "/", &from("127.0.2.1"), 2).await, [200, 200]);
    assert_eq!(statuses(&gw, "/", &from("127.0.2.2"), 1).await, [429]);
    assert_eq!(
        statuses(&gw, "/", &from("127.0.3.1"), 3).await,
        [200, 200, 429]
    );
    assert_eq!(statuses(&gw, "/", &from("10.1.2.3"), 2).await, [200, 200]);
    assert_eq!(statuses(&gw, "/", &from("10.9.8.7"), 1).await, [429]);
    assert_eq!(o.control.seen().len(), 6);
}
