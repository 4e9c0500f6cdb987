//! The `/admin/state` document: what an operator needs to see at a glance.

use std::time::UNIX_EPOCH;

use std::sync::atomic::Ordering::Relaxed;

use serde_json::{json, Value};

use crate::core::health::endpoints::{Endpoint, Target};
use crate::core::health::ProbeState;
use crate::core::snapshot::OriginEntry;

use crate::services::shared::Shared;
use crate::util::clock::now_ms;
use crate::util::lock::lock;

/// Builds the state document from the snapshot in service and live health.
pub fn document(shared: &Shared, last_reload_error: Option<String>) -> Value {
    let snap = shared.snapshot.load();
    let now = now_ms();
    let rates_now = crate::util::clock::monotonic_ms();
    let view = snap.health_view(now);
    let regions: serde_json::Map<String, Value> = snap
        .regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let s = view.region(i);
            let origins: Vec<Value> = r
                .origins
                .iter()
                .map(|o| origin_doc(o, now, rates_now))
                .collect();
            (
                r.name.clone(),
                json!({
                    "weight": r.weight,
                    "effective_weight": f64::from(r.weight) * f64::from(r.dial) / 100.0
                        * s.share_factor(snap.degraded_factor),
                    "traffic_dial": r.dial,
                    "drained": s.drained,
                    "health": s.health.as_str(),
                    "latency_ms": f64::from(s.latency_us) / 1000.0,
                    "replication_lag_ms": r.origins.iter()
                        .filter_map(|o| o.endpoints.replication_lag_ms(now))
                        .max(),
                    "last_minute": r.state.rates.summary(rates_now),
                    "origins": origins,
                }),
            )
        })
        .collect();
    let loaded_ms = snap
        .loaded_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // Enabled-ness follows the live config; the rest is the reconciler's last sync.
    let mut dns = shared.dns_status();
    dns["enabled"] = json!(snap.dns.as_ref().is_some_and(|d| d.enabled));
    dns["configured"] = json!(snap.dns.is_some());
    json!({
        "config": {
            "path": shared.config_path.display().to_string(),
            "sha256": snap.sha256,
            "loaded_at_unix_ms": loaded_ms,
            "last_reload_error": last_reload_error,
        },
        "local_region": snap.regions[snap.local_region].name,
        "ready": shared.ready(),
        "log_lines_dropped": crate::telemetry::logging::dropped_lines(),
        "regions": regions,
        "shifts": snap.shifts.iter().map(|s| json!({
            "name": s.name,
            "from": snap.regions[s.from].name,
            "to": snap.regions[s.to].name,
            "progress": if s.state.aborted.load(Relaxed) { 0.0 } else { s.fraction_at(now) },
            "aborted": s.state.aborted.load(Relaxed),
            "active": !s.state.aborted.load(Relaxed) && s.fraction_at(now) > 0.0,
            "final_percent": s.fraction * 100.0,
        })).collect::<Vec<_>>(),
        "dns": dns,
    })
}

/// One address of an origin: its own probes, ejection and load.
fn endpoint_doc(e: &Endpoint, now: u64) -> Value {
    let h = &e.health;
    json!({
        "address": e.addr.to_string(),
        "probe_state": h.state().as_str(),
        "eligible": h.eligible(now),
        "latency_ms": f64::from(h.ewma_us.load(Relaxed)) / 1000.0,
        "outstanding": h.outstanding.load(Relaxed),
        "ejected": !h.eligible_passive(now),
        "ejected_for_ms": h.ejected_until_ms.load(Relaxed).saturating_sub(now),
        "times_ejected": h.times_ejected.load(Relaxed),
        "consecutive_probe_passes": h.probe_passes.load(Relaxed),
        "consecutive_probe_failures": h.probe_fails.load(Relaxed),
        "consecutive_live_failures": h.consecutive_failures.load(Relaxed),
        "last_probe": lock(&h.last_probe).clone().map(|l| json!({
            "result": l.result,
            "error": l.error,
            "detail": l.detail,
            "at_unix_ms": l.at_unix_ms,
            "duration_ms": l.duration_ms,
        })),
        "replication_lag_ms": match h.replication_lag_ms.load(Relaxed) {
            u32::MAX => Value::Null,
            l => json!(l),
        },
    })
}

/// An origin: its endpoints' roll-up (eligible while one is; the state, probe
/// streaks, ejection and last probe of its best endpoint; load summed), each
/// address on its own, and what its name's lookups found.
fn origin_doc(o: &OriginEntry, now: u64, rates_now: u64) -> Value {
    let set = o.endpoints.load();
    let rank = |e: &Endpoint| {
        let state = match e.health.state() {
            ProbeState::Healthy => 0,
            ProbeState::Degraded => 1,
            ProbeState::Unhealthy => 2,
            ProbeState::Unknown => 3,
        };
        (!e.health.eligible(now), state)
    };
    let best = set.iter().min_by_key(|e| rank(e));
    let mut doc = match best {
        Some(e) => endpoint_doc(e, now),
        None => json!({
            "probe_state": ProbeState::Unknown.as_str(),
            "latency_ms": 0.0,
            "ejected": false,
            "ejected_for_ms": 0,
            "times_ejected": 0,
            "consecutive_probe_passes": 0,
            "consecutive_probe_failures": 0,
            "consecutive_live_failures": 0,
            "last_probe": Value::Null,
            "replication_lag_ms": Value::Null,
        }),
    };
    let reading = o.endpoints.reading(now);
    let resolution = lock(&o.endpoints.resolution).clone();
    doc["address"] = json!(o.address);
    doc["eligible"] = json!(reading.eligible);
    doc["latency_ms"] = json!(f64::from(reading.ewma_us) / 1000.0);
    doc["outstanding"] = json!(set
        .iter()
        .map(|e| u64::from(e.health.outstanding.load(Relaxed)))
        .sum::<u64>());
    doc["replication_lag_ms"] = json!(o.endpoints.replication_lag_ms(now));
    doc["last_minute"] = json!(o.endpoints.rates.summary(rates_now));
    doc["addresses"] = set.iter().map(|e| endpoint_doc(e, now)).collect();
    doc["dns"] = json!({
        "name": match &o.target {
            Target::Name { host, .. } => Some(host.as_str()),
            Target::Ip(_) => None,
        },
        "resolved": o.endpoints.ever_resolved.load(Relaxed),
        "last_result": resolution.last_result.map(|r| r.as_str()),
        "last_error": resolution.last_error,
        "last_lookup_unix_ms": resolution.last_at_unix_ms,
        "lookups": resolution.lookups,
    });
    doc
}
