//! The counters whose label values come from fixed sets, and the creation of
//! their series at 0. Apart from `metrics` because the values come from the
//! modules that use them (DNS results, retry reasons, token outcomes), which
//! themselves depend on `metrics`: keeping them here keeps the module graph
//! free of cycles.
//!
//! Each fixed set is an enum declared with `util::label_set::label_set!`:
//! the call sites count `X.as_str()` and the series at 0 come from `X::ALL`,
//! so a value is written once. The sets no other module owns are in
//! `telemetry::labels`.

use prometheus::IntCounterVec;

use crate::core::capacity::Shed;
use crate::core::health::endpoints::LookupResult;
use crate::core::health::judge::FailReason;
use crate::core::routing::retry::{self, Failure};
use crate::core::snapshot::Snapshot;
use crate::request::geo::GeoResult;
use crate::request::tokens::TokenOutcome;
use crate::services::dns::SyncResult;
use crate::telemetry::labels::{Reject, ReloadResult, RetryDenied, XffHeader};
use crate::telemetry::metrics::Metrics;

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

/// `probe_failures_total{reason}`: a failed probe's reason, or a deep probe's
/// body that was not JSON (judged by its status alone, and counted as well).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeFailure {
    Failed(FailReason),
    BodyNotJson,
}

impl ProbeFailure {
    /// Every value: each `FailReason`, then `BodyNotJson`.
    pub fn all() -> impl Iterator<Item = ProbeFailure> {
        FailReason::ALL
            .into_iter()
            .map(ProbeFailure::Failed)
            .chain([ProbeFailure::BodyNotJson])
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            ProbeFailure::Failed(r) => r.as_str(),
            ProbeFailure::BodyNotJson => "body_not_json",
        }
    }
}

/// Creates, at 0, every series of the counters with fixed label sets, for the
/// regions, origins and shifts of `snap`. A series exists in Prometheus only
/// once it has a value: without this, `rate()` and alerts on a counter see
/// nothing until its first increment, and the first increment itself is lost
/// to `increase()`. Called at start and after each reload (new regions).
pub fn zero_known_series(m: &Metrics, snap: &Snapshot) {
    let touch = |c: &IntCounterVec, values: &[&str]| {
        c.with_label_values(values);
    };
    for (counter, values) in [
        (&m.requests_rejected, &Reject::ALL.map(Reject::as_str)[..]),
        (
            &m.write_tokens,
            &TokenOutcome::ALL.map(TokenOutcome::as_str)[..],
        ),
        (&m.dns_syncs, &SyncResult::ALL.map(SyncResult::as_str)[..]),
        (&m.geo_lookups, &GeoResult::ALL.map(GeoResult::as_str)[..]),
        (
            &m.retries_denied,
            &RetryDenied::ALL.map(RetryDenied::as_str)[..],
        ),
        (&m.xff_malformed, &XffHeader::ALL.map(XffHeader::as_str)[..]),
        (
            &m.config_reloads,
            &ReloadResult::ALL.map(ReloadResult::as_str)[..],
        ),
    ] {
        for v in values {
            touch(counter, &[v]);
        }
    }
    let retry_reasons = retry_reasons();
    for from in &snap.regions {
        for to in &snap.regions {
            for reason in &retry_reasons {
                touch(&m.retries, &[&from.name, &to.name, reason]);
            }
            if from.name != to.name {
                touch(&m.spillover, &[&from.name, &to.name]);
            }
        }
        for o in &from.origins {
            touch(&m.upstream_connect_failures, &[&from.name, &o.address]);
            for result in LookupResult::ALL {
                touch(&m.dns_lookups, &[&from.name, &o.address, result.as_str()]);
            }
            m.origin_endpoints
                .with_label_values(&[&from.name, &o.address])
                .set(o.endpoints.load().len() as i64);
            for reason in ProbeFailure::all() {
                touch(
                    &m.probe_failures,
                    &[&from.name, &o.address, reason.as_str()],
                );
            }
        }
    }
    for shift in &snap.shifts {
        touch(&m.shift_aborts, &[&shift.name]);
    }
    for route in 0..snap.routes.len() {
        for why in Shed::ALL {
            touch(&m.requests_shed, &[&route.to_string(), why.as_str()]);
        }
    }
    for limit in snap.routes.iter().filter_map(|r| r.rate_limit.as_ref()) {
        touch(&m.requests_rate_limited, &[limit.label()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_reasons_are_what_retry_reason_gives() {
        assert_eq!(
            retry_reasons(),
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
        let mut outcomes = TokenOutcome::ALL.map(TokenOutcome::as_str);
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
            ProbeFailure::all()
                .map(ProbeFailure::as_str)
                .collect::<Vec<_>>(),
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
            SyncResult::ALL.map(SyncResult::as_str),
            ["changed", "unchanged", "dry_run", "error"]
        );
        assert_eq!(
            GeoResult::ALL.map(GeoResult::as_str),
            ["hit", "miss", "error"]
        );
        let mut reasons = Reject::ALL.map(Reject::as_str);
        reasons.sort_unstable();
        let before = reasons.len();
        let mut reasons = reasons.to_vec();
        reasons.dedup();
        assert_eq!(reasons.len(), before);
    }
}
