//! Hot reload under continuous load: 60 rewrites of the file in 30 s, alternating
//! the weights of two regions between 90/10 and 10/90, every third write broken.
//! No request may fail; between writes the served shares follow the file; the time
//! from a write to its snapshot in service is measured.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian::util::clock::now_ms;
use support::*;

fn config(use1: &SimOrigin, euw1: &SimOrigin, w_use1: u32) -> String {
    format!(
        r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ weight: {w_use1}, origins: [ {{ address: "{}" }} ] }}
  eu-west-1: {{ weight: {}, origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 1s, timeout: 900ms, healthy_threshold: 1 }}
routing: {{ steering: weighted }}
"#,
        use1.addr,
        100 - w_use1,
        euw1.addr
    )
}

async fn sha(client: &reqwest::Client, gw: &Gateway) -> String {
    let s: serde_json::Value = client
        .get(gw.admin_url("/admin/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    s["config"]["sha256"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_rewrites_under_load_lose_nothing_and_shares_follow_the_file() {
    let o = |r: &'static str| async move {
        SimOrigin::start(r, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap()
    };
    let (use1, euw1) = (o("us-east-1").await, o("eu-west-1").await);
    let gw = Gateway::start(&config(&use1, &euw1, 90)).await;

    // Load: 16 keep-alive clients, each response stamped with time and region.
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicU64::new(0));
    let seen: Arc<Mutex<Vec<(u64, bool)>>> = Arc::new(Mutex::new(Vec::with_capacity(200_000)));
    let mut load = Vec::new();
    for _ in 0..16 {
        let (url, stop, failed, seen) = (gw.url("/"), stop.clone(), failed.clone(), seen.clone());
        load.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !stop.load(Relaxed) {
                // Stamped when sent: a request sent after a snapshot was seen live is
                // routed by it, however long its answer takes on a busy machine.
                let sent = now_ms();
                match client.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        let use1 = r.headers()["x-meridian-region"] == "us-east-1";
                        seen.lock().unwrap().push((sent, use1));
                    }
                    _ => {
                        failed.fetch_add(1, Relaxed);
                    }
                }
            }
        }));
    }

    // Writes: every 500 ms; every third one broken in one of three ways.
    let admin = reqwest::Client::new();
    let broken = [
        ("syntax", "regions: [unclosed\n"),
        ("unknown field", "regions_typo: {}\n"),
        ("unknown region", "write_region: mars-1\n"),
    ];
    // (served from, served until, us-east-1 weight in service) and write→service times.
    let mut slots: Vec<(u64, u64, u32)> = Vec::new();
    let mut swap_ms: Vec<u64> = Vec::new();
    let mut in_service = 90;
    let mut bad_writes = 0;
    let started = Instant::now();
    for i in 1..=60u32 {
        let due = started + Duration::from_millis(500 * u64::from(i));
        tokio::time::sleep_until(due.into()).await;
        let before = sha(&admin, &gw).await;
        let w = if i % 2 == 0 { 90 } else { 10 };
        let mut text = config(&use1, &euw1, w)
            .replace("{{LISTEN}}", &gw.addr.to_string())
            .replace("{{ADMIN}}", &gw.admin.to_string());
        // Every file differs, so every good write is a new snapshot (sha256).
        text.push_str(&format!("# write {i}\n"));
        let good = i % 3 != 0;
        if !good {
            text.push_str(broken[(i / 3) as usize % 3].1);
            bad_writes += 1;
        }
        let tmp = gw.config_path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        let written = now_ms();
        std::fs::rename(&tmp, &gw.config_path).unwrap();
        if good {
            // Wait for the swap, measuring it.
            loop {
                if sha(&admin, &gw).await != before {
                    break;
                }
                assert!(
                    now_ms() - written < 2_000,
                    "write {i} not in service after 2 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let live = now_ms();
            swap_ms.push(live - written);
            in_service = w;
            slots.push((live, written + 500, in_service));
        } else {
            // The watcher takes a file once two 200 ms polls agree on it: wait until
            // it has refused this one (a fixed sleep raced the next write on a busy
            // machine), then the previous weights must still be serving.
            wait_metric(
                &gw,
                "meridian_config_reloads_total",
                &[("result", "error")],
                f64::from(bad_writes),
                Duration::from_secs(2),
            )
            .await;
            assert_eq!(
                sha(&admin, &gw).await,
                before,
                "broken write {i} replaced the config"
            );
            slots.push((now_ms(), written + 500, in_service));
        }
    }
    stop.store(true, Relaxed);
    for t in load {
        t.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let rate = seen.len() as f64 / elapsed;

    assert_eq!(failed.load(Relaxed), 0, "requests failed during reloads");
    // Between a snapshot going live and the next write, shares follow its weights.
    // Each pick is a weighted coin toss: a slot may differ from the file by 4.5
    // standard deviations of the binomial share (a false alarm once in ~150,000
    // slots) plus 3 points. A slot lasts 100-300 ms, so on a loaded machine some
    // hold little traffic: those with 30 answers or more are judged one by one
    // (90 % and 10 % stay far apart even then), and all of them pooled by weight.
    let within = |share: f64, want: f64, n: f64| {
        (share - want).abs() < 0.03 + 4.5 * (want * (1.0 - want) / n).sqrt()
    };
    let mut checked = 0;
    let mut pooled: std::collections::BTreeMap<u32, (f64, f64)> = Default::default();
    for (from, until, w) in &slots {
        let window: Vec<bool> = seen
            .iter()
            .filter(|(t, _)| t >= from && t < until)
            .map(|(_, u)| *u)
            .collect();
        let n = window.len() as f64;
        let hits = window.iter().filter(|u| **u).count() as f64;
        let p = pooled.entry(*w).or_default();
        (p.0, p.1) = (p.0 + hits, p.1 + n);
        if window.len() < 30 {
            continue;
        }
        let want = f64::from(*w) / 100.0;
        assert!(
            within(hits / n, want, n),
            "slot from {from}: us-east-1 share {:.3} of {n} answers, file says {want}",
            hits / n
        );
        checked += 1;
    }
    assert!(
        checked >= 30,
        "only {checked} slots had enough traffic to judge"
    );
    for (w, (hits, n)) in &pooled {
        let want = f64::from(*w) / 100.0;
        assert!(
            *n >= 1000.0 && within(hits / n, want, *n),
            "slots at {w}/{}: us-east-1 share {:.3} of {n} answers",
            100 - w,
            hits / n
        );
    }
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(&m, "meridian_config_reloads_total", &[("result", "error")]),
        f64::from(bad_writes)
    );
    swap_ms.sort_unstable();
    let p = |q: f64| swap_ms[((swap_ms.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "reload under load: {} requests in {elapsed:.1} s ({rate:.0}/s), 0 failed; {} good and {bad_writes} broken writes; write→service median {} ms, p99 {} ms; {checked} slots checked",
        seen.len(),
        swap_ms.len(),
        p(0.5),
        p(0.99)
    );
}
