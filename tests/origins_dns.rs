//! Origins behind DNS names whose addresses change (issue 27), against a real DNS
//! server: dnsmasq on loopback answering from a hosts file the test rewrites, with
//! a 1 s TTL (`support::dnsmasq`). A name's addresses are simulated origins on
//! 127.0.0.11, .12, ... sharing one port (`support::endpoints`), so moving a name
//! is rewriting its records, and killing one address kills one endpoint.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::dnsmasq::{query, Dnsmasq, QTYPE_A, QTYPE_AAAA};
use support::endpoints::{same_port_origins, Endpoint};
use support::*;

const REGION: &str = "us-east-1";
const NAME: &str = "alb-1.example.test";

/// Probes fast enough that a dead endpoint is down within a second (a refused
/// connection fails at once: 3 × 250 ms), slow enough not to time out on a busy
/// 2-core machine.
const HEALTH: &str =
    "health: { interval: 250ms, timeout: 200ms, jitter: 0%, healthy_threshold: 1, unhealthy_threshold: 3 }";

/// One region, us-east-1, with `origins` (addresses as written), resolving names
/// with `dns`; `rest` is added.
fn config(dns: &Dnsmasq, origins: &[&str], rest: &str) -> String {
    let list = origins
        .iter()
        .map(|a| format!("{{ address: \"{a}\" }}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
local_region: {REGION}
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
resolver: {{ nameservers: ["{ns}"], min_ttl: 1s, max_ttl: 60s }}
regions:
  {REGION}: {{ origins: [ {list} ] }}
{HEALTH}
{rest}
"#,
        ns = dns.nameserver(),
    )
}

/// `NAME:port`: the origin as written in the config (and its `origin` label).
fn named(endpoints: &[Endpoint]) -> String {
    format!("{NAME}:{}", endpoints[0].addr.port())
}

/// `(ip, NAME)` records for `endpoints`.
fn records(endpoints: &[&Endpoint]) -> Vec<(String, &'static str)> {
    endpoints.iter().map(|e| (e.ip(), NAME)).collect()
}

/// `IP:PORT` of `endpoints`, sorted: how `/admin/state` and the journal list them.
fn addr_list(endpoints: &[&Endpoint]) -> Vec<String> {
    let mut v: Vec<String> = endpoints.iter().map(|e| e.addr.to_string()).collect();
    v.sort();
    v
}

/// The origin written `address` in us-east-1 of a state document (Null if absent).
fn origin_of<'a>(state: &'a Value, address: &str) -> &'a Value {
    state["regions"][REGION]["origins"]
        .as_array()
        .and_then(|os| os.iter().find(|o| o["address"] == address))
        .unwrap_or(&Value::Null)
}

/// The origin's endpoint addresses (`addresses[].address`), sorted.
fn addresses(origin: &Value) -> Vec<String> {
    let mut v: Vec<String> = origin["addresses"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["address"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The endpoint `addr` of an origin object (Null if absent).
fn endpoint<'a>(origin: &'a Value, addr: &str) -> &'a Value {
    origin["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["address"] == addr))
        .unwrap_or(&Value::Null)
}

/// Waits (10 s at most) until the origin written `address` satisfies `ok`, and
/// returns it; on timeout the failure shows the origin as last seen.
async fn wait_origin(
    gw: &Gateway,
    address: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    eventually(Duration::from_secs(10), what, || async {
        let s = gw.state().await;
        let o = origin_of(&s, address).clone();
        seen_if(ok(&o), o)
    })
    .await
}

/// Waits until the origin's endpoints are exactly `want`, each eligible.
async fn wait_serving(gw: &Gateway, address: &str, want: &[String]) -> Value {
    wait_origin(
        gw,
        address,
        &format!("{address} serving from {want:?}"),
        |o| addresses(o) == want && want.iter().all(|a| endpoint(o, a)["eligible"] == true),
    )
    .await
}

/// Waits until every endpoint in `eps` has served at least `more` requests more
/// than `from` (its count when the wait began): traffic measured, not slept for.
async fn wait_served(eps: &[&Endpoint], more: u64, what: &str) {
    let from: Vec<u64> = eps.iter().map(|e| e.served()).collect();
    eventually(Duration::from_secs(20), what, || async {
        let got: Vec<u64> = eps.iter().map(|e| e.served()).collect();
        let ok = got.iter().zip(&from).all(|(g, f)| g - f >= more);
        seen_if(ok, (from.clone(), got))
    })
    .await;
}

async fn events(gw: &Gateway, kind: &str) -> Vec<Value> {
    let r = reqwest::get(gw.admin_url(&format!("/admin/events?kind={kind}")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "GET /admin/events?kind={kind}");
    let doc: Value = r.json().await.unwrap();
    doc["events"].as_array().unwrap().clone()
}

/// Whether the exposition has a sample of `name` with exactly these label values
/// among its labels (created at 0 counts; `metric_sum` cannot tell absent from 0).
fn has_series(text: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    text.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .any(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
}

fn lookups(metrics: &str, origin: &str, result: &str) -> f64 {
    metric_sum(
        metrics,
        "meridian_dns_lookups_total",
        &[("region", REGION), ("origin", origin), ("result", result)],
    )
}

/// The test fixture itself, needing nothing of the gateway: dnsmasq answers from
/// its hosts file with the 1 s TTL, is authoritative for `example.test` (NXDOMAIN
/// for unknown names, an empty AAAA answer for an A-only name, never REFUSED),
/// re-reads the file on SIGHUP, and answers nothing once stopped; the same-port
/// origins serve on their own addresses.
#[tokio::test]
async fn the_fixture_dnsmasq_answers_from_its_file_and_rereads_it() {
    let eps = same_port_origins(REGION, 3).await;
    assert!(eps.iter().all(|e| e.addr.port() == eps[0].addr.port()));
    for e in &eps {
        let r = reqwest::get(format!("http://{}/", e.addr)).await.unwrap();
        assert_eq!(r.status(), 200, "{}", e.addr);
        assert_eq!(e.served(), 1, "{} counted its request", e.addr);
    }
    let mut dns = Dnsmasq::start(&records(&[&eps[0], &eps[1]])).await;

    let a = query(dns.addr, NAME, QTYPE_A).await.unwrap();
    let mut v4: Vec<String> = a.v4.iter().map(|ip| ip.to_string()).collect();
    v4.sort();
    assert_eq!((a.rcode, v4), (0, vec![eps[0].ip(), eps[1].ip()]));
    assert_eq!(a.ttls, vec![1, 1], "every answer carries the 1 s TTL");
    let aaaa = query(dns.addr, NAME, QTYPE_AAAA).await.unwrap();
    assert_eq!(
        (aaaa.rcode, aaaa.records),
        (0, 0),
        "A-only name: empty AAAA"
    );
    let unknown = query(dns.addr, "nowhere.example.test", QTYPE_A)
        .await
        .unwrap();
    assert_eq!((unknown.rcode, unknown.records), (3, 0), "NXDOMAIN");

    dns.set(&records(&[&eps[2]])).await;
    let a = query(dns.addr, NAME, QTYPE_A).await.unwrap();
    assert_eq!(a.v4, vec![eps[2].addr.ip()]);

    let server = dns.addr;
    dns.stop();
    let gone = query(server, NAME, QTYPE_A).await;
    assert!(gone.is_err(), "a stopped dnsmasq answered: {gone:?}");

    let mut eps = eps;
    eps[0].stop();
    assert!(
        reqwest::get(format!("http://{}/", eps[0].addr))
            .await
            .is_err(),
        "a stopped endpoint refuses"
    );
    let r = reqwest::get(format!("http://{}/", eps[1].addr))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the others still serve");
}

/// Rotation under load, the ALB case: a name with two addresses moves to two
/// others while clients keep sending. Proves that both addresses of a name get
/// traffic (requests spread over endpoints, not the first address only); that the
/// gateway sees the new records once their TTL has run out, without a reload, and
/// journals the change with the old and new sets; that the new addresses serve at
/// once (presumed as healthy as their origin) and the old ones get no request
/// after that, so when they then die (connections reset) no request fails.
#[tokio::test]
async fn rotation_under_load_loses_no_request() {
    let mut eps = same_port_origins(REGION, 4).await;
    let address = named(&eps);
    let (old, new) = (
        addr_list(&[&eps[0], &eps[1]]),
        addr_list(&[&eps[2], &eps[3]]),
    );
    let dns = Dnsmasq::start(&records(&[&eps[0], &eps[1]])).await;
    let gw = Gateway::start(&config(&dns, &[&address], "")).await;
    wait_serving(&gw, &address, &old).await;
    wait_metric(
        &gw,
        "meridian_origin_endpoints",
        &[("region", REGION), ("origin", &address)],
        2.0,
        Duration::from_secs(5),
    )
    .await;

    let load = Load::start(gw.url("/"), 4);
    wait_served(&[&eps[0], &eps[1]], 50, "both first addresses serving").await;

    dns.set(&records(&[&eps[2], &eps[3]])).await;
    let changed = Instant::now();
    let seen = wait_origin(&gw, &address, "the new records in service", |o| {
        addresses(o) == new
    })
    .await;
    let took = changed.elapsed();
    eprintln!("new records in service {took:?} after dnsmasq answered them");
    // TTL 1 s (min_ttl 1 s): the old answer is at most 1 s old when the records
    // change; the rest is lookup time on a busy machine.
    assert!(took <= Duration::from_secs(4), "took {took:?}");
    for a in &new {
        assert_eq!(
            endpoint(&seen, a)["eligible"],
            true,
            "a new endpoint of a passing origin serves at once: {seen:#}"
        );
    }
    eventually(
        Duration::from_secs(2),
        "the new endpoints probed",
        || async { seen_if(eps[2].probes() >= 1 && eps[3].probes() >= 1, ()) },
    )
    .await;

    // Requests that were in flight to the old addresses have ended once the new
    // ones have each served a few: from then on the old get nothing.
    wait_served(&[&eps[2], &eps[3]], 20, "both new addresses serving").await;
    let old_counts = (eps[0].served(), eps[1].served());
    wait_served(
        &[&eps[2], &eps[3]],
        100,
        "more traffic on the new addresses",
    )
    .await;
    assert_eq!(
        (eps[0].served(), eps[1].served()),
        old_counts,
        "an address that left the records got requests (while still alive)"
    );

    // The old addresses die, as a retired ALB node does.
    eps[0].stop();
    eps[1].stop();
    wait_served(&[&eps[2], &eps[3]], 100, "traffic after the old ones died").await;
    let (ok, failed) = load.finish().await;
    eprintln!(
        "served: {:?}; answered {ok}, failed {failed}",
        eps.iter().map(|e| e.served()).collect::<Vec<_>>()
    );
    assert_eq!(failed, 0, "failed requests ({ok} answered)");
    assert!(ok > 0);

    let journal = events(&gw, "origin_addresses").await;
    let subject = format!("{REGION}/{address}");
    let (from, to) = (old.join(","), new.join(","));
    assert!(
        journal
            .iter()
            .any(|e| e["subject"] == subject && e["from"] == from && e["to"] == to),
        "no origin_addresses event {subject}: {from} -> {to}: {journal:#?}"
    );
    wait_metric(
        &gw,
        "meridian_origin_endpoints",
        &[("region", REGION), ("origin", &address)],
        2.0,
        Duration::from_secs(5),
    )
    .await;
    let m = gw.metrics().await;
    assert!(
        lookups(&m, &address, "ok") >= 2.0,
        "the name was looked up again"
    );
    let state = gw.state().await;
    let o = origin_of(&state, &address);
    assert_eq!(o["dns"]["name"], NAME, "{o:#}");
    assert_eq!(o["dns"]["resolved"], true);
    assert_eq!(o["dns"]["last_result"], "ok");
}

/// The DNS server stops answering (stale-if-error): the last good addresses stay
/// in service beyond their TTL, the failed lookups are counted as `error` and
/// shown in `/admin/state`, and no request fails.
#[tokio::test]
async fn a_dns_server_that_stops_answering_keeps_the_last_addresses() {
    let eps = same_port_origins(REGION, 2).await;
    let address = named(&eps);
    let both = addr_list(&[&eps[0], &eps[1]]);
    let mut dns = Dnsmasq::start(&records(&[&eps[0], &eps[1]])).await;
    let gw = Gateway::start(&config(&dns, &[&address], "")).await;
    wait_serving(&gw, &address, &both).await;
    let m = gw.metrics().await;
    assert_eq!(lookups(&m, &address, "error"), 0.0);
    assert!(
        has_series(
            &m,
            "meridian_dns_lookups_total",
            &[("origin", &address), ("result", "error")]
        ),
        "meridian_dns_lookups_total{{result=\"error\"}} exists at 0 from start-up"
    );

    let load = Load::start(gw.url("/"), 2);
    wait_served(&[&eps[0], &eps[1]], 20, "both addresses serving").await;
    dns.stop();
    let stopped = Instant::now();
    // A lookup that gets no answer fails after the resolver's own timeout, so
    // wait for the count rather than for a fixed time.
    eventually(
        Duration::from_secs(40),
        "a failed lookup counted",
        || async {
            let n = lookups(&gw.metrics().await, &address, "error");
            seen_if(n >= 1.0, n)
        },
    )
    .await;
    eprintln!(
        "first failed lookup counted {:?} after the stop",
        stopped.elapsed()
    );
    // Here time itself is the condition: at least three TTLs without DNS (if the
    // failure was counted sooner), then both addresses still serve.
    tokio::time::sleep_until((stopped + Duration::from_secs(3)).into()).await;
    wait_served(&[&eps[0], &eps[1]], 50, "both addresses still serving").await;
    let (ok, failed) = load.finish().await;
    assert_eq!(failed, 0, "failed requests ({ok} answered)");

    let state = gw.state().await;
    let o = origin_of(&state, &address);
    assert_eq!(
        addresses(o),
        both,
        "stale-if-error keeps the last set: {o:#}"
    );
    assert_eq!(o["eligible"], true, "{o:#}");
    for a in &both {
        assert_eq!(endpoint(o, a)["eligible"], true, "{o:#}");
    }
    assert_eq!(o["dns"]["resolved"], true, "{o:#}");
    assert_eq!(o["dns"]["last_result"], "error", "{o:#}");
    assert!(o["dns"]["last_error"].is_string(), "{o:#}");
    assert!(o["dns"]["lookups"].as_u64().unwrap_or(0) >= 2, "{o:#}");
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(
            &m,
            "meridian_origin_endpoints",
            &[("region", REGION), ("origin", &address)]
        ),
        2.0
    );
    // Journaled once when the lookups started failing, with the set kept.
    let failing: Vec<Value> = events(&gw, "origin_addresses")
        .await
        .into_iter()
        .filter(|e| e["cause"].as_str().is_some_and(|c| c.contains("failed")))
        .collect();
    assert_eq!(failing.len(), 1, "{failing:#?}");
    assert_eq!(failing[0]["subject"], format!("{REGION}/{address}"));
    assert_eq!(failing[0]["from"], both.join(","));
    assert_eq!(failing[0]["to"], both.join(","));
}

/// A name that never resolves makes its origin ineligible, not the config invalid:
/// the gateway starts and becomes ready, every request is served by the region's
/// other origin (an IP address), the name's origin shows no addresses and
/// `resolved: false`, and the lookups are counted as `empty` (NXDOMAIN). The IP
/// origin has its DNS series too, at 0: it is never looked up.
#[tokio::test]
async fn a_name_that_never_resolves_leaves_the_region_to_its_other_origins() {
    let ip_origin = origin(REGION).await;
    let dns = Dnsmasq::start(&[("127.0.0.11", NAME)]).await;
    let nowhere = format!("nowhere.example.test:{}", ip_origin.addr.port());
    let by_ip = ip_origin.addr.to_string();
    let gw = Gateway::start(&config(&dns, &[&by_ip, &nowhere], "")).await;
    assert_eq!(gw.state().await["ready"], true);

    for i in 0..50 {
        let r = reqwest::get(gw.url(&format!("/n/{i}"))).await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
    }
    assert_eq!(
        ip_origin
            .control
            .requests
            .load(std::sync::atomic::Ordering::Relaxed),
        50,
        "the IP origin served them all"
    );

    eventually(
        Duration::from_secs(10),
        "an empty lookup counted",
        || async {
            let n = lookups(&gw.metrics().await, &nowhere, "empty");
            seen_if(n >= 1.0, n)
        },
    )
    .await;
    let state = gw.state().await;
    let o = origin_of(&state, &nowhere);
    assert_eq!(o["eligible"], false, "{o:#}");
    assert_eq!(o["addresses"], serde_json::json!([]), "{o:#}");
    assert_eq!(o["dns"]["name"], "nowhere.example.test", "{o:#}");
    assert_eq!(o["dns"]["resolved"], false, "{o:#}");
    assert_eq!(o["dns"]["last_result"], "empty", "{o:#}");
    let ip = origin_of(&state, &by_ip);
    assert_eq!(ip["eligible"], true, "{ip:#}");
    assert_eq!(ip["dns"]["name"], Value::Null, "an IP literal: {ip:#}");
    assert_eq!(addresses(ip), vec![by_ip.clone()], "{ip:#}");
    assert_eq!(state["regions"][REGION]["health"], "healthy");

    wait_metric(
        &gw,
        "meridian_origin_endpoints",
        &[("region", REGION), ("origin", &by_ip)],
        1.0,
        Duration::from_secs(5),
    )
    .await;
    let m = gw.metrics().await;
    assert!(
        has_series(
            &m,
            "meridian_origin_endpoints",
            &[("region", REGION), ("origin", &nowhere)]
        ),
        "meridian_origin_endpoints{{origin={nowhere}}} exists"
    );
    assert_eq!(
        metric_sum(
            &m,
            "meridian_origin_endpoints",
            &[("region", REGION), ("origin", &nowhere)]
        ),
        0.0
    );
    for result in ["ok", "empty", "error"] {
        assert!(
            has_series(
                &m,
                "meridian_dns_lookups_total",
                &[("origin", &by_ip), ("result", result)]
            ),
            "meridian_dns_lookups_total{{origin={by_ip},result={result}}} at 0 from start-up"
        );
        assert_eq!(lookups(&m, &by_ip, result), 0.0, "{result}");
    }
    assert_eq!(lookups(&m, &nowhere, "ok"), 0.0);
}

/// One endpoint of a name dies: only that address goes out (its own probes or
/// its own outlier ejection), the origin stays eligible on its other address, and
/// no request fails.
#[tokio::test]
async fn one_dead_endpoint_leaves_its_origin_in_service() {
    let mut eps = same_port_origins(REGION, 2).await;
    let address = named(&eps);
    let both = addr_list(&[&eps[0], &eps[1]]);
    let dns = Dnsmasq::start(&records(&[&eps[0], &eps[1]])).await;
    let gw = Gateway::start(&config(&dns, &[&address], "")).await;
    wait_serving(&gw, &address, &both).await;

    let load = Load::start(gw.url("/"), 4);
    wait_served(&[&eps[0], &eps[1]], 20, "both addresses serving").await;
    let dead = eps[1].addr.to_string();
    eps[1].stop();
    let o = wait_origin(&gw, &address, &format!("{dead} out of service"), |o| {
        let e = endpoint(o, &dead);
        e["eligible"] == false && (e["probe_state"] == "unhealthy" || e["ejected"] == true)
    })
    .await;
    assert_eq!(o["eligible"], true, "the origin stays in service: {o:#}");
    assert_eq!(
        addresses(&o),
        both,
        "the dead address is still in the records"
    );
    let alive = endpoint(&o, &eps[0].addr.to_string()).clone();
    assert_eq!(alive["eligible"], true, "{o:#}");
    assert_eq!(alive["ejected"], false, "{o:#}");
    assert_eq!(
        o["probe_state"], alive["probe_state"],
        "the best endpoint's"
    );

    wait_served(&[&eps[0]], 100, "the live address serving on").await;
    let (ok, failed) = load.finish().await;
    assert_eq!(failed, 0, "failed requests ({ok} answered)");
    let state = gw.state().await;
    assert_eq!(state["regions"][REGION]["health"], "healthy", "{state:#}");
}

/// At most 16 addresses of a name are used, the first 16 in sorted order: a name
/// with 20 A records gets 16 endpoints, and the limit shows in the gauge.
#[tokio::test]
async fn a_name_uses_at_most_16_addresses() {
    let port = RefusingPort::bind();
    let ips: Vec<String> = (11..31).map(|i| format!("127.0.0.{i}")).collect();
    let recs: Vec<(&str, &str)> = ips.iter().rev().map(|ip| (ip.as_str(), NAME)).collect();
    let dns = Dnsmasq::start(&recs).await;
    let address = format!("{NAME}:{}", port.addr.port());
    // An IP origin that serves keeps the region ready whatever the 20 do.
    let ip_origin = origin(REGION).await;
    let gw = Gateway::start(&config(&dns, &[&ip_origin.addr.to_string(), &address], "")).await;
    let mut want: Vec<String> = ips
        .iter()
        .map(|ip| format!("{ip}:{}", port.addr.port()))
        .collect();
    want.sort();
    want.truncate(16);
    wait_origin(&gw, &address, "the first 16 addresses in use", |o| {
        addresses(o) == want
    })
    .await;
    wait_metric(
        &gw,
        "meridian_origin_endpoints",
        &[("region", REGION), ("origin", &address)],
        16.0,
        Duration::from_secs(5),
    )
    .await;
}

/// `meridian check -c FILE`: (exit code, stderr).
fn check(yaml: &str) -> (i32, String) {
    let dir = temp_dir("check-dns");
    let path = dir.join("meridian.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("check")
        .arg("-c")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn check_config(origins: &[String], rest: &str) -> String {
    let list = origins
        .iter()
        .map(|a| format!("      - address: {a}\n"))
        .collect::<String>();
    format!(
        "local_region: us-east-1\nlisteners:\n  - address: 127.0.0.1:8080\nadmin:\n  address: 127.0.0.1:9901\nregions:\n  us-east-1:\n    origins:\n{list}{rest}"
    )
}

/// `meridian check` states the origin limit instead of dropping origins silently:
/// 16 origins in a region pass, 17 fail naming the limit. A name that resolves
/// nowhere passes with a warning (the gateway would start and serve without it;
/// whether a name resolves depends on where check runs), as does the `resolver`
/// section, while a name without a port is still refused.
#[test]
fn check_states_the_origin_limit_and_warns_of_names_that_do_not_resolve() {
    let n = |count: u16| -> Vec<String> {
        (0..count)
            .map(|i| format!("127.0.0.1:{}", 18001 + i))
            .collect()
    };
    let (code, err) = check(&check_config(&n(16), ""));
    assert_eq!(code, 0, "16 origins: {err}");
    let (code, err) = check(&check_config(&n(17), ""));
    assert_eq!(code, 1, "17 origins: {err}");
    assert!(
        err.contains("origins") && err.contains("16"),
        "the error names the limit: {err}"
    );

    let resolver =
        "resolver:\n  nameservers: [\"127.0.0.1:5353\"]\n  min_ttl: 1s\n  max_ttl: 60s\n";
    let (code, err) = check(&check_config(
        &["nowhere.example.test:443".into(), "127.0.0.1:18001".into()],
        resolver,
    ));
    assert_eq!(code, 0, "an unresolvable name passes check: {err}");
    assert!(
        err.contains("warning: regions.") && err.contains("`nowhere.example.test`"),
        "check warns of the name: {err}"
    );
    let (code, err) = check(&check_config(&["nowhere.example.test".into()], ""));
    assert_eq!(code, 1, "a name without a port: {err}");
    assert!(err.contains("host:port"), "{err}");
}
