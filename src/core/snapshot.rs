//! `Config -> Snapshot`: the compiled, immutable routing table that one request
//! reads from start to end. Reload builds a new one and swaps it in whole.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::core::capacity::{self, Capacity};
use crate::core::config::units::{ByteSize, Cidr, MaxInflight};
use crate::core::config::{
    self, Affinity, Loaded, Priority, RywWindow, Steering, WhenUnavailable, Writes,
};
use crate::core::health::endpoints::{roll_up_endpoints, Endpoint, OriginEndpoints, Target};
use crate::core::health::outlier::OutlierPolicy;
use crate::core::health::OriginReading;
use crate::core::health::{roll_up, HealthRegistry, HealthView, RegionState, ShiftState};
use crate::request::geo::{Continent, Country, GeoDb};
use crate::request::rate_limit::RouteLimit;
use crate::request::tokens::KeyRing;
use crate::util::clock::monotonic_us;

pub use crate::core::config::resolved::RegionIdx;

pub use crate::core::config::MAX_REGIONS;
// A health view holds every region inline.
const _: () = assert!(MAX_REGIONS <= crate::core::health::view::MAX);

/// A set of regions as a bitmask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegionSet(pub u64);

impl RegionSet {
    pub fn all(n: usize) -> RegionSet {
        RegionSet(if n >= 64 { u64::MAX } else { (1u64 << n) - 1 })
    }
    pub fn contains(self, r: RegionIdx) -> bool {
        r < 64 && self.0 & (1 << r) != 0
    }
    pub fn insert(&mut self, r: RegionIdx) {
        self.0 |= 1 << r;
    }
    /// The regions in index order, one step per member (not one per bit).
    pub fn iter(self) -> impl ExactSizeIterator<Item = RegionIdx> {
        Members(self.0)
    }
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// `RegionSet::iter`: takes the lowest set bit each step.
struct Members(u64);

impl Iterator for Members {
    type Item = RegionIdx;
    fn next(&mut self) -> Option<RegionIdx> {
        if self.0 == 0 {
            return None;
        }
        let r = self.0.trailing_zeros() as RegionIdx;
        self.0 &= self.0 - 1;
        Some(r)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.0.count_ones() as usize;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Members {}

/// One origin, resolved.
#[derive(Debug)]
pub struct OriginEntry {
    /// `region/address`: the identity health state is keyed by.
    pub key: String,
    /// As written in the config (label in metrics and state).
    pub address: String,
    /// The address, or the name the resolver keeps its endpoints current from.
    pub target: Target,
    /// HTTPS to the origin (and its probes) when set.
    pub tls: Option<crate::proxy::tls::OriginTls>,
    pub sni: String,
    /// The `Host` (HTTP/2: `:authority`) its requests and probes carry instead
    /// of the client's; made once here, not on every try.
    pub host_header: Option<http::HeaderValue>,
    /// HTTP/1.1, HTTP/2 over TLS (ALPN `h2`) or cleartext HTTP/2 with prior
    /// knowledge; validation guarantees `H2` has `tls` and `H2c` has none.
    pub protocol: crate::core::config::OriginProtocol,
    /// Its addresses now, each with its own health and pool (shared with the
    /// snapshots that keep this origin; the resolver keeps them current).
    pub endpoints: Arc<OriginEndpoints>,
    /// An origin given as an IP has one endpoint, fixed for this snapshot: the
    /// request path reads it here rather than through the swap the resolver needs.
    fixed: Option<[Arc<Endpoint>; 1]>,
    /// `max_inflight` and `max_rps`, compiled.
    pub capacity: Capacity,
}

/// What a request asks of an origin's capacity: the region's dial and degraded
/// factor scale it, the route's priority says how much of it the request may use.
#[derive(Debug, Clone, Copy)]
pub struct Asking {
    pub dial: u32,
    pub degraded_factor: f64,
    pub priority: Priority,
    pub now_ms: u64,
}

impl OriginEntry {
    /// Calls `f` with the origin's endpoints now (sorted by address).
    pub fn with_endpoints<R>(&self, f: impl FnOnce(&[Arc<Endpoint>]) -> R) -> R {
        match &self.fixed {
            Some(one) => f(one),
            None => f(&self.endpoints.load()),
        }
    }

    /// Endpoint `i` of the origin now, if it still has that many.
    pub fn endpoint(&self, i: usize) -> Option<Arc<Endpoint>> {
        self.with_endpoints(|set| set.get(i).cloned())
    }

    /// Its roll-up of its endpoints at `now_ms`.
    pub fn reading(&self, now_ms: u64) -> OriginReading {
        self.with_endpoints(|set| roll_up_endpoints(set, now_ms))
    }

    /// Its `max_inflight` before dial, degraded factor and priority: the
    /// configured number, or an adaptive limit's value now.
    pub fn max_inflight_now(&self) -> Option<u32> {
        Some(match self.capacity.max_inflight? {
            MaxInflight::Fixed(n) => n,
            MaxInflight::Adaptive => self.endpoints.adaptive.limit(),
        })
    }

    /// The in-flight limit a request sees now, given the origin's endpoints
    /// `set`; None when it has none.
    pub fn inflight_limit(&self, set: &[Arc<Endpoint>], ask: &Asking) -> Option<u32> {
        let max = self.max_inflight_now()?;
        let degraded = roll_up_endpoints(set, ask.now_ms).degraded;
        let factor = degraded.then_some(ask.degraded_factor);
        Some(capacity::inflight_limit(
            max,
            ask.dial,
            factor,
            ask.priority,
        ))
    }

    /// Whether a request finds room here now (taking none): fewer requests in
    /// flight than its limit, and its rate not spent. Always, without limits.
    pub fn has_room(&self, set: &[Arc<Endpoint>], ask: &Asking) -> bool {
        if let Some(limit) = self.inflight_limit(set, ask) {
            if in_flight(set) >= limit {
                return false;
            }
        }
        self.capacity.rate.is_none_or(|rate| {
            let tat = self.endpoints.rate_tat_us.load(Relaxed);
            rate.admit(tat, monotonic_us(), ask.priority).is_some()
        })
    }

    /// Takes a place here for a request going to `endpoint`: raises the
    /// endpoint's in-flight count (lowered when the request's record ends) and,
    /// at an origin with limits, takes it back and answers false when there is
    /// no room after all (another request took the last place since the walk
    /// looked). The count is raised before it is checked, so concurrent
    /// requests can never all pass the check and overshoot together.
    pub fn admit(&self, endpoint: &Endpoint, ask: &Asking) -> bool {
        let count = &endpoint.health.outstanding;
        if !self.capacity.limited() {
            count.fetch_add(1, Relaxed);
            return true;
        }
        count.fetch_add(1, SeqCst);
        let room = self.with_endpoints(|set| {
            self.inflight_limit(set, ask)
                .is_none_or(|limit| in_flight(set) <= limit)
        }) && self.capacity.rate.is_none_or(|rate| {
            let cell = &self.endpoints.rate_tat_us;
            let now = monotonic_us();
            let mut tat = cell.load(Relaxed);
            loop {
                let Some(next) = rate.admit(tat, now, ask.priority) else {
                    return false;
                };
                match cell.compare_exchange_weak(tat, next, Relaxed, Relaxed) {
                    Ok(_) => return true,
                    Err(seen) => tat = seen,
                }
            }
        });
        if !room {
            count.fetch_sub(1, SeqCst);
        }
        room
    }
}

/// Requests in flight over an origin's endpoints (read in the order `admit` writes).
pub fn in_flight(set: &[Arc<Endpoint>]) -> u32 {
    set.iter().map(|e| e.health.outstanding.load(SeqCst)).sum()
}

/// One region of the snapshot.
#[derive(Debug)]
pub struct RegionEntry {
    pub name: String,
    /// The name as a header value (`X-Meridian-Region`, `X-Meridian-Edge-Region`),
    /// made once rather than per request.
    pub name_header: http::HeaderValue,
    pub location: Option<(f64, f64)>,
    pub weight: u32,
    /// Percent kept, 0..=100.
    pub dial: u32,
    pub origins: Vec<OriginEntry>,
    pub state: Arc<RegionState>,
}

impl RegionEntry {
    /// Its configured weight after the dial and what its health leaves of its
    /// share (`status`, from a health view).
    pub fn effective_weight(
        &self,
        status: &crate::core::health::RegionStatus,
        degraded_factor: f64,
    ) -> f64 {
        f64::from(self.weight) * f64::from(self.dial) / 100.0 * status.share_factor(degraded_factor)
    }

    /// The largest replication lag an eligible endpoint of the region reports (ms).
    pub fn replication_lag_ms(&self, now_ms: u64) -> Option<u32> {
        self.origins
            .iter()
            .filter_map(|o| o.endpoints.replication_lag_ms(now_ms))
            .max()
    }
}

/// A compiled residency group.
#[derive(Debug)]
pub struct ResidencyGroup {
    pub name: String,
    pub countries: Vec<Country>,
    pub continents: Vec<Continent>,
    pub regions: RegionSet,
    pub write_region: Option<RegionIdx>,
    pub reject: bool,
}

impl ResidencyGroup {
    pub fn matches(&self, country: Option<Country>, continent: Option<Continent>) -> bool {
        country.is_some_and(|c| self.countries.contains(&c))
            || continent.is_some_and(|c| self.continents.contains(&c))
    }
}

/// How long a write pins the client's reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    Fixed(Duration),
    /// Largest reported replication lag + margin, within [margin, max].
    Auto {
        margin: Duration,
        max: Duration,
    },
}

/// A compiled route.
#[derive(Debug)]
pub struct Route {
    /// Lower-cased host to match exactly; None = any.
    pub host: Option<String>,
    pub path_prefix: String,
    pub writes_to_write_region: bool,
    pub read_your_writes: Option<Window>,
    pub steering: Steering,
    pub affinity: bool,
    /// `limits.max_body` in bytes.
    pub max_body: Option<u64>,
    /// Who is shed first when capacity runs out.
    pub priority: Priority,
    /// `rate_limit`, with its buckets.
    pub rate_limit: Option<RouteLimit>,
}

impl Route {
    pub fn matches(&self, host: &str, path: &str) -> bool {
        self.host
            .as_deref()
            .is_none_or(|h| host.eq_ignore_ascii_case(h))
            && path.starts_with(&self.path_prefix)
    }
}

/// A compiled gradual shift.
#[derive(Debug)]
pub struct Shift {
    pub name: String,
    pub from: RegionIdx,
    pub to: RegionIdx,
    /// Final fraction 0..=1.
    pub fraction: f64,
    pub start_ms: u64,
    pub ramp_ms: u64,
    /// `abort_if`: (error ratio above which, over how many ms) the shift aborts.
    pub abort_if: Option<(f64, u64)>,
    pub state: Arc<ShiftState>,
}

impl Shift {
    /// Fraction of `from`'s traffic moved now: [`Shift::fraction_at`], or 0 once
    /// its guard aborted it.
    pub fn progress(&self, now_ms: u64) -> f64 {
        if self.state.aborted.load(Relaxed) {
            0.0
        } else {
            self.fraction_at(now_ms)
        }
    }

    /// Fraction of `from`'s traffic moved at wall-clock `now_ms`: 0 before start,
    /// linear over the ramp, then the final fraction.
    pub fn fraction_at(&self, now_ms: u64) -> f64 {
        if now_ms < self.start_ms {
            0.0
        } else if self.ramp_ms == 0 || now_ms >= self.start_ms + self.ramp_ms {
            self.fraction
        } else {
            self.fraction * (now_ms - self.start_ms) as f64 / self.ramp_ms as f64
        }
    }
}

/// The immutable, compiled config.
#[derive(Debug)]
pub struct Snapshot {
    pub sha256: String,
    pub loaded_at: SystemTime,
    pub local_region: RegionIdx,
    pub regions: Vec<RegionEntry>,
    pub write_region: Option<RegionIdx>,
    pub geo_countries: HashMap<Country, RegionIdx>,
    pub geo_continents: Vec<(Continent, RegionIdx)>,
    pub geo_default: RegionIdx,
    pub residency: Vec<ResidencyGroup>,
    pub routes: Vec<Route>,
    pub shifts: Vec<Shift>,
    pub degraded_factor: f64,
    pub panic_threshold: f64,
    pub min_healthy_origins: u32,
    /// X-Forwarded-For is believed only from these peers.
    pub trusted_proxies: Vec<Cidr>,
    /// Opened once per snapshot; a reload reopens it, so a replaced file is picked up.
    pub geo: Option<Arc<GeoDb>>,
    /// Signs and verifies write tokens and affinity cookies.
    pub keys: Arc<KeyRing>,
    /// Per listener (config order): its certificates, if it terminates TLS.
    pub listener_certs: Vec<Option<crate::proxy::tls::CertSet>>,
    pub data_path: DataPath,
    /// Passive outlier detection, compiled.
    pub outlier: OutlierPolicy,
    /// The listeners (config order) and the admin listener; a change to them
    /// takes a restart.
    pub listeners: Vec<ListenerSpec>,
    pub admin: AdminSpec,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Active probes' settings (read by the probers, not by requests).
    pub probes: config::Health,
    /// Route 53 reconciliation, when configured (read by the reconciler).
    pub dns: Option<config::Dns>,
    /// How origin names are looked up (read by the resolver service).
    pub resolver: ResolverSpec,
    /// Every TLS file the config names (listeners' and origins'), resolved: a
    /// change to one reloads.
    pub tls_files: Vec<PathBuf>,
    /// How long a request waits for room, and how many wait at once.
    pub overload: Overload,
}

/// `overload`, compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overload {
    pub queue_timeout: Duration,
    pub max_queued: u32,
}

/// One proxy listener, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerSpec {
    pub address: SocketAddr,
    /// Accepts a PROXY protocol header first.
    pub proxy_protocol: bool,
    /// Client connections served at once (`listeners[].max_connections`).
    pub max_connections: Option<u32>,
    /// Certificate and key files, resolved against the config file; empty when
    /// the listener speaks plain HTTP.
    pub certificates: Vec<(PathBuf, PathBuf)>,
}

impl ListenerSpec {
    pub fn tls(&self) -> bool {
        !self.certificates.is_empty()
    }
}

/// `resolver`, compiled: where names are looked up and how long an answer holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverSpec {
    /// Empty: the system's name servers (/etc/resolv.conf).
    pub nameservers: Vec<SocketAddr>,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
}

impl ResolverSpec {
    /// `resolver` with its name servers as validation parsed them.
    pub fn compile(loaded: &Loaded) -> ResolverSpec {
        let r = &loaded.config.resolver;
        ResolverSpec {
            nameservers: loaded.resolved.nameservers.clone(),
            min_ttl: r.min_ttl.get(),
            max_ttl: r.max_ttl.get(),
        }
    }
}

/// The admin listener, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct AdminSpec {
    pub address: SocketAddr,
    /// Bearer token file for write endpoints, resolved; None = writes disabled.
    pub token_file: Option<PathBuf>,
    /// How many events the journal keeps.
    pub event_journal_size: usize,
}

/// What the data path reads per request, compiled from the file's settings:
/// plain durations and numbers, nothing to parse or look up per request.
#[derive(Debug, Clone)]
pub struct DataPath {
    pub retries: RetryPolicy,
    /// Upstream: connect, time to the answer's header (then between its body's
    /// frames), how long a pooled connection may sit unused.
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub pool_idle: Duration,
    /// Clients: the longest wait for the next bytes of a request body.
    pub client_body_timeout: Duration,
    /// Clients: header fields and bytes of a request head (`limits`).
    pub max_headers: usize,
    pub max_header_bytes: usize,
    /// Clients: HTTP/2 settings (`http2`).
    pub h2_max_concurrent_streams: u32,
    pub h2_keep_alive_interval: Duration,
    pub h2_keep_alive_timeout: Duration,
    /// Clients: a request header from its first byte; silence between requests.
    pub request_header_timeout: Duration,
    pub client_idle_timeout: Duration,
    /// Fraction of requests logged (0 = the access log is off).
    pub access_log_sample: f64,
    /// `X-Meridian-Decision` on answers.
    pub debug_headers: bool,
}

/// `routing.retries`, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// Answers with these statuses may be retried.
    pub statuses: Vec<u16>,
    /// Any method may be retried, not only idempotent ones.
    pub all_methods: bool,
    pub budget_ratio: f64,
    pub budget_min_per_second: u32,
}

impl DataPath {
    fn compile(c: &config::Config) -> DataPath {
        let r = &c.routing.retries;
        let t = &c.timeouts;
        DataPath {
            retries: RetryPolicy {
                attempts: r.attempts,
                statuses: r
                    .on
                    .iter()
                    .filter_map(|o| match o {
                        config::RetryOn::Status(s) => Some(*s),
                        config::RetryOn::ConnectFailure => None,
                    })
                    .collect(),
                all_methods: r.methods == config::RetryMethods::All,
                budget_ratio: r.budget.ratio,
                budget_min_per_second: r.budget.min_per_second,
            },
            connect_timeout: t.connect.get(),
            read_timeout: t.read.get(),
            pool_idle: t.idle.get(),
            client_body_timeout: t.client_body.get(),
            max_headers: c.limits.max_headers,
            max_header_bytes: c.limits.max_header_bytes.0 as usize,
            h2_max_concurrent_streams: c.http2.max_concurrent_streams,
            h2_keep_alive_interval: c.http2.keep_alive_interval.get(),
            h2_keep_alive_timeout: c.http2.keep_alive_timeout.get(),
            request_header_timeout: t.request_header.get(),
            client_idle_timeout: t.client_idle.get(),
            access_log_sample: if c.access_log.enabled {
                c.access_log.sample
            } else {
                0.0
            },
            debug_headers: c.debug_headers,
        }
    }
}

/// A snapshot that could not be built (a name that does not resolve, ...).
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct BuildError {
    pub path: String,
    pub message: String,
}

impl Snapshot {
    /// Every region's health rolled up from its origins' atomics, and every
    /// shift's abort flag, read once at `now_ms`: a request decides from this one
    /// consistent reading.
    pub fn health_view(&self, now_ms: u64) -> HealthView {
        let mut view = HealthView::new(self.regions.iter().map(|r| {
            roll_up(
                r.origins.iter().map(|o| o.reading(now_ms)),
                self.min_healthy_origins,
                r.state.drained.load(Relaxed),
            )
        }));
        for (i, s) in self.shifts.iter().enumerate() {
            if s.state.aborted.load(Relaxed) {
                view.abort_shift(i);
            }
        }
        view
    }

    /// Compiles a validated config. Health entries come from `registry`, so
    /// origins that stay across a reload keep their state.
    pub fn build(loaded: &Loaded, registry: &HealthRegistry) -> Result<Snapshot, Vec<BuildError>> {
        let c = &loaded.config;
        let mut errors = Vec::new();
        let refs = &loaded.resolved;
        let mut regions = Vec::with_capacity(c.regions.len());
        let resolved_regions = refs.origins.iter().zip(&refs.region_headers);
        for ((name, r), (addrs, name_header)) in c.regions.iter().zip(resolved_regions) {
            let mut origins = Vec::new();
            for (i, (o, addr)) in r.origins.iter().zip(addrs).enumerate() {
                let target = Target::new(&addr.host, addr.port);
                let tls = o.tls.as_ref().and_then(|t| {
                    let file = |p: &Option<String>| p.as_deref().map(|p| loaded.resolve(p));
                    let (ca, cert, key) =
                        (file(&t.ca_file), file(&t.client_cert), file(&t.client_key));
                    let client = cert.as_deref().zip(key.as_deref());
                    crate::proxy::tls::origin_tls(ca.as_deref(), client, t.verify)
                        .map_err(|e| {
                            errors.push(BuildError {
                                path: format!("regions.{name}.origins[{i}].tls"),
                                message: e.to_string(),
                            })
                        })
                        .ok()
                });
                let key = format!("{name}/{}", o.address);
                let sni = o
                    .tls
                    .as_ref()
                    .and_then(|t| t.sni.clone())
                    .or_else(|| o.host_header.clone())
                    .unwrap_or_else(|| addr.host.clone());
                // Pools are keyed by everything a connection depends on, so a
                // reload that changes any of it starts with fresh connections.
                let identity = format!("{key}|{:?}|{:?}|{sni}", o.protocol, o.tls);
                let endpoints = registry.origin_endpoints(&key, &identity, &target);
                let fixed = match target {
                    Target::Ip(_) => endpoints.load().first().cloned().map(|e| [e]),
                    Target::Name { .. } => None,
                };
                origins.push(OriginEntry {
                    endpoints,
                    fixed,
                    protocol: o.protocol,
                    key,
                    address: o.address.clone(),
                    target,
                    tls,
                    sni,
                    host_header: addr.host_header.clone(),
                    capacity: Capacity::compile(o.max_inflight, o.max_rps),
                });
            }
            regions.push(RegionEntry {
                name: name.clone(),
                name_header: name_header.clone(),
                location: r.location.map(|l| (l.lat, l.lon)),
                weight: r.weight,
                dial: r.traffic_dial,
                origins,
                state: registry.region(name),
            });
        }
        let local_region = refs.local_region;
        let residency = c
            .routing
            .residency
            .iter()
            .zip(&refs.residency)
            .map(|(g, refs)| ResidencyGroup {
                name: g.name.clone(),
                countries: refs.countries.clone(),
                continents: refs.continents.clone(),
                regions: refs
                    .regions
                    .iter()
                    .fold(RegionSet::default(), |mut set, r| {
                        set.insert(*r);
                        set
                    }),
                write_region: refs.write_region,
                reject: g.when_unavailable == WhenUnavailable::Reject,
            })
            .collect();
        let mut shifts = Vec::new();
        for (s, &(from, to)) in c.shifts.iter().zip(&refs.shifts) {
            let fraction = s.percent / 100.0;
            let start_ms = shift_start_ms(s);
            let ramp_ms = s.ramp.map_or(0, |r| r.get().as_millis() as u64);
            let abort_if = s
                .abort_if
                .as_ref()
                .map(|a| (a.error_ratio_above, a.over.get().as_millis() as u64));
            // Its identity is its whole definition, by region name (indexes move
            // when regions are added): an edited shift starts afresh, an untouched
            // one keeps its abort across reloads.
            let identity = format!(
                "{}/{}/{}/{fraction}/{start_ms}/{ramp_ms}/{}",
                s.name,
                s.from,
                s.to,
                abort_if.map_or("-".into(), |(ratio, over)| format!("{ratio}:{over}"))
            );
            shifts.push(Shift {
                name: s.name.clone(),
                from,
                to,
                fraction,
                start_ms,
                ramp_ms,
                abort_if,
                state: registry.shift(&identity),
            });
        }
        let mut routes: Vec<Route> = c
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| compile_route(i, r, c.routing.steering, c.limits.max_body))
            .collect();
        // Requests no route matches get the defaults, so matching always finds one.
        if !routes
            .last()
            .is_some_and(|r| r.host.is_none() && r.path_prefix == "/")
        {
            routes.push(compile_route(
                routes.len(),
                &config::Route::default(),
                c.routing.steering,
                c.limits.max_body,
            ));
        }
        let geo = c.geoip.as_ref().and_then(|g| {
            GeoDb::open_shared(&loaded.resolve(&g.database))
                .map_err(|e| {
                    errors.push(BuildError {
                        path: "geoip.database".into(),
                        message: e.to_string(),
                    })
                })
                .ok()
        });
        let keys = match &c.sessions {
            Some(s) => KeyRing::load(&loaded.resolve(&s.keys_file))
                .map(Arc::new)
                .map_err(|e| {
                    errors.push(BuildError {
                        path: "sessions.keys_file".into(),
                        message: e.to_string(),
                    })
                }),
            None => Ok(process_key()),
        };
        let listeners: Vec<ListenerSpec> = c
            .listeners
            .iter()
            .map(|l| ListenerSpec {
                address: l.address,
                proxy_protocol: l.proxy_protocol,
                max_connections: l.max_connections,
                certificates: l.tls.as_ref().map_or_else(Vec::new, |t| {
                    t.certificates
                        .iter()
                        .map(|p| (loaded.resolve(&p.cert), loaded.resolve(&p.key)))
                        .collect()
                }),
            })
            .collect();
        let listener_certs = listeners
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if !l.tls() {
                    return None;
                }
                let pairs: Vec<_> = l
                    .certificates
                    .iter()
                    .map(|(c, k)| (c.as_path(), k.as_path()))
                    .collect();
                crate::proxy::tls::CertSet::load(&pairs)
                    .map_err(|e| {
                        errors.push(BuildError {
                            path: format!("listeners[{i}].tls.certificates"),
                            message: e.to_string(),
                        })
                    })
                    .ok()
            })
            .collect();
        let (Ok(keys), true) = (keys, errors.is_empty()) else {
            return Err(errors);
        };
        Ok(Snapshot {
            sha256: loaded.sha256.clone(),
            loaded_at: SystemTime::now(),
            local_region,
            regions,
            write_region: refs.write_region,
            geo_countries: refs.geo_countries.iter().copied().collect(),
            geo_continents: refs.geo_continents.clone(),
            geo_default: refs.geo_default.unwrap_or(local_region),
            residency,
            routes,
            shifts,
            degraded_factor: c.health.degraded_weight_factor,
            panic_threshold: c.routing.panic_threshold,
            min_healthy_origins: c.health.min_healthy_origins,
            trusted_proxies: c.client_ip.trusted_proxies.clone(),
            geo,
            keys,
            listener_certs,
            data_path: DataPath::compile(c),
            outlier: OutlierPolicy::compile(&c.outlier_detection),
            admin: AdminSpec {
                address: c.admin.address,
                token_file: c.admin.token_file.as_deref().map(|f| loaded.resolve(f)),
                event_journal_size: c.admin.event_journal_size,
            },
            shutdown_grace: c.shutdown.grace_period.get(),
            probes: c.health.clone(),
            dns: c.dns.clone(),
            resolver: ResolverSpec::compile(loaded),
            tls_files: tls_files(loaded, &listeners),
            overload: Overload {
                queue_timeout: c.overload.queue_timeout.get(),
                max_queued: c.overload.max_queued,
            },
            listeners,
        })
    }

    /// Gives each route whose rate limit `old` had too (the same limit on the
    /// same match) `old`'s buckets: a reload that keeps a limit does not give
    /// every client a full budget again; a changed limit starts full.
    pub fn keep_rate_limits(&mut self, old: &Snapshot) {
        let kept: HashMap<&str, &RouteLimit> = old
            .routes
            .iter()
            .filter_map(|r| r.rate_limit.as_ref())
            .map(|l| (l.identity(), l))
            .collect();
        for limit in self.routes.iter_mut().filter_map(|r| r.rate_limit.as_mut()) {
            if let Some(old) = kept.get(limit.identity()) {
                limit.keep_state_of(old);
            }
        }
    }

    /// Index of the region called `name`.
    pub fn region_idx(&self, name: &str) -> Option<RegionIdx> {
        self.regions.iter().position(|r| r.name == name)
    }

    /// All regions as a set.
    pub fn all_regions(&self) -> RegionSet {
        RegionSet::all(self.regions.len())
    }
}

/// The listeners' certificate files and the origins' CA and client files.
fn tls_files(loaded: &Loaded, listeners: &[ListenerSpec]) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = listeners
        .iter()
        .flat_map(|l| &l.certificates)
        .flat_map(|(cert, key)| [cert.clone(), key.clone()])
        .collect();
    let origin_tls = loaded
        .config
        .regions
        .values()
        .flat_map(|r| &r.origins)
        .filter_map(|o| o.tls.as_ref());
    for t in origin_tls {
        let named = [&t.ca_file, &t.client_cert, &t.client_key];
        files.extend(named.into_iter().flatten().map(|p| loaded.resolve(p)));
    }
    files
}

/// Without `sessions`, tokens are signed with one random key per process: they
/// survive reloads but no other instance verifies them (`meridian check` warns).
fn process_key() -> Arc<KeyRing> {
    static KEY: std::sync::OnceLock<Arc<KeyRing>> = std::sync::OnceLock::new();
    KEY.get_or_init(|| Arc::new(KeyRing::random())).clone()
}

fn compile_route(
    index: usize,
    r: &config::Route,
    default_steering: Steering,
    default_max_body: Option<ByteSize>,
) -> Route {
    let host = r.matches.host.as_ref().map(|h| h.to_ascii_lowercase());
    let path_prefix = r.matches.path_prefix.clone().unwrap_or_else(|| "/".into());
    Route {
        rate_limit: r
            .rate_limit
            .as_ref()
            .map(|l| RouteLimit::compile(index, host.as_deref(), &path_prefix, l)),
        host,
        path_prefix,
        writes_to_write_region: r.writes == Some(Writes::WriteRegion),
        read_your_writes: r.read_your_writes.as_ref().map(|w| match w.window {
            RywWindow::Fixed(d) => Window::Fixed(d.get()),
            RywWindow::Auto => Window::Auto {
                margin: w.margin.get(),
                max: w.max.get(),
            },
        }),
        steering: r.steering.unwrap_or(default_steering),
        affinity: r.affinity == Some(Affinity::Cookie),
        max_body: r.limits.max_body.or(default_max_body).map(|b| b.0),
        priority: r.priority,
    }
}

/// A shift's start in unix ms; a start before 1970 counts as 1970 (already begun).
fn shift_start_ms(s: &config::Shift) -> u64 {
    s.start.unix_millis().max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::RegionSet;

    #[test]
    fn a_region_set_lists_its_members_in_index_order() {
        let s = RegionSet(0b1010_0101 | 1 << 63);
        assert_eq!(s.iter().collect::<Vec<_>>(), [0, 2, 5, 7, 63]);
        assert_eq!(s.iter().len(), s.len());
        assert_eq!(RegionSet::default().iter().count(), 0);
        assert_eq!(RegionSet::all(64).iter().count(), 64);
    }
}
