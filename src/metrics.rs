//! The Prometheus registry and typed handles for every metric meridian exports
//! (CONTRACT §8). Label values come only from the config (region and origin
//! names) or from fixed enums in the code, never from the client, so the number
//! of series is bounded by the config.

use prometheus::{
    exponential_buckets, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets: 0.5 ms to ~10 s.
fn latency_buckets() -> Vec<f64> {
    exponential_buckets(0.0005, 2.0, 15).unwrap_or_default()
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
    pub write_tokens: IntCounterVec,
    pub geo_lookups: IntCounterVec,
    pub xff_malformed: IntCounterVec,
    pub requests_rejected: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub config_info: IntGaugeVec,
    pub shift_progress: GaugeVec,
    pub shift_aborts: IntCounterVec,
    pub dns_syncs: IntCounterVec,
    pub dns_record_weight: IntGaugeVec,
    pub build_info: IntGaugeVec,
    pub events: IntCounterVec,
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
        let collectors: [&dyn Collector; 24] = [
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
            &self.write_tokens,
            &self.geo_lookups,
            &self.xff_malformed,
            &self.requests_rejected,
            &self.config_reloads,
            &self.config_info,
            &self.shift_progress,
            &self.shift_aborts,
            &self.dns_syncs,
            &self.dns_record_weight,
            &self.build_info,
            &self.events,
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

/// Label values of the counters whose labels come from fixed sets. Enums are listed
/// through an exhaustive `match`, so a new variant does not compile until it is
/// here; the literals name the values the data path passes as strings.
pub mod labels {
    use crate::dns::SyncResult;
    use crate::geo::GeoResult;
    use crate::health::judge::FailReason;
    use crate::routing::retry::{self, Failure};
    use crate::session::TokenError;

    /// `retries_total{reason}`: every value `retry::reason` gives, found by asking
    /// it about every failure (each status code, with and without a timeout).
    pub fn retry_reasons() -> Vec<&'static str> {
        fn _every_failure_is_asked_about(f: Failure) {
            match f {
                Failure::Connect | Failure::Status(_) | Failure::AfterSend => {}
            }
        }
        let failures = [Failure::Connect, Failure::AfterSend]
            .into_iter()
            .chain((0..=999).map(Failure::Status));
        let mut reasons: Vec<&'static str> = failures
            .flat_map(|f| [retry::reason(f, false), retry::reason(f, true)])
            .collect();
        reasons.sort_unstable();
        reasons.dedup();
        reasons
    }

    /// `probe_failures_total{reason}`: a failed probe's reason, and `body_not_json`
    /// (a deep probe judged by its status alone, counted in `health::probe`).
    pub fn probe_failure_reasons() -> Vec<&'static str> {
        use FailReason::*;
        fn _all_listed(r: FailReason) {
            match r {
                Timeout | Refused | Status | Unhealthy | Tls | Error => {}
            }
        }
        [Timeout, Refused, Status, Unhealthy, Tls, Error]
            .map(FailReason::as_str)
            .into_iter()
            .chain(["body_not_json"])
            .collect()
    }

    /// `write_tokens_total{outcome}`: a rejected token's `TokenError::outcome`, and
    /// what `proxy` (issued; honored, region_unhealthy, outside_residency from the
    /// decision) and `facts` (region_unknown, beyond_cap) count.
    pub fn write_token_outcomes() -> Vec<&'static str> {
        use TokenError::*;
        fn _all_listed(e: TokenError) {
            match e {
                Malformed | UnknownKey | BadSignature | Expired => {}
            }
        }
        [
            "issued",
            "honored",
            "region_unhealthy",
            "outside_residency",
            "region_unknown",
            "beyond_cap",
        ]
        .into_iter()
        .chain([Malformed, UnknownKey, BadSignature, Expired].map(TokenError::outcome))
        .collect()
    }

    /// `requests_rejected_total{reason}`, as `proxy` and `proxy::listener` count them.
    pub const REJECT_REASONS: [&str; 4] =
        ["bad_host", "header_timeout", "malformed", "proxy_protocol"];

    /// `dns_syncs_total{result}`.
    pub fn dns_results() -> Vec<&'static str> {
        use SyncResult::*;
        fn _all_listed(r: SyncResult) {
            match r {
                Changed | Unchanged | DryRun | Error => {}
            }
        }
        [Changed, Unchanged, DryRun, Error]
            .map(SyncResult::as_str)
            .to_vec()
    }

    /// `geo_lookups_total{result}`.
    pub fn geo_results() -> Vec<&'static str> {
        use GeoResult::*;
        fn _all_listed(r: GeoResult) {
            match r {
                Hit | Miss | Error => {}
            }
        }
        [Hit, Miss, Error].map(GeoResult::as_str).to_vec()
    }

    /// `retries_denied_total{reason}`: the retry budget is the only reason.
    pub const RETRY_DENIED_REASONS: [&str; 1] = ["budget"];
    /// `xff_malformed_total{header}`.
    pub const XFF_HEADERS: [&str; 1] = ["x-forwarded-for"];
    /// `config_reloads_total{result}`.
    pub const RELOAD_RESULTS: [&str; 2] = ["ok", "error"];
}

impl Metrics {
    /// Creates, at 0, every series of the counters with fixed label sets, for the
    /// regions, origins and shifts of `snap`. A series exists in Prometheus only
    /// once it has a value: without this, `rate()` and alerts on a counter see
    /// nothing until its first increment, and the first increment itself is lost
    /// to `increase()`. Called at start and after each reload (new regions).
    pub fn zero_known_series(&self, snap: &crate::snapshot::Snapshot) {
        let touch = |c: &IntCounterVec, values: &[&str]| {
            c.with_label_values(values);
        };
        for (counter, values) in [
            (&self.requests_rejected, &labels::REJECT_REASONS[..]),
            (&self.write_tokens, &labels::write_token_outcomes()[..]),
            (&self.dns_syncs, &labels::dns_results()[..]),
            (&self.geo_lookups, &labels::geo_results()[..]),
            (&self.retries_denied, &labels::RETRY_DENIED_REASONS[..]),
            (&self.xff_malformed, &labels::XFF_HEADERS[..]),
            (&self.config_reloads, &labels::RELOAD_RESULTS[..]),
        ] {
            for v in values {
                touch(counter, &[v]);
            }
        }
        let retry_reasons = labels::retry_reasons();
        let probe_reasons = labels::probe_failure_reasons();
        for from in &snap.regions {
            for to in &snap.regions {
                for reason in &retry_reasons {
                    touch(&self.retries, &[&from.name, &to.name, reason]);
                }
            }
            for o in &from.origins {
                touch(&self.upstream_connect_failures, &[&from.name, &o.address]);
                for reason in &probe_reasons {
                    touch(&self.probe_failures, &[&from.name, &o.address, reason]);
                }
            }
        }
        for shift in &snap.shifts {
            touch(&self.shift_aborts, &[&shift.name]);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::labels;

    #[test]
    fn retry_reasons_are_what_retry_reason_gives() {
        assert_eq!(
            labels::retry_reasons(),
            [
                "connect_failure",
                "connection_error",
                "status_429",
                "status_500",
                "status_502",
                "status_503",
                "status_504",
                "status_other",
                "timeout",
            ]
        );
    }

    #[test]
    fn every_fixed_label_set_is_complete_and_without_repeats() {
        let mut outcomes = labels::write_token_outcomes();
        outcomes.sort_unstable();
        assert_eq!(
            outcomes,
            [
                "beyond_cap",
                "expired",
                "honored",
                "issued",
                "malformed",
                "outside_residency",
                "region_unhealthy",
                "region_unknown",
                "tampered",
                "unknown_key",
            ]
        );
        assert_eq!(
            labels::probe_failure_reasons(),
            [
                "timeout",
                "refused",
                "status",
                "unhealthy",
                "tls",
                "error",
                "body_not_json"
            ]
        );
        assert_eq!(
            labels::dns_results(),
            ["changed", "unchanged", "dry_run", "error"]
        );
        assert_eq!(labels::geo_results(), ["hit", "miss", "error"]);
    }
}
