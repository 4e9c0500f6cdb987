//! The `/admin/state` document: what an operator needs to see at a glance.

use std::time::UNIX_EPOCH;

use serde_json::{json, Value};

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
                .map(|o| {
                    json!({
                        "address": o.address,
                        "probe_state": o.health.state().as_str(),
                        "eligible": o.health.eligible(now),
                        "latency_ms": f64::from(o.health.ewma_us.load(std::sync::atomic::Ordering::Relaxed)) / 1000.0,
                        "outstanding": o.health.outstanding.load(std::sync::atomic::Ordering::Relaxed),
                        "ejected": !o.health.eligible_passive(now),
                        "ejected_for_ms": o.health.ejected_until_ms.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(now),
                        "times_ejected": o.health.times_ejected.load(std::sync::atomic::Ordering::Relaxed),
                        "consecutive_probe_passes": o.health.probe_passes.load(std::sync::atomic::Ordering::Relaxed),
                        "consecutive_probe_failures": o.health.probe_fails.load(std::sync::atomic::Ordering::Relaxed),
                        "consecutive_live_failures": o.health.consecutive_failures.load(std::sync::atomic::Ordering::Relaxed),
                        "last_probe": lock(&o.health.last_probe).clone().map(|l| json!({
                            "result": l.result,
                            "error": l.error,
                            "detail": l.detail,
                            "at_unix_ms": l.at_unix_ms,
                            "duration_ms": l.duration_ms,
                        })),
                        "replication_lag_ms": match o.health.replication_lag_ms.load(std::sync::atomic::Ordering::Relaxed) {
                            u32::MAX => Value::Null,
                            l => json!(l),
                        },
                        "last_minute": o.health.rates.summary(rates_now),
                    })
                })
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
                        .map(|o| o.health.replication_lag_ms.load(std::sync::atomic::Ordering::Relaxed))
                        .filter(|l| *l != u32::MAX)
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
            "progress": if s.state.aborted.load(std::sync::atomic::Ordering::Relaxed) { 0.0 } else { s.fraction_at(now) },
            "aborted": s.state.aborted.load(std::sync::atomic::Ordering::Relaxed),
            "active": !s.state.aborted.load(std::sync::atomic::Ordering::Relaxed) && s.fraction_at(now) > 0.0,
            "final_percent": s.fraction * 100.0,
        })).collect::<Vec<_>>(),
        "dns": dns,
    })
}
