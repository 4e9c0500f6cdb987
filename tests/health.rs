//! Health end to end: active deep probes with thresholds, degraded states and
//! replication lag, failover across regions, passive outlier ejection, and no
//! idempotent request lost when an origin dies.

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use support::*;

/// us-east-1 (local, two origins) and eu-west-1 (one), geo steering, fast probes.
fn config(use1: &[&SimOrigin], euw1: &SimOrigin, extra: &str) -> String {
    let list = |os: &[&SimOrigin]| {
        os.iter()
            .map(|o| format!("{{ address: \"{}\" }}", o.addr))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ origins: [ {} ] }}
  eu-west-1: {{ origins: [ {} ] }}
health: {{ interval: 100ms, timeout: 80ms, jitter: 0%, healthy_threshold: 2, unhealthy_threshold: 2 }}
outlier_detection: {{ consecutive_failures: 3, base_ejection: 1s, max_ejection: 4s, max_ejected_percent: 50 }}
routing: {{ steering: geo, geo: {{ default: us-east-1 }} }}
debug_headers: true
{extra}
"#,
        list(use1),
        list(&[euw1])
    )
}

async fn state(gw: &Gateway) -> serde_json::Value {
    reqwest::get(gw.admin_url("/admin/state"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn wait_state(
    gw: &Gateway,
    what: &str,
    f: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = state(gw).await;
        if f(&s) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get(gw: &Gateway, path: &str) -> reqwest::Response {
    reqwest::get(gw.url(path)).await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map_or(String::new(), |v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn ready_only_after_every_origin_was_probed() {
    let (a, b, e) = (
        origin("us-east-1").await,
        origin("us-east-1").await,
        origin("eu-west-1").await,
    );
    // The slow origin answers its first probe only after 60 ms.
    e.control.delay_ms.store(60, Relaxed);
    let gw = Gateway::start(&config(&[&a, &b], &e, "")).await;
    for o in [&a, &b, &e] {
        assert!(
            o.control.probes.load(Relaxed) >= 1,
            "ready before {} was probed",
            o.addr
        );
    }
    let s = state(&gw).await;
    assert_eq!(s["ready"], true);
}

#[tokio::test]
async fn an_unhealthy_region_fails_over_and_comes_back() {
    let (a, b, e) = (
        origin("us-east-1").await,
        origin("us-east-1").await,
        origin("eu-west-1").await,
    );
    let gw = Gateway::start(&config(&[&a, &b], &e, "")).await;
    assert_eq!(
        header(&get(&gw, "/").await, "x-meridian-region"),
        "us-east-1"
    );

    a.control.set_health(r#"{"status":"unhealthy"}"#);
    b.control.health_status.store(500, Relaxed);
    wait_state(&gw, "us-east-1 unhealthy", |s| {
        s["regions"]["us-east-1"]["health"] == "unhealthy"
    })
    .await;
    let r = get(&gw, "/").await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-meridian-region"), "eu-west-1");
    assert_eq!(header(&r, "x-meridian-decision"), "geo,failover");
    let m = gw.metrics().await;
    assert!(
        metric_sum(
            &m,
            "meridian_probe_failures_total",
            &[("reason", "unhealthy")]
        ) >= 2.0
    );
    assert!(metric_sum(&m, "meridian_probe_failures_total", &[("reason", "status")]) >= 2.0);
    wait_metric(
        &gw,
        "meridian_region_healthy",
        &[("region", "us-east-1")],
        0.0,
        Duration::from_secs(5),
    )
    .await;

    a.control.set_health(r#"{"status":"healthy"}"#);
    wait_state(&gw, "us-east-1 back", |s| {
        s["regions"]["us-east-1"]["health"] == "healthy"
    })
    .await;
    assert_eq!(
        header(&get(&gw, "/").await, "x-meridian-region"),
        "us-east-1"
    );
}

#[tokio::test]
async fn degraded_and_replication_lag_are_visible() {
    let (a, e) = (origin("us-east-1").await, origin("eu-west-1").await);
    let gw = Gateway::start(&config(&[&a], &e, "")).await;
    a.control.set_health(
        r#"{"status":"degraded","replication_lag_ms":350,"checks":{"db":{"status":"pass"}}}"#,
    );
    let s = wait_state(&gw, "degraded", |s| {
        s["regions"]["us-east-1"]["health"] == "degraded"
    })
    .await;
    assert_eq!(
        s["regions"]["us-east-1"]["origins"][0]["probe_state"],
        "degraded"
    );
    assert_eq!(s["regions"]["us-east-1"]["replication_lag_ms"], 350);
    wait_metric(
        &gw,
        "meridian_replication_lag_seconds",
        &[("region", "us-east-1")],
        0.35,
        Duration::from_secs(5),
    )
    .await;
    // Degraded still serves, at degraded_weight_factor (0.5) of its share: the
    // rest spills to the next region.
    let mut home = 0;
    for _ in 0..200 {
        if header(&get(&gw, "/").await, "x-meridian-region") == "us-east-1" {
            home += 1;
        }
    }
    assert!((70..=130).contains(&home), "us-east-1 kept {home} of 200");
}

#[tokio::test]
async fn consecutive_errors_eject_an_origin_until_it_has_served_its_time() {
    let (a, b, e) = (
        origin("us-east-1").await,
        origin("us-east-1").await,
        origin("eu-west-1").await,
    );
    let gw = Gateway::start(&config(&[&a, &b], &e, "")).await;
    // Power of two choices over two origins takes the one with less latency every
    // time: slow `b` down so that `a` gets the requests that eject it.
    b.control.delay_ms.store(30, Relaxed);
    a.control.status.store(500, Relaxed);
    // Until a is ejected some requests meet its 500s; then only b answers.
    let mut ejected = false;
    for _ in 0..40 {
        get(&gw, "/").await;
        let s = state(&gw).await;
        if s["regions"]["us-east-1"]["origins"][0]["ejected"] == true {
            ejected = true;
            break;
        }
    }
    assert!(ejected, "origin with 500s never ejected");
    b.control.delay_ms.store(0, Relaxed);
    let before = a.control.requests.load(Relaxed);
    for _ in 0..20 {
        let r = get(&gw, "/").await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        a.control.requests.load(Relaxed),
        before,
        "ejected origin got traffic"
    );
    // Never both: 2 of 2 would exceed max_ejected_percent 50.
    b.control.status.store(500, Relaxed);
    for _ in 0..6 {
        get(&gw, "/").await;
    }
    let s = state(&gw).await;
    assert_eq!(s["regions"]["us-east-1"]["origins"][1]["ejected"], false);
    // It comes back by itself after base_ejection (1 s)...
    b.control.status.store(0, Relaxed);
    let s = state(&gw).await;
    let first = s["regions"]["us-east-1"]["origins"][0]["ejected_for_ms"]
        .as_u64()
        .unwrap();
    assert!(first <= 1000, "{first}");
    wait_state(&gw, "a back", |s| {
        s["regions"]["us-east-1"]["origins"][0]["ejected"] == false
    })
    .await;
    // ...and a second ejection lasts twice as long. (b is made slower so that
    // least-loaded choice sends the sequential requests to a.)
    b.control.delay_ms.store(20, Relaxed);
    let mut again = None;
    for _ in 0..40 {
        get(&gw, "/").await;
        let s = state(&gw).await;
        let o = &s["regions"]["us-east-1"]["origins"][0];
        if o["ejected"] == true {
            again = Some((
                o["times_ejected"].as_u64().unwrap(),
                o["ejected_for_ms"].as_u64().unwrap(),
            ));
            break;
        }
    }
    let (times, remaining) =
        again.unwrap_or_else(|| panic!("not ejected again: {}", a.control.requests.load(Relaxed)));
    assert_eq!(times, 2);
    assert!(
        (1000..=2000).contains(&remaining),
        "second ejection {remaining} ms"
    );
    a.control.status.store(0, Relaxed);
}

#[tokio::test]
async fn an_origin_its_probes_see_recover_is_no_longer_ejected() {
    let (a, b, e) = (
        origin("us-east-1").await,
        origin("us-east-1").await,
        origin("eu-west-1").await,
    );
    // An ejection far longer than the test: only the probes can end it.
    let long = config(&[&a, &b], &e, "").replace(
        "base_ejection: 1s, max_ejection: 4s",
        "base_ejection: 60s, max_ejection: 5m",
    );
    let gw = Gateway::start(&long).await;
    // a fails live traffic and is ejected, then its probes too (an outage). `b` is
    // slowed meanwhile so that power of two choices sends `a` the failing requests.
    b.control.delay_ms.store(30, Relaxed);
    a.control.status.store(500, Relaxed);
    let mut ejected = false;
    for _ in 0..40 {
        get(&gw, "/").await;
        if state(&gw).await["regions"]["us-east-1"]["origins"][0]["ejected"] == true {
            ejected = true;
            break;
        }
    }
    assert!(ejected, "origin with 500s never ejected");
    b.control.delay_ms.store(0, Relaxed);
    a.control.health_status.store(503, Relaxed);
    wait_state(&gw, "a unhealthy", |s| {
        s["regions"]["us-east-1"]["origins"][0]["probe_state"] == "unhealthy"
    })
    .await;
    // The outage ends: two passing probes make it healthy and lift the ejection,
    // 59 s early.
    a.control.status.store(0, Relaxed);
    a.control.health_status.store(0, Relaxed);
    let s = wait_state(&gw, "a back in service", |s| {
        let o = &s["regions"]["us-east-1"]["origins"][0];
        o["probe_state"] == "healthy" && o["ejected"] == false
    })
    .await;
    assert_eq!(s["regions"]["us-east-1"]["origins"][0]["ejected_for_ms"], 0);
    // And it serves again (b slowed so the least-loaded pick prefers a).
    b.control.delay_ms.store(20, Relaxed);
    let before = a.control.requests.load(Relaxed);
    for _ in 0..10 {
        assert_eq!(get(&gw, "/").await.status(), 200);
    }
    assert!(
        a.control.requests.load(Relaxed) > before,
        "a got no traffic"
    );
}

#[tokio::test]
async fn a_slow_health_endpoint_times_out_and_counts() {
    let (a, e) = (origin("us-east-1").await, origin("eu-west-1").await);
    let gw = Gateway::start(&config(&[&a], &e, "")).await;
    // Slower than the 80 ms probe timeout.
    a.control.delay_ms.store(150, Relaxed);
    wait_state(&gw, "slow origin down", |s| {
        s["regions"]["us-east-1"]["health"] == "unhealthy"
    })
    .await;
    let m = gw.metrics().await;
    assert!(
        metric_sum(
            &m,
            "meridian_probe_failures_total",
            &[("region", "us-east-1"), ("reason", "timeout")]
        ) >= 2.0
    );
}

#[tokio::test]
async fn a_dying_origin_costs_no_idempotent_request() {
    let (a, b, e) = (
        origin("us-east-1").await,
        origin("us-east-1").await,
        origin("eu-west-1").await,
    );
    let gw = Gateway::start(&config(&[&a, &b], &e, "")).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let a_seen = a.control.clone();
    let mut a = Some(a);
    for i in 0..200 {
        if i == 50 {
            // Stop accepting: new connections to it are refused from now on.
            drop(a.take());
        }
        let r = client
            .get(gw.url(&format!("/req/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "request {i} lost");
    }
    // Pooled connections to the dying origin may still finish their requests; the
    // last try of a failed one goes to the other region. None is lost or doubled.
    let served = a_seen.requests.load(Relaxed)
        + b.control.requests.load(Relaxed)
        + e.control.requests.load(Relaxed);
    assert_eq!(served, 200);
}

#[tokio::test]
async fn a_503_is_retried_elsewhere_for_gets_but_never_for_posts() {
    let (a, b, e) = (
        origin("us-east-1").await,
        origin("us-east-1").await,
        origin("eu-west-1").await,
    );
    // High threshold: outlier ejection stays out of the way of what is measured here.
    let yaml =
        config(&[&a, &b], &e, "").replace("consecutive_failures: 3", "consecutive_failures: 1000");
    let gw = Gateway::start(&yaml).await;
    // With two origins, power of two choices always compares both and takes the
    // one with less latency: slow `b` down (probes see it too) so `a` is preferred.
    b.control.delay_ms.store(30, Relaxed);
    a.control.status.store(503, Relaxed);
    for i in 0..400 {
        let r = get(&gw, &format!("/g/{i}")).await;
        assert_eq!(r.status(), 200, "GET {i}");
        if i >= 19 && a.control.requests.load(Relaxed) > 0 {
            break;
        }
    }
    assert!(
        a.control.requests.load(Relaxed) > 0,
        "the 503 origin was never tried"
    );
    let m = gw.metrics().await;
    assert!(metric_sum(&m, "meridian_retries_total", &[("reason", "status_503")]) >= 1.0);
    let known = meridian::telemetry::metric_labels::retry_reasons();
    assert_only_known_labels(&m, "meridian_retries_total", "reason", &known);
    // POSTs are not idempotent: a 503 goes back to the client, and no POST reaches two origins.
    let (a0, b0) = (
        a.control.requests.load(Relaxed),
        b.control.requests.load(Relaxed),
    );
    let mut failed = 0;
    for i in 0..20 {
        let r = reqwest::Client::new()
            .post(gw.url(&format!("/p/{i}")))
            .body("x")
            .send()
            .await
            .unwrap();
        if r.status() == 503 {
            failed += 1;
        }
    }
    let (a1, b1) = (
        a.control.requests.load(Relaxed),
        b.control.requests.load(Relaxed),
    );
    assert_eq!((a1 - a0) + (b1 - b0), 20, "a POST reached two origins");
    assert_eq!(failed, a1 - a0);
}

#[tokio::test]
async fn latency_steering_follows_measured_latency() {
    let (a, e) = (origin("us-east-1").await, origin("eu-west-1").await);
    let yaml = config(&[&a], &e, "").replace("steering: geo,", "steering: latency,");
    let gw = Gateway::start(&yaml).await;
    // us-east-1 slows down by 50 ms (probes see it too): traffic moves to eu-west-1.
    a.control.delay_ms.store(50, Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(&gw, "/").await;
        if header(&r, "x-meridian-region") == "eu-west-1" {
            assert_eq!(header(&r, "x-meridian-decision"), "latency");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "traffic never left the slow region"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And back when it is fast again.
    a.control.delay_ms.store(0, Relaxed);
    e.control.delay_ms.store(50, Relaxed);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while header(&get(&gw, "/").await, "x-meridian-region") != "us-east-1" {
        assert!(
            std::time::Instant::now() < deadline,
            "traffic never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn detection_takes_about_interval_times_threshold() {
    let (a, e) = (origin("us-east-1").await, origin("eu-west-1").await);
    let yaml = config(&[&a], &e, "")
        .replace(
            "interval: 100ms, timeout: 80ms",
            "interval: 200ms, timeout: 150ms",
        )
        .replace("unhealthy_threshold: 2", "unhealthy_threshold: 3");
    let gw = Gateway::start(&yaml).await;
    let t0 = std::time::Instant::now();
    a.control.drop_connections.store(true, Relaxed);
    wait_state(&gw, "down", |s| {
        s["regions"]["us-east-1"]["health"] == "unhealthy"
    })
    .await;
    let down = t0.elapsed();
    a.control.drop_connections.store(false, Relaxed);
    let t1 = std::time::Instant::now();
    wait_state(&gw, "up", |s| {
        s["regions"]["us-east-1"]["health"] == "healthy"
    })
    .await;
    let up = t1.elapsed();
    eprintln!("detection: down after {down:?} (expect ~600 ms), up after {up:?} (expect ~400 ms)");
    // interval × threshold, within one interval (plus jitter and polling slack).
    assert!(
        down >= Duration::from_millis(350) && down <= Duration::from_millis(900),
        "{down:?}"
    );
    assert!(
        up >= Duration::from_millis(150) && up <= Duration::from_millis(700),
        "{up:?}"
    );
}

#[tokio::test]
async fn a_region_killed_under_load_costs_no_get_and_runs_no_post_twice() {
    let (a, b, e) = (
        origin("us-east-1").await,
        origin("us-east-1").await,
        origin("eu-west-1").await,
    );
    let gw = Gateway::start(&config(&[&a, &b], &e, "")).await;
    // 20 s of steady GETs from 4 clients and a POST every 50 ms; the region dies at 10 s.
    let load = Load::start(gw.url("/load"), 4);
    let posts = {
        let url = gw.url("/post");
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut failed = 0;
            for i in 0..400 {
                match client.post(format!("{url}/{i}")).body("x").send().await {
                    Ok(r) if r.status() == 200 => {}
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            failed
        })
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    // Every origin of us-east-1 dies, open connections included.
    a.control.drop_connections.store(true, Relaxed);
    b.control.drop_connections.store(true, Relaxed);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let (ok, failed) = load.finish().await;
    let failed_posts = posts.await.unwrap();
    eprintln!(
        "region kill under load: {ok} GETs ok, {failed} failed; {failed_posts} of 400 POSTs failed"
    );
    assert_eq!(failed, 0, "gateway log:\n{}", gw.stderr());
    assert!(
        e.control.requests.load(Relaxed) > 100,
        "eu-west-1 took over"
    );
    // A POST may fail when its origin dies under it, but none ran twice.
    let mut seen: Vec<String> = [&a, &b, &e]
        .iter()
        .flat_map(|o| o.control.seen())
        .filter(|s| s.method == "POST")
        .map(|s| s.path)
        .collect();
    let answered = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), answered, "a POST reached two origins");
}

#[tokio::test]
async fn the_retry_budget_caps_retries_when_everything_fails() {
    let (a, e) = (origin("us-east-1").await, origin("eu-west-1").await);
    let yaml = config(&[&a], &e, "")
        .replace("consecutive_failures: 3", "consecutive_failures: 100000")
        .replace(
            "routing: { steering: geo,",
            "routing: { retries: { attempts: 2, budget: { ratio: 0.1, min_per_second: 1 } }, steering: geo,",
        );
    let gw = Gateway::start(&yaml).await;
    a.control.status.store(503, Relaxed);
    e.control.status.store(503, Relaxed);
    let n = 400;
    let window = |t: u64| t / 1000 / meridian::proxy::retry_budget::WINDOW_S;
    let first_window = window(meridian::util::clock::now_ms());
    for i in 0..n {
        assert_eq!(get(&gw, &format!("/b/{i}")).await.status(), 503);
    }
    let windows = window(meridian::util::clock::now_ms()) - first_window + 1;
    let m = gw.metrics().await;
    let retries = metric_sum(&m, "meridian_retries_total", &[]);
    let denied = metric_sum(&m, "meridian_retries_denied_total", &[("reason", "budget")]);
    eprintln!(
        "retry budget: {retries} retries for {n} requests in {windows} window(s), {denied} denied"
    );
    // Each 10 s window grants min_per_second × 10 plus ratio × (its requests and
    // the previous window's): one window allows 10 + 0.1 n; a run that crosses a
    // boundary counts its earlier requests twice.
    let n_f = f64::from(n);
    let bound = 10.0 * windows as f64 + if windows == 1 { 0.1 * n_f } else { 0.2 * n_f };
    assert!(retries <= bound, "{retries} retries, at most {bound}");
    assert!(retries >= 0.1 * n_f, "budget not used: {retries}");
    assert_eq!(retries + denied, f64::from(n));
}

/// With one origin and nothing to retry on, a timeout is a 504, not a failed retry.
#[tokio::test]
async fn a_lone_slow_origin_gives_504_upstream_timeout() {
    let (gw, a) =
        one_origin_gateway("health: { interval: 5s, timeout: 1s }\ntimeouts: { read: 300ms }")
            .await;
    a.control.delay_ms.store(1000, Relaxed);
    let r = reqwest::get(gw.url("/slow")).await.unwrap();
    assert_eq!(r.status(), 504);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "upstream_timeout");
}

/// A gateway whose region has two origins, `right` and `wrong` (their YAML
/// entries), probed every 100 ms with thresholds of 1; waits until the first is
/// healthy and the second unhealthy and returns `/admin/state`.
async fn first_healthy_second_not(right: &str, wrong: &str) -> (Gateway, serde_json::Value) {
    let yaml = format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1:
    origins:
      - {right}
      - {wrong}
health: {{ interval: 100ms, timeout: 80ms, jitter: 0%, healthy_threshold: 1, unhealthy_threshold: 1 }}
"#
    );
    let gw = Gateway::start(&yaml).await;
    let s = wait_state(&gw, "the first origin healthy, the second unhealthy", |s| {
        let o = &s["regions"]["us-east-1"]["origins"];
        o[0]["probe_state"] == "healthy" && o[1]["probe_state"] == "unhealthy"
    })
    .await;
    assert_eq!(
        s["regions"]["us-east-1"]["origins"][0]["last_probe"]["result"], "pass",
        "{s:#}"
    );
    (gw, s)
}

#[tokio::test]
async fn probes_speak_the_origins_protocol() {
    use support::origin::{HttpOrigin, Speaks};
    // Two origins that speak only cleartext HTTP/2: one configured as such, one
    // (wrongly) as HTTP/1.1. The probe must see what traffic would.
    let (right, wrong) = (
        HttpOrigin::start(Speaks::H2c).await,
        HttpOrigin::start(Speaks::H2c).await,
    );
    let (_gw, s) = first_healthy_second_not(
        &format!(r#"{{ address: "{}", protocol: h2c }}"#, right.addr),
        &format!(r#"{{ address: "{}", protocol: http1 }}"#, wrong.addr),
    )
    .await;
    // HTTP/1.1 bytes at an HTTP/2 server: the connection fails, never a status.
    let o = &s["regions"]["us-east-1"]["origins"];
    assert_eq!(o[1]["last_probe"]["error"], "error", "{s:#}");
    assert!(right.record.probes.load(Relaxed) >= 1);
    assert_eq!(
        wrong.record.probes.load(Relaxed),
        0,
        "an HTTP/1.1 probe was answered by an h2c-only origin"
    );
    assert!(
        wrong.record.accepts.load(Relaxed) >= 1,
        "never probed at all"
    );
}

#[tokio::test]
async fn h2_probes_use_tls_with_alpn_h2() {
    use support::origin::HttpOrigin;
    // Two HTTP/2-over-TLS origins (ALPN `h2` only): one configured `h2`, one
    // `http1` with TLS, whose probe offers no ALPN and then speaks HTTP/1.1.
    let pki = support::certs::Pki::new(&temp_dir("h2-probe"));
    let leaf = pki.issue("origin", &["h2-origin.test"]);
    let (right, wrong) = (
        HttpOrigin::start_h2_tls(&leaf).await,
        HttpOrigin::start_h2_tls(&leaf).await,
    );
    let tls = format!(
        r#"tls: {{ sni: h2-origin.test, ca_file: "{}" }}"#,
        pki.ca().display()
    );
    first_healthy_second_not(
        &format!(r#"{{ address: "{}", protocol: h2, {tls} }}"#, right.addr),
        &format!(r#"{{ address: "{}", protocol: http1, {tls} }}"#, wrong.addr),
    )
    .await;
    assert!(right.record.probes.load(Relaxed) >= 1);
    assert_eq!(wrong.record.probes.load(Relaxed), 0);
}
