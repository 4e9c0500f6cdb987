//! Active probes: one task per endpoint (each address of each origin: an ALB
//! node can die alone), started and stopped as snapshots and the resolver's
//! address sets come and go, each GETting the health path every `interval` ±
//! `jitter` and folding the judged answer into the endpoint's state. Also keeps
//! the per-region and per-origin gauges and the readiness latch (ready once every
//! origin's name was looked up and each of its endpoints had one probe result).

pub mod watch;

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::util::lock::lock;
use crate::util::shutdown::ShutdownWatch;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use rand::Rng;
use tokio::task::JoinHandle;

use crate::core::health::endpoints::Endpoint;
use crate::core::health::judge::{judge, next_state, FailReason, Judgement, Streak, Verdict};
use crate::core::health::{LastProbe, ProbeState};
use crate::core::shift_guard::{self, Abort};
use crate::core::snapshot::{OriginEntry, Snapshot};
use crate::proxy::pool::{RequestBody, Sender};
use crate::proxy::upstream::{self, ConnectError, Purpose};
use crate::services::shared::Shared;
use crate::telemetry::metric_labels::ProbeFailure;
use crate::util::clock::now_ms;

/// Health bodies larger than this are cut off (and then fail JSON parsing).
const MAX_BODY: usize = 64 * 1024;
/// How often the supervisor looks for new or removed endpoints.
const RESYNC: Duration = Duration::from_millis(250);

/// Runs until `shutdown` flips: keeps one probe task per origin of the current snapshot.
pub async fn supervise(shared: Arc<Shared>, shutdown: ShutdownWatch) {
    supervise_with(shared, shutdown, probe_loop).await
}

/// `supervise` with the probe task as a parameter: tests pass one that panics.
async fn supervise_with<P, F>(shared: Arc<Shared>, mut shutdown: ShutdownWatch, probe: P)
where
    P: Fn(Arc<Shared>, String) -> F,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tasks: HashMap<String, JoinHandle<()>> = HashMap::new();
    let mut guards = ShiftGuards::default();
    let mut watch = watch::Watch::default();
    loop {
        let ended = take_ended(&mut tasks).await;
        // Loaded after the ended tasks were taken: a task that returned because its
        // origin left the config saw a snapshot no newer than this one, so only a
        // task that ended while its origin is still wanted counts as a restart.
        let snap = shared.snapshot.load_full();
        for e in &ended {
            note_restart(&shared, &snap, e);
        }
        // Spawns the missing ones: new endpoints and the restarts.
        for o in snap.regions.iter().flat_map(|r| &r.origins) {
            for e in o.endpoints.load().iter() {
                if !tasks.contains_key(&e.key) {
                    let task = tokio::spawn(probe(shared.clone(), e.key.clone()));
                    tasks.insert(e.key.clone(), task);
                }
            }
        }
        tasks.retain(|key, task| {
            let keep = find(&snap, key).is_some();
            if !keep {
                task.abort();
            }
            keep
        });
        let all_probed = snap
            .regions
            .iter()
            .flat_map(|r| &r.origins)
            .all(|o| o.endpoints.probed());
        if all_probed {
            shared.mark_probed();
        }
        export_regions(&shared, &snap);
        guards.tick(&shared, &snap, now_ms());
        watch.tick(&shared, &snap, now_ms());
        drop(snap);
        tokio::select! {
            _ = tokio::time::sleep(RESYNC) => {}
            _ = shutdown.changed() => break,
        }
    }
    for task in tasks.values() {
        task.abort();
    }
}

/// A probe task that ended by itself (the supervisor aborts only tasks it removes).
struct Ended {
    key: String,
    /// The panic, or `None` when the task returned.
    panic: Option<String>,
}

/// Takes each ended task out of `tasks`, with how it ended.
async fn take_ended(tasks: &mut HashMap<String, JoinHandle<()>>) -> Vec<Ended> {
    let keys: Vec<String> = tasks
        .iter()
        .filter(|(_, task)| task.is_finished())
        .map(|(key, _)| key.clone())
        .collect();
    let mut ended = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(task) = tasks.remove(&key) else {
            continue;
        };
        // Finished: the await returns at once.
        let panic = match task.await {
            Ok(()) => None,
            Err(e) if e.is_panic() => {
                Some(crate::util::panic_message(&*e.into_panic()).to_string())
            }
            // Cancelled: only by the runtime shutting down.
            Err(_) => None,
        };
        ended.push(Ended { key, panic });
    }
    ended
}

/// Logs and counts a probe task that ended while its origin is in `snap` (the
/// caller starts it again); one whose origin left the config ended as it should.
fn note_restart(shared: &Shared, snap: &Snapshot, ended: &Ended) {
    let Some((r, o, _)) = find(snap, &ended.key) else {
        return;
    };
    let (region, origin) = (&snap.regions[r].name, &snap.regions[r].origins[o].address);
    shared
        .metrics
        .probe_restarts
        .with_label_values(&[region.as_str(), origin.as_str()])
        .inc();
    match &ended.panic {
        Some(panic) => {
            tracing::error!(%region, %origin, %panic, "probe task panicked; restarting it")
        }
        None => tracing::error!(%region, %origin, "probe task ended; restarting it"),
    }
}

/// Region and origin of endpoint `key` in `snap`, and the endpoint.
fn find(snap: &Snapshot, key: &str) -> Option<(usize, usize, Arc<Endpoint>)> {
    snap.regions.iter().enumerate().find_map(|(r, region)| {
        region.origins.iter().enumerate().find_map(|(o, origin)| {
            let set = origin.endpoints.load();
            let e = set.iter().find(|e| e.key == key)?;
            Some((r, o, e.clone()))
        })
    })
}

async fn probe_loop(shared: Arc<Shared>, key: String) {
    let mut streak = Streak::default();
    loop {
        let snap = shared.snapshot.load_full();
        let Some((r, o, endpoint)) = find(&snap, &key) else {
            return;
        };
        let (region, origin) = (&snap.regions[r], &snap.regions[r].origins[o]);
        let health = &endpoint.health;
        let h = &snap.probes;
        let started = Instant::now();
        let answer =
            tokio::time::timeout(h.timeout.get(), probe_once(origin, endpoint.addr, &h.path)).await;
        let elapsed = started.elapsed();
        let mut detail = None;
        let judged = match answer {
            Err(_) => failed(FailReason::Timeout),
            Ok(Err((reason, why))) => {
                detail = why;
                failed(reason)
            }
            Ok(Ok((status, body))) => {
                let j = judge(status, &body, &h.expect_status, h.deep);
                detail = match j.verdict {
                    Verdict::Fail(FailReason::Status) => Some(format!(
                        "HTTP {status}, expected one of {:?}",
                        h.expect_status
                    )),
                    Verdict::Fail(FailReason::Unhealthy) => {
                        Some("the deep health body says unhealthy".into())
                    }
                    _ => None,
                };
                j
            }
        };
        let labels = [region.name.as_str(), origin.address.as_str()];
        let m = &shared.metrics;
        m.probe_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        if let Verdict::Fail(reason) = judged.verdict {
            m.probe_failures
                .with_label_values(&[labels[0], labels[1], ProbeFailure::Failed(reason).as_str()])
                .inc();
        } else {
            health.observe_latency_us(elapsed.as_micros() as u32);
        }
        if judged.body_unparsed && h.deep {
            // Judged by status alone; counted so a broken health endpoint shows.
            m.probe_failures
                .with_label_values(&[labels[0], labels[1], ProbeFailure::BodyNotJson.as_str()])
                .inc();
        }
        let lag = judged.replication_lag_ms.unwrap_or(u32::MAX);
        health.replication_lag_ms.store(lag, Relaxed);
        let before = health.state();
        let after = next_state(
            before,
            &mut streak,
            judged.verdict,
            h.healthy_threshold,
            h.unhealthy_threshold,
        );
        let flipped = after != before;
        if flipped {
            health.set_state(after);
            if before == ProbeState::Unhealthy {
                // Back from a failure the probes saw: whatever live traffic saw
                // during it is stale (Envoy's successful_active_health_check_uneject_host).
                crate::core::health::outlier::lift(health);
            }
            // A new origin's first pass is what start-up expects, not news.
            if before != ProbeState::Unknown || after == ProbeState::Unhealthy {
                let cause = flip_cause(&judged.verdict, detail.as_deref(), &streak, h);
                shared.events.record(
                    crate::telemetry::events::Kind::OriginHealth,
                    endpoint.key.as_str(),
                    Some(before.as_str()),
                    Some(after.as_str()),
                    cause,
                );
            }
        }
        health.probed.store(true, Relaxed);
        health.probe_passes.store(streak.passes, Relaxed);
        health.probe_fails.store(streak.fails, Relaxed);
        let last = LastProbe {
            result: match judged.verdict {
                Verdict::Pass => "pass",
                Verdict::Degraded => "degraded",
                Verdict::Fail(_) => "fail",
            },
            error: match judged.verdict {
                Verdict::Fail(r) => Some(r.as_str()),
                _ => None,
            },
            detail,
            at_unix_ms: now_ms(),
            duration_ms: elapsed.as_millis() as u64,
        };
        *lock(&health.last_probe) = Some(last);
        // The origin's gauge is its roll-up: up while one of its addresses is.
        m.origin_healthy
            .with_label_values(&labels)
            .set(i64::from(origin.reading(now_ms()).eligible));
        if let Some(max) = origin.max_inflight_now() {
            m.origin_inflight_limit
                .with_label_values(&labels)
                .set(i64::from(max));
        }
        if flipped {
            let why = format!(
                "{} ({}) is {}",
                origin.address,
                endpoint.addr,
                after.as_str()
            );
            watch::region_health(&shared, &snap, r, now_ms(), Some(&why));
        }
        let pause = jittered(h.interval.get(), h.jitter.0);
        drop(snap);
        tokio::time::sleep(pause).await;
    }
}

fn failed(reason: FailReason) -> Judgement {
    Judgement {
        verdict: Verdict::Fail(reason),
        replication_lag_ms: None,
        body_unparsed: false,
    }
}

/// `interval` ± `percent`, so probes of many instances do not march in step.
fn jittered(interval: Duration, percent: f64) -> Duration {
    let spread = (percent / 100.0).clamp(0.0, 1.0);
    let factor = 1.0 + rand::thread_rng().gen_range(-spread..=spread);
    interval.mul_f64(factor.max(0.05))
}

/// Why a probe failed, with the detail worth showing an operator (TLS causes).
type ProbeError = (FailReason, Option<String>);

/// One GET of the health path over a connection of its own, made as traffic
/// makes one (TLS with the origin's own settings for HTTPS origins, the
/// origin's protocol): status and (capped) body.
async fn probe_once(
    origin: &OriginEntry,
    addr: std::net::SocketAddr,
    path: &str,
) -> Result<(u16, Bytes), ProbeError> {
    let tx = upstream::connect(origin, addr, Purpose::Probe)
        .await
        .map_err(connect_failure)?;
    let fail = |e: &dyn std::error::Error| (FailReason::Error, Some(with_causes(e)));
    let req = match tx {
        Sender::H2(_) => {
            let target = upstream::h2_target(origin, origin.host_header.as_ref(), path)
                .map_err(|e| fail(&e))?;
            http::Request::get(target)
        }
        Sender::H1(_) => {
            let host = upstream::authority(origin, origin.host_header.as_ref());
            http::Request::get(path).header(http::header::HOST, host)
        }
    };
    let req = req
        .header(http::header::USER_AGENT, "meridian-health/1")
        .body(RequestBody::Full(None))
        .map_err(|e| fail(&e))?;
    let resp = match tx {
        Sender::H1(mut tx) => tx.send_request(req).await,
        Sender::H2(mut tx) => tx.send_request(req).await,
    }
    .map_err(|e| fail(&e))?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    Ok((status, body))
}

/// A failed connection as a probe reports it.
fn connect_failure(e: ConnectError) -> ProbeError {
    match e {
        ConnectError::Io(e) => match e.kind() {
            std::io::ErrorKind::ConnectionRefused => (FailReason::Refused, Some(e.to_string())),
            std::io::ErrorKind::TimedOut => (FailReason::Timeout, Some(e.to_string())),
            _ => (FailReason::Error, Some(e.to_string())),
        },
        ConnectError::Tls(e) => (FailReason::Tls, Some(e.to_string())),
        ConnectError::Http(e) => (FailReason::Error, Some(with_causes(&e))),
        // `connect` is not timed: the probe's own timeout bounds it.
        ConnectError::Timeout => (FailReason::Timeout, None),
    }
}

/// Why an origin's probe state flipped, as the journal tells it.
fn flip_cause(
    verdict: &Verdict,
    detail: Option<&str>,
    streak: &Streak,
    h: &crate::core::config::Health,
) -> String {
    match verdict {
        Verdict::Fail(reason) => format!(
            "probe failed: {}{}; {} failure(s) in a row (unhealthy_threshold {})",
            reason.as_str(),
            detail.map(|d| format!(" ({d})")).unwrap_or_default(),
            streak.fails,
            h.unhealthy_threshold
        ),
        Verdict::Degraded => "probe passed, degraded".into(),
        Verdict::Pass => format!(
            "probe passed; {} pass(es) in a row (healthy_threshold {})",
            streak.passes, h.healthy_threshold
        ),
    }
}

/// An error and its causes, `outer: inner: ...` (hyper's own words are terse).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// Per-region gauges: health, effective weight, latency, replication lag.
fn export_regions(shared: &Shared, snap: &Snapshot) {
    let now = now_ms();
    let view = snap.health_view(now);
    let m = &shared.metrics;
    for (i, region) in snap.regions.iter().enumerate() {
        let status = view.region(i);
        let name = [region.name.as_str()];
        m.region_healthy
            .with_label_values(&name)
            .set(i64::from(status.eligible()));
        m.region_weight_effective
            .with_label_values(&name)
            .set(region.effective_weight(&status, snap.degraded_factor));
        m.region_latency
            .with_label_values(&name)
            .set(f64::from(status.latency_us) / 1e6);
        if let Some(lag) = region.replication_lag_ms(now) {
            m.replication_lag
                .with_label_values(&name)
                .set(f64::from(lag) / 1e3);
        }
    }
}

/// Error-ratio samples of the `to` region of each guarded shift.
#[derive(Default)]
struct ShiftGuards {
    /// Per shift name: (time ms, responses, errors) of its `to` region, oldest first.
    samples: HashMap<String, std::collections::VecDeque<(u64, u64, u64)>>,
}

impl ShiftGuards {
    /// Aborts shifts whose `to` region's error ratio over `abort_if.over` exceeds
    /// the limit, and exports each shift's progress.
    fn tick(&mut self, shared: &Shared, snap: &Snapshot, now: u64) {
        for s in &snap.shifts {
            let aborted = s.state.aborted.load(Relaxed);
            let Some((limit, over_ms)) = s.abort_if else {
                continue;
            };
            if aborted || s.fraction_at(now) == 0.0 {
                continue;
            }
            let to = &snap.regions[s.to].state;
            let sample = (now, to.responses.load(Relaxed), to.errors.load(Relaxed));
            let window = self.samples.entry(s.name.clone()).or_default();
            if let Some(Abort {
                responses,
                errors,
                over_ms,
            }) = shift_guard::judge(window, sample, limit, over_ms)
            {
                s.state.aborted.store(true, Relaxed);
                shared
                    .metrics
                    .shift_aborts
                    .with_label_values(&[s.name.as_str()])
                    .inc();
                let progress = s.fraction_at(now) / s.fraction.max(f64::MIN_POSITIVE);
                shared.events.record(
                    crate::telemetry::events::Kind::Shift,
                    s.name.as_str(),
                    Some(&format!("{:.0}%", progress * 100.0)),
                    Some("aborted"),
                    format!(
                        "error ratio of {} was {:.3} ({errors} of {responses}) over {} ms, above abort_if {limit}",
                        snap.regions[s.to].name,
                        errors as f64 / responses as f64,
                        over_ms,
                    ),
                );
            }
        }
        for s in &snap.shifts {
            let progress = s.progress(now);
            shared
                .metrics
                .shift_progress
                .with_label_values(&[s.name.as_str()])
                .set(progress);
        }
        self.samples
            .retain(|name, _| snap.shifts.iter().any(|s| &s.name == name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::ConfigFile;

    fn restarts(shared: &Shared, origin: &str) -> u64 {
        let region = if origin.ends_with(":1") { "r1" } else { "r2" };
        shared
            .metrics
            .probe_restarts
            .with_label_values(&[region, origin])
            .get()
    }

    /// Runs the supervisor with `probe` as every endpoint's probe task for `for_ms`
    /// (of tokio's clock: the tests run it paused, so the supervisor's looks come
    /// exactly every 250 ms and the counts below are exact).
    async fn supervised<F>(shared: &Arc<Shared>, probe: fn(Arc<Shared>, String) -> F, for_ms: u64)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let running = tokio::spawn(supervise_with(shared.clone(), shutdown, probe));
        tokio::time::sleep(Duration::from_millis(for_ms)).await;
        stop.send(true).unwrap();
        running.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_task_that_panics_is_counted_and_started_again() {
        let file = ConfigFile::new("probe-panic");
        let shared = Shared::load(file.path()).unwrap();
        async fn panics(_: Arc<Shared>, key: String) {
            if key.ends_with(":1") {
                panic!("probe bug");
            }
            std::future::pending::<()>().await;
        }
        // The supervisor looks at 0, 250, ..., 1250 ms: five looks after the first
        // spawn, each finding it ended and starting it again.
        supervised(&shared, panics, 1300).await;
        assert_eq!(restarts(&shared, "127.0.0.1:1"), 5);
        assert_eq!(restarts(&shared, "127.0.0.1:2"), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_task_that_returns_is_counted_and_started_again() {
        let file = ConfigFile::new("probe-return");
        let shared = Shared::load(file.path()).unwrap();
        async fn returns(_: Arc<Shared>, key: String) {
            if !key.ends_with(":2") {
                std::future::pending::<()>().await;
            }
        }
        supervised(&shared, returns, 1300).await;
        assert_eq!(restarts(&shared, "127.0.0.1:1"), 0);
        assert_eq!(restarts(&shared, "127.0.0.1:2"), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn ended_tasks_are_taken_with_how_they_ended() {
        let mut tasks = HashMap::new();
        tasks.insert(
            "panicked".to_string(),
            tokio::spawn(async { panic!("boom") }),
        );
        tasks.insert("returned".to_string(), tokio::spawn(async {}));
        tasks.insert(
            "running".to_string(),
            tokio::spawn(std::future::pending::<()>()),
        );
        // The paused clock moves only once every task is idle: the two that end
        // have ended by then.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut ended = take_ended(&mut tasks).await;
        ended.sort_by(|a, b| a.key.cmp(&b.key));
        let got: Vec<(&str, Option<&str>)> = ended
            .iter()
            .map(|e| (e.key.as_str(), e.panic.as_deref()))
            .collect();
        assert_eq!(got, [("panicked", Some("boom")), ("returned", None)]);
        assert_eq!(tasks.keys().collect::<Vec<_>>(), ["running"]);
    }
}
