//! The on-call view end to end, over real sockets: the event journal
//! (`/admin/events`, `meridian_events_total`), the rolling rates in `/admin/state`,
//! and `meridian status` (its table and `--check`) against a running gateway.

mod support;

use std::process::Command;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const TOKEN: &str = "oncall-token";

/// Three regions of one origin each; probes every 300 ms, down after 3 failures.
fn three_regions(a: &SimOrigin, b: &SimOrigin, c: &SimOrigin, extra: &str) -> String {
    format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ origins: [ {{ address: "{}" }} ] }}
  eu-west-1: {{ origins: [ {{ address: "{}" }} ] }}
  ap-southeast-1: {{ origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 300ms, timeout: 200ms, unhealthy_threshold: 3, healthy_threshold: 1 }}
routing: {{ steering: geo, geo: {{ default: us-east-1 }}, retries: {{ attempts: 1 }} }}
{extra}
"#,
        a.addr, b.addr, c.addr
    )
}

async fn events(gw: &Gateway, query: &str) -> Vec<Value> {
    let doc: Value = reqwest::get(gw.admin_url(&format!("/admin/events{query}")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doc["events"].as_array().unwrap().clone()
}

/// Waits until an event of `kind` about `subject` moving to `to` is journaled.
async fn wait_event(gw: &Gateway, kind: &str, subject: &str, to: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let found = events(gw, &format!("?kind={kind}"))
            .await
            .into_iter()
            .find(|e| e["subject"] == subject && e["to"] == to);
        if let Some(e) = found {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} event {subject} -> {to} within {within:?}: {:?}",
            events(gw, "").await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn events_counted(metrics: &str, kind: &str) -> f64 {
    metric_sum(metrics, "meridian_events_total", &[("kind", kind)])
}

/// `meridian status --admin URL ARGS...`: (exit code, stdout, stderr).
fn status(gw: &Gateway, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .arg("status")
        .arg("--admin")
        .arg(format!("http://{}", gw.admin))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_killed_origin_is_journaled_with_its_region_and_status_says_so() {
    let (a, b, c) = (
        origin("us-east-1").await,
        origin("eu-west-1").await,
        origin("ap-southeast-1").await,
    );
    let gw = Gateway::start(&three_regions(&a, &b, &c, "")).await;
    // Every kind's counter exists from start-up, at 0 for what has not happened.
    let m = gw.metrics().await;
    for kind in meridian::telemetry::events::Kind::ALL {
        assert!(
            m.contains(&format!(
                "meridian_events_total{{kind=\"{}\"}}",
                kind.as_str()
            )),
            "{kind:?} missing"
        );
    }
    assert_eq!(
        events_counted(&m, "origin_health"),
        0.0,
        "start-up is not news"
    );
    assert_eq!(events_counted(&m, "region_health"), 0.0);

    let (code, out, err) = status(&gw, &["--check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("meridian ready"), "{out}");
    for r in ["us-east-1 *", "eu-west-1", "ap-southeast-1"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(r))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(line.contains("healthy"), "{line}");
    }

    // Some traffic, all to us-east-1 (geo default), one answer in ten a 503.
    let client = reqwest::Client::new();
    for i in 0..30 {
        a.control
            .status
            .store(if i % 10 == 0 { 503 } else { 0 }, Relaxed);
        client.get(gw.url("/")).send().await.unwrap();
    }
    a.control.status.store(0, Relaxed);

    // Kill eu-west-1's origin: its port refuses from now on.
    let eu_key = format!("eu-west-1/{}", b.addr);
    drop(b);
    let killed = Instant::now();
    // unhealthy_threshold × interval, plus one interval.
    let bound = Duration::from_millis(3 * 300 + 300);
    let flip = wait_event(&gw, "origin_health", &eu_key, "unhealthy", bound).await;
    let region = wait_event(&gw, "region_health", "eu-west-1", "unhealthy", bound).await;
    let took = killed.elapsed();
    assert!(took <= bound, "journaled after {took:?}");
    eprintln!("origin flip and region change journaled {took:?} after the kill");
    assert_eq!(flip["from"], "healthy");
    let cause = flip["cause"].as_str().unwrap();
    assert!(cause.contains("probe failed: refused"), "{cause}");
    assert!(
        cause.contains("Connection refused"),
        "the probe's detail: {cause}"
    );
    assert!(cause.contains("3 failure(s) in a row"), "{cause}");
    assert_eq!(region["from"], "healthy");
    let cause = region["cause"].as_str().unwrap();
    assert!(cause.contains("0 of 1 origins eligible"), "{cause}");
    assert!(cause.contains("is unhealthy"), "{cause}");
    // Newest first, each change once.
    let all = events(&gw, "").await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0]["seq"].as_u64() > all[1]["seq"].as_u64());
    let m = gw.metrics().await;
    assert_eq!(events_counted(&m, "origin_health"), 1.0);
    assert_eq!(events_counted(&m, "region_health"), 1.0);
    // `since` and `kind` narrow the answer; a bad parameter is refused.
    let since = all[0]["at_unix_ms"].as_u64().unwrap() + 1;
    assert!(events(&gw, &format!("?since={since}")).await.is_empty());
    assert_eq!(events(&gw, "?kind=region_health").await.len(), 1);
    let bad = reqwest::get(gw.admin_url("/admin/events?kind=nope"))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let (code, out, err) = status(&gw, &["--check"]);
    eprintln!("meridian status after the kill:\n{out}");
    assert_eq!(code, 1, "{out}");
    assert!(err.contains("region eu-west-1 unhealthy"), "{err}");
    let line = out.lines().find(|l| l.starts_with("eu-west-1")).unwrap();
    assert!(line.contains("unhealthy"), "{line}");
    assert!(
        out.contains("Connection refused"),
        "last probe error: {out}"
    );
    assert!(out.contains("origin_health"), "the last events: {out}");
    assert!(!out.contains('\x1b'), "no colours off a terminal");
    let (code, json, _) = status(&gw, &["--json"]);
    assert_eq!(code, 0);
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["regions"]["eu-west-1"]["health"], "unhealthy");
    let use1 = &doc["regions"]["us-east-1"]["last_minute"];
    assert_eq!(
        (&use1["requests"], &use1["errors"]),
        (&30.into(), &3.into()),
        "{use1}"
    );
    let line = out.lines().find(|l| l.starts_with("us-east-1")).unwrap();
    assert!(line.contains("10.0%"), "the error ratio: {line}");
    // Nobody listening: --check cannot vouch for anything.
    let nobody = RefusingPort::bind();
    let out = Command::new(env!("CARGO_BIN_EXE_meridian"))
        .args(["status", "--check", "--admin"])
        .arg(nobody.addr.to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn reloads_applied_and_refused_are_journaled_with_sha_and_error() {
    let (gw, _o) = one_origin_gateway("").await;
    let good = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(&gw.config_path, format!("{good}\nbogus_key: 1\n")).unwrap();
    let refused = wait_event(
        &gw,
        "config_refused",
        &gw.config_path.display().to_string(),
        "refused",
        Duration::from_secs(5),
    )
    .await;
    let cause = refused["cause"].as_str().unwrap();
    assert!(cause.contains("bogus_key"), "{cause}");
    assert!(cause.contains("file changed"), "{cause}");
    let st = gw.state().await;
    assert_eq!(refused["from"], st["config"]["sha256"]);
    let (_, out, _) = status(&gw, &[]);
    assert!(
        out.contains("last reload error:") && out.contains("bogus_key"),
        "{out}"
    );

    let fixed = format!("{good}\ndebug_headers: true\n");
    std::fs::write(&gw.config_path, &fixed).unwrap();
    let sha256: String = {
        use sha2::Digest;
        let d = sha2::Sha256::digest(fixed.as_bytes());
        d.iter().map(|b| format!("{b:02x}")).collect()
    };
    let applied = wait_event(
        &gw,
        "config_applied",
        &gw.config_path.display().to_string(),
        &sha256,
        Duration::from_secs(5),
    )
    .await;
    assert_ne!(applied["from"], applied["to"]);
    let m = gw.metrics().await;
    assert_eq!(events_counted(&m, "config_refused"), 1.0);
    assert_eq!(events_counted(&m, "config_applied"), 1.0);
}

#[tokio::test]
async fn drains_ejections_shifts_and_rolling_rates() {
    let (a, b) = (origin("us-east-1").await, origin("eu-west-1").await);
    let dir = temp_dir("oncall-token");
    std::fs::write(dir.join("admin.token"), TOKEN).unwrap();
    // A shift that starts in a few seconds (after start-up) and ramps over two.
    let start = meridian::util::clock::now_ms() / 1000 + 4;
    let date = Command::new("date")
        .args(["-u", "-d", &format!("@{start}"), "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .unwrap();
    let start = String::from_utf8(date.stdout).unwrap().trim().to_string();
    let yaml = format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}", token_file: "{}/admin.token", event_journal_size: 50 }}
regions:
  us-east-1: {{ origins: [ {{ address: "{}" }} ] }}
  eu-west-1: {{ origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 200ms, timeout: 150ms, healthy_threshold: 1 }}
outlier_detection: {{ consecutive_failures: 3, base_ejection: 1s }}
routing: {{ steering: geo, geo: {{ default: us-east-1 }}, retries: {{ attempts: 1 }} }}
shifts:
  - {{ name: move, from: us-east-1, to: eu-west-1, percent: 10, start: {start}, ramp: 2s }}
"#,
        dir.display(),
        a.addr,
        b.addr
    );
    let gw = Gateway::start(&yaml).await;
    let client = reqwest::Client::new();

    // Drain and undrain: who asked is in the cause.
    for action in ["drain", "undrain"] {
        let r = client
            .post(gw.admin_url(&format!("/admin/regions/eu-west-1/{action}")))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let drains = events(&gw, "?kind=drain").await;
    assert_eq!(drains.len(), 2, "{drains:?}");
    assert_eq!(
        (&drains[1]["from"], &drains[1]["to"]),
        (&"serving".into(), &"drained".into())
    );
    assert_eq!(drains[0]["to"], "serving");
    assert!(
        drains[0]["cause"]
            .as_str()
            .unwrap()
            .starts_with("undrain by admin request from 127.0.0.1:"),
        "{drains:?}"
    );

    // Rolling rates: 40 requests to us-east-1, 10 of them answered 500.
    for i in 0..40 {
        a.control
            .status
            .store(if i % 4 == 0 { 500 } else { 0 }, Relaxed);
        client.get(gw.url("/")).send().await.unwrap();
    }
    a.control.status.store(0, Relaxed);
    let st = gw.state().await;
    let use1 = &st["regions"]["us-east-1"]["last_minute"];
    assert_eq!(use1["requests"], 40, "{use1}");
    assert_eq!(use1["errors"], 10, "{use1}");
    assert_eq!(use1["error_ratio"], 0.25, "{use1}");
    assert!(use1["rps"].as_f64().unwrap() > 0.0);
    assert!(use1["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(use1["p99_ms"].as_f64().unwrap() >= use1["p50_ms"].as_f64().unwrap());
    let origin = &st["regions"]["us-east-1"]["origins"][0]["last_minute"];
    assert_eq!(
        (&origin["requests"], &origin["errors"]),
        (&40.into(), &10.into())
    );
    assert_eq!(st["regions"]["eu-west-1"]["last_minute"]["requests"], 0);

    // Three 500s in a row eject the origin; a second later the ejection is over.
    a.control.status.store(500, Relaxed);
    for _ in 0..3 {
        client.get(gw.url("/")).send().await.unwrap();
    }
    a.control.status.store(0, Relaxed);
    let key = format!("us-east-1/{}", a.addr);
    let out = wait_event(
        &gw,
        "origin_ejection",
        &key,
        "ejected",
        Duration::from_secs(2),
    )
    .await;
    assert!(
        out["cause"]
            .as_str()
            .unwrap()
            .contains("3 live failures in a row"),
        "{out}"
    );
    let back = wait_event(&gw, "origin_ejection", &key, "in", Duration::from_secs(3)).await;
    assert_eq!(back["cause"], "ejection time over");

    // The shift: started, each tenth of its ramp, completed.
    let done = wait_event(&gw, "shift", "move", "100%", Duration::from_secs(8)).await;
    assert!(
        done["cause"].as_str().unwrap().starts_with("completed"),
        "{done}"
    );
    let shifts = events(&gw, "?kind=shift").await;
    assert!(
        shifts
            .iter()
            .any(|e| e["from"] == "0%" && e["cause"].as_str().unwrap().starts_with("started")),
        "{shifts:?}"
    );
    assert!(shifts.len() >= 3, "{shifts:?}");

    let m = gw.metrics().await;
    assert_eq!(events_counted(&m, "drain"), 2.0);
    assert_eq!(events_counted(&m, "origin_ejection"), 2.0);
    assert_eq!(events_counted(&m, "shift"), shifts.len() as f64);
    // The ring keeps `event_journal_size`; the counters count everything.
    assert!(events(&gw, "").await.len() <= 50);
}
