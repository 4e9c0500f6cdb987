//! Hot reload end to end: a changed file, SIGHUP or the admin API swap a new
//! snapshot in atomically with no request lost; a broken file keeps the old one
//! serving; write endpoints need the bearer token; drains take a region out.

mod support;

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use support::*;

const TOKEN: &str = "s3cret-admin-token";

struct World {
    use1: SimOrigin,
    euw1: SimOrigin,
    token_file: std::path::PathBuf,
}

impl World {
    async fn new() -> World {
        let o = |r: &'static str| async move {
            SimOrigin::start(r, "127.0.0.1:0".parse().unwrap())
                .await
                .unwrap()
        };
        let token_file = temp_dir("admin-token").join("admin.token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        World {
            use1: o("us-east-1").await,
            euw1: o("eu-west-1").await,
            token_file,
        }
    }

    /// Weighted steering between the two regions with the given weights.
    fn config(&self, w_use1: u32, w_euw1: u32) -> String {
        format!(
            r#"
local_region: us-east-1
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}", token_file: "{}" }}
regions:
  us-east-1: {{ weight: {w_use1}, origins: [ {{ address: "{}" }} ] }}
  eu-west-1: {{ weight: {w_euw1}, origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 100ms, timeout: 80ms, healthy_threshold: 1 }}
routing: {{ steering: weighted }}
"#,
            self.token_file.display(),
            self.use1.addr,
            self.euw1.addr
        )
    }
}

/// Rewrites `gw`'s config file with the `{{LISTEN}}`/`{{ADMIN}}` it started with.
fn rewrite(gw: &Gateway, yaml: &str) {
    let yaml = yaml
        .replace("{{LISTEN}}", &gw.addr.to_string())
        .replace("{{ADMIN}}", &gw.admin.to_string());
    // Write then rename, as config management tools do, so no half file is read.
    let tmp = gw.config_path.with_extension("tmp");
    std::fs::write(&tmp, yaml).unwrap();
    std::fs::rename(&tmp, &gw.config_path).unwrap();
}

async fn sha(gw: &Gateway) -> String {
    let s = gw.state().await;
    s["config"]["sha256"].as_str().unwrap().to_string()
}

async fn share_of_use1(gw: &Gateway, n: usize) -> f64 {
    let mut use1 = 0;
    for _ in 0..n {
        let r = reqwest::get(gw.url("/")).await.unwrap();
        if r.headers()["x-meridian-region"] == "us-east-1" {
            use1 += 1;
        }
    }
    use1 as f64 / n as f64
}

#[tokio::test]
async fn edited_weights_apply_atomically_with_no_request_lost() {
    let world = World::new().await;
    let gw = Gateway::start(&world.config(100, 0)).await;
    assert_eq!(share_of_use1(&gw, 50).await, 1.0);

    // Load from a background client while the file flips weights 20 times.
    let load = Load::start(gw.url("/"), 1);
    for i in 0..20 {
        let (a, b) = if i % 2 == 0 { (0, 100) } else { (100, 0) };
        let before = sha(&gw).await;
        rewrite(&gw, &world.config(a, b));
        let resp = reqwest::Client::new()
            .post(gw.admin_url("/admin/reload"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["result"], "reloaded", "{body}");
        // Whether the watcher or this call got there first, the new file serves now.
        assert_ne!(sha(&gw).await, before);
    }
    let (ok, failed) = load.finish().await;
    assert_eq!(failed, 0, "requests lost during reloads");
    assert!(ok > 20);
    // The last file (i = 19) gave us-east-1 everything.
    assert_eq!(share_of_use1(&gw, 50).await, 1.0);
    let m = gw.metrics().await;
    assert!(metric_sum(&m, "meridian_config_reloads_total", &[("result", "ok")]) >= 20.0);
    let sha_now = sha(&gw).await;
    assert_eq!(
        metric_sum(&m, "meridian_config_info", &[("sha256", &sha_now)]),
        1.0
    );
}

#[tokio::test]
async fn a_broken_file_keeps_the_old_config_serving() {
    let world = World::new().await;
    let gw = Gateway::start(&world.config(0, 100)).await;
    let good = sha(&gw).await;
    rewrite(
        &gw,
        &world
            .config(0, 100)
            .replace("steering: weighted", "steering: sideways"),
    );
    // The file watcher notices within a second or two.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let state = loop {
        let s = gw.state().await;
        if !s["config"]["last_reload_error"].is_null() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "broken file never reported"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let err = state["config"]["last_reload_error"].as_str().unwrap();
    assert!(err.contains("routing.steering"), "{err}");
    assert_eq!(state["config"]["sha256"], good.as_str());
    assert_eq!(share_of_use1(&gw, 20).await, 0.0);
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(&m, "meridian_config_reloads_total", &[("result", "error")]),
        1.0
    );

    // SIGHUP with a fixed file: swapped, error cleared.
    rewrite(&gw, &world.config(100, 0));
    gw.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while sha(&gw).await == good {
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP reload never happened"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(share_of_use1(&gw, 20).await, 1.0);
}

#[tokio::test]
async fn a_file_written_in_place_is_not_read_half_way() {
    let world = World::new().await;
    let gw = Gateway::start(&world.config(0, 100)).await;
    let before = sha(&gw).await;
    let yaml = world
        .config(100, 0)
        .replace("{{LISTEN}}", &gw.addr.to_string())
        .replace("{{ADMIN}}", &gw.admin.to_string());
    // As an editor saving in place: truncate, write a first part, pause less than
    // a poll, write the rest. The first part alone is an invalid config (no
    // regions), so reading it would count a failed reload.
    let (head, tail) = yaml.split_at(yaml.find("regions:").unwrap());
    for round in 0..5 {
        use std::io::Write;
        let mut f = std::fs::File::create(&gw.config_path).unwrap();
        f.write_all(head.as_bytes()).unwrap();
        f.flush().unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
        // Differ per round so each rewrite is a change.
        f.write_all(format!("{tail}# round {round}\n").as_bytes())
            .unwrap();
        drop(f);
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let m = gw.metrics().await;
    assert_eq!(
        metric_sum(&m, "meridian_config_reloads_total", &[("result", "error")]),
        0.0,
        "a half-written file was read: {}",
        gw.state().await["config"]["last_reload_error"]
    );
    assert_ne!(sha(&gw).await, before);
    assert_eq!(share_of_use1(&gw, 20).await, 1.0);
}

#[tokio::test]
async fn write_endpoints_need_the_token_and_drain_takes_a_region_out() {
    let world = World::new().await;
    let gw = Gateway::start(&world.config(100, 100)).await;
    let client = reqwest::Client::new();
    let post = |path: &str, token: Option<&str>| {
        let mut req = client.post(gw.admin_url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(post("/admin/reload", None).await.unwrap().status(), 401);
    assert_eq!(
        post("/admin/reload", Some("wrong")).await.unwrap().status(),
        401
    );
    let r = post("/admin/regions/eu-west-1/drain", Some(TOKEN))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(share_of_use1(&gw, 30).await, 1.0);
    let s = gw.state().await;
    assert_eq!(s["regions"]["eu-west-1"]["drained"], true);
    assert_eq!(
        post("/admin/regions/mars-1/drain", Some(TOKEN))
            .await
            .unwrap()
            .status(),
        404
    );
    post("/admin/regions/eu-west-1/undrain", Some(TOKEN))
        .await
        .unwrap();
    let share = share_of_use1(&gw, 200).await;
    assert!((0.35..0.65).contains(&share), "{share}");

    // Without a token file, write endpoints are forbidden outright.
    let no_token = world.config(100, 100).replace(
        &format!(", token_file: \"{}\"", world.token_file.display()),
        "",
    );
    let gw2 = Gateway::start(&no_token).await;
    let r = reqwest::Client::new()
        .post(gw2.admin_url("/admin/reload"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn drain_and_undrain_under_load_lose_nothing() {
    let world = World::new().await;
    let gw = Gateway::start(&world.config(50, 50)).await;
    let load = Load::start(gw.url("/"), 4);
    let admin = reqwest::Client::new();
    for i in 0..20 {
        let region = if i % 2 == 0 { "eu-west-1" } else { "us-east-1" };
        for action in ["drain", "undrain"] {
            let r = admin
                .post(gw.admin_url(&format!("/admin/regions/{region}/{action}")))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let (ok, failed) = load.finish().await;
    assert_eq!(failed, 0);
    assert!(ok > 100);
}

#[tokio::test]
async fn a_removed_origins_pooled_connections_close_after_the_reload() {
    let (old, new) = (origin("us-east-1").await, origin("us-east-1").await);
    // A long idle timeout: only the reload can close the old origin's connection.
    let config = |o| one_region_config(o, "timeouts: { idle: 60s }");
    let gw = Gateway::start(&config(old.addr)).await;
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let r = client.get(gw.url("/")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    assert!(
        old.control.open_connections() >= 1,
        "the old origin's connection was not kept"
    );
    rewrite(&gw, &config(new.addr));
    gw.signal("HUP");
    eventually(
        Duration::from_secs(10),
        "requests reach the new origin",
        || async {
            let r = client.get(gw.url("/")).send().await.unwrap();
            let served = r.headers()["x-origin-region"].clone();
            r.bytes().await.unwrap();
            seen_if(new.control.requests.load(Relaxed) > 0, served)
        },
    )
    .await;
    // Its pool is no snapshot's now: dropped, it closes what it kept.
    all_connections_closed(&old, Duration::from_secs(8)).await;
}
