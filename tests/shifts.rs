//! Gradual shifts end to end: the measured share follows the ramp, and a shift
//! whose target answers errors aborts by itself and gives the traffic back.

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use meridian::util::clock::now_ms;
use support::*;

/// RFC 3339 (UTC, millisecond precision) for unix ms.
fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

async fn world() -> (SimOrigin, SimOrigin) {
    let o = |r: &'static str| async move {
        SimOrigin::start(r, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    };
    (o("us-east-1").await, o("eu-west-1").await)
}

fn config(use1: &SimOrigin, euw1: &SimOrigin, shift: &str) -> String {
    format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ origins: [ {{ address: "{}" }} ] }}
  eu-west-1: {{ origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 100ms, timeout: 80ms, healthy_threshold: 1 }}
outlier_detection: {{ consecutive_failures: 100000 }}
routing: {{ steering: geo, geo: {{ default: us-east-1 }}, retries: {{ attempts: 1 }} }}
shifts:
  - {shift}
"#,
        use1.addr, euw1.addr
    )
}

/// Share of `n` requests served by eu-west-1, with the wall-clock span they took.
async fn eu_share(gw: &Gateway, n: u32) -> (f64, u64, u64) {
    let client = reqwest::Client::new();
    let t0 = now_ms();
    let mut eu = 0;
    for _ in 0..n {
        let r = client.get(gw.url("/")).send().await.unwrap();
        if r.headers()["x-meridian-region"] == "eu-west-1" {
            eu += 1;
        }
    }
    (f64::from(eu) / f64::from(n), t0, now_ms())
}

#[tokio::test]
async fn the_share_follows_a_twenty_second_ramp() {
    let (use1, euw1) = world().await;
    let start = now_ms() + 2_000;
    let ramp = 20_000u64;
    let shift = format!(
        "{{ name: ramp, from: us-east-1, to: eu-west-1, percent: 50, start: {}, ramp: 20s }}",
        rfc3339(start)
    );
    let gw = Gateway::start(&config(&use1, &euw1, &shift)).await;
    let expected = |t: u64| 0.5 * (t.saturating_sub(start) as f64 / ramp as f64).min(1.0);
    for at in [5_000u64, 10_000, 15_000, 22_000] {
        let target = start + at;
        let now = now_ms();
        if target > now {
            tokio::time::sleep(Duration::from_millis(target - now)).await;
        }
        let (share, t0, t1) = eu_share(&gw, 1000).await;
        let want = (expected(t0) + expected(t1)) / 2.0;
        eprintln!("shift at +{at} ms: measured {share:.3}, scheduled {want:.3}");
        assert!(
            (share - want).abs() < 0.05,
            "at +{at} ms: {share:.3} vs {want:.3}"
        );
    }
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(&m, "meridian_shift_progress_ratio", &[("shift", "ramp")]),
        0.5
    );
}

#[tokio::test]
async fn a_shift_whose_target_fails_aborts_and_gives_the_traffic_back() {
    let (use1, euw1) = world().await;
    let shift = format!(
        "{{ name: risky, from: us-east-1, to: eu-west-1, percent: 50, start: {}, abort_if: {{ error_ratio_above: 0.2, over: 2s }} }}",
        rfc3339(now_ms() - 1_000)
    );
    let gw = Gateway::start(&config(&use1, &euw1, &shift)).await;
    let (share, _, _) = eu_share(&gw, 400).await;
    assert!((share - 0.5).abs() < 0.1, "{share}");
    // The target starts failing: within `over` plus a guard interval, the shift aborts.
    euw1.control.status.store(500, Relaxed);
    let failing_since = std::time::Instant::now();
    let client = reqwest::Client::new();
    loop {
        client.get(gw.url("/")).send().await.unwrap();
        let s = gw.state().await;
        if s["shifts"][0]["aborted"] == true {
            break;
        }
        assert!(
            failing_since.elapsed() < Duration::from_secs(4),
            "shift never aborted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!(
        "shift aborted {:?} after its target started failing",
        failing_since.elapsed()
    );
    let (share, _, _) = eu_share(&gw, 200).await;
    assert_eq!(share, 0.0);
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(&m, "meridian_shift_aborts_total", &[("shift", "risky")]),
        1.0
    );
    assert_eq!(
        metric_sum(&m, "meridian_shift_progress_ratio", &[("shift", "risky")]),
        0.0
    );
    // The journal says so, with the error ratio that caused it.
    let doc: serde_json::Value = reqwest::get(gw.admin_url("/admin/events?kind=shift"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let aborted: Vec<_> = doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to"] == "aborted")
        .collect();
    assert_eq!(aborted.len(), 1, "{doc}");
    assert_eq!(aborted[0]["subject"], "risky");
    let cause = aborted[0]["cause"].as_str().unwrap();
    assert!(cause.contains("error ratio of eu-west-1 was"), "{cause}");
    assert!(cause.contains("above abort_if 0.2"), "{cause}");
}
