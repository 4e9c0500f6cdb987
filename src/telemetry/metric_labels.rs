//! The counters whose label values come from fixed sets, and the creation of
//! their series at 0. Apart from `metrics` because the values come from the
//! modules that use them (DNS results, retry reasons, token outcomes), which
//! themselves depend on `metrics`: keeping them here keeps the module graph
//! free of cycles.

//!
//! Enums are listed through an exhaustive `match`, so a new variant does not
//! compile until it is here; the literals name the values the data path passes
//! as strings.

use prometheus::IntCounterVec;

use crate::core::health::judge::FailReason;
use crate::core::routing::retry::{self, Failure};
use crate::core::snapshot::Snapshot;
use crate::request::geo::GeoResult;
use crate::request::tokens::TokenError;
use crate::services::dns::SyncResult;
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

/// `probe_failures_total{reason}`: a failed probe's reason, and `body_not_json`
/// (a deep probe judged by its status alone, counted in `services::probes`'
/// probe loop).
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

/// `requests_rejected_total{reason}`, as `proxy` and `proxy::listener` count
/// them: `proxy::form`'s refusals and `proxy::blame`'s client faults among them.
pub const REJECT_REASONS: [&str; 11] = [
    "bad_body",
    "body_too_large",
    "bad_host",
    "bad_target",
    "client_gone",
    "client_timeout",
    "connect",
    "header_timeout",
    "malformed",
    "proxy_protocol",
    "transfer_coding",
];

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
        (&m.requests_rejected, &REJECT_REASONS[..]),
        (&m.write_tokens, &write_token_outcomes()[..]),
        (&m.dns_syncs, &dns_results()[..]),
        (&m.geo_lookups, &geo_results()[..]),
        (&m.retries_denied, &RETRY_DENIED_REASONS[..]),
        (&m.xff_malformed, &XFF_HEADERS[..]),
        (&m.config_reloads, &RELOAD_RESULTS[..]),
    ] {
        for v in values {
            touch(counter, &[v]);
        }
    }
    let retry_reasons = retry_reasons();
    let probe_reasons = probe_failure_reasons();
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
            for result in crate::core::health::endpoints::LookupResult::ALL {
                touch(&m.dns_lookups, &[&from.name, &o.address, result.as_str()]);
            }
            m.origin_endpoints
                .with_label_values(&[&from.name, &o.address])
                .set(o.endpoints.load().len() as i64);
            for reason in &probe_reasons {
                touch(&m.probe_failures, &[&from.name, &o.address, reason]);
            }
        }
    }
    for shift in &snap.shifts {
        touch(&m.shift_aborts, &[&shift.name]);
    }
    for route in 0..snap.routes.len() {
        for why in crate::core::capacity::Shed::ALL {
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
        let mut outcomes = write_token_outcomes();
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
            probe_failure_reasons(),
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
        assert_eq!(dns_results(), ["changed", "unchanged", "dry_run", "error"]);
        assert_eq!(geo_results(), ["hit", "miss", "error"]);
    }
}
