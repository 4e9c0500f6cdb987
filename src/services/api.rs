//! The operator API's schema: what `GET /admin/state` serves, as types. The admin
//! listener fills them, `meridian status` and the tests read them back, so a field
//! renamed or added here changes all three at once (and every struct refuses
//! fields it does not know, so a served document that drifts from these types
//! fails to read). Nothing here but data: serde, and the rolling windows' summary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /admin/state`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub config: ConfigDoc,
    pub local_region: String,
    /// Every origin probed once (or probing not configured) and not shutting down.
    pub ready: bool,
    /// Log lines the writer had to drop (a full buffer) since start.
    pub log_lines_dropped: u64,
    /// By region name.
    pub regions: BTreeMap<String, RegionDoc>,
    pub shifts: Vec<ShiftDoc>,
    /// The routes with a `rate_limit`, in config order.
    #[serde(default)]
    pub rate_limits: Vec<RateLimitDoc>,
    pub dns: DnsDoc,
}

/// The config in service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigDoc {
    pub path: String,
    pub sha256: String,
    pub loaded_at_unix_ms: u64,
    /// Why the last reload was refused; null after a good one.
    pub last_reload_error: Option<String>,
}

/// One region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionDoc {
    pub weight: u32,
    /// Weight after the dial, health and the degraded factor.
    pub effective_weight: f64,
    pub traffic_dial: u32,
    pub drained: bool,
    /// `healthy`, `degraded` or `unhealthy`.
    pub health: String,
    /// 0 = nothing measured yet.
    pub latency_ms: f64,
    /// The largest lag an eligible endpoint reported.
    pub replication_lag_ms: Option<u32>,
    pub last_minute: LastMinute,
    pub capacity: RegionCapacityDoc,
    pub origins: Vec<OriginDoc>,
}

/// A region's load against its capacity, and what overflowed it lately.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionCapacityDoc {
    /// Requests in flight at its origins now.
    pub in_flight: u64,
    /// The in-flight limits of its eligible origins summed, after the region's
    /// dial and degraded factor (as a normal-priority request sees them); null
    /// when one of them has no limit, so the region has none either.
    pub max_inflight: Option<u64>,
    /// Spilled out, spilled in and shed over the last minute.
    pub last_minute: OverflowMinute,
}

/// Spillover and shedding over the last minute (the overflow window's own summary).
pub use crate::telemetry::rates::OverflowSummary as OverflowMinute;

/// Requests, errors and latency over the last minute (the rolling windows' own
/// summary, served as it is).
pub use crate::telemetry::rates::Summary as LastMinute;

/// One origin: the roll-up of its addresses (eligible while one is; the state,
/// streaks, ejection and last probe of its best one; load summed), each address,
/// and its name's lookups.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginDoc {
    /// As written in the config.
    pub address: String,
    pub probe_state: String,
    pub eligible: bool,
    pub latency_ms: f64,
    pub outstanding: u64,
    pub ejected: bool,
    pub ejected_for_ms: u64,
    pub times_ejected: u32,
    pub consecutive_probe_passes: u32,
    pub consecutive_probe_failures: u32,
    pub consecutive_live_failures: u32,
    pub last_probe: Option<LastProbeDoc>,
    pub replication_lag_ms: Option<u32>,
    pub last_minute: LastMinute,
    pub addresses: Vec<EndpointDoc>,
    pub dns: OriginDnsDoc,
    pub capacity: CapacityDoc,
}

/// An origin's limits against its load (`outstanding` is what is in flight).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapacityDoc {
    /// The in-flight limit before the region's dial and degraded factor: the
    /// configured one, or an adaptive limit's value now; null without one.
    pub max_inflight: Option<u32>,
    pub adaptive: bool,
    /// An adaptive limit's measure of the origin unloaded (ms; null otherwise).
    pub unloaded_latency_ms: Option<f64>,
    pub max_rps: Option<u32>,
}

/// One address of an origin, probed and ejected on its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointDoc {
    /// `IP:PORT`.
    pub address: String,
    /// `healthy`, `degraded`, `unhealthy` or `unknown` (not probed yet).
    pub probe_state: String,
    pub eligible: bool,
    pub latency_ms: f64,
    pub outstanding: u64,
    pub ejected: bool,
    pub ejected_for_ms: u64,
    pub times_ejected: u32,
    pub consecutive_probe_passes: u32,
    pub consecutive_probe_failures: u32,
    pub consecutive_live_failures: u32,
    pub last_probe: Option<LastProbeDoc>,
    pub replication_lag_ms: Option<u32>,
}

/// What the last probe found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastProbeDoc {
    /// `pass`, `degraded` or `fail`.
    pub result: String,
    /// Why it failed: `timeout`, `refused`, `status`, `unhealthy`, `tls`, `error`.
    pub error: Option<String>,
    pub detail: Option<String>,
    pub at_unix_ms: u64,
    pub duration_ms: u64,
}

/// An origin's name and its lookups (`name` null for an origin given as an IP).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginDnsDoc {
    pub name: Option<String>,
    /// It has resolved to an address at some point (always, for an IP).
    pub resolved: bool,
    /// `ok`, `empty` or `error`; null before the first lookup.
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    pub last_lookup_unix_ms: u64,
    pub lookups: u64,
}

/// One gradual shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShiftDoc {
    pub name: String,
    pub from: String,
    pub to: String,
    /// Fraction of `from`'s traffic moved now, 0..=1 (0 once aborted).
    pub progress: f64,
    pub aborted: bool,
    pub active: bool,
    pub final_percent: f64,
}

/// One route's rate limit (per instance).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitDoc {
    /// The route's index in `routes` (the metric's and the access log's `route`).
    pub route: usize,
    /// `client_ip`, `country` or `header:NAME`.
    pub key: String,
    /// As configured: `100/s`, `600/m`, `1000/h`.
    pub rate: String,
    pub burst: u32,
    /// The `RateLimit-Policy` its answers carry.
    pub policy: String,
    /// Requests it answered 429 since start (`requests_rate_limited_total`).
    pub rate_limited: u64,
}

/// The Route 53 reconciler: the config's switches and its last sync.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsDoc {
    pub configured: bool,
    pub enabled: bool,
    pub dry_run: bool,
    pub last_sync_unix_ms: Option<u64>,
    /// `changed`, `unchanged`, `dry_run` or `error`.
    pub last_result: Option<String>,
    pub last_error: Option<String>,
    pub consecutive_errors: u32,
    pub last_change_id: Option<String>,
    pub last_comment: Option<String>,
    pub records: Vec<RecordDoc>,
    /// By region name.
    pub votes: BTreeMap<String, VoteDoc>,
    pub views: Vec<ViewDoc>,
}

/// The decision for one region's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordDoc {
    pub region: String,
    pub set_identifier: String,
    pub configured_weight: u32,
    /// What Route 53 holds now; null = no such record yet.
    pub current_weight: Option<u32>,
    pub desired_weight: u32,
    /// `healthy`, `down`, `holding` or `fail_open`.
    pub why: String,
}

/// The vote on one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteDoc {
    /// `down`, `up` or `hold`.
    pub verdict: String,
    pub down_held: u64,
    pub up_held: u64,
    pub fresh_views: u64,
    pub quorum: u64,
}

/// One instance's published view of region health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewDoc {
    pub publisher: String,
    pub at_unix_ms: u64,
    pub fresh: bool,
    /// Region → `up` / `down` with the unix ms of the last change.
    pub regions: BTreeMap<String, (String, u64)>,
}
