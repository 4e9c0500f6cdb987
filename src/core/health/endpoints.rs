//! Endpoints: the addresses an origin is reached at. An origin is a name (an ALB)
//! or an address; each address it currently has is an endpoint with its own
//! health, in-flight count and connection pool. The resolver service publishes an
//! origin's addresses here as they change; requests and probes read the published
//! set, one atomic load, never waiting on a lookup.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::core::capacity::Gradient;
use crate::core::health::{EndpointHealth, HealthRegistry, OriginReading, ProbeState};
use crate::util::lock::lock;

pub use crate::core::config::{MAX_ENDPOINTS_PER_ORIGIN, MAX_ORIGINS_PER_REGION};

/// One address of an origin.
#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// The identity its health is kept under (and events name): `region/address`
    /// for an origin given as an IP, `region/name:port@ip:port` for an address of
    /// a named one.
    pub key: String,
    pub health: Arc<EndpointHealth>,
    /// Its kept connections, its own: dropped (closing them) once no set and no
    /// request holds the endpoint any more (an address that left the records, an
    /// origin a reload removed).
    pub pool: Arc<crate::proxy::pool::OriginPool>,
}

/// An origin's endpoints as published: sorted by address.
pub type EndpointSet = Arc<[Arc<Endpoint>]>;

crate::util::label_set::label_set! {
    /// What the last lookup of an origin's name found (`dns_lookups_total{result}`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum LookupResult {
        /// One address or more.
        Ok => "ok",
        /// The name does not exist or has no A/AAAA records.
        Empty => "empty",
        /// No answer: timeout, refused, server failure.
        Error => "error",
    }
}

/// The resolver's record of one origin's name (shown in `/admin/state`).
#[derive(Debug, Clone, Default)]
pub struct Resolution {
    pub last_result: Option<LookupResult>,
    pub last_error: Option<String>,
    pub last_at_unix_ms: u64,
    pub lookups: u64,
}

/// One origin's addresses and what keeps them current. Kept in the registry by
/// the origin's identity, so a reload keeps the addresses (and their health and
/// connections) of the origins it keeps.
#[derive(Debug)]
pub struct OriginEndpoints {
    /// `region/address` as written.
    key: String,
    /// Given by name (its endpoints are named `key@ip:port`), not as an IP.
    named: bool,
    /// What a connection depends on besides the address (protocol, TLS, SNI):
    /// endpoints are rebuilt with fresh pools when a reload changes it.
    conn_identity: Mutex<String>,
    current: ArcSwap<Vec<Arc<Endpoint>>>,
    /// Set once the name was looked up (answered or not), or at once for an address.
    pub settled: AtomicBool,
    /// The name has resolved to at least one address at some point.
    pub ever_resolved: AtomicBool,
    pub resolution: Mutex<Resolution>,
    /// Requests, errors and latency of the last minute (see `crate::telemetry::rates`).
    pub rates: crate::telemetry::rates::Window,
    /// Unix ms at which the name is due for another lookup (0: now).
    pub due_ms: AtomicU64,
    /// `max_rps`'s cell: the theoretical arrival time of the next request, in
    /// `util::clock::monotonic_us` (see `routing::capacity::Rate`).
    pub rate_tat_us: AtomicU64,
    /// `max_inflight: adaptive`'s limit (unused by other origins).
    pub adaptive: AdaptiveLimit,
}

/// An adaptive in-flight limit as the request path reads it (one atomic load)
/// and as answers feed its controller (`routing::capacity::Gradient`).
#[derive(Debug)]
pub struct AdaptiveLimit {
    limit: AtomicU32,
    controller: Mutex<Gradient>,
}

impl Default for AdaptiveLimit {
    fn default() -> Self {
        let g = Gradient::default();
        AdaptiveLimit {
            limit: AtomicU32::new(g.limit()),
            controller: Mutex::new(g),
        }
    }
}

impl AdaptiveLimit {
    pub fn limit(&self) -> u32 {
        self.limit.load(Relaxed)
    }

    /// The unloaded latency it steers by (µs), for `/admin/state`.
    pub fn least_us(&self) -> u64 {
        lock(&self.controller).least_us()
    }

    /// Feeds one answer. An answer that finds another one feeding it is
    /// dropped rather than waited for: one sample less changes nothing, a
    /// request queueing behind a lock would.
    pub fn sample(&self, ttfb_us: u64, in_flight: u32) {
        if let Ok(mut g) = self.controller.try_lock() {
            let now = crate::util::clock::monotonic_ms();
            if let Some(limit) = g.sample(ttfb_us, in_flight, now) {
                self.limit.store(limit, Relaxed);
            }
        }
    }
}

impl OriginEndpoints {
    fn new(key: &str, named: bool) -> OriginEndpoints {
        OriginEndpoints {
            key: key.to_string(),
            named,
            conn_identity: Mutex::new(String::new()),
            current: ArcSwap::from_pointee(Vec::new()),
            settled: AtomicBool::new(false),
            ever_resolved: AtomicBool::new(false),
            resolution: Mutex::new(Resolution::default()),
            rates: Default::default(),
            due_ms: AtomicU64::new(0),
            rate_tat_us: AtomicU64::new(0),
            adaptive: AdaptiveLimit::default(),
        }
    }

    fn endpoint_key(&self, addr: &SocketAddr) -> String {
        if self.named {
            format!("{}@{addr}", self.key)
        } else {
            self.key.clone()
        }
    }

    /// The endpoints now, sorted by address (an atomic load, no lock).
    pub fn load(&self) -> arc_swap::Guard<Arc<Vec<Arc<Endpoint>>>> {
        self.current.load()
    }

    /// The addresses now, sorted.
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.current.load().iter().map(|e| e.addr).collect()
    }

    /// Publishes `addrs` (sorted, deduplicated, at most [`MAX_ENDPOINTS_PER_ORIGIN`])
    /// as this origin's endpoints, keeping the entries of the addresses it keeps.
    /// A new address of an origin that has a passing endpoint starts in that
    /// endpoint's state until its own first probe (Envoy's default for new hosts):
    /// otherwise an ALB's new node would wait a probe interval for traffic while
    /// its old node may already be going away. Returns whether the set changed.
    pub fn publish(&self, addrs: &[SocketAddr], registry: &HealthRegistry) -> bool {
        let mut want: Vec<SocketAddr> = addrs.to_vec();
        want.sort();
        want.dedup();
        want.truncate(MAX_ENDPOINTS_PER_ORIGIN);
        let old = self.current.load_full();
        if old.iter().map(|e| e.addr).eq(want.iter().copied()) {
            return false;
        }
        let presumed = old
            .iter()
            .map(|e| e.health.state())
            .filter(|s| matches!(s, ProbeState::Healthy | ProbeState::Degraded))
            .min_by_key(|s| *s as u8);
        let next: Vec<Arc<Endpoint>> = want
            .iter()
            .map(|addr| match old.iter().find(|e| e.addr == *addr) {
                Some(e) => e.clone(),
                None => {
                    let key = self.endpoint_key(addr);
                    let (health, created) = registry.endpoint(&key);
                    if let (true, Some(state)) = (created, presumed) {
                        health.set_state(state);
                    }
                    Arc::new(Endpoint {
                        addr: *addr,
                        pool: Arc::default(),
                        key,
                        health,
                    })
                }
            })
            .collect();
        let gone: Vec<String> = old
            .iter()
            .filter(|e| !want.contains(&e.addr))
            .map(|e| e.key.clone())
            .collect();
        self.current.store(Arc::new(next));
        registry.forget_endpoints(&gone);
        true
    }

    /// Sets what connections depend on; a change drops every endpoint's pool by
    /// making the endpoints afresh (their health is kept: it is keyed by address).
    fn set_conn_identity(&self, identity: &str, registry: &HealthRegistry) {
        let mut held = lock(&self.conn_identity);
        if *held == identity {
            return;
        }
        *held = identity.to_string();
        drop(held);
        let addrs = self.addrs();
        let rebuilt: Vec<Arc<Endpoint>> = addrs
            .iter()
            .map(|addr| {
                let key = self.endpoint_key(addr);
                Arc::new(Endpoint {
                    addr: *addr,
                    pool: Arc::default(),
                    health: registry.endpoint(&key).0,
                    key,
                })
            })
            .collect();
        self.current.store(Arc::new(rebuilt));
    }

    /// The origin's roll-up of its endpoints at `now_ms` (see [`roll_up_endpoints`]).
    pub fn reading(&self, now_ms: u64) -> OriginReading {
        roll_up_endpoints(&self.current.load(), now_ms)
    }

    /// Every endpoint has had a probe result, and the name its first lookup.
    pub fn probed(&self) -> bool {
        self.settled.load(Relaxed)
            && self
                .current
                .load()
                .iter()
                .all(|e| e.health.probed.load(Relaxed))
    }

    /// The largest replication lag an eligible endpoint reported (ms), if any did.
    pub fn replication_lag_ms(&self, now_ms: u64) -> Option<u32> {
        self.current
            .load()
            .iter()
            .filter(|e| e.health.eligible(now_ms))
            .map(|e| e.health.replication_lag_ms.load(Relaxed))
            .filter(|lag| *lag != u32::MAX)
            .max()
    }
}

/// An origin's roll-up of its endpoints `set` at `now_ms`: eligible when one is,
/// degraded when every eligible one is, the lowest latency of the eligible.
pub fn roll_up_endpoints(set: &[Arc<Endpoint>], now_ms: u64) -> OriginReading {
    let mut r = OriginReading {
        eligible: false,
        degraded: true,
        ewma_us: 0,
    };
    for e in set {
        let one = e.health.reading(now_ms);
        if !one.eligible {
            continue;
        }
        r.degraded &= one.degraded;
        r.ewma_us = match (r.eligible, one.ewma_us) {
            (false, us) => us,
            (true, 0) => r.ewma_us,
            (true, us) if r.ewma_us == 0 => us,
            (true, us) => r.ewma_us.min(us),
        };
        r.eligible = true;
    }
    r.degraded &= r.eligible;
    r
}

/// An origin's `host:port` split: an IP (the one endpoint there will ever be) or
/// a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Ip(SocketAddr),
    Name { host: String, port: u16 },
}

impl Target {
    /// Reads a validated `host:port` (`[v6]:port` for IPv6).
    pub fn parse(address: &str) -> Option<Target> {
        if let Ok(addr) = address.parse::<SocketAddr>() {
            return Some(Target::Ip(addr));
        }
        let (host, port) = address.rsplit_once(':')?;
        Some(Target::new(
            host.trim_matches(['[', ']']),
            port.parse().ok()?,
        ))
    }

    /// `host` (an IPv6 address without its brackets) and `port`.
    pub fn new(host: &str, port: u16) -> Target {
        match host.parse::<IpAddr>() {
            Ok(ip) => Target::Ip(SocketAddr::new(ip, port)),
            Err(_) => Target::Name {
                host: host.to_string(),
                port,
            },
        }
    }
}

impl HealthRegistry {
    /// The endpoints of origin `key` (`region/address`), made on first use and
    /// kept across snapshots; `identity` is what its connections depend on. An
    /// IP origin gets its one endpoint here; a name keeps its last addresses.
    /// Only called while building a snapshot, never per request.
    pub fn origin_endpoints(
        &self,
        key: &str,
        identity: &str,
        target: &Target,
    ) -> Arc<OriginEndpoints> {
        let named = matches!(target, Target::Name { .. });
        let entry = self.endpoint_sets(key, || Arc::new(OriginEndpoints::new(key, named)));
        entry.set_conn_identity(identity, self);
        if let Target::Ip(addr) = target {
            entry.publish(&[*addr], self);
            entry.settled.store(true, Relaxed);
            entry.ever_resolved.store(true, Relaxed);
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_target_is_an_ip_or_a_name() {
        assert_eq!(
            Target::parse("10.0.0.1:80"),
            Some(Target::Ip(addr("10.0.0.1:80")))
        );
        assert_eq!(
            Target::parse("[::1]:443"),
            Some(Target::Ip(addr("[::1]:443")))
        );
        assert_eq!(
            Target::parse("alb-1.example.test:8080"),
            Some(Target::Name {
                host: "alb-1.example.test".into(),
                port: 8080
            })
        );
        assert_eq!(Target::parse("no-port"), None);
    }

    #[test]
    fn publishing_keeps_the_addresses_it_keeps_and_presumes_new_ones() {
        let reg = HealthRegistry::default();
        let name = Target::parse("alb.test:80").unwrap();
        let o = reg.origin_endpoints("us/alb.test:80", "id", &name);
        assert!(o.load().is_empty());
        assert!(o.publish(
            &[
                addr("10.0.0.2:80"),
                addr("10.0.0.1:80"),
                addr("10.0.0.1:80")
            ],
            &reg
        ));
        assert_eq!(o.addrs(), [addr("10.0.0.1:80"), addr("10.0.0.2:80")]);
        // New endpoints of an origin nothing has probed stay unknown.
        assert!(o
            .load()
            .iter()
            .all(|e| e.health.state() == ProbeState::Unknown));
        o.load()[0].health.set_state(ProbeState::Healthy);
        let kept = o.load()[0].clone();
        assert!(!o.publish(&[addr("10.0.0.1:80"), addr("10.0.0.2:80")], &reg));
        assert!(o.publish(&[addr("10.0.0.1:80"), addr("10.0.0.3:80")], &reg));
        let now = o.load();
        assert!(
            Arc::ptr_eq(&now[0], &kept),
            "a kept address keeps its entry"
        );
        assert_eq!(
            now[1].health.state(),
            ProbeState::Healthy,
            "presumed from its origin"
        );
        assert!(o.reading(0).eligible);
    }

    #[test]
    fn at_most_so_many_addresses_are_used() {
        let reg = HealthRegistry::default();
        let o = reg.origin_endpoints("us/a.test:80", "id", &Target::parse("a.test:80").unwrap());
        let many: Vec<SocketAddr> = (1..=40).map(|i| addr(&format!("10.0.0.{i}:80"))).collect();
        o.publish(&many, &reg);
        assert_eq!(o.load().len(), MAX_ENDPOINTS_PER_ORIGIN);
    }

    #[test]
    fn an_origin_rolls_up_its_endpoints() {
        let reg = HealthRegistry::default();
        let o = reg.origin_endpoints("us/a.test:80", "id", &Target::parse("a.test:80").unwrap());
        assert!(!o.reading(0).eligible, "no address: not eligible");
        o.publish(&[addr("10.0.0.1:80"), addr("10.0.0.2:80")], &reg);
        let set = o.load();
        set[0].health.set_state(ProbeState::Unhealthy);
        set[1].health.set_state(ProbeState::Degraded);
        let r = o.reading(0);
        assert!(r.eligible && r.degraded);
        set[0].health.set_state(ProbeState::Healthy);
        assert!(!o.reading(0).degraded);
    }
}
