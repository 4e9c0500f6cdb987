//! The metrics as Prometheus sees them: `promtool check metrics` finds nothing to
//! complain about after mixed traffic, and a real Prometheus server scraping the
//! admin listener answers a query with the counts the test produced.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use meridian::demo::SimOrigin;
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

/// A Prometheus server on loopback, stopped by PID when dropped.
struct Prometheus {
    child: std::process::Child,
    port: u16,
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
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package) is installed by .ci/run");
    let prom = Prometheus { child, port };
    let api = |q: &str| format!("http://127.0.0.1:{}/api/v1/{q}", prom.port);
    // The first scrape comes after a few seconds, whatever the interval.
    let deadline = Instant::now() + Duration::from_secs(30);
    let result = loop {
        let q = api("query?query=sum%20by%20(region)%20(meridian_requests_total)");
        if let Ok(r) = reqwest::get(&q).await {
            if let Ok(v) = r.json::<serde_json::Value>().await {
                let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
                if result.len() >= 2 {
                    break result;
                }
            }
        }
        assert!(Instant::now() < deadline, "Prometheus never had the series");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
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
