//! DNS as the coarse fallback (README, "DNS fallback (Route 53)"): keep Route 53's weighted records in
//! line with region health, agreed across regions by quorum.
//!
//! `plan` and `votes` are pure; `sync` is one read → plan → write round against any
//! `Route53Api`; `run` is the background loop that samples health, calls `sync`
//! every `interval` and backs off on errors. Nothing here is on the request path.

pub mod plan;
pub mod record;
pub mod route53;
pub mod votes;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::util::shutdown::ShutdownWatch;
use rand::Rng;
use serde::Serialize;

use crate::core::config::Dns;
use crate::core::health::RegionHealth;
use crate::services::shared::Shared;
use crate::util::clock::now_ms;
use plan::{Plan, Planned};
use record::{fqdn, votes_name, RecordSet, RecordSpec, Target};
use route53::{ApiError, Route53Api};
use votes::{Observation, Rules, Tally, View};

/// Everything one sync needs from the config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub zone: String,
    pub record_name: String,
    pub record_type: String,
    pub specs: Vec<RecordSpec>,
    /// Regions whose instances vote: those with a record.
    pub voters: Vec<String>,
    /// This instance's region: the set identifier of its published view.
    pub publisher: String,
    pub ttl: u32,
    pub hold_down_ms: u64,
    pub stale_after_ms: u64,
    pub dry_run: bool,
    pub wait_insync: bool,
}

impl Settings {
    pub fn new(dns: &Dns, local_region: &str) -> Settings {
        let r53 = &dns.route53;
        let specs = record::specs(dns);
        Settings {
            zone: r53.hosted_zone_id.clone(),
            record_name: fqdn(&r53.record_name),
            record_type: r53.record_type.to_ascii_uppercase(),
            voters: specs.iter().map(|s| s.region.clone()).collect(),
            specs,
            publisher: local_region.to_string(),
            ttl: r53.ttl,
            hold_down_ms: dns.hold_down.get().as_millis() as u64,
            stale_after_ms: 3 * dns.interval.get().as_millis() as u64,
            dry_run: dns.dry_run,
            wait_insync: dns.wait_insync,
        }
    }
}

crate::util::label_set::label_set! {
    /// How a sync ended (`dns_syncs_total{result}`; serialized as the same text).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum SyncResult {
        /// Weights changed in Route 53.
        Changed => "changed",
        /// Weights already right; only this instance's view was refreshed.
        Unchanged => "unchanged",
        /// `dry_run`: the batch was logged, nothing written.
        DryRun => "dry_run",
        Error => "error",
    }
}

/// One view as `/admin/state` shows it.
pub use crate::services::api::ViewDoc;

/// What one sync found and did.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub result: SyncResult,
    pub plan: Plan,
    pub tallies: BTreeMap<String, Tally>,
    pub views: Vec<ViewDoc>,
    /// Weighted record sets sent (this instance's view is sent besides).
    pub weight_changes: usize,
    pub change_id: Option<String>,
    pub comment: String,
}

/// One round: read the records and the published views, tally, plan, write the
/// differing records plus this instance's view in one ChangeBatch.
pub async fn sync(api: &dyn Route53Api, s: &Settings, local: &View) -> Result<Outcome, ApiError> {
    let current: Vec<RecordSet> = api
        .list(&s.zone, &s.record_name)
        .await?
        .into_iter()
        .filter(|r| r.record_type == s.record_type)
        .collect();
    let published = api.list(&s.zone, &votes_name(&s.record_name)).await?;
    let mut views: Vec<View> = published
        .iter()
        .filter(|r| r.record_type == "TXT" && r.set_identifier != local.publisher)
        .filter_map(View::from_record)
        .collect();
    views.push(local.clone());

    let rules = Rules {
        now_ms: local.at_ms,
        hold_down_ms: s.hold_down_ms,
        stale_after_ms: s.stale_after_ms,
    };
    let tallies: BTreeMap<String, Tally> = s
        .voters
        .iter()
        .map(|r| (r.clone(), votes::tally(&views, &s.voters, r, rules)))
        .collect();
    let verdicts = tallies
        .iter()
        .map(|(r, t)| (r.clone(), t.verdict))
        .collect();
    let plan = plan::plan(&s.specs, &verdicts, &current);

    let own_view = RecordSet {
        name: votes_name(&s.record_name),
        record_type: "TXT".into(),
        set_identifier: local.publisher.clone(),
        weight: 0,
        ttl: Some(s.ttl),
        target: Target::Values(local.to_txt()),
        health_check_id: None,
    };
    let comment = if plan.changes.is_empty() {
        format!("meridian: health view of {}", local.publisher)
    } else {
        plan.comment()
    };
    let mut sets: Vec<RecordSet> = plan.changes.iter().map(|c| c.record.clone()).collect();
    sets.push(own_view);

    let view_docs = views
        .iter()
        .map(|v| ViewDoc {
            publisher: v.publisher.clone(),
            at_unix_ms: v.at_ms,
            fresh: rules.now_ms.abs_diff(v.at_ms) <= rules.stale_after_ms,
            regions: v
                .regions
                .iter()
                .map(|(r, o)| {
                    (
                        r.clone(),
                        (if o.up { "up" } else { "down" }.into(), o.since_ms),
                    )
                })
                .collect(),
        })
        .collect();
    let mut outcome = Outcome {
        result: SyncResult::DryRun,
        weight_changes: plan.changes.len(),
        plan,
        tallies,
        views: view_docs,
        change_id: None,
        comment,
    };
    if s.dry_run {
        for c in &outcome.plan.changes {
            tracing::info!(set_identifier = %c.record.set_identifier, weight = c.record.weight, reason = %c.reason, "dns dry run: would UPSERT");
        }
        return Ok(outcome);
    }
    let id = api.upsert(&s.zone, &sets, &outcome.comment).await?;
    if s.wait_insync {
        // Bounded: a change that stays PENDING is reported by the next sync's reads.
        for _ in 0..30 {
            if api.in_sync(&id).await? {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    for c in &outcome.plan.changes {
        tracing::info!(set_identifier = %c.record.set_identifier, weight = c.record.weight, reason = %c.reason, change = %id, "dns record updated");
    }
    outcome.change_id = Some(id);
    outcome.result = if outcome.weight_changes > 0 {
        SyncResult::Changed
    } else {
        SyncResult::Unchanged
    };
    Ok(outcome)
}

/// This instance's own view, built by sampling region health.
#[derive(Debug, Default)]
pub struct Tracker {
    regions: BTreeMap<String, Observation>,
}

impl Tracker {
    /// Records that `region` is (not) up at `now_ms`; `since` moves only on a change,
    /// and starts at the first sample, so a new instance votes after `hold_down`.
    pub fn observe(&mut self, region: &str, up: bool, now_ms: u64) {
        let o = self
            .regions
            .entry(region.to_string())
            .or_insert(Observation {
                up,
                since_ms: now_ms,
            });
        if o.up != up {
            *o = Observation {
                up,
                since_ms: now_ms,
            };
        }
    }

    pub fn view(&self, publisher: &str, now_ms: u64) -> View {
        View {
            publisher: publisher.to_string(),
            at_ms: now_ms,
            regions: self.regions.clone(),
        }
    }
}

/// The reconciler's last sync, as `/admin/state` shows it (which adds `enabled`
/// and `configured` from the config in service).
pub type Status = crate::services::api::DnsDoc;

/// How long after `failures` consecutive errors the next try comes: doubling from
/// one interval, at most 5 minutes (or one interval if that is longer), ±10%.
///
/// When the last error was throttling, the wait starts four times longer, is capped
/// at 15 minutes and is spread ±25%. Route 53 allows five requests a second per AWS
/// account, shared by every meridian instance and every other tool in it; retrying
/// at the usual pace keeps the whole account throttled, and instances throttled
/// together would otherwise come back together.
pub fn backoff(interval: Duration, failures: u32, throttled: bool) -> Duration {
    let (extra_doublings, cap, spread) = if throttled {
        (2, Duration::from_secs(900), 0.25)
    } else {
        (0, Duration::from_secs(300), 0.1)
    };
    let cap = interval.max(cap);
    let base = interval
        .saturating_mul(1 << (failures + extra_doublings).min(16))
        .min(cap);
    base.mul_f64(rand::thread_rng().gen_range(1.0 - spread..1.0 + spread))
}

/// Runs until shutdown: samples region health every second (or every interval if
/// shorter) and syncs every `interval`. Errors are counted, logged and retried
/// with backoff; they never touch serving.
pub async fn run(shared: Arc<Shared>, mut shutdown: ShutdownWatch) {
    let mut tracker = Tracker::default();
    // This reconciler's own status; each sync publishes a copy for `/admin/state`.
    let mut status = Status::default();
    shared.publish_dns_status(&status);
    let mut client: Option<(Option<String>, Arc<dyn Route53Api>)> = None;
    let mut next_sync = tokio::time::Instant::now();
    let mut failures = 0u32;
    loop {
        let snap = shared.snapshot.load_full();
        let dns = snap.dns.as_ref().filter(|d| d.enabled);
        let sample_every = dns.map_or(Duration::from_secs(1), |d| {
            d.interval.get().min(Duration::from_secs(1))
        });
        if let Some(dns) = dns {
            let now = now_ms();
            let live = snap.health_view(now);
            for (i, r) in snap.regions.iter().enumerate() {
                tracker.observe(
                    &r.name,
                    live.region(i).health != RegionHealth::Unhealthy,
                    now,
                );
            }
            if tokio::time::Instant::now() >= next_sync {
                let endpoint = dns.route53.endpoint_url.clone();
                let api = match &client {
                    Some((e, api)) if *e == endpoint => api.clone(),
                    _ => {
                        let timeout = dns
                            .interval
                            .get()
                            .clamp(Duration::from_secs(2), Duration::from_secs(10));
                        let api: Arc<dyn Route53Api> =
                            Arc::new(route53::Aws::new(endpoint.as_deref(), timeout).await);
                        client = Some((endpoint, api.clone()));
                        api
                    }
                };
                let settings = Settings::new(dns, &snap.regions[snap.local_region].name);
                let view = tracker.view(&settings.publisher, now);
                let result = sync(api.as_ref(), &settings, &view).await;
                let throttled = result.as_ref().is_err_and(ApiError::is_throttled);
                record(&shared, &settings, result, &mut failures, &mut status);
                shared.publish_dns_status(&status);
                next_sync = tokio::time::Instant::now()
                    + if failures == 0 {
                        dns.interval.get()
                    } else {
                        backoff(dns.interval.get(), failures, throttled)
                    };
            }
        }
        drop(snap);
        tokio::select! {
            _ = tokio::time::sleep(sample_every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Folds one sync's result into the metrics, the status and the failure count.
fn record(
    shared: &Shared,
    s: &Settings,
    result: Result<Outcome, ApiError>,
    failures: &mut u32,
    st: &mut Status,
) {
    let m = &shared.metrics;
    st.dry_run = s.dry_run;
    st.last_sync_unix_ms = Some(now_ms());
    match result {
        Ok(o) => {
            *failures = 0;
            m.dns_syncs.with_label_values(&[o.result.as_str()]).inc();
            for p in &o.plan.records {
                // Dry run writes nothing: export what Route 53 really has.
                let w = if s.dry_run {
                    p.current_weight.unwrap_or(0)
                } else {
                    p.desired_weight
                };
                m.dns_record_weight
                    .with_label_values(&[&p.region])
                    .set(i64::from(w));
            }
            if o.result == SyncResult::Changed {
                let weights = |pick: &dyn Fn(&Planned) -> Option<u32>| {
                    o.plan
                        .records
                        .iter()
                        .map(|p| {
                            let w = pick(p).map_or("none".into(), |w| w.to_string());
                            format!("{}={w}", p.set_identifier)
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                };
                shared.events.record(
                    crate::telemetry::events::Kind::DnsChange,
                    s.record_name.as_str(),
                    Some(&weights(&|p| p.current_weight)),
                    Some(&weights(&|p| Some(p.desired_weight))),
                    format!(
                        "change {}: {}",
                        o.change_id.as_deref().unwrap_or("?"),
                        o.comment
                    ),
                );
            }
            st.last_result = Some(o.result.as_str().to_string());
            st.last_error = None;
            st.consecutive_errors = 0;
            if o.change_id.is_some() {
                st.last_change_id = o.change_id;
            }
            st.last_comment = Some(o.comment);
            st.records = o.plan.records.iter().map(Planned::doc).collect();
            st.votes = o
                .tallies
                .iter()
                .map(|(r, t)| (r.clone(), t.doc()))
                .collect();
            st.views = o.views;
        }
        Err(e) => {
            *failures += 1;
            m.dns_syncs
                .with_label_values(&[SyncResult::Error.as_str()])
                .inc();
            tracing::warn!(error = %e, kind = e.kind(), failures = *failures, "dns sync failed; backing off");
            st.last_result = Some(SyncResult::Error.as_str().to_string());
            st.last_error = Some(e.to_string());
            st.consecutive_errors = *failures;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_moves_since_only_on_change() {
        let mut t = Tracker::default();
        t.observe("eu", true, 10);
        t.observe("eu", true, 20);
        assert_eq!(t.view("us", 30).regions["eu"].since_ms, 10);
        t.observe("eu", false, 40);
        t.observe("eu", false, 50);
        let v = t.view("us", 60);
        assert_eq!(
            v.regions["eu"],
            Observation {
                up: false,
                since_ms: 40
            }
        );
        assert_eq!((v.publisher.as_str(), v.at_ms), ("us", 60));
    }

    #[test]
    fn backoff_doubles_to_a_cap() {
        let i = Duration::from_secs(30);
        let within = |d: Duration, want: u64| {
            let w = Duration::from_secs(want);
            d >= w.mul_f64(0.9) && d <= w.mul_f64(1.1)
        };
        assert!(within(backoff(i, 1, false), 60));
        assert!(within(backoff(i, 2, false), 120));
        assert!(within(backoff(i, 5, false), 300));
        assert!(within(backoff(i, 40, false), 300));
        assert!(within(backoff(Duration::from_secs(600), 3, false), 600));
    }

    #[test]
    fn throttling_backs_off_longer_and_wider() {
        let i = Duration::from_secs(30);
        let between = |d: Duration, lo: u64, hi: u64| {
            d >= Duration::from_secs(lo) && d <= Duration::from_secs(hi)
        };
        // Four times the plain wait (60 s, 120 s), ±25%; at most 15 minutes.
        assert!(between(backoff(i, 1, true), 180, 300));
        assert!(between(backoff(i, 2, true), 360, 600));
        assert!(between(backoff(i, 40, true), 675, 1125));
        for n in 1..20 {
            assert!(backoff(i, n, true) > backoff(i, n, false), "{n}");
        }
    }
}
