//! Operations: the access log, `/admin/state` field by field, and the shipped
//! Grafana dashboard and Kubernetes manifests checked against what the binary does.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use support::*;

const TOKEN: &str = "ops-token";

fn config(a: &SimOrigin, b: &SimOrigin, c: &SimOrigin, extra: &str) -> String {
    let dir = temp_dir("ops");
    std::fs::write(dir.join("admin.token"), TOKEN).unwrap();
    format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}", token_file: "{}/admin.token" }}
client_ip: {{ trusted_proxies: [127.0.0.1/32] }}
geoip: {{ database: "{{{{REPO}}}}/geoip/test-city.mmdb" }}
regions:
  us-east-1: {{ weight: 100, traffic_dial: 80, origins: [ {{ address: "{}" }}, {{ address: "{}" }} ] }}
  eu-west-1: {{ weight: 50, origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 300ms, timeout: 250ms, healthy_threshold: 1, unhealthy_threshold: 1 }}
routing: {{ geo: {{ continents: {{ EU: eu-west-1 }}, default: us-east-1 }} }}
{extra}
"#,
        dir.display(),
        a.addr,
        b.addr,
        c.addr
    )
}

#[tokio::test]
async fn every_request_gets_one_access_log_line() {
    let (a, b, c) = (
        origin("us-east-1").await,
        origin("us-east-1").await,
        origin("eu-west-1").await,
    );
    let gw = Gateway::start_with_env(
        &config(&a, &b, &c, ""),
        &[("RUST_LOG", "warn,meridian::access=info")],
    )
    .await;
    let client = reqwest::Client::new();
    for i in 0..5 {
        client
            .get(gw.url(&format!("/page/{i}")))
            .header("x-request-id", format!("req-{i}"))
            .header("x-forwarded-for", "127.0.2.9")
            .send()
            .await
            .unwrap();
    }
    // Lines reach stderr through the writer thread: wait for them, then count.
    eventually(Duration::from_secs(5), "five access lines", || async {
        let lines = gw.stderr().matches("meridian::access").count();
        seen_if(lines >= 5, lines)
    })
    .await;
    let log = gw.stderr();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("meridian::access"))
        .collect();
    assert_eq!(lines.len(), 5, "{log}");
    let l = lines
        .iter()
        .find(|l| l.contains("req-3"))
        .unwrap_or_else(|| panic!("req-3 not in {lines:?}"));
    for field in [
        "client=127.0.2.9",
        "country=\"DE\"",
        "method=GET",
        "path=/page/3",
        "route=0",
        "decision=\"geo\"",
        "reasons=geo",
        "region=\"eu-west-1\"",
        &format!("origin=\"{}\"", c.addr),
        "status=200",
        "bytes=",
        "duration_ms=",
        "tries=1",
    ] {
        assert!(l.contains(field), "missing {field} in {l}");
    }
}

#[tokio::test]
async fn json_access_log_lines_parse_with_every_field() {
    let (a, b, c) = (
        origin("us-east-1").await,
        origin("us-east-1").await,
        origin("eu-west-1").await,
    );
    let gw = Gateway::start_with_env(
        &config(&a, &b, &c, ""),
        &[
            ("RUST_LOG", "warn,meridian::access=info"),
            ("MERIDIAN_LOG_FORMAT", "json"),
        ],
    )
    .await;
    reqwest::Client::new()
        .get(gw.url("/q/\"odd\""))
        .header("x-request-id", "json-1")
        .header("x-forwarded-for", "127.0.2.9")
        .send()
        .await
        .unwrap();
    eventually(Duration::from_secs(5), "the access line", || async {
        let log = gw.stderr();
        seen_if(log.contains("json-1"), log)
    })
    .await;
    let log = gw.stderr();
    let line = log
        .lines()
        .find(|l| l.contains("json-1"))
        .unwrap_or_else(|| panic!("no access line in {log}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["target"], "meridian::access");
    let f = &v["fields"];
    assert_eq!(f["request_id"], "json-1");
    assert_eq!(f["client"], "127.0.2.9");
    assert_eq!(f["country"], "DE");
    assert_eq!(f["region"], "eu-west-1");
    assert_eq!(f["status"], 200);
    assert_eq!(f["tries"], 1);
    assert!(f["path"].as_str().unwrap().starts_with("/q/"), "{f}");
    assert!(f["duration_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn sampling_zero_logs_nothing() {
    let (a, b, c) = (
        origin("us-east-1").await,
        origin("us-east-1").await,
        origin("eu-west-1").await,
    );
    let gw = Gateway::start_with_env(
        &config(&a, &b, &c, "access_log: { sample: 0 }"),
        &[("RUST_LOG", "warn,meridian::access=info")],
    )
    .await;
    for _ in 0..5 {
        reqwest::get(gw.url("/"))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    // Each request is counted, then (in the same call) its line queued or not.
    wait_metric(
        &gw,
        "meridian_requests_total",
        &[],
        5.0,
        Duration::from_secs(5),
    )
    .await;
    // A warning queued after them (a drain's event): once it is out, any access
    // line queued before it would be out too.
    drain(&gw, "eu-west-1").await;
    eventually(Duration::from_secs(5), "the drain event logged", || async {
        let log = gw.stderr();
        seen_if(
            log.contains("kind=\"drain\"") || log.contains("kind=drain"),
            log,
        )
    })
    .await;
    assert!(!gw.stderr().contains("meridian::access"), "{}", gw.stderr());
}

#[tokio::test]
async fn admin_state_field_by_field() {
    let (a, b, c) = (
        origin("us-east-1").await,
        origin("us-east-1").await,
        origin("eu-west-1").await,
    );
    let now = meridian::util::clock::now_ms();
    let shift = format!(
        "shifts:\n  - {{ name: move, from: us-east-1, to: eu-west-1, percent: 40, start: {}, ramp: 1h }}\n",
        // Started 30 minutes ago: half way.
        iso(now - 1_800_000)
    );
    let gw = Gateway::start(&config(&a, &b, &c, &shift)).await;
    // One unhealthy origin, one drained region.
    b.control.health_status.store(503, Relaxed);
    drain(&gw, "eu-west-1").await;
    // Judged on a probe that got its answer: on a loaded machine one may time out.
    let s = eventually(Duration::from_secs(10), "the origin unhealthy", || async {
        let s = gw.state().await;
        let o = &s["regions"]["us-east-1"]["origins"];
        seen_if(
            o[1]["probe_state"] == "unhealthy"
                && o[1]["last_probe"]["error"] == "status"
                && o[0]["last_probe"]["result"] == "pass",
            s,
        )
    })
    .await;
    let cfg = &s["config"];
    assert_eq!(cfg["sha256"].as_str().unwrap().len(), 64);
    assert!(cfg["loaded_at_unix_ms"].as_u64().unwrap() >= now - 60_000);
    assert!(cfg["last_reload_error"].is_null());
    assert_eq!(s["local_region"], "us-east-1");
    assert_eq!(s["ready"], true);
    assert_eq!(s["log_lines_dropped"], 0);

    let use1 = &s["regions"]["us-east-1"];
    assert_eq!(use1["weight"], 100);
    assert_eq!(use1["traffic_dial"], 80);
    assert_eq!(use1["effective_weight"], 80.0);
    assert_eq!(use1["drained"], false);
    assert_eq!(use1["health"], "healthy");
    assert!(use1["latency_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(use1["replication_lag_ms"], 0);
    let (good, bad) = (&use1["origins"][0], &use1["origins"][1]);
    assert_eq!(good["address"], a.addr.to_string());
    assert_eq!(good["probe_state"], "healthy");
    assert_eq!(good["eligible"], true);
    assert_eq!(good["last_probe"]["result"], "pass");
    assert!(good["last_probe"]["error"].is_null());
    assert!(good["consecutive_probe_passes"].as_u64().unwrap() >= 1);
    assert_eq!(good["ejected"], false);
    assert_eq!(good["times_ejected"], 0);
    assert_eq!(bad["probe_state"], "unhealthy");
    assert_eq!(bad["eligible"], false);
    assert_eq!(bad["last_probe"]["result"], "fail");
    assert_eq!(bad["last_probe"]["error"], "status");
    assert!(bad["consecutive_probe_failures"].as_u64().unwrap() >= 1);
    for o in [good, bad] {
        assert_eq!(o["outstanding"], 0);
        assert_eq!(o["ejected_for_ms"], 0);
        assert_eq!(o["consecutive_live_failures"], 0);
        assert!(o["last_minute"].is_object(), "{o}");
        // An IP origin: one address, never looked up.
        assert!(o["dns"]["name"].is_null(), "{o}");
        assert_eq!(o["dns"]["resolved"], true);
        assert_eq!(o["dns"]["lookups"], 0);
        let addrs = o["addresses"].as_array().unwrap();
        assert_eq!(addrs.len(), 1, "{o}");
        assert_eq!(addrs[0]["address"], o["address"]);
        for key in [
            "probe_state",
            "eligible",
            "ejected",
            "times_ejected",
            "last_probe",
        ] {
            assert_eq!(
                addrs[0][key], o[key],
                "{key} of the one address is the origin's"
            );
        }
    }

    let euw1 = &s["regions"]["eu-west-1"];
    assert_eq!(euw1["drained"], true);
    assert_eq!(euw1["effective_weight"], 0.0);

    let sh = &s["shifts"][0];
    assert_eq!(sh["name"], "move");
    assert_eq!(sh["from"], "us-east-1");
    assert_eq!(sh["to"], "eu-west-1");
    assert_eq!(sh["active"], true);
    assert_eq!(sh["aborted"], false);
    assert_eq!(sh["final_percent"], 40.0);
    let progress = sh["progress"].as_f64().unwrap();
    assert!((progress - 0.2).abs() < 0.01, "{progress}");
    assert_eq!(s["dns"]["enabled"], false);
}

/// RFC 3339 for unix ms (UTC), via `date`, which every CI machine has.
fn iso(ms: u64) -> String {
    let out = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", ms / 1000),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Metric names the binary exports: every family it registers, checked against a
/// live scrape (every name scraped is one of them).
async fn exported_names() -> BTreeSet<String> {
    let names: BTreeSet<String> = meridian::telemetry::metrics::Metrics::new()
        .names()
        .into_iter()
        .collect();
    let (a, b, c) = (
        origin("us-east-1").await,
        origin("us-east-1").await,
        origin("eu-west-1").await,
    );
    let gw = Gateway::start(&config(&a, &b, &c, "")).await;
    reqwest::get(gw.url("/")).await.unwrap();
    let text = gw.metrics().await;
    for family in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let name = family.split_whitespace().next().unwrap();
        assert!(
            name.starts_with("process_") || names.contains(name),
            "{name} is exported but not listed by Metrics::names"
        );
    }
    names
}

#[tokio::test]
async fn the_grafana_dashboard_names_only_exported_metrics() {
    let exported = exported_names().await;
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("config/grafana/meridian.json")).unwrap(),
    )
    .unwrap();
    let mut exprs: Vec<String> = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    for a in dash["annotations"]["list"].as_array().unwrap() {
        exprs.push(a["expr"].as_str().unwrap().to_string());
    }
    assert!(exprs.len() >= 12);
    let mut used = 0;
    for e in &exprs {
        let names = e
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("meridian_"));
        for n in names {
            used += 1;
            assert!(
                exported.contains(n),
                "dashboard uses {n}, which the binary does not export"
            );
        }
    }
    assert!(used >= 15);
}

#[test]
fn kubernetes_manifests_match_the_binary() {
    let text = std::fs::read_to_string(repo("config/kubernetes/meridian.yaml")).unwrap();
    let docs = meridian::core::config::yaml::documents(&text).unwrap();
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    // The ConfigMap's config is valid.
    let config = kind("ConfigMap")["data"]["meridian.yaml"].as_str().unwrap();
    let dir = temp_dir("k8s");
    let path = dir.join("meridian.yaml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed = meridian::core::config::yaml::values(config).unwrap();
    let port = |a: &serde_json::Value| {
        a.as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    let (http, admin) = (
        port(&parsed["listeners"][0]["address"]),
        port(&parsed["admin"]["address"]),
    );
    let grace = parsed["shutdown"]["grace_period"]
        .as_str()
        .unwrap()
        .trim_end_matches('s')
        .parse::<u64>()
        .unwrap();

    let dep = kind("Deployment");
    let pod = &dep["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    let ports: Vec<(String, u64)> = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["containerPort"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(ports.contains(&("http".into(), http)));
    assert!(ports.contains(&("admin".into(), admin)));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "admin");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["args"][0], "run");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert!(
        c["resources"]["requests"]["cpu"].is_string()
            && c["resources"]["limits"]["memory"].is_string()
    );
    // Drain fits: preStop pause + shutdown grace < terminationGracePeriodSeconds.
    let pre_stop: u64 = c["lifecycle"]["preStop"]["exec"]["command"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(pre_stop + grace < pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    let ann = &dep["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(ann["prometheus.io/port"], admin.to_string().as_str());
    assert_eq!(ann["prometheus.io/path"], "/metrics");
    assert_eq!(kind("Service")["spec"]["ports"][0]["targetPort"], "http");
}

/// Drains `region` through the admin API.
async fn drain(gw: &Gateway, region: &str) {
    let r = reqwest::Client::new()
        .post(gw.admin_url(&format!("/admin/regions/{region}/drain")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}
