//! Health state that outlives config snapshots: per-origin and per-region
//! atomics, written by probers and live traffic, read by requests without locks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::util::lock::lock;

pub mod endpoints;
pub mod judge;
pub mod outlier;
pub mod view;

pub use view::{roll_up, HealthView, OriginReading, RegionHealth, RegionStatus};

/// Probe verdict of one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProbeState {
    /// Not probed yet: not eligible (a new origin must pass once first).
    Unknown = 0,
    Healthy = 1,
    /// Passing, at reduced weight.
    Degraded = 2,
    Unhealthy = 3,
}

impl ProbeState {
    fn from_u8(v: u8) -> ProbeState {
        match v {
            1 => ProbeState::Healthy,
            2 => ProbeState::Degraded,
            3 => ProbeState::Unhealthy,
            _ => ProbeState::Unknown,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeState::Unknown => "unknown",
            ProbeState::Healthy => "healthy",
            ProbeState::Degraded => "degraded",
            ProbeState::Unhealthy => "unhealthy",
        }
    }
}

/// Live state of one endpoint (one address of an origin). Every field is an atomic so probers, traffic and
/// readers never wait on each other.
#[derive(Debug, Default)]
pub struct EndpointHealth {
    state: AtomicU8,
    /// Passive ejection: not eligible before this wall-clock time (unix ms).
    pub ejected_until_ms: AtomicU64,
    /// EWMA of round-trip latency in microseconds; 0 = no sample yet.
    pub ewma_us: AtomicU32,
    /// Requests in flight to this origin (for power-of-two-choices).
    pub outstanding: AtomicU32,
    /// Last replication lag reported by deep health; u32::MAX = none reported.
    pub replication_lag_ms: AtomicU32,
    /// Live failures in a row (outlier detection).
    pub consecutive_failures: AtomicU32,
    /// Ejections since the last calm period (the backoff exponent).
    pub times_ejected: AtomicU32,
    /// When it was last ejected (unix ms; 0 = never).
    pub last_ejected_ms: AtomicU64,
    /// Set by its first probe result, pass or fail (readiness waits for all).
    pub probed: AtomicBool,
    /// The last probe: its verdict and, when it failed, why (for /admin/state).
    pub last_probe: Mutex<Option<LastProbe>>,
    /// Current streaks of passing and failing probes.
    pub probe_passes: AtomicU32,
    pub probe_fails: AtomicU32,
}

/// What the last probe of an origin found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastProbe {
    /// `pass`, `degraded` or `fail`.
    pub result: &'static str,
    /// Why it failed (`timeout`, `refused`, `status`, `unhealthy`, `tls`, `error`).
    pub error: Option<&'static str>,
    /// What exactly went wrong, when there is more to say (a TLS failure's cause).
    pub detail: Option<String>,
    pub at_unix_ms: u64,
    pub duration_ms: u64,
}

impl EndpointHealth {
    pub fn new() -> EndpointHealth {
        let h = EndpointHealth::default();
        h.replication_lag_ms.store(u32::MAX, Relaxed);
        h
    }
    pub fn state(&self) -> ProbeState {
        ProbeState::from_u8(self.state.load(Relaxed))
    }
    pub fn set_state(&self, s: ProbeState) {
        self.state.store(s as u8, Relaxed);
    }
    /// Eligible for traffic at `now_ms`: passed its probes and not ejected.
    pub fn eligible(&self, now_ms: u64) -> bool {
        matches!(self.state(), ProbeState::Healthy | ProbeState::Degraded)
            && self.ejected_until_ms.load(Relaxed) <= now_ms
    }
    /// What the region roll-up needs of this origin at `now_ms`.
    pub fn reading(&self, now_ms: u64) -> OriginReading {
        OriginReading {
            eligible: self.eligible(now_ms),
            degraded: self.state() == ProbeState::Degraded,
            ewma_us: self.ewma_us.load(Relaxed),
        }
    }
    /// Not ejected by outlier detection at `now_ms` (probe state aside).
    pub fn eligible_passive(&self, now_ms: u64) -> bool {
        self.ejected_until_ms.load(Relaxed) <= now_ms
    }
    /// Folds one latency sample into the EWMA (weight 1/8 for the new sample).
    pub fn observe_latency_us(&self, us: u32) {
        let us = us.max(1);
        let old = self.ewma_us.load(Relaxed);
        let new = if old == 0 {
            us
        } else {
            ((u64::from(old) * 7 + u64::from(us)) / 8) as u32
        };
        self.ewma_us.store(new.max(1), Relaxed);
    }
}

impl AsRef<EndpointHealth> for EndpointHealth {
    fn as_ref(&self) -> &EndpointHealth {
        self
    }
}

/// Operator overrides and measurements per region.
#[derive(Debug, Default)]
pub struct RegionState {
    /// Drained through the admin API: takes no new requests. Kept across reloads.
    pub drained: AtomicBool,
    /// Responses served by the region so far, and how many of them were errors
    /// (5xx or no answer): shift guards compute error ratios from these.
    pub responses: AtomicU64,
    pub errors: AtomicU64,
    /// Requests, errors and latency of the last minute (see `crate::telemetry::rates`).
    pub rates: crate::telemetry::rates::Window,
    /// Requests spilled out of and into the region, and shed, over the last minute.
    pub overflow: crate::telemetry::rates::OverflowWindow,
    /// The health roll-up last recorded in the event journal (`probes::watch::region_health`);
    /// 0 = none yet.
    pub journaled_health: AtomicU8,
    /// This region's per-request metric series, resolved once (data path only).
    pub series: crate::telemetry::metrics::RegionSeries,
}

/// Runtime state of one shift: aborted by its guard, until the shift is edited.
#[derive(Debug, Default)]
pub struct ShiftState {
    pub aborted: AtomicBool,
}

/// Owner of all health state, keyed by identity so a new snapshot keeps the
/// entries of the origins and regions it still has.
#[derive(Debug, Default)]
pub struct HealthRegistry {
    /// Keyed by endpoint (`region/address@ip:port`).
    endpoints: Mutex<HashMap<String, Arc<EndpointHealth>>>,
    /// Keyed by origin (`region/address`).
    endpoint_sets: Mutex<HashMap<String, Arc<crate::core::health::endpoints::OriginEndpoints>>>,
    regions: Mutex<HashMap<String, Arc<RegionState>>>,
    shifts: Mutex<HashMap<String, Arc<ShiftState>>>,
}

impl HealthRegistry {
    /// The health of endpoint `key` (`region/address@ip:port`), created on
    /// first use (then the flag is true). Never called per request.
    pub fn endpoint(&self, key: &str) -> (Arc<EndpointHealth>, bool) {
        let mut m = lock(&self.endpoints);
        if let Some(h) = m.get(key) {
            return (h.clone(), false);
        }
        let h = Arc::new(EndpointHealth::new());
        m.insert(key.to_string(), h.clone());
        (h, true)
    }
    /// Forgets the health of endpoints whose address left their origin's records.
    pub fn forget_endpoints(&self, keys: &[String]) {
        if !keys.is_empty() {
            lock(&self.endpoints).retain(|k, _| !keys.contains(k));
        }
    }
    /// The endpoint set of origin `key`, made by `make` on first use.
    pub(crate) fn endpoint_sets(
        &self,
        key: &str,
        make: impl FnOnce() -> Arc<crate::core::health::endpoints::OriginEndpoints>,
    ) -> Arc<crate::core::health::endpoints::OriginEndpoints> {
        lock(&self.endpoint_sets)
            .entry(key.to_string())
            .or_insert_with(make)
            .clone()
    }
    /// The entry for region `name`, created on first use.
    pub fn region(&self, name: &str) -> Arc<RegionState> {
        let mut m = lock(&self.regions);
        m.entry(name.to_string()).or_default().clone()
    }
    /// The state of shift `key` (its name and definition: an edited shift starts afresh).
    pub fn shift(&self, key: &str) -> Arc<ShiftState> {
        let mut m = lock(&self.shifts);
        m.entry(key.to_string()).or_default().clone()
    }
    /// Forgets origins the current config no longer has (their probes have
    /// stopped), with their addresses' health.
    pub fn retain_origins(&self, keep: &dyn Fn(&str) -> bool) {
        lock(&self.endpoint_sets).retain(|k, _| keep(k));
        lock(&self.endpoints)
            .retain(|k, _| keep(k.rsplit_once('@').map_or(k.as_str(), |(o, _)| o)));
    }
}
