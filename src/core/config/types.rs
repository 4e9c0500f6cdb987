//! The config file schema: plain serde types that mirror the YAML one to one.
//!
//! Nothing here is validated beyond its shape; `validate` checks meaning and
//! `Snapshot::build` compiles a valid config into the routing table.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Deserialize;

use super::units::{ByteSize, Cidr, Duration, MaxInflight, Percent, Rate};

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The region this instance runs in.
    pub local_region: String,
    /// Proxy listeners; at least one.
    pub listeners: Vec<Listener>,
    /// The admin listener (metrics, health, state, write endpoints).
    pub admin: Admin,
    #[serde(default)]
    pub client_ip: ClientIp,
    /// Absent: every client's country is unknown.
    #[serde(default)]
    pub geoip: Option<GeoIp>,
    /// Where writes go on routes with `writes: write_region`.
    #[serde(default)]
    pub write_region: Option<String>,
    /// Regions by name; iteration order (sorted by name) is the tie-break order.
    pub regions: BTreeMap<String, Region>,
    #[serde(default)]
    pub health: Health,
    #[serde(default)]
    pub outlier_detection: OutlierDetection,
    #[serde(default)]
    pub routing: Routing,
    /// Upstream timeouts, and the client's time to send a request header.
    #[serde(default)]
    pub timeouts: Timeouts,
    /// What a client's request may be: header count and size, body size.
    #[serde(default)]
    pub limits: Limits,
    /// The HTTP/2 settings clients get.
    #[serde(default)]
    pub http2: Http2,
    /// First match wins; none = one default route.
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub shifts: Vec<Shift>,
    #[serde(default)]
    pub sessions: Option<Sessions>,
    #[serde(default)]
    pub dns: Option<Dns>,
    /// How origin names are resolved.
    #[serde(default)]
    pub resolver: Resolver,
    /// Add `X-Meridian-Decision` to responses.
    #[serde(default)]
    pub debug_headers: bool,
    #[serde(default)]
    pub shutdown: Shutdown,
    #[serde(default)]
    pub access_log: AccessLog,
    /// What happens when every region a request may use is at capacity.
    #[serde(default)]
    pub overload: Overload,
}

/// Requests that find no headroom anywhere they may go wait briefly for it,
/// then are shed (503 with `Retry-After`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overload {
    /// How long a request waits for headroom before it is shed (default 50ms).
    #[serde(default = "default_queue_timeout")]
    pub queue_timeout: Duration,
    /// Requests waiting at once at most; more are shed at once (default 1024).
    #[serde(default = "default_max_queued")]
    pub max_queued: u32,
}

impl Default for Overload {
    fn default() -> Self {
        Overload {
            queue_timeout: default_queue_timeout(),
            max_queued: default_max_queued(),
        }
    }
}

fn default_queue_timeout() -> Duration {
    Duration::from_millis(50)
}

fn default_max_queued() -> u32 {
    1024
}

/// Who loses first when there is not room for everyone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Never waits, and stops at 80 % of any origin's limit.
    Sheddable,
    #[default]
    Normal,
    /// Waits twice as long as `overload.queue_timeout`.
    Critical,
}

/// One log line per request (target `meridian::access`, level info).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessLog {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Fraction of requests logged, 0..=1 (for very high rates).
    #[serde(default = "default_sample")]
    pub sample: f64,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            enabled: true,
            sample: default_sample(),
        }
    }
}

fn default_sample() -> f64 {
    1.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub address: SocketAddr,
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// Accept PROXY protocol v1/v2 from a load balancer in front.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Client connections served at once; more wait in the accept queue
    /// until one ends. Default: no cap.
    #[serde(default)]
    pub max_connections: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    pub certificates: Vec<CertPair>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertPair {
    pub cert: String,
    pub key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admin {
    pub address: SocketAddr,
    /// File holding the bearer token for write endpoints; absent = writes disabled.
    #[serde(default)]
    pub token_file: Option<String>,
    /// How many events the journal (`GET /admin/events`) keeps; the oldest go first.
    #[serde(default = "default_event_journal_size")]
    pub event_journal_size: usize,
}

/// Events the journal keeps unless `admin.event_journal_size` says otherwise.
pub const DEFAULT_EVENT_JOURNAL_SIZE: usize = 1_000;

fn default_event_journal_size() -> usize {
    DEFAULT_EVENT_JOURNAL_SIZE
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientIp {
    /// X-Forwarded-For is believed only from these peers.
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoIp {
    /// Path to a MaxMind-format database (relative paths are relative to the config file).
    pub database: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    #[serde(default)]
    pub location: Option<Location>,
    /// Relative share in weighted steering, 0..=1000.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Percent (0..=100) of the traffic this region would get that it keeps.
    #[serde(default = "default_dial")]
    pub traffic_dial: u32,
    pub origins: Vec<Origin>,
}

fn default_weight() -> u32 {
    100
}
fn default_dial() -> u32 {
    100
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Origin {
    /// `host:port`; a name is resolved when the snapshot is built.
    pub address: String,
    #[serde(default)]
    pub tls: Option<OriginTls>,
    /// Host header sent upstream; absent = the client's Host.
    #[serde(default)]
    pub host_header: Option<String>,
    /// What the origin speaks: traffic and probes both use it.
    #[serde(default)]
    pub protocol: OriginProtocol,
    /// Requests in flight it takes at most (over all its addresses), or
    /// `adaptive`: a limit that follows its latency. Absent: no limit.
    #[serde(default)]
    pub max_inflight: Option<MaxInflight>,
    /// Requests per second it is sent at most (over all its addresses).
    #[serde(default)]
    pub max_rps: Option<u32>,
}

/// The HTTP version spoken to an origin. The gateway does not negotiate it: an
/// origin behind an ALB or a gRPC server knows what it serves, and guessing (ALPN
/// fallback, upgrade dances) would hide a misconfiguration until traffic meets it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OriginProtocol {
    /// HTTP/1.1, over TLS when the origin has `tls` (the default).
    #[default]
    Http1,
    /// HTTP/2 over TLS, ALPN `h2`; needs the origin's `tls`.
    H2,
    /// HTTP/2 over cleartext TCP with prior knowledge (gRPC servers without TLS);
    /// must not have `tls`.
    H2c,
}

impl OriginProtocol {
    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            OriginProtocol::Http1 => "http1",
            OriginProtocol::H2 => "h2",
            OriginProtocol::H2c => "h2c",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginTls {
    #[serde(default)]
    pub sni: Option<String>,
    #[serde(default)]
    pub ca_file: Option<String>,
    #[serde(default = "yes")]
    pub verify: bool,
    /// Client certificate (PEM chain) and key for origins that require mTLS.
    #[serde(default)]
    pub client_cert: Option<String>,
    #[serde(default)]
    pub client_key: Option<String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    #[serde(default = "default_health_path")]
    pub path: String,
    #[serde(default = "default_interval")]
    pub interval: Duration,
    #[serde(default = "default_probe_timeout")]
    pub timeout: Duration,
    #[serde(default = "default_jitter")]
    pub jitter: Percent,
    #[serde(default = "default_healthy_threshold")]
    pub healthy_threshold: u32,
    #[serde(default = "default_unhealthy_threshold")]
    pub unhealthy_threshold: u32,
    #[serde(default = "default_expect_status")]
    pub expect_status: Vec<u16>,
    #[serde(default = "yes")]
    pub deep: bool,
    #[serde(default = "default_degraded_factor")]
    pub degraded_weight_factor: f64,
    #[serde(default = "default_min_healthy")]
    pub min_healthy_origins: u32,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            path: default_health_path(),
            interval: default_interval(),
            timeout: default_probe_timeout(),
            jitter: default_jitter(),
            healthy_threshold: default_healthy_threshold(),
            unhealthy_threshold: default_unhealthy_threshold(),
            expect_status: default_expect_status(),
            deep: true,
            degraded_weight_factor: default_degraded_factor(),
            min_healthy_origins: default_min_healthy(),
        }
    }
}

fn default_health_path() -> String {
    "/health".into()
}
fn default_interval() -> Duration {
    Duration::from_secs(5)
}
fn default_probe_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_jitter() -> Percent {
    Percent(10.0)
}
fn default_healthy_threshold() -> u32 {
    2
}
fn default_unhealthy_threshold() -> u32 {
    3
}
fn default_expect_status() -> Vec<u16> {
    vec![200]
}
fn default_degraded_factor() -> f64 {
    0.5
}
fn default_min_healthy() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierDetection {
    #[serde(default = "default_consecutive_failures")]
    pub consecutive_failures: u32,
    #[serde(default = "default_base_ejection")]
    pub base_ejection: Duration,
    #[serde(default = "default_max_ejection")]
    pub max_ejection: Duration,
    #[serde(default = "default_max_ejected_percent")]
    pub max_ejected_percent: u32,
}

impl Default for OutlierDetection {
    fn default() -> Self {
        OutlierDetection {
            consecutive_failures: default_consecutive_failures(),
            base_ejection: default_base_ejection(),
            max_ejection: default_max_ejection(),
            max_ejected_percent: default_max_ejected_percent(),
        }
    }
}

fn default_consecutive_failures() -> u32 {
    5
}
fn default_base_ejection() -> Duration {
    Duration::from_secs(30)
}
fn default_max_ejection() -> Duration {
    Duration::from_secs(300)
}
fn default_max_ejected_percent() -> u32 {
    50
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Steering {
    Geo,
    Latency,
    Proximity,
    Weighted,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    #[serde(default = "default_steering")]
    pub steering: Steering,
    #[serde(default)]
    pub geo: GeoMap,
    #[serde(default)]
    pub residency: Vec<Residency>,
    #[serde(default)]
    pub retries: Retries,
    /// Fraction (0..=1) of healthy candidates below which panic mode starts; 0 = only
    /// when none is healthy.
    #[serde(default)]
    pub panic_threshold: f64,
}

impl Default for Routing {
    fn default() -> Self {
        Routing {
            steering: default_steering(),
            geo: GeoMap::default(),
            residency: Vec::new(),
            retries: Retries::default(),
            panic_threshold: 0.0,
        }
    }
}

fn default_steering() -> Steering {
    Steering::Geo
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoMap {
    /// ISO 3166-1 alpha-2 country code -> region.
    #[serde(default)]
    pub countries: BTreeMap<String, String>,
    /// Two-letter continent code (AF AN AS EU NA OC SA) -> region.
    #[serde(default)]
    pub continents: BTreeMap<String, String>,
    /// Region for clients matching neither; absent = the local region.
    #[serde(default)]
    pub default: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenUnavailable {
    Reject,
    AllowOutside,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Residency {
    pub name: String,
    #[serde(default)]
    pub continents: Vec<String>,
    #[serde(default)]
    pub countries: Vec<String>,
    pub regions: Vec<String>,
    #[serde(default)]
    pub write_region: Option<String>,
    #[serde(default = "default_when_unavailable")]
    pub when_unavailable: WhenUnavailable,
}

fn default_when_unavailable() -> WhenUnavailable {
    WhenUnavailable::Reject
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetryMethods {
    Idempotent,
    All,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retries {
    /// Total tries including the first.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// `connect_failure` and/or HTTP status codes.
    #[serde(default = "default_retry_on")]
    pub on: Vec<RetryOn>,
    #[serde(default = "default_retry_methods")]
    pub methods: RetryMethods,
    /// Retries may add at most this share of the request rate.
    #[serde(default)]
    pub budget: RetryBudgetConfig,
}

/// `ratio` of the request rate plus `min_per_second` (Finagle/linkerd retry budgets).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryBudgetConfig {
    #[serde(default = "default_budget_ratio")]
    pub ratio: f64,
    #[serde(default = "default_budget_min")]
    pub min_per_second: u32,
}

impl Default for RetryBudgetConfig {
    fn default() -> Self {
        RetryBudgetConfig {
            ratio: default_budget_ratio(),
            min_per_second: default_budget_min(),
        }
    }
}

fn default_budget_ratio() -> f64 {
    0.2
}
fn default_budget_min() -> u32 {
    10
}

impl Default for Retries {
    fn default() -> Self {
        Retries {
            attempts: default_attempts(),
            on: default_retry_on(),
            methods: default_retry_methods(),
            budget: RetryBudgetConfig::default(),
        }
    }
}

fn default_attempts() -> u32 {
    2
}
fn default_retry_on() -> Vec<RetryOn> {
    vec![
        RetryOn::ConnectFailure,
        RetryOn::Status(502),
        RetryOn::Status(503),
        RetryOn::Status(504),
    ]
}
fn default_retry_methods() -> RetryMethods {
    RetryMethods::Idempotent
}

/// One retry condition: `connect_failure` or a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum RetryOn {
    Status(u16),
    #[serde(with = "connect_failure")]
    ConnectFailure,
}

mod connect_failure {
    use serde::{de::Error, Deserialize, Deserializer};
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
        let s = String::deserialize(d)?;
        if s == "connect_failure" {
            Ok(())
        } else {
            Err(D::Error::custom(format!(
                "expected `connect_failure` or a status code, found `{s}`"
            )))
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    #[serde(default = "default_connect_timeout")]
    pub connect: Duration,
    /// Idle time allowed between reads from the origin.
    #[serde(default = "default_read_timeout")]
    pub read: Duration,
    /// How long an unused pooled upstream connection is kept.
    #[serde(default = "default_idle_timeout")]
    pub idle: Duration,
    /// How long a client may take to send a whole request header, from its first
    /// byte (slowloris): hyper's `header_read_timeout`, which on a kept-alive
    /// connection starts with the next request's first byte (docs/hyper patch
    /// 0002; `client_idle` times the silence before it).
    #[serde(default = "default_request_header_timeout")]
    pub request_header: Duration,
    /// How long a kept-alive client may stay silent between requests.
    #[serde(default = "default_client_idle_timeout")]
    pub client_idle: Duration,
    /// How long meridian waits for the next bytes of a request body it is
    /// forwarding: past it, the request is a 408 (the client's fault).
    #[serde(default = "default_client_body_timeout")]
    pub client_body: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: default_connect_timeout(),
            read: default_read_timeout(),
            idle: default_idle_timeout(),
            request_header: default_request_header_timeout(),
            client_idle: default_client_idle_timeout(),
            client_body: default_client_body_timeout(),
        }
    }
}

fn default_client_body_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_connect_timeout() -> Duration {
    Duration::from_secs(2)
}
fn default_read_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(60)
}
fn default_request_header_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_client_idle_timeout() -> Duration {
    Duration::from_secs(60)
}

/// Origin names (an ALB's) are looked up in the background: every A and AAAA
/// record, again when the answer's TTL runs out, held within [min_ttl, max_ttl].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolver {
    /// `IP:PORT` of the name servers to ask; empty = the system's (/etc/resolv.conf).
    #[serde(default)]
    pub nameservers: Vec<String>,
    /// An answer is asked again no sooner than this, whatever its TTL (default 1s).
    #[serde(default = "default_min_ttl")]
    pub min_ttl: Duration,
    /// And no later than this (default 60s, an ALB's own TTL).
    #[serde(default = "default_max_ttl")]
    pub max_ttl: Duration,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver {
            nameservers: Vec::new(),
            min_ttl: default_min_ttl(),
            max_ttl: default_max_ttl(),
        }
    }
}

fn default_min_ttl() -> Duration {
    Duration::from_secs(1)
}

fn default_max_ttl() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shutdown {
    /// How long in-flight requests may take to finish after SIGTERM.
    #[serde(default = "default_grace")]
    pub grace_period: Duration,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            grace_period: default_grace(),
        }
    }
}

fn default_grace() -> Duration {
    Duration::from_secs(5)
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub path_prefix: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Writes {
    /// Writes route like reads.
    Any,
    /// POST/PUT/PATCH/DELETE go to the write region.
    WriteRegion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Affinity {
    None,
    Cookie,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    #[serde(default, rename = "match")]
    pub matches: RouteMatch,
    #[serde(default)]
    pub writes: Option<Writes>,
    #[serde(default)]
    pub read_your_writes: Option<ReadYourWrites>,
    #[serde(default)]
    pub steering: Option<Steering>,
    #[serde(default)]
    pub affinity: Option<Affinity>,
    #[serde(default)]
    pub limits: RouteLimits,
    /// Who is shed first when capacity runs out (default `normal`).
    #[serde(default)]
    pub priority: Priority,
    /// A token bucket per client (or country, or header value) on this route,
    /// per meridian instance; absent = no limit.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

/// `rate_limit` of a route: over it, a request is answered 429 by the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// What one bucket is for.
    pub key: RateLimitKey,
    /// The sustained rate: `100/s`, `600/m`, `1000/h`.
    pub rate: Rate,
    /// Requests a full bucket admits at once; default: the rate per second,
    /// rounded up (`100/s` → 100, `30/m` → 1).
    #[serde(default)]
    pub burst: Option<u32>,
    /// Which answers carry `RateLimit-Policy` and `RateLimit`.
    #[serde(default)]
    pub headers: RateLimitHeaders,
}

/// `rate_limit.headers`: the 429s only (the default), or every answer of the
/// route. On every answer they cost about 7 % more instructions per request
/// (two values made and sent each time; `loadtest/RESULTS.md`), so a client
/// that wants to pace itself before it is refused is asked for, not assumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitHeaders {
    #[default]
    Limited,
    Always,
}

impl RateLimit {
    /// `burst`, or its default.
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or_else(|| self.rate.per_second_ceil())
    }
}

/// `rate_limit.key`: `client_ip`, `country` or `header:NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateLimitKey {
    /// The client's address as meridian works it out (trusted X-Forwarded-For,
    /// PROXY protocol).
    ClientIp,
    /// The GeoIP country; every client of unknown country shares one bucket.
    Country,
    /// The value of this request header (lower-case name); a request without
    /// it is keyed by its client address.
    Header(String),
}

impl std::str::FromStr for RateLimitKey {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "client_ip" => Ok(RateLimitKey::ClientIp),
            "country" => Ok(RateLimitKey::Country),
            other => match other.strip_prefix("header:").map(str::trim) {
                Some(name) if http::HeaderName::from_bytes(name.as_bytes()).is_ok() => {
                    Ok(RateLimitKey::Header(name.to_ascii_lowercase()))
                }
                Some(name) => Err(format!("`{name}` is not a valid header name")),
                None => Err(format!(
                    "expected `client_ip`, `country` or `header:NAME`, found `{other}`"
                )),
            },
        }
    }
}

impl std::fmt::Display for RateLimitKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RateLimitKey::ClientIp => f.write_str("client_ip"),
            RateLimitKey::Country => f.write_str("country"),
            RateLimitKey::Header(name) => write!(f, "header:{name}"),
        }
    }
}

impl<'de> Deserialize<'de> for RateLimitKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What a route accepts of a request (over the top-level `limits`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteLimits {
    /// The largest request body on this route; default: `limits.max_body`.
    #[serde(default)]
    pub max_body: Option<ByteSize>,
}

/// What any client request may be.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// The largest request body: a larger one is a 413 before the origin has
    /// read more than this. Default: none (bodies stream in bounded memory, so
    /// size costs meridian nothing; the application knows what it accepts).
    #[serde(default)]
    pub max_body: Option<ByteSize>,
    /// Header fields in one HTTP/1 request: more is a 431.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// Bytes of a request's head: more is a 431 (HTTP/1; also hyper's read
    /// buffer per connection), or for HTTP/2 the header list size announced.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: ByteSize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: None,
            max_headers: default_max_headers(),
            max_header_bytes: default_max_header_bytes(),
        }
    }
}

fn default_max_headers() -> usize {
    100
}
fn default_max_header_bytes() -> ByteSize {
    ByteSize(64 * 1024)
}

/// The HTTP/2 settings clients get.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http2 {
    /// Streams one client connection may have open at once.
    #[serde(default = "default_max_concurrent_streams")]
    pub max_concurrent_streams: u32,
    /// A client connection silent this long is sent a PING...
    #[serde(default = "default_h2_keep_alive_interval")]
    pub keep_alive_interval: Duration,
    /// ...and closed when the PING is not answered within this.
    #[serde(default = "default_h2_keep_alive_timeout")]
    pub keep_alive_timeout: Duration,
}

impl Default for Http2 {
    fn default() -> Self {
        Http2 {
            max_concurrent_streams: default_max_concurrent_streams(),
            keep_alive_interval: default_h2_keep_alive_interval(),
            keep_alive_timeout: default_h2_keep_alive_timeout(),
        }
    }
}

fn default_max_concurrent_streams() -> u32 {
    100
}
fn default_h2_keep_alive_interval() -> Duration {
    Duration::from_secs(60)
}
fn default_h2_keep_alive_timeout() -> Duration {
    Duration::from_secs(20)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadYourWrites {
    /// `auto` or a fixed duration.
    pub window: RywWindow,
    #[serde(default = "default_margin")]
    pub margin: Duration,
    #[serde(default = "default_ryw_max")]
    pub max: Duration,
}

fn default_margin() -> Duration {
    Duration::from_millis(500)
}
fn default_ryw_max() -> Duration {
    Duration::from_secs(10)
}

/// `auto` (from measured replication lag) or a fixed duration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RywWindow {
    Auto,
    Fixed(Duration),
}

impl<'de> Deserialize<'de> for RywWindow {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == "auto" {
            return Ok(RywWindow::Auto);
        }
        s.parse::<Duration>()
            .map(RywWindow::Fixed)
            .map_err(|e| serde::de::Error::custom(format!("expected `auto` or {e}")))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    pub name: String,
    pub from: String,
    pub to: String,
    /// Final percent (0..=100) of `from`'s traffic moved to `to`.
    pub percent: f64,
    /// RFC 3339 timestamp.
    pub start: super::units::Timestamp,
    #[serde(default)]
    pub ramp: Option<Duration>,
    #[serde(default)]
    pub abort_if: Option<AbortIf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AbortIf {
    pub error_ratio_above: f64,
    pub over: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sessions {
    /// HMAC keys, one per line as `id:base64`; the first signs, all verify.
    pub keys_file: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    #[serde(default)]
    pub enabled: bool,
    pub route53: Route53,
    #[serde(default = "default_dns_interval")]
    pub interval: Duration,
    #[serde(default = "default_hold_down")]
    pub hold_down: Duration,
    #[serde(default)]
    pub dry_run: bool,
    /// Wait (up to 30 s) for each change to be INSYNC before the next sync.
    #[serde(default)]
    pub wait_insync: bool,
}

fn default_dns_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_hold_down() -> Duration {
    Duration::from_secs(60)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route53 {
    pub hosted_zone_id: String,
    pub record_name: String,
    #[serde(default = "default_record_type")]
    pub record_type: String,
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    #[serde(default)]
    pub endpoint_url: Option<String>,
    pub records: BTreeMap<String, DnsRecord>,
}

fn default_record_type() -> String {
    "A".into()
}
fn default_ttl() -> u32 {
    60
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsRecord {
    pub set_identifier: String,
    pub weight: u32,
    #[serde(default)]
    pub alias: Option<DnsAlias>,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub health_check_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsAlias {
    pub dns_name: String,
    pub hosted_zone_id: String,
    #[serde(default = "yes")]
    pub evaluate_target_health: bool,
}
