//! Route 53 as the coarse fallback, against a real Route 53 API (moto_server on
//! loopback, installed by `scripts/moto`). The reconciler rounds are driven
//! directly with synthetic clocks for the hold-down and quorum rules; the gateway
//! tests run real `meridian` processes that probe real origins and write to moto.

mod support;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_route53::types::RrType;
use meridian::core::config::Dns;
use meridian::services::dns::record::{RecordSet, Target};
use meridian::services::dns::route53::{ApiError, Aws, Route53Api};
use meridian::services::dns::votes::{Observation, View};
use meridian::services::dns::{sync, Settings, SyncResult};
use support::*;

/// A moto_server on a free loopback port, stopped on drop.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    async fn start() -> Moto {
        let bin = repo(".venv-moto/bin/moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/moto (CI does)",
            bin.display()
        );
        // Port 0: the kernel picks a free port, read back from /proc.
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        // Built first, so a failed start below still stops the process.
        let mut moto = Moto {
            child,
            url: String::new(),
        };
        let addr = wait_listening(&mut moto.child, "moto_server").await;
        moto.url = format!("http://{addr}");
        let api = format!("{}/moto-api/", moto.url);
        eventually(Duration::from_secs(30), "moto_server answering", || async {
            reqwest::get(&api).await.map(drop)
        })
        .await;
        moto
    }

    fn client(&self) -> aws_sdk_route53::Client {
        let conf = aws_sdk_route53::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .build();
        aws_sdk_route53::Client::from_conf(conf)
    }

    /// Creates `example.com.` and returns its zone id (without `/hostedzone/`).
    async fn zone(&self) -> String {
        let out = self
            .client()
            .create_hosted_zone()
            .name("example.com.")
            .caller_reference(format!("t{}", rand::random::<u64>()))
            .send()
            .await
            .expect("create hosted zone");
        let id = out.hosted_zone().expect("zone").id();
        id.trim_start_matches("/hostedzone/").to_string()
    }

    /// Weighted records of `api.example.com.` as Route 53 lists them: set id → weight.
    async fn weights(&self, zone: &str) -> BTreeMap<String, i64> {
        let out = self
            .client()
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .start_record_name("api.example.com.")
            .start_record_type(RrType::A)
            .send()
            .await
            .expect("list record sets");
        out.resource_record_sets()
            .iter()
            .filter(|r| r.name() == "api.example.com." && *r.r#type() == RrType::A)
            .map(|r| {
                (
                    r.set_identifier().unwrap_or("").to_string(),
                    r.weight().unwrap_or(-1),
                )
            })
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The real client, counting the weighted record sets it sends (views excluded).
struct Counting {
    inner: Aws,
    weighted_sent: AtomicUsize,
    batches: AtomicUsize,
}

impl Counting {
    fn new(moto: &Moto) -> Counting {
        Counting {
            inner: Aws::from(moto.client()),
            weighted_sent: AtomicUsize::new(0),
            batches: AtomicUsize::new(0),
        }
    }
    fn take_sent(&self) -> usize {
        self.weighted_sent.swap(0, Relaxed)
    }
}

#[async_trait]
impl Route53Api for Counting {
    async fn list(&self, zone: &str, name: &str) -> Result<Vec<RecordSet>, ApiError> {
        self.inner.list(zone, name).await
    }
    async fn upsert(
        &self,
        zone: &str,
        sets: &[RecordSet],
        comment: &str,
    ) -> Result<String, ApiError> {
        let weighted = sets.iter().filter(|s| s.record_type != "TXT").count();
        self.weighted_sent.fetch_add(weighted, Relaxed);
        self.batches.fetch_add(1, Relaxed);
        self.inner.upsert(zone, sets, comment).await
    }
    async fn in_sync(&self, change_id: &str) -> Result<bool, ApiError> {
        self.inner.in_sync(change_id).await
    }
}

const REGIONS: [&str; 3] = ["ap-southeast-1", "eu-west-1", "us-east-1"];
const HOLD: u64 = 60_000;
const T0: u64 = 1_800_000_000_000;

fn dns_config(zone: &str, extra: &str) -> Dns {
    let yaml = format!(
        r#"
enabled: true
route53:
  hosted_zone_id: {zone}
  record_name: api.example.com
  ttl: 60
  records:
    us-east-1: {{ set_identifier: use1, weight: 100, alias: {{ dns_name: ALB-use1.example.com, hosted_zone_id: Z35SXDOTRQ7X7K, evaluate_target_health: true }} }}
    eu-west-1: {{ set_identifier: euw1, weight: 50, values: [203.0.113.20, 203.0.113.21] }}
    ap-southeast-1: {{ set_identifier: apse1, weight: 20, values: [203.0.113.30] }}
interval: 10s
hold_down: 60s
{extra}
"#
    );
    serde_json::from_value(meridian::core::config::yaml::values(&yaml).expect("yaml"))
        .expect("dns config")
}

/// One instance's view at `at`: every region up since long ago, except `changes`.
fn view(publisher: &str, at: u64, changes: &[(&str, bool, u64)]) -> View {
    let mut regions: BTreeMap<String, Observation> = REGIONS
        .iter()
        .map(|r| {
            (
                r.to_string(),
                Observation {
                    up: true,
                    since_ms: T0 - 3_600_000,
                },
            )
        })
        .collect();
    for (r, up, since) in changes {
        regions.insert(
            r.to_string(),
            Observation {
                up: *up,
                since_ms: *since,
            },
        );
    }
    View {
        publisher: publisher.into(),
        at_ms: at,
        regions,
    }
}

fn weights(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test]
async fn quorum_of_two_in_three_moves_a_weight_and_one_view_cannot() {
    let moto = Moto::start().await;
    let zone = moto.zone().await;
    let api = Counting::new(&moto);
    let dns = dns_config(&zone, "");
    let (us, eu, ap) = (
        Settings::new(&dns, "us-east-1"),
        Settings::new(&dns, "eu-west-1"),
        Settings::new(&dns, "ap-southeast-1"),
    );
    let all_in = weights(&[("apse1", 20), ("euw1", 50), ("use1", 100)]);

    // Everyone healthy: the first sync creates the three records, the others send none.
    for s in [&us, &eu, &ap] {
        sync(&api, s, &view(&s.publisher, T0, &[])).await.unwrap();
    }
    assert_eq!(api.take_sent(), 3);
    assert_eq!(moto.weights(&zone).await, all_in);

    // Only us-east-1 sees eu-west-1 down, long enough: nothing moves.
    let down = [("eu-west-1", false, T0 + 1_000)];
    let t = T0 + 1_000 + HOLD + 1;
    let o = sync(&api, &us, &view("us-east-1", t, &down)).await.unwrap();
    assert_eq!(o.result, SyncResult::Unchanged);
    sync(&api, &eu, &view("eu-west-1", t, &[])).await.unwrap();
    sync(&api, &ap, &view("ap-southeast-1", t, &[]))
        .await
        .unwrap();
    let o = sync(&api, &us, &view("us-east-1", t + 10, &down))
        .await
        .unwrap();
    assert_eq!(o.tallies["eu-west-1"].down_held, 1, "{:?}", o.tallies);
    assert_eq!(o.tallies["eu-west-1"].up_held, 2);
    assert_eq!(api.take_sent(), 0);
    assert_eq!(
        moto.weights(&zone).await,
        all_in,
        "one view drained a region"
    );

    // ap-southeast-1 agrees: two of three, and the weight goes to 0 at once.
    let o = sync(&api, &ap, &view("ap-southeast-1", t + 20, &down))
        .await
        .unwrap();
    assert_eq!(o.result, SyncResult::Changed);
    assert_eq!(o.tallies["eu-west-1"].down_held, 2);
    assert_eq!(api.take_sent(), 1);
    assert_eq!(
        moto.weights(&zone).await,
        weights(&[("apse1", 20), ("euw1", 0), ("use1", 100)])
    );

    // Stale views do not vote: an hour later, us-east-1 alone cannot restore it.
    let late = t + 3_600_000;
    let o = sync(
        &api,
        &us,
        &view("us-east-1", late, &[("eu-west-1", true, late - HOLD)]),
    )
    .await
    .unwrap();
    assert_eq!(o.tallies["eu-west-1"].fresh_views, 1);
    assert_eq!(api.take_sent(), 0);
    assert_eq!(moto.weights(&zone).await["euw1"], 0);
}

#[tokio::test]
async fn hold_down_ignores_flaps_then_drains_and_restores() {
    let moto = Moto::start().await;
    let zone = moto.zone().await;
    let api = Counting::new(&moto);
    let dns = dns_config(&zone, "");
    let all: Vec<Settings> = REGIONS.iter().map(|r| Settings::new(&dns, r)).collect();
    // Every instance sees the same thing; the last one's sync carries the quorum.
    let round = |at: u64, eu: Option<(bool, u64)>| {
        let all = &all;
        let api = &api;
        async move {
            let changes: Vec<(&str, bool, u64)> = eu
                .map(|(up, since)| ("eu-west-1", up, since))
                .into_iter()
                .collect();
            for s in all {
                sync(api, s, &view(&s.publisher, at, &changes))
                    .await
                    .unwrap();
            }
            api.take_sent()
        }
    };
    assert_eq!(round(T0, None).await, 3);

    // A flap: down 30 s, up again. Nothing is sent, the weight stays.
    let t = T0 + 100_000;
    assert_eq!(round(t + 30_000, Some((false, t))).await, 0);
    assert_eq!(round(t + 40_000, Some((true, t + 40_000))).await, 0);
    assert_eq!(round(t + 90_000, Some((true, t + 40_000))).await, 0);
    assert_eq!(moto.weights(&zone).await["euw1"], 50);

    // Down for longer than hold_down: weight 0, sent once.
    let d = t + 200_000;
    assert_eq!(round(d + HOLD - 1, Some((false, d))).await, 0);
    assert_eq!(round(d + HOLD, Some((false, d))).await, 1);
    assert_eq!(round(d + HOLD + 10_000, Some((false, d))).await, 0);
    assert_eq!(moto.weights(&zone).await["euw1"], 0);

    // Healthy again: restored only after hold_down of health.
    let u = d + 300_000;
    assert_eq!(round(u + 30_000, Some((true, u))).await, 0);
    assert_eq!(moto.weights(&zone).await["euw1"], 0);
    assert_eq!(round(u + HOLD, Some((true, u))).await, 1);
    assert_eq!(moto.weights(&zone).await["euw1"], 50);
}

#[tokio::test]
async fn every_region_down_keeps_every_weight() {
    let moto = Moto::start().await;
    let zone = moto.zone().await;
    let api = Counting::new(&moto);
    let dns = dns_config(&zone, "");
    let all: Vec<Settings> = REGIONS.iter().map(|r| Settings::new(&dns, r)).collect();
    for s in &all {
        sync(&api, s, &view(&s.publisher, T0, &[])).await.unwrap();
    }
    let t = T0 + 10_000;
    let down: Vec<(&str, bool, u64)> = REGIONS.iter().map(|r| (*r, false, t)).collect();
    for s in &all {
        let o = sync(&api, s, &view(&s.publisher, t + HOLD, &down))
            .await
            .unwrap();
        assert!(o.plan.records.iter().all(|r| r.desired_weight > 0), "{o:?}");
    }
    assert_eq!(
        moto.weights(&zone).await,
        weights(&[("apse1", 20), ("euw1", 50), ("use1", 100)])
    );
}

#[tokio::test]
async fn alias_and_value_records_round_trip_and_only_differences_are_sent() {
    let moto = Moto::start().await;
    let zone = moto.zone().await;
    let api = Counting::new(&moto);
    let s = Settings::new(&dns_config(&zone, ""), "us-east-1");
    sync(&api, &s, &view("us-east-1", T0, &[])).await.unwrap();
    assert_eq!(api.take_sent(), 3);

    let listed = api.list(&zone, "api.example.com.").await.unwrap();
    let by_id: BTreeMap<&str, &RecordSet> = listed
        .iter()
        .map(|r| (r.set_identifier.as_str(), r))
        .collect();
    assert_eq!(
        by_id["use1"].target,
        Target::Alias {
            dns_name: "alb-use1.example.com.".into(),
            hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
            evaluate_target_health: true,
        }
    );
    assert_eq!(by_id["use1"].ttl, None);
    let mut eu = match &by_id["euw1"].target {
        Target::Values(v) => v.clone(),
        other => panic!("{other:?}"),
    };
    eu.sort();
    assert_eq!(eu, ["203.0.113.20", "203.0.113.21"]);
    assert_eq!(by_id["euw1"].ttl, Some(60));

    // Read back equal: a second sync sends no record; the view is the only change.
    let o = sync(&api, &s, &view("us-east-1", T0 + 10, &[]))
        .await
        .unwrap();
    assert_eq!((o.result, api.take_sent()), (SyncResult::Unchanged, 0));
    let votes = api
        .list(&zone, "_meridian-health.api.example.com.")
        .await
        .unwrap();
    assert_eq!(votes.len(), 1);
    assert_eq!(View::from_record(&votes[0]).unwrap().at_ms, T0 + 10);

    // Someone edits a value by hand: exactly that record is put back.
    let mut wrong = by_id["apse1"].clone();
    wrong.target = Target::Values(vec!["198.51.100.9".into()]);
    api.inner.upsert(&zone, &[wrong], "by hand").await.unwrap();
    let o = sync(&api, &s, &view("us-east-1", T0 + 20, &[]))
        .await
        .unwrap();
    assert_eq!(api.take_sent(), 1);
    assert_eq!(
        o.plan.changes[0].reason,
        "ap-southeast-1 record differs from config"
    );
}

#[tokio::test]
async fn dry_run_writes_nothing() {
    let moto = Moto::start().await;
    let zone = moto.zone().await;
    let api = Counting::new(&moto);
    let s = Settings::new(&dns_config(&zone, "dry_run: true"), "us-east-1");
    let o = sync(&api, &s, &view("us-east-1", T0, &[])).await.unwrap();
    assert_eq!(o.result, SyncResult::DryRun);
    assert_eq!(o.plan.changes.len(), 3, "the batch it would send");
    assert_eq!(api.batches.load(Relaxed), 0);
    assert!(moto.weights(&zone).await.is_empty());
    assert!(api
        .list(&zone, "_meridian-health.api.example.com.")
        .await
        .unwrap()
        .is_empty());
}

/// A gateway config with three regions and DNS on against `endpoint`.
fn gateway_config(
    local: &str,
    origins: &[&SimOrigin; 3],
    zone: &str,
    endpoint: &str,
    dns_extra: &str,
) -> String {
    format!(
        r#"
local_region: {local}
listeners: [ {{ address: "{{{{LISTEN}}}}" }} ]
admin: {{ address: "{{{{ADMIN}}}}" }}
regions:
  us-east-1: {{ origins: [ {{ address: "{}" }} ] }}
  eu-west-1: {{ origins: [ {{ address: "{}" }} ] }}
  ap-southeast-1: {{ origins: [ {{ address: "{}" }} ] }}
health: {{ interval: 100ms, timeout: 80ms, jitter: 0%, healthy_threshold: 1, unhealthy_threshold: 1 }}
routing: {{ steering: weighted }}
dns:
  enabled: true
  interval: 300ms
  hold_down: 1500ms
  route53:
    hosted_zone_id: {zone}
    record_name: api.example.com.
    endpoint_url: {endpoint}
    records:
      us-east-1: {{ set_identifier: use1, weight: 100, values: [203.0.113.10] }}
      eu-west-1: {{ set_identifier: euw1, weight: 50, values: [203.0.113.20] }}
      ap-southeast-1: {{ set_identifier: apse1, weight: 20, values: [203.0.113.30] }}
{dns_extra}
"#,
        origins[0].addr, origins[1].addr, origins[2].addr
    )
}

/// Dummy credentials, and no instance-metadata or profile lookups.
const AWS_ENV: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
    ("AWS_CONFIG_FILE", "/nonexistent"),
];

async fn wait_weights(moto: &Moto, zone: &str, want: &BTreeMap<String, i64>, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let got = moto.weights(zone).await;
        if &got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: Route 53 has {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_gauge(gw: &Gateway, region: &str, want: f64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let m = gw.metrics().await;
        let got = metric_sum(&m, "meridian_dns_record_weight", &[("region", region)]);
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dns_record_weight{{{region}}} = {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn gateways_drain_a_dead_region_in_route53_and_restore_it() {
    let moto = Moto::start().await;
    let zone = moto.zone().await;
    let (use1, euw1, apse1) = (
        origin("us-east-1").await,
        origin("eu-west-1").await,
        origin("ap-southeast-1").await,
    );
    let origins = [&use1, &euw1, &apse1];
    // Two of the three voters run: together they are a quorum.
    let a = Gateway::start_with_env(
        &gateway_config("us-east-1", &origins, &zone, &moto.url, ""),
        &AWS_ENV,
    )
    .await;
    let b = Gateway::start_with_env(
        &gateway_config("eu-west-1", &origins, &zone, &moto.url, ""),
        &AWS_ENV,
    )
    .await;
    let all_in = weights(&[("apse1", 20), ("euw1", 50), ("use1", 100)]);
    wait_weights(&moto, &zone, &all_in, "records created").await;

    apse1.control.set_health(r#"{"status":"unhealthy"}"#);
    let went = std::time::Instant::now();
    let out = weights(&[("apse1", 0), ("euw1", 50), ("use1", 100)]);
    wait_weights(&moto, &zone, &out, "dead region drained").await;
    assert!(
        went.elapsed() >= Duration::from_millis(1500),
        "drained before hold_down: {:?}",
        went.elapsed()
    );
    // Both views are published and fresh; the state says who voted.
    let st = a.state().await;
    let votes = &st["dns"]["votes"]["ap-southeast-1"];
    assert_eq!(votes["quorum"], 2, "{st}");
    assert_eq!(st["dns"]["enabled"], true);
    assert!(
        st["dns"]["views"].as_array().unwrap().len() >= 2,
        "{}",
        st["dns"]
    );
    // The other gateway may have sent the change; this one's gauge follows on its next sync.
    wait_gauge(&a, "ap-southeast-1", 0.0).await;

    apse1.control.set_health(r#"{"status":"healthy"}"#);
    wait_weights(&moto, &zone, &all_in, "recovered region restored").await;
    wait_gauge(&b, "ap-southeast-1", 20.0).await;
    let m = b.metrics().await;
    assert!(
        metric_sum(&m, "meridian_dns_syncs_total", &[]) >= 3.0,
        "{m}"
    );
    // Whichever gateway sent a change journaled it, with the change id and the
    // comment; each journaled change is counted once.
    let mut changes = Vec::new();
    for gw in [&a, &b] {
        let doc: serde_json::Value = reqwest::get(gw.admin_url("/admin/events?kind=dns_change"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let events = doc["events"].as_array().unwrap().clone();
        let counted = metric_sum(
            &gw.metrics().await,
            "meridian_events_total",
            &[("kind", "dns_change")],
        );
        assert_eq!(counted, events.len() as f64, "{doc}");
        changes.extend(events);
    }
    assert!(
        changes.iter().any(|e| {
            e["to"].as_str().unwrap_or("").contains("apse1=0")
                && e["cause"].as_str().unwrap_or("").starts_with("change ")
                && e["cause"]
                    .as_str()
                    .unwrap_or("")
                    .contains("ap-southeast-1 weight 20 -> 0")
        }),
        "{changes:?}"
    );
}

#[tokio::test]
async fn route53_down_is_counted_and_backed_off_while_requests_are_served() {
    let use1 = origin("us-east-1").await;
    let euw1 = origin("eu-west-1").await;
    let apse1 = origin("ap-southeast-1").await;
    // Nothing listens on this port: every sync fails to connect.
    let nobody = RefusingPort::bind();
    let dead = format!("http://{}", nobody.addr);
    let gw = Gateway::start_with_env(
        &gateway_config("us-east-1", &[&use1, &euw1, &apse1], "Z1", &dead, ""),
        &AWS_ENV,
    )
    .await;
    let client = reqwest::Client::new();
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let r = client.get(gw.url("/during-outage")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = gw.metrics().await;
    let errors = metric_sum(&m, "meridian_dns_syncs_total", &[("result", "error")]);
    // Without backoff: ~13 tries at 300 ms; doubling from 300 ms: at most 5.
    assert!((2.0..=5.0).contains(&errors), "errors: {errors}\n{m}");
    let st = gw.state().await;
    assert!(
        st["dns"]["consecutive_errors"].as_u64().unwrap() >= 2,
        "{st}"
    );
    assert!(
        st["dns"]["last_error"].as_str().unwrap_or("").len() > 5,
        "{}",
        st["dns"]
    );
    assert_eq!(st["dns"]["last_result"], "error");
}

#[tokio::test]
async fn route53_answering_errors_is_counted_with_its_message() {
    let moto = Moto::start().await;
    let use1 = origin("us-east-1").await;
    let euw1 = origin("eu-west-1").await;
    let apse1 = origin("ap-southeast-1").await;
    let gw = Gateway::start_with_env(
        &gateway_config(
            "us-east-1",
            &[&use1, &euw1, &apse1],
            "ZNOSUCHZONE",
            &moto.url,
            "",
        ),
        &AWS_ENV,
    )
    .await;
    let st = loop {
        let st = gw.state().await;
        if st["dns"]["last_result"] == "error" {
            break st;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let err = st["dns"]["last_error"].as_str().unwrap_or("");
    assert!(err.contains("NoSuchHostedZone"), "{err}");
    let r = reqwest::get(gw.url("/x")).await.unwrap();
    assert_eq!(r.status(), 200);
}
