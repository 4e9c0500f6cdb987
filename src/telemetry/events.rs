//! The event journal: every state change an operator asks about ("what changed?"),
//! recorded once with time, kind, subject, from → to and cause, in a bounded ring
//! (`admin.event_journal_size`, default 1,000). Each event is also logged once
//! (target `meridian::telemetry::events`) and counted (`meridian_events_total{kind}`).
//!
//! Nothing here is on the request path: state changes happen in probers, the
//! reload path, the admin API and the DNS loop, so a plain mutex around the ring
//! costs nothing that matters.

use std::collections::VecDeque;
use std::sync::Mutex;

use prometheus::IntCounterVec;
use serde::Serialize;

use crate::util::clock::now_ms;
use crate::util::lock::lock;

/// Default number of events kept.
pub const DEFAULT_CAPACITY: usize = crate::core::config::DEFAULT_EVENT_JOURNAL_SIZE;

/// What kind of change an event records (the `kind` label and `?kind=` filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// An origin's probe state flipped (healthy, degraded, unhealthy).
    OriginHealth,
    /// Outlier detection ejected an origin, or its ejection ended.
    OriginEjection,
    /// A region's health roll-up changed.
    RegionHealth,
    /// A reload put a new config in service.
    ConfigApplied,
    /// A reload was refused; the old config keeps serving.
    ConfigRefused,
    /// A shift started, moved another 10 %, completed or was aborted.
    Shift,
    /// An operator drained or undrained a region.
    Drain,
    /// A DNS sync changed Route 53 records.
    DnsChange,
    /// A listener certificate was replaced by a reload.
    CertificateReload,
    /// An origin's name resolved to a different set of addresses.
    OriginAddresses,
    /// Requests started or stopped being shed for want of capacity.
    Overload,
}

impl Kind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [Kind; 11] = [
        Kind::OriginHealth,
        Kind::OriginEjection,
        Kind::RegionHealth,
        Kind::ConfigApplied,
        Kind::ConfigRefused,
        Kind::Shift,
        Kind::Drain,
        Kind::DnsChange,
        Kind::CertificateReload,
        Kind::OriginAddresses,
        Kind::Overload,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::OriginHealth => "origin_health",
            Kind::OriginEjection => "origin_ejection",
            Kind::RegionHealth => "region_health",
            Kind::ConfigApplied => "config_applied",
            Kind::ConfigRefused => "config_refused",
            Kind::Shift => "shift",
            Kind::Drain => "drain",
            Kind::DnsChange => "dns_change",
            Kind::CertificateReload => "certificate_reload",
            Kind::OriginAddresses => "origin_addresses",
            Kind::Overload => "overload",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Increasing from 1 in this process: tells two events of the same millisecond apart.
    pub seq: u64,
    pub at_unix_ms: u64,
    pub kind: Kind,
    /// What changed: `region/address` for an origin, a region, shift or file name,
    /// `config`, or the DNS record name.
    pub subject: String,
    pub from: Option<String>,
    pub to: Option<String>,
    /// Why, in words: the probe's verdict and detail, the reload error, the peer
    /// that asked, the DNS change comment, ...
    pub cause: String,
}

/// The ring of recent events.
pub struct Journal {
    ring: Mutex<Ring>,
    counter: IntCounterVec,
}

struct Ring {
    events: VecDeque<Event>,
    capacity: usize,
    next_seq: u64,
}

/// States worth a warning when something moves into them.
const BAD: [&str; 7] = [
    "shedding",
    "unhealthy",
    "ejected",
    "drained",
    "aborted",
    "refused",
    "degraded",
];

impl Journal {
    /// An empty journal keeping `capacity` events, counting into `counter` (label `kind`),
    /// whose series for every kind are created at 0.
    pub fn new(capacity: usize, counter: IntCounterVec) -> Journal {
        for k in Kind::ALL {
            counter.with_label_values(&[k.as_str()]);
        }
        Journal {
            ring: Mutex::new(Ring {
                events: VecDeque::with_capacity(capacity.min(DEFAULT_CAPACITY)),
                capacity: capacity.max(1),
                next_seq: 1,
            }),
            counter,
        }
    }

    /// Changes how many events are kept (a reload may change it); the oldest go first.
    pub fn set_capacity(&self, capacity: usize) {
        let mut ring = lock(&self.ring);
        ring.capacity = capacity.max(1);
        while ring.events.len() > ring.capacity {
            ring.events.pop_front();
        }
    }

    /// Records one change: kept in the ring, logged once, counted.
    pub fn record(
        &self,
        kind: Kind,
        subject: impl Into<String>,
        from: Option<&str>,
        to: Option<&str>,
        cause: impl Into<String>,
    ) {
        let (subject, cause) = (subject.into(), cause.into());
        let from_s = from.unwrap_or("");
        let to_s = to.unwrap_or("");
        if kind == Kind::ConfigRefused {
            tracing::error!(target: "meridian::telemetry::events", kind = kind.as_str(), subject = %subject, from = from_s, to = to_s, cause = %cause, "event");
        } else if BAD.contains(&to_s) {
            tracing::warn!(target: "meridian::telemetry::events", kind = kind.as_str(), subject = %subject, from = from_s, to = to_s, cause = %cause, "event");
        } else {
            tracing::info!(target: "meridian::telemetry::events", kind = kind.as_str(), subject = %subject, from = from_s, to = to_s, cause = %cause, "event");
        }
        self.counter.with_label_values(&[kind.as_str()]).inc();
        let mut ring = lock(&self.ring);
        let seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.events.len() >= ring.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(Event {
            seq,
            at_unix_ms: now_ms(),
            kind,
            subject,
            from: from.map(str::to_string),
            to: to.map(str::to_string),
            cause,
        });
    }

    /// Events at or after `since` (unix ms) of `kind`, newest first, at most `limit`.
    pub fn query(&self, since: Option<u64>, kind: Option<Kind>, limit: usize) -> Vec<Event> {
        let ring = lock(&self.ring);
        ring.events
            .iter()
            .rev()
            .take_while(|e| since.is_none_or(|s| e.at_unix_ms >= s))
            .filter(|e| kind.is_none_or(|k| e.kind == k))
            .take(limit)
            .cloned()
            .collect()
    }
}

/// What `GET /admin/events` was asked for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Query {
    pub since: Option<u64>,
    pub kind: Option<Kind>,
    pub limit: Option<usize>,
}

/// Parses `since=<unix ms>&kind=<kind>&limit=<n>`; an unknown key or bad value is an
/// error naming it (a typo must not silently widen the answer).
pub fn parse_query(q: Option<&str>) -> Result<Query, String> {
    let mut out = Query::default();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "since" => {
                out.since = Some(
                    v.parse()
                        .map_err(|_| format!("since: `{v}` is not unix milliseconds"))?,
                )
            }
            "kind" => {
                out.kind = Some(Kind::parse(v).ok_or_else(|| {
                    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                    format!("kind: `{v}` is not one of {}", kinds.join(", "))
                })?)
            }
            "limit" => {
                out.limit = Some(
                    v.parse()
                        .map_err(|_| format!("limit: `{v}` is not a number"))?,
                )
            }
            _ => return Err(format!("unknown parameter `{k}` (since, kind, limit)")),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(capacity: usize) -> Journal {
        let c = IntCounterVec::new(prometheus::Opts::new("events_total", "t"), &["kind"]).unwrap();
        Journal::new(capacity, c)
    }

    #[test]
    fn keeps_the_newest_up_to_capacity_newest_first() {
        let j = journal(3);
        for i in 0..5 {
            j.record(Kind::Drain, format!("r{i}"), None, Some("drained"), "test");
        }
        let got: Vec<String> = j
            .query(None, None, 10)
            .into_iter()
            .map(|e| e.subject)
            .collect();
        assert_eq!(got, ["r4", "r3", "r2"]);
        assert_eq!(j.query(None, None, 1)[0].seq, 5);
        j.set_capacity(1);
        assert_eq!(j.query(None, None, 10).len(), 1);
        assert_eq!(j.counter.with_label_values(&["drain"]).get(), 5);
        assert_eq!(j.counter.with_label_values(&["shift"]).get(), 0);
    }

    #[test]
    fn filters_by_kind_and_time() {
        let j = journal(10);
        j.record(Kind::Drain, "a", None, None, "");
        j.record(Kind::Shift, "b", None, None, "");
        assert_eq!(j.query(None, Some(Kind::Shift), 10)[0].subject, "b");
        assert_eq!(j.query(None, Some(Kind::Shift), 10).len(), 1);
        assert!(j.query(Some(now_ms() + 60_000), None, 10).is_empty());
        assert_eq!(j.query(Some(0), None, 10).len(), 2);
    }

    #[test]
    fn query_strings() {
        assert_eq!(parse_query(None), Ok(Query::default()));
        assert_eq!(
            parse_query(Some("since=5&kind=drain&limit=2")),
            Ok(Query {
                since: Some(5),
                kind: Some(Kind::Drain),
                limit: Some(2)
            })
        );
        assert!(parse_query(Some("kind=nope"))
            .unwrap_err()
            .contains("drain"));
        assert!(parse_query(Some("since=x")).is_err());
        assert!(parse_query(Some("sinse=1")).is_err());
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
    }
}
