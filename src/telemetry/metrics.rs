//! The Prometheus registry and typed handles for every metric meridian exports
//! (README, Operations: "Metrics"). Label values come only from the config (region and origin
//! names) or from fixed enums in the code, never from the client, so the number
//! of series is bounded by the config.

use std::sync::OnceLock;

use prometheus::{
    exponential_buckets, Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets: 0.5 ms to ~10 s.
fn latency_buckets() -> Vec<f64> {
    exponential_buckets(0.0005, 2.0, 15).unwrap_or_default()
}

/// Room for one region's `requests_total` series: every decision label (12
/// today), request class (2) and status class (6). The data path numbers its
/// series into these slots; one outside them is looked up by its labels.
pub const REQUEST_SLOTS: usize = 16 * 2 * 6;

/// One region's per-request series, each resolved by its labels once, on first
/// use, then kept: a lookup by labels hashes every label value under a lock,
/// which cost the data path about 200 instructions per series per request.
/// Kept with the region's state, so a reload keeps it too.
pub struct RegionSeries {
    requests: Box<[OnceLock<IntCounter>]>,
    duration: OnceLock<Histogram>,
}

impl Default for RegionSeries {
    fn default() -> Self {
        RegionSeries {
            requests: (0..REQUEST_SLOTS).map(|_| OnceLock::new()).collect(),
            duration: OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for RegionSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resolved = self.requests.iter().filter(|s| s.get().is_some()).count();
        f.debug_struct("RegionSeries")
            .field("requests_resolved", &resolved)
            .finish()
    }
}

impl RegionSeries {
    /// Counts a request in `requests_total{region, decision, class, status_class}`
    /// (`labels`, in that order), whose series is numbered `slot`.
    pub fn count_request(&self, m: &Metrics, slot: usize, labels: &[&str; 4]) {
        match self.requests.get(slot) {
            Some(s) => s.get_or_init(|| m.requests.with_label_values(labels)).inc(),
            None => m.requests.with_label_values(labels).inc(),
        }
    }

    /// Records a request's duration in `request_duration_seconds{region}`.
    pub fn observe_duration(&self, m: &Metrics, region: &str, seconds: f64) {
        self.duration
            .get_or_init(|| m.request_duration.with_label_values(&[region]))
            .observe(seconds);
    }
}

/// All metric handles. Cheap to clone handles out of; lives as long as the process.
pub struct Metrics {
    pub registry: Registry,
    pub requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub upstream_connect_failures: IntCounterVec,
    pub retries: IntCounterVec,
    pub retries_denied: IntCounterVec,
    pub region_healthy: IntGaugeVec,
    pub origin_healthy: IntGaugeVec,
    pub region_weight_effective: GaugeVec,
    pub region_latency: GaugeVec,
    pub replication_lag: GaugeVec,
    pub probe_duration: HistogramVec,
    pub probe_failures: IntCounterVec,
    pub probe_restarts: IntCounterVec,
    pub origin_endpoints: IntGaugeVec,
    pub dns_lookups: IntCounterVec,
    pub write_tokens: IntCounterVec,
    pub geo_lookups: IntCounterVec,
    pub xff_malformed: IntCounterVec,
    pub requests_rejected: IntCounterVec,
    pub requests_rate_limited: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub config_info: IntGaugeVec,
    pub shift_progress: GaugeVec,
    pub shift_aborts: IntCounterVec,
    pub dns_syncs: IntCounterVec,
    pub dns_record_weight: IntGaugeVec,
    pub build_info: IntGaugeVec,
    pub events: IntCounterVec,
    pub spillover: IntCounterVec,
    pub requests_shed: IntCounterVec,
    pub origin_inflight_limit: IntGaugeVec,
}

fn counter(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let m = IntCounterVec::new(Opts::new(name, help).namespace("meridian"), labels)
        .expect("metric definition is static and valid");
    reg.register(Box::new(m.clone()))
        .expect("each metric is registered once");
    m
}

fn int_gauge(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let m = IntGaugeVec::new(Opts::new(name, help).namespace("meridian"), labels)
        .expect("metric definition is static and valid");
    reg.register(Box::new(m.clone()))
        .expect("each metric is registered once");
    m
}

fn gauge(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    let m = GaugeVec::new(Opts::new(name, help).namespace("meridian"), labels)
        .expect("metric definition is static and valid");
    reg.register(Box::new(m.clone()))
        .expect("each metric is registered once");
    m
}

fn histogram(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let m = HistogramVec::new(
        HistogramOpts::new(name, help)
            .namespace("meridian")
            .buckets(latency_buckets()),
        labels,
    )
    .expect("metric definition is static and valid");
    reg.register(Box::new(m.clone()))
        .expect("each metric is registered once");
    m
}

impl Metrics {
    /// Creates and registers every metric, plus the process collector.
    pub fn new() -> Metrics {
        let r = Registry::new();
        #[cfg(target_os = "linux")]
        {
            let pc = prometheus::process_collector::ProcessCollector::for_self();
            let _ = r.register(Box::new(pc));
        }
        let m = Metrics {
            requests: counter(
                &r,
                "requests_total",
                "Requests answered, by serving region, decision, request class and status class.",
                &["region", "decision", "class", "status_class"],
            ),
            request_duration: histogram(
                &r,
                "request_duration_seconds",
                "Time from request received to response finished, by serving region.",
                &["region"],
            ),
            upstream_connect_failures: counter(
                &r,
                "upstream_connect_failures_total",
                "Failed connection attempts to origins.",
                &["region", "origin"],
            ),
            retries: counter(
                &r,
                "retries_total",
                "Requests retried on another origin or region.",
                &["from", "to", "reason"],
            ),
            retries_denied: counter(
                &r,
                "retries_denied_total",
                "Retries not made because the retry budget was spent.",
                &["reason"],
            ),
            region_healthy: int_gauge(
                &r,
                "region_healthy",
                "1 while the region has enough healthy origins.",
                &["region"],
            ),
            origin_healthy: int_gauge(
                &r,
                "origin_healthy",
                "1 while the origin passes its probes and is not ejected.",
                &["region", "origin"],
            ),
            region_weight_effective: gauge(
                &r,
                "region_weight_effective",
                "Configured weight after dial, health and degraded factor.",
                &["region"],
            ),
            region_latency: gauge(
                &r,
                "region_latency_seconds",
                "EWMA of measured origin latency per region.",
                &["region"],
            ),
            replication_lag: gauge(
                &r,
                "replication_lag_seconds",
                "Replication lag reported by the region's deep health.",
                &["region"],
            ),
            probe_duration: histogram(
                &r,
                "probe_duration_seconds",
                "Health probe round-trip time.",
                &["region", "origin"],
            ),
            probe_failures: counter(
                &r,
                "probe_failures_total",
                "Failed health probes by reason.",
                &["region", "origin", "reason"],
            ),
            probe_restarts: counter(
                &r,
                "probe_restarts_total",
                "Probe tasks that ended (panicked or returned) while their origin was still configured, and were started again.",
                &["region", "origin"],
            ),
            origin_endpoints: int_gauge(
                &r,
                "origin_endpoints",
                "Addresses the origin is reached at now (one for an IP, every A/AAAA record of a name).",
                &["region", "origin"],
            ),
            dns_lookups: counter(
                &r,
                "dns_lookups_total",
                "Lookups of origin names, by result: ok (addresses), empty (no such name or no A/AAAA records), error (no answer).",
                &["region", "origin", "result"],
            ),
            write_tokens: counter(
                &r,
                "write_tokens_total",
                "Write tokens issued and checked, by outcome.",
                &["outcome"],
            ),
            geo_lookups: counter(
                &r,
                "geo_lookups_total",
                "GeoIP lookups by result.",
                &["result"],
            ),
            xff_malformed: counter(
                &r,
                "xff_malformed_total",
                "Malformed X-Forwarded-For entries skipped.",
                &["header"],
            ),
            requests_rejected: counter(
                &r,
                "requests_rejected_total",
                "Requests and connections refused before routing, by reason (bad_host, header_timeout, malformed, proxy_protocol).",
                &["reason"],
            ),
            requests_rate_limited: counter(
                &r,
                "requests_rate_limited_total",
                "Requests answered 429 by the gateway for being over their route's rate_limit (never sent to an origin), by route index.",
                &["route"],
            ),
            config_reloads: counter(
                &r,
                "config_reloads_total",
                "Config loads and reloads by result.",
                &["result"],
            ),
            config_info: int_gauge(
                &r,
                "config_info",
                "1 for the sha256 of the config in service.",
                &["sha256"],
            ),
            shift_progress: gauge(
                &r,
                "shift_progress_ratio",
                "Fraction of the shift's traffic currently moved.",
                &["shift"],
            ),
            shift_aborts: counter(
                &r,
                "shift_aborts_total",
                "Shifts aborted by their abort_if guard.",
                &["shift"],
            ),
            dns_syncs: counter(
                &r,
                "dns_syncs_total",
                "Route 53 reconciliations by result.",
                &["result"],
            ),
            dns_record_weight: int_gauge(
                &r,
                "dns_record_weight",
                "Weight last written to or read from the region's Route 53 record.",
                &["region"],
            ),
            build_info: int_gauge(
                &r,
                "build_info",
                "Always 1; the version label names the build.",
                &["version"],
            ),
            events: counter(
                &r,
                "events_total",
                "State changes recorded in the event journal, by kind.",
                &["kind"],
            ),
            spillover: counter(
                &r,
                "spillover_total",
                "Requests (tries) passed on from a region whose origins had no room (max_inflight, max_rps) to the next region of their decision.",
                &["from", "to"],
            ),
            requests_shed: counter(
                &r,
                "requests_shed_total",
                "Requests answered 503 overloaded because no region they may use had room, by route (its index) and reason (sheddable, queue_full, queue_timeout).",
                &["route", "reason"],
            ),
            origin_inflight_limit: int_gauge(
                &r,
                "origin_inflight_limit",
                "An origin's max_inflight: the configured number, or an adaptive limit's value now (before the region's dial and degraded factor); set at each probe.",
                &["region", "origin"],
            ),
            registry: r,
        };
        m.build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        m
    }

    /// Every metric family name this process can export (a vector appears in the
    /// exposition only once one of its label sets was used), with `_bucket`,
    /// `_sum` and `_count` for histograms.
    pub fn names(&self) -> Vec<String> {
        use prometheus::core::Collector;
        let collectors: [&dyn Collector; 31] = [
            &self.requests,
            &self.request_duration,
            &self.upstream_connect_failures,
            &self.retries,
            &self.retries_denied,
            &self.region_healthy,
            &self.origin_healthy,
            &self.region_weight_effective,
            &self.region_latency,
            &self.replication_lag,
            &self.probe_duration,
            &self.probe_failures,
            &self.probe_restarts,
            &self.origin_endpoints,
            &self.dns_lookups,
            &self.write_tokens,
            &self.geo_lookups,
            &self.xff_malformed,
            &self.requests_rejected,
            &self.requests_rate_limited,
            &self.config_reloads,
            &self.config_info,
            &self.shift_progress,
            &self.shift_aborts,
            &self.dns_syncs,
            &self.dns_record_weight,
            &self.build_info,
            &self.events,
            &self.spillover,
            &self.requests_shed,
            &self.origin_inflight_limit,
        ];
        let mut names = Vec::new();
        for c in collectors {
            for d in c.desc() {
                names.push(d.fq_name.clone());
                if d.fq_name.ends_with("_seconds") {
                    for suffix in ["_bucket", "_sum", "_count"] {
                        names.push(format!("{}{suffix}", d.fq_name));
                    }
                }
            }
        }
        names
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 * 1024);
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
