//! The metrics as Prometheus sees them: `promtool check metrics` finds nothing to
//! complain about after mixed traffic, and a real Prometheus server scraping the
//! admin listener answers a query with the counts the test produced.

mod support;

use std::process::{Command, Stdio};
use std::time::Duration;

use support::*;

async fn gateway() -> (Gateway, SimOrigin, SimOrigin) {
    let o = |r: &'static str| async move {
        SimOrigin::start(r, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    };
    let (a, b) = (o("us-east-1").await, o("eu-west-1").await);
    let yaml = format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
client_ip: {{ trusted_proxies: [127.0.0.1/32] }}
geoip: {{ database: "{{{{REPO}}}}/geoip/test-city.mmdb" }}
write_region: us-east-1
regions:
  us-east-1: {{ origins: [ {{ address: "{}" }} ] }}
  eu-west-1: {{ origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 100ms, timeout: 80ms, healthy_threshold: 1 }}
routing: {{ geo: {{ continents: {{ EU: eu-west-1 }}, default: us-east-1 }} }}
routes:
  - {{ match: {{ path_prefix: /api }}, writes: write_region, read_your_writes: {{ window: 2s }} }}
"#,
        a.addr, b.addr
    );
    (Gateway::start(&yaml).await, a, b)
}

/// Mixed traffic: reads from two countries, a write, a bad token, a malformed XFF.
async fn traffic(gw: &Gateway) -> (u32, u32) {
    let client = reqwest::Client::new();
    let (mut us, mut eu) = (0, 0);
    for i in 0..30 {
        let xff = if i % 3 == 0 { "127.0.2.5" } else { "127.0.1.5" };
        let r = client
            .get(gw.url("/x"))
            .header("x-forwarded-for", xff)
            .send()
            .await
            .unwrap();
        if r.headers()["x-meridian-region"] == "eu-west-1" {
            eu += 1
        } else {
            us += 1
        }
    }
    client
        .post(gw.url("/api/w"))
        .header("x-forwarded-for", "127.0.1.5")
        .send()
        .await
        .unwrap();
    client
        .get(gw.url("/api/r"))
        .header("cookie", "meridian_rw=v1.x.1.k.AAAA")
        .send()
        .await
        .unwrap();
    client
        .get(gw.url("/x"))
        .header("x-forwarded-for", "127.0.1.5, junk")
        .send()
        .await
        .unwrap();
    (us + 3, eu)
}

#[tokio::test]
async fn promtool_finds_the_exposition_clean() {
    let (gw, _a, _b) = gateway().await;
    traffic(&gw).await;
    let text = gw.metrics().await;
    for name in [
        "meridian_requests_total",
        "meridian_request_duration_seconds_bucket",
        "meridian_region_healthy",
        "meridian_origin_healthy",
        "meridian_region_weight_effective",
        "meridian_region_latency_seconds",
        "meridian_replication_lag_seconds",
        "meridian_probe_duration_seconds_bucket",
        "meridian_write_tokens_total",
        "meridian_geo_lookups_total",
        "meridian_xff_malformed_total",
        "meridian_config_reloads_total",
        "meridian_config_info",
        "meridian_build_info",
        "process_cpu_seconds_total",
    ] {
        assert!(text.lines().any(|l| l.starts_with(name)), "{name} missing");
    }
    promtool_clean(&text);
}

/// No series twice, and `promtool check metrics` has nothing to say.
fn promtool_clean(text: &str) {
    // No series twice (promtool does not catch that).
    let mut series: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').map(|(s, _)| s))
        .collect();
    let n = series.len();
    series.sort_unstable();
    series.dedup();
    assert_eq!(series.len(), n, "duplicate series");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is installed by .ci/run");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && complaints.trim().is_empty(),
        "promtool: {complaints}"
    );
}

/// The value of the one series `name{labels}` (labels in the exposition's order),
/// or `None` when it is not exported.
fn series_value(text: &str, name: &str, labels: &str) -> Option<f64> {
    let series = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .map(|v| v.trim().parse().unwrap())
}

/// Counters with fixed label sets exist at 0 from the start (so `rate()` and
/// `increase()` see their first increment), for every configured region and origin.
#[tokio::test]
async fn a_fresh_gateway_exports_its_counters_at_zero() {
    let (gw, a, b) = gateway().await;
    let text = gw.metrics().await;
    let zero = |name: &str, labels: &str| {
        assert_eq!(
            series_value(&text, name, labels),
            Some(0.0),
            "{name}{{{labels}}} at 0 in:\n{text}"
        );
    };
    for (from, to) in [
        ("us-east-1", "eu-west-1"),
        ("eu-west-1", "us-east-1"),
        ("us-east-1", "us-east-1"),
    ] {
        for reason in [
            "connect_failure",
            "connection_error",
            "timeout",
            "status_503",
        ] {
            zero(
                "meridian_retries_total",
                &format!(r#"from="{from}",reason="{reason}",to="{to}""#),
            );
        }
    }
    for outcome in [
        "issued",
        "honored",
        "region_unhealthy",
        "outside_residency",
        "expired",
        "tampered",
        "unknown_key",
        "malformed",
        "region_unknown",
        "beyond_cap",
    ] {
        zero(
            "meridian_write_tokens_total",
            &format!(r#"outcome="{outcome}""#),
        );
    }
    for reason in ["bad_host", "header_timeout", "malformed", "proxy_protocol"] {
        zero(
            "meridian_requests_rejected_total",
            &format!(r#"reason="{reason}""#),
        );
    }
    for result in ["changed", "unchanged", "dry_run", "error"] {
        zero("meridian_dns_syncs_total", &format!(r#"result="{result}""#));
    }
    for (region, origin) in [("us-east-1", a.addr), ("eu-west-1", b.addr)] {
        zero(
            "meridian_upstream_connect_failures_total",
            &format!(r#"origin="{origin}",region="{region}""#),
        );
        for reason in [
            "timeout",
            "refused",
            "status",
            "unhealthy",
            "tls",
            "error",
            "body_not_json",
        ] {
            zero(
                "meridian_probe_failures_total",
                &format!(r#"origin="{origin}",reason="{reason}",region="{region}""#),
            );
        }
    }
    zero("meridian_retries_denied_total", r#"reason="budget""#);
    zero("meridian_config_reloads_total", r#"result="error""#);
    assert_eq!(
        series_value(&text, "meridian_config_reloads_total", r#"result="ok""#),
        Some(1.0),
        "the load at start"
    );
    promtool_clean(&text);
}

/// A Prometheus server on loopback, stopped by PID when dropped.
struct Prometheus {
    child: std::process::Child,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_and_answers_queries() {
    let (gw, _a, _b) = gateway().await;
    let (us, eu) = traffic(&gw).await;
    let dir = temp_dir("prometheus");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global: {{ scrape_interval: 1s }}\nscrape_configs:\n  - job_name: meridian\n    static_configs: [ {{ targets: ['{}'] }} ]\n",
            gw.admin
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        // Port 0: the kernel picks a free port, read back from /proc.
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package) is installed by .ci/run");
    let mut prom = Prometheus { child };
    let web = wait_listening(&mut prom.child, "prometheus").await;
    let api = |q: &str| format!("http://{web}/api/v1/{q}");
    // The first scrape comes after a few seconds, whatever the interval.
    let q = api("query?query=sum%20by%20(region)%20(meridian_requests_total)");
    let result = eventually(
        Duration::from_secs(30),
        "Prometheus to have both regions",
        || async {
            let v: serde_json::Value = match reqwest::get(&q).await {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(e) => return Err(e.to_string().into()),
            };
            let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
            seen_if(result.len() >= 2, result).map_err(serde_json::Value::from)
        },
    )
    .await;
    let count = |region: &str| -> f64 {
        result
            .iter()
            .find(|s| s["metric"]["region"] == region)
            .and_then(|s| s["value"][1].as_str())
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1.0)
    };
    assert_eq!(count("us-east-1"), f64::from(us));
    assert_eq!(count("eu-west-1"), f64::from(eu));
    let targets: serde_json::Value = reqwest::get(api("targets"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(targets["data"]["activeTargets"][0]["health"], "up");
}
