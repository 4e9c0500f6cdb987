//! Semantic checks after parsing: everything the types cannot say. Every
//! problem is reported, each with the dotted path of the field it is about.

use std::collections::{BTreeMap, HashSet};

use http::HeaderValue;

use super::resolved::{OriginAddress, RegionIdx, ResidencyRefs, Resolved};
use super::types::*;
use super::units::Duration;
use crate::request::geo::{Continent, Country};

/// One problem: field path and message. `warning` ones do not stop the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    pub warning: bool,
}

struct Check<'c> {
    regions: &'c BTreeMap<String, Region>,
    problems: Vec<Problem>,
}

impl Check<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
            warning: false,
        });
    }
    fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
            warning: true,
        });
    }
    /// The index of the region called `name`; an error when there is none (and
    /// then 0, which goes nowhere: a config with errors is not compiled).
    fn region(&mut self, path: impl Into<String>, name: &str) -> RegionIdx {
        if let Some(i) = self.regions.keys().position(|n| n == name) {
            return i;
        }
        let known: Vec<&str> = self.regions.keys().map(String::as_str).collect();
        self.error(
            path,
            format!(
                "unknown region `{name}` (regions are: {})",
                known.join(", ")
            ),
        );
        0
    }
    /// `code` as a country; an error when it is not an upper-case ISO code.
    fn country(&mut self, path: impl Into<String>, code: &str) -> Option<Country> {
        let country = Country::parse(code).filter(|c| c.as_str() == code);
        if country.is_none() {
            self.error(
                path,
                format!("`{code}` is not an upper-case ISO 3166-1 alpha-2 country code"),
            );
        }
        country
    }
    /// `code` as a continent; an error when it is not one.
    fn continent(&mut self, path: impl Into<String>, code: &str) -> Option<Continent> {
        let continent = Continent::parse(code);
        if continent.is_none() {
            self.error(
                path,
                format!("`{code}` is not a continent code (AF AN AS EU NA OC SA)"),
            );
        }
        continent
    }
    fn positive(&mut self, path: &str, d: Duration) {
        if d.is_zero() {
            self.error(path, "must be greater than zero");
        }
    }
    fn range(&mut self, path: &str, v: f64, lo: f64, hi: f64) {
        if !(lo..=hi).contains(&v) || v.is_nan() {
            self.error(path, format!("must be between {lo} and {hi}, found {v}"));
        }
    }
}

/// Checks a parsed config: errors and warnings, in file order where it matters,
/// and what it resolved on the way (to be used only when there are no errors).
pub fn validate(c: &Config) -> (Vec<Problem>, Resolved) {
    let mut k = Check {
        regions: &c.regions,
        problems: Vec::new(),
    };
    let mut out = Resolved {
        local_region: k.region("local_region", &c.local_region),
        write_region: c
            .write_region
            .as_deref()
            .map(|w| k.region("write_region", w)),
        ..Resolved::default()
    };

    if c.listeners.is_empty() {
        k.error("listeners", "at least one listener is needed");
    }
    // Each event is a few hundred bytes: a million is already a few hundred MiB.
    k.range(
        "admin.event_journal_size",
        c.admin.event_journal_size as f64,
        1.0,
        1_000_000.0,
    );
    // Port 0 asks the kernel for a free port, a different one at each bind: those
    // cannot clash.
    let mut seen = HashSet::new();
    seen.insert(c.admin.address);
    for (i, l) in c.listeners.iter().enumerate() {
        if l.max_connections == Some(0) {
            k.error(
                format!("listeners[{i}].max_connections"),
                "must be more than 0 (leave it out for no cap)",
            );
        }
        if l.address.port() != 0 && !seen.insert(l.address) {
            k.error(
                format!("listeners[{i}].address"),
                format!(
                    "address {} is used twice (listeners and admin must differ)",
                    l.address
                ),
            );
        }
        if let Some(tls) = &l.tls {
            if tls.certificates.is_empty() {
                k.error(
                    format!("listeners[{i}].tls.certificates"),
                    "at least one certificate is needed",
                );
            }
        }
    }

    if c.regions.is_empty() {
        k.error("regions", "at least one region is needed");
    }
    if c.regions.len() > super::MAX_REGIONS {
        k.error(
            "regions",
            format!(
                "at most {} regions are supported, found {}",
                super::MAX_REGIONS,
                c.regions.len()
            ),
        );
    }
    for (name, r) in &c.regions {
        let at = format!("regions.{name}");
        match HeaderValue::from_str(name) {
            Ok(h) if is_valid_region(name) => out.region_headers.push(h),
            _ => {
                k.error(
                    &at,
                    "region names are 1-64 of lower-case letters, digits and `-`",
                );
                out.region_headers.push(HeaderValue::from_static(""));
            }
        }
        if r.origins.is_empty() {
            k.error(
                format!("{at}.origins"),
                "a region needs at least one origin",
            );
        }
        if r.weight > 1000 {
            k.error(
                format!("{at}.weight"),
                format!("must be between 0 and 1000, found {}", r.weight),
            );
        }
        if r.traffic_dial > 100 {
            k.error(
                format!("{at}.traffic_dial"),
                format!(
                    "must be a percentage between 0 and 100, found {}",
                    r.traffic_dial
                ),
            );
        }
        if let Some(l) = r.location {
            k.range(&format!("{at}.location.lat"), l.lat, -90.0, 90.0);
            k.range(&format!("{at}.location.lon"), l.lon, -180.0, 180.0);
        }
        let most = super::MAX_ORIGINS_PER_REGION;
        if r.origins.len() > most {
            k.error(
                format!("{at}.origins"),
                format!(
                    "at most {most} origins per region are supported, found {} (each may be a DNS name with up to {} addresses)",
                    r.origins.len(),
                    super::MAX_ENDPOINTS_PER_ORIGIN
                ),
            );
        }
        let mut origins = Vec::with_capacity(r.origins.len());
        for (i, o) in r.origins.iter().enumerate() {
            let (host, port) = check_host_port(&o.address).unwrap_or_else(|e| {
                k.error(format!("{at}.origins[{i}].address"), e);
                (String::new(), 0)
            });
            let host_header = o.host_header.as_deref().and_then(|h| {
                check_host_header(h)
                    .map_err(|e| k.error(format!("{at}.origins[{i}].host_header"), e))
                    .ok()
            });
            origins.push(OriginAddress {
                host,
                port,
                host_header,
            });
            if o.max_rps == Some(0) {
                k.error(
                    format!("{at}.origins[{i}].max_rps"),
                    "must be at least 1 (to take an origin out of service, drain its region or remove it)",
                );
            }
            // HTTP/2 over TLS is chosen by ALPN, so it needs TLS; h2c is the
            // cleartext form and TLS would make the origin see a handshake it
            // does not expect.
            match (o.protocol, o.tls.is_some()) {
                (OriginProtocol::H2, false) => k.error(
                    format!("{at}.origins[{i}].protocol"),
                    "`h2` is HTTP/2 over TLS and needs the origin's `tls` (use `h2c` for cleartext HTTP/2)",
                ),
                (OriginProtocol::H2c, true) => k.error(
                    format!("{at}.origins[{i}].protocol"),
                    "`h2c` is cleartext HTTP/2 and cannot have `tls` (use `h2` for HTTP/2 over TLS)",
                ),
                _ => {}
            }
            let Some(tls) = &o.tls else { continue };
            let tls_at = format!("{at}.origins[{i}].tls");
            if tls.client_cert.is_some() != tls.client_key.is_some() {
                k.error(&tls_at, "`client_cert` and `client_key` go together");
            }
            if !tls.verify {
                k.warn(
                    format!("{tls_at}.verify"),
                    "false: the origin's certificate is NOT checked; anyone on the path can impersonate it",
                );
            }
        }
        out.origins.push(origins);
    }

    let o = &c.overload;
    if o.queue_timeout.get() > std::time::Duration::from_secs(10) {
        k.error(
            "overload.queue_timeout",
            format!(
                "must be at most 10s, found {} (a request held longer is better shed: its client retries elsewhere)",
                o.queue_timeout
            ),
        );
    }

    let h = &c.health;
    k.positive("health.interval", h.interval);
    k.positive("health.timeout", h.timeout);
    if !h.timeout.is_zero() && h.timeout >= h.interval {
        k.error(
            "health.timeout",
            format!("must be shorter than health.interval ({})", h.interval),
        );
    }
    if !h.path.starts_with('/') {
        k.error("health.path", "must start with `/`");
    }
    if h.healthy_threshold < 1 {
        k.error("health.healthy_threshold", "must be at least 1");
    }
    if h.unhealthy_threshold < 1 {
        k.error("health.unhealthy_threshold", "must be at least 1");
    }
    if h.expect_status.is_empty() || h.expect_status.iter().any(|s| !(100..=599).contains(s)) {
        k.error(
            "health.expect_status",
            "must list HTTP status codes (100-599)",
        );
    }
    k.range(
        "health.degraded_weight_factor",
        h.degraded_weight_factor,
        0.0,
        1.0,
    );
    if h.min_healthy_origins < 1 {
        k.error("health.min_healthy_origins", "must be at least 1");
    }

    let o = &c.outlier_detection;
    if o.consecutive_failures < 1 {
        k.error(
            "outlier_detection.consecutive_failures",
            "must be at least 1",
        );
    }
    k.positive("outlier_detection.base_ejection", o.base_ejection);
    k.positive("outlier_detection.max_ejection", o.max_ejection);
    if o.max_ejection < o.base_ejection {
        k.error(
            "outlier_detection.max_ejection",
            "must not be shorter than base_ejection",
        );
    }
    if o.max_ejected_percent > 100 {
        k.error(
            "outlier_detection.max_ejected_percent",
            "must be between 0 and 100",
        );
    }

    k.positive("timeouts.connect", c.timeouts.connect);
    k.positive("timeouts.read", c.timeouts.read);
    k.positive("timeouts.idle", c.timeouts.idle);
    k.positive("timeouts.request_header", c.timeouts.request_header);
    k.positive("timeouts.client_idle", c.timeouts.client_idle);
    k.positive("timeouts.client_body", c.timeouts.client_body);
    let l = &c.limits;
    if l.max_body.is_some_and(|b| b.0 == 0) {
        k.error(
            "limits.max_body",
            "must be more than 0 (leave it out for no limit)",
        );
    }
    if !(1..=10_000).contains(&l.max_headers) {
        k.error(
            "limits.max_headers",
            format!("must be between 1 and 10000, found {}", l.max_headers),
        );
    }
    // hyper's read buffer has a floor of 8 KiB; a head over 1 MiB is no request.
    if !(8 * 1024..=1 << 20).contains(&l.max_header_bytes.0) {
        k.error("limits.max_header_bytes", "must be between 8KiB and 1MiB");
    }
    if c.http2.max_concurrent_streams == 0 {
        k.error("http2.max_concurrent_streams", "must be greater than zero");
    }
    k.positive("http2.keep_alive_interval", c.http2.keep_alive_interval);
    k.positive("http2.keep_alive_timeout", c.http2.keep_alive_timeout);
    k.positive("shutdown.grace_period", c.shutdown.grace_period);
    let rs = &c.resolver;
    k.positive("resolver.min_ttl", rs.min_ttl);
    if rs.max_ttl.get() < rs.min_ttl.get() {
        k.error(
            "resolver.max_ttl".to_string(),
            format!(
                "must be at least resolver.min_ttl ({:?}), found {:?}",
                rs.min_ttl.get(),
                rs.max_ttl.get()
            ),
        );
    }
    for (i, ns) in rs.nameservers.iter().enumerate() {
        match ns.parse::<std::net::SocketAddr>() {
            Ok(addr) => out.nameservers.push(addr),
            Err(_) => k.error(
                format!("resolver.nameservers[{i}]"),
                format!("`{ns}` is not IP:PORT (e.g. 10.0.0.2:53 or [fd00::2]:53)"),
            ),
        }
    }
    k.range("access_log.sample", c.access_log.sample, 0.0, 1.0);

    let rt = &c.routing;
    for (code, region) in &rt.geo.countries {
        let at = format!("routing.geo.countries.{code}");
        let country = k.country(&at, code);
        let r = k.region(at, region);
        out.geo_countries.extend(country.map(|c| (c, r)));
    }
    for (code, region) in &rt.geo.continents {
        let at = format!("routing.geo.continents.{code}");
        let continent = k.continent(&at, code);
        let r = k.region(at, region);
        out.geo_continents.extend(continent.map(|c| (c, r)));
    }
    out.geo_default = rt
        .geo
        .default
        .as_deref()
        .map(|d| k.region("routing.geo.default", d));
    for (i, g) in rt.residency.iter().enumerate() {
        let at = format!("routing.residency[{i}]");
        if g.regions.is_empty() {
            k.error(
                format!("{at}.regions"),
                "a residency group needs at least one region",
            );
        }
        if g.countries.is_empty() && g.continents.is_empty() {
            k.error(
                &at,
                "a residency group needs countries or continents to match",
            );
        }
        let mut refs = ResidencyRefs::default();
        for (j, r) in g.regions.iter().enumerate() {
            refs.regions.push(k.region(format!("{at}.regions[{j}]"), r));
        }
        for (j, code) in g.countries.iter().enumerate() {
            refs.countries
                .extend(k.country(format!("{at}.countries[{j}]"), code));
        }
        for (j, code) in g.continents.iter().enumerate() {
            refs.continents
                .extend(k.continent(format!("{at}.continents[{j}]"), code));
        }
        match &g.write_region {
            // One of the group's regions: resolved (or reported) with them.
            Some(w) => match g.regions.iter().position(|r| r == w) {
                Some(j) => refs.write_region = Some(refs.regions[j]),
                None => k.error(
                    format!("{at}.write_region"),
                    format!(
                        "`{w}` is not one of the group's regions: its writes would leave the group"
                    ),
                ),
            },
            None => {
                if let Some(w) = c.write_region.as_ref().filter(|w| !g.regions.contains(w)) {
                    k.warn(
                        &at,
                        format!("no write_region of its own and the global one (`{w}`) is outside the group: its writes stay inside by normal steering"),
                    );
                }
            }
        }
        out.residency.push(refs);
    }
    if !(1..=10).contains(&rt.retries.attempts) {
        k.error("routing.retries.attempts", "must be between 1 and 10");
    }
    k.range("routing.panic_threshold", rt.panic_threshold, 0.0, 1.0);
    k.range(
        "routing.retries.budget.ratio",
        rt.retries.budget.ratio,
        0.0,
        1.0,
    );

    let mut needs_keys = None;
    for (i, r) in c.routes.iter().enumerate() {
        let at = format!("routes[{i}]");
        if r.limits.max_body.is_some_and(|b| b.0 == 0) {
            k.error(
                format!("{at}.limits.max_body"),
                "must be more than 0 (leave it out for no limit)",
            );
        }
        if let Some(burst) = r.rate_limit.as_ref().and_then(|l| l.burst) {
            if !(1..=MAX_BURST).contains(&burst) {
                k.error(
                    format!("{at}.rate_limit.burst"),
                    format!("must be between 1 and {MAX_BURST}, found {burst}"),
                );
            }
        }
        if let Some(p) = &r.matches.path_prefix {
            if !p.starts_with('/') {
                k.error(format!("{at}.match.path_prefix"), "must start with `/`");
            }
        }
        if let Some(ryw) = &r.read_your_writes {
            if r.writes != Some(Writes::WriteRegion) {
                k.error(
                    format!("{at}.read_your_writes"),
                    "needs `writes: write_region` on the same route (tokens are issued for writes sent to the write region)",
                );
            } else if c.write_region.is_none()
                && c.routing.residency.iter().all(|g| g.write_region.is_none())
            {
                k.error(format!("{at}.writes"), "no write_region is configured");
            }
            k.positive(&format!("{at}.read_your_writes.max"), ryw.max);
            if let RywWindow::Fixed(d) = ryw.window {
                k.positive(&format!("{at}.read_your_writes.window"), d);
            }
            needs_keys.get_or_insert(format!("{at}.read_your_writes"));
        }
        if r.writes == Some(Writes::WriteRegion)
            && c.write_region.is_none()
            && r.read_your_writes.is_none()
        {
            k.error(format!("{at}.writes"), "no write_region is configured");
        }
        if r.affinity == Some(Affinity::Cookie) {
            needs_keys.get_or_insert(format!("{at}.affinity"));
        }
    }
    if let (Some(at), None) = (needs_keys, &c.sessions) {
        k.warn(
            at,
            "`sessions` is not configured: tokens are signed with a random per-process key and will not verify on other instances or after a restart",
        );
    }

    if c.shifts.len() > MAX_SHIFTS {
        k.error(
            "shifts",
            format!("at most {MAX_SHIFTS} shifts are supported"),
        );
    }
    for (i, s) in c.shifts.iter().enumerate() {
        let at = format!("shifts[{i}]");
        let from = k.region(format!("{at}.from"), &s.from);
        let to = k.region(format!("{at}.to"), &s.to);
        out.shifts.push((from, to));
        if s.from == s.to {
            k.error(format!("{at}.to"), "a shift needs two different regions");
        }
        k.range(&format!("{at}.percent"), s.percent, 0.0, 100.0);
        if let Some(a) = &s.abort_if {
            k.range(
                &format!("{at}.abort_if.error_ratio_above"),
                a.error_ratio_above,
                0.0,
                1.0,
            );
            k.positive(&format!("{at}.abort_if.over"), a.over);
        }
        if let Some(r) = s.ramp {
            k.positive(&format!("{at}.ramp"), r);
        }
        // Two shifts on the same pair must not be active at once: which one wins would be arbitrary.
        for (j, t) in c.shifts.iter().enumerate().take(i) {
            if t.from == s.from && t.to == s.to && overlaps(s, t) {
                k.error(
                    format!("{at}.start"),
                    format!(
                        "overlaps shift `{}` (shifts[{j}]) on the same regions",
                        t.name
                    ),
                );
            }
        }
    }

    if let Some(d) = &c.dns {
        dns(&mut k, d, &c.local_region);
    }
    (k.problems, out)
}

fn dns(k: &mut Check, d: &Dns, local_region: &str) {
    k.positive("dns.interval", d.interval);
    let r53 = &d.route53;
    if r53.hosted_zone_id.trim().is_empty() {
        k.error("dns.route53.hosted_zone_id", "must not be empty");
    }
    if r53.record_name.trim_end_matches('.').is_empty() {
        k.error("dns.route53.record_name", "must not be empty");
    }
    let kind = r53.record_type.to_ascii_uppercase();
    if !["A", "AAAA", "CNAME"].contains(&kind.as_str()) {
        k.error(
            "dns.route53.record_type",
            format!("`{}` is not one of A, AAAA, CNAME", r53.record_type),
        );
    }
    if d.enabled && r53.records.is_empty() {
        k.error(
            "dns.route53.records",
            "dns is enabled but no region has a record",
        );
    }
    if d.enabled && !r53.records.is_empty() && !r53.records.contains_key(local_region) {
        k.warn(
            "dns.route53.records",
            format!("local_region `{local_region}` has no record, so this instance's health view does not vote"),
        );
    }
    let mut ids = std::collections::BTreeSet::new();
    for (region, rec) in &r53.records {
        let at = format!("dns.route53.records.{region}");
        k.region(&at, region);
        if rec.set_identifier.is_empty() {
            k.error(format!("{at}.set_identifier"), "must not be empty");
        } else if !ids.insert(rec.set_identifier.as_str()) {
            k.error(
                format!("{at}.set_identifier"),
                format!("`{}` is used by another record", rec.set_identifier),
            );
        }
        if rec.weight > 255 {
            k.error(format!("{at}.weight"), "Route 53 weights are 0-255");
        }
        if rec.alias.is_some() != rec.values.is_empty() {
            k.error(
                &at,
                "a record has either `alias` or `values`, not both or neither",
            );
        }
        for (i, v) in rec.values.iter().enumerate() {
            let ok = match kind.as_str() {
                "A" => v.parse::<std::net::Ipv4Addr>().is_ok(),
                "AAAA" => v.parse::<std::net::Ipv6Addr>().is_ok(),
                _ => true,
            };
            if !ok {
                k.error(
                    format!("{at}.values[{i}]"),
                    format!("`{v}` is not a valid {kind} value"),
                );
            }
        }
        if kind == "CNAME" && rec.values.len() > 1 {
            k.error(
                format!("{at}.values"),
                "a CNAME record has exactly one value",
            );
        }
    }
}

/// Active intervals `[start, start + ramp)`; a shift without ramp is active from its
/// start on, so it overlaps everything after it.
fn overlaps(a: &Shift, b: &Shift) -> bool {
    let span = |s: &Shift| {
        let start = s.start.unix_millis();
        let end = s.ramp.map_or(i64::MAX, |r| {
            start.saturating_add(r.get().as_millis() as i64)
        });
        (start, end)
    };
    let ((a0, a1), (b0, b1)) = (span(a), span(b));
    a0 < b1 && b0 < a1
}

/// An origin's `host_header`: a host, optionally with `:port`, as `Host` and
/// HTTP/2's `:authority` carry it; the header value it is sent as.
fn check_host_header(s: &str) -> Result<HeaderValue, String> {
    let authority = s.parse::<http::uri::Authority>().ok();
    match authority.filter(|a| !a.host().is_empty() && !s.contains('@')) {
        Some(_) => HeaderValue::from_str(s).map_err(|e| e.to_string()),
        None => Err(format!(
            "expected a host name, optionally with `:port`, found {s:?}"
        )),
    }
}

/// `host:port` with a valid port; `[v6]:port` for IPv6. The host (without
/// brackets) and the port.
fn check_host_port(s: &str) -> Result<(String, u16), String> {
    let bad = |why: &str| format!("{why}: expected `host:port`, found `{s}`");
    let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let port: u16 = port.parse().map_err(|_| bad("bad port"))?;
    if port == 0 {
        return Err(bad("port 0"));
    }
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if host.starts_with('[') {
        let inner = host.trim_start_matches('[').trim_end_matches(']');
        inner
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| bad("bad IPv6 address"))?;
        return Ok((inner.to_string(), port));
    } else if host.contains(':') {
        return Err(bad("IPv6 addresses need brackets"));
    } else if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err(bad("bad host name"));
    }
    Ok((host.to_string(), port))
}

/// The largest `rate_limit.burst`: a bucket holds at most this many requests
/// (and its arithmetic in nanoseconds stays far from overflowing).
pub const MAX_BURST: u32 = 1_000_000;

/// At most this many shifts: a health view keeps their abort flags in one `u64`.
pub const MAX_SHIFTS: usize = 64;

/// Region names travel in tokens, cookies and metric labels: `[a-z0-9-]{1,64}`.
pub fn is_valid_region(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
