//! Local rate limits per route (`routes[].rate_limit`): a GCRA token bucket per
//! key (the client's address, its country or a header's value), per instance.
//!
//! The buckets are a fixed-size table of atomic cells hashed by key, not a map
//! of keys: memory is the table's and nothing more, whatever number of distinct
//! keys arrive (a client choosing a new header value per request cannot grow
//! it), and no sweeper task is needed. A key uses two cells and is admitted
//! while the emptier of them conforms, each admitted request charging both (a
//! count-min sketch of buckets): a key's own requests are always in both its
//! cells, so a key over its limit is always refused, and a key within its
//! limit is refused only when both its cells are shared with keys over theirs.
//! The hash is keyed per table (SipHash with random keys), so no one can
//! choose values that land on another client's cells.
//!
//! `check` takes the time as an argument; the answer's fields follow
//! draft-ietf-httpapi-ratelimit-headers-11 (`RateLimit-Policy`, `RateLimit`).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::core::config::units::Rate;
use crate::core::config::{RateLimit, RateLimitKey};
use crate::request::geo::Country;

/// Cells of a table keyed by client address or header value: 2^17 cells, 1 MiB.
/// With two cells a key, a client within its limit is wrongly refused with a
/// probability of about (2n / CELLS)² while n keys are over theirs: 0.02 % at
/// 1,000 such keys, 2 % at 10,000.
pub const CELLS: usize = 1 << 17;
/// Cells of a table keyed by country (about 250 keys): 8 KiB.
pub const COUNTRY_CELLS: usize = 1 << 10;

/// The key of every client whose country is not known.
const UNKNOWN_COUNTRY: [u8; 2] = *b"XX";

/// A route's rate limit, compiled: what keys a request, its quota, its buckets
/// and the `RateLimit-Policy` every answer of the route may carry.
#[derive(Debug)]
pub struct RouteLimit {
    /// As configured.
    spec: RateLimit,
    keying: Keying,
    quota: Quota,
    table: Arc<Table>,
    /// What makes two routes' limits one across a reload: match and limit.
    identity: String,
    /// `RateLimit-Policy`, made once.
    policy: HeaderValue,
    /// The policy's name in both fields: `route-N`, N the route's index.
    name: String,
    /// `requests_rate_limited_total{route}`: the route's index.
    label: String,
}

#[derive(Debug)]
enum Keying {
    ClientIp,
    Country,
    Header(HeaderName),
}

/// A bucket's refill and depth, in nanoseconds (GCRA's emission interval and
/// burst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// One request's worth of refill.
    interval_ns: u64,
    burst: u64,
}

impl Quota {
    /// `rate` sustained, `burst` at once (burst at least 1).
    pub fn new(rate: Rate, burst: u32) -> Quota {
        let period_ns = u64::from(rate.period_secs) * 1_000_000_000;
        Quota {
            interval_ns: (period_ns / u64::from(rate.count.max(1))).max(1),
            burst: u64::from(burst.max(1)),
        }
    }

    /// How far ahead of now a bucket's theoretical arrival time may be: a full
    /// bucket's worth of requests.
    fn depth_ns(self) -> u64 {
        self.interval_ns.saturating_mul(self.burst)
    }
}

/// An admitted request: what is left of its key's bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admitted {
    /// Requests the bucket would still admit now.
    pub remaining: u32,
    /// Whole seconds until the bucket is full again (`RateLimit`'s `t`).
    pub full_in_secs: u32,
}

/// A request over its limit: when one more would be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    /// Whole seconds, at least 1 (`Retry-After` and `RateLimit`'s `t`).
    pub retry_after_secs: u64,
}

/// A request's key, borrowed from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    Ip(IpAddr),
    Country([u8; 2]),
    Header(&'a [u8]),
}

impl Key<'_> {
    /// A tag first, so a header value never stands for the same key as an
    /// address with the same bytes.
    fn hash_with(&self, seed: &RandomState) -> u64 {
        let mut h = seed.build_hasher();
        match self {
            Key::Ip(IpAddr::V4(a)) => {
                h.write_u8(4);
                h.write(&a.octets());
            }
            Key::Ip(IpAddr::V6(a)) => {
                h.write_u8(6);
                h.write(&a.octets());
            }
            Key::Country(c) => {
                h.write_u8(b'c');
                h.write(c);
            }
            Key::Header(v) => {
                h.write_u8(b'h');
                h.write(v);
            }
        }
        h.finish()
    }
}

/// The buckets of one route: cells of GCRA theoretical arrival times (ns on
/// the monotonic clock; 0 or any time past = a full bucket), allocated at the
/// route's first request (a config with many limited routes, or `meridian
/// explain`, costs nothing until they see traffic).
#[derive(Debug)]
pub struct Table {
    len: usize,
    cells: OnceLock<Box<[AtomicU64]>>,
    seed: RandomState,
}

impl Table {
    /// `len` cells, a power of two.
    pub fn new(len: usize) -> Table {
        Table {
            len: len.next_power_of_two(),
            cells: OnceLock::new(),
            seed: RandomState::new(),
        }
    }

    /// Bytes the table holds (or will once used): its cells, whatever the
    /// number of keys seen.
    pub fn bytes(&self) -> usize {
        self.len * std::mem::size_of::<AtomicU64>()
    }

    fn cells(&self) -> &[AtomicU64] {
        self.cells
            .get_or_init(|| (0..self.len).map(|_| AtomicU64::new(0)).collect())
    }

    /// GCRA over `key`'s two cells at `now_ns`: admitted (and charged to both
    /// cells) when the emptier conforms. Two requests of one key racing on
    /// different cores may both pass the last token: a burst is exact to
    /// within the requests that race at that instant.
    pub fn check(&self, key: Key<'_>, quota: Quota, now_ns: u64) -> Result<Admitted, Denied> {
        let hash = key.hash_with(&self.seed);
        let mask = self.len as u64 - 1;
        let cells = self.cells();
        let (a, b) = (
            &cells[(hash & mask) as usize],
            &cells[((hash >> 32) & mask) as usize],
        );
        let tat = a.load(Relaxed).min(b.load(Relaxed)).max(now_ns);
        let next = tat.saturating_add(quota.interval_ns);
        let ahead = next - now_ns;
        let depth = quota.depth_ns();
        if ahead > depth {
            let wait_ns = ahead - depth;
            return Err(Denied {
                retry_after_secs: wait_ns.div_ceil(1_000_000_000).max(1),
            });
        }
        for cell in [a, b] {
            // Never fails: the closure always gives a value.
            let _ = cell.fetch_update(Relaxed, Relaxed, |t| {
                Some(t.max(now_ns).saturating_add(quota.interval_ns))
            });
        }
        let secs = |ns: u64| u32::try_from(ns.div_ceil(1_000_000_000)).unwrap_or(u32::MAX);
        Ok(Admitted {
            remaining: u32::try_from((depth - ahead) / quota.interval_ns).unwrap_or(u32::MAX),
            full_in_secs: secs(ahead),
        })
    }
}

impl RouteLimit {
    /// Route `index`'s limit (`host` and `path_prefix` are its match, for its
    /// identity across reloads).
    pub fn compile(
        index: usize,
        host: Option<&str>,
        path_prefix: &str,
        limit: &RateLimit,
    ) -> RouteLimit {
        let burst = limit.burst();
        let (keying, cells) = match &limit.key {
            RateLimitKey::ClientIp => (Keying::ClientIp, CELLS),
            RateLimitKey::Country => (Keying::Country, COUNTRY_CELLS),
            // Validation holds the name to a valid header name.
            RateLimitKey::Header(name) => match HeaderName::from_bytes(name.as_bytes()) {
                Ok(name) => (Keying::Header(name), CELLS),
                Err(_) => (Keying::ClientIp, CELLS),
            },
        };
        let name = format!("route-{index}");
        let policy = format!(
            "\"{name}\";q={};w={};meridian-burst={burst}",
            limit.rate.count, limit.rate.period_secs
        );
        RouteLimit {
            spec: limit.clone(),
            keying,
            quota: Quota::new(limit.rate, burst),
            table: Arc::new(Table::new(cells)),
            identity: format!(
                "{}|{path_prefix}|{}|{}|{burst}",
                host.unwrap_or("*"),
                limit.key,
                limit.rate
            ),
            // Digits, a name of ours and ASCII punctuation: always a valid value.
            policy: HeaderValue::from_str(&policy)
                .unwrap_or(HeaderValue::from_static("\"route\";q=0")),
            name,
            label: index.to_string(),
        }
    }

    /// Takes `old`'s buckets when it is the same limit on the same match (a
    /// reload that keeps a route's limit keeps every client's budget).
    pub fn keep_state_of(&mut self, old: &RouteLimit) {
        if self.identity == old.identity {
            self.table = old.table.clone();
        }
    }

    /// The limit as configured.
    pub fn spec(&self) -> &RateLimit {
        &self.spec
    }

    /// Admitted answers carry the fields too (`headers: always`).
    pub fn on_every_answer(&self) -> bool {
        self.spec.headers == crate::core::config::RateLimitHeaders::Always
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// `requests_rate_limited_total`'s `route` label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// `RateLimit-Policy`: the quota per window as configured (`q`, `w` in
    /// seconds), the burst as a vendor parameter.
    pub fn policy(&self) -> &HeaderValue {
        &self.policy
    }

    /// `RateLimit` of a refused request: none left, `t` seconds until one is.
    pub fn service_limit(&self, denied: Denied) -> HeaderValue {
        let value = format!("\"{}\";r=0;t={}", self.name, denied.retry_after_secs);
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("\"route\";r=0"))
    }

    /// `RateLimit` of an admitted request: what is left, and in how many
    /// seconds the bucket is full again.
    pub fn service_left(&self, admitted: Admitted) -> HeaderValue {
        let value = format!(
            "\"{}\";r={};t={}",
            self.name, admitted.remaining, admitted.full_in_secs
        );
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("\"route\";r=0"))
    }

    /// The request's key. A request without the keying header is keyed by its
    /// client address (its own budget, rather than one bucket every such
    /// client would share and any one of them could empty).
    pub fn key_of<'a>(
        &self,
        client: IpAddr,
        country: Option<Country>,
        headers: &'a HeaderMap,
    ) -> Key<'a> {
        match &self.keying {
            Keying::ClientIp => Key::Ip(client),
            Keying::Country => Key::Country(country.map_or(UNKNOWN_COUNTRY, |c| c.0)),
            Keying::Header(name) => match headers.get(name) {
                Some(v) => Key::Header(v.as_bytes()),
                None => Key::Ip(client),
            },
        }
    }

    /// Admits `key` at `now_ns` (monotonic) or says when it may come back; on
    /// admission, what is left of its bucket.
    pub fn check(&self, key: Key<'_>, now_ns: u64) -> Result<Admitted, Denied> {
        self.table.check(key, self.quota, now_ns)
    }

    /// The request's key, checked at `now`.
    pub fn admit(
        &self,
        client: IpAddr,
        country: Option<Country>,
        headers: &HeaderMap,
        now: std::time::Instant,
    ) -> Result<Admitted, Denied> {
        let now_ns = crate::util::clock::monotonic_ns_at(now);
        self.check(self.key_of(client, country, headers), now_ns)
    }

    /// Bytes its buckets hold (or will once used).
    pub fn bytes(&self) -> usize {
        self.table.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn limit(key: &str, rate: &str, burst: Option<u32>) -> RouteLimit {
        let c = RateLimit {
            key: key.parse().unwrap(),
            rate: rate.parse().unwrap(),
            burst,
            headers: Default::default(),
        };
        RouteLimit::compile(3, None, "/api", &c)
    }

    /// What an admission left, or the refusal.
    fn left(r: Result<Admitted, Denied>) -> Result<u32, Denied> {
        r.map(|a| a.remaining)
    }

    fn ip(s: &str) -> Key<'static> {
        Key::Ip(s.parse().unwrap())
    }

    #[test]
    fn a_full_bucket_admits_burst_then_refills_at_the_rate() {
        let l = limit("client_ip", "10/s", Some(5));
        let t0 = 100 * SEC;
        let admitted: Vec<_> = (0..5).map(|_| left(l.check(ip("10.0.0.1"), t0))).collect();
        assert_eq!(admitted, [Ok(4), Ok(3), Ok(2), Ok(1), Ok(0)]);
        assert_eq!(
            l.check(ip("10.0.0.1"), t0),
            Err(Denied {
                retry_after_secs: 1
            })
        );
        // A refused request costs nothing: one interval later one is back.
        assert!(l.check(ip("10.0.0.1"), t0 + SEC / 10 - 1).is_err());
        assert_eq!(left(l.check(ip("10.0.0.1"), t0 + SEC / 10)), Ok(0));
        // A fresh key's first request: full again one interval on (0.1 s,
        // rounded up to whole seconds).
        assert_eq!(
            l.check(ip("10.0.0.9"), t0),
            Ok(Admitted {
                remaining: 4,
                full_in_secs: 1
            })
        );
        // Idle for a whole bucket's time: full again, never more than full.
        assert_eq!(left(l.check(ip("10.0.0.1"), t0 + 10 * SEC)), Ok(4));
    }

    #[test]
    fn each_key_has_its_own_bucket() {
        let l = limit("client_ip", "1/s", Some(1));
        assert_eq!(left(l.check(ip("10.0.0.1"), SEC)), Ok(0));
        assert!(l.check(ip("10.0.0.1"), SEC).is_err());
        assert_eq!(left(l.check(ip("10.0.0.2"), SEC)), Ok(0));
        assert_eq!(left(l.check(ip("2001:db8::1"), SEC)), Ok(0));
    }

    #[test]
    fn retry_after_is_whole_seconds_until_the_next_request_conforms() {
        let l = limit("client_ip", "6/m", Some(2));
        let t0 = 5 * SEC;
        assert!(l.check(ip("10.0.0.1"), t0).is_ok());
        assert!(l.check(ip("10.0.0.1"), t0).is_ok());
        assert_eq!(
            l.check(ip("10.0.0.1"), t0),
            Err(Denied {
                retry_after_secs: 10
            })
        );
        assert_eq!(
            l.check(ip("10.0.0.1"), t0 + 9 * SEC + 1),
            Err(Denied {
                retry_after_secs: 1
            })
        );
        assert_eq!(left(l.check(ip("10.0.0.1"), t0 + 10 * SEC)), Ok(0));
    }

    #[test]
    fn the_default_burst_is_the_rate_per_second_rounded_up() {
        let l = limit("client_ip", "3/s", None);
        let admitted = (0..10).filter(|_| l.check(ip("10.0.0.1"), SEC).is_ok());
        assert_eq!(admitted.count(), 3);
        let l = limit("client_ip", "30/m", None);
        let admitted = (0..10).filter(|_| l.check(ip("10.0.0.1"), SEC).is_ok());
        assert_eq!(admitted.count(), 1);
    }

    #[test]
    fn keys_by_country_and_header() {
        let headers = {
            let mut h = HeaderMap::new();
            h.insert("x-api-key", HeaderValue::from_static("k1"));
            h
        };
        let none = HeaderMap::new();
        let client: IpAddr = "10.0.0.1".parse().unwrap();
        let c = limit("country", "1/s", None);
        let de = Country::parse("DE");
        assert_eq!(c.key_of(client, de, &none), Key::Country(*b"DE"));
        assert_eq!(c.key_of(client, None, &none), Key::Country(*b"XX"));
        let h = limit("header:X-Api-Key", "1/s", None);
        assert_eq!(h.key_of(client, de, &headers), Key::Header(b"k1"));
        assert_eq!(h.key_of(client, de, &none), Key::Ip(client));
        let i = limit("client_ip", "1/s", None);
        assert_eq!(i.key_of(client, de, &headers), Key::Ip(client));
        // A country table is small: ~250 keys.
        assert_eq!(c.bytes(), COUNTRY_CELLS * 8);
        assert_eq!(h.bytes(), CELLS * 8);
    }

    #[test]
    fn a_header_value_and_an_address_are_different_keys() {
        let seed = RandomState::new();
        let v4 = Key::Ip("1.2.3.4".parse().unwrap()).hash_with(&seed);
        assert_ne!(v4, Key::Header(&[1, 2, 3, 4]).hash_with(&seed));
        assert_ne!(v4, Key::Header(&[4, 1, 2, 3, 4]).hash_with(&seed));
    }

    #[test]
    fn keys_that_share_a_cell_keep_apart_through_their_other_cell() {
        // Two cells: every key shares both of its cells with others; the
        // limit still holds per key, and a quiet key is not refused while one
        // of its cells is free.
        let table = Table::new(2);
        let q = Quota::new("1/s".parse().unwrap(), 1);
        let keys: Vec<Key> = (0..64u8).map(|i| Key::Country([i, b'x'])).collect();
        // Keys whose two cells differ: one of them admitted drains both cells.
        let split: Vec<&Key> = keys
            .iter()
            .filter(|k| {
                let h = k.hash_with(&table.seed);
                h & 1 != (h >> 32) & 1
            })
            .collect();
        assert!(split.len() > 2, "hash spread");
        assert!(table.check(*split[0], q, SEC).is_ok());
        assert!(
            table.check(*split[0], q, SEC).is_err(),
            "its own limit holds"
        );
        assert!(
            table.check(*split[1], q, SEC).is_err(),
            "both its cells are full"
        );
        assert!(table.check(*split[1], q, 2 * SEC).is_ok());
    }

    #[test]
    fn fields_follow_the_draft() {
        let l = limit("client_ip", "100/s", Some(200));
        assert_eq!(l.policy(), "\"route-3\";q=100;w=1;meridian-burst=200");
        assert_eq!(
            l.service_limit(Denied {
                retry_after_secs: 2
            }),
            "\"route-3\";r=0;t=2"
        );
        assert_eq!(l.label(), "3");
        let admitted = Admitted {
            remaining: 150,
            full_in_secs: 1,
        };
        assert_eq!(l.service_left(admitted), "\"route-3\";r=150;t=1");
        let l = limit("header:x-api-key", "600/m", None);
        assert_eq!(l.policy(), "\"route-3\";q=600;w=60;meridian-burst=10");
    }

    #[test]
    fn a_reload_keeps_the_buckets_of_an_unchanged_limit_only() {
        let old = limit("client_ip", "1/s", Some(1));
        assert!(old.check(ip("10.0.0.1"), SEC).is_ok());
        let mut same = limit("client_ip", "1/s", Some(1));
        same.keep_state_of(&old);
        assert!(same.check(ip("10.0.0.1"), SEC).is_err(), "budget kept");
        let mut changed = limit("client_ip", "2/s", Some(1));
        changed.keep_state_of(&old);
        assert!(
            changed.check(ip("10.0.0.1"), SEC).is_ok(),
            "a new limit starts full"
        );
    }
}
