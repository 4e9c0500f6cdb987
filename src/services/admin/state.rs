//! The `/admin/state` document: what an operator needs to see at a glance, filled
//! into the typed schema of `api`.

use std::sync::atomic::Ordering::Relaxed;
use std::time::UNIX_EPOCH;

use crate::core::config::units::MaxInflight;
use crate::core::config::Priority;
use crate::core::health::endpoints::{Endpoint, Target};
use crate::core::health::{LastProbe, ProbeState};
use crate::core::snapshot::{self, Asking, OriginEntry, RegionEntry, Snapshot};
use crate::services::api::{
    CapacityDoc, ConfigDoc, EndpointDoc, LastProbeDoc, OriginDnsDoc, OriginDoc, RateLimitDoc,
    RegionCapacityDoc, RegionDoc, ShiftDoc, State,
};
use crate::services::shared::Shared;
use crate::util::clock::now_ms;
use crate::util::lock::lock;

/// Builds the state document from the snapshot in service and live health.
pub fn document(shared: &Shared, last_reload_error: Option<String>) -> State {
    let snap = shared.snapshot.load();
    let now = now_ms();
    let rates_now = crate::util::clock::monotonic_ms();
    let view = snap.health_view(now);
    let regions = snap
        .regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let s = view.region(i);
            let doc = RegionDoc {
                weight: r.weight,
                effective_weight: r.effective_weight(&s, snap.degraded_factor),
                traffic_dial: r.dial,
                drained: s.drained,
                health: s.health.as_str().to_string(),
                latency_ms: f64::from(s.latency_us) / 1000.0,
                replication_lag_ms: r.replication_lag_ms(now),
                last_minute: r.state.rates.summary(rates_now),
                capacity: region_capacity(r, &snap, now, rates_now),
                origins: r
                    .origins
                    .iter()
                    .map(|o| origin_doc(o, now, rates_now))
                    .collect(),
            };
            (r.name.clone(), doc)
        })
        .collect();
    let loaded_ms = snap
        .loaded_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    // Enabled-ness follows the live config; the rest is the reconciler's last sync.
    let mut dns = shared.dns_status();
    dns.enabled = snap.dns.as_ref().is_some_and(|d| d.enabled);
    dns.configured = snap.dns.is_some();
    State {
        config: ConfigDoc {
            path: shared.config_path.display().to_string(),
            sha256: snap.sha256.clone(),
            loaded_at_unix_ms: loaded_ms,
            last_reload_error,
        },
        local_region: snap.regions[snap.local_region].name.clone(),
        ready: shared.ready(),
        log_lines_dropped: crate::telemetry::logging::dropped_lines(),
        regions,
        shifts: snap
            .shifts
            .iter()
            .map(|s| {
                let aborted = s.state.aborted.load(Relaxed);
                let progress = s.progress(now);
                ShiftDoc {
                    name: s.name.clone(),
                    from: snap.regions[s.from].name.clone(),
                    to: snap.regions[s.to].name.clone(),
                    progress,
                    aborted,
                    active: !aborted && progress > 0.0,
                    final_percent: s.fraction * 100.0,
                }
            })
            .collect(),
        rate_limits: snap
            .routes
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.rate_limit.as_ref()?)))
            .map(|(route, l)| {
                let spec = l.spec();
                RateLimitDoc {
                    route,
                    key: spec.key.to_string(),
                    rate: spec.rate.to_string(),
                    burst: spec.burst(),
                    policy: l.policy().to_str().unwrap_or_default().to_string(),
                    rate_limited: shared
                        .metrics
                        .requests_rate_limited
                        .with_label_values(&[l.label()])
                        .get(),
                }
            })
            .collect(),
        dns,
    }
}

fn last_probe(l: LastProbe) -> LastProbeDoc {
    LastProbeDoc {
        result: l.result.to_string(),
        error: l.error.map(str::to_string),
        detail: l.detail,
        at_unix_ms: l.at_unix_ms,
        duration_ms: l.duration_ms,
    }
}

/// A region's requests in flight against its eligible origins' limits summed
/// (after its dial and the degraded factor), and its overflow of the last minute.
fn region_capacity(
    r: &RegionEntry,
    snap: &Snapshot,
    now: u64,
    rates_now: u64,
) -> RegionCapacityDoc {
    let ask = Asking {
        dial: r.dial,
        degraded_factor: snap.degraded_factor,
        priority: Priority::Normal,
        now_ms: now,
    };
    let mut in_flight = 0;
    let mut max_inflight = Some(0u64);
    for o in &r.origins {
        let set = o.endpoints.load();
        in_flight += u64::from(snapshot::in_flight(&set));
        if o.reading(now).eligible {
            let limit = o.inflight_limit(&set, &ask);
            max_inflight = max_inflight.zip(limit).map(|(sum, l)| sum + u64::from(l));
        }
    }
    RegionCapacityDoc {
        in_flight,
        max_inflight,
        last_minute: r.state.overflow.summary(rates_now),
    }
}

/// An origin's limits as configured, an adaptive one's value now.
fn capacity_doc(o: &OriginEntry) -> CapacityDoc {
    let adaptive = o.capacity.max_inflight == Some(MaxInflight::Adaptive);
    CapacityDoc {
        max_inflight: o.max_inflight_now(),
        adaptive,
        unloaded_latency_ms: adaptive.then(|| o.endpoints.adaptive.least_us() as f64 / 1000.0),
        max_rps: o.capacity.max_rps,
    }
}

/// One address of an origin: its own probes, ejection and load.
fn endpoint_doc(e: &Endpoint, now: u64) -> EndpointDoc {
    let h = &e.health;
    EndpointDoc {
        address: e.addr.to_string(),
        probe_state: h.state().as_str().to_string(),
        eligible: h.eligible(now),
        latency_ms: f64::from(h.ewma_us.load(Relaxed)) / 1000.0,
        outstanding: u64::from(h.outstanding.load(Relaxed)),
        ejected: !h.eligible_passive(now),
        ejected_for_ms: h.ejected_until_ms.load(Relaxed).saturating_sub(now),
        times_ejected: h.times_ejected.load(Relaxed),
        consecutive_probe_passes: h.probe_passes.load(Relaxed),
        consecutive_probe_failures: h.probe_fails.load(Relaxed),
        consecutive_live_failures: h.consecutive_failures.load(Relaxed),
        last_probe: lock(&h.last_probe).clone().map(last_probe),
        replication_lag_ms: match h.replication_lag_ms.load(Relaxed) {
            u32::MAX => None,
            l => Some(l),
        },
    }
}

/// An origin: its endpoints' roll-up (eligible while one is; the state, probe
/// streaks, ejection and last probe of its best endpoint; load summed), each
/// address on its own, and what its name's lookups found.
fn origin_doc(o: &OriginEntry, now: u64, rates_now: u64) -> OriginDoc {
    let set = o.endpoints.load();
    let addresses: Vec<EndpointDoc> = set.iter().map(|e| endpoint_doc(e, now)).collect();
    let rank = |e: &EndpointDoc| {
        let state = match e.probe_state.as_str() {
            "healthy" => 0,
            "degraded" => 1,
            "unhealthy" => 2,
            _ => 3,
        };
        (!e.eligible, state)
    };
    let best = addresses.iter().min_by_key(|e| rank(e));
    let reading = o.reading(now);
    let resolution = lock(&o.endpoints.resolution).clone();
    OriginDoc {
        address: o.address.clone(),
        probe_state: best.map_or(ProbeState::Unknown.as_str().to_string(), |b| {
            b.probe_state.clone()
        }),
        eligible: reading.eligible,
        latency_ms: f64::from(reading.ewma_us) / 1000.0,
        outstanding: addresses.iter().map(|e| e.outstanding).sum(),
        ejected: best.is_some_and(|b| b.ejected),
        ejected_for_ms: best.map_or(0, |b| b.ejected_for_ms),
        times_ejected: best.map_or(0, |b| b.times_ejected),
        consecutive_probe_passes: best.map_or(0, |b| b.consecutive_probe_passes),
        consecutive_probe_failures: best.map_or(0, |b| b.consecutive_probe_failures),
        consecutive_live_failures: best.map_or(0, |b| b.consecutive_live_failures),
        last_probe: best.and_then(|b| b.last_probe.clone()),
        replication_lag_ms: o.endpoints.replication_lag_ms(now),
        last_minute: o.endpoints.rates.summary(rates_now),
        capacity: capacity_doc(o),
        dns: OriginDnsDoc {
            name: match &o.target {
                Target::Name { host, .. } => Some(host.clone()),
                Target::Ip(_) => None,
            },
            resolved: o.endpoints.ever_resolved.load(Relaxed),
            last_result: resolution.last_result.map(|r| r.as_str().to_string()),
            last_error: resolution.last_error,
            last_lookup_unix_ms: resolution.last_at_unix_ms,
            lookups: resolution.lookups,
        },
        addresses,
    }
}
